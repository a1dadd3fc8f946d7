# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""libbpf calls only the tests and benchmarks make: batch writes, and loading an object straight into pins.
Nothing on a managed host needs them, so they are not in plugins/module_utils (which the modules and the restore
code ship); they use its binding (``_libbpf``'s calls and its prototype table). BPF_PROG_TEST_RUN is _libbpf's:
ebpf.tc.steering_explain runs it on managed hosts."""

import ctypes
import errno as _errno
import os

from ansible_collections.ebpf.tc.plugins.module_utils import _bpfmap, _bpfobject, _libbpf, _program, _tc
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, LibbpfError

_libbpf.PROTOTYPES.update({
    'bpf_map_update_batch': (ctypes.c_int, [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                            ctypes.POINTER(ctypes.c_uint32), ctypes.c_void_p]),
})

# BPF_PROG_TEST_RUN lives in _libbpf (ebpf.tc.steering_explain runs it on managed hosts)
TestRunResult = _libbpf.TestRunResult
test_run = _libbpf.test_run


def update_batch(bpf_map, keys, values, flags=_libbpf.BPF_ANY):
    """Write many entries of `bpf_map` (a _bpfmap.Map) in one syscall; one by one where the map type or libbpf
    cannot batch."""
    if len(keys) != len(values):
        raise LibbpfError('%s: %d keys but %d values' % (bpf_map._name(), len(keys), len(values)),
                          errno=_errno.EINVAL)
    if not keys:
        return
    start = 0
    try:
        func = _libbpf.function('bpf_map_update_batch')[1]
    except LibbpfError:
        func = None
    if func is not None:
        kbuf = ctypes.create_string_buffer(b''.join(bpf_map._exact(k, bpf_map.key_size, 'key') for k in keys))
        vbuf = ctypes.create_string_buffer(b''.join(bpf_map._exact(v, bpf_map.value_size, 'value') for v in values))
        count = ctypes.c_uint32(len(keys))
        opts = _bpfmap._BatchOpts(sz=ctypes.sizeof(_bpfmap._BatchOpts), elem_flags=flags)
        ret = func(bpf_map.fd, kbuf, vbuf, ctypes.byref(count), ctypes.byref(opts))
        if ret >= 0:
            return
        err = _libbpf.int_errno(ret)
        if err not in (_libbpf.ENOTSUPP, _errno.EOPNOTSUPP):
            raise _libbpf.failure('cannot update %d entries of %s (%d written)'
                                  % (len(keys), bpf_map._name(), count.value), err)
        start = count.value
    for key, value in zip(keys[start:], values[start:]):
        bpf_map.update(key, value, flags)


def load_and_pin(object_path, program, pin_dir):
    """Load `object_path`, pin its maps and `program` under pin_dir; returns (prog_fd, prog_info).

    The caller owns prog_fd. Nothing is pinned when the object fails to open, verify or load. (The modules
    attach with _program.filter_present, which also swaps pins atomically and reuses compatible maps.)
    """
    _program.check_kernel()
    if not os.path.isfile(object_path):
        raise EbpfTcError('BPF object %s does not exist' % object_path)
    if not _program.bpffs_mounted():
        raise EbpfTcError('no bpf filesystem is mounted at %s' % _program.BPFFS)
    if not os.path.isdir(pin_dir):
        os.makedirs(pin_dir)
    obj = _bpfobject.BpfObject.open(object_path, pin_root=pin_dir)
    try:
        if program not in obj.program_names():
            raise EbpfTcError('program %s is not in %s (it has: %s)'
                              % (program, object_path, ', '.join(obj.program_names()) or 'none'))
        for name in obj.map_names():
            if not obj.is_internal(name):
                # maps without LIBBPF_PIN_BY_NAME are pinned too, so every object's state persists
                obj.set_map_pin_path(name, os.path.join(pin_dir, name))
        obj.load()
        fd = os.dup(obj.program_fd(program))
    finally:
        obj.close()
    try:
        pin = os.path.join(pin_dir, program)
        tmp = pin + '_new'  # bpffs refuses names with a dot
        if os.path.exists(tmp):
            os.unlink(tmp)
        _libbpf.obj_pin(fd, tmp)
        os.rename(tmp, pin)
        return fd, _libbpf.prog_info(fd)
    except Exception:
        os.close(fd)
        raise


def attach_pinned(object_path, program, pin_dir, netns, interface='eth0', direction='egress', name=None,
                  priority=49152, handle=1):
    """load_and_pin(), then attach the program as a clsact filter named `name` (default `program`) on the
    hook, the qdisc added when missing: a hook set up by hand, without the modules. Returns its ProgInfo."""
    fd, info = load_and_pin(object_path, program, pin_dir)
    try:
        with _tc.open_netlink(netns) as ipr:
            index = _tc.ifindex(ipr, interface)
            _tc.ensure_clsact(ipr, index)
            _tc.attach(ipr, index, direction, fd, name or program, priority, handle)
    finally:
        os.close(fd)
    return info

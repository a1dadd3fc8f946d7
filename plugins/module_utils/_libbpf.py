# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small ctypes binding to the distro's libbpf: the library, its calls and errors, and plain bpf(2)
objects (fds, pins, ids, info). Maps are ``_bpfmap``'s, objects ``_bpfobject``'s; the calls only tests and
benchmarks make (test runs, batch writes, loading straight into pins) live in tools/bpftest.py.

Targets ``libbpf.so.1`` and ``libbpf.so.0`` (>= 0.5, Ubuntu 22.04). The two differ in how they report
errors: 1.x returns NULL / ``-errno`` and sets errno; 0.x returns error-encoded pointers (decoded with
``libbpf_get_error``) and, from its low-level ``bpf_*`` calls, -1 with errno set. Functions are looked
up lazily, so a symbol one version lacks fails only when it is needed, and every ``*_opts`` struct
declares just the leading fields we use (libbpf reads ``sz`` and treats the rest as unset).

Every failure raises ``LibbpfError`` naming what was being done, with the errno text and whatever
libbpf printed during the call (for a load, the end of the kernel verifier's log).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ctypes
import errno as _errno
import os
import platform
import re
import threading

from ansible_collections.ebpf.tc.plugins.module_utils._errors import LibbpfError, MissingLibbpf

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2
BPF_F_LOCK = 4

BPF_F_NO_PREALLOC = 1
BPF_F_INNER_MAP = 0x1000
BPF_F_MMAPABLE = 0x400

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_LPM_TRIE = 11
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE = 21

BPF_PROG_TYPE_UNSPEC = 0
BPF_PROG_TYPE_SCHED_CLS = 3

PERCPU_MAP_TYPES = frozenset((
    BPF_MAP_TYPE_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_ARRAY,
    BPF_MAP_TYPE_LRU_PERCPU_HASH,
    BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE,
))

# The kernel's internal ENOTSUPP (no userspace name): "this map type has no batch operations".
ENOTSUPP = 524
_LIBBPF_ERRNO_START = 4000  # libbpf's own error codes (bad ELF, relocation failure...) start here
# libbpf before 1.0 reports a verifier rejection (the kernel's EACCES) and a program too large (E2BIG) under
# codes of its own, LIBBPF_ERRNO__VERIFY and __PROG2BIG: errors say the kernel's errno on every libbpf.
_KERNEL_ERRNO_OF = {4007: _errno.EACCES, 4008: _errno.E2BIG}

_SONAMES = ('libbpf.so.1', 'libbpf.so.0')

_LIBBPF_WARN, _LIBBPF_INFO, _LIBBPF_DEBUG = 0, 1, 2
_LOG_KEEP_LINES = 400       # per thread, while a call runs
_LOG_TAIL_LINES = 40        # attached to an error
_LOG_TAIL_BYTES = 4096

MapInfo = collections.namedtuple(
    'MapInfo', 'id type key_size value_size max_entries flags name btf_id btf_key_type_id btf_value_type_id')
ProgInfo = collections.namedtuple(
    'ProgInfo',
    'id type tag name map_ids btf_id load_time xlated_prog_len jited_prog_len run_cnt run_time_ns')


# ---------------------------------------------------------------------------------------------------
# struct layouts (linux/bpf.h UAPI, bpf/libbpf.h, bpf/bpf.h)

class _BpfMapInfo(ctypes.Structure):
    # A prefix of struct bpf_map_info: the kernel copies min(our size, its size).
    _fields_ = [
        ('type', ctypes.c_uint32),
        ('id', ctypes.c_uint32),
        ('key_size', ctypes.c_uint32),
        ('value_size', ctypes.c_uint32),
        ('max_entries', ctypes.c_uint32),
        ('map_flags', ctypes.c_uint32),
        ('name', ctypes.c_char * 16),
        ('ifindex', ctypes.c_uint32),
        ('btf_vmlinux_value_type_id', ctypes.c_uint32),
        ('netns_dev', ctypes.c_uint64),
        ('netns_ino', ctypes.c_uint64),
        ('btf_id', ctypes.c_uint32),
        ('btf_key_type_id', ctypes.c_uint32),
        ('btf_value_type_id', ctypes.c_uint32),
    ]


class _BpfBtfInfo(ctypes.Structure):
    # A prefix of struct bpf_btf_info: where the kernel copies the BTF blob, and its size.
    _fields_ = [
        ('btf', ctypes.c_uint64),
        ('btf_size', ctypes.c_uint32),
        ('id', ctypes.c_uint32),
    ]


class _BpfProgInfo(ctypes.Structure):
    # struct bpf_prog_info up to run_cnt; fields a kernel does not know stay 0.
    _fields_ = [
        ('type', ctypes.c_uint32),
        ('id', ctypes.c_uint32),
        ('tag', ctypes.c_uint8 * 8),
        ('jited_prog_len', ctypes.c_uint32),
        ('xlated_prog_len', ctypes.c_uint32),
        ('jited_prog_insns', ctypes.c_uint64),
        ('xlated_prog_insns', ctypes.c_uint64),
        ('load_time', ctypes.c_uint64),
        ('created_by_uid', ctypes.c_uint32),
        ('nr_map_ids', ctypes.c_uint32),
        ('map_ids', ctypes.c_uint64),
        ('name', ctypes.c_char * 16),
        ('ifindex', ctypes.c_uint32),
        ('gpl_compatible', ctypes.c_uint32),
        ('netns_dev', ctypes.c_uint64),
        ('netns_ino', ctypes.c_uint64),
        ('nr_jited_ksyms', ctypes.c_uint32),
        ('nr_jited_func_lens', ctypes.c_uint32),
        ('jited_ksyms', ctypes.c_uint64),
        ('jited_func_lens', ctypes.c_uint64),
        ('btf_id', ctypes.c_uint32),
        ('func_info_rec_size', ctypes.c_uint32),
        ('func_info', ctypes.c_uint64),
        ('nr_func_info', ctypes.c_uint32),
        ('nr_line_info', ctypes.c_uint32),
        ('line_info', ctypes.c_uint64),
        ('jited_line_info', ctypes.c_uint64),
        ('nr_jited_line_info', ctypes.c_uint32),
        ('line_info_rec_size', ctypes.c_uint32),
        ('jited_line_info_rec_size', ctypes.c_uint32),
        ('nr_prog_tags', ctypes.c_uint32),
        ('prog_tags', ctypes.c_uint64),
        ('run_time_ns', ctypes.c_uint64),
        ('run_cnt', ctypes.c_uint64),
    ]


_vp, _cp, _int, _u32, _sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_size_t

# name -> (restype, argtypes); applied when a function is first used. tools/bpftest.py adds its own.
PROTOTYPES = {
    'libbpf_get_error': (ctypes.c_long, [_vp]),
    'libbpf_strerror': (_int, [_int, _cp, _sz]),
    'libbpf_set_print': (_vp, [_vp]),
    'libbpf_major_version': (_u32, []),
    'libbpf_minor_version': (_u32, []),
    'libbpf_num_possible_cpus': (_int, []),
    'bpf_object__open_file': (_vp, [_cp, _vp]),
    'bpf_object__load': (_int, [_vp]),
    'bpf_object__close': (None, [_vp]),
    'bpf_object__next_program': (_vp, [_vp, _vp]),
    'bpf_program__next': (_vp, [_vp, _vp]),
    'bpf_object__next_map': (_vp, [_vp, _vp]),
    'bpf_map__next': (_vp, [_vp, _vp]),
    'bpf_program__name': (_cp, [_vp]),
    'bpf_program__fd': (_int, [_vp]),
    'bpf_program__pin': (_int, [_vp, _cp]),
    'bpf_program__get_type': (_int, [_vp]),
    'bpf_program__set_type': (_int, [_vp, _int]),
    'bpf_map__name': (_cp, [_vp]),
    'bpf_map__fd': (_int, [_vp]),
    'bpf_map__set_pin_path': (_int, [_vp, _cp]),
    'bpf_map__reuse_fd': (_int, [_vp, _int]),
    'bpf_obj_get': (_int, [_cp]),
    'bpf_obj_pin': (_int, [_int, _cp]),
    'bpf_obj_get_info_by_fd': (_int, [_int, _vp, ctypes.POINTER(_u32)]),
    'bpf_prog_get_fd_by_id': (_int, [_u32]),
    'bpf_map_get_fd_by_id': (_int, [_u32]),
    'bpf_btf_get_fd_by_id': (_int, [_u32]),
    'bpf_map_create': (_int, [_int, _cp, _u32, _u32, _u32, _vp]),
    'bpf_create_map_name': (_int, [_int, _cp, _int, _int, _int, _u32]),
    'bpf_map_lookup_elem': (_int, [_int, _vp, _vp]),
    'bpf_map_lookup_elem_flags': (_int, [_int, _vp, _vp, ctypes.c_uint64]),
    'bpf_map_update_elem': (_int, [_int, _vp, _vp, ctypes.c_uint64]),
    'bpf_map_delete_elem': (_int, [_int, _vp]),
    'bpf_map_get_next_key': (_int, [_int, _vp, _vp]),
    'bpf_map_lookup_batch': (_int, [_int, _vp, _vp, _vp, _vp, ctypes.POINTER(_u32), _vp]),
    'bpf_prog_test_run_opts': (_int, [_int, _vp]),
}

_LOCK = threading.Lock()
_STATE = {}                  # 'lib', 'print_cb', 'ncpus', 'version'
_FUNCS = {}                  # name -> ctypes function with its prototype
_LOG = threading.local()


# ---------------------------------------------------------------------------------------------------
# loading the library, calling it, turning its errors into exceptions

def get_libbpf():
    """The loaded libbpf (cached). Installs the log capture on first use."""
    lib = _STATE.get('lib')
    if lib is not None:
        return lib
    with _LOCK:
        if 'lib' not in _STATE:
            _STATE['lib'] = _load_library()
    return _STATE['lib']


def _load_library():
    problems = []
    for soname in _SONAMES:
        try:
            lib = ctypes.CDLL(soname, use_errno=True)
        except OSError as exc:
            problems.append(str(exc))
            continue
        version = _version_of(lib)
        if soname == 'libbpf.so.0' and _version_tuple(version) < (0, 5):
            problems.append('%s is libbpf %s; ebpf.tc needs 0.5 or later' % (soname, version))
            continue
        _STATE['version'] = version
        _install_print(lib)
        return lib
    raise MissingLibbpf('libbpf (libbpf.so.1, or libbpf.so.0 >= 0.5) is not installed: %s'
                        % '; '.join(problems))


def _version_of(lib):
    """libbpf's version: asked from the library (>= 0.6), else read from the loaded file's name."""
    major = getattr(lib, 'libbpf_major_version', None)
    minor = getattr(lib, 'libbpf_minor_version', None)
    if major is not None and minor is not None:
        major.restype = minor.restype = ctypes.c_uint32
        return '%d.%d' % (major(), minor())
    try:
        with open('/proc/self/maps') as maps:
            for line in maps:
                match = re.search(r'/libbpf\.so\.(\d+)\.(\d+)', line)
                if match:
                    return '%s.%s' % match.groups()
    except OSError:
        pass
    return '0'


def _version_tuple(version):
    return tuple(int(part) for part in version.split('.'))


def libbpf_version():
    """The loaded libbpf's version as "major.minor"."""
    get_libbpf()
    return _STATE['version']


def function(*names):
    """The first of ``names`` this libbpf exports, with its prototype set, and that name."""
    for name in names:
        func = _FUNCS.get(name)
        if func is None:
            func = getattr(get_libbpf(), name, None)
            if func is None:
                continue
            func.restype, func.argtypes = PROTOTYPES[name]
            _FUNCS[name] = func
        return name, func
    raise LibbpfError('libbpf %s lacks %s' % (libbpf_version(), ' and '.join(names)), errno=_errno.ENOSYS)


def call(name, *args):
    return function(name)[1](*args)


def strerror(err):
    """Text of a positive errno or libbpf error code."""
    if err >= _LIBBPF_ERRNO_START:
        buf = ctypes.create_string_buffer(256)
        call('libbpf_strerror', err, buf, len(buf))
        return buf.value.decode('utf-8', 'replace')
    if err == ENOTSUPP:
        return 'Operation not supported (ENOTSUPP)'
    return os.strerror(err)


def int_errno(ret):
    """errno of a failed int-returning call: -1 with errno set (0.x bpf_*), or -errno (everything else)."""
    if ret == -1:
        return ctypes.get_errno() or _errno.EPERM
    return -ret


def failure(what, err, with_log=False):
    err = _KERNEL_ERRNO_OF.get(err, err)
    return LibbpfError('%s: %s' % (what, strerror(err)), errno=err, log=_log_tail() if with_log else None)


def check_int(ret, what, with_log=False):
    if ret < 0:
        raise failure(what, int_errno(ret), with_log)
    return ret


def check_ptr(ptr, what):
    """``ptr`` if it is a real object; NULL (1.x) and error-encoded pointers (0.x) raise."""
    if ptr:
        err = -call('libbpf_get_error', ptr)
        if not err:
            return ptr
    else:
        err = ctypes.get_errno() or _errno.EINVAL
    raise failure(what, err, with_log=True)


def as_bytes(value, what):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError('%s must be bytes, not %s' % (what, type(value).__name__))


# ---------------------------------------------------------------------------------------------------
# libbpf's log: one print callback for the process, lines kept per thread

def _install_print(lib):
    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(_on_print)
    _STATE['print_cb'] = callback   # ctypes callbacks must outlive their use
    set_print = lib.libbpf_set_print
    set_print.restype, set_print.argtypes = PROTOTYPES['libbpf_set_print']
    set_print(ctypes.cast(callback, ctypes.c_void_p))


_LIBC = ctypes.CDLL(None)
_vsnprintf = _LIBC.vsnprintf
_vsnprintf.restype = ctypes.c_int
_vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]

# va_copy() is a macro, so where the va_list layout is known we copy it by hand to format twice: once
# to measure, once for real (a verifier log can be megabytes and its end is what matters). Both ABIs
# hand the callee a pointer: x86_64's va_list is a one-element array, aarch64's a 32-byte struct passed
# by reference. Elsewhere a message is formatted once into a bounded buffer.
_VA_LIST_SIZE = {'x86_64': 24, 'amd64': 24, 'aarch64': 32, 'arm64': 32}.get(platform.machine().lower())
_SINGLE_PASS_BYTES = 1 << 16


def _format(fmt, va_list):
    if _VA_LIST_SIZE is None:
        buf = ctypes.create_string_buffer(_SINGLE_PASS_BYTES)
        _vsnprintf(buf, len(buf), fmt, va_list)
        return buf.value
    copy = ctypes.create_string_buffer(_VA_LIST_SIZE)
    ctypes.memmove(copy, va_list, _VA_LIST_SIZE)
    size = _vsnprintf(None, 0, fmt, ctypes.addressof(copy))
    if size < 0:
        return fmt
    buf = ctypes.create_string_buffer(size + 1)
    _vsnprintf(buf, size + 1, fmt, va_list)
    return buf.value


def _on_print(level, fmt, va_list):
    if level >= _LIBBPF_DEBUG:
        return 0
    text = _format(fmt, va_list).decode('utf-8', 'replace')
    lines = getattr(_LOG, 'lines', None)
    if lines is None:
        lines = _LOG.lines = collections.deque(maxlen=_LOG_KEEP_LINES)
    lines.extend(line for line in text.splitlines() if line.strip())
    return 0


def log_begin():
    """Forget what libbpf printed before the call that follows."""
    lines = getattr(_LOG, 'lines', None)
    if lines is not None:
        lines.clear()


def _log_tail():
    """The end of what libbpf printed since ``log_begin``, at most 40 lines / 4 KiB."""
    lines = list(getattr(_LOG, 'lines', ()))[-_LOG_TAIL_LINES:]
    text = '\n'.join(lines)
    if len(text) > _LOG_TAIL_BYTES:
        text = text[-_LOG_TAIL_BYTES:]
        text = text[text.find('\n') + 1:]
    return text


# ---------------------------------------------------------------------------------------------------
# plain bpf(2) objects: fds, pins, ids, info

def num_possible_cpus():
    """How many values a per-CPU map holds per key."""
    if 'ncpus' not in _STATE:
        _STATE['ncpus'] = check_int(call('libbpf_num_possible_cpus'), 'cannot count possible CPUs')
    return _STATE['ncpus']


def close_fd(fd):
    os.close(fd)


def obj_get(path):
    """An fd for the object pinned at ``path`` (ENOENT in ``.errno`` when nothing is pinned there)."""
    return check_int(call('bpf_obj_get', os.fsencode(path)), 'cannot open pinned object %s' % path)


def obj_pin(fd, path):
    check_int(call('bpf_obj_pin', fd, os.fsencode(path)), 'cannot pin fd %d at %s' % (fd, path))


def prog_fd_by_id(prog_id):
    return check_int(call('bpf_prog_get_fd_by_id', prog_id), 'cannot open BPF program id %d' % prog_id)


def map_fd_by_id(map_id):
    return check_int(call('bpf_map_get_fd_by_id', map_id), 'cannot open BPF map id %d' % map_id)


def fd_kind(fd):
    """'map', 'prog', 'link'... from /proc/self/fdinfo (None when unknown): the kernel's info call
    happily fills a map's struct from a program, so we look before we ask."""
    try:
        with open('/proc/self/fdinfo/%d' % fd) as info:
            for line in info:
                key = line.split(':', 1)[0]
                if key.endswith('_type'):       # map_type, prog_type, link_type
                    return key[:-len('_type')]
    except OSError:
        pass
    return None


def _obj_info(fd, info, kind):
    found = fd_kind(fd)
    if found is not None and found != kind:
        raise LibbpfError('fd %d is a BPF %s, not a BPF %s' % (fd, found, kind), errno=_errno.EINVAL)
    size = ctypes.c_uint32(ctypes.sizeof(info))
    check_int(call('bpf_obj_get_info_by_fd', fd, ctypes.byref(info), ctypes.byref(size)),
              'cannot read info of BPF %s fd %d' % (kind, fd))
    return info


def map_info(fd):
    info = _obj_info(fd, _BpfMapInfo(), 'map')
    return MapInfo(info.id, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags,
                   info.name.decode('utf-8', 'replace'), info.btf_id, info.btf_key_type_id, info.btf_value_type_id)


def btf_raw(btf_id):
    """The raw BTF (header, types, strings) the kernel holds under ``btf_id``, such as a map's."""
    fd = check_int(call('bpf_btf_get_fd_by_id', btf_id), 'cannot open BTF id %d' % btf_id)
    try:
        info = _BpfBtfInfo()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        what = 'cannot read BTF id %d' % btf_id
        check_int(call('bpf_obj_get_info_by_fd', fd, ctypes.byref(info), ctypes.byref(size)), what)
        # Second call: the kernel copies the blob into a buffer of the size it just told us.
        blob = ctypes.create_string_buffer(info.btf_size)
        again = _BpfBtfInfo(btf=ctypes.addressof(blob), btf_size=info.btf_size)
        size = ctypes.c_uint32(ctypes.sizeof(again))
        check_int(call('bpf_obj_get_info_by_fd', fd, ctypes.byref(again), ctypes.byref(size)), what)
        return blob.raw[:again.btf_size]
    finally:
        os.close(fd)


def prog_info(fd):
    """What the kernel knows of a program; ``tag`` is the 16-hex-digit tag tc and bpftool show."""
    info = _obj_info(fd, _BpfProgInfo(), 'prog')
    map_ids = ()
    if info.nr_map_ids:
        # Second call: the kernel writes the ids into a buffer we supply.
        ids = (ctypes.c_uint32 * info.nr_map_ids)()
        again = _BpfProgInfo(nr_map_ids=info.nr_map_ids, map_ids=ctypes.addressof(ids))
        _obj_info(fd, again, 'prog')
        map_ids = tuple(ids[:min(again.nr_map_ids, info.nr_map_ids)])
    return ProgInfo(
        id=info.id, type=info.type, tag=bytes(info.tag).hex(), name=info.name.decode('utf-8', 'replace'),
        map_ids=map_ids, btf_id=info.btf_id, load_time=info.load_time,
        xlated_prog_len=info.xlated_prog_len, jited_prog_len=info.jited_prog_len,
        run_cnt=info.run_cnt, run_time_ns=info.run_time_ns)


# ---------------------------------------------------------------------------------------------------
# BPF_PROG_TEST_RUN: the tests' way into a program, and steering_explain's

TestRunResult = collections.namedtuple('TestRunResult', 'retval data_out ctx_out duration_ns')
TestRunResult.__test__ = False  # not a test class


class _TestRunOpts(ctypes.Structure):
    _fields_ = [
        ('sz', ctypes.c_size_t),
        ('data_in', ctypes.c_void_p),
        ('data_out', ctypes.c_void_p),
        ('data_size_in', ctypes.c_uint32),
        ('data_size_out', ctypes.c_uint32),
        ('ctx_in', ctypes.c_void_p),
        ('ctx_out', ctypes.c_void_p),
        ('ctx_size_in', ctypes.c_uint32),
        ('ctx_size_out', ctypes.c_uint32),
        ('retval', ctypes.c_uint32),
        ('repeat', ctypes.c_int),
        ('duration', ctypes.c_uint32),
    ]


def test_run(prog_fd, data, ctx=None, repeat=1, data_out_size=None, ctx_out_size=None):
    """Run a program once (or ``repeat`` times) on ``data`` with BPF_PROG_TEST_RUN.

    For SCHED_CLS, ``ctx`` is a ``struct __sk_buff`` prefix (the kernel accepts mark, priority, cb...,
    the rest must be 0) and ``ctx_out`` the whole struct after the run. ``retval`` is signed, so
    TC_ACT_UNSPEC reads -1. The output buffers default to room for growth: the kernel fails with
    ENOSPC rather than truncate.
    """
    data = as_bytes(data, 'data')
    if data_out_size is None:
        data_out_size = len(data) + 4096
    if ctx_out_size is None:
        ctx_out_size = 1024 if ctx is not None else 0
    data_in = ctypes.create_string_buffer(data, len(data))
    data_out = ctypes.create_string_buffer(data_out_size)
    opts = _TestRunOpts(sz=ctypes.sizeof(_TestRunOpts), repeat=repeat,
                        data_in=ctypes.addressof(data_in), data_size_in=len(data),
                        data_out=ctypes.addressof(data_out), data_size_out=data_out_size)
    if ctx is not None:
        ctx = as_bytes(ctx, 'ctx')
        ctx_in = ctypes.create_string_buffer(ctx, len(ctx))
        opts.ctx_in, opts.ctx_size_in = ctypes.addressof(ctx_in), len(ctx)
    if ctx_out_size:
        ctx_out = ctypes.create_string_buffer(ctx_out_size)
        opts.ctx_out, opts.ctx_size_out = ctypes.addressof(ctx_out), ctx_out_size
    check_int(call('bpf_prog_test_run_opts', prog_fd, ctypes.byref(opts)), 'cannot test-run BPF program fd %d' % prog_fd)
    retval = opts.retval - (1 << 32) if opts.retval >= (1 << 31) else opts.retval
    return TestRunResult(retval=retval, data_out=data_out.raw[:opts.data_size_out],
                         ctx_out=ctx_out.raw[:opts.ctx_size_out] if ctx_out_size else b'', duration_ns=opts.duration)


test_run.__test__ = False  # not a test function, for the test modules that import it

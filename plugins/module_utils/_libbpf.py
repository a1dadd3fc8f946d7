# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A small ctypes binding to the distro's libbpf: load objects, pin, read and write maps, test-run.

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
import mmap
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

MapInfo = collections.namedtuple('MapInfo', 'id type key_size value_size max_entries flags name')
ProgInfo = collections.namedtuple(
    'ProgInfo',
    'id type tag name map_ids btf_id load_time xlated_prog_len jited_prog_len run_cnt run_time_ns')
TestRunResult = collections.namedtuple('TestRunResult', 'retval data_out ctx_out duration_ns')
TestRunResult.__test__ = False  # not a test class, in case a test module imports it by name


# ---------------------------------------------------------------------------------------------------
# struct layouts (linux/bpf.h UAPI, bpf/libbpf.h, bpf/bpf.h)

class _ObjectOpenOpts(ctypes.Structure):
    # pin_root_path sits at offset 24 in 0.5 (after two bools) and in 1.x (one bool, then padding).
    _fields_ = [
        ('sz', ctypes.c_size_t),
        ('object_name', ctypes.c_char_p),
        ('relaxed_maps', ctypes.c_bool),
        ('pin_root_path', ctypes.c_char_p),
    ]


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


class _MapCreateOpts(ctypes.Structure):
    _fields_ = [
        ('sz', ctypes.c_size_t),
        ('btf_fd', ctypes.c_uint32),
        ('btf_key_type_id', ctypes.c_uint32),
        ('btf_value_type_id', ctypes.c_uint32),
        ('btf_vmlinux_value_type_id', ctypes.c_uint32),
        ('inner_map_fd', ctypes.c_uint32),
        ('map_flags', ctypes.c_uint32),
    ]


class _BatchOpts(ctypes.Structure):
    _fields_ = [
        ('sz', ctypes.c_size_t),
        ('elem_flags', ctypes.c_uint64),
        ('flags', ctypes.c_uint64),
    ]


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

# name -> (restype, argtypes); applied when a function is first used.
_PROTOTYPES = {
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
    'bpf_obj_get': (_int, [_cp]),
    'bpf_obj_pin': (_int, [_int, _cp]),
    'bpf_obj_get_info_by_fd': (_int, [_int, _vp, ctypes.POINTER(_u32)]),
    'bpf_prog_get_fd_by_id': (_int, [_u32]),
    'bpf_map_get_fd_by_id': (_int, [_u32]),
    'bpf_map_create': (_int, [_int, _cp, _u32, _u32, _u32, _vp]),
    'bpf_create_map_name': (_int, [_int, _cp, _int, _int, _int, _u32]),
    'bpf_map_lookup_elem': (_int, [_int, _vp, _vp]),
    'bpf_map_lookup_elem_flags': (_int, [_int, _vp, _vp, ctypes.c_uint64]),
    'bpf_map_update_elem': (_int, [_int, _vp, _vp, ctypes.c_uint64]),
    'bpf_map_delete_elem': (_int, [_int, _vp]),
    'bpf_map_get_next_key': (_int, [_int, _vp, _vp]),
    'bpf_map_update_batch': (_int, [_int, _vp, _vp, ctypes.POINTER(_u32), _vp]),
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


def _fn(*names):
    """The first of ``names`` this libbpf exports, with its prototype set, and that name."""
    for name in names:
        func = _FUNCS.get(name)
        if func is None:
            func = getattr(get_libbpf(), name, None)
            if func is None:
                continue
            func.restype, func.argtypes = _PROTOTYPES[name]
            _FUNCS[name] = func
        return name, func
    raise LibbpfError('libbpf %s lacks %s' % (libbpf_version(), ' and '.join(names)), errno=_errno.ENOSYS)


def _call(name, *args):
    return _fn(name)[1](*args)


def strerror(err):
    """Text of a positive errno or libbpf error code."""
    if err >= _LIBBPF_ERRNO_START:
        buf = ctypes.create_string_buffer(256)
        _call('libbpf_strerror', err, buf, len(buf))
        return buf.value.decode('utf-8', 'replace')
    if err == ENOTSUPP:
        return 'Operation not supported (ENOTSUPP)'
    return os.strerror(err)


def _int_errno(ret):
    """errno of a failed int-returning call: -1 with errno set (0.x bpf_*), or -errno (everything else)."""
    if ret == -1:
        return ctypes.get_errno() or _errno.EPERM
    return -ret


def _fail(what, err, with_log=False):
    err = _KERNEL_ERRNO_OF.get(err, err)
    return LibbpfError('%s: %s' % (what, strerror(err)), errno=err, log=_log_tail() if with_log else None)


def _check_int(ret, what, with_log=False):
    if ret < 0:
        raise _fail(what, _int_errno(ret), with_log)
    return ret


def _check_ptr(ptr, what):
    """``ptr`` if it is a real object; NULL (1.x) and error-encoded pointers (0.x) raise."""
    if ptr:
        err = -_call('libbpf_get_error', ptr)
        if not err:
            return ptr
    else:
        err = ctypes.get_errno() or _errno.EINVAL
    raise _fail(what, err, with_log=True)


def _bytes(value, what):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError('%s must be bytes, not %s' % (what, type(value).__name__))


# ---------------------------------------------------------------------------------------------------
# libbpf's log: one print callback for the process, lines kept per thread

def _install_print(lib):
    callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)(_on_print)
    _STATE['print_cb'] = callback   # ctypes callbacks must outlive their use
    set_print = lib.libbpf_set_print
    set_print.restype, set_print.argtypes = _PROTOTYPES['libbpf_set_print']
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


def _log_begin():
    """Forget what libbpf printed before the call that follows."""
    lines = getattr(_LOG, 'lines', None)
    if lines is not None:
        lines.clear()


def _log_tail():
    """The end of what libbpf printed since ``_log_begin``, at most 40 lines / 4 KiB."""
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
        _STATE['ncpus'] = _check_int(_call('libbpf_num_possible_cpus'), 'cannot count possible CPUs')
    return _STATE['ncpus']


def close_fd(fd):
    os.close(fd)


def obj_get(path):
    """An fd for the object pinned at ``path`` (ENOENT in ``.errno`` when nothing is pinned there)."""
    return _check_int(_call('bpf_obj_get', os.fsencode(path)), 'cannot open pinned object %s' % path)


def obj_pin(fd, path):
    _check_int(_call('bpf_obj_pin', fd, os.fsencode(path)), 'cannot pin fd %d at %s' % (fd, path))


def prog_fd_by_id(prog_id):
    return _check_int(_call('bpf_prog_get_fd_by_id', prog_id), 'cannot open BPF program id %d' % prog_id)


def map_fd_by_id(map_id):
    return _check_int(_call('bpf_map_get_fd_by_id', map_id), 'cannot open BPF map id %d' % map_id)


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
    _check_int(_call('bpf_obj_get_info_by_fd', fd, ctypes.byref(info), ctypes.byref(size)),
               'cannot read info of BPF %s fd %d' % (kind, fd))
    return info


def map_info(fd):
    info = _obj_info(fd, _BpfMapInfo(), 'map')
    return MapInfo(info.id, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags,
                   info.name.decode('utf-8', 'replace'))


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


def _to_int32(value):
    return value - (1 << 32) if value >= (1 << 31) else value


def test_run(prog_fd, data, ctx=None, repeat=1, data_out_size=None, ctx_out_size=None):
    """Run a program once (or ``repeat`` times) on ``data`` with BPF_PROG_TEST_RUN.

    For SCHED_CLS, ``ctx`` is a ``struct __sk_buff`` prefix (the kernel accepts mark, priority, cb...,
    the rest must be 0) and ``ctx_out`` the whole struct after the run. ``retval`` is signed, so
    TC_ACT_UNSPEC reads -1. The output buffers default to room for growth: the kernel fails with
    ENOSPC rather than truncate.
    """
    data = _bytes(data, 'data')
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
        ctx = _bytes(ctx, 'ctx')
        ctx_in = ctypes.create_string_buffer(ctx, len(ctx))
        opts.ctx_in, opts.ctx_size_in = ctypes.addressof(ctx_in), len(ctx)
    if ctx_out_size:
        ctx_out = ctypes.create_string_buffer(ctx_out_size)
        opts.ctx_out, opts.ctx_size_out = ctypes.addressof(ctx_out), ctx_out_size
    _check_int(_call('bpf_prog_test_run_opts', prog_fd, ctypes.byref(opts)),
               'cannot test-run BPF program fd %d' % prog_fd)
    return TestRunResult(
        retval=_to_int32(opts.retval),
        data_out=data_out.raw[:opts.data_size_out],
        ctx_out=ctx_out.raw[:opts.ctx_size_out] if ctx_out_size else b'',
        duration_ns=opts.duration)


test_run.__test__ = False  # not a test function, in case a test module imports it by name


# ---------------------------------------------------------------------------------------------------
# maps

def create_map(map_type, key_size, value_size, max_entries, name=None, flags=0):
    """A new map not tied to any object (for example an inner map of a map-in-map)."""
    cname = name.encode() if name else None
    what = 'cannot create map %s (type %d, key %d, value %d, %d entries)' % (
        name or '(unnamed)', map_type, key_size, value_size, max_entries)
    which, func = _fn('bpf_map_create', 'bpf_create_map_name')
    if which == 'bpf_map_create':
        opts = _MapCreateOpts(sz=ctypes.sizeof(_MapCreateOpts), map_flags=flags)
        ret = func(map_type, cname, key_size, value_size, max_entries, ctypes.byref(opts))
    else:
        ret = func(map_type, cname, key_size, value_size, max_entries, flags)
    return Map(_check_int(ret, what), owned=True)


class Map:
    """A BPF map by fd. Keys and values are bytes of exactly the map's sizes.

    Per-CPU maps take and return one buffer holding every possible CPU's value, each padded to 8 bytes
    (``value_size`` is that buffer's size); ``lookup_percpu`` splits it. Map-in-map values are u32:
    the inner map's id on lookup, an inner map fd on update.
    """

    def __init__(self, fd, owned=True):
        self._fd = fd
        self._owned = owned
        self._info = None
        self._mmap = None

    @classmethod
    def from_pin(cls, path):
        """The map pinned at ``path`` (a pinned program there is refused)."""
        bpf_map = cls(obj_get(path), owned=True)
        try:
            bpf_map._info = map_info(bpf_map.fd)
        except BaseException:
            bpf_map.close()
            raise
        return bpf_map

    @classmethod
    def from_fd(cls, fd, owned=False):
        return cls(fd, owned=owned)

    @classmethod
    def from_id(cls, map_id):
        return cls(map_fd_by_id(map_id), owned=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None
        if self._fd is not None and self._owned:
            os.close(self._fd)
        self._fd = None

    @property
    def fd(self):
        if self._fd is None:
            raise LibbpfError('map is closed', errno=_errno.EBADF)
        return self._fd

    @property
    def info(self):
        if self._info is None:
            self._info = map_info(self.fd)
        return self._info

    @property
    def stride(self):
        """Bytes between two values of an mmapped array: the value size rounded up to 8."""
        return (self.info.value_size + 7) // 8 * 8

    def values_mmap(self):
        """The values of an array map created with BPF_F_MMAPABLE, mapped shared and writable (value i at
        ``i * stride``): reads and writes of whole tables become memory copies instead of a syscall (and a
        Python object) per entry. The kernel's program sees writes at once. Unmapped on close()."""
        if self._mmap is None:
            info = self.info
            if info.type != BPF_MAP_TYPE_ARRAY or not info.flags & BPF_F_MMAPABLE:
                raise LibbpfError('map %s is not an mmapable array (BPF_F_MMAPABLE)' % info.name,
                                  errno=_errno.EINVAL)
            self._mmap = mmap.mmap(self.fd, self.stride * info.max_entries, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE)
        return self._mmap

    @property
    def is_percpu(self):
        return self.info.type in PERCPU_MAP_TYPES

    @property
    def key_size(self):
        return self.info.key_size

    @property
    def value_size(self):
        """Bytes of one value as user space sees it (all CPUs for a per-CPU map)."""
        if self.is_percpu:
            return (self.info.value_size + 7) // 8 * 8 * num_possible_cpus()
        return self.info.value_size

    def _name(self):
        return 'map %s (id %d)' % (self.info.name or '(unnamed)', self.info.id)

    def _exact(self, data, size, what):
        data = _bytes(data, what)
        if len(data) != size:
            raise LibbpfError('%s: %s is %d bytes, the map wants %d' % (self._name(), what, len(data), size),
                              errno=_errno.EINVAL)
        return data

    def _sized(self, data, size, what):
        return ctypes.create_string_buffer(self._exact(data, size, what), size)

    def lookup(self, key, flags=0):
        """The value at ``key``, or None. ``flags=BPF_F_LOCK`` reads a spin-locked value consistently."""
        kbuf = self._sized(key, self.key_size, 'key')
        vbuf = ctypes.create_string_buffer(self.value_size)
        if flags:
            ret = _call('bpf_map_lookup_elem_flags', self.fd, kbuf, vbuf, flags)
        else:
            ret = _call('bpf_map_lookup_elem', self.fd, kbuf, vbuf)
        if ret < 0:
            err = _int_errno(ret)
            if err == _errno.ENOENT:
                return None
            raise _fail('cannot look up key %s in %s' % (bytes(key).hex(), self._name()), err)
        return vbuf.raw

    def lookup_percpu(self, key):
        """Per-CPU values at ``key`` as a list (one ``info.value_size`` bytes per possible CPU), or None."""
        if not self.is_percpu:
            raise LibbpfError('%s is not a per-CPU map' % self._name(), errno=_errno.EINVAL)
        raw = self.lookup(key)
        if raw is None:
            return None
        return self._split_percpu(raw)

    def _split_percpu(self, raw):
        size = self.info.value_size
        stride = (size + 7) // 8 * 8
        return [raw[i:i + size] for i in range(0, len(raw), stride)]

    def update(self, key, value, flags=BPF_ANY):
        kbuf = self._sized(key, self.key_size, 'key')
        vbuf = self._sized(value, self.value_size, 'value')
        _check_int(_call('bpf_map_update_elem', self.fd, kbuf, vbuf, flags),
                   'cannot update key %s in %s' % (bytes(key).hex(), self._name()))

    def delete(self, key):
        """Remove ``key``; False if it was not there (arrays cannot delete: EINVAL)."""
        kbuf = self._sized(key, self.key_size, 'key')
        ret = _call('bpf_map_delete_elem', self.fd, kbuf)
        if ret < 0:
            err = _int_errno(ret)
            if err == _errno.ENOENT:
                return False
            raise _fail('cannot delete key %s from %s' % (bytes(key).hex(), self._name()), err)
        return True

    def _next_key(self, key):
        kbuf = self._sized(key, self.key_size, 'key') if key is not None else None
        nbuf = ctypes.create_string_buffer(self.key_size)
        ret = _call('bpf_map_get_next_key', self.fd, kbuf, nbuf)
        if ret < 0:
            err = _int_errno(ret)
            if err == _errno.ENOENT:
                return None
            raise _fail('cannot iterate %s' % self._name(), err)
        return nbuf.raw

    def keys(self):
        """Every key, once. Safe while entries vanish: when the kernel loses its place (the current key
        was deleted) it starts over, and keys already seen are skipped."""
        seen = set()
        key = self._next_key(None)
        while key is not None:
            following = self._next_key(key)
            if key not in seen:
                seen.add(key)
                yield key
            key = following

    def items(self):
        """(key, value) pairs; entries deleted during the walk are left out."""
        for key in self.keys():
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def update_batch(self, keys, values, flags=BPF_ANY):
        """Write many entries in one syscall; one by one where the map type or libbpf cannot batch."""
        if len(keys) != len(values):
            raise LibbpfError('%s: %d keys but %d values' % (self._name(), len(keys), len(values)),
                              errno=_errno.EINVAL)
        if not keys:
            return
        start = 0
        try:
            func = _fn('bpf_map_update_batch')[1]
        except LibbpfError:
            func = None
        if func is not None:
            kbuf = ctypes.create_string_buffer(b''.join(self._exact(k, self.key_size, 'key') for k in keys))
            vbuf = ctypes.create_string_buffer(b''.join(self._exact(v, self.value_size, 'value') for v in values))
            count = ctypes.c_uint32(len(keys))
            opts = _BatchOpts(sz=ctypes.sizeof(_BatchOpts), elem_flags=flags)
            ret = func(self.fd, kbuf, vbuf, ctypes.byref(count), ctypes.byref(opts))
            if ret >= 0:
                return
            err = _int_errno(ret)
            if err not in (ENOTSUPP, _errno.EOPNOTSUPP):
                raise _fail('cannot update %d entries of %s (%d written)'
                            % (len(keys), self._name(), count.value), err)
            start = count.value
        for key, value in zip(keys[start:], values[start:]):
            self.update(key, value, flags)

    def lookup_batch(self, chunk=4096):
        """(key, value) pairs read with BPF_MAP_LOOKUP_BATCH, ``chunk`` entries per syscall: much faster
        than ``items()`` on big arrays. Falls back to ``items()`` where the map type cannot batch."""
        ksize, vsize = self.key_size, self.value_size
        token_in, token_out = None, ctypes.create_string_buffer(max(ksize, 8))
        while True:
            keys = ctypes.create_string_buffer(ksize * chunk)
            values = ctypes.create_string_buffer(vsize * chunk)
            count = ctypes.c_uint32(chunk)
            opts = _BatchOpts(sz=ctypes.sizeof(_BatchOpts))
            ret = _call('bpf_map_lookup_batch', self.fd, token_in, token_out, keys, values,
                        ctypes.byref(count), ctypes.byref(opts))
            err = _int_errno(ret) if ret < 0 else 0
            if err in (ENOTSUPP, _errno.EOPNOTSUPP) and token_in is None:
                yield from self.items()
                return
            if err == _errno.ENOSPC and count.value == 0:
                chunk *= 2      # a hash bucket holds more entries than fit: retry with more room
                continue
            if err not in (0, _errno.ENOENT):
                raise _fail('cannot read %s' % self._name(), err)
            for i in range(count.value):
                yield keys.raw[i * ksize:(i + 1) * ksize], values.raw[i * vsize:(i + 1) * vsize]
            if err == _errno.ENOENT:
                return
            token_in = ctypes.create_string_buffer(token_out.raw, len(token_out))


# ---------------------------------------------------------------------------------------------------
# objects

class BpfObject:
    """A BPF ELF object opened (and then loaded) by libbpf. Closing it closes every fd it holds; pins
    stay. Use it as a context manager."""

    def __init__(self, ptr, path):
        self._ptr = ptr
        self.path = path
        self._programs = collections.OrderedDict(
            (_call('bpf_program__name', prog).decode(), prog) for prog in self._walk('program'))
        self._maps = collections.OrderedDict(
            (_call('bpf_map__name', bmap).decode(), bmap) for bmap in self._walk('map'))

    @classmethod
    def open(cls, path, pin_root=None):
        """Open (parse) the object. Maps declared with ``LIBBPF_PIN_BY_NAME`` will be pinned at, or reused
        from, ``pin_root/<map name>`` when loaded. Without ``pin_root`` nothing is pinned: libbpf would
        otherwise pin them straight under /sys/fs/bpf, shared by every object with the same map names."""
        opts = _ObjectOpenOpts(sz=ctypes.sizeof(_ObjectOpenOpts))
        if pin_root is not None:
            opts.pin_root_path = os.fsencode(pin_root)
        _log_begin()
        ptr = _check_ptr(_call('bpf_object__open_file', os.fsencode(path), ctypes.byref(opts)),
                         'cannot open BPF object %s' % path)
        try:
            obj = cls(ptr, path)
            if pin_root is None:
                for name in obj.map_names():
                    obj.set_map_pin_path(name, None)
        except BaseException:
            _call('bpf_object__close', ptr)
            raise
        return obj

    def _walk(self, kind):
        """Programs or maps in object order, through the 1.x iterator or its 0.x predecessor."""
        which, step = _fn('bpf_object__next_%s' % kind, 'bpf_%s__next' % kind)
        item = None
        while True:
            item = step(self._ptr, item) if which.startswith('bpf_object__') else step(item, self._ptr)
            if not item:
                return
            yield item

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._ptr is not None:
            _call('bpf_object__close', self._ptr)
            self._ptr = None

    def _object(self):
        if self._ptr is None:
            raise LibbpfError('BPF object %s is closed' % self.path, errno=_errno.EBADF)
        return self._ptr

    def program_names(self):
        return list(self._programs)

    def map_names(self):
        return list(self._maps)

    @staticmethod
    def is_internal(map_name):
        """True for maps libbpf makes from global data ('.rodata', '.bss', '<obj>.data'...). Their names
        contain a dot, which a map declared in C never can."""
        return '.' in map_name

    def _program(self, name):
        self._object()
        try:
            return self._programs[name]
        except KeyError:
            raise LibbpfError('no program %r in %s (it has: %s)'
                              % (name, self.path, ', '.join(self._programs) or 'none'), errno=_errno.ENOENT)

    def _map(self, name):
        self._object()
        try:
            return self._maps[name]
        except KeyError:
            raise LibbpfError('no map %r in %s (it has: %s)'
                              % (name, self.path, ', '.join(self._maps) or 'none'), errno=_errno.ENOENT)

    def set_map_pin_path(self, map_name, path):
        """Before load: reuse a compatible map pinned at ``path``, or pin the new one there (None: do not
        pin). An incompatible pinned map makes the load fail."""
        _check_int(_call('bpf_map__set_pin_path', self._map(map_name), os.fsencode(path) if path else None),
                   'cannot set pin path of map %s in %s to %s' % (map_name, self.path, path))

    def load(self):
        """Create the maps and load the programs into the kernel. A verifier rejection raises
        LibbpfError carrying the end of the verifier log."""
        obj = self._object()
        for name, prog in self._programs.items():
            # Before libbpf 0.6, SEC("tc") was not a known section; we only ever attach to TC hooks.
            if _call('bpf_program__get_type', prog) == BPF_PROG_TYPE_UNSPEC:
                _check_int(_call('bpf_program__set_type', prog, BPF_PROG_TYPE_SCHED_CLS),
                           'cannot make program %s of %s a TC program' % (name, self.path))
        _log_begin()
        _check_int(_call('bpf_object__load', obj), 'cannot load %s' % self.path, with_log=True)

    def program_fd(self, name):
        """The loaded program's fd (owned by this object)."""
        fd = _call('bpf_program__fd', self._program(name))
        if fd < 0:
            raise LibbpfError('program %s of %s is not loaded' % (name, self.path), errno=_errno.EBADF)
        return fd

    def map_fd(self, name):
        """The map's fd once loaded (owned by this object)."""
        fd = _call('bpf_map__fd', self._map(name))
        if fd < 0:
            raise LibbpfError('map %s of %s is not created yet (load first)' % (name, self.path),
                              errno=_errno.EBADF)
        return fd

    def map(self, name):
        """The loaded map as a ``Map`` borrowing this object's fd (valid until the object is closed)."""
        return Map.from_fd(self.map_fd(name))

    def pin_program(self, name, path):
        """Pin the loaded program at ``path``. Fails with EEXIST when something is pinned there (pin at a
        temporary name and ``os.replace()`` it over the old pin instead: bpffs renames atomically), and
        with EPERM for a name with a dot (bpffs reserves those)."""
        self.program_fd(name)   # an unloaded program gets our message, not libbpf's
        _log_begin()
        _check_int(_call('bpf_program__pin', self._program(name), os.fsencode(path)),
                   'cannot pin program %s of %s at %s' % (name, self.path, path), with_log=True)

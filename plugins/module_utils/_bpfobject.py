# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""BPF ELF objects opened and loaded by libbpf: programs, maps, pins (through ``_libbpf``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ctypes
import errno as _errno
import os

from ansible_collections.ebpf.tc.plugins.module_utils import _bpfmap, _libbpf
from ansible_collections.ebpf.tc.plugins.module_utils._errors import LibbpfError


class _ObjectOpenOpts(ctypes.Structure):
    # pin_root_path sits at offset 24 in 0.5 (after two bools) and in 1.x (one bool, then padding).
    _fields_ = [
        ('sz', ctypes.c_size_t),
        ('object_name', ctypes.c_char_p),
        ('relaxed_maps', ctypes.c_bool),
        ('pin_root_path', ctypes.c_char_p),
    ]


class BpfObject:
    """A BPF ELF object opened (and then loaded) by libbpf. Closing it closes every fd it holds; pins
    stay. Use it as a context manager."""

    def __init__(self, ptr, path):
        self._ptr = ptr
        self.path = path
        self._programs = collections.OrderedDict(
            (_libbpf.call('bpf_program__name', prog).decode(), prog) for prog in self._walk('program'))
        self._maps = collections.OrderedDict(
            (_libbpf.call('bpf_map__name', bmap).decode(), bmap) for bmap in self._walk('map'))

    @classmethod
    def open(cls, path, pin_root=None):
        """Open (parse) the object. Maps declared with ``LIBBPF_PIN_BY_NAME`` will be pinned at, or reused
        from, ``pin_root/<map name>`` when loaded. Without ``pin_root`` nothing is pinned: libbpf would
        otherwise pin them straight under /sys/fs/bpf, shared by every object with the same map names."""
        opts = _ObjectOpenOpts(sz=ctypes.sizeof(_ObjectOpenOpts))
        if pin_root is not None:
            opts.pin_root_path = os.fsencode(pin_root)
        _libbpf.log_begin()
        ptr = _libbpf.check_ptr(_libbpf.call('bpf_object__open_file', os.fsencode(path), ctypes.byref(opts)),
                                'cannot open BPF object %s' % path)
        try:
            obj = cls(ptr, path)
            if pin_root is None:
                for name in obj.map_names():
                    obj.set_map_pin_path(name, None)
        except BaseException:
            _libbpf.call('bpf_object__close', ptr)
            raise
        return obj

    def _walk(self, kind):
        """Programs or maps in object order, through the 1.x iterator or its 0.x predecessor."""
        which, step = _libbpf.function('bpf_object__next_%s' % kind, 'bpf_%s__next' % kind)
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
            _libbpf.call('bpf_object__close', self._ptr)
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
        _libbpf.check_int(_libbpf.call('bpf_map__set_pin_path', self._map(map_name), os.fsencode(path) if path else None),
                          'cannot set pin path of map %s in %s to %s' % (map_name, self.path, path))

    def reuse_map(self, map_name, fd):
        """Before load: use the existing map `fd` (libbpf dups it) instead of creating the object's map."""
        _libbpf.check_int(_libbpf.call('bpf_map__reuse_fd', self._map(map_name), fd),
                          'cannot reuse map fd %d as %s of %s' % (fd, map_name, self.path))

    def load(self):
        """Create the maps and load the programs into the kernel. A verifier rejection raises
        LibbpfError carrying the end of the verifier log."""
        obj = self._object()
        for name, prog in self._programs.items():
            # Before libbpf 0.6, SEC("tc") was not a known section; we only ever attach to TC hooks.
            if _libbpf.call('bpf_program__get_type', prog) == _libbpf.BPF_PROG_TYPE_UNSPEC:
                _libbpf.check_int(_libbpf.call('bpf_program__set_type', prog, _libbpf.BPF_PROG_TYPE_SCHED_CLS),
                                  'cannot make program %s of %s a TC program' % (name, self.path))
        _libbpf.log_begin()
        _libbpf.check_int(_libbpf.call('bpf_object__load', obj), 'cannot load %s' % self.path, with_log=True)

    def program_fd(self, name):
        """The loaded program's fd (owned by this object)."""
        fd = _libbpf.call('bpf_program__fd', self._program(name))
        if fd < 0:
            raise LibbpfError('program %s of %s is not loaded' % (name, self.path), errno=_errno.EBADF)
        return fd

    def map_fd(self, name):
        """The map's fd once loaded (owned by this object)."""
        fd = _libbpf.call('bpf_map__fd', self._map(name))
        if fd < 0:
            raise LibbpfError('map %s of %s is not created yet (load first)' % (name, self.path),
                              errno=_errno.EBADF)
        return fd

    def map(self, name):
        """The loaded map as a ``Map`` borrowing this object's fd (valid until the object is closed)."""
        return _bpfmap.Map.from_fd(self.map_fd(name))

    def pin_program(self, name, path):
        """Pin the loaded program at ``path``. Fails with EEXIST when something is pinned there (pin at a
        temporary name and ``os.replace()`` it over the old pin instead: bpffs renames atomically), and
        with EPERM for a name with a dot (bpffs reserves those)."""
        self.program_fd(name)   # an unloaded program gets our message, not libbpf's
        _libbpf.log_begin()
        _libbpf.check_int(_libbpf.call('bpf_program__pin', self._program(name), os.fsencode(path)),
                          'cannot pin program %s of %s at %s' % (name, self.path, path), with_log=True)

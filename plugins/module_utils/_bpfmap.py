# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""BPF maps by fd: look up, update, delete, iterate, batch-read and mmap (through ``_libbpf``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno as _errno
import mmap
import os

from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf
from ansible_collections.ebpf.tc.plugins.module_utils._errors import LibbpfError


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


def create_map(map_type, key_size, value_size, max_entries, name=None, flags=0):
    """A new map not tied to any object (for example an inner map of a map-in-map)."""
    cname = name.encode() if name else None
    what = 'cannot create map %s (type %d, key %d, value %d, %d entries)' % (
        name or '(unnamed)', map_type, key_size, value_size, max_entries)
    which, func = _libbpf.function('bpf_map_create', 'bpf_create_map_name')
    if which == 'bpf_map_create':
        opts = _MapCreateOpts(sz=ctypes.sizeof(_MapCreateOpts), map_flags=flags)
        ret = func(map_type, cname, key_size, value_size, max_entries, ctypes.byref(opts))
    else:
        ret = func(map_type, cname, key_size, value_size, max_entries, flags)
    return Map(_libbpf.check_int(ret, what), owned=True)


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
        bpf_map = cls(_libbpf.obj_get(path), owned=True)
        try:
            bpf_map._info = _libbpf.map_info(bpf_map.fd)
        except BaseException:
            bpf_map.close()
            raise
        return bpf_map

    @classmethod
    def from_fd(cls, fd, owned=False):
        return cls(fd, owned=owned)

    @classmethod
    def from_id(cls, map_id):
        return cls(_libbpf.map_fd_by_id(map_id), owned=True)

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
            self._info = _libbpf.map_info(self.fd)
        return self._info

    @property
    def stride(self):
        """Bytes between two values of an mmapped array: the value size rounded up to 8."""
        return (self.info.value_size + 7) // 8 * 8

    def values_mmap(self):
        """The values of an array map created with _libbpf.BPF_F_MMAPABLE, mapped shared and writable (value i at
        ``i * stride``): reads and writes of whole tables become memory copies instead of a syscall (and a
        Python object) per entry. The kernel's program sees writes at once. Unmapped on close()."""
        if self._mmap is None:
            info = self.info
            if info.type != _libbpf.BPF_MAP_TYPE_ARRAY or not info.flags & _libbpf.BPF_F_MMAPABLE:
                raise LibbpfError('map %s is not an mmapable array (_libbpf.BPF_F_MMAPABLE)' % info.name,
                                  errno=_errno.EINVAL)
            self._mmap = mmap.mmap(self.fd, self.stride * info.max_entries, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE)
        return self._mmap

    @property
    def is_percpu(self):
        return self.info.type in _libbpf.PERCPU_MAP_TYPES

    @property
    def key_size(self):
        return self.info.key_size

    @property
    def value_size(self):
        """Bytes of one value as user space sees it (all CPUs for a per-CPU map)."""
        if self.is_percpu:
            return (self.info.value_size + 7) // 8 * 8 * _libbpf.num_possible_cpus()
        return self.info.value_size

    def _name(self):
        return 'map %s (id %d)' % (self.info.name or '(unnamed)', self.info.id)

    def _exact(self, data, size, what):
        data = _libbpf.as_bytes(data, what)
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
            ret = _libbpf.call('bpf_map_lookup_elem_flags', self.fd, kbuf, vbuf, flags)
        else:
            ret = _libbpf.call('bpf_map_lookup_elem', self.fd, kbuf, vbuf)
        if ret < 0:
            err = _libbpf.int_errno(ret)
            if err == _errno.ENOENT:
                return None
            raise _libbpf.failure('cannot look up key %s in %s' % (bytes(key).hex(), self._name()), err)
        return vbuf.raw

    def lookup_percpu(self, key):
        """Per-CPU values at ``key`` as a list (one ``info.value_size`` bytes per possible CPU), or None."""
        if not self.is_percpu:
            raise LibbpfError('%s is not a per-CPU map' % self._name(), errno=_errno.EINVAL)
        raw = self.lookup(key)
        if raw is None:
            return None
        return self.split_percpu(raw)

    def split_percpu(self, raw):
        """A per-CPU value as read (``value_size`` bytes) split into one value per possible CPU."""
        size = self.info.value_size
        stride = (size + 7) // 8 * 8
        return [raw[i:i + size] for i in range(0, len(raw), stride)]

    def update(self, key, value, flags=_libbpf.BPF_ANY):
        kbuf = self._sized(key, self.key_size, 'key')
        vbuf = self._sized(value, self.value_size, 'value')
        _libbpf.check_int(_libbpf.call('bpf_map_update_elem', self.fd, kbuf, vbuf, flags),
                          'cannot update key %s in %s' % (bytes(key).hex(), self._name()))

    def delete(self, key):
        """Remove ``key``; False if it was not there (arrays cannot delete: EINVAL)."""
        kbuf = self._sized(key, self.key_size, 'key')
        ret = _libbpf.call('bpf_map_delete_elem', self.fd, kbuf)
        if ret < 0:
            err = _libbpf.int_errno(ret)
            if err == _errno.ENOENT:
                return False
            raise _libbpf.failure('cannot delete key %s from %s' % (bytes(key).hex(), self._name()), err)
        return True

    def _next_key(self, key):
        kbuf = self._sized(key, self.key_size, 'key') if key is not None else None
        nbuf = ctypes.create_string_buffer(self.key_size)
        ret = _libbpf.call('bpf_map_get_next_key', self.fd, kbuf, nbuf)
        if ret < 0:
            err = _libbpf.int_errno(ret)
            if err == _errno.ENOENT:
                return None
            raise _libbpf.failure('cannot iterate %s' % self._name(), err)
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
            ret = _libbpf.call('bpf_map_lookup_batch', self.fd, token_in, token_out, keys, values,
                               ctypes.byref(count), ctypes.byref(opts))
            err = _libbpf.int_errno(ret) if ret < 0 else 0
            if err in (_libbpf.ENOTSUPP, _errno.EOPNOTSUPP) and token_in is None:
                yield from self.items()
                return
            if err == _errno.ENOSPC and count.value == 0:
                chunk *= 2      # a hash bucket holds more entries than fit: retry with more room
                continue
            if err not in (0, _errno.ENOENT):
                raise _libbpf.failure('cannot read %s' % self._name(), err)
            for i in range(count.value):
                yield keys.raw[i * ksize:(i + 1) * ksize], values.raw[i * vsize:(i + 1) * vsize]
            if err == _errno.ENOENT:
                return
            token_in = ctypes.create_string_buffer(token_out.raw, len(token_out))

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Any pinned map read back as facts (ebpf.tc.bpf_map_info): what the kernel says of it, and its entries,
decoded by the map's own BTF when it has some (``_btf``), else in the forms ebpf.tc.bpf_map accepts
(``_mapcodec``): an LPM key of an IPv4 or IPv6 address as its CIDR, up to 8 bytes as an integer, else hex.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf, _mapcodec
from ansible_collections.ebpf.tc.plugins.module_utils._btf import Btf, BtfError, combine
from ansible_collections.ebpf.tc.plugins.module_utils._errors import LibbpfError

# Maps whose values are ids of kernel objects: the kernel answers a lookup with the inner map's or the
# program's id.
ID_VALUED_TYPES = frozenset(('array_of_maps', 'hash_of_maps', 'prog_array'))
READABLE_TYPES = _mapcodec.SUPPORTED_TYPES | ID_VALUED_TYPES


class MapReader:
    """Entries of one open map (a _bpfmap.Map) as returned facts."""

    def __init__(self, bpf_map):
        self.map = bpf_map
        self.info = bpf_map.info
        self.kind = _mapcodec.type_name(self.info.type)
        self.btf, self.btf_error = None, None
        if self.info.btf_id:
            try:
                self.btf = Btf.from_id(self.info.btf_id)
            except (BtfError, LibbpfError) as err:
                self.btf_error = 'BTF id %d not decoded (entries shown as bytes): %s' % (self.info.btf_id, err)

    def _type_name(self, type_id):
        return self.btf.type_name(type_id) if self.btf is not None and type_id else None

    def facts(self):
        info = self.info
        return {'id': info.id, 'name': info.name, 'type': self.kind, 'key_size': info.key_size,
                'value_size': info.value_size, 'max_entries': info.max_entries, 'flags': info.flags,
                'btf_id': info.btf_id, 'key_type': self._type_name(info.btf_key_type_id),
                'value_type': self._type_name(info.btf_value_type_id), 'percpu': self.map.is_percpu,
                'readable': self.kind in READABLE_TYPES}

    def key(self, data):
        if self.kind == 'lpm_trie':
            cidr = _mapcodec.lpm_cidr(data)
            if cidr is not None:
                return cidr
        return self._decoded(self.info.btf_key_type_id, data)

    def _decoded(self, type_id, data):
        if self.btf is not None and type_id:
            return self.btf.decode(type_id, data)
        number = _mapcodec.to_int(data)
        return number if number is not None else _mapcodec.to_hex(data)

    def entry(self, key, raw):
        """The entry of ``key`` whose value, as read, is ``raw`` (None: absent)."""
        out = {'key': self.key(key), 'key_hex': _mapcodec.to_hex(key), 'value': None, 'value_hex': None}
        if raw is None:
            return out
        value_type = self.info.btf_value_type_id if self.kind not in ID_VALUED_TYPES else 0
        if self.map.is_percpu:
            per_cpu = self.map.split_percpu(raw)
            out['values'] = [self._decoded(value_type, v) for v in per_cpu]
            out['value'] = combine(out['values'])
            out['value_hex'] = [_mapcodec.to_hex(v) for v in per_cpu]
        else:
            out['value'] = self._decoded(value_type, raw)
            out['value_hex'] = _mapcodec.to_hex(raw)
        if self.kind in ('array_of_maps', 'hash_of_maps'):
            out['inner_map'] = _inner_map(out['value'])
        return out

    def read(self, keys=None, max_entries=None, skip_zero=False):
        """(entries, truncated): the entries of ``keys`` (encoded, absent ones with value None), else of
        the whole map, at most ``max_entries`` of them, those whose value is all zeros left out with
        ``skip_zero``."""
        if self.kind not in READABLE_TYPES:
            return [], False
        if keys is not None:
            # an LPM trie's lookup is a longest-prefix match: there only the keys it holds are looked up
            present = set(self.map.keys()) if self.kind == 'lpm_trie' else None
            entries = [self.entry(key, self.map.lookup(key) if present is None or key in present else None)
                       for key in keys[:max_entries]]
            return entries, max_entries is not None and len(keys) > max_entries
        pairs = self.map.lookup_batch() if self.kind in _mapcodec.SUPPORTED_TYPES else self.map.items()
        entries = []
        for key, raw in pairs:
            if skip_zero and not any(raw):
                continue
            if max_entries is not None and len(entries) >= max_entries:
                return entries, True
            entries.append(self.entry(key, raw))
        return entries, False


def _inner_map(map_id):
    """Name and type of the inner map with ``map_id``, None when it is gone."""
    try:
        fd = _libbpf.map_fd_by_id(map_id)
    except LibbpfError:
        return None
    try:
        info = _libbpf.map_info(fd)
    finally:
        os.close(fd)
    return {'id': info.id, 'name': info.name, 'type': _mapcodec.type_name(info.type)}


def read_pinned(path, keys=None, max_entries=None, skip_zero=False):
    """(facts of the map pinned at ``path`` with its entries, warnings). ``keys`` are specs in bpf_map's
    encodings."""
    bpf_map = _mapcodec.open_pinned_map(path)
    try:
        reader = MapReader(bpf_map)
        encoded = None
        if keys is not None:
            encoded = [_mapcodec.encode(spec, reader.info.key_size, 'keys[%d]' % i) for i, spec in enumerate(keys)]
        entries, truncated = reader.read(encoded, max_entries, skip_zero)
        facts = reader.facts()
        facts.update(path=path, entries=entries, truncated=truncated)
        return facts, [reader.btf_error] if reader.btf_error else []
    finally:
        bpf_map.close()


def read_pin_dir(pin_dir, max_entries=None, skip_zero=False):
    """({pin name: facts} of every map pinned directly in ``pin_dir``, [other pin names], warnings)."""
    if not os.path.isdir(pin_dir):
        raise _mapcodec.CodecError('%s is not a directory%s' % (
            pin_dir, '' if os.path.lexists(pin_dir) else ' (it does not exist)'))
    if not _is_bpffs(pin_dir):
        raise _mapcodec.CodecError('%s is not on a BPF filesystem (bpffs), so nothing is pinned in it: give a '
                                   'directory under a bpffs mount such as /sys/fs/bpf' % pin_dir)
    maps, others, warnings = {}, [], []
    for name in sorted(os.listdir(pin_dir)):
        path = os.path.join(pin_dir, name)
        if os.path.isdir(path):
            continue
        try:
            facts, more = read_pinned(path, max_entries=max_entries, skip_zero=skip_zero)
        except _mapcodec.CodecError:
            others.append(name)     # a pinned program or link
            continue
        maps[name] = facts
        warnings += more
    return maps, others, warnings


def _is_bpffs(path):
    from ansible_collections.ebpf.tc.plugins.module_utils._program import BPF_FS_MAGIC, fs_magic
    return fs_magic(path) == BPF_FS_MAGIC

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Keys and values of any pinned map, as operators write them, and the plan that makes a map match.

Encoding (``encode``), sized by the map's own key or value size:

- an integer (or a string of decimal digits: Ansible turns every dict key into a string): unsigned,
  little-endian (host order on the architectures we ship for), zero-padded to the size;
- an IP address: its bytes in network order (4 or 16), zero-padded at the end to the size;
- a CIDR ``10.0.0.0/8``: the kernel's LPM trie key, a u32 prefix length (host order) then the address;
- hex bytes ``0x0a000001`` or ``0a:00:00:01``: the bytes in the order written, zero-padded at the end.
  Colon-separated groups of exactly two hex digits are always bytes, never an IPv6 address.

Nothing is truncated: a key or value that does not fit is an error naming it.

``plan`` compares encoded bytes only, so "changed" means "some byte in the map changes". Arrays cannot
delete: there an absent key is an all-zero value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import struct
from collections import namedtuple

from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError

MAP_TYPE_NAMES = {
    1: 'hash', 2: 'array', 3: 'prog_array', 4: 'perf_event_array', 5: 'percpu_hash', 6: 'percpu_array',
    7: 'stack_trace', 8: 'cgroup_array', 9: 'lru_hash', 10: 'lru_percpu_hash', 11: 'lpm_trie',
    12: 'array_of_maps', 13: 'hash_of_maps', 14: 'devmap', 15: 'sockmap', 16: 'cpumap', 17: 'xskmap',
    18: 'sockhash', 19: 'cgroup_storage', 20: 'reuseport_sockarray', 21: 'percpu_cgroup_storage',
    22: 'queue', 23: 'stack', 24: 'sk_storage', 25: 'devmap_hash', 26: 'struct_ops', 27: 'ringbuf',
    28: 'inode_storage', 29: 'task_storage', 30: 'bloom_filter', 31: 'user_ringbuf', 32: 'cgrp_storage',
    33: 'arena',
}

# Map types whose entries are plain bytes that user space may read and write.
ARRAY_TYPES = frozenset(('array', 'percpu_array'))
SUPPORTED_TYPES = frozenset(('hash', 'array', 'percpu_hash', 'percpu_array', 'lru_hash', 'lru_percpu_hash',
                             'lpm_trie'))

_HEX_PREFIXED = re.compile(r'^0[xX]([0-9a-fA-F]*)$')
_HEX_COLONS = re.compile(r'^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$')
_DECIMAL = re.compile(r'^[0-9]+$')


class CodecError(EbpfTcError):
    """A key or value cannot be encoded for this map."""


def type_name(map_type):
    return MAP_TYPE_NAMES.get(map_type, 'type %d' % map_type)


def _pad(data, size, what, spec):
    if len(data) > size:
        raise CodecError('%s %s is %d bytes, the map holds %d' % (what, _show(spec), len(data), size))
    return data + b'\0' * (size - len(data))


def _show(spec):
    return repr(spec) if isinstance(spec, str) else str(spec)


def encode_int(value, size, what='key'):
    if value < 0:
        raise CodecError('%s %d is negative: integers are unsigned (give hex bytes for other encodings)'
                         % (what, value))
    if value >> (8 * size):
        raise CodecError('%s %d does not fit in %d bytes (largest: %d)' % (what, value, size, (1 << 8 * size) - 1))
    return value.to_bytes(size, 'little')


def encode(spec, size, what='key'):
    """Bytes of `spec` (see the module docstring) exactly `size` bytes long. `what` names it in errors."""
    if isinstance(spec, bool) or spec is None:
        raise CodecError('%s %r is neither an integer, an IP address nor hex bytes' % (what, spec))
    if isinstance(spec, int):
        return encode_int(spec, size, what)
    if isinstance(spec, bytes):
        return _pad(spec, size, what, spec.hex())
    if not isinstance(spec, str):
        raise CodecError('%s %r is neither an integer, an IP address nor hex bytes' % (what, spec))
    text = spec.strip()
    if _DECIMAL.match(text):
        return encode_int(int(text), size, '%s' % what)
    match = _HEX_PREFIXED.match(text)
    if match:
        digits = match.group(1)
        if not digits or len(digits) % 2:
            raise CodecError('%s %r: hex bytes need an even, non-zero number of digits' % (what, spec))
        return _pad(bytes.fromhex(digits), size, what, spec)
    if _HEX_COLONS.match(text):
        return _pad(bytes.fromhex(text.replace(':', '')), size, what, spec)
    if '/' in text:
        try:
            net = ipaddress.ip_network(text, strict=True)
        except ValueError as err:
            raise CodecError('%s %r is not a valid CIDR prefix: %s' % (what, spec, err))
        return _pad(struct.pack('<I', net.prefixlen) + net.network_address.packed, size, what, spec)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise CodecError('%s %r is neither an integer, an IP address, a CIDR prefix nor hex bytes '
                         '(0x0a000001 or 0a:00:00:01)' % (what, spec))
    return _pad(addr.packed, size, what, spec)


# -- decoding (readable forms) -------------------------------------------------------------------

def to_hex(data):
    return '0x' + bytes(data).hex()


def to_int(data):
    """The little-endian unsigned integer of data of at most 8 bytes, else None."""
    return int.from_bytes(bytes(data), 'little') if 0 < len(data) <= 8 else None


def lpm_cidr(data):
    """'10.0.0.0/8' for an LPM trie key of an IPv4 or IPv6 address, else None."""
    data = bytes(data)
    if len(data) not in (8, 20):
        return None
    prefixlen = struct.unpack('<I', data[:4])[0]
    address = ipaddress.ip_address(data[4:])
    try:
        net = ipaddress.ip_network((address, prefixlen), strict=True)
    except ValueError:  # host bits set or prefix too long: show the bytes, so no two keys look alike
        return None
    return str(net)


def readable_key(data, kind):
    """The form a key is shown in (diff, removed keys): CIDR for LPM keys, integer up to 8 bytes, else hex."""
    if kind == 'lpm_trie':
        cidr = lpm_cidr(data)
        if cidr is not None:
            return cidr
    value = to_int(data)
    return str(value) if value is not None else to_hex(data)


def readable_value(data):
    """Integer for values up to 8 bytes, hex otherwise, None for absent; a list per CPU when they differ."""
    if data is None:
        return None
    if isinstance(data, list):
        if all(v == data[0] for v in data):
            return readable_value(data[0])
        return [readable_value(v) for v in data]
    value = to_int(data)
    return value if value is not None else to_hex(data)


def describe_entry(key, value, kind):
    """A returned entry: key and value as hex (value None when absent), plus integer and CIDR forms."""
    out = {'key': to_hex(key), 'value': None}
    if to_int(key) is not None:
        out['key_int'] = to_int(key)
    if kind == 'lpm_trie' and lpm_cidr(key) is not None:
        out['key_cidr'] = lpm_cidr(key)
    if isinstance(value, list):
        if all(v == value[0] for v in value):
            value = value[0]
        else:
            out['value'] = [to_hex(v) for v in value]
            return out
    if value is not None:
        out['value'] = to_hex(value)
        if to_int(value) is not None:
            out['value_int'] = to_int(value)
    return out


# -- parsing the module's entries parameter ------------------------------------------------------

def parse_entries(entries, state):
    """[(key spec, value spec or None)] from a dict, a list of {key, value}, or (absent) a list of keys."""
    if entries is None:
        return []
    if isinstance(entries, dict):
        return [(k, None if state == 'absent' else v) for k, v in entries.items()]
    if not isinstance(entries, list):
        raise CodecError('entries must be a dict of key: value or a list of {key, value}, not %s'
                         % type(entries).__name__)
    out = []
    for index, item in enumerate(entries):
        if isinstance(item, dict):
            unknown = set(item) - set(('key', 'value'))
            if 'key' not in item or unknown:
                raise CodecError('entries[%d] must have a key (and a value), not %s'
                                 % (index, ', '.join(sorted(map(str, item))) or 'nothing'))
            if state == 'present' and 'value' not in item:
                raise CodecError('entries[%d] (key %s) has no value' % (index, _show(item['key'])))
            out.append((item['key'], item.get('value') if state == 'present' else None))
        elif state == 'absent':
            out.append((item, None))
        else:
            raise CodecError('entries[%d] (%s) has no value: with state=present give key: value, or '
                             '{key: ..., value: ...}' % (index, _show(item)))
    return out


MapShape = namedtuple('MapShape', 'kind key_size value_size max_entries')
Desired = namedtuple('Desired', 'key value spec')   # value None: absent


def encode_entries(pairs, shape):
    """[Desired] in the order given; a key given twice (in any spelling) is an error."""
    out, seen = [], {}
    for key_spec, value_spec in pairs:
        key = encode(key_spec, shape.key_size, 'key')
        if key in seen:
            raise CodecError('key %s is given twice (also as %s)' % (_show(key_spec), _show(seen[key])))
        seen[key] = key_spec
        if shape.kind in ARRAY_TYPES:
            index = to_int(key)
            if index is None or index >= shape.max_entries:
                raise CodecError('key %s is out of range: the array has indexes 0-%d'
                                 % (_show(key_spec), shape.max_entries - 1))
        value = None
        if value_spec is not None:
            value = encode(value_spec, shape.value_size, 'value of key %s' % _show(key_spec))
            if shape.kind in ARRAY_TYPES and not any(value):
                value = None    # an array entry of zeros is the same as an absent one
        out.append(Desired(key, value, key_spec))
    return out


Plan = namedtuple('Plan', 'writes deletes before after')
# writes: [(key, value)], deletes: [key] (arrays: written as zeros instead), before/after: {key: value}
# of the touched keys only (value None = absent; per-CPU values as a list per CPU).


def _same(current, wanted):
    """Does the current value (bytes, per-CPU list or None) equal the wanted one (bytes or None)?"""
    if isinstance(current, list):
        if wanted is None:
            return all(not any(v) for v in current)
        return all(v == wanted for v in current)
    return current == wanted


def normalize(value, kind):
    """An array entry that is all zeros counts as absent."""
    if kind not in ARRAY_TYPES or value is None:
        return value
    if isinstance(value, list):
        return None if all(not any(v) for v in value) else value
    return None if not any(value) else value


def plan(desired, current, exclusive, kind):
    """What to write and delete so that the keys of `desired` hold their values (or are absent) and, when
    `exclusive`, no other key is present. `current`: {key: value} of the keys that matter (every present
    key when exclusive), values as read (bytes, or a per-CPU list)."""
    writes, deletes, before, after = [], [], {}, {}
    named = set()
    for entry in desired:
        named.add(entry.key)
        cur = normalize(current.get(entry.key), kind)
        if _same(cur, entry.value):
            continue
        before[entry.key] = cur
        after[entry.key] = entry.value
        if entry.value is None:
            deletes.append(entry.key)
        else:
            writes.append((entry.key, entry.value))
    if exclusive:
        for key in sorted(current):
            cur = normalize(current[key], kind)
            if key in named or cur is None:
                continue
            before[key] = cur
            after[key] = None
            deletes.append(key)
    return Plan(writes, deletes, before, after)


def diff_of(plan_, kind):
    """Ansible's diff: before/after of the touched keys, readable."""
    def side(values):
        return dict((readable_key(k, kind), readable_value(v)) for k, v in sorted(values.items()))
    return {'before': side(plan_.before), 'after': side(plan_.after)}


# -- against a pinned map ------------------------------------------------------------------------

def open_pinned_map(path):
    """The map pinned at `path` (a _bpfmap.Map), with clear errors for a missing pin or a program."""
    import errno
    import os

    from ansible_collections.ebpf.tc.plugins.module_utils import _bpfmap, _libbpf
    from ansible_collections.ebpf.tc.plugins.module_utils._errors import LibbpfError

    if not os.path.lexists(path):
        raise CodecError('no BPF map is pinned at %s (the path does not exist)' % path)
    if os.path.isdir(path):
        raise CodecError('%s is a directory, not a pinned BPF map' % path)
    from ansible_collections.ebpf.tc.plugins.module_utils._program import BPF_FS_MAGIC, fs_magic

    try:
        on_bpffs = fs_magic(path) == BPF_FS_MAGIC
    except OSError:
        on_bpffs = True     # cannot tell: let the kernel's answer below speak
    if not on_bpffs:
        raise CodecError('%s is not on a BPF filesystem (bpffs), so it is not a pinned BPF map: give the path '
                         'of a map pinned under a bpffs mount such as /sys/fs/bpf' % path)
    try:
        fd = _libbpf.obj_get(path)
    except LibbpfError as err:
        raise CodecError('%s is not a pinned BPF object: %s' % (path, err))
    try:
        info = _libbpf.map_info(fd)
    except LibbpfError as err:
        os.close(fd)
        if err.errno == errno.EINVAL and 'BPF prog' in str(err):
            raise CodecError('%s is a pinned BPF program, not a map' % path)
        raise CodecError('%s is not a BPF map: %s' % (path, err))
    bpf_map = _bpfmap.Map(fd, owned=True)
    bpf_map._info = info
    return bpf_map


def article(word):
    """'an' before a vowel sound ('an array map', 'an lpm_trie map'), else 'a'."""
    return 'an' if word[:1].lower() in 'aeio' or word.lower().startswith(('lpm', 'lru')) else 'a'


def shape_of(bpf_map):
    """The MapShape of a _bpfmap.Map; refuses map types whose values are not plain bytes."""
    info = bpf_map.info
    kind = type_name(info.type)
    if kind not in SUPPORTED_TYPES:
        raise CodecError('map %s is %s %s map: bpf_map manages only %s maps'
                         % (info.name or info.id, article(kind), kind, ', '.join(sorted(SUPPORTED_TYPES))))
    return MapShape(kind, info.key_size, info.value_size, info.max_entries)


def read_current(bpf_map, shape, desired, exclusive):
    """{key: value} of the named keys that are present, plus every present key when `exclusive`.

    LPM tries are read by walking their keys: a lookup there is a longest-prefix match, not an exact one.
    """
    current = {}
    if exclusive:
        for key, value in bpf_map.lookup_batch():
            current[key] = _split(bpf_map, value)
        if shape.kind in ARRAY_TYPES:
            current = dict((k, v) for k, v in current.items() if normalize(v, shape.kind) is not None)
        return current
    if shape.kind == 'lpm_trie':
        present = set(bpf_map.keys())
        for entry in desired:
            if entry.key in present:
                value = bpf_map.lookup(entry.key)
                if value is not None:
                    current[entry.key] = value
        return current
    for entry in desired:
        value = bpf_map.lookup(entry.key)
        if value is not None:
            current[entry.key] = _split(bpf_map, value)
    return current


def _split(bpf_map, raw):
    return bpf_map.split_percpu(raw) if bpf_map.is_percpu else raw


def _full_value(bpf_map, shape, value):
    """The buffer the kernel wants: per-CPU maps take one (8-byte aligned) copy per possible CPU."""
    if not bpf_map.is_percpu:
        return value
    stride = (shape.value_size + 7) // 8 * 8
    return value.ljust(stride, b'\0') * (bpf_map.value_size // stride)


def apply_plan(bpf_map, shape, plan_):
    """Write the plan's values, then delete (arrays: zero) the keys to remove."""
    for key, value in plan_.writes:
        bpf_map.update(key, _full_value(bpf_map, shape, value))
    zero = _full_value(bpf_map, shape, b'\0' * shape.value_size)
    for key in plan_.deletes:
        if shape.kind in ARRAY_TYPES:
            bpf_map.update(key, zero)
        else:
            bpf_map.delete(key)


def map_facts(bpf_map, shape):
    info = bpf_map.info
    return {'id': info.id, 'name': info.name, 'type': shape.kind, 'key_size': shape.key_size,
            'value_size': shape.value_size, 'max_entries': shape.max_entries, 'flags': info.flags}


def ensure(path, entries, state='present', exclusive=False, check_mode=False):
    """Make the map pinned at `path` hold `entries`. Returns a dict: changed, entries (the named keys as
    they are afterwards), removed (readable keys removed that were not named), diff, map."""
    if exclusive and state == 'absent':
        raise CodecError('exclusive applies to state=present (to empty a map: state=present, '
                         'exclusive=true, entries={})')
    pairs = parse_entries(entries, state)
    bpf_map = open_pinned_map(path)
    try:
        shape = shape_of(bpf_map)
        desired = encode_entries(pairs, shape)
        current = read_current(bpf_map, shape, desired, exclusive)
        plan_ = plan(desired, current, exclusive, shape.kind)
        changed = bool(plan_.writes or plan_.deletes)
        if changed and not check_mode:
            apply_plan(bpf_map, shape, plan_)
        named = set(d.key for d in desired)
        result_entries = []
        for entry in desired:
            value = entry.value if entry.key in plan_.after else normalize(current.get(entry.key), shape.kind)
            if value is None and shape.kind in ARRAY_TYPES:
                value = b'\0' * shape.value_size     # an array always holds every index
            result_entries.append(describe_entry(entry.key, value, shape.kind))
        removed = [readable_key(k, shape.kind) for k in plan_.deletes if k not in named]
        return {'changed': changed, 'entries': result_entries, 'removed': removed,
                'diff': diff_of(plan_, shape.kind), 'map': map_facts(bpf_map, shape)}
    finally:
        bpf_map.close()

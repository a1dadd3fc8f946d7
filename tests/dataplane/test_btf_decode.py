# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Map entries as ebpf.tc.bpf_map_info reads them (``_mapinfo``, ``_btf``) against ``bpftool map dump``'s,
on real maps in the running kernel (root, no network): the maps of tests/dataplane/bpf/btf_types.bpf.c, whose
types cover every BTF kind the decoder knows, a map without BTF, and the steering program's own maps after
traffic. The bytes must be bpftool's exactly; the decoded values bpftool's, but for the documented
differences (plugins/module_utils/_btf.py), which ``bpftool_view`` applies to bpftool's side.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import json
import os
import struct
import subprocess

import pytest

import packets as pk
import strategies
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfmap, _bpfobject, _libbpf, _mapcodec, _mapinfo
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (bpf(2))'),
]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_SH = os.path.join(ROOT, 'files', 'bpf', 'build.sh')
BTF_TYPES_SRC = os.path.join(ROOT, 'tests', 'dataplane', 'bpf', 'btf_types.bpf.c')


@pytest.fixture(scope='module')
def btf_types(tmp_path_factory):
    """btf_types.bpf.c built and loaded (maps created, nothing pinned or attached)."""
    out = str(tmp_path_factory.mktemp('bpf') / 'btf_types.bpf.o')
    subprocess.run([BUILD_SH, BTF_TYPES_SRC, out], check=True, timeout=60)
    with _bpfobject.BpfObject.open(out) as obj:
        obj.load()
        yield obj


def _hex_bytes(items):
    return bytes(int(x, 16) for x in items)


def _normalized(value):
    """bpftool's formatted value with _btf's documented differences applied: bitfields (hex strings) as
    integers, an anonymous member's members merged into the parent, a data section as one dict."""
    if isinstance(value, str) and value.startswith('0x'):
        return int(value, 16)
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)).startswith('.') and isinstance(next(iter(value.values())), list):
        merged = {}
        for variable in next(iter(value.values())):
            merged.update(variable)
        return _normalized(merged)
    out = {}
    for name, member in value.items():
        member = _normalized(member)
        if name == '' and isinstance(member, dict):
            out.update(member)
        else:
            out[name] = member
    return out


def bpftool_view(map_id, kind):
    """{key bytes: (formatted key or None, formatted value, [raw value per CPU] or raw value)} of
    ``bpftool -j map dump``, normalized."""
    dump = json.loads(subprocess.run(['bpftool', '-j', 'map', 'dump', 'id', str(map_id)], check=True,
                                     stdout=subprocess.PIPE, timeout=60).stdout)
    out = {}
    for entry in dump:
        key = _hex_bytes(entry['key'])
        formatted = entry.get('formatted', {})
        if 'values' in entry:
            raw = [_hex_bytes(v['value']) for v in entry['values']]
            decoded = [_normalized(v['value']) for v in formatted['values']] if formatted else None
        elif kind in _mapinfo.ID_VALUED_TYPES:     # the value is the inner map's (or program's) id
            raw = _hex_bytes(entry['value'])
            decoded = int.from_bytes(raw, 'little')
        else:
            raw = _hex_bytes(entry['value'])
            decoded = _normalized(formatted['value']) if formatted else None
        out[key] = (_normalized(formatted['key']) if 'key' in formatted else None, decoded, raw)
    return out


def assert_reads_like_bpftool(bpf_map):
    """Every entry of ``bpf_map`` as MapReader reads it equals bpftool's; returns the entries."""
    reader = _mapinfo.MapReader(bpf_map)
    assert reader.btf_error is None
    entries, truncated = reader.read()
    assert not truncated
    theirs = bpftool_view(bpf_map.info.id, reader.kind)
    assert sorted(_mapcodec.to_hex(k) for k in theirs) == sorted(e['key_hex'] for e in entries)
    for entry in entries:
        key, decoded, raw = theirs[bytes.fromhex(entry['key_hex'][2:])]
        where = '%s[%s]' % (bpf_map.info.name, entry['key_hex'])
        if reader.kind == 'lpm_trie' and isinstance(entry['key'], str):
            assert entry['key'] == _mapcodec.lpm_cidr(bytes.fromhex(entry['key_hex'][2:])), where
        elif key is not None:
            assert entry['key'] == key, where
        if bpf_map.is_percpu:
            assert entry['value_hex'] == [_mapcodec.to_hex(v) for v in raw], where
        else:
            assert entry['value_hex'] == _mapcodec.to_hex(raw), where
        if decoded is None:     # no BTF: bpftool shows bytes only
            continue
        if reader.kind in _mapinfo.ID_VALUED_TYPES:
            assert entry['value'] == decoded, where
            continue
        assert (entry['values'] if bpf_map.is_percpu else entry['value']) == decoded, where
    return entries


def test_every_kind_of_type_reads_as_bpftool_shows_it(btf_types):
    everything = bytearray(64)
    struct.pack_into('<I', everything, 0, 5 | 1234 << 3 | 99999 << 15)       # lo, mid, hi
    struct.pack_into('<i?8s', everything, 4, -42, True, b'eth0')            # neg, flag, label
    struct.pack_into('<i', everything, 20, -1)                              # color
    struct.pack_into('<I', everything, 24, 0x01020304)                      # u
    struct.pack_into('<Hbx Hbx BB', everything, 28, 7, -3, 8, 4, 9, 10)      # pair, x, y
    struct.pack_into('<QQ3s', everything, 40, 2 ** 64 - 1, 0xdeadbeef, b'\x01\x02\x03')
    odd = bytearray(everything)
    struct.pack_into('<i', odd, 20, 7)                                      # a colour without a name
    odd[9:17] = b'\x01\x02abc\0\0\0'                                         # a char array that is no text
    with btf_types.map('everything') as m:
        assert m.value_size == len(everything)
        m.update(struct.pack('<Hbx', 1, -2), bytes(everything))
        m.update(struct.pack('<Hbx', 2, 0), bytes(odd))
        entries = assert_reads_like_bpftool(m)
    by_key = dict((e['key']['a'], e['value']) for e in entries)
    assert entries[0]['key'] in ({'a': 1, 'b': -2}, {'a': 2, 'b': 0})
    assert by_key[1] == {
        'lo': 5, 'mid': 1234, 'hi': 99999, 'neg': -42, 'flag': True, 'label': 'eth0', 'color': 'BLUE',
        'u': {'word': 0x01020304, 'bytes': [4, 3, 2, 1]}, 'pair': [{'a': 7, 'b': -3}, {'a': 8, 'b': 4}],
        'x': 9, 'y': 10, 'big': 2 ** 64 - 1, 'ptr': 0xdeadbeef, 'raw': [1, 2, 3]}
    assert (by_key[2]['color'], by_key[2]['label']) == (7, [1, 2, 97, 98, 99, 0, 0, 0])


def test_per_cpu_values_each_cpu_and_summed(btf_types):
    ncpus = _libbpf.num_possible_cpus()
    with btf_types.map('per_cpu') as m:
        m.update(struct.pack('<I', 1), b''.join(struct.pack('<Hbxxxxx', cpu + 1, -1) for cpu in range(ncpus)))
        entries = assert_reads_like_bpftool(m)
    assert [e['key'] for e in entries] == [0, 1, 2, 3]
    assert entries[1]['values'] == [{'a': cpu + 1, 'b': -1} for cpu in range(ncpus)]
    assert entries[1]['value'] == {'a': ncpus * (ncpus + 1) // 2, 'b': -ncpus}
    assert entries[0]['value'] == {'a': 0, 'b': 0}


def test_lpm_prefixes_read_as_cidrs_and_map_in_map_as_inner_ids(btf_types):
    with btf_types.map('prefixes') as m:
        for value, prefix in enumerate(('10.0.0.0/8', '192.0.2.0/24'), 1):
            net = ipaddress.ip_network(prefix)
            m.update(struct.pack('<I', net.prefixlen) + net.network_address.packed, struct.pack('<I', value))
        entries = assert_reads_like_bpftool(m)
    assert sorted((e['key'], e['value']) for e in entries) == [('10.0.0.0/8', 1), ('192.0.2.0/24', 2)]
    with btf_types.map('prefixes') as m:    # asked by key: exact keys, never the longest-prefix match
        keys = [_mapcodec.encode(prefix, 8) for prefix in ('10.0.0.0/8', '10.1.0.0/16')]
        asked, truncated = _mapinfo.MapReader(m).read(keys=keys)
    assert [(e['key'], e['value']) for e in asked] == [('10.0.0.0/8', 1), ('10.1.0.0/16', None)] and not truncated
    with btf_types.map('inner_a') as inner:
        inner_id = inner.info.id
    with btf_types.map('outer') as m:
        entries = assert_reads_like_bpftool(m)
    assert [(e['key'], e['value'], e['inner_map']) for e in entries] == [
        (0, inner_id, {'id': inner_id, 'name': 'inner_a', 'type': 'array'})]


def test_global_data_reads_as_its_variables(btf_types):
    sections = dict((name.rsplit('.', 1)[-1], name) for name in btf_types.map_names() if '.' in name)
    with btf_types.map(sections['rodata']) as m:
        assert [(e['key'], e['value']) for e in assert_reads_like_bpftool(m)] == [(0, {'limit': 7})]
    with btf_types.map(sections['bss']) as m:
        assert [(e['key'], e['value']) for e in assert_reads_like_bpftool(m)] == [(0, {'packets_seen': 0})]


def test_a_map_without_btf_reads_as_integers_and_hex():
    with _bpfmap.create_map(_libbpf.BPF_MAP_TYPE_HASH, 4, 12, 4, name='no_btf') as m:
        m.update(struct.pack('<I', 6), b'\x01' * 12)
        entries = assert_reads_like_bpftool(m)
        assert _mapinfo.MapReader(m).facts()['key_type'] is None
    assert entries == [{'key': 6, 'key_hex': '0x06000000', 'value': '0x' + '01' * 12, 'value_hex': '0x' + '01' * 12}]


def test_the_steering_programs_maps_read_as_bpftool_shows_them(steering):
    """After a rule set and traffic, the small maps of the steering program: its counters, prefixes, rule set
    header (map-in-map), learned paths and settings."""
    rule = strategies.rule
    steering.apply([rule('learn', 'learn', dst=['198.51.100.10/32']),
                    rule('web', 'pass', dst=['10.0.0.0/8', '2001:db8::/32'], proto='tcp', dport=443)])
    for frame in (pk.ipv4_frame('192.0.2.7', '198.51.100.10', 'tcp', 40000, 443),
                  pk.ipv4_frame('192.0.2.7', '10.1.2.3', 'tcp', 40000, 443),
                  pk.ipv6_frame('2001:db8:7::7', '2001:db8::1', 'tcp', 40000, 443)):
        steering.check(frame)
    read = {}
    for name in (L.MAP_RULE_STATS, L.MAP_PROTO_STATS, L.MAP_SRC_PREFIXES, L.MAP_DST_PREFIXES, L.MAP_ACTIVE_SET,
                 L.MAP_LEARNED_PATHS, L.MAP_SETTINGS):
        with _bpfmap.Map.from_pin(os.path.join(steering.pin_dir, name)) as m:
            read[name] = assert_reads_like_bpftool(m)
    stats = [e['value'] for e in read[L.MAP_RULE_STATS] if e['value']['packets']]
    assert sorted(s['packets'] for s in stats) == [1, 2]
    assert len(read[L.MAP_LEARNED_PATHS]) == 1 and read[L.MAP_LEARNED_PATHS][0]['key']['client_port'] == 40000

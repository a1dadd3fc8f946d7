# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The map layout codecs against docs/docsite/rst/dataplane.rst, byte for byte."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import struct

import pytest
from hypothesis import given, strategies as st

from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_constants_match_the_document():
    assert (L.MAX_RULES, L.NWORDS, L.MAX_CLASSES, L.MAX_PREFIXES) == (4096, 64, 8192, 8192)
    assert (L.NO_PORT, L.PORT_INDEXES, L.COUNTER_SLOTS, L.DEFAULT_COUNTER) == (65536, 65537, 8192, 8192)
    assert (L.ACT_PASS, L.ACT_DROP, L.ACT_REDIRECT, L.ACT_MARK, L.ACT_POLICE) == (0, 1, 2, 3, 4)
    assert (L.POLICE_PACKETS, L.POLICE_BITS) == (0, 1)
    assert (L.PROTO_NON_IP, L.PROTO_MALFORMED, L.PROTO_STATS_ENTRIES) == (256, 257, 258)


def test_struct_sizes_match_the_document():
    assert L.LPM_KEY_SIZE == 21
    assert L.SET_HEADER_SIZE == 24
    assert L.RULE_SIZE == 96
    assert L.CLASS_BITS_SIZE == 520
    assert L.RULE_STATS_SIZE == 24
    assert L.PROTO_STATS_SIZE == 16
    assert L.POLICE_STATE_SIZE == 24
    assert L.SETTINGS_SIZE == 8


def test_constants_match_the_bpf_source():
    """The C side of the ABI: every #define we mirror has the same value."""
    path = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.c')
    if not os.path.exists(path):
        pytest.skip('no BPF source in this tree')
    with open(path) as f:
        source = f.read()
    defines = dict(re.findall(r'^#define\s+(\w+)\s+(\d+)\s*$', source, re.M))
    assert 'MAX_RULES' in defines
    for name in ('MAX_RULES', 'MAX_CLASSES', 'MAX_PREFIXES', 'NO_PORT', 'PORT_INDEXES', 'PROTO_NON_IP',
                 'PROTO_MALFORMED', 'LEARNED_PATHS'):
        if name in defines:
            assert int(defines[name]) == getattr(L, name), name
    enums = dict(re.findall(r'^\s*(ACT_\w+|POLICE_\w+)\s*=\s*(\d+)', source, re.M))
    assert len(enums) == 9
    for name, value in enums.items():
        assert int(value) == getattr(L, name), name
    for name in L.MAP_SPECS:
        assert re.search(r'\}\s*%s\s+SEC\("\.maps"\)' % name, source), name


def test_map_specs_cover_every_map():
    names = [getattr(L, n) for n in dir(L) if n.startswith('MAP_') and n != 'MAP_SPECS']
    assert set(L.SHARED_MAPS) <= set(L.MAP_SPECS)
    assert sorted(names) == sorted(L.MAP_SPECS)
    assert L.MAP_SPECS[L.MAP_CLASS_BITS] == ('array', 4, 520, 16384)
    assert L.MAP_SPECS[L.MAP_RULE_STATS][3] == L.COUNTER_SLOTS + 1


def test_path_key_and_value():
    key = L.PathKey(4, 6, ipaddress.IPv4Address('192.0.2.1').packed, 40000, ipaddress.IPv4Address('198.51.100.10').packed,
                    443)
    data = L.pack_path_key(key)
    assert len(data) == L.PATH_KEY_SIZE == 40
    assert data[:8] == bytes([0, 6]) + struct.pack('<HHH', 40000, 443, 0)
    assert data[8:24] == bytes([192, 0, 2, 1]) + b'\0' * 12
    assert L.unpack_path_key(data) == key
    path = L.LearnedPath(7, b'\x02' * 6, b'\x04' * 6)
    assert L.unpack_path(L.pack_path(path)) == path and L.PATH_SIZE == 16


def test_lpm_key_ipv4_bytes():
    key = L.lpm_key(1, 4, ipaddress.IPv4Address('10.1.0.0').packed, 16)
    assert key == struct.pack('<I', 24) + bytes([2, 10, 1, 0, 0]) + b'\0' * 12
    assert L.parse_lpm_key(key) == (1, 4, b'\x0a\x01\x00\x00', 16)


def test_lpm_key_ipv6_bytes():
    addr = ipaddress.IPv6Address('2001:db8::').packed
    key = L.lpm_key(0, 6, addr, 32)
    assert key == struct.pack('<I', 40) + b'\x01' + addr
    assert L.parse_lpm_key(key) == (0, 6, addr, 32)
    assert L.parse_lpm_key(L.lpm_key(1, 6, b'\0' * 16, 0)) == (1, 6, b'\0' * 16, 0)


@pytest.mark.parametrize('args', [
    (2, 4, b'\0' * 4, 0),
    (0, 5, b'\0' * 4, 0),
    (0, 4, b'\0' * 16, 0),
    (0, 4, b'\0' * 4, 33),
    (0, 6, b'\0' * 16, 129),
    (0, 6, b'\0' * 16, -1),
])
def test_lpm_key_refuses(args):
    with pytest.raises(ValueError):
        L.lpm_key(*args)


def test_parse_lpm_key_refuses():
    with pytest.raises(ValueError):
        L.parse_lpm_key(b'\0' * 20)
    with pytest.raises(ValueError):
        L.parse_lpm_key(struct.pack('<I', 8 + 33) + b'\0' * 17)
    with pytest.raises(ValueError):
        L.parse_lpm_key(struct.pack('<I', 7) + b'\0' * 17)


@given(st.integers(0, 1), st.sampled_from([4, 6]), st.binary(min_size=16, max_size=16), st.data())
def test_lpm_key_round_trip(slot, family, raw, data):
    addr = raw[:4] if family == 4 else raw
    plen = data.draw(st.integers(0, len(addr) * 8))
    key = L.lpm_key(slot, family, addr, plen)
    assert len(key) == L.LPM_KEY_SIZE
    assert L.parse_lpm_key(key) == (slot, family, addr, plen)


def test_header_layout():
    header = L.SetHeader(1, 65, 2, L.ACT_DROP, 7)
    data = L.pack_header(header)
    assert data == struct.pack('<IIIIQ', 1, 65, 2, 1, 7)
    assert L.unpack_header(data) == header
    assert L.unpack_header(data)._replace(generation=8).generation == 8


def test_rule_layout():
    entry = L.RuleEntry(L.ACT_REDIRECT, 5, 0, 3, L.AF_INET, 0, b'\xcb\x00\x71\x01' + b'\0' * 12, 0, 0, 0,
                        'vip-return-eth1')
    data = L.pack_rule(entry)
    assert len(data) == 96
    assert data[:24] == struct.pack('<6I', 2, 5, 0, 3, 2, 0)
    assert data[24:40] == entry.nh_addr
    assert data[64:] == b'vip-return-eth1'.ljust(32, b'\0')
    assert L.unpack_rule(data) == entry


def test_rule_police_fields_and_full_name():
    entry = L.RuleEntry(L.ACT_POLICE, 8191, 0, 0, 0, L.POLICE_BITS, b'\0' * 16, 10 ** 7, 12 * 10 ** 15,
                        12 * 10 ** 8, 'a' * 32)
    data = L.pack_rule(entry)
    assert struct.unpack_from('<QQQ', data, 40) == (10 ** 7, 12 * 10 ** 15, 12 * 10 ** 8)
    assert L.unpack_rule(data) == entry


def test_rule_short_nh_addr_is_padded_and_long_name_refused():
    entry = L.RuleEntry(0, 0, 0, 0, 0, 0, b'\x01\x02\x03\x04', 0, 0, 0, 'x')
    assert L.unpack_rule(L.pack_rule(entry)).nh_addr == b'\x01\x02\x03\x04' + b'\0' * 12
    with pytest.raises(ValueError):
        L.pack_rule(entry._replace(name='a' * 33))


def test_bits_layout():
    assert L.pack_bits(0) == b'\0' * 520
    data = L.pack_bits(1 << 0 | 1 << 63 | 1 << 64 | 1 << 4095 | 0b101 << 4096)
    words = struct.unpack('<65Q', data)
    assert words[0] == 1 | 1 << 63
    assert words[1] == 1
    assert words[63] == 1 << 63
    assert all(w == 0 for w in words[2:63])
    assert words[64] == 0b101  # the candidate word follows the 64 rule words
    with pytest.raises(ValueError):
        L.pack_bits(1 << (4096 + 64))
    with pytest.raises(ValueError):
        L.pack_bits(-1)


@given(st.integers(0, (1 << (4096 + 64)) - 1))
def test_bits_round_trip(bits):
    data = L.pack_bits(bits)
    assert len(data) == 520
    assert L.unpack_bits(data) == bits
    words = struct.unpack('<65Q', data)
    assert sum(w << (64 * i) for i, w in enumerate(words)) == bits


def test_stats_are_summed_over_cpus():
    cpus = [struct.pack('<QQQ', 1, 100, 0), struct.pack('<QQQ', 2, 300, 1), L.pack_rule_stats(3, 5, 7)]
    assert L.unpack_rule_stats(cpus) == (6, 405, 8)
    assert L.unpack_rule_stats(b''.join(cpus)) == (6, 405, 8)
    assert L.unpack_rule_stats([]) == (0, 0, 0)
    protos = [struct.pack('<QQ', 4, 40), struct.pack('<QQ', 1, 60)]
    assert L.unpack_proto_stats(protos) == (5, 100)
    assert L.unpack_proto_stats(b''.join(protos)) == (5, 100)


def test_police_state_and_settings():
    data = L.pack_police_state(10, 20)
    assert data == struct.pack('<IIQQ', 0, 0, 10, 20)
    assert L.unpack_police_state(data) == (10, 20)
    assert L.pack_settings(5) == struct.pack('<Q', 5)
    assert L.unpack_settings(L.pack_settings(5)) == 5


def test_u32():
    assert L.pack_u32(0x01020304) == b'\x04\x03\x02\x01'
    assert L.unpack_u32(b'\x04\x03\x02\x01') == 0x01020304


def test_indexes():
    assert L.proto_index(0, 6) == 6
    assert L.proto_index(1, 255) == 511
    assert L.port_index(0, 80) == 80
    assert L.port_index(1, None) == L.PORT_INDEXES + L.NO_PORT == 2 * L.PORT_INDEXES - 1
    assert L.port_index(1, 0) == 65537
    assert L.class_index(1, 3) == 8195
    assert L.rule_index(1, 4095) == 8191
    for bad in (lambda: L.proto_index(0, 256), lambda: L.port_index(0, 65537), lambda: L.port_index(2, 0),
                lambda: L.class_index(0, 8192), lambda: L.rule_index(0, 4096), lambda: L.rule_index(0, -1)):
        with pytest.raises(ValueError):
            bad()

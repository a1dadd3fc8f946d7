# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Encoding of bpf_map keys and values, and the plan that makes a map match (no kernel, no root)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.ebpf.tc.plugins.module_utils import _mapcodec as C
from ansible_collections.ebpf.tc.plugins.module_utils._mapcodec import CodecError, MapShape


@pytest.mark.parametrize('spec, size, expected', [
    (1, 4, b'\x01\0\0\0'),
    ('1', 4, b'\x01\0\0\0'),                      # Ansible makes every dict key a string
    (' 258 ', 2, b'\x02\x01'),
    (0xFFFFFFFF, 4, b'\xff' * 4),
    ((1 << 64) - 1, 8, b'\xff' * 8),
    (5, 16, b'\x05' + b'\0' * 15),
    ('10.0.0.1', 4, b'\x0a\0\0\x01'),             # network order
    ('10.0.0.1', 8, b'\x0a\0\0\x01\0\0\0\0'),     # padded at the end
    ('2001:db8::1', 16, bytes.fromhex('20010db8000000000000000000000001')),
    ('::1', 16, b'\0' * 15 + b'\x01'),
    ('0x0a000001', 4, b'\x0a\0\0\x01'),           # bytes in the order written
    ('0X0A', 4, b'\x0a\0\0\0'),
    ('0a:00:00:01', 4, b'\x0a\0\0\x01'),
    ('02:00:00:00:00:01', 6, b'\x02\0\0\0\0\x01'),
    ('00:01:02:03:04:05:06:07', 8, bytes(range(8))),  # two-digit groups are bytes, not IPv6
    ('10.0.0.0/8', 8, b'\x08\0\0\0\x0a\0\0\0'),   # LPM trie key: u32 prefixlen, then the address
    ('2001:db8::/32', 20, b'\x20\0\0\0' + bytes.fromhex('20010db8') + b'\0' * 12),
    ('0.0.0.0/0', 8, b'\0' * 8),
    (b'\x01\x02', 4, b'\x01\x02\0\0'),
])
def test_encode(spec, size, expected):
    assert C.encode(spec, size) == expected


@pytest.mark.parametrize('spec, size, message', [
    (256, 1, "key 256 does not fit in 1 bytes"),
    ('4294967296', 4, 'does not fit in 4 bytes'),
    (-1, 4, 'negative'),
    ('2001:db8::1', 4, "key '2001:db8::1' is 16 bytes, the map holds 4"),
    ('0x0102030405', 4, "is 5 bytes, the map holds 4"),
    ('0x123', 4, 'even, non-zero number of digits'),
    ('0x', 4, 'even, non-zero number of digits'),
    ('10.1.2.3/8', 8, 'not a valid CIDR prefix'),
    ('10.0.0.0/8', 4, 'is 8 bytes, the map holds 4'),
    ('hello', 4, "neither an integer, an IP address, a CIDR prefix nor hex bytes"),
    (True, 4, 'neither an integer'),
    (None, 4, 'neither an integer'),
    (1.5, 4, 'neither an integer'),
])
def test_encode_errors(spec, size, message):
    with pytest.raises(CodecError, match=message.replace('(', r'\(').replace(')', r'\)')):
        C.encode(spec, size)


def test_value_error_names_its_key():
    shape = MapShape('hash', 4, 2, 16)
    with pytest.raises(CodecError, match="value of key '7' 70000 does not fit in 2 bytes"):
        C.encode_entries([('7', 70000)], shape)


def test_decode_forms():
    assert C.to_hex(b'\x0a\0\0\x01') == '0x0a000001'
    assert C.to_int(b'\x01\x02') == 0x0201
    assert C.to_int(b'\0' * 9) is None
    assert C.lpm_cidr(b'\x08\0\0\0\x0a\0\0\0') == '10.0.0.0/8'
    assert C.lpm_cidr(b'\x20\0\0\0' + bytes.fromhex('20010db8') + b'\0' * 12) == '2001:db8::/32'
    assert C.lpm_cidr(b'\x30\0\0\0\x0a\0\0\0') is None          # /48 of an IPv4 address
    assert C.lpm_cidr(b'\x08\0\0\0\x0a\0\0\x01') is None        # host bits set: not 10.0.0.0/8
    assert C.readable_key(b'\x08\0\0\0\x0a\0\0\0', 'lpm_trie') == '10.0.0.0/8'
    assert C.readable_key(b'\x03\0\0\0', 'array') == '3'
    assert C.readable_key(b'\x01' * 9, 'hash') == '0x' + '01' * 9
    assert C.readable_value(None) is None
    assert C.readable_value(b'\x05\0') == 5
    assert C.readable_value([b'\x05\0', b'\x05\0']) == 5
    assert C.readable_value([b'\x05\0', b'\x06\0']) == [5, 6]
    assert C.describe_entry(b'\x01\0\0\0', b'\x02\0\0\0\0\0\0\0', 'hash') == {
        'key': '0x01000000', 'key_int': 1, 'value': '0x0200000000000000', 'value_int': 2}
    assert C.describe_entry(b'\x08\0\0\0\x0a\0\0\0', None, 'lpm_trie')['key_cidr'] == '10.0.0.0/8'
    assert C.describe_entry(b'\x01\0\0\0', [b'\x01', b'\x02'], 'percpu_hash')['value'] == ['0x01', '0x02']


def test_parse_entries():
    assert C.parse_entries({'1': 2}, 'present') == [('1', 2)]
    assert C.parse_entries({'1': 2}, 'absent') == [('1', None)]
    assert C.parse_entries([{'key': 'a', 'value': 1}], 'present') == [('a', 1)]
    assert C.parse_entries([1, {'key': 2}], 'absent') == [(1, None), (2, None)]
    assert C.parse_entries(None, 'present') == []
    with pytest.raises(CodecError, match=r'entries\[0\] \(1\) has no value'):
        C.parse_entries([1], 'present')
    with pytest.raises(CodecError, match=r'entries\[0\] \(key 1\) has no value'):
        C.parse_entries([{'key': 1}], 'present')
    with pytest.raises(CodecError, match=r'entries\[0\] must have a key'):
        C.parse_entries([{'value': 1}], 'present')
    with pytest.raises(CodecError, match='must be a dict'):
        C.parse_entries('1', 'present')


def test_duplicate_keys_in_different_spellings():
    shape = MapShape('hash', 4, 4, 16)
    with pytest.raises(CodecError, match="key '0x01000000' is given twice"):
        C.encode_entries([('1', 1), ('0x01000000', 2)], shape)


def test_array_keys_must_be_in_range_and_zero_is_absent():
    shape = MapShape('array', 4, 4, 8)
    with pytest.raises(CodecError, match='key 8 is out of range: the array has indexes 0-7'):
        C.encode_entries([(8, 1)], shape)
    (entry,) = C.encode_entries([(1, 0)], shape)
    assert entry.value is None


K1, K2, K3 = b'\x01\0\0\0', b'\x02\0\0\0', b'\x03\0\0\0'
V1, V2 = b'\x0a\0\0\0', b'\x0b\0\0\0'
ZERO = b'\0\0\0\0'


def desired(*pairs):
    return [C.Desired(k, v, k) for k, v in pairs]


def test_plan_hash():
    current = {K1: V1, K3: V1}
    plan = C.plan(desired((K1, V1), (K2, V2)), current, False, 'hash')
    assert plan.writes == [(K2, V2)] and plan.deletes == []
    assert plan.before == {K2: None} and plan.after == {K2: V2}
    assert C.diff_of(plan, 'hash') == {'before': {'2': None}, 'after': {'2': 11}}

    plan = C.plan(desired((K1, V1)), current, True, 'hash')     # exclusive removes K3
    assert plan.writes == [] and plan.deletes == [K3]

    plan = C.plan(desired((K1, None), (K2, None)), current, False, 'hash')
    assert plan.deletes == [K1] and plan.before == {K1: V1} and plan.after == {K1: None}


def test_plan_array_zero_is_absent():
    current = {K1: ZERO, K2: V2}
    plan = C.plan(desired((K1, None), (K3, None)), current, False, 'array')
    assert plan.writes == [] and plan.deletes == []
    plan = C.plan(desired((K1, V1)), current, True, 'array')
    assert plan.writes == [(K1, V1)] and plan.deletes == [K2]


def test_plan_percpu_compares_every_cpu():
    plan = C.plan(desired((K1, V1)), {K1: [V1, V1]}, False, 'percpu_hash')
    assert not plan.writes
    plan = C.plan(desired((K1, V1)), {K1: [V1, V2]}, False, 'percpu_hash')
    assert plan.writes == [(K1, V1)] and plan.before == {K1: [V1, V2]}
    plan = C.plan(desired((K1, None)), {K1: [ZERO, ZERO]}, False, 'percpu_array')
    assert not plan.deletes


def test_type_names_and_supported():
    assert C.type_name(11) == 'lpm_trie'
    assert C.type_name(999) == 'type 999'
    assert 'prog_array' not in C.SUPPORTED_TYPES

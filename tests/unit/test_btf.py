# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The BTF reader and decoder (plugins/module_utils/_btf.py) on BTF blobs built here, type by type.

tests/dataplane/test_btf_decode.py checks the same decoder against bpftool on clang-built BTF; this file
covers what that cannot reach cheaply: floats (bpftool 7.1 cannot print them), signed bitfields, signed
enums, typedef loops, truncated and foreign blobs, and how per-CPU values combine.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct

import pytest

from ansible_collections.ebpf.tc.plugins.module_utils import _btf
from ansible_collections.ebpf.tc.plugins.module_utils._btf import (
    ARRAY, CONST, DATASEC, ENUM, FLOAT, INT, PTR, STRUCT, TYPEDEF, UNION, VAR, Btf, BtfError, combine)

SIGNED, CHAR, BOOL = 1, 2, 4


class Builder:
    """A raw BTF blob, type by type (ids from 1, in the order added)."""

    def __init__(self):
        self.strings = bytearray(b'\0')
        self.records = []

    def _str(self, name):
        if not name:
            return 0
        self.strings += name.encode() + b'\0'
        return len(self.strings) - len(name) - 1

    def add(self, kind, name, size_or_type, extra=b'', vlen=0, kind_flag=False):
        info = kind << 24 | vlen | (1 << 31 if kind_flag else 0)
        self.records.append(struct.pack('<III', self._str(name), info, size_or_type) + extra)
        return len(self.records)

    def int(self, name, size, encoding=0, bits=None):
        return self.add(INT, name, size, struct.pack('<I', encoding << 24 | (bits or 8 * size)))

    def struct(self, name, size, members, kind=STRUCT, bitfields=False):
        extra = b''.join(struct.pack('<III', self._str(n), t, off | (bf << 24 if bitfields else 0))
                         for n, t, off, bf in members)
        return self.add(kind, name, size, extra, vlen=len(members), kind_flag=bitfields)

    def enum(self, name, size, values, signed=False):
        extra = b''.join(struct.pack('<Ii', self._str(n), v) for n, v in values)
        return self.add(ENUM, name, size, extra, vlen=len(values), kind_flag=signed)

    def array(self, elem, index, nelems):
        return self.add(ARRAY, '', 0, struct.pack('<III', elem, index, nelems))

    def blob(self, magic=_btf.BTF_MAGIC):
        types = b''.join(self.records)
        header = struct.pack('<HBBIIIII', magic, 1, 0, 24, 0, len(types), len(types), len(self.strings))
        return header + types + bytes(self.strings)


@pytest.fixture
def b():
    return Builder()


def test_integers_signed_unsigned_bool_and_typedefs(b):
    u32 = b.int('unsigned int', 4)
    s16 = b.int('short', 2, SIGNED)
    flag = b.int('_Bool', 1, BOOL)
    alias = b.add(TYPEDEF, '__u32', u32)
    const = b.add(CONST, '', alias)
    btf = Btf(b.blob())
    assert btf.decode(u32, b'\xff\xff\xff\xff') == 2 ** 32 - 1
    assert btf.decode(s16, b'\xfe\xff') == -2
    assert btf.decode(flag, b'\x01') is True and btf.decode(flag, b'\x00') is False
    assert btf.decode(const, struct.pack('<I', 7)) == 7
    assert [btf.type_name(t) for t in (u32, alias, const, 0)] == ['unsigned int', '__u32', 'const __u32', 'void']
    assert btf.size(const) == 4


def test_char_arrays_are_strings_only_when_they_hold_text(b):
    char = b.int('char', 1, SIGNED)
    u8 = b.int('unsigned char', 1)
    idx = b.int('int', 4, SIGNED)
    text, raw = b.array(char, idx, 6), b.array(u8, idx, 3)
    btf = Btf(b.blob())
    assert btf.decode(text, b'eth0\0\0') == 'eth0'
    assert btf.decode(text, b'\0' * 6) == ''
    assert btf.decode(text, b'abcdef') == [97, 98, 99, 100, 101, 102]    # no NUL: not a C string
    assert btf.decode(text, b'a\x01\0\0\0\0') == [97, 1, 0, 0, 0, 0]      # not printable
    assert btf.decode(raw, b'ab\0') == [97, 98, 0]                        # unsigned char is bytes
    assert (btf.type_name(text), btf.size(text)) == ('char[6]', 6)


def test_enums_by_name_unknown_values_as_numbers(b):
    plain = b.enum('color', 4, [('RED', 1), ('BLUE', -1)])
    signed = b.enum('level', 4, [('LOW', -5)], signed=True)
    btf = Btf(b.blob())
    assert btf.decode(plain, struct.pack('<i', -1)) == 'BLUE'
    assert btf.decode(plain, struct.pack('<I', 1)) == 'RED'
    assert btf.decode(plain, struct.pack('<I', 9)) == 9
    assert btf.decode(signed, struct.pack('<i', -5)) == 'LOW'
    assert btf.decode(signed, struct.pack('<i', -6)) == -6
    assert btf.type_name(plain) == 'enum color'


def test_structs_unions_bitfields_and_anonymous_members(b):
    u32 = b.int('unsigned int', 4)
    s32 = b.int('int', 4, SIGNED)
    u8 = b.int('unsigned char', 1)
    color = b.enum('color', 4, [('GREEN', 2)])
    inner = b.struct('', 2, [('x', u8, 0, 0), ('y', u8, 8, 0)])
    word = b.struct('', 4, [('word', u32, 0, 0), ('low', u8, 0, 0)], kind=UNION)
    outer = b.struct('flags', 12, [('lo', u32, 0, 3), ('neg', s32, 3, 5), ('tint', color, 8, 2),
                                   ('', inner, 16, 0), ('u', word, 64, 0)], bitfields=True)
    btf = Btf(b.blob())
    raw = struct.pack('<I', 5 | 0b11110 << 3 | 2 << 8 | 0x0a09 << 16) + b'\0' * 4 + struct.pack('<I', 0x1ff)
    assert btf.decode(outer, raw) == {'lo': 5, 'neg': -2, 'tint': 'GREEN', 'x': 9, 'y': 10,
                                      'u': {'word': 0x1ff, 'low': 0xff}}
    assert [btf.type_name(t) for t in (outer, inner, word)] == ['struct flags', 'struct (anon)', 'union (anon)']


def test_floats_pointers_and_global_data(b):
    f32, f64 = b.add(FLOAT, 'float', 4), b.add(FLOAT, 'double', 8)
    u64 = b.int('unsigned long long', 8)
    ptr = b.add(PTR, '', u64)
    limit = b.add(VAR, 'limit', u64, struct.pack('<I', 1))
    ratio = b.add(VAR, 'ratio', f32, struct.pack('<I', 1))
    section = b.add(DATASEC, '.rodata', 12, struct.pack('<III', limit, 0, 8) + struct.pack('<III', ratio, 8, 4),
                    vlen=2)
    btf = Btf(b.blob())
    assert btf.decode(f32, struct.pack('<f', 0.5)) == 0.5 and btf.decode(f64, struct.pack('<d', -2.25)) == -2.25
    assert btf.decode(ptr, struct.pack('<Q', 0xdead)) == 0xdead and btf.type_name(ptr) == 'unsigned long long *'
    assert btf.decode(section, struct.pack('<Qf', 7, 1.5)) == {'limit': 7, 'ratio': 1.5}
    assert btf.type_name(section) == '.rodata'


def test_bad_blobs_and_short_data_are_errors_not_guesses(b):
    u32 = b.int('unsigned int', 4)
    loop = b.add(TYPEDEF, 'a', 3)
    b.add(TYPEDEF, 'b', loop)
    with pytest.raises(BtfError, match='magic'):
        Btf(b.blob(magic=0x9feb))
    with pytest.raises(BtfError, match='shorter than its header'):
        Btf(b'\x9f\xeb')
    btf = Btf(b.blob())
    with pytest.raises(BtfError, match='cannot hold'):
        btf.decode(u32, b'\0\0')
    with pytest.raises(BtfError, match='loop'):
        btf.decode(loop, b'\0' * 4)
    with pytest.raises(BtfError, match='no type 99'):
        btf.decode(99, b'')
    future = Builder()
    future.add(31, 'future', 0)
    with pytest.raises(BtfError, match='kind 31'):
        Btf(future.blob())


def test_per_cpu_values_combine_numbers_summed_the_rest_when_all_agree():
    assert combine([1, 2, 3]) == 6
    assert combine([{'packets': 1, 'name': 'a'}, {'packets': 2, 'name': 'a'}]) == {'packets': 3, 'name': 'a'}
    assert combine([{'name': 'a'}, {'name': 'b'}]) == {'name': None}
    assert combine([[1, 2], [3, 4]]) == [4, 6]
    assert combine([True, True]) is True and combine([True, False]) is None     # not numbers
    assert combine(['0x01', '0x02']) is None and combine([0.5, 0.25]) == 0.75

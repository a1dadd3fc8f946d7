# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""BTF, the kernel's type format, read from its raw blob: type names, and map keys and values decoded by
their types into plain Python values (what ebpf.tc.bpf_map_info returns).

The blob is a kernel UAPI (linux/btf.h: a header, the type records, the string table), so it is read here
directly rather than through libbpf's btf__* calls, whose symbols differ between libbpf 0.x and 1.x.

Decoding follows ``bpftool map dump``'s formatted output, with four differences that make the values
easier to use from Ansible: bitfields are integers (bpftool prints them as hex strings), the members of an
anonymous struct or union member sit in the enclosing dict as C reads them (bpftool nests them under
""), a global-data section (.data, .bss, .rodata) is one dict of its variables (bpftool: a list of
one-variable dicts under the section's name), and integers wider than 8 bytes are integers (bpftool: hex).
Only little-endian BTF is read (x86_64 and aarch64, the architectures the collection ships for).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import struct

from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError

BTF_MAGIC = 0xeb9f
_HEADER = struct.Struct('<HBBIIIII')     # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_TYPE = struct.Struct('<III')            # name_off, info, size or type

(INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR,
 DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64) = range(1, 20)
_MODIFIERS = frozenset((VOLATILE, CONST, RESTRICT, TYPE_TAG))
_FOLLOWED = _MODIFIERS | frozenset((TYPEDEF, VAR, DECL_TAG))
# Bytes after the common record: fixed per kind, or per member (times vlen).
_EXTRA_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_EXTRA_PER_MEMBER = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}
_INT_SIGNED, _INT_CHAR, _INT_BOOL = 1, 2, 4
_POINTER_SIZE = 8                        # BPF is a 64-bit target

Type = collections.namedtuple('Type', 'kind name size_or_type kind_flag vlen extra')
# extra: INT: (encoding, bit offset, bits); ARRAY: (element type, nelems); STRUCT/UNION: [(name, type, bit
# offset, bitfield size)]; ENUM/ENUM64: [(name, value)]; DATASEC: [(var type, offset, size)]; else ().


class BtfError(EbpfTcError):
    """BTF this reader cannot parse or decode."""


class Btf:
    """The types of one raw BTF blob, by id (id 0 is void)."""

    def __init__(self, raw):
        raw = bytes(raw)
        if len(raw) < _HEADER.size:
            raise BtfError('BTF blob of %d bytes is shorter than its header' % len(raw))
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(raw)
        if magic != BTF_MAGIC:
            raise BtfError('not little-endian BTF (magic 0x%04x)' % magic)
        self._strings = raw[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types = [None]
        self._parse(raw[hdr_len + type_off:hdr_len + type_off + type_len])

    @classmethod
    def from_id(cls, btf_id):
        """The BTF the kernel holds under ``btf_id`` (a map's ``btf_id``)."""
        from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf
        return cls(_libbpf.btf_raw(btf_id))

    def _name(self, offset):
        end = self._strings.find(b'\0', offset)
        return self._strings[offset:end if end >= 0 else None].decode('utf-8', 'replace')

    def _parse(self, data):
        pos = 0
        while pos < len(data):
            name_off, info, size_or_type = _TYPE.unpack_from(data, pos)
            pos += _TYPE.size
            kind, kind_flag, vlen = (info >> 24) & 0x1f, bool(info >> 31), info & 0xffff
            if kind in _EXTRA_PER_MEMBER:
                length = _EXTRA_PER_MEMBER[kind] * vlen
            elif 0 < kind <= ENUM64:
                length = _EXTRA_FIXED.get(kind, 0)
            else:
                raise BtfError('BTF type %d has kind %d, which this reader does not know' % (len(self.types), kind))
            self.types.append(Type(kind, self._name(name_off), size_or_type, kind_flag, vlen,
                                   self._extra(kind, kind_flag, vlen, data[pos:pos + length])))
            pos += length

    def _extra(self, kind, kind_flag, vlen, data):
        if kind == INT:
            word = struct.unpack_from('<I', data)[0]
            return ((word >> 24) & 0x0f, (word >> 16) & 0xff, word & 0xff)
        if kind == ARRAY:
            elem, _index, nelems = struct.unpack_from('<III', data)
            return (elem, nelems)
        if kind in (STRUCT, UNION):
            members = []
            for i in range(vlen):
                name_off, member_type, offset = struct.unpack_from('<III', data, 12 * i)
                if kind_flag:   # the offset word packs a bitfield's size above its bit offset
                    members.append((self._name(name_off), member_type, offset & 0xffffff, offset >> 24))
                else:
                    members.append((self._name(name_off), member_type, offset, 0))
            return members
        if kind == ENUM:
            return [(self._name(n), v) for n, v in (struct.unpack_from('<Ii', data, 8 * i) for i in range(vlen))]
        if kind == ENUM64:
            return [(self._name(n), lo | hi << 32)
                    for n, lo, hi in (struct.unpack_from('<III', data, 12 * i) for i in range(vlen))]
        if kind == DATASEC:
            return [struct.unpack_from('<III', data, 12 * i) for i in range(vlen)]
        return ()

    # -- types ----------------------------------------------------------------------------------

    def _type(self, type_id):
        try:
            return self.types[type_id]
        except IndexError:
            raise BtfError('BTF has no type %d' % type_id)

    def resolve(self, type_id, through=_FOLLOWED):
        """The id of the type behind typedefs, modifiers and variables (``through`` those kinds)."""
        for dummy in range(len(self.types)):
            if type_id == 0 or self._type(type_id).kind not in through:
                return type_id
            type_id = self._type(type_id).size_or_type
        raise BtfError('BTF type %d is a loop of typedefs or modifiers' % type_id)

    def size(self, type_id):
        """Bytes of a value of ``type_id``."""
        type_id = self.resolve(type_id)
        if type_id == 0:
            return 0
        t = self._type(type_id)
        if t.kind == PTR:
            return _POINTER_SIZE
        if t.kind == ARRAY:
            return t.extra[1] * self.size(t.extra[0])
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return t.size_or_type
        return 0

    def type_name(self, type_id):
        """The C spelling of a type: '__u64', 'struct mark_key', 'char[8]', 'void *'."""
        if type_id == 0:
            return 'void'
        t = self._type(type_id)
        name = t.name or '(anon)'
        if t.kind in (STRUCT, UNION, ENUM, ENUM64):
            return '%s %s' % ('union' if t.kind == UNION else 'struct' if t.kind == STRUCT else 'enum', name)
        if t.kind == FWD:
            return '%s %s' % ('union' if t.kind_flag else 'struct', name)
        if t.kind == PTR:
            return self.type_name(t.size_or_type) + ' *'
        if t.kind == ARRAY:
            return '%s[%d]' % (self.type_name(t.extra[0]), t.extra[1])
        if t.kind in _MODIFIERS:
            return '%s %s' % ({CONST: 'const', VOLATILE: 'volatile', RESTRICT: 'restrict'}.get(t.kind, name),
                              self.type_name(t.size_or_type))
        return name

    # -- values ---------------------------------------------------------------------------------

    def decode(self, type_id, data):
        """The value of ``type_id`` held in ``data`` (bytes), as ints, bools, floats, strings (char arrays
        and enum names), lists (arrays) and dicts (structs, unions, sections)."""
        data = bytes(data)
        if len(data) < self.size(type_id):
            raise BtfError('%d bytes cannot hold a %s (%d bytes)'
                           % (len(data), self.type_name(type_id), self.size(type_id)))
        return self._value(type_id, data, 0)

    def _value(self, type_id, data, offset):
        type_id = self.resolve(type_id)
        t = self._type(type_id) if type_id else None
        if t is None or t.kind in (FWD, FUNC, FUNC_PROTO):
            return None
        if t.kind == INT:
            encoding, bit_offset, bits = t.extra
            return self._scalar(type_id, _bits(data, offset * 8 + bit_offset, bits, encoding & _INT_SIGNED))
        if t.kind in (ENUM, ENUM64):
            return self._scalar(type_id, _bits(data, offset * 8, 8 * t.size_or_type, t.kind_flag))
        if t.kind == PTR:
            return int.from_bytes(data[offset:offset + _POINTER_SIZE], 'little')
        if t.kind == FLOAT:
            fmt = {4: '<f', 8: '<d'}.get(t.size_or_type)
            chunk = data[offset:offset + t.size_or_type]
            return struct.unpack(fmt, chunk)[0] if fmt else '0x' + chunk.hex()
        if t.kind == ARRAY:
            elem, nelems = t.extra
            size = self.size(elem)
            text = self._string(elem, data[offset:offset + size * nelems])
            if text is not None:
                return text
            return [self._value(elem, data, offset + i * size) for i in range(nelems)]
        if t.kind in (STRUCT, UNION):
            out = {}
            for name, member_type, bit_offset, bitfield in t.extra:
                resolved = self.resolve(member_type)
                if not bitfield and bit_offset % 8 and self._type(resolved).kind == INT:
                    bitfield = self._type(resolved).extra[2]    # an old-style bitfield: its int says the bits
                if bitfield:
                    signed = self._signed(resolved)
                    value = self._scalar(resolved, _bits(data, offset * 8 + bit_offset, bitfield, signed))
                else:
                    value = self._value(member_type, data, offset + bit_offset // 8)
                if not name and isinstance(value, dict):
                    out.update(value)       # an anonymous struct or union: its members are the parent's
                else:
                    out[name] = value
            return out
        if t.kind == DATASEC:
            return dict((self._type(var).name, self._value(var, data, offset + var_offset))
                        for var, var_offset, _size in t.extra)
        raise BtfError('cannot decode BTF kind %d' % t.kind)

    def _signed(self, type_id):
        t = self._type(type_id)
        return bool(t.extra[0] & _INT_SIGNED) if t.kind == INT else t.kind in (ENUM, ENUM64) and t.kind_flag

    def _scalar(self, type_id, number):
        """An integer as its type shows it: an enum by its name (when it has one), a bool as a bool."""
        t = self._type(type_id)
        if t.kind in (ENUM, ENUM64):
            mask = (1 << 8 * t.size_or_type) - 1
            for name, value in t.extra:
                if value & mask == number & mask:
                    return name
            return number
        if t.kind == INT and t.extra[0] & _INT_BOOL:
            return bool(number)
        return number

    def _string(self, elem, chunk):
        """A char array as a string when it holds printable text ended by a NUL, else None."""
        t = self._type(self.resolve(elem, _MODIFIERS)) if elem else None
        if t is None or t.kind != INT or t.size_or_type != 1 or not (t.name == 'char' or t.extra[0] & _INT_CHAR):
            return None
        end = chunk.find(b'\0')
        if end < 0 or any(c < 0x20 or c > 0x7e for c in chunk[:end]):
            return None
        return chunk[:end].decode('ascii')


def _bits(data, start, count, signed):
    """The ``count``-bit little-endian integer at bit ``start`` of ``data``."""
    first, last = start // 8, (start + count + 7) // 8
    if last > len(data):
        raise BtfError('a %d-bit field at bit %d lies past the %d bytes given' % (count, start, len(data)))
    number = (int.from_bytes(data[first:last], 'little') >> (start % 8)) & ((1 << count) - 1)
    if signed and count and number >> (count - 1):
        number -= 1 << count
    return number


def combine(values):
    """One value for the per-CPU values of an entry: numbers summed (member by member, element by element),
    anything else (names, strings, booleans) kept when every CPU agrees, else None."""
    first = values[0]
    if all(isinstance(v, dict) for v in values) and all(v.keys() == first.keys() for v in values):
        return dict((k, combine([v[k] for v in values])) for k in first)
    if all(isinstance(v, list) for v in values) and all(len(v) == len(first) for v in values):
        return [combine(column) for column in zip(*values)]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sum(values)
    return first if all(v == first for v in values) else None

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The steering program's map layout, mirrored from docs/docsite/rst/dataplane.rst (and files/bpf/steering.bpf.c).

This is the private ABI between the BPF program and the Python rule compiler: every constant, key and
value format lives here and nowhere else, so a layout change is one edit here plus one in the C source.
All integers are little-endian, which is host order on the architectures we ship for (x86_64,
aarch64); addresses inside LPM keys and next hops stay in network order, as the program reads them
straight from packet bytes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import struct
from collections import namedtuple

# -- limits --------------------------------------------------------------------------------------

MAX_RULES = 4096
NWORDS = MAX_RULES // 64
MAX_CLASSES = 8192
MAX_PREFIXES = 8192
NO_PORT = 65536
PORT_INDEXES = 65537
COUNTER_SLOTS = 2 * MAX_RULES
DEFAULT_COUNTER = COUNTER_SLOTS
SLOTS = 2
RULE_NAME_SIZE = 32

# -- actions and policer units -------------------------------------------------------------------

ACT_PASS = 0
ACT_DROP = 1
ACT_REDIRECT = 2
ACT_MARK = 3
ACT_POLICE = 4
ACT_LEARN = 5
ACT_REPLY = 6

POLICE_PACKETS = 0
POLICE_BITS = 1

AF_INET = 2
AF_INET6 = 10

NSEC_PER_SEC = 1000000000

# proto_stats indexes past the 256 IP protocols
PROTO_NON_IP = 256
PROTO_MALFORMED = 257
PROTO_STATS_ENTRIES = 258

# -- map names (pinned by name) ------------------------------------------------------------------

MAP_ACTIVE_SET = 'active_set'
MAP_SRC_PREFIXES = 'src_prefixes'
MAP_DST_PREFIXES = 'dst_prefixes'
MAP_PROTO_CLASS = 'proto_class'
MAP_SPORT_CLASS = 'sport_class'
MAP_DPORT_CLASS = 'dport_class'
MAP_CLASS_BITS = 'class_bits'
MAP_RULES = 'rules'
MAP_RULE_STATS = 'rule_stats'
MAP_POLICE_STATE = 'police_state'
MAP_PROTO_STATS = 'proto_stats'
MAP_SETTINGS = 'settings'
MAP_LEARNED_PATHS = 'learned_paths'
LEARNED_PATHS = 65536
# Maps one instance of which serves every hook of a network namespace: the installer pins them in the
# namespace's shared directory (_program.shared_pin_dir) instead of the hook's.
SHARED_MAPS = (MAP_LEARNED_PATHS,)

# -- structs -------------------------------------------------------------------------------------

_U32 = struct.Struct('<I')
_LPM_KEY = struct.Struct('<I17s')
_SET_HEADER = struct.Struct('<IIIIQ')
_RULE = struct.Struct('<IIIIII16sQQQ32s')
_RULE_STATS = struct.Struct('<QQQ')
_PROTO_STATS = struct.Struct('<QQ')
_POLICE_STATE = struct.Struct('<IIQQ')
_SETTINGS = struct.Struct('<Q')
_PATH_KEY = struct.Struct('<BBHHH16s16s')
_PATH = struct.Struct('<I6s6s')

U32_SIZE = _U32.size                      # 4
LPM_KEY_SIZE = _LPM_KEY.size              # 21
SET_HEADER_SIZE = _SET_HEADER.size        # 24
RULE_SIZE = _RULE.size                    # 96
CLASS_BITS_SIZE = NWORDS * 8 + 8          # 520: the rule words, then the candidate word
RULE_STATS_SIZE = _RULE_STATS.size        # 24
PROTO_STATS_SIZE = _PROTO_STATS.size      # 16
POLICE_STATE_SIZE = _POLICE_STATE.size    # 24
SETTINGS_SIZE = _SETTINGS.size            # 8
PATH_KEY_SIZE = _PATH_KEY.size            # 40
PATH_SIZE = _PATH.size                    # 16

# What each pinned map must look like: (map type name, key size, value size, max_entries). Lets the
# loader tell a compatible pinned map (kept across program upgrades) from an incompatible one.
MAP_SPECS = {
    MAP_ACTIVE_SET: ('array_of_maps', U32_SIZE, U32_SIZE, 1),
    MAP_SRC_PREFIXES: ('lpm_trie', LPM_KEY_SIZE, U32_SIZE, 2 * MAX_PREFIXES),
    MAP_DST_PREFIXES: ('lpm_trie', LPM_KEY_SIZE, U32_SIZE, 2 * MAX_PREFIXES),
    MAP_PROTO_CLASS: ('array', U32_SIZE, U32_SIZE, 2 * 256),
    MAP_SPORT_CLASS: ('array', U32_SIZE, U32_SIZE, 2 * PORT_INDEXES),
    MAP_DPORT_CLASS: ('array', U32_SIZE, U32_SIZE, 2 * PORT_INDEXES),
    MAP_CLASS_BITS: ('array', U32_SIZE, CLASS_BITS_SIZE, 2 * MAX_CLASSES),
    MAP_RULES: ('array', U32_SIZE, RULE_SIZE, 2 * MAX_RULES),
    MAP_RULE_STATS: ('percpu_array', U32_SIZE, RULE_STATS_SIZE, COUNTER_SLOTS + 1),
    MAP_POLICE_STATE: ('array', U32_SIZE, POLICE_STATE_SIZE, COUNTER_SLOTS),
    MAP_PROTO_STATS: ('percpu_array', U32_SIZE, PROTO_STATS_SIZE, PROTO_STATS_ENTRIES),
    MAP_SETTINGS: ('array', U32_SIZE, SETTINGS_SIZE, 1),
    MAP_LEARNED_PATHS: ('lru_hash', PATH_KEY_SIZE, PATH_SIZE, LEARNED_PATHS),
}

# The program's own maps: the object does not declare them pinned and nothing outside the program reads
# them (the installer pins them with the rest all the same). The flow cache's entries hold classifier
# answers, each for the rule-set generation it names.
FLOW_CACHE = 'flow_cache'
FLOW_CACHE_ENTRY_SIZE = 56
FLOW_CACHE_ENTRIES = 1024
PRIVATE_MAP_SPECS = {
    FLOW_CACHE: ('percpu_array', U32_SIZE, FLOW_CACHE_ENTRY_SIZE, FLOW_CACHE_ENTRIES),
}

SetHeader = namedtuple('SetHeader', 'slot nrules nwords default_action generation')

RuleEntry = namedtuple('RuleEntry', (
    'action counter mark ifindex nh_family police_unit nh_addr '
    'police_rate police_depth police_max_idle_ns name'))

PoliceState = namedtuple('PoliceState', 'tokens last_ns')

PathKey = namedtuple('PathKey', 'family proto client client_port service service_port')
PathKey.__doc__ = """A flow as its client sent it: addresses as packed bytes (4 or 16), ports 0 without ports."""
LearnedPath = namedtuple('LearnedPath', 'ifindex peer_mac own_mac')


def _check_slot(slot):
    if slot not in (0, 1):
        raise ValueError('slot must be 0 or 1, not %r' % (slot,))


def _check_range(what, value, limit):
    if not 0 <= value < limit:
        raise ValueError('%s %r out of range 0-%d' % (what, value, limit - 1))


# -- u32 -----------------------------------------------------------------------------------------

def pack_u32(value):
    return _U32.pack(value)


def unpack_u32(data):
    return _U32.unpack(bytes(data[:U32_SIZE]))[0]


# -- LPM keys ------------------------------------------------------------------------------------

def lpm_key(slot, family, addr_bytes, prefixlen):
    """Key of `addr_bytes`/`prefixlen` (the address's own prefix length) in `slot` of a prefix trie.

    The tag byte in front of the address lets one trie hold both families and both slots; the key's
    prefixlen counts it, hence 8 + prefixlen.
    """
    _check_slot(slot)
    if family == 4:
        size, is_ipv6 = 4, 0
    elif family == 6:
        size, is_ipv6 = 16, 1
    else:
        raise ValueError('family must be 4 or 6, not %r' % (family,))
    addr_bytes = bytes(addr_bytes)
    if len(addr_bytes) != size:
        raise ValueError('an IPv%d address has %d bytes, not %d' % (family, size, len(addr_bytes)))
    if not 0 <= prefixlen <= size * 8:
        raise ValueError('IPv%d prefix length %r out of range 0-%d' % (family, prefixlen, size * 8))
    data = bytes([slot << 1 | is_ipv6]) + addr_bytes
    return _LPM_KEY.pack(8 + prefixlen, data.ljust(17, b'\0'))


def parse_lpm_key(key):
    """(slot, family, addr_bytes, prefixlen) of a key made by lpm_key (prefixlen of the address)."""
    key = bytes(key)
    if len(key) != LPM_KEY_SIZE:
        raise ValueError('an LPM key has %d bytes, not %d' % (LPM_KEY_SIZE, len(key)))
    full, data = _LPM_KEY.unpack(key)
    tag = data[0]
    family = 6 if tag & 1 else 4
    size = 16 if family == 6 else 4
    prefixlen = full - 8
    if not 0 <= prefixlen <= size * 8 or tag >> 1 > 1:
        raise ValueError('not a steering LPM key: prefixlen %d, tag %d' % (full, tag))
    return tag >> 1, family, data[1:1 + size], prefixlen


# -- set header ----------------------------------------------------------------------------------

def pack_header(header):
    return _SET_HEADER.pack(header.slot, header.nrules, header.nwords, header.default_action,
                            header.generation)


def unpack_header(data):
    return SetHeader(*_SET_HEADER.unpack(bytes(data[:SET_HEADER_SIZE])))


# -- rules ---------------------------------------------------------------------------------------

def pack_rule(entry):
    name = entry.name.encode('utf-8') if not isinstance(entry.name, bytes) else entry.name
    if len(name) > RULE_NAME_SIZE:
        raise ValueError('rule name %r is longer than %d bytes' % (entry.name, RULE_NAME_SIZE))
    nh_addr = bytes(entry.nh_addr)
    if len(nh_addr) > 16:
        raise ValueError('next hop address longer than 16 bytes')
    return _RULE.pack(entry.action, entry.counter, entry.mark, entry.ifindex, entry.nh_family,
                      entry.police_unit, nh_addr.ljust(16, b'\0'), entry.police_rate, entry.police_depth,
                      entry.police_max_idle_ns, name)


def unpack_rule(data):
    fields = list(_RULE.unpack(bytes(data[:RULE_SIZE])))
    fields[-1] = fields[-1].split(b'\0', 1)[0].decode('utf-8', 'replace')
    return RuleEntry(*fields)


# -- class bit vectors ---------------------------------------------------------------------------

def pack_bits(value):
    """A class value: bit r of word r // 64 is bit r of `value` (rule r), and bit MAX_RULES + w is bit w of
    the candidate word that follows the NWORDS rule words (docs/docsite/rst/dataplane.rst, "The classifier").

    Little-endian u64 words of little-endian bits are exactly the little-endian bytes of the integer.
    """
    if value < 0 or value >> (MAX_RULES + 64):
        raise ValueError('class value out of range (rules 0-%d and a candidate word)' % (MAX_RULES - 1))
    return value.to_bytes(CLASS_BITS_SIZE, 'little')


def unpack_bits(data):
    return int.from_bytes(bytes(data[:CLASS_BITS_SIZE]), 'little')


# -- counters and state --------------------------------------------------------------------------

def _percpu(values, size):
    """Split per-CPU values: a list of per-CPU byte strings, or one buffer of 8-byte aligned items."""
    if isinstance(values, (bytes, bytearray, memoryview)):
        values = bytes(values)
        stride = (size + 7) // 8 * 8
        return [values[i:i + size] for i in range(0, len(values) - size + 1, stride)]
    return [bytes(v[:size]) for v in values]


def unpack_rule_stats(values):
    """(packets, bytes, drops) summed over CPUs."""
    packets = nbytes = drops = 0
    for value in _percpu(values, RULE_STATS_SIZE):
        p, b, d = _RULE_STATS.unpack(value)
        packets += p
        nbytes += b
        drops += d
    return packets, nbytes, drops


def unpack_proto_stats(values):
    """(packets, bytes) summed over CPUs."""
    packets = nbytes = 0
    for value in _percpu(values, PROTO_STATS_SIZE):
        p, b = _PROTO_STATS.unpack(value)
        packets += p
        nbytes += b
    return packets, nbytes


def pack_rule_stats(packets=0, nbytes=0, drops=0):
    """One CPU's rule_stats value (zeroing a counter writes one of these per possible CPU)."""
    return _RULE_STATS.pack(packets, nbytes, drops)


def pack_police_state(tokens=0, last_ns=0):
    """A police_state value; the spin lock word must be written as 0."""
    return _POLICE_STATE.pack(0, 0, tokens, last_ns)


def unpack_police_state(data):
    _lock, _pad, tokens, last_ns = _POLICE_STATE.unpack(bytes(data[:POLICE_STATE_SIZE]))
    return PoliceState(tokens, last_ns)


def pack_settings(clock_override_ns=0):
    return _SETTINGS.pack(clock_override_ns)


def unpack_settings(data):
    return _SETTINGS.unpack(bytes(data[:SETTINGS_SIZE]))[0]


# -- learned paths -------------------------------------------------------------------------------

def pack_path_key(key):
    size = 4 if key.family == 4 else 16
    if len(key.client) != size or len(key.service) != size:
        raise ValueError('an IPv%d flow has %d-byte addresses' % (key.family, size))
    return _PATH_KEY.pack(int(key.family == 6), key.proto, key.client_port, key.service_port, 0,
                          bytes(key.client).ljust(16, b'\0'), bytes(key.service).ljust(16, b'\0'))


def unpack_path_key(data):
    ipv6, proto, client_port, service_port, _pad, client, service = _PATH_KEY.unpack(bytes(data[:PATH_KEY_SIZE]))
    size = 16 if ipv6 else 4
    return PathKey(6 if ipv6 else 4, proto, client[:size], client_port, service[:size], service_port)


def pack_path(path):
    return _PATH.pack(path.ifindex, bytes(path.peer_mac), bytes(path.own_mac))


def unpack_path(data):
    return LearnedPath(*_PATH.unpack(bytes(data[:PATH_SIZE])))


# -- array indexes -------------------------------------------------------------------------------

def proto_index(slot, proto):
    _check_slot(slot)
    _check_range('protocol', proto, 256)
    return slot * 256 + proto


def port_index(slot, port):
    """Index of `port` in a port class array; None is a packet without ports (NO_PORT)."""
    _check_slot(slot)
    if port is None:
        port = NO_PORT
    _check_range('port', port, PORT_INDEXES)
    return slot * PORT_INDEXES + port


def class_index(slot, cls):
    _check_slot(slot)
    _check_range('class id', cls, MAX_CLASSES)
    return slot * MAX_CLASSES + cls


def rule_index(slot, index):
    _check_slot(slot)
    _check_range('rule index', index, MAX_RULES)
    return slot * MAX_RULES + index

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The flow cache (files/bpf/steering.bpf.c): answers only for its generation, and colliding flows
replace each other without ever borrowing the other's answer (root).

The cache is read back from the kernel (the program's own flow_cache map): which entries hold what.
flow_slot() below is the program's hash, written again as the test's oracle: the test checks that the
flows it picks as colliding do share an entry, so a drift between the two fails here, not silently.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import struct

import packets as pk
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L

FLOW_ENTRY = struct.Struct('<Q5QiI')     # generation, the flow's five words, match, pad
MASK64 = (1 << 64) - 1
FIBONACCI = 0x9e3779b97f4a7c15
CACHE_BITS = L.FLOW_CACHE_ENTRIES.bit_length() - 1


def flow_words(src, dst, proto, sport, dport):
    """struct flow as the parser fills it for an IPv4 TCP/UDP packet: five little-endian words."""
    meta = struct.unpack('<Q', struct.pack('<BBBBHH', 0, proto, 1, 0, sport, dport))[0]
    saddr = struct.unpack('<Q', ipaddress.ip_address(src).packed.ljust(8, b'\0'))[0]
    daddr = struct.unpack('<Q', ipaddress.ip_address(dst).packed.ljust(8, b'\0'))[0]
    return (meta, saddr, 0, daddr, 0)


def flow_slot(words, generation):
    meta, s0, s1, d0, d1 = words
    x = meta ^ ((s0 << 32 | s0 >> 32) & MASK64) ^ s1 ^ d0 ^ d1 ^ generation
    return ((x * FIBONACCI) & MASK64) >> (64 - CACHE_BITS)


def cache_entries(steering):
    """{(cpu, slot): (generation, words, match)} of the filled entries of the program's flow cache."""
    cache = steering.obj.map(L.FLOW_CACHE)
    out = {}
    for slot in range(L.FLOW_CACHE_ENTRIES):
        for cpu, value in enumerate(cache.lookup_percpu(L.pack_u32(slot))):
            generation, *rest = FLOW_ENTRY.unpack(value)
            if generation:
                out[(cpu, slot)] = (generation, tuple(rest[:5]), rest[5])
    return out


SRC, DST = '10.0.0.1', '10.9.0.1'


def frame(dport, sport=1000):
    return pk.ipv4_frame(src=SRC, dst=DST, proto='udp', sport=sport, dport=dport)


def test_an_entry_answers_only_for_its_generation(steering):
    s = steering
    s.apply([{'name': 'mark-53', 'action': 'mark', 'mark': 7, 'match': {'proto': 'udp', 'dport': 53}}], 'drop')
    for dummy in range(3):
        assert s.check(frame(53)).counter == 'mark-53'
    words = flow_words(SRC, DST, 17, 1000, 53)
    entries = cache_entries(s)
    assert set(entries.values()) == {(s.header.generation, words, 0)}
    assert set(slot for dummy, slot in entries) == {flow_slot(words, s.header.generation)}

    # the same flow under the next set: its entry is for the old generation, so the classifier answers
    s.apply([{'name': 'drop-53', 'action': 'drop', 'match': {'proto': 'udp', 'dport': 53}},
             {'name': 'mark-53', 'action': 'mark', 'mark': 7, 'match': {'proto': 'udp', 'dport': 53}}], 'drop')
    assert s.check(frame(53)).counter == 'drop-53'
    assert (s.header.generation, words, 0) in cache_entries(s).values()
    assert s.check(frame(54)).counter == '(default)'
    assert (s.header.generation, flow_words(SRC, DST, 17, 1000, 54), -1) in cache_entries(s).values()
    s.check_totals()


def test_colliding_flows_take_turns_in_one_entry(steering):
    s = steering
    s.apply([{'name': 'dns', 'action': 'mark', 'mark': 2, 'match': {'proto': 'udp', 'dport': 53}},
             {'name': 'udp', 'action': 'drop', 'match': {'proto': 'udp'}}], 'pass')
    generation = s.header.generation
    dns = dict((flow_slot(flow_words(SRC, DST, 17, sport, 53), generation), sport) for sport in range(1000, 3000))
    for sport in range(1000, 3000):
        slot = flow_slot(flow_words(SRC, DST, 17, sport, 54), generation)
        if slot in dns:
            pair = ((dns[slot], 53), (sport, 54))
            break
    else:
        raise AssertionError('no two flows share an entry: widen the range')
    # each packet finds the other flow in the entry: the classifier answers, and the entry changes hands
    for dummy in range(3):
        assert [s.check(frame(dport, sport)).counter
                for sport, dport in pair] == ['dns', 'udp']
    s.check_totals()
    held = dict(((cpu, at), (words, match)) for (cpu, at), (gen, words, match) in cache_entries(s).items()
                if gen == generation)
    assert set(at for dummy, at in held) == {slot}
    answers = dict((flow_words(SRC, DST, 17, sport, dport), match) for (sport, dport), match in zip(pair, (0, 1)))
    assert all(answers[words] == match for words, match in held.values()), held

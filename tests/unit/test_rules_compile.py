# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compilation to tables and decoding back, checked without a kernel.

Two independent checks of the compiler: decode_tables(compile_tables(rs)) == rs (the tables say what
the rules say), and a Python evaluation of the tables exactly as the program walks them (LPM lookup,
array lookups, AND of five vectors, lowest bit) agrees with a naive first-match over the rules for
random packets biased to hit prefixes and port range edges.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
from collections import namedtuple

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils import _classifier as C
from ansible_collections.ebpf.tc.plugins.module_utils import _rules as R
from ansible_collections.ebpf.tc.plugins.module_utils._errors import RuleError

# -- strategies: valid rule sets in user-facing form, and packets that hit them --------------------
# Prefixes are drawn around a few anchors so that they nest and overlap (the hard case for the LPM
# classes); ports cluster near a few values so that ranges touch, overlap and nest.

V4_ANCHORS = ('10.0.0.0', '10.1.2.0', '192.0.2.0', '198.51.100.10', '0.0.0.0', '255.255.255.255')
V6_ANCHORS = ('2001:db8::', '2001:db8:100::10', 'fe80::', '::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')
PORT_ANCHORS = (0, 1, 22, 53, 80, 443, 1000, 1023, 1024, 8080, 65534, 65535)
PROTO_CHOICES = ('tcp', 'udp', 'sctp', 'icmp', 'icmpv6', 0, 47, 255, '6', 17)
PORT_PROTO_CHOICES = ('tcp', 'udp', 'sctp', 6, '17', 132)
RATES = ('100pps', '10kpps', '1mbit', '500kbit', '8000bit', '10mbps', '1gbit', '3pps', '1234567bit')
INTERFACES = ('eth0', 'eth1', 'veth-a')
IFINDEX = {'eth0': 2, 'eth1': 3, 'veth-a': 17}
IFNAME = dict((v, k) for k, v in IFINDEX.items())

Packet = namedtuple('Packet', 'family src dst proto sport dport')


@st.composite
def prefixes(draw, family):
    anchors, bits = (V4_ANCHORS, 32) if family == 4 else (V6_ANCHORS, 128)
    base = int(ipaddress.ip_address(draw(st.sampled_from(anchors))))
    noise = draw(st.integers(0, 0xffff))
    shift = draw(st.sampled_from((0, 8, bits - 24, bits - 16)))
    addr = (base ^ (noise << shift)) & ((1 << bits) - 1)
    if family == 4:
        plen = draw(st.one_of(st.sampled_from((0, 8, 16, 24, 31, 32)), st.integers(0, 32)))
    else:
        plen = draw(st.one_of(st.sampled_from((0, 32, 48, 64, 127, 128)), st.integers(0, 128)))
    net = ipaddress.ip_network((addr, plen), strict=False)
    if net.prefixlen == bits and draw(st.booleans()):
        return str(net.network_address)  # a bare address is a host prefix
    return str(net)


@st.composite
def address_field(draw, families):
    items = draw(st.lists(st.sampled_from(sorted(families)).flatmap(prefixes), min_size=1, max_size=4))
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return items


def port():
    return st.one_of(st.sampled_from(PORT_ANCHORS), st.integers(0, 65535))


@st.composite
def port_field(draw):
    items = []
    for dummy in range(draw(st.integers(1, 3))):
        a = draw(port())
        if draw(st.booleans()):
            items.append(a)
        else:
            b = min(65535, a + draw(st.one_of(st.integers(0, 3), st.integers(0, 70000))))
            items.append('%d-%d' % (a, b))
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return items


def _versions(field):
    if field is None:
        return {4, 6}
    items = field if isinstance(field, list) else [field]
    return set(ipaddress.ip_network(i).version for i in items)


@st.composite
def rule_dicts(draw, name):
    """One valid rule in user-facing form."""
    match = {}
    src_fams = draw(st.sampled_from(({4}, {6}, {4, 6})))
    if draw(st.booleans()):
        match['src'] = draw(address_field(src_fams))
    if draw(st.booleans()):
        dst_fams = draw(st.sampled_from(({4}, {6}, {4, 6})))
        dst = draw(address_field(dst_fams))
        if _versions(match.get('src')) & _versions(dst):
            match['dst'] = dst
    if draw(st.booleans()):
        match['proto'] = draw(st.lists(st.sampled_from(PORT_PROTO_CHOICES), min_size=1, max_size=3))
        for key in ('sport', 'dport'):
            if draw(st.booleans()):
                match[key] = draw(port_field())
    elif draw(st.booleans()):
        protos = draw(st.lists(st.sampled_from(PROTO_CHOICES), min_size=1, max_size=3))
        match['proto'] = protos[0] if len(protos) == 1 else protos

    rule = {'name': name, 'action': draw(st.sampled_from(('pass', 'drop', 'redirect', 'mark', 'police')))}
    if match or draw(st.booleans()):
        rule['match'] = match
    if rule['action'] == 'redirect':
        rule['redirect'] = {'interface': draw(st.sampled_from(INTERFACES))}
        fams = _versions(match.get('src')) & _versions(match.get('dst'))
        if len(fams) == 1 and draw(st.booleans()):
            family = fams.pop()
            rule['redirect']['via'] = '192.0.2.1' if family == 4 else draw(st.sampled_from(('fe80::1',
                                                                                           '2001:db8::ff')))
    elif rule['action'] == 'mark':
        value = draw(st.integers(0, 0xffffffff))
        rule['mark'] = draw(st.sampled_from((value, hex(value))))
    elif rule['action'] == 'police':
        rate = draw(st.one_of(st.sampled_from(RATES), st.integers(1, 10 ** 6).map(lambda n: '%dpps' % n)))
        rule['police'] = {'rate': rate}
        if draw(st.booleans()):
            if rate.endswith('pps'):
                rule['police']['burst'] = draw(st.integers(1, 100000))
            else:
                sizes = st.sampled_from(('64kb', '1mb', '1500b'))
                rule['police']['burst'] = draw(st.one_of(st.integers(64, 10 ** 6), sizes))
    return rule


@st.composite
def rule_sets(draw, min_rules=0, max_rules=12):
    """(list of rule dicts, default_action)."""
    count = draw(st.integers(min_rules, max_rules))
    rules = [draw(rule_dicts('r%d' % i)) for i in range(count)]
    return rules, draw(st.sampled_from(('pass', 'drop')))


def _address_in(draw, net):
    """An address inside `net`, often at its edges."""
    size = net.num_addresses
    offset = draw(st.one_of(st.sampled_from((0, size - 1)), st.integers(0, size - 1)))
    return net.network_address + offset


@st.composite
def packets(draw, ruleset):
    """A packet biased to hit the rule set's prefixes, protocols and port range edges."""
    family = draw(st.sampled_from((4, 6)))
    nets = [n for rule in ruleset.rules for field in (rule.src, rule.dst) if field for n in field
            if n.version == family]
    root = ipaddress.ip_network('0.0.0.0/0' if family == 4 else '::/0')

    def address():
        if nets and draw(st.integers(0, 4)):
            target = draw(st.sampled_from(nets))
            if draw(st.integers(0, 3)) == 0 and target.prefixlen:
                # just outside the prefix
                edge = draw(st.sampled_from((-1, target.num_addresses)))
                value = int(target.network_address) + edge
                if 0 <= value < root.num_addresses:
                    return ipaddress.ip_address(value) if family == 4 else ipaddress.IPv6Address(value)
            return _address_in(draw, target)
        return _address_in(draw, root)

    protos = set([6, 17, 132, 1, 58, 0, 47, 255])
    for rule in ruleset.rules:
        protos.update(rule.proto or ())
    proto = draw(st.sampled_from(sorted(protos)))
    sport = dport = None
    if proto in (6, 17, 132) and draw(st.integers(0, 5)):
        edges = set(PORT_ANCHORS)
        for rule in ruleset.rules:
            for field in (rule.sport, rule.dport):
                for lo, hi in field or ():
                    edges.update(p for p in (lo - 1, lo, hi, hi + 1) if 0 <= p <= 65535)
        edges = sorted(edges)
        sport = draw(st.one_of(st.sampled_from(edges), st.integers(0, 65535)))
        dport = draw(st.one_of(st.sampled_from(edges), st.integers(0, 65535)))
    return Packet(family, address(), address(), proto, sport, dport)


# -- evaluating tables as the program does -------------------------------------------------------

class TableEvaluator:
    """Classifies packets through compiled Tables the way steering.bpf.c does."""

    def __init__(self, tables):
        self.tables = tables
        self.slot = tables.header.slot
        self.src = self._parse(tables.src_prefixes)
        self.dst = self._parse(tables.dst_prefixes)

    def _parse(self, entries):
        out = []
        for key, cid in entries.items():
            slot, family, addr, plen = L.parse_lpm_key(key)
            assert slot == self.slot
            out.append((family, int.from_bytes(addr, 'big'), plen, cid))
        return out

    @staticmethod
    def _lpm(entries, family, addr):
        bits = 32 if family == 4 else 128
        best = None
        value = int(addr)
        for fam, net, plen, cid in entries:
            if fam != family:
                continue
            shift = bits - plen
            if value >> shift == net >> shift and (best is None or plen > best[0]):
                best = (plen, cid)
        return None if best is None else best[1]

    def first_match(self, pkt):
        """Index of the rule that decides `pkt`, or None for the default action."""
        t = self.tables
        sport = L.NO_PORT if pkt.sport is None else pkt.sport
        dport = L.NO_PORT if pkt.dport is None else pkt.dport
        cids = [self._lpm(self.src, pkt.family, pkt.src), self._lpm(self.dst, pkt.family, pkt.dst),
                t.proto_class[pkt.proto], t.sport_class[sport], t.dport_class[dport]]
        if any(c is None or not 0 <= c < L.MAX_CLASSES for c in cids):
            return None
        words = (1 << (64 * t.header.nwords)) - 1
        for c in cids:
            words &= t.class_bits[c]
        first = (words & -words).bit_length() - 1 if words else None
        first = first if first is not None and first < t.header.nrules else None
        # the program scans only the candidate words (the OR of the five classes' cand): same answer
        cand = 0
        for c in cids:
            cand |= t.class_bits[c] >> L.MAX_RULES
        scanned = 0
        for w in range(t.header.nwords):
            if cand >> w & 1:
                scanned |= ((1 << 64) - 1) << (64 * w)
        hits = words & scanned
        assert ((hits & -hits).bit_length() - 1 if hits else None) == first
        return first


def in_ranges(ranges, port):
    if ranges is None:
        return True
    return port is not None and any(lo <= port <= hi for lo, hi in ranges)


def naive_first_match(ruleset, pkt):
    """The rule semantics of docs/docsite/rst/rules.rst, read literally."""
    for index, rule in enumerate(ruleset.rules):
        if rule.src is not None and not any(n.version == pkt.family and pkt.src in n for n in rule.src):
            continue
        if rule.dst is not None and not any(n.version == pkt.family and pkt.dst in n for n in rule.dst):
            continue
        if rule.proto is not None and pkt.proto not in rule.proto:
            continue
        if not in_ranges(rule.sport, pkt.sport) or not in_ranges(rule.dport, pkt.dport):
            continue
        return index
    return None


def compile_rs(ruleset, slot=0, counters=None):
    if counters is None:
        counters = list(range(len(ruleset.rules)))
    return C.compile_tables(ruleset, slot, counters, IFINDEX.get)


def decode(tables):
    return C.decode_tables(tables, IFNAME.get)


def check_table_shapes(tables, ruleset):
    """Invariants every compiled table set has, whatever the rules."""
    n = len(ruleset.rules)
    assert tables.header == L.SetHeader(tables.header.slot, n, (n + 63) // 64,
                                        L.ACT_DROP if ruleset.default_action == 'drop' else L.ACT_PASS, 0)
    assert len(tables.proto_class) == 256
    assert len(tables.sport_class) == len(tables.dport_class) == L.PORT_INDEXES
    assert sorted(tables.class_bits) == list(range(len(tables.class_bits)))  # dense ids from 0
    assert len(set(tables.class_bits.values())) == len(tables.class_bits)  # one id per vector
    used = set(tables.proto_class) | set(tables.sport_class) | set(tables.dport_class) | \
        set(tables.src_prefixes.values()) | set(tables.dst_prefixes.values())
    assert used == set(tables.class_bits)
    rule_mask = (1 << L.MAX_RULES) - 1
    assert all(0 <= value & rule_mask < 1 << n for value in tables.class_bits.values())
    assert all(value >> L.MAX_RULES < 1 << tables.header.nwords for value in tables.class_bits.values())
    for entries in (tables.src_prefixes, tables.dst_prefixes):
        parsed = [L.parse_lpm_key(k) for k in entries]
        assert all(key[0] == tables.header.slot for key in parsed)
        roots = [(key[1], key[3]) for key in parsed if key[3] == 0]
        assert sorted(roots) == [(4, 0), (6, 0)]
    assert len(tables.rules) == n
    for entry in tables.rules:
        L.pack_rule(entry)  # every entry packs


# -- explicit cases ------------------------------------------------------------------------------

EXAMPLE = [
    {'name': 'vip-return-eth1',
     'match': {'src': ['198.51.100.10/32'], 'proto': 'tcp', 'sport': 8080},
     'action': 'redirect', 'redirect': {'interface': 'eth1', 'via': '192.0.2.1'}},
    {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'},
    {'name': 'bulk', 'match': {'dport': '5000-6000', 'proto': 'udp'}, 'action': 'police',
     'police': {'rate': '100pps', 'burst': 200}},
    {'name': 'tag', 'match': {'dst': '192.0.2.0/24'}, 'action': 'mark', 'mark': 0x10},
    {'name': 'v6', 'match': {'dst': '2001:db8::/32'}, 'action': 'redirect',
     'redirect': {'interface': 'veth-a', 'via': '2001:db8::ff'}},
    {'name': 'bw', 'action': 'police', 'police': {'rate': '10mbit', 'burst': '64kb'}},
]


def bits_of(tables, cid):
    return set(i for i in range(tables.header.nrules) if tables.class_bits[cid] >> i & 1)


def prefix_classes(tables, field):
    out = {}
    for key, cid in getattr(tables, field).items():
        family, addr, plen = L.parse_lpm_key(key)[1:]
        out[str(ipaddress.ip_network((ipaddress.ip_address(addr) if family == 4
                                      else ipaddress.IPv6Address(addr), plen)))] = bits_of(tables, cid)
    return out


def test_example_tables():
    rs = R.validate(EXAMPLE, 'drop')
    t = compile_rs(rs, slot=1, counters=[10, 11, 12, 13, 14, 15])
    check_table_shapes(t, rs)
    assert t.header == L.SetHeader(1, 6, 1, L.ACT_DROP, 0)
    assert prefix_classes(t, 'src_prefixes') == {
        '0.0.0.0/0': {1, 2, 3, 4, 5}, '::/0': {1, 2, 3, 4, 5}, '198.51.100.10/32': {0, 1, 2, 3, 4, 5}}
    assert prefix_classes(t, 'dst_prefixes') == {
        '0.0.0.0/0': {0, 1, 2, 5}, '::/0': {0, 1, 2, 5}, '192.0.2.0/24': {0, 1, 2, 3, 5},
        '2001:db8::/32': {0, 1, 2, 4, 5}}
    assert bits_of(t, t.proto_class[6]) == {0, 3, 4, 5}
    assert bits_of(t, t.proto_class[1]) == {1, 3, 4, 5}
    assert bits_of(t, t.proto_class[17]) == {2, 3, 4, 5}
    assert bits_of(t, t.proto_class[58]) == {3, 4, 5}
    assert bits_of(t, t.sport_class[8080]) == {0, 1, 2, 3, 4, 5}
    assert bits_of(t, t.sport_class[8081]) == {1, 2, 3, 4, 5}
    assert bits_of(t, t.sport_class[L.NO_PORT]) == {1, 2, 3, 4, 5}
    assert bits_of(t, t.dport_class[4999]) == {0, 1, 3, 4, 5}
    assert bits_of(t, t.dport_class[5000]) == bits_of(t, t.dport_class[6000]) == {0, 1, 2, 3, 4, 5}
    assert bits_of(t, t.dport_class[L.NO_PORT]) == {0, 1, 3, 4, 5}

    vip, ping, bulk, tag, v6, bw = t.rules
    assert vip == L.RuleEntry(L.ACT_REDIRECT, 10, 0, 3, L.AF_INET, 0, bytes([192, 0, 2, 1]) + b'\0' * 12, 0, 0, 0,
                              'vip-return-eth1')
    assert ping == L.RuleEntry(L.ACT_DROP, 11, 0, 0, 0, 0, b'\0' * 16, 0, 0, 0, 'no-ping')
    assert bulk == L.RuleEntry(L.ACT_POLICE, 12, 0, 0, 0, L.POLICE_PACKETS, b'\0' * 16, 100, 200 * 10 ** 9,
                               2 * 10 ** 9, 'bulk')
    assert tag.action == L.ACT_MARK and tag.mark == 16 and tag.counter == 13
    assert v6.nh_family == L.AF_INET6 and v6.nh_addr == ipaddress.ip_address('2001:db8::ff').packed
    assert v6.ifindex == 17
    assert bw.police_unit == L.POLICE_BITS and bw.police_rate == 10 ** 7
    assert bw.police_depth == 65536 * 8 * 10 ** 9 and bw.police_max_idle_ns == 65536 * 8 * 100
    assert decode(t) == rs


def test_nested_prefixes_inherit_their_ancestors_rules():
    rs = R.validate([
        {'name': 'a', 'match': {'src': '10.0.0.0/8'}, 'action': 'pass'},
        {'name': 'b', 'match': {'src': ['10.1.0.0/16', '2001:db8::/32']}, 'action': 'pass'},
        {'name': 'c', 'action': 'pass'},
        {'name': 'd', 'match': {'src': ['10.1.2.0/24', '0.0.0.0/0']}, 'action': 'pass'},
        {'name': 'e', 'match': {'src': ['10.1.2.0/24']}, 'action': 'pass'},
    ])
    t = compile_rs(rs)
    assert prefix_classes(t, 'src_prefixes') == {
        '0.0.0.0/0': {2, 3}, '::/0': {2},
        '10.0.0.0/8': {0, 2, 3}, '10.1.0.0/16': {0, 1, 2, 3}, '10.1.2.0/24': {0, 1, 2, 3, 4},
        '2001:db8::/32': {1, 2}}
    assert decode(t) == rs
    assert rs.rules[3].src == (ipaddress.ip_network('0.0.0.0/0'),)


def test_empty_rule_set():
    for default in ('pass', 'drop'):
        rs = R.validate([], default)
        t = compile_rs(rs)
        check_table_shapes(t, rs)
        assert t.header.nwords == 0 and t.class_bits == {0: 0}
        assert len(t.src_prefixes) == len(t.dst_prefixes) == 2
        assert decode(t) == rs


def test_nwords():
    for n, words in ((1, 1), (63, 1), (64, 1), (65, 2), (128, 2), (129, 3), (4096, 64)):
        rs = R.validate([{'name': 'r%d' % i, 'action': 'drop'} for i in range(n)])
        assert compile_rs(rs).header.nwords == words


def test_class_ids_are_shared_across_fields_and_deterministic():
    rs = R.validate(EXAMPLE)
    a, b = compile_rs(rs), compile_rs(rs)
    assert a == b
    # a rule set where every field has the "everyone" vector: one class for all of them
    # (a rule specifying no field is designated on proto: its proto class also has candidate word 0)
    t = compile_rs(R.validate([{'name': 'x', 'action': 'drop'}]))
    assert t.class_bits == {0: 1, 1: 1 | 1 << L.MAX_RULES}
    assert set(t.sport_class) == set(t.src_prefixes.values()) == {0}
    assert set(t.proto_class) == {1}


def test_slot_only_changes_keys():
    rs = R.validate(EXAMPLE)
    a, b = compile_rs(rs, slot=0), compile_rs(rs, slot=1)
    assert a.class_bits == b.class_bits and a.proto_class == b.proto_class and a.rules == b.rules
    assert sorted(L.parse_lpm_key(k)[1:] for k in a.src_prefixes) == \
        sorted(L.parse_lpm_key(k)[1:] for k in b.src_prefixes)
    assert decode(b) == rs


def test_ports_cover_the_edges():
    rs = R.validate([
        {'name': 'lo', 'match': {'proto': 'tcp', 'dport': [0, '65535']}, 'action': 'drop'},
        {'name': 'all', 'match': {'proto': 'tcp', 'dport': '0-65535'}, 'action': 'drop'},
        {'name': 'mid', 'match': {'proto': 'udp', 'sport': ['10-20', '21-30', 40]}, 'action': 'drop'},
    ])
    t = compile_rs(rs)
    assert bits_of(t, t.dport_class[0]) == {0, 1, 2}
    assert bits_of(t, t.dport_class[1]) == {1, 2}
    assert bits_of(t, t.dport_class[65535]) == {0, 1, 2}
    assert bits_of(t, t.dport_class[L.NO_PORT]) == {2}
    assert bits_of(t, t.sport_class[L.NO_PORT]) == {0, 1}
    assert [bits_of(t, t.sport_class[p]) for p in (9, 10, 30, 31, 40, 41)] == \
        [{0, 1}, {0, 1, 2}, {0, 1, 2}, {0, 1}, {0, 1, 2}, {0, 1}]
    assert rs.rules[2].sport == ((10, 30), (40, 40))
    assert decode(t) == rs


def test_compile_errors():
    rs = R.validate(EXAMPLE)
    with pytest.raises(ValueError):
        C.compile_tables(rs, 0, [0, 1], IFINDEX.get)
    with pytest.raises(ValueError):
        C.compile_tables(rs, 0, [0, 1, 2, 3, 4, 4], IFINDEX.get)
    with pytest.raises(ValueError):
        C.compile_tables(rs, 0, [0, 1, 2, 3, 4, L.COUNTER_SLOTS], IFINDEX.get)
    with pytest.raises(ValueError):
        C.compile_tables(rs, 2, list(range(6)), IFINDEX.get)
    with pytest.raises(RuleError) as info:
        C.compile_tables(rs, 0, list(range(6)), lambda name: 0 if name == 'veth-a' else 5)
    assert (info.value.rule, info.value.field) == ('v6', 'redirect.interface')


def test_prefix_limit():
    # 4095 rules naming 2 distinct prefixes each + 2 roots = 8192 entries: the limit exactly
    def rules(count):
        out = []
        for i in range(count):
            pair = [str(ipaddress.ip_network((0x0a000000 + 2 * i, 32))),
                    str(ipaddress.ip_network((0x0a000000 + 2 * i + 1, 32)))]
            out.append({'name': 'r%d' % i, 'match': {'dst': pair}, 'action': 'drop'})
        return out
    rs = R.validate(rules(4095))
    t = compile_rs(rs)
    assert len(t.dst_prefixes) == L.MAX_PREFIXES
    assert decode(t) == rs
    rs = R.validate(rules(4095) + [{'name': 'one-more', 'match': {'dst': '192.0.2.1'}, 'action': 'drop'}])
    with pytest.raises(RuleError) as info:
        compile_rs(rs)
    assert info.value.field == 'rules' and 'MAX_PREFIXES=8192' in str(info.value)
    assert 'match.dst names 8193 distinct prefixes' in str(info.value)


def test_class_limit():
    # sport ranges [i, 65535] give the 4096 "rules 0..p" classes (the last is the full vector, as on
    # proto tcp and the address roots, none with candidate words: every rule is designated on dport);
    # dport ranges [1, max(i, 1)] give the 4094 "rules p..4095" classes for ports 2..4095, with candidate
    # words, and port 1's; ports 0 and above 4095 share the empty vector with NO_PORT: 8192 classes.
    rules = [{'name': 'r%d' % i, 'match': {'proto': 'tcp', 'sport': '%d-65535' % i, 'dport': '1-%d' % max(i, 1)},
              'action': 'drop'} for i in range(L.MAX_RULES)]
    rs = R.validate(rules)
    t = compile_rs(rs)
    assert len(t.class_bits) == L.MAX_CLASSES
    assert decode(t) == rs
    # the src root now lacks rule 5 (a new vector), and 10.0.0.0/8 holds it with its candidate word (rule 5
    # is now designated on src)
    rules[5]['match']['src'] = '10.0.0.0/8'
    with pytest.raises(RuleError) as info:
        compile_rs(R.validate(rules))
    assert info.value.field == 'rules' and 'MAX_CLASSES=8192' in str(info.value)
    assert 'needs 8194' in str(info.value)


def test_big_mixed_set_round_trips():
    rules = []
    for i in range(L.MAX_RULES):
        match = {'src': '10.%d.%d.0/24' % (i // 256, i % 256)}
        if i % 3 == 0:
            match['dst'] = ['192.0.2.0/24', '10.%d.0.0/16' % (i % 256)]
        if i % 2 == 0:
            match['proto'] = ['tcp', 'udp']
            lo = 1000 + (i % 50) * 10
            match['dport'] = ['%d-%d' % (lo, lo + 100), 443]
        rules.append({'name': 'r%d' % i, 'match': match, 'action': ('drop', 'pass', 'mark')[i % 3],
                      'mark': i if i % 3 == 2 else None})
    rs = R.validate(rules, 'drop')
    t = compile_rs(rs)
    check_table_shapes(t, rs)
    assert decode(t) == rs


def test_decode_ignores_the_other_slots_keys_and_names_lost_interfaces():
    rs = R.validate(EXAMPLE)
    t = compile_rs(rs, slot=0)
    other = compile_rs(R.validate([{'name': 'z', 'match': {'src': '203.0.113.0/24'}, 'action': 'drop'}]),
                       slot=1)
    mixed = t._replace(src_prefixes=dict(t.src_prefixes, **{}))
    mixed.src_prefixes.update(other.src_prefixes)
    assert decode(mixed) == rs
    gone = C.decode_tables(t, lambda ifindex: None if ifindex == 17 else IFNAME[ifindex])
    assert gone.rules[4].redirect.interface == '#17'
    assert gone != rs


def test_decode_refuses_unknown_codes():
    t = compile_rs(R.validate(EXAMPLE))
    bad = t._replace(rules=[t.rules[0]._replace(action=9)] + t.rules[1:])
    with pytest.raises(RuleError):
        decode(bad)
    with pytest.raises(RuleError):
        decode(t._replace(header=t.header._replace(default_action=L.ACT_MARK)))


# -- properties ----------------------------------------------------------------------------------

PROPERTY = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(rule_sets())
def test_validate_round_trips_through_dicts(drawn):
    rules, default = drawn
    rs = R.validate(rules, default)
    assert R.validate(rs.to_dicts(), rs.default_action) == rs
    assert R.validate(rs.to_dicts(), rs.default_action).to_dicts() == rs.to_dicts()


@PROPERTY
@given(rule_sets(), st.integers(0, 1))
def test_decode_inverts_compile(drawn, slot):
    rules, default = drawn
    rs = R.validate(rules, default)
    t = compile_rs(rs, slot=slot, counters=[L.COUNTER_SLOTS - 1 - i for i in range(len(rs.rules))])
    check_table_shapes(t, rs)
    assert decode(t) == rs


@settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(rule_sets(min_rules=60, max_rules=140))
def test_decode_inverts_compile_across_words(drawn):
    rules, default = drawn
    rs = R.validate(rules, default)
    t = compile_rs(rs)
    check_table_shapes(t, rs)
    assert decode(t) == rs


@PROPERTY
@given(st.data())
def test_tables_classify_like_first_match(data):
    rules, default = data.draw(rule_sets())
    rs = R.validate(rules, default)
    t = compile_rs(rs, slot=data.draw(st.integers(0, 1)))
    evaluator = TableEvaluator(t)
    for dummy in range(30):
        pkt = data.draw(packets(rs))
        assert evaluator.first_match(pkt) == naive_first_match(rs, pkt), pkt


@settings(deadline=None, max_examples=20, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(st.data())
def test_tables_classify_like_first_match_across_words(data):
    rules, default = data.draw(rule_sets(min_rules=60, max_rules=140))
    rs = R.validate(rules, default)
    evaluator = TableEvaluator(compile_rs(rs))
    for dummy in range(40):
        pkt = data.draw(packets(rs))
        assert evaluator.first_match(pkt) == naive_first_match(rs, pkt), pkt


def test_evaluator_sanity():
    """The evaluator and the naive matcher on hand-picked packets of the example."""
    rs = R.validate(EXAMPLE)
    ev = TableEvaluator(compile_rs(rs))
    ip = ipaddress.ip_address
    cases = [
        (Packet(4, ip('198.51.100.10'), ip('8.8.8.8'), 6, 8080, 1234), 0),
        (Packet(4, ip('198.51.100.10'), ip('8.8.8.8'), 6, None, None), 5),    # no ports: not rule 0
        (Packet(4, ip('198.51.100.11'), ip('192.0.2.9'), 6, 8080, 1), 3),
        (Packet(6, ip('2001:db8::1'), ip('2001:db8::2'), 1, None, None), 1),
        (Packet(6, ip('2001:db8::1'), ip('2001:db9::2'), 17, 1, 5500), 2),
        (Packet(6, ip('2001:db8::1'), ip('2001:db8::2'), 58, None, None), 4),
    ]
    for pkt, want in cases:
        assert ev.first_match(pkt) == want == naive_first_match(rs, pkt), pkt
    empty = R.validate([])
    pkt = Packet(4, ip('1.2.3.4'), ip('5.6.7.8'), 6, 1, 2)
    assert TableEvaluator(compile_rs(empty)).first_match(pkt) is None

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The classifier's tables: a canonical RuleSet (``_rules``) compiled for the program's maps, and decoded
back. Two pure steps, no I/O; the byte layouts are ``_layout``'s.

- ``compile_tables`` turns a RuleSet into the class tables of docs/docsite/rst/dataplane.rst for one slot.
- ``decode_tables`` rebuilds the RuleSet from the tables alone: the maps are the only source of truth
  about what is applied, and ``decode_tables(compile_tables(rs)) == rs``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
from collections import namedtuple

from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils._errors import RuleError
from ansible_collections.ebpf.tc.plugins.module_utils._rules import (
    DEFAULT_ACTIONS, ICMP_PROTOS, MAX_PORT, ROOT_NETS, Police, Redirect, Rule, RuleSet, canonical_prefixes, is_int,
    net_contains, net_key)

# the action codes of the program's rule entries
ACTION_CODES = {'pass': L.ACT_PASS, 'drop': L.ACT_DROP, 'redirect': L.ACT_REDIRECT, 'mark': L.ACT_MARK,
                'police': L.ACT_POLICE, 'learn': L.ACT_LEARN, 'reply': L.ACT_REPLY}
ACTION_NAMES = dict((code, name) for name, code in ACTION_CODES.items())
Tables = namedtuple('Tables', 'header src_prefixes dst_prefixes proto_class sport_class dport_class '
                              'class_bits rules')
Tables.__doc__ = """One slot's tables, as compile_tables makes them and as read back from the maps.

`header` SetHeader; `src_prefixes`/`dst_prefixes` dict LPM key bytes -> class id (this slot's keys);
`proto_class` 256 class ids; `sport_class`/`dport_class` PORT_INDEXES class ids (NO_PORT last);
`class_bits` dict class id -> int (bit r = rule r; bit MAX_RULES + w = candidate word w); `rules` list of
RuleEntry."""


def _iter_bits(bits):
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low


# -- compilation ---------------------------------------------------------------------------------

# The field each rule is designated on: the first it specifies, in this order (the most selective first);
# a rule that specifies none is designated on proto, where it is in every class.
DESIGNATED_ORDER = ('dst', 'src', 'dport', 'sport', 'proto')
_WORD = (1 << 64) - 1

# The parser puts an ICMP message's type where a packet's source port is and its code where the
# destination port is (as Open vSwitch does): the port tables hold a rule's ports or its ICMP type and
# code, never both, and the rule's protocols tell which (ports need tcp/udp/sctp, ICMP fields icmp/icmpv6).
_ICMP_IN_PORT_TABLE = {'sport': 'icmp_type', 'dport': 'icmp_code'}


def table_field(rule, name):
    """What `rule` puts in the table of field `name` (src, dst, proto, sport, dport), None when nothing."""
    value = getattr(rule, name)
    if value is None and name in _ICMP_IN_PORT_TABLE:
        value = getattr(rule, _ICMP_IN_PORT_TABLE[name])
    return value


def designated_rules(rules):
    """Per field, the bits of the rules designated on it (see DESIGNATED_ORDER)."""
    out = dict((name, 0) for name in DESIGNATED_ORDER)
    for index, rule in enumerate(rules):
        name = next((n for n in DESIGNATED_ORDER if table_field(rule, n) is not None), 'proto')
        out[name] |= 1 << index
    return out


def candidate_word(bits):
    """Bit w set when word w (rules 64w to 64w+63) of `bits` is not empty."""
    word = 0
    index = 0
    while bits:
        if bits & _WORD:
            word |= 1 << index
        bits >>= 64
        index += 1
    return word


class _ClassPool:
    """Class ids of one slot, shared by all five fields: one id per distinct class value.

    A class value is the class's rule bit vector with its candidate word above it (bit MAX_RULES + w):
    word w holds a rule of the class that is designated on the field. A rule matching a packet matches it
    on its designated field, so the words of all the packet's matches are among the OR of its five
    classes' candidate words: the program scans only those (docs/docsite/rst/dataplane.rst, "The classifier").
    Ids are given in order of first use, so the same rule set always compiles to the same tables.
    """

    def __init__(self, designated):
        self.ids = {}
        self.designated = designated
        self._values = {}

    def field(self, name):
        """The class-id function of one field: bits -> id."""
        mine = self.designated[name]

        def class_id(bits):
            value = self._values.get((name, bits))
            if value is None:
                value = self._values[(name, bits)] = bits | candidate_word(bits & mine) << L.MAX_RULES
            cid = self.ids.get(value)
            if cid is None:
                cid = len(self.ids)
                self.ids[value] = cid
            return cid
        return class_id


def _compile_prefixes(rules, attr, slot, pool):
    """LPM entries of one address field: every named prefix plus both family roots.

    Walking the prefixes in sorted order visits each one right after its stored ancestors (a pre-order
    of the containment tree), so a prefix's class is its nearest ancestor's plus the rules naming it.
    """
    nofield = 0
    direct = {}
    for index, rule in enumerate(rules):
        nets = getattr(rule, attr)
        if nets is None:
            nofield |= 1 << index
            continue
        bit = 1 << index
        for net in nets:
            direct[net] = direct.get(net, 0) | bit
    for root in ROOT_NETS:
        direct.setdefault(root, 0)
    if len(direct) > L.MAX_PREFIXES:
        raise RuleError('match.%s names %d distinct prefixes (with the 2 family roots), more than the '
                        'MAX_PREFIXES=%d the program holds per field' % (attr, len(direct), L.MAX_PREFIXES),
                        field='rules')
    out = {}
    stack = []
    for net in sorted(direct, key=net_key):
        while stack and not net_contains(stack[-1][0], net):
            stack.pop()
        bits = (stack[-1][1] if stack else nofield) | direct[net]
        stack.append((net, bits))
        out[L.lpm_key(slot, net.version, net.network_address.packed, net.prefixlen)] = pool(bits)
    return out


def _compile_protos(rules, pool):
    nofield = 0
    direct = [0] * 256
    for index, rule in enumerate(rules):
        if rule.proto is None:
            nofield |= 1 << index
        else:
            for proto in rule.proto:
                direct[proto] |= 1 << index
    return [pool(bits | nofield) for bits in direct]


def _compile_ports(rules, attr, pool):
    """Class ids of ports 0-65535 and NO_PORT, from a sweep over the range endpoints.

    A rule's bit toggles on at each range start and off after each range end (its ranges are disjoint
    and not adjacent), so the vector is constant between consecutive endpoints.
    """
    nofield = 0
    toggles = {0: 0}
    for index, rule in enumerate(rules):
        ranges = table_field(rule, attr)
        bit = 1 << index
        if ranges is None:
            nofield |= bit
            continue
        for lo, hi in ranges:
            toggles[lo] = toggles.get(lo, 0) ^ bit
            if hi < MAX_PORT:
                toggles[hi + 1] = toggles.get(hi + 1, 0) ^ bit
    bounds = sorted(toggles)
    bounds.append(MAX_PORT + 1)
    out = []
    bits = 0
    for start, end in zip(bounds, bounds[1:]):
        bits ^= toggles[start]
        out.extend([pool(bits | nofield)] * (end - start))
    out.append(pool(nofield))  # NO_PORT: packets without ports match only rules without this field
    return out


def _rule_entry(rule, counter, ifindex_of):
    mark = ifindex = nh_family = police_unit = police_rate = police_depth = police_max_idle = 0
    nh_addr = b''
    if rule.action == 'mark':
        mark = rule.mark
    elif rule.redirect is not None:  # a redirect, or a reply's fallback
        ifindex = ifindex_of(rule.redirect.interface)
        if not is_int(ifindex) or ifindex <= 0:
            raise RuleError('unknown interface %s' % rule.redirect.interface, rule=rule.name,
                            field='redirect.interface')
        if rule.redirect.via is not None:
            nh_family = L.AF_INET if rule.redirect.via.version == 4 else L.AF_INET6
            nh_addr = rule.redirect.via.packed
    elif rule.action == 'police':
        police_unit = rule.police.unit
        police_rate = rule.police.rate
        police_depth = rule.police.burst_units * L.NSEC_PER_SEC
        # rounded up, so that an idle bucket (or a zeroed one) refills to its full depth
        police_max_idle = -(-police_depth // police_rate)
    return L.RuleEntry(ACTION_CODES[rule.action], counter, mark, ifindex, nh_family, police_unit,
                       nh_addr.ljust(16, b'\0'), police_rate, police_depth, police_max_idle, rule.name)


def compile_tables(ruleset, slot, counters, ifindex_of):
    """The tables of `ruleset` in `slot`, classifying exactly as docs/docsite/rst/dataplane.rst says.

    `counters[i]` is the counter index of rule i (chosen by the caller, who keeps them across updates);
    `ifindex_of(name) -> int` resolves redirect targets (0 or None: unknown interface). The header's
    generation is 0: the caller stamps it when switching. Raises RuleError when the set needs more
    prefixes or classes than the program holds.
    """
    rules = ruleset.rules
    nrules = len(rules)
    if nrules > L.MAX_RULES:
        raise RuleError('%d rules, more than the %d the program holds' % (nrules, L.MAX_RULES), field='rules')
    if len(counters) != nrules:
        raise ValueError('%d counters for %d rules' % (len(counters), nrules))
    if len(set(counters)) != nrules or any(not 0 <= c < L.COUNTER_SLOTS for c in counters):
        raise ValueError('counter indexes must be distinct and within 0-%d' % (L.COUNTER_SLOTS - 1))
    pool = _ClassPool(designated_rules(rules))
    src = _compile_prefixes(rules, 'src', slot, pool.field('src'))
    dst = _compile_prefixes(rules, 'dst', slot, pool.field('dst'))
    protos = _compile_protos(rules, pool.field('proto'))
    sports = _compile_ports(rules, 'sport', pool.field('sport'))
    dports = _compile_ports(rules, 'dport', pool.field('dport'))
    if len(pool.ids) > L.MAX_CLASSES:
        raise RuleError('the rule set needs %d distinct match classes, more than the MAX_CLASSES=%d the '
                        'program holds (fewer distinct prefixes or port ranges would need fewer)'
                        % (len(pool.ids), L.MAX_CLASSES), field='rules')
    entries = []
    for index, (rule, counter) in enumerate(zip(rules, counters)):
        try:
            entries.append(_rule_entry(rule, counter, ifindex_of))
        except RuleError as err:
            raise err.at(index)
    header = L.SetHeader(slot, nrules, (nrules + 63) // 64, ACTION_CODES[ruleset.default_action], 0)
    class_bits = dict((cid, value) for value, cid in pool.ids.items())
    return Tables(header, src, dst, protos, sports, dports, class_bits, entries)


# -- decoding ------------------------------------------------------------------------------------


def _decode_prefixes(entries, slot, bits_of, nrules):
    """Per rule, the stored prefixes whose class gains the rule over their nearest stored ancestor.

    Those are exactly the outermost prefixes the rule listed; a rule without the field is in both
    roots, and canonical_prefixes turns that into None.
    """
    nets = []
    for key, cid in entries.items():
        key_slot, family, addr, plen = L.parse_lpm_key(key)
        if key_slot != slot:
            continue
        net = ipaddress.ip_network('%s/%d' % (ipaddress.ip_address(bytes(addr)), plen), strict=False)
        nets.append((net, bits_of(cid)))
    nets.sort(key=lambda item: net_key(item[0]))
    lists = [[] for dummy in range(nrules)]
    stack = []
    for net, bits in nets:
        while stack and not net_contains(stack[-1][0], net):
            stack.pop()
        parent = stack[-1][1] if stack else 0
        for index in _iter_bits(bits & ~parent):
            lists[index].append(net)
        stack.append((net, bits))
    return [canonical_prefixes(found) for found in lists]


def _decode_protos(proto_class, bits_of, nrules):
    everywhere = (1 << nrules) - 1
    for cid in proto_class:
        everywhere &= bits_of(cid)
    lists = [[] for dummy in range(nrules)]
    for proto, cid in enumerate(proto_class):
        for index in _iter_bits(bits_of(cid) & ~everywhere):
            lists[index].append(proto)
    return [None if everywhere >> i & 1 else tuple(found) for i, found in enumerate(lists)]


def _decode_ports(port_class, bits_of, nrules):
    """Per rule, the runs of ports whose class holds it; None for rules in the NO_PORT class."""
    nofield = bits_of(port_class[L.NO_PORT])
    lists = [[] for dummy in range(nrules)]
    starts = {}
    prev_bits = 0
    prev_cid = None
    for port in range(MAX_PORT + 1):
        cid = port_class[port]
        if cid == prev_cid:
            continue
        prev_cid = cid
        bits = bits_of(cid) & ~nofield
        if bits != prev_bits:
            for index in _iter_bits(bits & ~prev_bits):
                starts[index] = port
            for index in _iter_bits(prev_bits & ~bits):
                lists[index].append((starts.pop(index), port - 1))
            prev_bits = bits
    for index in _iter_bits(prev_bits):
        lists[index].append((starts.pop(index), MAX_PORT))
    return [None if nofield >> i & 1 else tuple(found) for i, found in enumerate(lists)]


def _decode_rule(entry, src, dst, proto, sport, dport, ifname_of):
    icmp_type = icmp_code = None
    if proto is not None and set(proto) <= ICMP_PROTOS:
        icmp_type, icmp_code, sport, dport = sport, dport, None, None
    action = ACTION_NAMES.get(entry.action)
    if action is None:
        raise RuleError('unknown action code %d in the rules map' % entry.action, rule=entry.name,
                        field='action')
    redirect = mark = police = None
    if action == 'redirect' or action == 'reply' and entry.ifindex:
        via = None
        if entry.nh_family == L.AF_INET:
            via = ipaddress.IPv4Address(bytes(entry.nh_addr[:4]))
        elif entry.nh_family == L.AF_INET6:
            via = ipaddress.IPv6Address(bytes(entry.nh_addr[:16]))
        ifname = ifname_of(entry.ifindex)
        if ifname is None:
            ifname = '#%d' % entry.ifindex
        redirect = Redirect(ifname, via)
    elif action == 'mark':
        mark = entry.mark
    elif action == 'police':
        police = Police(entry.police_unit, entry.police_rate, entry.police_depth // L.NSEC_PER_SEC)
    return Rule(entry.name, action, src, dst, proto, sport, dport, icmp_type, icmp_code, redirect, mark, police)


def decode_tables(tables, ifname_of):
    """The RuleSet that `tables` classify by, rebuilt from the tables alone.

    `ifname_of(ifindex) -> str` names redirect targets; when it returns None (the interface is gone)
    the target reads '#<ifindex>', which never equals a valid rule set, so the set is re-applied.
    """
    header = tables.header
    nrules = header.nrules
    mask = (1 << nrules) - 1
    cache = {}

    def bits_of(cid):
        bits = cache.get(cid)
        if bits is None:
            bits = cache[cid] = tables.class_bits.get(cid, 0) & mask
        return bits

    default_action = ACTION_NAMES.get(header.default_action)
    if default_action not in DEFAULT_ACTIONS:
        raise RuleError('unknown default action code %d in the set header' % header.default_action,
                        field='default_action')
    srcs = _decode_prefixes(tables.src_prefixes, header.slot, bits_of, nrules)
    dsts = _decode_prefixes(tables.dst_prefixes, header.slot, bits_of, nrules)
    protos = _decode_protos(tables.proto_class, bits_of, nrules)
    sports = _decode_ports(tables.sport_class, bits_of, nrules)
    dports = _decode_ports(tables.dport_class, bits_of, nrules)
    rules = tuple(_decode_rule(tables.rules[i], srcs[i], dsts[i], protos[i], sports[i], dports[i], ifname_of)
                  for i in range(nrules))
    return RuleSet(default_action, rules)

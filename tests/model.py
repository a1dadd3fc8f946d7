# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reference model of the steering dataplane (docs/docsite/rst/dataplane.rst), the oracle of the dataplane tests.

Written from the document only, and deliberately naive: frames are parsed byte by byte, rules are
tried one after the other (first match wins), addresses are compared with ``ipaddress``. Nothing here
uses the rule compiler's tables; the model reads a rule set only through its canonical dicts
(``RuleSet.to_dicts()``), so a compiler bug cannot hide in both places.

``Dataplane`` is the stateful part: per-rule counters and policers with the same lifetime rules as the
program (a rule whose name and match are unchanged keeps them across an update), per-protocol
counters, the learned return paths, and the policer clock (the tests drive ``settings.clock_override_ns`` with the same value).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import struct
from collections import namedtuple

TC_ACT_UNSPEC = -1
TC_ACT_OK = 0
TC_ACT_SHOT = 2
TC_ACT_REDIRECT = 7

PROTO_NUMBERS = {'icmp': 1, 'tcp': 6, 'udp': 17, 'icmpv6': 58, 'sctp': 132}
PORT_PROTOS = (6, 17, 132)
ICMP_PROTOS = (1, 58)


def _icmp_type_names():
    """{1: {name: type}, 58: {...}}: the ICMP type names as the rule schema's table in
    docs/docsite/rst/rules.rst gives them (the canonical names: what ``RuleSet.to_dicts()`` writes)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, 'docs', 'docsite', 'rst',
                           'rules.rst')) as f:
        text = f.read()
    names = {}
    for proto, number in (('icmp', 1), ('icmpv6', 58)):
        row = re.search(r'\* - ``%s``\n +- (.*?)(?=\n +\* - |\n\n)' % proto, text, re.S).group(1)
        names[number] = dict((name, int(value)) for name, value in re.findall(r'``([a-z0-9-]+)``\s+\((\d+)\)', row))
    return names


ICMP_TYPES = _icmp_type_names()
EXT_OPTIONS = (0, 43, 60)        # hop-by-hop, routing, destination options: (len + 1) * 8
EXT_AH = 51                      # (len + 2) * 4
EXT_FRAGMENT = 44                # 8 bytes
EXT_HEADERS = EXT_OPTIONS + (EXT_AH, EXT_FRAGMENT)
MAX_EXT_HEADERS = 8

NS = 1000000000
DEFAULT = '(default)'
NON_IP = 'non-ip'
MALFORMED = 'malformed'

# ------------------------------------------------------------------------------------------ parsing

Packet = namedtuple('Packet', 'kind family src dst proto sport dport icmp_type icmp_code nonfirst length')
Packet.__doc__ = """What the parser found in a frame.

kind: 'ip', 'non-ip' or 'malformed'; family 4/6 (None unless ip); src/dst ``ipaddress`` objects;
proto the L4 protocol number; sport/dport None when the packet has no ports; icmp_type/icmp_code None
unless an ICMP or ICMPv6 header's first two bytes are in the frame; nonfirst: a non-first fragment;
length: the frame's length (skb->len).
"""


def _packet(kind, length, family=None, src=None, dst=None, proto=None, l4=(None, None, None, None),
            nonfirst=False):
    sport, dport, icmp_type, icmp_code = l4
    return Packet(kind, family, src, dst, proto, sport, dport, icmp_type, icmp_code, nonfirst, length)


def parse(frame):
    """Parse a raw Ethernet frame as docs/docsite/rst/dataplane.rst "Parse" says."""
    frame = bytes(frame)
    n = len(frame)
    if n < 14:
        # BPF_PROG_TEST_RUN refuses these; on a real device there is always an Ethernet header.
        return _packet(NON_IP, n)
    ethertype = struct.unpack_from('!H', frame, 12)[0]
    off = 14
    if ethertype in (0x8100, 0x88A8):
        if n < 18:
            # The tag itself is cut short: the frame never says it is IP.
            return _packet(NON_IP, n)
        ethertype = struct.unpack_from('!H', frame, 16)[0]
        off = 18
    if ethertype == 0x0800:
        return _parse_ipv4(frame, off)
    if ethertype == 0x86DD:
        return _parse_ipv6(frame, off)
    return _packet(NON_IP, n)


def _l4(frame, off, proto):
    """(sport, dport, icmp_type, icmp_code) of the L4 header at ``off``, None for what is not there."""
    if proto in PORT_PROTOS and off + 4 <= len(frame):
        return struct.unpack_from('!HH', frame, off) + (None, None)
    if proto in ICMP_PROTOS and off + 2 <= len(frame):
        return (None, None, frame[off], frame[off + 1])
    return (None, None, None, None)


def _parse_ipv4(frame, off):
    n = len(frame)
    if off + 20 > n:
        return _packet(MALFORMED, n)
    version, ihl = frame[off] >> 4, frame[off] & 0xF
    if version != 4 or ihl < 5 or off + ihl * 4 > n:
        return _packet(MALFORMED, n)
    proto = frame[off + 9]
    src = ipaddress.IPv4Address(frame[off + 12:off + 16])
    dst = ipaddress.IPv4Address(frame[off + 16:off + 20])
    nonfirst = (struct.unpack_from('!H', frame, off + 6)[0] & 0x1FFF) != 0
    l4 = (None, None, None, None) if nonfirst else _l4(frame, off + ihl * 4, proto)
    return _packet('ip', n, 4, src, dst, proto, l4, nonfirst)


def _parse_ipv6(frame, off):
    n = len(frame)
    if off + 40 > n or frame[off] >> 4 != 6:
        return _packet(MALFORMED, n)
    src = ipaddress.IPv6Address(frame[off + 8:off + 24])
    dst = ipaddress.IPv6Address(frame[off + 24:off + 40])
    nexthdr = frame[off + 6]
    pos = off + 40
    walked = 0
    while nexthdr in EXT_HEADERS:
        if walked == MAX_EXT_HEADERS:
            return _packet(MALFORMED, n)    # a ninth extension header
        walked += 1
        if nexthdr == EXT_FRAGMENT:
            if pos + 8 > n:
                return _packet(MALFORMED, n)
            inner = frame[pos]
            if struct.unpack_from('!H', frame, pos + 2)[0] >> 3:
                return _packet('ip', n, 6, src, dst, inner, nonfirst=True)
            nexthdr, pos = inner, pos + 8
            continue
        if pos + 2 > n:
            return _packet(MALFORMED, n)
        if nexthdr == EXT_AH:
            size = (frame[pos + 1] + 2) * 4
        else:
            size = (frame[pos + 1] + 1) * 8
        if pos + size > n:
            return _packet(MALFORMED, n)     # the extension header is cut short
        nexthdr, pos = frame[pos], pos + size
    return _packet('ip', n, 6, src, dst, nexthdr, _l4(frame, pos, nexthdr))


def proto_bucket(packet):
    """The ``proto_stats`` bucket of a parsed packet: 0..255, 'non-ip' or 'malformed'."""
    if packet.kind == 'ip':
        return packet.proto
    return packet.kind


# ------------------------------------------------------------------------------------------ rules

Police = namedtuple('Police', 'unit rate depth max_idle')   # unit 'packets' or 'bits'; integer arithmetic
ModelRule = namedtuple('ModelRule', 'name action src dst proto sport dport icmp_type icmp_code mark redirect police '
                                    'identity')

_RATE_UNITS = {
    'pps': ('packets', 1), 'kpps': ('packets', 1000), 'mpps': ('packets', 1000000),
    'bit': ('bits', 1), 'kbit': ('bits', 1000), 'mbit': ('bits', 1000000), 'gbit': ('bits', 1000000000),
    'tbit': ('bits', 1000000000000),
}


def parse_rate(text):
    """'100pps' → ('packets', 100); '10mbit' → ('bits', 10000000). Decimal multiples, as tc uses."""
    text = str(text).strip().lower()
    for suffix in sorted(_RATE_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            number = text[:-len(suffix)].strip()
            unit, scale = _RATE_UNITS[suffix]
            if '.' in number:
                from fractions import Fraction
                value = Fraction(number) * scale
                if value.denominator != 1:
                    raise ValueError('rate %r is not a whole number of units' % text)
                return unit, int(value)
            return unit, int(number) * scale
    raise ValueError('unknown rate %r' % text)


def police_params(police):
    """Token-bucket parameters of a canonical ``police`` dict: burst in packets (pps) or bytes (bits)."""
    unit, rate = parse_rate(police['rate'])
    burst = int(police['burst'])
    depth = burst * NS if unit == 'packets' else burst * 8 * NS
    return Police(unit, rate, depth, -(-depth // rate))  # max_idle rounded up (dataplane.rst)


def _networks(values):
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def _protos(values):
    if values is None:
        return None
    if not isinstance(values, (list, tuple)):
        values = [values]
    out = set()
    for v in values:
        if isinstance(v, str) and v.lower() in PROTO_NUMBERS:
            out.add(PROTO_NUMBERS[v.lower()])
        else:
            out.add(int(v))
    return frozenset(out)


def _ranges(values, names=None):
    """Ports or ICMP types/codes as (lo, hi) ranges; ``names`` maps ICMP type names to numbers."""
    if values is None:
        return None
    if not isinstance(values, (list, tuple)):
        values = [values]
    out = []
    for v in values:
        if names is not None and v in names:
            out.append((names[v], names[v]))
        elif isinstance(v, str) and '-' in v:
            lo, hi = v.split('-', 1)
            out.append((int(lo), int(hi)))
        else:
            out.append((int(v), int(v)))
    return tuple(out)


def _identity(rule):
    """Name and match: what decides whether a rule keeps its counters and policer across an update."""
    def freeze(value):
        if isinstance(value, dict):
            return tuple(sorted((k, freeze(v)) for k, v in value.items() if v is not None))
        if isinstance(value, (list, tuple)):
            return tuple(freeze(v) for v in value)
        return value
    return (rule['name'], freeze(rule.get('match') or {}))


def model_rule(rule):
    """A canonical rule dict (as ``RuleSet.to_dicts()`` gives) → ModelRule."""
    match = rule.get('match') or {}
    redirect = None
    if rule.get('redirect') is not None:     # a redirect, or a reply's fallback
        redirect = (rule['redirect']['interface'], rule['redirect'].get('via'))
    police = police_params(rule['police']) if rule['action'] == 'police' else None
    mark = int(rule['mark']) if rule['action'] == 'mark' else None
    proto = _protos(match.get('proto'))
    type_names = ICMP_TYPES[min(proto)] if match.get('icmp_type') is not None else None
    return ModelRule(
        name=rule['name'], action=rule['action'],
        src=_networks(match.get('src')), dst=_networks(match.get('dst')), proto=proto,
        sport=_ranges(match.get('sport')), dport=_ranges(match.get('dport')),
        icmp_type=_ranges(match.get('icmp_type'), type_names), icmp_code=_ranges(match.get('icmp_code')),
        mark=mark, redirect=redirect, police=police, identity=_identity(rule))


def _address_matches(networks, address):
    if networks is None:
        return True
    return any(net.version == address.version and address in net for net in networks)


def _in_ranges(ranges, value):
    if ranges is None:
        return True
    if value is None:
        return False
    return any(lo <= value <= hi for lo, hi in ranges)


def rule_matches(rule, packet):
    """Does ``rule`` match a parsed IP packet? (Non-IP and malformed packets match no rule.)"""
    if packet.kind != 'ip':
        return False
    return (_address_matches(rule.src, packet.src) and _address_matches(rule.dst, packet.dst)
            and (rule.proto is None or packet.proto in rule.proto)
            and _in_ranges(rule.sport, packet.sport) and _in_ranges(rule.dport, packet.dport)
            and _in_ranges(rule.icmp_type, packet.icmp_type) and _in_ranges(rule.icmp_code, packet.icmp_code))


def first_match(rules, packet):
    """Index of the first rule that matches, or None."""
    for index, rule in enumerate(rules):
        if rule_matches(rule, packet):
            return index
    return None


def ruleset_dicts(ruleset):
    """(default_action, [canonical rule dicts]) of a RuleSet, or of a (dicts, default_action) pair."""
    if isinstance(ruleset, tuple) and len(ruleset) == 2 and isinstance(ruleset[1], str):
        return ruleset[1], list(ruleset[0])
    dicts = ruleset.to_dicts()
    if isinstance(dicts, dict):     # {'default_action': ..., 'rules': [...]}
        return dicts.get('default_action', ruleset.default_action), list(dicts['rules'])
    return ruleset.default_action, list(dicts)


# ------------------------------------------------------------------------------------------ verdicts

Verdict = namedtuple('Verdict', 'kind rule retval mark redirect proto_bucket counter dropped length macs')
Verdict.__doc__ = """The model's decision on one frame.

kind: 'pass', 'drop', 'redirect', 'mark', 'police' (a rule decided) or 'default' (no rule matched, or
malformed); non-IP frames and frames seen before any rule set is applied are 'pass' with rule None.
rule: index of the deciding rule, or None. retval: the expected TC return code. mark: the new skb->mark,
or None when the program leaves it alone. redirect: (interface, via) or None. counter: the rule's name,
'(default)', or None when no counter moves. dropped: whether the packet counts a drop. macs: the frame's
new (destination, source) MAC addresses, or None when the program leaves them alone.
"""


def _verdict(kind, rule, retval, bucket, length, counter=None, mark=None, redirect=None, dropped=False, macs=None):
    return Verdict(kind, rule, retval, mark, redirect, bucket, counter, dropped, length, macs)


def path_key(packet, reply=False):
    """The learned-path key of a parsed packet: (family, proto, client, client port, service, service port),
    the client being the source of a request and the destination of a reply; ports 0 unless TCP/UDP/SCTP."""
    ports = (packet.sport, packet.dport) if packet.sport is not None else (0, 0)
    if reply:
        return (packet.family, packet.proto, packet.dst, ports[1], packet.src, ports[0])
    return (packet.family, packet.proto, packet.src, ports[0], packet.dst, ports[1])


class Policer:
    """One rule's token bucket, exactly as docs/docsite/rst/dataplane.rst's integer arithmetic says."""

    def __init__(self):
        self.tokens = 0
        self.last_ns = 0

    def admit(self, params, now, length):
        elapsed = min(now - self.last_ns, params.max_idle) if now >= self.last_ns else 0
        self.tokens = min(self.tokens + elapsed * params.rate, params.depth)
        self.last_ns = max(self.last_ns, now)
        cost = NS if params.unit == 'packets' else length * 8 * NS
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class Dataplane:
    """The program plus its maps, in Python.

    ``apply(ruleset)`` switches rule sets (keeping counters and policers of rules whose name and match
    are unchanged), ``run(frame)`` classifies a frame and updates every counter, ``clock`` is the policer
    clock in ns (None: the real clock, which the model cannot follow; police rules then raise).
    """

    def __init__(self, clock=None, interface='lo', ifindex=1):
        self.clock = clock
        self.interface, self.ifindex = interface, ifindex   # the hook's (a test run's skb is on lo)
        self.learned = {}          # path_key → (ifindex, peer MAC, own MAC): the learned_paths map
        self.default_action = None
        self.rules = ()
        self.rule_stats = {}       # identity → {'packets','bytes','drops'}
        self.policers = {}         # identity → Policer
        self.default_stats = {'packets': 0, 'bytes': 0, 'drops': 0}
        self.proto_stats = {}      # bucket → {'packets','bytes'}

    def apply(self, ruleset):
        default_action, dicts = ruleset_dicts(ruleset)
        if default_action not in ('pass', 'drop'):
            raise ValueError(default_action)
        rules = tuple(model_rule(d) for d in dicts)
        keep = set(r.identity for r in rules) & set(r.identity for r in self.rules)
        self.rule_stats = dict((r.identity, self.rule_stats[r.identity] if r.identity in keep
                                else {'packets': 0, 'bytes': 0, 'drops': 0}) for r in rules)
        self.policers = dict((r.identity, self.policers.get(r.identity, Policer()) if r.identity in keep
                              else Policer()) for r in rules)
        self.rules = rules
        self.default_action = default_action

    def rule_counters(self):
        """{rule name: counters} of the current set plus '(default)', as SteeringMaps.rule_counters()."""
        out = dict((r.name, dict(self.rule_stats[r.identity])) for r in self.rules)
        out[DEFAULT] = dict(self.default_stats)
        return out

    def classify(self, frame):
        """The verdict on ``frame`` without changing any state (police rules: as if within rate)."""
        return self._decide(frame, parse(frame), stateful=False)

    def run(self, frame):
        """Classify ``frame`` and update counters and policers, like one run of the program."""
        packet = parse(frame)
        verdict = self._decide(frame, packet, stateful=True)
        bucket = verdict.proto_bucket
        stats = self.proto_stats.setdefault(bucket, {'packets': 0, 'bytes': 0})
        stats['packets'] += 1
        stats['bytes'] += packet.length
        if verdict.counter is not None:
            counters = self.default_stats if verdict.counter == DEFAULT else \
                self.rule_stats[self.rules[verdict.rule].identity]
            counters['packets'] += 1
            counters['bytes'] += packet.length
            if verdict.dropped:
                counters['drops'] += 1
        return verdict

    def _decide(self, frame, packet, stateful):
        bucket = proto_bucket(packet)
        length = packet.length
        if packet.kind == NON_IP or self.default_action is None:
            return _verdict('pass', None, TC_ACT_UNSPEC, bucket, length)
        index = first_match(self.rules, packet)
        if index is None:
            drop = self.default_action == 'drop'
            return _verdict('default', None, TC_ACT_SHOT if drop else TC_ACT_UNSPEC, bucket, length, DEFAULT,
                            dropped=drop)
        rule = self.rules[index]
        action = rule.action
        if action in ('pass', 'learn'):
            if action == 'learn' and stateful and not frame[0] & 1:    # a group address teaches nothing
                self.learned[path_key(packet)] = (self.ifindex, bytes(frame[6:12]), bytes(frame[0:6]))
            return _verdict(action, index, TC_ACT_UNSPEC, bucket, length, rule.name)
        if action == 'drop':
            return _verdict('drop', index, TC_ACT_SHOT, bucket, length, rule.name, dropped=True)
        if action == 'redirect':
            return _verdict('redirect', index, TC_ACT_REDIRECT, bucket, length, rule.name, redirect=rule.redirect)
        if action == 'reply':
            path = self.learned.get(path_key(packet, reply=True))
            if path is not None:
                ifindex, peer, own = path
                return _verdict('reply', index, TC_ACT_UNSPEC if ifindex == self.ifindex else TC_ACT_REDIRECT,
                                bucket, length, rule.name, redirect=('#%d' % ifindex, None), macs=(peer, own))
            if rule.redirect is not None and rule.redirect[0] != self.interface:
                return _verdict('reply', index, TC_ACT_REDIRECT, bucket, length, rule.name, redirect=rule.redirect)
            return _verdict('reply', index, TC_ACT_UNSPEC, bucket, length, rule.name)
        if action == 'mark':
            return _verdict('mark', index, TC_ACT_UNSPEC, bucket, length, rule.name, mark=rule.mark)
        if action == 'police':
            admitted = True
            if stateful:
                if self.clock is None:
                    raise RuntimeError('the model cannot follow the real clock: set Dataplane.clock')
                admitted = self.policers[rule.identity].admit(rule.police, self.clock, length)
            return _verdict('police', index, TC_ACT_UNSPEC if admitted else TC_ACT_SHOT, bucket, length, rule.name,
                            dropped=not admitted)
        raise ValueError('unknown action %r' % (action,))


def expected_mark(verdict, mark_in):
    """skb->mark after the program ran, given the mark the packet came with."""
    return mark_in if verdict.mark is None else verdict.mark

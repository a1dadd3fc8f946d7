# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Steering rules: the user-facing schema and its canonical form. Pure, no I/O.

- ``validate`` turns the user-facing schema (docs/docsite/rst/rules.rst) into a canonical, hashable
  ``RuleSet``, refusing bad input with a ``RuleError`` that names the rule and the field. Canonical
  means that two inputs with the same meaning (written differently) give equal RuleSets, so a rule set
  read back from the maps compares equal to the one asked for and an unchanged set is not re-applied.

``_classifier`` compiles a RuleSet to the program's tables and decodes it back (the map ABI, with ``_layout``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
from collections import namedtuple
from fractions import Fraction

from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils._errors import RuleError

# -- schema constants ----------------------------------------------------------------------------

ACTIONS = ('pass', 'drop', 'redirect', 'mark', 'police', 'learn', 'reply')
DEFAULT_ACTIONS = ('pass', 'drop')
DIRECTIONS = ('ingress', 'egress')     # the two TC hooks of an interface

PROTO_NUMBERS = {'icmp': 1, 'tcp': 6, 'udp': 17, 'icmpv6': 58, 'sctp': 132}
PROTO_NAMES = dict((number, name) for name, number in PROTO_NUMBERS.items())
PORT_PROTOS = frozenset((6, 17, 132))
ICMP_PROTOS = frozenset((1, 58))

# Names of the common ICMP and ICMPv6 message types (RFC 792, RFC 4443, RFC 4861, RFC 2710/3810), per protocol:
# the two number them differently. Canonical names first; 'neighbour-' spellings are accepted too.
ICMP_TYPES = {
    1: {'echo-reply': 0, 'destination-unreachable': 3, 'source-quench': 4, 'redirect': 5, 'echo-request': 8,
        'router-advertisement': 9, 'router-solicitation': 10, 'time-exceeded': 11, 'parameter-problem': 12,
        'timestamp-request': 13, 'timestamp-reply': 14},
    58: {'destination-unreachable': 1, 'packet-too-big': 2, 'time-exceeded': 3, 'parameter-problem': 4,
         'echo-request': 128, 'echo-reply': 129, 'mld-listener-query': 130, 'mld-listener-report': 131,
         'mld-listener-done': 132, 'router-solicitation': 133, 'router-advertisement': 134,
         'neighbor-solicitation': 135, 'neighbor-advertisement': 136, 'redirect': 137,
         'mld2-listener-report': 143},
}
ICMP_TYPE_NAMES = dict((proto, dict((number, name) for name, number in names.items()))
                       for proto, names in ICMP_TYPES.items())
ICMP_TYPE_ALIASES = {'neighbour-solicitation': 'neighbor-solicitation',
                     'neighbour-advertisement': 'neighbor-advertisement'}

RULE_KEYS = ('name', 'match', 'action', 'redirect', 'mark', 'police')
MATCH_KEYS = ('src', 'dst', 'proto', 'sport', 'dport', 'icmp_type', 'icmp_code')
REDIRECT_KEYS = ('interface', 'via')
POLICE_KEYS = ('rate', 'burst')
# Which actions each parameter key belongs to (a reply's redirect is where it goes when nothing is learned).
ACTION_PARAMS = {'redirect': ('redirect', 'reply'), 'mark': ('mark',), 'police': ('police',)}

NAME_RE = re.compile(r'^[a-z0-9_.-]{1,32}$')
MAX_PORT = 65535
MAX_ICMP = 255
MAX_MARK = 0xffffffff

# The policer adds a refill of up to max_idle * rate < depth + rate <= 2 * depth to at most depth tokens
# before clamping, so 3 * depth must fit in a u64.
MAX_POLICE_DEPTH = (2 ** 64 - 1) // 3
MAX_BURST_UNITS = MAX_POLICE_DEPTH // L.NSEC_PER_SEC
# A rate must be refillable by the largest burst within 1 ns (police_max_idle_ns >= 1); whole bytes.
MAX_RATE = MAX_BURST_UNITS // 8 * 8 * L.NSEC_PER_SEC
DEFAULT_BURST_SECONDS = Fraction(1, 10)
MIN_DEFAULT_BURST_BYTES = 1514  # one full-size Ethernet frame: a bit-rate bucket must pass one

_SI = (('', 1), ('k', 10 ** 3), ('m', 10 ** 6), ('g', 10 ** 9), ('t', 10 ** 12))
_IEC = (('ki', 2 ** 10), ('mi', 2 ** 20), ('gi', 2 ** 30), ('ti', 2 ** 40))


def _rate_units():
    units = {}
    for prefix, mult in _SI[:3]:  # pps, kpps, mpps: no one polices a billion packets per second
        units[prefix + 'pps'] = (L.POLICE_PACKETS, mult)
    for prefix, mult in _SI + _IEC:
        units[prefix + 'bit'] = (L.POLICE_BITS, mult)
        units[prefix + 'bps'] = (L.POLICE_BITS, 8 * mult)  # tc: "bps" is bytes per second
    return units


RATE_UNITS = _rate_units()
# Burst sizes of bit rates, in bytes; tc's convention: size units are 1024-based.
SIZE_UNITS = {'': 1, 'b': 1, 'k': 2 ** 10, 'kb': 2 ** 10, 'm': 2 ** 20, 'mb': 2 ** 20, 'g': 2 ** 30,
              'gb': 2 ** 30}
_QUANTITY_RE = re.compile(r'^(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)$')

ROOT_NETS = (ipaddress.ip_network('0.0.0.0/0'), ipaddress.ip_network('::/0'))

# -- the canonical form --------------------------------------------------------------------------

Police = namedtuple('Police', 'unit rate burst_units')
Police.__doc__ = """A policer: `unit` POLICE_PACKETS or POLICE_BITS, `rate` units per second, and
`burst_units` the bucket size in units (packets, or bits: a burst given in bytes is stored * 8)."""

Redirect = namedtuple('Redirect', 'interface via')
Redirect.__doc__ = """Where a redirect sends a packet: interface name, next hop address or None."""

_RuleBase = namedtuple('Rule', 'name action src dst proto sport dport icmp_type icmp_code redirect mark police')


class Rule(_RuleBase):
    """One canonical rule.

    Match fields are None when absent (match anything), else: src/dst a tuple of ipaddress networks
    (IPv4 first, sorted, none covered by another, never both whole families); proto a sorted tuple of
    numbers (never all 256); sport/dport and icmp_type/icmp_code a sorted tuple of disjoint, non-adjacent
    (lo, hi) ranges (ports only with proto tcp/udp/sctp, ICMP types and codes only with proto icmp or icmpv6).
    `redirect`, `mark` and `police` are set only for their action (`redirect` also for a reply's fallback).
    """

    __slots__ = ()

    @property
    def match(self):
        return (self.src, self.dst, self.proto, self.sport, self.dport, self.icmp_type, self.icmp_code)

    def match_key(self):
        """What identifies a rule's counters across updates: its name and what it matches."""
        return (self.name, self.match)

    def families(self):
        """The IP versions (4, 6) of the packets this rule can match."""
        return _families(self.src, self.dst)

    def to_dict(self):
        """The canonical user-facing form (what modules return); ``validate`` accepts it back."""
        match = {}
        for key in ('src', 'dst'):
            nets = getattr(self, key)
            if nets is not None:
                match[key] = [str(net) for net in nets]
        if self.proto is not None:
            match['proto'] = [PROTO_NAMES.get(p, p) for p in self.proto]
        for key in ('sport', 'dport'):
            ranges = getattr(self, key)
            if ranges is not None:
                match[key] = [lo if lo == hi else '%d-%d' % (lo, hi) for lo, hi in ranges]
        if self.icmp_type is not None:
            names = ICMP_TYPE_NAMES[self.proto[0]]
            match['icmp_type'] = [names.get(lo, lo) if lo == hi else '%d-%d' % (lo, hi) for lo, hi in self.icmp_type]
        if self.icmp_code is not None:
            match['icmp_code'] = [lo if lo == hi else '%d-%d' % (lo, hi) for lo, hi in self.icmp_code]
        out = {'name': self.name, 'match': match, 'action': self.action}
        if self.redirect is not None:
            out['redirect'] = {'interface': self.redirect.interface}
            if self.redirect.via is not None:
                out['redirect']['via'] = str(self.redirect.via)
        if self.mark is not None:
            out['mark'] = self.mark
        if self.police is not None:
            burst = self.police.burst_units
            if self.police.unit == L.POLICE_BITS:
                burst //= 8
            out['police'] = {'rate': format_rate(self.police.unit, self.police.rate), 'burst': burst}
        return out


class RuleSet(namedtuple('RuleSet', 'default_action rules')):
    """A validated rule set: `default_action` ('pass' or 'drop') and a tuple of Rules in order."""

    __slots__ = ()

    def to_dicts(self):
        """The rules in canonical user-facing form: ``validate(rs.to_dicts(), rs.default_action) == rs``."""
        return [rule.to_dict() for rule in self.rules]

    def to_dict(self):
        return {'default_action': self.default_action, 'rules': self.to_dicts()}

    def names(self):
        return [rule.name for rule in self.rules]


# -- small helpers -------------------------------------------------------------------------------


def is_int(value):
    """An integer, and not a YAML boolean (bool is an int in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def net_key(net):
    return (net.version, int(net.network_address), net.prefixlen)


def net_contains(outer, inner):
    """Whether prefix `outer` contains prefix `inner` (or is it)."""
    if outer.version != inner.version or outer.prefixlen > inner.prefixlen:
        return False
    shift = outer.max_prefixlen - outer.prefixlen
    return int(outer.network_address) >> shift == int(inner.network_address) >> shift


def _families(src, dst):
    fams = {4, 6}
    for nets in (src, dst):
        if nets is not None:
            fams &= set(net.version for net in nets)
    return fams


def canonical_prefixes(nets):
    """Sorted, without prefixes covered by another; None when both whole families are covered.

    Dropping covered prefixes and the "everything" list is what makes the form decodable: the tables
    only keep, per rule, the outermost prefixes it lists.
    """
    kept = []
    for net in sorted(set(nets), key=net_key):
        if kept and net_contains(kept[-1], net):
            continue  # sorted pre-order: only the last kept prefix can contain this one
        kept.append(net)
    if all(root in kept for root in ROOT_NETS):
        return None
    return tuple(kept)


def merge_ranges(ranges):
    """Sorted (lo, hi) ranges with overlapping and adjacent ones joined."""
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def format_rate(unit, rate):
    """'100pps', '10mbit': the largest SI unit that divides the rate evenly."""
    suffix, prefixes = ('pps', _SI[:3]) if unit == L.POLICE_PACKETS else ('bit', _SI)
    best = ''
    for prefix, mult in prefixes:
        if rate % mult == 0:
            best = '%d%s%s' % (rate // mult, prefix, suffix)
    return best


def _listify(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _quantity(text):
    """(Fraction, unit) of '1.5mbit', or None when `text` is not a number with an optional unit."""
    m = _QUANTITY_RE.match(text.strip().lower())
    if not m:
        return None
    return Fraction(m.group(1)), m.group(2)


# -- validation ----------------------------------------------------------------------------------


def validate(rules, default_action='pass', interface_exists=None):
    """Validate the user-facing rules (a list of dicts, as from YAML) into a canonical RuleSet.

    Refuses, with a RuleError naming the rule (its name, or ``rules[i]`` before a name is known) and
    the field, everything the program could not do or would do differently from what the operator
    wrote, so that nothing on the host changes for an invalid set. `interface_exists(name) -> bool`,
    when given, checks redirect targets.

    Choices the schema leaves open:

    - Addresses are CIDRs or bare addresses (a host prefix). A CIDR with host bits set
      (``10.1.2.3/8``) is refused, suggesting both readings, rather than silently widened.
    - Ports need a protocol list made only of tcp, udp and sctp.
    - ICMP types and codes need a protocol list of exactly icmp or icmpv6 (the two number their types
      differently), so a type name has one meaning; a rule for both is two rules.
    - A rule whose src and dst have no IP family in common could never match: refused.
    - ``redirect.via`` must be of the one family the rule can match (so the next hop is reachable).
    - ``learn`` (on ingress) records where a flow's requests come from; ``reply`` (on egress) sends the
      flow's replies back that way, else to its optional ``redirect``, else by the normal route.
    - None for an optional key (``via: null``, ``burst:``, ``match:``) means absent; empty lists are
      refused (a list that matches nothing is a mistake, not a rule).
    - Police ``rate``: ``<n>pps`` (k/m prefixes, 1000-based) counts packets; ``<n>bit`` (k/m/g/t,
      1000-based, or ki/mi/gi/ti) counts bits per second; ``<n>bps`` follows tc: BYTES per second
      (``10mbps`` = 80 Mbit/s). Units are case-insensitive, decimals allowed when the result is whole.
    - Police ``burst``: packets for a pps rate (an integer), bytes for a bit rate (an integer, or a
      size with tc's 1024-based units: ``1500b``, ``64kb``, ``1mb``, ``1gb``). When absent it is
      100 ms worth of the rate, at least 1 packet or 1514 bytes (one full Ethernet frame), at most
      what the token arithmetic can hold.
    """
    if default_action not in DEFAULT_ACTIONS:
        raise RuleError('must be one of %s, not %r' % (', '.join(DEFAULT_ACTIONS), default_action),
                        field='default_action')
    if not isinstance(rules, (list, tuple)):
        raise RuleError('must be a list of rules (use [] for none), not %s' % type_name(rules),
                        field='rules')
    if len(rules) > L.MAX_RULES:
        raise RuleError('%d rules, more than the %d the program holds' % (len(rules), L.MAX_RULES),
                        field='rules')
    out = []
    seen = {}
    for index, raw in enumerate(rules):
        try:
            rule = _validate_rule(index, raw, interface_exists)
        except RuleError as err:
            raise err.at(index)
        if rule.name in seen:
            raise RuleError('duplicate name: rules[%d] and rules[%d] are both named %r'
                            % (seen[rule.name], index, rule.name), rule=rule.name, field='name', index=index)
        seen[rule.name] = index
        out.append(rule)
    return RuleSet(default_action, tuple(out))


def type_name(value):
    """How an error message names the YAML type of a value."""
    if value is None:
        return 'null'
    if isinstance(value, dict):
        return 'a mapping'
    if isinstance(value, (list, tuple)):
        return 'a list'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, bool):
        return 'a boolean'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a number'
    return type(value).__name__


def _check_keys(value, allowed, label, field):
    for key in value:
        if key not in allowed:
            path = key if field is None else '%s.%s' % (field, key)
            raise RuleError('unknown key; expected one of %s' % ', '.join(allowed), rule=label,
                            field=str(path))


def _validate_rule(index, raw, interface_exists):
    label = 'rules[%d]' % index
    if not isinstance(raw, dict):
        raise RuleError('a rule must be a mapping, not %s' % type_name(raw), rule=label)
    name = raw.get('name')
    if name is None:
        raise RuleError('every rule needs a name', rule=label, field='name')
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RuleError('%r is not a valid name: 1-32 characters of a-z, 0-9, _, . and -' % (name,),
                        rule=label, field='name')
    name = label = str(name)  # a plain str, not a YAML/Jinja subclass, in what we return
    _check_keys(raw, RULE_KEYS, label, None)

    action = raw.get('action')
    if action is None:
        raise RuleError('every rule needs an action (one of %s)' % ', '.join(ACTIONS), rule=label,
                        field='action')
    if action not in ACTIONS:
        raise RuleError('unknown action %r; expected one of %s' % (action, ', '.join(ACTIONS)),
                        rule=label, field='action')
    for key, owners in ACTION_PARAMS.items():
        if raw.get(key) is not None and action not in owners:
            raise RuleError('only valid with action %s (this rule\'s action is %s)' % (' or '.join(owners), action),
                            rule=label, field=key)

    src, dst, proto, sport, dport, icmp_type, icmp_code = _validate_match(raw.get('match'), label)

    redirect = mark = police = None
    if action == 'redirect' or action == 'reply' and raw.get('redirect') is not None:
        redirect = _validate_redirect(raw.get('redirect'), label, interface_exists)
        if redirect.via is not None:
            fams = _families(src, dst)
            if fams != {redirect.via.version}:
                if len(fams) == 2:
                    hint = 'the rule also matches IPv%d packets: give match.src or match.dst only IPv%d ' \
                           'prefixes' % (10 - redirect.via.version, redirect.via.version)
                else:
                    hint = 'the rule matches only IPv%d packets' % (10 - redirect.via.version)
                raise RuleError('next hop %s is IPv%d but %s' % (redirect.via, redirect.via.version, hint),
                                rule=label, field='redirect.via')
    elif action == 'mark':
        mark = _validate_mark(raw.get('mark'), label)
    elif action == 'police':
        police = _validate_police(raw.get('police'), label)
    return Rule(name, action, src, dst, proto, sport, dport, icmp_type, icmp_code, redirect, mark, police)


def _validate_match(match, label):
    if match is None:
        match = {}
    if not isinstance(match, dict):
        raise RuleError('must be a mapping of %s, not %s' % (', '.join(MATCH_KEYS), type_name(match)),
                        rule=label, field='match')
    _check_keys(match, MATCH_KEYS, label, 'match')

    src = _validate_prefixes(match.get('src'), label, 'match.src')
    dst = _validate_prefixes(match.get('dst'), label, 'match.dst')
    if not _families(src, dst):
        raise RuleError('src lists only IPv%d prefixes and dst only IPv%d ones: the rule could never match'
                        % (src[0].version, dst[0].version), rule=label, field='match.dst')

    protos = _validate_protos(match.get('proto'), label)
    ranges = {}
    for key in ('sport', 'dport'):
        ranges[key] = _validate_ranges(match.get(key), label, 'match.' + key, MAX_PORT, 'a port', 'ports')
        if ranges[key] is None:
            continue
        if protos is None:
            raise RuleError('ports need match.proto, with only tcp, udp or sctp (other packets have no '
                            'ports)', rule=label, field='match.' + key)
        others = [p for p in protos if p not in PORT_PROTOS]
        if others:
            shown = ', '.join(str(PROTO_NAMES.get(p, p)) for p in others[:5])
            if len(others) > 5:
                shown += ', ...'
            raise RuleError('ports need match.proto to be only tcp, udp or sctp; %s %s no ports'
                            % (shown, 'has' if len(others) == 1 else 'have'), rule=label, field='match.' + key)
    icmp = _validate_icmp(match, protos, label)
    if protos is not None and len(protos) == 256:
        protos = None  # every protocol: the same as no proto field
    return src, dst, protos, ranges['sport'], ranges['dport'], icmp['icmp_type'], icmp['icmp_code']


def _validate_icmp(match, protos, label):
    """{'icmp_type': ranges or None, 'icmp_code': ranges or None}; they need proto exactly icmp or icmpv6."""
    out = {'icmp_type': None, 'icmp_code': None}
    for key in ('icmp_type', 'icmp_code'):
        if match.get(key) is None:
            continue
        field = 'match.' + key
        if protos is None or len(protos) != 1 or protos[0] not in ICMP_PROTOS:
            raise RuleError('ICMP types and codes need match.proto to be exactly icmp or icmpv6 (the two number '
                            'their types differently: echo-request is 8 in ICMP, 128 in ICMPv6); write one rule '
                            'per protocol', rule=label, field=field)
        names = ICMP_TYPES[protos[0]] if key == 'icmp_type' else None
        what = key[5:]  # type or code
        out[key] = _validate_ranges(match[key], label, field, MAX_ICMP, 'an ICMP ' + what, 'ICMP %ss' % what,
                                    names, PROTO_NAMES[protos[0]])
    return out


def _validate_prefixes(value, label, field):
    if value is None:
        return None
    items = _listify(value)
    if not items:
        raise RuleError('an empty list matches nothing; leave the field out to match any address',
                        rule=label, field=field)
    nets = []
    for item in items:
        if isinstance(item, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            nets.append(item)
            continue
        if not isinstance(item, str):
            raise RuleError('%r is not a CIDR (a string like 192.0.2.0/24 or 2001:db8::/32)' % (item,),
                            rule=label, field=field)
        text = item.strip()
        if '%' in text:
            raise RuleError('%r: scoped addresses (with %%zone) are not supported' % (item,), rule=label,
                            field=field)
        try:
            nets.append(ipaddress.ip_network(text))
        except ValueError as exc:
            try:
                wide = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise RuleError('%r is not a CIDR: %s' % (item, exc), rule=label, field=field)
            raise RuleError('%s has host bits set: write %s for the network, or %s/%d for the one address'
                            % (text, wide, text.split('/')[0], wide.max_prefixlen), rule=label, field=field)
    return canonical_prefixes(nets)


def _validate_protos(value, label):
    if value is None:
        return None
    items = _listify(value)
    if not items:
        raise RuleError('an empty list matches nothing; leave the field out to match any protocol',
                        rule=label, field='match.proto')
    out = set()
    for item in items:
        number = None
        if is_int(item):
            number = item
        elif isinstance(item, str):
            text = item.strip().lower()
            if text in PROTO_NUMBERS:
                number = PROTO_NUMBERS[text]
            elif text.isdigit():
                number = int(text)
        if number is None or not 0 <= number <= 255:
            raise RuleError('%r is not a protocol: use %s or a number 0-255'
                            % (item, ', '.join(sorted(PROTO_NUMBERS))), rule=label, field='match.proto')
        out.add(number)
    return tuple(sorted(out))


_RANGE_RE = re.compile(r'^(\d+)(?:\s*-\s*(\d+))?$')


def _validate_ranges(value, label, field, maximum, what, plural, names=None, proto_name=None):
    """Sorted, merged (lo, hi) ranges of a port or ICMP type/code field: numbers, "lo-hi" strings, and for
    ICMP types the names of `names` (those of protocol `proto_name`), alone or in a list."""
    if value is None:
        return None
    items = _listify(value)
    if not items:
        raise RuleError('an empty list matches nothing; leave the field out to match any value', rule=label,
                        field=field)
    ranges = []
    for item in items:
        text = item.strip().lower() if isinstance(item, str) else None
        if is_int(item):
            lo = hi = item
        elif text is not None and _RANGE_RE.match(text):
            m = _RANGE_RE.match(text)
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) is not None else lo
        elif names is not None and text is not None and ICMP_TYPE_ALIASES.get(text, text) in names:
            lo = hi = names[ICMP_TYPE_ALIASES.get(text, text)]
        else:
            if names is not None:
                hint = 'use a number 0-%d, "lo-hi", or one of the %s names: %s' % (
                    maximum, proto_name, ', '.join(sorted(names)))
            else:
                hint = 'use %s (0-%d), a range like "%s" or a list of them' % (
                    what, maximum, '1000-2000' if maximum == MAX_PORT else '0-3')
            raise RuleError('%r is not %s: %s' % (item, what, hint), rule=label, field=field)
        if not (0 <= lo <= maximum and 0 <= hi <= maximum):
            raise RuleError('%r: %s are 0-%d' % (item, plural, maximum), rule=label, field=field)
        if lo > hi:
            raise RuleError('%r: reversed range, write "%d-%d"' % (item, hi, lo), rule=label, field=field)
        ranges.append((lo, hi))
    return merge_ranges(ranges)


_IFNAME_BAD = re.compile(r'[/:\s]')


def _validate_redirect(value, label, interface_exists):
    if value is None:
        raise RuleError('action redirect needs redirect: {interface: NAME}', rule=label, field='redirect')
    if not isinstance(value, dict):
        raise RuleError('must be a mapping with interface (and optionally via), not %s' % type_name(value),
                        rule=label, field='redirect')
    _check_keys(value, REDIRECT_KEYS, label, 'redirect')
    ifname = value.get('interface')
    if ifname is None:
        raise RuleError('action redirect needs the interface to send packets out of', rule=label,
                        field='redirect.interface')
    if (not isinstance(ifname, str) or not 1 <= len(ifname.encode('utf-8')) <= 15
            or ifname in ('.', '..') or _IFNAME_BAD.search(ifname)):
        raise RuleError('%r is not an interface name' % (ifname,), rule=label, field='redirect.interface')
    ifname = str(ifname)
    if interface_exists is not None and not interface_exists(ifname):
        raise RuleError('unknown interface %s' % ifname, rule=label, field='redirect.interface')
    via = value.get('via')
    if via is not None:
        if isinstance(via, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            addr = via
        elif isinstance(via, str):
            try:
                addr = ipaddress.ip_address(via.strip())
            except ValueError:
                raise RuleError('%r is not an IP address (the next hop is one address, no prefix length)'
                                % (via,), rule=label, field='redirect.via')
        else:
            raise RuleError('%r is not an IP address' % (via,), rule=label, field='redirect.via')
        if addr.is_unspecified:
            raise RuleError('%s is not a next hop; leave via out to use the packet\'s destination' % addr,
                            rule=label, field='redirect.via')
        via = addr
    return Redirect(ifname, via)


def _validate_mark(value, label):
    if value is None:
        raise RuleError('action mark needs mark: the value for skb->mark (0-0xffffffff)', rule=label,
                        field='mark')
    mark = None
    if is_int(value):
        mark = value
    elif isinstance(value, str):
        try:
            mark = int(value.strip(), 0)
        except ValueError:
            mark = None
    if mark is None or not 0 <= mark <= MAX_MARK:
        raise RuleError('%r is not a 32-bit mark (0-4294967295, or hex like "0x10")' % (value,),
                        rule=label, field='mark')
    return mark


def parse_rate(value):
    """(unit, rate) of a police rate string; ValueError with the reason when it is not one."""
    if not isinstance(value, str):
        raise ValueError('a rate needs a unit, like 100pps, 10kpps, 500kbit, 10mbit or 1gbit')
    parsed = _quantity(value)
    if parsed is None or parsed[1] not in RATE_UNITS:
        raise ValueError('not a rate: use a number and one of pps, kpps, mpps, bit, kbit, mbit, gbit '
                         '(bits/s), bps, kbps, mbps (bytes/s, as tc)')
    number, suffix = parsed
    unit, mult = RATE_UNITS[suffix]
    rate = number * mult
    if rate.denominator != 1:
        raise ValueError('not a whole number of %s per second' % ('packets' if unit == L.POLICE_PACKETS
                                                                  else 'bits'))
    rate = int(rate)
    if rate <= 0:
        raise ValueError('the rate must be above 0')
    if rate > MAX_RATE:
        raise ValueError('above the policer\'s limit of %d units per second' % MAX_RATE)
    return unit, rate


def parse_burst(value, unit):
    """Burst in units (packets, or bits for a bit rate); ValueError with the reason."""
    if is_int(value):
        number = Fraction(value)
        mult = 1
    elif isinstance(value, str) and _quantity(value) is not None:
        number, suffix = _quantity(value)
        if unit == L.POLICE_PACKETS:
            if suffix not in ('', 'p', 'pkt', 'pkts', 'packets'):
                raise ValueError('the burst of a packet rate is a number of packets')
            mult = 1
        elif suffix in SIZE_UNITS:
            mult = SIZE_UNITS[suffix]
        else:
            raise ValueError('not a size: use bytes, or b, kb, mb, gb (1024-based, as tc)')
    else:
        raise ValueError('not a burst: use an integer (packets for pps, bytes for bit rates) or a size '
                         'like 64kb')
    amount = number * mult
    if amount.denominator != 1 or amount <= 0:
        raise ValueError('must be a whole number above 0')
    units = int(amount) * (8 if unit == L.POLICE_BITS else 1)
    if units > MAX_BURST_UNITS:
        if unit == L.POLICE_PACKETS:
            limit = '%d packets' % MAX_BURST_UNITS
        else:
            limit = '%d bytes' % (MAX_BURST_UNITS // 8)
        raise ValueError('above the policer\'s limit of %s' % limit)
    return units


def default_burst(unit, rate):
    """100 ms worth of `rate`, at least one packet or one full Ethernet frame, within the limits."""
    if unit == L.POLICE_PACKETS:
        units = max(1, -(-rate * DEFAULT_BURST_SECONDS // 1))
    else:
        nbytes = max(MIN_DEFAULT_BURST_BYTES, -(-rate * DEFAULT_BURST_SECONDS / 8 // 1))
        units = nbytes * 8
    limit = MAX_BURST_UNITS if unit == L.POLICE_PACKETS else MAX_BURST_UNITS // 8 * 8
    return int(min(units, limit))


def _validate_police(value, label):
    if value is None:
        raise RuleError('action police needs police: {rate: ...}', rule=label, field='police')
    if not isinstance(value, dict):
        raise RuleError('must be a mapping with rate (and optionally burst), not %s' % type_name(value),
                        rule=label, field='police')
    _check_keys(value, POLICE_KEYS, label, 'police')
    if value.get('rate') is None:
        raise RuleError('action police needs a rate, like 100pps or 10mbit', rule=label, field='police.rate')
    try:
        unit, rate = parse_rate(value['rate'])
    except ValueError as exc:
        raise RuleError('%r: %s' % (value['rate'], exc), rule=label, field='police.rate')
    if value.get('burst') is None:
        burst = default_burst(unit, rate)
    else:
        try:
            burst = parse_burst(value['burst'], unit)
        except ValueError as exc:
            raise RuleError('%r: %s' % (value['burst'], exc), rule=label, field='police.burst')
    if burst * L.NSEC_PER_SEC < rate:
        # police_max_idle_ns = depth // rate would be 0: the bucket would never refill.
        raise RuleError('burst %r is less than the rate brings in one nanosecond' % (value.get('burst'),),
                        rule=label, field='police.burst')
    return Police(unit, rate, burst)

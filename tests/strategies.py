# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hypothesis strategies: random valid steering rule sets and frames aimed at their fields.

Rule sets are drawn in the user-facing schema (what ``_rules.validate`` takes) from small pools of
overlapping prefixes and ports, so that rules shadow each other and frames land on prefix and range
boundaries. Frames are drawn *for* a rule set: addresses inside, at the edges of and just outside its
prefixes, its protocols and port boundaries, in every frame shape the parser knows (VLAN tags, IPv4
options and fragments, IPv6 extension chains) and every way of getting it wrong (cut at any byte,
wrong version, bad IHL, too many extension headers, non-IP).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os

from hypothesis import strategies as st

import model
import packets as pk

# Anchors close to each other so that drawn prefixes nest and overlap.
V4_ANCHORS = ['10.0.0.0', '10.0.0.1', '10.1.2.3', '10.1.2.200', '10.1.255.255', '10.128.0.1', '192.0.2.77',
              '198.51.100.10', '0.0.0.0', '255.255.255.255', '172.16.5.4']
V6_ANCHORS = ['2001:db8::', '2001:db8::1', '2001:db8::10', '2001:db8:100::10', '2001:db8:100:1::1',
              '2001:db8:ffff::ffff', 'fe80::1', '::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::ffff:10.1.2.3']
PORT_POOL = [0, 1, 22, 53, 79, 80, 81, 443, 1023, 1024, 5000, 6000, 8080, 32768, 65534, 65535]
PROTO_POOL = ['tcp', 'udp', 'sctp', 'icmp', 'icmpv6', 0, 47, 50, 59, 60, 255, 6, 17]
PORT_PROTO_NAMES = ['tcp', 'udp', 'sctp']
ICMP_PROTO_CHOICES = ['icmp', 'icmpv6', 1, 58]
# ICMP types and codes: numbers on either side of the named ones, and the names themselves
ICMP_TYPE_POOL = [0, 1, 2, 3, 8, 11, 127, 128, 129, 133, 134, 135, 136, 137, 255]
ICMP_CODE_POOL = [0, 1, 3, 4, 255]

# Fake redirect targets: BPF_PROG_TEST_RUN never looks the interface up. lo is where a test run's skb is (the
# hook's own interface, as a reply's fallback sees it).
INTERFACES = {'eth1': 11, 'eth2': 12, 'veth-svc': 21, 'bond0.100': 4242, 'lo': 1}
IFNAMES = dict((v, k) for k, v in INTERFACES.items())

ACTIONS = ['pass', 'drop', 'redirect', 'mark', 'police', 'learn', 'reply']


# The share of their examples the random tests draw: 1 here, less in the kernel matrix's guests (tests/kernels).
EXAMPLE_SCALE = float(os.environ.get('EBPF_TC_EXAMPLE_SCALE') or 1)


def scaled(n):
    """`n` random examples, or a coverage floor that grows with them, times EXAMPLE_SCALE (at least 1)."""
    return max(1, int(n * EXAMPLE_SCALE))


def ifindex_of(name):
    return INTERFACES.get(name, 0)


def ifname_of(index):
    return IFNAMES.get(index)


def interface_exists(name):
    return name in INTERFACES


def validate(rules, default_action='pass'):
    """``_rules.validate`` with the fake interfaces above."""
    from ansible_collections.ebpf.tc.plugins.module_utils import _rules
    return _rules.validate(rules, default_action, interface_exists=interface_exists)


# ------------------------------------------------------------------------------------------ rules

@st.composite
def prefixes(draw, version):
    anchors, bits = (V4_ANCHORS, 32) if version == 4 else (V6_ANCHORS, 128)
    anchor = ipaddress.ip_address(draw(st.sampled_from(anchors)))
    if draw(st.integers(0, 4)) == 0:
        anchor = type(anchor)(draw(st.integers(0, 2 ** bits - 1)))
    length = draw(st.one_of(st.sampled_from([0, 1, 8, bits // 2, bits - 8, bits - 1, bits]),
                            st.integers(0, bits)))
    net = ipaddress.ip_network((anchor, length), strict=False)
    if length == bits and draw(st.booleans()):
        return str(net.network_address)          # a bare address is a host prefix
    return str(net)


@st.composite
def address_field(draw, families):
    """A src/dst list with at least one prefix of each family in ``families`` (so the rule's families
    are exactly those)."""
    items = [draw(prefixes(f)) for f in sorted(families)]
    items += draw(st.lists(st.sampled_from(sorted(families)).flatmap(prefixes), max_size=3))
    return draw(st.permutations(items))


@st.composite
def port_field(draw):
    def one():
        return st.one_of(
            st.sampled_from(PORT_POOL), st.integers(0, 65535),
            st.tuples(st.sampled_from(PORT_POOL), st.integers(0, 2000)).map(
                lambda t: '%d-%d' % (t[0], min(65535, t[0] + t[1]))))
    items = draw(st.lists(one(), min_size=1, max_size=4))
    return items if len(items) > 1 or draw(st.booleans()) else items[0]


@st.composite
def icmp_field(draw, proto, key):
    """An icmp_type (numbers, ranges, names of ``proto``'s types) or icmp_code (numbers, ranges) field."""
    names = sorted(model.ICMP_TYPES[proto]) if key == 'icmp_type' else []
    pool = ICMP_TYPE_POOL if key == 'icmp_type' else ICMP_CODE_POOL

    def one():
        choices = [st.sampled_from(pool), st.integers(0, 255),
                   st.tuples(st.sampled_from(pool), st.integers(0, 20)).map(
                       lambda t: '%d-%d' % (t[0], min(255, t[0] + t[1])))]
        if names:
            choices.append(st.sampled_from(names))
        return st.one_of(choices)
    items = draw(st.lists(one(), min_size=1, max_size=3))
    return items if len(items) > 1 or draw(st.booleans()) else items[0]


@st.composite
def police_param(draw, gentle=False):
    """A police spec. ``gentle``: bursts big enough that the tests' clock hardly matters."""
    if draw(st.booleans()):
        rate = draw(st.sampled_from(['1pps', '3pps', '7pps', '100pps', '1kpps', '1mpps']))
        burst = draw(st.integers(1, 8)) if not gentle else 10 ** 6
    else:
        rate = draw(st.sampled_from(['1kbit', '64kbit', '1mbit', '10mbit', '1gbit', '12345bit']))
        burst = draw(st.integers(64, 3000)) if not gentle else 10 ** 8
    return {'rate': rate, 'burst': burst}


@st.composite
def raw_rule(draw, name, gentle_police=False):
    families = draw(st.sampled_from([frozenset([4]), frozenset([6]), frozenset([4, 6])]))
    match = {}
    if draw(st.integers(0, 9)) < 4:
        match['src'] = draw(address_field(families))
    if draw(st.integers(0, 9)) < 4:
        match['dst'] = draw(address_field(families))
    ports = {}
    for key in ('sport', 'dport'):
        if draw(st.integers(0, 9)) < 3:
            ports[key] = draw(port_field())
    if ports:
        match['proto'] = draw(st.lists(st.sampled_from(PORT_PROTO_NAMES), min_size=1, max_size=3, unique=True))
        match.update(ports)
    elif draw(st.integers(0, 9)) < 3:
        proto = draw(st.sampled_from(ICMP_PROTO_CHOICES))
        match['proto'] = proto
        number = model.PROTO_NUMBERS.get(proto, proto)
        for key in ('icmp_type', 'icmp_code'):
            if draw(st.integers(0, 9)) < 6:
                match[key] = draw(icmp_field(number, key))
    elif draw(st.booleans()):
        protos = draw(st.lists(st.sampled_from(PROTO_POOL), min_size=1, max_size=3))
        match['proto'] = protos if len(protos) > 1 else protos[0]
    rule = {'name': name, 'action': draw(st.sampled_from(ACTIONS))}
    if match or draw(st.booleans()):
        rule['match'] = match
    if rule['action'] == 'redirect' or rule['action'] == 'reply' and draw(st.booleans()):
        redirect = {'interface': draw(st.sampled_from(sorted(INTERFACES)))}
        if len(families) == 1 and ('src' in match or 'dst' in match) and draw(st.booleans()):
            (family,) = families
            redirect['via'] = '203.0.113.1' if family == 4 else 'fe80::1'
        rule['redirect'] = redirect
    elif rule['action'] == 'mark':
        rule['mark'] = draw(st.one_of(st.sampled_from([0, 1, 0x10, 0xffffffff]), st.integers(0, 2 ** 32 - 1)))
    elif rule['action'] == 'police':
        rule['police'] = draw(police_param(gentle=gentle_police))
    return rule


@st.composite
def raw_rulesets(draw, min_rules=0, max_rules=12, gentle_police=False):
    """(rules, default_action) in the user-facing schema; names r0, r1, ... in order."""
    n = draw(st.integers(min_rules, max_rules))
    rules = [draw(raw_rule('r%d' % i, gentle_police)) for i in range(n)]
    if n < max_rules and draw(st.integers(0, 2)) == 0:
        # a return path: learn the requests to some addresses, reply to them from those addresses
        families = draw(st.sampled_from([frozenset([4]), frozenset([6]), frozenset([4, 6])]))
        service = draw(address_field(families))
        learn = {'name': 'learn', 'action': 'learn', 'match': {'dst': service}}
        reply = {'name': 'reply', 'action': 'reply', 'match': {'src': service}}
        if draw(st.booleans()):
            reply['redirect'] = {'interface': draw(st.sampled_from(sorted(INTERFACES)))}
        at = draw(st.integers(0, n))
        rules[at:at] = [learn, reply] if draw(st.booleans()) else [reply, learn]
    return rules, draw(st.sampled_from(['pass', 'drop']))


@st.composite
def mutated(draw, raw, gentle_police=False):
    """A successor of a raw rule set: some rules kept as they are (counters survive), some with a new
    action (counters survive too), some with a new match (counters reset), some dropped, some new,
    the order shuffled."""
    rules, default = raw
    out = []
    for rule in rules:
        what = draw(st.sampled_from(['keep', 'keep', 'action', 'match', 'drop']))
        if what == 'keep':
            out.append(rule)
        elif what == 'action':
            new = draw(raw_rule(rule['name'], gentle_police))
            new = dict(new, match=rule.get('match')) if 'match' in rule else dict(new, match=None)
            if new.get('redirect') and 'via' in new['redirect']:
                new['redirect'] = {'interface': new['redirect']['interface']}
            out.append(new)
        elif what == 'match':
            out.append(draw(raw_rule(rule['name'], gentle_police)))
    taken = set(r['name'] for r in out)
    extra = draw(st.integers(0, 3))
    for i in range(extra):
        name = 'n%d' % i
        if name not in taken:
            out.append(draw(raw_rule(name, gentle_police)))
    out = draw(st.permutations(out))
    return list(out), draw(st.sampled_from(['pass', 'drop', default]))


# ------------------------------------------------------------------------------------------ frames

def _address(draw, version, networks):
    """An address of ``version``: inside, on the edge of, or just outside one of ``networks``."""
    bits = 32 if version == 4 else 128
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    nets = [n for n in networks if n.version == version]
    choice = draw(st.integers(0, 9))
    if nets and choice < 7:
        net = draw(st.sampled_from(nets))
        first, last = int(net.network_address), int(net.broadcast_address)
        where = draw(st.sampled_from(['first', 'last', 'inside', 'inside', 'below', 'above']))
        value = {'first': first, 'last': last, 'below': first - 1, 'above': last + 1}.get(where)
        if value is None:
            value = draw(st.integers(first, last))
        return cls(value % (2 ** bits))
    if choice < 9:
        return ipaddress.ip_address(draw(st.sampled_from(V4_ANCHORS if version == 4 else V6_ANCHORS)))
    return cls(draw(st.integers(0, 2 ** bits - 1)))


def _port(draw, ranges, pool=None, limit=65536):
    """A port (or ICMP type/code below ``limit``, from ``pool``): inside, on the edge of or just outside
    ``ranges``."""
    pool = PORT_POOL if pool is None else pool
    if ranges and draw(st.integers(0, 3)) < 3:
        lo, hi = draw(st.sampled_from(ranges))
        value = draw(st.sampled_from([lo - 1, lo, hi, hi + 1, (lo + hi) // 2]))
        return value % limit
    return draw(st.one_of(st.sampled_from(pool), st.integers(0, limit - 1)))


EXT_KINDS = ['hbh', 'routing', 'dstopts', 'ah', 'frag']


@st.composite
def ext_chain(draw, max_size=9):
    exts = []
    for kind in draw(st.lists(st.sampled_from(EXT_KINDS), max_size=max_size)):
        if kind == 'frag':
            offset = draw(st.sampled_from([0, 0, 1, 185, 8191]))
            exts.append(('frag', {'offset': offset, 'more': draw(st.booleans())}))
        elif kind == 'ah':
            exts.append(('ah', {'payload_len': draw(st.sampled_from([1, 4, 7]))}))
        elif kind == 'routing':
            exts.append(('routing', {'units': draw(st.integers(0, 3))}))
        else:
            exts.append((kind, {'units': draw(st.integers(0, 2))}))
    return exts


@st.composite
def frames(draw, rules=()):
    """One frame (bytes, at least 14 long) aimed at ``rules`` (ModelRules of the set under test)."""
    src_nets = [n for r in rules for n in (r.src or ())]
    dst_nets = [n for r in rules for n in (r.dst or ())]
    protos = sorted(set(p for r in rules for p in (r.proto or ())))
    sranges = [x for r in rules for x in (r.sport or ())]
    dranges = [x for r in rules for x in (r.dport or ())]
    tranges = [x for r in rules for x in (r.icmp_type or ())]
    cranges = [x for r in rules for x in (r.icmp_code or ())]

    shape = draw(st.sampled_from(['plain'] * 6 + ['vlan', 'options', 'fragment', 'exts', 'exts', 'cut', 'cut',
                                                  'corrupt', 'non-ip', 'noise']))
    if shape == 'non-ip':
        return draw(st.sampled_from([pk.arp(), pk.arp(vlan=7), pk.lldp(), pk.qinq(b'\x45' + b'\x00' * 40, pk.ETH_P_IP),
                                     pk.ether(b'\x00' * 46, 0x8847), pk.ether(b'\x60' + b'\x00' * 60, 0x86DE)]))
    if shape == 'noise':
        ethertype = draw(st.sampled_from([pk.ETH_P_IP, pk.ETH_P_IPV6, pk.ETH_P_8021Q, 0x1234]))
        frame = pk.ether(draw(st.binary(max_size=80)), ethertype)
        return frame + b'\x00' * max(0, pk.min_test_run_length(frame) - len(frame))

    version = draw(st.sampled_from([4, 6]))
    src = _address(draw, version, src_nets)
    dst = _address(draw, version, dst_nets)
    if protos and draw(st.integers(0, 3)) < 3:
        proto = draw(st.sampled_from(protos))
    else:
        proto = draw(st.one_of(st.sampled_from([6, 17, 132, 1, 58]), st.integers(0, 255)))
    sport, dport = _port(draw, sranges), _port(draw, dranges)
    icmp = {'icmp_type': _port(draw, tranges, ICMP_TYPE_POOL, 256),
            'icmp_code': _port(draw, cranges, ICMP_CODE_POOL, 256)}
    payload = draw(st.sampled_from([b'', b'x' * 7, b'y' * 64, b'z' * 300]))
    vlan = draw(st.sampled_from([None, 1, 4095])) if shape in ('vlan', 'cut') or draw(st.integers(0, 5)) == 0 else None
    tpid = draw(st.sampled_from([pk.ETH_P_8021Q, pk.ETH_P_8021AD]))
    if version == 4:
        kw = {}
        if shape == 'options' or shape == 'cut' and draw(st.booleans()):
            kw['options'] = b'\x01' * 4 * draw(st.integers(1, 10))
        if shape == 'fragment':
            kw['frag_offset'] = draw(st.sampled_from([0, 1, 2, 185, 8191]))
            kw['more_fragments'] = draw(st.booleans())
            kw['dont_fragment'] = draw(st.booleans())
        frame = pk.ipv4_frame(src, dst, proto, sport, dport, payload, vlan=vlan, tpid=tpid, **dict(kw, **icmp))
    else:
        exts = draw(ext_chain()) if shape in ('exts', 'cut', 'fragment') else []
        if shape == 'fragment':
            exts.append(('frag', {'offset': draw(st.sampled_from([0, 1, 185])), 'more': draw(st.booleans())}))
        frame = pk.ipv6_frame(src, dst, proto, sport, dport, payload, exts=exts, vlan=vlan, tpid=tpid, **icmp)
    if shape == 'cut':
        frame = frame[:draw(st.integers(pk.min_test_run_length(frame), len(frame)))]
    elif shape == 'corrupt':
        l3 = 18 if vlan is not None else 14
        frame = bytearray(frame)
        how = draw(st.sampled_from(['version', 'ihl', 'byte']))
        if how == 'version':
            frame[l3] = (draw(st.integers(0, 15)) << 4) | (frame[l3] & 0xF)
        elif how == 'ihl' and version == 4:
            frame[l3] = (frame[l3] & 0xF0) | draw(st.integers(0, 15))
        else:
            pos = draw(st.integers(l3, len(frame) - 1))
            frame[pos] = draw(st.integers(0, 255))
        frame = bytes(frame)
    return frame


@st.composite
def replies(draw, learned):
    """A reply to a flow the model learned (a key of ``Dataplane.learned``): from the service to the client,
    ports swapped; sometimes one field off, so that it misses."""
    family, proto, client, client_port, service, service_port = draw(st.sampled_from(sorted(learned, key=repr)))
    off = draw(st.sampled_from([None] * 6 + ['client_port', 'service', 'proto']))
    if off == 'client_port':
        client_port = (client_port + 1) % 65536
    elif off == 'service':
        service = service + 1 if int(service) + 1 < 2 ** service.max_prefixlen else service - 1
    elif off == 'proto':
        proto = {6: 17, 17: 6}.get(proto, 6)
    build = pk.ipv4_frame if family == 4 else pk.ipv6_frame
    return build(service, client, proto, service_port, client_port)


def model_rules(ruleset):
    """The ModelRules of a validated RuleSet (through its canonical dicts)."""
    return [model.model_rule(d) for d in ruleset.to_dicts()]


def rule(name, action='drop', mark=None, redirect=None, police=None, **match):
    """A rule dict in the rule schema (docs/docsite/rst/rules.rst), for hand-written test cases."""
    out = {'name': name, 'match': match, 'action': action}
    for key, value in (('mark', mark), ('redirect', redirect), ('police', police)):
        if value is not None:
            out[key] = value
    return out

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the steering program matches: every field, both families, every frame shape (root).

Each frame goes through the kernel and the model (``Steering.check``); the tests also state the
expected verdict outright, so that a mistake shared by the model and the program still shows.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno

import pytest

import model
import packets as pk
import strategies
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils._errors import LibbpfError
from model import TC_ACT_SHOT, TC_ACT_UNSPEC

rule = strategies.rule

DROP, PASS = TC_ACT_SHOT, TC_ACT_UNSPEC


def verdicts(s, frames):
    return [s.check(f).retval for f in frames]


# ------------------------------------------------------------------------------------------ no / empty set

def test_no_rule_set_passes_everything(steering):
    for frame in (pk.ipv4_frame(), pk.ipv6_frame(), pk.arp(), pk.ipv4_frame(ihl=2)):
        assert steering.run(frame).retval == PASS
    assert steering.maps.rule_counters() == {}
    assert steering.read_counter(L.DEFAULT_COUNTER) == {'packets': 0, 'bytes': 0, 'drops': 0}


@pytest.mark.parametrize('default', ['pass', 'drop'])
def test_empty_rule_set(steering, default):
    steering.apply([], default)
    expected = DROP if default == 'drop' else PASS
    frames = [pk.ipv4_frame(), pk.ipv6_frame(proto='udp'), pk.ipv4_frame(proto='icmp')]
    assert verdicts(steering, frames) == [expected] * 3
    assert verdicts(steering, [pk.arp(), pk.lldp()]) == [PASS, PASS]
    counters = steering.maps.rule_counters()
    assert counters == {'(default)': {'packets': 3, 'bytes': sum(map(len, frames)),
                                      'drops': 3 if default == 'drop' else 0}}
    steering.check_totals()


# ------------------------------------------------------------------------------------------ addresses

@pytest.mark.parametrize('field', ['src', 'dst'])
def test_ipv4_prefix(steering, field):
    steering.apply([rule('net', **{field: '10.1.0.0/16'})])

    def frame(addr):
        return pk.ipv4_frame(**{field: addr})
    assert verdicts(steering, [frame(a) for a in ('10.1.0.0', '10.1.255.255', '10.1.77.3')]) == [DROP] * 3
    assert verdicts(steering, [frame(a) for a in ('10.0.255.255', '10.2.0.0', '11.1.0.0')]) == [PASS] * 3
    assert steering.check(pk.ipv6_frame()).retval == PASS
    steering.check_totals()


@pytest.mark.parametrize('field', ['src', 'dst'])
def test_ipv6_prefix(steering, field):
    steering.apply([rule('net', **{field: '2001:db8:100::/48'})])

    def frame(addr):
        return pk.ipv6_frame(**{field: addr})
    inside = ('2001:db8:100::', '2001:db8:100:ffff:ffff:ffff:ffff:ffff', '2001:db8:100:1::10')
    outside = ('2001:db8:ff:ffff:ffff:ffff:ffff:ffff', '2001:db8:101::', '3001:db8:100::')
    assert verdicts(steering, [frame(a) for a in inside]) == [DROP] * 3
    assert verdicts(steering, [frame(a) for a in outside]) == [PASS] * 3
    assert steering.check(pk.ipv4_frame()).retval == PASS


def test_host_prefixes_and_mixed_families(steering):
    steering.apply([rule('vip', src=['198.51.100.10/32', '2001:db8:100::10/128'])])
    assert steering.check(pk.ipv4_frame(src='198.51.100.10')).retval == DROP
    assert steering.check(pk.ipv6_frame(src='2001:db8:100::10')).retval == DROP
    assert steering.check(pk.ipv4_frame(src='198.51.100.11')).retval == PASS
    assert steering.check(pk.ipv6_frame(src='2001:db8:100::11')).retval == PASS


def test_family_root_excludes_other_family(steering):
    steering.apply([rule('v4', dst='0.0.0.0/0'), rule('v6', 'pass', dst='::/0')], default_action='drop')
    v = steering.check(pk.ipv4_frame())
    assert (v.retval, v.counter) == (DROP, 'v4')
    v = steering.check(pk.ipv6_frame())
    assert (v.retval, v.counter) == (PASS, 'v6')


def test_nested_prefixes_first_match(steering):
    # the longest prefix is not what decides: rule order is
    steering.apply([rule('wide', 'pass', dst='10.0.0.0/8'), rule('narrow', 'drop', dst='10.1.2.0/24'),
                    rule('other', 'drop', dst='10.1.0.0/16', proto='udp')], default_action='drop')
    for addr in ('10.1.2.3', '10.1.3.3', '10.200.0.1'):
        v = steering.check(pk.ipv4_frame(dst=addr, proto='udp'))
        assert (v.retval, v.counter) == (PASS, 'wide')
    steering.apply([rule('narrow', 'drop', dst='10.1.2.0/24'),
                    rule('other', 'mark', dst='10.1.0.0/16', proto='udp', mark=1),
                    rule('wide', 'pass', dst='10.0.0.0/8')], default_action='drop')
    assert steering.check(pk.ipv4_frame(dst='10.1.2.3', proto='udp')).counter == 'narrow'
    assert steering.check(pk.ipv4_frame(dst='10.1.3.3', proto='tcp')).counter == 'wide'
    assert steering.check(pk.ipv4_frame(dst='11.0.0.1', proto='tcp')).counter == '(default)'


def test_src_and_dst_together(steering):
    steering.apply([rule('both', src='192.0.2.0/24', dst='198.51.100.0/24')])
    assert steering.check(pk.ipv4_frame(src='192.0.2.9', dst='198.51.100.9')).retval == DROP
    assert steering.check(pk.ipv4_frame(src='192.0.2.9', dst='198.51.101.9')).retval == PASS
    assert steering.check(pk.ipv4_frame(src='192.0.3.9', dst='198.51.100.9')).retval == PASS


# ------------------------------------------------------------------------------------------ protocols, ports

PROTO_FRAMES = [
    ('tcp', pk.ipv4_frame(proto='tcp')), ('udp', pk.ipv6_frame(proto='udp')), ('sctp', pk.ipv4_frame(proto='sctp')),
    ('icmp', pk.ipv4_frame(proto='icmp')), ('icmpv6', pk.ipv6_frame(proto='icmpv6')), (47, pk.ipv4_frame(proto=47)),
    (0, pk.ipv4_frame(proto=0)), (255, pk.ipv6_frame(proto=255)), (50, pk.ipv6_frame(proto=50, exts=['hbh'])),
    (59, pk.ipv6_frame(proto=59, l4_data=b'')), (132, pk.ipv6_frame(proto='sctp', exts=['dstopts'])),
]


def test_proto(steering):
    protos = [proto for proto, frame in PROTO_FRAMES]
    rules = [rule('p%d' % i, 'mark', proto=proto, mark=i + 1) for i, proto in enumerate(protos)]
    steering.apply(rules, default_action='drop')
    for i, (proto, frame) in enumerate(PROTO_FRAMES):
        first = min(j for j, p in enumerate(protos) if model.PROTO_NUMBERS.get(p, p) ==
                    model.PROTO_NUMBERS.get(proto, proto))
        v = steering.check(frame)
        assert (v.retval, v.counter, v.mark) == (PASS, 'p%d' % first, first + 1), proto
    assert steering.check(pk.ipv4_frame(proto=2)).retval == DROP
    steering.check_totals()


@pytest.mark.parametrize('proto', ['tcp', 'udp', 'sctp'])
def test_ports(steering, proto):
    steering.apply([rule('d', proto=proto, dport=[80, '1000-2000', 65535]),
                    rule('s', 'mark', proto=proto, sport=['0-10', 443], mark=0x443)])
    for build in (pk.ipv4_frame, pk.ipv6_frame):
        for dport in (0, 1, 79, 80, 81, 999, 1000, 1500, 2000, 2001, 65534, 65535):
            expected = DROP if dport in (80, 1000, 1500, 2000, 65535) else PASS
            assert steering.check(build(proto=proto, sport=5000, dport=dport)).retval == expected, dport
        for sport in (0, 10, 11, 442, 443, 444):
            v = steering.check(build(proto=proto, sport=sport, dport=81))
            assert v.counter == ('s' if sport in (0, 10, 443) else '(default)'), sport
        # other protocols never match port rules
        other = {'tcp': 'udp', 'udp': 'sctp', 'sctp': 'tcp'}[proto]
        assert steering.check(build(proto=other, sport=443, dport=80)).counter == '(default)'
    steering.check_totals()


def test_ports_need_four_bytes(steering):
    steering.apply([rule('d', proto='tcp', dport=80), rule('t', 'pass', proto='tcp')], default_action='drop')
    frame = pk.ipv4_frame(proto='tcp', sport=1, dport=80)
    assert steering.check(frame[:34 + 4]).counter == 'd'
    assert steering.check(frame[:34 + 3]).counter == 't'       # no ports, still TCP
    assert steering.check(frame[:34]).counter == 't'
    frame6 = pk.ipv6_frame(proto='tcp', sport=1, dport=80, exts=['dstopts'])
    assert steering.check(frame6[:14 + 40 + 8 + 4]).counter == 'd'
    assert steering.check(frame6[:14 + 40 + 8 + 2]).counter == 't'


def test_icmp_types_and_codes(steering):
    steering.apply([rule('ping', 'pass', proto='icmp', icmp_type='echo-request'),
                    rule('unreach', 'mark', proto='icmp', icmp_type='destination-unreachable', icmp_code=[4, '9-10'],
                         mark=4),
                    rule('nd', 'pass', proto='icmpv6', icmp_type=['neighbour-solicitation', 'neighbor-advertisement',
                                                                  'packet-too-big']),
                    rule('info6', 'mark', proto='icmpv6', icmp_type='128-255', mark=128),
                    rule('icmp', proto='icmp'), rule('icmp6', proto='icmpv6')], default_action='pass')
    cases = [(pk.ipv4_frame(proto='icmp', icmp_type=8), 'ping'), (pk.ipv4_frame(proto='icmp', icmp_type=0), 'icmp'),
             (pk.ipv4_frame(proto='icmp', icmp_type=3, icmp_code=4), 'unreach'),
             (pk.ipv4_frame(proto='icmp', icmp_type=3, icmp_code=10), 'unreach'),
             (pk.ipv4_frame(proto='icmp', icmp_type=3, icmp_code=3), 'icmp'),
             (pk.ipv4_frame(proto='icmp', icmp_type=128), 'icmp'),     # ICMPv6 numbers mean nothing to ICMP
             (pk.ipv6_frame(proto='icmpv6', icmp_type=135), 'nd'), (pk.ipv6_frame(proto='icmpv6', icmp_type=136), 'nd'),
             (pk.ipv6_frame(proto='icmpv6', icmp_type=2), 'nd'), (pk.ipv6_frame(proto='icmpv6', icmp_type=133), 'info6'),
             (pk.ipv6_frame(proto='icmpv6', icmp_type=128), 'info6'), (pk.ipv6_frame(proto='icmpv6', icmp_type=1), 'icmp6'),
             (pk.ipv6_frame(proto='icmpv6', icmp_type=8), 'icmp6')]
    for frame, expected in cases:
        assert steering.check(frame).counter == expected, (frame.hex(), expected)
    # the type and code sit where ports would: a port of the same number matches no ICMP rule
    for proto in ('tcp', 'udp', 'sctp'):
        assert steering.check(pk.ipv4_frame(proto=proto, sport=8, dport=0)).counter == '(default)'
        assert steering.check(pk.ipv6_frame(proto=proto, sport=135, dport=0)).counter == '(default)'
    steering.check_totals()


def test_icmp_type_needs_two_bytes_and_a_first_fragment(steering):
    steering.apply([rule('ping', 'pass', proto='icmp', icmp_type=8), rule('code', 'pass', proto='icmpv6', icmp_code=0),
                    rule('icmp', 'mark', proto=['icmp', 'icmpv6'], mark=1)], default_action='drop')
    frame = pk.ipv4_frame(proto='icmp', icmp_type=8)
    assert steering.check(frame[:34 + 2]).counter == 'ping'
    assert steering.check(frame[:34 + 1]).counter == 'icmp'     # no type, still ICMP
    assert steering.check(pk.ipv4_frame(proto='icmp', icmp_type=8, frag_offset=1)).counter == 'icmp'
    frame6 = pk.ipv6_frame(proto='icmpv6', icmp_type=128, exts=['hbh'])
    assert steering.check(frame6[:14 + 40 + 8 + 2]).counter == 'code'
    assert steering.check(frame6[:14 + 40 + 8 + 1]).counter == 'icmp'
    assert steering.check(pk.ipv6_frame(proto='icmpv6', exts=[('frag', {'offset': 1})])).counter == 'icmp'
    steering.check_totals()


# ------------------------------------------------------------------------------------------ frame shapes

def test_one_vlan_tag(steering):
    steering.apply([rule('d', src='192.0.2.0/24', proto='udp', dport=53), rule('d6', dst='2001:db8::/32')])
    for tpid in (pk.ETH_P_8021Q, pk.ETH_P_8021AD):
        assert steering.check(pk.ipv4_frame(src='192.0.2.1', proto='udp', dport=53, vlan=100, tpid=tpid)).counter == 'd'
        assert steering.check(pk.ipv6_frame(dst='2001:db8::5', vlan=4095, tpid=tpid)).counter == 'd6'
        assert steering.check(pk.ipv4_frame(src='192.0.2.1', proto='udp', dport=54, vlan=0, tpid=tpid)).retval == PASS
    assert steering.check(pk.qinq(pk.ipv4('192.0.2.1', '192.0.2.2', 'udp', pk.udp(1, 53)), pk.ETH_P_IP)).retval == PASS


def test_ipv4_options(steering):
    steering.apply([rule('d', proto='udp', sport=53, dport=5353)])
    for words in (1, 2, 5, 10):
        options = b'\x01' * 4 * words
        assert steering.check(pk.ipv4_frame(proto='udp', sport=53, dport=5353, options=options)).retval == DROP
        assert steering.check(pk.ipv4_frame(proto='udp', sport=53, dport=5354, options=options)).retval == PASS


EXT_CHAINS = [
    ['hbh'], ['routing'], ['dstopts'], ['ah'], ['frag'],
    ['hbh', 'dstopts', 'routing', 'frag', 'ah', 'dstopts'],
    [('hbh', {'units': 3}), ('routing', {'units': 6}), ('ah', {'payload_len': 7}), ('dstopts', {'units': 1})],
    [('frag', {'offset': 0, 'more': True}), 'dstopts'],
    ['dstopts'] * 7,
]


def test_ipv6_extension_chains(steering):
    steering.apply([rule('d', proto='tcp', dport=443), rule('t', 'pass', proto='tcp')], default_action='drop')
    for exts in EXT_CHAINS:
        assert steering.check(pk.ipv6_frame(proto='tcp', dport=443, exts=exts)).counter == 'd', exts
        assert steering.check(pk.ipv6_frame(proto='tcp', dport=444, exts=exts)).counter == 't', exts
    steering.check_totals()


def test_ipv6_eight_extension_headers(steering):
    """At most 8 extension headers are walked: 8 and then TCP is a TCP packet."""
    steering.apply([rule('d', proto='tcp', dport=443), rule('t', 'pass', proto='tcp')], default_action='drop')
    assert steering.check(pk.ipv6_frame(proto='tcp', dport=443, exts=['dstopts'] * 8)).counter == 'd'
    exts = ['hbh', 'routing', 'dstopts', 'ah', 'frag', 'dstopts', 'routing', 'dstopts']
    assert steering.check(pk.ipv6_frame(proto='tcp', dport=444, exts=exts)).counter == 't'


def test_ipv6_nine_extension_headers_are_malformed(steering):
    steering.apply([rule('t', 'pass', proto='tcp')], default_action='drop')
    v = steering.check(pk.ipv6_frame(proto='tcp', dport=443, exts=['dstopts'] * 9))
    assert (v.retval, v.counter, v.proto_bucket) == (DROP, '(default)', 'malformed')


def test_ipv6_walk_ends_at_esp_and_no_next_header(steering):
    steering.apply([rule('esp', proto=50), rule('none', proto=59)])
    for proto, name in ((50, 'esp'), (59, 'none')):
        v = steering.check(pk.ipv6_frame(proto=proto, exts=['hbh', 'dstopts'], l4_data=b'\x00' * 16))
        assert (v.retval, v.counter, v.proto_bucket) == (DROP, name, proto)


def test_ipv4_fragments(steering):
    steering.apply([rule('ports', proto='udp', dport=53), rule('proto', 'mark', proto='udp', mark=7)])
    assert steering.check(pk.ipv4_frame(proto='udp', dport=53, more_fragments=True)).counter == 'ports'
    for offset in (1, 185, 8191):
        assert steering.check(pk.ipv4_frame(proto='udp', dport=53, frag_offset=offset)).counter == 'proto'
    assert steering.check(pk.ipv4_frame(proto='udp', dport=53, dont_fragment=True)).counter == 'ports'


def test_ipv6_fragments(steering):
    steering.apply([rule('ports', proto='udp', dport=53), rule('proto', 'mark', proto='udp', mark=7),
                    rule('frag-hdr', 'pass', proto=44)])
    assert steering.check(pk.ipv6_frame(proto='udp', dport=53, exts=[('frag', {'more': True})])).counter == 'ports'
    for exts in ([('frag', {'offset': 1})], ['hbh', ('frag', {'offset': 185, 'more': True})],
                 [('frag', {'offset': 8191})]):
        assert steering.check(pk.ipv6_frame(proto='udp', dport=53, exts=exts)).counter == 'proto'
    # a non-first fragment's protocol is the fragment header's next header, whatever follows
    v = steering.check(pk.ipv6_frame(proto='udp', dport=53, exts=[('frag', {'offset': 1}), 'dstopts']))
    assert (v.counter, v.proto_bucket) == ('(default)', 60)


def test_every_cut_of_a_frame(steering):
    steering.apply([rule('d', proto='tcp', dport=443), rule('t', 'mark', proto='tcp', mark=3),
                    rule('ah', 'pass', proto=51)], default_action='drop')
    frames = [
        pk.ipv4_frame(proto='tcp', dport=443, options=b'\x01' * 8, vlan=5),
        pk.ipv6_frame(proto='tcp', dport=443,
                      exts=['hbh', ('ah', {'payload_len': 4}), ('routing', {'units': 2}), 'frag'], vlan=9),
    ]
    for frame in frames:
        for n in range(14, len(frame) + 1):
            steering.check(frame[:n], context='cut at %d' % n)
    steering.check_totals()


MALFORMED = [
    ('v4-version6', pk.ipv4_frame(version=6)), ('v4-version0', pk.ipv4_frame(version=0)),
    ('ihl4', pk.ipv4_frame(ihl=4)), ('ihl0', pk.ipv4_frame(ihl=0)),
    ('ihl-past-end', pk.ether(pk.ipv4('1.1.1.1', '2.2.2.2', 'tcp', b'\x00' * 10, ihl=15), pk.ETH_P_IP)),
    ('v6-version4', pk.ipv6_frame(version=4)), ('v6-version0', pk.ipv6_frame(version=0)),
    ('v4-cut', pk.ipv4_frame(vlan=1)[:37]), ('v6-cut', pk.ipv6_frame(vlan=1)[:57]),
    ('empty-v4', pk.ether(b'', pk.ETH_P_IP, vlan=3)), ('empty-v6', pk.ether(b'', pk.ETH_P_IPV6, vlan=3)),
    ('ext-missing', pk.ipv6_frame(exts=['hbh'])[:14 + 40]), ('ext-cut-1', pk.ipv6_frame(exts=['hbh'])[:14 + 40 + 1]),
    ('frag-cut', pk.ipv6_frame(exts=['frag'])[:14 + 40 + 7]),
    ('nine-ext', pk.ipv6_frame(exts=['hbh'] + ['dstopts'] * 8)),
]
# An extension header present only in part is "cut short" (docs/docsite/rst/dataplane.rst): malformed.
MALFORMED_CUT_EXT = [
    ('ext-cut-7', pk.ipv6_frame(exts=['hbh'])[:14 + 40 + 7]),
    ('ah-cut', pk.ipv6_frame(proto=59, l4_data=b'', exts=[('ah', {'payload_len': 4})])[:-1]),
    ('routing-cut', pk.ipv6_frame(proto=59, l4_data=b'', exts=[('routing', {'units': 4})])[:-8]),
]


@pytest.mark.parametrize('cases', [MALFORMED, MALFORMED_CUT_EXT], ids=['headers', 'cut-extension-headers'])
def test_malformed_gets_default_action(steering, cases):
    steering.apply([rule('all', 'pass')], default_action='drop')
    total = 0
    for name, frame in cases:
        v = steering.check(frame, context=name)
        assert (v.retval, v.counter, v.proto_bucket) == (DROP, '(default)', 'malformed'), name
        total += len(frame)
    assert steering.maps.rule_counters() == {'all': {'packets': 0, 'bytes': 0, 'drops': 0},
                                             '(default)': {'packets': len(cases), 'bytes': total, 'drops': len(cases)}}
    assert steering.maps.proto_counters() == {'malformed': {'packets': len(cases), 'bytes': total}}


def test_malformed_with_default_pass(steering):
    steering.apply([rule('all', 'drop')], default_action='pass')
    v = steering.check(pk.ipv4_frame(ihl=3))
    assert (v.retval, v.counter) == (PASS, '(default)')


NON_IP = [pk.arp(), pk.arp(vlan=1), pk.lldp(), pk.ether(b'\x00' * 46, 0x8847),
          pk.ether(pk.ipv4('1.1.1.1', '2.2.2.2', 'tcp', pk.tcp(1, 2)), 0x0801), pk.ipv4_frame(vlan=1)[:16],
          pk.qinq(pk.ipv6('::1', '::2', 6, pk.tcp(1, 2)), pk.ETH_P_IPV6), pk.ether(b'', 0x0000)]


def test_non_ip_always_passes(steering):
    steering.apply([rule('all')], default_action='drop')
    for frame in NON_IP:
        v = steering.check(frame)
        assert (v.retval, v.counter, v.proto_bucket) == (PASS, None, 'non-ip'), frame.hex()
    assert steering.maps.rule_counters() == {'all': {'packets': 0, 'bytes': 0, 'drops': 0},
                                             '(default)': {'packets': 0, 'bytes': 0, 'drops': 0}}
    assert steering.maps.proto_counters() == {'non-ip': {'packets': len(NON_IP), 'bytes': sum(map(len, NON_IP))}}


@pytest.mark.parametrize('frame,min_length', [(pk.ipv4_frame(), 34), (pk.ipv6_frame(), 54)], ids=['ipv4', 'ipv6'])
def test_kernel_refuses_cut_untagged_ip_headers(steering, frame, min_length):
    """Why the cut-header tests use tagged frames: BPF_PROG_TEST_RUN itself wants the IP header of an
    untagged IP frame (EINVAL). A tagged one reaches the program as it is."""
    assert pk.min_test_run_length(frame) == min_length
    with pytest.raises(LibbpfError) as err:
        steering.run(frame[:min_length - 1])
    assert err.value.errno == errno.EINVAL
    steering.run(frame[:min_length])
    steering.run(pk.ether(frame[14:min_length - 1], int.from_bytes(frame[12:14], 'big'), vlan=1))


# ------------------------------------------------------------------------------------------ size

def test_maximum_rule_count(steering):
    """4096 rules: the last one still matches (the bit vectors' last word is used)."""
    rules = [rule('r%d' % i, 'pass', dst='10.%d.%d.1/32' % (i // 256, i % 256)) for i in range(4095)]
    rules.append(rule('last', 'mark', dst='192.0.2.0/24', proto='udp', dport=53, mark=0x4096))
    steering.apply(rules, default_action='drop')
    assert steering.header.nrules == 4096 and steering.header.nwords == 64
    v = steering.check(pk.ipv4_frame(dst='192.0.2.1', proto='udp', dport=53))
    assert (v.counter, v.retval) == ('last', PASS)
    assert steering.run(pk.ipv4_frame(dst='192.0.2.1', proto='udp', dport=53)).mark == 0x4096
    assert steering.check(pk.ipv4_frame(dst='10.15.254.1')).counter == 'r4094'
    assert steering.check(pk.ipv4_frame(dst='10.0.0.1')).counter == 'r0'
    assert steering.check(pk.ipv4_frame(dst='10.15.255.1')).counter == '(default)'
    assert steering.check(pk.ipv4_frame(dst='192.0.2.1', proto='udp', dport=54)).retval == DROP
    counters = steering.maps.rule_counters()
    assert len(counters) == 4097 and counters['last']['packets'] == 2

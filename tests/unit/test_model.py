# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests of the reference model (tests/model.py) on hand-written frames. No root needed."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os

import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

import model
import packets as pk
from model import TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC, NS


def rs(rules, default='pass'):
    return (rules, default)


def dp(rules, default='pass', clock=None):
    plane = model.Dataplane(clock=clock)
    plane.apply(rs(rules, default))
    return plane


# ------------------------------------------------------------------------------------------ parse

class TestParseIPv4:

    def test_tcp(self):
        p = model.parse(pk.ipv4_frame('10.0.0.1', '10.0.0.2', 'tcp', 1000, 80))
        assert (p.kind, p.family, p.proto, p.sport, p.dport, p.nonfirst) == ('ip', 4, 6, 1000, 80, False)
        assert p.src == ipaddress.ip_address('10.0.0.1') and p.dst == ipaddress.ip_address('10.0.0.2')

    @pytest.mark.parametrize('proto,number', [('udp', 17), ('sctp', 132)])
    def test_port_protocols(self, proto, number):
        p = model.parse(pk.ipv4_frame(proto=proto, sport=5, dport=65535))
        assert (p.proto, p.sport, p.dport) == (number, 5, 65535)

    @pytest.mark.parametrize('proto', ['icmp', 47, 0, 255, 58])
    def test_no_ports_for_other_protocols(self, proto):
        p = model.parse(pk.ipv4_frame(proto=proto))
        assert p.kind == 'ip' and p.sport is None and p.dport is None

    def test_options_move_l4(self):
        options = b'\x01' * 40          # IHL 15
        p = model.parse(pk.ipv4_frame(proto='udp', sport=53, dport=5353, options=options))
        assert (p.sport, p.dport) == (53, 5353)

    @pytest.mark.parametrize('tpid', [pk.ETH_P_8021Q, pk.ETH_P_8021AD])
    def test_one_vlan_tag(self, tpid):
        p = model.parse(pk.ipv4_frame(proto='tcp', sport=1, dport=2, vlan=42, tpid=tpid))
        assert (p.kind, p.sport, p.dport) == ('ip', 1, 2)

    def test_two_tags_are_not_ip(self):
        frame = pk.qinq(pk.ipv4('10.0.0.1', '10.0.0.2', 'tcp', pk.tcp(1, 2)), pk.ETH_P_IP)
        assert model.parse(frame).kind == 'non-ip'

    def test_cut_vlan_tag_is_not_ip(self):
        frame = pk.ipv4_frame(vlan=1)
        assert model.parse(frame[:16]).kind == 'non-ip'
        assert model.parse(frame[:18]).kind == 'malformed'    # tag complete, says IPv4, no header

    def test_non_first_fragment_has_no_ports(self):
        p = model.parse(pk.ipv4_frame(proto='tcp', sport=1, dport=80, frag_offset=185))
        assert (p.proto, p.sport, p.nonfirst) == (6, None, True)

    def test_first_fragment_has_ports(self):
        p = model.parse(pk.ipv4_frame(proto='tcp', sport=1, dport=80, more_fragments=True))
        assert (p.sport, p.dport, p.nonfirst) == (1, 80, False)

    def test_dont_fragment_is_not_a_fragment(self):
        p = model.parse(pk.ipv4_frame(proto='tcp', sport=1, dport=80, dont_fragment=True))
        assert (p.sport, p.nonfirst) == (1, False)

    @pytest.mark.parametrize('ihl', [0, 1, 4])
    def test_ihl_below_5_is_malformed(self, ihl):
        assert model.parse(pk.ipv4_frame(ihl=ihl)).kind == 'malformed'

    def test_ihl_past_the_frame_is_malformed(self):
        frame = pk.ether(pk.ipv4('1.1.1.1', '2.2.2.2', 'tcp', b'', ihl=15), pk.ETH_P_IP)
        assert len(frame) == 34
        assert model.parse(frame).kind == 'malformed'
        assert model.parse(frame + b'\x00' * 39).kind == 'malformed'
        assert model.parse(frame + b'\x00' * 40).kind == 'ip'

    @pytest.mark.parametrize('version', [0, 5, 6, 15])
    def test_wrong_version_is_malformed(self, version):
        assert model.parse(pk.ipv4_frame(version=version)).kind == 'malformed'

    def test_every_cut_of_the_header_is_malformed(self):
        frame = pk.ipv4_frame(proto='tcp')
        for n in range(14, 34):
            assert model.parse(frame[:n]).kind == 'malformed', n

    def test_ports_need_four_bytes(self):
        frame = pk.ipv4_frame(proto='tcp', sport=7, dport=9)
        assert model.parse(frame[:34 + 3]).sport is None
        assert model.parse(frame[:34 + 3]).kind == 'ip'
        assert (model.parse(frame[:34 + 4]).sport, model.parse(frame[:38]).dport) == (7, 9)

    def test_total_length_is_ignored(self):
        p = model.parse(pk.ipv4_frame(proto='udp', sport=1, dport=2, total_length=3))
        assert (p.kind, p.sport) == ('ip', 1)


class TestParseIPv6:

    def test_tcp(self):
        p = model.parse(pk.ipv6_frame('2001:db8::1', '2001:db8::2', 'tcp', 1, 2))
        assert (p.kind, p.family, p.proto, p.sport, p.dport) == ('ip', 6, 6, 1, 2)
        assert p.dst == ipaddress.ip_address('2001:db8::2')

    def test_every_extension_header(self):
        exts = ['hbh', ('routing', {'units': 2}), ('dstopts', {'units': 1}), ('ah', {'payload_len': 4}), 'frag']
        p = model.parse(pk.ipv6_frame(proto='udp', sport=53, dport=54, exts=exts))
        assert (p.proto, p.sport, p.dport, p.nonfirst) == (17, 53, 54, False)

    def test_eight_headers_walked_nine_malformed(self):
        assert model.parse(pk.ipv6_frame(proto='sctp', sport=3, dport=4, exts=['dstopts'] * 8)).sport == 3
        assert model.parse(pk.ipv6_frame(proto='sctp', sport=3, dport=4, exts=['dstopts'] * 9)).kind == 'malformed'

    def test_non_first_fragment(self):
        p = model.parse(pk.ipv6_frame(proto='tcp', sport=1, dport=2, exts=['hbh', ('frag', {'offset': 3})]))
        assert (p.kind, p.proto, p.sport, p.nonfirst) == ('ip', 6, None, True)

    def test_non_first_fragment_proto_is_fragment_next_header(self):
        # the fragment's next header is another extension header: that is the protocol, no walk further
        frame = pk.ipv6_frame(proto='tcp', exts=[('frag', {'offset': 1}), 'dstopts'])
        p = model.parse(frame)
        assert (p.proto, p.nonfirst) == (60, True)

    def test_non_first_fragment_as_ninth_header_is_malformed(self):
        frame = pk.ipv6_frame(proto='tcp', exts=['dstopts'] * 8 + [('frag', {'offset': 1})])
        assert model.parse(frame).kind == 'malformed'

    def test_first_fragment_walk_continues(self):
        p = model.parse(pk.ipv6_frame(proto='tcp', sport=8, dport=9, exts=[('frag', {'more': True}), 'dstopts']))
        assert (p.proto, p.sport, p.nonfirst) == (6, 8, False)

    @pytest.mark.parametrize('proto', [50, 59, 58, 17])
    def test_walk_ends_at_other_headers(self, proto):
        p = model.parse(pk.ipv6_frame(proto=proto, exts=['hbh']))
        assert (p.kind, p.proto) == ('ip', proto)

    def test_ah_length(self):
        # payload_len 1 → 12 bytes, payload_len 7 → 36 bytes
        for plen in (1, 7):
            p = model.parse(pk.ipv6_frame(proto='udp', sport=11, dport=12, exts=[('ah', {'payload_len': plen})]))
            assert p.sport == 11

    def test_cut_extension_header_is_malformed(self):
        frame = pk.ipv6_frame(proto=59, l4_data=b'', exts=[('dstopts', {'units': 2})])
        assert len(frame) == 14 + 40 + 24
        assert model.parse(frame).kind == 'ip'
        for n in range(14 + 40 + 1, len(frame)):
            assert model.parse(frame[:n]).kind == 'malformed', n

    @pytest.mark.parametrize('version', [4, 0, 7])
    def test_wrong_version(self, version):
        assert model.parse(pk.ipv6_frame(version=version)).kind == 'malformed'

    def test_cut_header(self):
        frame = pk.ipv6_frame()
        for n in range(14, 54):
            assert model.parse(frame[:n]).kind == 'malformed'


def test_missing_extension_header_is_malformed():
    frame = pk.ipv6_frame(proto=59, l4_data=b'', exts=['hbh'])[:54]
    assert model.parse(frame).kind == 'malformed'


@pytest.mark.parametrize('frame', [pk.arp(), pk.arp(vlan=3), pk.lldp(), pk.ether(b'\x00' * 40, 0x8847)])
def test_non_ip(frame):
    assert model.parse(frame).kind == 'non-ip'


# ------------------------------------------------------------------------------------------ parse vs scapy

_V4 = st.builds(ipaddress.IPv4Address, st.integers(0, 2 ** 32 - 1))
_V6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2 ** 128 - 1))


@settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(v6=st.booleans(), a=st.data(), proto=st.sampled_from(['tcp', 'udp', 'sctp', 'icmp', 47]),
       sport=st.integers(0, 65535), dport=st.integers(0, 65535), vlan=st.none() | st.integers(0, 4095),
       exts=st.lists(st.sampled_from(['hbh', 'routing', 'dstopts']), max_size=3))
def test_parse_agrees_with_scapy(v6, a, proto, sport, dport, vlan, exts):
    # (scapy does not follow AH's next header, so AH is left to the hand-written tests)
    from scapy.layers.l2 import Ether
    from scapy.layers.inet import IP
    from scapy.layers.inet6 import IPv6
    if v6:
        src, dst = a.draw(_V6), a.draw(_V6)
        frame = pk.ipv6_frame(src, dst, proto, sport, dport, vlan=vlan, exts=exts)
    else:
        src, dst = a.draw(_V4), a.draw(_V4)
        frame = pk.ipv4_frame(src, dst, proto, sport, dport, vlan=vlan)
    p = model.parse(frame)
    s = Ether(frame)
    ip = s[IPv6] if v6 else s[IP]
    assert (p.src, p.dst) == (ipaddress.ip_address(ip.src), ipaddress.ip_address(ip.dst))
    if proto in ('tcp', 'udp', 'sctp'):
        from scapy.layers.inet import TCP, UDP
        from scapy.layers.sctp import SCTP
        l4 = s[{'tcp': TCP, 'udp': UDP, 'sctp': SCTP}[proto]]
        assert (p.sport, p.dport) == (l4.sport, l4.dport)
    else:
        assert p.sport is None


# ------------------------------------------------------------------------------------------ classify

def rule(name, action='pass', **match):
    d = {'name': name, 'match': match, 'action': action}
    return d


def test_first_match_wins():
    plane = dp([rule('a', 'drop', dst=['10.0.0.0/8']), rule('b', 'pass', dst=['10.1.0.0/16'])])
    v = plane.run(pk.ipv4_frame(dst='10.1.2.3'))
    assert (v.kind, v.rule, v.retval, v.counter) == ('drop', 0, TC_ACT_SHOT, 'a')


def test_family_exclusion():
    plane = dp([rule('v4any', 'drop', dst=['0.0.0.0/0'])])
    assert plane.run(pk.ipv4_frame()).retval == TC_ACT_SHOT
    v = plane.run(pk.ipv6_frame())
    assert (v.kind, v.retval, v.counter) == ('default', TC_ACT_UNSPEC, '(default)')


def test_mixed_family_list():
    plane = dp([rule('mixed', 'drop', src=['198.51.100.10/32', '2001:db8:100::10/128'])])
    assert plane.run(pk.ipv4_frame(src='198.51.100.10')).kind == 'drop'
    assert plane.run(pk.ipv6_frame(src='2001:db8:100::10')).kind == 'drop'
    assert plane.run(pk.ipv6_frame(src='2001:db8:100::11')).kind == 'default'


def test_all_fields_must_match():
    r = rule('x', 'drop', src=['10.0.0.0/24'], dst=['10.0.1.0/24'], proto=['udp'], sport=['100-200'], dport=[53])
    plane = dp([r])
    good = dict(src='10.0.0.5', dst='10.0.1.5', proto='udp', sport=150, dport=53)
    assert plane.run(pk.ipv4_frame(**good)).kind == 'drop'
    for field, value in [('src', '10.0.2.5'), ('dst', '10.0.0.5'), ('proto', 'tcp'), ('sport', 99),
                         ('sport', 201), ('dport', 54)]:
        assert plane.run(pk.ipv4_frame(**dict(good, **{field: value}))).kind == 'default', field


def test_port_rule_never_matches_packets_without_ports():
    plane = dp([rule('p', 'drop', proto=['tcp'], dport=['0-65535'])])
    assert plane.run(pk.ipv4_frame(proto='tcp')).kind == 'drop'
    assert plane.run(pk.ipv4_frame(proto='tcp', frag_offset=1)).kind == 'default'
    assert plane.run(pk.ipv6_frame(proto='tcp', exts=[('frag', {'offset': 1})])).kind == 'default'
    assert plane.run(pk.ipv4_frame(proto='tcp')[:34 + 3]).kind == 'default'


def test_proto_only_rule_matches_fragments():
    plane = dp([rule('t', 'drop', proto=['tcp'])])
    assert plane.run(pk.ipv4_frame(proto='tcp', frag_offset=1)).kind == 'drop'
    assert plane.run(pk.ipv6_frame(proto='tcp', exts=[('frag', {'offset': 1})])).kind == 'drop'


@pytest.mark.parametrize('proto,frame', [
    ('icmp', pk.ipv4_frame(proto='icmp')), ('icmpv6', pk.ipv6_frame(proto='icmpv6')), (47, pk.ipv4_frame(proto=47)),
    ('sctp', pk.ipv6_frame(proto='sctp', exts=['hbh']))])
def test_proto_names(proto, frame):
    assert dp([rule('x', 'drop', proto=[proto])]).run(frame).kind == 'drop'


def test_non_ip_passes_with_default_drop():
    plane = dp([rule('all', 'drop')], default='drop')
    for frame in (pk.arp(), pk.lldp(), pk.qinq(b'', pk.ETH_P_IP)):
        v = plane.run(frame)
        assert (v.kind, v.retval, v.counter, v.proto_bucket) == ('pass', TC_ACT_UNSPEC, None, 'non-ip')


def test_malformed_gets_default_action():
    plane = dp([rule('all', 'pass')], default='drop')
    v = plane.run(pk.ipv4_frame(ihl=3))
    assert (v.kind, v.retval, v.counter, v.dropped, v.proto_bucket) == ('default', TC_ACT_SHOT, '(default)',
                                                                        True, 'malformed')


def test_no_rule_set_passes_everything():
    plane = model.Dataplane()
    v = plane.run(pk.ipv4_frame())
    assert (v.kind, v.retval, v.counter) == ('pass', TC_ACT_UNSPEC, None)


def test_actions():
    rules = [
        dict(rule('m', 'mark', proto=['udp']), mark=0x10),
        dict(rule('r', 'redirect', proto=['tcp']), redirect={'interface': 'eth1', 'via': '203.0.113.1'}),
        dict(rule('d', 'drop', proto=['icmp'])),
        dict(rule('p', 'pass', proto=['sctp'])),
    ]
    plane = dp(rules, default='drop')
    v = plane.run(pk.ipv4_frame(proto='udp'))
    assert (v.kind, v.retval, v.mark, model.expected_mark(v, 7)) == ('mark', TC_ACT_UNSPEC, 0x10, 0x10)
    v = plane.run(pk.ipv4_frame(proto='tcp'))
    assert (v.kind, v.retval, v.redirect) == ('redirect', TC_ACT_REDIRECT, ('eth1', '203.0.113.1'))
    assert plane.run(pk.ipv4_frame(proto='icmp')).retval == TC_ACT_SHOT
    v = plane.run(pk.ipv4_frame(proto='sctp'))
    assert (v.retval, model.expected_mark(v, 7)) == (TC_ACT_UNSPEC, 7)
    assert plane.run(pk.ipv4_frame(proto=47)).retval == TC_ACT_SHOT


def test_counters_and_proto_stats():
    plane = dp([rule('t', 'drop', proto=['tcp'])])
    f1, f2 = pk.ipv4_frame(proto='tcp'), pk.ipv6_frame(proto='udp', payload=b'x' * 10)
    plane.run(f1)
    plane.run(f1)
    plane.run(f2)
    plane.run(pk.arp())
    c = plane.rule_counters()
    assert c['t'] == {'packets': 2, 'bytes': 2 * len(f1), 'drops': 2}
    assert c['(default)'] == {'packets': 1, 'bytes': len(f2), 'drops': 0}
    assert plane.proto_stats[6] == {'packets': 2, 'bytes': 2 * len(f1)}
    assert plane.proto_stats['non-ip']['packets'] == 1


def test_counters_survive_unchanged_name_and_match():
    plane = dp([rule('a', 'drop', proto=['tcp']), rule('b', 'pass', proto=['udp'])])
    plane.run(pk.ipv4_frame(proto='tcp'))
    plane.run(pk.ipv4_frame(proto='udp'))
    # 'a' changes action only (keeps), 'b' changes match (reset), 'c' is new
    plane.apply(rs([rule('c', 'pass', proto=['icmp']), rule('a', 'pass', proto=['tcp']),
                    rule('b', 'pass', proto=['udp', 'sctp'])]))
    c = plane.rule_counters()
    assert (c['a']['packets'], c['b']['packets'], c['c']['packets']) == (1, 0, 0)
    # a rule that leaves and comes back starts again from zero
    plane.apply(rs([rule('x', 'pass')]))
    plane.apply(rs([rule('a', 'pass', proto=['tcp'])]))
    assert plane.rule_counters()['a']['packets'] == 0


# ------------------------------------------------------------------------------------------ police

def police_rule(rate, burst, **match):
    return dict(rule('pol', 'police', **match), police={'rate': rate, 'burst': burst})


def test_parse_rate():
    assert model.parse_rate('100pps') == ('packets', 100)
    assert model.parse_rate('10mbit') == ('bits', 10 ** 7)
    assert model.parse_rate('1.5kbit') == ('bits', 1500)
    assert model.parse_rate('1gbit') == ('bits', 10 ** 9)


def test_police_pps_burst_then_refill():
    t0 = 1000 * NS
    plane = dp([police_rule('100pps', 200)], clock=t0)
    verdicts = [plane.run(pk.ipv4_frame()).retval for dummy in range(250)]
    assert verdicts == [TC_ACT_UNSPEC] * 200 + [TC_ACT_SHOT] * 50
    plane.clock = t0 + NS // 10                  # 0.1 s at 100 pps: 10 packets
    verdicts = [plane.run(pk.ipv4_frame()).retval for dummy in range(12)]
    assert verdicts == [TC_ACT_UNSPEC] * 10 + [TC_ACT_SHOT] * 2
    c = plane.rule_counters()['pol']
    assert c == {'packets': 262, 'bytes': 262 * len(pk.ipv4_frame()), 'drops': 52}
    plane.clock = t0 + 100 * NS                  # a long idle refills at most the burst
    verdicts = [plane.run(pk.ipv4_frame()).retval for dummy in range(201)]
    assert verdicts == [TC_ACT_UNSPEC] * 200 + [TC_ACT_SHOT]


def test_police_bits():
    frame = pk.pad_to(pk.ipv4_frame(), 125)      # 1000 bits
    plane = dp([police_rule('1mbit', 1250)], clock=10 * NS)     # burst 10000 bits: 10 frames
    assert [plane.run(frame).retval for dummy in range(11)] == [TC_ACT_UNSPEC] * 10 + [TC_ACT_SHOT]
    plane.clock += 1000000                       # 1 ms at 1 Mbit/s = 1000 bits: one frame
    assert [plane.run(frame).retval for dummy in range(2)] == [TC_ACT_UNSPEC, TC_ACT_SHOT]


def test_police_clock_backwards_adds_nothing():
    plane = dp([police_rule('1pps', 1)], clock=100 * NS)
    assert plane.run(pk.ipv4_frame()).retval == TC_ACT_UNSPEC
    plane.clock = 50 * NS
    assert plane.run(pk.ipv4_frame()).retval == TC_ACT_SHOT
    plane.clock = 100 * NS + NS - 1
    assert plane.run(pk.ipv4_frame()).retval == TC_ACT_SHOT
    plane.clock = 101 * NS
    assert plane.run(pk.ipv4_frame()).retval == TC_ACT_UNSPEC


def test_police_early_clock_starts_partly_full():
    # zeroed state, now < max_idle: only now * rate tokens
    plane = dp([police_rule('1pps', 5)], clock=2 * NS)
    assert [plane.run(pk.ipv4_frame()).retval for dummy in range(3)] == [TC_ACT_UNSPEC] * 2 + [TC_ACT_SHOT]


def test_police_max_idle_rounds_up():
    # depth 1e9 at 3 pps: max_idle = 333333334 ns (rounded up), so a zeroed bucket fills to a whole packet
    assert model.police_params({'rate': '3pps', 'burst': 1}).max_idle == 333333334
    plane = dp([police_rule('3pps', 1)], clock=1000 * NS)
    assert [plane.run(pk.ipv4_frame()).retval for dummy in range(2)] == [TC_ACT_UNSPEC, TC_ACT_SHOT]


def test_police_state_follows_rule_identity():
    plane = dp([police_rule('1pps', 1)], clock=100 * NS)
    assert plane.run(pk.ipv4_frame()).retval == TC_ACT_UNSPEC
    plane.apply(rs([police_rule('1pps', 1)]))
    assert plane.run(pk.ipv4_frame()).retval == TC_ACT_SHOT     # same bucket, still empty
    plane.apply(rs([police_rule('1pps', 1, proto=['tcp'])]))
    assert plane.run(pk.ipv4_frame()).retval == TC_ACT_UNSPEC   # new match: fresh bucket


def test_classify_does_not_change_state():
    plane = dp([police_rule('1pps', 1)], clock=100 * NS)
    for dummy in range(3):
        assert plane.classify(pk.ipv4_frame()).retval == TC_ACT_UNSPEC
    assert plane.rule_counters()['pol']['packets'] == 0


def test_icmp_type_names_of_the_guide_are_the_validators():
    """The model takes the ICMP type names from the rules guide's table; the validator has its own: they agree,
    and the guide names the aliases the validator accepts."""
    from ansible_collections.ebpf.tc.plugins.module_utils import _rules
    assert model.ICMP_TYPES == _rules.ICMP_TYPES
    assert model.ICMP_TYPES[58]['neighbor-solicitation'] == 135 and model.ICMP_TYPES[1]['time-exceeded'] == 11
    with open(os.path.join(os.path.dirname(model.__file__), os.pardir, 'docs', 'docsite', 'rst', 'rules.rst')) as f:
        guide = ' '.join(f.read().split())
    for alias in _rules.ICMP_TYPE_ALIASES:
        assert '``%s``' % alias in guide, alias

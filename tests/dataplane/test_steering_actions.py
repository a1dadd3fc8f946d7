# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the steering program does to what it matched: actions, counters, policing (root).

As in test_steering_match, every frame also goes through the model (``Steering.check``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

import pytest

import packets as pk
import strategies
from model import NS, TC_ACT_REDIRECT, TC_ACT_SHOT, TC_ACT_UNSPEC
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L

rule = strategies.rule

DROP, PASS, REDIRECT = TC_ACT_SHOT, TC_ACT_UNSPEC, TC_ACT_REDIRECT
CLOCK_START = 1000 * NS      # as tests/dataplane/conftest.py
MARK_IN = 0x5EED0001
ZERO = {'packets': 0, 'bytes': 0, 'drops': 0}


def counters(packets, nbytes, drops=0):
    return {'packets': packets, 'bytes': nbytes, 'drops': drops}


# ------------------------------------------------------------------------------------------ actions

def test_pass_returns_unspec_and_keeps_the_mark(steering):
    steering.apply([rule('p', 'pass', proto='tcp')], default_action='drop')
    assert steering.check(pk.ipv4_frame(proto='tcp')).retval == PASS
    for mark in (0, 1, MARK_IN, 0xFFFFFFFF):
        result = steering.run(pk.ipv4_frame(proto='tcp'), mark=mark)
        assert (result.retval, result.mark) == (PASS, mark)


# ------------------------------------------------------------------------------------------ learned return path

ROUTER_MAC, NODE_MAC = b'\x02\xaa\x00\x00\x00\x01', b'\x02\xbb\x00\x00\x00\x02'
VIP, VIP6, CLIENT, CLIENT6 = '198.51.100.10', '2001:db8:100::10', '192.0.2.7', '2001:db8:7::7'


def request(proto='tcp', src=CLIENT, dst=VIP, sport=40000, dport=443, dst_mac=NODE_MAC, **kw):
    build = pk.ipv4_frame if ':' not in dst else pk.ipv6_frame
    frame = build(src, dst, proto, sport, dport, **kw)
    return dst_mac + ROUTER_MAC + frame[12:]


def reply_to(proto='tcp', src=VIP, dst=CLIENT, sport=443, dport=40000, **kw):
    build = pk.ipv4_frame if ':' not in dst else pk.ipv6_frame
    return build(src, dst, proto, sport, dport, **kw)     # the MACs of the route the kernel chose


def learned_steering(s, fallback=None):
    reply = rule('rp', 'reply', src=[VIP + '/32', VIP6 + '/128'])
    if fallback is not None:
        reply['redirect'] = {'interface': fallback}
    s.apply([rule('learn', 'learn', dst=[VIP + '/32', VIP6 + '/128']), reply])


def test_learn_records_the_flow_and_reply_goes_back_that_way(steering):
    learned_steering(steering)
    for req, rep in ((request(), reply_to()), (request(src=CLIENT6, dst=VIP6), reply_to(src=VIP6, dst=CLIENT6))):
        assert steering.check(rep).macs is None                 # nothing learned yet: the normal route
        v = steering.check(req)
        assert (v.kind, v.retval) == ('learn', PASS)
        v = steering.check(rep)
        # learned on this very interface (a test run's lo): the frame leaves here, to the router it came from
        assert (v.kind, v.retval, v.macs) == ('reply', PASS, (ROUTER_MAC, NODE_MAC))
        assert steering.last.frame[:12] == ROUTER_MAC + NODE_MAC and steering.last.frame[12:] == rep[12:]
    # another flow of the same client and service is another flow
    assert steering.check(reply_to(dport=40001)).macs is None
    assert steering.check(reply_to(proto='udp')).macs is None
    steering.check_totals()     # learned_paths holds exactly what the model learned


def test_learned_path_on_another_interface_is_a_redirect(steering):
    learned_steering(steering)
    key = L.PathKey(4, 6, pk._addr(CLIENT, 4), 40000, pk._addr(VIP, 4), 443)
    steering.maps[L.MAP_LEARNED_PATHS].update(L.pack_path_key(key), L.pack_path(L.LearnedPath(42, ROUTER_MAC, NODE_MAC)))
    steering.model.learned[(4, 6, ipaddress.ip_address(CLIENT), 40000, ipaddress.ip_address(VIP), 443)] = (
        42, ROUTER_MAC, NODE_MAC)
    v = steering.check(reply_to())
    assert (v.retval, v.macs) == (REDIRECT, (ROUTER_MAC, NODE_MAC))
    steering.check_totals()


def test_a_new_router_replaces_the_learned_one_and_group_addresses_teach_nothing(steering):
    learned_steering(steering)
    steering.check(request())
    other = b'\x02\xcc\x00\x00\x00\x03'
    steering.check(other + ROUTER_MAC + request()[12:])        # sent to another of our MACs
    assert steering.check(reply_to()).macs == (ROUTER_MAC, other)
    steering.check(request(sport=40002, dst_mac=b'\x01\x00\x5e\x00\x00\x01'))
    steering.check(request(sport=40003, dst_mac=b'\xff' * 6))
    assert steering.check(reply_to(dport=40002)).macs is None and steering.check(reply_to(dport=40003)).macs is None
    steering.check_totals()


@pytest.mark.parametrize('fallback, retval', [(None, PASS), ('eth1', REDIRECT), ('lo', PASS)],
                         ids=['normal-route', 'redirect', 'own-interface'])
def test_reply_without_a_learned_path_falls_back(steering, fallback, retval):
    """Nothing learned: the rule's redirect, unless it leads out of the hook's own interface (it would come
    back to this hook), else the normal route."""
    learned_steering(steering, fallback)
    v = steering.check(reply_to())
    assert (v.kind, v.retval, v.macs) == ('reply', retval, None)


def test_icmp_is_learned_per_client_and_service(steering):
    learned_steering(steering)
    steering.check(request('icmp', icmp_type=8))
    v = steering.check(reply_to('icmp', icmp_type=0))
    assert v.macs == (ROUTER_MAC, NODE_MAC)
    steering.check_totals()


def test_drop(steering):
    steering.apply([rule('d', 'drop', proto='udp')])
    v = steering.check(pk.ipv6_frame(proto='udp'))
    assert (v.retval, v.counter, v.dropped) == (DROP, 'd', True)
    assert steering.maps.rule_counters()['d'] == counters(1, len(pk.ipv6_frame(proto='udp')), 1)


@pytest.mark.parametrize('value', [0, 1, 0x10, 0x7FFFFFFF, 0xFFFFFFFF])
def test_mark(steering, value):
    steering.apply([rule('m', 'mark', dst='192.0.2.0/24', mark=value),
                    rule('m6', 'mark', dst='2001:db8::/32', mark=value)],
                   default_action='drop')
    for frame in (pk.ipv4_frame(dst='192.0.2.3'), pk.ipv6_frame(dst='2001:db8::3')):
        steering.check(frame)
        assert (steering.last.retval, steering.last.mark) == (PASS, value)
    # the mark replaces whatever the packet had
    for mark_in in (0, value ^ 0xFFFFFFFF):
        steering.check(pk.ipv4_frame(dst='192.0.2.3'), mark_in=mark_in)
        assert steering.last.mark == value


def test_mark_hex_string(steering):
    steering.apply([rule('m', 'mark', mark='0x10')])
    assert steering.run(pk.ipv4_frame()).mark == 0x10


REDIRECT_RULES = [
    rule('to-eth1', 'redirect', src='198.51.100.10/32', redirect={'interface': 'eth1', 'via': '203.0.113.1'}),
    rule('to-eth2', 'redirect', src='198.51.100.0/24', redirect={'interface': 'eth2'}),
    rule('to-svc6', 'redirect', src='2001:db8:100::10/128', redirect={'interface': 'veth-svc', 'via': 'fe80::1'}),
    rule('to-bond6', 'redirect', src=['2001:db8:100::/48', '192.0.2.0/24'], redirect={'interface': 'bond0.100'}),
]


def test_redirect(steering):
    steering.apply(REDIRECT_RULES, default_action='drop')
    steering.check_entries()      # ifindex and next hop of each rule, read back from the maps
    cases = [(pk.ipv4_frame(src='198.51.100.10'), 'to-eth1', ('eth1', '203.0.113.1')),
             (pk.ipv4_frame(src='198.51.100.11'), 'to-eth2', ('eth2', None)),
             (pk.ipv6_frame(src='2001:db8:100::10'), 'to-svc6', ('veth-svc', 'fe80::1')),
             (pk.ipv6_frame(src='2001:db8:100::11'), 'to-bond6', ('bond0.100', None)),
             (pk.ipv4_frame(src='192.0.2.1'), 'to-bond6', ('bond0.100', None))]
    for frame, name, target in cases:
        before = steering.kernel_counters()
        v = steering.check(frame)
        assert (v.retval, v.counter, v.redirect) == (REDIRECT, name, target)
        after = steering.kernel_counters()
        moved = [k for k in after if after[k] != before[k]]
        assert moved == [name]
        entry = steering.entry(name)
        assert entry.ifindex == strategies.ifindex_of(target[0])
        assert entry.nh_family == {None: 0, '203.0.113.1': L.AF_INET, 'fe80::1': L.AF_INET6}[target[1]]
    assert steering.run(pk.ipv4_frame(src='198.51.100.10')).mark == MARK_IN
    assert steering.check(pk.ipv4_frame(src='10.0.0.1')).retval == DROP


# ------------------------------------------------------------------------------------------ counters

def test_counters_are_exact(steering):
    steering.apply([rule('tcp', 'pass', proto='tcp'), rule('udp', 'drop', proto='udp'),
                    rule('tag', 'mark', proto='icmp', mark=1)], default_action='pass')
    sent = [pk.ipv4_frame(proto='tcp', payload=b'x' * n) for n in (0, 1, 100, 1000)] + \
        [pk.ipv6_frame(proto='udp', payload=b'y' * n) for n in (3, 30)] + \
        [pk.ipv4_frame(proto='icmp')] * 5 + [pk.ipv6_frame(proto=47)] * 2 + [pk.arp()] * 3 + \
        [pk.ipv4_frame(ihl=3)]
    for frame in sent:
        steering.check(frame)

    def total(frames):
        return sum(len(f) for f in frames)
    tcp, udp, icmp, gre, arp, bad = sent[:4], sent[4:6], sent[6:11], sent[11:13], sent[13:16], sent[16:]
    assert steering.maps.rule_counters() == {
        'tcp': counters(4, total(tcp)), 'udp': counters(2, total(udp), 2), 'tag': counters(5, total(icmp)),
        '(default)': counters(3, total(gre + bad))}
    assert steering.maps.proto_counters() == {
        6: {'packets': 4, 'bytes': total(tcp)}, 17: {'packets': 2, 'bytes': total(udp)},
        1: {'packets': 5, 'bytes': total(icmp)}, 47: {'packets': 2, 'bytes': total(gre)},
        'non-ip': {'packets': 3, 'bytes': total(arp)}, 'malformed': {'packets': 1, 'bytes': total(bad)}}
    steering.check_totals()


def test_counters_across_updates(steering):
    """Counters survive for rules whose name and match are unchanged (whatever the action), and start
    from zero for a changed match, a new rule, and a rule that left and came back."""
    steering.apply([rule('keep', 'drop', proto='tcp'), rule('act', 'pass', proto='udp'),
                    rule('rematch', 'pass', proto='sctp'), rule('gone', 'pass', proto='icmp')], default_action='pass')
    frames = {'keep': pk.ipv4_frame(proto='tcp'), 'act': pk.ipv4_frame(proto='udp'),
              'rematch': pk.ipv4_frame(proto='sctp'), 'gone': pk.ipv4_frame(proto='icmp')}
    for name, frame in frames.items():
        for dummy in range(2):
            assert steering.check(frame).counter == name
    steering.check(pk.ipv4_frame(proto=47))
    before = steering.maps.rule_counters()

    steering.apply([rule('new', 'pass', proto=47), rule('rematch', 'pass', proto=['sctp', 'tcp']),
                    rule('act', 'mark', proto='udp', mark=9), rule('keep', 'drop', proto='tcp')], default_action='drop')
    after = steering.maps.rule_counters()
    assert after == {'keep': before['keep'], 'act': before['act'], 'rematch': ZERO, 'new': ZERO,
                     '(default)': before['(default)']}
    assert steering.check(frames['keep']).counter == 'rematch'
    assert steering.check(frames['act']).counter == 'act'
    assert steering.maps.rule_counters()['act'] == counters(3, 3 * len(frames['act']))
    steering.check_totals()

    steering.apply([rule('gone', 'pass', proto='icmp'), rule('keep', 'drop', proto='tcp')])
    assert steering.maps.rule_counters()['gone'] == ZERO
    steering.check_totals()


def test_unchanged_set_is_not_rewritten(steering):
    rules = [rule('a', 'drop', proto='tcp')]
    steering.apply(rules)
    steering.check(pk.ipv4_frame(proto='tcp'))
    generation = steering.maps.header().generation
    assert steering.maps.apply(steering.ruleset, strategies.ifindex_of, strategies.ifname_of) is False
    assert steering.maps.header().generation == generation
    assert steering.maps.rule_counters()['a']['packets'] == 1


def test_default_counter(steering):
    steering.apply([rule('x', 'pass', proto='tcp')], default_action='drop')
    frames = [pk.ipv4_frame(proto='udp'), pk.ipv6_frame(proto='icmpv6'), pk.ipv4_frame(version=7)]
    for frame in frames:
        assert steering.check(frame).counter == '(default)'
    assert steering.maps.rule_counters()['(default)'] == counters(3, sum(map(len, frames)), 3)
    # the default counter is not a rule's: it carries on across updates and default-action changes
    steering.apply([rule('y', 'pass', proto='udp')], default_action='pass')
    steering.check(pk.ipv6_frame(proto='icmpv6'))
    assert steering.maps.rule_counters()['(default)'] == counters(4, sum(map(len, frames)) + len(frames[1]), 3)


# ------------------------------------------------------------------------------------------ police

def run_many(steering, frame, count):
    return [steering.check(frame).retval for dummy in range(count)]


def test_police_packets(steering):
    steering.set_clock(CLOCK_START)
    steering.apply([rule('bulk', 'police', proto='udp', dport='5000-6000', police={'rate': '100pps', 'burst': 200})])
    frame = pk.ipv4_frame(proto='udp', dport=5500)
    # a fresh bucket is full: the burst passes, the rest is dropped
    assert run_many(steering, frame, 210) == [PASS] * 200 + [DROP] * 10
    # 50 ms at 100 pps: 5 more
    steering.set_clock(CLOCK_START + 50 * 1000000)
    assert run_many(steering, frame, 7) == [PASS] * 5 + [DROP] * 2
    # 1 s: 100 more; the bucket never holds more than the burst, however long the wait
    steering.set_clock(CLOCK_START + 50 * 1000000 + NS)
    assert run_many(steering, frame, 101) == [PASS] * 100 + [DROP]
    steering.set_clock(CLOCK_START + 3600 * NS)
    assert run_many(steering, frame, 201) == [PASS] * 200 + [DROP]
    n = 210 + 7 + 101 + 201
    assert steering.maps.rule_counters()['bulk'] == counters(n, n * len(frame), 10 + 2 + 1 + 1)
    # other traffic is not policed
    assert run_many(steering, pk.ipv4_frame(proto='udp', dport=6001), 3) == [PASS] * 3
    steering.check_totals()


def test_police_bits(steering):
    steering.set_clock(CLOCK_START)
    # 1 Mbit/s, burst 1250 bytes = 10000 bits; frames of 125 bytes = 1000 bits
    steering.apply([rule('slow', 'police', dst='2001:db8::/32', police={'rate': '1mbit', 'burst': 1250})])
    frame = pk.pad_to(pk.ipv6_frame(dst='2001:db8::1', proto='udp'), 125)
    assert len(frame) == 125
    assert run_many(steering, frame, 12) == [PASS] * 10 + [DROP] * 2
    steering.set_clock(CLOCK_START + 2 * 1000000)        # 2 ms: 2000 bits
    assert run_many(steering, frame, 3) == [PASS] * 2 + [DROP]
    # a bigger frame costs more: 250 bytes = 2000 bits
    big = pk.pad_to(frame, 250)
    steering.set_clock(CLOCK_START + 3 * 1000000)        # +1 ms: 1000 bits, not enough
    assert run_many(steering, big, 1) == [DROP]
    assert run_many(steering, frame, 2) == [PASS, DROP]
    assert steering.maps.rule_counters()['slow'] == counters(18, 17 * 125 + 250, 5)
    steering.check_totals()


def test_police_clock_backwards(steering):
    steering.set_clock(CLOCK_START)
    steering.apply([rule('p', 'police', police={'rate': '1pps', 'burst': 1})])
    frame = pk.ipv4_frame()
    assert run_many(steering, frame, 2) == [PASS, DROP]
    steering.set_clock(CLOCK_START - 10 * NS)            # backwards: nothing added
    assert run_many(steering, frame, 1) == [DROP]
    steering.set_clock(CLOCK_START + NS - 1)
    assert run_many(steering, frame, 1) == [DROP]
    steering.set_clock(CLOCK_START + NS)
    assert run_many(steering, frame, 2) == [PASS, DROP]


def test_police_bucket_survives_unchanged_rule(steering):
    steering.set_clock(CLOCK_START)
    steering.apply([rule('p', 'police', proto='tcp', police={'rate': '10pps', 'burst': 3})])
    frame = pk.ipv4_frame(proto='tcp')
    assert run_many(steering, frame, 4) == [PASS] * 3 + [DROP]
    # same name and match, new rate: same bucket (still empty)
    steering.apply([rule('other', 'pass', proto='udp'),
                    rule('p', 'police', proto='tcp', police={'rate': '20pps', 'burst': 3})])
    assert run_many(steering, frame, 1) == [DROP]
    steering.set_clock(CLOCK_START + NS // 20)           # 50 ms at 20 pps: 1
    assert run_many(steering, frame, 2) == [PASS, DROP]
    # a new match: a fresh, full bucket
    steering.apply([rule('p', 'police', proto=['tcp', 'udp'], police={'rate': '20pps', 'burst': 3})])
    assert run_many(steering, frame, 4) == [PASS] * 3 + [DROP]
    steering.check_totals()


def test_police_uneven_rate(steering):
    """A rate that does not divide the depth: max_idle is rounded up, so a fresh (zeroed) bucket is full
    (3 pps, burst 2 passes two), and the refill follows docs/docsite/rst/dataplane.rst's integer arithmetic, which
    the model follows too, to the nanosecond."""
    steering.set_clock(CLOCK_START)
    steering.apply([rule('p', 'police', police={'rate': '3pps', 'burst': 2})])
    frame = pk.ipv4_frame()
    assert run_many(steering, frame, 3) == [PASS, PASS, DROP]
    steering.set_clock(CLOCK_START + 333333333)          # +999999999 tokens: one short of a packet
    assert run_many(steering, frame, 1) == [DROP]
    steering.set_clock(CLOCK_START + 333333334)          # 1 ns later: +3 tokens, 1000000002: one packet
    assert run_many(steering, frame, 2) == [PASS, DROP]


def test_police_real_clock(steering):
    """Without the override the policer runs on the kernel's clock: a fresh bucket passes the burst,
    and at 1 pps nothing refills within the few milliseconds the test takes."""
    steering.apply([rule('p', 'police', proto='udp', police={'rate': '1pps', 'burst': 5})])
    frame = pk.ipv4_frame(proto='udp')
    assert [steering.run(frame).retval for dummy in range(8)] == [PASS] * 5 + [DROP] * 3
    assert steering.maps.rule_counters()['p'] == counters(8, 8 * len(frame), 3)

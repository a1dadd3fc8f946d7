# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Steering rules against real traffic: drop, block, redirect, police, mark, counters, atomic switching.

One topology (tests/integration/topology.py: server -- node -- router) for the whole file. The steering
program sits on the node's eth0 egress (a TCX link: backend auto on this kernel); a second classifier,
tests/integration/bpf/mark_counter.bpf.c, runs after it on the same hook (a clsact filter) and counts
packets by (skb->mark, protocol, destination port), which is how the tests see marks - and whether any
packet left without passing through steering. The hook is set up and every rule set is applied
through the modules, run by ansible-playbook (clsact, bpf_filter, steering_rules); the switching test
also switches through the maps directly, to reach many switches under load in a few seconds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# pylint: disable=wrong-import-position
import topology as topo  # noqa: E402
from objects import steering_with_loop  # noqa: E402
from playbook import run_play  # noqa: E402

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _bpfmap, _program, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._classifier import compile_tables  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._rules import validate  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps  # noqa: E402
from ansible_collections.ebpf.tc.plugins.filter.steering_hooks import steering_hooks  # noqa: E402


STEERING_OBJECT = os.path.join(topo.ROOT, 'files', 'bpf', 'steering.bpf.o')
MARK_COUNTER_SRC = os.path.join(HERE, 'bpf', 'mark_counter.bpf.c')
MARK_COUNTER_PRIORITY = 49152       # after the steering filter (bpf_filter's default priority is small)
UDP = 17
UDP_PAYLOAD = 32                    # the sender's datagram size
TCP_PORTS = (8080, 8081)            # listeners on the server


@pytest.fixture(scope='module')
def mark_counter_object(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('bpf') / 'mark_counter.o')
    subprocess.run(['clang', '-O2', '-g', '-target', 'bpf', '-I/usr/include/%s-linux-gnu' % os.uname().machine,
                    '-c', MARK_COUNTER_SRC, '-o', out], check=True, timeout=60)
    return out


def play(tasks):
    """Run tasks through ansible-playbook; fail with the failed tasks' messages."""
    res = run_play(tasks)
    failed = [(t['task'], t['result'].get('msg'), t['result'].get('exception', '')[-2000:]) for t in res.failed]
    assert res.rc == 0 and not failed, (failed, res.output[-3000:])
    return res


class Hook:
    """The node's eth0 egress hook: steering first, mark_counter after it."""

    def __init__(self, net, mark_counter_object):
        self.net = net
        self.steering_pins = net.own_pins(_program.default_pin_dir('eth0', 'egress', net.node))
        self.counter_pins = net.pin_dir('mark_counter')
        self.attach(mark_counter_object)
        self.mark_counts = _bpfmap.Map.from_pin(os.path.join(self.counter_pins, 'mark_counts'))

    def close(self):
        self.mark_counts.close()

    def attach(self, mark_counter_object):
        hook = {'interface': 'eth0', 'direction': 'egress', 'netns': self.net.node}
        play([
            {'ebpf.tc.clsact': {'interface': 'eth0', 'netns': self.net.node}},
            {'ebpf.tc.bpf_filter': dict(hook, object=STEERING_OBJECT, program='steering')},  # default pins
            {'ebpf.tc.bpf_filter': dict(hook, object=mark_counter_object, program='mark_counter', backend='clsact',
                                        pin_dir=self.counter_pins, priority=MARK_COUNTER_PRIORITY)},
        ])
        assert [(p['backend'], p['program']) for p in self.programs()] == [
            ('tcx', 'steering'), ('clsact', 'mark_counter')]    # steering runs first

    def programs(self):
        """Our programs on the hook in the order the kernel runs them (TCX links, then clsact filters)."""
        with _tc.open_netlink(self.net.node) as ipr:
            index = _tc.ifindex(ipr, 'eth0')
            chain = _attached.tcx_chain(index, 'egress', self.net.node)
            return _attached.attached_programs(ipr, index, 'egress', chain=chain)

    def apply(self, rules, default_action='pass'):
        """Apply a rule set with ebpf.tc.steering_rules; returns (changed, counters) as it reports them."""
        res = play([{'ebpf.tc.steering_rules': {
            'interface': 'eth0', 'direction': 'egress', 'netns': self.net.node,
            'rules': rules, 'default_action': default_action}}])
        return res[0]['changed'], res[0]['counters']

    def counters(self):
        with SteeringMaps(self.steering_pins) as maps:
            return maps.rule_counters()

    def marks(self):
        """{(mark, proto, dport): packets} seen by mark_counter so far."""
        out = {}
        for key, value in self.mark_counts.items():
            mark, dport, proto, dummy = struct.unpack('<IHBB', key)
            out[(mark, proto, dport)] = struct.unpack('<Q', value)[0]
        return out


@pytest.fixture(scope='module')
def hook(mark_counter_object):
    net = topo.topology()
    try:
        for port in TCP_PORTS:
            net.lab.tcp_listener(net.server, port)
        hook = Hook(net, mark_counter_object)
        try:
            yield hook
        finally:
            hook.close()
    finally:
        net.close()


def delta(after, before):
    return dict((k, v - before.get(k, 0)) for k, v in after.items() if v != before.get(k, 0))


def test_drop_icmp_drops_ping_not_tcp(hook):
    net, lab = hook.net, hook.net.lab
    hook.apply([])
    assert lab.pings(net.node, topo.SERVER_V4) == 1
    assert lab.pings(net.node, topo.SERVER_V6) == 1

    hook.apply([{'name': 'no-ping', 'match': {'proto': ['icmp', 'icmpv6']}, 'action': 'drop'}])
    assert lab.pings(net.node, topo.SERVER_V4, count=2) == 0
    assert lab.pings(net.node, topo.SERVER_V6, count=2) == 0
    for addr in (topo.SERVER_V4, topo.SERVER_V6):
        assert lab.tcp_connects(net.node, addr, TCP_PORTS[0])
    counters = hook.counters()
    assert counters['no-ping']['packets'] >= 4  # ping retries a send the hook dropped: at least 2 + 2
    assert counters['no-ping']['drops'] == counters['no-ping']['packets']
    assert counters['(default)']['drops'] == 0


def test_icmp_type_drops_ping_one_way(hook):
    """Dropping echo requests on egress stops the node's pings, not its answers to pings nor other ICMP."""
    net, lab = hook.net, hook.net.lab
    hook.apply([{'name': 'no-ping-out', 'match': {'proto': 'icmp', 'icmp_type': 'echo-request'}, 'action': 'drop'},
                {'name': 'no-ping6-out', 'match': {'proto': 'icmpv6', 'icmp_type': 'echo-request'}, 'action': 'drop'},
                {'name': 'icmp', 'match': {'proto': 'icmp'}, 'action': 'pass'},
                {'name': 'icmp6', 'match': {'proto': 'icmpv6'}, 'action': 'pass'}])
    assert lab.pings(net.node, topo.SERVER_V4, count=2) == 0
    assert lab.pings(net.node, topo.SERVER_V6, count=2) == 0
    assert lab.pings(net.server, topo.NODE_ETH0_V4, count=2) == 2    # the node's echo replies leave
    assert lab.pings(net.server, topo.NODE_ETH0_V6, count=2) == 2
    counters = hook.counters()
    assert counters['no-ping-out']['drops'] >= 2 and counters['no-ping6-out']['drops'] >= 2
    assert counters['icmp']['packets'] >= 2 and counters['icmp6']['packets'] >= 2


def test_policy_drop_icmpv6_keeps_neighbour_discovery(hook):
    """The role's drop_protocols: [icmpv6] (rules made by its filter) drops ping but resolves neighbours;
    with keep_icmpv6_types: [] a neighbour the node has not resolved yet stays unreachable."""
    net, lab = hook.net, hook.net.lab
    fresh = ['fd00:210::98', 'fd00:210::99']    # no static neighbour entries: the node must solicit them
    for addr in fresh:
        lab.exec(net.server, 'ip', '-6', 'addr', 'add', addr + '/64', 'dev', 'eth0', 'nodad')

    def policy_rules(**extra):
        (hook_rules,) = steering_hooks([], None, dict({'drop_protocols': ['icmpv6']}, **extra), 'eth0')
        return hook_rules['rules']
    try:
        hook.apply(policy_rules())
        assert lab.pings(net.node, topo.SERVER_V6, count=2) == 0
        assert lab.tcp_connects(net.node, fresh[0], TCP_PORTS[0])
        counters = hook.counters()
        assert counters['keep-icmpv6']['packets'] >= 1       # the neighbour solicitation
        assert counters['drop-icmpv6']['drops'] >= 2
        hook.apply(policy_rules(keep_icmpv6_types=[]))
        before = hook.counters()['drop-icmpv6']['drops']
        assert not lab.tcp_connects(net.node, fresh[1], TCP_PORTS[0], timeout=2)
        assert hook.counters()['drop-icmpv6']['drops'] > before         # the solicitations
    finally:
        for addr in fresh:
            lab.exec(net.server, 'ip', '-6', 'addr', 'del', addr + '/64', 'dev', 'eth0', check=False)


def test_dport_block_blocks_only_that_port(hook):
    net, lab = hook.net, hook.net.lab
    blocked, open_port = TCP_PORTS[1], TCP_PORTS[0]
    hook.apply([{'name': 'block-8081', 'match': {'proto': 'tcp', 'dport': blocked}, 'action': 'drop'}])
    for addr in (topo.SERVER_V4, topo.SERVER_V6):
        assert not lab.tcp_connects(net.node, addr, blocked, timeout=0.5)
        assert lab.tcp_connects(net.node, addr, open_port)
    assert lab.pings(net.node, topo.SERVER_V4) == 1
    counters = hook.counters()
    assert counters['block-8081']['drops'] >= 2  # at least one SYN per family
    assert counters['block-8081']['drops'] == counters['block-8081']['packets']


def test_redirect_via_next_hop_reaches_the_router(hook):
    net, lab = hook.net, hook.net.lab
    lab.tcp_listener(net.router, 7000)
    hook.apply([])
    # routed via eth0 to the server, which does not forward: the far addresses are unreachable
    for addr in (topo.FAR_V4, topo.FAR_V6):
        assert not lab.tcp_connects(net.node, addr, 7000, timeout=0.5)

    router_rx = net.rx_packets(net.router, 'eth0')
    hook.apply([
        {'name': 'far-v4', 'match': {'dst': topo.FAR_V4}, 'action': 'redirect',
         'redirect': {'interface': 'eth1', 'via': topo.ROUTER_V4}},
        {'name': 'far-v6', 'match': {'dst': topo.FAR_V6}, 'action': 'redirect',
         'redirect': {'interface': 'eth1', 'via': topo.ROUTER_V6}},
    ])
    for addr in (topo.FAR_V4, topo.FAR_V6):
        assert lab.tcp_connects(net.node, addr, 7000)
    # the flow arrived at the router over the node's eth1 (each connect: SYN, ACK, FIN at least)
    assert net.rx_packets(net.router, 'eth0') - router_rx >= 6
    counters = hook.counters()
    assert counters['far-v4']['packets'] >= 3 and counters['far-v6']['packets'] >= 3
    assert counters['far-v4']['drops'] == counters['far-v6']['drops'] == 0

    # Why the topology sets loose rp_filter on eth1: the replies come back on eth1 from an address the
    # node routes via eth0; strict mode drops them (IPv4 only: IPv6 has no rp_filter).
    lab.exec(net.node, 'sysctl', '-qw', 'net.ipv4.conf.eth1.rp_filter=1')
    try:
        assert not lab.tcp_connects(net.node, topo.FAR_V4, 7000, timeout=0.5)
        assert lab.tcp_connects(net.node, topo.FAR_V6, 7000)
    finally:
        lab.exec(net.node, 'sysctl', '-qw', 'net.ipv4.conf.eth1.rp_filter=2')
    assert lab.tcp_connects(net.node, topo.FAR_V4, 7000)


def test_explain_names_the_rule_that_decides_and_moves_nothing(hook):
    """ebpf.tc.steering_explain on the live hook: the rule it names is the one whose counter the same packet
    then moves, the redirect's neighbour is the kernel's entry, and explaining moves no counter."""
    net, lab = hook.net, hook.net.lab
    hook.apply([
        {'name': 'no-ping6', 'match': {'proto': 'icmpv6', 'icmp_type': 'echo-request'}, 'action': 'drop'},
        {'name': 'far-v4', 'match': {'dst': topo.FAR_V4}, 'action': 'redirect',
         'redirect': {'interface': 'eth1', 'via': topo.ROUTER_V4}},
        {'name': 'web', 'match': {'proto': 'tcp', 'dport': TCP_PORTS[0]}, 'action': 'pass'},
    ], default_action='pass')
    packets = [
        {'src': topo.NODE_ETH0_V4, 'dst': topo.FAR_V4, 'proto': 'icmp', 'icmp_type': 'echo-request'},
        {'src': topo.NODE_ETH0_V6, 'dst': topo.SERVER_V6, 'proto': 'icmpv6', 'icmp_type': 128},
        {'src': topo.NODE_ETH0_V4, 'dst': topo.SERVER_V4, 'proto': 'tcp', 'sport': 40000, 'dport': TCP_PORTS[0]},
        {'src': topo.NODE_ETH0_V4, 'dst': topo.SERVER_V4, 'proto': 'udp', 'dport': 53},
    ]
    before = hook.counters()
    tasks = [{'ebpf.tc.steering_explain': {'interface': 'eth0', 'direction': 'egress', 'netns': net.node,
                                           'packet': packet}} for packet in packets]
    res = play(tasks + [dict(tasks[0], check_mode=True)])
    # the rules the explained packets match did not count them (the default counter sees the node's own
    # router solicitations and MLD reports meanwhile)
    after = hook.counters()
    assert dict((k, v) for k, v in after.items() if k != '(default)') == \
        dict((k, v) for k, v in before.items() if k != '(default)'), 'explaining moved a counter'
    far, ping6, web, other, checked = (res[i] for i in range(5))
    assert checked['summary'] == far['summary'] and not any(res.changed)     # read-only: check mode is the same
    assert (far['verdict'], far['rule']['name'], far['action']) == ('rule', 'far-v4', 'redirect')
    assert far['redirect']['neighbour']['address'] == topo.ROUTER_V4
    assert far['redirect']['neighbour']['state'] == 'permanent'     # the topology's static entries
    assert far['summary'].startswith('rule 1 (far-v4) decides: redirect out of eth1 to %s' % topo.ROUTER_V4)
    assert (ping6['rule']['name'], ping6['action']) == ('no-ping6', 'drop')
    assert (web['rule']['name'], web['action']) == ('web', 'pass')
    assert (other['verdict'], other['action'], other['rule']) == ('default', 'pass', None)
    assert far['hook']['backend'] == 'tcx' and far['hook']['shadowed'] is None and far['hook']['drift'] is None
    # the packets themselves: each moves the counter explain named
    assert lab.pings(net.node, topo.FAR_V4, count=1) == 1
    assert lab.pings(net.node, topo.SERVER_V6, count=1) == 0
    after = hook.counters()
    assert after['far-v4']['packets'] > before['far-v4']['packets']
    assert after['no-ping6']['drops'] > before['no-ping6']['drops']


def test_police_caps_a_udp_flood_near_the_rate(hook):
    net = hook.net
    rate, burst = 200, 20
    hook.apply([{'name': 'police-9000', 'match': {'proto': 'udp', 'dport': 9000}, 'action': 'police',
                 'police': {'rate': '%dpps' % rate, 'burst': burst}}])
    receiver = net.udp_receiver(9000)
    # 100 times the rate for 2 s (unpaced, Python sends ~600k/s here: more load than the point needs)
    report = net.udp_send(topo.SERVER_V4, [9000], count=100000, duration=2.0, rate=100 * rate)
    time.sleep(0.3)  # the last passed datagrams are on their way
    received = receiver.stop()
    sent, elapsed = report['sent'], report['elapsed']
    expected = burst + rate * elapsed
    achieved = (received - burst) / elapsed
    print('police: sent %d in %.2fs, received %d, expected %.0f, achieved %.1f pps'
          % (sent, elapsed, received, expected, achieved))
    assert sent > 20 * expected  # it really was a flood
    assert abs(received - expected) <= 0.25 * expected
    counters = hook.counters()['police-9000']
    assert counters['packets'] == sent
    assert counters['drops'] == sent - received


def test_mark_is_seen_by_a_later_classifier(hook):
    net = hook.net
    count = 50
    hook.apply([{'name': 'mark-9100', 'match': {'proto': 'udp', 'dport': 9100}, 'action': 'mark',
                 'mark': 0x77}])
    before = hook.marks()
    receiver = net.udp_receiver(9100)
    for addr in (topo.SERVER_V4, topo.SERVER_V6):
        assert net.udp_send(addr, [9100], count=count)['sent'] == count
    time.sleep(0.2)
    assert receiver.stop() == 2 * count  # a mark passes the packet
    seen = delta(hook.marks(), before)
    assert seen.get((0x77, UDP, 9100)) == 2 * count
    assert (0, UDP, 9100) not in seen
    assert hook.counters()['mark-9100']['packets'] == 2 * count


def test_counters_match_packets_sent(hook):
    net, lab = hook.net, hook.net.lab
    rules = [
        {'name': 'count-v4', 'match': {'proto': 'udp', 'dport': 9200, 'dst': topo.SERVER_V4}, 'action': 'pass'},
        {'name': 'count-v6', 'match': {'proto': 'udp', 'dport': 9200, 'dst': topo.SERVER_V6}, 'action': 'pass'},
        {'name': 'count-ping', 'match': {'proto': 'icmp', 'dst': topo.SERVER_V4}, 'action': 'pass'},
    ]
    changed, counters = hook.apply(rules)
    assert changed
    assert all(counters[name] == {'packets': 0, 'bytes': 0, 'drops': 0}
               for name in ('count-v4', 'count-v6', 'count-ping'))
    sends = {'count-v4': (topo.SERVER_V4, 137), 'count-v6': (topo.SERVER_V6, 61)}
    for name, (addr, count) in sends.items():
        assert net.udp_send(addr, [9200], count=count)['sent'] == count
    pings = 5
    assert lab.pings(net.node, topo.SERVER_V4, count=pings) == pings  # nothing dropped: no retries

    changed, counters = hook.apply(rules)  # the same set again: unchanged, counters kept and reported
    assert not changed
    # layer-2 sizes: Ethernet 14 + IPv4 20 / IPv6 40 + UDP 8 + payload
    assert counters['count-v4'] == {'packets': 137, 'bytes': 137 * (14 + 20 + 8 + UDP_PAYLOAD), 'drops': 0}
    assert counters['count-v6'] == {'packets': 61, 'bytes': 61 * (14 + 40 + 8 + UDP_PAYLOAD), 'drops': 0}
    assert counters['count-ping']['packets'] == pings and counters['count-ping']['drops'] == 0

    # the same counts through ebpf.tc.bpf_map_info: the steering program's per-CPU rule_stats decoded by its
    # BTF and summed, and mark_counter's struct-keyed hash
    res = play([{'ebpf.tc.bpf_map_info': {'path': os.path.join(hook.steering_pins, L.MAP_RULE_STATS),
                                          'skip_zero': True}},
                {'ebpf.tc.bpf_map_info': {'path': os.path.join(hook.counter_pins, 'mark_counts')}}])
    rule_stats = res[0]['map']
    assert (rule_stats['value_type'], rule_stats['percpu']) == ('struct rule_stats', True)
    read = [e['value'] for e in rule_stats['entries']]
    assert all(counters[name] in read for name in ('count-v4', 'count-v6', 'count-ping')), (read, counters)
    marks = dict(((e['key']['mark'], e['key']['proto'], e['key']['dport']), e['value'])
                 for e in res[1]['map']['entries'])
    assert marks[(0, UDP, 9200)] == hook.marks()[(0, UDP, 9200)] >= 137 + 61


SWITCH_RULES = 32
SWITCH_BASE_PORT = 6000
SWITCH_PORTS = [SWITCH_BASE_PORT + i for i in range(SWITCH_RULES)]


def switch_sets():
    """Two sets that classify every dport alike but disagree on rule order and marks.

    Set A: rule i matches dport 6000+i and marks 0xA000+i. Set B: the same matches in reverse order,
    marking 0xB000+i for dport 6000+i. A packet classified with one set's tables but the other's rules
    (or one slot half overwritten) would get a mark of neither set for its dport, e.g. 0xB000+(31-i).
    """
    set_a = [{'name': 'a-%d' % i, 'match': {'proto': 'udp', 'dport': SWITCH_BASE_PORT + i}, 'action': 'mark',
              'mark': 0xA000 + i} for i in range(SWITCH_RULES)]
    set_b = [{'name': 'b-%d' % i, 'match': {'proto': 'udp', 'dport': SWITCH_BASE_PORT + i}, 'action': 'mark',
              'mark': 0xB000 + i} for i in reversed(range(SWITCH_RULES))]
    return set_a, set_b


def classify_marks(seen):
    """Packets of the switching dports by the set their mark belongs to: ({'A': n, 'B': n}, mixes)."""
    per_set = {'A': 0, 'B': 0}
    mixes = {}
    for (mark, proto, dport), packets in seen.items():
        if proto != UDP or not SWITCH_BASE_PORT <= dport < SWITCH_BASE_PORT + SWITCH_RULES:
            continue
        i = dport - SWITCH_BASE_PORT
        if mark == 0xA000 + i:
            per_set['A'] += packets
        elif mark == 0xB000 + i:
            per_set['B'] += packets
        else:
            mixes[(hex(mark), dport)] = packets
    return per_set, mixes


def test_the_mix_detector_sees_a_torn_update(hook):
    """Control for the switching test: an update that is not atomic (set B's rules written over set A's
    in the slot in use, A's class tables left in place) gives every packet a mark of neither set."""
    net = hook.net
    set_a, set_b = switch_sets()
    hook.apply(set_a)
    with SteeringMaps(hook.steering_pins) as maps:
        slot = maps.header().slot
        torn = compile_tables(validate(set_b), slot, list(range(SWITCH_RULES)), lambda name: 0)
        for index, entry in enumerate(torn.rules):
            maps[L.MAP_RULES].update(L.pack_u32(L.rule_index(slot, index)), L.pack_rule(entry))
    try:
        before = hook.marks()
        count = 4 * SWITCH_RULES
        assert net.udp_send(topo.SERVER_V4, SWITCH_PORTS, count=count)['sent'] == count
        per_set, mixes = classify_marks(delta(hook.marks(), before))
        assert per_set == {'A': 0, 'B': 0}
        assert sum(mixes.values()) == count and len(mixes) == SWITCH_RULES
    finally:
        hook.apply([])  # a proper switch: the torn slot is no longer read


def test_atomic_switching_under_load(hook):
    """UDP at a steady rate over 32 dports while the set switches between A and B: first 10 times through
    the steering_rules module (an ansible-playbook loop), then 50 times through the maps directly
    (SteeringMaps.apply, the module's own code path, without the per-task cost of ansible)."""
    net = hook.net
    set_a, set_b = switch_sets()
    compiled = (validate(set_a), validate(set_b))
    hook.apply(set_a)
    before = hook.marks()
    sender = net.udp_send_background(topo.SERVER_V4, SWITCH_PORTS, duration=90.0, rate=4000)
    module_switches = direct_switches = 0
    started = time.monotonic()
    module_seconds = 0.0
    try:
        time.sleep(0.2)
        res = play([{
            'ebpf.tc.steering_rules': {'interface': 'eth0', 'direction': 'egress', 'netns': net.node,
                                       'rules': '{{ set_b if item % 2 == 0 else set_a }}'},
            'vars': {'set_a': set_a, 'set_b': set_b},
            'loop': list(range(10)),
        }])
        module_switches = sum(1 for item in res[0]['results'] if item['changed'])
        module_seconds = time.monotonic() - started
        with SteeringMaps(hook.steering_pins) as maps, _tc.open_netlink(net.node) as ipr:
            current = maps.applied(ifname_of=str)
            for dummy in range(50):
                target = compiled[1] if current == compiled[0] else compiled[0]
                assert maps.apply(target, ifindex_of=lambda name: _tc.ifindex(ipr, name), ifname_of=str)
                current = target
                direct_switches += 1
        time.sleep(0.2)
    finally:
        report = sender.stop()
    per_set, mixes = classify_marks(delta(hook.marks(), before))
    print('switching: %d switches through the module (%.1fs) + %d directly, %.1fs of traffic, %d packets sent, '
          'marked by set A %d, by set B %d, mixes %d'
          % (module_switches, module_seconds, direct_switches, report['elapsed'], report['sent'], per_set['A'],
             per_set['B'], sum(mixes.values())))
    assert module_switches == 10 and direct_switches == 50
    assert per_set['A'] + per_set['B'] + sum(mixes.values()) == report['sent']  # every packet was seen
    assert mixes == {}
    assert per_set['A'] > 0 and per_set['B'] > 0


GAP_PORT = 5999


def unmarked_gap_packets(seen):
    return sum(n for (mark, proto, dport), n in seen.items() if proto == UDP and dport == GAP_PORT and mark == 0)


def test_the_gap_detector_sees_a_detach_then_attach(hook):
    """Control for the test below: a switch that detaches first and attaches after (what the modules never
    do) lets packets out unmarked, and mark_counter sees them."""
    net = hook.net
    hook.apply([{'name': 'mark-gap', 'match': {'proto': 'udp', 'dport': GAP_PORT}, 'action': 'mark',
                 'mark': GAP_PORT}])
    pin_dir = hook.steering_pins
    before = hook.marks()
    sender = net.udp_send_background(topo.SERVER_V4, [GAP_PORT], duration=30.0, rate=4000)
    try:
        time.sleep(0.2)
        _program.filter_absent('eth0', 'egress', net.node, pin_dir, 'steering', 10, 1, unpin=False)
        time.sleep(0.05)
        _program.filter_present('eth0', 'egress', net.node, pin_dir, STEERING_OBJECT, 'steering', 10, 1,
                                backend='tcx')
        time.sleep(0.2)
    finally:
        sender.stop()
    assert unmarked_gap_packets(delta(hook.marks(), before)) > 0
    assert [(p['backend'], p['program']) for p in hook.programs()] == [('tcx', 'steering'), ('clsact', 'mark_counter')]


def test_backend_switches_and_a_new_build_leave_no_packet_unsteered(hook, tmp_path):
    """UDP at a steady rate while the steering hook moves TCX -> clsact -> TCX, a new build replaces the
    program of the TCX link in place, and back: mark_counter, a clsact filter behind steering, must see
    every packet marked - a moment without a steering program would let packets out unmarked."""
    net = hook.net
    rebuild = steering_with_loop(tmp_path)
    base = {'interface': 'eth0', 'direction': 'egress', 'netns': net.node, 'program': 'steering'}

    def steering(backend, obj=STEERING_OBJECT):
        return {'ebpf.tc.bpf_filter': dict(base, object=obj, backend=backend)}

    hook.apply([{'name': 'mark-gap', 'match': {'proto': 'udp', 'dport': GAP_PORT}, 'action': 'mark',
                 'mark': GAP_PORT}])
    before = hook.marks()
    sender = net.udp_send_background(topo.SERVER_V4, [GAP_PORT], duration=90.0, rate=4000)
    try:
        time.sleep(0.2)
        res = play([steering('clsact'), steering('tcx'), steering('tcx', rebuild), steering('clsact', rebuild),
                    steering('auto')])
        time.sleep(0.2)
    finally:
        report = sender.stop()
    assert res.changed == [True] * 5, res
    assert [res[i]['backend'] for i in range(5)] == ['clsact', 'tcx', 'tcx', 'clsact', 'tcx']
    assert res[2]['link']['id'] == res[1]['link']['id'] and res[2]['prog_id'] != res[1]['prog_id']  # in place
    assert res[2]['tag'] != res[1]['tag'] and res[2]['maps']['created'] == res[2]['maps']['replaced'] == []
    seen = delta(hook.marks(), before)
    unmarked = unmarked_gap_packets(seen)
    print('no-gap switching: %d packets sent in %.1fs over 5 backend switches and rebuilds, %d seen marked, %d '
          'unmarked' % (report['sent'], report['elapsed'], seen.get((GAP_PORT, UDP, GAP_PORT), 0), unmarked))
    assert unmarked == 0
    assert seen.get((GAP_PORT, UDP, GAP_PORT), 0) == report['sent'] > 1000
    assert [(p['backend'], p['program']) for p in hook.programs()] == [('tcx', 'steering'), ('clsact', 'mark_counter')]

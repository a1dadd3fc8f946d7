# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The learned return path against real traffic: two routers in front of the service interface (root).

::

    c1 ── r1 ─┐                                  node: service addresses on lo (VIP, VIP6),
              ├─ bridge (ns sw) ── eth1 node eth0 ── gw   the default route via gw (eth0),
    c2 ── r2 ─┘   10.30.0.0/24, fd00:30::/64                 which routes nothing back

The clients reach the service through their own router; r1 routes only to c1, r2 only to c2. A static
return path (every reply to one gateway, r1) serves c1 and loses c2; the learned one sends each flow's
replies to the router its requests came from, whatever the node's routes say: out of eth1 from eth0's
egress (a redirect), and on eth1's own egress (only the router's MAC changes) once the default route
leaves by eth1 towards r1. Which router carried the replies is read from the routers' receive counters.
The hooks come from the role's filter (ebpf.tc.steering_hooks) and are applied with the modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

import topology as topo
from playbook import run_play

from ansible_collections.ebpf.tc.plugins.filter.steering_hooks import steering_hooks
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfmap, _program
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps

VIP, VIP6 = '198.51.100.10', '2001:db8:100::10'
NODE_SEG, NODE_SEG6 = '10.30.0.1', 'fd00:30::1'
ROUTERS = {'r1': ('10.30.0.11', 'fd00:30::11', 'c1', '10.31.0'), 'r2': ('10.30.0.12', 'fd00:30::12', 'c2', '10.32.0')}
PORT = 8080
CONNECTS = 12       # per client and family: each brings the router at least a SYN-ACK and a FIN back
STEERING_OBJECT = os.path.join(topo.ROOT, 'files', 'bpf', 'steering.bpf.o')


class ReturnPathLab:
    def __init__(self, lab):
        self.lab = lab
        self.node, self.sw, self.gw = lab.ns('node'), lab.ns('sw'), lab.ns('gw')
        self.ns = {'node': self.node}
        lab.exec(self.sw, 'ip', 'link', 'add', 'br0', 'type', 'bridge')
        lab.exec(self.sw, 'ip', 'link', 'set', 'br0', 'up')
        self._port(self.node, 'eth1', 'p-node')
        lab.addr(self.node, 'eth1', NODE_SEG + '/24')
        lab.addr(self.node, 'eth1', NODE_SEG6 + '/64')
        lab.addr(self.node, 'lo', VIP + '/32')
        lab.addr(self.node, 'lo', VIP6 + '/128')
        lab.veth(self.node, 'eth0', self.gw, 'eth0')
        lab.addr(self.node, 'eth0', '10.33.0.1/24')
        lab.addr(self.node, 'eth0', 'fd00:33::1/64')
        lab.addr(self.gw, 'eth0', '10.33.0.2/24')
        lab.addr(self.gw, 'eth0', 'fd00:33::2/64')
        lab.exec(self.node, 'ip', 'route', 'add', 'default', 'via', '10.33.0.2')
        lab.exec(self.node, 'ip', '-6', 'route', 'add', 'default', 'via', 'fd00:33::2')
        # requests arrive on eth1 while the route back says eth0: strict reverse-path filtering would drop
        # them (the role sets loose mode on the intent's interface; here by hand)
        lab.exec(self.node, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0')
        lab.exec(self.node, 'sysctl', '-qw', 'net.ipv4.conf.eth1.rp_filter=2')
        for router, (seg, seg6, client, net) in sorted(ROUTERS.items()):
            r, c = lab.ns(router), lab.ns(client)
            self.ns[router], self.ns[client] = r, c
            self._port(r, 'seg', 'p-' + router)
            lab.addr(r, 'seg', seg + '/24')
            lab.addr(r, 'seg', seg6 + '/64')
            lab.veth(r, 'lan', c, 'eth0')
            lab.addr(r, 'lan', net + '.1/24')
            lab.addr(r, 'lan', 'fd00:%s::1/64' % net.split('.')[1])
            lab.addr(c, 'eth0', net + '.2/24')
            lab.addr(c, 'eth0', 'fd00:%s::2/64' % net.split('.')[1])
            lab.exec(c, 'ip', 'route', 'add', 'default', 'via', net + '.1')
            lab.exec(c, 'ip', '-6', 'route', 'add', 'default', 'via', 'fd00:%s::1' % net.split('.')[1])
            for cmd in (('sysctl', '-qw', 'net.ipv4.ip_forward=1'),
                        ('sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1'),
                        ('ip', 'route', 'add', VIP + '/32', 'via', NODE_SEG),
                        ('ip', '-6', 'route', 'add', VIP6 + '/128', 'via', NODE_SEG6)):
                lab.exec(r, *cmd)
        lab.tcp_listener(self.node, PORT)
        self.pin_dirs = set()
        # neighbours resolved before anything is counted: a veth's first IPv6 packet is often lost to ND
        for router, (seg, seg6, client, net) in ROUTERS.items():
            v6net = 'fd00:%s::1' % net.split('.')[1]
            for ns, peer in ((self.ns[client], net + '.1'), (self.ns[client], v6net), (self.ns[router], NODE_SEG),
                             (self.ns[router], NODE_SEG6), (self.node, seg), (self.node, seg6)):
                assert lab.pings(ns, peer, count=3) >= 1, (ns, peer)

    def _port(self, ns, ifname, bridge_port):
        self.lab.veth(ns, ifname, self.sw, bridge_port)
        self.lab.exec(self.sw, 'ip', 'link', 'set', bridge_port, 'master', 'br0')

    def apply(self, mode):
        """The hooks the role would make of one return-path intent, applied with the modules."""
        intent = {'name': 'web', 'addresses': [VIP, VIP6], 'interface': 'eth1', 'mode': mode,
                  'gateway': ROUTERS['r1'][0], 'gateway6': ROUTERS['r1'][1]}
        hooks = steering_hooks([], [intent], None, 'eth0')
        tasks = []
        for hook in hooks:
            where = {'interface': hook['interface'], 'direction': hook['direction'], 'netns': self.node}
            self.pin_dirs.add(_program.default_pin_dir(hook['interface'], hook['direction'], self.node))
            tasks.append({'ebpf.tc.bpf_filter': dict(where, object=STEERING_OBJECT, program='steering')})
            tasks.append({'ebpf.tc.steering_rules': dict(where, rules=hook['rules'],
                                                         default_action=hook['default_action'])})
        res = run_play(tasks)
        failed = [(t['task'], t['result'].get('msg')) for t in res.failed]
        assert res.rc == 0 and not failed, (failed, res.output[-3000:])
        return hooks

    def connects(self, router, family):
        """How many of CONNECTS TCP connects from the client behind `router` to the service succeed."""
        ns = self.ns[ROUTERS[router][2]]
        target = VIP if family == 4 else VIP6
        return sum(self.lab.tcp_connects(ns, target, PORT, timeout=0.5) for dummy in range(CONNECTS))

    def router_rx(self):
        return dict((router, int(self.lab.exec(self.ns[router], 'cat', '/sys/class/net/seg/statistics/rx_packets')
                                 .stdout)) for router in ROUTERS)

    def close(self):
        try:
            self.lab.close()
        finally:
            for path in self.pin_dirs:
                topo.remove_pins(path)


@pytest.fixture(scope='module')
def net():
    lab = topo.Lab()
    try:
        net = ReturnPathLab(lab)
    except BaseException:
        lab.close()
        raise
    try:
        yield net
    finally:
        net.close()


def traffic(net, router, family):
    """(connects that worked, packets each router received meanwhile)."""
    before = net.router_rx()
    ok = net.connects(router, family)
    after = net.router_rx()
    return ok, dict((r, after[r] - before[r]) for r in ROUTERS)


@pytest.mark.parametrize('family', [4, 6])
def test_static_return_path_loses_the_second_routers_clients(net, family):
    net.apply('static')
    ok, rx = traffic(net, 'r1', family)
    assert ok == CONNECTS and rx['r1'] >= 2 * CONNECTS
    ok, rx = traffic(net, 'r2', family)
    assert ok == 0, 'replies to c2 go to r1, which has no route to c2'
    assert rx['r1'] >= CONNECTS and rx['r2'] < CONNECTS


@pytest.mark.parametrize('default_via', ['eth0', 'eth1'], ids=['redirected-from-eth0', 'on-eth1-itself'])
def test_learned_return_path_sends_each_flow_back_to_its_router(net, default_via):
    hooks = net.apply('learned')
    assert sorted((h['interface'], h['direction']) for h in hooks) == [
        ('eth0', 'egress'), ('eth1', 'egress'), ('eth1', 'ingress')]
    if default_via == 'eth1':   # the replies leave by the service interface, towards r1: only the MAC is wrong
        net.lab.exec(net.node, 'ip', 'route', 'replace', 'default', 'via', ROUTERS['r1'][0])
        net.lab.exec(net.node, 'ip', '-6', 'route', 'replace', 'default', 'via', ROUTERS['r1'][1])
    try:
        for family in (4, 6):
            for router, other in (('r1', 'r2'), ('r2', 'r1')):
                ok, rx = traffic(net, router, family)
                assert ok == CONNECTS, (router, family, rx)
                # every reply went to the router its request came from
                assert rx[router] >= 2 * CONNECTS and rx[other] < CONNECTS, (router, family, rx)
        # one shared map: what eth1's ingress learned is what both egress hooks used
        with SteeringMaps(_program.default_pin_dir('eth1', 'ingress', net.node)) as maps:
            learned = list(maps[L.MAP_LEARNED_PATHS].items())
        assert len(learned) >= 4 * CONNECTS
        shared = os.path.join(_program.shared_pin_dir(net.node), L.MAP_LEARNED_PATHS)
        assert os.path.exists(shared)
        with SteeringMaps(_program.default_pin_dir('eth0', 'egress', net.node)) as maps:
            with _bpfmap.Map.from_pin(shared) as pinned:
                assert maps[L.MAP_LEARNED_PATHS].info.id == pinned.info.id
        with SteeringMaps(_program.default_pin_dir('eth1', 'egress', net.node)) as maps:
            counters = maps.rule_counters()
        assert counters['rp-web-v4']['packets'] >= 2 * CONNECTS and counters['rp-web-v6']['packets'] >= 2 * CONNECTS
    finally:
        net.lab.exec(net.node, 'ip', 'route', 'replace', 'default', 'via', '10.33.0.2')
        net.lab.exec(net.node, 'ip', '-6', 'route', 'replace', 'default', 'via', 'fd00:33::2')

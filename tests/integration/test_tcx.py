# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TCX backend next to a CNI, with real traffic: shadowing seen and repaired, placement, coexistence.

Topology (tests/integration/topology.py): server -- node -- router. The return-path rule on the node's eth0
egress redirects the far address out of eth1 to the router (the only way to reach it: eth0's route goes to
the server, which does not forward). tests/integration/bpf/cni_standin.bpf.c stands in for a CNI that
attaches with TCX and ends the hook (TC_ACT_OK), as Cilium >= 1.16 does for most packets.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# pylint: disable=wrong-import-position
import topology as topo  # noqa: E402
from objects import CniStandin, cni_standin  # noqa: E402
from playbook import run_play  # noqa: E402

from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _program, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps  # noqa: E402


STEERING = os.path.join(topo.ROOT, 'files', 'bpf', 'steering.bpf.o')
MARK_COUNTER_SRC = os.path.join(HERE, 'bpf', 'mark_counter.bpf.c')
FAR_PORT = 7000
RETURN_PATH = [{'name': 'far-v4', 'match': {'dst': topo.FAR_V4}, 'action': 'redirect',
                'redirect': {'interface': 'eth1', 'via': topo.ROUTER_V4}}]


@pytest.fixture(scope='module')
def standin_object(tmp_path_factory):
    return cni_standin(tmp_path_factory.mktemp('bpf'))


@pytest.fixture
def net():
    net = topo.topology()
    try:
        net.lab.tcp_listener(net.router, FAR_PORT)
        net.lab.tcp_listener(net.server, 8080)
        net.own_pins(_program.default_pin_dir('eth0', 'egress', net.node))
        yield net
    finally:
        net.close()


def play(tasks):
    res = run_play(tasks)
    failed = [(t['task'], t['result'].get('msg')) for t in res.failed]
    assert res.rc == 0 and not failed, (failed, res.output[-3000:])
    return res


def steering(net, **args):
    return {'ebpf.tc.bpf_filter': dict(dict(interface='eth0', netns=net.node, object=STEERING, program='steering'),
                                       **args)}


def rules(net, rule_set):
    return {'ebpf.tc.steering_rules': {'interface': 'eth0', 'netns': net.node, 'rules': rule_set}}


def tc_info(net):
    return {'ebpf.tc.tc_info': {'interface': 'eth0', 'direction': 'egress', 'netns': net.node}}


def far_reachable(net):
    return net.lab.tcp_connects(net.node, topo.FAR_V4, FAR_PORT, timeout=0.5)


def far_counter(net):
    with SteeringMaps(_program.default_pin_dir('eth0', 'egress', net.node)) as maps:
        return maps.rule_counters()['far-v4']['packets']


def test_a_cni_shadows_clsact_and_tcx_placed_first_steers_again(net, standin_object):
    play([steering(net, backend='clsact'), rules(net, RETURN_PATH)])
    assert far_reachable(net)
    with CniStandin(standin_object, net.node, 'eth0') as cni:
        # the CNI's TCX program ends the hook before our clsact filter: the return path is gone, silently
        assert not far_reachable(net)
        assert cni.seen() >= 1
        hook = play([tc_info(net)])[0]['interfaces']['eth0']['egress']
        assert hook['attached']['backend'] == 'clsact'
        assert [(t['id'], t['prog_name'], t['owned']) for t in hook['tcx']] == [(cni.prog_id, 'cni_standin', False)]
        assert hook['shadowed']['programs'] == [cni.prog_id]
        assert 'behind the TCX programs cni_standin (id %d)' % cni.prog_id in hook['shadowed']['message']
        assert 'backend: tcx' in hook['shadowed']['message']
        table = play([tc_info(net)])[0]['table']
        assert 'tcx:cni_standin' in table and 'ebpf_tc:steering(shadowed)' in table, table
        # explain still names the rule, and says the hook never gets to it
        why = play([{'ebpf.tc.steering_explain': {'interface': 'eth0', 'netns': net.node, 'packet': {
            'src': topo.NODE_ETH0_V4, 'dst': topo.FAR_V4, 'proto': 'tcp', 'dport': 7000}}}])[0]
        assert why['rule']['name'] == 'far-v4' and 'cni_standin' in why['hook']['shadowed'], why
        assert why['summary'].endswith('but the hook is shadowed: TCX programs in front of it decide first')
        counted = far_counter(net)

        # backend tcx, placement first (the default): in front of the CNI, same maps, rules and counters kept
        res = play([steering(net, backend='tcx'), steering(net, backend='tcx'), tc_info(net)])
        assert res.changed[:2] == [True, False], res
        assert res[0]['backend'] == 'tcx' and res[0]['link']['position'] == 0
        assert res[0]['maps']['created'] == [] and res[0]['maps']['replaced'] == []
        hook = res[2]['interfaces']['eth0']['egress']
        assert [(t['prog_name'], t['owned']) for t in hook['tcx']] == [('steering', True), ('cni_standin', False)]
        assert hook['shadowed'] is None and hook['attached']['backend'] == 'tcx'
        assert [f for f in hook['filters'] if f['owned']] == []     # the clsact filter went after the link came
        assert hook['steering']['rules'][0]['name'] == 'far-v4'
        assert far_reachable(net)
        assert far_counter(net) > counted           # the same counters went on counting
        # the CNI still sees what steering passes on (TCX_NEXT): a connect to the server goes through both
        seen = cni.seen()
        assert net.lab.tcp_connects(net.node, topo.SERVER_V4, 8080)
        assert cni.seen() >= seen + 3

        # placement last: behind the CNI again, which ends the chain; first again puts it back in front
        res = play([steering(net, backend='tcx', placement='last'), tc_info(net)])
        assert res.changed[0] is True and res[0]['link']['position'] == 1
        assert not far_reachable(net)
        res = play([steering(net, backend='tcx', placement='before', relative_to='cni_standin'),
                    steering(net, backend='tcx', placement='before', relative_to=str(cni.prog_id)),
                    steering(net, backend='tcx')])
        assert res.changed == [True, False, False], res
        assert res[2]['link']['position'] == 0
        assert far_reachable(net)


def test_a_foreign_clsact_filter_keeps_working_behind_a_tcx_link(net, tmp_path):
    """Calico attaches clsact filters: one at another priority still sees every packet steering passes on."""
    counter = str(tmp_path / 'mark_counter.o')
    subprocess.run(['clang', '-O2', '-g', '-target', 'bpf', '-I/usr/include/%s-linux-gnu' % os.uname().machine,
                    '-c', MARK_COUNTER_SRC, '-o', counter], check=True, timeout=60)
    with _bpfobject.BpfObject.open(counter) as foreign:
        foreign.load()
        with _tc.open_netlink(net.node) as ipr:
            index = _tc.ifindex(ipr, 'eth0')
            _tc.ensure_clsact(ipr, index)
            _tc.attach(ipr, index, 'egress', foreign.program_fd('mark_counter'), 'calico_standin', 49152, 1)
        play([steering(net), rules(net, RETURN_PATH + [
            {'name': 'mark-8080', 'match': {'proto': 'tcp', 'dport': 8080}, 'action': 'mark', 'mark': 0x80}])])
        assert far_reachable(net)
        assert net.lab.tcp_connects(net.node, topo.SERVER_V4, 8080)
        counts = dict((struct.unpack('<IHBB', k)[:3], struct.unpack('<Q', v)[0])
                      for k, v in foreign.map('mark_counts').items())
        # the foreign filter saw the 8080 packets, marked by steering in front of it
        assert counts.get((0x80, 8080, 6), 0) >= 3, counts
        hook = play([tc_info(net)])[0]['interfaces']['eth0']['egress']
        assert hook['attached']['backend'] == 'tcx' and hook['shadowed'] is None
        assert [(f['name'], f['owned']) for f in hook['filters']] == [('calico_standin', False)]
        # removal takes our link and leaves their filter
        res = play([{'ebpf.tc.bpf_filter': {'interface': 'eth0', 'netns': net.node, 'program': 'steering',
                                            'state': 'absent'}}, tc_info(net)])
        hook = res[1]['interfaces']['eth0']['egress']
        assert res[0]['detached'] is True and hook['tcx'] == [] and hook['attached'] is None
        assert [f['name'] for f in hook['filters']] == ['calico_standin']

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.tc_info through ansible-playbook, against a namespace with the steering program attached, a rule
set applied (through module_utils) and real traffic (ping) sent through it.

client --veth-- server; the client's eth0 egress carries the steering program (our filter, named
ebpf_tc:steering) and, after it, a foreign filter: another instance of the same object with maps of its
own; its lo carries nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import os

import pytest

from playbook import run_play

import bpftest  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _layout, _libbpf, _program, _tc
from ansible_collections.ebpf.tc.plugins.module_utils._rules import validate
from ansible_collections.ebpf.tc.plugins.module_utils._steering import STEERING_MAPS, SteeringMaps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nslab import Lab  # noqa: E402


OBJECT = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
SERVER = '10.202.0.2'
PINGS = 3
PING_FRAME = 14 + 20 + 8 + 56     # Ethernet + IPv4 + ICMP header + ping's default 56 bytes of data


@pytest.fixture(scope='module')
def lab():
    """The namespaces, the attached program, the rule set, the pings; yields (client ns, prog info, rules)."""
    with Lab() as lab:
        client, server = lab.ns('client'), lab.ns('server')
        for ns in (client, server):     # no IPv6: nothing but our pings is IP traffic on the hook
            lab.exec(ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1')
        lab.veth(client, 'eth0', server, 'eth0')
        lab.addr(client, 'eth0', '10.202.0.1/24')
        lab.addr(server, 'eth0', SERVER + '/24')
        lab.exec(client, 'sysctl', '-qw', 'net.ipv4.conf.eth0.rp_filter=2', 'net.ipv4.conf.all.rp_filter=0')
        pin_dir = _program.default_pin_dir('eth0', 'egress', netns=client)
        try:
            info = bpftest.attach_pinned(OBJECT, 'steering', pin_dir, client, name='ebpf_tc:steering')
            with _tc.open_netlink(client) as ipr:
                index = _tc.ifindex(ipr, 'eth0')
                # a foreign filter: another instance of the program, with maps of its own (none pinned)
                with _bpfobject.BpfObject.open(OBJECT) as foreign:
                    foreign.load()
                    _tc.attach(ipr, index, 'egress', foreign.program_fd('steering'), 'someone-else', 49153, 1)
                    foreign_info = _libbpf.prog_info(foreign.program_fd('steering'))

                def ifindex_of(name):
                    return _tc.ifindex(ipr, name)

                rules = validate([
                    {'name': 'ping', 'match': {'proto': 'icmp', 'dst': SERVER + '/32'}, 'action': 'pass'},
                    {'name': 'block-80', 'match': {'proto': 'tcp', 'dport': 80}, 'action': 'drop'},
                    {'name': 'back', 'match': {'dst': '192.0.2.0/24'}, 'action': 'redirect',
                     'redirect': {'interface': 'eth0'}},
                ])
                with SteeringMaps(pin_dir) as maps:
                    maps.apply(rules, ifindex_of=ifindex_of, ifname_of=str)
            assert lab.pings(client, SERVER, count=PINGS) == PINGS
            yield client, info, rules, foreign_info
        finally:
            _program.remove_pins(pin_dir)


@pytest.fixture(scope='module')
def play(lab):
    client = lab[0]
    info = {'ebpf.tc.tc_info': {'interface': 'eth0', 'netns': client}}
    res = run_play([
        info,
        dict(info, check_mode=True),
        {'ebpf.tc.tc_info': {'netns': client}},
        {'ebpf.tc.tc_info': {'netns': client, 'interface': 'eth0', 'direction': 'ingress'}},
        {'ebpf.tc.tc_info': {'netns': 'ebpftc-no-such-namespace'}, 'ignore_errors': True},
        {'ebpf.tc.tc_info': {'netns': client, 'interface': 'eth9'}, 'ignore_errors': True},
    ])
    assert len(res) == 6, res
    return res


def test_filters_pins_and_qdiscs_match_the_kernel(lab, play):
    client, info, dummy, foreign = lab
    res = play[0]
    assert play.tasks[0]['status'] == 'ok' and res['changed'] is False, play
    eth0 = res['interfaces']['eth0']
    assert list(res['interfaces']) == ['eth0'] and res['netns'] == client
    assert {'kind': 'clsact', 'handle': 'ffff:', 'parent': 'ffff:fff1'} in eth0['qdiscs']
    filters = [dict((k, f[k]) for k in ('priority', 'handle', 'name', 'prog_id', 'tag', 'owned', 'direct_action'))
               for f in eth0['egress']['filters']]
    assert filters == [
        {'priority': 49152, 'handle': 1, 'name': 'ebpf_tc:steering', 'prog_id': info.id, 'tag': info.tag,
         'owned': True, 'direct_action': True},
        {'priority': 49153, 'handle': 1, 'name': 'someone-else', 'prog_id': foreign.id, 'tag': foreign.tag,
         'owned': False, 'direct_action': True},
    ]
    assert eth0['ingress']['filters'] == []
    pins = eth0['egress']['pins']
    assert pins['path'] == _program.default_pin_dir('eth0', 'egress', netns=client)
    assert [(p['name'], p['id'], p['tag']) for p in pins['programs']] == [('steering', info.id, info.tag)]
    # the flow cache too: the loader pins every map of an object, declared pinned or not; and the namespace's
    # shared learned_paths, which the hook's directory pins as well
    assert set(m['name'] for m in pins['maps']) == set(STEERING_MAPS) | {_layout.FLOW_CACHE,
                                                                         _layout.MAP_LEARNED_PATHS}
    assert eth0['ingress']['pins'] == {'path': _program.default_pin_dir('eth0', 'ingress', netns=client),
                                       'programs': [], 'maps': []}
    assert eth0['ingress']['steering'] is None
    assert eth0['rp_filter'] == 2 and eth0['rp_filter_effective'] == 2


def test_steering_rules_and_counters_match_the_traffic(lab, play):
    rules = lab[2]
    steering = play[0]['interfaces']['eth0']['egress']['steering']
    assert steering['applied'] is True and steering['generation'] == 1
    assert steering['default_action'] == 'pass'
    assert steering['rules'] == rules.to_dicts()
    assert steering['rules'][2]['redirect'] == {'interface': 'eth0'}   # ifindex named inside the namespace
    assert steering['counters']['ping'] == {'packets': PINGS, 'bytes': PINGS * PING_FRAME, 'drops': 0}
    assert steering['counters']['block-80'] == {'packets': 0, 'bytes': 0, 'drops': 0}
    assert steering['counters']['(default)']['drops'] == 0
    assert steering['protocols']['icmp'] == {'packets': PINGS, 'bytes': PINGS * PING_FRAME}
    assert 'tcp' not in steering['protocols']
    lines = play[0]['table'].splitlines()
    assert lines[0].split() == ['INTERFACE', 'DIRECTION', 'PROGRAM', 'RULE', 'PACKETS', 'BYTES', 'DROPS']
    assert ['eth0', 'egress', 'ebpf_tc:steering,someone-else', 'ping', str(PINGS), str(PINGS * PING_FRAME),
            '0'] in [line.split() for line in lines]


def _stable(result):
    """The result without what ARP can move between two tasks (non-IP frames are counted per protocol)."""
    out = copy.deepcopy(result)
    for facts in out.get('interfaces', {}).values():
        for direction in ('ingress', 'egress'):
            steering = (facts.get(direction) or {}).get('steering')
            if steering:
                steering['protocols'].pop('non-ip', None)
    return out


def test_check_mode_gives_the_same_facts(play):
    assert play.tasks[1]['status'] == 'ok' and play[1]['changed'] is False
    assert _stable(play[1]) == _stable(play[0])


def test_all_interfaces_and_one_direction(play):
    every = play[2]['interfaces']
    assert sorted(every) == ['eth0', 'lo']
    lo = every['lo']
    assert lo['ingress']['filters'] == [] and lo['egress']['filters'] == []
    assert lo['egress']['pins']['programs'] == [] and lo['egress']['steering'] is None
    assert not any(q['kind'] == 'clsact' for q in lo['qdiscs'])
    assert every['eth0']['egress']['filters'] == play[0]['interfaces']['eth0']['egress']['filters']
    eth0 = play[3]['interfaces']['eth0']
    assert 'egress' not in eth0 and eth0['ingress']['filters'] == []


def test_missing_namespace_or_interface_is_a_clear_error(play):
    assert play.tasks[4]['status'] == 'failed'
    assert 'network namespace ebpftc-no-such-namespace does not exist' in play[4]['msg']
    assert not os.path.exists('/run/netns/ebpftc-no-such-namespace')
    assert play.tasks[5]['status'] == 'failed'
    assert 'interface eth9 does not exist in network namespace' in play[5]['msg']


def test_handles_and_table_format():
    from ansible_collections.ebpf.tc.plugins.module_utils import _facts

    assert _facts.tc_handle(0xFFFFFFFF) == 'root'
    assert _facts.tc_handle(0xFFFF0000) == 'ffff:'
    assert _facts.tc_handle(0xFFFFFFF1) == 'ffff:fff1'
    assert _facts.proto_name(6) == 'tcp' and _facts.proto_name(47) == '47' and _facts.proto_name('non-ip') == 'non-ip'
    assert _facts.table({}) == ''
    interfaces = {'eth1': {'egress': {'filters': [{'name': 'foreign'}], 'steering': None}},
                  'eth0': {'egress': {'filters': [], 'steering': {
                      'applied': True, 'default_action': 'drop', 'rules': [{'name': 'a'}],
                      'counters': {'a': {'packets': 1, 'bytes': 60, 'drops': 0},
                                   '(default)': {'packets': 2, 'bytes': 120, 'drops': 2}}}}}}
    assert [line.split() for line in _facts.table(interfaces, ('egress',)).splitlines()] == [
        ['INTERFACE', 'DIRECTION', 'PROGRAM', 'RULE', 'PACKETS', 'BYTES', 'DROPS'],
        ['eth0', 'egress', '(not', 'attached)', 'a', '1', '60', '0'],
        ['eth0', 'egress', '(not', 'attached)', '(default:', 'drop)', '2', '120', '2'],
        ['eth1', 'egress', 'foreign', '-', '-', '-', '-'],
    ]

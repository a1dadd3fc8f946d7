# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role's templating filters: inventory intents into hooks, and what every error names."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.ebpf.tc.plugins.filter import steering_hooks as F
from ansible_collections.ebpf.tc.plugins.module_utils import _rules

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, 'roles', 'steering', 'examples')
NAME_RE = re.compile(r'^[a-z0-9_.-]{1,32}$')

WEB_VIP = {'name': 'web-vip', 'addresses': ['198.51.100.10/32', '2001:db8:100::10/128'], 'interface': 'eth1',
           'gateway': '203.0.113.1', 'gateway6': '2001:db8:1::1'}
POLICY = {'drop_protocols': ['icmp'],
          'block_ports': [{'proto': 'tcp', 'ports': [80, 443]}],
          'police': [{'name': 'bulk-udp', 'match': {'proto': 'udp', 'dport': '5000-6000'}, 'rate': '100pps',
                      'burst': 200}],
          'count_protocols': ['tcp', 'udp', 'icmpv6']}


def hooks_of(hooks=None, return_paths=None, policy=None, default_interface='eth0'):
    """The filter's result, after proving that every hook is a valid rule set for the modules."""
    inputs = copy.deepcopy((hooks, return_paths, policy))
    out = F.steering_hooks([] if hooks is None else hooks, return_paths, policy, default_interface)
    assert (hooks, return_paths, policy) == inputs, 'the filter changed its input'
    for hook in out:
        assert sorted(hook) == ['default_action', 'direction', 'interface', 'rules']
        for rule in hook['rules']:
            assert NAME_RE.match(rule['name']), rule['name']
        _rules.validate(hook['rules'], hook['default_action'])
    keys = [(hook['interface'], hook['direction']) for hook in out]
    assert len(keys) == len(set(keys)), 'one hook per (interface, direction)'
    return out


def by_key(hooks):
    return dict(((hook['interface'], hook['direction']), hook) for hook in hooks)


def names(hook):
    return [rule['name'] for rule in hook['rules']]


def refused(path, text, hooks=None, return_paths=None, policy=None, default_interface='eth0'):
    with pytest.raises(AnsibleFilterError) as info:
        F.steering_hooks([] if hooks is None else hooks, return_paths, policy, default_interface)
    message = str(info.value)
    assert message.startswith(path + ':') or message.startswith(path + ' ('), message
    assert text in message, message
    return message


# -- the MetalLB return path ---------------------------------------------------------------------


def test_learned_return_path():
    out = by_key(hooks_of(return_paths=[dict(WEB_VIP, mode='learned')]))
    assert sorted(out) == [('eth0', 'egress'), ('eth1', 'egress'), ('eth1', 'ingress')]
    assert out[('eth1', 'ingress')]['rules'] == [
        {'name': 'learn-web-vip-v4', 'match': {'dst': ['198.51.100.10/32']}, 'action': 'learn'},
        {'name': 'learn-web-vip-v6', 'match': {'dst': ['2001:db8:100::10/128']}, 'action': 'learn'}]
    # on the service interface the learned router is all: nothing learned, the normal route
    assert out[('eth1', 'egress')]['rules'] == [
        {'name': 'rp-web-vip-v4', 'match': {'src': ['198.51.100.10/32']}, 'action': 'reply'},
        {'name': 'rp-web-vip-v6', 'match': {'src': ['2001:db8:100::10/128']}, 'action': 'reply'}]
    # elsewhere, nothing learned: the gateway
    assert out[('eth0', 'egress')]['rules'] == [
        {'name': 'rp-web-vip-v4', 'match': {'src': ['198.51.100.10/32']}, 'action': 'reply',
         'redirect': {'interface': 'eth1', 'via': '203.0.113.1'}},
        {'name': 'rp-web-vip-v6', 'match': {'src': ['2001:db8:100::10/128']}, 'action': 'reply',
         'redirect': {'interface': 'eth1', 'via': '2001:db8:1::1'}}]


def test_learned_return_path_needs_no_gateway_and_steers_its_own_interface():
    intent = {'name': 'vip', 'addresses': ['198.51.100.10'], 'interface': 'eth1', 'mode': 'learned'}
    out = by_key(hooks_of(return_paths=[intent], default_interface='eth1'))
    assert sorted(out) == [('eth1', 'egress'), ('eth1', 'ingress')]
    out = by_key(hooks_of(return_paths=[dict(intent, egress_interfaces=['eth2', 'eth1', 'eth3'])]))
    assert sorted(out) == [('eth1', 'egress'), ('eth1', 'ingress'), ('eth2', 'egress'), ('eth3', 'egress')]
    assert out[('eth2', 'egress')]['rules'] == [
        {'name': 'rp-vip-v4', 'match': {'src': ['198.51.100.10/32']}, 'action': 'reply'}]
    refused('ebpf_tc_return_paths[0].mode', 'must be one of static, learned', return_paths=[dict(intent, mode='auto')])


def test_metallb_return_path_v4_and_v6():
    out = hooks_of(return_paths=[WEB_VIP])
    assert out == [{
        'interface': 'eth0', 'direction': 'egress', 'default_action': 'pass',
        'rules': [
            {'name': 'rp-web-vip-v4', 'match': {'src': ['198.51.100.10/32']}, 'action': 'redirect',
             'redirect': {'interface': 'eth1', 'via': '203.0.113.1'}},
            {'name': 'rp-web-vip-v6', 'match': {'src': ['2001:db8:100::10/128']}, 'action': 'redirect',
             'redirect': {'interface': 'eth1', 'via': '2001:db8:1::1'}},
        ]}]


@pytest.mark.parametrize('missing', ['gateway', 'gateway6'])
def test_family_without_gateway_redirects_without_next_hop(missing):
    intent = dict(WEB_VIP)
    del intent[missing]
    rules = dict((rule['name'], rule) for rule in hooks_of(return_paths=[intent])[0]['rules'])
    with_via, without = ('rp-web-vip-v6', 'rp-web-vip-v4') if missing == 'gateway' else \
        ('rp-web-vip-v4', 'rp-web-vip-v6')
    assert rules[without]['redirect'] == {'interface': 'eth1'}
    assert rules[with_via]['redirect']['via'] == WEB_VIP['gateway6' if missing == 'gateway' else 'gateway']


def test_family_without_addresses_gets_no_rule():
    v4 = dict(WEB_VIP, addresses=['198.51.100.0/28', '198.51.100.64'])
    del v4['gateway6']
    v6 = {'name': 'v6only', 'addresses': '2001:db8:100::/64', 'interface': 'eth1'}
    hook = hooks_of(return_paths=[v4, v6])[0]
    assert names(hook) == ['rp-web-vip-v4', 'rp-v6only-v6']
    assert hook['rules'][0]['match'] == {'src': ['198.51.100.0/28', '198.51.100.64/32']}
    assert hook['rules'][1]['match'] == {'src': ['2001:db8:100::/64']}


def test_return_path_goes_on_every_egress_interface_but_its_own():
    intent = dict(WEB_VIP, egress_interfaces=['eth0', 'eth1', 'bond0', 'eth0'])
    out = hooks_of(return_paths=[intent])
    assert [(h['interface'], h['direction']) for h in out] == [('eth0', 'egress'), ('bond0', 'egress')]
    for hook in out:
        assert names(hook) == ['rp-web-vip-v4', 'rp-web-vip-v6']
        assert all(rule['redirect']['interface'] == 'eth1' for rule in hook['rules'])


def test_default_route_on_the_service_interface_needs_no_rule():
    assert hooks_of(return_paths=[WEB_VIP], default_interface='eth1') == []


def test_explicit_egress_interfaces_override_the_default():
    out = hooks_of(return_paths=[dict(WEB_VIP, egress_interfaces=['eth2'])], default_interface='eth0')
    assert [hook['interface'] for hook in out] == ['eth2']


def test_return_path_interfaces():
    second = {'name': 'dns', 'addresses': ['198.51.100.53'], 'interface': 'eth2'}
    third = {'name': 'api', 'addresses': ['198.51.100.80'], 'interface': 'eth1'}
    assert F.return_path_interfaces([WEB_VIP, second, third]) == ['eth1', 'eth2']
    assert F.return_path_interfaces([]) == []
    assert F.return_path_interfaces(None) == []


@pytest.mark.parametrize('value, path, text', [
    ('eth1', 'ebpf_tc_return_paths', 'must be a list'),
    (['eth1'], 'ebpf_tc_return_paths[0]', 'must be a mapping'),
    ([{'name': 'x'}], 'ebpf_tc_return_paths[0].interface', 'is required'),
])
def test_return_path_interfaces_refuses(value, path, text):
    with pytest.raises(AnsibleFilterError, match=re.escape(path) + ': .*' + text):
        F.return_path_interfaces(value)


def test_filter_module_exposes_the_filters():
    filters = F.FilterModule().filters()
    assert filters == {'steering_hooks': F.steering_hooks, 'return_path_interfaces': F.return_path_interfaces,
                       'shadowed_hooks': F.shadowed_hooks, 'steering_snapshot': F.steering_snapshot}


# -- policies ------------------------------------------------------------------------------------


def test_policy_rules_in_contract_order():
    hook = hooks_of(policy=POLICY)[0]
    assert (hook['interface'], hook['direction'], hook['default_action']) == ('eth0', 'egress', 'pass')
    assert hook['rules'] == [
        {'name': 'drop-icmp', 'match': {'proto': 'icmp'}, 'action': 'drop'},
        {'name': 'block-tcp-80_443', 'match': {'proto': 'tcp', 'dport': [80, 443]}, 'action': 'drop'},
        {'name': 'police-bulk-udp', 'match': {'proto': 'udp', 'dport': '5000-6000'}, 'action': 'police',
         'police': {'rate': '100pps', 'burst': 200}},
        {'name': 'count-tcp', 'match': {'proto': 'tcp'}, 'action': 'pass'},
        {'name': 'count-udp', 'match': {'proto': 'udp'}, 'action': 'pass'},
        {'name': 'count-icmpv6', 'match': {'proto': 'icmpv6'}, 'action': 'pass'},
    ]


def test_policy_keys_written_in_any_order_give_the_same_rule_order():
    reordered = dict((key, POLICY[key]) for key in reversed(list(POLICY)))
    assert hooks_of(policy=reordered) == hooks_of(policy=POLICY)


def test_policy_on_several_interfaces_and_ingress():
    policy = dict(POLICY, interfaces=['eth0', 'eth2'], direction='ingress', default_action='drop')
    out = hooks_of(policy=policy, default_interface='')
    assert [(h['interface'], h['direction'], h['default_action']) for h in out] == [
        ('eth0', 'ingress', 'drop'), ('eth2', 'ingress', 'drop')]
    assert names(out[0]) == names(out[1])
    out[0]['rules'][0]['match']['proto'] = 'udp'
    assert out[1]['rules'][0]['match']['proto'] == 'icmp', 'hooks must not share rule objects'


def test_protocols_by_number_and_case():
    policy = {'drop_protocols': [47, 'ICMP', '58'], 'count_protocols': [6, 'sctp']}
    assert hooks_of(policy=policy)[0]['rules'] == [
        {'name': 'drop-47', 'match': {'proto': 47}, 'action': 'drop'},
        {'name': 'drop-icmp', 'match': {'proto': 'icmp'}, 'action': 'drop'},
        {'name': 'keep-icmpv6', 'match': {'proto': 'icmpv6', 'icmp_type': list(F.KEEP_ICMPV6_TYPES)},
         'action': 'pass'},
        {'name': 'drop-icmpv6', 'match': {'proto': 'icmpv6'}, 'action': 'drop'},
        {'name': 'count-tcp', 'match': {'proto': 'tcp'}, 'action': 'pass'},
        {'name': 'count-sctp', 'match': {'proto': 'sctp'}, 'action': 'pass'},
    ]


def test_dropping_icmpv6_keeps_neighbour_discovery_unless_told():
    rules = hooks_of(policy={'drop_protocols': ['icmpv6']})[0]['rules']
    assert [r['name'] for r in rules] == ['keep-icmpv6', 'drop-icmpv6']
    kept = _rules.validate(rules).rules[0].icmp_type
    assert kept == ((2, 2), (133, 137)), 'packet-too-big and the five neighbour discovery messages'
    rules = hooks_of(policy={'drop_protocols': ['icmpv6'], 'keep_icmpv6_types': [2, 'echo-request']})[0]['rules']
    assert rules[0]['match']['icmp_type'] == [2, 'echo-request']
    rules = hooks_of(policy={'drop_protocols': ['icmpv6'], 'keep_icmpv6_types': []})[0]['rules']
    assert [r['name'] for r in rules] == ['drop-icmpv6']
    # only the ICMPv6 drop brings a keep rule
    assert [r['name'] for r in hooks_of(policy={'drop_protocols': ['icmp']})[0]['rules']] == ['drop-icmp']


def test_bad_keep_icmpv6_types_names_the_variable():
    refused('ebpf_tc_policy.keep_icmpv6_types', 'must be a list',
            policy={'drop_protocols': ['icmpv6'], 'keep_icmpv6_types': 'redirect'})
    refused('ebpf_tc_policy.keep_icmpv6_types', "'neighbor-solicitaton' is not an ICMP type",
            policy={'drop_protocols': ['icmpv6'], 'keep_icmpv6_types': ['neighbor-solicitaton']})


def test_block_port_names_and_ranges():
    policy = {'block_ports': [{'proto': 'udp', 'ports': '5000-6000'}, {'proto': 'tcp', 'ports': [22]},
                              {'proto': 'sctp', 'ports': [' 80 - 81 ', '9000-9000']}]}
    assert hooks_of(policy=policy)[0]['rules'] == [
        {'name': 'block-udp-5000-6000', 'match': {'proto': 'udp', 'dport': ['5000-6000']}, 'action': 'drop'},
        {'name': 'block-tcp-22', 'match': {'proto': 'tcp', 'dport': [22]}, 'action': 'drop'},
        {'name': 'block-sctp-80-81_9000', 'match': {'proto': 'sctp', 'dport': ['80-81', 9000]},
         'action': 'drop'},
    ]


def test_police_without_match_or_burst():
    hook = hooks_of(policy={'police': [{'name': 'all', 'rate': '10mbit'}]})[0]
    assert hook['rules'] == [{'name': 'police-all', 'match': {}, 'action': 'police',
                              'police': {'rate': '10mbit'}}]


def test_empty_policy_needs_no_interface():
    assert hooks_of(policy={}, default_interface='') == []
    assert hooks_of(policy=None, default_interface=None) == []
    assert hooks_of(policy={'direction': 'egress', 'drop_protocols': []}, default_interface='') == []


def test_policy_default_action_alone_makes_a_hook():
    assert hooks_of(policy={'default_action': 'drop'}) == [
        {'interface': 'eth0', 'direction': 'egress', 'default_action': 'drop', 'rules': []}]


# -- merging with explicit hooks, order, default actions -----------------------------------------


EXPLICIT = [{'interface': 'eth0', 'rules': [
    {'name': 'tag', 'match': {'dst': '192.0.2.0/24'}, 'action': 'mark', 'mark': 16}]}]


def test_merge_explicit_return_paths_and_policy_in_order():
    out = hooks_of(hooks=EXPLICIT, return_paths=[WEB_VIP], policy=POLICY)
    assert len(out) == 1
    assert names(out[0]) == ['tag', 'rp-web-vip-v4', 'rp-web-vip-v6', 'drop-icmp', 'block-tcp-80_443',
                             'police-bulk-udp', 'count-tcp', 'count-udp', 'count-icmpv6']
    assert out[0]['rules'][0] == EXPLICIT[0]['rules'][0]


def test_hook_order_is_first_appearance_and_merges_per_interface_and_direction():
    hooks = [
        {'interface': 'eth2', 'direction': 'ingress', 'rules': [{'name': 'a', 'action': 'pass'}]},
        {'interface': 'eth0', 'rules': [{'name': 'b', 'action': 'pass'}]},
        {'interface': 'eth2', 'direction': 'ingress', 'rules': [{'name': 'c', 'action': 'pass'}]},
        {'interface': 'eth2', 'direction': 'egress'},
    ]
    out = hooks_of(hooks=hooks, return_paths=[dict(WEB_VIP, egress_interfaces=['eth3', 'eth0'])],
                   policy=dict(POLICY, interfaces=['eth4', 'eth2']))
    assert [(h['interface'], h['direction']) for h in out] == [
        ('eth2', 'ingress'), ('eth0', 'egress'), ('eth2', 'egress'), ('eth3', 'egress'), ('eth4', 'egress')]
    hooks_by = by_key(out)
    assert names(hooks_by[('eth2', 'ingress')]) == ['a', 'c']
    assert names(hooks_by[('eth0', 'egress')]) == ['b', 'rp-web-vip-v4', 'rp-web-vip-v6']
    assert names(hooks_by[('eth2', 'egress')])[0] == 'drop-icmp'
    assert hooks_by[('eth2', 'egress')]['default_action'] == 'pass'
    assert names(hooks_by[('eth3', 'egress')]) == ['rp-web-vip-v4', 'rp-web-vip-v6']


def test_return_path_rules_follow_intent_order():
    second = {'name': 'dns', 'addresses': ['2001:db8:100::53', '198.51.100.53'], 'interface': 'eth2'}
    hook = hooks_of(return_paths=[WEB_VIP, second])[0]
    assert names(hook) == ['rp-web-vip-v4', 'rp-web-vip-v6', 'rp-dns-v4', 'rp-dns-v6']
    assert hook['rules'][2]['match'] == {'src': ['198.51.100.53/32']}


@pytest.mark.parametrize('explicit, policy, expected', [
    (None, None, 'pass'),
    ('drop', None, 'drop'),
    (None, 'drop', 'drop'),
    ('pass', 'pass', 'pass'),
    ('drop', 'drop', 'drop'),
])
def test_default_action_explicit_else_policy_else_pass(explicit, policy, expected):
    hook = {'interface': 'eth0', 'rules': []}
    if explicit:
        hook['default_action'] = explicit
    pol = dict(POLICY)
    if policy:
        pol['default_action'] = policy
    assert hooks_of(hooks=[hook], policy=pol)[0]['default_action'] == expected


def test_policy_default_action_only_on_its_own_hooks():
    out = hooks_of(return_paths=[dict(WEB_VIP, egress_interfaces=['eth3'])],
                   policy=dict(POLICY, default_action='drop'))
    assert [(h['interface'], h['default_action']) for h in out] == [('eth3', 'pass'), ('eth0', 'drop')]


# -- conflicts -----------------------------------------------------------------------------------


def test_conflicting_default_actions_name_both():
    message = refused('ebpf_tc_policy.default_action', 'ebpf_tc_hooks[0].default_action',
                      hooks=[{'interface': 'eth0', 'default_action': 'pass'}],
                      policy=dict(POLICY, default_action='drop'))
    assert 'eth0 egress' in message
    refused('ebpf_tc_hooks[1].default_action', 'ebpf_tc_hooks[0].default_action',
            hooks=[{'interface': 'eth0', 'default_action': 'pass'},
                   {'interface': 'eth0', 'default_action': 'drop'}])


def test_same_rule_name_from_two_sources_names_both():
    hooks = [{'interface': 'eth0', 'rules': [{'name': 'drop-icmp', 'match': {'proto': 'icmp'},
                                              'action': 'drop'}]}]
    message = refused('ebpf_tc_policy.drop_protocols[0]', 'ebpf_tc_hooks[0].rules[0]', hooks=hooks,
                      policy=POLICY)
    assert "'drop-icmp'" in message
    refused('ebpf_tc_policy.drop_protocols[1]', 'ebpf_tc_policy.drop_protocols[0]',
            policy={'drop_protocols': ['icmp', 1]})
    refused('ebpf_tc_return_paths[1].name', 'ebpf_tc_return_paths[0]', return_paths=[WEB_VIP, WEB_VIP])


def test_same_rule_name_on_different_hooks_is_fine():
    hooks = [{'interface': 'eth2', 'rules': [{'name': 'drop-icmp', 'match': {'proto': 'icmp'},
                                              'action': 'drop'}]}]
    assert len(hooks_of(hooks=hooks, policy=POLICY)) == 2


# -- long names ----------------------------------------------------------------------------------


def test_long_names_are_shortened_deterministically():
    long_a = 'metallb-production-frontend-web-service'
    long_b = 'metallb-production-frontend-web-service-2'
    out = hooks_of(return_paths=[dict(WEB_VIP, name=long_a), dict(WEB_VIP, name=long_b, interface='eth2')],
                   policy={'police': [{'name': long_a, 'rate': '1mbit'}],
                           'block_ports': [{'proto': 'tcp', 'ports': list(range(8000, 8020))}]})
    rule_names = names(out[0])
    assert len(set(rule_names)) == len(rule_names)
    assert all(len(name) <= 32 for name in rule_names)
    digest = F.hashlib.sha256(long_a.encode()).hexdigest()[:8]
    assert rule_names[0] == 'rp-metallb-productio-%s-v4' % digest
    assert rule_names[1] == 'rp-metallb-productio-%s-v6' % digest
    assert len(rule_names[0]) == 32
    assert rule_names[4].startswith('block-tcp-8000_8001') and len(rule_names[4]) == 32
    assert rule_names[5].startswith('police-metallb-') and rule_names[5].endswith(digest)
    assert names(hooks_of(return_paths=[dict(WEB_VIP, name=long_a)])[0]) == rule_names[:2]


@pytest.mark.parametrize('prefix, part, suffix, expected', [
    ('rp-', 'a' * 26, '-v4', 'rp-' + 'a' * 26 + '-v4'),
    ('count-', 'icmpv6', '', 'count-icmpv6'),
])
def test_rule_name_unchanged_when_it_fits(prefix, part, suffix, expected):
    assert F.rule_name(prefix, part, suffix) == expected


def test_rule_name_27_characters_is_shortened():
    name = F.rule_name('rp-', 'a' * 27, '-v6')
    assert len(name) == 32 and name.startswith('rp-' + 'a' * 17 + '-') and name.endswith('-v6')


# -- refusals: each names the variable path and entry --------------------------------------------


@pytest.mark.parametrize('kwargs, path, text', [
    # explicit hooks
    ({'hooks': {'interface': 'eth0'}}, 'ebpf_tc_hooks', 'must be a list'),
    ({'hooks': ['eth0']}, 'ebpf_tc_hooks[0]', 'must be a mapping'),
    ({'hooks': [{'rules': []}]}, 'ebpf_tc_hooks[0].interface', 'is required'),
    ({'hooks': [{'interface': 'eth0', 'direction': 'out'}]}, 'ebpf_tc_hooks[0].direction', 'egress, ingress'),
    ({'hooks': [{'interface': 'eth0', 'default_action': 'reject'}]}, 'ebpf_tc_hooks[0].default_action',
     'pass, drop'),
    ({'hooks': [{'interface': 'eth0', 'rule': []}]}, 'ebpf_tc_hooks[0].rule', 'unknown key'),
    ({'hooks': [{'interface': 'eth0', 'rules': {'name': 'x'}}]}, 'ebpf_tc_hooks[0].rules', 'must be a list'),
    ({'hooks': [{'interface': 'eth0', 'rules': [{'name': 'ok', 'action': 'pass'},
                                                {'name': 'x', 'action': 'reject'}]}]},
     'ebpf_tc_hooks[0].rules[1]', 'rule x: action: unknown action'),
    ({'hooks': [{'interface': 'eth0', 'rules': [{'action': 'pass'}]}]},
     'ebpf_tc_hooks[0].rules[0]', 'every rule needs a name'),
    ({'hooks': [{'interface': 'eth0', 'rules': [{'name': 'p', 'match': {'dport': 80}, 'action': 'drop'}]}]},
     'ebpf_tc_hooks[0].rules[0]', 'ports need match.proto'),
    # return paths
    ({'return_paths': {'name': 'x'}}, 'ebpf_tc_return_paths', 'must be a list'),
    ({'return_paths': [dict(WEB_VIP, name='Web VIP')]}, 'ebpf_tc_return_paths[0].name', 'a-z, 0-9'),
    ({'return_paths': [dict(WEB_VIP, name=None)]}, 'ebpf_tc_return_paths[0].name', 'is required'),
    ({'return_paths': [dict(WEB_VIP, addresses=[])]}, 'ebpf_tc_return_paths[0].addresses', 'is required'),
    ({'return_paths': [dict(WEB_VIP, addresses=['198.51.100.300'])]}, 'ebpf_tc_return_paths[0].addresses[0]',
     'not an address or CIDR'),
    ({'return_paths': [dict(WEB_VIP, addresses=['198.51.100.10/32', '198.51.100.10/24'])]},
     'ebpf_tc_return_paths[0].addresses[1]', 'host bits set: write 198.51.100.0/24'),
    ({'return_paths': [dict(WEB_VIP, addresses=[7])]}, 'ebpf_tc_return_paths[0].addresses[0]',
     'must be a string'),
    ({'return_paths': [dict(WEB_VIP, interface='')]}, 'ebpf_tc_return_paths[0].interface', 'is required'),
    ({'return_paths': [dict(WEB_VIP, gateway='203.0.113.256')]}, 'ebpf_tc_return_paths[0].gateway',
     'not an IP address'),
    ({'return_paths': [dict(WEB_VIP, gateway='2001:db8:1::1')]}, 'ebpf_tc_return_paths[0].gateway',
     'is IPv6; this field is the IPv4 next hop (gateway6)'),
    ({'return_paths': [dict(WEB_VIP, gateway6='203.0.113.1')]}, 'ebpf_tc_return_paths[0].gateway6',
     'is IPv4; this field is the IPv6 next hop (gateway)'),
    ({'return_paths': [dict(WEB_VIP, addresses=['198.51.100.10'])]}, 'ebpf_tc_return_paths[0].gateway6',
     'addresses has no IPv6 entry'),
    ({'return_paths': [dict(WEB_VIP, egress_interfaces=['eth1'])]},
     'ebpf_tc_return_paths[0].egress_interfaces', 'nothing to steer'),
    ({'return_paths': [dict(WEB_VIP, egress_interfaces={'eth0': 1})]},
     'ebpf_tc_return_paths[0].egress_interfaces', 'must be a list'),
    ({'return_paths': [WEB_VIP], 'default_interface': ''}, 'ebpf_tc_return_paths[0].egress_interfaces',
     'ebpf_tc_default_interface is empty'),
    ({'return_paths': [dict(WEB_VIP, via='203.0.113.1')]}, 'ebpf_tc_return_paths[0].via', 'unknown key'),
    # policy
    ({'policy': ['icmp']}, 'ebpf_tc_policy', 'must be a mapping'),
    ({'policy': {'drop': ['icmp']}}, 'ebpf_tc_policy.drop', 'unknown key'),
    ({'policy': {'drop_protocols': ['icmp', 'gre']}}, 'ebpf_tc_policy.drop_protocols[1]', 'not a protocol'),
    ({'policy': {'drop_protocols': [256]}}, 'ebpf_tc_policy.drop_protocols[0]', 'not a protocol'),
    ({'policy': {'count_protocols': [True]}}, 'ebpf_tc_policy.count_protocols[0]', 'not a protocol'),
    ({'policy': {'block_ports': [{'proto': 'icmp', 'ports': [80]}]}}, 'ebpf_tc_policy.block_ports[0].proto',
     'icmp has no ports'),
    ({'policy': {'block_ports': [{'ports': [80]}]}}, 'ebpf_tc_policy.block_ports[0].proto', 'is required'),
    ({'policy': {'block_ports': [{'proto': 'tcp'}]}}, 'ebpf_tc_policy.block_ports[0].ports', 'is required'),
    ({'policy': {'block_ports': [{'proto': 'tcp', 'ports': [80, 'http']}]}},
     'ebpf_tc_policy.block_ports[0].ports[1]', 'not a port or range'),
    ({'policy': {'block_ports': [{'proto': 'tcp', 'ports': ['443-80']}]}},
     'ebpf_tc_policy.block_ports[0].ports[0]', 'not a port or range'),
    ({'policy': {'block_ports': [{'proto': 'tcp', 'ports': [65536]}]}},
     'ebpf_tc_policy.block_ports[0].ports[0]', 'not a port or range'),
    ({'policy': {'block_ports': [{'proto': 'tcp', 'port': [80]}]}}, 'ebpf_tc_policy.block_ports[0].port',
     'unknown key'),
    ({'policy': {'police': [{'name': 'x', 'match': {'proto': 'udp'}}]}}, 'ebpf_tc_policy.police[0].rate',
     'is required'),
    ({'policy': {'police': [{'name': 'x', 'rate': '100 furlongs'}]}}, 'ebpf_tc_policy.police[0]',
     'police.rate'),
    ({'policy': {'police': [{'name': 'x', 'rate': '1mbit', 'match': {'dport': 53}}]}},
     'ebpf_tc_policy.police[0]', 'ports need match.proto'),
    ({'policy': {'police': [{'name': 'x', 'rate': '1mbit', 'match': 'udp'}]}},
     'ebpf_tc_policy.police[0].match', 'must be a mapping'),
    ({'policy': {'police': [{'rate': '1mbit'}]}}, 'ebpf_tc_policy.police[0].name', 'is required'),
    ({'policy': {'police': [{'name': 'x', 'rate': '1mbit'}, {'name': 'x', 'rate': '2mbit'}]}},
     'ebpf_tc_policy.police[1]', 'also used by ebpf_tc_policy.police[0]'),
    ({'policy': {'direction': 'both', 'drop_protocols': ['icmp']}}, 'ebpf_tc_policy.direction',
     'egress, ingress'),
    ({'policy': {'default_action': 'deny'}}, 'ebpf_tc_policy.default_action', 'pass, drop'),
    ({'policy': {'interfaces': [], 'drop_protocols': ['icmp']}}, 'ebpf_tc_policy.interfaces', 'is empty'),
    ({'policy': {'interfaces': ['eth0', None], 'drop_protocols': ['icmp']}}, 'ebpf_tc_policy.interfaces[1]',
     'is required'),
    ({'policy': POLICY, 'default_interface': ''}, 'ebpf_tc_policy.interfaces',
     'ebpf_tc_default_interface is empty'),
    ({'policy': POLICY, 'default_interface': ['eth0']}, 'ebpf_tc_default_interface', 'must be a string'),
])
def test_bad_input_names_the_variable_and_entry(kwargs, path, text):
    refused(path, text, **kwargs)


def test_rule_errors_name_the_hook():
    message = refused('ebpf_tc_hooks[0].rules[0]', 'rule x: match.src',
                      hooks=[{'interface': 'eth7', 'direction': 'ingress',
                              'rules': [{'name': 'x', 'match': {'src': '10.1.2.3/8'}, 'action': 'drop'}]}])
    assert '(hook eth7 ingress)' in message


# -- the role's example inventory: what the README shows and a molecule scenario uses -------------


def load_example(*parts):
    with open(os.path.join(EXAMPLES, *parts)) as handle:
        return yaml.safe_load(handle)


def test_example_inventory():
    group = load_example('group_vars', 'all.yml')
    host = load_example('host_vars', 'node1.yml')
    assert set(group) == {'ebpf_tc_policy'} and set(host) == {'ebpf_tc_return_paths'}
    out = hooks_of(hooks=[], return_paths=host['ebpf_tc_return_paths'], policy=group['ebpf_tc_policy'],
                   default_interface='eth0')
    assert [(h['interface'], h['direction'], h['default_action']) for h in out] == [('eth0', 'egress', 'pass')]
    rule_names = names(out[0])
    assert rule_names[:2] == ['rp-web-vip-v4', 'rp-web-vip-v6']
    assert 'drop-icmp' in rule_names and any(name.startswith('police-') for name in rule_names)
    assert any(name.startswith('block-tcp-') for name in rule_names)
    assert F.return_path_interfaces(host['ebpf_tc_return_paths']) == ['eth1']


def test_readme_shows_the_example_files_verbatim():
    with open(os.path.join(ROOT, 'roles', 'steering', 'README.md')) as handle:
        readme = handle.read()
    for parts in (('group_vars', 'all.yml'), ('host_vars', 'node1.yml')):
        with open(os.path.join(EXAMPLES, *parts)) as handle:
            text = handle.read()
        assert '`examples/%s`:\n\n```yaml\n%s```\n' % ('/'.join(parts), text) in readme, parts


def test_argument_specs_and_defaults_agree():
    with open(os.path.join(ROOT, 'roles', 'steering', 'meta', 'argument_specs.yml')) as handle:
        options = yaml.safe_load(handle)['argument_specs']['main']['options']
    with open(os.path.join(ROOT, 'roles', 'steering', 'defaults', 'main.yml')) as handle:
        defaults = yaml.safe_load(handle)
    assert sorted(options) == sorted(defaults)
    for name, spec in options.items():
        assert spec.get('description'), name
        assert spec.get('default') == defaults[name], name


# -- ansible-doc renders the filters ------------------------------------------------------------


@pytest.mark.parametrize('name', ['steering_hooks', 'return_path_interfaces', 'shadowed_hooks', 'steering_snapshot'])
def test_filter_doc_renders(name):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.tmp', 'collections'),
               ANSIBLE_NOCOLOR='1')
    command = [os.path.join(os.path.dirname(sys.executable), 'ansible-doc'), '-j', '-t', 'filter',
               'ebpf.tc.' + name]
    result = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, timeout=120)
    doc = json.loads(result.stdout)['ebpf.tc.' + name]
    assert doc['doc']['short_description'] and doc['examples'].strip() and doc['return']


def test_too_many_rules_names_the_hook():
    many = [{'name': 'r%d' % index, 'action': 'pass'} for index in range(4096)]
    with pytest.raises(AnsibleFilterError, match=r'^hook eth0 egress: rules: 4097 rules, more than the 4096'):
        F.steering_hooks([{'interface': 'eth0', 'rules': many}], None, {'drop_protocols': ['icmp']}, 'eth0')


def test_shadowed_hooks_names_foreign_tcx_programs_only_for_clsact():
    hooks = [{'interface': 'eth0', 'direction': 'egress'}, {'interface': 'eth1', 'direction': 'ingress'},
             {'interface': 'eth2', 'direction': 'egress'}]
    facts = {'interfaces': {
        'eth0': {'egress': {'tcx': [{'prog_name': 'steering', 'owned': True}, {'prog_name': 'cil_to_netdev', 'owned': False},
                                    {'prog_name': 'other', 'owned': False}]}},
        'eth1': {'ingress': {'tcx': [{'prog_name': 'steering', 'owned': True}]}, 'egress': {'tcx': [
            {'prog_name': 'cil_from_netdev', 'owned': False}]}}}}
    assert F.shadowed_hooks(hooks, facts, 'clsact') == ['eth0 egress runs the TCX programs cil_to_netdev, other']
    assert F.shadowed_hooks(hooks, facts, 'clsact', allow_shadowed=True) == []
    assert F.shadowed_hooks(hooks, facts, 'auto') == F.shadowed_hooks(hooks, facts, 'tcx') == []
    assert F.shadowed_hooks(hooks, {}, 'clsact') == F.shadowed_hooks([], facts, 'clsact') == []


def _hook_facts(program, rules, counters, applied=True):
    return {'attached': {'program': program, 'backend': 'tcx'},
            'steering': {'applied': applied, 'default_action': 'pass', 'rules': rules, 'counters': counters}}


def test_steering_snapshot_of_the_hooks_our_program_runs():
    ret = {'name': 'vip', 'match': {'src': '192.0.2.10/32'}, 'action': 'redirect', 'redirect': {'interface': 'eth1'}}
    drop = {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'}
    facts = {'interfaces': {
        'eth1': {'ingress': _hook_facts('steering', [drop], {'no-ping': {'packets': 3}, '(default)': {'packets': 4}})},
        'eth0': {'egress': _hook_facts('steering', [ret, drop], {'vip': {'packets': 5}, 'no-ping': {'packets': 1},
                                                                 '(default)': {'packets': 10}}),
                 'ingress': _hook_facts('other', [drop], {'no-ping': {'packets': 100}})},   # not our program
        'eth2': {'egress': _hook_facts('steering', [], {}, applied=None)},                  # unreadable
    }}
    snap = F.steering_snapshot(facts)
    assert [(h['interface'], h['direction']) for h in snap['hooks']] == [('eth0', 'egress'), ('eth1', 'ingress')]
    assert snap['hooks'][0] == {'interface': 'eth0', 'direction': 'egress', 'default_action': 'pass',
                                'rules': [ret, drop]}
    assert (snap['redirect_packets'], snap['packets']) == (5, 23)
    assert re.match(r'^[0-9a-f]{8}$', snap['fingerprint'])
    assert snap['description'] == ('eth0/egress 2 rules (default pass); eth1/ingress 1 rules (default pass) #'
                                   + snap['fingerprint'])
    # the fingerprint is the rule sets': counters and the order facts come in do not change it
    again = copy.deepcopy(facts)
    again['interfaces']['eth0']['egress']['steering']['counters']['vip']['packets'] = 99
    assert F.steering_snapshot(dict(interfaces=dict(reversed(list(again['interfaces'].items())))))[
        'fingerprint'] == snap['fingerprint']
    drop['action'] = 'pass'
    assert F.steering_snapshot(facts)['fingerprint'] != snap['fingerprint']


def test_steering_snapshot_of_a_host_without_steering():
    for facts in ({}, {'failed': True, 'msg': 'Failed to import the required Python library'}, None):
        assert F.steering_snapshot(facts) == {'hooks': [], 'fingerprint': F.steering_snapshot({})['fingerprint'],
                                              'redirect_packets': 0, 'packets': 0, 'description': 'no steering'}

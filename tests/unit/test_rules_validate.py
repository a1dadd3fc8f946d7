# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rule validation: what is accepted, its canonical form, and every refusal naming rule and field."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

import pytest

from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils import _rules as R
from ansible_collections.ebpf.tc.plugins.module_utils._errors import RuleError

SCHEMA_EXAMPLE = [
    {'name': 'vip-return-eth1',
     'match': {'src': ['198.51.100.10/32', '2001:db8:100::10/128'], 'proto': 'tcp', 'sport': 8080,
               'dport': [80, 443]},
     'action': 'redirect', 'redirect': {'interface': 'eth1'}},
    {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'},
    {'name': 'bulk', 'match': {'dport': '5000-6000', 'proto': 'udp'}, 'action': 'police',
     'police': {'rate': '100pps', 'burst': 200}},
    {'name': 'tag', 'match': {'dst': '192.0.2.0/24'}, 'action': 'mark', 'mark': 0x10},
]


def net(text):
    return ipaddress.ip_network(text)


def one(match=None, **rule):
    """Validate a single rule and return it."""
    raw = {'name': 'r', 'action': 'pass'}
    if match is not None:
        raw['match'] = match
    raw.update(rule)
    return R.validate([raw]).rules[0]


def refused(rules, rule, field, text, **kwargs):
    with pytest.raises(RuleError) as info:
        R.validate(rules, **kwargs)
    err = info.value
    assert (err.rule, err.field) == (rule, field), str(err)
    assert text in str(err), str(err)
    # where first: "rules[2] (name web): match.src: ", "rules[0]: name: ", "rules: "
    if rule is None:
        prefix = '%s: ' % field
    else:
        where = 'rules[%d]' % err.index
        if rule != where:
            where += ' (name %s)' % rule
        prefix = '%s: ' % where if field is None else '%s: %s: ' % (where, field)
    assert str(err).startswith(prefix), str(err)
    return str(err)


# -- accepted input and canonical forms ----------------------------------------------------------

def test_design_example():
    rs = R.validate(SCHEMA_EXAMPLE, 'drop', interface_exists=lambda name: name == 'eth1')
    assert rs.default_action == 'drop'
    assert rs.names() == ['vip-return-eth1', 'no-ping', 'bulk', 'tag']
    vip, ping, bulk, tag = rs.rules
    assert vip.src == (net('198.51.100.10/32'), net('2001:db8:100::10/128'))
    assert vip.proto == (6,) and vip.sport == ((8080, 8080),) and vip.dport == ((80, 80), (443, 443))
    assert vip.redirect == R.Redirect('eth1', None)
    assert ping.proto == (1,) and ping.src is ping.dst is ping.sport is None
    assert bulk.police == R.Police(L.POLICE_PACKETS, 100, 200) and bulk.dport == ((5000, 6000),)
    assert tag.mark == 16 and tag.dst == (net('192.0.2.0/24'),)


def test_empty_set_and_match_all():
    assert R.validate([]) == R.RuleSet('pass', ())
    assert R.validate((), 'drop') == R.RuleSet('drop', ())
    for match in (None, {}, {'src': None, 'proto': None}):
        rule = one(match)
        assert rule.match == (None,) * 7
    rule = one()
    assert rule.to_dict() == {'name': 'r', 'match': {}, 'action': 'pass'}


def test_addresses_are_sorted_and_covered_prefixes_dropped():
    rule = one({'src': ['2001:db8::/32', '10.1.0.0/16', '10.0.0.0/8', '2001:db8:1::/48', '192.0.2.1',
                        '::/0', '10.0.0.0/8', '172.16.0.0/12']})
    assert rule.src == (net('10.0.0.0/8'), net('172.16.0.0/12'), net('192.0.2.1/32'), net('::/0'))
    assert rule.to_dict()['match']['src'] == ['10.0.0.0/8', '172.16.0.0/12', '192.0.2.1/32', '::/0']


def test_whole_address_space_is_no_field():
    assert one({'dst': ['0.0.0.0/0', '::/0', '10.0.0.0/8']}).dst is None
    assert one({'dst': '0.0.0.0/0'}).dst == (net('0.0.0.0/0'),)  # any IPv4, excludes IPv6
    assert one({'dst': '0.0.0.0/0'}).families() == {4}


def test_bare_addresses_are_host_prefixes():
    assert one({'src': '2001:db8::1'}).src == (net('2001:db8::1/128'),)
    assert one({'src': ' 192.0.2.7 '}).src == (net('192.0.2.7/32'),)


def test_protocols():
    assert one({'proto': ['udp', 'TCP', 6, '17', 255, 'icmpv6', 'sctp', 'icmp', 0]}).proto == \
        (0, 1, 6, 17, 58, 132, 255)
    assert one({'proto': list(range(256))}).proto is None
    assert one({'proto': [47, 'tcp']}).to_dict()['match']['proto'] == ['tcp', 47]


def test_ports_are_merged():
    ports = [443, '80-90', 91, '85-86', '1000 - 2000', '2001', 7, '65535']
    rule = one({'proto': ['tcp', 'udp'], 'dport': ports})
    assert rule.dport == ((7, 7), (80, 91), (443, 443), (1000, 2001), (65535, 65535))
    assert rule.to_dict()['match']['dport'] == [7, '80-91', 443, '1000-2001', 65535]
    assert one({'proto': 'tcp', 'sport': '0-65535'}).sport == ((0, 65535),)  # not absent: needs ports


def test_mark_forms():
    assert one(action='mark', mark=0).mark == 0
    assert one(action='mark', mark='0x10').mark == 16
    assert one(action='mark', mark='4294967295').mark == 0xffffffff
    assert one(action='mark', mark=0xffffffff).mark == 0xffffffff


def test_redirect_via_of_the_rule_family():
    rule = one({'src': '2001:db8::/64'}, action='redirect', redirect={'interface': 'eth1', 'via': 'fe80::1'})
    assert rule.redirect == R.Redirect('eth1', ipaddress.ip_address('fe80::1'))
    rule = one({'src': ['10.0.0.0/8', '2001:db8::/64'], 'dst': '192.0.2.0/24'}, action='redirect',
               redirect={'interface': 'eth1', 'via': '192.0.2.1'})
    assert rule.families() == {4}
    assert one(action='redirect', redirect={'interface': 'eth1', 'via': None}).redirect.via is None


def test_optional_none_means_absent():
    assert one(action='pass', mark=None, police=None, redirect=None).action == 'pass'
    assert one(action='police', police={'rate': '10pps', 'burst': None}).police.burst_units == 1


@pytest.mark.parametrize('rate, unit, value, canonical', [
    ('100pps', L.POLICE_PACKETS, 100, '100pps'),
    ('10kpps', L.POLICE_PACKETS, 10000, '10kpps'),
    ('1500pps', L.POLICE_PACKETS, 1500, '1500pps'),
    ('2Mpps', L.POLICE_PACKETS, 2000000, '2mpps'),
    ('3000mpps', L.POLICE_PACKETS, 3 * 10 ** 9, '3000mpps'),
    ('8000bit', L.POLICE_BITS, 8000, '8kbit'),
    ('500kbit', L.POLICE_BITS, 500000, '500kbit'),
    ('10mbit', L.POLICE_BITS, 10000000, '10mbit'),
    ('10Mbit', L.POLICE_BITS, 10000000, '10mbit'),
    ('1.5mbit', L.POLICE_BITS, 1500000, '1500kbit'),
    ('1gbit', L.POLICE_BITS, 10 ** 9, '1gbit'),
    ('1kibit', L.POLICE_BITS, 1024, '1024bit'),
    ('10mbps', L.POLICE_BITS, 80000000, '80mbit'),
    ('1kbps', L.POLICE_BITS, 8000, '8kbit'),
    ('125bps', L.POLICE_BITS, 1000, '1kbit'),
])
def test_police_rates(rate, unit, value, canonical):
    police = one(action='police', police={'rate': rate}).police
    assert (police.unit, police.rate) == (unit, value)
    assert R.format_rate(police.unit, police.rate) == canonical


@pytest.mark.parametrize('rate, burst, units', [
    ('100pps', 200, 200),
    ('100pps', '200', 200),
    ('1mbit', 1500, 12000),
    ('1mbit', '1500b', 12000),
    ('1mbit', '64kb', 65536 * 8),
    ('1mbit', '1mb', 2 ** 20 * 8),
    ('1mbit', '1.5kb', 1536 * 8),
])
def test_police_bursts(rate, burst, units):
    police = one(action='police', police={'rate': rate, 'burst': burst}).police
    assert police.burst_units == units


@pytest.mark.parametrize('rate, units', [
    ('100pps', 10),                       # 100 ms of rate
    ('5pps', 1),                          # at least one packet
    ('1gbit', 100000000 // 8 * 8),         # 12.5 MB
    ('8000bit', 1514 * 8),                # at least one full frame
    ('10mbit', 125000 * 8),
    ('999bit', 1514 * 8),
])
def test_default_burst(rate, units):
    assert one(action='police', police={'rate': rate}).police.burst_units == units


def test_default_burst_stays_within_the_token_arithmetic():
    police = one(action='police', police={'rate': '6000000000000mpps'}).police
    assert police.burst_units * L.NSEC_PER_SEC <= R.MAX_POLICE_DEPTH
    assert 3 * R.MAX_POLICE_DEPTH < 2 ** 64  # refill + tokens before the clamp fit in a u64
    assert police.burst_units * L.NSEC_PER_SEC >= police.rate
    police = one(action='police', police={'rate': '6000000tbit'}).police
    assert police.burst_units * L.NSEC_PER_SEC <= R.MAX_POLICE_DEPTH
    assert police.burst_units % 8 == 0


def test_round_trip_of_the_canonical_dicts():
    rs = R.validate(SCHEMA_EXAMPLE + [
        {'name': 'v6', 'match': {'dst': ['2001:db8::/32', '10.0.0.0/8'], 'src': '::/0'}, 'action': 'redirect',
         'redirect': {'interface': 'eth2', 'via': '2001:db8::1'}},
        {'name': 'bw', 'action': 'police', 'police': {'rate': '10mbps'}},
        {'name': 'odd', 'match': {'proto': [47, 'icmp']}, 'action': 'police',
         'police': {'rate': '1234567bit', 'burst': '3kb'}},
    ], 'drop')
    dicts = rs.to_dicts()
    assert R.validate(dicts, rs.default_action) == rs
    assert dicts[4]['redirect'] == {'interface': 'eth2', 'via': '2001:db8::1'}
    assert dicts[5]['police'] == {'rate': '80mbit', 'burst': 1000000}
    assert dicts[6]['police'] == {'rate': '1234567bit', 'burst': 3072}
    assert rs.to_dict() == {'default_action': 'drop', 'rules': dicts}


def test_rules_are_hashable_and_match_key():
    a = R.validate(SCHEMA_EXAMPLE)
    b = R.validate(SCHEMA_EXAMPLE)
    assert a == b and hash(a) == hash(b)
    changed = [dict(SCHEMA_EXAMPLE[1], action='pass')]
    assert R.validate(changed).rules[0].match_key() == a.rules[1].match_key()
    moved = [dict(SCHEMA_EXAMPLE[1], match={'proto': 'icmpv6'})]
    assert R.validate(moved).rules[0].match_key() != a.rules[1].match_key()


def test_max_rules_accepted():
    rules = [{'name': 'r%d' % i, 'action': 'drop'} for i in range(L.MAX_RULES)]
    assert len(R.validate(rules).rules) == L.MAX_RULES


# -- refusals ------------------------------------------------------------------------------------

def test_set_level_errors():
    refused([], None, 'default_action', 'pass, drop', default_action='reject')
    refused(None, None, 'rules', 'must be a list')
    refused({'name': 'x'}, None, 'rules', 'must be a list')
    refused([{'name': 'r%d' % i, 'action': 'drop'} for i in range(L.MAX_RULES + 1)], None, 'rules', '4097 rules')
    refused(['drop'], 'rules[0]', None, 'must be a mapping')


def test_duplicate_names():
    msg = refused([{'name': 'a', 'action': 'pass'}, {'name': 'b', 'action': 'pass'},
                   {'name': 'a', 'action': 'drop'}], 'a', 'name', 'duplicate')
    assert 'rules[0]' in msg and 'rules[2]' in msg


@pytest.mark.parametrize('name', [None, '', 'Upper', 'a b', 'x' * 33, 5, 'ü', 'a/b'])
def test_bad_names(name):
    raw = {'action': 'pass'} if name is None else {'name': name, 'action': 'pass'}
    refused([{'name': 'ok', 'action': 'pass'}, raw], 'rules[1]', 'name', 'name')


def test_name_pattern_edges():
    assert one(name='a.b_c-9').name == 'a.b_c-9'
    assert one(name='x' * 32).name == 'x' * 32


@pytest.mark.parametrize('rule, field, text', [
    ({'action': 'reject'}, 'action', "unknown action 'reject'"),
    ({}, 'action', 'needs an action'),
    ({'action': 'pass', 'comment': 'x'}, 'comment', 'unknown key'),
    ({'action': 'pass', 'match': {'sorce': '10.0.0.0/8'}}, 'match.sorce', 'unknown key'),
    ({'action': 'pass', 'match': 'all'}, 'match', 'must be a mapping'),
    ({'action': 'redirect'}, 'redirect', 'needs redirect'),
    ({'action': 'redirect', 'redirect': 'eth1'}, 'redirect', 'must be a mapping'),
    ({'action': 'redirect', 'redirect': {}}, 'redirect.interface', 'needs the interface'),
    ({'action': 'redirect', 'redirect': {'interface': 'eth1', 'gw': '1.2.3.4'}}, 'redirect.gw', 'unknown key'),
    ({'action': 'redirect', 'redirect': {'interface': 'a' * 16}}, 'redirect.interface', 'not an interface'),
    ({'action': 'redirect', 'redirect': {'interface': 'eth 1'}}, 'redirect.interface', 'not an interface'),
    ({'action': 'redirect', 'redirect': {'interface': 'eth1', 'via': '10.0.0.0/24'}}, 'redirect.via',
     'not an IP address'),
    ({'action': 'redirect', 'redirect': {'interface': 'eth1', 'via': 'gateway'}}, 'redirect.via',
     'not an IP address'),
    ({'action': 'redirect', 'match': {'src': '10.0.0.0/8'}, 'redirect': {'interface': 'eth1', 'via': '0.0.0.0'}},
     'redirect.via', 'not a next hop'),
    ({'action': 'mark'}, 'mark', 'needs mark'),
    ({'action': 'mark', 'mark': -1}, 'mark', 'not a 32-bit mark'),
    ({'action': 'mark', 'mark': 2 ** 32}, 'mark', 'not a 32-bit mark'),
    ({'action': 'mark', 'mark': 'red'}, 'mark', 'not a 32-bit mark'),
    ({'action': 'mark', 'mark': True}, 'mark', 'not a 32-bit mark'),
    ({'action': 'mark', 'mark': 1.5}, 'mark', 'not a 32-bit mark'),
    ({'action': 'drop', 'mark': 5}, 'mark', 'only valid with action mark'),
    ({'action': 'pass', 'redirect': {'interface': 'eth1'}}, 'redirect', 'only valid with action redirect'),
    ({'action': 'mark', 'mark': 1, 'police': {'rate': '1pps'}}, 'police', 'only valid with action police'),
    ({'action': 'police'}, 'police', 'needs police'),
    ({'action': 'police', 'police': {}}, 'police.rate', 'needs a rate'),
    ({'action': 'police', 'police': {'rate': '1pps', 'ceil': 3}}, 'police.ceil', 'unknown key'),
    ({'action': 'police', 'police': '10pps'}, 'police', 'must be a mapping'),
])
def test_rule_errors(rule, field, text):
    raw = {'name': 'x'}
    raw.update(rule)
    refused([raw], 'x', field, text)


@pytest.mark.parametrize('field, value, text', [
    ('src', '10.0.0.300/32', 'not a CIDR'),
    ('src', '10.0.0.0/33', 'not a CIDR'),
    ('src', 'example.com', 'not a CIDR'),
    ('src', 10, 'not a CIDR'),
    ('dst', ['10.0.0.0/8', None], 'not a CIDR'),
    ('dst', [], 'empty list'),
    ('dst', 'fe80::1%eth0', 'scoped'),
    ('src', '10.1.2.3/8', 'write 10.0.0.0/8 for the network, or 10.1.2.3/32 for the one address'),
    ('src', '2001:db8::1/32', 'write 2001:db8::/32 for the network, or 2001:db8::1/128'),
    ('proto', 'ipv4', 'not a protocol'),
    ('proto', 256, 'not a protocol'),
    ('proto', -1, 'not a protocol'),
    ('proto', True, 'not a protocol'),
    ('proto', [], 'empty list'),
])
def test_match_value_errors(field, value, text):
    refused([{'name': 'x', 'action': 'pass', 'match': {field: value}}], 'x', 'match.' + field, text)


@pytest.mark.parametrize('value, text', [
    (65536, 'ports are 0-65535'),
    (-1, 'ports are 0-65535'),
    ('80-70', 'reversed range, write "70-80"'),
    ('1000-70000', 'ports are 0-65535'),
    ('http', 'not a port'),
    ('80,443', 'not a port'),
    (True, 'not a port'),
    ([], 'empty list'),
    ([80, None], 'not a port'),
])
def test_port_errors(value, text):
    for field in ('sport', 'dport'):
        refused([{'name': 'x', 'action': 'pass', 'match': {'proto': 'tcp', field: value}}], 'x', 'match.' + field,
                text)


def test_ports_need_port_protocols():
    refused([{'name': 'x', 'action': 'pass', 'match': {'dport': 80}}], 'x', 'match.dport', 'need match.proto')
    refused([{'name': 'x', 'action': 'pass', 'match': {'proto': ['tcp', 'icmp'], 'sport': 80}}], 'x',
            'match.sport', 'icmp has no ports')
    refused([{'name': 'x', 'action': 'pass', 'match': {'proto': [1, 47, 'udp'], 'dport': 80}}], 'x',
            'match.dport', 'icmp, 47 have no ports')
    msg = refused([{'name': 'x', 'action': 'pass', 'match': {'proto': list(range(256)), 'dport': 80}}], 'x',
                  'match.dport', 'no ports')
    assert '...' in msg


def test_icmp_types_and_codes():
    rule = one({'proto': 'icmpv6', 'icmp_type': ['neighbour-solicitation', 'Neighbor-Advertisement', 2, '133-134'],
                'icmp_code': 0})
    assert (rule.proto, rule.icmp_type, rule.icmp_code, rule.sport) == ((58,), ((2, 2), (133, 136)), ((0, 0),), None)
    assert rule.to_dict()['match'] == {'proto': ['icmpv6'], 'icmp_type': ['packet-too-big', '133-136'], 'icmp_code': [0]}
    # the same name is another number in ICMP
    assert one({'proto': 1, 'icmp_type': 'echo-request'}).icmp_type == ((8, 8),)
    assert one({'proto': 'icmpv6', 'icmp_type': 'echo-request'}).icmp_type == ((128, 128),)
    assert one({'proto': 'icmp', 'icmp_type': 77}).to_dict()['match']['icmp_type'] == [77]
    # a rule on type and code keeps its counters only while both stay the same
    assert one({'proto': 'icmp', 'icmp_type': 3}).match_key() != one({'proto': 'icmp', 'icmp_code': 3}).match_key()


@pytest.mark.parametrize('match, field, text', [
    ({'icmp_type': 8}, 'match.icmp_type', 'need match.proto to be exactly icmp or icmpv6'),
    ({'proto': ['icmp', 'icmpv6'], 'icmp_code': 0}, 'match.icmp_code', 'write one rule per protocol'),
    ({'proto': 'tcp', 'icmp_type': 8}, 'match.icmp_type', 'exactly icmp or icmpv6'),
    ({'proto': 'icmp', 'icmp_type': 'packet-too-big'}, 'match.icmp_type', 'one of the icmp names: destination-unreachable'),
    ({'proto': 'icmpv6', 'icmp_type': 256}, 'match.icmp_type', 'ICMP types are 0-255'),
    ({'proto': 'icmpv6', 'icmp_code': '3-1'}, 'match.icmp_code', 'reversed range, write "1-3"'),
    ({'proto': 'icmpv6', 'icmp_code': 'echo-request'}, 'match.icmp_code', 'is not an ICMP code'),
    ({'proto': 'icmpv6', 'icmp_type': []}, 'match.icmp_type', 'empty list'),
    ({'proto': 'icmp', 'icmp_type': True}, 'match.icmp_type', 'is not an ICMP type'),
    ({'proto': 'icmp', 'sport': 8}, 'match.sport', 'icmp has no ports'),
])
def test_icmp_errors(match, field, text):
    refused([{'name': 'x', 'action': 'pass', 'match': match}], 'x', field, text)


def test_families_in_common():
    refused([{'name': 'x', 'action': 'pass', 'match': {'src': '10.0.0.0/8', 'dst': '2001:db8::/32'}}], 'x',
            'match.dst', 'could never match')
    assert one({'src': ['10.0.0.0/8', '::/0'], 'dst': '2001:db8::/32'}).families() == {6}


def test_via_family_mismatch():
    # no address field: the rule matches both families
    msg = refused([{'name': 'x', 'action': 'redirect', 'redirect': {'interface': 'eth1', 'via': '192.0.2.1'}}],
                  'x', 'redirect.via', 'also matches IPv6')
    assert 'IPv4' in msg
    refused([{'name': 'x', 'action': 'redirect', 'match': {'src': ['10.0.0.0/8', '2001:db8::/32']},
              'redirect': {'interface': 'eth1', 'via': '192.0.2.1'}}], 'x', 'redirect.via', 'also matches IPv6')
    refused([{'name': 'x', 'action': 'redirect', 'match': {'dst': '10.0.0.0/8'},
              'redirect': {'interface': 'eth1', 'via': '2001:db8::1'}}], 'x', 'redirect.via',
            'matches only IPv4')


def test_unknown_interface():
    rules = [{'name': 'x', 'action': 'redirect', 'redirect': {'interface': 'eth9'}}]
    refused(rules, 'x', 'redirect.interface', 'unknown interface eth9', interface_exists=lambda n: n == 'eth1')
    assert R.validate(rules, interface_exists=lambda n: n == 'eth9').rules[0].redirect.interface == 'eth9'
    assert R.validate(rules).rules[0].redirect.interface == 'eth9'  # not checked without a callback


@pytest.mark.parametrize('police, field, text', [
    ({'rate': 100}, 'police.rate', 'needs a unit'),
    ({'rate': '100'}, 'police.rate', 'not a rate'),
    ({'rate': '100 furlongs'}, 'police.rate', 'not a rate'),
    ({'rate': '1gpps'}, 'police.rate', 'not a rate'),
    ({'rate': '0pps'}, 'police.rate', 'above 0'),
    ({'rate': '1.5pps'}, 'police.rate', 'whole number of packets'),
    ({'rate': '0.1bit'}, 'police.rate', 'whole number of bits'),
    ({'rate': '10000000000000mpps'}, 'police.rate', 'limit'),
    ({'rate': '10pps', 'burst': 0}, 'police.burst', 'above 0'),
    ({'rate': '10pps', 'burst': -5}, 'police.burst', 'above 0'),
    ({'rate': '10pps', 'burst': 1.5}, 'police.burst', 'not a burst'),
    ({'rate': '10pps', 'burst': True}, 'police.burst', 'not a burst'),
    ({'rate': '10pps', 'burst': '64kb'}, 'police.burst', 'number of packets'),
    ({'rate': '10pps', 'burst': '1.5'}, 'police.burst', 'whole number'),
    ({'rate': '10pps', 'burst': 10 ** 10}, 'police.burst', 'limit of 6148914691 packets'),
    ({'rate': '10mbit', 'burst': '64kbit'}, 'police.burst', 'not a size'),
    ({'rate': '10mbit', 'burst': '2gb'}, 'police.burst', 'limit of 768614336 bytes'),
    ({'rate': '10mbit', 'burst': '0.1b'}, 'police.burst', 'whole number'),
    ({'rate': '9000000mpps', 'burst': 1}, 'police.burst', 'one nanosecond'),
])
def test_police_errors(police, field, text):
    refused([{'name': 'x', 'action': 'police', 'police': police}], 'x', field, text)


def test_errors_name_the_rule_by_index_before_its_name_is_known():
    refused([{'name': 'a', 'action': 'pass'}, 'junk'], 'rules[1]', None, 'must be a mapping')
    refused([{'action': 'pass'}], 'rules[0]', 'name', 'needs a name')

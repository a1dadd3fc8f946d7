# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Prometheus textfile of the steering counters (_metrics.render) read back with prometheus_client's
parser, and the CLI's atomic write and error handling (no root, no BPF)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import stat
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.ebpf.tc.plugins.module_utils import _metrics

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, 'roles', 'steering', 'files', 'ebpf_tc_metrics.py')
NOW = 1718000000.25

COUNTER_FAMILIES = ['ebpf_tc_rule_packets', 'ebpf_tc_rule_bytes', 'ebpf_tc_rule_drops',
                    'ebpf_tc_protocol_packets', 'ebpf_tc_protocol_bytes']
GAUGE_FAMILIES = ['ebpf_tc_ruleset_generation', 'ebpf_tc_hook_attached', 'ebpf_tc_hook_read_error',
                  'ebpf_tc_metrics_last_refresh_timestamp_seconds']
OURS = {'kind': 'bpf', 'priority': 10, 'handle': 1, 'name': 'ebpf_tc:steering', 'prog_id': 41,
        'tag': '0123456789abcdef', 'direct_action': True, 'owned': True}
FOREIGN = dict(OURS, name='other_tool', priority=100, prog_id=42, owned=False)


def steering(rules, counters, protocols, generation=3, default_action='pass'):
    """A hook's 'steering' facts as _facts.steering_facts returns them."""
    return {'applied': True, 'generation': generation, 'default_action': default_action, 'rules': rules,
            'counters': counters, 'protocols': protocols}


def hook(filters=(), steering_facts=None, tcx=()):
    """A hook's facts as _facts.gather returns them: 'attached' is our first program in run order."""
    ours = [dict(t, backend='tcx') for t in tcx if t['owned']] + \
        [dict(f, backend='clsact') for f in filters if f['owned']]
    return {'tcx': list(tcx), 'filters': list(filters), 'attached': ours[0] if ours else None,
            'pins': {'path': '/sys/fs/bpf/x', 'programs': [], 'maps': []}, 'steering': steering_facts}


def interface(ifindex, ingress=None, egress=None):
    return {'ifindex': ifindex, 'qdiscs': [], 'rp_filter': 0, 'rp_filter_effective': 0,
            'ingress': ingress or hook(), 'egress': egress or hook()}


def stats(packets, nbytes, drops=0):
    return {'packets': packets, 'bytes': nbytes, 'drops': drops}


def node_facts(netns=None):
    """eth0 egress: a policy with counters; eth1 ingress: one rule, attached beside a foreign filter; eth2
    egress: pins left but our filter gone, no rule set ever applied; lo: nothing of ours."""
    eth0 = steering(
        rules=[{'name': 'rp-vip-v4', 'match': {'src': ['10.0.0.10/32']}, 'action': 'redirect',
                'redirect': {'interface': 'eth1', 'via': '10.1.0.1'}},
               {'name': 'drop-icmp', 'match': {'proto': 'icmp'}, 'action': 'drop'},
               {'name': 'police-bulk', 'match': {'proto': 'udp'}, 'action': 'police',
                'police': {'rate': '100pps', 'burst': 200}}],
        counters={'rp-vip-v4': stats(7, 700), 'drop-icmp': stats(3, 294, 3), 'police-bulk': stats(250, 25000, 50),
                  '(default)': stats(11, 1100)},
        protocols={'tcp': {'packets': 18, 'bytes': 1800}, 'icmp': {'packets': 3, 'bytes': 294},
                   'udp': {'packets': 250, 'bytes': 25000}, '47': {'packets': 1, 'bytes': 60},
                   'non-ip': {'packets': 2, 'bytes': 84}},
        generation=5)
    eth1 = steering(rules=[{'name': 'tcp-in', 'match': {'proto': 'tcp'}, 'action': 'pass'}],
                    counters={'tcp-in': stats(9, 900), '(default)': stats(0, 0)},
                    protocols={'tcp': {'packets': 9, 'bytes': 900}}, generation=1, default_action='drop')
    never = {'applied': False, 'generation': 0, 'default_action': None, 'rules': [], 'counters': {},
             'protocols': {'udp': {'packets': 4, 'bytes': 400}}}
    return {'netns': netns, 'table': '', 'interfaces': {
        'lo': interface(1),
        'eth0': interface(2, egress=hook([OURS], eth0)),
        'eth1': interface(3, ingress=hook([FOREIGN, OURS], eth1)),
        'eth2': interface(4, egress=hook([], never)),
    }}


def parse(text):
    """{family name: (type, help, [(sample name, labels, value)])}, failing on a repeated family."""
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in out, 'family %s is split in two blocks' % family.name
        out[family.name] = (family.type, family.documentation,
                            [(s.name, s.labels, s.value) for s in family.samples])
    return out


def values(families, name, **where):
    """{tuple of the other label values: value} of the samples of `name` whose labels include `where`."""
    out = {}
    for _name, labels, value in families[name][2]:
        if all(labels.get(k) == v for k, v in where.items()):
            out[tuple(v for k, v in sorted(labels.items()) if k not in where)] = value
    return out


def test_every_family_has_its_type_help_and_counters_end_in_total():
    text = _metrics.render(node_facts(), now=NOW)
    families = parse(text)
    assert sorted(families) == sorted(COUNTER_FAMILIES + GAUGE_FAMILIES)
    for name in COUNTER_FAMILIES:
        kind, documentation, samples = families[name]
        assert kind == 'counter' and documentation
        assert samples and all(s[0] == name + '_total' for s in samples)
    for name in GAUGE_FAMILIES:
        kind, documentation, samples = families[name]
        assert kind == 'gauge' and documentation
        assert samples and all(s[0] == name for s in samples)
    # the text itself: HELP and TYPE lines before each family's samples, a final newline, no timestamps
    assert text.endswith('\n') and '\n\n' not in text
    for name, kind, _help in _metrics.FAMILIES:
        assert '# TYPE %s %s\n' % (name, kind) in text
    for line in text.splitlines():
        if not line.startswith('#'):
            assert len(line.rsplit('} ', 1)[-1].split()) <= 2  # name (no labels) and value; never a timestamp


def test_rule_counters_with_their_labels():
    families = parse(_metrics.render(node_facts(), now=NOW))
    rule_labels = {'interface', 'direction', 'rule', 'action'}
    for name in ('ebpf_tc_rule_packets', 'ebpf_tc_rule_bytes', 'ebpf_tc_rule_drops'):
        assert all(set(s[1]) == rule_labels for s in families[name][2])
    where = {'interface': 'eth0', 'direction': 'egress'}
    packets, nbytes, drops = (values(families, name, **where) for name in (
        'ebpf_tc_rule_packets', 'ebpf_tc_rule_bytes', 'ebpf_tc_rule_drops'))
    assert set(packets) == set(nbytes) == set(drops)
    eth0 = dict(((rule, action), (packets[key], nbytes[key], drops[key])) for key in packets for action, rule in [key])
    assert eth0 == {('rp-vip-v4', 'redirect'): (7, 700, 0), ('drop-icmp', 'drop'): (3, 294, 3),
                    ('police-bulk', 'police'): (250, 25000, 50), ('(default)', 'pass'): (11, 1100, 0)}
    # the default action's counter carries the hook's default action
    assert values(families, 'ebpf_tc_rule_packets', interface='eth1', direction='ingress') == {
        ('pass', 'tcp-in'): 9, ('drop', '(default)'): 0}
    # rule-set order, the default last, as tc_info's table shows them
    rules = [s[1]['rule'] for s in families['ebpf_tc_rule_packets'][2] if s[1]['interface'] == 'eth0']
    assert rules == ['rp-vip-v4', 'drop-icmp', 'police-bulk', '(default)']
    # no rule set ever applied: no rule series (not even a default one)
    assert not values(families, 'ebpf_tc_rule_packets', interface='eth2')


def test_protocol_counters_generation_and_hook_gauges():
    families = parse(_metrics.render(node_facts(), now=NOW))
    assert all(set(s[1]) == {'interface', 'direction', 'protocol'} for s in families['ebpf_tc_protocol_packets'][2])
    assert values(families, 'ebpf_tc_protocol_packets', interface='eth0', direction='egress') == {
        ('icmp',): 3, ('tcp',): 18, ('udp',): 250, ('47',): 1, ('non-ip',): 2}
    assert values(families, 'ebpf_tc_protocol_bytes', interface='eth0', direction='egress')[('tcp',)] == 1800
    # by protocol number, then non-ip
    assert [s[1]['protocol'] for s in families['ebpf_tc_protocol_packets'][2] if s[1]['interface'] == 'eth0'] == [
        'icmp', 'tcp', 'udp', '47', 'non-ip']
    # pins without a rule set still count protocols
    assert values(families, 'ebpf_tc_protocol_packets', interface='eth2') == {('egress', 'udp'): 4}
    assert values(families, 'ebpf_tc_ruleset_generation') == {
        ('egress', 'eth0'): 5, ('ingress', 'eth1'): 1, ('egress', 'eth2'): 0}
    # our filter beside a foreign one is attached; pins without a filter are not; lo has nothing of ours
    assert values(families, 'ebpf_tc_hook_attached') == {
        ('egress', 'eth0'): 1, ('ingress', 'eth1'): 1, ('egress', 'eth2'): 0}
    assert values(families, 'ebpf_tc_hook_read_error') == {
        ('egress', 'eth0'): 0, ('ingress', 'eth1'): 0, ('egress', 'eth2'): 0}
    assert families['ebpf_tc_metrics_last_refresh_timestamp_seconds'][2] == [
        ('ebpf_tc_metrics_last_refresh_timestamp_seconds', {}, NOW)]


def test_a_hook_whose_maps_cannot_be_read_is_flagged():
    facts = node_facts()
    facts['interfaces']['eth1']['ingress']['steering'] = {'applied': None, 'error': 'cannot open the map'}
    families = parse(_metrics.render(facts, now=NOW))
    assert values(families, 'ebpf_tc_hook_read_error', interface='eth1') == {('ingress',): 1}
    assert values(families, 'ebpf_tc_hook_attached', interface='eth1') == {('ingress',): 1}
    assert not values(families, 'ebpf_tc_rule_packets', interface='eth1')
    assert not values(families, 'ebpf_tc_ruleset_generation', interface='eth1')
    assert values(families, 'ebpf_tc_rule_packets', interface='eth0')  # the other hooks are still there


def test_our_filter_or_link_without_pins_is_reported_attached():
    link = {'position': 0, 'id': 43, 'link_id': 7, 'prog_name': 'steering', 'owned': True, 'program': 'steering'}
    facts = {'netns': None, 'interfaces': {'eth0': interface(2, ingress=hook([OURS])),
                                           'eth1': interface(3, egress=hook(tcx=[dict(link, owned=False)])),
                                           'eth2': interface(4, egress=hook(tcx=[link]))}}
    families = parse(_metrics.render(facts, now=NOW))
    assert values(families, 'ebpf_tc_hook_attached') == {('ingress', 'eth0'): 1, ('egress', 'eth2'): 1}
    assert not families['ebpf_tc_rule_packets'][2] and not families['ebpf_tc_ruleset_generation'][2]


def test_netns_label_only_for_a_named_namespace():
    plain = parse(_metrics.render(node_facts(), now=NOW))
    named = parse(_metrics.render(node_facts(netns='node-a'), now=NOW))
    for name in plain:
        assert all('netns' not in s[1] for s in plain[name][2])
        assert all(s[1].get('netns') == 'node-a' for s in named[name][2])
        assert [dict((k, v) for k, v in s[1].items() if k != 'netns') for s in named[name][2]] == \
            [s[1] for s in plain[name][2]]
    assert named['ebpf_tc_metrics_last_refresh_timestamp_seconds'][2][0][1] == {'netns': 'node-a'}


def test_awkward_label_values_are_escaped():
    """An interface name may hold quotes and backslashes, a namespace name (a file name) even a newline."""
    awkward_if, awkward_ns = 'we"ird\\if', 'ns "x"\\\nsecond line'
    facts = node_facts(netns=awkward_ns)
    facts['interfaces'][awkward_if] = facts['interfaces'].pop('eth0')
    text = _metrics.render(facts, now=NOW)
    assert 'interface="we\\"ird\\\\if"' in text
    assert 'netns="ns \\"x\\"\\\\\\nsecond line"' in text
    assert len([line for line in text.splitlines() if line.startswith('second line')]) == 0
    families = parse(text)
    assert values(families, 'ebpf_tc_rule_packets', interface=awkward_if, netns=awkward_ns,
                  rule='drop-icmp') == {('drop', 'egress'): 3}
    assert all(s[1]['netns'] == awkward_ns for name in families for s in families[name][2])
    assert _metrics.escape_help('a\\b\nc"d') == 'a\\\\b\\nc"d'


@pytest.mark.parametrize('facts', [{'netns': None, 'interfaces': {}, 'table': ''}, {},
                                   {'netns': None, 'interfaces': {'lo': interface(1)}}],
                         ids=['no-interfaces', 'nothing', 'no-hooks'])
def test_no_hooks_is_still_a_valid_file(facts):
    families = parse(_metrics.render(facts, now=NOW))
    assert sorted(families) == sorted(COUNTER_FAMILIES + GAUGE_FAMILIES)
    assert all(not family[2] for name, family in families.items()
               if name != 'ebpf_tc_metrics_last_refresh_timestamp_seconds')
    assert families['ebpf_tc_metrics_last_refresh_timestamp_seconds'][2][0][2] == NOW


def test_render_is_deterministic():
    one = _metrics.render(node_facts(), now=NOW)
    facts = node_facts()
    facts['interfaces'] = dict(reversed(list(facts['interfaces'].items())))  # another dict order
    assert _metrics.render(facts, now=NOW) == one
    assert _metrics.render(node_facts(), now=NOW + 1) != one


# -- the CLI (roles/steering/files/ebpf_tc_metrics.py) --------------------------------------------------

@pytest.fixture
def cli():
    bytecode = sys.dont_write_bytecode
    spec = importlib.util.spec_from_file_location('ebpf_tc_metrics_under_test', CLI)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.dont_write_bytecode = bytecode
    return module


def test_cli_replaces_the_file_atomically_with_mode_0644(cli, tmp_path):
    target = tmp_path / 'ebpf_tc.prom'
    target.write_text('old\n')
    os.chmod(str(target), 0o600)
    before = os.stat(str(target)).st_ino
    old_umask = os.umask(0o077)
    try:
        cli.write_atomically(str(target), 'new\n')
    finally:
        os.umask(old_umask)
    assert target.read_text() == 'new\n'
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o644
    assert os.stat(str(target)).st_ino != before  # a new file renamed over it, not rewritten in place
    assert os.listdir(str(tmp_path)) == ['ebpf_tc.prom']  # no temporary file left


def test_cli_write_error_leaves_the_old_file(cli, tmp_path, monkeypatch):
    target = tmp_path / 'ebpf_tc.prom'
    target.write_text('old\n')

    def broken_rename(src, dst):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(cli.os, 'rename', broken_rename)
    with pytest.raises(OSError):
        cli.write_atomically(str(target), 'new\n')
    assert target.read_text() == 'old\n'
    assert os.listdir(str(tmp_path)) == ['ebpf_tc.prom']
    with pytest.raises(OSError, match='does not exist'):
        cli.write_atomically(str(tmp_path / 'missing' / 'x.prom'), 'new\n')


def test_cli_errors_are_one_line_and_exit_1(cli, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert 'ebpf_tc_metrics: error: the following arguments are required: --output' in err
    with pytest.raises(SystemExit) as exited:
        cli.main(['--output', 'x.prom', '--bogus'])
    assert exited.value.code == 1 and 'unrecognized arguments: --bogus' in capsys.readouterr().err
    # a namespace that does not exist: one line naming it, and the old file stays
    target = tmp_path / 'ebpf_tc.prom'
    target.write_text('old\n')
    assert cli.main(['--output', str(target), '--netns', 'ebtc-no-such-namespace']) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith('ebpf_tc_metrics: error: cannot read the hooks of network '
                                               'namespace ebtc-no-such-namespace: ')
    assert 'does not exist' in err[0] or 'pyroute2' in err[0]
    assert target.read_text() == 'old\n'

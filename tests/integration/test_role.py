# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role ebpf.tc.steering through ansible-playbook, on a host that is a network namespace.

The host is the node of tests/integration/topology.py (eth0 to a server, eth1 to a router that owns the
"far" addresses). The inventory is the MetalLB case plus a fleet policy: a service address, 10.213.0.10,
lives on the node's loopback; the router routes it via the node's eth1, so a client at the far address
reaches it through eth1, but the node's route back to the far prefix leaves by eth0 (to the server, which
does not forward). The return-path intent redirects the replies out of eth1 to the router; the policy
drops ICMP and blocks TCP 8080 out of eth0. eth1 starts with strict rp_filter (1), which drops the
requests on ingress until the role sets it loose.

Before the role runs, eth1 already has a clsact qdisc with a foreign (matchall) filter on it: the role
must leave both in place on removal, while the qdisc it added on eth0 goes.

The role also exports the counters as a Prometheus textfile (ebpf_tc_metrics_textfile) into a per-test
directory that stands for node_exporter's; the tests run the metrics unit's ExecStart as its timer would and
read the file with prometheus_client's parser.

Every file the role writes goes to a per-test directory (ebpf_tc_lib_dir, ebpf_tc_config_dir,
ebpf_tc_unit_dir, the textfile directory); the namespaces and pins are removed at the end, also on failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

# pylint: disable=wrong-import-position
import topology as topo  # noqa: E402
from objects import CniStandin, cni_standin, rejected_steering  # noqa: E402
from playbook import run_play  # noqa: E402

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _bpfobject, _facts, _tc, _tcx  # noqa: E402


VIP_V4 = '10.213.0.10'
VIP_PORT = 9000
BLOCKED_PORT, OPEN_PORT = 8080, 8081
STEERING_OBJECT = os.path.join(topo.ROOT, 'files', 'bpf', 'steering.bpf.o')

# A TCP connect from the far address (the client several hops away) to the service address.
CONNECT_FROM = r'''
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0,
                             source_address=(sys.argv[3], 0)).close()
except OSError:
    sys.exit(1)
'''


def attach_foreign(ns, ifname):
    """A clsact qdisc and a filter that are not ours: the steering program (loaded with nothing pinned, so
    it passes everything) attached at ingress priority 100 under another tool's name."""
    with _bpfobject.BpfObject.open(STEERING_OBJECT) as obj:
        obj.load()
        with _tc.open_netlink(ns) as ipr:
            index = _tc.ifindex(ipr, ifname)
            _tc.ensure_clsact(ipr, index)
            _tc.attach(ipr, index, 'ingress', obj.program_fd('steering'), 'other_tool', 100, 1)


class Host:
    """The node namespace as an Ansible host, with the role's variables for it."""

    def __init__(self, net, tmp_path):
        self.net = net
        self.lab = net.lab
        self.ns = net.node
        self.lib_dir = str(tmp_path / 'lib')
        self.config_dir = str(tmp_path / 'etc')
        self.unit_name = 'ebpf-tc-test-%s' % self.lab.prefix
        self.unit_dir = str(tmp_path / 'systemd')
        self.unit_path = os.path.join(self.unit_dir, self.unit_name + '.service')
        self.pin_root = '/sys/fs/bpf/ebpf_tc/netns/%s' % self.ns
        # node_exporter's textfile directory, as the operator made it (the role does not create it)
        self.textfile_dir = str(tmp_path / 'node-exporter')
        os.mkdir(self.textfile_dir)
        self.textfile = os.path.join(self.textfile_dir, 'ebpf_tc.prom')
        self.metrics_unit_name = 'ebpf-tc-metrics-test-%s' % self.lab.prefix
        self.metrics_units = [os.path.join(self.unit_dir, self.metrics_unit_name + suffix)
                              for suffix in ('.service', '.timer')]
        self.vars = {
            'ebpf_tc_netns': self.ns,
            'ebpf_tc_default_interface': 'eth0',
            'ebpf_tc_install_packages': False,
            'ebpf_tc_lib_dir': self.lib_dir,
            'ebpf_tc_config_dir': self.config_dir,
            'ebpf_tc_unit_name': self.unit_name,
            'ebpf_tc_unit_dir': self.unit_dir,
            'ebpf_tc_metrics_textfile': self.textfile,
            'ebpf_tc_metrics_interval': '30s',
            'ebpf_tc_metrics_unit_name': self.metrics_unit_name,
            'ebpf_tc_return_paths': [{
                'name': 'vip', 'addresses': [VIP_V4 + '/32', 'fd00:213::10/128'], 'interface': 'eth1',
                'gateway': topo.ROUTER_V4, 'gateway6': topo.ROUTER_V6}],
            'ebpf_tc_policy': {
                'drop_protocols': ['icmp'],
                'block_ports': [{'proto': 'tcp', 'ports': [BLOCKED_PORT]}],
                'count_protocols': ['tcp', 'udp']},
            # an explicit hook too: eth1 ingress, counting TCP
            'ebpf_tc_hooks': [{'interface': 'eth1', 'direction': 'ingress',
                               'rules': [{'name': 'tcp-in', 'match': {'proto': 'tcp'}, 'action': 'pass'}]}],
        }
        lab = self.lab
        lab.addr(self.ns, 'lo', VIP_V4 + '/32')
        lab.exec(net.router, 'ip', 'route', 'add', VIP_V4 + '/32', 'via', topo.NODE_ETH1_V4)
        lab.exec(self.ns, 'sysctl', '-qw', 'net.ipv4.conf.eth1.rp_filter=1')
        # someone else's clsact and filter on eth1: the role must not take them away
        attach_foreign(self.ns, 'eth1')
        for port in (BLOCKED_PORT, OPEN_PORT):
            lab.tcp_listener(net.server, port)
        lab.tcp_listener(self.ns, VIP_PORT)

    def role(self, check=False, diff=False, **overrides):
        extra = dict(self.vars, **overrides)
        return run_play([{'name': 'Run the role', 'ansible.builtin.include_role': {'name': 'ebpf.tc.steering'}}],
                        check=check, diff=diff, extra_vars=extra)

    # -- what is on the host ------------------------------------------------------------------------------

    def qdiscs(self, ifname):
        out = self.lab.exec(self.ns, 'tc', 'qdisc', 'show', 'dev', ifname).stdout
        return [line.split()[1] for line in out.splitlines() if line.strip()]

    def filters(self, ifname, direction):
        out = self.lab.exec(self.ns, 'tc', 'filter', 'show', 'dev', ifname, direction).stdout
        return [line for line in out.splitlines() if line.startswith('filter') and 'pref' in line]

    def tcx(self, ifname, direction):
        """The hook's TCX chain: [(program name, ours)] in run order."""
        with _tc.open_netlink(self.ns) as ipr:
            index = _tc.ifindex(ipr, ifname)
        return [(t['prog_name'], t['owned']) for t in _attached.tcx_chain(index, direction, self.ns)]

    def backends(self):
        """{(interface, direction): backend} of the hooks that run the steering program."""
        out = {}
        for ifname, hooks in _facts.gather(netns=self.ns)['interfaces'].items():
            for direction in ('ingress', 'egress'):
                attached = hooks[direction]['attached']
                if attached and attached['program'] == 'steering':
                    out[(ifname, direction)] = attached['backend']
        return out

    def detach_links(self):
        """Detach our TCX links behind the role's back (their pins stay, the links go defunct)."""
        for directory, dummy, names in os.walk(self.pin_root):
            for name in names:
                if name.endswith(_tcx.LINK_PIN_SUFFIX):
                    fd = _tcx.open_pinned_link(os.path.join(directory, name))
                    try:
                        with _tc.netns_entered(self.ns):
                            _tcx.link_detach(fd)
                    finally:
                        os.close(fd)

    def rp_filter(self, ifname):
        return int(self.lab.exec(self.ns, 'cat', '/proc/sys/net/ipv4/conf/%s/rp_filter' % ifname).stdout)

    def files(self):
        found = []
        for top in (self.lib_dir, self.config_dir):
            for dirpath, dirnames, filenames in os.walk(top):
                found += [os.path.join(dirpath, name) for name in dirnames + filenames]
            if os.path.exists(top):
                found.append(top)
        for path in [self.unit_path] + self.metrics_units:
            if os.path.exists(path):
                found.append(path)
        found += [os.path.join(self.textfile_dir, name) for name in os.listdir(self.textfile_dir)]
        return sorted(found)

    def snapshot(self):
        """Everything the role may touch, to compare before and after a run that must change nothing."""
        return {
            'qdiscs': {i: self.qdiscs(i) for i in ('eth0', 'eth1')},
            'filters': {(i, d): self.filters(i, d) for i in ('eth0', 'eth1') for d in ('ingress', 'egress')},
            'tcx': {(i, d): self.tcx(i, d) for i in ('eth0', 'eth1') for d in ('ingress', 'egress')},
            'rp_filter': self.rp_filter('eth1'),
            'files': self.files(),
            'file_contents': {p: open(p, 'rb').read() for p in self.files() if os.path.isfile(p)},
            'pins': sorted(os.listdir(self.pin_root)) if os.path.isdir(self.pin_root) else None,
            'rules': self.applied_rules(),
        }

    def applied_rules(self):
        """(default_action, rules) of every hook of eth0 and eth1, read back from the maps as tc_info does."""
        out = {}
        for ifname, hooks in _facts.gather(netns=self.ns)['interfaces'].items():
            if ifname in ('eth0', 'eth1'):
                for direction in ('ingress', 'egress'):
                    steering = hooks[direction].get('steering') or {}
                    out['%s/%s' % (ifname, direction)] = (steering.get('default_action'), steering.get('rules'))
        return out

    def counters(self):
        """{(interface, direction, rule): {packets, bytes, drops}} of every steering hook, as tc_info reads them."""
        out = {}
        for ifname, hooks in _facts.gather(netns=self.ns)['interfaces'].items():
            for direction in ('ingress', 'egress'):
                steering = hooks[direction].get('steering') or {}
                for rule, stats in (steering.get('counters') or {}).items():
                    out[(ifname, direction, rule)] = stats
        return out

    def metrics(self):
        """The textfile parsed by prometheus_client: {family: (type, [(sample name, labels, value)])}."""
        with open(self.textfile) as src:
            text = src.read()
        return dict((f.name, (f.type, [(s.name, s.labels, s.value) for s in f.samples]))
                    for f in text_string_to_metric_families(text))

    def refresh_metrics(self):
        """Run the metrics service's ExecStart, as its timer does; the parsed file."""
        ran = run_exec_start(self.metrics_units[0])
        assert ran.returncode == 0 and not ran.stderr, (ran.stdout, ran.stderr)
        assert os.listdir(self.textfile_dir) == ['ebpf_tc.prom']  # no temporary file left behind
        return self.metrics()

    # -- traffic ------------------------------------------------------------------------------------------

    def pings_server(self):
        return self.lab.pings(self.ns, topo.SERVER_V4, count=1) > 0

    def connects_server(self, port):
        return self.lab.tcp_connects(self.ns, topo.SERVER_V4, port)

    def vip_reachable(self):
        """A client at the far address connects to the service address (the MetalLB return path)."""
        res = self.lab.exec(self.net.router, sys.executable, '-c', CONNECT_FROM, VIP_V4, str(VIP_PORT),
                            topo.FAR_V4, check=False)
        return res.returncode == 0

    def wipe_pins(self):
        remove_tree(self.pin_root)

    def close(self):
        try:
            self.net.close()  # first: the namespace's filters go, so nothing holds the programs
        finally:
            self.wipe_pins()
            if os.path.exists(self.unit_path):
                os.unlink(self.unit_path)


def run_exec_start(unit_path):
    """Run the ExecStart= command of a unit file the role rendered, as systemd would (in this namespace)."""
    with open(unit_path) as src:
        exec_start = [line.split('=', 1)[1] for line in src.read().splitlines() if line.startswith('ExecStart=')]
    assert len(exec_start) == 1
    return subprocess.run(shlex.split(exec_start[0]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=60, check=False)


def samples(metrics, family, **where):
    """{(interface, direction, rule or protocol): value} of a family's samples whose labels include `where`."""
    out = {}
    for _name, labels, value in metrics[family][1]:
        if all(labels.get(k) == v for k, v in where.items()):
            out[(labels['interface'], labels['direction'], labels.get('rule', labels.get('protocol')))] = value
    return out


def remove_tree(path):
    """Remove a pin tree (bpffs pins are unlinked like files), then its parents up to /sys/fs/bpf while
    empty (other tests' pins keep theirs)."""
    shutil.rmtree(path, ignore_errors=True)
    for parent in ('/sys/fs/bpf/ebpf_tc/netns', '/sys/fs/bpf/ebpf_tc'):
        try:
            os.rmdir(parent)
        except OSError:
            pass


@pytest.fixture
def host(tmp_path):
    net = topo.topology()
    try:
        made = Host(net, tmp_path)
    except BaseException:
        net.close()
        raise
    try:
        yield made
    finally:
        made.close()


def recap(res):
    """The PLAY RECAP counters of the one host."""
    match = re.search(r'^localhost\s+:\s+(.*)$', res.output, re.M)
    assert match, res.output[-3000:]
    return dict((key, int(value)) for key, value in re.findall(r'(\w+)=(\d+)', match.group(1)))


def assert_ok(res):
    failed = [(t['task'], t['result'].get('msg'), t['result'].get('results', '')) for t in res.failed]
    assert res.rc == 0 and not failed, (failed, res.output[-4000:])
    return recap(res)


def changed_tasks(res):
    """The tasks (and loop items) that reported a change, for assertion messages."""
    out = []
    for task in res.tasks:
        result = task['result']
        if result.get('changed'):
            items = [r.get('item') for r in result.get('results', []) if r.get('changed')]
            out.append((task['task'], items, result.get('msg')))
    return out


def assert_unchanged(res):
    counts = assert_ok(res)
    assert counts['changed'] == 0, changed_tasks(res)


def failure_message(res):
    assert res.rc != 0, res.output[-3000:]
    msgs = [str(t['result'].get('msg', '')) for t in res.failed]
    for t in res.failed:
        msgs += [str(r.get('msg', '')) for r in t['result'].get('results', []) if r.get('failed')]
    return '\n'.join(msgs) + '\n' + res.output[-2000:]


def task_result(res, name):
    return [t['result'] for t in res.tasks if t['task'].endswith(name)]


def test_role_lifecycle(host):
    """converge, idempotence, check mode, traffic, commit-confirm, restore after a wipe, removal without residue."""
    assert host.pings_server() and host.connects_server(BLOCKED_PORT) and host.connects_server(OPEN_PORT)
    assert not host.vip_reachable()  # the return path is broken before the role runs
    pristine = host.snapshot()

    counts = assert_ok(host.role())
    assert counts['changed'] > 0
    # ebpf_tc_backend auto: TCX links on this kernel, no clsact qdisc added
    assert host.backends() == {('eth0', 'egress'): 'tcx', ('eth1', 'ingress'): 'tcx'}
    assert host.qdiscs('eth0') == pristine['qdiscs']['eth0']
    assert host.rp_filter('eth1') == 2
    state = json.load(open(os.path.join(host.config_dir, 'state.json')))
    assert state['netns'] == host.ns and state['object'] == os.path.join(host.lib_dir, 'steering.bpf.o')
    assert sorted((h['interface'], h['direction']) for h in state['hooks']) == [('eth0', 'egress'), ('eth1', 'ingress')]
    assert state['rp_filter_loose'] == ['eth1']
    assert os.path.exists(host.unit_path)
    assert os.path.exists(os.path.join(host.lib_dir, 'ebpf_tc_restore.py'))
    assert os.path.exists(os.path.join(host.lib_dir, 'ansible_collections/ebpf/tc/plugins/module_utils/_rules.py'))
    # metrics: the units, and the file the role wrote once right away (before the traffic below)
    service, timer = (open(path).read().splitlines() for path in host.metrics_units)
    assert 'Type=oneshot' in service and 'After=%s.service' % host.unit_name in service
    assert {'OnBootSec=30s', 'OnUnitActiveSec=30s', 'AccuracySec=1s', 'WantedBy=timers.target'} <= set(timer)
    assert stat.S_IMODE(os.stat(host.textfile).st_mode) == 0o644
    first = host.metrics()
    assert first['ebpf_tc_rule_packets'][0] == 'counter' and first['ebpf_tc_hook_attached'][0] == 'gauge'
    assert all(labels['netns'] == host.ns for family in first.values() for _name, labels, _value in family[1])

    # the policy and the return path, with real traffic
    assert not host.pings_server()
    assert not host.connects_server(BLOCKED_PORT)
    assert host.connects_server(OPEN_PORT)
    assert host.vip_reachable()
    rules = host.applied_rules()
    assert [r['name'] for r in rules['eth0/egress'][1]] == [
        'rp-vip-v4', 'rp-vip-v6', 'drop-icmp', 'block-tcp-8080', 'count-tcp', 'count-udp']
    assert [r['name'] for r in rules['eth1/ingress'][1]] == ['tcp-in']

    # metrics, refreshed as the timer does: every rule's counters are tc_info's, and moved with the traffic
    before = host.counters()
    metrics = host.refresh_metrics()
    after = host.counters()
    assert set(samples(metrics, 'ebpf_tc_rule_packets')) == set(before) == set(after)
    for family, key in (('ebpf_tc_rule_packets', 'packets'), ('ebpf_tc_rule_bytes', 'bytes'),
                        ('ebpf_tc_rule_drops', 'drops')):
        for where, value in samples(metrics, family).items():
            assert before[where][key] <= value <= after[where][key], (family, where)
    moved = dict((where, value - samples(first, 'ebpf_tc_rule_packets').get(where, 0))
                 for where, value in samples(metrics, 'ebpf_tc_rule_packets').items())
    for rule in ('rp-vip-v4', 'drop-icmp', 'block-tcp-8080', 'count-tcp'):
        assert moved[('eth0', 'egress', rule)] > 0, (rule, moved)
    assert moved[('eth1', 'ingress', 'tcp-in')] > 0
    drops = samples(metrics, 'ebpf_tc_rule_drops', interface='eth0')
    assert drops[('eth0', 'egress', 'drop-icmp')] == samples(metrics, 'ebpf_tc_rule_packets')[('eth0', 'egress', 'drop-icmp')]
    assert drops[('eth0', 'egress', 'count-tcp')] == 0
    assert samples(metrics, 'ebpf_tc_rule_packets', rule='(default)', action='pass')  # the default action's
    assert samples(metrics, 'ebpf_tc_protocol_packets', interface='eth0')[('eth0', 'egress', 'tcp')] > \
        samples(first, 'ebpf_tc_protocol_packets', interface='eth0').get(('eth0', 'egress', 'tcp'), 0)
    assert samples(metrics, 'ebpf_tc_hook_attached') == {('eth0', 'egress', None): 1, ('eth1', 'ingress', None): 1}
    assert all(value > 0 for value in samples(metrics, 'ebpf_tc_ruleset_generation').values())

    # idempotence
    assert_unchanged(host.role())

    # check mode: unchanged inventory reports nothing; a changed one reports the change and changes nothing
    converged = host.snapshot()
    assert_unchanged(host.role(check=True))
    policy = dict(host.vars['ebpf_tc_policy'], drop_protocols=['icmp', 'udp'])
    res = host.role(check=True, ebpf_tc_policy=policy)
    assert assert_ok(res)['changed'] > 0
    assert any(h['rules_changed'] for t in task_result(res, 'Converge the hooks') for h in t['hooks'])
    assert host.snapshot() == converged

    # commit-confirm: the new sets go on trial, the controller still reaches the host, the role confirms
    res = host.role(ebpf_tc_confirm_timeout=30, ebpf_tc_policy=policy)
    assert assert_ok(res)['changed'] > 0
    trials = [h for t in task_result(res, 'Converge the hooks') for h in t['hooks'] if h['rules_changed']]
    assert len(trials) == 1 and trials[0]['pending'] is not None  # only eth0 egress changed
    [confirm] = task_result(res, 'Confirm the rule sets on trial')
    assert confirm['changed'] and len(confirm['confirmed']) == 1 and confirm['confirmed'][0]['pending'] is None
    host.vars['ebpf_tc_policy'] = policy
    rules = host.applied_rules()
    assert 'drop-udp' in [r['name'] for r in rules['eth0/egress'][1]]

    # persistence: detach the links, wipe the pins, then run what the unit runs
    host.detach_links()
    # the links are detached, their pins are still there: the metrics say so
    assert samples(host.refresh_metrics(), 'ebpf_tc_hook_attached') == {
        ('eth0', 'egress', None): 0, ('eth1', 'ingress', None): 0}
    host.wipe_pins()
    assert host.pings_server() and not host.vip_reachable()
    restored = run_exec_start(host.unit_path)
    assert restored.returncode == 0, (restored.stdout, restored.stderr)
    assert not host.pings_server() and host.vip_reachable()
    assert host.applied_rules() == rules
    assert_unchanged(host.role())  # the restore put back exactly what the role applies

    # removal: everything the role made goes, the foreign qdisc and filter on eth1 stay
    res = host.role(ebpf_tc_state='absent')
    assert assert_ok(res)['changed'] > 0
    assert host.qdiscs('eth0') == pristine['qdiscs']['eth0']
    assert 'clsact' in host.qdiscs('eth1')
    assert host.filters('eth1', 'ingress') == pristine['filters'][('eth1', 'ingress')]
    assert host.files() == []
    assert not os.path.exists(host.pin_root)
    assert host.rp_filter('eth1') == 1  # put back
    assert host.snapshot() == pristine
    assert host.pings_server() and host.connects_server(BLOCKED_PORT) and not host.vip_reachable()
    assert_unchanged(host.role(ebpf_tc_state='absent'))


def test_check_mode_on_a_fresh_host(host):
    """Check mode reports the changes it would make and makes none, before anything was ever deployed; with
    --diff it shows the units it would write."""
    pristine = host.snapshot()
    res = host.role(check=True, diff=True)
    assert assert_ok(res)['changed'] > 0
    assert host.snapshot() == pristine
    timer = task_result(res, 'Install the metrics timer')
    assert len(timer) == 1 and timer[0]['changed']
    assert 'OnUnitActiveSec=30s' in timer[0]['diff'][0]['after']
    assert not task_result(res, 'Write the metrics file now, as the service does')[0].get('changed')


@pytest.mark.parametrize('overrides, named', [
    ({'ebpf_tc_return_paths': [{'name': 'vip', 'addresses': [VIP_V4 + '/32'], 'interface': 'eth1',
                                'gateway': 'fd00::1'}]}, 'ebpf_tc_return_paths[0].gateway'),
    ({'ebpf_tc_hooks': [{'interface': 'eth0', 'rules': [
        {'name': 'ok', 'match': {'proto': 'icmp'}, 'action': 'drop'},
        {'name': 'bad-cidr', 'match': {'dst': '10.0.0.300/24'}, 'action': 'drop'}]}]}, 'bad-cidr'),
    ({'ebpf_tc_return_paths': [{'name': 'vip', 'addresses': [VIP_V4 + '/32'], 'interface': 'eth7'}]}, 'eth7'),
    ({'ebpf_tc_object_src': '/nonexistent/steering.bpf.o'}, 'ebpf_tc_object_src'),
    ({'ebpf_tc_metrics_interval': '15 parsecs'}, 'ebpf_tc_metrics_interval: 15 parsecs is not a systemd time span'),
    ({'ebpf_tc_metrics_textfile': '/nonexistent/ebpf_tc.prom'}, '/nonexistent is not a directory on the host'),
], ids=['filter-level', 'rule-level', 'unknown-interface', 'missing-object', 'metrics-interval',
        'metrics-directory'])
def test_bad_inventory_fails_before_any_change(host, overrides, named):
    pristine = host.snapshot()
    msg = failure_message(host.role(**overrides))
    assert named in msg
    assert host.snapshot() == pristine


def test_kernel_refusing_the_object_fails_before_any_change(host, tmp_path):
    """The kernel's verifier, not a version number, decides: the validation loads the object once on the host
    and stops with the verifier's line (ebpf.tc.rollout's preflight runs the same validation)."""
    pristine = host.snapshot()
    msg = failure_message(host.role(ebpf_tc_object_src=rejected_steering(tmp_path)))
    assert 'kernel %s refuses the steering object' % os.uname()[2] in msg
    assert 'invalid access to packet' in msg
    assert host.snapshot() == pristine


def test_a_shadowed_hook_fails_the_role_and_tcx_steers_in_front_of_the_cni(host, tmp_path):
    """A CNI's TCX program (a stand-in that ends the hook) on eth0 egress: with ebpf_tc_backend clsact the
    return path is dead behind it and the role's verification fails naming it; ebpf_tc_allow_shadowed
    lets an operator accept it; the default (auto: tcx, placed first) steers in front of it."""
    with CniStandin(cni_standin(tmp_path), host.ns, 'eth0') as cni:
        msg = failure_message(host.role(ebpf_tc_backend='clsact'))
        assert 'eth0 egress: shadowed: egress of eth0 in network namespace %s runs filter ebpf_tc:steering' % host.ns \
            in msg and 'cni_standin (id %d)' % cni.prog_id in msg, msg
        assert not host.vip_reachable()
        assert_ok(host.role(ebpf_tc_backend='clsact', ebpf_tc_allow_shadowed=True))
        assert_ok(host.role())
        assert host.backends() == {('eth0', 'egress'): 'tcx', ('eth1', 'ingress'): 'tcx'}
        assert host.tcx('eth0', 'egress') == [('steering', True), ('cni_standin', False)]
        assert host.filters('eth0', 'egress') == []     # the clsact filter went once the link ran
        assert host.vip_reachable() and not host.pings_server()
        seen = cni.seen()           # the VIP replies were redirected and the pings dropped: neither reaches it
        assert host.connects_server(OPEN_PORT)
        assert cni.seen() > seen    # what steering passes on (TCX_NEXT) still reaches the CNI behind it
        assert_unchanged(host.role())


def test_hook_taken_out_of_inventory_is_detached(host):
    """A hook an earlier run attached goes, with its pins, when the inventory no longer lists it (a rollback
    to an older rule set relies on it); the other hooks and the foreign filter stay.

    The same runs change the metrics options (cheaper than runs of their own): persistence off keeps the
    restore code the metrics CLI imports, a new textfile path replaces the old file, metrics off removes
    the units, the CLI and the file, and then (persistence off too) the restore code."""
    host.vars['ebpf_tc_backend'] = 'clsact'     # the role with the clsact backend (lifecycle runs auto: tcx)
    assert_ok(host.role())
    assert host.backends() == {('eth0', 'egress'): 'clsact', ('eth1', 'ingress'): 'clsact'}
    assert [f for f in host.filters('eth1', 'ingress') if 'ebpf_tc:steering' in f]
    assert os.path.exists(host.textfile)
    moved = os.path.join(host.textfile_dir, 'moved.prom')
    later = dict(ebpf_tc_hooks=[], ebpf_tc_persist=False, ebpf_tc_metrics_textfile=moved)
    res = assert_ok(host.role(**later))
    assert res['changed'] > 0
    assert not [f for f in host.filters('eth1', 'ingress') if 'ebpf_tc:steering' in f]
    assert [f for f in host.filters('eth1', 'ingress') if 'other_tool' in f]       # not ours: stays
    assert not os.path.exists(os.path.join(host.pin_root, 'eth1', 'ingress'))
    assert host.applied_rules()['eth1/ingress'] == (None, None)
    assert host.applied_rules()['eth0/egress'][1]                                  # still steering
    with open(os.path.join(host.config_dir, 'created.json')) as src:
        assert [(h['interface'], h['direction']) for h in json.load(src)['hooks']] == [('eth0', 'egress')]
    # metrics: at the new path only, from the unit as it is now; the restore unit went, its code stays
    assert os.listdir(host.textfile_dir) == ['moved.prom']
    assert not os.path.exists(host.unit_path)
    assert not os.path.exists(os.path.join(host.config_dir, 'state.json'))
    ran = run_exec_start(host.metrics_units[0])
    assert ran.returncode == 0, ran.stderr
    with open(moved) as src:
        families = dict((f.name, f) for f in text_string_to_metric_families(src.read()))
    assert sorted((s.labels['interface'], s.labels['direction'], s.value)
                  for s in families['ebpf_tc_hook_attached'].samples) == [('eth0', 'egress', 1)]
    assert_unchanged(host.role(**later))
    # metrics off: units, CLI and file go; with persistence off as well, so does the restore code
    res = assert_ok(host.role(**dict(later, ebpf_tc_metrics_textfile='')))
    assert res['changed'] > 0
    assert os.listdir(host.textfile_dir) == []
    assert not [path for path in host.metrics_units if os.path.exists(path)]
    assert sorted(os.listdir(host.lib_dir)) == ['steering.bpf.o', 'steering.bpf.o.sha256']
    # removal still finds eth0's hook, from the inventory and from created.json
    assert_ok(host.role(ebpf_tc_state='absent', ebpf_tc_hooks=[]))
    assert host.files() == [] and not os.path.exists(host.pin_root)


def test_default_interface_comes_from_facts_a_play_did_not_gather():
    """ebpf.tc.rollout gathers no facts: the role then gathers the network facts itself for the default
    interface. ansible-playbook runs inside a namespace here (no ebpf_tc_netns), so the facts are its own;
    only the validation runs (as the rollout's preflight does), which changes nothing on the host."""
    from nslab import Lab  # pylint: disable=import-outside-toplevel

    with Lab() as lab:
        node, router = lab.ns('node'), lab.ns('router')
        lab.veth(node, 'uplink7', router, 'eth0')
        lab.addr(node, 'uplink7', '10.218.0.1/24')
        lab.exec(node, 'ip', 'route', 'add', 'default', 'via', '10.218.0.2')
        res = run_play([
            {'name': 'Validate', 'ansible.builtin.include_role': {'name': 'ebpf.tc.steering', 'tasks_from': 'validate.yml'},
             'vars': {'ebpf_tc_policy': {'drop_protocols': ['icmp']}}},
            {'name': 'Show the hooks', 'ansible.builtin.debug': {'var': '_ebpf_tc_hook_list'}},
        ], netns=node)
        assert_ok(res)
        hooks = res.tasks[-1]['result']['_ebpf_tc_hook_list']
        assert [(hook['interface'], hook['direction']) for hook in hooks] == [('uplink7', 'egress')]


def test_drift_fails_the_role_until_repaired(host):
    """Another pin_dir attached over the role's hook (with force): the role fails and says how to repair;
    after the repair it converges again with the rules it applied before (the pinned maps kept them)."""
    assert_ok(host.role())
    rules_before = host.applied_rules()['eth0/egress']
    other = os.path.join(host.pin_root, 'typo', 'egress')
    attach = {'interface': 'eth0', 'netns': host.ns, 'object': STEERING_OBJECT, 'program': 'steering'}
    res = run_play([{'ebpf.tc.bpf_filter': dict(attach, pin_dir=other, force=True)}])
    assert res.rc == 0 and res.changed == [True], res
    msg = failure_message(host.role())
    assert 'pinned at %s' % other in msg and 'force: true' in msg, msg
    res = run_play([{'ebpf.tc.bpf_filter': dict(attach, force=True)}, {'ebpf.tc.tc_info': {'netns': host.ns}}])
    assert res.rc == 0 and res[1]['interfaces']['eth0']['egress']['drift'] is None, res
    assert_unchanged(host.role())
    assert host.applied_rules()['eth0/egress'] == rules_before

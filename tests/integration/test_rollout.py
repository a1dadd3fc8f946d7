# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The playbook ebpf.tc.rollout on the fleet lab: four nodes over real SSH, a client three hops away.

The tests tell one story, in file order, on one lab (each checks where the one before left it):
broken return path -> a kernel that refuses the object stops the preflight, nothing changes -> rollout
fixes it -> a re-run changes nothing -> a second rule set (v2) on which one host's inventory breaks its
health check: the rollout stops in that batch and rolls the batch back, the canary keeps v2, later batches
stay on v1 -> removal through the rollout leaves no steering behind.

Inventory changes are made in a copy of the lab's inventory, as an operator would edit theirs; the role's
variables never go in extra vars (they would outrank the rollback's).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest
import yaml
from ansible import release as ansible_release

from fleetlab import FleetLab, ansible_env  # noqa: E402  pylint: disable=wrong-import-position
from objects import CniStandin, cni_standin, rejected_steering  # noqa: E402  pylint: disable=wrong-import-position

NODES = ['node1', 'node2', 'node3', 'node4']


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    lab = FleetLab(str(tmp_path_factory.mktemp('fleet')))
    lab.up(nodes=len(NODES), name='t%s' % uuid.uuid4().hex[:5])
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope='module')
def story():
    """What the earlier tests of the story found (fingerprints of v1 and v2)."""
    return {}


def inventory_copy(lab, tmp_path, edit=None):
    """A copy of the lab's inventory directory, edited by edit(group_vars, host_vars) (dicts of parsed YAML)."""
    target = str(tmp_path / 'inventory')
    shutil.copytree(lab.inventory, target)
    if edit is not None:
        files = {}
        for sub in ('group_vars', 'host_vars'):
            for name in os.listdir(os.path.join(target, sub)):
                with open(os.path.join(target, sub, name)) as src:
                    files[(sub, name[:-len('.yml')])] = yaml.safe_load(src)
        edit({k[1]: v for k, v in files.items() if k[0] == 'group_vars'},
             {k[1]: v for k, v in files.items() if k[0] == 'host_vars'})
        for (sub, name), data in files.items():
            with open(os.path.join(target, sub, name + '.yml'), 'w') as out:
                yaml.safe_dump(data, out, sort_keys=False)
    return target


def rollout(lab, tmp_path, inventory=None, serial=None, options=()):
    """Run ebpf.tc.rollout from the lab's controller namespace; returns (rc, output, report, recap)."""
    report = str(tmp_path / ('report-%s.json' % uuid.uuid4().hex[:6]))
    argv = ['ansible-playbook', 'ebpf.tc.rollout', '-i', inventory or lab.inventory,
            '-e', 'ebpf_tc_rollout_hosts=nodes', '-e', 'ebpf_tc_rollout_report=' + report]
    if serial is not None:
        argv += ['-e', json.dumps({'ebpf_tc_rollout_serial': serial})]
    argv += list(options)
    proc = subprocess.run(lab.ctl_argv(argv), env=ansible_env(ANSIBLE_FORKS='10'), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=900, check=False)
    recap = {}
    for host, counts in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', proc.stdout, re.M):
        recap[host] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', counts)}
    data = None
    if os.path.exists(report):
        with open(report) as src:
            data = json.load(src)
    return proc.returncode, proc.stdout, data, recap


def by_host(report):
    return {row['host']: row for row in report['hosts']}


def probes_ok(lab):
    """{node: [ok of each service address]} from the client."""
    out = {}
    for row in lab.probe():
        out.setdefault(row['node'], []).append(row['ok'])
    return out


def test_return_path_broken_without_steering(lab):
    probes = probes_ok(lab)
    assert sorted(probes) == NODES
    assert all(len(oks) == 2 and not any(oks) for oks in probes.values()), probes


def test_a_kernel_refusing_the_object_stops_the_preflight(lab, tmp_path):
    """One host's object is refused by its kernel (the preflight loads it on every host): the rollout stops
    before any host changes, and says which host and why."""
    refused = rejected_steering(tmp_path)

    def node3_refuses(group_vars, host_vars):
        host_vars['node3']['ebpf_tc_object_src'] = refused

    rc, output, report, recap = rollout(lab, tmp_path, inventory_copy(lab, tmp_path, node3_refuses))
    assert rc != 0, output[-6000:]
    assert {node: counts['changed'] for node, counts in recap.items()} == {n: 0 for n in NODES}, output[-6000:]
    assert 'refuses the steering object' in output and 'invalid access to packet' in output
    assert re.search(r'fatal: \[node3\]', output), output[-6000:]
    assert all(not any(oks) for oks in probes_ok(lab).values())   # still broken: nothing was rolled out


def test_a_hook_behind_a_cni_on_tcx_stops_the_preflight_with_the_clsact_backend(lab, tmp_path):
    """node2 runs a CNI's TCX program (a stand-in that ends the hook) on eth0 egress: with ebpf_tc_backend
    clsact the steering filter would be shadowed there, so the preflight stops before any host changes."""
    def clsact_backend(group_vars, host_vars):
        group_vars['nodes']['ebpf_tc_backend'] = 'clsact'

    with CniStandin(cni_standin(tmp_path), lab.ns('node2'), 'eth0'):
        rc, output, report, recap = rollout(lab, tmp_path, inventory_copy(lab, tmp_path, clsact_backend))
    assert rc != 0, output[-6000:]
    assert {node: counts['changed'] for node, counts in recap.items()} == {n: 0 for n in NODES}, output[-6000:]
    assert re.search(r'fatal: \[node2\]', output) and not re.search(r'fatal: \[node[134]\]', output), output[-6000:]
    assert 'eth0 egress runs the TCX programs cni_standin' in output, output[-6000:]
    assert all(not any(oks) for oks in probes_ok(lab).values())   # still broken: nothing was rolled out


def test_rollout_fixes_the_return_path(lab, tmp_path, story):
    rc, output, report, recap = rollout(lab, tmp_path, serial=[1, 3])   # the canary, then the rest
    assert rc == 0, output[-6000:]
    hosts = by_host(report)
    assert report['result'] == 'ok'
    assert report['ansible_core'] == ansible_release.__version__     # this venv's (make controllers: 2.15)
    assert [hosts[n]['batch'] for n in NODES] == [1, 2, 2, 2]
    assert {hosts[n]['outcome'] for n in NODES} == {'updated'}
    fingerprints = {hosts[n]['fingerprint'] for n in NODES}
    assert len(fingerprints) == 4     # every node has its own return-path addresses, so its own rule set
    for node in NODES:
        assert hosts[node]['redirect_packets'] >= 2, hosts[node]   # one connect per service address at least
        assert hosts[node]['problems'] == []
    assert all(all(oks) for oks in probes_ok(lab).values())
    assert 'HOST' in output and 'RULE SETS' in output
    story['v1'] = {n: hosts[n]['fingerprint'] for n in NODES}


def test_rerun_changes_nothing(lab, tmp_path, story):
    assert story.get('v1'), 'needs the rollout of the test before'
    rc, output, report, recap = rollout(lab, tmp_path, serial=['100%'])
    assert rc == 0, output[-6000:]
    assert sorted(recap) == NODES, output[-3000:]
    assert {node: counts['changed'] for node, counts in recap.items()} == {n: 0 for n in NODES}, output[-6000:]
    hosts = by_host(report)
    assert {hosts[n]['outcome'] for n in NODES} == {'unchanged'}
    assert {n: hosts[n]['fingerprint'] for n in NODES} == story['v1']


def v2_policy(group_vars, host_vars):
    """v2 of the fleet's rule sets: also block outbound SMTP."""
    group_vars['nodes']['ebpf_tc_policy']['block_ports'].append({'proto': 'tcp', 'ports': [25]})


def test_check_mode_reports_and_changes_nothing(lab, tmp_path, story):
    assert story.get('v1'), 'needs the rollout of the tests before'
    rc, output, report, recap = rollout(lab, tmp_path, inventory_copy(lab, tmp_path, v2_policy),
                                        serial=['100%'], options=['--check', '--diff'])
    assert rc == 0, output[-6000:]
    hosts = by_host(report)
    assert {hosts[n]['outcome'] for n in NODES} == {'checked'}
    assert {n: hosts[n]['fingerprint'] for n in NODES} == story['v1']       # read back from the maps
    assert all(recap[n]['changed'] > 0 for n in NODES), recap                # the new rule would be applied
    assert '+' in output and 'block-tcp-25' in output                        # and the diff shows it


def test_failing_batch_is_rolled_back_and_stops_the_rollout(lab, tmp_path, story):
    assert story.get('v1'), 'needs the rollout of the tests before'

    def v2_with_node3_broken(group_vars, host_vars):
        # v2 for everyone; node3's edit has a typo in its gateway: its IPv4 replies go to a neighbour that
        # does not exist, so its health check fails.
        v2_policy(group_vars, host_vars)
        host_vars['node3']['ebpf_tc_return_paths'][0]['gateway'] = '203.0.113.254'

    inventory = inventory_copy(lab, tmp_path, v2_with_node3_broken)
    # batches: [node1] (canary), [node2, node3], [node4]
    rc, output, report, recap = rollout(lab, tmp_path, inventory, serial=[1, 2, '100%'])
    assert rc != 0, output[-6000:]
    hosts = by_host(report)
    assert report['result'] == 'failed' and report['failed_batch'] == 2, report
    assert hosts['node1']['outcome'] == 'updated'
    assert hosts['node1']['fingerprint'] != story['v1']['node1']          # the canary passed: it keeps v2
    for node in ('node2', 'node3'):                                       # the failing batch, as a whole
        assert hosts[node]['outcome'] == 'rolled back', hosts[node]
        assert hosts[node]['fingerprint'] == story['v1'][node]
    assert any('203.0.113' in p or 'TCP connect' in p for p in hosts['node3']['problems']), hosts['node3']
    assert any('batch 2 failed on node3' in p for p in hosts['node2']['problems']), hosts['node2']
    assert hosts['node4']['outcome'] == 'not reached'
    assert hosts['node4']['fingerprint'] == story['v1']['node4']
    assert 'node4' not in recap or recap['node4']['changed'] == 0
    assert recap['node2']['failed'] == 1 and recap['node3']['failed'] == 1, output[-3000:]
    # every node answers again: node1 on v2, the others on v1
    assert all(all(oks) for oks in probes_ok(lab).values())
    assert 'rolled back' in output and 'not reached' in output


def test_removal_through_the_rollout(lab, tmp_path):
    def absent(group_vars, host_vars):
        group_vars['nodes']['ebpf_tc_state'] = 'absent'

    rc, output, report, recap = rollout(lab, tmp_path, inventory_copy(lab, tmp_path, absent), serial=['100%'])
    assert rc == 0, output[-6000:]
    hosts = by_host(report)
    assert {hosts[n]['rule_sets'] for n in NODES} == {'no steering'}
    assert {hosts[n]['outcome'] for n in NODES} == {'updated'}
    # the return path is broken again, and the nodes' pins and files are gone
    probes = probes_ok(lab)
    assert not any(any(oks) for oks in probes.values()), probes
    for node in NODES:
        node_dir = os.path.join(lab.directory, 'nodes', node)
        leftovers = [os.path.join(d, f) for sub in ('lib', 'etc')
                     for d, dummy, files in os.walk(os.path.join(node_dir, sub)) for f in files]
        assert leftovers == [], leftovers

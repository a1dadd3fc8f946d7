# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet lab (tools/fleetlab.py) that the rollout and `make demo` run on: two nodes, reached over SSH.

One lab for the module, in a temporary directory and with a name of its own; the fixture's finalizer
removes it whatever happens. The last test takes it down itself and checks that nothing is left.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import sys
import uuid

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=wrong-import-position
from fleetlab import FleetLab, LabError, alive, netns_exists  # noqa: E402


ANSIBLE = os.path.join(os.path.dirname(sys.executable), 'ansible')
EXAMPLES = os.path.join(ROOT, 'roles', 'steering', 'examples')


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    fleet = FleetLab(str(tmp_path_factory.mktemp('fleetlab') / 'lab'))
    try:
        fleet.up(nodes=2, name='t%s' % uuid.uuid4().hex[:8])
        yield fleet
    finally:
        fleet.down()


def ansible(lab, pattern, *args):
    """An ad-hoc ansible run from the controller's namespace, host keys checked as the inventory says."""
    env = dict(os.environ, ANSIBLE_NOCOLOR='1')
    env.pop('ANSIBLE_HOST_KEY_CHECKING', None)
    return subprocess.run(lab.ctl_argv([ANSIBLE, '-i', lab.inventory, pattern, '-o'] + list(args)), env=env,
                          check=False, timeout=120, capture_output=True, text=True)


def test_every_probe_fails_before_steering(lab):
    results = lab.probe(timeout=0.5)
    assert [(r['node'], r['family']) for r in results] == [
        ('node1', 'ipv4'), ('node1', 'ipv6'), ('node2', 'ipv4'), ('node2', 'ipv6')]
    assert [r['address'] for r in results] == ['198.51.100.11', '2001:db8:100::b', '198.51.100.12',
                                               '2001:db8:100::c']
    assert not any(r['ok'] for r in results), results


def test_the_return_path_is_what_breaks_them(lab):
    """Control: with node1's route to the client by eth1 (what the steering does for the replies), its
    connects work; node2 is unchanged and still fails. So the failure above is the return path."""
    node1 = lab.ns('node1')
    routes = [['-4', '10.99.0.0/24', 'via', '203.0.113.1'], ['-6', 'fd00:99::/64', 'via', '2001:db8:1::1']]
    for family, *route in routes:
        subprocess.run(['ip', '-n', node1, family, 'route', 'add'] + route, check=True, timeout=10)
    try:
        results = lab.probe(timeout=1.0)
    finally:
        for family, *route in routes:
            subprocess.run(['ip', '-n', node1, family, 'route', 'del'] + route, check=True, timeout=10)
    assert [r['ok'] for r in results] == [True, True, False, False], results
    assert not any(r['ok'] for r in lab.probe(timeout=0.5))


def test_ansible_reaches_every_host_over_ssh(lab):
    result = ansible(lab, 'all', '-m', 'ansible.builtin.ping')
    assert result.returncode == 0, result.stdout + result.stderr
    for host in ('node1', 'node2', 'client'):
        assert '%s | SUCCESS' % host in result.stdout, result.stdout


def test_inventory_is_the_example_fleet(lab):
    with open(os.path.join(lab.inventory, 'hosts.yml')) as data:
        inventory = yaml.safe_load(data)
    nodes = inventory['all']['children']['nodes']
    assert list(nodes['hosts']) == lab.nodes == ['node1', 'node2']
    assert nodes['hosts']['node2']['ansible_host'] == '10.254.0.12'
    assert nodes['hosts']['node2']['ebpf_tc_lib_dir'] == os.path.join(lab.directory, 'nodes', 'node2', 'lib')
    assert nodes['vars'] == {'ebpf_tc_install_packages': False, 'ebpf_tc_default_interface': 'eth0'}
    assert inventory['all']['children']['probes']['hosts'] == {'client': {'ansible_host': '10.254.0.2'}}
    assert inventory['all']['vars']['ebpf_tc_rollout_probe'] == 'client'
    assert inventory['all']['vars']['ebpf_tc_rollout_tcp_port'] == 8080

    with open(os.path.join(EXAMPLES, 'group_vars', 'all.yml')) as example, \
            open(os.path.join(lab.inventory, 'group_vars', 'nodes.yml')) as written:
        assert yaml.safe_load(written) == yaml.safe_load(example)
    with open(os.path.join(EXAMPLES, 'host_vars', 'node1.yml')) as example, \
            open(os.path.join(lab.inventory, 'host_vars', 'node2.yml')) as written:
        expected = yaml.safe_load(example)
        expected['ebpf_tc_return_paths'][0]['addresses'] = ['198.51.100.12/32', '2001:db8:100::c/128']
        assert yaml.safe_load(written) == expected


def test_each_node_has_its_own_bpffs_and_run(lab):
    marker = 'fleetlab-test-%s' % uuid.uuid4().hex[:8]
    command = 'stat -f -c %%T /sys/fs/bpf && mkdir /sys/fs/bpf/%s && touch /run/%s' % (marker, marker)
    made = subprocess.run(lab.ssh_argv('node1', command), check=False, timeout=60, capture_output=True, text=True)
    assert made.returncode == 0 and made.stdout.strip() == 'bpf_fs', made
    seen = subprocess.run(lab.ssh_argv('node2', 'ls -a /sys/fs/bpf /run'), check=False, timeout=60,
                          capture_output=True, text=True)
    assert seen.returncode == 0, seen
    assert 'progs.debug' in seen.stdout and marker not in seen.stdout
    assert not os.path.exists('/sys/fs/bpf/' + marker) and not os.path.exists('/run/' + marker)


def test_a_second_up_is_refused_and_leaves_the_lab_alone(lab):
    with pytest.raises(LabError, match='run `down` first'):
        FleetLab(lab.directory).up(nodes=1, name='other')
    with pytest.raises(ValueError, match='1 to 200'):
        FleetLab(lab.directory + '-big').up(nodes=201)
    healthy, lines = lab.status()
    assert healthy, lines


def test_down_leaves_nothing(lab):
    prefix, processes = lab.state['prefix'], lab.state['processes']
    assert len(processes) == 5      # a TCP service and an sshd per node, the client's sshd
    assert lab.down() is True
    assert not [ns for ns in subprocess.run(['ip', 'netns', 'list'], check=True, capture_output=True,
                                            text=True).stdout.split() if ns.startswith(prefix + '-')]
    assert not [p for p in processes if alive(p)]
    assert not netns_exists(prefix + '-ctl')
    assert not os.path.exists(lab.state_file) and not os.path.exists(lab.inventory)
    assert lab.down() is False      # idempotent
    assert not lab.is_up()
    with pytest.raises(LabError, match='no lab'):
        lab.probe()

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as operators get it: `ansible-galaxy collection build`, install into a clean directory,
and a playbook that uses it by its FQCNs from there, with nothing of the source tree on Ansible's path.

The build is of the working tree (what a release build of a clean checkout would contain); the playbook
attaches the steering program with the role to a veth in a network namespace made here and checks the
policy on real traffic, then removes it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest
import yaml

# pylint: disable=wrong-import-position
import topology as topo  # noqa: E402
from nslab import Lab  # noqa: E402
from playbook import run_play  # noqa: E402


ROOT = topo.ROOT
BIN = os.path.dirname(sys.executable)
OBJECT = 'files/bpf/steering.bpf.o'

# What stays out of the Galaxy artifact (galaxy.yml build_ignore), by path prefix or name: the workshop
# (tests, lab, benchmarks, CI, development requirements). Everything else git knows of must be in it, so a
# new top-level file gets a decision here rather than silently shipping or missing.
NOT_SHIPPED_DIRS = ('.ci/', 'benchmarks/', 'extensions/', 'scripts/', 'tests/', 'tools/')
NOT_SHIPPED_FILES = ('.ansible-lint', '.gitignore', 'Makefile', 'pytest.ini', 'requirements-dev.txt',
                     'galaxy.yml')  # galaxy.yml ships as MANIFEST.json
GENERATED = ('FILES.json', 'MANIFEST.json')

PEER_V4 = '10.219.0.2'
NODE_V4 = '10.219.0.1'


def run(*argv, env=None, cwd=None):
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, '%s: exit %d\n%s' % (' '.join(argv), proc.returncode, proc.stdout[-4000:])
    return proc.stdout


def ansible_env(collections):
    """Ansible looks for collections in `collections` only (the variable replaces the default path list)."""
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false',
                ANSIBLE_NOCOLOR='1')


@pytest.fixture(scope='module')
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    run(os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', str(out), ROOT, cwd=ROOT)
    built = [name for name in os.listdir(str(out)) if name.endswith('.tar.gz')]
    assert built == ['ebpf-tc-%s.tar.gz' % galaxy()['version']], built
    return str(out / built[0])


@pytest.fixture(scope='module')
def installed(tarball, tmp_path_factory):
    """A clean collections directory holding only the installed artifact."""
    collections = str(tmp_path_factory.mktemp('clean') / 'collections')
    run(os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', collections, tarball,
        env=ansible_env(collections))
    return collections


def galaxy():
    with open(os.path.join(ROOT, 'galaxy.yml')) as f:
        return yaml.safe_load(f)


def source_files():
    """The files of the source tree as git sees them: tracked, and new ones not ignored."""
    out = run('git', '-C', ROOT, 'ls-files', '-co', '--exclude-standard', '-z')
    return set(name for name in out.split('\0') if name and os.path.isfile(os.path.join(ROOT, name)))


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_artifact_holds_the_collection_and_none_of_the_workshop(tarball):
    with tarfile.open(tarball) as tar:
        members = set(m.name for m in tar.getmembers() if m.isfile())
        shipped_object = tar.extractfile(OBJECT).read()
    expected = set(name for name in source_files()
                   if not name.startswith(NOT_SHIPPED_DIRS) and name not in NOT_SHIPPED_FILES)
    assert members - set(GENERATED) == expected, {
        'shipped but not expected': sorted(members - expected - set(GENERATED)),
        'expected but missing': sorted(expected - members)}
    # the precompiled object, its source and its build script ship together; the object is the tree's
    assert {OBJECT, 'files/bpf/steering.bpf.c', 'files/bpf/steering_parse.h', 'files/bpf/build.sh'} <= members
    assert hashlib.sha256(shipped_object).hexdigest() == sha256(os.path.join(ROOT, OBJECT))
    assert not [m for m in members if '__pycache__' in m or m.endswith('.pyc')]


def test_installed_collection_is_listed_documented_and_declares_its_dependencies(installed, tmp_path):
    env = ansible_env(installed)
    where = os.path.join(installed, 'ansible_collections', 'ebpf', 'tc')
    listed = json.loads(run(os.path.join(BIN, 'ansible-galaxy'), 'collection', 'list', 'ebpf.tc',
                            '--format', 'json', env=env))
    assert listed == {os.path.dirname(os.path.dirname(where)): {'ebpf.tc': {'version': galaxy()['version']}}}

    # the modules' and the role's documentation, from the install
    docs = json.loads(run(os.path.join(BIN, 'ansible-doc'), '--json', 'ebpf.tc.steering_rules', env=env))
    assert docs['ebpf.tc.steering_rules']['doc']['filename'].startswith(where + '/')
    role = json.loads(run(os.path.join(BIN, 'ansible-doc'), '-t', 'role', '--json', 'ebpf.tc.steering', env=env))
    assert 'ebpf_tc_return_paths' in role['ebpf.tc.steering']['entry_points']['main']['options']

    # what ansible-builder puts in an execution environment for it (meta/execution-environment.yml)
    pip, bindep = str(tmp_path / 'requirements.txt'), str(tmp_path / 'bindep.txt')
    run(os.path.join(BIN, 'ansible-builder'), 'introspect', '--sanitize', '--write-pip', pip,
        '--write-bindep', bindep, installed)
    with open(pip) as f:
        assert re.search(r'^pyroute2>=0\.7\b.*ebpf\.tc', f.read(), re.M)
    with open(bindep) as f:
        system = f.read()
    for package in ('libbpf1 [platform:dpkg', 'libbpf [platform:rpm]', 'iproute2 [platform:dpkg]'):
        assert package in system, system


def test_playbook_runs_from_the_installed_collection(installed, tmp_path):
    where = os.path.join(installed, 'ansible_collections', 'ebpf', 'tc')
    # the shipped playbook resolves by its FQCN from the install
    run(os.path.join(BIN, 'ansible-playbook'), '--syntax-check', 'ebpf.tc.rollout',
        '-e', 'ebpf_tc_rollout_hosts=all', env=ansible_env(installed))

    with Lab() as lab:
        node, peer = lab.ns('node'), lab.ns('peer')
        pin_root = '/sys/fs/bpf/ebpf_tc/netns/%s' % node
        try:
            lab.veth(node, 'eth0', peer, 'eth0')
            lab.addr(node, 'eth0', NODE_V4 + '/24')
            lab.addr(peer, 'eth0', PEER_V4 + '/24')
            assert lab.pings(node, PEER_V4) == 1
            role_vars = {
                'ebpf_tc_netns': node, 'ebpf_tc_default_interface': 'eth0', 'ebpf_tc_install_packages': False,
                'ebpf_tc_lib_dir': str(tmp_path / 'lib'), 'ebpf_tc_config_dir': str(tmp_path / 'etc'),
                'ebpf_tc_unit_dir': str(tmp_path / 'systemd'), 'ebpf_tc_unit_name': 'ebpf-tc-%s' % lab.prefix,
                'ebpf_tc_policy': {'drop_protocols': ['icmp']},
            }
            play = [
                {'name': 'Apply the policy with the role', 'ansible.builtin.include_role': {'name': 'ebpf.tc.steering'},
                 'vars': role_vars},
                {'name': 'Read it back', 'ebpf.tc.tc_info': {'netns': node, 'interface': 'eth0'},
                 'register': 'info'},
            ]
            res = run_play(play, collections_path=installed, verbosity=3)
            assert res.rc == 0 and not res.failed, res
            modules = set(re.findall(r'Using module file (\S+)', res.output))
            # every module ran from the install or from ansible-core itself, ours included
            assert {'tc_info.py', 'steering_state.py'} <= set(map(os.path.basename, modules))
            assert all(path.startswith(where + '/plugins/modules/') or '/site-packages/ansible/modules/' in path
                       for path in modules), modules
            info = res.tasks[-1]['result']
            assert info['interfaces']['eth0']['egress']['steering']['applied'] is True
            assert re.search(r'^eth0\s+egress\s+tcx:ebpf_tc:steering\s+\S*icmp', info['table'], re.M), info['table']
            assert lab.pings(node, PEER_V4) == 0  # the policy holds on real traffic

            res = run_play([{'name': 'Remove', 'ansible.builtin.include_role': {'name': 'ebpf.tc.steering'},
                             'vars': dict(role_vars, ebpf_tc_state='absent')}], collections_path=installed)
            assert res.rc == 0 and not res.failed, res
            assert lab.pings(node, PEER_V4) == 1
            assert not os.path.exists(pin_root)
        finally:
            topo.remove_pins(pin_root)

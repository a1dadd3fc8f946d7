# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Persistence: the restore CLI and the systemd unit's command bring programs and rules back.

The host layout is the role's (ebpf_tc_lib_dir with the object and the restore code - the CLI and a copy of
module_utils under ansible_collections/ebpf/tc/plugins/module_utils/, installed from the archive
ebpf.tc.steering_state sends; ebpf_tc_config_dir with state.json), built in a tmp dir. The hook is node eth0
egress in a namespace (``netns`` set in the state): the restore enters it itself. A reboot is stood in for by
wiping the tc state (the clsact qdisc, with its filters) and the pins, then running the ExecStart line of the
unit ebpf.tc.steering_state writes. Everything runs with the distro's /usr/bin/python3, without Ansible, as the
unit does.

Counters restart from 0 after a wipe: they live in the pinned maps, which a reboot (or the wipe) loses.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# pylint: disable=wrong-import-position
from nslab import Lab  # noqa: E402

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _program, _restore_code, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._confirm import PENDING_DIR  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._rules import validate  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps  # noqa: E402


# what the unit runs; `make hosts` runs the restore under its Python 3.9 with the oldest pyroute2
SYSTEM_PYTHON = os.environ.get('EBPF_TC_TARGET_PYTHON') or _restore_code.SYSTEM_PYTHON
OBJECT = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')

NODE_V4, PEER_V4 = '10.230.0.1', '10.230.0.2'
BLOCKED_PORT, OPEN_PORT = 8080, 9090
RULES = [
    {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'},
    {'name': 'no-web', 'match': {'proto': 'tcp', 'dport': [BLOCKED_PORT]}, 'action': 'drop'},
]


class Host:
    """node (the hook: eth0 egress; eth1, for rp_filter) -- peer, and the role's files."""

    def __init__(self, lab, tmp):
        self.lab = lab
        self.node = lab.ns('node')
        self.peer = lab.ns('peer')
        for ns in (self.node, self.peer):  # IPv4 only: no IPv6 link-local chatter in the counters
            lab.exec(ns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1')
        lab.veth(self.node, 'eth0', self.peer, 'eth0')
        lab.addr(self.node, 'eth0', NODE_V4 + '/24')
        lab.addr(self.peer, 'eth0', PEER_V4 + '/24')
        lab.veth(self.node, 'eth1', self.peer, 'eth1')
        self.set_rp_filter(1)
        for port in (BLOCKED_PORT, OPEN_PORT):
            lab.tcp_listener(self.peer, port)
        self.pin_dir = _program.default_pin_dir('eth0', 'egress', self.node)

        # the role's layout on the host
        self.lib_dir = os.path.join(tmp, 'lib')
        self.config_dir = os.path.join(tmp, 'etc')
        os.makedirs(self.config_dir)
        code = _restore_code.sources(ROOT)
        archive = os.path.join(tmp, 'restore_code.tar.gz')
        _restore_code.build_archive(code, archive)
        _restore_code.install(archive, self.lib_dir, _restore_code.stamp(code))
        shutil.copy(OBJECT, self.lib_dir)
        self.state_path = os.path.join(self.config_dir, 'state.json')
        self.state = {
            'version': 1, 'netns': self.node, 'object': os.path.join(self.lib_dir, 'steering.bpf.o'),
            'program': 'steering', 'priority': 10, 'handle': 1,
            'hooks': [{'interface': 'eth0', 'direction': 'egress', 'pin_dir': self.pin_dir,
                       'default_action': 'pass', 'rules': RULES}],
            'rp_filter_loose': ['eth1'],
        }
        self.write_state(self.state)
        self.unit_path = os.path.join(tmp, 'ebpf-tc-restore-test.service')
        with open(self.unit_path, 'w') as handle:
            handle.write(_restore_code.unit_text(self.lib_dir, self.state_path, self.node))

    def write_state(self, state, path=None):
        with open(path or self.state_path, 'w') as handle:
            json.dump(state, handle, indent=2)

    def cli(self, state_path=None):
        return run([SYSTEM_PYTHON, os.path.join(self.lib_dir, 'ebpf_tc_restore.py'), state_path or self.state_path])

    def exec_start(self):
        """The unit's ExecStart command line, as systemd would run it."""
        with open(self.unit_path) as handle:
            lines = [line.strip() for line in handle if line.startswith('ExecStart=')]
        assert len(lines) == 1, lines
        return shlex.split(lines[0][len('ExecStart='):])

    def set_rp_filter(self, value):
        self.lab.exec(self.node, 'sysctl', '-qw', 'net.ipv4.conf.eth1.rp_filter=%d' % value)

    def rp_filter(self):
        return int(self.lab.exec(self.node, 'sysctl', '-n', 'net.ipv4.conf.eth1.rp_filter').stdout)

    def filters(self):
        with _tc.open_netlink(self.node) as ipr:
            index = _tc.ifindex(ipr, 'eth0')
            return [dict((k, f[k]) for k in ('priority', 'handle', 'name', 'prog_id', 'tag'))
                    for f in _tc.list_filters(ipr, index, 'egress', kinds=None)]

    def tcx(self):
        """The TCX chain of eth0 egress: [(prog_id, link_id)] in run order."""
        with _tc.open_netlink(self.node) as ipr:
            index = _tc.ifindex(ipr, 'eth0')
        return [(t['id'], t['link_id']) for t in _attached.tcx_chain(index, 'egress', self.node)]

    def attached(self):
        """[(backend, prog_id)] of what runs on eth0 egress: TCX links, then clsact filters."""
        return [('tcx', prog_id) for prog_id, dummy in self.tcx()] + [('clsact', f['prog_id']) for f in self.filters()]

    def applied(self):
        """(generation, applied RuleSet or None, counters) read back from the pinned maps."""
        if not os.path.isdir(self.pin_dir):
            return None
        with _tc.open_netlink(self.node) as ipr, SteeringMaps(self.pin_dir) as maps:
            def ifname(index):
                return ipr.get_links(index)[0].get_attr('IFLA_IFNAME')
            header = maps.header()
            return (0 if header is None else header.generation), maps.applied(ifname), maps.rule_counters()

    def snapshot(self):
        """What a refused restore must leave exactly as it was."""
        applied = self.applied()
        return {'filters': self.filters(), 'tcx': self.tcx(), 'pins': _program.pins_of(self.pin_dir),
                'rp_filter': self.rp_filter(),
                'applied': applied[:2] if applied else None}

    def wipe(self):
        """A reboot's loss: the clsact qdisc (with its filters), the pins (with them a TCX link), rp_filter."""
        self.lab.exec(self.node, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'clsact', check=False)
        _program.remove_pins(self.pin_dir)
        self.set_rp_filter(1)
        assert self.attached() == [] and not os.path.exists(self.pin_dir)

    def traffic(self):
        """(pings answered, blocked port connects, open port connects): from peer, the node's echo replies
        leave through the hook; from node, the SYNs do."""
        return (self.lab.pings(self.peer, NODE_V4, count=2, timeout=1),
                self.lab.tcp_connects(self.node, PEER_V4, BLOCKED_PORT, timeout=1.0),
                self.lab.tcp_connects(self.node, PEER_V4, OPEN_PORT, timeout=1.0))

    def close(self):
        try:
            self.lab.close()
        finally:
            _program.remove_pins(self.pin_dir)


def run(argv):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60, check=False)


def ok(res):
    assert res.returncode == 0 and not res.stderr, (res.returncode, res.stderr)
    return json.loads(res.stdout)


@pytest.fixture(scope='module')
def host(tmp_path_factory):
    pending_existed = os.path.isdir(PENDING_DIR), os.path.isdir(os.path.dirname(PENDING_DIR))
    lab = Lab()
    h = None
    try:
        h = Host(lab, str(tmp_path_factory.mktemp('restore')))
        yield h
    finally:
        if h is not None:
            h.close()
        else:
            lab.close()
        # the steering_rules code's lock directory: removed when this test made it and it is empty
        for existed, directory in zip(pending_existed, (PENDING_DIR, os.path.dirname(PENDING_DIR))):
            if not existed:
                try:
                    os.rmdir(directory)
                except OSError:
                    pass


@pytest.mark.parametrize('backend', ['clsact', 'tcx'])
def test_restore_cycle(host, backend):
    host.state['backend'] = backend
    host.write_state(host.state)
    if host.attached():
        host.wipe()     # the host is the module's: start from nothing
    wanted = validate(RULES, 'pass')
    assert host.traffic() == (2, True, True)  # nothing attached yet

    # first run: attaches, applies, loosens rp_filter
    first = ok(host.cli())
    assert first['changed'] is True and first['netns'] == host.node
    [hook] = first['hooks']
    assert (hook['interface'], hook['direction'], hook['attached'], hook['backend'], hook['clsact_added'],
            hook['rules_changed'], hook['generation']) == ('eth0', 'egress', True, backend, backend == 'clsact',
                                                           True, 1)
    assert first['rp_filter'] == {'eth1': {'before': 1, 'after': 2, 'changed': True}}
    assert host.rp_filter() == 2
    assert host.attached() == [(backend, hook['prog_id'])]
    if backend == 'clsact':
        [flt] = host.filters()
        assert (flt['priority'], flt['handle'], flt['name'], flt['tag'], flt['prog_id']) == (
            10, 1, 'ebpf_tc:steering', hook['tag'], hook['prog_id'])
    generation, applied, counters = host.applied()
    assert applied == wanted
    assert host.traffic() == (0, False, True)
    counters = host.applied()[2]
    assert counters['no-ping']['packets'] >= 2 and counters['no-web']['packets'] >= 1

    # second run: nothing changes (not the filter, not the rules, not their counters)
    before = host.snapshot()
    again = ok(host.cli())
    assert again['changed'] is False
    assert [(h['attached'], h['rules_changed'], h['generation'], h['prog_id']) for h in again['hooks']] == [
        (False, False, 1, hook['prog_id'])]
    assert again['rp_filter'] == {'eth1': {'before': 2, 'after': 2, 'changed': False}}
    assert host.snapshot() == before
    assert host.applied()[2] == counters

    # a reboot's loss, then the unit's own command line
    host.wipe()
    assert host.traffic() == (2, True, True)
    argv = host.exec_start()
    assert argv == [_restore_code.SYSTEM_PYTHON, os.path.join(host.lib_dir, 'ebpf_tc_restore.py'), host.state_path]
    restored = ok(run(argv))
    [hook2] = restored['hooks']
    assert restored['changed'] is True
    assert (hook2['attached'], hook2['clsact_added'], hook2['rules_changed'], hook2['generation']) == (
        True, backend == 'clsact', True, 1)
    assert hook2['tag'] == hook['tag']                  # the same program
    assert restored['rp_filter']['eth1'] == {'before': 1, 'after': 2, 'changed': True}
    assert host.attached() == [(backend, hook2['prog_id'])]
    generation, applied, counters = host.applied()
    assert applied == wanted                            # the same rules, read back from the new maps
    assert all(c['packets'] == 0 for c in counters.values()), counters  # fresh maps: counters restart from 0
    assert host.traffic() == (0, False, True)
    assert ok(run(argv))['changed'] is False


def bad(state):
    return copy.deepcopy(state)


BAD_STATES = [
    ('version', lambda s: s.update(version=2)),
    ('netns', lambda s: s.update(netns='ebpftc-no-such-namespace')),
    ('priority', lambda s: s.update(priority=0)),
    ('backend', lambda s: s.update(backend='bpfilter')),
    ('placement', lambda s: s.update(placement='middle')),
    ('unknown_key', lambda s: s.update(unknown_key=1)),
    ('hooks[0].direction', lambda s: s['hooks'][0].update(direction='sideways')),
    ('hooks[0].interface', lambda s: s['hooks'][0].update(interface='nosuch0')),
    ('hooks[0].pin_dir', lambda s: s['hooks'][0].update(pin_dir='/tmp/pins')),
    ('hooks[1]', lambda s: s['hooks'].append(dict(s['hooks'][0]))),
    ('hooks[1].interface', lambda s: s['hooks'].append({'interface': 'nosuch3', 'rules': []})),
    ('hooks[0] (eth0 egress): rules[0] (name no-ping): match.src',
     lambda s: s['hooks'][0]['rules'][0]['match'].update(src='10.0.0.1/8')),
    ('hooks[0] (eth0 egress): rules[3] (name to-nowhere): redirect.interface', lambda s: s['hooks'][0]['rules'].append(
        {'name': 'to-nowhere', 'match': {'dst': '10.9.0.0/16'}, 'action': 'redirect',
         'redirect': {'interface': 'nosuch1'}})),
    ('rp_filter_loose[0]', lambda s: s.update(rp_filter_loose=['nosuch2'])),
    ('object', lambda s: s.update(object='/nonexistent/steering.bpf.o')),
    ('program', lambda s: s.update(program='no_such_program')),
]


@pytest.mark.parametrize('field,breaks', BAD_STATES, ids=[b[0] + str(i) for i, b in enumerate(BAD_STATES)])
def test_bad_state_changes_nothing(host, field, breaks):
    if not host.attached():
        ok(host.cli())                   # the good state is applied (a refused restore leaves it so)
    host.set_rp_filter(1)                # and one thing differs from it, which a refused restore leaves
    # a first hook that would change the rules: refused all the same, since the state fails as a whole
    state = bad(host.state)
    state['hooks'][0]['rules'] = state['hooks'][0]['rules'][:1] + [
        {'name': 'extra', 'match': {'proto': 'udp'}, 'action': 'drop'}] + state['hooks'][0]['rules'][1:]
    breaks(state)
    path = os.path.join(host.config_dir, 'bad.json')
    host.write_state(state, path)
    before = host.snapshot()
    res = host.cli(path)
    assert res.returncode == 1 and res.stdout == ''
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('ebpf_tc_restore: error: %s: ' % path), res.stderr
    assert lines[0].startswith('ebpf_tc_restore: error: %s: %s' % (path, field)), lines[0]
    assert host.snapshot() == before


def test_unreadable_state_file(host):
    path = os.path.join(host.config_dir, 'broken.json')
    with open(path, 'w') as handle:
        handle.write('{"version": 1,')
    res = host.cli(path)
    assert res.returncode == 1 and 'not valid JSON' in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = host.cli(os.path.join(host.config_dir, 'missing.json'))
    assert res.returncode == 1 and 'cannot read the state file' in res.stderr


def test_restore_imports_no_ansible(host):
    """The code the unit runs imports nothing from ansible (the host may not have it)."""
    code = ('import sys; sys.argv = ["x"]; sys.path.insert(0, %r); import ebpf_tc_restore; '
            'ebpf_tc_restore.use_own_module_utils(%r); '
            'from ansible_collections.ebpf.tc.plugins.module_utils import _restore; '
            'bad = sorted(m for m in sys.modules if m == "ansible" or m.startswith("ansible.")); '
            'assert not bad, bad; assert _restore.__file__.startswith(%r), _restore.__file__'
            % (host.lib_dir, host.lib_dir, host.lib_dir))
    res = run([sys.executable, '-c', code])   # the venv's python has ansible: it must still not be imported
    assert res.returncode == 0, res.stderr

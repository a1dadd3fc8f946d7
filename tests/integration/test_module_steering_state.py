# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.steering_state through ansible-playbook: a host's whole steering state in one call, in a
throwaway namespace (node: eth0 and eth1, each a veth to a peer namespace)."""

import hashlib
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nslab import Lab  # noqa: E402
from objects import CniStandin, cni_standin, rejected_steering  # noqa: E402
from playbook import run_play  # noqa: E402

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _program, _restore, _restore_code, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._confirm import Pending  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._rules import validate  # noqa: E402


OBJECT = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
NO_PING = {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'}
BLOCK_81 = {'name': 'block-81', 'match': {'proto': 'tcp', 'dport': 81}, 'action': 'drop'}
RETURN = {'name': 'vip-return', 'match': {'src': '192.0.2.10/32'}, 'action': 'redirect',
          'redirect': {'interface': 'eth1', 'via': '10.204.1.2'}}


class Node:
    def __init__(self, lab, tmp_path):
        self.lab = lab
        self.ns = lab.ns('node')
        for index, name in enumerate(('eth0', 'eth1')):
            peer = lab.ns('peer%d' % index)
            lab.veth(self.ns, name, peer, 'eth0')
            lab.addr(self.ns, name, '10.204.%d.1/24' % index)
        lab.exec(self.ns, 'sysctl', '-qw', 'net.ipv4.conf.eth1.rp_filter=1')
        self.record = str(tmp_path / 'created.json')
        self.state_file = str(tmp_path / 'state.json')
        self.pin_root = os.path.join(_program.PIN_ROOT, 'netns', self.ns)

    def task(self, check=None, diff=None, ignore_errors=None, **args):
        args.setdefault('netns', self.ns)
        args.setdefault('object', OBJECT)
        args.setdefault('record', self.record)
        args.setdefault('state_file', self.state_file)
        task = {'name': 'state', 'ebpf.tc.steering_state': args}
        for key, value in (('check_mode', check), ('diff', diff), ('ignore_errors', ignore_errors)):
            if value is not None:
                task[key] = value
        return task

    def hooks(self):
        """{(interface, direction): backend} of what our steering program runs on, read from the kernel."""
        out = {}
        with _tc.open_netlink(self.ns) as ipr:
            for name in ('eth0', 'eth1'):
                index = _tc.ifindex(ipr, name)
                for direction in ('ingress', 'egress'):
                    if any(f['name'] == _tc.owned_name('steering') for f in _tc.list_filters(ipr, index, direction)):
                        out[(name, direction)] = 'clsact'
                    if any(e['owned'] for e in _attached.tcx_chain(index, direction, self.ns)):
                        out[(name, direction)] = 'tcx'
        return out

    def has_clsact(self, name):
        with _tc.open_netlink(self.ns) as ipr:
            return _tc.has_clsact(ipr, _tc.ifindex(ipr, name))

    def rp_filter(self):
        return int(self.lab.exec(self.ns, 'sysctl', '-n', 'net.ipv4.conf.eth1.rp_filter').stdout)

    def pins(self):
        found = []
        for top, dummy, files in os.walk(self.pin_root):
            found.extend(os.path.relpath(os.path.join(top, f), self.pin_root) for f in files)
        return sorted(found)

    def close(self):
        for top, dummy, dummy2 in os.walk(self.pin_root):
            Pending(top).forget()
        _program.remove_pins(self.pin_root)


@pytest.fixture
def node(tmp_path):
    with Lab() as lab:
        n = Node(lab, tmp_path)
        try:
            yield n
        finally:
            n.close()


HOOKS = [{'interface': 'eth0', 'direction': 'egress', 'rules': [RETURN, BLOCK_81]},
         {'interface': 'eth1', 'direction': 'ingress', 'default_action': 'pass', 'rules': [NO_PING]}]


@pytest.mark.parametrize('backend', ['clsact', 'tcx'])
def test_converge_repeat_prune_and_remove_in_one_call_each(node, backend):
    """Check mode and diff first (nothing on the host), then the converge, an idempotent re-run, a hook
    taken out (pruned with its pins), and state absent: qdisc, rp_filter, record and state file go too."""
    both = dict(hooks=HOOKS, backend=backend, rp_filter_loose=['eth1'])
    res = run_play([node.task(check=True, diff=True, **both)])
    assert res.rc == 0, res
    assert res.changed == [True]
    assert [(d['before_header'], d['before']['rules'], d['after']['rules']['rules'] == validate(h['rules']).to_dicts())
            for d, h in zip(res[0]['diff'], HOOKS)] == [
        ('eth0 egress', {'default_action': 'pass', 'rules': []}, True),
        ('eth1 ingress', {'default_action': 'pass', 'rules': []}, True)]
    assert res[0]['rp_filter'] == {'eth1': {'before': 1, 'after': 2, 'changed': True}}
    assert node.hooks() == {} and node.pins() == [] and node.rp_filter() == 1
    assert not os.path.exists(node.record) and not os.path.exists(node.state_file)

    res = run_play([node.task(**both), node.task(**both), node.task(check=True, diff=True, **both)])
    assert res.rc == 0, res
    assert res.changed == [True, False, False]
    assert [(h['interface'], h['attached'], h['rules_changed'], h['backend']) for h in res[0]['hooks']] == [
        ('eth0', True, True, backend), ('eth1', True, True, backend)]
    assert res[1]['hooks'][0]['generation'] == res[0]['hooks'][0]['generation'] == 1
    assert set(res[1]['hooks'][1]['counters']) == {'no-ping', '(default)'}
    assert res[2]['diff'] == []
    assert node.hooks() == {('eth0', 'egress'): backend, ('eth1', 'ingress'): backend}
    assert node.rp_filter() == 2
    with open(node.record) as src:
        record = json.load(src)
    assert [(h['interface'], h['direction']) for h in record['hooks']] == [('eth0', 'egress'), ('eth1', 'ingress')]
    assert record['rp_filter_previous'] == {'eth1': 1}
    assert record['clsact_added'] == (['eth0', 'eth1'] if backend == 'clsact' else [])
    with open(node.state_file) as src:
        state = json.load(src)
    assert state['backend'] == backend and [h['rules'] for h in state['hooks']] == [h['rules'] for h in HOOKS]

    # eth1 ingress taken out of inventory: detached with its pins, the record forgets it
    res = run_play([node.task(hooks=HOOKS[:1], backend=backend, rp_filter_loose=['eth1'])])
    assert res.rc == 0, res
    assert res.changed == [True]
    assert res[0]['pruned'] == [{'interface': 'eth1', 'direction': 'ingress', 'changed': True, 'interface_gone': False,
                                 'pin_dir': os.path.join(node.pin_root, 'eth1', 'ingress')}]
    assert node.hooks() == {('eth0', 'egress'): backend}
    assert not [p for p in node.pins() if p.startswith('eth1/')]
    with open(node.record) as src:
        assert [(h['interface'], h['direction']) for h in json.load(src)['hooks']] == [('eth0', 'egress')]

    absent = dict(state='absent', hooks=[], object=None)
    res = run_play([node.task(check=True, **absent), node.task(**absent), node.task(**absent)])
    assert res.rc == 0, res
    assert res.changed == [True, True, False]
    assert res[0]['clsact_removed'] == res[1]['clsact_removed'] == (['eth0', 'eth1'] if backend == 'clsact' else [])
    assert res[1]['rp_filter'] == {'eth1': {'before': 2, 'after': 1, 'changed': True}}
    assert node.hooks() == {} and node.pins() == [] and not os.path.exists(node.pin_root)
    assert not node.has_clsact('eth0') and not node.has_clsact('eth1')
    assert node.rp_filter() == 1
    assert not os.path.exists(node.record) and not os.path.exists(node.state_file)


@pytest.mark.parametrize('hooks, field', [
    ([HOOKS[0], dict(HOOKS[1], direction='sideways')], 'hooks[1].direction'),
    ([HOOKS[0], dict(HOOKS[1], interface='nosuch0')], 'hooks[1].interface: interface nosuch0 does not exist'),
    ([HOOKS[0], dict(HOOKS[1], rules=[dict(NO_PING, match={'src': '10.0.0.300/8'})])],
     'hooks[1] (eth1 ingress): rules[0] (name no-ping): match.src'),
    ([HOOKS[0], dict(HOOKS[0], rules=[])], 'hooks[1]: a second hook for eth0 egress'),
])
def test_bad_input_names_the_field_and_changes_nothing(node, hooks, field):
    """A bad second hook fails the call, in check mode too, before the first hook is attached."""
    res = run_play([node.task(check=True, ignore_errors=True, hooks=hooks, rp_filter_loose=['eth1']),
                    node.task(ignore_errors=True, hooks=hooks, rp_filter_loose=['eth1'])])
    assert [t['status'] for t in res.tasks] == ['failed', 'failed'], res
    for index in (0, 1):
        assert field in res[index]['msg'], res[index]['msg']
    assert node.hooks() == {} and node.pins() == [] and node.rp_filter() == 1
    assert not os.path.exists(node.state_file)


def test_rule_sets_on_trial_are_confirmed_by_a_second_call(node):
    """confirm_timeout puts the changed sets on trial; confirm: true confirms those, and only those."""
    res = run_play([node.task(hooks=HOOKS, persist=False),
                    node.task(hooks=[HOOKS[0], dict(HOOKS[1], rules=[NO_PING, BLOCK_81])], confirm_timeout=120,
                              persist=False),
                    node.task(hooks=HOOKS, confirm=True, persist=False),
                    node.task(hooks=HOOKS, confirm=True, persist=False)])
    assert res.rc == 0, res
    assert res.changed == [True, True, True, False]
    assert [h['pending'] is not None for h in res[1]['hooks']] == [False, True]
    assert res[2]['confirmed'] == [{'interface': 'eth1', 'direction': 'ingress', 'pending': None}]
    assert res[3]['confirmed'] == []
    assert Pending(os.path.join(node.pin_root, 'eth1', 'ingress')).read() is None
    assert not os.path.exists(node.state_file)


def test_verify_reads_the_hooks_back_and_fails_on_a_shadowed_one(node, tmp_path):
    """verify: a CNI's TCX program (a stand-in that ends the hook) in front of our clsact filter fails the call
    naming the hook and the program, and leaves the state file alone; allow_shadowed accepts it; tcx placed
    first passes, with the table read back from the kernel."""
    hooks = HOOKS[:1]
    with CniStandin(cni_standin(tmp_path), node.ns, 'eth0') as cni:
        res = run_play([node.task(hooks=hooks, backend='clsact', verify=True, ignore_errors=True)])
        assert [t['status'] for t in res.tasks] == ['failed'], res
        msg = res[0]['msg']
        assert msg.startswith('eth0 egress: shadowed: ') and 'cni_standin (id %d)' % cni.prog_id in msg, msg
        assert 'ebpf_tc_allow_shadowed' in msg
        assert not os.path.exists(node.state_file)
        assert node.hooks() == {('eth0', 'egress'): 'clsact'}      # attached, and reported as shadowed
        res = run_play([node.task(hooks=hooks, backend='clsact', verify=True, allow_shadowed=True),
                        node.task(hooks=hooks, verify=True)])
        assert res.rc == 0 and res.changed == [True, True], res
        assert [line for line in res[1]['table'].splitlines() if line.startswith('eth0') and 'egress' in line], res[1]['table']
        assert node.hooks() == {('eth0', 'egress'): 'tcx'}
    with open(node.state_file) as src:
        assert json.load(src)['backend'] == 'auto'


def test_object_src_is_sent_only_when_the_hosts_copy_differs(node, tmp_path):
    """object_src: the kernel's refusal fails the call naming the controller's file, with nothing installed;
    check mode compares with the new object and installs nothing; the converge installs it with its checksum;
    a re-run finds the same SHA-256 and sends nothing; a changed object_src is installed again."""
    target = str(tmp_path / 'lib' / 'steering.bpf.o')
    hooks = HOOKS[:1]
    rejected = rejected_steering(tmp_path)
    res = run_play([node.task(hooks=hooks, object=target, object_src=rejected, ignore_errors=True)])
    assert [t['status'] for t in res.tasks] == ['failed'], res
    msg = res[0]['msg']
    assert msg.startswith('object: kernel %s refuses the steering object %s (object_src): ' % (os.uname()[2], rejected))
    assert 'invalid access to packet' in msg, msg
    assert not os.path.exists(os.path.dirname(target)) and node.hooks() == {}

    res = run_play([node.task(check=True, hooks=hooks, object=target, object_src=OBJECT),
                    node.task(hooks=hooks, object=target, object_src=OBJECT),
                    node.task(hooks=hooks, object=target, object_src=OBJECT)])
    assert res.rc == 0, res
    assert res.changed == [True, True, False]
    assert [res[i]['object_installed'] for i in range(3)] == [True, True, False]
    assert res[0]['hooks'][0]['attached'] and 'object_wanted' not in res[0]
    with open(OBJECT, 'rb') as src:
        digest = hashlib.sha256(src.read()).hexdigest()
    with open(target + '.sha256') as src:
        assert src.read() == '%s  steering.bpf.o\n' % digest
    with open(target, 'rb') as src:
        assert hashlib.sha256(src.read()).hexdigest() == digest
    assert sorted(os.listdir(os.path.dirname(target))) == ['steering.bpf.o', 'steering.bpf.o.sha256']
    with open(node.state_file) as src:
        assert json.load(src)['object'] == target

    # another build at object_src: installed again, the hook's program replaced (same source, other bytes)
    other = str(tmp_path / 'other.bpf.o')
    with open(OBJECT, 'rb') as src, open(other, 'wb') as dst:
        dst.write(src.read() + b'\0' * 8)
    res = run_play([node.task(hooks=hooks, object=target, object_src=other)])
    assert res.rc == 0 and res[0]['object_installed'], res
    with open(target + '.sha256') as src:
        assert not src.read().startswith(digest)


def test_restore_code_and_unit_are_written_only_when_they_differ(node, tmp_path):
    """restore_code_dir and restore_unit: check mode writes nothing; the converge installs the collection's
    restore code (one archive) and a unit that runs it on state_file; a re-run touches neither; a changed stamp
    reinstalls (an older version's file goes); persist false leaves the unit for the caller to disable and
    reports it; restore_code false and state absent remove the code. A unit without its code fails first."""
    lib = str(tmp_path / 'lib')
    unit = str(tmp_path / 'systemd' / 'ebpf-tc-restore.service')
    hooks = HOOKS[:1]
    persistence = dict(hooks=hooks, restore_code_dir=lib, restore_unit=unit)

    res = run_play([node.task(restore_unit=unit, hooks=hooks, ignore_errors=True)])
    assert res[0]['msg'].startswith('restore_code_dir: required'), res[0]
    assert node.hooks() == {} and not os.path.exists(node.state_file)

    res = run_play([node.task(check=True, **persistence), node.task(**persistence), node.task(**persistence)])
    assert res.rc == 0, res
    assert [(r['restore_code_changed'], r['restore_unit_changed']) for r in res] == [
        (True, True), (True, True), (False, False)]
    assert res.changed == [True, True, False] and isinstance(res[2]['systemd'], bool)
    code = _restore_code.sources(ROOT)
    assert _restore_code.installed_stamp(lib) == _restore_code.stamp(code)
    for name, source in code:
        with open(os.path.join(lib, name), 'rb') as got, open(source, 'rb') as want:
            assert got.read() == want.read(), name
    with open(unit) as src:
        assert src.read() == _restore_code.unit_text(lib, node.state_file, node.ns)
    installed = dict((name, os.stat(os.path.join(lib, name)).st_mtime_ns) for name, dummy in code)

    # another stamp on the host (an older version): the code is sent again, and the older version's file goes
    stale = os.path.join(lib, _restore_code.MODULE_UTILS, '_older.py')
    with open(stale, 'w') as out:
        out.write('older = True\n')
    with open(os.path.join(lib, _restore_code.STAMP), 'w') as out:
        out.write('0' * 64 + '\n')
    res = run_play([node.task(**persistence)])
    assert res.changed == [True] and res[0]['restore_code_changed'] and not res[0]['restore_unit_changed'], res
    assert not os.path.exists(stale) and _restore_code.installed_stamp(lib) == _restore_code.stamp(code)
    assert all(os.stat(os.path.join(lib, name)).st_mtime_ns >= installed[name] for name in installed)

    # persist false: the state file goes, the unit stays for the caller (systemctl disable needs its file)
    res = run_play([node.task(persist=False, **persistence)])
    assert res[0]['state_file_changed'] and res[0]['restore_unit_found'] and not res[0]['restore_code_changed'], res
    assert os.path.exists(unit) and not os.path.exists(node.state_file)
    res = run_play([node.task(persist=False, restore_code=False, **persistence)])
    assert res.changed == [True] and res[0]['restore_code_changed'], res
    assert os.listdir(lib) == []

    run_play([node.task(**persistence)])
    res = run_play([node.task(state='absent', restore_code_dir=lib, restore_unit=unit, hooks=hooks)])
    assert res[0]['restore_code_changed'] and res[0]['restore_unit_found'], res
    assert os.listdir(lib) == [] and node.hooks() == {}


def test_check_mode_without_bpffs_says_every_hook_would_be_attached(node, monkeypatch):
    """Check mode on a host where bpffs is not mounted yet (the converge would mount it): no pins to look at,
    so every hook would be attached and its whole set applied; nothing is mounted or changed."""
    monkeypatch.setattr(_program, 'bpffs_mounted', lambda path=None: False)
    state = {'version': 1, 'netns': node.ns, 'object': OBJECT, 'program': 'steering', 'backend': 'clsact',
             'hooks': HOOKS}
    summary = _restore.converge(state, check_mode=True)
    assert summary['changed'] and summary['bpffs_mounted']
    assert [(h['interface'], h['attached'], h['backend'], h['clsact_added'], h['rules_changed'], len(h['rules']))
            for h in summary['hooks']] == [('eth0', True, 'clsact', True, True, 2), ('eth1', True, 'clsact', True, True, 1)]
    assert node.hooks() == {} and node.pins() == []

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kernel is the truth: drift between a hook's pins and the program it runs, a pin_dir off bpffs, and a
confirmation with nothing pending - through the modules, in throwaway namespaces.

The drift scenario is the one of issue 13: the steering program attached with the default pin dir and a
rule set applied, then a second bpf_filter task for the same hook with another pin_dir.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
from nslab import Lab  # noqa: E402  pylint: disable=wrong-import-position

from hoststate import forget_pending_dirs, snapshot  # noqa: E402  pylint: disable=wrong-import-position
from playbook import run_play  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ebpf.tc.plugins.module_utils import _program, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._confirm import Pending  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._rules import validate  # noqa: E402


STEERING = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
RULES = [
    {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'},
    {'name': 'block-81', 'match': {'proto': 'tcp', 'dport': 81}, 'action': 'drop'},
    {'name': 'tag', 'match': {'dst': '192.0.2.0/24'}, 'action': 'mark', 'mark': 16},
]


class Node:
    """A namespace with eth0 (a veth to a peer); the steering hook on eth0 egress, pins under pin_root."""

    def __init__(self, lab):
        self.lab = lab
        self.ns, self.peer = lab.ns('node'), lab.ns('peer')
        lab.veth(self.ns, 'eth0', self.peer, 'eth0')
        self.pin_dir = _program.default_pin_dir('eth0', 'egress', netns=self.ns)
        self.pin_root = os.path.join(_program.PIN_ROOT, 'netns', self.ns)
        self.other_pin_dir = os.path.join(self.pin_root, 'typo', 'egress')
        self.backend = 'auto'   # what bpf_filter tasks ask for (auto: tcx on this kernel)

    def bpf_filter(self, ignore_errors=False, check=False, **args):
        task = {'ebpf.tc.bpf_filter': dict(dict(interface='eth0', netns=self.ns, object=STEERING,
                                                program='steering'), **args)}
        if task['ebpf.tc.bpf_filter'].get('state') != 'absent':
            task['ebpf.tc.bpf_filter'].setdefault('backend', self.backend)
        return self._options(task, ignore_errors, check)

    def steering_rules(self, ignore_errors=False, check=False, **args):
        task = {'ebpf.tc.steering_rules': dict(dict(interface='eth0', netns=self.ns), **args)}
        return self._options(task, ignore_errors, check)

    def tc_info(self):
        return {'ebpf.tc.tc_info': {'interface': 'eth0', 'netns': self.ns}}

    @staticmethod
    def _options(task, ignore_errors, check):
        if ignore_errors:
            task['ignore_errors'] = True
        if check:
            task['check_mode'] = True
        return task

    def state(self, extra_roots=()):
        return snapshot(self.lab.prefix, [self.ns], [self.pin_root] + list(extra_roots),
                        hooks=[(self.ns, 'eth0', 'egress', self.pin_dir)])

    def close(self):
        pending = Pending(self.pin_dir)
        record = pending.read()
        if record is not None:
            Pending.stop_timer(record)
        pending.forget()
        forget_pending_dirs()
        _program.remove_pins(self.pin_root)


@pytest.fixture
def node():
    with Lab() as lab:
        n = None
        try:
            n = Node(lab)
            yield n
        finally:
            if n is not None:
                n.close()


def canonical(rules):
    return validate(rules).to_dicts()


@pytest.mark.parametrize('backend', ['clsact', 'tcx'])
def test_drift_is_refused_reported_and_repaired(node, backend):
    node.backend = backend
    res = run_play([node.bpf_filter(), node.steering_rules(rules=RULES)])
    assert res.rc == 0 and res.changed == [True, True], res
    first_prog = res[0]['prog_id']
    before = node.state()

    # a second bpf_filter for the hook with another pin_dir: refused, in check mode too, nothing changes
    res = run_play([node.bpf_filter(pin_dir=node.other_pin_dir, check=True, ignore_errors=True),
                    node.bpf_filter(pin_dir=node.other_pin_dir, ignore_errors=True)])
    assert [t['status'] for t in res.tasks] == ['failed', 'failed'], res
    for i in range(2):
        msg = res[i]['msg']
        assert 'pinned at %s' % node.pin_dir in msg and 'not one pinned in pin_dir %s' % node.other_pin_dir in msg
        assert 'force: true' in msg, msg
    assert node.state() == before
    assert not os.path.exists(node.other_pin_dir)

    # force replaces it: now the hook runs a program whose (empty) maps are not the pinned ones
    res = run_play([
        node.bpf_filter(pin_dir=node.other_pin_dir, force=True),
        node.tc_info(),
        node.steering_rules(rules=RULES, ignore_errors=True),
        node.steering_rules(rules=RULES, check=True, ignore_errors=True),
        node.bpf_filter(ignore_errors=True),     # the default pin_dir again, without force: refused as well
    ])
    assert [t['status'] for t in res.tasks] == ['ok', 'ok', 'failed', 'failed', 'failed'], res
    assert res.changed[0] is True
    forced = res[0]['prog_id']
    assert forced != first_prog
    hook = res[1]['interfaces']['eth0']['egress']
    assert hook['attached']['id'] == forced and hook['attached']['prog_name'] == 'steering'
    # (but for the namespace's learned_paths, which every hook shares)
    assert hook['attached']['map_ids'] and set(hook['attached']['map_ids']).isdisjoint(
        m['id'] for m in hook['pins']['maps'] if m['name'] != 'learned_paths')
    assert hook['drift']['reason'] == 'program', hook['drift']
    assert hook['drift']['pinned_at'] == node.other_pin_dir
    drift = hook['drift']['message']
    assert 'not the program pinned at %s/steering (id %d)' % (node.pin_dir, first_prog) in drift, drift
    assert 'pin_dir: %s and force: true' % node.pin_dir in drift, drift
    assert 'ebpf_tc:steering(drift)' in res[1]['table'], res[1]['table']
    # the rule set reported is the one the hook runs (none), not the three rules of the unused pins
    assert hook['steering']['source'] == 'attached' and hook['steering']['rules'] == [], hook['steering']
    assert hook['attached']['backend'] == backend
    if backend == 'clsact':
        [filter_] = [f for f in hook['filters'] if f['owned']]
        assert filter_['prog_id'] == forced and filter_['map_ids'] == hook['attached']['map_ids']
    else:   # force moved the hook to the other pin_dir's link: one program of ours runs, not two
        assert [(t['id'], t['link_pin']) for t in hook['tcx']] == [
            (forced, os.path.join(node.other_pin_dir, 'steering_tcx'))]
        assert 'tcx:ebpf_tc:steering(drift)' in res[1]['table'], res[1]['table']
    for i in (2, 3):
        msg = res[i]['msg']
        assert msg.startswith('not reading or changing the rule set at %s: drift: ' % node.pin_dir), msg
        assert 'force: true' in msg and node.other_pin_dir in msg, msg
    assert 'not one pinned in pin_dir %s' % node.pin_dir in res[4]['msg'], res[4]['msg']

    # the repair the message gives: the default pin_dir with force; its maps (and rules) are used again
    res = run_play([node.bpf_filter(force=True), node.tc_info(), node.steering_rules(rules=RULES)])
    assert [t['status'] for t in res.tasks] == ['ok'] * 3 and res.changed[0] is True, res
    hook = res[1]['interfaces']['eth0']['egress']
    assert hook['drift'] is None and hook['attached']['id'] == res[0]['prog_id']
    assert set(m['id'] for m in hook['pins']['maps']) <= set(hook['attached']['map_ids'])
    assert hook['steering']['rules'] == canonical(RULES)
    assert res[2]['changed'] is False


def test_pin_dir_off_bpffs_leaves_the_host_unchanged(node, tmp_path):
    pin_dir = str(tmp_path / 'pins' / 'eth0' / 'egress')
    before = node.state([str(tmp_path)])
    with _tc.open_netlink(node.ns) as ipr:
        assert not _tc.has_clsact(ipr, _tc.ifindex(ipr, 'eth0'))
    res = run_play([node.bpf_filter(pin_dir=pin_dir, check=True, ignore_errors=True),
                    node.bpf_filter(pin_dir=pin_dir, ignore_errors=True),
                    node.steering_rules(pin_dir=pin_dir, rules=RULES, ignore_errors=True)])
    assert [t['status'] for t in res.tasks] == ['failed'] * 3, res
    for i in range(3):
        assert res[i]['msg'].startswith('pin_dir: %s is not on a BPF filesystem (bpffs)' % pin_dir), res[i]['msg']
    assert node.state([str(tmp_path)]) == before
    assert os.listdir(str(tmp_path)) == []
    with _tc.open_netlink(node.ns) as ipr:
        assert not _tc.has_clsact(ipr, _tc.ifindex(ipr, 'eth0'))


def test_confirm_with_nothing_pending_fails_and_says_when_the_trial_reverted(node):
    res = run_play([node.bpf_filter(), node.steering_rules(rules=RULES),
                    node.steering_rules(confirm=True, check=True, ignore_errors=True),
                    node.steering_rules(confirm=True, ignore_errors=True)])
    assert [t['status'] for t in res.tasks] == ['ok', 'ok', 'failed', 'failed'], res
    for i in (2, 3):
        assert res[i]['msg'].startswith('confirm: nothing is pending on eth0 egress: no trial set'), res[i]['msg']

    # a trial that nobody confirms reverts; confirming it late fails and says when it was reverted
    res = run_play([node.steering_rules(rules=RULES[:1], confirm_timeout=1)])
    assert res.rc == 0 and res[0]['pending'] is not None, res
    deadline = res[0]['pending']['deadline']
    end = time.time() + 15
    while Pending(node.pin_dir).read() is not None and time.time() < end:
        time.sleep(0.2)
    assert Pending(node.pin_dir).read() is None
    res = run_play([node.steering_rules(confirm=True, ignore_errors=True), node.tc_info()])
    msg = res[0]['msg']
    assert res.tasks[0]['status'] == 'failed' and 'was not confirmed in time and was reverted at ' in msg, msg
    reverted_at = Pending(node.pin_dir).read_outcome()['at']
    assert deadline <= reverted_at < deadline + 10
    assert time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(reverted_at)) in msg
    assert 'Apply the rules again' in msg
    assert res[1]['interfaces']['eth0']['egress']['steering']['rules'] == canonical(RULES)

    # a confirmed trial confirmed again is no error (the playbook that confirms can run twice)
    res = run_play([node.steering_rules(rules=RULES[:1], confirm_timeout=30),
                    node.steering_rules(confirm=True), node.steering_rules(confirm=True)])
    assert res.rc == 0 and res.changed == [True, True, False], res
    assert Pending(node.pin_dir).read_outcome()['outcome'] == 'confirmed'

    # unpinning the maps drops their commit-confirm state too: nothing is left on /run
    res = run_play([node.steering_rules(rules=RULES, confirm_timeout=30),
                    node.bpf_filter(state='absent', unpin=True)])
    assert res.rc == 0 and res[0]['pending'] is not None, res
    pending = Pending(node.pin_dir)
    assert pending.read() is None and pending.read_outcome() is None
    assert not os.path.exists(pending.path) and not os.path.exists(pending.outcome_path)
    assert not os.path.exists(node.pin_dir)


def test_lost_pins_are_recovered_by_attaching_again(node):
    """Pins removed under a running clsact filter (bpffs remounted, rm -r): nothing can manage its maps, so
    steering_rules says so, and bpf_filter replaces it without force (re-running the role recovers)."""
    node.backend = 'clsact'
    res = run_play([node.bpf_filter(), node.steering_rules(rules=RULES)])
    assert res.rc == 0, res
    running = res[0]['prog_id']
    _program.remove_pins(node.pin_dir)
    res = run_play([node.steering_rules(rules=RULES, ignore_errors=True), node.tc_info(),
                    node.bpf_filter(), node.steering_rules(rules=RULES), node.tc_info()])
    assert [t['status'] for t in res.tasks] == ['failed', 'ok', 'ok', 'ok', 'ok'], res
    msg = res[0]['msg']
    assert msg.startswith('no steering program is pinned at %s (the directory does not exist), but egress of eth0 in '
                          'network namespace %s runs one (id %d), pinned nowhere' % (node.pin_dir, node.ns, running)), msg
    assert msg.count(node.pin_dir) == 2, msg
    hook = res[1]['interfaces']['eth0']['egress']
    assert hook['drift'] is None and hook['attached']['id'] == running
    assert hook['steering']['source'] == 'attached' and hook['steering']['rules'] == canonical(RULES)
    assert res[2]['changed'] is True and res[2]['prog_id'] != running
    assert res[3]['changed'] is True    # fresh maps: the rules are applied again
    hook = res[4]['interfaces']['eth0']['egress']
    assert hook['drift'] is None and hook['steering']['rules'] == canonical(RULES)


def test_lost_pins_detach_a_tcx_link(node):
    """A TCX link lives by its pin: with the pins gone the hook runs nothing (tc_info shows it, no drift),
    and attaching again with the rules restores it."""
    res = run_play([node.bpf_filter(backend='tcx'), node.steering_rules(rules=RULES)])
    assert res.rc == 0 and res[0]['backend'] == 'tcx', res
    _program.remove_pins(node.pin_dir)
    res = run_play([node.steering_rules(rules=RULES, ignore_errors=True), node.tc_info(),
                    node.bpf_filter(backend='tcx'), node.steering_rules(rules=RULES), node.tc_info()])
    assert [t['status'] for t in res.tasks] == ['failed', 'ok', 'ok', 'ok', 'ok'], res
    assert res[0]['msg'].startswith('no steering program is pinned at %s (the directory does not exist): '
                                    % node.pin_dir), res[0]['msg']
    hook = res[1]['interfaces']['eth0']['egress']
    assert hook['attached'] is None and hook['tcx'] == [] and hook['drift'] is None
    assert res[2]['changed'] is True and res[3]['changed'] is True
    hook = res[4]['interfaces']['eth0']['egress']
    assert hook['attached']['backend'] == 'tcx' and hook['steering']['rules'] == canonical(RULES)

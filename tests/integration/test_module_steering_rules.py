# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.steering_rules through ansible-playbook, on a steering program attached in a throwaway namespace.

The program is loaded, pinned and attached with module_utils directly (what bpf_filter does), at the
default pin directory of client/eth0/egress, so the module finds it from interface, direction and netns.
"""

import os
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nslab import Lab  # noqa: E402
from playbook import run_play  # noqa: E402

import bpftest  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils import _program, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._confirm import (  # noqa: E402
    PENDING_DIR, Pending, _proc_start_time)
from ansible_collections.ebpf.tc.plugins.module_utils._rules import validate  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps  # noqa: E402


OBJECT = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
SERVER_V4, SERVER_V6 = '10.203.0.2', 'fd00:203::2'

# ICMPv4 only: dropping ICMPv6 would starve neighbour discovery on the link
NO_PING = {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'}
BLOCK_81 = {'name': 'block-81', 'match': {'proto': 'tcp', 'dport': 81}, 'action': 'drop'}
TAG = {'name': 'tag', 'match': {'dst': '192.0.2.0/24'}, 'action': 'mark', 'mark': 0x10}


class Hook:
    """client --veth-- server; the steering program on client eth0 egress; a second veth pair eth1."""

    def __init__(self, lab):
        self.lab = lab
        self.client, self.server = lab.ns('client'), lab.ns('server')
        lab.veth(self.client, 'eth0', self.server, 'eth0')
        for ns, host in ((self.client, 1), (self.server, 2)):
            lab.addr(ns, 'eth0', '10.203.0.%d/24' % host)
            lab.addr(ns, 'eth0', 'fd00:203::%d/64' % host)
        lab.veth(self.client, 'eth1', self.server, 'eth1')
        lab.tcp_listener(self.server, 80)
        self.pin_dir = _program.default_pin_dir('eth0', 'egress', netns=self.client)
        bpftest.attach_pinned(OBJECT, 'steering', self.pin_dir, self.client)

    def task(self, name='steering', check=None, diff=None, ignore_errors=None, **args):
        args.setdefault('interface', 'eth0')
        args.setdefault('netns', self.client)
        task = {'name': name, 'ebpf.tc.steering_rules': args}
        if check is not None:
            task['check_mode'] = check
        if diff is not None:
            task['diff'] = diff
        if ignore_errors:
            task['ignore_errors'] = True
        return task

    def applied(self):
        """(generation, RuleSet or None) read from the maps."""
        with _tc.open_netlink(self.client) as ipr, SteeringMaps(self.pin_dir) as maps:
            def ifname(index):
                links = ipr.get_links(index)
                return links[0].get_attr('IFLA_IFNAME')
            header = maps.header()
            return (0 if header is None else header.generation), maps.applied(ifname)

    def close(self):
        pending = Pending(self.pin_dir)
        record = pending.read()
        if record is not None:
            Pending.stop_timer(record)
        pending.forget()
        _program.remove_pins(self.pin_dir)
        for directory in (PENDING_DIR, os.path.dirname(PENDING_DIR)):
            try:
                os.rmdir(directory)  # only when empty: what the module made, nothing of anyone else's
            except OSError:
                pass


@pytest.fixture
def hook():
    with Lab() as lab:
        h = None
        try:
            h = Hook(lab)
            yield h
        finally:
            if h is not None:
                h.close()
            else:
                _program.remove_pins(_program.default_pin_dir('eth0', 'egress', netns=lab.prefix + '-client'))


def canonical(rules, default_action='pass'):
    return validate(rules, default_action).to_dicts()


def test_check_apply_repeat_then_absent_the_same_way(hook):
    rules = [NO_PING, BLOCK_81, TAG]
    res = run_play([
        hook.task(check=True, diff=True, rules=rules),
        hook.task(diff=True, rules=rules),
        hook.task(rules=rules),
        hook.task(check=True, rules=rules),
        hook.task(check=True, diff=True, state='absent'),
        hook.task(diff=True, state='absent'),
        hook.task(state='absent'),
        hook.task(check=True, state='absent'),
        hook.task(state='absent'),  # never-applied-like empty set: still no change
    ])
    assert res.rc == 0, res
    assert res.changed == [True, True, False, False, True, True, False, False, False]
    want = canonical(rules)
    # check mode wrote nothing: the generation moves only with the real runs
    assert [res[i]['generation'] for i in range(9)] == [0, 1, 1, 1, 1, 2, 2, 2, 2]
    for i in range(4):
        assert res[i]['rules'] == want and res[i]['default_action'] == 'pass'
    assert res[0]['diff'] == res[1]['diff'] == {
        'before': {'default_action': 'pass', 'rules': []}, 'after': {'default_action': 'pass', 'rules': want}}
    assert res[4]['diff'] == res[5]['diff'] == {
        'before': {'default_action': 'pass', 'rules': want}, 'after': {'default_action': 'pass', 'rules': []}}
    assert 'diff' not in res[2]
    assert set(res[2]['counters']) == {'no-ping', 'block-81', 'tag', '(default)'}
    assert set(res[2]['counters']['no-ping']) == {'packets', 'bytes', 'drops'}
    assert res[6]['rules'] == [] and set(res[6]['counters']) == {'(default)'}
    assert all(res[i]['pending'] is None for i in range(9))
    generation, applied = hook.applied()
    assert generation == 2 and applied == validate([])

    # a fresh program (no set ever applied) is the empty pass set: absent and rules: [] change nothing
    _program.remove_pins(hook.pin_dir)
    fd, dummy = bpftest.load_and_pin(OBJECT, 'steering', hook.pin_dir)
    os.close(fd)
    res = run_play([hook.task(state='absent'), hook.task(rules=[]),
                    hook.task(rules=[], default_action='drop', check=True)])
    assert res.rc == 0, res
    assert res.changed == [False, False, True]
    assert hook.applied() == (0, None)


def test_redirect_interface_resolved_in_the_namespace_and_default_drop(hook):
    rules = [{'name': 'out-eth1', 'match': {'dst': '198.51.100.0/24'}, 'action': 'redirect',
              'redirect': {'interface': 'eth1', 'via': '10.203.0.9'}}, NO_PING]
    res = run_play([hook.task(rules=rules, default_action='drop'),
                    hook.task(rules=rules, default_action='drop'),
                    hook.task(rules=rules, default_action='pass', check=True, diff=True)])
    assert res.rc == 0, res
    assert res.changed == [True, False, True]
    assert res[0]['rules'][0]['redirect'] == {'interface': 'eth1', 'via': '10.203.0.9'}
    assert res[2]['diff']['before']['default_action'] == 'drop'
    assert res[2]['diff']['after']['default_action'] == 'pass'
    generation, applied = hook.applied()
    assert applied.default_action == 'drop' and applied.rules[0].redirect.interface == 'eth1'


def _invalid_cases():
    def rule(**kw):
        base = {'name': 'r1', 'match': {'proto': 'tcp'}, 'action': 'drop'}
        base.update(kw)
        return base
    many = [{'name': 'r%d' % i, 'match': {'dport': i % 60000 + 1, 'proto': 'tcp'}, 'action': 'drop'}
            for i in range(4097)]
    return [
        ('bad cidr', [rule(match={'src': '10.0.0.300/8'})], 'rules[0] (name r1): match.src'),
        ('via of the wrong family', [rule(match={'dst': '10.0.0.0/8'}, action='redirect',
                                          redirect={'interface': 'eth1', 'via': '2001:db8::1'})],
         'rules[0] (name r1): redirect.via'),
        ('ports without a port protocol', [rule(match={'proto': 'icmp', 'dport': 80})], 'rules[0] (name r1): match.dport'),
        ('unknown interface', [rule(action='redirect', redirect={'interface': 'nope0'})],
         'rules[0] (name r1): redirect.interface: unknown interface nope0'),
        ('duplicate names', [rule(), rule()], 'rules[1] (name r1): name: duplicate name'),
        ('too many rules', many, 'rules: 4097 rules, more than the 4096'),
        ('unknown action', [rule(action='reject')], 'rules[0] (name r1): action'),
    ]


def test_invalid_input_fails_before_any_change_also_in_check_mode(hook):
    start = run_play([hook.task(rules=[NO_PING, TAG])])
    assert start.rc == 0, start
    before = hook.applied()
    tasks = []
    cases = _invalid_cases()
    for label, rules, dummy in cases:
        tasks.append(hook.task(name=label + ' (check)', check=True, ignore_errors=True, rules=rules))
        tasks.append(hook.task(name=label, ignore_errors=True, rules=rules))
    # an interface that exists on the host but not in the namespace is unknown there too
    host_only = sorted(set(os.listdir('/sys/class/net')) - {'lo', 'eth0', 'eth1'})
    if host_only:
        cases.append(('host-only interface', None, 'unknown interface %s' % host_only[0]))
        tasks.append(hook.task(name='host-only interface', ignore_errors=True,
                               rules=[{'name': 'r1', 'action': 'redirect', 'redirect': {'interface': host_only[0]}}]))
    res = run_play(tasks)
    assert len(res) == len(tasks), res
    assert all(t['status'] == 'failed' for t in res.tasks), res
    messages = [res[i]['msg'] for i in range(len(tasks))]
    expected = []
    for label, rules, fragment in cases:
        expected += [fragment] * (2 if rules is not None else 1)
    for message, fragment in zip(messages, expected):
        assert fragment in message, (fragment, message)
    assert hook.applied() == before  # same generation, same set: nothing was written


def test_host_errors_are_clear(hook):
    res = run_play([
        hook.task(name='no program', ignore_errors=True, rules=[], pin_dir='/sys/fs/bpf/ebpf_tc_test/nothing'),
        hook.task(name='no interface', ignore_errors=True, rules=[], interface='nope0'),
        hook.task(name='no namespace', ignore_errors=True, rules=[], netns='ebpftc-no-such-ns'),
        hook.task(name='no rules', ignore_errors=True),
        hook.task(name='both', ignore_errors=True, rules=[], confirm=True, confirm_timeout=3),
    ])
    msgs = [res[i]['msg'] for i in range(len(res))]
    assert len(msgs) == 5 and all(t['status'] == 'failed' for t in res.tasks), res
    assert 'no steering program is pinned at /sys/fs/bpf/ebpf_tc_test/nothing' in msgs[0]
    assert 'ebpf.tc.bpf_filter first' in msgs[0]
    assert 'interface nope0 does not exist' in msgs[1]
    assert 'network namespace ebpftc-no-such-ns does not exist' in msgs[2]
    assert not os.path.exists('/run/netns/ebpftc-no-such-ns')
    assert 'rules: required with state=present' in msgs[3]
    assert 'cannot be used together' in msgs[4]
    assert not os.path.exists('/sys/fs/bpf/ebpf_tc_test/nothing')


def test_drop_icmp_drops_ping_not_tcp_and_counters_survive_updates(hook):
    lab, client = hook.lab, hook.client
    assert lab.pings(client, SERVER_V4) == 1
    res = run_play([hook.task(rules=[NO_PING])])
    assert res.rc == 0, res
    assert lab.pings(client, SERVER_V4, count=2) == 0
    assert lab.pings(client, SERVER_V6) == 1  # icmpv6 is another protocol
    assert lab.tcp_connects(client, SERVER_V4, 80)
    assert lab.tcp_connects(client, SERVER_V6, 80)

    # an update that keeps no-ping (same name and match) and adds a rule keeps no-ping's counters
    res = run_play([hook.task(rules=[NO_PING]), hook.task(rules=[BLOCK_81, NO_PING])])
    assert res.rc == 0, res
    assert res.changed == [False, True]
    dropped = res[0]['counters']['no-ping']
    assert dropped['packets'] >= 4 and dropped['drops'] == dropped['packets']
    assert res[0]['counters']['(default)']['packets'] >= 6  # the TCP connects
    assert res[1]['counters']['no-ping'] == dropped
    assert res[1]['counters']['block-81'] == {'packets': 0, 'bytes': 0, 'drops': 0}
    assert not lab.tcp_connects(client, SERVER_V4, 81, timeout=0.5)
    # renaming (or changing the match of) a rule starts its counters afresh
    renamed = dict(NO_PING, name='no-ping2')
    res = run_play([hook.task(rules=[BLOCK_81, renamed])])
    assert res[0]['counters']['no-ping2']['packets'] == 0
    assert res[0]['counters']['block-81']['packets'] >= 1
    assert lab.pings(client, SERVER_V4, count=1) == 0


def _wait_for(predicate, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_commit_confirm_not_confirmed_reverts_to_the_last_confirmed_set(hook):
    lab, client = hook.lab, hook.client
    confirmed = [TAG]
    res = run_play([
        hook.task(rules=confirmed),
        hook.task(rules=[NO_PING], confirm_timeout=30),
        hook.task(rules=[NO_PING, BLOCK_81], confirm_timeout=3, diff=True),  # the newest timeout wins
        hook.task(rules=[NO_PING, BLOCK_81], confirm_timeout=3, check=True),
    ])
    assert res.rc == 0, res
    assert res.changed == [True, True, True, False]
    assert res[0]['pending'] is None
    first, second = res[1]['pending'], res[2]['pending']
    assert first['revert_to'] == {'default_action': 'pass', 'rules': canonical(confirmed)}
    assert second['revert_to'] == first['revert_to']  # the revert target stays the last confirmed set
    assert second['generation'] == 3 and second['timer_running'] and second['expires_in'] <= 3
    assert res[3]['pending']['generation'] == 3
    record = Pending(hook.pin_dir).read()
    assert _proc_start_time(record['timer_pid']) == record['timer_start']
    assert hook.applied()[1].names() == ['no-ping', 'block-81']
    assert lab.pings(client, SERVER_V4) == 0

    assert _wait_for(lambda: hook.applied()[1] == validate(confirmed), 10)
    assert hook.applied()[0] == 4
    assert lab.pings(client, SERVER_V4) == 1
    assert Pending(hook.pin_dir).read() is None
    assert _wait_for(lambda: _proc_start_time(record['timer_pid']) is None, 3)
    res = run_play([hook.task(rules=confirmed)])
    assert res.changed == [False] and res[0]['pending'] is None


def test_commit_confirm_confirmed_stays(hook):
    res = run_play([
        hook.task(rules=[TAG]),
        hook.task(rules=[NO_PING], confirm_timeout=3),
        hook.task(confirm=True, check=True),
        hook.task(confirm=True),
        hook.task(confirm=True),
    ])
    assert res.rc == 0, res
    assert res.changed == [True, True, True, True, False]
    record = res[1]['pending']
    assert record is not None and res[2]['pending'] is not None
    assert res[3]['pending'] is None and res[3]['rules'] == canonical([NO_PING])
    assert Pending(hook.pin_dir).read() is None
    time.sleep(max(0, record['deadline'] + 1 - time.time()))  # past the deadline the trial had
    generation, applied = hook.applied()
    assert generation == 2 and applied == validate([NO_PING])
    assert hook.lab.pings(hook.client, SERVER_V4) == 0

    # a plain apply while a set is pending makes the new set the confirmed one
    res = run_play([hook.task(rules=[TAG], confirm_timeout=2), hook.task(rules=[BLOCK_81])])
    assert res.rc == 0, res
    assert res[1]['pending'] is None and Pending(hook.pin_dir).read() is None
    time.sleep(max(0, res[0]['pending']['deadline'] + 1 - time.time()))
    assert hook.applied() == (4, validate([BLOCK_81]))

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commit-confirm records and their detached timer, in a temporary directory (no root, no BPF)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.ebpf.tc.plugins.module_utils._confirm import Pending, _proc_start_time


def _wait_for(predicate, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _touch_marker(record):
    with open(record['marker'], 'w') as out:
        out.write(record['token'])


def _fail(record):
    raise ValueError('cannot revert')


def test_records_are_keyed_by_path_and_round_trip(tmp_path):
    one = Pending('/sys/fs/bpf/a/eth0/egress', directory=str(tmp_path))
    assert one.path == Pending('/sys/fs/bpf/a/eth0/egress/', directory=str(tmp_path)).path
    assert one.path != Pending('/sys/fs/bpf/a/eth1/egress', directory=str(tmp_path)).path
    assert one.read() is None
    with one.locked():
        one.write({'generation': 3})
    assert one.read() == {'generation': 3}
    one.remove()
    one.remove()  # idempotent
    assert one.read() is None


def test_locked_without_create_touches_nothing(tmp_path):
    pending = Pending('/x', directory=str(tmp_path / 'pending'))
    with pending.locked(create=False):
        pass
    assert not os.path.exists(str(tmp_path / 'pending'))
    with pending.locked():
        pass
    assert os.listdir(str(tmp_path / 'pending')) == []  # no lock file left behind


def test_timer_runs_the_expiry_once_and_removes_the_record(tmp_path):
    pending = Pending('/x', directory=str(tmp_path))
    marker = str(tmp_path / 'expired')
    with pending.locked():
        record = pending.start_timer({'deadline': time.time() + 0.5, 'marker': marker}, _touch_marker)
    assert pending.read() == record and Pending.timer_alive(record)
    assert not os.path.exists(marker)
    assert _wait_for(lambda: os.path.exists(marker))
    assert _wait_for(lambda: pending.read() is None)
    with open(marker) as src:
        assert src.read() == record['token']
    assert _wait_for(lambda: not Pending.timer_alive(record))


def test_stopped_timer_does_nothing(tmp_path):
    pending = Pending('/x', directory=str(tmp_path))
    marker = str(tmp_path / 'expired')
    with pending.locked():
        record = pending.start_timer({'deadline': time.time() + 1, 'marker': marker}, _touch_marker)
        assert Pending.stop_timer(record) is True
        pending.remove()
    assert _proc_start_time(record['timer_pid']) is None
    assert Pending.stop_timer(record) is False  # already gone: nothing is signalled
    time.sleep(1.3)
    assert not os.path.exists(marker)


def test_replaced_record_is_not_touched_by_the_old_timer(tmp_path):
    pending = Pending('/x', directory=str(tmp_path))
    marker = str(tmp_path / 'expired')
    with pending.locked():
        pending.start_timer({'deadline': time.time() + 0.3, 'marker': marker}, _touch_marker)
        newer = {'deadline': time.time() + 3600, 'token': 'someone-else'}
        pending.write(newer)
    time.sleep(0.8)
    assert not os.path.exists(marker)
    assert pending.read() == newer


def test_failed_expiry_is_kept_in_the_record(tmp_path):
    pending = Pending('/x', directory=str(tmp_path))
    with pending.locked():
        pending.start_timer({'deadline': time.time() + 0.2}, _fail)
    assert _wait_for(lambda: (pending.read() or {}).get('error') == 'ValueError: cannot revert')
    assert pending.read()['timer_pid'] is None


def test_a_recycled_pid_is_not_signalled():
    record = {'timer_pid': os.getpid(), 'timer_start': _proc_start_time(os.getpid()) + 1}
    assert Pending.timer_alive(record) is False
    assert Pending.stop_timer(record) is False


def _revert_to_generation_7(record):
    return 7


def test_an_expiry_that_reverted_leaves_its_outcome(tmp_path):
    pending = Pending('/x', directory=str(tmp_path))
    deadline = time.time() + 0.3
    with pending.locked():
        pending.start_timer({'deadline': deadline, 'generation': 6}, _revert_to_generation_7)
    assert _wait_for(lambda: pending.read() is None)
    outcome = pending.read_outcome()
    assert outcome['outcome'] == 'reverted' and outcome['key'] == '/x'
    assert (outcome['trial_generation'], outcome['generation'], outcome['deadline']) == (6, 7, deadline)
    assert deadline <= outcome['at'] < deadline + 5
    pending.write_outcome('confirmed', generation=8)
    assert pending.read_outcome()['outcome'] == 'confirmed'
    pending.forget()
    assert pending.read_outcome() is None and os.listdir(str(tmp_path)) == []


def test_an_expiry_that_left_the_set_alone_leaves_no_outcome(tmp_path):
    pending = Pending('/x', directory=str(tmp_path))
    marker = str(tmp_path / 'expired')
    with pending.locked():
        pending.start_timer({'deadline': time.time() + 0.2, 'marker': marker}, _touch_marker)  # returns None
    assert _wait_for(lambda: pending.read() is None)
    assert pending.read_outcome() is None

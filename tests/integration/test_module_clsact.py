# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.clsact through ansible-playbook, on a veth pair between two namespaces the tests make."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest

from playbook import run_play

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nslab import Lab, netns_exists  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _program, _tc  # noqa: E402


STEERING = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')


@pytest.fixture
def lab():
    """Namespaces a and b joined by a veth pair (eth0 on both sides); pins under a's default pin dirs
    are removed afterwards."""
    with Lab() as lab:
        ns_a, ns_b = lab.ns('a'), lab.ns('b')
        lab.veth(ns_a, 'eth0', ns_b, 'eth0')
        try:
            yield lab, ns_a
        finally:
            for direction in ('ingress', 'egress'):
                _program.remove_pins(_program.default_pin_dir('eth0', direction, netns=ns_a))


def clsact(ns, **args):
    args.setdefault('interface', 'eth0')
    return {'ebpf.tc.clsact': dict(netns=ns, **args)}


def hook(ns):
    with _tc.open_netlink(ns) as ipr:
        return _tc.hook_view(ipr, _tc.ifindex(ipr, 'eth0'))


def attach_foreign(ns, direction='ingress', priority=7, handle=1, name='other_tool'):
    """Attach the steering program (loaded with nothing pinned) under a name that is not ours."""
    with _bpfobject.BpfObject.open(STEERING) as obj:
        obj.load()
        with _tc.open_netlink(ns) as ipr:
            index = _tc.ifindex(ipr, 'eth0')
            _tc.ensure_clsact(ipr, index)
            _tc.attach(ipr, index, direction, obj.program_fd('steering'), name, priority, handle)


def test_present_then_absent_idempotent_with_check_and_diff(lab):
    ns = lab[1]
    tasks = []
    for state in ('present', 'absent'):
        tasks += [
            dict(clsact(ns, state=state), check_mode=True),
            clsact(ns, state=state),
            clsact(ns, state=state),
            dict(clsact(ns, state=state), check_mode=True),
        ]
    res = run_play(tasks, diff=True)
    assert res.rc == 0, res
    # the first check-mode run of each state changed nothing: the real run after it still changes
    assert res.changed == [True, True, False, False] * 2, res
    assert res[0]['diff'] == {'before': {'clsact': False, 'filters': []}, 'after': {'clsact': True, 'filters': []}}
    assert res[1]['clsact'] is True and res[2]['clsact'] is True
    assert res[2]['diff']['before'] == res[2]['diff']['after']
    assert res[4]['diff'] == {'before': {'clsact': True, 'filters': []}, 'after': {'clsact': False, 'filters': []}}
    assert res[5]['clsact'] is False and res[5]['removed_filters'] == []
    assert hook(ns) == {'clsact': False, 'filters': []}


def test_refuses_to_remove_foreign_filters_unless_forced(lab):
    ns = lab[1]
    res = run_play([
        clsact(ns),
        # one filter of ours: removing the qdisc with it needs no force
        {'ebpf.tc.bpf_filter': dict(netns=ns, interface='eth0', object=STEERING, program='steering',
                                    backend='clsact')},
        clsact(ns, state='absent'),
    ])
    assert res.rc == 0, res
    assert res.changed == [True, True, True], res
    assert [(f['name'], f['owned']) for f in res[2]['removed_filters']] == [('ebpf_tc:steering', True)]
    assert hook(ns) == {'clsact': False, 'filters': []}

    # a foreign filter (another tool's bpf filter on ingress) next to one of ours on egress
    attach_foreign(ns)
    res = run_play([
        {'ebpf.tc.bpf_filter': dict(netns=ns, interface='eth0', object=STEERING, program='steering',
                                    backend='clsact')},
        dict(clsact(ns, state='absent'), ignore_errors=True),
        dict(clsact(ns, state='absent', force=True), check_mode=True),
        clsact(ns, state='absent', force=True),
        clsact(ns, state='absent', force=True),
    ], diff=True)
    assert res.rc == 0, res
    assert res.tasks[1]['status'] == 'failed'
    msg = res[1]['msg']
    assert 'carries filters this collection did not attach' in msg and 'ingress priority 7' in msg
    assert 'bpf other_tool' in msg and 'ebpf_tc:steering' not in msg and 'force: true' in msg
    assert res.changed[2:] == [True, True, False], res
    kinds = sorted((f['direction'], f['kind'], f['owned']) for f in res[3]['removed_filters'])
    assert kinds == [('egress', 'bpf', True), ('ingress', 'bpf', False)]
    assert res[3]['diff']['after'] == {'clsact': False, 'filters': []}
    assert hook(ns) == {'clsact': False, 'filters': []}


def test_missing_namespace_and_interface_are_errors(lab):
    ns = lab[1]
    missing = ns + '-missing'
    res = run_play([
        dict(clsact(missing), ignore_errors=True),
        dict(clsact(ns, interface='nope0'), ignore_errors=True),
        dict(clsact(ns, interface='nope0', state='absent'), ignore_errors=True),
    ])
    assert [t['status'] for t in res.tasks] == ['failed'] * 3, res
    assert 'network namespace %s does not exist' % missing in res[0]['msg']
    assert not netns_exists(missing)
    assert res[1]['msg'] == res[2]['msg'] == 'interface nope0 does not exist'

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.bpf_object_info through ansible-playbook: the kernel's verdict on an object, and nothing left behind."""

import os
import subprocess

import pytest

from objects import rejected_steering  # noqa: E402  pylint: disable=wrong-import-position
from playbook import ROOT, run_play  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _libbpf  # noqa: E402  pylint: disable=wrong-import-position


STEERING = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')


def bpf_ids():
    """How many programs the kernel holds: a load that leaves nothing behind leaves the number as it was."""
    out = subprocess.run(['bpftool', '-j', 'prog', 'show'], check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.count('"id":')


def object_info(check=False, **args):
    return run_play([{'ebpf.tc.bpf_object_info': args, 'ignore_errors': True}], check=check)


def test_the_shipped_object_loads_and_is_described():
    res = object_info(object=STEERING, program='steering')
    assert res.rc == 0, res
    info = res[0]
    assert info['changed'] is False and info['loads'] is True
    assert info['kernel'] == os.uname()[2]
    assert info['programs'] == ['steering']
    assert 'rules' in info['maps'] and info['maps']['rules']['max_entries'] == 8192
    with _bpfobject.BpfObject.open(STEERING) as obj:
        obj.load()
        assert info['tag'] == _libbpf.prog_info(obj.program_fd('steering')).tag
    # check mode loads it the same way: the module only reads
    assert object_info(check=True, object=STEERING, program='steering')[0]['tag'] == info['tag']


def test_a_refusal_is_an_answer_with_the_verifier_line(tmp_path):
    before = bpf_ids()
    res = object_info(object=rejected_steering(tmp_path), program='steering')
    assert res.rc == 0, res
    info = res[0]
    assert info['loads'] is False and 'tag' not in info and 'maps' not in info
    assert 'Permission denied' in info['error'] and 'invalid access to packet' in info['error']
    assert bpf_ids() == before


@pytest.mark.parametrize('args, named', [
    ({'object': '/nonexistent/steering.bpf.o'}, 'BPF object /nonexistent/steering.bpf.o does not exist'),
    ({'object': '/bin/true'}, '/bin/true is not a BPF object libbpf can open'),
    ({'object': STEERING, 'program': 'nope'}, 'program nope is not in %s (it has: steering)' % STEERING),
], ids=['missing', 'not-bpf', 'no-such-program'])
def test_what_is_not_an_answer_fails(args, named):
    res = object_info(**args)
    assert res.tasks[0]['status'] == 'failed', res
    assert named in res[0]['msg']


def test_src_loads_a_controller_file_from_a_temporary_copy_left_nowhere(tmp_path):
    """src: the action plugin copies the controller's object to the task's temporary directory on the target,
    the module loads it from there, and the directory goes with the task (here controller and target are
    one machine: the remote temporary directories live under ~/.ansible/tmp)."""
    remote_tmp = tmp_path / 'remote-tmp'
    before = bpf_ids()
    res = run_play([{'ebpf.tc.bpf_object_info': {'src': STEERING, 'program': 'steering'},
                     'vars': {'ansible_remote_tmp': str(remote_tmp)}},
                    {'ebpf.tc.bpf_object_info': {'src': rejected_steering(tmp_path), 'program': 'steering'}},
                    {'ebpf.tc.bpf_object_info': {'src': '/nonexistent/steering.bpf.o'}, 'ignore_errors': True},
                    {'ebpf.tc.bpf_object_info': {'src': STEERING, 'object': STEERING}, 'ignore_errors': True}])
    assert [t['status'] for t in res.tasks] == ['ok', 'ok', 'failed', 'failed'], res
    assert res[0]['loads'] is True and res[0]['src'] == STEERING
    assert res[0]['tag'] == object_info(object=STEERING, program='steering')[0]['tag']
    assert res[1]['loads'] is False and 'invalid access to packet' in res[1]['error']
    assert '/nonexistent/steering.bpf.o' in res[2]['msg']
    assert 'mutually exclusive' in res[3]['msg']
    assert list(remote_tmp.iterdir()) == [] and bpf_ids() == before

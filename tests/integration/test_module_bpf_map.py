# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.bpf_map through ansible-playbook against real pinned maps (root, no network).

The maps are made with bpf(2) and pinned under /sys/fs/bpf/ebpf_tc_test/<uuid>/, removed afterwards
(also on failure). Each play runs the cycle of docs/docsite/rst/design.rst: check -> apply -> apply (changed=false) ->
apply in check mode (changed=false), then the same for state=absent. A check-mode task with
exclusive=true and no entries reads the whole map back through the module (its diff's "before").
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import struct
import uuid

import pytest

from playbook import run_play

import bpftest
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfmap

from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf as libbpf
from ansible_collections.ebpf.tc.plugins.module_utils import _program


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEERING_OBJECT = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
PIN_BASE = '/sys/fs/bpf/ebpf_tc_test'

MAPS = {
    # name: (type, key size, value size, max_entries, flags)
    'hash': (libbpf.BPF_MAP_TYPE_HASH, 4, 8, 16, 0),
    'array': (libbpf.BPF_MAP_TYPE_ARRAY, 4, 4, 8, 0),
    'percpu': (libbpf.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 4, 0),
    'percpu_hash': (libbpf.BPF_MAP_TYPE_PERCPU_HASH, 4, 8, 4, 0),
    'lpm': (libbpf.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 16, libbpf.BPF_F_NO_PREALLOC),
    'wide': (libbpf.BPF_MAP_TYPE_HASH, 16, 6, 16, 0),
    'emptied': (libbpf.BPF_MAP_TYPE_HASH, 4, 4, 16, 0),
    'zeroed': (libbpf.BPF_MAP_TYPE_ARRAY, 4, 4, 4, 0),
    'untouched': (libbpf.BPF_MAP_TYPE_HASH, 4, 8, 16, 0),
}


def contents(path):
    """{key bytes: value bytes (per-CPU: list)} of the map, read directly."""
    with _bpfmap.Map.from_pin(path) as bpf_map:
        if bpf_map.is_percpu:
            return dict((k, bpf_map.lookup_percpu(k)) for k in bpf_map.keys())
        return dict(bpf_map.items())


def u32(value):
    return struct.pack('<I', value)


def u64(value):
    return struct.pack('<Q', value)


def cycle_tasks(path, entries, absent):
    """check, apply, apply, apply in check mode; a read-back; then the same for state=absent."""
    present = {'ebpf.tc.bpf_map': {'path': path, 'entries': entries}}
    gone = {'ebpf.tc.bpf_map': {'path': path, 'entries': absent, 'state': 'absent'}}
    read = {'ebpf.tc.bpf_map': {'path': path, 'entries': {}, 'exclusive': True}, 'check_mode': True}
    out = []
    for task in (present, gone):
        out += [dict(task, check_mode=True), dict(task), dict(task), dict(task, check_mode=True)]
        out.append(dict(read))
    return out


def error_tasks(paths, pin_dir):
    def task(**args):
        return {'ebpf.tc.bpf_map': args, 'ignore_errors': True}
    return [
        task(path=paths['untouched'] + '-nope', entries={'1': 1}),
        task(path=os.path.join(pin_dir, 'steering'), entries={'1': 1}),
        task(path=paths['untouched'], entries={'4294967296': 1}),
        task(path=paths['untouched'], entries={'1': 1, '2': '0x010203040506070809'}),
        task(path=paths['array'], entries={'8': 1}),
        task(path=paths['untouched'], entries={'1': 'not-a-value'}),
        task(path=paths['untouched'], entries=[1], state='absent', exclusive=True),
        task(path=paths['untouched'], entries=['1']),
        task(path=pin_dir, entries={'1': 1}),
        task(path=os.path.join(pin_dir, 'active_set'), entries={'0': 1}),
    ]


WIDE_ENTRIES = [
    {'key': '2001:db8::1', 'value': '02:00:00:00:00:01'},
    {'key': '0x0a000001', 'value': 258},
    {'key': '7', 'value': '0xff'},
]


@pytest.fixture(scope='module')
def play():
    """Every scenario of this file in one ansible-playbook run (a run costs seconds, a task a fraction).

    Yields (sections, after): the task results of each named section, and every map's contents right
    after the play.
    """
    base = os.path.join(PIN_BASE, uuid.uuid4().hex)
    pin_dir = os.path.join(base, 'prog')
    os.makedirs(base)
    try:
        paths = {}
        for name, (map_type, key_size, value_size, max_entries, flags) in MAPS.items():
            with _bpfmap.create_map(map_type, key_size, value_size, max_entries, name=name, flags=flags) as new:
                libbpf.obj_pin(new.fd, os.path.join(base, name))
            paths[name] = os.path.join(base, name)
        fd, dummy = bpftest.load_and_pin(STEERING_OBJECT, 'steering', pin_dir)
        os.close(fd)
        ncpus = libbpf.num_possible_cpus()
        with _bpfmap.Map.from_pin(paths['hash']) as bpf_map:      # an entry the play does not name
            bpf_map.update(u32(99), u64(1))
        with _bpfmap.Map.from_pin(paths['wide']) as bpf_map:      # removed by exclusive
            bpf_map.update(b'\x01' * 16, b'\x02' * 6)
        with _bpfmap.Map.from_pin(paths['emptied']) as bpf_map:
            bpf_map.update(u32(5), u32(5))
        with _bpfmap.Map.from_pin(paths['zeroed']) as bpf_map:
            bpf_map.update(u32(2), u32(2))
        with _bpfmap.Map.from_pin(paths['percpu_hash']) as bpf_map:    # CPUs disagree
            bpf_map.update(u32(1), u64(41) + u64(42) * (ncpus - 1))

        wide = {'ebpf.tc.bpf_map': {'path': paths['wide'], 'entries': WIDE_ENTRIES, 'exclusive': True}}
        zeroed = {'ebpf.tc.bpf_map': {'path': paths['zeroed'], 'exclusive': True, 'entries': {'1': 1}}}
        differs = {'ebpf.tc.bpf_map': {'path': paths['percpu_hash'], 'entries': {'1': 42}}}
        sections = [
            ('hash', cycle_tasks(paths['hash'], {'1': 100, '10.0.0.1': '0x0102'}, ['10.0.0.1'])),
            ('array', cycle_tasks(paths['array'], {'0': 7, '5': '0xdeadbeef'}, {'5': None})),
            ('percpu', cycle_tasks(paths['percpu'], {'2': 42, '3': 1}, [3])),
            ('lpm', cycle_tasks(paths['lpm'], [{'key': '10.0.0.0/8', 'value': 1}, {'key': '10.1.0.0/16', 'value': 2}],
                                [{'key': '10.1.0.0/16'}])),
            ('wide', [dict(wide, check_mode=True), wide, wide, dict(wide, check_mode=True)]),
            ('emptied', [{'ebpf.tc.bpf_map': {'path': paths['emptied'], 'exclusive': True}}]),
            ('zeroed', [zeroed, zeroed]),
            ('percpu_hash', [differs, differs]),
            ('errors', error_tasks(paths, pin_dir)),
        ]
        res = run_play([task for dummy, tasks in sections for task in tasks], diff=True)
        assert len(res) == sum(len(tasks) for dummy, tasks in sections), res
        out, start = {}, 0
        for name, tasks in sections:
            out[name] = res.tasks[start:start + len(tasks)]
            start += len(tasks)
        after = dict((name, contents(path)) for name, path in paths.items())
        yield out, after
    finally:
        _program.remove_pins(pin_dir)
        if os.path.isdir(base):
            shutil.rmtree(base)
        if os.path.isdir(PIN_BASE) and not os.listdir(PIN_BASE):
            os.rmdir(PIN_BASE)


def results(tasks):
    return [t['result'] for t in tasks]


def changed(tasks):
    return [t['result'].get('changed', False) for t in tasks]


def assert_cycle(tasks):
    assert all(t['status'] != 'failed' for t in tasks), tasks
    flags = changed(tasks)
    assert flags[0:4] + flags[5:9] == [True, True, False, False] * 2, tasks    # 4 and 9 are read-backs


def test_hash_map_cycle(play):
    sections, after = play
    assert_cycle(sections['hash'])
    res = results(sections['hash'])
    assert res[0]['diff'] == {'before': {'1': None, '16777226': None}, 'after': {'1': 100, '16777226': 0x0201}}
    assert res[1]['entries'] == [
        {'key': '0x01000000', 'key_int': 1, 'value': '0x6400000000000000', 'value_int': 100},
        {'key': '0x0a000001', 'key_int': 16777226, 'value': '0x0102000000000000', 'value_int': 0x0201}]
    assert res[1]['map']['type'] == 'hash' and res[1]['map']['key_size'] == 4
    assert res[4]['diff']['before'] == {'1': 100, '16777226': 0x0201, '99': 1}
    assert res[6]['diff'] == {'before': {'16777226': 0x0201}, 'after': {'16777226': None}}
    assert res[9]['diff']['before'] == {'1': 100, '99': 1}
    assert after['hash'] == {u32(1): u64(100), u32(99): u64(1)}


def test_array_map_cycle_absent_writes_zeros(play):
    sections, after = play
    assert_cycle(sections['array'])
    res = results(sections['array'])
    assert res[4]['diff']['before'] == {'0': 7, '5': 0xefbeadde}
    assert res[6]['diff'] == {'before': {'5': 0xefbeadde}, 'after': {'5': None}}
    assert res[6]['entries'] == [{'key': '0x05000000', 'key_int': 5, 'value': '0x00000000', 'value_int': 0}]
    assert res[9]['diff']['before'] == {'0': 7}
    values = after['array']
    assert len(values) == 8 and values[u32(0)] == u32(7) and values[u32(5)] == u32(0)


def test_percpu_map_cycle_writes_every_cpu(play):
    sections, after = play
    assert_cycle(sections['percpu'])
    ncpus = libbpf.num_possible_cpus()
    assert after['percpu'][u32(2)] == [u64(42)] * ncpus
    assert after['percpu'][u32(3)] == [u64(0)] * ncpus
    # one CPU holding another value is a difference: every CPU is written again
    assert changed(sections['percpu_hash']) == [True, False], sections['percpu_hash']
    first = results(sections['percpu_hash'])[0]
    assert first['diff']['before'] == {'1': [41] + [42] * (ncpus - 1)}
    assert after['percpu_hash'] == {u32(1): [u64(42)] * ncpus}


def test_lpm_trie_cycle_compares_exact_keys(play):
    sections, after = play
    assert_cycle(sections['lpm'])
    res = results(sections['lpm'])
    assert res[4]['diff']['before'] == {'10.0.0.0/8': 1, '10.1.0.0/16': 2}
    assert res[1]['entries'][1]['key_cidr'] == '10.1.0.0/16'
    assert res[9]['diff']['before'] == {'10.0.0.0/8': 1}
    assert after['lpm'] == {b'\x08\0\0\0\x0a\0\0\0': u32(1)}


def test_exclusive_and_encodings(play):
    sections, after = play
    assert changed(sections['wide']) == [True, True, False, False], sections['wide']
    res = results(sections['wide'])
    assert res[1]['removed'] == ['0x' + '01' * 16]
    assert res[1]['diff']['before']['0x' + '01' * 16] == 0x020202020202     # 6 bytes: an integer
    assert after['wide'] == {
        bytes.fromhex('20010db8000000000000000000000001'): b'\x02\0\0\0\0\x01',
        b'\x0a\0\0\x01' + b'\0' * 12: b'\x02\x01\0\0\0\0',
        b'\x07' + b'\0' * 15: b'\xff\0\0\0\0\0',
    }
    # exclusive without entries empties a map; in an array it zeroes every other index
    assert changed(sections['emptied']) == [True] and after['emptied'] == {}
    assert changed(sections['zeroed']) == [True, False], sections['zeroed']
    assert after['zeroed'] == {u32(0): u32(0), u32(1): u32(1), u32(2): u32(0), u32(3): u32(0)}


def test_errors_are_clear_and_change_nothing(play):
    sections, after = play
    tasks = sections['errors']
    assert all(t['status'] == 'failed' for t in tasks), tasks
    msgs = [t['result'].get('msg', '') for t in tasks]
    assert 'no BPF map is pinned at' in msgs[0] and '-nope' in msgs[0]
    assert 'is a pinned BPF program, not a map' in msgs[1]
    assert "key '4294967296' does not fit in 4 bytes" in msgs[2] or 'key 4294967296 does not fit' in msgs[2]
    assert "value of key '2' '0x010203040506070809' is 9 bytes, the map holds 8" in msgs[3]
    assert "key '8' is out of range: the array has indexes 0-7" in msgs[4]
    assert "value of key '1' 'not-a-value' is neither" in msgs[5]
    assert 'exclusive applies to state=present' in msgs[6]
    assert "entries[0] ('1') has no value" in msgs[7]
    assert 'is a directory, not a pinned BPF map' in msgs[8]
    assert 'is an array_of_maps map: bpf_map manages only' in msgs[9]
    assert after['untouched'] == {}

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input, in one table: every row must be refused, with a message naming the field, and change nothing.

One prepared host - a namespace with a veth pair, the steering program attached to eth0 egress by
ebpf.tc.bpf_filter at the default pin dir, a rule set applied by ebpf.tc.steering_rules, and a filter of
another tool on eth0 ingress - then every row as one task of one ansible-playbook run (ignore_errors), in
normal and in check mode. The host state (hoststate.snapshot: namespaces, tc dumps, pins, pending records,
rule sets read back) is compared before and after.

Adding a bad input is one line in BAD_INPUTS: (module, arguments over the module's BASE, expected part of the
message). Strings may name the prepared host's things: {ns}, {missing_ns}, {pin_dir}, {typo_pin_dir}, {tmp},
{plain_file}, {steering}, {legacy}, {rejected}, {pin_root}. OMIT removes a BASE argument.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
from nslab import Lab  # noqa: E402  pylint: disable=wrong-import-position

from hoststate import forget_pending_dirs, snapshot  # noqa: E402  pylint: disable=wrong-import-position
from playbook import run_play  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _program, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._confirm import Pending  # noqa: E402


STEERING = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
SOURCES = {
    'legacy': os.path.join(HERE, 'bpf', 'legacy_maps.bpf.c'),
    'rejected': os.path.join(ROOT, 'tests', 'dataplane', 'bpf', 'rejected.bpf.c'),
}
OMIT = object()

APPLIED = [
    {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'},
    {'name': 'block-81', 'match': {'proto': 'tcp', 'dport': 81}, 'action': 'drop'},
    {'name': 'tag', 'match': {'dst': '192.0.2.0/24'}, 'action': 'mark', 'mark': 16},
]


def r(**fields):
    """One rule: r1, dropping TCP, with `fields` over it."""
    rule = {'name': 'r1', 'match': {'proto': 'tcp'}, 'action': 'drop'}
    rule.update(fields)
    return rule


# What a row's arguments go over: each is a valid no-op on the prepared host.
BASE = {
    'steering_rules': {'interface': 'eth0', 'netns': '{ns}', 'rules': APPLIED},
    'bpf_filter': {'interface': 'eth0', 'netns': '{ns}', 'object': '{steering}', 'program': 'steering'},
    'bpf_map': {'path': '{pin_dir}/settings', 'entries': {0: 0}},
    'clsact': {'interface': 'eth0', 'netns': '{ns}'},
}

BAD_INPUTS = [
    # steering_rules: the rule schema (the rules guide's list of refusals), then the hook and the module's own options
    ('steering_rules', {'rules': [r(match={'src': '10.0.0.300/8'})]}, 'rules[0] (name r1): match.src'),
    ('steering_rules', {'rules': [r(match={'src': '10.1.2.3/8'})]}, 'rules[0] (name r1): match.src: 10.1.2.3/8 has host bits'),
    ('steering_rules', {'rules': [r(match={'dst': '10.0.0.0/8'}, action='redirect',
                                    redirect={'interface': 'eth1', 'via': '2001:db8::1'})]},
     'rules[0] (name r1): redirect.via'),
    ('steering_rules', {'rules': [r(match={'proto': 'icmp', 'dport': 80})]}, 'rules[0] (name r1): match.dport'),
    ('steering_rules', {'rules': [r(match={'dport': 80})]}, 'rules[0] (name r1): match.dport'),
    ('steering_rules', {'rules': [r(action='redirect', redirect={'interface': 'nope0'})]},
     'rules[0] (name r1): redirect.interface: unknown interface nope0'),
    ('steering_rules', {'rules': [r(), r()]}, 'rules[1] (name r1): name: duplicate name'),
    ('steering_rules', {'rules': [r(name='r%d' % i) for i in range(4097)]}, 'rules: 4097 rules, more than the 4096'),
    ('steering_rules', {'rules': [r(action='reject')]}, 'rules[0] (name r1): action: unknown action'),
    ('steering_rules', {'rules': [r(name='Bad Name')]}, 'rules[0]: name:'),
    ('steering_rules', {'rules': [{'match': {'proto': 'tcp'}, 'action': 'drop'}]}, 'rules[0]: name: every rule needs a name'),
    ('steering_rules', {'rules': [r(matches={})]}, 'rules[0] (name r1): matches: unknown key'),
    ('steering_rules', {'rules': [r(match={'proto': 'gre4'})]}, 'rules[0] (name r1): match.proto'),
    ('steering_rules', {'rules': [r(match={'proto': 'tcp', 'dport': '2000-1000'})]}, 'rules[0] (name r1): match.dport'),
    ('steering_rules', {'rules': [r(action='mark', mark='0x1ffffffff')]}, 'rules[0] (name r1): mark'),
    ('steering_rules', {'rules': [r(action='police', police={'rate': 'fast'})]}, 'rules[0] (name r1): police.rate'),
    ('steering_rules', {'rules': [r(action='drop', mark=1)]}, 'rules[0] (name r1): mark: only valid with action mark'),
    ('steering_rules', {'rules': 'no-ping'}, "option 'rules'"),
    ('steering_rules', {'rules': [['no-ping']]}, "option 'rules'"),
    ('steering_rules', {'default_action': 'reject'}, 'default_action'),
    ('steering_rules', {'interface': 'nope0'}, 'interface nope0 does not exist'),
    ('steering_rules', {'netns': '{missing_ns}'}, 'network namespace {missing_ns} does not exist'),
    ('steering_rules', {'direction': 'sideways'}, 'direction'),
    ('steering_rules', {'pin_dir': '{tmp}/pins'}, 'pin_dir: {tmp}/pins is not on a BPF filesystem'),
    ('steering_rules', {'pin_dir': '{typo_pin_dir}'}, 'no steering program is pinned at {typo_pin_dir}'),
    ('steering_rules', {'confirm_timeout': -5}, 'confirm_timeout: must be a positive number'),
    ('steering_rules', {'confirm_timeout': 5, 'confirm': True}, 'confirm_timeout and confirm: true'),
    ('steering_rules', {'state': 'absent'}, 'rules: must not be given with state=absent'),
    ('steering_rules', {'rules': OMIT}, 'rules: required with state=present'),
    ('steering_rules', {'rules': OMIT, 'confirm': True}, 'confirm: nothing is pending on eth0 egress'),
    ('steering_rules', {'rule': []}, 'Unsupported parameters'),
    # bpf_filter: object, program, direction, priority, handle, interface, netns, pin_dir
    ('bpf_filter', {'object': '/nonexistent/steering.bpf.o'}, 'BPF object /nonexistent/steering.bpf.o does not exist'),
    ('bpf_filter', {'object': '{tmp}'}, 'BPF object {tmp} is not a regular file'),
    ('bpf_filter', {'object': '{plain_file}'}, '{plain_file} is not a BPF object libbpf can open'),
    ('bpf_filter', {'object': '{legacy}', 'program': 'legacy'},
     'legacy map definitions (SEC("maps")) are not supported by libbpf >= 1.0; use BTF-defined maps in SEC(".maps")'),
    ('bpf_filter', {'object': '{rejected}', 'program': 'unchecked_read'}, 'cannot load {rejected}'),
    ('bpf_filter', {'program': 'nope'}, 'program nope is not in'),
    ('bpf_filter', {'program': OMIT}, 'missing: program'),
    ('bpf_filter', {'object': OMIT}, 'missing: object'),
    ('bpf_filter', {'direction': 'out'}, 'direction'),
    ('bpf_filter', {'priority': 0}, 'priority must be between 1 and 65535, not 0'),
    ('bpf_filter', {'priority': 65536}, 'priority must be between 1 and 65535, not 65536'),
    ('bpf_filter', {'handle': 0}, 'handle must be between 1 and 4294967295, not 0'),
    ('bpf_filter', {'interface': 'nope0'}, 'interface nope0 does not exist'),
    ('bpf_filter', {'netns': '{missing_ns}'}, 'network namespace {missing_ns} does not exist'),
    ('bpf_filter', {'pin_dir': '{tmp}/pins/eth0/egress'}, 'pin_dir: {tmp}/pins/eth0/egress is not on a BPF filesystem'),
    ('bpf_filter', {'pin_dir': '{pin_dir}/settings'}, 'pin_dir: {pin_dir}/settings is not a directory'),
    ('bpf_filter', {'pin_dir': '{typo_pin_dir}'}, 'not one pinned in pin_dir {typo_pin_dir}'),
    ('bpf_filter', {'state': 'absent', 'program': 'nope', 'priority': 100, 'direction': 'ingress'},
     'did not attach'),
    ('bpf_filter', {'backend': 'bpfilter'}, 'backend'),
    ('bpf_filter', {'placement': 'middle'}, 'placement'),
    ('bpf_filter', {'placement': 'before'}, 'relative_to: placement before needs the program'),
    ('bpf_filter', {'placement': 'after', 'relative_to': 'cil_to_netdev'},
     'relative_to: no program cil_to_netdev in the TCX chain'),
    ('bpf_filter', {'relative_to': '42'}, 'relative_to: only with placement before or after, not first'),
    ('bpf_filter', {'state': 'absent', 'unpin': True, 'pin_dir': '{tmp}'}, 'pin_dir: {tmp} is not on a BPF filesystem'),
    ('bpf_filter', {'priority': 100, 'direction': 'ingress', 'backend': 'clsact'}, 'did not attach'),
    ('bpf_filter', {'prio': 10}, 'Unsupported parameters'),
    # bpf_map: paths, keys, values
    ('bpf_map', {'path': '{pin_dir}/nope'}, 'no BPF map is pinned at {pin_dir}/nope'),
    ('bpf_map', {'path': '{pin_dir}'}, '{pin_dir} is a directory, not a pinned BPF map'),
    ('bpf_map', {'path': '{plain_file}'}, '{plain_file} is not on a BPF filesystem (bpffs), so it is not a pinned BPF map'),
    ('bpf_map', {'path': '{pin_dir}/steering'}, 'is a pinned BPF program, not a map'),
    ('bpf_map', {'path': '{pin_dir}/active_set'}, 'map active_set is an array_of_maps map'),
    ('bpf_map', {'entries': {1: 0}}, "key '1' is out of range: the array has indexes 0-0"),
    ('bpf_map', {'entries': {4294967296: 0}}, 'does not fit in 4 bytes'),
    ('bpf_map', {'entries': {0: '0x010203040506070809'}}, "value of key '0' '0x010203040506070809' is 9 bytes"),
    ('bpf_map', {'entries': {0: 'not-a-value'}}, "value of key '0' 'not-a-value' is neither"),
    ('bpf_map', {'entries': [0]}, 'entries[0] (0) has no value'),
    ('bpf_map', {'state': 'absent', 'exclusive': True}, 'exclusive applies to state=present'),
    ('bpf_map', {'path': '{pin_dir}/src_prefixes', 'entries': {'10.1.2.3/8': 1}}, 'host bits'),
    # clsact
    ('clsact', {'state': 'absent'}, 'carries filters this collection did not attach'),
    ('clsact', {'interface': 'nope0'}, 'interface nope0 does not exist'),
    ('clsact', {'netns': '{missing_ns}'}, 'network namespace {missing_ns} does not exist'),
    ('clsact', {'state': 'gone'}, 'state'),
]


def fill(value, names):
    """`value` with the {placeholders} of its strings filled in, OMIT entries dropped."""
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return dict((fill(k, names), fill(v, names)) for k, v in value.items() if v is not OMIT)
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


def task(module, args, names, check=False):
    merged = dict(BASE[module])
    merged.update(args)
    return {'name': '%s %s%s' % (module, sorted(k for k in args), ' (check)' if check else ''),
            'ebpf.tc.%s' % module: fill(merged, names), 'ignore_errors': True, 'check_mode': check}


@pytest.fixture(scope='module')
def host(tmp_path_factory):
    """The prepared host; yields the placeholders' values (and the snapshot's arguments)."""
    tmp = tmp_path_factory.mktemp('bad-input')
    objects = {}
    for name, source in SOURCES.items():
        objects[name] = str(tmp / (name + '.o'))
        subprocess.run(['clang', '-O2', '-g', '-target', 'bpf', '-I/usr/include/%s-linux-gnu' % os.uname().machine,
                        '-c', source, '-o', objects[name]], check=True)
    plain_file = tmp / 'plain-file'
    plain_file.write_text('not a pin\n')
    with Lab() as lab:
        ns, peer = lab.ns('node'), lab.ns('peer')
        lab.veth(ns, 'eth0', peer, 'eth0')
        lab.veth(ns, 'eth1', peer, 'eth1')
        pin_dir = _program.default_pin_dir('eth0', 'egress', netns=ns)
        pin_root = os.path.join(_program.PIN_ROOT, 'netns', ns)
        names = dict(ns=ns, missing_ns=lab.prefix + '-missing', pin_dir=pin_dir, pin_root=pin_root,
                     typo_pin_dir=os.path.join(pin_root, 'eth0', 'egres'), tmp=str(tmp), plain_file=str(plain_file),
                     steering=STEERING, **objects)
        try:
            prepared = run_play([
                fill({'ebpf.tc.bpf_filter': BASE['bpf_filter']}, names),
                fill({'ebpf.tc.steering_rules': BASE['steering_rules']}, names),
            ])
            assert prepared.rc == 0 and prepared.changed == [True, True], prepared
            # another tool's filter on eth0 ingress (clsact absent must refuse, bpf_filter must not replace it)
            with _bpfobject.BpfObject.open(STEERING) as foreign:
                foreign.load()
                with _tc.open_netlink(ns) as ipr:
                    _tc.ensure_clsact(ipr, _tc.ifindex(ipr, 'eth0'))   # steering runs as a TCX link here
                    _tc.attach(ipr, _tc.ifindex(ipr, 'eth0'), 'ingress', foreign.program_fd('steering'),
                               'other_tool', 100, 1)
            yield dict(names, lab=lab)
        finally:
            pending = Pending(pin_dir)
            record = pending.read()
            if record is not None:
                Pending.stop_timer(record)
            pending.forget()
            forget_pending_dirs()
            _program.remove_pins(pin_dir)
            _program.remove_pins(pin_root)


def host_state(host):
    return snapshot(host['lab'].prefix, [host['ns']], [host['pin_root'], host['tmp']],
                    hooks=[(host['ns'], 'eth0', 'egress', host['pin_dir'])])


def test_every_bad_input_is_refused_names_the_field_and_changes_nothing(host):
    before = host_state(host)
    # the snapshot sees what a change would change: the filters with their program ids, the pins, the rules
    assert before['tc'][host['ns']]['eth0 egress tcx'], before     # steering runs (auto: a TCX link here)
    assert before['pins'][os.path.join(host['pin_dir'], 'steering')].startswith('prog '), before
    assert len(before['rules']['%s eth0 egress' % host['ns']]['steering']['rules']) == len(APPLIED), before
    tasks = [task(module, args, host, check) for check in (False, True) for module, args, dummy in BAD_INPUTS]
    res = run_play(tasks)
    assert len(res) == len(tasks), res
    problems = []
    for i, (module, args, expected) in enumerate(BAD_INPUTS * 2):
        outcome = res.tasks[i]
        expected = fill(expected, host)
        message = outcome['result'].get('msg', '')
        if outcome['status'] != 'failed':
            problems.append('%s %r was not refused: %s' % (module, args, outcome['status']))
        elif expected not in message:
            problems.append('%s %r: expected %r in %r' % (module, args, expected, message))
    assert not problems, '\n'.join(problems)
    after = host_state(host)
    assert after == before

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.bpf_filter through ansible-playbook, with real traffic on a veth pair between two namespaces.

Objects: the shipped files/bpf/steering.bpf.o, and tests/dataplane/bpf/drop_icmp.bpf.c compiled here in
three builds: as is, a rebuild (drops UDP instead of ICMP, and its by_proto map has twice the entries:
incompatible with the pinned one), and a build the verifier rejects (reads the packet unchecked).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import subprocess
import sys

import pytest

from playbook import run_play

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nslab import Lab, netns_exists  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ebpf.tc.plugins.module_utils import _bpfmap, _bpfobject, _libbpf, _module_support, _program, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError  # noqa: E402

STEERING = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
DROP_ICMP_SRC = os.path.join(ROOT, 'tests', 'dataplane', 'bpf', 'drop_icmp.bpf.c')
SERVER = '10.203.0.2'


@pytest.fixture(scope='module')
def objects(tmp_path_factory):
    """drop_icmp.o, its rebuild drop_icmp_v2.o, and drop_icmp_rejected.o (same program name, fails the
    verifier), compiled like files/bpf/build.sh does."""
    out = tmp_path_factory.mktemp('bpf')
    with open(DROP_ICMP_SRC) as src:
        source = src.read()
    check = 'if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))'
    drop = 'if (ip->protocol == IPPROTO_ICMP) {'
    assert check in source and drop in source and source.count('max_entries, 256') == 1
    variants = {
        'drop_icmp': (source, []),
        'drop_icmp_v2': (source.replace(drop, 'if (ip->protocol == DROP_PROTO) {')
                         .replace('max_entries, 256', 'max_entries, 512'), ['-DDROP_PROTO=IPPROTO_UDP']),
        'drop_icmp_rejected': (source.replace(check, 'if (eth->h_proto != bpf_htons(ETH_P_IP))'), []),
    }
    built = {}
    for name, (text, flags) in variants.items():
        path = out / (name + '.bpf.c')
        path.write_text(text)
        target = str(out / (name + '.o'))
        subprocess.run(['clang', '-O2', '-g', '-target', 'bpf', '-I/usr/include/%s-linux-gnu' % os.uname().machine]
                       + flags + ['-c', str(path), '-o', target], check=True)
        built[name] = target
    return built


@pytest.fixture
def pair():
    """client --veth-- server (10.203.0.1 / .2); pins under the client's default pin dirs removed after."""
    with Lab() as lab:
        client, server = lab.ns('client'), lab.ns('server')
        lab.veth(client, 'eth0', server, 'eth0')
        lab.addr(client, 'eth0', '10.203.0.1/24')
        lab.addr(server, 'eth0', SERVER + '/24')
        lab.tcp_listener(server, 8080)
        try:
            yield lab, client
        finally:
            for direction in ('ingress', 'egress'):
                _program.remove_pins(_program.default_pin_dir('eth0', direction, netns=client))


def bpf_filter(ns, **args):
    """A bpf_filter task; these tests are about the clsact backend (test_tcx.py has the TCX one's)."""
    args.setdefault('interface', 'eth0')
    if args.get('state') != 'absent':
        args.setdefault('backend', 'clsact')
    return {'ebpf.tc.bpf_filter': dict(netns=ns, **args)}


def four(task):
    """check → apply → apply again → apply again in check mode."""
    return [dict(task, check_mode=True), task, task, dict(task, check_mode=True)]


def filters(ns, direction='egress'):
    with _tc.open_netlink(ns) as ipr:
        return _tc.list_filters(ipr, _tc.ifindex(ipr, 'eth0'), direction)


def udp_send(lab, ns, count=5):
    code = ('import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n'
            'for _ in range(%d): s.sendto(b"x",(%r,9))\n' % (count, SERVER))
    lab.exec(ns, sys.executable, '-c', code)


def verdict_counts(pin_dir):
    """(passed, dropped) from drop_icmp's pinned per-CPU `verdicts` map, summed over CPUs."""
    with _bpfmap.Map.from_pin(os.path.join(pin_dir, 'verdicts')) as verdicts:
        return tuple(sum(struct.unpack('<Q', v)[0] for v in verdicts.lookup_percpu(struct.pack('<I', key)))
                     for key in (0, 1))


def test_steering_present_absent_idempotent(pair):
    lab, ns = pair
    pin_dir = _program.default_pin_dir('eth0', 'egress', netns=ns)
    present = bpf_filter(ns, object=STEERING, program='steering')
    absent = bpf_filter(ns, program='steering', state='absent', unpin=True)
    res = run_play(four(present) + four(absent), diff=True)
    assert res.rc == 0, res
    assert res.changed == [True, True, False, False] * 2, res

    check, first, again = res[0], res[1], res[2]
    assert check['prog_id'] is None and check['clsact_added'] is True
    assert first['clsact_added'] is True and sorted(first['maps']['created']) == sorted(check['maps']['created'])
    assert first['maps']['reused'] == [] and 'rules' in first['maps']['created']
    assert (first['name'], first['priority'], first['handle'], first['pin_dir']) == ('ebpf_tc:steering', 10, 1, pin_dir)
    assert first['tag'] == check['tag'] and len(first['tag']) == 16
    assert (again['prog_id'], again['tag']) == (first['prog_id'], first['tag'])
    assert again['maps']['created'] == [] and 'rules' in again['maps']['reused']
    assert os.path.join(pin_dir, 'steering') in first['pinned'] and first['pinned'] == again['pinned']
    assert check['diff']['before'] == {'filter': None, 'link': None, 'pins': []}
    assert check['diff']['after']['filter']['name'] == 'ebpf_tc:steering'
    assert first['diff']['after']['filter'] == {'kind': 'bpf', 'priority': 10, 'handle': 1, 'name': 'ebpf_tc:steering',
                                                'prog_id': first['prog_id'], 'tag': first['tag']}
    assert again['diff']['before'] == again['diff']['after']

    assert res[4]['diff']['before']['filter']['prog_id'] == first['prog_id']
    assert res[4]['diff']['after'] == {'filter': None, 'link': None, 'pins': []}
    assert res[5]['detached'] is True and sorted(res[5]['unpinned']) == sorted(first['pinned'])
    assert res[6]['detached'] is False and res[6]['unpinned'] == []
    assert filters(ns) == []
    assert not os.path.exists(pin_dir) and not os.path.exists(os.path.dirname(os.path.dirname(pin_dir)))
    assert lab.tcp_connects(ns, SERVER, 8080)


def test_the_hooks_of_a_namespace_share_one_learned_paths_map(pair):
    """learned_paths is pinned once per namespace (and in each hook's directory); it goes with the last hook."""
    lab, ns = pair
    shared = os.path.join(_program.shared_pin_dir(ns), 'learned_paths')

    def map_id(path):
        with _bpfmap.Map.from_pin(path) as pinned:
            return pinned.info.id
    hooks = [dict(direction=direction, program='steering') for direction in ('egress', 'ingress')]
    res = run_play([bpf_filter(ns, object=STEERING, **hook) for hook in hooks])
    assert res.rc == 0, res
    ids = set(map_id(os.path.join(_program.default_pin_dir('eth0', hook['direction'], ns), 'learned_paths'))
              for hook in hooks)
    assert ids == {map_id(shared)}
    # a new build of one hook keeps the map: it is the namespace's
    res = run_play([bpf_filter(ns, object=STEERING, backend='tcx', **hooks[0])])
    assert res.rc == 0 and res[0]['changed'], res
    assert map_id(os.path.join(_program.default_pin_dir('eth0', 'egress', ns), 'learned_paths')) in ids
    res = run_play([bpf_filter(ns, state='absent', unpin=True, **hooks[0])])
    assert res.rc == 0, res
    assert map_id(shared) in ids
    res = run_play([bpf_filter(ns, state='absent', unpin=True, **hooks[1])])
    assert res.rc == 0, res
    assert not os.path.exists(os.path.join(_program.PIN_ROOT, 'netns', ns)), 'the last hook took the shared pin'


def test_drop_icmp_rebuild_and_verifier_rejection(pair, objects):
    lab, ns = pair
    pin_dir = _program.default_pin_dir('eth0', 'egress', netns=ns)
    assert lab.pings(ns, SERVER) == 1
    res = run_play(four(bpf_filter(ns, object=objects['drop_icmp'], program='drop_icmp')))
    assert res.rc == 0, res
    assert res.changed == [True, True, False, False], res
    v1 = res[1]
    assert sorted(v1['maps']['created']) == ['by_proto', 'locked', 'mark_cfg', 'prefixes', 'verdicts']
    assert [(f['name'], f['prog_id'], f['tag'], f['priority'], f['handle'], f['direct_action'])
            for f in filters(ns)] == [('ebpf_tc:drop_icmp', v1['prog_id'], v1['tag'], 10, 1, True)]
    # the user's program really runs on egress: ping is dropped, TCP passes
    assert lab.pings(ns, SERVER, count=2) == 0
    assert lab.tcp_connects(ns, SERVER, 8080)
    passed, dropped = verdict_counts(pin_dir)
    assert dropped >= 2 and passed >= 1

    # the verifier rejects a build: the error carries the log's end, the old program and pins stay
    res = run_play([dict(bpf_filter(ns, object=objects['drop_icmp_rejected'], program='drop_icmp'),
                         ignore_errors=True)])
    assert res.tasks[0]['status'] == 'failed', res
    assert 'invalid access to packet' in res[0]['verifier_log']
    assert 'Permission denied' in res[0]['msg'] and res[0]['verifier_log'] in res[0]['msg']
    assert [(f['prog_id'], f['tag']) for f in filters(ns)] == [(v1['prog_id'], v1['tag'])]
    assert _program.pinned_program(pin_dir, 'drop_icmp').id == v1['prog_id']
    assert verdict_counts(pin_dir)[1] == dropped       # same map, same counts (stray IPv6 ND may pass)
    assert lab.pings(ns, SERVER) == 0
    dropped = verdict_counts(pin_dir)[1]

    # a rebuild replaces the filter in place: new program, same priority/handle; compatible maps kept
    res = run_play(four(bpf_filter(ns, object=objects['drop_icmp_v2'], program='drop_icmp')), diff=True)
    assert res.rc == 0, res
    assert res.changed == [True, True, False, False], res
    v2 = res[1]
    assert res[0]['maps'] == v2['maps'] == {'reused': ['mark_cfg', 'verdicts', 'prefixes', 'locked'],
                                            'replaced': ['by_proto'], 'created': []}
    assert v2['prog_id'] != v1['prog_id'] and v2['tag'] != v1['tag']
    assert [(f['name'], f['prog_id'], f['priority'], f['handle']) for f in filters(ns)] == [
        ('ebpf_tc:drop_icmp', v2['prog_id'], 10, 1)]
    assert v2['diff']['before']['filter']['prog_id'] == v1['prog_id']
    assert v2['diff']['after']['filter']['prog_id'] == v2['prog_id']
    assert _program.pinned_program(pin_dir, 'drop_icmp').id == v2['prog_id']
    with _bpfmap.Map.from_pin(os.path.join(pin_dir, 'by_proto')) as by_proto:
        assert by_proto.info.max_entries == 512      # the incompatible pin was replaced
    assert verdict_counts(pin_dir)[1] == dropped      # the verdict counters survived the upgrade
    assert lab.pings(ns, SERVER) == 1                 # v2 passes ICMP...
    udp_send(lab, ns, 5)
    assert verdict_counts(pin_dir)[1] == dropped + 5  # ...and drops UDP

    res = run_play(four(bpf_filter(ns, program='drop_icmp', state='absent')))
    assert res.rc == 0, res
    assert res.changed == [True, True, False, False], res
    assert filters(ns) == [] and os.path.exists(os.path.join(pin_dir, 'verdicts'))   # unpin: false keeps pins


def test_errors(pair, objects):
    lab, ns = pair
    missing = ns + '-missing'
    ok = dict(object=STEERING, program='steering')
    res = run_play([dict(task, ignore_errors=True) for task in [
        bpf_filter(ns, interface='nope0', **ok),
        bpf_filter(missing, **ok),
        bpf_filter(ns, object='/nonexistent/steering.bpf.o', program='steering'),
        bpf_filter(ns, object='/bin/true', program='steering'),
        bpf_filter(ns, object=STEERING, program='nope'),
        bpf_filter(ns, priority=0, **ok),
        bpf_filter(ns, program='steering'),
    ]])
    assert [t['status'] for t in res.tasks] == ['failed'] * 7, res
    msgs = [res[i]['msg'] for i in range(7)]
    assert msgs[0] == 'interface nope0 does not exist'
    assert 'network namespace %s does not exist' % missing in msgs[1] and not netns_exists(missing)
    assert msgs[2] == 'BPF object /nonexistent/steering.bpf.o does not exist'
    assert msgs[3].startswith('/bin/true is not a BPF object')
    assert msgs[4] == 'program nope is not in %s (it has: steering)' % STEERING
    assert msgs[5] == 'priority must be between 1 and 65535, not 0'
    assert 'state is present but all of the following are missing: object' in msgs[6]
    assert filters(ns) == [] and not os.path.exists(_program.default_pin_dir('eth0', 'egress', netns=ns))

    # a filter another tool attached at our priority/handle is neither replaced nor detached
    with _bpfobject.BpfObject.open(objects['drop_icmp']) as obj:
        obj.load()
        with _tc.open_netlink(ns) as ipr:
            index = _tc.ifindex(ipr, 'eth0')
            _tc.ensure_clsact(ipr, index)
            _tc.attach(ipr, index, 'egress', obj.program_fd('drop_icmp'), 'other_tool', 10, 1)
    res = run_play([dict(task, ignore_errors=True) for task in [
        bpf_filter(ns, **ok),
        bpf_filter(ns, program='steering', state='absent'),
        bpf_filter(ns, state='absent'),
    ]])
    assert [t['status'] for t in res.tasks] == ['failed'] * 3, res
    for i in range(3):
        assert 'egress priority 10 handle 0x1: bpf other_tool on eth0 is a filter this collection did not attach' \
            in res[i]['msg']
    assert [f['name'] for f in filters(ns)] == ['other_tool']
    # one of ours for another program is not detached by name either
    res = run_play([bpf_filter(ns, object=STEERING, program='steering', priority=20),
                    dict(bpf_filter(ns, program='drop_icmp', priority=20, state='absent'), ignore_errors=True)])
    assert res.tasks[1]['status'] == 'failed'
    assert 'belongs to program steering, not drop_icmp' in res[1]['msg']


class FakeModule:
    _name = 'ebpf.tc.bpf_filter'

    def fail_json(self, **kwargs):
        raise EbpfTcError(kwargs['msg'])


def test_host_checks(monkeypatch):
    """Not root, kernel too old, bpffs missing: the module fails before touching anything."""
    monkeypatch.setattr(_libbpf, 'get_libbpf', lambda: None)
    monkeypatch.setattr(os, 'geteuid', lambda: 1000)
    with pytest.raises(EbpfTcError, match=r'ebpf.tc.bpf_filter needs root on the target \(use become: true\)'):
        _module_support.check_host(FakeModule())
    monkeypatch.setattr(os, 'geteuid', lambda: 0)
    monkeypatch.setattr(_program, 'kernel_version', lambda release=None: (5, 10))
    with pytest.raises(EbpfTcError, match='kernel 5.10 is too old: ebpf.tc needs Linux 5.11 or later'):
        _module_support.check_host(FakeModule())
    monkeypatch.setattr(_program, 'kernel_version', lambda release=None: (6, 1))
    monkeypatch.setattr(_program, 'bpffs_mounted', lambda path=None: False)
    with pytest.raises(EbpfTcError, match='no bpf filesystem is mounted at /sys/fs/bpf'):
        _module_support.check_host(FakeModule())
    monkeypatch.setattr(_program, 'bpffs_mounted', lambda path=None: True)
    _module_support.check_host(FakeModule())


def test_bpffs_mounted_reads_the_mount_table(tmp_path):
    assert _program.bpffs_mounted('/sys/fs/bpf') == os.path.ismount('/sys/fs/bpf')
    assert _program.bpffs_mounted(str(tmp_path)) is False


def test_owned_filter_names():
    assert _tc.owned_name('steering') == 'ebpf_tc:steering'
    assert _tc.is_owned({'kind': 'bpf', 'name': 'ebpf_tc:steering'})
    assert _tc.owned_program({'kind': 'bpf', 'name': 'ebpf_tc:steering'}) == 'steering'
    assert not _tc.is_owned({'kind': 'bpf', 'name': 'steering'})
    assert not _tc.is_owned({'kind': 'bpf', 'name': None})
    assert not _tc.is_owned({'kind': 'u32', 'name': 'ebpf_tc:x'})
    assert _tc.owned_program({'kind': 'bpf', 'name': 'cil_from_netdev'}) is None

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.bpf_map_info through ansible-playbook, reading an operator's own program's maps after traffic.

tests/integration/bpf/protocol_stats.bpf.c (packets per IP protocol in a 256-entry per-CPU array, and
packets and bytes per (protocol, port) in a struct-keyed hash) is attached with ebpf.tc.bpf_filter on the
egress of a veth between two namespaces; pings and UDP datagrams go out; the module must return the counts
that traffic made, per CPU and summed, as ``bpftool map dump`` shows them. The steering program's own maps
are read by the module in tests/integration/test_traffic.py (test_counters_match_packets_sent); the
decoding of every BTF kind is tests/dataplane/test_btf_decode.py's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from playbook import run_play

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nslab import Lab  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf, _program  # noqa: E402

BUILD_SH = os.path.join(ROOT, 'files', 'bpf', 'build.sh')
PROTOCOL_STATS_SRC = os.path.join(ROOT, 'tests', 'integration', 'bpf', 'protocol_stats.bpf.c')
SERVER = '10.204.0.2'
ICMP, UDP = 1, 17
PING_FRAME = 14 + 20 + 8 + 56      # Ethernet, IPv4, ICMP echo, ping's default 56 data bytes
DATAGRAM_FRAME = 14 + 20 + 8 + 1   # one byte of payload
UDP_PORT = 9


@pytest.fixture(scope='module')
def protocol_stats_object(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('bpf') / 'protocol_stats.bpf.o')
    subprocess.run([BUILD_SH, PROTOCOL_STATS_SRC, out], check=True, timeout=60)
    return out


@pytest.fixture
def counted(protocol_stats_object):
    """client --veth-- server with protocol_stats on the client's egress, after 3 pings and 7 datagrams:
    (the hook's pin dir, pings, datagrams). The program and its pins are removed afterwards."""
    with Lab() as lab:
        client, server = lab.ns('client'), lab.ns('server')
        lab.veth(client, 'eth0', server, 'eth0')
        lab.addr(client, 'eth0', '10.204.0.1/24')
        lab.addr(server, 'eth0', SERVER + '/24')
        pin_dir = _program.default_pin_dir('eth0', 'egress', netns=client)
        try:
            res = run_play([{'ebpf.tc.bpf_filter': {'netns': client, 'interface': 'eth0', 'backend': 'clsact',
                                                    'object': protocol_stats_object, 'program': 'count_protocols'}}])
            assert res.rc == 0, res
            pings, datagrams = 3, 7
            assert lab.pings(client, SERVER, count=pings) == pings     # every one answered: none sent twice
            code = ('import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n'
                    'for _ in range(%d): s.sendto(b"x",(%r,%d))\n' % (datagrams, SERVER, UDP_PORT))
            lab.exec(client, sys.executable, '-c', code)
            yield pin_dir, pings, datagrams
        finally:
            _program.remove_pins(pin_dir)


def map_info(**args):
    return {'ebpf.tc.bpf_map_info': args}


def bpftool_per_cpu(path):
    """{key: [value per CPU]} of a per-CPU map whose keys and values are integers, as bpftool dumps it."""
    dump = json.loads(subprocess.run(['bpftool', '-j', 'map', 'dump', 'pinned', path], check=True,
                                     stdout=subprocess.PIPE, timeout=60).stdout)
    return dict((e['formatted']['key'], [v['value'] for v in e['formatted']['values']]) for e in dump)


def test_returns_the_counts_traffic_made_per_cpu_and_summed(counted):
    pin_dir, pings, datagrams = counted
    stats_path = os.path.join(pin_dir, 'protocol_stats')
    read = map_info(path=stats_path, skip_zero=True)
    res = run_play([read, dict(read, check_mode=True), map_info(path=os.path.join(pin_dir, 'port_stats')),
                    map_info(path=stats_path, keys=[ICMP, '0x11000000', 2])])
    assert res.rc == 0 and res.changed == [False] * 4, res
    stats = res[0]['map']
    assert dict((k, stats[k]) for k in ('name', 'type', 'key_size', 'value_size', 'max_entries', 'key_type',
                                        'value_type', 'percpu', 'readable', 'truncated', 'path')) == {
        'name': 'protocol_stats', 'type': 'percpu_array', 'key_size': 4, 'value_size': 8, 'max_entries': 256,
        'key_type': '__u32', 'value_type': '__u64', 'percpu': True, 'readable': True, 'truncated': False,
        'path': stats_path}
    assert stats['btf_id'] > 0
    by_proto = dict((e['key'], e) for e in stats['entries'])
    assert sorted(by_proto) == [ICMP, UDP]     # IPv4 only; the rest of the array is zeros, skipped
    assert (by_proto[ICMP]['value'], by_proto[UDP]['value']) == (pings, datagrams)
    assert len(by_proto[UDP]['values']) == _libbpf.num_possible_cpus()
    assert sum(by_proto[UDP]['values']) == datagrams
    assert by_proto[UDP]['key_hex'] == '0x11000000'
    bpftool = bpftool_per_cpu(stats_path)
    assert all(by_proto[k]['values'] == bpftool[k] for k in (ICMP, UDP))
    assert res[1]['map'] == stats, 'check mode reads the same'

    ports = res[2]['map']
    assert (ports['key_type'], ports['value_type'], ports['percpu']) == (
        'struct port_key', 'struct port_counters', False)
    assert sorted((e['key']['proto'], e['key']['dport'], e['value']['packets'], e['value']['bytes'])
                  for e in ports['entries']) == [
        (ICMP, 0, pings, pings * PING_FRAME), (UDP, UDP_PORT, datagrams, datagrams * DATAGRAM_FRAME)]

    asked = res[3]['map']['entries']
    assert [(e['key'], e['value']) for e in asked] == [(ICMP, pings), (UDP, datagrams), (2, 0)]


def test_a_pin_dir_lists_its_maps_and_limits_the_entries(counted):
    pin_dir, pings, datagrams = counted
    res = run_play([map_info(pin_dir=pin_dir, max_entries=1), map_info(pin_dir=pin_dir, max_entries=0)])
    assert res.rc == 0, res
    first, bare = res[0], res[1]
    assert sorted(first['maps']) == ['port_stats', 'protocol_stats'] and first['other_pins'] == ['count_protocols']
    stats = first['maps']['protocol_stats']
    assert [(e['key'], e['value']) for e in stats['entries']] == [(0, 0)] and stats['truncated'] is True
    assert len(first['maps']['port_stats']['entries']) == 1 and first['maps']['port_stats']['truncated'] is True
    assert all(m['entries'] == [] and m['truncated'] for m in bare['maps'].values())


def test_errors_name_the_problem(counted, tmp_path):
    pin_dir, pings, datagrams = counted
    not_bpffs = tmp_path / 'file'
    not_bpffs.write_text('x')

    def failing(**args):
        return dict(map_info(**args), ignore_errors=True)
    res = run_play([
        failing(path=os.path.join(pin_dir, 'nope')),
        failing(path=os.path.join(pin_dir, 'count_protocols')),
        failing(path=pin_dir),
        failing(path=str(not_bpffs)),
        failing(path=os.path.join(pin_dir, 'protocol_stats'), keys=['not-a-key']),
        failing(path=os.path.join(pin_dir, 'protocol_stats'), keys=[2 ** 32]),
        failing(pin_dir=os.path.join(pin_dir, 'nope')),
        failing(pin_dir=str(tmp_path)),
        failing(pin_dir=pin_dir, keys=[1]),
        failing(path=os.path.join(pin_dir, 'protocol_stats'), max_entries=-1),
    ])
    assert all(t['status'] == 'failed' for t in res.tasks), res
    msgs = [t['result'].get('msg', '') for t in res.tasks]
    assert 'no BPF map is pinned at' in msgs[0] and msgs[0].endswith('(the path does not exist)')
    assert 'is a pinned BPF program, not a map' in msgs[1]
    assert 'is a directory, not a pinned BPF map' in msgs[2]
    assert 'is not on a BPF filesystem (bpffs)' in msgs[3]
    assert "keys[0] 'not-a-key' is neither an integer" in msgs[4]
    assert 'keys[0] 4294967296 does not fit in 4 bytes' in msgs[5]
    assert msgs[6].endswith('is not a directory (it does not exist)')
    assert 'is not on a BPF filesystem (bpffs)' in msgs[7]
    assert 'mutually exclusive: pin_dir|keys' in msgs[8]
    assert 'max_entries must be 0 or more, not -1' in msgs[9]

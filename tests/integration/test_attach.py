"""Load, pin, attach and steer on a real egress hook between two throwaway namespaces.

The module layer (issue: modules) builds on exactly these calls; here they are checked with real
traffic: ping and TCP connects across a veth pair, and the counters against what was sent.
"""

import os
import struct
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nslab import Lab  # noqa: E402
import topology as topo  # noqa: E402

import bpftest  # noqa: E402
import objects  # noqa: E402
import packets as pk  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _libbpf, _program, _tc  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._rules import validate  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps  # noqa: E402

OBJECT = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
CLIENT_V4, CLIENT_V6 = '10.201.0.1', 'fd00:201::1'
SERVER_V4, SERVER_V6 = '10.201.0.2', 'fd00:201::2'


@pytest.fixture
def pair():
    """client --veth-- server, each end with v4 and v6 addresses, TCP listeners on 80 and 8080."""
    with Lab() as lab:
        client, server = lab.ns('client'), lab.ns('server')
        lab.veth(client, 'eth0', server, 'eth0')
        for ns, host in ((client, 1), (server, 2)):
            lab.addr(ns, 'eth0', '10.201.0.%d/24' % host)
            lab.addr(ns, 'eth0', 'fd00:201::%d/64' % host)
        for port in (80, 8080):
            lab.tcp_listener(server, port)
        pin_dir = _program.default_pin_dir('eth0', 'egress', netns=client)
        try:
            yield lab, client, pin_dir
        finally:
            _program.remove_pins(pin_dir)


def attach(client, pin_dir):
    return bpftest.attach_pinned(OBJECT, 'steering', pin_dir, client)


def test_attach_drop_icmp_block_port_and_count(pair):
    lab, client, pin_dir = pair
    assert lab.pings(client, SERVER_V4) == 1

    info = attach(client, pin_dir)
    with _tc.open_netlink(client) as ipr:
        filters = _tc.list_filters(ipr, _tc.ifindex(ipr, 'eth0'), 'egress')
    assert [(f['name'], f['prog_id'], f['tag'], f['priority'], f['direct_action']) for f in filters] == [
        ('steering', info.id, info.tag, 49152, True)]
    assert os.path.exists(os.path.join(pin_dir, 'steering'))

    rules = validate([
        {'name': 'no-ping', 'match': {'proto': ['icmp', 'icmpv6'], 'dst': [SERVER_V4, SERVER_V6]},
         'action': 'drop'},
        {'name': 'block-80', 'match': {'proto': 'tcp', 'dport': 80}, 'action': 'drop'},
    ])
    with SteeringMaps(pin_dir) as maps:
        assert maps.apply(rules, ifindex_of=lambda name: 0, ifname_of=str) is True
        assert maps.apply(rules, ifindex_of=lambda name: 0, ifname_of=str) is False  # idempotent
        assert maps.applied(ifname_of=str) == rules

        assert lab.pings(client, SERVER_V4, count=2) == 0
        assert lab.pings(client, SERVER_V6, count=2) == 0
        assert not lab.tcp_connects(client, SERVER_V4, 80, timeout=0.5)
        assert not lab.tcp_connects(client, SERVER_V6, 80, timeout=0.5)
        assert lab.tcp_connects(client, SERVER_V4, 8080)
        assert lab.tcp_connects(client, SERVER_V6, 8080)

        counters = maps.rule_counters()
        # every echo request that left was dropped (ping retries a dropped send, so >= 4)
        assert counters['no-ping']['packets'] >= 4
        assert counters['no-ping']['drops'] == counters['no-ping']['packets']
        assert counters['block-80']['drops'] >= 2
        # the 8080 connects passed: their SYN/ACK/FIN went out under the default action
        assert counters['(default)']['packets'] >= 6 and counters['(default)']['drops'] == 0
        protos = maps.proto_counters()
        assert protos[6]['packets'] > counters['block-80']['packets']  # the 8080 connects are tcp too
        assert protos[1]['packets'] + protos[58]['packets'] >= counters['no-ping']['packets']

        # switching to an empty set with the same program gives the traffic back
        assert maps.apply(validate([]), ifindex_of=lambda name: 0, ifname_of=str) is True
        assert lab.pings(client, SERVER_V4) == 1
        assert lab.tcp_connects(client, SERVER_V4, 80)

    with _tc.open_netlink(client) as ipr:
        index = _tc.ifindex(ipr, 'eth0')
        assert _tc.detach(ipr, index, 'egress', 49152, 1) is True
        assert _tc.list_filters(ipr, index, 'egress') == []
        assert _tc.remove_clsact(ipr, index) is True


def test_redirect_via_next_hop_on_a_real_hook():
    """server -- node -- router: the far addresses are routed to the server, which does not forward; a
    redirect rule on the node's eth0 egress sends them out of eth1 to the router, which owns them."""
    net = topo.topology()
    try:
        pin_dir = net.own_pins(_program.default_pin_dir('eth0', 'egress', netns=net.node))
        net.lab.tcp_listener(net.router, 7000)
        for addr in (topo.FAR_V4, topo.FAR_V6):
            assert not net.lab.tcp_connects(net.node, addr, 7000, timeout=0.5)
        attach(net.node, pin_dir)
        rules = validate([
            {'name': 'far-v4', 'match': {'dst': topo.FAR_V4}, 'action': 'redirect',
             'redirect': {'interface': 'eth1', 'via': topo.ROUTER_V4}},
            {'name': 'far-v6', 'match': {'dst': topo.FAR_V6}, 'action': 'redirect',
             'redirect': {'interface': 'eth1', 'via': topo.ROUTER_V6}},
        ])
        with _tc.open_netlink(net.node) as ipr:
            eth1 = _tc.ifindex(ipr, 'eth1')
        router_rx = net.rx_packets(net.router, 'eth0')
        with SteeringMaps(pin_dir) as maps:
            assert maps.apply(rules, ifindex_of={'eth1': eth1}.__getitem__, ifname_of=str) is True
            for addr in (topo.FAR_V4, topo.FAR_V6):
                assert net.lab.tcp_connects(net.node, addr, 7000)
            counters = maps.rule_counters()
        assert net.rx_packets(net.router, 'eth0') - router_rx >= 6   # SYN, ACK, FIN of each connect at least
        assert counters['far-v4']['packets'] >= 3 and counters['far-v6']['packets'] >= 3
    finally:
        net.close()


def test_reload_keeps_rules_and_counters(pair):
    """A second load of the object (an upgrade) reuses the pinned maps: rules and counters survive."""
    lab, client, pin_dir = pair
    attach(client, pin_dir)
    rules = validate([{'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'}])
    with SteeringMaps(pin_dir) as maps:
        maps.apply(rules, ifindex_of=lambda name: 0, ifname_of=str)
    assert lab.pings(client, SERVER_V4, count=2) == 0
    with SteeringMaps(pin_dir) as maps:
        before = maps.rule_counters()['no-ping']['packets']
    assert before >= 2

    info = attach(client, pin_dir)  # same object again: tc filter replace at the same priority/handle
    with _tc.open_netlink(client) as ipr:
        filters = _tc.list_filters(ipr, _tc.ifindex(ipr, 'eth0'), 'egress')
    assert [f['prog_id'] for f in filters] == [info.id]
    with SteeringMaps(pin_dir) as maps:
        assert maps.applied(ifname_of=str) == rules
        assert maps.rule_counters()['no-ping']['packets'] == before
    assert lab.pings(client, SERVER_V4) == 0


# Sends each frame (hex, a line each on stdin) once out of eth0 with a virtio-net header asking for a linear
# part of argv[1] bytes: struct virtio_net_hdr {flags, gso_type, hdr_len, gso_size, csum_start,
# csum_offset}, little-endian, no offload. Prints a line per frame: "sent", or "dropped" when the egress
# hook dropped it (the send fails with ENOBUFS then).
VNET_SENDER = r'''
import errno, socket, struct, sys
SOL_PACKET, PACKET_VNET_HDR = 263, 15
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
sock.bind(('eth0', 0))
vnet = struct.pack('<BBHHHH', 0, 0, int(sys.argv[1]), 0, 0, 0)
for line in sys.stdin:
    try:
        sock.send(vnet + bytes.fromhex(line.strip()))
        print('sent')
    except OSError as err:
        if err.errno != errno.ENOBUFS:
            raise
        print('dropped')
'''


def test_headers_past_the_linear_part_are_classified(pair, tmp_path):
    """BPF_PROG_TEST_RUN always hands the program a linear skb; this is the layer that sees the
    bpf_skb_pull_data path of files/bpf/steering_parse.h. An AF_PACKET socket with PACKET_VNET_HDR sends
    frames larger than a page whose virtio header puts only the Ethernet header in the linear part (the rest
    lands in page fragments): an IPv4 one with options, an IPv6 one with a hop-by-hop header. A probe filter
    in front of steering (tests/integration/bpf/linear_probe.bpf.c) records how much of each was linear; the
    rule counters show that steering classified them all the same."""
    frame_len, eth_hlen, mtu = 5000, 14, 9000   # AF_PACKET builds a non-linear skb only past a page
    lab, client, pin_dir = pair
    lab.exec(client, 'ip', 'link', 'set', 'eth0', 'mtu', str(mtu))
    attach(client, pin_dir)
    rules = validate([
        {'name': 'v4-udp-4001', 'match': {'proto': 'udp', 'dport': 4001}, 'action': 'drop'},
        {'name': 'v6-udp-4002', 'match': {'dst': SERVER_V6, 'proto': 'udp', 'dport': 4002}, 'action': 'drop'},
    ])
    v4 = pk.ether(pk.ipv4(CLIENT_V4, SERVER_V4, pk.IPPROTO['udp'],
                          pk.udp(4000, 4001, b'4' * (frame_len - eth_hlen - 24 - 8)), options=b'\x01' * 4),
                  pk.ETH_P_IP)
    v6 = pk.ether(pk.ipv6(CLIENT_V6, SERVER_V6, 0, pk.ext_options(pk.IPPROTO['udp'])
                          + pk.udp(4000, 4002, b'6' * (frame_len - eth_hlen - 40 - 8 - 8))), pk.ETH_P_IPV6)
    assert [len(v4), len(v6)] == [frame_len, frame_len]
    with SteeringMaps(pin_dir) as maps, _bpfobject.BpfObject.open(objects.linear_probe(tmp_path)) as probe:
        maps.apply(rules, ifindex_of=lambda name: 0, ifname_of=str)
        probe.load()
        seen = probe.map('seen')   # [0] frames of [2] bytes seen, [1] the longest linear part among them
        seen.update(struct.pack('<I', 2), struct.pack('<Q', frame_len))
        with _tc.open_netlink(client) as ipr:   # priority 1: in front of steering; it passes to the next filter
            _tc.attach(ipr, _tc.ifindex(ipr, 'eth0'), 'egress', probe.program_fd('linear_probe'), 'linear_probe',
                       1, 1)
        sent = subprocess.run(['ip', 'netns', 'exec', client, sys.executable, '-c', VNET_SENDER, str(eth_hlen)],
                              input=v4.hex() + '\n' + v6.hex() + '\n', stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, check=False, timeout=30)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.split() == ['dropped', 'dropped']
        count, linear = (struct.unpack('<Q', seen.lookup(struct.pack('<I', i)))[0] for i in (0, 1))
        assert count == 2
        assert eth_hlen <= linear < eth_hlen + 20   # the IP headers were outside: steering pulled them in
        counters = maps.rule_counters()
    assert {name: (c['packets'], c['drops']) for name, c in counters.items() if name != '(default)'} == {
        'v4-udp-4001': (1, 1), 'v6-udp-4002': (1, 1)}


def test_missing_namespace_is_an_error_and_is_not_created():
    name = 'ebpftc-does-not-exist'
    with pytest.raises(EbpfTcError, match='network namespace %s does not exist' % name):
        _tc.open_netlink(name)
    assert not os.path.exists('/run/netns/' + name)


def test_missing_program_name_pins_nothing(tmp_path):
    pin_dir = os.path.join(_program.PIN_ROOT, 'test-missing-program', 'egress')
    try:
        with pytest.raises(EbpfTcError, match='program nope is not in .*it has: steering'):
            bpftest.load_and_pin(OBJECT, 'nope', pin_dir)
        assert os.listdir(pin_dir) == []
    finally:
        _program.remove_pins(pin_dir)


def test_old_kernel_is_refused_with_the_floor_named():
    with pytest.raises(EbpfTcError, match='kernel 5.10 is too old: ebpf.tc needs Linux 5.11'):
        _program.check_kernel('5.10.0-28-amd64')
    _program.check_kernel('5.11.0-16-generic')
    _program.check_kernel('5.14.0-427.13.1.el9_4.x86_64')   # RHEL 9: its verifier decides, not its number


def test_not_a_bpf_object_is_refused(tmp_path):
    with pytest.raises(_libbpf.LibbpfError):
        bpftest.load_and_pin('/bin/true', 'steering', str(tmp_path / 'pins'))


def test_auto_backend_picks_tcx_from_6_6_and_clsact_before():
    """backend auto on the running kernel (this one runs in every guest of the kernel matrix too): TCX from
    Linux 6.6, clsact before it, where asking for tcx is an error naming the field. Either way the program
    steers: a drop-ICMP rule drops the ping and TCP passes."""
    has_tcx = _program.kernel_version() >= (6, 6)
    with Lab() as lab:
        client, server = lab.ns('client'), lab.ns('server')
        lab.veth(client, 'eth0', server, 'eth0')
        lab.addr(client, 'eth0', '10.201.0.1/24')
        lab.addr(server, 'eth0', SERVER_V4 + '/24')
        lab.tcp_listener(server, 8080)
        pin_dir = _program.default_pin_dir('eth0', 'egress', netns=client)
        try:
            if not has_tcx:
                with pytest.raises(EbpfTcError, match='backend: tcx needs Linux 6.6 or later'):
                    _program.filter_present('eth0', 'egress', client, pin_dir, OBJECT, 'steering', 10, 1,
                                            backend='tcx')
                assert not os.path.exists(pin_dir)
            res = _program.filter_present('eth0', 'egress', client, pin_dir, OBJECT, 'steering', 10, 1,
                                          backend='auto')
            assert res['backend'] == ('tcx' if has_tcx else 'clsact'), res
            assert (res['link'] is not None) == has_tcx and (res['filter'] is not None) != has_tcx, res
            with _tc.open_netlink(client) as ipr:
                assert _tc.has_clsact(ipr, _tc.ifindex(ipr, 'eth0')) != has_tcx
            again = _program.filter_present('eth0', 'egress', client, pin_dir, OBJECT, 'steering', 10, 1,
                                            backend='auto')
            assert again['changed'] is False and again['prog_id'] == res['prog_id']
            with SteeringMaps(pin_dir) as maps:
                maps.apply(validate([{'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'}]),
                           ifindex_of=lambda name: 0, ifname_of=str)
                assert lab.pings(client, SERVER_V4, count=2) == 0
                assert lab.tcp_connects(client, SERVER_V4, 8080)
                assert maps.rule_counters()['no-ping']['drops'] >= 2
            gone = _program.filter_absent('eth0', 'egress', client, pin_dir, 'steering', 10, 1, unpin=True)
            assert gone['detached'] is True and lab.pings(client, SERVER_V4) == 1
        finally:
            _program.remove_pins(pin_dir)

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A three-namespace topology for traffic tests: a node with two uplinks, a server and a router.

::

    server eth0 ---- eth0 node eth1 ---- eth0 router (lo: the "far" addresses)
    10.210.0.2        10.210.0.1 10.211.0.1   10.211.0.2   10.212.0.1
    fd00:210::2       fd00:210::1 fd00:211::1 fd00:211::2  fd00:212::1

The node routes the far prefixes via the server (eth0), which does not forward: a connect to a far
address fails unless something (a steering redirect) sends it out of eth1 to the router, which owns
them. The router routes the node's eth0 prefixes back via eth1, so replies come in on eth1.

Neighbour entries are static on every link: ARP/ND never queues or drops a packet of a test (counts
stay exact) and rules that drop ICMP/ICMPv6 cannot starve neighbour discovery.

Everything is made with tools/nslab.py's Lab and removed on close (also on failure): namespaces
(with their veths, qdiscs, filters and sockets), background processes, and the pin directories the
tests register.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from nslab import Lab  # noqa: E402  pylint: disable=wrong-import-position

from ansible_collections.ebpf.tc.plugins.module_utils import _program  # noqa: E402  pylint: disable=wrong-import-position

SERVER_V4, SERVER_V6 = '10.210.0.2', 'fd00:210::2'
NODE_ETH0_V4, NODE_ETH0_V6 = '10.210.0.1', 'fd00:210::1'
NODE_ETH1_V4, NODE_ETH1_V6 = '10.211.0.1', 'fd00:211::1'
ROUTER_V4, ROUTER_V6 = '10.211.0.2', 'fd00:211::2'
FAR_V4, FAR_V6 = '10.212.0.1', 'fd00:212::1'
FAR_NET_V4, FAR_NET_V6 = '10.212.0.0/24', 'fd00:212::/64'
TEST_PIN_ROOT = '/sys/fs/bpf/ebpf_tc_test'

# Sends UDP datagrams from the namespace it runs in. argv: JSON {dst, ports, count, duration, rate}.
# Ports are used round-robin; stops after `count` datagrams or `duration` seconds, or on SIGTERM;
# `rate` (datagrams per second, 0 = as fast as it can) is kept by sleeping to a schedule. Prints
# {"sent": n, "elapsed": seconds, "per_port": {port: n}} where sent counts successful sendto() calls
# (a datagram the egress hook drops still counts: the kernel reports no error for it to UDP).
UDP_SENDER = r'''
import json, signal, socket, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *args: stop.append(1))
cfg = json.loads(sys.argv[1])
family = socket.AF_INET6 if ':' in cfg['dst'] else socket.AF_INET
sock = socket.socket(family, socket.SOCK_DGRAM)
ports, count, rate = cfg['ports'], cfg['count'], cfg['rate']
payload = b'x' * 32
per_port = dict((p, 0) for p in ports)
sent = 0
start = time.monotonic()
deadline = start + cfg['duration']
while sent < count and not stop:
    now = time.monotonic()
    if now >= deadline:
        break
    if rate:
        due = start + sent / float(rate)
        if due > now:
            time.sleep(min(due - now, 0.05))
            continue
    port = ports[sent % len(ports)]
    sock.sendto(payload, (cfg['dst'], port))
    per_port[port] += 1
    sent += 1
elapsed = time.monotonic() - start
print(json.dumps({'sent': sent, 'elapsed': elapsed, 'per_port': per_port}))
'''

# Counts UDP datagrams on a port (every address, both families) until its stdin closes, then prints
# {"received": n}. Prints "up" once bound.
UDP_RECEIVER = r'''
import json, select, socket, sys
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
sock.bind(('::', int(sys.argv[1])))
sock.setblocking(False)
sys.stdout.write('up\n')
sys.stdout.flush()
received = 0
while True:
    ready, _, _ = select.select([sock, sys.stdin], [], [], 5.0)
    if sock in ready:
        while True:
            try:
                sock.recv(2048)
            except BlockingIOError:
                break
            received += 1
    if sys.stdin in ready and not sys.stdin.read(1):
        break
print(json.dumps({'received': received}))
'''


class UdpReceiver:
    """A UDP counter in a namespace; `stop()` returns how many datagrams it received."""

    def __init__(self, proc):
        self.proc = proc

    def stop(self, timeout=10):
        out, dummy = self.proc.communicate(input='', timeout=timeout)
        return json.loads(out.strip().splitlines()[-1])['received']


class BackgroundSender:
    """A UDP sender running in the background; `result()` waits for its report."""

    def __init__(self, proc):
        self.proc = proc

    def stop(self, timeout=10):
        """Stop it now (SIGTERM to its pid: `ip netns exec` execs the sender) and return its report."""
        self.proc.terminate()
        return self.result(timeout)

    def result(self, timeout=30):
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise AssertionError('UDP sender failed (%s): %s' % (self.proc.returncode, err))
        report = json.loads(out.strip().splitlines()[-1])
        report['per_port'] = dict((int(k), v) for k, v in report['per_port'].items())
        return report


class Topology:
    """server -- node -- router, built in a Lab; see the module docstring for the addresses."""

    def __init__(self, lab):
        self.lab = lab
        self.node = lab.ns('node')
        self.server = lab.ns('server')
        self.router = lab.ns('router')
        self.pin_dirs = []
        self._build()

    def _build(self):
        lab = self.lab
        lab.veth(self.node, 'eth0', self.server, 'eth0')
        lab.veth(self.node, 'eth1', self.router, 'eth0')
        for ns, ifname, v4, v6 in ((self.node, 'eth0', NODE_ETH0_V4, NODE_ETH0_V6),
                                   (self.server, 'eth0', SERVER_V4, SERVER_V6),
                                   (self.node, 'eth1', NODE_ETH1_V4, NODE_ETH1_V6),
                                   (self.router, 'eth0', ROUTER_V4, ROUTER_V6)):
            lab.addr(ns, ifname, v4 + '/24')
            lab.addr(ns, ifname, v6 + '/64')
        lab.addr(self.router, 'lo', FAR_V4 + '/32')
        lab.addr(self.router, 'lo', FAR_V6 + '/128')
        lab.exec(self.node, 'ip', 'route', 'add', FAR_NET_V4, 'via', SERVER_V4, 'dev', 'eth0')
        lab.exec(self.node, 'ip', '-6', 'route', 'add', FAR_NET_V6, 'via', SERVER_V6, 'dev', 'eth0')
        lab.exec(self.router, 'ip', 'route', 'add', '10.210.0.0/24', 'via', NODE_ETH1_V4)
        lab.exec(self.router, 'ip', '-6', 'route', 'add', 'fd00:210::/64', 'via', NODE_ETH1_V6)
        # The node sends to the far addresses with its eth0 source (its route says eth0) but, once
        # redirected, gets the replies on eth1. Strict reverse-path filtering (1) would drop them there:
        # its best route back to the far address is eth0. Loose (2) accepts a source routable through
        # any interface. The effective value is max(all, interface), so "all" must not be 1 either.
        lab.exec(self.node, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0')
        lab.exec(self.node, 'sysctl', '-qw', 'net.ipv4.conf.eth1.rp_filter=2')
        self._static_neighbours()

    def _mac(self, ns, ifname):
        return self.lab.exec(ns, 'cat', '/sys/class/net/%s/address' % ifname).stdout.strip()

    def _static_neighbours(self):
        links = ((self.node, 'eth0', (NODE_ETH0_V4, NODE_ETH0_V6), self.server, 'eth0', (SERVER_V4, SERVER_V6)),
                 (self.node, 'eth1', (NODE_ETH1_V4, NODE_ETH1_V6), self.router, 'eth0', (ROUTER_V4, ROUTER_V6)))
        for ns_a, if_a, addrs_a, ns_b, if_b, addrs_b in links:
            mac_a, mac_b = self._mac(ns_a, if_a), self._mac(ns_b, if_b)
            for ns, ifname, addrs, mac in ((ns_a, if_a, addrs_b, mac_b), (ns_b, if_b, addrs_a, mac_a)):
                for addr in addrs:
                    self.lab.exec(ns, 'ip', 'neigh', 'replace', addr, 'lladdr', mac, 'dev', ifname,
                                  'nud', 'permanent')

    def pin_dir(self, name):
        """A fresh pin directory under /sys/fs/bpf/ebpf_tc_test, removed on close."""
        return self.own_pins(os.path.join(TEST_PIN_ROOT, '%s-%s' % (self.lab.prefix, name)))

    def own_pins(self, path):
        """Remove `path` (a pin directory) and its empty parents on close."""
        self.pin_dirs.append(path)
        return path

    def rx_packets(self, ns, ifname):
        out = self.lab.exec(ns, 'cat', '/sys/class/net/%s/statistics/rx_packets' % ifname).stdout
        return int(out.strip())

    def _popen(self, ns, argv, stdin=None):
        proc = subprocess.Popen(('ip', 'netns', 'exec', ns) + tuple(argv), stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lab.processes.append(proc)  # stopped by its pid when the lab closes
        return proc

    def udp_receiver(self, port, ns=None):
        proc = self._popen(ns or self.server, (sys.executable, '-c', UDP_RECEIVER, str(port)),
                           stdin=subprocess.PIPE)
        if proc.stdout.readline().strip() != 'up':
            raise AssertionError('UDP receiver did not start: %s' % proc.stderr.read())
        return UdpReceiver(proc)

    def udp_send_background(self, dst, ports, count=10 ** 9, duration=10.0, rate=0, ns=None):
        cfg = {'dst': dst, 'ports': list(ports), 'count': count, 'duration': duration, 'rate': rate}
        return BackgroundSender(self._popen(ns or self.node, (sys.executable, '-c', UDP_SENDER, json.dumps(cfg))))

    def udp_send(self, dst, ports, count=10 ** 9, duration=10.0, rate=0, ns=None):
        """Send and wait; returns the sender's report (sent, elapsed, per_port)."""
        return self.udp_send_background(dst, ports, count, duration, rate, ns).result(timeout=duration + 30)

    def close(self):
        try:
            self.lab.close()  # first: the namespaces' filters go, so nothing holds the programs
        finally:
            for path in self.pin_dirs:
                remove_pins(path)
            self.pin_dirs = []


def remove_pins(path):
    """Remove a pin directory and its empty parents, under /sys/fs/bpf/ebpf_tc or the test root (which
    goes too once no other test's pins are left in it). Missing is fine."""
    root = TEST_PIN_ROOT if path.startswith(TEST_PIN_ROOT + os.sep) else _program.PIN_ROOT
    _program.remove_pins(path, root)
    if root == TEST_PIN_ROOT:
        try:
            os.rmdir(TEST_PIN_ROOT)
        except OSError:  # other tests' pins are still there, or it is gone already
            pass


def topology():
    """Build a Topology in a fresh Lab; the caller must close() it (use try/finally)."""
    lab = Lab()
    try:
        return Topology(lab)
    except BaseException:
        lab.close()
        raise

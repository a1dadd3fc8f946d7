"""Throwaway network-namespace topologies for the demo and the tests.

Everything made here is recorded and removed by `Lab.close()` (also on error, as a context manager):
namespaces, and with them their veths, qdiscs and sockets. Traffic only ever goes to addresses inside
namespaces made here.
"""

import os
import subprocess
import sys
import uuid


def run(*argv, check=True, timeout=30, **kw):
    return subprocess.run(argv, check=check, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw)


class Lab:
    """A set of namespaces named <prefix>-<name>, cleaned up on close."""

    def __init__(self, prefix=None):
        self.prefix = prefix or 'ebpftc-%s' % uuid.uuid4().hex[:6]
        self.namespaces = []
        self.processes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ns(self, name):
        full = '%s-%s' % (self.prefix, name)
        run('ip', 'netns', 'add', full)
        self.namespaces.append(full)
        self.exec(full, 'ip', 'link', 'set', 'lo', 'up')
        return full

    def exec(self, ns, *argv, check=True, timeout=30):
        return run('ip', 'netns', 'exec', ns, *argv, check=check, timeout=timeout)

    def veth(self, ns_a, if_a, ns_b, if_b):
        """A veth pair with one end in each namespace, both up."""
        tmp = 'v%s' % uuid.uuid4().hex[:10]
        run('ip', 'link', 'add', tmp, 'type', 'veth', 'peer', 'name', tmp + 'p')
        run('ip', 'link', 'set', tmp, 'netns', ns_a, 'name', if_a)
        run('ip', 'link', 'set', tmp + 'p', 'netns', ns_b, 'name', if_b)
        for ns, ifname in ((ns_a, if_a), (ns_b, if_b)):
            self.exec(ns, 'ip', 'link', 'set', ifname, 'up')

    def addr(self, ns, ifname, cidr):
        args = ['ip']
        if ':' in cidr:
            args += ['-6']
        self.exec(ns, *(args + ['addr', 'add', cidr, 'dev', ifname] + (['nodad'] if ':' in cidr else [])))

    def spawn(self, ns, *argv):
        """A background process inside ns, stopped (by its pid) on close."""
        proc = subprocess.Popen(('ip', 'netns', 'exec', ns) + argv, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.processes.append(proc)
        return proc

    def tcp_listener(self, ns, port):
        """A TCP server on every address of ns accepting and closing connections; returns once listening."""
        code = ('import socket,sys\n'
                's=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n'
                's.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\n'
                's.bind(("::",%d));s.listen(64);sys.stdout.write("up\\n");sys.stdout.flush()\n'
                'while True:\n c,_=s.accept();c.close()\n' % port)
        proc = subprocess.Popen(('ip', 'netns', 'exec', ns, sys.executable, '-c', code),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.processes.append(proc)
        proc.stdout.readline()
        return proc

    def tcp_connects(self, ns, host, port, timeout=1.0):
        """True when a TCP connect from ns to host:port succeeds within timeout seconds."""
        code = ('import socket,sys\n'
                'try:\n socket.create_connection((%r,%d),timeout=%r).close()\nexcept OSError:\n sys.exit(1)\n'
                % (host, port, timeout))
        return self.exec(ns, sys.executable, '-c', code, check=False, timeout=timeout + 10).returncode == 0

    def pings(self, ns, host, count=1, timeout=1):
        """Number of echo replies received by `ping -c count` from ns to host."""
        res = self.exec(ns, 'ping', '-n', '-q', '-c', str(count), '-i', '0.2', '-W', str(timeout), host,
                        check=False, timeout=count * (timeout + 1) + 10)
        for line in res.stdout.splitlines():
            if 'received' in line:
                return int(line.split(',')[1].split()[0])
        return 0

    def close(self):
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.processes = []
        for ns in reversed(self.namespaces):
            run('ip', 'netns', 'del', ns, check=False)
        self.namespaces = []


def netns_exists(name):
    return os.path.exists(os.path.join('/run/netns', name))

"""A fleet on one machine: network namespaces that stand in for nodes reached over real SSH.

The lab of `make demo` and of the rollout's tests. Every host is a network namespace with its own sshd, its
own /run and its own bpffs, so that Ansible drives it exactly as it drives a production node::

    ctl (Ansible runs here) ── bridge mgmt 10.254.0.1/24 ── mgmt0 of every node and of the client
                                        (node i: 10.254.0.(10+i), client: 10.254.0.2)

    client ── core ── sec ── bridge lan (LAN B, 203.0.113.0/24, 2001:db8:1::/64) ── eth1 ┐
                             gw ── bridge lan (LAN A, 192.0.2.0/24, 2001:db8:2::/64) ── eth0 ┴ node i
                                                                          lo: 198.51.100.(10+i), 2001:db8:100::…

The client reaches a node's service addresses (on lo, port 8080) through core and sec, which routes them to
the node's eth1 (as MetalLB's BGP would announce them). The node's default route leaves by eth0 to gw, which
has no route back to the client: replies die there (and IPv4 requests already die on eth1's strict
rp_filter). That is the broken return path the rollout fixes.

Everything the lab makes is recorded in <dir>/lab.json as it is made, so `down` removes it after a failed or
killed `up` too. Traffic only ever goes to addresses inside the lab's namespaces.

CLI: `python tools/fleetlab.py up|down|probe|run|status [--dir DIR]` (see --help). Python: `FleetLab`.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nslab import run as _nslab_run  # noqa: E402  pylint: disable=wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DIR = os.path.join(ROOT, '.tmp', 'lab')
# The Ansible beside the Python running this (the project's .venv, or the controller matrix's ansible-core
# 2.15 venv under `make controllers`), else the project's .venv.
_PYTHON_BIN = os.path.dirname(sys.executable)
VENV_BIN = _PYTHON_BIN if os.path.exists(os.path.join(_PYTHON_BIN, 'ansible-playbook')) else os.path.join(ROOT, '.venv', 'bin')
# the link to this tree as ansible_collections/ebpf/tc that the Makefile and tests/conftest.py create
COLLECTIONS = os.path.join(ROOT, '.tmp', 'collections')
POLICY_EXAMPLE = os.path.join(ROOT, 'roles', 'steering', 'examples', 'group_vars', 'all.yml')
MAX_NODES = 200           # node i gets x.y.z.(10+i) addresses
SERVICE_PORT = 8080
ROLES = ('ctl', 'gw', 'sec', 'core', 'client')
CLIENT = {'mgmt': '10.254.0.2', 'v4': '10.99.0.2', 'v6': 'fd00:99::2'}
WAIT = 30                 # seconds: the bound on every wait for neighbours, listeners and sshd

# TCP connects to [host, port] pairs, all at once (threads), each retried until it succeeds or until the
# deadline (argv[3] seconds; 0: one attempt). Prints one boolean per target, as JSON.
CONNECT = r'''
import json, socket, sys, threading, time
targets, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
deadline = time.monotonic() + float(sys.argv[3])
ok = [False] * len(targets)
def attempt(i, host, port):
    while True:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok[i] = True
            return
        except OSError:
            if time.monotonic() + 0.2 > deadline:
                return
            time.sleep(0.2)
threads = [threading.Thread(target=attempt, args=(i, h, p)) for i, (h, p) in enumerate(targets)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(ok))
'''

# The node's service: dual-stack, accepts and closes. Like a real service it answers from the address
# the client connected to, so its replies carry the service address as source.
SERVICE = r'''
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(('::', int(sys.argv[1])))
s.listen(128)
while True:
    c, _ = s.accept()
    c.close()
'''

# Pings each peer (argv after the first, which is the time allowed in seconds) until it answers, so that
# ARP/ND is done before anyone relies on it. A veth's first IPv6 echo is often lost: short tries, retried.
PING_PEERS = '''
end=$(($(date +%s) + $1))
shift
for peer in "$@"; do
    until ping -n -q -c 1 -W 0.3 "$peer" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || { echo "cannot reach $peer" >&2; exit 1; }
        sleep 0.05
    done
done
'''

# Before sshd: a private /run (pid files, /run/sshd, the role's /run/ebpf_tc) and a bpffs of its own.
# `ip netns exec` already gave the process a mount namespace of its own with a fresh /sys.
SSHD_SETUP = ('mount -t tmpfs -o mode=0755,size=16m ebpf-tc-lab /run && mkdir -m 0755 /run/sshd'
              ' && mount -t bpf bpf /sys/fs/bpf')

SSHD_CONFIG = '''\
ListenAddress {address}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
Subsystem sftp /usr/lib/openssh/sftp-server
MaxStartups 200
# the client runs every node's health checks over one multiplexed connection (ControlMaster), forks at a time
MaxSessions 200
LogLevel ERROR
'''


HOST_VARS = '''\
---
# {name} answers for a MetalLB service: its traffic arrives on eth1 (203.0.113.0/24, gateway 203.0.113.1;
# 2001:db8:1::/64, gateway 2001:db8:1::1), while the default route leaves by eth0 (shaped like
# roles/steering/examples/host_vars/node1.yml; written by tools/fleetlab.py).
ebpf_tc_return_paths:
  - name: web-vip
    addresses:
      - {service_v4}/32
      - "{service_v6}/128"
    interface: eth1
    gateway: 203.0.113.1
    gateway6: "2001:db8:1::1"
{mode}'''
# node1 learns its return path (the replies go back to the router each flow came in from, here sec); the
# gateway then only serves flows nothing was learned for
LEARNED_MODE = '    mode: learned\n'


class LabError(Exception):
    pass


def run(*argv, **kw):
    """nslab's run, with the command's stderr in the error (CalledProcessError does not show it)."""
    try:
        return _nslab_run(*argv, **kw)
    except subprocess.CalledProcessError as exc:
        raise LabError('%s failed (%d): %s' % (' '.join(argv), exc.returncode, (exc.stderr or '').strip()))
    except subprocess.TimeoutExpired:
        raise LabError('%s took more than %ss' % (' '.join(argv), kw.get('timeout', 30)))


def ansible_env(**overrides):
    """The environment to run Ansible against a lab with the collection used in place: the project's venv
    first on PATH, the source tree as ebpf.tc, pipelining (one SSH round trip per task), no colour."""
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''),
               ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1', ANSIBLE_PIPELINING='1',
               ANSIBLE_LOCALHOST_WARNING='0')
    env.update(overrides)
    return env


def netns_exists(name):
    return os.path.exists(os.path.join('/run/netns', name))


def start_time(pid):
    """The start time of pid (clock ticks since boot), or None if it is gone: a pid with another start time
    is another process, which we must not kill."""
    try:
        with open('/proc/%d/stat' % pid) as stat:
            fields = stat.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == 'Z':
        return None
    return int(fields[19])


def alive(process):
    """True when the process recorded in lab.json ({pid, start_time}) still runs."""
    return process['start_time'] is not None and start_time(process['pid']) == process['start_time']


def node_plan(index, prefix, directory):
    """Names, addresses and per-node directories of node `index` (1-based)."""
    host, name = 10 + index, 'node%d' % index
    node_dir = os.path.join(directory, 'nodes', name)
    return {
        'name': name, 'ns': '%s-%s' % (prefix, name),
        'mgmt': '10.254.0.%d' % host,
        'eth0_v4': '192.0.2.%d' % host, 'eth0_v6': '2001:db8:2::%x' % host,
        'eth1_v4': '203.0.113.%d' % host, 'eth1_v6': '2001:db8:1::%x' % host,
        'service_v4': '198.51.100.%d' % host, 'service_v6': '2001:db8:100::%x' % host,
        'lib_dir': os.path.join(node_dir, 'lib'),
        'config_dir': os.path.join(node_dir, 'etc'),
        'unit_dir': os.path.join(node_dir, 'systemd'),
    }


def topology(ns, nodes):
    """The lab as data: per namespace role, the sysctls (set before any of its interfaces exists, so that
    the interfaces take the defaults) and the `ip -batch` lines that make its bridges, addresses and
    routes; and the veths [ns_a, if_a, ns_b, if_b], made from here with each end straight in its namespace.
    """
    router = ['net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']
    # IPv4 sysctls of a new namespace come from the host's: set rp_filter, do not inherit it. No DAD
    # (addresses get nodad, this covers the link-local ones) so that neighbours answer at once.
    no_dad = 'net.ipv6.conf.default.accept_dad=0'
    sysctls = {role: [no_dad, 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0'] for role in ROLES}
    for role in ('gw', 'sec', 'core'):
        sysctls[role] += router
    batch = {role: ['link set lo up'] for role in ROLES}
    batch['ctl'] += ['link add mgmt type bridge mcast_snooping 0', 'addr add 10.254.0.1/24 dev mgmt',
                     'link set mgmt up']
    batch['gw'] += ['link add lan type bridge mcast_snooping 0', 'addr add 192.0.2.1/24 dev lan',
                    'addr add 2001:db8:2::1/64 dev lan nodad', 'link set lan up']
    batch['sec'] += ['link add lan type bridge mcast_snooping 0', 'addr add 203.0.113.1/24 dev lan',
                     'addr add 2001:db8:1::1/64 dev lan nodad', 'link set lan up',
                     'addr add 10.98.0.2/30 dev core0', 'addr add fd00:98::2/64 dev core0 nodad',
                     'link set core0 up', 'route add default via 10.98.0.1', 'route add ::/0 via fd00:98::1']
    batch['core'] += ['addr add 10.98.0.1/30 dev sec0', 'addr add fd00:98::1/64 dev sec0 nodad',
                      'link set sec0 up', 'addr add 10.99.0.1/24 dev client0',
                      'addr add fd00:99::1/64 dev client0 nodad', 'link set client0 up',
                      'route add 198.51.100.0/24 via 10.98.0.2', 'route add 2001:db8:100::/64 via fd00:98::2']
    batch['client'] += ['addr add 10.99.0.2/24 dev eth0', 'addr add fd00:99::2/64 dev eth0 nodad',
                        'link set eth0 up', 'route add default via 10.99.0.1', 'route add ::/0 via fd00:99::1',
                        'addr add 10.254.0.2/24 dev mgmt0', 'link set mgmt0 up']
    batch['ctl'] += ['link set client master mgmt', 'link set client up']
    veths = [[ns['sec'], 'core0', ns['core'], 'sec0'], [ns['client'], 'eth0', ns['core'], 'client0'],
             [ns['client'], 'mgmt0', ns['ctl'], 'client']]
    for node in nodes:
        name = node['name']
        # Strict rp_filter on eth0/eth1, as on a hardened host: the role loosens the interface it steers to.
        sysctls[name] = [no_dad, 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=1']
        batch[name] = [
            'link set lo up',
            'addr add %s/32 dev lo' % node['service_v4'], 'addr add %s/128 dev lo' % node['service_v6'],
            'addr add %s/24 dev eth0' % node['eth0_v4'], 'addr add %s/64 dev eth0 nodad' % node['eth0_v6'],
            'addr add %s/24 dev eth1' % node['eth1_v4'], 'addr add %s/64 dev eth1 nodad' % node['eth1_v6'],
            'addr add %s/24 dev mgmt0' % node['mgmt'],
            'link set eth0 up', 'link set eth1 up', 'link set mgmt0 up',
            'route add default via 192.0.2.1', 'route add ::/0 via 2001:db8:2::1',
        ]
        for role, bridge in (('gw', 'lan'), ('sec', 'lan'), ('ctl', 'mgmt')):
            batch[role] += ['link set %s master %s' % (name, bridge), 'link set %s up' % name]
        batch['sec'] += ['route add %s/32 via %s' % (node['service_v4'], node['eth1_v4']),
                         'route add %s/128 via %s' % (node['service_v6'], node['eth1_v6'])]
        veths += [[node['ns'], 'eth0', ns['gw'], name], [node['ns'], 'eth1', ns['sec'], name],
                  [node['ns'], 'mgmt0', ns['ctl'], name]]
    return sysctls, batch, veths


class FleetLab:
    """The lab in `directory`: `up()` builds it, `down()` removes it; as a context manager, downs on exit.

    `state` is lab.json's content (None when there is no lab; a lab made by another process is found there),
    `nodes` the node names, `inventory` the Ansible inventory directory, `ctl_argv(argv)` the command line
    that runs argv in the controller's namespace, `probe()` the client's TCP connects to every service.
    """

    def __init__(self, directory=DEFAULT_DIR, log=None):
        self.directory = os.path.abspath(directory)
        self.log = log or (lambda message: None)
        self.state_file = os.path.join(self.directory, 'lab.json')
        self.inventory = os.path.join(self.directory, 'inventory')
        self.ssh_dir = os.path.join(self.directory, 'ssh')
        self._children = []   # Popen objects of this process, reaped on down
        self.state = self._load()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.down()

    @property
    def nodes(self):
        """The node names, node1 to nodeN (their addresses and directories: state['nodes'])."""
        return [node['name'] for node in self.state['nodes']] if self.state else []

    def ns(self, role):
        """The namespace of a role: ctl, gw, sec, core, client or a node name."""
        return '%s-%s' % (self.state['prefix'], role)

    def netns_argv(self, role, argv):
        return ['ip', 'netns', 'exec', self.ns(role)] + list(argv)

    def ctl_argv(self, argv):
        return self.netns_argv('ctl', argv)

    def ssh_argv(self, host, command):
        """ssh from the controller's namespace to a node or the client, as Ansible does (host key checked)."""
        addresses = dict([(n['name'], n['mgmt']) for n in self.state['nodes']], client=self.state['client']['mgmt'])
        paths = self.state['paths']
        return self.ctl_argv(['ssh', '-F', 'none', '-i', paths['ssh_key'],
                              '-o', 'UserKnownHostsFile=' + paths['known_hosts'], '-o', 'StrictHostKeyChecking=yes',
                              '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', 'root@' + addresses[host], command])

    # -- state ---------------------------------------------------------------------------------------

    def _load(self):
        try:
            with open(self.state_file) as data:
                return json.load(data)
        except FileNotFoundError:
            return None

    def _save(self):
        """Written after every step of up, so that down finds everything a killed up made."""
        tmp = self.state_file + '.tmp'
        with open(tmp, 'w') as out:
            json.dump(self.state, out, indent=1)
        os.replace(tmp, self.state_file)

    def is_up(self):
        """True when lab.json names namespaces that exist."""
        return bool(self.state) and any(netns_exists(ns) for ns in self.state['namespaces'])

    # -- up ------------------------------------------------------------------------------------------

    def up(self, nodes=4, name='lab'):
        """Build the lab with `nodes` nodes; on any failure, remove what was made and raise."""
        if not 1 <= nodes <= MAX_NODES:
            raise ValueError('nodes: %d, must be 1 to %d' % (nodes, MAX_NODES))
        if not re.match(r'^[a-z0-9][a-z0-9-]{0,19}$', name):
            raise ValueError('name: %r, must be 1-20 of [a-z0-9-]' % name)
        if self.is_up():
            raise LabError('a lab is up in %s (%s-*): run `down` first' % (self.directory, self.state['prefix']))
        if self.state:
            self.down()     # stale: its namespaces are gone (a reboot); clear its files
        prefix = 'ebtcl-%s' % name
        plan = [node_plan(i, prefix, self.directory) for i in range(1, nodes + 1)]
        namespaces = ['%s-%s' % (prefix, role) for role in ROLES] + [n['ns'] for n in plan]
        taken = [ns for ns in namespaces if netns_exists(ns)]
        if taken:
            raise LabError('namespace %s exists: another lab named %r is up elsewhere (`down --dir` it, or use '
                           'another --name)' % (taken[0], name))
        started = time.monotonic()
        paths = {
            'directory': self.directory, 'inventory': self.inventory,
            'ssh_key': os.path.join(self.ssh_dir, 'id_ed25519'),
            'known_hosts': os.path.join(self.ssh_dir, 'known_hosts'),
            'authorized_keys': os.path.join(self.ssh_dir, 'authorized_keys'),
            # ControlPath must stay under 108 bytes with ssh's suffix: /tmp, not the lab directory.
            'control_dir': '/tmp/%s-cp' % prefix,
            'logs': os.path.join(self.directory, 'logs'), 'run': os.path.join(self.directory, 'run'),
        }
        os.makedirs(self.directory, exist_ok=True)
        client = {'name': 'client', 'ns': '%s-client' % prefix, 'mgmt': CLIENT['mgmt'], 'eth0_v4': CLIENT['v4'],
                  'eth0_v6': CLIENT['v6']}
        self.state = {'prefix': prefix, 'nodes': plan, 'client': client, 'namespaces': [], 'processes': [],
                      'paths': paths, 'complete': False}
        self._save()
        try:
            self._build(plan, namespaces)
        except BaseException:
            self.log('up failed: removing what was made')
            self.down()
            raise
        self.state['complete'] = True
        self._save()
        self.log('up: %d nodes in %.1fs' % (nodes, time.monotonic() - started))

    def _build(self, plan, namespaces):
        paths = self.state['paths']
        for key in ('logs', 'run', 'control_dir'):
            os.makedirs(paths[key], exist_ok=True)
        hosts = dict([('client', CLIENT['mgmt'])] + [(n['name'], n['mgmt']) for n in plan])  # name: mgmt address
        self._keys(hosts)
        self.log('keys made')
        for ns in namespaces:
            run('ip', 'netns', 'add', ns)
            self.state['namespaces'].append(ns)
            self._save()
        names = dict(zip(list(ROLES) + [n['name'] for n in plan], namespaces))
        sysctls, batch, veths = topology(names, plan)
        for role, values in sysctls.items():
            run('ip', 'netns', 'exec', names[role], 'sysctl', '-q', '-w', *values)
        links = ''.join('link add %s netns %s type veth peer name %s netns %s\n' % (a_if, a, b_if, b)
                        for a, a_if, b, b_if in veths)
        run('ip', '-batch', '-', input=links, timeout=120)
        for role, lines in batch.items():
            run('ip', '-n', names[role], '-batch', '-', input='\n'.join(lines) + '\n')
        self.log('namespaces, links, addresses and routes made')
        self._wait_neighbours(names, plan)
        self.log('neighbours reachable')
        for node in plan:
            self._spawn(node['name'], 'tcp%d' % SERVICE_PORT, [sys.executable, '-c', SERVICE, str(SERVICE_PORT)])
        for host, address in hosts.items():
            self._start_sshd(host, address)
        self._save()
        targets = [[address, 22] for address in hosts.values()] + [[n['mgmt'], SERVICE_PORT] for n in plan]
        failed = [t for t, ok in zip(targets, self._connect('ctl', targets, 1.0, WAIT)) if not ok]
        if failed:
            dead = ['%s %s: %s' % (p['ns'], p['what'], self._log_tail(p)) for p in self.state['processes']
                    if not alive(p)]
            raise LabError('not listening after %ds: %s%s' % (WAIT, failed, ''.join('; exited: ' + d for d in dead)))
        self.log('sshd and services listening')
        self._check_ssh(hosts)
        self._check_own_bpffs()
        self.log('ssh works to every host, each node has its own bpffs')
        self._write_inventory(plan)
        self.log('inventory written: %s' % self.inventory)

    def _keys(self, hosts):
        """The client key, a host key per host, authorized_keys and known_hosts (mgmt address → host key)."""
        keys = os.path.join(self.ssh_dir, 'host_keys')
        os.makedirs(keys, exist_ok=True)
        files = [self.state['paths']['ssh_key']] + [os.path.join(keys, host) for host in hosts]
        procs = [subprocess.Popen(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'ebpf-tc-lab', '-f', f],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) for f in files]
        if any(proc.wait(timeout=60) for proc in procs):
            raise LabError('ssh-keygen failed')
        with open(self.state['paths']['ssh_key'] + '.pub') as pub:
            client_key = pub.read()
        with open(self.state['paths']['authorized_keys'], 'w') as out:
            out.write(client_key)
        with open(self.state['paths']['known_hosts'], 'w') as out:
            for host, address in hosts.items():
                with open(os.path.join(keys, host) + '.pub') as pub:
                    out.write('%s %s\n' % (address, ' '.join(pub.read().split()[:2])))

    def _wait_neighbours(self, names, plan):
        """Every host pings its neighbours until they answer (bounded): ARP/ND settled before use."""
        peers = {'client': ['10.99.0.1', 'fd00:99::1', '10.254.0.1'], 'sec': ['10.98.0.1', 'fd00:98::1']}
        for node in plan:
            peers[node['name']] = ['192.0.2.1', '2001:db8:2::1', '203.0.113.1', '2001:db8:1::1', '10.254.0.1']
        procs = {}
        for role, addresses in peers.items():
            argv = ['ip', 'netns', 'exec', names[role], 'sh', '-c', PING_PEERS, 'sh', str(WAIT)] + addresses
            procs[role] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        errors = []
        for role, proc in procs.items():
            try:
                err = proc.communicate(timeout=WAIT + 30)[1]
            except subprocess.TimeoutExpired:
                proc.kill()
                err = proc.communicate()[1]
            if proc.returncode:
                errors.append('%s: %s' % (role, err.strip()))
        if errors:
            raise LabError('neighbours unreachable: %s' % '; '.join(errors))

    def _spawn(self, role, what, argv):
        """A process in role's namespace, in a session of its own so that it outlives the CLI; its pid and
        start time go to lab.json, its output to logs/<role>-<what>.log."""
        log = os.path.join(self.state['paths']['logs'], '%s-%s.log' % (role, what))
        with open(log, 'ab') as out:
            proc = subprocess.Popen(self.netns_argv(role, argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._children.append(proc)
        self.state['processes'].append({'pid': proc.pid, 'start_time': start_time(proc.pid), 'ns': self.ns(role),
                                        'what': what})
        return proc

    def _log_tail(self, process):
        role = process['ns'][len(self.state['prefix']) + 1:]
        with open(os.path.join(self.state['paths']['logs'], '%s-%s.log' % (role, process['what']))) as log:
            return ' | '.join(log.read().splitlines()[-3:])

    def _start_sshd(self, host, address):
        paths = self.state['paths']
        config = os.path.join(paths['run'], '%s-sshd_config' % host)
        with open(config, 'w') as out:
            out.write(SSHD_CONFIG.format(address=address, host_key=os.path.join(self.ssh_dir, 'host_keys', host),
                                         pid_file=os.path.join(paths['run'], '%s-sshd.pid' % host),
                                         authorized_keys=paths['authorized_keys']))
        self._spawn(host, 'sshd', ['/bin/sh', '-c', '%s && exec /usr/sbin/sshd -D -e -f %s' % (SSHD_SETUP, config)])

    def _check_ssh(self, hosts):
        procs = [(host, subprocess.Popen(self.ssh_argv(host, 'true'), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                 for host in hosts]
        errors = []
        for host, proc in procs:
            out = proc.communicate(timeout=60)[0]
            if proc.returncode:
                errors.append('%s: %s' % (host, out.strip()))
        if errors:
            raise LabError('ssh from ctl failed: %s' % '; '.join(errors))

    def _sshd_pid(self, host):
        return [p['pid'] for p in self.state['processes'] if p['ns'] == self.ns(host) and p['what'] == 'sshd'][0]

    def _check_own_bpffs(self):
        """A directory made in node1's bpffs must not show in node2's (or the host's): separate instances."""
        first = self._sshd_pid('node1')
        marker = '/sys/fs/bpf/ebpf-tc-lab-%d' % first
        fs = run('nsenter', '-t', str(first), '-m', 'stat', '-f', '-c', '%T', '/sys/fs/bpf').stdout.strip()
        if fs != 'bpf_fs':
            raise LabError('/sys/fs/bpf of node1 is %s, not bpf_fs' % fs)
        run('nsenter', '-t', str(first), '-m', 'mkdir', marker)
        try:
            seen = os.path.exists(marker)
            if len(self.nodes) > 1:
                other = str(self._sshd_pid('node2'))
                seen = seen or run('nsenter', '-t', other, '-m', 'test', '-e', marker, check=False).returncode == 0
        finally:
            run('nsenter', '-t', str(first), '-m', 'rmdir', marker)
        if seen:
            raise LabError('the nodes share one bpffs: %s is visible outside node1' % marker)

    def _write_inventory(self, plan):
        paths = self.state['paths']
        os.makedirs(os.path.join(self.inventory, 'group_vars'), exist_ok=True)
        os.makedirs(os.path.join(self.inventory, 'host_vars'), exist_ok=True)
        ssh_args = ('-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o ControlMaster=auto '
                    '-o ControlPersist=60s -o ControlPath=%s/%%C' % (paths['known_hosts'], paths['control_dir']))
        lines = [
            '---',
            '# Written by tools/fleetlab.py: the lab\'s hosts, network namespaces reached over SSH from the ctl',
            '# namespace (run Ansible with `tools/fleetlab.py run -- ansible-playbook -i %s ...`).' % self.inventory,
            'all:',
            '  vars:',
            '    ansible_user: root',
            '    ansible_ssh_private_key_file: %s' % paths['ssh_key'],
            '    ansible_ssh_common_args: %s' % json.dumps(ssh_args),
            '    ansible_python_interpreter: /usr/bin/python3',
            '    ebpf_tc_rollout_probe: client',
            '    ebpf_tc_rollout_tcp_port: %d' % SERVICE_PORT,
            '  children:',
            '    nodes:',
            '      vars:',
            '        ebpf_tc_install_packages: false     # the nodes share this machine\'s packages',
            '        ebpf_tc_default_interface: eth0',
            '      hosts:',
        ]
        for node in plan:
            lines += ['        %s:' % node['name'],
                      '          ansible_host: %s' % node['mgmt'],
                      '          ebpf_tc_lib_dir: %s' % node['lib_dir'],
                      '          ebpf_tc_config_dir: %s' % node['config_dir'],
                      '          ebpf_tc_unit_dir: %s' % node['unit_dir']]
        lines += ['    probes:', '      hosts:', '        client:', '          ansible_host: %s' % CLIENT['mgmt']]
        with open(os.path.join(self.inventory, 'hosts.yml'), 'w') as out:
            out.write('\n'.join(lines) + '\n')
        with open(POLICY_EXAMPLE) as example:
            policy = example.read()
        policy = policy.split('\n', 1)[1] if policy.startswith('---\n') else policy
        with open(os.path.join(self.inventory, 'group_vars', 'nodes.yml'), 'w') as out:
            out.write('---\n# The fleet policy: a copy of roles/steering/examples/group_vars/all.yml.\n' + policy)
        for node in plan:
            with open(os.path.join(self.inventory, 'host_vars', node['name'] + '.yml'), 'w') as out:
                out.write(HOST_VARS.format(mode=LEARNED_MODE if node['name'] == 'node1' else '', **node))

    # -- down ----------------------------------------------------------------------------------------

    def down(self):
        """Remove the lab: its processes, whatever else runs in its namespaces, the namespaces, its files.
        Returns False when there was no lab. Safe after a failed up, and idempotent."""
        if self.state is None:
            self.state = self._load()
        if self.state is None:
            return False
        for proc in self.state['processes']:
            if alive(proc):
                self._kill(proc['pid'], signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(p) for p in self.state['processes']):
            for child in self._children:
                child.poll()    # reap: a zombie child of ours has exited
            time.sleep(0.05)
        for proc in self.state['processes']:
            if alive(proc):
                self._kill(proc['pid'], signal.SIGKILL)
        for ns in self.state['namespaces']:
            if not netns_exists(ns):
                continue
            # Processes started in our namespaces: ssh sessions, ControlPersist masters, the role's timers.
            for pid in run('ip', 'netns', 'pids', ns, check=False).stdout.split():
                if int(pid) != os.getpid():
                    self._kill(int(pid), signal.SIGKILL)
            run('ip', 'netns', 'del', ns, check=False)
        for proc in self._children:
            proc.wait(timeout=10)
        self._children = []
        paths = self.state['paths']
        shutil.rmtree(paths['control_dir'], ignore_errors=True)
        for entry in ('inventory', 'ssh', 'nodes', 'logs', 'run'):
            shutil.rmtree(os.path.join(self.directory, entry), ignore_errors=True)
        try:
            os.unlink(self.state_file)
        except FileNotFoundError:
            pass
        try:
            os.rmdir(self.directory)
        except OSError:
            pass    # not empty: something that is not ours lives there
        self.state = None
        return True

    @staticmethod
    def _kill(pid, sig):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    # -- use -----------------------------------------------------------------------------------------

    def _connect(self, role, targets, timeout, wait):
        res = run(*self.netns_argv(role, [sys.executable, '-c', CONNECT, json.dumps(targets), str(timeout),
                                          str(wait)]), timeout=timeout + wait + 60)
        return json.loads(res.stdout)

    def probe(self, port=SERVICE_PORT, timeout=1.0, retry_for=0):
        """TCP connects from the client to every node's service addresses, all at once: [{node, address,
        family, ok}]. With retry_for, a failed connect is tried again until that many seconds have passed
        (right after a change the first SYN-ACK may wait for the neighbour to be resolved)."""
        if not self.is_up():
            raise LabError('no lab is up in %s' % self.directory)
        results = [{'node': node['name'], 'address': node['service_' + family[-2:]], 'family': family}
                   for node in self.state['nodes'] for family in ('ipv4', 'ipv6')]
        oks = self._connect('client', [[result['address'], port] for result in results], timeout, retry_for)
        for result, ok in zip(results, oks):
            result['ok'] = ok
        return results

    def status(self):
        """Lines saying what exists; True when everything recorded is there and running."""
        if not self.state:
            return False, ['no lab in %s' % self.directory]
        lines = ['lab %s in %s: %d nodes, inventory %s%s' % (
            self.state['prefix'], self.directory, len(self.nodes), self.inventory,
            '' if self.state['complete'] else ' (up did not finish)')]
        healthy = self.state['complete']
        missing = [ns for ns in self.state['namespaces'] if not netns_exists(ns)]
        dead = ['%s %s (%d)' % (p['ns'], p['what'], p['pid']) for p in self.state['processes'] if not alive(p)]
        namespaces, processes = self.state['namespaces'], self.state['processes']
        lines.append('namespaces: %d, %d missing %s' % (len(namespaces), len(missing), ' '.join(missing)))
        lines.append('processes: %d, %d not running %s' % (len(processes), len(dead), ', '.join(dead)))
        return healthy and not missing and not dead, [line.rstrip() for line in lines]


def main(argv=None):
    # --dir goes before or after the command: `fleetlab.py --dir D down` and `fleetlab.py down --dir D`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument('--dir', default=argparse.SUPPRESS, help='lab directory (default: %s)' % DEFAULT_DIR)
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('--dir', default=DEFAULT_DIR, help='lab directory (default: %(default)s)')
    commands = parser.add_subparsers(dest='command', required=True)
    up = commands.add_parser('up', parents=[common], help='build the lab')
    up.add_argument('--nodes', type=int, default=4, help='number of nodes, 1 to %d' % MAX_NODES)
    up.add_argument('--name', default='lab', help='namespaces are named ebtcl-NAME-<role>')
    commands.add_parser('down', parents=[common], help='remove the lab (idempotent)')
    probe = commands.add_parser('probe', parents=[common], help='TCP connects from the client to every service')
    probe.add_argument('--port', type=int, default=SERVICE_PORT)
    probe.add_argument('--timeout', type=float, default=1.0)
    probe.add_argument('--json', action='store_true')
    run_cmd = commands.add_parser('run', parents=[common], help='run a command in the ctl namespace: run -- CMD')
    run_cmd.add_argument('argv', nargs=argparse.REMAINDER)
    commands.add_parser('status', parents=[common], help='what is up')
    args = parser.parse_args(argv)

    started = time.monotonic()
    lab = FleetLab(args.dir, log=lambda msg: print('[%5.1fs] %s' % (time.monotonic() - started, msg),
                                                   file=sys.stderr))
    try:
        if args.command == 'up':
            lab.up(nodes=args.nodes, name=args.name)
            print('lab %s is up: %d nodes; inventory %s' % (lab.state['prefix'], len(lab.nodes), lab.inventory))
        elif args.command == 'down':
            print('lab removed from %s' % lab.directory if lab.down() else 'no lab in %s' % lab.directory)
            print('down took %.1fs' % (time.monotonic() - started), file=sys.stderr)
        elif args.command == 'probe':
            results = lab.probe(port=args.port, timeout=args.timeout)
            if args.json:
                print(json.dumps(results, indent=1))
            else:
                for result in results:
                    print('%-8s %-22s %s' % (result['node'], result['address'], 'ok' if result['ok'] else 'FAIL'))
                print('%d/%d connects ok' % (sum(r['ok'] for r in results), len(results)))
        elif args.command == 'run':
            command = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
            if not command:
                parser.error('run: no command (run -- CMD...)')
            if not lab.is_up():
                raise LabError('no lab is up in %s' % lab.directory)
            code = subprocess.call(lab.ctl_argv(command))
            return code if code >= 0 else 128 - code
        elif args.command == 'status':
            healthy, lines = lab.status()
            print('\n'.join(lines))
            return 0 if healthy else 1
    except (LabError, ValueError, OSError, subprocess.SubprocessError) as exc:
        print('fleetlab %s: %s' % (args.command, exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())

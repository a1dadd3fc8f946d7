"""Part 2: throughput through a veth pair, no filter against the steering program and its peers.

Every system gets its own pair of namespaces (``ebtcb-<run>-<system>-s`` sending, ``-r`` receiving)
joined by a veth pair, 100.64.0.1/24 -> 100.64.0.2/24, IPv6 disabled (so that no neighbour discovery
wanders into the rule counters). The filter sits on the sender's way out:

- ``none``: nothing;
- ``floor-clsact`` and ``floor-tcx``: a reference, not a filter: the floor program of the dataplane part
  (parses the headers like the steering program, touches no map, passes) on the same hook, so that the
  cost of the hook plus parsing is seen apart from the classifier's;
- ``ebpf-tc-clsact`` and ``ebpf-tc-tcx``: the shipped steering program on eth0 egress, attached by the
  same code as the ``ebpf.tc.bpf_filter`` module (``_program.filter_present``) with each backend (a clsact
  filter; a TCX link), rules applied through ``SteeringMaps``;
- ``nftables``: one ``inet`` table, a filter chain on the postrouting hook (priority mangle), the rules
  one after the other, each with a counter, the way they would be written by hand (anonymous sets for a
  field's lists, ``meta mark set ... accept`` for mark);
- ``iptables`` (Debian 12's default ``iptables``, the nf_tables backend) and ``iptables-legacy``
  (x_tables): the mangle table's POSTROUTING chain (MARK is only allowed in mangle); iptables has one
  address and one protocol per rule, so a rule with lists becomes one rule per combination (multiport
  for port lists); mark rules jump to a small chain that marks and accepts;
- ``tc-flower``: one flower filter per combination on eth0 egress with gact/skbedit actions, where the
  kernel has flower (detected in a namespace of its own; recorded as unavailable otherwise).

The 1,000-rule set is rulegen's (``ruleset(1000)``): the test traffic (TCP and UDP to port 5201 from
any source port) matches only its last rule, a pass, which the model checks before anything runs and
every system's own counters confirm after a warm-up run and again at the end.

Measurements, in rounds with the systems in a shuffled order each round: iperf3 TCP (bits/s received)
and iperf3 UDP with 64-byte payloads at full speed (packets per second received at the receiver's
interface, i.e. that crossed the filter; the sender is the bottleneck, its CPU also runs the filter),
and for UDP also the sending process's CPU time per packet. Client and server are pinned to different
CPUs. Every measurement of a system is paired with a measurement of ``none`` just before or after it,
and the ratio to ``none`` is the median over those pairs.
"""

import itertools
import json
import os
import random
import shutil
import time
import uuid

import common
import model
import rulegen
from nslab import Lab

from ansible_collections.ebpf.tc.plugins.module_utils import _program

# the tc-bpf systems: (program kind, backend)
BPF_SYSTEMS = {'floor-clsact': ('floor', 'clsact'), 'floor-tcx': ('floor', 'tcx'),
               'ebpf-tc-clsact': ('steering', 'clsact'), 'ebpf-tc-tcx': ('steering', 'tcx')}
OURS = ('ebpf-tc-clsact', 'ebpf-tc-tcx')
SYSTEMS = ('none',) + tuple(BPF_SYSTEMS) + ('nftables', 'iptables', 'iptables-legacy', 'tc-flower')
PEERS = ('nftables', 'iptables', 'iptables-legacy', 'tc-flower')
FULL = {'rounds': 8, 'tcp_seconds': 2, 'tcp_omit': 1, 'udp_seconds': 2, 'udp_payload': 64, 'rules': 1000}
QUICK = {'rounds': 1, 'tcp_seconds': 1, 'tcp_omit': 0, 'udp_seconds': 1, 'udp_payload': 64, 'rules': 1000}
TARGET_RATIO = 0.95

SENDER_CIDR = rulegen.SENDER4 + '/24'
RECEIVER_CIDR = rulegen.RECEIVER4 + '/24'
IFNAME = 'eth0'
NFT_TABLE = 'ebtcb_bench'
MARK_CHAIN = 'ebtcb-mark-%x'
IPT_MULTIPORT_SLOTS = 15
PORT_PROTOS = {6: 'tcp', 17: 'udp', 132: 'sctp'}


class Unavailable(Exception):
    """A system that cannot run here (missing tool or kernel feature); the reason goes in the results."""


def _proto_numbers(values):
    return [model.PROTO_NUMBERS.get(v, v) if isinstance(v, str) else int(v) for v in values]


def _port_items(values):
    """(lo, hi) pairs of a canonical port list."""
    out = []
    for v in values:
        if isinstance(v, str):
            lo, hi = v.split('-')
            out.append((int(lo), int(hi)))
        else:
            out.append((int(v), int(v)))
    return out


def _families(match):
    """Address families a canonical rule can match, with its src/dst prefixes per family.

    Returns [(family or None, {'src': [...] or None, 'dst': [...] or None})]: None for a rule without
    address fields (it matches both families)."""
    if 'src' not in match and 'dst' not in match:
        return [(None, {'src': None, 'dst': None})]
    out = []
    for family in (4, 6):
        fields = {}
        ok = True
        for field in ('src', 'dst'):
            if field not in match:
                fields[field] = None
                continue
            nets = [n for n in match[field] if (':' in n) == (family == 6)]
            if not nets:
                ok = False
            fields[field] = nets
        if ok:
            out.append((family, fields))
    return out


# ------------------------------------------------------------------------------------------ nftables

def _nft_set(items):
    return items[0] if len(items) == 1 else '{ %s }' % ', '.join(items)


def nft_rules(ruleset):
    """[(rule name, nft rule text)] in order; one per steering rule and address family."""
    out = []
    for rule in ruleset.to_dicts():
        match = rule.get('match') or {}
        for family, fields in _families(match):
            parts = []
            for field, key in (('src', 'saddr'), ('dst', 'daddr')):
                if fields[field] is not None:
                    parts.append('%s %s %s' % ('ip' if family == 4 else 'ip6', key, _nft_set(fields[field])))
            if 'proto' in match:
                parts.append('meta l4proto %s' % _nft_set([str(p) for p in _proto_numbers(match['proto'])]))
            for field in ('sport', 'dport'):
                if field in match:
                    items = ['%d' % lo if lo == hi else '%d-%d' % (lo, hi) for lo, hi in _port_items(match[field])]
                    parts.append('th %s %s' % (field, _nft_set(items)))
            parts.append('counter')
            action = rule['action']
            if action == 'mark':
                parts.append('meta mark set %#x accept' % rule['mark'])
            elif action == 'drop':
                parts.append('drop')
            elif action == 'pass':
                parts.append('accept')
            else:
                raise ValueError('no nftables translation for action %s' % action)
            parts.append('comment "%s"' % rule['name'])
            out.append((rule['name'], ' '.join(parts)))
    return out


def nft_script(ruleset):
    lines = ['table inet %s {' % NFT_TABLE, '  chain postrouting {',
             '    type filter hook postrouting priority mangle; policy accept;']
    lines += ['    ' + text for dummy, text in nft_rules(ruleset)]
    lines += ['  }', '}', '']
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------ iptables

def _multiport_chunks(items):
    """Split (lo, hi) port items into multiport lists of at most 15 slots (a range takes 2)."""
    chunks, current, used = [], [], 0
    for lo, hi in items:
        cost = 1 if lo == hi else 2
        if used + cost > IPT_MULTIPORT_SLOTS:
            chunks.append(current)
            current, used = [], 0
        current.append('%d' % lo if lo == hi else '%d:%d' % (lo, hi))
        used += cost
    if current:
        chunks.append(current)
    return [','.join(c) for c in chunks]


def iptables_rules(ruleset, family):
    """[(rule name, rule args)] of POSTROUTING in the mangle table, and the mark chains used."""
    out = []
    marks = set()
    for rule in ruleset.to_dicts():
        match = rule.get('match') or {}
        for fam, fields in _families(match):
            if fam is not None and fam != family:
                continue
            srcs = fields['src'] or [None]
            dsts = fields['dst'] or [None]
            protos = _proto_numbers(match['proto']) if 'proto' in match else [None]
            sports = _multiport_chunks(_port_items(match['sport'])) if 'sport' in match else [None]
            dports = _multiport_chunks(_port_items(match['dport'])) if 'dport' in match else [None]
            action = rule['action']
            if action == 'mark':
                marks.add(rule['mark'])
                target = '-j ' + MARK_CHAIN % rule['mark']
            elif action in ('drop', 'pass'):
                target = '-j DROP' if action == 'drop' else '-j ACCEPT'
            else:
                raise ValueError('no iptables translation for action %s' % action)
            for src, dst, proto, sport, dport in itertools.product(srcs, dsts, protos, sports, dports):
                args = []
                if src:
                    args += ['-s', src]
                if dst:
                    args += ['-d', dst]
                if proto is not None:
                    args += ['-p', PORT_PROTOS.get(proto, str(proto))]
                if sport:
                    args += ['-m', 'multiport', '--sports', sport]
                if dport:
                    args += ['-m', 'multiport', '--dports', dport]
                out.append((rule['name'], ' '.join(args + [target])))
    return out, sorted(marks)


def iptables_restore_input(ruleset, family):
    rules, marks = iptables_rules(ruleset, family)
    lines = ['*mangle', ':POSTROUTING ACCEPT [0:0]']
    for mark in marks:
        lines.append(':%s - [0:0]' % (MARK_CHAIN % mark))
    for mark in marks:
        lines.append('-A %s -j MARK --set-xmark %#x/0xffffffff' % (MARK_CHAIN % mark, mark))
        lines.append('-A %s -j ACCEPT' % (MARK_CHAIN % mark))
    lines += ['-A POSTROUTING %s' % args for dummy, args in rules]
    lines += ['COMMIT', '']
    return '\n'.join(lines), rules


# ------------------------------------------------------------------------------------------ tc flower

def flower_filters(ruleset):
    """[(rule name, tc batch line)] for eth0 egress, one flower filter per match combination."""
    out = []
    names = dict(PORT_PROTOS, **{1: 'icmp', 58: 'icmpv6'})
    for rule in ruleset.to_dicts():
        match = rule.get('match') or {}
        if rule['action'] == 'mark':
            action = 'action skbedit mark %d pass' % rule['mark']
        else:
            action = 'action drop' if rule['action'] == 'drop' else 'action pass'
        protos = _proto_numbers(match['proto']) if 'proto' in match else [None]
        sports = _port_items(match['sport']) if 'sport' in match else [None]
        dports = _port_items(match['dport']) if 'dport' in match else [None]
        for fam, fields in _families(match):
            for family in ([4, 6] if fam is None else [fam]):
                combos = itertools.product(fields['src'] or [None], fields['dst'] or [None], protos, sports, dports)
                for src, dst, proto, sport, dport in combos:
                    args = ['filter add dev %s egress protocol %s pref %d flower' % (
                        IFNAME, 'ip' if family == 4 else 'ipv6', len(out) + 1)]
                    if src:
                        args.append('src_ip %s' % src)
                    if dst:
                        args.append('dst_ip %s' % dst)
                    if proto is not None:
                        args.append('ip_proto %s' % names.get(proto, str(proto)))
                    for key, item in (('src_port', sport), ('dst_port', dport)):
                        if item:
                            args.append('%s %s' % (key, item[0] if item[0] == item[1] else '%d-%d' % item))
                    out.append((rule['name'], ' '.join(args + [action])))
    return out


def flower_available():
    """None when tc flower (with gact) works in a namespace of our own, else the reason."""
    ns = '%s-%s-flower' % (common.NS_PREFIX, uuid.uuid4().hex[:6])
    try:
        common.run('ip', 'netns', 'add', ns)
        common.run('ip', '-n', ns, 'link', 'add', 'p0', 'type', 'veth', 'peer', 'name', 'p1')
        common.run('tc', '-n', ns, 'qdisc', 'add', 'dev', 'p0', 'clsact')
        res = common.run('tc', '-n', ns, 'filter', 'add', 'dev', 'p0', 'egress', 'protocol', 'ip', 'pref', '1',
                         'flower', 'dst_ip', '192.0.2.1', 'action', 'pass', check=False)
        if res.returncode != 0:
            return 'unavailable on this kernel: tc says %r (no CONFIG_NET_CLS_FLOWER / act_gact)' % (
                ' '.join(res.stderr.split()))
        return None
    except OSError as err:
        return 'cannot run tc: %s' % err
    finally:
        common.run('ip', 'netns', 'del', ns, check=False)


# ------------------------------------------------------------------------------------------ the lab

class Pair:
    """One system's sender/receiver namespaces, its filter, and its iperf3 server."""

    def __init__(self, lab, system, ruleset, pin_root):
        self.lab = lab
        self.system = system
        self.ruleset = ruleset
        self.pin_dir = None
        self.sender = lab.ns('%s-s' % system)
        self.receiver = lab.ns('%s-r' % system)
        for ns in (self.sender, self.receiver):
            for key in ('all', 'default'):
                lab.exec(ns, 'sysctl', '-qw', 'net.ipv6.conf.%s.disable_ipv6=1' % key)
        lab.veth(self.sender, IFNAME, self.receiver, IFNAME)
        lab.addr(self.sender, IFNAME, SENDER_CIDR)
        lab.addr(self.receiver, IFNAME, RECEIVER_CIDR)
        self.server = lab.spawn(self.receiver, 'iperf3', '-s', '-B', rulegen.RECEIVER4, '-A', '1')
        self.rule_count = None          # rules as the system holds them
        self.program = None             # the BPF program pinned under pin_dir (tc-bpf systems)
        self.ipt_rules = None
        if system in BPF_SYSTEMS:
            self._install_bpf(pin_root, *BPF_SYSTEMS[system])
        elif system == 'nftables':
            self._install_nft()
        elif system in ('iptables', 'iptables-legacy'):
            self._install_iptables()
        elif system == 'tc-flower':
            self._install_flower()
        self._wait_server()

    # -- installing the filters --

    def _install_bpf(self, pin_root, kind, backend):
        """The floor or the steering program on the sender's egress, as the clsact filter or a TCX link."""
        import dataplane
        from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps
        if kind == 'floor':
            self.program, obj = dataplane.FLOOR_PROGRAM, dataplane.build_floor()
        else:
            self.program, obj = 'steering', common.STEERING_OBJECT
        self.pin_dir = os.path.join(pin_root, self.sender, IFNAME, 'egress')
        res = _program.filter_present(IFNAME, 'egress', self.sender, self.pin_dir, obj, self.program,
                                      priority=10, handle=1, backend=backend)
        assert res['backend'] == backend, res
        if kind == 'steering':
            with SteeringMaps(self.pin_dir) as maps:
                maps.apply(self.ruleset, lambda name: 0, str)
            self.rule_count = len(self.ruleset.rules)

    def _install_nft(self):
        script = nft_script(self.ruleset)
        path = os.path.join(common.BUILD, 'nft-%s.nft' % self.sender)
        with open(path, 'w') as f:
            f.write(script)
        try:
            self.lab.exec(self.sender, 'nft', '-f', path, timeout=120)
        finally:
            os.unlink(path)
        self.rule_count = len(nft_rules(self.ruleset))

    def _ipt(self, tool):
        return ('iptables-legacy' if self.system == 'iptables-legacy' else 'iptables-nft') + tool

    def _install_iptables(self):
        text, rules = iptables_restore_input(self.ruleset, 4)
        self.ipt_rules = rules
        v6text, v6rules = iptables_restore_input(self.ruleset, 6)
        v4tool = self._ipt('-restore')
        for tool, data in ((v4tool, text), (v4tool.replace('iptables', 'ip6tables'), v6text)):
            res = common.run('ip', 'netns', 'exec', self.sender, tool, input=data, check=False, timeout=300)
            if res.returncode != 0:
                raise RuntimeError('%s failed: %s' % (tool, res.stderr.strip()[-2000:]))
        self.rule_count = {'ipv4': len(rules), 'ipv6': len(v6rules)}

    def _install_flower(self):
        filters = flower_filters(self.ruleset)
        self.lab.exec(self.sender, 'tc', 'qdisc', 'add', 'dev', IFNAME, 'clsact')
        path = os.path.join(common.BUILD, 'flower-%s.tc' % self.sender)
        with open(path, 'w') as f:
            f.write('\n'.join(line for dummy, line in filters) + '\n')
        try:
            self.lab.exec(self.sender, 'tc', '-b', path, timeout=600)
        finally:
            os.unlink(path)
        self.rule_count = len(filters)

    def _wait_server(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = self.lab.exec(self.receiver, 'ss', '-Hltn', 'sport = :%d' % rulegen.LATE_PORT, check=False)
            if res.stdout.strip():
                return
            if self.server.poll() is not None:
                raise RuntimeError('iperf3 server in %s exited with %s' % (self.receiver, self.server.returncode))
            time.sleep(0.05)
        raise RuntimeError('iperf3 server in %s is not listening after %ds' % (self.receiver, timeout))

    # -- measuring --

    def rx_packets(self):
        res = self.lab.exec(self.receiver, 'cat', '/sys/class/net/%s/statistics/rx_packets' % IFNAME)
        return int(res.stdout.strip())

    def iperf(self, args, seconds):
        argv = ['iperf3', '-c', rulegen.RECEIVER4, '-A', '0', '-J'] + list(args)
        for attempt in range(3):
            res = self.lab.exec(self.sender, *argv, check=False, timeout=seconds + 60)
            try:
                data = json.loads(res.stdout)
            except ValueError:
                data = {'error': res.stderr.strip() or res.stdout.strip()[:500]}
            if 'error' not in data:
                return data
            time.sleep(0.5 + attempt)    # the server is busy finishing the previous test
        raise RuntimeError('iperf3 in %s failed: %s' % (self.sender, data.get('error')))

    def tcp(self, params):
        data = self.iperf(['-t', str(params['tcp_seconds']), '-O', str(params['tcp_omit'])],
                          params['tcp_seconds'] + params['tcp_omit'])
        cpu = data['end']['cpu_utilization_percent']
        bits = data['end']['sum_received']['bits_per_second']
        # client and server CPU time together (percent of one CPU each, over the test)
        return {'bits_per_second': bits, 'cpu_percent': cpu['host_total'] + cpu['remote_total']}

    def udp(self, params):
        before = self.rx_packets()
        data = self.iperf(['-u', '-b', '0', '-l', str(params['udp_payload']), '-t', str(params['udp_seconds'])],
                          params['udp_seconds'])
        received = self.rx_packets() - before
        sent = data['end']['sum_sent']
        server = data['end']['sum_received']
        seconds = sent['seconds']
        # The client's CPU time (user + system; softirq work done in its context is charged to it, the
        # kernel has no IRQ time accounting) per packet: the cost of the whole path on the sending CPU,
        # filter included, and far less disturbed by other load on the machine than packets per second.
        cpu_seconds = data['end']['cpu_utilization_percent']['host_total'] / 100.0 * seconds
        return {'pps_received': received / seconds, 'pps_sent': sent['packets'] / seconds,
                'packets_sent': sent['packets'], 'packets_received_at_interface': received,
                'pps_to_socket': (server['packets'] - server['lost_packets']) / seconds,
                'sender_cpu_ns_per_packet': cpu_seconds * 1e9 / max(sent['packets'], 1)}

    # -- checking that the traffic met only the last rule --

    def counters(self):
        """{rule name: packets} as the system counts them (None for 'none')."""
        if self.system == 'none' or BPF_SYSTEMS.get(self.system, ('',))[0] == 'floor':
            return None
        if self.system in OURS:
            from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps
            with SteeringMaps(self.pin_dir) as maps:
                return dict((name, c['packets']) for name, c in maps.rule_counters().items())
        if self.system == 'nftables':
            res = self.lab.exec(self.sender, 'nft', '-j', 'list', 'chain', 'inet', NFT_TABLE, 'postrouting',
                                timeout=120)
            out = {}
            for item in json.loads(res.stdout)['nftables']:
                rule = item.get('rule')
                if not rule:
                    continue
                packets = sum(e['counter']['packets'] for e in rule['expr'] if isinstance(e, dict) and 'counter' in e)
                out[rule.get('comment')] = out.get(rule.get('comment'), 0) + packets
            return out
        if self.system in ('iptables', 'iptables-legacy'):
            res = self.lab.exec(self.sender, self._ipt('-save'), '-c', '-t', 'mangle', timeout=120)
            counts = [int(line[1:].split(':', 1)[0]) for line in res.stdout.splitlines()
                      if line.startswith('[') and ' -A POSTROUTING ' in line]
            if len(counts) != len(self.ipt_rules):
                raise AssertionError('%s lists %d POSTROUTING rules, %d were loaded'
                                     % (self.system, len(counts), len(self.ipt_rules)))
            out = {}
            for (name, dummy), packets in zip(self.ipt_rules, counts):
                out[name] = out.get(name, 0) + packets
            return out
        if self.system == 'tc-flower':
            res = self.lab.exec(self.sender, 'tc', '-s', '-j', 'filter', 'show', 'dev', IFNAME, 'egress', timeout=120)
            filters = flower_filters(self.ruleset)
            by_pref = {}
            for item in json.loads(res.stdout):
                for action in (item.get('options') or {}).get('actions', []):
                    stats = action.get('stats') or {}
                    by_pref[item['pref']] = by_pref.get(item['pref'], 0) + stats.get('packets', 0)
            out = {}
            for pref, (name, dummy) in enumerate(filters, 1):
                out[name] = out.get(name, 0) + by_pref.get(pref, 0)
            return out
        raise ValueError(self.system)

    def check_counters(self, udp_packets_sent):
        """Only the last rule counted packets, at least as many as UDP packets sent (TCP adds more)."""
        counters = self.counters()
        if counters is None:
            return None
        last = self.ruleset.rules[-1].name
        others = dict((k, v) for k, v in counters.items() if k != last and v)
        if others:
            raise AssertionError('%s: rules other than the last one counted packets: %s' % (self.system, others))
        if counters.get(last, 0) < udp_packets_sent:
            raise AssertionError('%s: the last rule counted %s packets, fewer than the %d UDP packets sent'
                                 % (self.system, counters.get(last), udp_packets_sent))
        return {'last_rule_packets': counters.get(last, 0), 'other_rules_packets': 0}


def _unavailable(system):
    """Why `system` cannot run here, or None."""
    from ansible_collections.ebpf.tc.plugins.module_utils import _tcx
    if BPF_SYSTEMS.get(system, (None, None))[1] == 'tcx' and not _tcx.supported():
        return 'this kernel has no TCX (BPF_TCX_EGRESS; Linux 6.6 and later)'
    if system == 'tc-flower':
        return _tool_missing(system) or flower_available()
    return _tool_missing(system)


def _tool_missing(system):
    need = {'nftables': ['nft'], 'iptables': ['iptables-nft-restore', 'ip6tables-nft-restore'],
            'iptables-legacy': ['iptables-legacy-restore', 'ip6tables-legacy-restore'], 'tc-flower': ['tc']}
    missing = [t for t in need.get(system, []) if shutil.which(t) is None]
    return ('not installed here: %s (make bench installs it)' % ', '.join(missing)) if missing else None


def measure(quick=False, systems=SYSTEMS):
    params = dict(QUICK if quick else FULL)
    if shutil.which('iperf3') is None:
        raise RuntimeError('iperf3 is not installed (make bench installs it)')
    ruleset = rulegen.ruleset(params['rules'])
    rulegen.check_traffic_matches_only_last(ruleset)
    os.makedirs(common.BUILD, exist_ok=True)

    run_id = uuid.uuid4().hex[:6]
    pin_root = os.path.join(common.PIN_BASE, 'throughput-%s' % run_id)
    unavailable = {}
    pairs = {}
    samples = {}
    checks = {}
    started = time.monotonic()
    lab = Lab('%s-%s' % (common.NS_PREFIX, run_id))
    try:
        for system in systems:
            reason = _unavailable(system)
            if reason:
                common.log('throughput: %s %s' % (system, reason))
                unavailable[system] = reason
                continue
            common.log('throughput: setting up %s' % system)
            pairs[system] = Pair(lab, system, ruleset, pin_root)

        # warm-up, and proof that the traffic meets only the last rule before anything is timed
        warm = dict(params, tcp_seconds=1, tcp_omit=0, udp_seconds=1)
        sent = {}
        for system, pair in pairs.items():
            pair.tcp(warm)
            sent[system] = pair.udp(warm)['packets_sent']
            checks[system] = {'after_warmup': pair.check_counters(sent[system])}

        # Every measurement of a system is paired with one of 'none' right before or after it (the side
        # alternates), and ratios are taken within pairs: the load on this machine drifts by tens of percent
        # within minutes, far more than the differences measured.
        rng = random.Random(rulegen.SEED)
        others = [s for s in pairs if s != 'none']
        pair_id = 0
        for r in range(params['rounds']):
            for test in ('tcp', 'udp'):
                order = list(others)
                rng.shuffle(order)
                common.log('throughput: round %d/%d %s: %s' % (r + 1, params['rounds'], test, ' '.join(order)))
                for system in order:
                    pair_id += 1
                    for who in (('none', system) if pair_id % 2 else (system, 'none')):
                        value = getattr(pairs[who], test)(params)
                        if test == 'udp':
                            sent[who] += value['packets_sent']
                        samples.setdefault(who, {}).setdefault(test, []).append((pair_id, value))
        for system, pair in pairs.items():
            checks[system]['at_end'] = pair.check_counters(sent[system])
        rule_counts = dict((system, pair.rule_count) for system, pair in pairs.items())
        in_path = dict((system, in_path_cost(pairs[system], warm)) for system in BPF_SYSTEMS if system in pairs)
    finally:
        lab.close()
        # the run's pins, then common.PIN_BASE too once nothing else is in it
        _program.remove_pins(pin_root, root=_program.BPFFS)
    elapsed = time.monotonic() - started
    result = summarize(params, ruleset, samples, checks, unavailable, rule_counts, elapsed)
    result['bpf_in_path'] = in_path
    return result


BPF_STATS = '/proc/sys/kernel/bpf_stats_enabled'


def in_path_cost(pair, params):
    """The steering program's own run time per packet on the real path (kernel.bpf_stats_enabled), from
    one more UDP run after the timed ones, next to what the whole sending path costs per packet.

    bpf_stats is a machine-wide switch that slows every BPF program a little: it is on only for this run
    and set back to what it was, also on failure.
    """
    from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf
    with open(BPF_STATS) as f:
        before = f.read().strip()
    fd = _libbpf.obj_get(os.path.join(pair.pin_dir, pair.program))
    try:
        with open(BPF_STATS, 'w') as f:
            f.write('1')
        start = _libbpf.prog_info(fd)
        udp = pair.udp(dict(params, udp_seconds=2))
        end = _libbpf.prog_info(fd)
    finally:
        with open(BPF_STATS, 'w') as f:
            f.write(before)
        os.close(fd)
    runs = end.run_cnt - start.run_cnt
    return {'runs': runs, 'program_ns_per_run': (end.run_time_ns - start.run_time_ns) / runs if runs else None,
            'sender_cpu_ns_per_packet': udp['sender_cpu_ns_per_packet'],
            'note': 'one 2 s UDP run with kernel.bpf_stats_enabled=1, after the timed rounds'}


METRICS = {
    'tcp': ('tcp', 'bits/s received (iperf3 TCP)', lambda v: v['bits_per_second']),
    'tcp_per_cpu': ('tcp', 'bits per CPU-second of the iperf3 client and server together (their CPU time '
                           'includes the filter and most softirq work): less sensitive to other load',
                    lambda v: v['bits_per_second'] / (v['cpu_percent'] / 100.0)),
    'udp': ('udp', 'packets/s received at the receiver\'s interface (iperf3 UDP, 64-byte payload)',
            lambda v: v['pps_received']),
    'udp_per_cpu': ('udp', 'packets per CPU-second of the sending iperf3 (its CPU time includes the filter '
                           'and the softirq work it triggers): the same ratio, much less sensitive to other load',
                    lambda v: 1e9 / v['sender_cpu_ns_per_packet']),
}


def sender_overhead(samples):
    """{system: spread of the sender's extra CPU ns per UDP packet over the 'none' measurement of its pair}."""
    none_by_pair = dict((p, v['sender_cpu_ns_per_packet']) for p, v in samples.get('none', {}).get('udp', []))
    out = {}
    for system, tests in samples.items():
        extra = [v['sender_cpu_ns_per_packet'] - none_by_pair[p] for p, v in tests.get('udp', []) if p in none_by_pair]
        if system != 'none' and extra:
            out[system] = common.spread(extra)
    return out


def summarize(params, ruleset, samples, checks, unavailable, rule_counts, elapsed):
    medians, ratios, pair_ratios = {}, {}, {}
    for system, tests in samples.items():
        for metric, (test, dummy, value_of) in METRICS.items():
            if test in tests:
                medians.setdefault(system, {})[metric] = common.median([value_of(v) for dummy, v in tests[test]])
    base = medians.get('none', {})
    for system in medians:
        for metric, (test, dummy, value_of) in METRICS.items():
            if metric not in medians[system]:
                continue
            ratios.setdefault(system, {})[metric] = common.ratio(medians[system][metric], base.get(metric))
            if system == 'none':
                continue
            # the ratio within each pair (this system next to 'none'), then the median over pairs
            none_by_pair = dict(samples.get('none', {}).get(test, []))
            within = [value_of(v) / value_of(none_by_pair[p]) for p, v in samples[system][test] if p in none_by_pair]
            pair_ratios.setdefault(system, {})[metric] = common.spread(within)
    targets = {}
    for system in OURS:
        ours = pair_ratios.get(system)
        if not ours:
            continue
        for metric in METRICS:
            peers = dict((s, pair_ratios[s][metric]['median']) for s in PEERS if s in pair_ratios)
            value = ours[metric]['median']
            targets.setdefault(system, {})[metric] = {
                'ratio_to_none': value, 'target': TARGET_RATIO, 'met_95_percent': value >= TARGET_RATIO,
                'peers': peers, 'ahead_of_peers': all(value > v for v in peers.values()),
            }
    overhead = sender_overhead(samples)
    compact = {}
    for system, tests in samples.items():
        compact[system] = {}
        for test, values in tests.items():
            compact[system]['%s_pair' % test] = [p for p, dummy in values]
            if test == 'tcp':
                compact[system]['tcp_bits_per_second'] = [round(v['bits_per_second']) for dummy, v in values]
                compact[system]['tcp_cpu_percent'] = [round(v['cpu_percent'], 1) for dummy, v in values]
            else:
                for key in ('pps_received', 'pps_sent', 'pps_to_socket', 'sender_cpu_ns_per_packet'):
                    compact[system]['udp_' + key] = [round(v[key]) for dummy, v in values]
    return {
        'part': 'throughput',
        'machine': common.machine_info(),
        'parameters': dict(params, systems=list(SYSTEMS), seed=rulegen.SEED,
                           topology='one veth pair per system between two namespaces; %s -> %s; IPv6 off'
                                    % (SENDER_CIDR, RECEIVER_CIDR),
                           placement={'ebpf-tc-clsact': 'clsact egress of the sender\'s eth0 (priority 10)',
                                      'ebpf-tc-tcx': 'a TCX link on egress of the sender\'s eth0 (placement first)',
                                      'floor-clsact': 'as ebpf-tc-clsact; parse-only program, a reference',
                                      'floor-tcx': 'as ebpf-tc-tcx; parse-only program, a reference',
                                      'nftables': 'sender, inet table, filter chain on postrouting, priority mangle',
                                      'iptables': 'sender, mangle POSTROUTING (iptables-nft)',
                                      'iptables-legacy': 'sender, mangle POSTROUTING (x_tables)',
                                      'tc-flower': 'tc clsact egress of the sender\'s eth0'},
                           tcp='iperf3 -t %d -O %d, bits/s received' % (params['tcp_seconds'], params['tcp_omit']),
                           udp='iperf3 -u -b 0 -l %d -t %d, packets/s received at the receiver\'s interface'
                               % (params['udp_payload'], params['udp_seconds']),
                           cpus='iperf3 client on CPU 0, server on CPU 1'),
        'ruleset': rulegen.describe(ruleset),
        'rules_as_installed': rule_counts,
        'unavailable': unavailable,
        'verified': checks,
        'metrics': dict((m, d) for m, (dummy, d, dummy2) in METRICS.items()),
        'median': medians,
        'ratio_to_none': pair_ratios,
        'ratio_to_none_note': 'median (and spread) over pairs of the ratio of a measurement to the measurement of '
                              '"none" next to it; the targets use the median',
        'ratio_of_medians': ratios,
        'targets': targets,
        'sender_overhead_ns_per_packet': overhead,
        'sender_overhead_note': 'UDP: the sending iperf3\'s CPU ns per packet less that of the "none" measurement '
                                'next to it, median (and spread) over pairs: what the hook and the program cost '
                                'the sender per 64-byte packet',
        'tcx_saves_ns_per_packet': dict(
            (kind, overhead['%s-clsact' % kind]['median'] - overhead['%s-tcx' % kind]['median'])
            for kind in ('floor', 'ebpf-tc') if '%s-clsact' % kind in overhead and '%s-tcx' % kind in overhead),
        'samples': compact,
        'seconds': elapsed,
    }

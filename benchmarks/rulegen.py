"""Deterministic, realistic steering rule sets for the benchmarks, and the probe packets aimed at them.

A rule set of n rules is ``[EARLY] + body[:n - 2] + [LATE]`` (n = 1: one rule that is both), where the
body is drawn once from a seeded generator and looks like what operators write: host and subnet rules
of many prefix lengths (IPv4 and IPv6, sometimes both in one rule), service ports, port ranges and port
lists, protocol-only rules (ICMP), and pass, drop and mark actions. No police or redirect rules: their
actions cost differently and nothing here measures them.

Every address the body names lies outside ``PROBE_NET4``/``PROBE_NET6``, and a body rule without any
address field has a protocol or destination port that none of the probes carries, so the probes decide
as intended:

- ``early``: IPv4 TCP that rule 0 (``EARLY``) matches;
- ``late``:  IPv4 TCP to port 5201 (iperf3's) that only the last rule (``LATE``) matches;
- ``none``:  the same hosts as ``late`` to port 5202: no rule matches, the default action decides;
- ``ipv6``:  IPv6 TCP to port 5201 that only the last rule matches.

``expected_match`` asks the reference model (tests/model.py, the dataplane tests' oracle) which rule a
frame meets first; the harness checks every probe against it and against the kernel's counters before
it times anything.
"""

import ipaddress
import random

import common  # noqa: F401  pylint: disable=unused-import
import model
import packets as pk
from ansible_collections.ebpf.tc.plugins.module_utils import _rules

SEED = 20240606

PROBE_NET4 = ipaddress.ip_network('100.64.0.0/10')     # shared address space: never in the body
PROBE_NET6 = ipaddress.ip_network('fd00:64::/32')
SENDER4, RECEIVER4 = '100.64.0.1', '100.64.0.2'       # also the throughput part's namespaces
SENDER6, RECEIVER6 = 'fd00:64::1', 'fd00:64::2'
LATE_PORT = 5201                                      # iperf3's port
NONE_PORT = 5202
EARLY_SRC, EARLY_DST, EARLY_PORT = '100.64.10.5', '100.64.20.6', 443
PROBE_PORTS = frozenset((LATE_PORT, NONE_PORT, EARLY_PORT))

EARLY = {'name': 'early', 'match': {'src': '100.64.10.0/24', 'dst': '100.64.20.0/24', 'proto': 'tcp',
                                    'dport': [22, EARLY_PORT]},
         'action': 'mark', 'mark': 0x100}
LATE = {'name': 'late', 'match': {'dst': [RECEIVER4 + '/32', RECEIVER6 + '/128'], 'proto': ['tcp', 'udp'],
                                  'dport': LATE_PORT},
        'action': 'pass'}
ONLY = {'name': 'only', 'match': {'dst': ['100.64.20.0/24', RECEIVER4 + '/32', RECEIVER6 + '/128'],
                                  'proto': ['tcp', 'udp'], 'dport': [22, EARLY_PORT, LATE_PORT]},
        'action': 'pass'}

# Address space the body draws from: private and documentation/public-looking ranges (never 100.64/10).
V4_POOLS = [ipaddress.ip_network(n) for n in (
    '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '198.51.100.0/24', '203.0.113.0/24', '192.0.2.0/24',
    '185.0.0.0/8', '91.0.0.0/8', '52.0.0.0/8')]
V6_POOLS = [ipaddress.ip_network(n) for n in (
    '2001:db8::/32', '2a01:4f8::/32', '2606:4700::/32', '2a00:1450::/32', 'fd12:3456::/32', 'fdaa::/16')]
SERVICE_PORTS = [22, 25, 53, 80, 110, 123, 143, 161, 389, 443, 465, 514, 587, 636, 993, 995, 1194, 1433, 1521,
                 2049, 2379, 3306, 3389, 5060, 5432, 5672, 6379, 6443, 8000, 8080, 8443, 8888, 9000, 9090,
                 9092, 9100, 9200, 10250, 11211, 27017]
PORT_RANGES = [(1024, 2047), (3000, 3999), (6000, 6063), (8000, 8999), (9000, 9999), (10000, 20000),
               (30000, 32767), (32768, 60999), (49152, 65535), (7000, 7100), (1, 1023)]
ACTIONS = [('pass', 45), ('drop', 30), ('mark', 25)]


def _weighted(rng, choices):
    total = sum(weight for dummy, weight in choices)
    x = rng.uniform(0, total)
    for value, weight in choices:
        x -= weight
        if x <= 0:
            return value
    return choices[-1][0]


def _prefix(rng, version):
    pools, bits = (V4_POOLS, 32) if version == 4 else (V6_POOLS, 128)
    pool = rng.choice(pools)
    if version == 4:
        length = _weighted(rng, [(32, 35), (24, 25), (rng.randint(16, 31), 30), (rng.randint(8, 15), 10)])
    else:
        length = _weighted(rng, [(128, 30), (64, 30), (56, 10), (48, 15), (rng.randint(32, 127), 15)])
    length = max(length, pool.prefixlen)
    host = int(pool.network_address) + rng.randrange(pool.num_addresses)
    net = ipaddress.ip_network((host, length), strict=False)
    return str(net)


def _address_list(rng, version):
    count = _weighted(rng, [(1, 80), (2, 12), (rng.randint(3, 6), 8)])
    return [_prefix(rng, version) for dummy in range(count)]


def _port(rng):
    return rng.choice(SERVICE_PORTS) if rng.random() < 0.7 else rng.randint(1024, 65535)


def _ports(rng):
    """A port field: a single port, a range, or a list of ports and ranges."""
    kind = _weighted(rng, [('single', 50), ('range', 20), ('list', 30)])
    if kind == 'single':
        return _port(rng)
    if kind == 'range':
        lo, hi = rng.choice(PORT_RANGES)
        return '%d-%d' % (lo, hi)
    items = []
    for dummy in range(rng.randint(2, 5)):
        if rng.random() < 0.2:
            lo, hi = rng.choice(PORT_RANGES)
            items.append('%d-%d' % (lo, hi))
        else:
            items.append(_port(rng))
    return items


def _ports_cover(field, ports):
    if field is None:
        return True
    for item in field if isinstance(field, list) else [field]:
        if isinstance(item, str):
            lo, hi = (int(x) for x in item.split('-'))
        else:
            lo = hi = item
        if any(lo <= p <= hi for p in ports):
            return True
    return False


def _body_rule(rng, index):
    """One realistic rule (never covering the probe networks)."""
    match = {}
    shape = _weighted(rng, [('v4', 50), ('v6', 20), ('dual', 10), ('noaddr', 20)])
    if shape != 'noaddr':
        families = {'v4': [4], 'v6': [6], 'dual': [4, 6]}[shape]
        which = _weighted(rng, [('dst', 55), ('src', 25), ('both', 20)])
        for field in (('src', 'dst') if which == 'both' else (which,)):
            values = []
            for version in families:
                values += _address_list(rng, version)
            match[field] = values if len(values) > 1 else values[0]
    if shape == 'noaddr':
        proto = _weighted(rng, [('tcp', 45), ('udp', 30), ('icmp', 10), ('icmpv6', 5), ('sctp', 5),
                                (47, 5)])
    else:
        proto = _weighted(rng, [('tcp', 45), ('udp', 22), (['tcp', 'udp'], 8), ('icmp', 3), ('icmpv6', 2),
                                ('sctp', 2), (None, 18)])
        if proto == 'icmp' and shape == 'v6' or proto == 'icmpv6' and shape == 'v4':
            proto = 'tcp'
    if proto is not None:
        match['proto'] = proto
    protos = proto if isinstance(proto, list) else [proto]
    if all(p in ('tcp', 'udp', 'sctp') for p in protos) and proto is not None:
        if rng.random() < 0.85:
            match['dport'] = _ports(rng)
            if shape == 'noaddr':
                # an address-less port rule must not catch the probes (iperf3's port, 443, 5202)
                while _ports_cover(match['dport'], PROBE_PORTS):
                    match['dport'] = _ports(rng)
        elif shape == 'noaddr':
            match['dport'] = _port(rng)
            while _ports_cover(match['dport'], PROBE_PORTS):
                match['dport'] = _port(rng)
        if rng.random() < 0.1:
            match['sport'] = _ports(rng)
    action = _weighted(rng, ACTIONS)
    rule = {'name': 'r%04d' % index, 'match': match, 'action': action}
    if action == 'mark':
        rule['mark'] = rng.choice([0x10, 0x20, 0x40, 0x1000 + index])
    return rule


def body(count, seed=SEED):
    rng = random.Random(seed)
    return [_body_rule(rng, i) for i in range(count)]


def rules(n, seed=SEED):
    """The user-facing rule list of the n-rule set (1 <= n <= 4096)."""
    if n < 1:
        raise ValueError(n)
    if n == 1:
        return [dict(ONLY)]
    return [dict(EARLY)] + body(n - 2, seed) + [dict(LATE)]


def ruleset(n, seed=SEED, default_action='pass'):
    return _rules.validate(rules(n, seed), default_action)


# --------------------------------------------------------------------------------------- probes

PROBES = {
    'early': 'IPv4 TCP %s -> %s:%d, rule 0' % (EARLY_SRC, EARLY_DST, EARLY_PORT),
    'late': 'IPv4 TCP %s -> %s:%d, last rule only' % (SENDER4, RECEIVER4, LATE_PORT),
    'none': 'IPv4 TCP %s -> %s:%d, no rule (default action)' % (SENDER4, RECEIVER4, NONE_PORT),
    'ipv6': 'IPv6 TCP %s -> [%s]:%d, last rule only' % (SENDER6, RECEIVER6, LATE_PORT),
}


def probe_frames():
    """{kind: frame} for the dataplane part (frames padded to the Ethernet minimum)."""
    return {
        'early': pk.pad_to(pk.ipv4_frame(EARLY_SRC, EARLY_DST, 'tcp', 40000, EARLY_PORT), 60),
        'late': pk.pad_to(pk.ipv4_frame(SENDER4, RECEIVER4, 'tcp', 40000, LATE_PORT), 60),
        'none': pk.pad_to(pk.ipv4_frame(SENDER4, RECEIVER4, 'tcp', 40000, NONE_PORT), 60),
        'ipv6': pk.ipv6_frame(SENDER6, RECEIVER6, 'tcp', 40000, LATE_PORT),
    }


def expected_index(n, kind):
    """The rule index a probe kind must hit in the n-rule set (None: no rule, the default decides)."""
    if kind == 'none':
        return None
    if kind == 'early':
        return 0
    return n - 1


def expected_match(ruleset_, frame):
    """(rule index or None, model verdict) of ``frame`` under ``ruleset_``, from the reference model."""
    dataplane = model.Dataplane()
    dataplane.apply(ruleset_)
    verdict = dataplane.classify(frame)
    return verdict.rule, verdict


def check_probes(ruleset_, frames=None):
    """Raise unless every probe hits exactly the rule it is meant to (by the reference model)."""
    frames = frames or probe_frames()
    n = len(ruleset_.rules)
    problems = []
    for kind, frame in frames.items():
        got = expected_match(ruleset_, frame)[0]
        want = expected_index(n, kind)
        if got != want:
            problems.append('%s probe hits rule %s, meant %s' % (kind, got, want))
    if problems:
        raise AssertionError('rule set of %d rules: %s' % (n, '; '.join(problems)))


def check_traffic_matches_only_last(ruleset_, sports=(32768, 40000, 50000, 60999, 1024, 65535)):
    """The throughput part's traffic (TCP and UDP from SENDER4 to RECEIVER4:5201, any source port)
    meets only the last rule: every sampled source port, both protocols, checked with the model."""
    rules_ = [model.model_rule(d) for d in ruleset_.to_dicts()]
    last = len(rules_) - 1
    for proto in ('tcp', 'udp'):
        for sport in sports:
            packet = model.parse(pk.pad_to(pk.ipv4_frame(SENDER4, RECEIVER4, proto, sport, LATE_PORT), 60))
            hits = [i for i, r in enumerate(rules_) if model.rule_matches(r, packet)]
            if hits != [last]:
                raise AssertionError('%s from port %d to %s:%d matches rules %s, not only the last one'
                                     % (proto, sport, RECEIVER4, LATE_PORT, hits))


def describe(ruleset_):
    """Counts that say what a rule set looks like (stored in the results)."""
    out = {'rules': len(ruleset_.rules), 'ipv4_prefixes': 0, 'ipv6_prefixes': 0, 'with_src': 0, 'with_dst': 0,
           'with_proto': 0, 'with_dport': 0, 'with_sport': 0, 'port_ranges': 0,
           'actions': {}}
    for rule in ruleset_.to_dicts():
        match = rule.get('match') or {}
        for field in ('src', 'dst'):
            if field in match:
                out['with_' + field] += 1
                for net in match[field]:
                    key = 'ipv6_prefixes' if ':' in net else 'ipv4_prefixes'
                    out[key] += 1
        for field in ('proto', 'dport', 'sport'):
            if field in match:
                out['with_' + field] += 1
        for field in ('dport', 'sport'):
            for item in match.get(field, []):
                if isinstance(item, str) and '-' in item:
                    out['port_ranges'] += 1
        out['actions'][rule['action']] = out['actions'].get(rule['action'], 0) + 1
    return out

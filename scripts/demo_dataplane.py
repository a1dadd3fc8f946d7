"""`make demo` (until the fleet lab exists): the steering program on a real egress hook.

Two namespaces joined by a veth pair. The shipped object is loaded, pinned and attached to the egress of
one side; a rule set that drops ICMP and blocks TCP port 80 is applied through the pinned maps; ping and
TCP connects show the effect; the per-rule and per-protocol counters are printed; everything is removed.
"""

import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
sys.path.insert(0, os.path.join(ROOT, 'tests'))
importlib.import_module('conftest')  # tests/conftest.py makes the tree importable as ansible_collections.ebpf.tc
from nslab import Lab  # noqa: E402

from ansible_collections.ebpf.tc.plugins.module_utils import _program  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._rules import validate  # noqa: E402
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps  # noqa: E402

OBJECT = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
RULES = [
    {'name': 'no-ping', 'match': {'proto': 'icmp'}, 'action': 'drop'},
    {'name': 'no-ping6', 'match': {'proto': 'icmpv6', 'dst': ['fd00:200::/64']}, 'action': 'drop'},
    {'name': 'block-http', 'match': {'proto': 'tcp', 'dport': 80}, 'action': 'drop'},
    {'name': 'web-alt', 'match': {'proto': 'tcp', 'dport': '8000-8999'}, 'action': 'mark', 'mark': 0x10},
]


def no_redirects(interface):
    raise AssertionError('the demo rules redirect nowhere, yet %s was asked for' % interface)


def show(title, lab, client, server):
    print('\n== %s' % title)
    for host in (server['v4'], server['v6']):
        print('  ping %-14s %d/3 replies' % (host, lab.pings(client, host, count=3)))
    for port in (80, 8080):
        for host in (server['v4'], server['v6']):
            ok = lab.tcp_connects(client, host, port)
            print('  tcp  %-14s port %-5d %s' % (host, port, 'connects' if ok else 'FAILS'))


def table(rows, headers):
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = '  '.join(str(h).ljust(w) for h, w in zip(headers, widths))
    print('  ' + line + '\n  ' + '-' * len(line))
    for r in rows:
        print('  ' + '  '.join(str(c).ljust(w) for c, w in zip(r, widths)))


def main():
    with Lab() as lab:
        client, server = lab.ns('client'), lab.ns('server')
        lab.veth(client, 'eth0', server, 'eth0')
        lab.addr(client, 'eth0', '10.200.0.1/24')
        lab.addr(client, 'eth0', 'fd00:200::1/64')
        lab.addr(server, 'eth0', '10.200.0.2/24')
        lab.addr(server, 'eth0', 'fd00:200::2/64')
        for port in (80, 8080):
            lab.tcp_listener(server, port)
        addrs = {'v4': '10.200.0.2', 'v6': 'fd00:200::2'}
        show('before: no program attached', lab, client, addrs)

        pin_dir = _program.default_pin_dir('eth0', 'egress', netns=client)
        try:
            # the call ebpf.tc.bpf_filter makes: load, pin, attach (clsact added when missing)
            result = _program.filter_present('eth0', 'egress', client, pin_dir, OBJECT, 'steering',
                                             priority=10, handle=1)
            print('\nattached on %s eth0 egress: %s' % (client, result['filter']))
            print('program id %d tag %s, pinned under %s' % (result['prog_id'], result['tag'], pin_dir))

            ruleset = validate(RULES, default_action='pass')
            with SteeringMaps(pin_dir) as maps:
                maps.apply(ruleset, ifindex_of=no_redirects, ifname_of=str)
                show('after applying %d rules (drop ICMP, block tcp/80, mark 8000-8999)' % len(RULES),
                     lab, client, addrs)
                print('\nper-rule counters (%s eth0 egress):' % client)
                counters = maps.rule_counters()
                table([[name, c['packets'], c['bytes'], c['drops']] for name, c in counters.items()],
                      ['rule', 'packets', 'bytes', 'drops'])
                print('\nper-protocol counters:')
                names = {1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6'}
                table([[names.get(k, k), c['packets'], c['bytes']] for k, c in maps.proto_counters().items()],
                      ['protocol', 'packets', 'bytes'])
                applied = maps.applied(ifname_of=str)
                print('\nrule set read back from the maps equals the one applied: %s' % (applied == ruleset))
        finally:
            _program.remove_pins(pin_dir)
    print('\nlab removed (namespaces, veths, qdiscs, pins).')


if __name__ == '__main__':
    main()

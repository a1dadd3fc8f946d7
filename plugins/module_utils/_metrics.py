# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The steering program's counters in the Prometheus text exposition format (version 0.0.4), for
node_exporter's textfile collector.

render() turns the facts ``_facts.gather(netns)`` returns (what ``ebpf.tc.tc_info`` reports) into the text
of a ``.prom`` file. It is pure: it reads nothing from the host, so it is tested with hand-written facts. The
role ebpf.tc.steering runs both through ``ebpf_tc_metrics.py`` (a systemd timer) when
``ebpf_tc_metrics_textfile`` is set, on hosts without Ansible (so no module_utils here imports ``ansible``).

Families (every sample carries ``interface`` and ``direction``; with a network namespace, ``netns`` too):

- ``ebpf_tc_rule_packets_total``, ``ebpf_tc_rule_bytes_total``, ``ebpf_tc_rule_drops_total`` (counters,
  labels ``rule``, ``action``): per rule of the applied set, and ``rule="(default)"`` for the packets the
  default action decided (``action`` is then the default action);
- ``ebpf_tc_protocol_packets_total``, ``ebpf_tc_protocol_bytes_total`` (counters, label ``protocol``: tcp,
  udp, icmp, icmpv6, sctp, another IP protocol number, ``non-ip`` or ``malformed``): every frame the program
  saw, by protocol, whatever rule decided it;
- ``ebpf_tc_ruleset_generation`` (gauge): the generation of the applied rule set, 0 when none was applied;
- ``ebpf_tc_hook_attached`` (gauge): 1 when a program of this collection runs on the hook (a TCX link it
  pinned, or a filter ``ebpf_tc:<program>``), 0 when only the pins are left (the filter or the clsact qdisc
  was removed behind our back);
- ``ebpf_tc_hook_read_error`` (gauge): 1 when the hook's pinned maps could not be read (its rule and
  protocol series are missing then), else 0;
- ``ebpf_tc_metrics_last_refresh_timestamp_seconds`` (gauge, only ``netns`` when set): when the file was
  rendered, so that a stale file (the timer stopped) can be alerted on.

A hook appears when it has steering pins or runs one of our programs. The ``netns`` label is there only when the
facts are of a named namespace: on a node the host namespace has no such label, while several namespaces
exported side by side (labs, one file each in the same directory) never give node_exporter two series
with the same labels, which it refuses. No sample has a timestamp (node_exporter refuses those too).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.ebpf.tc.plugins.module_utils._rules import DIRECTIONS

DEFAULT_RULE = '(default)'  # the name _steering gives the default action's counter

# (name, type, help) in output order
FAMILIES = (
    ('ebpf_tc_rule_packets_total', 'counter',
     'Packets decided by a steering rule (rule="(default)": by the default action).'),
    ('ebpf_tc_rule_bytes_total', 'counter',
     'Bytes (skb length) of the packets decided by a steering rule.'),
    ('ebpf_tc_rule_drops_total', 'counter',
     'Packets a steering rule dropped (action drop, or police beyond its rate).'),
    ('ebpf_tc_protocol_packets_total', 'counter',
     'Frames seen by the steering program, by IP protocol (non-ip, malformed).'),
    ('ebpf_tc_protocol_bytes_total', 'counter',
     'Bytes of the frames seen by the steering program, by IP protocol (non-ip, malformed).'),
    ('ebpf_tc_ruleset_generation', 'gauge',
     'Generation of the rule set applied on the hook (0: none applied).'),
    ('ebpf_tc_hook_attached', 'gauge',
     'Whether a program of ebpf.tc (a TCX link, or a filter ebpf_tc:<program>) runs on the hook.'),
    ('ebpf_tc_hook_read_error', 'gauge',
     'Whether the pinned steering maps of the hook could not be read.'),
    ('ebpf_tc_metrics_last_refresh_timestamp_seconds', 'gauge',
     'Unix time at which these ebpf.tc metrics were read.'),
)
RULE_COUNTERS = (('ebpf_tc_rule_packets_total', 'packets'), ('ebpf_tc_rule_bytes_total', 'bytes'),
                 ('ebpf_tc_rule_drops_total', 'drops'))
PROTOCOL_COUNTERS = (('ebpf_tc_protocol_packets_total', 'packets'), ('ebpf_tc_protocol_bytes_total', 'bytes'))


def escape_label_value(value):
    """A label value as the text format wants it: backslash, double quote and line feed escaped."""
    return str(value).replace('\\', '\\\\').replace('"', '\\"').replace('\n', '\\n')


def escape_help(text):
    """HELP text: backslash and line feed escaped (a double quote stays as it is)."""
    return str(text).replace('\\', '\\\\').replace('\n', '\\n')


def format_value(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def sample(name, labels, value):
    """One sample line; labels is a list of (name, value) pairs, in the order they are written."""
    if labels:
        inner = ','.join('%s="%s"' % (key, escape_label_value(val)) for key, val in labels)
        return '%s{%s} %s' % (name, inner, format_value(value))
    return '%s %s' % (name, format_value(value))


def runs_ours(hook):
    """Whether the hook runs a program of this collection (_facts.gather's 'attached', either backend)."""
    return hook.get('attached') is not None


def hooks_of(gathered):
    """(interface, direction, hook facts) of every hook with steering pins or one of our programs, sorted."""
    out = []
    interfaces = gathered.get('interfaces') or {}
    for name in sorted(interfaces):
        for direction in DIRECTIONS:
            hook = interfaces[name].get(direction) or {}
            if runs_ours(hook) or hook.get('steering') is not None:
                out.append((name, direction, hook))
    return out


def _rule_rows(steering):
    """(rule name, action, {packets, bytes, drops}) in rule-set order, then the default action's."""
    counters = steering.get('counters') or {}
    rows, seen = [], set()
    for rule in steering.get('rules') or []:
        name = rule['name']
        seen.add(name)
        rows.append((name, rule.get('action', ''), counters.get(name) or {}))
    # a counter without its rule (never expected: both come from the same applied tables) is not lost
    for name in sorted(n for n in counters if n not in seen and n != DEFAULT_RULE):
        rows.append((name, '', counters[name]))
    if steering.get('applied'):
        rows.append((DEFAULT_RULE, steering.get('default_action') or '', counters.get(DEFAULT_RULE) or {}))
    return rows


def _protocol_order(name):
    """IP protocols by number (tcp before udp...), then non-ip and malformed; unknown names last."""
    numbers = {'icmp': 1, 'tcp': 6, 'udp': 17, 'icmpv6': 58, 'sctp': 132, 'non-ip': 256, 'malformed': 257}
    name = str(name)
    if name in numbers:
        return (numbers[name], name)
    if name.isdigit():
        return (int(name), name)
    return (1 << 16, name)


def render(gathered, now=None):
    """The text of a .prom file from `gathered` (what _facts.gather returns), rendered at `now` (Unix time;
    default: the current time). Deterministic: the same facts and time always give the same text."""
    now = time.time() if now is None else now
    netns = gathered.get('netns')
    base = [('netns', netns)] if netns is not None else []
    lines = dict((family[0], []) for family in FAMILIES)
    for interface, direction, hook in hooks_of(gathered):
        where = base + [('interface', interface), ('direction', direction)]
        steering = hook.get('steering')
        lines['ebpf_tc_hook_attached'].append(sample('ebpf_tc_hook_attached', where, int(runs_ours(hook))))
        if steering is None:
            continue
        failed = 'error' in steering
        lines['ebpf_tc_hook_read_error'].append(sample('ebpf_tc_hook_read_error', where, int(failed)))
        if failed:
            continue
        lines['ebpf_tc_ruleset_generation'].append(
            sample('ebpf_tc_ruleset_generation', where,
                   int(steering.get('generation') or 0) if steering.get('applied') else 0))
        for rule, action, stats in _rule_rows(steering):
            labels = where + [('rule', rule), ('action', action)]
            for family, key in RULE_COUNTERS:
                lines[family].append(sample(family, labels, int(stats.get(key, 0))))
        protocols = steering.get('protocols') or {}
        for protocol in sorted(protocols, key=_protocol_order):
            labels = where + [('protocol', protocol)]
            for family, key in PROTOCOL_COUNTERS:
                lines[family].append(sample(family, labels, int(protocols[protocol].get(key, 0))))
    lines['ebpf_tc_metrics_last_refresh_timestamp_seconds'].append(
        sample('ebpf_tc_metrics_last_refresh_timestamp_seconds', base, round(float(now), 3)))
    out = []
    for name, kind, text in FAMILIES:
        out.append('# HELP %s %s' % (name, escape_help(text)))
        out.append('# TYPE %s %s' % (name, kind))
        out.extend(lines[name])
    return '\n'.join(out) + '\n'

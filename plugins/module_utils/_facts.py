# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read-only facts about TC hooks (what ebpf.tc.tc_info returns): qdiscs, BPF filters, pins, the steering
rule set with its counters, and the interface's reverse-path filter mode.

Nothing here writes: not to netlink, not to a map, not to bpffs, so it is the same in check mode.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _program, _tc
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._rules import DIRECTIONS, PROTO_NAMES

TC_H_ROOT = 0xFFFFFFFF
TC_H_UNSPEC = 0
STEERING_PROGRAM = 'steering'   # the kernel's name of the program of files/bpf/steering.bpf.o


def tc_handle(value):
    """A qdisc handle or parent as tc prints it: 'ffff:', 'ffff:fff1', 'root'."""
    if value == TC_H_ROOT:
        return 'root'
    if value == TC_H_UNSPEC:
        return 'none'
    major, minor = value >> 16, value & 0xFFFF
    return '%x:%s' % (major, '%x' % minor if minor else '')


# -- reverse-path filter -------------------------------------------------------------------------

def _read_sysctls(paths):
    out = {}
    for path in paths:
        try:
            with open(path) as handle:
                out[path] = int(handle.read().strip())
        except (IOError, OSError, ValueError):
            out[path] = None
    return out


def read_sysctls(paths, netns=None):
    """Integer values of /proc/sys files as seen from `netns` (None: this namespace; unreadable: None).

    /proc/sys/net shows the namespace of the process that opens it: _tc.run_in_netns reads from inside.
    """
    return _tc.run_in_netns(netns, lambda: _read_sysctls(paths))


def rp_filters(ifnames, netns=None):
    """{ifname: {'rp_filter': value of net.ipv4.conf.<if>.rp_filter, 'effective': max(it, conf.all)}}.

    The kernel applies the larger of the interface's and 'all''s values (0 off, 1 strict, 2 loose).
    """
    paths = dict((name, '/proc/sys/net/ipv4/conf/%s/rp_filter' % name) for name in ifnames)
    all_path = '/proc/sys/net/ipv4/conf/all/rp_filter'
    values = read_sysctls(sorted(paths.values()) + [all_path], netns)
    out = {}
    for name, path in paths.items():
        own, every = values.get(path), values.get(all_path)
        effective = None if own is None else max(own, every or 0)
        out[name] = {'rp_filter': own, 'effective': effective}
    return out


# -- pins ----------------------------------------------------------------------------------------

def pins_of(pin_dir):
    """What is pinned directly in pin_dir (_attached.read_pins), map types by name."""
    from ansible_collections.ebpf.tc.plugins.module_utils._mapcodec import type_name

    pins = _attached.read_pins(pin_dir)
    for entry in pins['maps']:
        entry['type'] = type_name(entry['type'])
    return pins


def is_steering_dir(pins):
    from ansible_collections.ebpf.tc.plugins.module_utils._steering import STEERING_MAPS

    return set(STEERING_MAPS) <= set(m['name'] for m in pins['maps'])


def steering_facts(pin_dir, ifname_of, prog_id=None, pinned=True):
    """The applied rule set, generation and counters of the steering maps of program `prog_id` (the one a
    hook runs) or, when it is not given or not a steering program, of the maps pinned in pin_dir (if
    `pinned`; else None). 'source' says which: 'attached' or 'pinned'."""
    from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps

    maps = SteeringMaps.of_program(prog_id) if prog_id else None
    source = 'attached'
    if maps is None:
        if not pinned:
            return None
        maps, source = SteeringMaps(pin_dir), 'pinned'
    with maps:
        header = maps.header()
        out = {'applied': header is not None, 'generation': header.generation if header else 0,
               'default_action': None, 'rules': [], 'counters': {}, 'protocols': {}, 'source': source}
        if header is not None:
            ruleset = maps.applied(ifname_of)
            out['default_action'] = ruleset.default_action
            out['rules'] = ruleset.to_dicts()
            out['counters'] = maps.rule_counters()
        out['protocols'] = dict((proto_name(key), value) for key, value in maps.proto_counters().items())
    return out


def proto_name(key):
    if isinstance(key, int):
        return PROTO_NAMES.get(key, str(key))
    return key


# -- the whole picture ---------------------------------------------------------------------------

def _qdiscs(ipr, index):
    return [{'kind': kind, 'handle': tc_handle(handle), 'parent': tc_handle(parent)}
            for kind, handle, parent in _tc.qdiscs(ipr, index)]


def gather(netns=None, interface=None, directions=DIRECTIONS):
    """Facts of one interface (or every interface of the namespace): {'interfaces': {name: {...}}}."""
    with _tc.open_netlink(netns) as ipr:
        names = _tc.link_names(ipr)
        if interface is not None:
            indexes = [i for i, n in names.items() if n == interface]
            if not indexes:
                raise EbpfTcError('interface %s does not exist%s'
                                  % (interface, ' in network namespace %s' % netns if netns else ''))
        else:
            indexes = sorted(names)
        interfaces = {}
        for index in indexes:
            name = names[index]
            facts = {'ifindex': index, 'qdiscs': _qdiscs(ipr, index)}
            for direction in directions:
                filters = []
                for flt in _tc.list_filters(ipr, index, direction):
                    flt = dict(flt)
                    flt['owned'] = _tc.is_owned(flt)
                    info = _attached.program_info(flt.get('prog_id'))
                    flt['prog_name'] = info.name if info else None
                    flt['map_ids'] = sorted(info.map_ids) if info else None
                    filters.append(flt)
                # what the hook runs against the default pin dir's pins: one answer, _attached's
                hook = _attached.hook_state(ipr, index, direction, _program.default_pin_dir(name, direction, netns),
                                            name, netns=netns)
                facts[direction] = {'tcx': hook['tcx'], 'filters': filters, 'attached': hook['attached'],
                                    'drift': hook['drift'], 'shadowed': hook['shadowed']}
            interfaces[name] = facts

    def ifname_of(ifindex):
        return names.get(ifindex)

    rp = rp_filters(sorted(interfaces), netns)
    for name, facts in interfaces.items():
        facts['rp_filter'] = rp[name]['rp_filter']
        facts['rp_filter_effective'] = rp[name]['effective']
        for direction in directions:
            pin_dir = _program.default_pin_dir(name, direction, netns)
            pins = pins_of(pin_dir)
            facts[direction]['pins'] = pins
            steering = None
            attached = facts[direction]['attached']
            prog_id = attached['id'] if attached and attached['prog_name'] == STEERING_PROGRAM else None
            if prog_id or is_steering_dir(pins):
                try:
                    steering = steering_facts(pin_dir, ifname_of, prog_id, pinned=is_steering_dir(pins))
                except EbpfTcError as err:  # one unreadable hook must not hide the others' facts
                    steering = {'applied': None, 'error': str(err)}
            facts[direction]['steering'] = steering
    return {'interfaces': interfaces, 'netns': netns, 'table': table(interfaces, directions)}


def table(interfaces, directions=DIRECTIONS):
    """A compact text table: one line per program the hook runs (TCX chain first, as 'tcx:<name>', then the
    clsact filters), and one per steering rule with its counters. Our program on a hook with drift reads
    'ebpf_tc:steering(drift)', a clsact filter of ours behind a TCX chain 'ebpf_tc:steering(shadowed)'."""
    rows = [('INTERFACE', 'DIRECTION', 'PROGRAM', 'RULE', 'PACKETS', 'BYTES', 'DROPS')]
    for name in sorted(interfaces):
        facts = interfaces[name]
        for direction in directions:
            hook = facts.get(direction) or {}
            programs = ['tcx:%s' % (_tc.owned_name(t['program']) if t.get('owned') else t.get('prog_name') or t['id'])
                        for t in hook.get('tcx', [])]
            filters = [f.get('name') or '(unnamed)' for f in hook.get('filters', [])]
            programs += [p + '(shadowed)' if hook.get('shadowed') and p.startswith(_tc.OWNED_PREFIX) else p
                         for p in filters]
            attached = hook.get('attached') or {}
            drifted = attached.get('name') if hook.get('drift') else None
            if drifted and attached.get('backend') == 'tcx':
                drifted = 'tcx:' + drifted
            programs = [p + '(drift)' if p == drifted else p for p in programs]
            steering = hook.get('steering')
            if steering and steering.get('applied') and 'error' not in steering:
                program = ','.join(p for p in programs) or '(not attached)'
                for rule in steering['rules'] + [{'name': '(default)'}]:
                    stats = steering['counters'].get(rule['name'], {})
                    label = rule['name'] if rule['name'] != '(default)' else \
                        '(default: %s)' % steering['default_action']
                    rows.append((name, direction, program, label, str(stats.get('packets', 0)),
                                 str(stats.get('bytes', 0)), str(stats.get('drops', 0))))
            else:
                for program in programs:
                    rows.append((name, direction, program, '-', '-', '-', '-'))
    if len(rows) == 1:
        return ''
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)

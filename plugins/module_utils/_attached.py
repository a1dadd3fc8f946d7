# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a TC hook actually runs, and whether the pins of its pin directory agree (drift).

The kernel is the truth: a hook runs its TCX chain (BPF_PROG_QUERY, kernels >= 6.6), then the clsact
filters (the program a filter names is TCA_BPF_ID in the netlink dump); the maps a program uses are its
``map_ids`` (BPF_OBJ_GET_INFO_BY_FD on a fd from BPF_PROG_GET_FD_BY_ID), not whatever is pinned at a
path. A clsact filter behind a non-empty TCX chain is shadowed: it runs only for the packets every TCX
program passes on with TCX_NEXT, and a CNI's program (Cilium >= 1.16) ends the chain for most. Pins and the attached program disagree - drift -
when the program pinned in the pin directory is not the attached one, or the attached program does not use
the maps pinned there (another ``pin_dir`` attached over it, say). tc_info reports drift, steering_rules
and bpf_filter refuse to act on it: this module is the one place that decides what it is.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf, _tc, _tcx
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError

BPFFS = '/sys/fs/bpf'
_SEARCH_DEPTH = 8   # directories below the root searched: ebpf_tc/netns/<netns>/<interface>/<direction> is 5


def program_info(prog_id):
    """The kernel's ProgInfo of program `prog_id`, or None when it is gone (or unreadable)."""
    if not prog_id:
        return None
    try:
        fd = _libbpf.prog_fd_by_id(prog_id)
    except EbpfTcError:
        return None
    try:
        return _libbpf.prog_info(fd)
    except EbpfTcError:
        return None
    finally:
        os.close(fd)


def pinned_object(path):
    """('prog', ProgInfo) or ('map', MapInfo) of the object pinned at path; (None, None) for anything else."""
    try:
        fd = _libbpf.obj_get(path)
    except EbpfTcError:
        return None, None
    try:
        try:
            return 'prog', _libbpf.prog_info(fd)
        except EbpfTcError:
            pass
        try:
            return 'map', _libbpf.map_info(fd)
        except EbpfTcError:
            return None, None
    finally:
        os.close(fd)


def read_pins(pin_dir):
    """What is pinned directly in pin_dir, read from the kernel: {'path', 'programs': [{'name' (the pin's),
    'id', 'tag', 'prog_name'}], 'maps': [{'name', 'id', 'type', 'key_size', 'value_size', 'max_entries'}]}
    in name order; anything else pinned there (links) is left out. The one reader of a pin directory."""
    out = {'path': pin_dir, 'programs': [], 'maps': []}
    if not os.path.isdir(pin_dir):
        return out
    for name in sorted(os.listdir(pin_dir)):
        path = os.path.join(pin_dir, name)
        if os.path.isdir(path):
            continue
        kind, info = pinned_object(path)
        if kind == 'prog':
            out['programs'].append({'name': name, 'id': info.id, 'tag': info.tag, 'prog_name': info.name})
        elif kind == 'map':
            out['maps'].append({'name': name, 'id': info.id, 'type': info.type, 'key_size': info.key_size,
                                'value_size': info.value_size, 'max_entries': info.max_entries})
    return out


def pinned(pin_dir, program=None):
    """read_pins() as drift_of() compares it: {'path', 'program': {'name', 'id', 'tag'} of the pin named
    `program` (None when absent or not given), 'maps': {pin name: map id}}."""
    pins = read_pins(pin_dir)
    found = [p for p in pins['programs'] if program is not None and p['name'] == program]
    return {'path': pin_dir, 'program': dict((k, found[0][k]) for k in ('name', 'id', 'tag')) if found else None,
            'maps': dict((m['name'], m['id']) for m in pins['maps'])}


def _walk_pins(root):
    """(directory, file names) of every directory under `root`, at most _SEARCH_DEPTH levels down."""
    if not os.path.isdir(root):
        return
    base = root.rstrip(os.sep).count(os.sep)
    for directory, subdirs, files in os.walk(root):
        if directory.count(os.sep) - base >= _SEARCH_DEPTH:
            subdirs[:] = []
        yield directory, files


def find_pin_dir(prog_id, program, root=BPFFS):
    """The directory under `root` where program id `prog_id` is pinned as `program`, or None (only pins
    named `program` are opened, so a crowded bpffs costs a directory walk)."""
    for directory, files in _walk_pins(root):
        if program in files:
            kind, info = pinned_object(os.path.join(directory, program))
            if kind == 'prog' and info.id == prog_id:
                return directory
    return None


def owned_links(root=BPFFS):
    """{link id: {'path', 'program'}} of the TCX links this collection pinned (<pin_dir>/<program>_tcx)
    anywhere under `root`."""
    out = {}
    for directory, files in _walk_pins(root):
        for name in files:
            if name.endswith(_tcx.LINK_PIN_SUFFIX) and len(name) > len(_tcx.LINK_PIN_SUFFIX):
                path = os.path.join(directory, name)
                info = _tcx.pinned_link(path)
                if info is not None:
                    out[info['id']] = {'path': path, 'program': name[:-len(_tcx.LINK_PIN_SUFFIX)]}
    return out


def tcx_chain(index, direction, netns=None):
    """The hook's TCX chain in run order, [] on a kernel without TCX: each program {'position' (0 runs
    first), 'id', 'link_id', 'prog_name', 'tag', 'map_ids', 'owned', 'program' and 'link_pin' (of ours;
    None for a foreign one)}."""
    with _tc.netns_entered(netns):
        if not _tcx.supported(index):
            return []
        entries = _tcx.query(index, direction)
    ours = owned_links() if entries else {}
    out = []
    for position, entry in enumerate(entries):
        info = program_info(entry['id'])
        owner = ours.get(entry['link_id']) if entry['link_id'] else None
        out.append({'position': position, 'id': entry['id'], 'link_id': entry['link_id'],
                    'prog_name': info.name if info else None, 'tag': info.tag if info else None,
                    'map_ids': sorted(info.map_ids) if info else None, 'owned': owner is not None,
                    'program': owner['program'] if owner else None, 'link_pin': owner['path'] if owner else None})
    return out


def attached_programs(ipr, index, direction, program=None, chain=None):
    """The programs this collection attached to the hook (for `program` only, when given), in the order the
    kernel runs them: our TCX links (from `chain`, a tcx_chain()), then our clsact filters. Each is
    {'backend', 'name', 'program', 'id', 'tag', 'prog_name', 'map_ids'} (prog_name and map_ids None when
    the program is gone) with 'priority', 'handle' for a filter (None for a link), 'link_id', 'link_pin',
    'position' for a link (None for a filter)."""
    out = []
    for entry in chain or ():
        if entry['owned'] and (program is None or entry['program'] == program):
            out.append({
                'backend': 'tcx', 'priority': None, 'handle': None, 'name': _tc.owned_name(entry['program']),
                'program': entry['program'], 'id': entry['id'], 'tag': entry['tag'],
                'prog_name': entry['prog_name'], 'map_ids': entry['map_ids'],
                'link_id': entry['link_id'], 'link_pin': entry['link_pin'], 'position': entry['position'],
            })
    for flt in _tc.list_filters(ipr, index, direction):
        if not _tc.is_owned(flt) or (program is not None and _tc.owned_program(flt) != program):
            continue
        info = program_info(flt['prog_id'])
        out.append({
            'backend': 'clsact', 'priority': flt['priority'], 'handle': flt['handle'], 'name': flt['name'],
            'program': _tc.owned_program(flt), 'id': flt['prog_id'], 'tag': flt['tag'],
            'prog_name': info.name if info else None,
            'map_ids': sorted(info.map_ids) if info else None,
            'link_id': None, 'link_pin': None, 'position': None,
        })
    return out


def describe_attachment(attached):
    """How a program of attached_programs() is attached, for messages."""
    if attached.get('backend') == 'tcx':
        return 'TCX link %s at position %d of the chain' % (attached['link_id'], attached['position'])
    return 'filter %s priority %d handle %#x' % (attached['name'], attached['priority'], attached['handle'])


def shadowed_by(attached, chain, where):
    """None unless `attached` is a clsact filter behind a non-empty TCX chain; then {'message', 'programs'
    (the TCX programs in front of it)}."""
    if attached is None or attached.get('backend') == 'tcx' or not chain:
        return None
    names = ', '.join('%s (id %s%s)' % (entry['prog_name'] or '?', entry['id'],
                                        ', ours' if entry['owned'] else '') for entry in chain)
    return {'programs': [entry['id'] for entry in chain],
            'message': 'shadowed: %s runs %s behind the TCX programs %s, which run first and end the chain for '
                       'every packet they do not pass on with TCX_NEXT; attach with backend: tcx (placement: '
                       'first) to run in front of them' % (where, describe_attachment(attached), names)}


def drift_of(attached, pins, where):
    """None when the attached program and the pins agree, else {'reason', 'message'}.

    attached: one entry of attached_programs() (None: nothing attached, which is not drift); pins: pinned()
    of the hook's pin directory. Only pins that are there can disagree: an empty or missing pin directory is
    not drift (the program may be pinned under another pin_dir, which this call cannot know).
    reason: 'program' (another program is pinned at pin_dir/<program>), or 'maps' (the attached program does
    not use maps pinned there).
    """
    if attached is None or (pins['program'] is None and not pins['maps']):
        return None
    used = set(attached['map_ids'] or ())
    unused = sorted(name for name, map_id in pins['maps'].items() if map_id not in used)
    pinned_prog = pins['program']
    running = '%s runs program %s (id %s, %s)' % (
        where, attached['program'], attached['id'], describe_attachment(attached))
    if pinned_prog is not None and pinned_prog['id'] != attached['id']:
        reason = 'program'
        problem = '%s, not the program pinned at %s (id %s)' % (
            running, os.path.join(pins['path'], pinned_prog['name']), pinned_prog['id'])
        if unused:
            problem += ', and does not use the maps pinned there (%s)' % ', '.join(unused)
    elif unused:
        reason = 'maps'
        problem = '%s, which does not use the maps pinned at %s (%s)' % (running, pins['path'], ', '.join(unused))
    else:
        return None
    elsewhere = find_pin_dir(attached['id'], attached['program'])
    if elsewhere is not None and elsewhere != pins['path']:
        problem += '; the attached program is pinned at %s' % elsewhere
    repair = ('to run the pinned program and its maps again, attach it with ebpf.tc.bpf_filter, pin_dir: %s and '
              'force: true' % pins['path'])
    if elsewhere is not None and elsewhere != pins['path']:
        repair += '; to work on the attached program instead, give pin_dir: %s' % elsewhere
    return {'reason': reason, 'message': 'drift: %s. Repair: %s' % (problem, repair), 'pinned_at': elsewhere}


def hook_state(ipr, index, direction, pin_dir, interface, program=None, netns=None):
    """The hook as the kernel runs it, against the pins of pin_dir.

    Returns {'attached': the first of our programs in run order (for `program` when given) or None,
    'pins': pinned(), 'drift': drift_of(), 'tcx': tcx_chain(), 'shadowed': shadowed_by(), 'where'}.
    """
    chain = tcx_chain(index, direction, netns)
    found = attached_programs(ipr, index, direction, program, chain)
    attached = found[0] if found else None
    pins = pinned(pin_dir, program or (attached['program'] if attached else None))
    where = '%s of %s%s' % (direction, interface, ' in network namespace %s' % netns if netns else '')
    return {'attached': attached, 'pins': pins, 'drift': drift_of(attached, pins, where), 'tcx': chain,
            'shadowed': shadowed_by(attached, chain, where), 'where': where}

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A snapshot of the host state a refused task must leave alone, for "nothing changed" assertions.

What is compared, byte for byte: the namespaces of the test (``ip netns list``, restricted to the test's
prefix: another engineer's tests may add and remove their own meanwhile), ``tc qdisc`` and ``tc filter``
dumps of every interface in those namespaces (bpf filters show their program id and tag), every pin under
the given roots with the kernel id of the object pinned there, the pending commit-confirm records of the
given pin dirs, and the steering rule sets read back from the maps of the program each hook runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _tc, _tcx
from ansible_collections.ebpf.tc.plugins.module_utils._confirm import PENDING_DIR, Pending
from ansible_collections.ebpf.tc.plugins.module_utils._facts import steering_facts


def _run(*argv):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=30).stdout


def namespaces(prefix):
    names = []
    for line in _run('ip', 'netns', 'list').splitlines():
        name = line.split()[0] if line.strip() else ''
        if name.startswith(prefix):
            names.append(name)
    return sorted(names)


def tc_dump(netns):
    """qdiscs of the namespace, the filters of every interface's clsact hooks as tc prints them, and each
    hook's TCX chain (program and link ids, in run order)."""
    out = {'qdiscs': _run('ip', 'netns', 'exec', netns, 'tc', 'qdisc', 'show')}
    with _tc.open_netlink(netns) as ipr:
        indexes = dict((name, _tc.ifindex(ipr, name)) for name in _links(netns))
    for name in sorted(indexes):
        for direction in ('ingress', 'egress'):
            out['%s %s' % (name, direction)] = _run('ip', 'netns', 'exec', netns, 'tc', 'filter', 'show', 'dev',
                                                    name, direction)
            out['%s %s tcx' % (name, direction)] = [
                (entry['id'], entry['link_id']) for entry in _attached.tcx_chain(indexes[name], direction, netns)]
    return out


def _links(netns):
    names = []
    for line in _run('ip', 'netns', 'exec', netns, 'ip', '-o', 'link', 'show').splitlines():
        names.append(line.split(':')[1].strip().split('@')[0])
    return names


def pins(roots):
    """{path: 'dir' | 'prog <id>' | 'map <id>' | 'link <id>' | 'file'} of everything under the roots."""
    out = {}
    for root in roots:
        if not os.path.lexists(root):
            out[root] = None
            continue
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            out[directory] = 'dir'
            for name in sorted(files):
                path = os.path.join(directory, name)
                kind, info = _attached.pinned_object(path)
                link = _tcx.pinned_link(path) if kind is None else None
                out[path] = '%s %d' % (kind, info.id) if kind else 'link %d' % link['id'] if link else 'file'
    return out


def rule_sets(netns, hooks):
    """For each (interface, direction, pin_dir): the attached program, drift, and the rule set read back
    (generation, default action, rules) from the maps of the program the hook runs."""
    out = {}
    with _tc.open_netlink(netns) as ipr:
        for interface, direction, pin_dir in hooks:
            index = _tc.ifindex(ipr, interface)
            hook = _attached.hook_state(ipr, index, direction, pin_dir, interface, netns=netns)
            attached = hook['attached']
            steering = None
            if attached is not None:
                steering = steering_facts(pin_dir, str, attached['id'], pinned=False)
            if steering is not None:
                steering = dict((k, steering[k]) for k in ('applied', 'generation', 'default_action', 'rules',
                                                           'source'))
            out['%s %s' % (interface, direction)] = {'attached': attached, 'drift': hook['drift'],
                                                     'steering': steering}
    return out


def snapshot(prefix, netns_list, pin_roots, hooks=()):
    """Everything above. hooks: (netns, interface, direction, pin_dir) of the steering hooks to read back."""
    state = {
        'netns': namespaces(prefix),
        'tc': dict((ns, tc_dump(ns)) for ns in netns_list),
        'pins': pins(pin_roots),
        'pending': {},
        'rules': {},
    }
    for netns, interface, direction, pin_dir in hooks:
        pending = Pending(pin_dir)
        state['pending'][pin_dir] = (pending.read(), pending.read_outcome())
        state['rules'].update(('%s %s' % (netns, key), value) for key, value in
                              rule_sets(netns, [(interface, direction, pin_dir)]).items())
    return state


def forget_pending_dirs():
    """Remove the pending records' directories when empty (what the module made, nothing of anyone else's)."""
    for directory in (PENDING_DIR, os.path.dirname(PENDING_DIR)):
        try:
            os.rmdir(directory)
        except OSError:
            pass

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Attaching BPF programs to TC hooks: the one place that talks netlink (pyroute2).

The backend today is a clsact qdisc with direct-action `bpf` filters. Callers use only the functions
below (ensure_clsact, attach, detach, list_filters), so a TCX (bpf_link) backend can replace this one
without touching the modules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import traceback

from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError

PYROUTE2_IMPORT_ERROR = None
try:
    from pyroute2 import IPRoute, NetNS
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.rtnl.tcmsg import sched_bpf
except ImportError:
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    sched_bpf = None

TC_H_CLSACT_PARENT = 0xFFFFFFF1
PARENTS = {'ingress': 0xFFFFFFF2, 'egress': 0xFFFFFFF3}
NETNS_DIR = '/run/netns'


def _extend_bpf_attributes():
    """pyroute2 0.7 stops at TCA_BPF_FLAGS (8): add FLAGS_GEN (9), TAG (10) and ID (11), in kernel order."""
    if sched_bpf is None:
        return
    names = [entry[0] for entry in sched_bpf.options.nla_map]
    if 'TCA_BPF_ID' not in names:
        sched_bpf.options.nla_map = tuple(sched_bpf.options.nla_map) + (
            ('TCA_BPF_FLAGS_GEN', 'uint32'),
            ('TCA_BPF_TAG', 'hex'),
            ('TCA_BPF_ID', 'uint32'),
        )


_extend_bpf_attributes()


def require_pyroute2():
    if PYROUTE2_IMPORT_ERROR is not None:
        raise EbpfTcError('pyroute2 is required: %s' % PYROUTE2_IMPORT_ERROR.strip().splitlines()[-1])


def open_netlink(netns=None):
    """An rtnetlink socket in `netns` (a name under /run/netns) or in the current namespace.

    Never creates a namespace: pyroute2 would, unless flags=0.
    """
    require_pyroute2()
    if netns is None:
        return IPRoute()
    if not os.path.exists(os.path.join(NETNS_DIR, netns)):
        raise EbpfTcError('network namespace %s does not exist (no %s/%s)' % (netns, NETNS_DIR, netns))
    return NetNS(netns, flags=0)


def ifindex(ipr, interface):
    links = ipr.link_lookup(ifname=interface)
    if not links:
        raise EbpfTcError('interface %s does not exist' % interface)
    return links[0]


def has_clsact(ipr, index):
    for qdisc in ipr.get_qdiscs(index=index):
        if qdisc.get_attr('TCA_KIND') == 'clsact':
            return True
    return False


def ensure_clsact(ipr, index):
    """Adds a clsact qdisc when missing. Returns True when it added one."""
    if has_clsact(ipr, index):
        return False
    ipr.tc('add', 'clsact', index)
    return True


def remove_clsact(ipr, index):
    if not has_clsact(ipr, index):
        return False
    ipr.tc('del', 'clsact', index)
    return True


def list_filters(ipr, index, direction):
    """The bpf filters on one hook: dicts with priority, handle, name, prog_id, tag, direct_action."""
    out = []
    try:
        dump = ipr.get_filters(index=index, parent=PARENTS[direction])
    except NetlinkError as err:
        if err.code == 22:  # EINVAL: no clsact qdisc
            return out
        raise
    for msg in dump:
        if msg.get_attr('TCA_KIND') != 'bpf':
            continue
        opts = msg.get_attr('TCA_OPTIONS')
        if opts is None:  # the chain header entry, not a filter
            continue
        tag = opts.get_attr('TCA_BPF_TAG')
        out.append({
            'priority': (msg['info'] >> 16) & 0xFFFF,
            'handle': msg['handle'],
            'name': opts.get_attr('TCA_BPF_NAME'),
            'prog_id': opts.get_attr('TCA_BPF_ID'),
            'tag': tag.replace(':', '') if tag else None,
            'direct_action': bool((opts.get_attr('TCA_BPF_FLAGS') or 0) & 1),
        })
    return out


def attach(ipr, index, direction, prog_fd, name, priority, handle):
    """Attach (or atomically replace) a direct-action bpf filter at priority/handle."""
    ipr.tc('replace-filter', 'bpf', index, handle, fd=prog_fd, name=name, parent=PARENTS[direction],
           prio=priority, classid=1, direct_action=True, protocol=0x0003)  # ETH_P_ALL


def detach(ipr, index, direction, priority, handle):
    try:
        ipr.tc('del-filter', 'bpf', index, handle, parent=PARENTS[direction], prio=priority, protocol=0x0003)
    except NetlinkError as err:
        if err.code in (2, 22):  # already gone
            return False
        raise
    return True

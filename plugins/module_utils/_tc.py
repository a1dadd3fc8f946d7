# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The clsact attach backend, and the one place that talks netlink (pyroute2).

A clsact qdisc with direct-action `bpf` filters, on every kernel. The TCX backend (bpf_link, 6.6 and
later) is _tcx; _program chooses between them (backend auto | tcx | clsact). Entering a network
namespace (netns_entered, open_netlink, run_in_netns) lives here for both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import json
import os
import traceback

from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._rules import DIRECTIONS

PYROUTE2_IMPORT_ERROR = None
try:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.rtnl.tcmsg import sched_bpf
except ImportError:
    PYROUTE2_IMPORT_ERROR = traceback.format_exc()
    sched_bpf = None

    class NetlinkError(Exception):
        """Stands in for pyroute2's when it is missing (check_host fails the module before any use)."""

TC_H_CLSACT_PARENT = 0xFFFFFFF1
PARENTS = {'ingress': 0xFFFFFFF2, 'egress': 0xFFFFFFF3}
NETNS_DIR = '/run/netns'

# Filters this collection attaches carry the TC filter name (TCA_BPF_NAME) "ebpf_tc:<program>": that is
# how clsact tells its own filters from foreign ones, and what tc_info reports.
OWNED_PREFIX = 'ebpf_tc:'


def owned_name(program):
    """The filter name bpf_filter gives the filter of `program`."""
    return OWNED_PREFIX + program


def is_owned(flt):
    """True for a filter (a dict of list_filters) that this collection attached."""
    return flt.get('kind', 'bpf') == 'bpf' and (flt.get('name') or '').startswith(OWNED_PREFIX)


def owned_program(flt):
    """The program name of one of our filters, None for a foreign one."""
    return flt['name'][len(OWNED_PREFIX):] if is_owned(flt) else None


def describe_filter(flt, direction=None):
    """One line naming a filter for messages: 'egress priority 10 handle 1: bpf ebpf_tc:steering'."""
    where = '%s ' % direction if direction else ''
    return '%spriority %d handle %#x: %s %s' % (
        where, flt['priority'], flt['handle'], flt.get('kind', 'bpf'), flt.get('name') or '(unnamed)')


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


CLONE_NEWNET = 0x40000000


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, 'setns: %s' % os.strerror(err))


def run_in_netns(netns, func):
    """The JSON-able result of func() run inside network namespace `netns` (None: right here).

    Some state shows the namespace of the process that opens it (/proc/sys/net), so for another
    namespace func runs in a forked child that enters it with setns(2) (never creating one) and sends its
    result back over a pipe: the calling process never changes namespace. An OSError or EbpfTcError in
    func comes back as EbpfTcError.
    """
    if netns is None:
        return func()
    ns_path = os.path.join(NETNS_DIR, netns)
    if not os.path.exists(ns_path):
        raise EbpfTcError('network namespace %s does not exist (no %s)' % (netns, ns_path))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: reports and exits, never returns into the caller
        status = 1
        try:
            os.close(read_end)
            _setns(os.open(ns_path, os.O_RDONLY))
            try:
                report = {'result': func()}
            except (IOError, OSError, EbpfTcError) as err:
                report = {'error': str(err)}
            data = json.dumps(report).encode()
            while data:
                data = data[os.write(write_end, data):]
            status = 0
        finally:
            os._exit(status)  # pylint: disable=protected-access
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    dummy, status = os.waitpid(pid, 0)
    if status != 0 or not chunks:
        raise EbpfTcError('cannot enter network namespace %s' % netns)
    report = json.loads(b''.join(chunks).decode())
    if 'error' in report:
        raise EbpfTcError('in network namespace %s: %s' % (netns, report['error']))
    return report['result']


class _Netlink(object):
    """`with open_netlink(...) as ipr`: yields the IPRoute, closes it, and turns a netlink request that
    failed inside the block into an EbpfTcError saying what it was about."""

    def __init__(self, ipr, about):
        self.ipr = ipr
        self.about = about

    def __enter__(self):
        return self.ipr

    def __exit__(self, kind, err, traceback_):
        self.ipr.close()
        if kind is not None and issubclass(kind, NetlinkError):
            raise EbpfTcError('netlink request%s failed: %s' % (self.about, err))
        return False


class netns_entered(object):  # pylint: disable=invalid-name
    """`with netns_entered(netns):` runs the block with this thread in network namespace `netns` (a name under
    /run/netns; None: stays where it is) and brings it back after. Never creates a namespace.

    What the block makes there stays there: a socket, or an ifindex resolved by bpf(2).
    """

    def __init__(self, netns):
        self.netns = netns
        self.own = None

    def __enter__(self):
        if self.netns is None:
            return self
        path = os.path.join(NETNS_DIR, self.netns)
        if not os.path.exists(path):
            raise EbpfTcError('network namespace %s does not exist (no %s)' % (self.netns, path))
        self.own = os.open('/proc/thread-self/ns/net', os.O_RDONLY)
        try:
            target = os.open(path, os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
        except OSError as err:
            os.close(self.own)
            raise EbpfTcError('cannot enter network namespace %s: %s' % (self.netns, err))
        return self

    def __exit__(self, kind, err, traceback_):
        if self.own is not None:
            try:
                _setns(self.own)     # if this fails the process is lost in the namespace: let it raise
            finally:
                os.close(self.own)
                self.own = None
        return False


def open_netlink(netns=None, interface=None):
    """An rtnetlink socket (pyroute2 IPRoute) in `netns` (a name under /run/netns) or in the current one,
    for use as a context manager. A failed request in the block is an EbpfTcError naming `interface` (or
    the namespace).

    Never creates a namespace. The socket is made in this process: this thread enters the namespace, opens
    the socket (a socket stays in the namespace it was made in) and comes back. pyroute2's NetNS would
    instead talk through a proxy process forked when it is opened, which does not have the BPF program fds
    opened after that (TCA_BPF_FD would be EBADF there).
    """
    require_pyroute2()
    about = ' on %s' % interface if interface else (' in network namespace %s' % netns if netns else '')
    with netns_entered(netns):
        return _Netlink(IPRoute(), about)


def link_names(ipr):
    """{ifindex: name} of every interface of the socket's namespace."""
    return dict((link['index'], link.get_attr('IFLA_IFNAME')) for link in ipr.get_links())


def interface_names(netns=None):
    """The names of the interfaces in `netns` (None: this namespace), as a set."""
    with open_netlink(netns) as ipr:
        return set(link_names(ipr).values())


class InterfaceNames:
    """Interface name <-> ifindex in one namespace, through an open rtnetlink socket (cached)."""

    def __init__(self, ipr):
        self.ipr = ipr
        self.indexes = {}
        self.names = {}

    def ifindex(self, name):
        if name not in self.indexes:
            links = self.ipr.link_lookup(ifname=name)
            self.indexes[name] = links[0] if links else 0
            if links:
                self.names[links[0]] = name
        return self.indexes[name]

    def exists(self, name):
        return self.ifindex(name) > 0

    def ifname(self, index):
        if index not in self.names:
            name = None
            try:
                links = self.ipr.get_links(index)
                if links:
                    name = links[0].get_attr('IFLA_IFNAME')
            except NetlinkError:    # ENODEV: the interface is gone
                name = None
            self.names[index] = name
            if name is not None:
                self.indexes.setdefault(name, index)
        return self.names[index]


def qdiscs(ipr, index):
    """(kind, handle, parent) of each qdisc on the interface."""
    return [(msg.get_attr('TCA_KIND'), msg['handle'], msg['parent'])
            for msg in ipr.get_qdiscs(index=index) if msg['index'] == index]


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
    try:
        ipr.tc('add', 'clsact', index)
    except NetlinkError as err:
        if err.code == 17:  # EEXIST: an `ingress` qdisc holds the same handle (ffff:)
            raise EbpfTcError('cannot add a clsact qdisc on interface index %d: another qdisc holds its place '
                              '(an "ingress" qdisc? clsact replaces it: tc qdisc del dev <if> ingress)' % index)
        raise
    return True


def remove_clsact(ipr, index):
    if not has_clsact(ipr, index):
        return False
    ipr.tc('del', 'clsact', index)
    return True


def list_filters(ipr, index, direction, kinds=('bpf',)):
    """The filters on one hook: dicts with kind, priority, handle, name, prog_id, tag, direct_action.

    Only bpf filters by default; ``kinds=None`` lists every kind (name, prog_id and tag are None for the
    kinds that are not bpf, direct_action False).
    """
    out = []
    try:
        dump = ipr.get_filters(index=index, parent=PARENTS[direction])
    except NetlinkError as err:
        if err.code == 22:  # EINVAL: no clsact qdisc
            return out
        raise
    for msg in dump:
        kind = msg.get_attr('TCA_KIND')
        if kinds is not None and kind not in kinds:
            continue
        opts = msg.get_attr('TCA_OPTIONS')
        if opts is None:  # the chain header entry, not a filter
            continue
        if kind != 'bpf':
            out.append({'kind': kind, 'priority': (msg['info'] >> 16) & 0xFFFF, 'handle': msg['handle'],
                        'name': None, 'prog_id': None, 'tag': None, 'direct_action': False})
            continue
        tag = opts.get_attr('TCA_BPF_TAG')
        out.append({
            'kind': kind,
            'priority': (msg['info'] >> 16) & 0xFFFF,
            'handle': msg['handle'],
            'name': opts.get_attr('TCA_BPF_NAME'),
            'prog_id': opts.get_attr('TCA_BPF_ID'),
            'tag': tag.replace(':', '') if tag else None,
            'direct_action': bool((opts.get_attr('TCA_BPF_FLAGS') or 0) & 1),
        })
    return out


def filter_at(ipr, index, direction, priority, handle):
    """The filter (any kind) at priority/handle on one hook, or None."""
    for flt in list_filters(ipr, index, direction, kinds=None):
        if flt['priority'] == priority and flt['handle'] == handle:
            return flt
    return None


def foreign_filters(ipr, index):
    """Every filter on the interface's clsact hooks that this collection did not attach, as
    (direction, filter) pairs."""
    return [(direction, flt) for direction in DIRECTIONS
            for flt in list_filters(ipr, index, direction, kinds=None) if not is_owned(flt)]


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


# ---------------------------------------------------------------------------------------------------
# the clsact module's present/absent (the module only shapes results)

def hook_view(ipr, index):
    """{'clsact': bool, 'filters': [...]}: the qdisc and every filter on both hooks, for diffs and results."""
    present = has_clsact(ipr, index)
    filters = []
    if present:
        for direction in DIRECTIONS:
            for flt in list_filters(ipr, index, direction, kinds=None):
                view = dict(direction=direction, owned=is_owned(flt))
                view.update((key, flt[key]) for key in ('kind', 'priority', 'handle', 'name', 'prog_id', 'tag'))
                filters.append(view)
    return {'clsact': present, 'filters': filters}


def clsact_state(interface, netns, state, force=False, check_mode=False):
    """Ensure the clsact qdisc present or absent. Removal refuses (EbpfTcError naming them) while filters
    this collection did not attach sit on either hook, unless force. Returns changed, before, after,
    removed_filters."""
    with open_netlink(netns, interface) as ipr:
        index = ifindex(ipr, interface)
        before = hook_view(ipr, index)
        removed = []
        if state == 'present':
            after = before if before['clsact'] else {'clsact': True, 'filters': []}
        else:
            foreign = [flt for flt in before['filters'] if not flt['owned']]
            if foreign and not force:
                raise EbpfTcError('the clsact qdisc on %s carries filters this collection did not attach: %s; '
                                  'not removing it (force: true removes them too)'
                                  % (interface, '; '.join(describe_filter(flt, flt['direction']) for flt in foreign)))
            removed = before['filters']
            after = {'clsact': False, 'filters': []}
        changed = before['clsact'] != after['clsact']
        if changed and not check_mode:
            if state == 'present':
                ensure_clsact(ipr, index)
            else:
                remove_clsact(ipr, index)
            after = hook_view(ipr, index)
        return {'changed': changed, 'before': before, 'after': after, 'removed_filters': removed}

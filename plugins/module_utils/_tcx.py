# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TCX attach backend (Linux >= 6.6): a program on a TC hook held by a bpf_link, through bpf(2).

TCX programs run before any clsact filter, in the order of the hook's chain; the chain goes on to the
next program (and then to clsact) only while they return TCX_NEXT (-1, TC_ACT_UNSPEC). A link lives
while an fd or a pin holds it: this collection pins it at <pin_dir>/<program>_tcx, so it outlives the
module's process and survives a CNI that deletes the clsact filters of the devices it manages.

The distro's libbpf 1.1 has no TCX API (1.3 added it), so the four commands used here are built by hand:
BPF_LINK_CREATE (placement: BPF_F_BEFORE/AFTER, relative program by id), BPF_LINK_UPDATE (swap the
program of a link in place), BPF_LINK_DETACH and BPF_PROG_QUERY (the chain: program and link ids in
order). ifindexes are resolved in the calling thread's network namespace: callers enter it first
(``_tc.netns_entered``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import errno
import os
import platform
import struct

from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, LibbpfError

ATTACH_TYPES = {'ingress': 46, 'egress': 47}     # BPF_TCX_INGRESS, BPF_TCX_EGRESS
BPF_LINK_TYPE_TCX = 11
PLACEMENTS = ('first', 'last', 'before', 'after')
LINK_PIN_SUFFIX = '_tcx'

_BPF_PROG_QUERY = 16
_BPF_OBJ_GET_INFO_BY_FD = 15
_BPF_LINK_CREATE = 28
_BPF_LINK_UPDATE = 29
_BPF_LINK_DETACH = 34
_BPF_F_REPLACE = 1 << 2
_BPF_F_BEFORE = 1 << 3
_BPF_F_AFTER = 1 << 4
_BPF_F_ID = 1 << 5
_SYS_BPF = {'x86_64': 321, 'amd64': 321, 'aarch64': 280, 'arm64': 280}.get(platform.machine().lower())
_ATTR_SIZE = 64         # the largest part of union bpf_attr used here (query, up to `revision`)
_QUERY_MAX = 64         # programs read from one chain (the kernel's BPF_MPROG_MAX is 64)

_LIBC = ctypes.CDLL(None, use_errno=True)


def link_pin(pin_dir, program):
    """Where the link of `program` attached from pin_dir is pinned."""
    return os.path.join(pin_dir, program + LINK_PIN_SUFFIX)


def _bpf(cmd, attr, what):
    """bpf(2) with `attr` (a bytearray, updated in place by the kernel); returns the result or raises
    LibbpfError with errno."""
    if _SYS_BPF is None:
        raise EbpfTcError('TCX is not supported on %s' % platform.machine())
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    ret = _LIBC.syscall(ctypes.c_long(_SYS_BPF), ctypes.c_long(cmd), buf, ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise LibbpfError('%s: %s' % (what, os.strerror(err)), errno=err)
    return ret


def _attach_type(direction):
    return ATTACH_TYPES[direction]


def query(ifindex, direction):
    """The hook's TCX chain in run order: [{'id': prog id, 'link_id': link id (0: attached without a
    link)}]. Raises LibbpfError (EINVAL) on a kernel without TCX."""
    prog_ids = (ctypes.c_uint32 * _QUERY_MAX)()
    link_ids = (ctypes.c_uint32 * _QUERY_MAX)()
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into('=IIII', attr, 0, ifindex, _attach_type(direction), 0, 0)
    struct.pack_into('=QI', attr, 16, ctypes.addressof(prog_ids), _QUERY_MAX)
    struct.pack_into('=Q', attr, 40, ctypes.addressof(link_ids))
    _bpf(_BPF_PROG_QUERY, attr, 'cannot query the TCX %s chain of interface index %d' % (direction, ifindex))
    count = min(struct.unpack_from('=I', attr, 24)[0], _QUERY_MAX)
    return [{'id': prog_ids[i], 'link_id': link_ids[i]} for i in range(count)]


def supported(ifindex=1):
    """True when the running kernel has TCX (a chain query on `ifindex` - loopback by default - answers)."""
    try:
        query(ifindex, 'ingress')
    except LibbpfError as err:
        if err.errno in (errno.EINVAL, errno.EOPNOTSUPP, _libbpf.ENOTSUPP):
            return False
        raise
    return True


def placement_flags(placement, relative_id=None):
    """(flags, relative id) of BPF_LINK_CREATE for a placement: first/last, or before/after the program
    `relative_id`."""
    if placement not in PLACEMENTS:
        raise EbpfTcError('placement: %r is not one of %s' % (placement, ', '.join(PLACEMENTS)))
    if placement in ('first', 'last'):
        return (_BPF_F_BEFORE if placement == 'first' else _BPF_F_AFTER), 0
    if not relative_id:
        raise EbpfTcError('placement: %s needs the program to place it %s' % (placement, placement))
    return (_BPF_F_BEFORE if placement == 'before' else _BPF_F_AFTER) | _BPF_F_ID, relative_id


def link_create(prog_fd, ifindex, direction, placement='first', relative_id=None):
    """A new TCX link of prog_fd on the hook, placed as asked; returns the link fd (the caller owns it:
    pin it or close it, which detaches)."""
    flags, relative = placement_flags(placement, relative_id)
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into('=IIIII', attr, 0, prog_fd, ifindex, _attach_type(direction), flags, relative)
    return _bpf(_BPF_LINK_CREATE, attr, 'cannot attach a TCX %s link on interface index %d' % (direction, ifindex))


def link_update(link_fd, prog_fd, old_prog_fd=None):
    """Swap the program of a link in place (no moment without one). With old_prog_fd, only if the link
    still runs that program (EPERM otherwise)."""
    attr = bytearray(_ATTR_SIZE)
    flags = _BPF_F_REPLACE if old_prog_fd is not None else 0
    struct.pack_into('=IIII', attr, 0, link_fd, prog_fd, flags, old_prog_fd or 0)
    _bpf(_BPF_LINK_UPDATE, attr, 'cannot replace the program of TCX link fd %d' % link_fd)


def link_detach(link_fd):
    """Detach a link from its hook (the link object stays, defunct, while fds or pins hold it)."""
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into('=I', attr, 0, link_fd)
    _bpf(_BPF_LINK_DETACH, attr, 'cannot detach TCX link fd %d' % link_fd)


def link_info(link_fd):
    """{'id', 'type', 'prog_id', 'ifindex', 'direction'} of a link (ifindex 0 once its device is gone or
    it was detached; direction None for a link that is not TCX)."""
    info = bytearray(64)
    buf = (ctypes.c_char * len(info)).from_buffer(info)
    attr = bytearray(_ATTR_SIZE)
    struct.pack_into('=IIQ', attr, 0, link_fd, len(info), ctypes.addressof(buf))
    _bpf(_BPF_OBJ_GET_INFO_BY_FD, attr, 'cannot read the info of BPF link fd %d' % link_fd)
    del buf
    link_type, link_id, prog_id = struct.unpack_from('=III', info, 0)
    ifindex, attach_type = struct.unpack_from('=II', info, 16)
    direction = None
    if link_type == BPF_LINK_TYPE_TCX:
        direction = dict((v, k) for k, v in ATTACH_TYPES.items()).get(attach_type)
    return {'id': link_id, 'type': link_type, 'prog_id': prog_id,
            'ifindex': ifindex if direction else 0, 'direction': direction}


def pinned_link(path):
    """link_info() of the TCX link pinned at path, or None when nothing (or no TCX link) is pinned there."""
    try:
        fd = _libbpf.obj_get(path)
    except LibbpfError:
        return None
    try:
        if _libbpf.fd_kind(fd) != 'link':
            return None
        info = link_info(fd)
    except LibbpfError:
        return None
    finally:
        os.close(fd)
    return info if info['direction'] else None


def open_pinned_link(path):
    """An fd of the link pinned at path (the caller closes it)."""
    return _libbpf.obj_get(path)

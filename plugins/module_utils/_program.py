# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Loading a BPF object and pinning its program and maps under a pin directory.

Layout (DESIGN.md, "On the host"): maps at <pin_dir>/<map name>, the program at <pin_dir>/<program>.
A reload reuses every pinned map that is compatible (so rules and counters survive upgrades); the
program pin is swapped by rename, so the pin always names a loaded, verified program.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError

KERNEL_FLOOR = (5, 15)  # bpf_redirect_neigh with a next hop needs 5.11; tested from 5.15
BPFFS = '/sys/fs/bpf'
PIN_ROOT = os.path.join(BPFFS, 'ebpf_tc')


def default_pin_dir(interface, direction, netns=None):
    if netns:
        return os.path.join(PIN_ROOT, 'netns', netns, interface, direction)
    return os.path.join(PIN_ROOT, interface, direction)


def kernel_version(release=None):
    """(major, minor) of the running kernel, from a release string like '6.1.0-18-amd64'."""
    release = release or os.uname()[2]
    parts = release.split('-')[0].split('.')
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise EbpfTcError('cannot read the kernel version from %r' % release)


def check_kernel(release=None):
    version = kernel_version(release)
    if version < KERNEL_FLOOR:
        raise EbpfTcError('kernel %d.%d is too old: ebpf.tc needs Linux %d.%d or later (bpf_redirect_neigh '
                          'with a next hop, BTF-defined map-in-map)' % (version + KERNEL_FLOOR))


def bpffs_mounted(path=BPFFS):
    """True when `path` is on a bpf filesystem (statfs magic BPF_FS_MAGIC)."""
    try:
        with open('/proc/self/mounts') as mounts:
            return any(line.split()[1] == path and line.split()[2] == 'bpf' for line in mounts)
    except (IOError, OSError):
        return False


def load_and_pin(object_path, program, pin_dir):
    """Load `object_path`, pin its maps and `program` under pin_dir; returns (prog_fd, prog_info).

    The caller owns prog_fd. Nothing is pinned when the object fails to open, verify or load.
    """
    check_kernel()
    if not os.path.isfile(object_path):
        raise EbpfTcError('BPF object %s does not exist' % object_path)
    if not bpffs_mounted():
        raise EbpfTcError('no bpf filesystem is mounted at %s (mount -t bpf bpf %s)' % (BPFFS, BPFFS))
    if not os.path.isdir(pin_dir):
        os.makedirs(pin_dir)
    obj = _libbpf.BpfObject.open(object_path, pin_root=pin_dir)
    try:
        if program not in obj.program_names():
            raise EbpfTcError('program %s is not in %s (it has: %s)'
                              % (program, object_path, ', '.join(obj.program_names()) or 'none'))
        for name in obj.map_names():
            if not obj.is_internal(name):
                # maps without LIBBPF_PIN_BY_NAME are pinned too, so every object's state persists
                obj.set_map_pin_path(name, os.path.join(pin_dir, name))
        obj.load()
        fd = os.dup(obj.program_fd(program))
    finally:
        obj.close()
    try:
        pin = os.path.join(pin_dir, program)
        tmp = pin + '_new'  # bpffs refuses names with a dot
        if os.path.exists(tmp):
            os.unlink(tmp)
        _libbpf.obj_pin(fd, tmp)
        os.rename(tmp, pin)
        return fd, _libbpf.prog_info(fd)
    except Exception:
        os.close(fd)
        raise


def remove_pins(pin_dir):
    """Remove pin_dir with everything pinned in it, then its parents up to PIN_ROOT while empty."""
    if os.path.isdir(pin_dir):
        for name in os.listdir(pin_dir):
            path = os.path.join(pin_dir, name)
            if os.path.isdir(path):
                remove_pins(path)
            else:
                os.unlink(path)
        os.rmdir(pin_dir)
    parent = os.path.dirname(pin_dir)
    while parent.startswith(PIN_ROOT + os.sep) and os.path.isdir(parent) and not os.listdir(parent):
        os.rmdir(parent)
        parent = os.path.dirname(parent)

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""BPF objects the integration tests build with files/bpf/build.sh (the shipped object's flags)."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_SH = os.path.join(ROOT, 'files', 'bpf', 'build.sh')
REJECTED_SRC = os.path.join(ROOT, 'tests', 'dataplane', 'bpf', 'rejected.bpf.c')


def rejected_steering(directory):
    """An object every kernel's verifier refuses (rejected.bpf.c: an unchecked packet read) whose program is
    named steering, like the shipped object's."""
    out = os.path.join(str(directory), 'rejected-steering.bpf.o')
    subprocess.run([BUILD_SH, REJECTED_SRC, out, '-Dunchecked_read=steering'], check=True, timeout=60)
    return out


CNI_STANDIN_SRC = os.path.join(ROOT, 'tests', 'integration', 'bpf', 'cni_standin.bpf.c')


def cni_standin(directory):
    """cni_standin.bpf.c built: a TCX program that counts packets and ends the hook (TC_ACT_OK), as a CNI's."""
    out = os.path.join(str(directory), 'cni-standin.bpf.o')
    subprocess.run([BUILD_SH, CNI_STANDIN_SRC, out], check=True, timeout=60)
    return out


LINEAR_PROBE_SRC = os.path.join(ROOT, 'tests', 'integration', 'bpf', 'linear_probe.bpf.c')


def linear_probe(directory):
    """linear_probe.bpf.c built: a filter that records how much of a watched frame is linear."""
    out = os.path.join(str(directory), 'linear-probe.bpf.o')
    subprocess.run([BUILD_SH, LINEAR_PROBE_SRC, out], check=True, timeout=60)
    return out


class CniStandin:
    """cni_standin attached with a TCX link of its own (not pinned: the link lives while this object holds
    its fd) at the front of a hook; ``seen()`` is its packet count. Use as a context manager."""

    def __init__(self, object_path, netns, interface, direction='egress'):
        from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _libbpf, _tc, _tcx

        self._libbpf = _libbpf
        self.obj = _bpfobject.BpfObject.open(object_path)
        self.link_fd = None
        try:
            self.obj.load()
            self.prog_id = _libbpf.prog_info(self.obj.program_fd('cni_standin')).id
            with _tc.open_netlink(netns) as ipr:
                index = _tc.ifindex(ipr, interface)
            with _tc.netns_entered(netns):
                self.link_fd = _tcx.link_create(self.obj.program_fd('cni_standin'), index, direction, 'first')
        except BaseException:
            self.close()
            raise

    def seen(self):
        import struct

        return struct.unpack('<Q', self.obj.map('seen').lookup(struct.pack('<I', 0)))[0]

    def close(self):
        if self.link_fd is not None:
            os.close(self.link_fd)      # the last reference: the link detaches
            self.link_fd = None
        self.obj.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


STEERING_SRC = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.c')
KEPT_LOOP = '-DEXT_HEADER_LOOP=_Pragma("clang loop unroll(disable)")'


def steering_with_loop(directory):
    """The steering program built with its IPv6 extension-header walk kept as a loop (EXT_HEADER_LOOP in
    steering.bpf.c): the same maps and behaviour under another tag. Kernels before 6.3 refuse its back-edge
    (the kernel matrix's guard); later ones load it, which makes it a new build to replace the attached
    program with."""
    out = os.path.join(str(directory), 'steering-back-edge.bpf.o')
    subprocess.run([BUILD_SH, STEERING_SRC, out, KEPT_LOOP], check=True, timeout=120)
    return out

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Options naming one TC hook (interface, direction, namespace) and where its pins live."""

    DOCUMENTATION = r'''
options:
  interface:
    description:
      - Name of the network interface.
    type: str
    required: true
  direction:
    description:
      - The clsact hook, C(ingress) or C(egress).
    type: str
    choices: [ingress, egress]
    default: egress
  netns:
    description:
      - Name of a network namespace under C(/run/netns) that holds O(interface).
      - When absent, the module works in its own (the host's) namespace.
      - A missing namespace is an error; it is never created.
    type: str
  pin_dir:
    description:
      - Directory on bpffs holding the pinned program and maps of this hook.
      - Defaults to C(/sys/fs/bpf/ebpf_tc/<interface>/<direction>), or
        C(/sys/fs/bpf/ebpf_tc/netns/<netns>/<interface>/<direction>) when O(netns) is given.
    type: path
requirements:
  - Python 3.9 or later on the target.
  - Linux 5.11 or later (proven on 6.1, 6.12 and 6.18), with bpffs mounted at C(/sys/fs/bpf).
  - pyroute2 0.7.2 or later (C(python3-pyroute2)) on the target.
  - libbpf (C(libbpf.so.1), or C(libbpf.so.0) 0.5 or later) on the target.
  - 'Root on the target (C(become: true)).'
'''

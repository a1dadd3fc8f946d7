# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every module of the collection does the same way: common options and host prerequisites.

Modules stay thin: they build their argument spec from hook_argument_spec(), call check_host() before
touching anything, and turn EbpfTcError into fail_json.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ebpf.tc.plugins.module_utils import _program, _tc
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, MissingLibbpf
from ansible_collections.ebpf.tc.plugins.module_utils._rules import DIRECTIONS


def hook_argument_spec():
    """The options of plugins/doc_fragments/hook.py."""
    return dict(
        interface=dict(type='str', required=True),
        direction=dict(type='str', choices=list(DIRECTIONS), default='egress'),
        netns=dict(type='str'),
        pin_dir=dict(type='path'),
    )


def pin_dir_of(params):
    return params.get('pin_dir') or _program.default_pin_dir(params['interface'], params['direction'],
                                                             params.get('netns'))


def check_host(module, pyroute2=True, libbpf=True, bpffs=True):
    """Fail the module, before any change, when the host cannot run it; says what is missing."""
    if pyroute2 and _tc.PYROUTE2_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib('pyroute2', url='https://pypi.org/project/pyroute2/')
                         + ' (Debian/Ubuntu: python3-pyroute2, RHEL: python3-pyroute2 from EPEL)',
                         exception=_tc.PYROUTE2_IMPORT_ERROR)
    if libbpf:
        from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf
        try:
            _libbpf.get_libbpf()
        except MissingLibbpf as err:
            module.fail_json(msg=missing_required_lib('libbpf') + ' (Debian/Ubuntu: libbpf1 or libbpf0, '
                             'RHEL: libbpf): %s' % err)
    if os.geteuid() != 0:
        module.fail_json(msg='%s needs root on the target (use become: true)' % module._name)
    try:
        _program.check_kernel()
    except EbpfTcError as err:
        module.fail_json(msg=str(err))
    if bpffs and not _program.bpffs_mounted():
        module.fail_json(msg='no bpf filesystem is mounted at %s: mount it first (mount -t bpf bpf %s), '
                         'or let the ebpf.tc.steering role do it' % (_program.BPFFS, _program.BPFFS))

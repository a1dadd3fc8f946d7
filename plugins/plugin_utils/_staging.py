# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the collection's action plugins share: a file on the controller sent to the task's temporary
directory on the target, for the module to use."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text


def find_source(action, source, option):
    """The controller path of `source` as the copy module finds it (absolute, or under files/ of the role or
    play); AnsibleActionFail naming `option` when there is none."""
    try:
        return action._find_needle('files', source)
    except AnsibleError as err:
        raise AnsibleActionFail('%s: %s' % (option, to_text(err)))


def send(action, source, name):
    """Put the controller file `source` in the task's temporary directory on the target, as `name`, and return
    its path there. The directory is made on first use, so a task that sends nothing makes none; the task
    executor removes it after the task (ActionBase.cleanup)."""
    shell = action._connection._shell
    if shell.tmpdir is None:
        action._make_tmp_path()
    remote = shell.join_path(shell.tmpdir, name)
    action._transfer_file(source, remote)
    action._fixup_perms2((shell.tmpdir, remote))
    return remote

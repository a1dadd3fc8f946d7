# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.bpf_object_info with ``src``: the object is on the controller. It goes to the task's temporary
directory on the target, the module loads it from there, and the directory goes with the task - one task
where a play would otherwise make a directory, copy, load and clean up."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleAction, AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.ebpf.tc.plugins.plugin_utils._staging import find_source, send


class ActionModule(ActionBase):

    # the temporary directory is made only with src (send)
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = self._task.args.copy()
        source = args.pop('src', None)
        try:
            if source is not None:
                if args.get('object'):
                    raise AnsibleActionFail('parameters are mutually exclusive: src|object')
                source = find_source(self, source, 'src')
                args['object'] = send(self, source, 'object.bpf.o')
            result.update(self._execute_module(module_name='ebpf.tc.bpf_object_info', module_args=args,
                                               task_vars=task_vars))
            if source is not None:
                result['src'] = source
        except AnsibleAction as err:
            result.update(err.result)
        return result

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.steering_explain: the collection's explain build of the steering object goes to the task's temporary
directory on the target (unless explain_object names one there), and the module runs it from there."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.errors import AnsibleAction
from ansible.plugins.action import ActionBase

from ansible_collections.ebpf.tc.plugins.plugin_utils._staging import send

EXPLAIN_OBJECT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              'files', 'bpf', 'steering_explain.bpf.o')


class ActionModule(ActionBase):

    TRANSFERS_FILES = False     # the temporary directory is made by send()

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = self._task.args.copy()
        try:
            if not args.get('explain_object'):
                args['explain_object'] = send(self, EXPLAIN_OBJECT, 'steering_explain.bpf.o')
            result.update(self._execute_module(module_name='ebpf.tc.steering_explain', module_args=args,
                                               task_vars=task_vars))
        except AnsibleAction as err:
            result.update(err.result)
        return result

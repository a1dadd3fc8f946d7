# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.steering_state with ``object_src``: the object is on the controller. The module is told its
SHA-256 and answers whether the target's copy differs; only then is the object sent (to a temporary
directory of this task) and the module run again with it, so that an unchanged host costs one module run
and no transfer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible.errors import AnsibleAction, AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.hashing import secure_hash

from ansible_collections.ebpf.tc.plugins.plugin_utils._staging import find_source, send

MODULE = 'ebpf.tc.steering_state'
OBJECT_WANTED = 'object_wanted'     # the module's answer (plugins/modules/steering_state.py)


class ActionModule(ActionBase):

    # the temporary directory is made only when the object must be sent (send)
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = self._task.args.copy()
        source = args.pop('object_src', None)
        try:
            if args.get('object_staged'):
                raise AnsibleActionFail('object_staged is set by the action plugin from object_src, not by a task')
            if source is not None:
                if not args.get('object'):
                    raise AnsibleActionFail('object: required with object_src (where the object goes on the target)')
                source = find_source(self, source, 'object_src')
                args['object_sha256'] = secure_hash(source, hash_func=hashlib.sha256)
            done = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            if done.pop(OBJECT_WANTED, False):
                if source is None:
                    raise AnsibleActionFail('object: %s does not have SHA-256 %s (object_sha256), and there is '
                                            'no object_src to install' % (args['object'], args['object_sha256']))
                args['object_staged'] = send(self, source, 'object.bpf.o')
                done = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
                if done.get('msg'):     # name the controller's file, not this task's copy
                    done['msg'] = done['msg'].replace(args['object_staged'], '%s (object_src)' % source)
            result.update(done)
        except AnsibleAction as err:
            result.update(err.result)
        return result

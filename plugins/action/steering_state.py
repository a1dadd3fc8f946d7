# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ebpf.tc.steering_state with what lives on the controller: the object (``object_src``) and the boot-time
restore code (``restore_code_dir``: the collection's module_utils and restore CLI). The module is told their
checksums and answers which of them the target lacks; only those are sent (to a temporary directory of this
task) and the module run again with them, so that an unchanged host costs one module run and no transfer."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import tempfile

from ansible.errors import AnsibleAction, AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.hashing import secure_hash

from ansible_collections.ebpf.tc.plugins.module_utils import _restore_code
from ansible_collections.ebpf.tc.plugins.plugin_utils._staging import find_source, send

MODULE = 'ebpf.tc.steering_state'
# the module's answers (plugins/modules/steering_state.py)
OBJECT_WANTED = 'object_wanted'
RESTORE_CODE_WANTED = 'restore_code_wanted'
COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SET_HERE = ('object_staged', 'restore_code_sha256', 'restore_code_staged')


class ActionModule(ActionBase):

    # the temporary directory is made only when something must be sent (send)
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        args = self._task.args.copy()
        source = args.pop('object_src', None)
        try:
            for name in SET_HERE:
                if args.get(name):
                    raise AnsibleActionFail('%s is set by the action plugin, not by a task' % name)
            if source is not None:
                if not args.get('object'):
                    raise AnsibleActionFail('object: required with object_src (where the object goes on the target)')
                source = find_source(self, source, 'object_src')
                args['object_sha256'] = secure_hash(source, hash_func=hashlib.sha256)
            code = None
            if (args.get('restore_code_dir') and boolean(args.get('restore_code', True))
                    and args.get('state', 'present') == 'present'):
                code = _restore_code.sources(COLLECTION_ROOT)
                args['restore_code_sha256'] = _restore_code.stamp(code)
            done = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
            object_wanted, code_wanted = done.pop(OBJECT_WANTED, False), done.pop(RESTORE_CODE_WANTED, False)
            if object_wanted or code_wanted:
                if object_wanted:
                    if source is None:
                        raise AnsibleActionFail('object: %s does not have SHA-256 %s (object_sha256), and there '
                                                'is no object_src to install' % (args['object'], args['object_sha256']))
                    args['object_staged'] = send(self, source, 'object.bpf.o')
                if code_wanted:
                    args['restore_code_staged'] = self._send_code(code)
                done = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
                if done.get('msg') and args.get('object_staged'):   # name the controller's file, not the copy
                    done['msg'] = done['msg'].replace(args['object_staged'], '%s (object_src)' % source)
            result.update(done)
        except AnsibleAction as err:
            result.update(err.result)
        return result

    def _send_code(self, code):
        """The restore code as one archive in the task's temporary directory on the target; its path there."""
        with tempfile.NamedTemporaryFile(prefix='ebpf-tc-restore-code-', suffix='.tar.gz') as archive:
            _restore_code.build_archive(code, archive.name)
            return send(self, archive.name, 'restore_code.tar.gz')

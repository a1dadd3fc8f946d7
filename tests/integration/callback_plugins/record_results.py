# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: appends every task result as one JSON line to $EBPF_TC_RESULTS.

ansible-core has no JSON stdout callback of its own; the tests read exactly what each task returned.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = '''
name: record_results
type: aggregate
short_description: write task results as JSON lines for the test-suite
description: Appends one JSON object per task result to the file named by EBPF_TC_RESULTS.
'''

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'record_results'
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        path = os.environ.get('EBPF_TC_RESULTS')
        if not path:
            return
        entry = {
            'task': result._task.get_name(),
            'action': result._task.action,
            'host': result._host.get_name(),
            'status': status,
            'result': result._result,
        }
        with open(path, 'a') as out:
            out.write(json.dumps(entry, default=str) + '\n')

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

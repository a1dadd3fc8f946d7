# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark-only callback: appends, per task result, its duration from task start as one JSON line to
$EBPF_TC_BENCH_TIMES (the control-plane benchmark times steering_rules the way Ansible runs it)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = '''
name: task_times
type: aggregate
short_description: task durations as JSON lines for the benchmarks
description: Appends one JSON object (task, host, seconds, changed) per task result to $EBPF_TC_BENCH_TIMES.
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.path = os.environ.get('EBPF_TC_BENCH_TIMES')
        self.started = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started = time.monotonic()

    def v2_runner_on_ok(self, result):
        if self.path:
            with open(self.path, 'a') as out:
                out.write(json.dumps({'task': result.task_name, 'host': result._host.get_name(),
                                      'seconds': time.monotonic() - self.started,
                                      'changed': bool(result._result.get('changed'))}) + '\n')

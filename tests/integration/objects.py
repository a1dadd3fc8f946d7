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

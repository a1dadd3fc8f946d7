# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kernel matrix's report: one line per kernel (and the guard), shown at the end of the run."""

import pytest

_lines = []


@pytest.fixture(scope='session')
def kernel_report():
    return _lines


def pytest_terminal_summary(terminalreporter):
    if _lines:
        terminalreporter.section('kernel matrix')
        for line in _lines:
            terminalreporter.line(line)

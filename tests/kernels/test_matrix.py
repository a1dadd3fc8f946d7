# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kernel matrix: the dataplane tests and an attach-and-traffic test on Debian's kernels, under qemu.

`make kernels` (a step of `make test`) runs this file. Every kernel of tools/kernelmatrix.py's matrix is
booted with this machine's root shared read-only, and runs, with the same Python, libbpf, pyroute2 and test
files as the host:

- tests/dataplane: the shipped object's load, the differential test of the steering program against the
  reference model through BPF_PROG_TEST_RUN, the action tests (redirect, mark, police, counters);
- tests/integration/test_attach.py: clsact and the program on veths in namespaces inside the guest, rules
  that drop ICMP, block a port and redirect to a next hop, with real traffic.

The guard: the steering source built with the extension-header loop shape that kernels before 6.3 refuse
(EXT_HEADER_LOOP, see steering.bpf.c) must fail the matrix on the oldest kernel, by name, and pass on the
newest: a matrix that cannot fail proves nothing.
"""

import os
import sys
import xml.etree.ElementTree as ET

import pytest

import kernelmatrix  # noqa: E402  pylint: disable=wrong-import-position
import objects  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (qemu guests run the root tests)'),
]

GUEST_TESTS = ('tests/dataplane', 'tests/integration/test_attach.py')
# Under TCG the random tests take ten times as long: the guests draw 40 % of their examples (tests/strategies.py,
# scaled()); every kernel still runs every test, and this machine's kernel all the examples.
GUEST_EXAMPLE_SCALE = '0.4'
LOAD_TEST = 'tests/dataplane/test_object.py::test_bpftool_loadall_accepts_the_object'
# What the guest's pytest must at least run: a matrix that collects nothing must not pass.
MIN_GUEST_TESTS = 80


def guest_pytest(*args, junit=True):
    """pytest in the guest: no cache or temp files in the read-only tree, skips are failures."""
    argv = [sys.executable, '-m', 'pytest', '-q', '-o', 'cache_dir=/run/tmp/pytest-cache',
            '--basetemp=/run/tmp/pytest']
    if junit:
        argv += ['--junitxml=/run/guest-out/junit.xml']
    return argv + list(args)


def junit_counts(result):
    """(tests, failures, errors, skipped) from the guest's junit report."""
    path = os.path.join(result.out_dir, 'junit.xml')
    if not os.path.exists(path):
        return None
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == 'testsuite' else suite.find('testsuite')
    return tuple(int(suite.get(k, 0)) for k in ('tests', 'failures', 'errors', 'skipped'))


def failure_report(result):
    return '%s\n--- output (end) ---\n%s\n--- console (end) ---\n%s' % (
        result.describe(), result.output[-6000:], result.console[-3000:])


@pytest.fixture(scope='module')
def suite_results(kernel_report):
    env = {'EBPF_TC_FORBID_SKIPS': '1', 'EBPF_TC_EXAMPLE_SCALE': GUEST_EXAMPLE_SCALE}
    results = kernelmatrix.run_matrix(guest_pytest(*GUEST_TESTS), env=env, label='suite')
    for result in results:
        kernel_report.append(result.describe())
    return dict((r.kernel.series, r) for r in results)


@pytest.mark.parametrize('series', kernelmatrix.SERIES)
def test_dataplane_and_attach_suite_passes(suite_results, series):
    result = suite_results[series]
    assert result.ok, failure_report(result)
    counts = junit_counts(result)
    assert counts is not None, failure_report(result)
    tests, failures, errors, skipped = counts
    assert (failures, errors, skipped) == (0, 0, 0), failure_report(result)
    assert tests >= MIN_GUEST_TESTS, failure_report(result)
    assert result.kernel.release.startswith(series + '.')


@pytest.fixture(scope='module')
def loop_fixture(tmp_path_factory):
    """The shipped source with the loop shape that kernels before 6.3 refuse."""
    return objects.steering_with_loop(tmp_path_factory.mktemp('bpf'))


def test_matrix_names_the_kernel_that_refuses_an_object(loop_fixture, kernel_report):
    results = kernelmatrix.run_matrix(guest_pytest(LOAD_TEST, junit=False),
                                      env={'EBPF_TC_STEERING_OBJECT': loop_fixture}, label='guard')
    by_series = dict((r.kernel.series, r) for r in results)
    oldest, newest = by_series[kernelmatrix.SERIES[0]], by_series[kernelmatrix.SERIES[-1]]
    kernel_report.append('guard (%s): %s' % (os.path.basename(loop_fixture), oldest.describe()))

    assert not oldest.ok, failure_report(oldest)
    assert oldest.describe().startswith('kernel %s: FAILED' % oldest.kernel.release)
    assert 'back-edge from insn' in oldest.output, failure_report(oldest)
    # the same object passes where the verifier takes such loops: the failure is the kernel's, not the test's
    assert newest.ok, failure_report(newest)

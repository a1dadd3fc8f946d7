"""Make the source tree importable as ``ansible_collections.ebpf.tc`` for pytest.

Ansible imports collection code only by its full package name, so the tests do the same: a symlink
``.tmp/collections/ansible_collections/ebpf/tc`` points at the repository root.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, '.tmp', 'collections')
_link = os.path.join(COLLECTIONS, 'ansible_collections', 'ebpf', 'tc')
if not os.path.islink(_link):
    os.makedirs(os.path.dirname(_link), exist_ok=True)
    try:
        os.symlink(ROOT, _link)
    except FileExistsError:  # another worker made it first
        pass
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


# `make test` sets EBPF_TC_FORBID_SKIPS=1: there every test, root ones included, must really run, so a
# skip (a missing tool, not being root, no bpffs) fails the session instead of passing quietly.
_FORBID_SKIPS = os.environ.get('EBPF_TC_FORBID_SKIPS') == '1'
_skipped = []


def pytest_runtest_logreport(report):
    if _FORBID_SKIPS and report.skipped and not hasattr(report, 'wasxfail'):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _skipped and exitstatus in (0, 5):
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if _skipped:
        terminalreporter.section('skips are failures here (EBPF_TC_FORBID_SKIPS=1)')
        for nodeid in _skipped:
            terminalreporter.line(nodeid)

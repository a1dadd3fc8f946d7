"""Integration tests: real namespaces, netlink, bpf(2), sshd and ansible-playbook. Every one needs root, so
every one is marked ``root`` here and skipped without it (never in CI: `make test` runs as root and turns
any skip into a failure, tests/conftest.py)."""

import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason='needs root (network namespaces, bpf(2), tc, sshd)'))

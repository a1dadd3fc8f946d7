# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for ansible-test's pip bootstrap script.

ansible-test creates every sanity-test virtualenv without pip, then runs
``https://ci-files.testing.ansible.com/ansible-test/get-pip-<version>.py`` (cached as
``~/.ansible/test/cache/get_pip_<version>.py``) with arguments such as
``pip==24.2 --no-setuptools --no-wheel --disable-pip-version-check``. That host is not reachable from
CI here (PyPI is), so ``make sanity`` caches this script under that name instead: it seeds pip from
the interpreter's own ``ensurepip`` and lets that pip install the requested version from the package
index, which is what get-pip does with its embedded copy.
"""

from __future__ import annotations

import subprocess
import sys

OMIT_FLAGS = {'--no-setuptools': 'setuptools', '--no-wheel': 'wheel'}


def main():
    """Install the pip version named in argv into the running interpreter's environment."""
    args = sys.argv[1:]
    pip_args = [arg for arg in args if arg not in OMIT_FLAGS]
    unwanted = [package for flag, package in OMIT_FLAGS.items() if flag in args]
    python = sys.executable

    subprocess.run([python, '-m', 'ensurepip', '--default-pip'], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([python, '-m', 'pip', 'install', '--quiet'] + pip_args, check=True)
    if unwanted:
        # ensurepip may bring setuptools along; get-pip would not have installed it.
        subprocess.run([python, '-m', 'pip', 'uninstall', '--quiet', '--yes'] + unwanted, check=True)


if __name__ == '__main__':
    main()

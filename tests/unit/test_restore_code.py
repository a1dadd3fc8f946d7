# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restore code's stamp, archive and install, and the restore unit's text (temporary directories, no root)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shlex
import stat
import tarfile

import pytest

from ansible_collections.ebpf.tc.plugins.module_utils import _restore_code as R
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sources_are_the_cli_and_every_module_utils_file():
    code = R.sources(ROOT)
    names = [name for name, _path in code]
    assert names[0] == R.CLI and os.path.samefile(code[0][1], os.path.join(ROOT, 'roles', 'steering', 'files', R.CLI))
    utils = sorted(n for n in os.listdir(os.path.join(ROOT, 'plugins', 'module_utils')) if n.endswith('.py'))
    assert names[1:] == [R.MODULE_UTILS + '/' + n for n in utils]
    assert R.MODULE_UTILS + '/_restore.py' in names


def test_stamp_follows_names_and_contents(tmp_path):
    one, two = tmp_path / 'a.py', tmp_path / 'b.py'
    one.write_text(u'a = 1\n')
    two.write_text(u'b = 2\n')
    code = [('x/a.py', str(one)), ('x/b.py', str(two))]
    first = R.stamp(code)
    assert R.stamp(list(code)) == first and len(first) == 64
    assert R.stamp([('x/c.py', str(one)), ('x/b.py', str(two))]) != first   # a name
    two.write_text(u'b = 3\n')
    assert R.stamp(code) != first                                            # a content


def _install(tmp_path, code=None):
    code = code or R.sources(ROOT)
    archive = str(tmp_path / 'code.tar.gz')
    R.build_archive(code, archive)
    directory = str(tmp_path / 'lib')
    R.install(archive, directory, R.stamp(code))
    return code, directory


def test_install_lays_out_the_package_and_removes_what_an_older_version_had(tmp_path):
    directory = str(tmp_path / 'lib')
    utils = os.path.join(directory, R.MODULE_UTILS)
    os.makedirs(os.path.join(utils, '__pycache__'))
    with open(os.path.join(utils, '_gone.py'), 'w') as out:
        out.write('old = True\n')
    code, directory = _install(tmp_path)
    for name, source in code:
        with open(os.path.join(directory, name), 'rb') as got, open(source, 'rb') as want:
            assert got.read() == want.read()
    assert stat.S_IMODE(os.stat(os.path.join(directory, R.CLI)).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(os.path.join(utils, '_restore.py')).st_mode) == 0o644
    assert sorted(os.listdir(utils)) == sorted(name.rsplit('/', 1)[1] for name, dummy in code[1:])
    assert R.installed_stamp(directory) == R.stamp(code)
    assert sorted(os.listdir(directory)) == sorted([R.CLI, R.STAMP, R.TOP])


@pytest.mark.parametrize('name', ['../evil.py', R.MODULE_UTILS + '/../../modules/x.py', 'ansible_collections/x.py',
                                  R.MODULE_UTILS + '/sub/x.py', R.MODULE_UTILS + '/x.sh'])
def test_install_refuses_an_archive_with_anything_but_restore_code(tmp_path, name):
    source = tmp_path / 'x.py'
    source.write_text(u'x = 1\n')
    archive = str(tmp_path / 'bad.tar.gz')
    with tarfile.open(archive, 'w:gz') as tar:
        tar.add(str(source), arcname=name)
    with pytest.raises(EbpfTcError, match='not restore code'):
        R.install(archive, str(tmp_path / 'lib'), '0' * 64)
    assert not os.path.exists(str(tmp_path / 'lib'))


def test_remove_takes_the_code_and_nothing_else(tmp_path):
    dummy, directory = _install(tmp_path)
    with open(os.path.join(directory, 'steering.bpf.o'), 'w') as out:
        out.write('object')
    assert R.remove(directory, check_mode=True) is True and R.installed_stamp(directory)
    assert R.remove(directory) is True
    assert os.listdir(directory) == ['steering.bpf.o'] and R.installed_stamp(directory) is None
    assert R.remove(directory) is False


@pytest.mark.parametrize('directory, state_file', [
    ('/usr/local/lib/ebpf-tc', '/etc/ebpf-tc/state.json'),
    ('/opt/ebpf tc/lib', '/etc/ebpf-tc/100%/"state".json'),
])
def test_unit_runs_the_cli_on_the_state_file(directory, state_file):
    text = R.unit_text(directory, state_file, netns='blue')
    lines = text.splitlines()
    [exec_start] = [line for line in lines if line.startswith('ExecStart=')]
    # systemd's quoting is shlex's for these; % is a specifier, doubled
    argv = shlex.split(exec_start[len('ExecStart='):].replace('%%', '%'))
    assert argv == [R.SYSTEM_PYTHON, os.path.join(directory, R.CLI), state_file]
    assert 'Type=oneshot' in lines and 'WantedBy=multi-user.target' in lines
    assert 'Description=ebpf.tc: restore eBPF TC steering programs and rules (network namespace blue)' in lines
    assert text.endswith('\n') and 'network namespace' not in R.unit_text(directory, state_file)

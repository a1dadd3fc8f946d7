# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The boot-time restore on a host: its code and its systemd unit.

The code is the restore CLI (``ebpf_tc_restore.py``) beside a copy of the collection's module_utils, laid out
as the package ``ansible_collections.ebpf.tc.plugins.module_utils`` it imports, in one directory (the role's
``ebpf_tc_lib_dir``); ``module_utils.sha256`` there is the stamp of what was installed. ``ebpf.tc.steering_state``
installs it: its action plugin computes the stamp on the controller (sources(), stamp()) and sends the code as
one archive (build_archive()) only when the host's stamp differs; the module unpacks it (install()). The unit
(unit_text()) runs the CLI on the state file at boot. Controller and host both import this file: no
``ansible`` import here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import hashlib
import os
import re
import tarfile

from ansible_collections.ebpf.tc.plugins.module_utils import _files
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError

CLI = 'ebpf_tc_restore.py'
STAMP = 'module_utils.sha256'
TOP = 'ansible_collections'
MODULE_UTILS = TOP + '/ebpf/tc/plugins/module_utils'
SYSTEM_PYTHON = '/usr/bin/python3'
# sd_booted(3): systemd runs the host when this directory exists
SYSTEMD_RUNTIME_DIR = '/run/systemd/system'


def sources(collection_root):
    """[(name in the code directory, path in the collection)] of the restore code, sorted."""
    utils = os.path.join(collection_root, 'plugins', 'module_utils')
    out = [(CLI, os.path.join(collection_root, 'roles', 'steering', 'files', CLI))]
    out += [(MODULE_UTILS + '/' + name, os.path.join(utils, name))
            for name in sorted(os.listdir(utils)) if name.endswith('.py')]
    return out


def stamp(code):
    """The SHA-256 of the restore code `code` (sources()): its names and contents."""
    digest = hashlib.sha256()
    for name, path in code:
        digest.update(('%s %s\n' % (name, _files.sha256(path))).encode())
    return digest.hexdigest()


def build_archive(code, path):
    """Write the restore code `code` (sources()) to `path` as a gzipped tar of its names."""
    with tarfile.open(path, 'w:gz') as tar:
        for name, source in code:
            tar.add(source, arcname=name, recursive=False)


def installed_stamp(directory):
    """The stamp of the restore code in `directory`, None when there is none."""
    try:
        with open(os.path.join(directory, STAMP)) as handle:
            return handle.read().strip() or None
    except (IOError, OSError):
        return None


def _mode(name):
    return 0o755 if name == CLI else 0o644


def _members(tar, archive):
    """The archive's files, each checked to be the CLI or a module_utils file (nothing can land elsewhere)."""
    members = tar.getmembers()
    for member in members:
        name = member.name
        inside = name == CLI or (name.startswith(MODULE_UTILS + '/') and name.endswith('.py')
                                 and '/' not in name[len(MODULE_UTILS) + 1:])
        if not member.isfile() or not inside:
            raise EbpfTcError('restore_code_staged: %s holds %s, which is not restore code' % (archive, name))
    return members


def install(archive, directory, wanted_stamp):
    """Unpack the restore code `archive` (build_archive()) into `directory`: each file replaced whole, the
    module_utils files an older version had and this one does not removed, and the stamp written last (an
    install cut short is redone by the next run)."""
    names = set()
    with tarfile.open(archive) as tar:
        for member in _members(tar, archive):
            data = tar.extractfile(member).read()
            _files.replace(os.path.join(directory, member.name), functools.partial(_write_bytes, data),
                           _mode(member.name))
            names.add(member.name)
    utils = os.path.join(directory, MODULE_UTILS)
    for name in os.listdir(utils):
        if MODULE_UTILS + '/' + name not in names:
            _files.remove(os.path.join(utils, name))
    _files.write_text(os.path.join(directory, STAMP), wanted_stamp + '\n')


def _write_bytes(data, path):
    with open(path, 'wb') as handle:
        handle.write(data)


def remove(directory, check_mode=False):
    """Remove the restore code from `directory`; True when some was there."""
    found = [_files.remove(os.path.join(directory, name), check_mode) for name in (STAMP, CLI, TOP)]
    return any(found)


def systemd_running():
    return os.path.isdir(SYSTEMD_RUNTIME_DIR)


def _exec_word(word):
    """`word` as one word of a unit's ExecStart= (quoted when it has blanks or quotes; % is a specifier)."""
    word = word.replace('%', '%%')
    if re.search(r'[\s"\'\\]', word):
        return '"%s"' % word.replace('\\', '\\\\').replace('"', '\\"')
    return word


def unit_text(directory, state_file, netns=None):
    """The systemd unit that runs the restore CLI in `directory` on `state_file` at boot."""
    where = ' (network namespace %s)' % netns if netns else ''
    command = ' '.join(_exec_word(word) for word in (SYSTEM_PYTHON, os.path.join(directory, CLI), state_file))
    return '\n'.join([
        '# Managed by ebpf.tc.steering_state (the ebpf.tc.steering role): changes here are overwritten on its',
        '# next run. Restores the eBPF steering programs and rule sets of %s after a boot' % state_file,
        '# (the pins under /sys/fs/bpf and the tc filters do not survive one), with the collection\'s own code.',
        '[Unit]',
        'Description=ebpf.tc: restore eBPF TC steering programs and rules%s' % where,
        'Documentation=https://github.com/example/ebpf.tc/tree/main/roles/steering',
        'Wants=network-online.target',
        'After=network-online.target',
        '',
        '[Service]',
        'Type=oneshot',
        'RemainAfterExit=yes',
        'ExecStart=%s' % command,
        '',
        '[Install]',
        'WantedBy=multi-user.target',
        '',
    ])

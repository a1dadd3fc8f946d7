# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore the steering programs and rule sets of a state file, without Ansible.

Usage: python3 ebpf_tc_restore.py STATE_JSON

Installed by the ebpf.tc.steering role as <ebpf_tc_lib_dir>/ebpf_tc_restore.py, beside a copy of the
collection's module_utils in <ebpf_tc_lib_dir>/ansible_collections/ebpf/tc/plugins/module_utils/, and run
by the unit ebpf-tc-restore.service at boot. Prints a JSON summary on stdout and exits 0, or prints a
one-line error on stderr (a verifier log, when there is one, follows it) and exits 1.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import sys
import traceback
import types

PROG = 'ebpf_tc_restore'
PACKAGES = ('ansible_collections', 'ansible_collections.ebpf', 'ansible_collections.ebpf.tc',
            'ansible_collections.ebpf.tc.plugins')


def use_own_module_utils(lib_dir):
    """Import the collection's module_utils from the copy beside this file.

    The directory goes first on sys.path; and when the copy is there, its parent packages are bound to it
    explicitly, so that an ``ansible_collections`` package elsewhere on the host (an Ansible installation)
    can never supply another version of the code.
    """
    sys.dont_write_bytecode = True  # leave the installed copy as the role put it
    if lib_dir not in sys.path:
        sys.path.insert(0, lib_dir)
    path = lib_dir
    if not os.path.isdir(os.path.join(lib_dir, *PACKAGES[-1].split('.') + ['module_utils'])):
        return
    for name in PACKAGES:
        path = os.path.join(path, name.rsplit('.', 1)[-1])
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [path]
            sys.modules[name] = module


def fail(message):
    lines = str(message).strip().splitlines() or ['unknown error']
    sys.stderr.write('%s: error: %s\n' % (PROG, lines[0]))
    for line in lines[1:]:
        sys.stderr.write('    %s\n' % line)
    return 1


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith('-'):
        sys.stderr.write('usage: %s STATE_JSON\n' % PROG)
        return 1
    use_own_module_utils(os.path.dirname(os.path.abspath(__file__)))
    try:
        from ansible_collections.ebpf.tc.plugins.module_utils import _restore
        from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
    except ImportError as err:
        return fail('cannot import the collection code beside %s: %s' % (__file__, err))
    path = argv[0]
    try:
        summary = _restore.restore(_restore.load_state(path))
    except EbpfTcError as err:
        return fail('%s: %s' % (path, err))
    except Exception as err:  # a bug, or an error nothing above turned into a message: keep the trace
        return fail('%s: unexpected %s: %s\n%s' % (path, type(err).__name__, err, traceback.format_exc()))
    sys.stdout.write(json.dumps(summary, sort_keys=True) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())

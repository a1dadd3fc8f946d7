# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Files this collection writes on a host (the record, the state file, the object and its checksum, the
restore code and its unit): each made anew and renamed over the old one, so that a reader - the boot-time
restore above all - sees the old file or the new one, never half of one. No ``ansible`` import: the restore
runs without Ansible."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import shutil


def replace(path, fill, mode=0o644):
    """Make `path` anew: `fill(temporary)` writes a temporary file beside it, which gets `mode` and is renamed
    over it; the directory is made when missing."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    temporary = '%s.%d.tmp' % (path, os.getpid())
    try:
        fill(temporary)
        os.chmod(temporary, mode)
        os.rename(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_text(path, text, check_mode=False, mode=0o644):
    """replace() `path` with `text` when its content differs; True when it differs."""
    try:
        with open(path) as handle:
            if handle.read() == text:
                return False
    except (IOError, OSError, UnicodeDecodeError):
        pass
    if not check_mode:
        replace(path, lambda temporary: _write(temporary, text), mode)
    return True


def _write(path, text):
    with open(path, 'w') as handle:
        handle.write(text)


def write_json(path, data, check_mode=False):
    """write_text() of `data` as the indented, key-sorted JSON this collection writes."""
    return write_text(path, json.dumps(data, indent=4, sort_keys=True) + '\n', check_mode)


def copy(source, path, mode=0o644):
    """replace() `path` with a copy of the file `source`."""
    replace(path, lambda temporary: shutil.copyfile(source, temporary), mode)


def remove(path, check_mode=False):
    """Remove the file or directory tree at `path`; True when there was one."""
    if not os.path.lexists(path):
        return False
    if not check_mode:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return True


def sha256(path):
    """The SHA-256 of the file at `path` (hex), None when there is none."""
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as handle:
            for block in iter(lambda: handle.read(1 << 16), b''):
                digest.update(block)
    except (IOError, OSError):
        return None
    return digest.hexdigest()

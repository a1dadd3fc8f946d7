# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_program.remove_pins on an ordinary directory tree (pins unlink like files; no bpffs needed)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.ebpf.tc.plugins.module_utils import _program


def test_remove_pins_takes_nested_directories_and_empty_parents(tmp_path):
    root = tmp_path / 'ebpf_tc'
    pin_dir = root / 'netns' / 'blue' / 'eth0' / 'egress'
    (pin_dir / 'inner' / 'deeper').mkdir(parents=True)
    for path in (pin_dir / 'steering', pin_dir / 'inner' / 'map', pin_dir / 'inner' / 'deeper' / 'map2'):
        path.write_text(u'pin')
    sibling = root / 'netns' / 'green' / 'eth0' / 'egress'
    sibling.mkdir(parents=True)
    _program.remove_pins(str(pin_dir), root=str(root))
    assert not (root / 'netns' / 'blue').exists()     # its emptied parents went too...
    assert sibling.is_dir()                           # ...but not a parent another hook still uses
    _program.remove_pins(str(pin_dir), root=str(root))  # a missing pin_dir is fine
    assert os.listdir(str(root)) == ['netns']

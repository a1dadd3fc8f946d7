# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of issue 13's checks: ELF section names, the pin_dir filesystem check, drift decisions,
rule error wording, articles."""

import os
import struct
import sys

import pytest

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _program
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, RuleError
from ansible_collections.ebpf.tc.plugins.module_utils._mapcodec import article


def _elf64(names):
    """A minimal little-endian ELF64 file with sections named `names` (after the null section)."""
    strtab = b'\0' + b''.join(n.encode() + b'\0' for n in names + ['.shstrtab'])
    offsets, at = [], 1
    for n in names + ['.shstrtab']:
        offsets.append(at)
        at += len(n) + 1
    shoff = 64 + len(strtab)
    shnum = len(names) + 2
    header = b'\x7fELF' + bytes([2, 1, 1]) + b'\0' * 9
    header += struct.pack('<HHIQQQIHHHHHH', 1, 247, 1, 0, 0, shoff, 0, 64, 0, 0, 64, shnum, shnum - 1)
    sections = [b'\0' * 64]
    for i, n in enumerate(names + ['.shstrtab']):
        is_strtab = n == '.shstrtab'
        sections.append(struct.pack('<IIQQQQIIQQ', offsets[i], 3 if is_strtab else 1, 0, 0,
                                    64 if is_strtab else 0, len(strtab) if is_strtab else 0, 0, 0, 1, 0))
    return header + strtab + b''.join(sections)


def test_elf_section_names(tmp_path):
    legacy = tmp_path / 'legacy.o'
    legacy.write_bytes(_elf64(['tc', 'maps', 'license']))
    assert _program.elf_section_names(str(legacy)) == ['', 'tc', 'maps', 'license', '.shstrtab']
    btf = tmp_path / 'btf.o'
    btf.write_bytes(_elf64(['tc', '.maps', 'license']))
    assert 'maps' not in _program.elf_section_names(str(btf))
    text = tmp_path / 'text'
    text.write_text('not an ELF file\n')
    assert _program.elf_section_names(str(text)) == []
    truncated = tmp_path / 'truncated.o'
    truncated.write_bytes(_elf64(['maps'])[:80])
    assert _program.elf_section_names(str(truncated)) == []
    assert 'maps' not in _program.elf_section_names(sys.executable)   # a real ELF file


def test_pin_dir_must_be_on_bpffs(tmp_path, monkeypatch):
    missing = str(tmp_path / 'a' / 'b' / 'c')
    assert _program.nearest_existing(missing) == str(tmp_path)
    with pytest.raises(EbpfTcError) as info:
        _program.check_pin_dir(missing)
    assert str(info.value).startswith('pin_dir: %s is not on a BPF filesystem (bpffs): %s is on a filesystem of '
                                      'type 0x' % (missing, tmp_path))
    assert not os.path.exists(str(tmp_path / 'a'))
    plain = tmp_path / 'file'
    plain.write_text('')
    with pytest.raises(EbpfTcError, match='pin_dir: .* is not a directory'):
        _program.check_pin_dir(str(plain))
    monkeypatch.setattr(_program, 'fs_magic', lambda path: _program.BPF_FS_MAGIC)
    _program.check_pin_dir(missing)     # bpffs: fine, and still nothing created
    assert not os.path.exists(str(tmp_path / 'a'))


ATTACHED = {'priority': 10, 'handle': 1, 'name': 'ebpf_tc:steering', 'program': 'steering', 'id': 71,
            'tag': 'ab' * 8, 'prog_name': 'steering', 'map_ids': [11, 12, 13]}


def pins(program_id=None, maps=None):
    return {'path': '/sys/fs/bpf/ebpf_tc/eth0/egress',
            'program': None if program_id is None else {'name': 'steering', 'id': program_id, 'tag': 'cd' * 8},
            'maps': maps or {}}


@pytest.mark.parametrize('attached, pinned, reason', [
    (None, pins(64, {'rules': 21}), None),                       # nothing attached: not drift
    (ATTACHED, pins(), None),                                    # nothing pinned: not drift (pinned elsewhere?)
    (ATTACHED, pins(71, {'rules': 11, 'settings': 12}), None),   # in sync
    (ATTACHED, pins(64, {'rules': 11}), 'program'),              # another program pinned
    (ATTACHED, pins(64, {'rules': 21}), 'program'),
    (ATTACHED, pins(71, {'rules': 11, 'settings': 22}), 'maps'),  # the pinned program, a map replaced
    (ATTACHED, pins(None, {'rules': 21}), 'maps'),               # maps pinned, no program pin
])
def test_drift_decisions(monkeypatch, attached, pinned, reason):
    monkeypatch.setattr(_attached, 'find_pin_dir', lambda prog_id, program, root=None: None)
    drift = _attached.drift_of(attached, pinned, 'egress of eth0')
    assert (drift and drift['reason']) == reason
    if reason:
        assert drift['message'].startswith('drift: egress of eth0 runs program steering (id 71')
        assert 'pin_dir: /sys/fs/bpf/ebpf_tc/eth0/egress and force: true' in drift['message']


def test_drift_names_where_the_attached_program_is_pinned(monkeypatch):
    monkeypatch.setattr(_attached, 'find_pin_dir', lambda prog_id, program, root=None: '/sys/fs/bpf/ebpf_tc/x')
    drift = _attached.drift_of(ATTACHED, pins(64, {'rules': 21}), 'egress of eth0')
    assert drift['pinned_at'] == '/sys/fs/bpf/ebpf_tc/x'
    assert 'the attached program is pinned at /sys/fs/bpf/ebpf_tc/x' in drift['message']
    assert 'give pin_dir: /sys/fs/bpf/ebpf_tc/x' in drift['message']


@pytest.mark.parametrize('kwargs, text', [
    (dict(rule='web', field='match.src', index=2), 'rules[2] (name web): match.src: bad'),
    (dict(rule='rules[0]', field='name', index=0), 'rules[0]: name: bad'),
    (dict(rule='web', index=1), 'rules[1] (name web): bad'),
    (dict(field='rules'), 'rules: bad'),
    (dict(rule='web', field='action'), 'rule web: action: bad'),      # decoded from a map: no position
])
def test_rule_error_wording(kwargs, text):
    assert str(RuleError('bad', **kwargs)) == text


def test_rule_error_gets_its_position():
    err = RuleError('bad', rule='web', field='mark').at(3)
    assert (str(err), err.index, err.rule, err.field) == ('rules[3] (name web): mark: bad', 3, 'web', 'mark')


@pytest.mark.parametrize('kind, text', [('array_of_maps', 'an'), ('array', 'an'), ('hash', 'a'),
                                        ('lpm_trie', 'an'), ('lru_hash', 'an'), ('percpu_array', 'a'),
                                        ('ringbuf', 'a'), ('inode_storage', 'an')])
def test_article(kind, text):
    assert article(kind) == text

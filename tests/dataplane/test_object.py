"""The shipped object is the shipped source, and it loads with the distro's tools.

Root only: loading needs CAP_BPF. Each check is at the cheapest layer that can see the bug.
"""

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _libbpf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BPF_DIR = os.path.join(ROOT, 'files', 'bpf')
OBJECT = os.path.join(BPF_DIR, 'steering.bpf.o')
SOURCE = os.path.join(BPF_DIR, 'steering.bpf.c')
# The toolchain the committed object is built with (Debian 12's clang). Another clang emits other bytes.
PINNED_CLANG = '14.0.6'


def test_toolchain_is_the_pinned_one():
    out = subprocess.run(['clang', '--version'], check=True, stdout=subprocess.PIPE, text=True).stdout
    assert re.search(r'clang version %s\b' % re.escape(PINNED_CLANG), out), out


@pytest.mark.parametrize('name, flags', [('steering.bpf.o', []), ('steering_explain.bpf.o', ['-DSTEERING_EXPLAIN'])])
def test_rebuild_gives_the_committed_object(tmp_path, name, flags):
    rebuilt = tmp_path / name
    subprocess.run(['bash', os.path.join(BPF_DIR, 'build.sh'), SOURCE, str(rebuilt)] + flags, check=True)
    with open(os.path.join(BPF_DIR, name), 'rb') as committed:
        assert rebuilt.read_bytes() == committed.read(), (
            'files/bpf/%s is not the build of steering.bpf.c: run `make bpf` and commit it' % name)


def test_bpftool_loadall_accepts_the_object(steering_object):
    # LIBBPF_PIN_BY_NAME pins maps at /sys/fs/bpf/<name>: give bpftool a private bpffs so nothing leaks.
    script = ('mount -t bpf bpf /sys/fs/bpf && bpftool prog loadall %s /sys/fs/bpf/progs_under_test '
              '&& bpftool -j prog show pinned /sys/fs/bpf/progs_under_test/steering' % steering_object)
    res = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script], check=False,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    prog = json.loads(res.stdout)
    assert prog['name'] == 'steering'
    assert prog['type'] == 'sched_cls'
    assert len(prog['map_ids']) == len(L.MAP_SPECS) + len(L.PRIVATE_MAP_SPECS)


def test_maps_are_the_layout_the_compiler_writes(pin_root):
    with _bpfobject.BpfObject.open(OBJECT, pin_root=pin_root) as obj:
        assert obj.program_names() == ['steering']
        obj.load()
        specs = dict(L.MAP_SPECS, **L.PRIVATE_MAP_SPECS)
        assert sorted(n for n in obj.map_names() if not obj.is_internal(n)) == sorted(specs)
        for name, (kind, key_size, value_size, max_entries) in sorted(specs.items()):
            info = _libbpf.map_info(obj.map_fd(name))
            assert info.type == getattr(_libbpf, 'BPF_MAP_TYPE_' + kind.upper()), name
            assert (info.key_size, info.value_size, info.max_entries) == (key_size, value_size, max_entries), name
            pinned = os.path.exists(os.path.join(pin_root, name))
            assert pinned == (name in L.MAP_SPECS), 'map %s: pinned %s' % (name, pinned)


@pytest.fixture
def pin_root():
    path = os.path.join('/sys/fs/bpf/ebpf_tc_test', uuid.uuid4().hex)
    os.makedirs(path)
    try:
        yield path
    finally:
        shutil.rmtree(path)
        if not os.listdir(os.path.dirname(path)):
            os.rmdir(os.path.dirname(path))

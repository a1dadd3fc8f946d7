# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ctypes libbpf binding against the real libbpf and kernel (root, no network).

The BPF objects are built from tests/dataplane/bpf/*.bpf.c into a temporary directory; every pin lives
under /sys/fs/bpf/ebpf_tc_test/<uuid>/ and is removed afterwards, also when a test fails.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import uuid

import pytest

import bpftest
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfmap, _bpfobject

from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf as libbpf
from ansible_collections.ebpf.tc.plugins.module_utils._errors import LibbpfError

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (bpf(2), BPF_PROG_TEST_RUN)'),
]

BPF_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'bpf')
PIN_BASE = '/sys/fs/bpf/ebpf_tc_test'

TC_ACT_UNSPEC = -1
TC_ACT_SHOT = 2
DEFAULT_MARK = 0x42          # const volatile default_mark in drop_icmp.bpf.c
SKB_MARK_OFFSET = 8          # offsetof(struct __sk_buff, mark)
SKB_CTX_SIZE = 192           # sizeof(struct __sk_buff) in the UAPI headers we build against
ZERO = struct.pack('<I', 0)


def u32(value):
    return struct.pack('<I', value)


def u64(value):
    return struct.pack('<Q', value)


def ipv4_frame(proto, payload=b'\0' * 8):
    """An Ethernet + IPv4 frame with protocol ``proto`` (checksums are not checked by the program)."""
    eth = b'\x02\x00\x00\x00\x00\x02' + b'\x02\x00\x00\x00\x00\x01' + b'\x08\x00'
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                     socket.inet_aton('192.0.2.1'), socket.inet_aton('198.51.100.1'))
    return eth + ip + payload


def skb_ctx(mark=0):
    ctx = bytearray(SKB_CTX_SIZE)
    ctx[SKB_MARK_OFFSET:SKB_MARK_OFFSET + 4] = u32(mark)
    return bytes(ctx)


def ctx_mark(ctx):
    return struct.unpack_from('<I', ctx, SKB_MARK_OFFSET)[0]


@pytest.fixture(scope='session')
def objects(tmp_path_factory):
    """Every test BPF object, compiled the way files/bpf/build.sh compiles the shipped one."""
    out = tmp_path_factory.mktemp('bpf')
    built = {}
    for source in sorted(os.listdir(BPF_SRC)):
        if not source.endswith('.bpf.c'):
            continue
        name = source[:-len('.bpf.c')]
        target = str(out / (name + '.o'))
        subprocess.run(['clang', '-O2', '-g', '-target', 'bpf',
                        '-I/usr/include/%s-linux-gnu' % os.uname().machine,
                        '-c', os.path.join(BPF_SRC, source), '-o', target], check=True)
        built[name] = target
    return built


def _remove_tree(path):
    """rmtree for bpffs: pins are unlinked like files."""
    if os.path.isdir(path):
        shutil.rmtree(path)


@pytest.fixture
def pin_dir():
    path = os.path.join(PIN_BASE, uuid.uuid4().hex)
    os.makedirs(path)
    try:
        yield path
    finally:
        _remove_tree(path)
        try:
            os.rmdir(PIN_BASE)
        except OSError:  # other tests' directories are still there
            pass


@pytest.fixture
def loaded(objects):
    """drop_icmp.o, opened and loaded, with nothing pinned (no pin_root)."""
    with _bpfobject.BpfObject.open(objects['drop_icmp']) as obj:
        obj.load()
        yield obj


def test_library_facts():
    assert libbpf.get_libbpf() is libbpf.get_libbpf()
    major, minor = libbpf.libbpf_version().split('.')
    assert (int(major), int(minor)) >= (0, 5)
    with open('/sys/devices/system/cpu/possible') as possible:
        last = int(possible.read().strip().split(',')[-1].split('-')[-1])
    assert libbpf.num_possible_cpus() == last + 1


def test_open_lists_programs_and_maps(objects):
    with _bpfobject.BpfObject.open(objects['drop_icmp']) as obj:
        assert obj.program_names() == ['drop_icmp']
        names = obj.map_names()
        assert {'mark_cfg', 'verdicts', 'by_proto', 'prefixes', 'locked'} <= set(names)
        internal = [name for name in names if obj.is_internal(name)]
        assert len(internal) == 1 and internal[0].endswith('.rodata')
        with pytest.raises(LibbpfError, match='not created yet'):
            obj.map_fd('verdicts')


def test_without_pin_root_nothing_is_pinned(loaded):
    # libbpf alone would have pinned the LIBBPF_PIN_BY_NAME map at /sys/fs/bpf/verdicts.
    assert not os.path.exists('/sys/fs/bpf/verdicts')
    assert loaded.map('verdicts').lookup_percpu(u32(0)) == [u64(0)] * libbpf.num_possible_cpus()


def test_test_run_verdicts_and_mark(loaded):
    prog_fd = loaded.program_fd('drop_icmp')
    icmp, udp = ipv4_frame(1), ipv4_frame(17)

    dropped = bpftest.test_run(prog_fd, icmp, ctx=skb_ctx())
    assert dropped.retval == TC_ACT_SHOT
    assert ctx_mark(dropped.ctx_out) == DEFAULT_MARK
    assert dropped.data_out == icmp

    passed = bpftest.test_run(prog_fd, udp, ctx=skb_ctx(mark=7), repeat=3)
    assert passed.retval == TC_ACT_UNSPEC
    assert ctx_mark(passed.ctx_out) == DEFAULT_MARK
    assert len(passed.ctx_out) == SKB_CTX_SIZE

    # No ctx: nothing to read back, the verdict is still there.
    bare = bpftest.test_run(prog_fd, b'\xff' * 14)
    assert (bare.retval, bare.ctx_out) == (TC_ACT_UNSPEC, b'')

    verdicts = loaded.map('verdicts')
    assert sum(struct.unpack('<Q', v)[0] for v in verdicts.lookup_percpu(u32(1))) == 1
    assert sum(struct.unpack('<Q', v)[0] for v in verdicts.lookup_percpu(u32(0))) == 4
    by_proto = loaded.map('by_proto')
    assert dict(by_proto.items()) == {u32(1): u64(1), u32(17): u64(3)}


def test_test_run_rejects_a_runt_frame(loaded):
    with pytest.raises(LibbpfError, match='test-run') as err:
        bpftest.test_run(loaded.program_fd('drop_icmp'), b'\0' * 4)
    assert err.value.errno == errno.EINVAL


def test_array_of_maps_with_inner_map_from_create_map(loaded):
    prog_fd = loaded.program_fd('drop_icmp')
    outer = loaded.map('mark_cfg')
    assert (outer.info.type, outer.info.key_size, outer.info.value_size) == (
        libbpf.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4)
    assert outer.lookup(ZERO) is None

    with _bpfmap.create_map(libbpf.BPF_MAP_TYPE_ARRAY, 4, 4, 1, name='mark_inner') as inner:
        assert inner.info.name == 'mark_inner'
        inner.update(ZERO, u32(0x77))
        outer.update(ZERO, u32(inner.fd))          # update takes an fd...
        assert outer.lookup(ZERO) == u32(inner.info.id)   # ...lookup gives the id
    # The outer map holds its own reference: closing our fd changes nothing.
    assert ctx_mark(bpftest.test_run(prog_fd, ipv4_frame(17), ctx=skb_ctx()).ctx_out) == 0x77

    assert outer.delete(ZERO) is True
    assert outer.delete(ZERO) is False
    assert ctx_mark(bpftest.test_run(prog_fd, ipv4_frame(17), ctx=skb_ctx()).ctx_out) == DEFAULT_MARK


def test_hash_map_crud(loaded):
    by_proto = loaded.map('by_proto')
    assert (by_proto.key_size, by_proto.value_size, by_proto.is_percpu) == (4, 8, False)
    assert by_proto.lookup(u32(6)) is None

    by_proto.update(u32(6), u64(10), flags=libbpf.BPF_NOEXIST)
    assert by_proto.lookup(u32(6)) == u64(10)
    with pytest.raises(LibbpfError, match='by_proto') as err:
        by_proto.update(u32(6), u64(11), flags=libbpf.BPF_NOEXIST)
    assert err.value.errno == errno.EEXIST
    with pytest.raises(LibbpfError) as err:
        by_proto.update(u32(99), u64(1), flags=libbpf.BPF_EXIST)
    assert err.value.errno == errno.ENOENT

    with pytest.raises(LibbpfError, match='key is 2 bytes, the map wants 4') as err:
        by_proto.lookup(b'\0\0')
    assert err.value.errno == errno.EINVAL
    with pytest.raises(LibbpfError, match='value is 4 bytes'):
        by_proto.update(u32(6), u32(1))

    assert by_proto.delete(u32(6)) is True
    assert by_proto.delete(u32(6)) is False

    keys = [u32(i) for i in range(100)]
    values = [u64(i * i) for i in range(100)]
    bpftest.update_batch(by_proto, keys, values)
    assert dict(by_proto.items()) == dict(zip(keys, values))
    assert dict(by_proto.lookup_batch(chunk=7)) == dict(zip(keys, values))
    assert sorted(by_proto.keys()) == sorted(keys)


def test_keys_while_deleting_every_entry(loaded):
    by_proto = loaded.map('by_proto')
    keys = [u32(i) for i in range(50)]
    bpftest.update_batch(by_proto, keys, [u64(0)] * 50)
    seen = []
    for key in by_proto.keys():
        seen.append(key)
        assert by_proto.delete(key)
    assert sorted(seen) == sorted(keys)
    assert list(by_proto.keys()) == []


def lpm_key(cidr):
    address, length = cidr.split('/')
    return u32(int(length)) + socket.inet_aton(address)


def test_lpm_trie(loaded):
    prefixes = loaded.map('prefixes')
    assert prefixes.info.type == libbpf.BPF_MAP_TYPE_LPM_TRIE
    assert prefixes.info.flags & libbpf.BPF_F_NO_PREALLOC
    prefixes.update(lpm_key('10.0.0.0/8'), u32(1))
    bpftest.update_batch(prefixes, [lpm_key('10.1.0.0/16'), lpm_key('0.0.0.0/0')], [u32(2), u32(3)])

    # A user-space lookup on an LPM trie is a longest-prefix match too.
    assert prefixes.lookup(lpm_key('10.1.2.3/32')) == u32(2)
    assert prefixes.lookup(lpm_key('10.2.3.4/32')) == u32(1)
    assert prefixes.lookup(lpm_key('192.0.2.1/32')) == u32(3)
    assert sorted(prefixes.keys()) == sorted(lpm_key(c) for c in ('10.0.0.0/8', '10.1.0.0/16', '0.0.0.0/0'))

    assert prefixes.delete(lpm_key('0.0.0.0/0')) is True
    assert prefixes.lookup(lpm_key('192.0.2.1/32')) is None
    assert prefixes.delete(lpm_key('0.0.0.0/0')) is False
    assert dict(prefixes.lookup_batch()) == dict(prefixes.items())


def test_percpu_array(loaded):
    ncpus = libbpf.num_possible_cpus()
    verdicts = loaded.map('verdicts')
    assert verdicts.is_percpu
    assert verdicts.info.value_size == 8
    assert verdicts.value_size == 8 * ncpus

    per_cpu = [u64(1000 + cpu) for cpu in range(ncpus)]
    verdicts.update(u32(1), b''.join(per_cpu))
    assert verdicts.lookup_percpu(u32(1)) == per_cpu
    assert verdicts.lookup(u32(1)) == b''.join(per_cpu)
    with pytest.raises(LibbpfError, match='value is 8 bytes') if ncpus > 1 else contextlib.nullcontext():
        verdicts.update(u32(1), u64(1))

    bpftest.update_batch(verdicts, [u32(0), u32(1)], [bytes(8 * ncpus)] * 2)
    assert dict(verdicts.lookup_batch()) == {u32(0): bytes(8 * ncpus), u32(1): bytes(8 * ncpus)}
    assert verdicts.lookup(u32(2)) is None          # past max_entries
    with pytest.raises(LibbpfError) as err:
        verdicts.delete(u32(0))                     # arrays cannot delete
    assert err.value.errno == errno.EINVAL
    with pytest.raises(LibbpfError, match='not a per-CPU map'):
        loaded.map('by_proto').lookup_percpu(u32(0))


def test_spin_locked_values(loaded):
    locked = loaded.map('locked')
    assert locked.value_size == 8       # struct bpf_spin_lock (4 bytes) + u32
    locked.update(ZERO, u32(0) + u32(123), flags=libbpf.BPF_F_LOCK)
    assert locked.lookup(ZERO, flags=libbpf.BPF_F_LOCK)[4:] == u32(123)


def test_verifier_rejection_carries_the_end_of_the_log(objects):
    with _bpfobject.BpfObject.open(objects['rejected']) as obj:
        with pytest.raises(LibbpfError) as err:
            obj.load()
        with pytest.raises(LibbpfError, match='not loaded'):
            obj.program_fd('unchecked_read')
    exc = err.value
    assert exc.errno == errno.EACCES
    assert str(exc).startswith('cannot load %s: Permission denied\n' % objects['rejected'])
    assert 'invalid access to packet' in exc.log
    # libbpf 1.x frames the log with "-- BEGIN/END PROG LOAD LOG --", 0.x with "-- BEGIN DUMP LOG ---"/"-- END LOG --"
    assert 'processed' in exc.log and re.search(r'-- END (PROG LOAD )?LOG --', exc.log)
    assert exc.log in str(exc)
    # The log of this program is longer than what an error keeps: we kept its end, not its start.
    assert len(exc.log.splitlines()) <= 40 and len(exc.log) <= 4096
    assert not re.search(r'-- BEGIN (PROG LOAD|DUMP) LOG', exc.log)

    # The next error does not drag the old log along.
    with pytest.raises(LibbpfError) as later:
        _bpfobject.BpfObject.open(objects['rejected'] + '.missing')
    assert 'invalid access' not in str(later.value)


def test_log_is_captured_per_thread(objects):
    errors = []

    def load_rejected():
        with _bpfobject.BpfObject.open(objects['rejected']) as obj:
            try:
                obj.load()
            except LibbpfError as exc:
                errors.append(exc)

    worker = threading.Thread(target=load_rejected)
    worker.start()
    worker.join()
    assert 'invalid access to packet' in errors[0].log


def test_program_without_known_section_loads_as_tc(objects):
    with _bpfobject.BpfObject.open(objects['untyped_section']) as obj:
        obj.load()
        info = libbpf.prog_info(obj.program_fd('untyped'))
        assert info.type == libbpf.BPF_PROG_TYPE_SCHED_CLS
        assert bpftest.test_run(obj.program_fd('untyped'), b'\0' * 14).retval == TC_ACT_SHOT


def test_missing_program_and_map(loaded):
    with pytest.raises(LibbpfError, match=r"no program 'steering' in .*drop_icmp\.o \(it has: drop_icmp\)") as err:
        loaded.program_fd('steering')
    assert err.value.errno == errno.ENOENT
    with pytest.raises(LibbpfError, match="no map 'rules' in .*it has: .*verdicts") as err:
        loaded.map_fd('rules')
    assert err.value.errno == errno.ENOENT
    with pytest.raises(LibbpfError, match="no map 'rules'"):
        loaded.set_map_pin_path('rules', '/sys/fs/bpf/nowhere')


def test_open_missing_file(tmp_path):
    path = str(tmp_path / 'absent.o')
    with pytest.raises(LibbpfError) as err:
        _bpfobject.BpfObject.open(path)
    assert err.value.errno == errno.ENOENT
    assert str(err.value).startswith('cannot open BPF object %s: No such file or directory' % path)


def test_open_non_bpf_file():
    with pytest.raises(LibbpfError) as err:
        _bpfobject.BpfObject.open('/bin/true')
    assert str(err.value).startswith('cannot open BPF object /bin/true: ')
    assert err.value.errno


def test_closed_object_and_map(objects):
    obj = _bpfobject.BpfObject.open(objects['drop_icmp'])
    obj.close()
    obj.close()
    with pytest.raises(LibbpfError, match='closed'):
        obj.load()
    bpf_map = _bpfmap.create_map(libbpf.BPF_MAP_TYPE_HASH, 4, 4, 8)
    bpf_map.close()
    with pytest.raises(LibbpfError, match='closed') as err:
        bpf_map.lookup(ZERO)
    assert err.value.errno == errno.EBADF


def test_prog_info_matches_bpftool(loaded):
    info = libbpf.prog_info(loaded.program_fd('drop_icmp'))
    shown = json.loads(subprocess.run(['bpftool', 'prog', 'show', 'id', str(info.id), '-j'],
                                      check=True, capture_output=True, text=True).stdout)
    assert len(info.tag) == 16
    assert info.tag == shown['tag']
    assert info.name == shown['name'] == 'drop_icmp'
    assert info.type == libbpf.BPF_PROG_TYPE_SCHED_CLS
    assert sorted(info.map_ids) == sorted(shown['map_ids'])
    assert libbpf.map_info(loaded.map_fd('verdicts')).id in info.map_ids


def test_ids_to_fds(loaded):
    prog_id = libbpf.prog_info(loaded.program_fd('drop_icmp')).id
    fd = libbpf.prog_fd_by_id(prog_id)
    try:
        assert libbpf.prog_info(fd).id == prog_id
        with pytest.raises(LibbpfError, match='is a BPF prog, not a BPF map'):
            libbpf.map_info(fd)
    finally:
        libbpf.close_fd(fd)
    map_id = loaded.map('verdicts').info.id
    with _bpfmap.Map.from_id(map_id) as bpf_map:
        assert bpf_map.info.name == 'verdicts'
    with pytest.raises(LibbpfError, match='map id 4294967295') as err:
        libbpf.map_fd_by_id(0xffffffff)
    assert err.value.errno == errno.ENOENT


def test_create_map_failure_names_the_map():
    with pytest.raises(LibbpfError, match='cannot create map bad_map .*key 0') as err:
        _bpfmap.create_map(libbpf.BPF_MAP_TYPE_HASH, 0, 4, 8, name='bad_map')
    assert err.value.errno == errno.EINVAL


def test_pins_and_atomic_replace(objects, loaded, pin_dir):
    prog_pin = os.path.join(pin_dir, 'prog')
    loaded.pin_program('drop_icmp', prog_pin)
    old_id = libbpf.prog_info(loaded.program_fd('drop_icmp')).id

    fd = libbpf.obj_get(prog_pin)
    try:
        assert libbpf.prog_info(fd).id == old_id
    finally:
        libbpf.close_fd(fd)
    with pytest.raises(LibbpfError, match='is a BPF prog, not a BPF map'):
        _bpfmap.Map.from_pin(prog_pin)
    with pytest.raises(LibbpfError, match='cannot pin program drop_icmp') as err:
        loaded.pin_program('drop_icmp', prog_pin)
    assert err.value.errno == errno.EEXIST

    # bpffs reserves names with a dot.
    with pytest.raises(LibbpfError) as err:
        loaded.pin_program('drop_icmp', prog_pin + '.new')
    assert err.value.errno == errno.EPERM

    # Pin the replacement under a temporary name, then rename it over the old pin: one atomic step.
    with _bpfobject.BpfObject.open(objects['untyped_section']) as new:
        new.load()
        new_id = libbpf.prog_info(new.program_fd('untyped')).id
        new.pin_program('untyped', prog_pin + '_new')
    os.replace(prog_pin + '_new', prog_pin)
    assert os.listdir(pin_dir) == ['prog']
    fd = libbpf.obj_get(prog_pin)
    try:
        assert libbpf.prog_info(fd).id == new_id
    finally:
        libbpf.close_fd(fd)

    with _bpfmap.create_map(libbpf.BPF_MAP_TYPE_ARRAY, 4, 8, 4, name='loose') as bpf_map:
        libbpf.obj_pin(bpf_map.fd, os.path.join(pin_dir, 'loose'))
        bpf_map.update(u32(3), u64(33))
    with _bpfmap.Map.from_pin(os.path.join(pin_dir, 'loose')) as again:
        assert again.lookup(u32(3)) == u64(33)


def test_obj_get_missing_pin(pin_dir):
    path = os.path.join(pin_dir, 'nothing')
    with pytest.raises(LibbpfError) as err:
        libbpf.obj_get(path)
    assert err.value.errno == errno.ENOENT
    assert path in str(err.value)


def test_reload_with_pin_root_reuses_pinned_maps(objects, pin_dir):
    ncpus = libbpf.num_possible_cpus()
    by_proto_pin = os.path.join(pin_dir, 'by_proto')

    def load():
        obj = _bpfobject.BpfObject.open(objects['drop_icmp'], pin_root=pin_dir)
        obj.set_map_pin_path('by_proto', by_proto_pin)   # no pinning attribute in the source
        obj.load()
        return obj

    with load() as first:
        verdicts_id = first.map('verdicts').info.id
        by_proto_id = first.map('by_proto').info.id
        first.map('verdicts').update(u32(1), u64(5) * ncpus)
        first.map('by_proto').update(u32(6), u64(66))
    assert sorted(os.listdir(pin_dir)) == ['by_proto', 'verdicts']

    with load() as second:
        assert second.map('verdicts').info.id == verdicts_id
        assert second.map('by_proto').info.id == by_proto_id
        assert second.map('verdicts').lookup_percpu(u32(1)) == [u64(5)] * ncpus
        assert second.map('by_proto').lookup(u32(6)) == u64(66)
        # Maps without a pin (mark_cfg) are new per load and never land in pin_root.
        assert sorted(os.listdir(pin_dir)) == ['by_proto', 'verdicts']

    with _bpfmap.Map.from_pin(os.path.join(pin_dir, 'verdicts')) as pinned:
        assert pinned.info.id == verdicts_id


def test_incompatible_pinned_map_fails_the_load(objects, pin_dir):
    with _bpfmap.create_map(libbpf.BPF_MAP_TYPE_HASH, 4, 4, 8, name='verdicts') as wrong:
        libbpf.obj_pin(wrong.fd, os.path.join(pin_dir, 'verdicts'))
    with _bpfobject.BpfObject.open(objects['drop_icmp'], pin_root=pin_dir) as obj:
        with pytest.raises(LibbpfError, match='cannot load') as err:
            obj.load()
    assert 'verdicts' in err.value.log

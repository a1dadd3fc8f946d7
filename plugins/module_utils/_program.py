# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Loading a BPF object and pinning its program and maps under a pin directory.

Layout (docs/docsite/rst/design.rst, "On the host"): maps at <pin_dir>/<map name>, the program at <pin_dir>/<program>.
A reload reuses every pinned map that is compatible (so rules and counters survive upgrades); the
program pin is swapped by rename, so the pin always names a loaded, verified program.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ctypes
import os

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _libbpf, _tc
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, LibbpfError

# Below 5.11 bpf_redirect_neigh takes no next hop: the verifier accepts the object and the redirect then drops
# every packet, so a version number must refuse those kernels. Above it, whether a kernel runs the object is
# its verifier's call (a load, as bpf_filter and bpf_object_info do): the kernel matrix proves 6.1 and 6.12.
KERNEL_FLOOR = (5, 11)
BPFFS = _attached.BPFFS
PIN_ROOT = os.path.join(BPFFS, 'ebpf_tc')


def default_pin_dir(interface, direction, netns=None):
    if netns:
        return os.path.join(PIN_ROOT, 'netns', netns, interface, direction)
    return os.path.join(PIN_ROOT, interface, direction)


def kernel_version(release=None):
    """(major, minor) of the running kernel, from a release string like '6.1.0-18-amd64'."""
    release = release or os.uname()[2]
    parts = release.split('-')[0].split('.')
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise EbpfTcError('cannot read the kernel version from %r' % release)


def check_kernel(release=None):
    version = kernel_version(release)
    if version < KERNEL_FLOOR:
        raise EbpfTcError('kernel %d.%d is too old: ebpf.tc needs Linux %d.%d or later (bpf_redirect_neigh '
                          'with a next hop)' % (version + KERNEL_FLOOR))


def bpffs_mounted(path=BPFFS):
    """True when `path` is on a bpf filesystem (statfs magic BPF_FS_MAGIC)."""
    try:
        with open('/proc/self/mounts') as mounts:
            return any(line.split()[1] == path and line.split()[2] == 'bpf' for line in mounts)
    except (IOError, OSError):
        return False


BPF_FS_MAGIC = 0xCAFE4A11


def fs_magic(path):
    """The statfs(2) f_type of the filesystem holding `path` (an OSError when it cannot be read)."""
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(512)  # struct statfs is 120 bytes on 64-bit Linux; f_type comes first
    if libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF


def nearest_existing(path):
    """`path` itself, or its nearest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def check_pin_dir(pin_dir):
    """Refuse (EbpfTcError naming pin_dir) a pin directory that is not, or would not be, on a bpf
    filesystem: checked on its nearest existing ancestor, before anything is created."""
    existing = nearest_existing(pin_dir)
    if os.path.lexists(pin_dir) and not os.path.isdir(pin_dir):
        raise EbpfTcError('pin_dir: %s is not a directory' % pin_dir)
    try:
        magic = fs_magic(existing)
    except OSError as err:
        raise EbpfTcError('pin_dir: cannot check that %s is on a BPF filesystem: %s' % (pin_dir, err))
    if magic != BPF_FS_MAGIC:
        raise EbpfTcError('pin_dir: %s is not on a BPF filesystem (bpffs): %s is on a filesystem of type '
                          '%#x; use a directory under %s' % (pin_dir, existing, magic, BPFFS))


def load_and_pin(object_path, program, pin_dir):
    """Load `object_path`, pin its maps and `program` under pin_dir; returns (prog_fd, prog_info).

    The caller owns prog_fd. Nothing is pinned when the object fails to open, verify or load.
    """
    check_kernel()
    if not os.path.isfile(object_path):
        raise EbpfTcError('BPF object %s does not exist' % object_path)
    if not bpffs_mounted():
        raise EbpfTcError('no bpf filesystem is mounted at %s (mount -t bpf bpf %s)' % (BPFFS, BPFFS))
    if not os.path.isdir(pin_dir):
        os.makedirs(pin_dir)
    obj = _libbpf.BpfObject.open(object_path, pin_root=pin_dir)
    try:
        if program not in obj.program_names():
            raise EbpfTcError('program %s is not in %s (it has: %s)'
                              % (program, object_path, ', '.join(obj.program_names()) or 'none'))
        for name in obj.map_names():
            if not obj.is_internal(name):
                # maps without LIBBPF_PIN_BY_NAME are pinned too, so every object's state persists
                obj.set_map_pin_path(name, os.path.join(pin_dir, name))
        obj.load()
        fd = os.dup(obj.program_fd(program))
    finally:
        obj.close()
    try:
        pin = os.path.join(pin_dir, program)
        tmp = pin + '_new'  # bpffs refuses names with a dot
        if os.path.exists(tmp):
            os.unlink(tmp)
        _libbpf.obj_pin(fd, tmp)
        os.rename(tmp, pin)
        return fd, _libbpf.prog_info(fd)
    except Exception:
        os.close(fd)
        raise


def remove_pins(pin_dir, root=PIN_ROOT):
    """Remove pin_dir with everything pinned in it (pins unlink like files), then its parents while
    empty, up to and excluding `root`. A missing pin_dir is fine."""
    def remove_tree(path):
        for name in os.listdir(path):
            inner = os.path.join(path, name)
            if os.path.isdir(inner):
                remove_tree(inner)
            else:
                os.unlink(inner)
        os.rmdir(path)

    if os.path.isdir(pin_dir):
        remove_tree(pin_dir)
    parent = os.path.dirname(pin_dir)
    while parent.startswith(root + os.sep) and os.path.isdir(parent) and not os.listdir(parent):
        os.rmdir(parent)
        parent = os.path.dirname(parent)


# ---------------------------------------------------------------------------------------------------
# bpf_filter: inspect an object without changing anything, then install it (load, attach, pin)

MapDef = collections.namedtuple('MapDef', 'type key_size value_size max_entries flags')
ObjectBuild = collections.namedtuple('ObjectBuild', 'path program tag maps')   # maps: name -> MapDef
MapPlan = collections.namedtuple('MapPlan', 'reused replaced created')         # lists of map names

_TMP_SUFFIX = '_ebpf_tc_new'   # bpffs refuses names with a dot


def check_object_path(object_path):
    if not os.path.exists(object_path):
        raise EbpfTcError('BPF object %s does not exist' % object_path)
    if not os.path.isfile(object_path):
        raise EbpfTcError('BPF object %s is not a regular file' % object_path)


LEGACY_MAPS_MESSAGE = ('legacy map definitions (SEC("maps")) are not supported by libbpf >= 1.0; use BTF-defined '
                       'maps in SEC(".maps")')


def elf_section_names(path):
    """The section names of the ELF file at path (an empty list for anything that is not ELF)."""
    import struct

    with open(path, 'rb') as elf:
        data = elf.read()
    if data[:4] != b'\x7fELF' or len(data) < 64 or data[4] not in (1, 2) or data[5] not in (1, 2):
        return []
    order = '<' if data[5] == 1 else '>'
    try:
        if data[4] == 2:    # ELF64
            shoff, = struct.unpack_from(order + 'Q', data, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(order + 'HHH', data, 0x3A)
            header, offset_at = order + 'IIQQQQ', (4, 5)
        else:               # ELF32
            shoff, = struct.unpack_from(order + 'I', data, 0x20)
            shentsize, shnum, shstrndx = struct.unpack_from(order + 'HHH', data, 0x2E)
            header, offset_at = order + 'IIIIII', (4, 5)
        sections = [struct.unpack_from(header, data, shoff + i * shentsize) for i in range(shnum)]
        strtab = sections[shstrndx]
        table = data[strtab[offset_at[0]]:strtab[offset_at[0]] + strtab[offset_at[1]]]
        return [table[s[0]:table.index(b'\0', s[0])].decode('ascii', 'replace') for s in sections]
    except (struct.error, IndexError, ValueError):
        return []


def _open_object(object_path, pin_root=None):
    check_object_path(object_path)
    try:
        return _libbpf.BpfObject.open(object_path, pin_root=pin_root)
    except LibbpfError as err:
        try:
            legacy = 'maps' in elf_section_names(object_path)
        except (IOError, OSError):
            legacy = False
        if legacy:
            raise EbpfTcError('%s has a section "maps": %s' % (object_path, LEGACY_MAPS_MESSAGE))
        raise EbpfTcError('%s is not a BPF object libbpf can open (%s)' % (object_path, str(err).splitlines()[0]))


def _check_program(obj, object_path, program):
    if program not in obj.program_names():
        raise EbpfTcError('program %s is not in %s (it has: %s)'
                          % (program, object_path, ', '.join(obj.program_names()) or 'none'))


def _map_defs(obj):
    """MapDef of each of a loaded object's maps (not libbpf's internal ones), by name."""
    maps = collections.OrderedDict()
    for name in obj.map_names():
        if not obj.is_internal(name):
            mi = obj.map(name).info
            maps[name] = MapDef(mi.type, mi.key_size, mi.value_size, mi.max_entries, mi.flags)
    return maps


def inspect_object(object_path, program):
    """Load the object with nothing pinned (fresh maps, closed again) to learn its program's tag and its
    maps' definitions. Changes nothing on the host: safe in check mode.

    The kernel's tag ignores map fds and global-data addresses, so it equals the tag of the same build
    loaded against pinned maps. A verifier rejection raises LibbpfError (``.log``: the verifier's log end).
    """
    with _open_object(object_path) as obj:
        _check_program(obj, object_path, program)
        obj.load()
        info = _libbpf.prog_info(obj.program_fd(program))
        maps = _map_defs(obj)
    return ObjectBuild(object_path, program, info.tag, maps)


def object_check(object_path, program=None):
    """Whether the running kernel loads the object (the ebpf.tc.bpf_object_info module): a dict with kernel,
    loads, programs and, loaded, maps and the program's tag, or refused, error (the verifier's log end).

    A missing or unreadable object, or a program it does not hold, raises EbpfTcError: only the kernel's
    refusal is an answer. Nothing is pinned; the object is closed again.
    """
    result = {'kernel': os.uname()[2], 'loads': False}
    with _open_object(object_path) as obj:
        if program:
            _check_program(obj, object_path, program)
        result['programs'] = obj.program_names()
        try:
            obj.load()
        except LibbpfError as err:
            result['error'] = str(err)
            return result
        result['loads'] = True
        result['maps'] = dict((name, d._asdict()) for name, d in _map_defs(obj).items())
        if program:
            result['tag'] = _libbpf.prog_info(obj.program_fd(program)).tag
    return result


def pinned_program(pin_dir, program):
    """ProgInfo of the program pinned at pin_dir/program, or None when nothing (or no program) is there."""
    path = os.path.join(pin_dir, program)
    if not os.path.exists(path):
        return None
    try:
        fd = _libbpf.obj_get(path)
    except LibbpfError:
        return None
    try:
        return _libbpf.prog_info(fd)
    except LibbpfError:
        return None
    finally:
        os.close(fd)


def pinned_map_def(path):
    """MapDef of the map pinned at path, or None when nothing (or no map) is pinned there."""
    if not os.path.exists(path):
        return None
    try:
        with _libbpf.Map.from_pin(path) as pinned:
            mi = pinned.info
    except LibbpfError:
        return None
    return MapDef(mi.type, mi.key_size, mi.value_size, mi.max_entries, mi.flags)


def plan_maps(pin_dir, build):
    """Which of the object's maps an install would reuse from their pins (same type, key and value size,
    max_entries and flags: libbpf's own compatibility test), which pins it would replace by a fresh map,
    and which maps are new."""
    reused, replaced, created = [], [], []
    for name, wanted in build.maps.items():
        path = os.path.join(pin_dir, name)
        if not os.path.exists(path):
            created.append(name)
        elif pinned_map_def(path) == wanted:
            reused.append(name)
        else:
            replaced.append(name)
    return MapPlan(reused, replaced, created)


def pins_of(pin_dir):
    """Sorted paths of everything pinned directly in pin_dir."""
    if not os.path.isdir(pin_dir):
        return []
    return sorted(os.path.join(pin_dir, name) for name in os.listdir(pin_dir))


def _pin_over(fd, path):
    """Pin fd at path, atomically replacing whatever is pinned there (bpffs renames in place)."""
    tmp = path + _TMP_SUFFIX
    if os.path.exists(tmp):
        os.unlink(tmp)
    _libbpf.obj_pin(fd, tmp)
    os.rename(tmp, path)


def install(object_path, program, pin_dir, attach, replace=()):
    """Load the object reusing its compatible pinned maps, hand the program fd to ``attach(fd)``, then
    pin the program at pin_dir/program and the fresh maps of ``replace`` over their old pins.

    Order matters: the old program and pins stay as they are until the new program is loaded and attached
    (a verifier rejection or a failing attach changes nothing that was pinned before). Returns the
    attached program's ProgInfo.
    """
    check_kernel()
    if not bpffs_mounted():
        raise EbpfTcError('no bpf filesystem is mounted at %s (mount -t bpf bpf %s)' % (BPFFS, BPFFS))
    if not os.path.isdir(pin_dir):
        os.makedirs(pin_dir)
    before = set(os.listdir(pin_dir))
    fds = []
    try:
        with _open_object(object_path, pin_root=pin_dir) as obj:
            _check_program(obj, object_path, program)
            names = [name for name in obj.map_names() if not obj.is_internal(name)]
            for name in names:
                # maps without LIBBPF_PIN_BY_NAME are pinned too, so every object's state persists
                obj.set_map_pin_path(name, None if name in replace else os.path.join(pin_dir, name))
            obj.load()
            prog_fd = os.dup(obj.program_fd(program))
            fds.append(prog_fd)
            fresh = []
            for name in names:
                if name in replace:
                    fresh.append((name, os.dup(obj.map_fd(name))))
                    fds.append(fresh[-1][1])
        attach(prog_fd)
    except BaseException:
        for fd in fds:
            os.close(fd)
        # pins this call made for maps that had none; pins that were there before stay untouched
        for name in set(os.listdir(pin_dir)) - before:
            os.unlink(os.path.join(pin_dir, name))
        raise
    try:
        _pin_over(prog_fd, os.path.join(pin_dir, program))
        for name, fd in fresh:
            _pin_over(fd, os.path.join(pin_dir, name))
        return _libbpf.prog_info(prog_fd)
    finally:
        for fd in fds:
            os.close(fd)


# ---------------------------------------------------------------------------------------------------
# bpf_filter's present/absent, shared by the module and the tests (the module only shapes results)

def _filter_view(flt):
    if flt is None:
        return None
    return dict((key, flt.get(key)) for key in ('kind', 'priority', 'handle', 'name', 'prog_id', 'tag'))


def _foreign_error(flt, direction, interface):
    return EbpfTcError('%s on %s is a filter this collection did not attach (its name is not %s<program>): '
                       'not touching it; choose another priority/handle, or remove it yourself'
                       % (_tc.describe_filter(flt, direction), interface, _tc.OWNED_PREFIX))


def _other_pin_dir_error(current, direction, interface, netns, pin_dir):
    """The refusal to replace a filter of ours attached from another pin_dir - its program is pinned in
    another directory, and is not the one pinned in pin_dir nor uses the maps pinned there: replacing it
    would leave those maps, and their content (rules, counters), behind - or None.

    A program pinned nowhere (its pins were removed) is replaced: nothing can manage its maps any more,
    and attaching again is the way back."""
    program = _tc.owned_program(current)
    pins = _attached.pinned(pin_dir, program)
    if pins['program'] is not None and pins['program']['id'] == current['prog_id']:
        return None
    info = _attached.program_info(current['prog_id'])
    if info is not None and set(info.map_ids) & set(pins['maps'].values()):
        return None     # it uses this pin_dir's maps
    elsewhere = _attached.find_pin_dir(current['prog_id'], program)
    if elsewhere is None:
        return None
    where = '%s%s' % (interface, ' in network namespace %s' % netns if netns else '')
    return EbpfTcError(
        '%s on %s runs program %s (id %s) pinned at %s, not one pinned in pin_dir %s: replacing it would leave '
        'the maps pinned at %s and their content (rules, counters) behind. Check pin_dir (%s?); force: true '
        'replaces it anyway'
        % (_tc.describe_filter(current, direction), where, program, current['prog_id'], elsewhere, pin_dir,
           elsewhere, elsewhere))


def filter_present(interface, direction, netns, pin_dir, object_path, program, priority, handle,
                   check_mode=False, force=False):
    """Make `program` of `object_path` the filter at priority/handle of the hook, pinned under pin_dir.

    Unchanged when the filter there is named ebpf_tc:<program>, runs a program with the object's tag, and
    that program is the one pinned at pin_dir/<program> with every map of the object pinned compatibly.
    Refuses, before any change, a pin_dir that is not on bpffs and (unless force) a filter of ours attached
    from another pin_dir. Returns a dict: changed, filter (after), before/after (for diff), prog_id, tag,
    maps (MapPlan as dict), clsact_added.
    """
    check_pin_dir(pin_dir)
    with _tc.open_netlink(netns, interface) as ipr:
        index = _tc.ifindex(ipr, interface)
        current = _tc.filter_at(ipr, index, direction, priority, handle)
        if current is not None and not _tc.is_owned(current):
            raise _foreign_error(current, direction, interface)
        if current is not None and not force:
            refusal = _other_pin_dir_error(current, direction, interface, netns, pin_dir)
            if refusal is not None:
                raise refusal
        build = inspect_object(object_path, program)
        plan = plan_maps(pin_dir, build)
        pinned = pinned_program(pin_dir, program)
        has_clsact = _tc.has_clsact(ipr, index)
        name = _tc.owned_name(program)
        unchanged = (has_clsact and current is not None and current['name'] == name
                     and current['tag'] == build.tag and pinned is not None
                     and pinned.tag == build.tag and pinned.id == current['prog_id']
                     and not plan.replaced and not plan.created)
        before = {'filter': _filter_view(current), 'pins': pins_of(pin_dir)}
        result = dict(changed=not unchanged, tag=build.tag, maps=plan._asdict(), clsact_added=False, before=before)
        if unchanged:
            result.update(prog_id=current['prog_id'], filter=_filter_view(current), after=before)
            return result
        if check_mode:
            after_filter = {'kind': 'bpf', 'priority': priority, 'handle': handle, 'name': name,
                            'prog_id': None, 'tag': build.tag}
            wanted = [os.path.join(pin_dir, n) for n in [program] + list(build.maps)]
            pins = sorted(set(before['pins']) | set(wanted))
            result.update(prog_id=None, filter=after_filter, clsact_added=not has_clsact,
                          after={'filter': after_filter, 'pins': pins})
            return result
        result['clsact_added'] = _tc.ensure_clsact(ipr, index)
        info = install(object_path, program, pin_dir,
                       lambda fd: _tc.attach(ipr, index, direction, fd, name, priority, handle),
                       replace=plan.replaced)
        after = _tc.filter_at(ipr, index, direction, priority, handle)
        result.update(prog_id=info.id, tag=info.tag, filter=_filter_view(after),
                      after={'filter': _filter_view(after), 'pins': pins_of(pin_dir)})
        return result


def _forget_pending(pin_dir):
    """The commit-confirm state of the unpinned maps goes with them: a pending trial's timer is stopped,
    its record and the outcome of the last trial removed."""
    from ansible_collections.ebpf.tc.plugins.module_utils._confirm import Pending

    pending = Pending(pin_dir)
    if not os.path.isdir(pending.directory):
        return
    with pending.locked():
        record = pending.read()
        if record is not None:
            Pending.stop_timer(record)
        pending.forget()


def filter_absent(interface, direction, netns, pin_dir, program, priority, handle, unpin, check_mode=False):
    """Detach our filter at priority/handle (if there) and, with unpin, remove pin_dir and its empty parents.

    A foreign filter at priority/handle, or one of ours for another program than `program` (when given),
    is an error and stays.
    """
    if unpin:
        check_pin_dir(pin_dir)  # unpin removes a tree: never one on another filesystem
    with _tc.open_netlink(netns, interface) as ipr:
        index = _tc.ifindex(ipr, interface)
        current = _tc.filter_at(ipr, index, direction, priority, handle)
        if current is not None and not _tc.is_owned(current):
            raise _foreign_error(current, direction, interface)
        if current is not None and program and current['name'] != _tc.owned_name(program):
            raise EbpfTcError('%s on %s belongs to program %s, not %s: not detaching it'
                              % (_tc.describe_filter(current, direction), interface,
                                 _tc.owned_program(current), program))
        pins = pins_of(pin_dir)
        before = {'filter': _filter_view(current), 'pins': pins}
        after = {'filter': None, 'pins': [] if unpin else pins}
        changed = current is not None or (unpin and os.path.isdir(pin_dir))
        if changed and not check_mode:
            if current is not None:
                _tc.detach(ipr, index, direction, priority, handle)
            if unpin:
                remove_pins(pin_dir)
                _forget_pending(pin_dir)
        return {'changed': changed, 'before': before, 'after': after, 'detached': current is not None,
                'filter': None, 'unpinned': pins if unpin else []}

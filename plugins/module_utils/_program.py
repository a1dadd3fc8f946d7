# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Loading a BPF object and pinning its program and maps under a pin directory.

Layout (docs/docsite/rst/design.rst, "On the host"): maps at <pin_dir>/<map name>, the program at <pin_dir>/<program>;
a map of ``_layout.SHARED_MAPS`` (one instance for every hook of a network namespace) at <shared dir>/<map name>,
and pinned in each <pin_dir> that uses it too.
A reload reuses every pinned map that is compatible (so rules and counters survive upgrades); the
program pin is swapped by rename, so the pin always names a loaded, verified program.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import ctypes
import os

from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _bpfmap, _bpfobject, _libbpf, _tc, _tcx
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, LibbpfError

# Below 5.11 bpf_redirect_neigh takes no next hop: the verifier accepts the object and the redirect then drops
# every packet, so a version number must refuse those kernels. Above it, whether a kernel runs the object is
# its verifier's call (a load, as bpf_filter and bpf_object_info do): the kernel matrix proves 6.1 and 6.12.
KERNEL_FLOOR = (5, 11)
BPFFS = _attached.BPFFS
PIN_ROOT = os.path.join(BPFFS, 'ebpf_tc')


def namespace_pin_root(netns=None):
    """Where the default pin directories of a network namespace's hooks are."""
    return os.path.join(PIN_ROOT, 'netns', netns) if netns else PIN_ROOT


def default_pin_dir(interface, direction, netns=None):
    return os.path.join(namespace_pin_root(netns), interface, direction)


SHARED_DIR = 'shared'


def shared_pin_dir(netns=None):
    """Where the maps shared by every hook of a network namespace are pinned (``_layout.SHARED_MAPS``)."""
    return os.path.join(namespace_pin_root(netns), SHARED_DIR)


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
    # a hook of the default layout: its namespace's shared maps go when no hook pins them any more
    relative = os.path.relpath(pin_dir, PIN_ROOT).split(os.sep)
    if root == PIN_ROOT and relative[0] not in (os.pardir, os.curdir):
        release_shared(relative[1] if relative[0] == 'netns' and len(relative) > 1 else None)
    while parent.startswith(root + os.sep) and os.path.isdir(parent) and not os.listdir(parent):
        os.rmdir(parent)
        parent = os.path.dirname(parent)


def _map_id(path):
    try:
        with _bpfmap.Map.from_pin(path) as pinned:
            return pinned.info.id
    except LibbpfError:
        return None


def release_shared(netns=None):
    """Unpin the namespace's shared maps that no hook pins any more (install pins a shared map in every
    pin directory that uses it), then the shared directory and its parents while empty."""
    shared = shared_pin_dir(netns)
    if not os.path.isdir(shared):
        return
    names = [name for name in os.listdir(shared) if name in L.SHARED_MAPS]
    ids = dict((name, _map_id(os.path.join(shared, name))) for name in names)
    used = set()
    for top, dirs, files in os.walk(BPFFS):
        if top == shared:
            continue
        for name in files:
            if name in ids and _map_id(os.path.join(top, name)) == ids[name]:
                used.add(name)
    for name in names:
        if name not in used:
            os.unlink(os.path.join(shared, name))
    path = shared
    while path.startswith(PIN_ROOT + os.sep) and os.path.isdir(path) and not os.listdir(path):
        os.rmdir(path)
        path = os.path.dirname(path)


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
        return _bpfobject.BpfObject.open(object_path, pin_root=pin_root)
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


# inspect_object's answers in this process, by file identity: a converge checks the object and then compares
# every hook with it, and each load costs the verifier's time (tens of milliseconds for the steering program)
_INSPECTED = {}


def inspect_object(object_path, program):
    """Load the object with nothing pinned (fresh maps, closed again) to learn its program's tag and its
    maps' definitions. Changes nothing on the host: safe in check mode. Loaded once per process for one
    file (same inode, size and mtime) and program.

    The kernel's tag ignores map fds and global-data addresses, so it equals the tag of the same build
    loaded against pinned maps. A verifier rejection raises LibbpfError (``.log``: the verifier's log end).
    """
    check_object_path(object_path)
    stat = os.stat(object_path)
    key = (os.path.realpath(object_path), stat.st_ino, stat.st_size, stat.st_mtime_ns, program)
    if key not in _INSPECTED:
        with _open_object(object_path) as obj:
            _check_program(obj, object_path, program)
            obj.load()
            info = _libbpf.prog_info(obj.program_fd(program))
            maps = _map_defs(obj)
        _INSPECTED[key] = ObjectBuild(object_path, program, info.tag, maps)
    return _INSPECTED[key]._replace(path=object_path)


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
    kind, info = _attached.pinned_object(os.path.join(pin_dir, program))
    return info if kind == 'prog' else None


def pinned_map_def(path):
    """MapDef of the map pinned at path, or None when nothing (or no map) is pinned there."""
    if not os.path.exists(path):
        return None
    try:
        with _bpfmap.Map.from_pin(path) as pinned:
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


def install(object_path, program, pin_dir, attach, replace=(), shared_dir=None):
    """Load the object reusing its compatible pinned maps, hand the program fd to ``attach(fd)``, then
    pin the program at pin_dir/program and the fresh maps of ``replace`` over their old pins.

    With ``shared_dir``, a map of ``_layout.SHARED_MAPS`` is the one pinned at shared_dir/<name> (created
    there by the first hook that needs it), and pinned at pin_dir/<name> too.

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
    shared_before = set(os.listdir(shared_dir)) if shared_dir and os.path.isdir(shared_dir) else set()
    fds = []
    try:
        with _open_object(object_path, pin_root=pin_dir) as obj:
            _check_program(obj, object_path, program)
            names = [name for name in obj.map_names() if not obj.is_internal(name)]
            shared = [name for name in names if shared_dir and name in L.SHARED_MAPS]
            if shared and not os.path.isdir(shared_dir):
                os.makedirs(shared_dir)
            for name in names:
                # maps without LIBBPF_PIN_BY_NAME are pinned too, so every object's state persists
                home = shared_dir if name in shared else pin_dir
                obj.set_map_pin_path(name, None if name in replace else os.path.join(home, name))
            obj.load()
            prog_fd = os.dup(obj.program_fd(program))
            fds.append(prog_fd)
            fresh = []      # (map fd, where to pin it)
            for name in names:
                if name in replace or name in shared:
                    paths = [os.path.join(pin_dir, name)]
                    if name in replace and name in shared:
                        paths.append(os.path.join(shared_dir, name))
                    fresh.append((os.dup(obj.map_fd(name)), paths))
                    fds.append(fresh[-1][0])
        attach(prog_fd)
    except BaseException:
        for fd in fds:
            os.close(fd)
        # pins this call made for maps that had none; pins that were there before stay untouched
        for name in set(os.listdir(pin_dir)) - before:
            os.unlink(os.path.join(pin_dir, name))
        if shared_dir and os.path.isdir(shared_dir):
            for name in set(os.listdir(shared_dir)) - shared_before:
                os.unlink(os.path.join(shared_dir, name))
            if not os.listdir(shared_dir):
                os.rmdir(shared_dir)
        raise
    try:
        _pin_over(prog_fd, os.path.join(pin_dir, program))
        for fd, paths in fresh:
            for path in paths:
                _pin_over(fd, path)
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
    own = set(map_id for name, map_id in pins['maps'].items() if name not in L.SHARED_MAPS)
    if info is not None and set(info.map_ids) & own:
        return None     # it uses this pin_dir's maps (not only the namespace's, which every hook uses)
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


BACKENDS = ('auto', 'tcx', 'clsact')


def choose_backend(backend, index, netns=None):
    """'tcx' or 'clsact' for a requested backend: auto is tcx where the kernel has TCX (6.6 and later).
    A requested tcx on a kernel without it is an error naming the field."""
    if backend not in BACKENDS:
        raise EbpfTcError('backend: %r is not one of %s' % (backend, ', '.join(BACKENDS)))
    if backend == 'clsact':
        return backend
    with _tc.netns_entered(netns):
        supported = _tcx.supported(index)
    if backend == 'tcx' and not supported:
        raise EbpfTcError('backend: tcx needs Linux 6.6 or later (this kernel is %s); use backend: clsact or auto'
                          % os.uname()[2])
    return 'tcx' if supported else 'clsact'


def _link_view(link, chain):
    """What results show of our TCX link: {'id', 'prog_id', 'tag', 'position', 'pin'} (None: no link)."""
    if link is None:
        return None
    entry = next((e for e in chain if e['link_id'] == link['id']), None)
    return {'id': link['id'], 'prog_id': link['prog_id'], 'tag': entry['tag'] if entry else None,
            'position': entry['position'] if entry else None, 'pin': link['pin']}


def _our_link(pin_dir, program, index, direction):
    """link_info() (plus 'pin') of the live TCX link pinned at <pin_dir>/<program>_tcx on this hook, or None."""
    if not program:
        return None
    path = _tcx.link_pin(pin_dir, program)
    info = _tcx.pinned_link(path)
    if info is None or info['ifindex'] != index or info['direction'] != direction:
        return None
    info['pin'] = path
    return info


def _relative_id(relative, placement, chain, program):
    """The program id `relative` (an id, or a program name of the chain's) names, for placement before/after."""
    if placement in ('first', 'last'):
        if relative not in (None, ''):
            raise EbpfTcError('relative_to: only with placement before or after, not %s' % placement)
        return None
    if relative in (None, ''):
        raise EbpfTcError('relative_to: placement %s needs the program (id or name) to place it %s'
                          % (placement, placement))
    others = [e for e in chain if e['program'] != program or not e['owned']]
    text = str(relative)
    found = [e for e in others if str(e['id']) == text] or [e for e in others if e['prog_name'] == text]
    if not found:
        raise EbpfTcError('relative_to: no program %s in the TCX chain of the hook (it has: %s)'
                          % (text, ', '.join('%s (id %s)' % (e['prog_name'], e['id']) for e in others) or 'none'))
    if len(found) > 1:
        raise EbpfTcError('relative_to: %d programs in the TCX chain are named %s: give the id (%s)'
                          % (len(found), text, ', '.join(str(e['id']) for e in found)))
    return found[0]['id']


def _placed(link, chain, placement, relative_id):
    """Whether our link sits where placement asks (first/last of the chain, or right before/after the
    program relative_id)."""
    ids = [e['link_id'] for e in chain]
    if link is None or link['id'] not in ids:
        return False
    pos = ids.index(link['id'])
    if placement == 'first':
        return pos == 0
    if placement == 'last':
        return pos == len(chain) - 1
    neighbour = pos + 1 if placement == 'before' else pos - 1
    return 0 <= neighbour < len(chain) and chain[neighbour]['id'] == relative_id


def _other_link_error(chain, program, pin_dir, direction, interface, netns):
    """The refusal to attach over a TCX link of ours for `program` on this hook pinned in another
    directory (as _other_pin_dir_error for a filter), or None."""
    own = _tcx.link_pin(pin_dir, program)
    for entry in chain:
        if entry['owned'] and entry['program'] == program and entry['link_pin'] != own:
            where = '%s%s' % (interface, ' in network namespace %s' % netns if netns else '')
            elsewhere = os.path.dirname(entry['link_pin'])
            return EbpfTcError(
                '%s TCX link %s on %s runs program %s (id %s) pinned at %s, not one pinned in pin_dir %s: replacing '
                'it would leave the maps pinned at %s and their content (rules, counters) behind. Check pin_dir '
                '(%s?); force: true replaces it anyway'
                % (direction, entry['link_id'], where, program, entry['id'], elsewhere, pin_dir, elsewhere,
                   elsewhere))
    return None


def filter_present(interface, direction, netns, pin_dir, object_path, program, priority, handle,
                   check_mode=False, force=False, backend='clsact', placement='first', relative_to=None):
    """Make `program` of `object_path` run on the hook, pinned under pin_dir: as the clsact filter at
    priority/handle, or as a TCX link placed as asked (backend auto: tcx where the kernel has it).

    Unchanged when what runs there (filter named ebpf_tc:<program>, or the link pinned at
    <pin_dir>/<program>_tcx, in place) has the object's tag, is the program pinned at pin_dir/<program>,
    every map of the object is pinned compatibly, and the other backend holds no program of ours for it.
    Switching backend attaches the new one before the old one is removed (no moment with neither).
    Refuses, before any change, a pin_dir that is not on bpffs and (unless force) a program of ours
    attached from another pin_dir. Returns a dict: changed, backend, filter and link (after), before/after
    (for diff), prog_id, tag, maps (MapPlan as dict), clsact_added.
    """
    check_pin_dir(pin_dir)
    if placement not in _tcx.PLACEMENTS:
        raise EbpfTcError('placement: %r is not one of %s' % (placement, ', '.join(_tcx.PLACEMENTS)))
    with _tc.open_netlink(netns, interface) as ipr:
        index = _tc.ifindex(ipr, interface)
        chosen = choose_backend(backend, index, netns)
        chain = _attached.tcx_chain(index, direction, netns)
        current = _tc.filter_at(ipr, index, direction, priority, handle)
        if current is not None and not _tc.is_owned(current):
            if chosen == 'clsact':
                raise _foreign_error(current, direction, interface)
            current = None      # not ours, and not in the way of a link
        relative_id = _relative_id(relative_to, placement, chain, program) if chosen == 'tcx' else None
        link = _our_link(pin_dir, program, index, direction)
        if not force:
            refusal = None
            if current is not None:
                refusal = _other_pin_dir_error(current, direction, interface, netns, pin_dir)
            if refusal is None and chosen == 'tcx':
                refusal = _other_link_error(chain, program, pin_dir, direction, interface, netns)
            if refusal is not None:
                raise refusal
        if current is not None and current['name'] != _tc.owned_name(program) and chosen == 'tcx':
            current = None      # another program of ours at priority/handle: the link does not replace it
        build = inspect_object(object_path, program)
        plan = plan_maps(pin_dir, build)
        pinned = pinned_program(pin_dir, program)
        has_clsact = _tc.has_clsact(ipr, index)
        name = _tc.owned_name(program)
        maps_kept = pinned is not None and pinned.tag == build.tag and not plan.replaced and not plan.created
        if chosen == 'clsact':
            unchanged = (maps_kept and has_clsact and current is not None and current['name'] == name
                         and current['tag'] == build.tag and pinned.id == current['prog_id'] and link is None)
        else:
            unchanged = (maps_kept and link is not None and link['prog_id'] == pinned.id
                         and _placed(link, chain, placement, relative_id) and current is None)
        stale = []      # with force: our links for `program` on this hook pinned in other directories
        if force and chosen == 'tcx':
            own = _tcx.link_pin(pin_dir, program)
            stale = [e['link_pin'] for e in chain if e['owned'] and e['program'] == program and e['link_pin'] != own]
            unchanged = unchanged and not stale
        before = {'filter': _filter_view(current), 'link': _link_view(link, chain), 'pins': pins_of(pin_dir)}
        result = dict(changed=not unchanged, backend=chosen, tag=build.tag, maps=plan._asdict(), clsact_added=False,
                      before=before)
        if unchanged:
            result.update(prog_id=pinned.id, filter=before['filter'], link=before['link'], after=before)
            return result
        wanted = [os.path.join(pin_dir, n) for n in [program] + list(build.maps)]
        if check_mode:
            after = {'filter': None, 'link': None}
            if chosen == 'clsact':
                after['filter'] = {'kind': 'bpf', 'priority': priority, 'handle': handle, 'name': name,
                                   'prog_id': None, 'tag': build.tag}
                pins = set(before['pins']) | set(wanted)
                if link is not None:
                    pins.discard(link['pin'])
            else:
                after['link'] = {'id': None, 'prog_id': None, 'tag': build.tag, 'position': None,
                                 'pin': _tcx.link_pin(pin_dir, program)}
                pins = set(before['pins']) | set(wanted) | set([after['link']['pin']])
            after['pins'] = sorted(pins)
            result.update(prog_id=None, filter=after['filter'], link=after['link'],
                          clsact_added=chosen == 'clsact' and not has_clsact, after=after)
            return result
        if chosen == 'clsact':
            result['clsact_added'] = _tc.ensure_clsact(ipr, index)
            info = install(object_path, program, pin_dir,
                           lambda fd: _tc.attach(ipr, index, direction, fd, name, priority, handle),
                           replace=plan.replaced, shared_dir=shared_pin_dir(netns))
            if link is not None:    # switched from tcx: the filter runs now, the link goes
                _detach_link(link['pin'], netns)
        else:
            in_place = link is not None and _placed(link, chain, placement, relative_id)
            info = _install_link(object_path, program, pin_dir, plan, index, direction, netns, link,
                                 None if in_place else placement, relative_id)
            if current is not None:     # switched from clsact: the link runs now, the filter goes
                _tc.detach(ipr, index, direction, current['priority'], current['handle'])
            for path in stale:
                _detach_link(path, netns)
        chain = _attached.tcx_chain(index, direction, netns)
        after_filter = _filter_view(_tc.filter_at(ipr, index, direction, priority, handle)) \
            if chosen == 'clsact' else None
        after_link = _link_view(_our_link(pin_dir, program, index, direction), chain)
        result.update(prog_id=info.id, tag=info.tag, filter=after_filter, link=after_link,
                      after={'filter': after_filter, 'link': after_link, 'pins': pins_of(pin_dir)})
        return result


def _install_link(object_path, program, pin_dir, plan, index, direction, netns, link, placement, relative_id):
    """install() through a TCX link: the program of `link` swapped in place (placement None), or a new
    link placed as asked, pinned over <pin_dir>/<program>_tcx, with the old link detached after."""
    new_link = []

    def attach(prog_fd):
        with _tc.netns_entered(netns):
            if placement is None:
                fd = _tcx.open_pinned_link(link['pin'])
                try:
                    _tcx.link_update(fd, prog_fd)
                finally:
                    os.close(fd)
            else:
                new_link.append(_tcx.link_create(prog_fd, index, direction, placement, relative_id))

    old_fd = _tcx.open_pinned_link(link['pin']) if link is not None and placement is not None else None
    try:
        info = install(object_path, program, pin_dir, attach, replace=plan.replaced, shared_dir=shared_pin_dir(netns))
        if new_link:
            try:
                _pin_over(new_link[0], _tcx.link_pin(pin_dir, program))
            except BaseException:
                _tcx.link_detach(new_link[0])
                raise
            if old_fd is not None:
                _tcx.link_detach(old_fd)
        return info
    finally:
        for fd in new_link + ([old_fd] if old_fd is not None else []):
            os.close(fd)


def _detach_link(path, netns=None):
    """Detach the TCX link pinned at path and remove the pin (a missing pin is fine)."""
    try:
        fd = _tcx.open_pinned_link(path)
    except LibbpfError:
        return False
    try:
        with _tc.netns_entered(netns):
            try:
                _tcx.link_detach(fd)
            except LibbpfError:
                pass    # already defunct (its device went away)
    finally:
        os.close(fd)
    os.unlink(path)
    return True


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
    """Detach our filter at priority/handle and our TCX links pinned in pin_dir (for `program` when given),
    and, with unpin, remove pin_dir and its empty parents.

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
        programs = [program] if program else [name[:-len(_tcx.LINK_PIN_SUFFIX)] for name in
                                              (os.listdir(pin_dir) if os.path.isdir(pin_dir) else ())
                                              if name.endswith(_tcx.LINK_PIN_SUFFIX)]
        links = [link for link in (_our_link(pin_dir, name, index, direction) for name in programs) if link]
        chain = _attached.tcx_chain(index, direction, netns) if links else []
        pins = pins_of(pin_dir)
        before = {'filter': _filter_view(current), 'link': _link_view(links[0], chain) if links else None,
                  'pins': pins}
        after = {'filter': None, 'link': None,
                 'pins': [] if unpin else [p for p in pins if p not in set(link['pin'] for link in links)]}
        changed = current is not None or bool(links) or (unpin and os.path.isdir(pin_dir))
        if changed and not check_mode:
            if current is not None:
                _tc.detach(ipr, index, direction, priority, handle)
            for link in links:
                _detach_link(link['pin'], netns)
            if unpin:
                remove_pins(pin_dir)
                release_shared(netns)   # remove_pins does it only for the default layout
                _forget_pending(pin_dir)
        return {'changed': changed, 'before': before, 'after': after, 'detached': current is not None or bool(links),
                'filter': None, 'link': None, 'unpinned': pins if unpin else []}

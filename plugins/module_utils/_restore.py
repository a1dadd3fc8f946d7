# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Persistence: apply the role's rendered desired state (state.json) again, without Ansible.

The role ebpf.tc.steering writes ``<ebpf_tc_config_dir>/state.json`` and a systemd unit that runs
``ebpf_tc_restore.py`` at boot, which calls restore() here. It does what the role's apply does, with the
same functions the modules use (nothing here is a second implementation):

- per hook, ``_program.filter_present`` (what ``ebpf.tc.bpf_filter`` runs): the object's program attached
  with ``backend`` (a TCX link placed as ``placement`` says, or a clsact filter at priority/handle named
  ``ebpf_tc:<program>``), pinned under the hook's pin_dir, reusing compatible pinned maps;
- per hook, ``_steering.manage`` (what ``ebpf.tc.steering_rules`` runs): the rule set, compared with the
  set read back from the maps and switched atomically only when it differs;
- ``net.ipv4.conf.<if>.rp_filter=2`` on the ``rp_filter_loose`` interfaces, written from inside the
  namespace when ``netns`` is set.

Everything in the state (its shape, the namespace, the interfaces, each rule set, the object and its
program, the filters already at priority/handle) is checked before anything changes. This file, and
everything it imports, must not import ``ansible``: the restore runs on hosts without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import json
import os
import re

from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject, _files, _libbpf, _program, _steering, _tc, _tcx
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, LibbpfError, RuleError
from ansible_collections.ebpf.tc.plugins.module_utils._rules import DEFAULT_ACTIONS, DIRECTIONS, type_name, validate

STATE_VERSION = 1
STATE_KEYS = ('version', 'netns', 'object', 'program', 'priority', 'handle', 'backend', 'placement', 'relative_to',
              'hooks', 'rp_filter_loose')
HOOK_KEYS = ('interface', 'direction', 'pin_dir', 'default_action', 'rules')
REQUIRED_STATE_KEYS = ('version', 'object', 'program', 'hooks')
REQUIRED_HOOK_KEYS = ('interface',)
RP_FILTER_LOOSE = 2
# what the kernel accepts as an interface name (IFNAMSIZ 16, no '/', no whitespace, not . or ..)
_IFNAME = re.compile(r'^[^/\s:]{1,15}$')
_NETNS = re.compile(r'^[^/\s]{1,255}$')


class StateError(EbpfTcError):
    """The state file is not a valid version-1 state; names the field (``hooks[0].direction``)."""

    def __init__(self, field, message):
        self.field = field
        super(StateError, self).__init__('%s: %s' % (field, message))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _string(value, field, pattern=None, what=None):
    if not isinstance(value, str) or not value:
        raise StateError(field, 'must be a non-empty string, not %s' % type_name(value))
    if pattern is not None and not pattern.match(value) or value in ('.', '..'):
        raise StateError(field, '%r is not %s' % (value, what or 'valid'))
    return value


def _choice(value, field, choices):
    if value not in choices:
        raise StateError(field, 'must be one of %s, not %r' % (', '.join(choices), value))
    return value


def _int_range(value, field, low, high):
    if not _is_int(value) or not low <= value <= high:
        raise StateError(field, 'must be an integer from %d to %d, not %r' % (low, high, value))
    return value


def _keys(value, field, allowed, required):
    if not isinstance(value, dict):
        raise StateError(field, 'must be a mapping, not %s' % type_name(value))
    unknown = sorted(str(key) for key in value if key not in allowed)
    if unknown:
        raise StateError('%s.%s' % (field, unknown[0]) if field != 'state' else unknown[0],
                         'unknown key (a version-%d state has: %s)' % (STATE_VERSION, ', '.join(allowed)))
    for key in required:
        if value.get(key) is None:
            raise StateError('%s.%s' % (field, key) if field != 'state' else key, 'is required')


def check_state(state):
    """The state as a normalised dict (defaults filled in), or StateError naming the first bad field.

    Only the shape: what needs the host (interfaces, rules' redirect targets, the object) is checked by
    restore() before it changes anything.
    """
    _keys(state, 'state', STATE_KEYS, REQUIRED_STATE_KEYS)
    if not _is_int(state['version']) or state['version'] != STATE_VERSION:
        raise StateError('version', 'must be %d (this restore reads version %d state files), not %r'
                         % (STATE_VERSION, STATE_VERSION, state['version']))
    netns = state.get('netns')
    if netns is not None:
        _string(netns, 'netns', _NETNS, 'a network namespace name (a file name under %s)' % _tc.NETNS_DIR)
    obj = _string(state['object'], 'object')
    if not os.path.isabs(obj):
        raise StateError('object', 'must be an absolute path, not %r' % obj)
    out = {
        'version': STATE_VERSION, 'netns': netns, 'object': obj, 'program': _string(state['program'], 'program'),
        'priority': _int_range(state.get('priority', 10), 'priority', 1, 0xFFFF),
        'handle': _int_range(state.get('handle', 1), 'handle', 1, 0xFFFFFFFF),
        'backend': _choice(state.get('backend', 'auto'), 'backend', _program.BACKENDS),
        'placement': _choice(state.get('placement', 'first'), 'placement', _tcx.PLACEMENTS),
        'relative_to': state.get('relative_to'),
        'hooks': [], 'rp_filter_loose': [],
    }
    if out['relative_to'] is not None:
        out['relative_to'] = _string(str(out['relative_to']), 'relative_to')
    if not isinstance(state['hooks'], list):
        raise StateError('hooks', 'must be a list, not %s' % type_name(state['hooks']))
    seen = {}
    for index, raw in enumerate(state['hooks']):
        field = 'hooks[%d]' % index
        _keys(raw, field, HOOK_KEYS, REQUIRED_HOOK_KEYS)
        interface = _string(raw['interface'], field + '.interface', _IFNAME, 'an interface name')
        direction = raw.get('direction', 'egress')
        if direction not in DIRECTIONS:
            raise StateError(field + '.direction', 'must be ingress or egress, not %r' % (direction,))
        if (interface, direction) in seen:
            raise StateError(field, 'a second hook for %s %s (hooks[%d] is the first): merge their rules'
                             % (interface, direction, seen[(interface, direction)]))
        seen[(interface, direction)] = index
        pin_dir = raw.get('pin_dir') or _program.default_pin_dir(interface, direction, netns)
        _string(pin_dir, field + '.pin_dir')
        pin_dir = os.path.normpath(pin_dir)
        if not pin_dir.startswith(_program.BPFFS + os.sep):
            raise StateError(field + '.pin_dir', 'must be a directory under %s, not %r' % (_program.BPFFS, pin_dir))
        default_action = raw.get('default_action', 'pass')
        if default_action not in DEFAULT_ACTIONS:
            raise StateError(field + '.default_action', 'must be pass or drop, not %r' % (default_action,))
        rules = raw.get('rules', [])
        if not isinstance(rules, list):
            raise StateError(field + '.rules', 'must be a list of rules, not %s' % type_name(rules))
        out['hooks'].append({'interface': interface, 'direction': direction, 'pin_dir': pin_dir,
                             'default_action': default_action, 'rules': rules})
    pin_dirs = [hook['pin_dir'] for hook in out['hooks']]
    for index, pin_dir in enumerate(pin_dirs):
        if pin_dirs.index(pin_dir) != index:
            raise StateError('hooks[%d].pin_dir' % index,
                             '%s is also hooks[%d]\'s' % (pin_dir, pin_dirs.index(pin_dir)))
    loose = state.get('rp_filter_loose') or []
    if not isinstance(loose, list):
        raise StateError('rp_filter_loose', 'must be a list of interface names, not %s' % type_name(loose))
    for index, name in enumerate(loose):
        name = _string(name, 'rp_filter_loose[%d]' % index, _IFNAME, 'an interface name')
        if name not in out['rp_filter_loose']:
            out['rp_filter_loose'].append(name)
    return out


def load_state(path):
    """The JSON state file at path, parsed (not checked: see check_state)."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError) as err:
        raise EbpfTcError('cannot read the state file %s: %s' % (path, err.strerror or err))
    except ValueError as err:
        raise EbpfTcError('the state file %s is not valid JSON: %s' % (path, err))


# -- rp_filter, from inside the namespace ------------------------------------------------------------

def rp_filter_path(interface):
    return '/proc/sys/net/ipv4/conf/%s/rp_filter' % interface


def _read_int(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip())
    except (IOError, OSError, ValueError):
        return None


def _set_values(values, apply):
    """{path: [before, after]} for /proc/sys files, writing the wanted value where it differs if apply."""
    out = {}
    for path, wanted in sorted(values.items()):
        before = _read_int(path)
        after = before
        if apply and before is not None and before != wanted:
            with open(path, 'w') as handle:
                handle.write('%d\n' % wanted)
            after = _read_int(path)
        out[path] = [before, after]
    return out


def sysctls_in_netns(values, netns=None, apply=True):
    """Set /proc/sys files (``{path: int}``) as seen from `netns` (None: this namespace).

    Returns ``{path: [before, after]}`` (None for a file that does not exist there). With apply=False,
    only reads. /proc/sys/net belongs to the namespace of the process that opens it: _tc.run_in_netns
    writes from inside.
    """
    return _tc.run_in_netns(netns, lambda: _set_values(values, apply))


def _where(netns):
    return ' in network namespace %s' % netns if netns else ''


def _ensure_bpffs():
    """Mount bpffs at /sys/fs/bpf when nothing is mounted there (systemd does at boot; not every init)."""
    if _program.bpffs_mounted():
        return False
    if not os.path.isdir(_program.BPFFS):
        raise EbpfTcError('%s does not exist: cannot mount the bpf filesystem' % _program.BPFFS)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b'bpf', _program.BPFFS.encode(), b'bpf', 0, None) != 0:
        err = ctypes.get_errno()
        raise EbpfTcError('cannot mount the bpf filesystem at %s: %s' % (_program.BPFFS, os.strerror(err)))
    return True


def _check_host(state, object_path):
    """Everything restore() needs from the host, checked before it changes anything; the object is the one
    at `object_path` (state's, or a copy about to replace it).

    Returns the validated RuleSet of each hook. Raises EbpfTcError naming the hook and field.
    """
    _program.check_kernel()
    _tc.require_pyroute2()
    _libbpf.get_libbpf()
    netns = state['netns']
    if netns is not None and not os.path.exists(os.path.join(_tc.NETNS_DIR, netns)):
        raise StateError('netns', 'network namespace %s does not exist (no %s)'
                         % (netns, os.path.join(_tc.NETNS_DIR, netns)))
    rulesets = []
    with _tc.open_netlink(netns) as ipr:
        names = _tc.InterfaceNames(ipr)
        for index, hook in enumerate(state['hooks']):
            field = 'hooks[%d]' % index
            if not names.exists(hook['interface']):
                raise StateError(field + '.interface', 'interface %s does not exist%s'
                                 % (hook['interface'], _where(netns)))
            index = names.ifindex(hook['interface'])
            backend = _program.choose_backend(state['backend'], index, netns)
            current = _tc.filter_at(ipr, index, hook['direction'], state['priority'], state['handle'])
            if backend == 'clsact' and current is not None and not _tc.is_owned(current):
                raise StateError(field, '%s on %s is a filter this collection did not attach: not replacing '
                                 'it (choose another ebpf_tc_priority/ebpf_tc_handle, or remove it)'
                                 % (_tc.describe_filter(current, hook['direction']), hook['interface']))
            try:
                rulesets.append(validate(hook['rules'], hook['default_action'], interface_exists=names.exists))
            except RuleError as err:
                raise StateError('%s (%s %s)' % (field, hook['interface'], hook['direction']), str(err))
        for index, name in enumerate(state['rp_filter_loose']):
            if not names.exists(name):
                raise StateError('rp_filter_loose[%d]' % index, 'interface %s does not exist%s'
                                 % (name, _where(netns)))
    if state['hooks']:
        # opens, verifies and loads the object once with nothing pinned: a missing file, a missing
        # program or a verifier rejection fails here, before any hook changes
        try:
            _program.check_object_path(object_path)
            with _bpfobject.BpfObject.open(object_path) as obj:
                programs = obj.program_names()
        except EbpfTcError as err:
            raise StateError('object', str(err))
        if state['program'] not in programs:
            raise StateError('program', '%s is not in %s (it has: %s)'
                             % (state['program'], object_path, ', '.join(programs) or 'none'))
        try:
            _program.inspect_object(object_path, state['program'])
        except LibbpfError as err:
            raise StateError('object', 'kernel %s refuses the %s object %s: %s'
                             % (os.uname()[2], state['program'], object_path, err))
        except EbpfTcError as err:
            raise StateError('object', str(err))
    return rulesets


def restore(state):
    """Make the host match `state` (a parsed version-1 state file); idempotent. What the boot-time unit
    runs: converge() with no record of earlier runs (nothing to prune at boot).

    Returns converge()'s summary.
    """
    return converge(state)


# -- the record of what earlier runs created (created.json) ------------------------------------------

RECORD_VERSION = 1


def empty_record(netns=None):
    return {'version': RECORD_VERSION, 'netns': netns, 'clsact_added': [], 'hooks': [], 'rp_filter_previous': {}}


def load_record(path):
    """The record at `path` (what earlier runs created: the hooks they attached with their pin dirs, the
    clsact qdiscs they added, the rp_filter values they replaced), or an empty record when there is none."""
    if not path or not os.path.exists(path):
        return empty_record()
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError) as err:
        raise EbpfTcError('cannot read the record %s: %s' % (path, err.strerror or err))
    except ValueError as err:
        raise EbpfTcError('the record %s is not valid JSON (%s): remove it, and remove by hand what it listed' % (path, err))
    record = empty_record(data.get('netns') if isinstance(data, dict) else None)
    try:
        record['clsact_added'] = sorted(set(_string(name, 'clsact_added[]') for name in data.get('clsact_added', [])))
        record['hooks'] = _unique_hooks(dict((key, _string(hook[key], 'hooks[].' + key))
                                             for key in ('interface', 'direction', 'pin_dir'))
                                        for hook in data.get('hooks', []))
        record['rp_filter_previous'] = dict((_string(name, 'rp_filter_previous'), _int_range(value, name, 0, 2))
                                            for name, value in data.get('rp_filter_previous', {}).items())
    except (StateError, AttributeError, TypeError, KeyError) as err:
        raise EbpfTcError('the record %s is not one this collection wrote (%s): remove it, and remove by hand '
                          'what it listed' % (path, err))
    return record


def install_object(staged, path, sha256):
    """Put the object `staged` (a copy the controller sent for this run) at `path`, and its SHA-256 beside it
    in ``<path>.sha256`` (sha256sum's format)."""
    _files.copy(staged, path)
    _files.write_text(path + '.sha256', '%s  %s\n' % (sha256, os.path.basename(path)))


def _hook_key(hook):
    return hook['interface'], hook['direction']


def _unique_hooks(hooks):
    out = []
    for hook in hooks:
        entry = {'interface': hook['interface'], 'direction': hook['direction'], 'pin_dir': hook['pin_dir']}
        if entry not in out:
            out.append(entry)
    return out


# -- converging the host -----------------------------------------------------------------------------

def converge(state, record=None, check_mode=False, confirm_timeout=None, staged_object=None):
    """Make the host match `state` (a version-1 state document) in one call; idempotent.

    - hooks `record` lists that `state` does not (a hook taken out of inventory) are detached with their
      pins (only the pins when their interface is gone);
    - per hook, ``_program.filter_present`` (what ``ebpf.tc.bpf_filter`` runs) and ``_steering.manage``
      (what ``ebpf.tc.steering_rules`` runs: the rule set switched atomically when it differs, on trial
      for `confirm_timeout` seconds when given);
    - ``net.ipv4.conf.<if>.rp_filter=2`` on the ``rp_filter_loose`` interfaces.

    `staged_object` (a path, with its SHA-256): a new object for ``state['object']``, checked (the kernel
    loads it) with everything else and installed there (install_object) before the first hook changes; check
    mode compares the hooks with it.

    Everything is checked before anything changes. `record` (load_record) is updated in place as the
    changes happen, so that a caller writing it back after a failure still lists what was created.
    Returns ``{'changed', 'netns', 'bpffs_mounted', 'hooks': [{interface, direction, pin_dir, attached,
    backend, clsact_added, prog_id, tag, rules_changed, rules, default_action, generation, counters, pending,
    diff}], 'object_installed', 'pruned':
    [{interface, direction, pin_dir, changed, interface_gone}], 'rp_filter': {ifname: {before, after,
    changed}}}``; ``attached`` is whether the program on the hook changed (attached or replaced).
    """
    state = check_state(state)
    netns = state['netns']
    record = empty_record(netns) if record is None else record
    staged_path, staged_sha256 = staged_object or (None, None)
    rulesets = _check_host(state, staged_path or state['object'])
    # nothing has changed on the host before this line
    summary = {'changed': False, 'netns': netns, 'bpffs_mounted': False, 'object_installed': bool(staged_path),
               'hooks': [], 'pruned': [], 'rp_filter': {}}
    if staged_path and not check_mode:
        install_object(staged_path, state['object'], staged_sha256)
    # in check mode on a host without bpffs nothing of ours can run yet: every hook would be attached fresh
    fresh = check_mode and bool(state['hooks']) and not _program.bpffs_mounted()
    if state['hooks'] and not check_mode:
        summary['bpffs_mounted'] = _ensure_bpffs()
    summary['bpffs_mounted'] = summary['bpffs_mounted'] or fresh
    wanted = set(_hook_key(hook) for hook in state['hooks'])
    stale = [h for h in record['hooks'] if _hook_key(h) not in wanted]
    interfaces = _tc.interface_names(netns) if stale else None
    for hook in stale:
        pruned = _remove_hook(hook, state, check_mode, interfaces)
        summary['pruned'].append(pruned)
        if not check_mode:
            record['hooks'].remove(hook)
    record['netns'] = netns
    # recorded before attaching: a hook whose attach fails half-way is still removed by state absent
    record['hooks'] = _unique_hooks(record['hooks'] + state['hooks'])
    # check mode compares the hooks with the object that would be installed
    compared = dict(state, object=staged_path) if staged_path and check_mode else state
    for hook, ruleset in zip(state['hooks'], rulesets):
        done = _apply_hook(hook, ruleset, compared, check_mode, confirm_timeout, fresh)
        if done['clsact_added'] and not check_mode:
            record['clsact_added'] = sorted(set(record['clsact_added']) | set([hook['interface']]))
        summary['hooks'].append(done)
    if state['rp_filter_loose']:
        paths = dict((rp_filter_path(name), RP_FILTER_LOOSE) for name in state['rp_filter_loose'])
        values = sysctls_in_netns(paths, netns, apply=not check_mode)
        for name in state['rp_filter_loose']:
            before, after = values[rp_filter_path(name)]
            if before is None:
                raise EbpfTcError('cannot read %s%s' % (rp_filter_path(name), _where(netns)))
            after = RP_FILTER_LOOSE if check_mode else after
            summary['rp_filter'][name] = {'before': before, 'after': after, 'changed': before != after}
            if before != after and not check_mode:
                # the first value replaced is kept: a later run finds our own 2
                record['rp_filter_previous'].setdefault(name, before)
    summary['changed'] = (summary['bpffs_mounted'] or summary['object_installed']
                          or any(h['attached'] or h['rules_changed'] for h in summary['hooks'])
                          or any(p['changed'] for p in summary['pruned'])
                          or any(v['changed'] for v in summary['rp_filter'].values()))
    return summary


def verify(state, summary, allow_shadowed=False):
    """Read every hook of `state` back from the kernel after converge() `summary`: our program runs there as
    converge attached it, nothing has drifted from the pins, no TCX program ends the hook in front of our clsact
    filter (unless `allow_shadowed`: the operator knows they return TCX_NEXT), and the rule set read back from
    the maps the hook's program uses is the one applied.

    Returns (problems, facts): one message per hook that fails (naming it), and _facts.gather()'s facts of the
    namespace (with their table).
    """
    from ansible_collections.ebpf.tc.plugins.module_utils import _facts

    facts = _facts.gather(netns=state['netns'])
    problems = []
    for hook, done in zip(state['hooks'], summary['hooks']):
        where = '%s %s' % (hook['interface'], hook['direction'])
        seen = facts['interfaces'].get(hook['interface'], {}).get(hook['direction'], {})
        if seen.get('drift'):
            problems.append('%s: %s' % (where, seen['drift']['message']))
            continue
        if seen.get('shadowed') and not allow_shadowed:
            problems.append('%s: %s (attach with backend tcx, or set allow_shadowed if they return TCX_NEXT: '
                            'the role\'s ebpf_tc_backend and ebpf_tc_allow_shadowed)'
                            % (where, seen['shadowed']['message']))
        attached = seen.get('attached') or {}
        steering = seen.get('steering') or {}
        placed = (attached.get('backend') == 'tcx'
                  or (attached.get('priority'), attached.get('handle')) == (state['priority'], state['handle']))
        if (attached.get('name') != _tc.owned_name(state['program']) or attached.get('backend') != done['backend']
                or not placed or steering.get('rules') != done['rules']
                or steering.get('default_action') != done['default_action']):
            problems.append('%s: expected %s (%s; clsact at priority %d handle %d) with the rule set just applied; '
                            'found %s and rules %s (default %s)'
                            % (where, _tc.owned_name(state['program']), done['backend'], state['priority'],
                               state['handle'], json.dumps(attached or None, sort_keys=True),
                               json.dumps(steering.get('rules'), sort_keys=True), steering.get('default_action')))
    return problems, facts


def _whole_set(ruleset):
    """What applying `ruleset` to a hook that runs nothing of ours yet would do (check mode: no maps to
    compare with, the whole set would be applied)."""
    return {'changed': ruleset != _steering.EMPTY_SET, 'generation': None, 'counters': {}, 'pending': None,
            'rules': ruleset.to_dicts(), 'default_action': ruleset.default_action,
            'diff': {'before': _steering.EMPTY_SET.to_dict(), 'after': ruleset.to_dict()}}


def _fresh_attach(hook, state):
    """What filter_present in check mode would answer on a host without bpffs: nothing of ours runs yet, so
    the program would be attached (its backend as the kernel allows)."""
    netns = state['netns']
    with _tc.open_netlink(netns, hook['interface']) as ipr:
        backend = _program.choose_backend(state['backend'], _tc.ifindex(ipr, hook['interface']), netns)
    tag = _program.inspect_object(state['object'], state['program']).tag
    return {'changed': True, 'backend': backend, 'clsact_added': backend == 'clsact', 'prog_id': None, 'tag': tag,
            'before': {'filter': None, 'link': None, 'pins': []}, 'after': {'backend': backend, 'tag': tag}}


def _apply_hook(hook, ruleset, state, check_mode, confirm_timeout, fresh=False):
    """Attach (filter_present) and apply (manage) one hook; with `fresh` (check mode, no bpffs) say what both
    would do without looking for pins."""
    netns = state['netns']
    if fresh:
        attached = _fresh_attach(hook, state)
    else:
        attached = _program.filter_present(hook['interface'], hook['direction'], netns, hook['pin_dir'],
                                           state['object'], state['program'], state['priority'], state['handle'],
                                           check_mode=check_mode, backend=state['backend'],
                                           placement=state['placement'], relative_to=state['relative_to'])
    if check_mode and attached['before']['filter'] is None and attached['before']['link'] is None:
        rules = _whole_set(ruleset)     # nothing runs on the hook yet
    else:
        rules = _steering.manage(hook['pin_dir'], hook['interface'], netns=netns, state='present',
                                 rules=hook['rules'], default_action=hook['default_action'],
                                 confirm_timeout=confirm_timeout, check_mode=check_mode,
                                 direction=hook['direction'], ruleset=ruleset)
    return {
        'interface': hook['interface'], 'direction': hook['direction'], 'pin_dir': hook['pin_dir'],
        'attached': attached['changed'], 'backend': attached['backend'], 'clsact_added': attached['clsact_added'],
        'prog_id': attached['prog_id'], 'tag': attached['tag'],
        'rules_changed': rules['changed'], 'rules': rules['rules'], 'default_action': rules['default_action'],
        'generation': rules['generation'], 'counters': rules['counters'], 'pending': rules['pending'],
        'diff': {'attach': {'before': attached['before'], 'after': attached['after']}, 'rules': rules['diff']},
    }


def _remove_hook(hook, state, check_mode, interfaces):
    """Detach our program from one hook and remove its pins; only the pins when the interface is gone
    (not among `interfaces`, the names in the namespace)."""
    netns = state['netns']
    out = {'interface': hook['interface'], 'direction': hook['direction'], 'pin_dir': hook['pin_dir'],
           'interface_gone': hook['interface'] not in interfaces}
    if out['interface_gone']:
        out['changed'] = os.path.isdir(hook['pin_dir'])
        if out['changed'] and not check_mode:
            _program.remove_pins(hook['pin_dir'])
        return out
    done = _program.filter_absent(hook['interface'], hook['direction'], netns, hook['pin_dir'], state['program'],
                                  state['priority'], state['handle'], unpin=True, check_mode=check_mode)
    out['changed'] = done['changed']
    return out


def remove(state, record, check_mode=False):
    """Remove what the role created and nothing else (state absent): our program and pins on every hook of
    `state` and of `record`; the clsact qdiscs `record` says were added, when no other filter is left on
    them; the rp_filter values `record` says were replaced, put back while they are still our 2.

    `record` is emptied as things go. Returns ``{'changed', 'hooks': [...as pruned...], 'clsact_removed':
    [ifname], 'rp_filter': {ifname: {before, after, changed}}}``.
    """
    state = check_state(state)
    netns = state['netns']
    if netns is not None and not os.path.exists(os.path.join(_tc.NETNS_DIR, netns)):
        raise StateError('netns', 'network namespace %s does not exist (no %s)'
                         % (netns, os.path.join(_tc.NETNS_DIR, netns)))
    interfaces = _tc.interface_names(netns)
    hooks = _unique_hooks(state['hooks'] + record['hooks'])
    summary = {'changed': False, 'hooks': [], 'clsact_removed': [], 'rp_filter': {}}
    ours = set(_hook_key(hook) for hook in hooks)
    name = _tc.owned_name(state['program'])
    for hook in hooks:
        summary['hooks'].append(_remove_hook(hook, state, check_mode, interfaces))
    record['hooks'] = [] if not check_mode else record['hooks']
    with _tc.open_netlink(netns) as ipr:
        for ifname in record['clsact_added']:
            if ifname not in interfaces:
                continue
            index = _tc.ifindex(ipr, ifname)
            view = _tc.hook_view(ipr, index)
            # in check mode our filters are still there: they do not count
            others = [f for f in view['filters']
                      if not (f['name'] == name and f['priority'] == state['priority'] and f['handle'] == state['handle']
                              and (ifname, f['direction']) in ours)]
            if view['clsact'] and not others:
                summary['clsact_removed'].append(ifname)
                if not check_mode:
                    _tc.remove_clsact(ipr, index)
    if not check_mode:
        record['clsact_added'] = []
    previous = dict((rp_filter_path(n), v) for n, v in record['rp_filter_previous'].items() if n in interfaces)
    current = sysctls_in_netns(dict((path, 0) for path in previous), netns, apply=False)
    # only while it is still our loose 2: someone who changed it since meant it
    restore_values = dict((path, value) for path, value in previous.items()
                          if current[path][0] == RP_FILTER_LOOSE and value != RP_FILTER_LOOSE)
    done = sysctls_in_netns(restore_values, netns, apply=not check_mode)
    for ifname, value in record['rp_filter_previous'].items():
        path = rp_filter_path(ifname)
        if path in done:
            after = value if check_mode else done[path][1]
            summary['rp_filter'][ifname] = {'before': done[path][0], 'after': after, 'changed': True}
    if not check_mode:
        record['rp_filter_previous'] = {}
    summary['changed'] = (any(h['changed'] for h in summary['hooks']) or bool(summary['clsact_removed'])
                          or bool(summary['rp_filter']))
    return summary


def confirm(state, check_mode=False):
    """Confirm the rule sets on trial on the hooks of `state` (commit-confirm: the controller still reaches
    the host); hooks with nothing on trial are left alone. Returns ``{'changed', 'confirmed': [{interface,
    direction, pending}]}`` (pending: what is still on trial after, None once confirmed)."""
    from ansible_collections.ebpf.tc.plugins.module_utils._confirm import Pending

    state = check_state(state)
    out = {'changed': False, 'confirmed': []}
    for hook in state['hooks']:
        if Pending(hook['pin_dir']).read() is None:
            continue
        done = _steering.manage(hook['pin_dir'], hook['interface'], netns=state['netns'], state='present',
                                confirm=True, check_mode=check_mode, direction=hook['direction'])
        out['confirmed'].append({'interface': hook['interface'], 'direction': hook['direction'],
                                 'pending': done['pending']})
        out['changed'] = True
    return out

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Read and switch the rule set of a loaded steering program through its pinned maps.

The maps are the only source of truth: the applied rule set is decoded from them (never from a cache
file), and a new set is written into the unused slot and switched in with one map-in-map update (see
docs/docsite/rst/dataplane.rst, "Atomic switching").
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import struct
import time
from collections import namedtuple

from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _bpfmap, _libbpf, _program, _tc
from ansible_collections.ebpf.tc.plugins.module_utils._confirm import Pending
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, RuleError
from ansible_collections.ebpf.tc.plugins.module_utils._classifier import Tables, compile_tables, decode_tables
from ansible_collections.ebpf.tc.plugins.module_utils._rules import RuleSet, validate

STEERING_MAPS = (
    L.MAP_ACTIVE_SET, L.MAP_SRC_PREFIXES, L.MAP_DST_PREFIXES, L.MAP_PROTO_CLASS, L.MAP_SPORT_CLASS,
    L.MAP_DPORT_CLASS, L.MAP_CLASS_BITS, L.MAP_RULES, L.MAP_RULE_STATS, L.MAP_POLICE_STATE,
    L.MAP_PROTO_STATS, L.MAP_SETTINGS,
)
# Maps of the steering program that builds before the learned return path do not have.
OPTIONAL_MAPS = (L.MAP_LEARNED_PATHS,)
DEFAULT_COUNTER_NAME = '(default)'
STEERING_PROGRAM = 'steering'   # the program of files/bpf/steering.bpf.o

Plan = namedtuple('Plan', 'header current desired changed tables fresh')
Plan.__doc__ = """SteeringMaps.plan's answer: the header it was made against, the current and desired RuleSets,
whether they differ, and (when they do) the compiled tables for the unused slot and the counter indexes
to zero."""
_ZERO = L.pack_u32(0)


def map_ids_by_name(prog_id):
    """{map name: map id} of the maps the program with id `prog_id` uses, as the kernel names them; None when
    there is no such program."""
    info = _attached.program_info(prog_id)
    if info is None:
        return None
    ids = {}
    for map_id in info.map_ids:
        try:
            with _bpfmap.Map.from_id(map_id) as bpf_map:
                ids[bpf_map.info.name] = map_id
        except EbpfTcError:
            continue
    return ids


class SteeringMaps:
    """The pinned maps of one steering program instance (one interface and direction)."""

    def __init__(self, pin_dir, maps=None):
        """The maps pinned in pin_dir; or, with `maps` ({name: map id}), those maps by id (pin_dir then only
        names them in messages)."""
        self.pin_dir = pin_dir
        self._maps = {}
        try:
            for name in STEERING_MAPS:
                if maps is not None:
                    if name not in maps:
                        raise EbpfTcError('%s has no map %s' % (pin_dir, name))
                    self._maps[name] = _bpfmap.Map.from_id(maps[name])
                    continue
                path = os.path.join(pin_dir, name)
                if not os.path.exists(path):
                    raise EbpfTcError('no map %s there' % name)
                self._maps[name] = _bpfmap.Map.from_pin(path)
            for name in OPTIONAL_MAPS:
                path = os.path.join(pin_dir, name)
                if maps is not None and name in maps:
                    self._maps[name] = _bpfmap.Map.from_id(maps[name])
                elif maps is None and os.path.exists(path):
                    self._maps[name] = _bpfmap.Map.from_pin(path)
        except Exception:
            self.close()
            raise

    @classmethod
    def of_program(cls, prog_id):
        """The steering maps the program with id `prog_id` uses (by the kernel's map names), or None when
        it is not a steering program (it lacks one of them)."""
        ids = map_ids_by_name(prog_id)
        if ids is None or not set(STEERING_MAPS) <= set(ids):
            return None
        return cls('program id %d' % prog_id, maps=ids)

    def close(self):
        for m in self._maps.values():
            m.close()
        self._maps = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getitem__(self, name):
        return self._maps[name]

    # -- reading ---------------------------------------------------------------------------------

    def header(self):
        """The applied set's header, or None when no rule set was ever applied."""
        inner_id = self[L.MAP_ACTIVE_SET].lookup(_ZERO)
        if inner_id is None:
            return None
        inner = _bpfmap.Map.from_id(L.unpack_u32(inner_id))
        try:
            value = inner.lookup(_ZERO)
        finally:
            inner.close()
        return None if value is None else L.unpack_header(value)

    def read_tables(self, header):
        """Every table entry of the header's slot, as the compiler's Tables."""
        slot = header.slot

        def prefixes(name):
            out = {}
            for key, value in self[name].items():
                if L.parse_lpm_key(key)[0] == slot:
                    out[key] = L.unpack_u32(value)
            return out

        proto_class = self._read_u32s(L.MAP_PROTO_CLASS, L.proto_index(slot, 0), 256)
        sport_class = self._read_u32s(L.MAP_SPORT_CLASS, L.port_index(slot, 0), L.PORT_INDEXES)
        dport_class = self._read_u32s(L.MAP_DPORT_CLASS, L.port_index(slot, 0), L.PORT_INDEXES)
        rules = [L.unpack_rule(v) for v in self._read_values(L.MAP_RULES, L.rule_index(slot, 0), header.nrules)]
        src = prefixes(L.MAP_SRC_PREFIXES)
        dst = prefixes(L.MAP_DST_PREFIXES)
        used = set(proto_class) | set(sport_class) | set(dport_class) | set(src.values()) | set(dst.values())
        if any(cls >= L.MAX_CLASSES for cls in used):
            raise EbpfTcError('the tables at %s name class ids beyond %d' % (self.pin_dir, L.MAX_CLASSES - 1))
        values = self[L.MAP_CLASS_BITS].values_mmap()
        stride = self[L.MAP_CLASS_BITS].stride
        class_bits = {}
        for cls in sorted(used):
            offset = L.class_index(slot, cls) * stride
            class_bits[cls] = L.unpack_bits(values[offset:offset + L.CLASS_BITS_SIZE])
        return Tables(header=header, src_prefixes=src, dst_prefixes=dst, proto_class=proto_class,
                      sport_class=sport_class, dport_class=dport_class, class_bits=class_bits, rules=rules)

    def applied(self, ifname_of):
        """The applied RuleSet decoded from the maps, or None when none was ever applied."""
        header = self.header()
        if header is None:
            return None
        return decode_tables(self.read_tables(header), ifname_of)

    def rule_counters(self):
        """Per-rule {'packets', 'bytes', 'drops'} summed over CPUs, keyed by rule name.

        The default action's counter is under '(default)'.
        """
        header = self.header()
        out = {}
        if header is None:
            return out
        entries = self._read_values(L.MAP_RULES, L.rule_index(header.slot, 0), header.nrules)
        for value in entries:
            rule = L.unpack_rule(value)
            out[rule.name] = self._rule_stats(rule.counter)
        out[DEFAULT_COUNTER_NAME] = self._rule_stats(L.DEFAULT_COUNTER)
        return out

    def proto_counters(self):
        """Per-protocol {'packets', 'bytes'} of every frame seen, only the non-zero ones.

        Keys are IP protocol numbers, 'non-ip' and 'malformed'.
        """
        out = {}
        stats = self[L.MAP_PROTO_STATS]
        for index in range(258):
            packets, nbytes = L.unpack_proto_stats(stats.lookup_percpu(L.pack_u32(index)))
            if packets:
                key = index if index < 256 else ('non-ip' if index == 256 else 'malformed')
                out[key] = {'packets': packets, 'bytes': nbytes}
        return out

    def _rule_stats(self, counter):
        packets, nbytes, drops = L.unpack_rule_stats(self[L.MAP_RULE_STATS].lookup_percpu(L.pack_u32(counter)))
        return {'packets': packets, 'bytes': nbytes, 'drops': drops}

    # The slotted arrays are mmapable (steering.bpf.c): whole tables are read and written as memory.

    def _read_values(self, name, first, count):
        """Values (bytes) of array entries first..first+count-1."""
        bpf_map = self[name]
        stride, size = bpf_map.stride, bpf_map.info.value_size
        data = bpf_map.values_mmap()[first * stride:(first + count) * stride]
        return [data[i * stride:i * stride + size] for i in range(count)]

    def _read_u32s(self, name, first, count):
        """u32 values of array entries first..first+count-1 (each in an 8-byte stride, the rest zero)."""
        bpf_map = self[name]
        data = bpf_map.values_mmap()[first * bpf_map.stride:(first + count) * bpf_map.stride]
        return list(struct.unpack('<%dQ' % count, data))

    def _write_values(self, name, first, values):
        """Write array entries first.. from `values` (bytes of the value size each), in one copy."""
        bpf_map = self[name]
        stride, size = bpf_map.stride, bpf_map.info.value_size
        pad = b'\0' * (stride - size)
        bpf_map.values_mmap()[first * stride:(first + len(values)) * stride] = b''.join(v + pad for v in values)

    def _write_u32s(self, name, first, values):
        bpf_map = self[name]
        bpf_map.values_mmap()[first * bpf_map.stride:(first + len(values)) * bpf_map.stride] = \
            struct.pack('<%dQ' % len(values), *values)

    # -- writing ---------------------------------------------------------------------------------

    def plan(self, ruleset, ifindex_of, ifname_of):
        """What applying `ruleset` would do, computed and compiled without writing anything.

        Returns a Plan: `current` (the applied RuleSet, None when none was ever applied), `changed`,
        and when changed the compiled tables for the unused slot. An invalid set (an unknown redirect
        interface, more classes than the program holds) raises RuleError here, so check mode refuses
        exactly what apply() would.
        """
        header = self.header()
        current_tables = self.read_tables(header) if header is not None else None
        current = decode_tables(current_tables, ifname_of) if current_tables is not None else None
        if current == ruleset:
            return Plan(header, current, ruleset, False, None, None)
        slot = 0 if header is None else 1 - header.slot
        counters, fresh = self._assign_counters(ruleset, current, current_tables)
        tables = compile_tables(ruleset, slot, counters, ifindex_of)
        return Plan(header, current, ruleset, True, tables, fresh)

    def commit(self, plan):
        """Write a changed plan and switch to it; returns the applied generation.

        Refuses when the applied set is no longer the one the plan was made against.
        """
        header = self.header()
        if header != plan.header:
            raise EbpfTcError('the rule set at %s changed while this update was prepared; run again'
                              % self.pin_dir)
        if not plan.changed:
            return 0 if header is None else header.generation
        for counter in plan.fresh:
            self._zero_counter(counter)
        self._write_slot(plan.tables.header.slot, plan.tables)
        generation = 1 if header is None else header.generation + 1
        self._switch(plan.tables.header._replace(generation=generation))
        return generation

    def apply(self, ruleset, ifindex_of, ifname_of):
        """Make `ruleset` the applied set. Returns False when it already is (nothing is written).

        Compiles first, so an invalid set raises before any map changes.
        """
        plan = self.plan(ruleset, ifindex_of, ifname_of)
        if not plan.changed:
            return False
        self.commit(plan)
        return True

    def _assign_counters(self, ruleset, current, current_tables):
        """Counter indexes for the new set: kept for rules whose name and match are unchanged."""
        kept = {}
        if current is not None:
            for rule, entry in zip(current.rules, current_tables.rules):
                kept[rule.match_key()] = entry.counter
        in_use = set(kept.values())
        free = (i for i in range(L.COUNTER_SLOTS) if i not in in_use)
        counters, fresh = [], []
        for rule in ruleset.rules:
            counter = kept.get(rule.match_key())
            if counter is None:
                counter = next(free, None)
                if counter is None:  # cannot happen while rules <= MAX_RULES; guard the invariant
                    raise RuleError('no free counter slot', field='rules')
                fresh.append(counter)
            counters.append(counter)
        return counters, fresh

    def _zero_counter(self, counter):
        key = L.pack_u32(counter)
        stats = self[L.MAP_RULE_STATS]
        stats.update(key, b'\0' * (L.RULE_STATS_SIZE * _libbpf.num_possible_cpus()))
        police = self[L.MAP_POLICE_STATE]
        police.update(key, b'\0' * police.info.value_size)

    def _write_slot(self, slot, tables):
        """Write every table of `slot`. Nothing reads that slot until the header names it."""
        for name, entries in ((L.MAP_SRC_PREFIXES, tables.src_prefixes), (L.MAP_DST_PREFIXES, tables.dst_prefixes)):
            trie = self[name]
            stale = [k for k in trie.keys() if L.parse_lpm_key(k)[0] == slot and k not in entries]
            for key in stale:
                trie.delete(key)
            for key, cls in sorted(entries.items()):
                trie.update(key, L.pack_u32(cls))

        self._write_u32s(L.MAP_PROTO_CLASS, L.proto_index(slot, 0), tables.proto_class)
        self._write_u32s(L.MAP_SPORT_CLASS, L.port_index(slot, 0), tables.sport_class)
        self._write_u32s(L.MAP_DPORT_CLASS, L.port_index(slot, 0), tables.dport_class)
        # class ids are dense from 0 (compile_tables): one copy for all of them
        classes = sorted(tables.class_bits)
        if classes != list(range(len(classes))):
            raise ValueError('class ids must be dense from 0')
        self._write_values(L.MAP_CLASS_BITS, L.class_index(slot, 0), [L.pack_bits(tables.class_bits[c]) for c in classes])
        if tables.rules:
            self._write_values(L.MAP_RULES, L.rule_index(slot, 0), [L.pack_rule(r) for r in tables.rules])

    def _switch(self, header):
        """Publish `header` in a fresh inner map: the one atomic step of an update.

        The kernel returns from a map-in-map update made from user space only after the programs that
        could still see the old inner map have finished, so the old slot is free afterwards.
        """
        inner = _bpfmap.create_map(_libbpf.BPF_MAP_TYPE_ARRAY, 4, L.SET_HEADER_SIZE, 1, name='set_header')
        try:
            inner.update(_ZERO, L.pack_header(header))
            self[L.MAP_ACTIVE_SET].update(_ZERO, L.pack_u32(inner.fd))
        finally:
            inner.close()

    def set_clock_override(self, ns):
        """Drive the policer's clock (tests); 0 gives it back to the kernel's monotonic clock."""
        self[L.MAP_SETTINGS].update(_ZERO, int(ns).to_bytes(8, 'little'))


# -- the steering_rules module's work ------------------------------------------------------------

EMPTY_SET = RuleSet('pass', ())
NOT_PINNED = ('no steering program is pinned at %s (%s): attach files/bpf/steering.bpf.o with '
              'ebpf.tc.bpf_filter first')


def open_maps(pin_dir, hook=None):
    """SteeringMaps at pin_dir, or an error telling the operator to attach the program first (or, when
    `hook` - a _attached.hook_state - shows the steering program attached from another pin dir, where)."""
    if not os.path.isdir(pin_dir):
        problem = 'the directory does not exist'
    else:
        try:
            return SteeringMaps(pin_dir)
        except (EbpfTcError, OSError) as err:
            problem = str(err)
    attached = hook and hook['attached']
    if attached:
        elsewhere = _attached.find_pin_dir(attached['id'], attached['program'])
        raise EbpfTcError('no steering program is pinned at %s (%s), but %s runs one (id %s)%s'
                          % (pin_dir, problem, hook['where'], attached['id'],
                             ': give pin_dir: %s' % elsewhere if elsewhere else
                             ', pinned nowhere: nothing can read or change its rules; attach it again with '
                             'ebpf.tc.bpf_filter (pin_dir: %s) and apply the rules' % pin_dir))
    raise EbpfTcError(NOT_PINNED % (pin_dir, problem))


def check_hook(ipr, index, interface, direction, pin_dir, netns=None):
    """The hook's _attached.hook_state for the steering program; drift is an error that says how to repair."""
    hook = _attached.hook_state(ipr, index, direction, pin_dir, interface, program=STEERING_PROGRAM, netns=netns)
    if hook['drift'] is not None:
        raise EbpfTcError('not reading or changing the rule set at %s: %s' % (pin_dir, hook['drift']['message']))
    return hook


def _redirect_names(ruleset):
    return set(rule.redirect.interface for rule in ruleset.rules if rule.redirect is not None)


def revert_pending(record):
    """The commit-confirm timer's expiry: put back record['revert_to'] if record['generation'] is applied.
    Returns the generation it applied (False when it left the maps alone).

    Runs in the detached timer, without netlink: redirect targets resolve through the ifindexes the
    module recorded when it applied the pending set.
    """
    ifindexes = dict(record.get('ifindexes') or {})
    ifnames = dict((int(index), name) for index, name in (record.get('ifnames') or {}).items())
    with SteeringMaps(record['pin_dir']) as maps:
        header = maps.header()
        if header is None or header.generation != record['generation']:
            return False  # changed by someone else since: not ours to undo
        target = record['revert_to']
        ruleset = validate(target['rules'], target['default_action'])
        plan = maps.plan(ruleset, ifindexes.get, ifnames.get)
        return maps.commit(plan) or True


def pending_summary(record, now=None):
    """The `pending` return value: None when nothing waits for a confirmation."""
    if record is None:
        return None
    now = time.time() if now is None else now
    return {
        'generation': record.get('generation'),
        'deadline': record.get('deadline'),
        'expires_in': max(0.0, round(record.get('deadline', now) - now, 1)),
        'revert_to': record.get('revert_to'),
        'timer_running': Pending.timer_alive(record),
        'error': record.get('error'),
    }


def _nothing_to_confirm(pending, interface, direction, applied_generation):
    """None when a confirmation with nothing pending is a repeat of the last one (the confirmed set is still
    applied); else the error: nothing waits, and when the last trial was reverted, when."""
    outcome = pending.read_outcome() or {}
    if outcome.get('outcome') == 'confirmed' and outcome.get('generation') == applied_generation:
        return None
    text = 'confirm: nothing is pending on %s %s' % (interface, direction)
    if outcome.get('outcome') == 'reverted':
        at = time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(outcome.get('at', 0)))
        text += (': the trial set (generation %s) was not confirmed in time and was reverted at %s to the set '
                 'before it (generation %s)' % (outcome.get('trial_generation'), at, outcome.get('generation')))
        if outcome.get('generation') != applied_generation:
            text += '; the rule set has changed again since (generation %d now)' % applied_generation
        return EbpfTcError(text + '. Apply the rules again (with confirm_timeout to try them again)')
    return EbpfTcError(text + ': no trial set (confirm_timeout) waits for a confirmation, so the applied set '
                       '(generation %d) is not the result of one' % applied_generation)


def manage(pin_dir, interface, netns=None, state='present', rules=None, default_action='pass',
           confirm_timeout=None, confirm=False, check_mode=False, direction='egress', ruleset=None):
    """Everything ebpf.tc.steering_rules does; returns its result dict (the module drops `diff` unless asked).

    - Never-applied maps count as the empty set with default pass (every packet passes either way), so
      `state: absent` or `rules: []` on a fresh program changes nothing.
    - `rules` None (with state present) leaves the rule set alone: only `confirm` acts. Then nothing
      pending is an error (saying when the last trial was reverted, if it was), unless the last pending
      set was confirmed and is still applied (confirming twice).
    - Commit-confirm: see plugins/modules/steering_rules.py, "confirm_timeout".
    - `ruleset`: `rules` and `default_action` already validated (a RuleSet, checked against this namespace's
      interfaces), so that a caller that checked every hook first does not validate twice.
    - The maps read and written are those of the steering program the hook runs: when its filter runs
      another program than the one pinned at pin_dir, or one that does not use the maps pinned there
      (drift, see _attached), this fails before anything changes.
    """
    _program.check_pin_dir(pin_dir)
    if confirm_timeout is not None and confirm:
        raise EbpfTcError('confirm_timeout and confirm: true cannot be used together: confirm_timeout '
                          'starts a trial of a new rule set, confirm ends one')
    if confirm_timeout is not None and confirm_timeout <= 0:
        raise EbpfTcError('confirm_timeout: must be a positive number of seconds, not %r' % (confirm_timeout,))
    if state == 'absent':
        if rules:
            raise EbpfTcError('rules: must not be given with state=absent (absent removes every rule)')
        wanted = ([], 'pass')
    elif rules is not None:
        wanted = (rules, default_action)
    elif confirm:
        wanted = None
    else:
        raise EbpfTcError('rules: required with state=present (use rules: [] for no rules, or '
                          'confirm: true alone to confirm a pending rule set)')
    if confirm_timeout is not None and wanted is None:
        raise EbpfTcError('confirm_timeout: needs rules (or state=absent) to try out')

    pending = Pending(pin_dir)
    # the lock is taken first so that plan, commit and the pending record are one step for any other
    # run of this module and for the timer
    with pending.locked(create=not check_mode):
        with _tc.open_netlink(netns) as ipr:
            index = _tc.ifindex(ipr, interface)  # the hook's interface must exist where we look for it
            names = _tc.InterfaceNames(ipr)
            desired = None
            if ruleset is not None and wanted is not None and state == 'present':
                desired = ruleset
            elif wanted is not None:
                desired = validate(wanted[0], wanted[1], interface_exists=names.exists)
            hook = check_hook(ipr, index, interface, direction, pin_dir, netns)
            maps = open_maps(pin_dir, hook)
            try:
                plan = None
                if desired is not None:
                    plan = maps.plan(desired, names.ifindex, names.ifname)
                    before = plan.current
                else:
                    before = maps.applied(names.ifname)
                before = EMPTY_SET if before is None else before
                changed_rules = desired is not None and desired != before
                record = pending.read()
                header = maps.header()
                applied_generation = 0 if header is None else header.generation
                if record is not None and record.get('generation') != applied_generation:
                    record_stale = True  # the set was switched outside this module since: not ours
                else:
                    record_stale = False
                ifindexes = ifnames = None
                if changed_rules and confirm_timeout is not None:
                    revert_to = before.to_dict()
                    if record is not None and not record_stale and not record.get('error'):
                        revert_to = record['revert_to']  # the last confirmed set stays the target
                    for name in _redirect_names(desired) | set(
                            r['redirect']['interface'] for r in revert_to['rules'] if r.get('redirect')):
                        names.ifindex(name)
                    ifindexes = dict((n, i) for n, i in names.indexes.items() if i)
                    ifnames = dict((str(i), n) for n, i in ifindexes.items())
            except Exception:
                maps.close()
                raise

        # netlink is closed from here on: the timer is forked without its proxy process's pipes
        with maps:
            changed = False
            after = before if desired is None else desired
            generation = applied_generation
            if changed_rules:
                changed = True
                if not check_mode:
                    if plan.changed:
                        generation = maps.commit(plan)
                    if confirm_timeout is not None:
                        if record is not None:
                            Pending.stop_timer(record)
                        new = {
                            'pin_dir': pin_dir, 'interface': interface, 'netns': netns,
                            'generation': generation, 'deadline': time.time() + confirm_timeout,
                            'revert_to': revert_to, 'ifindexes': ifindexes, 'ifnames': ifnames,
                        }
                        _libbpf.num_possible_cpus()  # cached now: the timer calls nothing it never ran
                        record = pending.start_timer(new, revert_pending)
                    elif record is not None:
                        # applying without confirm_timeout makes this set the confirmed one
                        Pending.stop_timer(record)
                        pending.remove()
                        record = None
            if confirm and record is None and wanted is None:
                refusal = _nothing_to_confirm(pending, interface, direction, applied_generation)
                if refusal is not None:
                    raise refusal
            if confirm and record is not None:
                changed = True
                if not check_mode:
                    Pending.stop_timer(record)
                    pending.remove()
                    pending.write_outcome('confirmed', generation=generation)
                    record = None
            if record is not None and record_stale and not check_mode and not changed_rules:
                # a leftover of a set replaced behind our back: its timer would do nothing; tidy up
                Pending.stop_timer(record)
                pending.remove()
                record = None
            counters = maps.rule_counters()

    return {
        'changed': changed,
        'rules': after.to_dicts(),
        'default_action': after.default_action,
        'counters': counters,
        'generation': generation,
        'pending': pending_summary(record),
        'diff': {'before': before.to_dict(), 'after': after.to_dict()},
    }

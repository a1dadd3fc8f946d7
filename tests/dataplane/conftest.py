# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the steering dataplane tests: the shipped object, loaded and run with BPF_PROG_TEST_RUN.

Every ``Steering`` is a fresh load of ``files/bpf/steering.bpf.o`` with its maps pinned under
``/sys/fs/bpf/ebpf_tc_test/<uuid>/`` (removed afterwards, also on failure), paired with a
``model.Dataplane`` that is fed the same rule sets, clock and frames. ``Steering.check(frame)`` runs
the frame through both and fails on any difference: return code, skb->mark, and which counter moved.
(Loading is cheap, about 70 ms; a first apply on fresh maps is also cheaper than a later one.)

``EBPF_TC_STEERING_OBJECT`` points the tests at another build of the object (a rebuilt one, while
working on the program); by default they test the shipped file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import ipaddress
import os
import shutil
import struct
import uuid

import pytest
from hypothesis import HealthCheck, Phase, settings

import model
import strategies
import bpftest
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject
from ansible_collections.ebpf.tc.plugins.module_utils import _rules
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEERING_OBJECT = os.environ.get('EBPF_TC_STEERING_OBJECT') or os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')
PROGRAM = 'steering'
PIN_BASE = '/sys/fs/bpf/ebpf_tc_test'

SKB_CTX_SIZE = 192           # sizeof(struct __sk_buff), UAPI (linux/bpf.h)
SKB_MARK_OFFSET = 8          # offsetof(struct __sk_buff, mark)
MARK_IN = 0x5EED0001         # every frame comes in with this mark: a rule that leaves it alone keeps it

NS = model.NS
CLOCK_START = 1000 * NS      # the policer's simulated clock starts here (0 would mean the real clock)

# The differential tests: deterministic in CI (derandomize: the same examples every run, no database).
# No shrinking by default: every shrink step loads and applies again, and the failure report already
# shows the rule set and frame. EBPF_TC_SHRINK=1 shrinks when hunting a minimal case.
settings.register_profile(
    'ebpf-tc-dataplane',
    derandomize=True, database=None, deadline=None, print_blob=False,
    phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get('EBPF_TC_SHRINK') == '1' else []),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
)


def pytest_collection_modifyitems(items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here) and os.path.basename(str(item.fspath)).startswith('test_steering'):
            item.add_marker(pytest.mark.root)
            if os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason='needs root (bpf(2), BPF_PROG_TEST_RUN)'))


@pytest.fixture
def steering_object():
    """The object under test: the shipped one, or the build EBPF_TC_STEERING_OBJECT names."""
    return STEERING_OBJECT


def skb_ctx(mark=MARK_IN):
    ctx = bytearray(SKB_CTX_SIZE)
    struct.pack_into('<I', ctx, SKB_MARK_OFFSET, mark)
    return bytes(ctx)


class Result:
    def __init__(self, retval, mark, frame):
        self.retval = retval
        self.mark = mark
        self.frame = frame      # the frame as the program left it

    def __repr__(self):
        return 'Result(retval=%d, mark=%#x)' % (self.retval, self.mark)


def describe(frame):
    p = model.parse(frame)
    if p.kind != 'ip':
        return '%s frame of %d bytes' % (p.kind, len(frame))
    return 'IPv%d %s -> %s proto %d sport %s dport %s%s, %d bytes' % (
        p.family, p.src, p.dst, p.proto, p.sport, p.dport, ' (non-first fragment)' if p.nonfirst else '', len(frame))


class Steering:
    """One loaded steering program, its pinned maps (``.maps``), and the model beside it (``.model``)."""

    MARK_IN = MARK_IN
    CLOCK_START = CLOCK_START

    def __init__(self, path=STEERING_OBJECT):
        if not os.path.exists(path):
            raise AssertionError('%s is missing: build it with files/bpf/build.sh (make bpf)' % path)
        self.pin_dir = os.path.join(PIN_BASE, str(uuid.uuid4()))
        os.makedirs(self.pin_dir)
        self.obj = self.maps = None
        try:
            self.obj = _bpfobject.BpfObject.open(path, pin_root=self.pin_dir)
            self.obj.load()
            self.prog_fd = self.obj.program_fd(PROGRAM)
            self.maps = SteeringMaps(self.pin_dir)
        except BaseException:
            self.close()
            raise
        self.model = model.Dataplane()
        self.ruleset = None
        self.last = None
        self._entries = {}      # rule name -> RuleEntry read back from the applied slot

    def close(self):
        if self.maps is not None:
            self.maps.close()
            self.maps = None
        if self.obj is not None:
            self.obj.close()
            self.obj = None
        if os.path.isdir(self.pin_dir):
            shutil.rmtree(self.pin_dir)
        try:
            os.rmdir(PIN_BASE)
        except OSError:
            pass                # another test's pins are still there

    # -- driving ----------------------------------------------------------------------------------

    def apply(self, rules, default_action='pass'):
        """Apply a rule set (a RuleSet, or user-facing rules) to the program and to the model."""
        ruleset = rules if isinstance(rules, _rules.RuleSet) else strategies.validate(rules, default_action)
        self.maps.apply(ruleset, strategies.ifindex_of, strategies.ifname_of)
        self.model.apply(ruleset)
        self.ruleset = ruleset
        self._read_entries()
        return ruleset

    def set_clock(self, ns):
        assert ns > 0, '0 hands the policer back to the real clock'
        self.maps.set_clock_override(ns)
        self.model.clock = ns

    def run(self, frame, mark=MARK_IN):
        """The kernel's verdict alone."""
        out = bpftest.test_run(self.prog_fd, frame, ctx=skb_ctx(mark))
        return Result(out.retval, struct.unpack_from('<I', out.ctx_out, SKB_MARK_OFFSET)[0], out.data_out)

    def check(self, frame, context='', mark_in=MARK_IN):
        """Run ``frame`` through the kernel and the model; fail on any difference.

        Returns the model's verdict; the kernel's result is in ``.last``.
        """
        before = self.model.rule_counters() if self._entries else None
        expected = self.model.run(frame)
        got = self.last = self.run(frame, mark_in)
        problems = []
        if got.retval != expected.retval:
            problems.append('return code %d, model says %d' % (got.retval, expected.retval))
        want_mark = model.expected_mark(expected, mark_in)
        if got.mark != want_mark:
            problems.append('mark %#x, model says %#x' % (got.mark, want_mark))
        want_frame = frame if expected.macs is None else b''.join(expected.macs) + frame[12:]
        if got.frame != want_frame:
            problems.append('frame out %s, model says %s' % (got.frame.hex(), want_frame.hex()))
        if expected.counter is not None:
            index = L.DEFAULT_COUNTER if expected.counter == model.DEFAULT else self._entries[expected.counter].counter
            have = self.read_counter(index)
            want = self.model.rule_counters()[expected.counter]
            if have != want:
                problems.append('counter of %s is %s, model says %s' % (expected.counter, have, want))
        if problems:
            moved = self._moved(before) if before is not None else '?'
            raise AssertionError(
                'kernel and model disagree on %s: %s\n  frame: %s\n  model: %s\n  counters that moved in the '
                'kernel: %s\n  rule set (default %s): %s\n%s' % (
                    describe(frame), '; '.join(problems), frame.hex(), expected, moved,
                    self.ruleset.default_action if self.ruleset else None,
                    self.ruleset.to_dicts() if self.ruleset else None, context))
        return expected

    def _moved(self, before):
        after = self.kernel_counters()
        return dict((k, v) for k, v in after.items() if before.get(k) != v)

    # -- reading ----------------------------------------------------------------------------------

    def _read_entries(self):
        """The applied slot's rule entries, read straight from the maps (cheaper than rule_counters())."""
        header = self.maps.header()
        self._entries = {}
        for i in range(header.nrules):
            entry = L.unpack_rule(self.maps[L.MAP_RULES].lookup(L.pack_u32(L.rule_index(header.slot, i))))
            self._entries[entry.name] = entry
        self.header = header

    def entry(self, name):
        return self._entries[name]

    def read_counter(self, index):
        packets, nbytes, drops = L.unpack_rule_stats(self.maps[L.MAP_RULE_STATS].lookup_percpu(L.pack_u32(index)))
        return {'packets': packets, 'bytes': nbytes, 'drops': drops}

    def kernel_counters(self):
        """{rule name: counters} of the applied set plus '(default)', read by counter index."""
        out = dict((name, self.read_counter(e.counter)) for name, e in self._entries.items())
        out[model.DEFAULT] = self.read_counter(L.DEFAULT_COUNTER)
        return out

    def check_totals(self):
        """Every rule counter, the default counter and every protocol counter equal the model's."""
        assert self.kernel_counters() == self.model.rule_counters()
        assert self.maps.proto_counters() == self.model.proto_stats
        assert self.learned_paths() == self.model.learned

    def learned_paths(self):
        """The learned_paths map, keyed as the model keys it."""
        out = {}
        for key, value in self.maps[L.MAP_LEARNED_PATHS].items():
            k, path = L.unpack_path_key(key), L.unpack_path(value)
            out[(k.family, k.proto, ipaddress.ip_address(k.client), k.client_port, ipaddress.ip_address(k.service),
                 k.service_port)] = (path.ifindex, path.peer_mac, path.own_mac)
        return out

    def check_entries(self):
        """The compiled rule entries carry what the model's rules say (action targets, mark, police)."""
        codes = {'pass': L.ACT_PASS, 'drop': L.ACT_DROP, 'redirect': L.ACT_REDIRECT, 'mark': L.ACT_MARK,
                 'police': L.ACT_POLICE, 'learn': L.ACT_LEARN, 'reply': L.ACT_REPLY}
        assert self.header.nrules == len(self.model.rules)
        assert self.header.default_action == (L.ACT_DROP if self.model.default_action == 'drop' else L.ACT_PASS)
        for rule in self.model.rules:
            e = self._entries[rule.name]
            assert e.action == codes[rule.action], rule
            if rule.redirect is not None:
                interface, via = rule.redirect
                assert e.ifindex == strategies.ifindex_of(interface), rule
                if via is None:
                    assert e.nh_family == 0, rule
                else:
                    addr = ipaddress.ip_address(via)
                    assert (e.nh_family, e.nh_addr) == ({4: L.AF_INET, 6: L.AF_INET6}[addr.version],
                                                        addr.packed.ljust(16, b'\0')), rule
            elif rule.action == 'mark':
                assert e.mark == rule.mark, rule
            elif rule.action == 'police':
                p = rule.police
                assert (e.police_unit, e.police_rate, e.police_depth, e.police_max_idle_ns) == (
                    L.POLICE_PACKETS if p.unit == 'packets' else L.POLICE_BITS, p.rate, p.depth, p.max_idle), rule


@contextlib.contextmanager
def fresh_steering(path=STEERING_OBJECT):
    s = Steering(path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def steering():
    """A freshly loaded steering program (no rule set applied, every counter 0) and its model."""
    with fresh_steering() as s:
        yield s


@pytest.fixture
def make_steering():
    """``with make_steering() as s:`` a fresh program inside a test (one per hypothesis example)."""
    return fresh_steering

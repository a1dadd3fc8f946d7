# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The explain build against the model: the rule it names is the one that decides, and nothing moves (root).

files/bpf/steering_explain.bpf.o is loaded over the maps of a loaded steering program (by their ids, as
ebpf.tc.steering_explain does) and asked about random frames of random rule sets, between frames the real
program handles; after each set every counter, policer, learned path and protocol counter is still the model's.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from hypothesis import given, reject, settings
from hypothesis import strategies as st

import model
import packets as pk
import strategies
from ansible_collections.ebpf.tc.plugins.module_utils import _explain, _libbpf
from ansible_collections.ebpf.tc.plugins.module_utils._errors import RuleError
from ansible_collections.ebpf.tc.plugins.module_utils._steering import map_ids_by_name

EXPLAIN_OBJECT = os.path.join(os.path.dirname(model.__file__), os.pardir, 'files', 'bpf', 'steering_explain.bpf.o')
EXAMPLES = 15
FRAMES = 30


def expected_answer(verdict):
    """The explain build's (answer, rule index) for the model's verdict on a frame."""
    if verdict.rule is not None:
        return 'rule', verdict.rule
    if verdict.counter == model.DEFAULT:
        return 'default', None      # malformed or no match: the default action either way
    return 'non-ip', None


def explained(s, frame):
    answer, index, dummy_slot, generation = _explain.classify(EXPLAIN_OBJECT, s.map_ids, frame)
    assert generation == s.header.generation
    if answer == 'malformed':
        answer = 'default'
    return answer, index if answer == 'rule' else None


def test_explain_names_the_deciding_rule_and_moves_nothing(make_steering):
    stats = {'cases': 0, 'rule': 0}

    @settings(settings.get_profile('ebpf-tc-dataplane'), max_examples=strategies.scaled(EXAMPLES))
    @given(st.data())
    def example(data):
        rules, default = data.draw(strategies.raw_rulesets(), label='rule set')
        try:
            ruleset = strategies.validate(rules, default)
        except RuleError:
            reject()
        with make_steering() as s:
            s.set_clock(s.CLOCK_START)
            s.apply(ruleset)
            s.map_ids = map_ids_by_name(_libbpf.prog_info(s.prog_fd).id)
            for i in range(FRAMES):
                frame = data.draw(strategies.frames(s.model.rules), label='frame %d' % i)
                if data.draw(st.booleans(), label='run it too'):
                    s.check(frame)
                want = expected_answer(s.model.classify(frame))
                assert explained(s, frame) == want, (frame.hex(), want)
                stats['cases'] += 1
                stats['rule'] += want[0] == 'rule'
            s.check_totals()    # explaining moved no counter, bucket or learned path: the model's are the same

    example()
    print('explain:', stats)
    assert stats['rule'] >= strategies.scaled(50), stats


def test_explain_before_any_rule_set(steering):
    steering.map_ids = map_ids_by_name(_libbpf.prog_info(steering.prog_fd).id)
    answer = _explain.classify(EXPLAIN_OBJECT, steering.map_ids, pk.ipv4_frame())
    assert answer[0] == 'no rule set'

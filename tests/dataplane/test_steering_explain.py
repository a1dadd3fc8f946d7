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

    @settings(settings.get_profile('ebpf-tc-dataplane'), max_examples=EXAMPLES)
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
    assert stats['rule'] >= 50, stats


def test_explain_before_any_rule_set(steering):
    steering.map_ids = map_ids_by_name(_libbpf.prog_info(steering.prog_fd).id)
    answer = _explain.classify(EXPLAIN_OBJECT, steering.map_ids, pk.ipv4_frame())
    assert answer[0] == 'no rule set'


def test_the_frame_of_a_description_is_what_the_parser_reads():
    for description in ({'src': '192.0.2.1', 'dst': '198.51.100.10', 'proto': 'udp', 'sport': 53, 'dport': 4000},
                        {'src': '2001:db8::1', 'dst': 'ff02::1:ff00:1', 'proto': 'icmpv6',
                         'icmp_type': 'neighbour-solicitation', 'vlan': 7},
                        {'src': '10.0.0.1', 'dst': '10.0.0.2', 'proto': 47}):
        packet = _explain.describe(description)
        parsed = model.parse(_explain.frame_of(packet))
        want_ip = ('ip', packet['src'], packet['dst'], packet['proto'])
        assert (parsed.kind, parsed.src, parsed.dst, parsed.proto) == want_ip
        # a field left out is 0 in the frame: a TCP packet always has ports, an ICMP one a type and code
        zero = dict((key, packet[key] or 0) for key in ('sport', 'dport', 'icmp_type', 'icmp_code'))
        want = {6: 'ports', 17: 'ports', 132: 'ports', 1: 'icmp', 58: 'icmp'}.get(packet['proto'])
        assert (parsed.sport, parsed.dport) == ((zero['sport'], zero['dport']) if want == 'ports' else (None, None))
        assert (parsed.icmp_type, parsed.icmp_code) == (
            (zero['icmp_type'], zero['icmp_code']) if want == 'icmp' else (None, None))
    assert _explain.describe({'src': '::1', 'dst': '::2', 'proto': 'icmpv6',
                              'icmp_type': 'neighbour-solicitation'})['icmp_type'] == 135

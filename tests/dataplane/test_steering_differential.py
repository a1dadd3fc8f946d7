# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kernel against the model: random rule sets × random and malformed frames (root).

Each hypothesis example loads a fresh program, applies a random valid rule set (sometimes followed by
a mutation of it, which switches slots and keeps some counters), and sends a batch of frames aimed at
the set's prefixes, protocols and ports. Every frame must get the same return code, the same
skb->mark and move the same counter (so the same rule decided: which also fixes the redirect target)
in the kernel and in the model; after each batch every rule, default and protocol counter must equal
the model's. Police rules run on a simulated clock that moves between frames, so the model follows
every token.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from hypothesis import given, reject, settings
from hypothesis import strategies as st

import model
import packets as pk
import strategies
from ansible_collections.ebpf.tc.plugins.module_utils._errors import RuleError

NS = model.NS
EXAMPLES = 45
FRAMES_PER_SET = 40
MIN_CASES = 2000

CLOCK_STEPS = st.sampled_from([0, 0, 0, 1, 1000, 10 ** 6, 10 ** 7, 10 ** 8, NS, 100 * NS])


def _validated(raw):
    rules, default = raw
    try:
        return strategies.validate(rules, default)
    except RuleError:
        reject()


def test_kernel_agrees_with_model(make_steering):
    stats = {'cases': 0, 'examples': 0, 'sets': 0, 'police': 0, 'icmp': 0, 'learned_replies': 0, 'kinds': {}}

    @settings(settings.get_profile('ebpf-tc-dataplane'), max_examples=strategies.scaled(EXAMPLES))
    @given(st.data())
    def example(data):
        raw = data.draw(strategies.raw_rulesets(), label='rule set')
        sets = [_validated(raw)]
        if data.draw(st.integers(0, 2), label='mutate') == 0:
            sets.append(_validated(data.draw(strategies.mutated(raw), label='next rule set')))
        with make_steering() as s:
            clock = s.CLOCK_START
            s.set_clock(clock)
            for ruleset in sets:
                s.apply(ruleset)
                s.check_entries()
                policed = any(r.action == 'police' for r in ruleset.rules)
                rules = s.model.rules
                for i in range(FRAMES_PER_SET):
                    if s.model.learned and data.draw(st.integers(0, 3), label='reply?') == 0:
                        frame = data.draw(strategies.replies(s.model.learned), label='reply %d' % i)
                    else:
                        frame = data.draw(strategies.frames(rules), label='frame %d' % i)
                    if policed:
                        step = data.draw(CLOCK_STEPS, label='clock step')
                        if step:
                            clock += step
                            s.set_clock(clock)
                    verdict = s.check(frame, context='frame %d of this set' % i)
                    stats['cases'] += 1
                    stats['kinds'][verdict.kind] = stats['kinds'].get(verdict.kind, 0) + 1
                    stats['police'] += verdict.kind == 'police'
                    decider = rules[verdict.rule] if verdict.rule is not None else None
                    stats['icmp'] += bool(decider and (decider.icmp_type or decider.icmp_code))
                    stats['learned_replies'] += verdict.kind == 'reply' and verdict.macs is not None
                s.check_totals()
                stats['sets'] += 1
        stats['examples'] += 1

    example()
    print('differential: %(examples)d examples, %(sets)d rule sets, %(cases)d frames, %(icmp)d decided by an ICMP '
          'type or code, %(learned_replies)d replies sent back a learned way' % stats, stats['kinds'])
    assert stats['cases'] >= strategies.scaled(MIN_CASES), stats
    # the generators must reach every kind of decision, or the test proves little (the ICMP fields and learned
    # paths get tests of their own below, whose rule sets always have them)
    assert set(stats['kinds']) >= {'pass', 'drop', 'redirect', 'mark', 'police', 'default'}, stats['kinds']


@st.composite
def police_rulesets(draw):
    """1-4 police rules (packet and bit rates, small bursts) in front of a few random rules."""
    rules = []
    for i in range(draw(st.integers(1, 4))):
        rule = {'name': 'pol%d' % i, 'action': 'police', 'police': draw(strategies.police_param())}
        match = draw(st.sampled_from([{}, {'proto': 'tcp'}, {'proto': ['udp', 'icmp']}, {'dst': '10.0.0.0/8'},
                                      {'dst': ['2001:db8::/32', '10.1.0.0/16']}]))
        if match:
            rule['match'] = match
        rules.append(rule)
    rules += draw(strategies.raw_rulesets(max_rules=3))[0]
    return rules, draw(st.sampled_from(['pass', 'drop']))


POLICE_EXAMPLES = 12
POLICE_FRAMES = 60


def test_police_agrees_with_model(make_steering):
    """Token buckets to the nanosecond: bursts, refills and idle caps on a clock that jumps about."""
    stats = {'cases': 0, 'police': 0, 'police_drops': 0}

    @settings(settings.get_profile('ebpf-tc-dataplane'), max_examples=strategies.scaled(POLICE_EXAMPLES))
    @given(st.data())
    def example(data):
        ruleset = _validated(data.draw(police_rulesets(), label='rule set'))
        with make_steering() as s:
            clock = s.CLOCK_START
            s.set_clock(clock)
            s.apply(ruleset)
            s.check_entries()
            for i in range(POLICE_FRAMES):
                frame = data.draw(strategies.frames(s.model.rules), label='frame %d' % i)
                step = data.draw(CLOCK_STEPS, label='clock step')
                if step:
                    clock += step
                    s.set_clock(clock)
                verdict = s.check(frame, context='frame %d' % i)
                stats['cases'] += 1
                stats['police'] += verdict.kind == 'police'
                stats['police_drops'] += verdict.kind == 'police' and verdict.dropped
            s.check_totals()

    example()
    print('police differential:', stats)
    assert stats['police'] >= strategies.scaled(200) and stats['police_drops'] >= strategies.scaled(20), stats


@st.composite
def icmp_rulesets(draw):
    """1-4 rules on ICMP types and codes in front of a few random rules."""
    rules = []
    for i in range(draw(st.integers(1, 4))):
        proto = draw(st.sampled_from(strategies.ICMP_PROTO_CHOICES))
        match = {'proto': proto}
        number = model.PROTO_NUMBERS.get(proto, proto)
        for key in draw(st.sampled_from([('icmp_type',), ('icmp_code',), ('icmp_type', 'icmp_code')])):
            match[key] = draw(strategies.icmp_field(number, key))
        rule = {'name': 'icmp%d' % i, 'action': draw(st.sampled_from(['pass', 'drop', 'mark'])), 'match': match}
        if rule['action'] == 'mark':
            rule['mark'] = 7
        rules.append(rule)
    rules += draw(strategies.raw_rulesets(max_rules=4))[0]
    return rules, draw(st.sampled_from(['pass', 'drop']))


def _differential(make_steering, rulesets, examples, frames_per_set, tally, replies=False):
    """Rule sets drawn from `rulesets`, each on a fresh program, against frames aimed at them (with `replies`,
    three in four, once the model learned a flow, are replies to one); `tally(rules, verdict)` sees every
    verdict."""
    @settings(settings.get_profile('ebpf-tc-dataplane'), max_examples=strategies.scaled(examples))
    @given(st.data())
    def example(data):
        ruleset = _validated(data.draw(rulesets, label='rule set'))
        with make_steering() as s:
            s.set_clock(s.CLOCK_START)
            s.apply(ruleset)
            s.check_entries()
            for i in range(frames_per_set):
                if replies and s.model.learned and data.draw(st.integers(0, 3), label='reply?'):
                    frame = data.draw(strategies.replies(s.model.learned), label='reply %d' % i)
                else:
                    frame = data.draw(strategies.frames(s.model.rules), label='frame %d' % i)
                tally(s.model.rules, s.check(frame, context='frame %d' % i))
            s.check_totals()

    example()


def test_icmp_types_agree_with_model(make_steering):
    """Rule sets led by ICMP type and code rules, against frames aimed at them."""
    stats = {'cases': 0, 'icmp': 0}

    def tally(rules, verdict):
        decider = rules[verdict.rule] if verdict.rule is not None else None
        stats['cases'] += 1
        stats['icmp'] += bool(decider and (decider.icmp_type or decider.icmp_code))
    _differential(make_steering, icmp_rulesets(), 20, 50, tally)
    print('ICMP differential:', stats)
    assert stats['icmp'] >= strategies.scaled(30), stats


@st.composite
def learned_rulesets(draw):
    """A learn and a reply rule for the same service prefixes, among a few random rules. Mostly the reply
    rule comes first: the frames' clients are drawn from the service prefixes too, and a reply to a client
    inside them would meet the learn rule first and be learned again rather than sent back."""
    rules, default = draw(strategies.raw_rulesets(max_rules=4))
    families = draw(st.sampled_from([frozenset([4]), frozenset([6]), frozenset([4, 6])]))
    service = draw(strategies.address_field(families))
    learn = {'name': 'learn', 'action': 'learn', 'match': {'dst': service}}
    reply = {'name': 'reply', 'action': 'reply', 'match': {'src': service}}
    if draw(st.booleans()):
        reply['redirect'] = {'interface': draw(st.sampled_from(sorted(strategies.INTERFACES)))}
    pair = [reply, learn] if draw(st.integers(0, 3)) else [learn, reply]
    rules = [r for r in rules if r['name'] not in ('learn', 'reply')]
    at = draw(st.integers(0, len(rules)))
    return rules[:at] + pair + rules[at:], default


def test_learned_paths_agree_with_model(make_steering):
    """Requests learned, replies sent back their way (or not, when a field is off), the map equal to the
    model's after every set."""
    stats = {'cases': 0, 'learned': 0, 'replies': 0}

    def tally(rules, verdict):
        stats['cases'] += 1
        stats['learned'] += verdict.kind == 'learn'
        stats['replies'] += verdict.kind == 'reply' and verdict.macs is not None
    _differential(make_steering, learned_rulesets(), 15, 40, tally, replies=True)
    print('learned-path differential:', stats)
    assert stats['learned'] >= strategies.scaled(30) and stats['replies'] >= strategies.scaled(30), stats


# ------------------------------------------------------------------------------------------ atomic switch

def _switch_sets():
    """A sequence of rule sets whose verdicts on the same frames all differ, growing and shrinking, so
    that anything left over in a slot from two applies ago shows as a wrong verdict."""
    sets = []
    for k, n in enumerate([40, 3, 25, 0, 60, 2, 33, 1]):
        rules = []
        for i in range(n):
            action = ['drop', 'pass', 'mark', 'redirect', 'police'][(i + k) % 5]
            r = {'name': 'k%d-%d' % (k % 3, i), 'action': action,
                 'match': {'dst': ['10.%d.%d.0/24' % (i, k), '2001:db8:%x:%x::/64' % (i, k)]}}
            if i % 7 == 6:
                # the same in every set that is long enough: keeps its counters across the switches
                r = {'name': 'stable-%d' % i, 'action': action, 'match': {'dst': ['172.16.%d.0/24' % i]}}
            elif i % 3 == 0:
                r['match']['proto'] = ['tcp', 'udp'] if i % 2 else ['sctp']
                r['match']['dport'] = [1000 + i + k, '%d-%d' % (2000 + 10 * k, 2000 + 10 * k + i)]
            elif i % 3 == 1:
                r['match']['src'] = ['192.0.%d.0/24' % k, '2001:db8:ffff:%x::/64' % k]
            if action == 'mark':
                r['mark'] = k * 1000 + i
            elif action == 'redirect':
                r['redirect'] = {'interface': sorted(strategies.INTERFACES)[(i + k) % 4]}
            elif action == 'police':
                r['police'] = {'rate': '1mpps', 'burst': 10 ** 6}
            rules.append(r)
        sets.append((rules, 'drop' if k % 2 else 'pass'))
    return sets


def _switch_frames(sets):
    frames = [pk.arp()]
    for k in range(len(sets)):
        for i in range(0, 60, 2 if k < 2 else 4):
            for proto, dport in (('tcp', 1000 + i + k), ('udp', 2000 + 10 * k + i), ('sctp', 1000 + i + k), (47, 0)):
                src = '192.0.%d.1' % k
                frames.append(pk.ipv4_frame(src, '10.%d.%d.9' % (i, k), proto, 5, dport))
            if i % 7 == 6 and k == 0:
                frames.append(pk.ipv4_frame('192.0.2.1', '172.16.%d.1' % i, 'udp', 5, 53))
            if i % 4 == 0:
                frames.append(pk.ipv6_frame('2001:db8:ffff:%x::1' % k, '2001:db8:%x:%x::9' % (i, k), 'udp', 5,
                                            2000 + 10 * k + i))
    return frames


def test_atomic_switch_no_stale_slot(steering):
    """Apply many rule sets in a row on one program: after each apply every frame gets the new set's
    verdict, whatever the slot held before."""
    sets = _switch_sets()
    frames = _switch_frames(sets)
    s = steering
    s.set_clock(s.CLOCK_START)
    generation = 0
    for k, (rules, default) in enumerate(sets):
        s.apply(rules, default)
        assert s.header.slot == k % 2 and s.header.generation == generation + 1
        generation = s.header.generation
        s.check_entries()
        for frame in frames:
            s.check(frame, context='after applying set %d' % k)
        s.check_totals()
    assert s.maps.applied(strategies.ifname_of) == s.ruleset


def test_address_families_never_cross(steering):
    """IPv4-mapped and IPv4-compatible IPv6 addresses never match IPv4 prefixes, and an IPv4 address is
    never looked up as the first bytes of an IPv6 prefix."""
    v4 = ipaddress.ip_address('10.1.2.3')
    s = steering
    s.apply([{'name': 'v4', 'action': 'drop', 'match': {'src': '10.1.2.3/32'}},
             {'name': 'v6', 'action': 'drop', 'match': {'src': '0a01:0203::/32'}}], 'pass')
    for src in ('::ffff:10.1.2.3', '::10.1.2.3', '0a01:0204::'):
        assert s.check(pk.ipv6_frame(src=src)).retval == -1
    assert s.check(pk.ipv6_frame(src='0a01:0203::1')).counter == 'v6'
    assert s.check(pk.ipv4_frame(src=str(v4))).counter == 'v4'
    assert s.check(pk.ipv4_frame(src='10.1.2.4')).counter == '(default)'

"""Part 1: per-packet cost of the steering program through BPF_PROG_TEST_RUN.

One load of the shipped object per rule count (1, 10, 100, 1000, 4096), each with its own pins under
/sys/fs/bpf/ebpf_tc_bench/<run>/ and its rule set applied through SteeringMaps (the code the modules
use), plus the floor program (benchmarks/bpf/floor.bpf.c: the same parser, no maps, returns
TC_ACT_UNSPEC). Four probe packets (rulegen.probe_frames): early, late, none, ipv6.

A test run repeats one packet, so after the first repetition the shipped object answers from its flow
cache: ``steering-<n>`` is the cost of a packet of a flow already seen. Beside it, ``miss-<n>`` loads the
same source built with -DBENCH_FLOW_CACHE_MISS=1, whose cache never answers: the cost of a flow's first
packet (or of any packet when flows thrash the cache), classification included.

Before timing, every (program, probe) pair runs once and must give the reference model's verdict and
move the expected counter (the rule's, or the default counter) by exactly one; a rule set the probes do
not hit as intended would otherwise be timed silently.

Timing: ``runs`` rounds; in each round every (program, probe) pair gets one BPF_PROG_TEST_RUN call of
``repeat`` repetitions (the kernel reports the mean ns per repetition), in an order shuffled per round
so that the machine's noise spreads evenly over pairs. The result per pair is the median over rounds.
"""

import os
import random
import struct
import subprocess
import time
import uuid

import common
import rulegen
import bpftest
from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils import _bpfobject
from ansible_collections.ebpf.tc.plugins.module_utils import _libbpf as libbpf
from ansible_collections.ebpf.tc.plugins.module_utils import _program
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps

RULE_COUNTS = (1, 10, 100, 1000, 4096)
KINDS = ('early', 'late', 'none', 'ipv6')
FLOOR_SOURCE = os.path.join(common.BENCH, 'bpf', 'floor.bpf.c')
FLOOR_OBJECT = os.path.join(common.BUILD, 'floor.bpf.o')
FLOOR_PROGRAM = 'floor_parse'
EMPTY_SOURCE = os.path.join(common.BENCH, 'bpf', 'empty.bpf.c')
EMPTY_OBJECT = os.path.join(common.BUILD, 'empty.bpf.o')
EMPTY_PROGRAM = 'empty'
STEERING_PROGRAM = 'steering'
STEERING_SOURCE = os.path.join(common.ROOT, 'files', 'bpf', 'steering.bpf.c')
MISS_OBJECT = os.path.join(common.BUILD, 'steering-miss.bpf.o')
MISS_DEFINE = '-DBENCH_FLOW_CACHE_MISS=1'   # steering.bpf.c: the flow cache never answers

SKB_CTX_SIZE = 192           # sizeof(struct __sk_buff)
SKB_MARK_OFFSET = 8
MARK_IN = 0x5EED0001

FULL = {'runs': 31, 'repeat': 200000}
QUICK = {'runs': 5, 'repeat': 20000}

BASELINE_OBJECT = os.path.join(common.BUILD, 'steering-baseline.bpf.o')

TARGET_FLOOR_RATIO = 2.0     # cost(1000) <= 2 x floor
TARGET_SCALE_RATIO = 1.1     # cost(4096) <= 1.1 x cost(10)
LINEAR_SCAN_NS_PER_RULE = 1.7  # the figure for a linear scan on this machine (not measured here)


def skb_ctx(mark=MARK_IN):
    ctx = bytearray(SKB_CTX_SIZE)
    struct.pack_into('<I', ctx, SKB_MARK_OFFSET, mark)
    return bytes(ctx)


def build(source, obj, *cflags):
    """Compile with files/bpf/build.sh: the flags and toolchain of the shipped object (plus ``cflags``)."""
    os.makedirs(common.BUILD, exist_ok=True)
    common.run(os.path.join(common.ROOT, 'files', 'bpf', 'build.sh'), source, obj, *cflags, timeout=120)
    return obj


def build_floor():
    return build(FLOOR_SOURCE, FLOOR_OBJECT)


def _no_redirect(name):
    raise AssertionError('benchmark rule sets redirect nowhere (asked for %s)' % name)


class Loaded:
    """One loaded program (steering with a rule set, or the floor) and its pins."""

    def __init__(self, label, path, program, pin_dir, ruleset=None):
        self.label = label
        self.pin_dir = pin_dir
        self.ruleset = ruleset
        self.obj = self.maps = None
        os.makedirs(pin_dir)
        self.obj = _bpfobject.BpfObject.open(path, pin_root=pin_dir)
        self.obj.load()
        self.prog_fd = self.obj.program_fd(program)
        self.info = libbpf.prog_info(self.prog_fd)
        self.counters = {}
        if ruleset is not None:
            self.maps = SteeringMaps(pin_dir)
            started = time.monotonic()
            self.maps.apply(ruleset, _no_redirect, str)
            self.apply_seconds = time.monotonic() - started
            header = self.maps.header()
            for i in range(header.nrules):
                entry = L.unpack_rule(self.maps[L.MAP_RULES].lookup(L.pack_u32(L.rule_index(header.slot, i))))
                self.counters[i] = entry.counter

    def counter(self, index):
        """Packets counted on a counter index (summed over CPUs)."""
        packets, dummy, dummy = L.unpack_rule_stats(self.maps[L.MAP_RULE_STATS].lookup_percpu(L.pack_u32(index)))
        return packets

    def run(self, frame, repeat=1):
        return bpftest.test_run(self.prog_fd, frame, ctx=skb_ctx(), repeat=repeat)

    def close(self):
        if self.maps is not None:
            self.maps.close()
            self.maps = None
        if self.obj is not None:
            self.obj.close()
            self.obj = None


def verify(loaded, frames):
    """Each probe once: the model's return code and mark, and exactly the expected counter moved."""
    out = {}
    for kind, frame in frames.items():
        if loaded.ruleset is None:   # the floor or the empty program
            res = loaded.run(frame)
            if res.retval != -1:
                raise AssertionError('%s program returned %d on the %s probe, not TC_ACT_UNSPEC (-1)'
                                     % (loaded.label, res.retval, kind))
            out[kind] = {'retval': res.retval}
            continue
        n = len(loaded.ruleset.rules)
        index, verdict = rulegen.expected_match(loaded.ruleset, frame)
        if index != rulegen.expected_index(n, kind):
            raise AssertionError('%s: the model says the %s probe hits rule %s' % (loaded.label, kind, index))
        counter = L.DEFAULT_COUNTER if index is None else loaded.counters[index]
        watched = set(loaded.counters.values()) | {L.DEFAULT_COUNTER}
        before = dict((c, loaded.counter(c)) for c in watched)
        res = loaded.run(frame)
        after = dict((c, loaded.counter(c)) for c in watched)
        moved = sorted(c for c in watched if after[c] != before[c])
        mark = struct.unpack_from('<I', res.ctx_out, SKB_MARK_OFFSET)[0]
        want_mark = MARK_IN if verdict.mark is None else verdict.mark
        problems = []
        if res.retval != verdict.retval:
            problems.append('return code %d, model says %d' % (res.retval, verdict.retval))
        if mark != want_mark:
            problems.append('mark %#x, model says %#x' % (mark, want_mark))
        if moved != [counter] or after[counter] - before[counter] != 1:
            problems.append('counters that moved: %s, expected only %s by one' % (moved, counter))
        if problems:
            raise AssertionError('%s, %s probe: %s' % (loaded.label, kind, '; '.join(problems)))
        out[kind] = {'rule': index, 'retval': res.retval, 'verdict': verdict.kind}
    return out


def baseline_object(rev):
    """The steering object committed at git revision ``rev``, written to .tmp/bench/."""
    blob = subprocess.run(['git', '-C', common.ROOT, 'show', '%s:files/bpf/steering.bpf.o' % rev], check=True,
                          stdout=subprocess.PIPE, timeout=60).stdout
    os.makedirs(common.BUILD, exist_ok=True)
    with open(BASELINE_OBJECT, 'wb') as f:
        f.write(blob)
    return BASELINE_OBJECT


def measure(quick=False, rule_counts=RULE_COUNTS, baseline=None):
    """``baseline``: a git revision whose committed object is timed beside the current one (same rule
    sets, same rounds), as ``baseline-<n>``, so that a change to the program is judged side by side."""
    params = dict(QUICK if quick else FULL)
    frames = rulegen.probe_frames()
    run_dir = os.path.join(common.PIN_BASE, 'dataplane-%s' % uuid.uuid4().hex[:8])
    loaded = []
    try:
        common.log('dataplane: building the floor and empty programs')
        build_floor()
        build(EMPTY_SOURCE, EMPTY_OBJECT)
        build(STEERING_SOURCE, MISS_OBJECT, MISS_DEFINE)
        loaded.append(Loaded('empty', EMPTY_OBJECT, EMPTY_PROGRAM, os.path.join(run_dir, 'empty')))
        loaded.append(Loaded('floor', FLOOR_OBJECT, FLOOR_PROGRAM, os.path.join(run_dir, 'floor')))
        rulesets = {}
        for n in rule_counts:
            rs = rulegen.ruleset(n)
            rulegen.check_probes(rs, frames)
            rulesets[n] = rs
            common.log('dataplane: loading steering with %d rules' % n)
            loaded.append(Loaded('steering-%d' % n, common.STEERING_OBJECT, STEERING_PROGRAM,
                                 os.path.join(run_dir, 'steering-%d' % n), rs))
            loaded.append(Loaded('miss-%d' % n, MISS_OBJECT, STEERING_PROGRAM, os.path.join(run_dir, 'miss-%d' % n),
                                 rs))
            if baseline:
                loaded.append(Loaded('baseline-%d' % n, baseline_object(baseline), STEERING_PROGRAM,
                                     os.path.join(run_dir, 'baseline-%d' % n), rs))
        checks = dict((p.label, verify(p, frames)) for p in loaded)

        pairs = [(p, kind) for p in loaded for kind in KINDS]
        samples = dict(((p.label, kind), []) for p, kind in pairs)
        rng = random.Random(rulegen.SEED)
        common.log('dataplane: %d rounds x %d pairs x %d repetitions' % (params['runs'], len(pairs),
                                                                         params['repeat']))
        started = time.monotonic()
        for dummy in range(params['runs']):
            order = list(pairs)
            rng.shuffle(order)
            for p, kind in order:
                res = p.run(frames[kind], repeat=params['repeat'])
                samples[(p.label, kind)].append(res.duration_ns)
        elapsed = time.monotonic() - started
        programs = {}
        for p in loaded:
            entry = {'xlated_bytes': p.info.xlated_prog_len, 'jited_bytes': p.info.jited_prog_len,
                     'xlated_insns': p.info.xlated_prog_len // 8, 'tag': p.info.tag}
            if p.ruleset is not None:
                entry['apply_seconds'] = p.apply_seconds
                entry['nwords'] = (len(p.ruleset.rules) + 63) // 64
            programs[p.label] = entry
    finally:
        for p in loaded:
            p.close()
        # the run's pins, then common.PIN_BASE too once nothing else is in it
        _program.remove_pins(run_dir, root=_program.BPFFS)

    return summarize(params, samples, checks, programs, rulesets, elapsed, rule_counts, baseline)


def _fit(xs, ys):
    """Least-squares slope and intercept."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return None, None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


def summarize(params, samples, checks, programs, rulesets, elapsed, rule_counts, baseline=None):
    medians = {}
    for (label, kind), values in samples.items():
        medians.setdefault(label, {})[kind] = common.median(values)
    floor = medians['floor']
    empty = medians['empty']
    cost = dict((n, medians['steering-%d' % n]) for n in rule_counts)
    miss = dict((n, medians['miss-%d' % n]) for n in rule_counts)
    ratios = {}
    targets = {}

    def both(name, num, den):
        # as measured, and "net": less the test-run loop's own cost per repetition (the empty program)
        ratios[name] = dict((k, common.ratio(num[k], den[k])) for k in KINDS)
        ratios[name + '_net'] = dict((k, common.ratio(num[k] - empty[k], den[k] - empty[k])) for k in KINDS)
        return max(ratios[name].values()), max(ratios[name + '_net'].values())

    def target(name, num, den, limit):
        worst, net = both(name, num, den)
        targets[name] = {'target': limit, 'worst': worst, 'worst_net': net, 'met': worst <= limit}

    # the targets on a flow's later packets (the cache answers), and the same ratios on its first packet
    for prefix, costs in (('', cost), ('first_packet_', miss)):
        if 1000 in costs:
            target(prefix + 'cost_1000_over_floor', costs[1000], floor, TARGET_FLOOR_RATIO)
        if 4096 in costs and 10 in costs:
            target(prefix + 'cost_4096_over_cost_10', costs[4096], costs[10], TARGET_SCALE_RATIO)
    for n in rule_counts:
        ratios['first_packet_cost_%d_over_cost' % n] = dict((k, common.ratio(miss[n][k], cost[n][k])) for k in KINDS)
    if baseline:
        for n in rule_counts:
            ratios['cost_%d_over_baseline' % n] = dict(
                (k, common.ratio(cost[n][k], medians['baseline-%d' % n][k])) for k in KINDS)
    # Where the cost grows: classification ANDs ceil(n/64) words before it finds the first set bit (or
    # none), so late and none probes pay per word; fit cost against the number of words.
    growth = {}
    for kind in KINDS:
        xs = [(n + 63) // 64 for n in rule_counts]
        ys = [cost[n][kind] for n in rule_counts]
        slope, intercept = _fit(xs, ys)
        growth[kind] = {'ns_per_64_rule_word': slope, 'ns_at_0_words': intercept,
                        'ns_per_rule': slope / 64 if slope is not None else None,
                        'above_floor_ns': dict((str(n), cost[n][kind] - floor[kind]) for n in rule_counts),
                        'first_packet_above_floor_ns': dict((str(n), miss[n][kind] - floor[kind])
                                                            for n in rule_counts)}
    keep = 15 if params['runs'] > 15 else params['runs']
    return {
        'part': 'dataplane',
        'machine': common.machine_info(),
        'bpf_stats_enabled': _read_int('/proc/sys/kernel/bpf_stats_enabled'),
        'parameters': dict(params, rule_counts=list(rule_counts), kinds=list(KINDS), seed=rulegen.SEED,
                           baseline=baseline,
                           method='BPF_PROG_TEST_RUN, mean ns per repetition per call; median over rounds; '
                                  'pair order shuffled every round'),
        'rulesets': dict((str(n), rulegen.describe(rs)) for n, rs in rulesets.items()),
        'probes': rulegen.PROBES,
        'verified': checks,
        'programs': programs,
        'median_ns': medians,
        'ratios': ratios,
        'targets': targets,
        'growth': growth,
        'linear_scan_reference_ns_per_rule': {'value': LINEAR_SCAN_NS_PER_RULE,
                                              'note': 'from the issue, not measured by this harness'},
        'samples_ns': {'%s/%s' % key: values[:keep] for key, values in sorted(samples.items())},
        'samples_note': 'the first %d of %d rounds per pair' % (keep, params['runs']),
        'seconds': elapsed,
    }


def _read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None

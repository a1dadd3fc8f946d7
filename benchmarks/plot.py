"""The plots: results/cost_vs_rules.png from dataplane.json (ns/packet against the rule count),
results/throughput.png from throughput.json (each system's ratio to no filter) and results/controlplane.png
from controlplane.json (the role's converge and re-run against the fleet size).

cost_vs_rules: one line per (system, probe kind): the steering program for each probe, answered by its flow
cache (solid) and on a flow's first packet (dashed, the build whose cache never answers), the floor program
(which has no rules, so it is drawn flat across the range), and the empty program (what the test-run loop
itself costs per repetition, included in every other figure). The linear-scan figure from the issue (1.7 ns per rule)
is not measured by this harness, so it is only written as a note under the plot, not drawn as data.
"""

import os

import common

KIND_STYLE = {'early': ('tab:green', 'o'), 'late': ('tab:red', 's'), 'none': ('tab:purple', '^'),
              'ipv6': ('tab:blue', 'D')}


def _save(plt, fig, path):
    """Write `fig` to `path` (its directory made when missing), free it and return the path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot(dataplane, path=None):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = path or os.path.join(common.RESULTS, 'cost_vs_rules.png')
    counts = dataplane['parameters']['rule_counts']
    medians = dataplane['median_ns']
    kinds = dataplane['parameters']['kinds']
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for kind in kinds:
        color, marker = KIND_STYLE.get(kind, (None, 'o'))
        ys = [medians['steering-%d' % n][kind] for n in counts]
        ax.plot(counts, ys, marker=marker, color=color, label='ebpf.tc steering, %s probe' % kind)
        if 'miss-%d' % counts[0] in medians:
            ax.plot(counts, [medians['miss-%d' % n][kind] for n in counts], marker=marker, color=color,
                    linestyle='--', alpha=0.6, markerfacecolor='none',
                    label='the same, first packet of a flow (cache miss)' if kind == kinds[0] else None)
    floor = medians['floor']
    for i, kind in enumerate(kinds):
        color = KIND_STYLE.get(kind, (None, 'o'))[0]
        ax.plot([counts[0], counts[-1]], [floor[kind]] * 2, linestyle=':', color=color, alpha=0.8,
                label='floor program (parse only, no rules), dotted, per probe' if i == 0 else None)
    if 'empty' in medians:
        ax.plot([counts[0], counts[-1]], [medians['empty']['late']] * 2, linestyle='-.', color='black', alpha=0.6,
                label='empty program: the test-run loop\'s own cost per repetition')
    targets = dataplane.get('targets', {})
    if 10 in counts and 4096 in counts and 'cost_4096_over_cost_10' in targets:
        limit = targets['cost_4096_over_cost_10']['target'] * medians['steering-10']['late']
        ax.plot([1000, 4096], [limit, limit], linestyle='--', color='gray',
                label='target at 4,096 rules: %.1f x cost at 10 rules (late probe)'
                      % targets['cost_4096_over_cost_10']['target'])
    if 'cost_1000_over_floor' in targets:
        limit = targets['cost_1000_over_floor']['target'] * floor['late']
        ax.plot([100, 1000], [limit, limit], linestyle='--', color='tab:brown',
                label='target at 1,000 rules: %.0f x the floor (late probe)' % targets['cost_1000_over_floor']['target'])
    ax.set_xscale('log')
    ax.set_xticks(counts)
    ax.set_xticklabels([str(n) for n in counts])
    ax.set_xlabel('rules in the set (log scale)')
    ax.set_ylabel('ns per packet (BPF_PROG_TEST_RUN, median)')
    ax.set_ylim(bottom=0)
    machine = dataplane['machine']
    ax.set_title('Per-packet cost vs rule count\n%s, %s, %s' % (
        machine['kernel'], machine['cpu_model'], machine['date'][:10]), fontsize=10)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8, loc='upper left')
    fig.text(0.01, 0.01, 'For scale (not measured here): a linear scan at the issue\'s 1.7 ns/rule would cost '
             '~1.7 us at 1,000 rules and ~7 us at 4,096.', fontsize=7, alpha=0.8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(plt, fig, path)


THROUGHPUT_METRICS = (('tcp', 'TCP'), ('tcp_per_cpu', 'TCP per CPU'), ('udp', 'UDP 64 B'),
                      ('udp_per_cpu', 'UDP 64 B per CPU'))


def plot_throughput(throughput, path=None):
    """A bar per (system, metric): the median over pairs of the ratio to 'none', the whiskers the
    interquartile range; the 0.95 target as a line."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = path or os.path.join(common.RESULTS, 'throughput.png')
    ratios = throughput['ratio_to_none']
    systems = [s for s in throughput['parameters']['systems'] if s in ratios]
    fig, ax = plt.subplots(figsize=(9, 5), dpi=110)
    width = 0.8 / len(THROUGHPUT_METRICS)
    for i, (metric, label) in enumerate(THROUGHPUT_METRICS):
        xs, ys, lo, hi = [], [], [], []
        for j, system in enumerate(systems):
            r = ratios[system].get(metric)
            if r:
                xs.append(j + (i - (len(THROUGHPUT_METRICS) - 1) / 2.0) * width)
                ys.append(r['median'])
                lo.append(r['median'] - r['q1'])
                hi.append(r['q3'] - r['median'])
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=label)
    ax.axhline(0.95, linestyle='--', color='gray', label='target: 0.95 of no filter')
    ax.set_xticks(range(len(systems)))
    ax.set_xticklabels(systems, rotation=20, ha='right', fontsize=8)
    ax.set_ylabel('ratio to no filter (median over pairs, IQR)')
    ax.set_ylim(0, 1.15)
    machine = throughput['machine']
    ax.set_title('Throughput with %d rules, sender egress of a veth\n%s, %s, %s' % (
        throughput['parameters']['rules'], machine['kernel'], machine['cpu_model'], machine['date'][:10]),
        fontsize=10)
    ax.grid(True, axis='y', alpha=0.3)
    ax.legend(fontsize=8, loc='upper right', ncol=3)
    fig.tight_layout()
    return _save(plt, fig, path)


def plot_controlplane(controlplane, path=None):
    """Per fleet size, the wall seconds of the role's converge and idempotent re-run (bars, log scale), with
    the 50-host targets as lines; beside them, hatched, an earlier commit's run on the same machine when the
    JSON carries one ('baseline': {'git_commit', 'role_fleet'})."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path = path or os.path.join(common.RESULTS, 'controlplane.png')
    rows = controlplane['role_fleet']
    machine = controlplane['machine']
    baseline = controlplane.get('baseline')
    series = []
    if baseline:
        base = dict((row['hosts'], row) for row in baseline['role_fleet'])
        series.append(('converge', 'tab:blue', '//', [base.get(row['hosts']) for row in rows], baseline['git_commit'][:7]))
        series.append(('rerun', 'tab:green', '//', [base.get(row['hosts']) for row in rows], baseline['git_commit'][:7]))
    series.insert(1 if baseline else 0, ('converge', 'tab:blue', None, rows, machine['git_commit'][:7]))
    series.append(('rerun', 'tab:green', None, rows, machine['git_commit'][:7]))
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    width = 0.8 / len(series)
    for i, (run, color, hatch, fleet, commit) in enumerate(series):
        xs = [x + (i - (len(series) - 1) / 2.0) * width for x in range(len(rows))]
        ys = [row['%s_s' % run] if row else 0 for row in fleet]
        label = '%s, %s' % ('converge' if run == 'converge' else 'idempotent re-run', commit)
        bars = ax.bar(xs, ys, width, color='white' if hatch else color, edgecolor=color, hatch=hatch, label=label)
        ax.bar_label(bars, labels=['%.0f s' % y if y else '' for y in ys], fontsize=7)
    for name, color in (('converge_50_hosts_under_180s', 'tab:blue'), ('rerun_50_hosts_under_60s', 'tab:green')):
        target = controlplane['targets'][name]['target_s']
        ax.axhline(target, linestyle='--', color=color, alpha=0.6, label='target for 50 hosts: %.0f s' % target)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(['%d hosts, forks %d' % (row['hosts'], row['forks']) for row in rows])
    ax.set_yscale('log')
    ax.set_ylim(1, 20000)
    ax.set_ylabel('wall seconds (log scale)')
    ax.set_title('The role ebpf.tc.steering on fleet-lab hosts (controller and hosts share the machine)\n'
                 '%s, %d vCPUs, %s' % (machine['kernel'], machine['nproc'], machine['date'][:10]), fontsize=10)
    ax.grid(True, axis='y', alpha=0.3)
    ax.legend(fontsize=8, loc='upper left', ncol=3)
    fig.tight_layout()
    return _save(plt, fig, path)

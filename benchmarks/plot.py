"""benchmarks/results/cost_vs_rules.png from dataplane.json: ns/packet against the rule count.

One line per (system, probe kind): the steering program for each probe, the floor program (which has no
rules, so it is drawn flat across the range), and the empty program (what the test-run loop itself costs
per repetition, included in every other figure). The linear-scan figure from the issue (1.7 ns per rule)
is not measured by this harness, so it is only written as a note under the plot, not drawn as data.
"""

import os

import common

KIND_STYLE = {'early': ('tab:green', 'o'), 'late': ('tab:red', 's'), 'none': ('tab:purple', '^'),
              'ipv6': ('tab:blue', 'D')}


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
    floor = medians['floor']
    for i, kind in enumerate(kinds):
        color = KIND_STYLE.get(kind, (None, 'o'))[0]
        ax.plot([counts[0], counts[-1]], [floor[kind]] * 2, linestyle=':', color=color, alpha=0.8,
                label='floor program (parse only, no rules), dotted, per probe' if i == 0 else None)
    if 'empty' in medians:
        ax.plot([counts[0], counts[-1]], [medians['empty']['late']] * 2, linestyle='-.', color='black', alpha=0.6,
                label='empty program: the test-run loop\'s own cost per repetition')
    if 10 in counts and 4096 in counts:
        limit = 1.5 * medians['steering-10']['late']
        ax.plot([1000, 4096], [limit, limit], linestyle='--', color='gray',
                label='target at 4,096 rules: 1.5 x cost at 10 rules (late probe)')
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
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

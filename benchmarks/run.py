"""Run the ebpf.tc benchmarks (benchmarks/README.md). Root, bpffs mounted; `make bench` prepares both.

    benchmarks/run.py                       every part, full length (about 10 minutes)
    benchmarks/run.py --quick               a smoke run (about a minute); results go to .tmp/bench/results
    benchmarks/run.py --only dataplane,throughput
    benchmarks/run.py --plot-only           redraw the plots from the JSON files in results/
    benchmarks/run.py --only dataplane --baseline REV
                                            also time the object committed at REV, side by side

Parts: dataplane (per-packet cost, BPF_PROG_TEST_RUN), throughput (veth + iperf3 against nftables,
iptables, tc flower), controlplane (filled by the control-plane part). Each writes
<out>/<part>.json; dataplane also draws <out>/cost_vs_rules.png, throughput <out>/throughput.png.
"""

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PARTS = ('dataplane', 'throughput', 'controlplane')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--only', default=','.join(PARTS),
                        help='comma-separated parts to run (default: all of %s)' % ', '.join(PARTS))
    parser.add_argument('--quick', action='store_true',
                        help='a short smoke run; unless --out is given, results go to .tmp/bench/results so '
                             'that the committed numbers are not overwritten by a quick run')
    parser.add_argument('--out', default=None, help='directory for the JSON files and the plot '
                                                    '(default: benchmarks/results)')
    parser.add_argument('--baseline', metavar='REV', default=None,
                        help='dataplane: also time the steering object committed at git revision REV, side by side')
    parser.add_argument('--plot-only', action='store_true', help='only redraw the plots from the JSON files in <out>')
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.only.split(',') if p.strip()]
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error('unknown part(s) %s; choose from %s' % (', '.join(unknown), ', '.join(PARTS)))
    if args.out is None:
        args.out = os.path.join(common.BUILD, 'results') if args.quick else common.RESULTS
    return args


PLOTS = {'dataplane': ('plot', 'cost_vs_rules.png'), 'throughput': ('plot_throughput', 'throughput.png'),
         'controlplane': ('plot_controlplane', 'controlplane.png')}


def draw(out, parts=tuple(PLOTS)):
    """Draw the plots of `parts` from their JSON in `out`; the paths drawn."""
    drawn = []
    for part in parts:
        data = common.read_result(part, out)
        if data is None:
            common.log('no %s.json in %s: nothing to plot' % (part, out))
            continue
        try:
            import plot
        except ImportError as err:
            common.log('cannot plot (%s): install benchmarks/requirements.txt (make bench does)' % err)
            return drawn
        function, name = PLOTS[part]
        drawn.append(getattr(plot, function)(data, os.path.join(out, name)))
        common.log('wrote %s' % drawn[-1])
    return drawn


def summary_line(part, data):
    if part == 'dataplane':
        t = data.get('targets', {})
        bits = []
        for name, v in t.items():
            bits.append('%s: worst %.2f (%.2f net of the test-run loop; target %.1f) %s' % (
                name, v['worst'], v['worst_net'], v['target'], 'met' if v['met'] else 'MISSED'))
        return '; '.join(bits)
    if part == 'throughput':
        bits = []
        for system, tests in data.get('targets', {}).items():
            for test, v in tests.items():
                bits.append('%s %s: %.3f of no filter (%s), ahead of %s: %s' % (
                    system, test, v['ratio_to_none'], 'met' if v['met_95_percent'] else 'MISSED',
                    ', '.join('%s %.3f' % kv for kv in v['peers'].items()), 'yes' if v['ahead_of_peers'] else 'NO'))
        bits.extend('TCX saves %s %.0f ns/packet' % kv for kv in data.get('tcx_saves_ns_per_packet', {}).items())
        return '; '.join(bits)
    return ''


def main(argv=None):
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit('the benchmarks need root (bpf(2), network namespaces)')
    if args.plot_only:
        return 0 if draw(args.out) else 1
    started = time.monotonic()
    status = 0
    for part in args.parts:
        common.log('== %s%s' % (part, ' (quick)' if args.quick else ''))
        module = importlib.import_module(part)
        t0 = time.monotonic()
        try:
            kwargs = {'baseline': args.baseline} if part == 'dataplane' and args.baseline else {}
            data = module.measure(quick=args.quick, **kwargs)
        except NotImplementedError as err:
            data = {'part': part, 'machine': common.machine_info(), 'status': 'not implemented', 'reason': str(err)}
        data['quick'] = args.quick
        data['part_seconds'] = time.monotonic() - t0
        path = common.write_result(part, data, args.out)
        common.log('wrote %s (%.0f s)%s' % (path, data['part_seconds'],
                                            (': ' + summary_line(part, data)) if summary_line(part, data) else ''))
        if part in PLOTS:
            draw(args.out, [part])
    common.log('total %.0f s' % (time.monotonic() - started))
    return status


if __name__ == '__main__':
    sys.exit(main())

"""`make demo`: the MetalLB return-path problem on a lab fleet, fixed by the `ebpf.tc.rollout` playbook.

1. builds the lab (tools/fleetlab.py): N nodes reached over real SSH, two routers, a client three hops away;
2. shows the client failing to reach the nodes' service addresses (the replies leave by the default gateway);
3. runs `ansible-playbook ebpf.tc.rollout` from the lab's controller namespace: canary, batches, checks;
4. shows the client reaching every service address, and each node's per-rule counters (ebpf.tc.tc_info);
5. tears the lab down, unless --keep (then it says how to).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tools'))
from fleetlab import FleetLab, ansible_env  # noqa: E402


def banner(text):
    print('\n' + '=' * 100 + '\n' + text + '\n' + '=' * 100, flush=True)


def show_probe(lab):
    results = lab.probe()
    for row in results:
        print('  client -> %-8s %-22s %s' % (row['node'], row['address'] + ':8080', 'ok' if row['ok'] else 'FAIL'))
    ok = sum(1 for row in results if row['ok'])
    print('  %d of %d TCP connects succeeded' % (ok, len(results)), flush=True)
    return ok, len(results)


def show_counters(lab, env):
    """Each node's tc_info table (interfaces, programs, per-rule counters), read over SSH."""
    with tempfile.TemporaryDirectory(prefix='ebpf-tc-demo-') as tree:
        subprocess.run(lab.ctl_argv(['ansible', 'nodes', '-i', lab.inventory, '-m', 'ebpf.tc.tc_info',
                                     '-t', tree, '-o']),
                       env=env, check=True, stdout=subprocess.DEVNULL)
        for node in lab.nodes:
            with open(os.path.join(tree, node)) as src:
                info = json.load(src)
            print('\n%s\n%s' % (node, '\n'.join('  ' + line for line in info['table'].splitlines())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nodes', type=int, default=int(os.environ.get('NODES', '4')))
    parser.add_argument('--dir', default=os.path.join(ROOT, '.tmp', 'demo-lab'))
    parser.add_argument('--keep', action='store_true', default=os.environ.get('KEEP') == '1',
                        help='leave the lab up at the end (KEEP=1 from make)')
    args = parser.parse_args()
    # the role's skipped tasks would bury the rest
    env = ansible_env(ANSIBLE_FORKS='50', ANSIBLE_DISPLAY_SKIPPED_HOSTS='0')
    lab = FleetLab(args.dir, log=lambda message: print('  ' + message, flush=True))
    started = time.time()
    banner('Building the lab: %d nodes, routers gw and sec, a client three hops away (%s)' % (args.nodes, args.dir))
    lab.up(nodes=args.nodes, name='demo')
    try:
        banner('Before: the client connects to each node\'s service addresses (replies leave by the default gateway)')
        ok, total = show_probe(lab)
        if ok:
            raise SystemExit('expected every connect to fail before steering, %d succeeded' % ok)

        banner('ansible-playbook ebpf.tc.rollout (canary, then batches, each checked)')
        report = os.path.join(args.dir, 'rollout-report.json')
        rc = subprocess.run(lab.ctl_argv(['ansible-playbook', 'ebpf.tc.rollout', '-i', lab.inventory,
                                          '-e', 'ebpf_tc_rollout_hosts=nodes', '-e', 'ebpf_tc_rollout_report=' + report]),
                            env=env, check=False).returncode
        if rc != 0:
            raise SystemExit('the rollout failed (exit %d)' % rc)

        banner('After: the same connects, through the steered return path')
        ok, total = show_probe(lab)
        if ok != total:
            raise SystemExit('expected every connect to succeed after the rollout, %d of %d did' % (ok, total))

        banner('Per-rule counters on each node (ebpf.tc.tc_info over SSH)')
        show_counters(lab, env)
        print('\ndemo done in %.0f s' % (time.time() - started))
    finally:
        if args.keep:
            print('\nThe lab is still up. Run Ansible against it with:\n'
                  '  python3 tools/fleetlab.py --dir %s run -- ansible-playbook ebpf.tc.rollout -i %s '
                  '-e ebpf_tc_rollout_hosts=nodes\n'
                  'and tear it down with:\n  make demo-down   (or: python3 tools/fleetlab.py --dir %s down)'
                  % (args.dir, lab.inventory, args.dir))
        else:
            banner('Tearing the lab down')
            lab.down()


if __name__ == '__main__':
    main()

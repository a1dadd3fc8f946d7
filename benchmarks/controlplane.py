"""Part 3: the control plane. How long operators wait, measured the way they run it.

1. Applying a 1,000-rule set with ``ebpf.tc.steering_rules``, and with ``ebpf.tc.steering_state`` (the
   whole host's state, as the role calls it), through ansible-playbook (local connection, in a namespace of
   ours): the module's own time per task, as Ansible sees it from task start to result, for changed sets
   (two different 1,000-rule sets, alternately) and for no-op re-applies; beside it the in-process
   ``SteeringMaps.apply`` (what the module spends on the maps, without Python start-up and AnsiballZ).
2. The role ``ebpf.tc.steering`` on 1, 10 and 50 hosts of the fleet lab (tools/fleetlab.py, real SSH):
   wall time of the converge and of the idempotent re-run (which must report changed=0 on every host), with
   forks = the number of hosts, at most EBPF_TC_BENCH_FORKS (default 50); the tasks each host ran (the
   recap's ok) and the machine's busy CPU seconds per host (controller and hosts share this machine).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

import common
import rulegen

from nslab import Lab
from fleetlab import FleetLab, ansible_env as lab_ansible_env

from ansible_collections.ebpf.tc.plugins.module_utils import _program
from ansible_collections.ebpf.tc.plugins.module_utils._steering import SteeringMaps

CALLBACKS = os.path.join(common.BENCH, 'callback_plugins')
RULES = 1000


def ansible_env(**extra):
    """The lab's Ansible environment with the per-task timing callback."""
    settings = dict(ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED='task_times')
    settings.update(extra)
    return lab_ansible_env(**settings)


def recap(output):
    return {host: {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', counts)}
            for host, counts in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', output, re.M)}


def _apply_task(module, rules):
    """One task applying `rules` to eth0 egress of the bench namespace, through `module`."""
    if module == 'steering_rules':
        return {'name': 'apply', 'ebpf.tc.steering_rules': {
            'interface': 'eth0', 'netns': '{{ bench_ns }}', 'rules': rules}}
    # the whole host's state in one call, as the role makes it (the filter attached below is clsact)
    return {'name': 'apply', 'ebpf.tc.steering_state': {
        'netns': '{{ bench_ns }}', 'object': common.STEERING_OBJECT, 'backend': 'clsact',
        'hooks': [{'interface': 'eth0', 'direction': 'egress', 'rules': rules}]}}


def module_apply(repeats, module='steering_rules'):
    """`module` applying 1,000-rule sets: per-task seconds, changed and no-op, plus in-process apply."""
    sets = [rulegen.rules(RULES, seed=seed) for seed in (1, 2)]
    tasks = []
    for i in range(repeats):
        for rules in (sets[i % 2], sets[i % 2]):       # a change, then the same set again (a no-op)
            tasks.append(_apply_task(module, rules))
    with Lab(prefix='%s-cp-%s' % (common.NS_PREFIX, uuid.uuid4().hex[:4])) as lab, \
            tempfile.TemporaryDirectory(prefix='ebpf-tc-bench-') as tmp:
        node, peer = lab.ns('node'), lab.ns('peer')
        lab.veth(node, 'eth0', peer, 'eth0')
        pin_dir = _program.default_pin_dir('eth0', 'egress', netns=node)
        try:
            _program.filter_present('eth0', 'egress', node, pin_dir, common.STEERING_OBJECT, 'steering',
                                    priority=10, handle=1)
            playbook = os.path.join(tmp, 'play.yml')
            with open(playbook, 'w') as out:
                json.dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], out)  # JSON is YAML
            times = os.path.join(tmp, 'times.jsonl')
            proc = subprocess.run(
                ['ansible-playbook', '-i', 'localhost,', '-c', 'local', '-e', 'bench_ns=%s' % node,
                 '-e', 'ansible_python_interpreter=%s' % sys.executable, playbook],
                env=ansible_env(EBPF_TC_BENCH_TIMES=times), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, timeout=1800, check=False)
            if proc.returncode != 0:
                raise RuntimeError('the %s play failed:\n%s' % (module, proc.stdout[-3000:]))
            with open(times) as src:
                results = [json.loads(line) for line in src]
            changed = [r['seconds'] for r in results if r['changed']]
            noop = [r['seconds'] for r in results if not r['changed']]
            if len(changed) != repeats or len(noop) != repeats:
                raise RuntimeError('expected %d changed and %d no-op applies, got %d and %d'
                                   % (repeats, repeats, len(changed), len(noop)))
            inproc = []
            with SteeringMaps(pin_dir) as maps:
                for i in range(repeats):
                    ruleset = rulegen.ruleset(RULES, seed=1 + i % 2)
                    t0 = time.perf_counter()
                    maps.apply(ruleset, ifindex_of=lambda name: 1, ifname_of=str)
                    inproc.append(time.perf_counter() - t0)
        finally:
            _program.remove_pins(pin_dir)
    return {'rules': RULES, 'module_changed_s': common.spread(changed), 'module_noop_s': common.spread(noop),
            'in_process_apply_s': common.spread(inproc), 'samples': {'changed': changed, 'noop': noop}}


def machine_cpu_seconds():
    """Busy CPU seconds of the whole machine since boot (/proc/stat: every state but idle and iowait)."""
    with open('/proc/stat') as src:
        fields = [int(v) for v in src.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]
    return busy / float(os.sysconf('SC_CLK_TCK'))


def fleet(sizes, max_forks):
    """The role's converge and idempotent re-run on lab fleets of each size; wall seconds."""
    out = []
    for size in sizes:
        forks = min(size, max_forks)
        directory = os.path.join(common.BUILD, 'lab-%d' % size)
        with FleetLab(directory) as lab, tempfile.TemporaryDirectory(prefix='ebpf-tc-bench-') as tmp:
            lab.up(nodes=size, name='bench%d' % size)
            playbook = os.path.join(tmp, 'role.yml')
            with open(playbook, 'w') as out_file:
                json.dump([{'hosts': 'nodes', 'gather_facts': False, 'roles': ['ebpf.tc.steering']}], out_file)
            row = {'hosts': size, 'forks': forks}
            for run in ('converge', 'rerun'):
                cpu0 = machine_cpu_seconds()
                t0 = time.monotonic()
                proc = subprocess.run(lab.ctl_argv(['ansible-playbook', '-i', lab.inventory, '-f', str(forks),
                                                    playbook]),
                                      env=ansible_env(ANSIBLE_CALLBACKS_ENABLED=''), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True, timeout=3600, check=False)
                row['%s_s' % run] = time.monotonic() - t0
                # controller and hosts share this machine: its busy CPU time over the run, per host
                row['%s_cpu_s_per_host' % run] = (machine_cpu_seconds() - cpu0) / size
                counts = recap(proc.stdout)
                if proc.returncode != 0 or len(counts) != size:
                    raise RuntimeError('the role failed on the %d-host lab:\n%s' % (size, proc.stdout[-3000:]))
                row['%s_changed_hosts' % run] = sum(1 for c in counts.values() if c['changed'])
                # the recap's ok counts every task a host ran (changed ones too), skipped ones not
                row['%s_tasks_per_host' % run] = max(c['ok'] for c in counts.values())
            if row['rerun_changed_hosts']:
                raise RuntimeError('the re-run changed %d hosts' % row['rerun_changed_hosts'])
            if not all(r['ok'] for r in lab.probe(retry_for=10)):
                raise RuntimeError('the role converged but some service address is unreachable')
            common.log('role on %d hosts (forks %d): converge %.1f s, re-run %.1f s'
                       % (size, forks, row['converge_s'], row['rerun_s']))
            out.append(row)
    return out


def measure(quick=False):
    sizes = [1, 4] if quick else [1, 10, 50]
    started = time.monotonic()
    apply = module_apply(repeats=2 if quick else 5)
    state_apply = module_apply(repeats=2 if quick else 5, module='steering_state')
    for name, got in (('steering_rules', apply), ('steering_state', state_apply)):
        common.log('%s, %d rules: changed %.2f s, no-op %.2f s (median); in-process apply %.2f s'
                   % (name, RULES, got['module_changed_s']['median'], got['module_noop_s']['median'],
                      got['in_process_apply_s']['median']))
    max_forks = int(os.environ.get('EBPF_TC_BENCH_FORKS', '50'))
    fleets = fleet(sizes, max_forks=max_forks)
    rerun_50 = [row for row in fleets if row['hosts'] == 50]
    return {
        'part': 'controlplane',
        'machine': common.machine_info(),
        'parameters': {'rules': RULES, 'fleet_sizes': sizes, 'max_forks': max_forks, 'pipelining': True},
        'steering_rules_apply': apply,
        'steering_state_apply': state_apply,
        'role_fleet': fleets,
        'targets': {
            'apply_1000_rules_under_1s': {'target_s': 1.0, 'measured_s': apply['module_changed_s']['median'],
                                          'met': apply['module_changed_s']['median'] < 1.0},
            'state_apply_1000_rules_under_0.5s': {'target_s': 0.5,
                                                  'measured_s': state_apply['module_changed_s']['median'],
                                                  'met': state_apply['module_changed_s']['median'] < 0.5},
            'rerun_50_hosts_under_60s': ({'target_s': 60.0, 'measured_s': rerun_50[0]['rerun_s'],
                                          'met': rerun_50[0]['rerun_s'] < 60.0} if rerun_50 else None),
            'converge_50_hosts_under_180s': ({'target_s': 180.0, 'measured_s': rerun_50[0]['converge_s'],
                                              'met': rerun_50[0]['converge_s'] < 180.0} if rerun_50 else None),
            'rerun_tasks_per_host_at_most_12': {'target': 12, 'measured': fleets[0]['rerun_tasks_per_host'],
                                                'met': fleets[0]['rerun_tasks_per_host'] <= 12},
            'rerun_cpu_s_per_host_at_most_2': ({'target_s': 2.0, 'measured_s': rerun_50[0]['rerun_cpu_s_per_host'],
                                                'met': rerun_50[0]['rerun_cpu_s_per_host'] <= 2.0}
                                               if rerun_50 else None),
        },
        'seconds': time.monotonic() - started,
    }

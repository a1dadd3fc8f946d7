"""What every benchmark part shares: the import path, machine facts, statistics, result files.

The collection is imported as ``ansible_collections.ebpf.tc`` the way the tests and the demo do it
(tests/conftest.py links the checkout into .tmp/collections), and tests/ is on the path for the
reference model and the frame builders.
"""

import datetime
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, 'benchmarks')
RESULTS = os.path.join(BENCH, 'results')
BUILD = os.path.join(ROOT, '.tmp', 'bench')           # build output (.tmp/ is ignored by git)
PIN_BASE = '/sys/fs/bpf/ebpf_tc_bench'                 # every pin a bench run makes lives under here
NS_PREFIX = 'ebtcb'                                    # every namespace a bench run makes starts with this
STEERING_OBJECT = os.path.join(ROOT, 'files', 'bpf', 'steering.bpf.o')

for _path in (os.path.join(ROOT, 'tests'), os.path.join(ROOT, 'tools'), BENCH):
    if _path not in sys.path:
        sys.path.insert(0, _path)
importlib.import_module('conftest')  # tests/conftest.py makes the tree importable as ansible_collections.ebpf.tc


def run(*argv, check=True, timeout=60, **kw):
    return subprocess.run(argv, check=check, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


def _cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _git(*args):
    try:
        return run('git', '-C', ROOT, *args).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info():
    """Where and when: kernel, CPU, cores, date (UTC), commit (and whether the tree had changes)."""
    dirty = _git('status', '--porcelain', '--untracked-files=no')
    return {
        'kernel': platform.release(),
        'cpu_model': _cpu_model(),
        'nproc': os.cpu_count(),
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'git_commit': _git('rev-parse', 'HEAD'),
        'git_dirty': bool(dirty) if dirty is not None else None,
        'python': platform.python_version(),
    }


def median(values):
    return statistics.median(values) if values else None


def spread(values):
    """Median, min, max and the interquartile range of a sample: enough to judge the noise."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) >= 4:
        q = statistics.quantiles(ordered, n=4)
        q1, q3 = q[0], q[2]
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {'median': statistics.median(ordered), 'min': ordered[0], 'max': ordered[-1], 'q1': q1, 'q3': q3,
            'n': len(ordered)}


def ratio(num, den):
    if num is None or not den:
        return None
    return num / den


def rounded(value, digits=3):
    """Floats rounded for the JSON files (they are committed: keep them short and diff-friendly)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return dict((k, rounded(v, digits)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def write_result(part, data, out_dir=RESULTS):
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, '%s.json' % part)
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(rounded(data), f, indent=1, sort_keys=False)
        f.write('\n')
    os.replace(tmp, path)
    return path


def read_result(part, out_dir=RESULTS):
    path = os.path.join(out_dir, '%s.json' % part)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def log(msg):
    sys.stderr.write('[bench] %s\n' % msg)
    sys.stderr.flush()

"""Run tasks through ansible-playbook, the way operators do, and return what every task returned.

The collection is found through .tmp/collections (tests/conftest.py links the tree there); the
inventory is localhost over the local connection with the modules' interpreter set explicitly
(docs/docsite/rst/design.rst: interpreter discovery picks the wrong Python on a machine with several): this
one, or EBPF_TC_TARGET_PYTHON, which `make hosts` points at a Python 3.9 with the oldest pyroute2 supported.
"""

import json
import os
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COLLECTIONS = os.path.join(ROOT, '.tmp', 'collections')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), 'ansible-playbook')
# The Python the modules run with on the (local) target.
TARGET_PYTHON = os.environ.get('EBPF_TC_TARGET_PYTHON') or sys.executable


class PlayResult:
    def __init__(self, rc, tasks, output):
        self.rc = rc
        self.tasks = tasks      # one dict per task result: task, action, host, status, result
        self.output = output    # ansible-playbook's own stdout+stderr, for failure messages

    def __getitem__(self, index):
        return self.tasks[index]['result']

    def __len__(self):
        return len(self.tasks)

    @property
    def changed(self):
        return [t['result'].get('changed', False) for t in self.tasks]

    @property
    def failed(self):
        return [t for t in self.tasks if t['status'] == 'failed']

    def __repr__(self):
        tasks = json.dumps(self.tasks, indent=1, default=str)[:6000]
        return 'PlayResult(rc=%d, %s)\n%s' % (self.rc, tasks, self.output[-3000:])


def run_play(tasks, check=False, diff=False, extra_vars=None, hosts='localhost', inventory=None, timeout=300,
             collections_path=COLLECTIONS, verbosity=0, netns=None):
    """Run `tasks` (a list of task dicts) in one play; returns a PlayResult (never raises on failure).

    collections_path: where Ansible looks for collections (the only place: the source tree's link by
    default, an installed copy in test_install). netns: run ansible-playbook itself inside that network
    namespace (then the controller's facts, localhost's, are the namespace's).
    """
    with tempfile.TemporaryDirectory(prefix='ebpf-tc-play-') as tmp:
        play = [{'name': 'ebpf.tc test play', 'hosts': hosts, 'gather_facts': False, 'tasks': tasks}]
        playbook = os.path.join(tmp, 'play.yml')
        with open(playbook, 'w') as out:
            yaml.safe_dump(play, out, sort_keys=False)
        if inventory is None:
            inventory = os.path.join(tmp, 'inventory.ini')
            with open(inventory, 'w') as out:
                out.write('localhost ansible_connection=local ansible_python_interpreter=%s\n' % TARGET_PYTHON)
        results = os.path.join(tmp, 'results.jsonl')
        env = dict(os.environ,
                   ANSIBLE_COLLECTIONS_PATH=collections_path,
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, 'callback_plugins'),
                   ANSIBLE_CALLBACKS_ENABLED='record_results',
                   ANSIBLE_LOCAL_TEMP=os.path.join(tmp, 'local'),
                   ANSIBLE_REMOTE_TEMP=os.path.join(tmp, 'remote'),
                   ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_HOST_KEY_CHECKING='0',
                   EBPF_TC_RESULTS=results)
        argv = [ANSIBLE_PLAYBOOK, '-i', inventory, playbook]
        if check:
            argv.append('--check')
        if diff:
            argv.append('--diff')
        if extra_vars:
            argv += ['-e', json.dumps(extra_vars)]
        if verbosity:
            argv.append('-' + 'v' * verbosity)
        if netns:
            argv = ['ip', 'netns', 'exec', netns] + argv
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=timeout, check=False)
        tasks = []
        if os.path.exists(results):
            with open(results) as lines:
                tasks = [json.loads(line) for line in lines]
        return PlayResult(proc.returncode, tasks, proc.stdout)

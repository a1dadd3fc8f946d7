"""`ansible-doc ebpf.tc.<module>` renders for every module, with the documented attributes.

The options themselves are checked against each module's argument_spec by ansible-test's
validate-modules; this is what an operator sees.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = ['bpf_filter', 'bpf_map', 'bpf_map_info', 'bpf_object_info', 'clsact', 'steering_explain', 'steering_rules', 'steering_state', 'tc_info']
ANSIBLE_DOC = os.path.join(os.path.dirname(sys.executable), 'ansible-doc')


def ansible_doc(*args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, '.tmp', 'collections'), ANSIBLE_NOCOLOR='1')
    return subprocess.run([ANSIBLE_DOC] + list(args), env=env, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120).stdout


def test_every_module_is_listed():
    listed = json.loads(ansible_doc('-j', '-l', 'ebpf.tc'))
    assert sorted(name.split('.')[-1] for name in listed) == MODULES


@pytest.mark.parametrize('module', MODULES)
def test_module_doc_renders(module):
    doc = json.loads(ansible_doc('-j', 'ebpf.tc.' + module))['ebpf.tc.' + module]
    assert doc['doc']['short_description']
    assert set(doc['doc']['attributes']) >= {'check_mode', 'diff_mode', 'idempotent', 'platform'}
    assert doc['examples'].strip() and doc['return']
    text = ansible_doc('ebpf.tc.' + module)
    assert 'EXAMPLES' in text and 'RETURN VALUES' in text


def test_steering_rules_examples_are_valid_rule_sets():
    """Every rule set in the module's EXAMPLES passes the validator the module runs."""
    from ansible_collections.ebpf.tc.plugins.module_utils import _rules
    from ansible_collections.ebpf.tc.plugins.modules import steering_rules

    import yaml
    tasks = yaml.safe_load(steering_rules.EXAMPLES)
    checked = 0
    for task in tasks:
        args = task['ebpf.tc.steering_rules']
        if 'rules' in args:
            _rules.validate(args['rules'], args.get('default_action', 'pass'))
            checked += 1
    assert checked >= 3


def test_steering_state_examples_are_valid_state_documents():
    """Every state in the module's EXAMPLES passes the module's own check, and each hook's rules the validator."""
    from ansible_collections.ebpf.tc.plugins.module_utils import _rules
    from ansible_collections.ebpf.tc.plugins.modules import steering_state

    import yaml
    checked = 0
    for task in yaml.safe_load(steering_state.EXAMPLES):
        args = task['ebpf.tc.steering_state']
        params = dict((key, args.get(key, spec.get('default'))) for key, spec in steering_state.ARGUMENT_SPEC.items())
        params['object'] = params['object'] or '/'
        for hook in steering_state.state_document(params)['hooks']:
            _rules.validate(hook['rules'], hook['default_action'])
            checked += 1
    assert checked == 3

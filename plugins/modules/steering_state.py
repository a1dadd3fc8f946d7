#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: steering_state
short_description: Converge a host's whole steering state in one call
version_added: 0.2.0
description:
  - Takes every hook a host should run (interface, direction, default action, rules), how the steering
    program is attached (O(backend), O(placement), or the clsact O(priority)/O(handle)) and the interfaces
    whose C(rp_filter) must be loose, and makes the host match in one call - the call the
    R(steering role,ansible_collections.ebpf.tc.steering_role) makes.
  - Per hook it attaches or replaces the program (what M(ebpf.tc.bpf_filter) does) and switches the rule set
    atomically when it differs from the set read back from the program's maps (what M(ebpf.tc.steering_rules)
    does). Hooks that O(record) lists and O(hooks) no longer names are detached, with their pins.
  - 'Everything - the shape of every hook, each rule set, the interfaces, the object and its program, a
    foreign filter at O(priority)/O(handle) - is checked before anything on the host changes; an error names
    the field, for example C(hooks[1] (eth1 ingress): rules[3] (name web): match.dport).'
  - The boot-time restore unit the role installs runs the same code on the same state document (O(state_file)),
    without Ansible.
  - O(state=absent) removes what the module created and nothing else - the program and pins on every hook of
    O(hooks) and of O(record), the clsact qdiscs O(record) says were added (when no other filter is left on
    them), and the C(rp_filter) values it replaced (while they are still the module's C(2)).
  - Idempotent, read from the kernel (the programs and links on the hooks, the maps' rule sets, the sysctls).
    Check mode reports what would change; diff mode shows, per hook, the attachment and the rule set before
    and after.
author:
  - ebpf.tc contributors (!UNKNOWN)
options:
  state:
    description:
      - V(present) converges the host to O(hooks); V(absent) removes what the module created.
    type: str
    choices: [present, absent]
    default: present
  hooks:
    description:
      - Every hook the host runs. Keys - C(interface) (required), C(direction) (V(ingress) or V(egress),
        default V(egress)), C(pin_dir) (default C(/sys/fs/bpf/ebpf_tc/<interface>/<direction>), under
        C(netns/<netns>/) with O(netns)), C(default_action) (V(pass) or V(drop), default V(pass)) and
        C(rules) (the schema of M(ebpf.tc.steering_rules), default V([])).
      - V([]) with O(state=present) detaches every hook O(record) lists.
    type: list
    elements: dict
    default: []
  netns:
    description: The network namespace (a name under C(/var/run/netns)) the interfaces are in.
    type: str
  object:
    description:
      - Path of the steering BPF object on the target (the collection's C(files/bpf/steering.bpf.o)).
      - Required with O(state=present) and hooks.
    type: path
  program:
    description: The program of O(object) to attach.
    type: str
    default: steering
  backend:
    description: How the program is attached; see M(ebpf.tc.bpf_filter).
    type: str
    choices: [auto, tcx, clsact]
    default: auto
  placement:
    description: Where a TCX link goes in the hook's chain; see M(ebpf.tc.bpf_filter).
    type: str
    choices: [first, last, before, after]
    default: first
  relative_to:
    description: With O(placement=before) or O(placement=after), the TCX program (id or name) to place ours next to.
    type: str
  priority:
    description: Priority of the clsact filter.
    type: int
    default: 10
  handle:
    description: Handle of the clsact filter.
    type: int
    default: 1
  rp_filter_loose:
    description:
      - Interfaces whose C(net.ipv4.conf.<if>.rp_filter) is set to V(2) (loose), the return path's need; the
        value replaced is kept in O(record) and put back by O(state=absent).
    type: list
    elements: str
    default: []
  record:
    description:
      - A file on the target where the module keeps what it created (hooks and their pin dirs, qdiscs added,
        C(rp_filter) values replaced), read by the next run to prune hooks and by O(state=absent). Written
        also when the run fails half-way; removed by O(state=absent). Its directory is made when missing.
      - Without it, nothing is pruned and O(state=absent) removes only the hooks O(hooks) names.
    type: path
  state_file:
    description:
      - Where to write the state document the boot-time restore reads (only when it differs). With
        O(persist=false) or O(state=absent) the file is removed. Its directory is made when missing.
    type: path
  persist:
    description: Whether O(state_file) is written (V(true)) or removed (V(false)).
    type: bool
    default: true
  confirm_timeout:
    description:
      - Apply changed rule sets on trial - each reverts by itself after this many seconds unless a later
        call with O(confirm=true) confirms it (commit-confirm, see M(ebpf.tc.steering_rules)).
    type: int
  confirm:
    description:
      - Confirm the rule sets on trial on the hooks of O(hooks) (those with none are left alone) and change
        nothing else.
    type: bool
    default: false
  verify:
    description:
      - After converging (not in check mode), read every hook back from the kernel and fail, naming the hook,
        when our program does not run there as attached, the hook has drifted from its pins, the rule set read
        back from the maps the hook's program uses is not the one applied, or the hook is shadowed (our clsact
        filter behind TCX programs, which end the hook for every packet they do not pass on). O(state_file) is
        written only when this passes. The result then carries C(table), as M(ebpf.tc.tc_info) prints it.
    type: bool
    default: false
  allow_shadowed:
    description:
      - With O(verify=true), accept a shadowed hook - for an operator who knows the TCX programs in front
        return C(TCX_NEXT).
    type: bool
    default: false
  object_src:
    description:
      - Path on the controller of the object O(object) must be (absolute, or found as the C(copy) module finds
        a relative C(src)). The action plugin compares SHA-256 checksums; only when the target's copy differs
        or is missing is the object sent, for this task only - the module loads it (a kernel that refuses it
        fails the task, naming the kernel and the verifier's line, before anything changes), then puts it at
        O(object) with its checksum in C(<object>.sha256) before the first hook changes. In check mode the
        hooks are compared with it and nothing is installed.
    type: path
  object_sha256:
    description:
      - The SHA-256 O(object) must have. Set by the action plugin from O(object_src); given alone, a
        different object fails the task.
    type: str
  object_staged:
    description:
      - Set by the action plugin, not by playbooks - where it put O(object_src) on the target for this task.
    type: path
  restore_code_dir:
    description:
      - The directory on the target for the boot-time restore code - the restore CLI C(ebpf_tc_restore.py)
        and a copy of the collection's module_utils it imports, the same code this module runs. The action
        plugin compares the stamp of the collection's code with C(<restore_code_dir>/module_utils.sha256) and
        sends the code, as one archive, only when they differ; it is installed after the hooks converged (and
        passed O(verify)).
      - With O(restore_code=false) or O(state=absent), the restore code is removed from it.
    type: path
  restore_code:
    description:
      - Whether the restore code is kept in O(restore_code_dir) (V(true)) or removed (V(false)). The role keeps
        it while O(persist) or its metrics CLI, which imports it, needs it.
    type: bool
    default: true
  restore_unit:
    description:
      - Path of the systemd unit that runs the restore code on O(state_file) at boot (for example
        C(/etc/systemd/system/ebpf-tc-restore.service)). With O(persist=true) it is written when its content
        differs (O(restore_code_dir) and O(state_file) are then required); enabling it, and a daemon reload
        when it changed, are C(ansible.builtin.systemd_service)'s. Otherwise it is left in place, for the
        caller to disable before removing it, and C(restore_unit_found) says whether it is there.
    type: path
  restore_code_sha256:
    description:
      - Set by the action plugin, not by playbooks - the stamp of the collection's restore code.
    type: str
  restore_code_staged:
    description:
      - Set by the action plugin, not by playbooks - where it put the restore code archive for this task.
    type: path
attributes:
  check_mode:
    description:
      - Checks everything and reports what would change (per hook, the attachment and the rule set; the hooks
        that would be pruned; rp_filter); changes nothing, not even O(record) or O(state_file).
    support: full
  diff_mode:
    description: Per hook that changes, C(before) and C(after) as C({attach, rules}).
    support: full
  idempotent:
    description: A second run with the same state reports no change (compared with what the kernel runs).
    support: full
  platform:
    description: Linux targets only (eBPF, TC).
    support: full
    platforms: posix
notes:
  - Needs root, Python 3.9 or later, Linux 5.11 or later, libbpf and pyroute2 0.7.2 or later on the target; bpffs is mounted
    when missing.
  - The restore unit needs Python 3.9 or later at C(/usr/bin/python3) on the target, and libbpf and pyroute2 as the module
    does.
seealso:
  - module: ebpf.tc.bpf_filter
  - module: ebpf.tc.steering_rules
  - module: ebpf.tc.tc_info
'''

EXAMPLES = r'''
- name: One call converges the host
  ebpf.tc.steering_state:
    object: /usr/local/lib/ebpf-tc/steering.bpf.o
    record: /etc/ebpf-tc/created.json
    state_file: /etc/ebpf-tc/state.json
    rp_filter_loose: [eth1]
    hooks:
      - interface: eth0
        direction: egress
        rules:
          - name: vip-return
            match: {src: 192.0.2.10/32}
            action: redirect
            redirect: {interface: eth1, via: 198.51.100.1}
      - interface: eth1
        direction: ingress
        default_action: pass
        rules:
          - name: no-ping
            match: {proto: icmp}
            action: drop

- name: The same, restored at boot by a unit (enable it with ansible.builtin.systemd_service)
  ebpf.tc.steering_state:
    object: /usr/local/lib/ebpf-tc/steering.bpf.o
    object_src: steering.bpf.o
    record: /etc/ebpf-tc/created.json
    state_file: /etc/ebpf-tc/state.json
    restore_code_dir: /usr/local/lib/ebpf-tc
    restore_unit: /etc/systemd/system/ebpf-tc-restore.service
    hooks:
      - interface: eth1
        direction: ingress
        rules:
          - name: no-ping
            match: {proto: icmp}
            action: drop

- name: Remove everything it created
  ebpf.tc.steering_state:
    state: absent
    record: /etc/ebpf-tc/created.json
    state_file: /etc/ebpf-tc/state.json
    restore_code_dir: /usr/local/lib/ebpf-tc
'''

RETURN = r'''
hooks:
  description: Per hook of O(hooks), in order, what the run did.
  returned: always
  type: list
  elements: dict
  contains:
    interface:
      description: The interface.
      type: str
    direction:
      description: V(ingress) or V(egress).
      type: str
    pin_dir:
      description: Where its program and maps are pinned.
      type: str
    attached:
      description: Whether the program on the hook changed (attached or replaced).
      type: bool
    backend:
      description: The backend the program runs with, V(tcx) or V(clsact).
      type: str
    clsact_added:
      description: Whether a clsact qdisc was added for it.
      type: bool
    prog_id:
      description: The id of the program running there (null in check mode before a change).
      type: int
    tag:
      description: The program's tag.
      type: str
    rules_changed:
      description: Whether the rule set was switched.
      type: bool
    rules:
      description: The rule set applied after the run (that would be, in check mode), in canonical form.
      type: list
      elements: dict
    default_action:
      description: The default action after the run.
      type: str
    generation:
      description: The applied set's generation.
      type: int
    counters:
      description: Per rule, C(packets), C(bytes) and C(drops); C((default)) counts the default action's packets.
      type: dict
    pending:
      description: The trial set awaiting a confirmation (see M(ebpf.tc.steering_rules)), or null.
      type: dict
  sample:
    - {interface: eth0, direction: egress, pin_dir: /sys/fs/bpf/ebpf_tc/eth0/egress, attached: false,
       backend: tcx, clsact_added: false, prog_id: 412, tag: 9e2c6c1a1b6f5b7d, rules_changed: true,
       rules: [], default_action: pass, generation: 4, counters: {}, pending: null}
pruned:
  description: The hooks O(record) listed that O(hooks) no longer names, detached with their pins.
  returned: with O(state=present)
  type: list
  elements: dict
  sample: [{interface: eth2, direction: egress, pin_dir: /sys/fs/bpf/ebpf_tc/eth2/egress, changed: true,
            interface_gone: false}]
removed:
  description: With O(state=absent), per hook, whether something was detached or unpinned.
  returned: with O(state=absent)
  type: list
  elements: dict
clsact_removed:
  description: With O(state=absent), the interfaces whose clsact qdisc was removed.
  returned: with O(state=absent)
  type: list
  elements: str
rp_filter:
  description: Per interface, C(before), C(after) and C(changed) of its rp_filter.
  returned: always
  type: dict
  sample: {eth1: {before: 1, after: 2, changed: true}}
confirmed:
  description:
    - With O(confirm=true), the hooks whose trial set was confirmed - C(interface), C(direction), and
      C(pending), null once confirmed.
  returned: with O(confirm=true)
  type: list
  elements: dict
table:
  description: With O(verify=true), the hooks and the steering rules with their counters as a text table.
  returned: with O(verify=true), not in check mode
  type: str
object_installed:
  description:
    - Whether O(object_src) was installed at O(object) (in check mode - would be) because the target's copy
      differed.
  returned: with O(state=present)
  type: bool
bpffs_mounted:
  description: Whether the module mounted bpffs at C(/sys/fs/bpf) (in check mode - would).
  returned: with O(state=present)
  type: bool
state_file_changed:
  description: Whether O(state_file) was written or removed.
  returned: always
  type: bool
restore_code_changed:
  description: Whether the restore code in O(restore_code_dir) was installed or removed (in check mode - would be).
  returned: always
  type: bool
restore_unit_changed:
  description: Whether O(restore_unit) was written (in check mode - would be).
  returned: always
  type: bool
restore_unit_found:
  description: Whether O(restore_unit) is there after the run (with O(persist=false), the unit the caller should remove).
  returned: always
  type: bool
systemd:
  description: Whether systemd runs the target (C(/run/systemd/system) exists), so that a caller knows whether to enable O(restore_unit).
  returned: always
  type: bool
diff:
  description: In diff mode, one entry per hook that changed, C(before) and C(after) each C({attach, rules}).
  returned: when diff mode is on
  type: list
'''

import copy
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _files, _program, _restore, _restore_code, _tcx
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import check_host

# what the module answers when the object or the restore code must be sent (the action plugin sends them and
# runs it again)
OBJECT_WANTED = 'object_wanted'
RESTORE_CODE_WANTED = 'restore_code_wanted'
DOCUMENT_OPTIONS = ('netns', 'object', 'program', 'priority', 'handle', 'backend', 'placement', 'relative_to',
                    'hooks', 'rp_filter_loose')


def state_document(params):
    """The state document of the options (what the restore unit reads), checked: StateError names a field."""
    doc = dict((key, params[key]) for key in DOCUMENT_OPTIONS if params[key] is not None)
    doc['version'] = _restore.STATE_VERSION
    return _restore.check_state(doc)


def write_state_file(path, doc, persist, check_mode):
    """Write (persist) or remove the state file; True when that changes it."""
    if persist:
        return _files.write_json(path, doc, check_mode)
    return _files.remove(path, check_mode)


def staged_object(params):
    """(path, sha256) of the object to install at O(object) for this run, None when the target's copy is
    the one wanted; OBJECT_WANTED when the action plugin should send O(object_src)."""
    wanted = params['object_sha256']
    if wanted is None or not params['object']:
        return None
    wanted = wanted.lower()
    if _files.sha256(params['object']) == wanted:
        return None
    staged = params['object_staged']
    if staged is None:
        return OBJECT_WANTED
    found = _files.sha256(staged)
    if found != wanted:
        raise EbpfTcError('object_staged: %s has SHA-256 %s, not %s (object_sha256)' % (staged, found, wanted))
    return staged, wanted


def restore_code_wanted(params):
    """Whether O(restore_code_dir) should hold the restore code after this run."""
    return bool(params['restore_code_dir']) and params['restore_code'] and params['state'] == 'present'


def staged_code(params, check_mode):
    """(archive, stamp) of the restore code to install for this run (archive None in check mode), None when
    the installed code is the one wanted; RESTORE_CODE_WANTED when the action plugin should send it."""
    wanted = params['restore_code_sha256']
    if not restore_code_wanted(params) or wanted is None:
        return None
    if _restore_code.installed_stamp(params['restore_code_dir']) == wanted:
        return None
    if params['restore_code_staged'] is None and not check_mode:
        return RESTORE_CODE_WANTED
    return params['restore_code_staged'], wanted


def check_persistence(params):
    """What the restore unit needs, checked before anything changes."""
    if params['restore_unit'] and params['persist'] and params['state'] == 'present':
        if not params['state_file']:
            raise EbpfTcError('state_file: required with restore_unit and persist (the file the unit restores)')
        if not restore_code_wanted(params):
            raise EbpfTcError('restore_code_dir: required, with restore_code true, with restore_unit and persist '
                              '(the unit runs the code there)')


def persist_restore(params, code, check_mode):
    """Install or remove the restore code and write the restore unit; the result's restore_* and systemd."""
    out = {'restore_code_changed': False, 'restore_unit_changed': False, 'restore_unit_found': False,
           'systemd': _restore_code.systemd_running()}
    directory = params['restore_code_dir']
    if restore_code_wanted(params):
        if code is not None:
            out['restore_code_changed'] = True
            if not check_mode:
                _restore_code.install(code[0], directory, code[1])
    elif directory:
        out['restore_code_changed'] = _restore_code.remove(directory, check_mode)
    unit = params['restore_unit']
    if unit and params['persist'] and params['state'] == 'present':
        text = _restore_code.unit_text(directory, params['state_file'], params['netns'])
        out['restore_unit_changed'] = _files.write_text(unit, text, check_mode)
        out['restore_unit_found'] = True
    elif unit:
        out['restore_unit_found'] = os.path.exists(unit)
    return out


def hook_diffs(hooks):
    return [{'before_header': '%s %s' % (h['interface'], h['direction']),
             'after_header': '%s %s' % (h['interface'], h['direction']),
             'before': {'attach': h['diff']['attach']['before'], 'rules': h['diff']['rules']['before']},
             'after': {'attach': h['diff']['attach']['after'], 'rules': h['diff']['rules']['after']}}
            for h in hooks if h['attached'] or h['rules_changed']]


def run(params, check_mode):
    """The module's work; EbpfTcError on any failure. Returns (result, diff)."""
    if params['confirm'] and params['confirm_timeout'] is not None:
        raise EbpfTcError('confirm_timeout and confirm: true cannot be used together: confirm_timeout '
                          'starts a trial of new rule sets, confirm ends one')
    if params['state'] == 'present' and params['hooks'] and not params['confirm'] and not params['object']:
        raise EbpfTcError('object: required with state=present and hooks')
    if not params['object']:
        params = dict(params, object='/')   # nothing is loaded to confirm or remove: any absolute path passes
    doc = state_document(params)
    if params['confirm']:
        return _restore.confirm(doc, check_mode), []
    check_persistence(params)
    code = staged_code(params, check_mode)
    record_path = params['record']
    record = _restore.load_record(record_path)
    if params['state'] == 'absent':
        result = _restore.remove(doc, record, check_mode)
        result['removed'] = result.pop('hooks')
        if record_path and _files.remove(record_path, check_mode):
            result['changed'] = True
        diff = []
    else:
        staged = staged_object(params) if params['hooks'] else None
        wanted = {OBJECT_WANTED: staged == OBJECT_WANTED, RESTORE_CODE_WANTED: code == RESTORE_CODE_WANTED}
        if any(wanted.values()):    # nothing checked or changed yet: the action plugin sends them
            return dict(wanted, changed=False), []
        loaded = copy.deepcopy(record)
        try:
            result = _restore.converge(doc, record, check_mode, params['confirm_timeout'], staged)
        finally:
            # also after a failure half-way; a failed check changed nothing, so there is nothing to record
            if record_path and not check_mode and record != loaded:
                _files.write_json(record_path, record)
        diff = hook_diffs(result['hooks'])
        for hook in result['hooks']:
            del hook['diff']
        if params['verify'] and not check_mode:
            problems, facts = _restore.verify(doc, result, params['allow_shadowed'])
            if problems:
                raise EbpfTcError('; '.join(problems))
            result['table'] = facts['table']
    result['state_file_changed'] = False
    if params['state_file']:
        persist = params['persist'] and params['state'] == 'present'
        result['state_file_changed'] = write_state_file(params['state_file'], doc, persist, check_mode)
    result.update(persist_restore(params, code, check_mode))
    result['changed'] = result['changed'] or any(result[key] for key in (
        'state_file_changed', 'restore_code_changed', 'restore_unit_changed'))
    return result, diff


ARGUMENT_SPEC = dict(
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    hooks=dict(type='list', elements='dict', default=[]),
    netns=dict(type='str'),
    object=dict(type='path'),
    program=dict(type='str', default='steering'),
    backend=dict(type='str', choices=list(_program.BACKENDS), default='auto'),
    placement=dict(type='str', choices=list(_tcx.PLACEMENTS), default='first'),
    relative_to=dict(type='str'),
    priority=dict(type='int', default=10),
    handle=dict(type='int', default=1),
    rp_filter_loose=dict(type='list', elements='str', default=[]),
    record=dict(type='path'),
    state_file=dict(type='path'),
    persist=dict(type='bool', default=True),
    confirm_timeout=dict(type='int'),
    confirm=dict(type='bool', default=False),
    verify=dict(type='bool', default=False),
    allow_shadowed=dict(type='bool', default=False),
    object_src=dict(type='path'),     # the action plugin's (plugins/action/steering_state.py)
    object_sha256=dict(type='str'),
    object_staged=dict(type='path'),
    restore_code_dir=dict(type='path'),
    restore_code=dict(type='bool', default=True),
    restore_unit=dict(type='path'),
    restore_code_sha256=dict(type='str'),     # the action plugin's
    restore_code_staged=dict(type='path'),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    check_host(module, bpffs=False)   # converge mounts bpffs when it is missing
    try:
        result, diff = run(module.params, module.check_mode)
    except (EbpfTcError, IOError, OSError) as err:
        module.fail_json(msg=str(err))
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()

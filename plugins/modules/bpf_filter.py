#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: bpf_filter
short_description: Load a BPF object, pin it and attach one of its programs to a TC hook
version_added: 0.1.0
description:
  - Loads a BPF ELF object from a path on the target, pins its maps and the program O(program) under
    O(pin_dir), and attaches the program to the TC hook O(direction) of O(interface) with one of two
    backends (O(backend)) - a TCX link (Linux 6.6 and later) placed in the hook's TCX chain as O(placement)
    says, or a direct-action C(bpf) filter on the clsact qdisc at O(priority)/O(handle) (the qdisc is added
    when missing).
  - TCX programs run before every clsact filter, and a TCX program that does not return C(TCX_NEXT) ends the
    hook for that packet. So a clsact filter behind a CNI's TCX program (Cilium 1.16 and later) never sees
    most packets; M(ebpf.tc.tc_info) calls such a hook C(shadowed). The TCX link is pinned at
    C(<pin_dir>/<program>_tcx), so it outlives the module and a CNI that deletes clsact filters.
  - Any object works, not only the collection's C(steering.bpf.o), for example a program a user compiled
    with C(clang -O2 -g -target bpf) in a C(SEC("tc")) section.
  - The filter is named C(ebpf_tc:<program>). That name marks it as this collection's (see M(ebpf.tc.clsact)).
  - Nothing changes when the filter at O(priority)/O(handle) is named C(ebpf_tc:<program>), its program
    has the tag of O(program) in O(object) (the kernel's hash of the instructions), that program is the one
    pinned at C(<pin_dir>/<program>) and every map of the object is pinned there compatibly.
  - Nothing changes either when the TCX link pinned at C(<pin_dir>/<program>_tcx) is on the hook, sits where
    O(placement) asks, and runs that pinned program.
  - Switching O(backend) (clsact to tcx or back) attaches the program with the new backend before the
    old attachment is removed, with the same pinned maps, so rules and counters are kept and there is no
    moment when neither runs.
  - A new build of the object replaces the filter atomically (tc filter replace at the same
    priority/handle), or the program of the TCX link in place (BPF_LINK_UPDATE). Its maps reuse the pinned
    ones where compatible (same type, key size, value size,
    max_entries and flags), so their content, for example rules and counters, survives. An incompatible
    pinned map is replaced by the new build's fresh map, after the new program is attached.
  - When the kernel's verifier rejects the object, nothing attached or pinned changes and the module fails
    with the end of the verifier's log.
  - O(pin_dir) must be on a BPF filesystem (bpffs); that is checked on its nearest existing parent before
    anything is created (no directory, no clsact qdisc).
  - Objects with legacy map definitions (C(SEC("maps"))) are refused with a message saying so - libbpf 1.0
    and later only open BTF-defined maps (C(SEC(".maps"))).
author:
  - ebpf.tc contributors (!UNKNOWN)
extends_documentation_fragment:
  - ebpf.tc.hook
options:
  object:
    description:
      - Path of the BPF ELF object on the target.
      - Required with O(state=present).
    type: path
  program:
    description:
      - Name of the program (the C function) in O(object) to attach. The collection's C(steering.bpf.o)
        holds V(steering).
      - Required with O(state=present). With O(state=absent), when given, the filter at
        O(priority)/O(handle) must be this program's (C(ebpf_tc:<program>)); when not given, any filter this
        collection attached there is detached.
    type: str
  backend:
    description:
      - How the program is attached. V(tcx) is a TCX link (bpf_link, Linux 6.6 and later; an error on older
        kernels). V(clsact) is a C(bpf) filter on the clsact qdisc (every kernel). V(auto) picks V(tcx)
        where the kernel has it and V(clsact) elsewhere.
      - With O(state=absent) both are removed, whatever this says.
    type: str
    choices: [auto, tcx, clsact]
    default: auto
    version_added: 0.2.0
  placement:
    description:
      - Where the TCX link goes in the hook's chain, with O(backend=tcx). V(first) runs before every other
        TCX program (what steering needs, to see packets before a CNI's program ends the chain), V(last)
        after them, V(before) or V(after) right next to the program O(relative_to) names.
      - Idempotence includes it - when another program has taken the place since, the next run moves
        ours back (a new link is attached in place before the old one goes).
      - Ignored with the clsact backend, where O(priority) orders filters.
    type: str
    choices: [first, last, before, after]
    default: first
    version_added: 0.2.0
  relative_to:
    description:
      - With O(placement=before) or O(placement=after), the TCX program to place ours next to - its program
        id, or its name when exactly one program of the chain has it.
    type: str
    version_added: 0.2.0
  priority:
    description:
      - Priority of the filter on the hook (clsact backend), 1 to 65535. Lower numbers run first.
      - The default, 10, runs before filters added by C(tc) without a priority (they get 49152 and up).
    type: int
    default: 10
  handle:
    description:
      - Handle of the filter within O(priority), 1 to 4294967295.
    type: int
    default: 1
  state:
    description:
      - V(present) loads, pins and attaches. V(absent) detaches the filter at O(priority)/O(handle) and the
        TCX links pinned in O(pin_dir) (of O(program) when given).
      - A filter this collection did not attach (its name does not start with C(ebpf_tc:)) at
        O(priority)/O(handle) is never replaced or detached; the module fails and names it.
    type: str
    choices: [present, absent]
    default: present
  unpin:
    description:
      - With O(state=absent), also remove O(pin_dir) with everything pinned in it (program and maps, whose
        content is lost), and its parent directories up to C(/sys/fs/bpf/ebpf_tc) while empty.
      - The commit-confirm state of those maps (see M(ebpf.tc.steering_rules)) goes with them - a pending trial's
        timer is stopped and its record, and the record of how the last trial ended, are removed.
    type: bool
    default: false
  force:
    description:
      - With O(state=present), replace a filter of this collection at O(priority)/O(handle) even when its
        program was attached from another pin directory (it is not the program pinned in O(pin_dir) and uses
        none of the maps pinned there).
      - Without it such a filter is refused, because replacing it leaves its maps and their content (for the
        steering program, the rule set and counters) behind, and that is usually a mistyped or disagreeing
        O(pin_dir). Use it to repair drift (see M(ebpf.tc.tc_info)) by attaching the program pinned in
        O(pin_dir) again.
      - A filter this collection did not attach is never replaced, with or without it.
    type: bool
    default: false
    version_added: 0.2.0
attributes:
  check_mode:
    description: >-
      Can run in check mode and return the changed status it would have. To know an object's tag the module
      loads it once without pinning anything and closes it again; nothing on the host changes.
    support: full
  diff_mode:
    description: Returns C(before) and C(after) as C({filter, link, pins}) in diff mode.
    support: full
  idempotent:
    description: A second run with the same object and options reports no change.
    support: full
  platform:
    description: Linux targets only (bpf(2), netlink, bpffs).
    support: full
    platforms: posix
notes:
  - With O(state=absent) and a missing O(interface) the module fails (check the name); a deleted interface
    took its filters with it, so only O(unpin=true) is left to do (on an interface that exists, or by hand).
seealso:
  - module: ebpf.tc.clsact
'''

EXAMPLES = r'''
- name: Attach the steering program to the egress hook of eth0
  ebpf.tc.bpf_filter:
    interface: eth0
    object: /usr/local/lib/ebpf_tc/steering.bpf.o
    program: steering
  become: true

- name: Attach the steering program to eth0 as a clsact filter, on any kernel
  ebpf.tc.bpf_filter:
    interface: eth0
    object: /usr/local/lib/ebpf_tc/steering.bpf.o
    program: steering
    backend: clsact
  become: true

- name: Attach a counter after Cilium's program in the ingress TCX chain
  ebpf.tc.bpf_filter:
    interface: eth0
    direction: ingress
    object: /opt/bpf/counter.o
    program: count
    backend: tcx
    placement: after
    relative_to: cil_from_netdev
  become: true

- name: Attach a user's drop-ICMP program at priority 20 in namespace blue
  ebpf.tc.bpf_filter:
    interface: veth0
    netns: blue
    direction: ingress
    object: /opt/bpf/drop_icmp.o
    program: drop_icmp
    priority: 20
  become: true

- name: Repair drift - attach the program pinned in the default pin directory again, over a filter
    attached from another pin_dir
  ebpf.tc.bpf_filter:
    interface: eth0
    object: /usr/local/lib/ebpf_tc/steering.bpf.o
    program: steering
    force: true
  become: true

- name: Detach it and remove its pins
  ebpf.tc.bpf_filter:
    interface: veth0
    netns: blue
    direction: ingress
    program: drop_icmp
    priority: 20
    state: absent
    unpin: true
  become: true
'''

RETURN = r'''
prog_id:
  description: Kernel id of the attached program (null after O(state=absent), and in check mode when it would change).
  returned: always
  type: int
  sample: 412
tag:
  description: Tag of the program (16 hex digits), as C(tc filter show) and C(bpftool) show it.
  returned: when O(state=present)
  type: str
  sample: 8f3ac2d1e5b04a77
backend:
  description: The backend the program is attached with (O(backend=auto) resolved).
  returned: when O(state=present)
  type: str
  sample: tcx
link:
  description: The TCX link after the run (null with the clsact backend).
  returned: when O(state=present)
  type: dict
  contains:
    id:
      description: Kernel id of the link (null in check mode when it would change).
      type: int
    prog_id:
      description: Kernel id of the program the link runs.
      type: int
    tag:
      description: Tag of that program.
      type: str
    position:
      description: Place of the program in the hook's TCX chain, 0 runs first.
      type: int
    pin:
      description: Where the link is pinned, C(<pin_dir>/<program>_tcx).
      type: str
name:
  description: Name of the filter, C(ebpf_tc:<program>).
  returned: when O(state=present)
  type: str
  sample: ebpf_tc:steering
priority:
  description: Priority of the filter.
  returned: always
  type: int
  sample: 10
handle:
  description: Handle of the filter.
  returned: always
  type: int
  sample: 1
pin_dir:
  description: The pin directory used.
  returned: always
  type: str
  sample: /sys/fs/bpf/ebpf_tc/eth0/egress
pinned:
  description: Paths pinned in O(pin_dir) after the run (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [/sys/fs/bpf/ebpf_tc/eth0/egress/steering, /sys/fs/bpf/ebpf_tc/eth0/egress/rules]
maps:
  description: What happened (or would happen, when changed) to the object's maps.
  returned: when O(state=present)
  type: dict
  contains:
    reused:
      description: Maps whose compatible pins the program uses (content kept).
      type: list
      elements: str
    replaced:
      description: Maps whose incompatible pins were replaced by a fresh map (content lost).
      type: list
      elements: str
    created:
      description: Maps that had no pin and were pinned new.
      type: list
      elements: str
clsact_added:
  description: Whether the clsact qdisc had to be added.
  returned: when O(state=present)
  type: bool
  sample: false
detached:
  description: Whether a filter was detached.
  returned: when O(state=absent)
  type: bool
  sample: true
unpinned:
  description: Paths removed by O(unpin=true).
  returned: when O(state=absent)
  type: list
  elements: str
  sample: []
verifier_log:
  description: End of the kernel verifier's log, when the verifier rejected the object.
  returned: on verifier rejection
  type: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _program, _tc, _tcx
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError, LibbpfError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import check_host, hook_argument_spec, pin_dir_of


def main():
    argument_spec = hook_argument_spec()
    argument_spec.update(
        object=dict(type='path'),
        program=dict(type='str'),
        priority=dict(type='int', default=10),
        handle=dict(type='int', default=1),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        unpin=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
        backend=dict(type='str', choices=list(_program.BACKENDS), default='auto'),
        placement=dict(type='str', choices=list(_tcx.PLACEMENTS), default='first'),
        relative_to=dict(type='str'),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[('state', 'present', ('object', 'program'))])
    params = module.params
    if not 1 <= params['priority'] <= 0xFFFF:
        module.fail_json(msg='priority must be between 1 and 65535, not %d' % params['priority'])
    if not 1 <= params['handle'] <= 0xFFFFFFFF:
        module.fail_json(msg='handle must be between 1 and 4294967295, not %d' % params['handle'])
    check_host(module)
    pin_dir = pin_dir_of(params)
    result = dict(priority=params['priority'], handle=params['handle'], pin_dir=pin_dir)
    try:
        if params['state'] == 'present':
            res = _program.filter_present(params['interface'], params['direction'], params['netns'], pin_dir,
                                          params['object'], params['program'], params['priority'],
                                          params['handle'], check_mode=module.check_mode,
                                          force=params['force'], backend=params['backend'],
                                          placement=params['placement'], relative_to=params['relative_to'])
            result.update(prog_id=res['prog_id'], tag=res['tag'], name=_tc.owned_name(params['program']),
                          maps=res['maps'], clsact_added=res['clsact_added'], backend=res['backend'],
                          link=res['link'])
        else:
            res = _program.filter_absent(params['interface'], params['direction'], params['netns'], pin_dir,
                                         params['program'], params['priority'], params['handle'],
                                         params['unpin'], check_mode=module.check_mode)
            result.update(prog_id=None, detached=res['detached'], unpinned=res['unpinned'])
    except LibbpfError as err:
        if err.log:
            result['verifier_log'] = err.log
        module.fail_json(msg=str(err), **result)
    except EbpfTcError as err:
        module.fail_json(msg=str(err), **result)
    result.update(changed=res['changed'], pinned=res['after']['pins'])
    if module._diff:
        result['diff'] = dict(before=res['before'], after=res['after'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()

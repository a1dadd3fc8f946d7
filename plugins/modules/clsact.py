#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: clsact
short_description: Ensure a clsact qdisc is present or absent on a network interface
version_added: 0.1.0
description:
  - Adds or removes the C(clsact) qdisc of an interface, the qdisc that holds the TC ingress and egress
    hooks eBPF programs attach to.
  - Removing it removes every filter on both hooks. The module refuses to do that while filters it did not
    attach sit there (filters this collection attaches are named C(ebpf_tc:<program>)), unless O(force=true).
  - Works inside a network namespace (O(netns)) without ever creating one.
author:
  - ebpf.tc contributors (!UNKNOWN)
options:
  interface:
    description:
      - Name of the network interface.
      - A missing interface is an error, also with O(state=absent).
    type: str
    required: true
  netns:
    description:
      - Name of a network namespace under C(/run/netns) that holds O(interface).
      - When absent, the module works in its own (the host's) namespace.
      - A missing namespace is an error; it is never created.
    type: str
  state:
    description:
      - V(present) adds the qdisc when it is missing (an existing one, and its filters, are left alone).
      - V(absent) deletes the qdisc with every filter on it.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - With O(state=absent), also remove the qdisc when filters this collection did not attach sit on it
        (filters of other tools, for example Cilium's or ones added with C(tc filter add)).
      - Without it, such filters make the module fail and name them; nothing is changed.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check mode and return the changed status it would have, without touching the host.
    support: full
  diff_mode:
    description: Returns C(before) and C(after) as C({clsact, filters}) in diff mode.
    support: full
  idempotent:
    description: A second run with the same options reports no change.
    support: full
  platform:
    description: Linux targets only (netlink, TC).
    support: full
    platforms: posix
requirements:
  - Python 3.9 or later on the target.
  - Linux 5.11 or later (proven on 6.1, 6.12 and 6.18).
  - pyroute2 0.7.2 or later (C(python3-pyroute2)) on the target.
  - 'Root on the target (C(become: true)).'
notes:
  - The pins of programs attached to the hooks are not touched; remove them with M(ebpf.tc.bpf_filter)
    and O(ebpf.tc.bpf_filter#module:unpin=true).
seealso:
  - module: ebpf.tc.bpf_filter
'''

EXAMPLES = r'''
- name: Make sure eth0 has a clsact qdisc
  ebpf.tc.clsact:
    interface: eth0
  become: true

- name: Remove the clsact qdisc of eth1 in namespace blue (fails if foreign filters are attached)
  ebpf.tc.clsact:
    interface: eth1
    netns: blue
    state: absent
  become: true

- name: Remove it whatever is attached
  ebpf.tc.clsact:
    interface: eth1
    state: absent
    force: true
  become: true
'''

RETURN = r'''
clsact:
  description: Whether the interface has a clsact qdisc after the run (in check mode, would have).
  returned: always
  type: bool
  sample: true
filters:
  description: The filters on both hooks after the run.
  returned: always
  type: list
  elements: dict
  contains:
    direction:
      description: The hook, V(ingress) or V(egress).
      type: str
    kind:
      description: Filter kind (V(bpf), V(u32), V(matchall)...).
      type: str
    priority:
      description: Filter priority.
      type: int
    handle:
      description: Filter handle.
      type: int
    name:
      description: Name of a bpf filter (C(ebpf_tc:<program>) for ours); null for other kinds.
      type: str
    prog_id:
      description: Kernel id of a bpf filter's program.
      type: int
    tag:
      description: Tag of a bpf filter's program (16 hex digits).
      type: str
    owned:
      description: Whether this collection attached the filter.
      type: bool
removed_filters:
  description: The filters removed with the qdisc (state=absent), in the same form as RV(filters).
  returned: always
  type: list
  elements: dict
  sample: []
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _tc
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import check_host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type='str', required=True),
            netns=dict(type='str'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    check_host(module, libbpf=False, bpffs=False)
    params = module.params
    try:
        res = _tc.clsact_state(params['interface'], params['netns'], params['state'], force=params['force'],
                               check_mode=module.check_mode)
    except EbpfTcError as err:
        module.fail_json(msg=str(err))
    result = dict(changed=res['changed'], clsact=res['after']['clsact'], filters=res['after']['filters'],
                  removed_filters=res['removed_filters'])
    if module._diff:
        result['diff'] = dict(before=res['before'], after=res['after'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()

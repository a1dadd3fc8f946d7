#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: tc_info
short_description: Facts about TC hooks - qdiscs, BPF filters, pins, steering rules and counters
version_added: 0.1.0
description:
  - Reports, for one interface or every interface of a network namespace, its qdiscs, each hook as the
    kernel runs it - the TCX chain (Linux 6.6 and later; programs in run order with their link ids), then
    the BPF filters of the clsact qdisc (name, program id and tag, whether this collection owns them) -, whether
    our program is shadowed by TCX programs in front of it, what is pinned in the
    hook's pin directory, and - when that directory holds the steering program's maps - the applied rule
    set with per-rule and per-protocol packet, byte and drop counters.
  - Also reports the interface's IPv4 reverse-path filter mode, which decides whether asymmetric return
    paths work (see the C(ebpf.tc.steering) role).
  - The kernel is the truth. Per hook, C(attached) is the first program of this collection the hook runs (a
    TCX link pinned by M(ebpf.tc.bpf_filter), else a filter named C(ebpf_tc:<program>); ids and tags from
    the kernel), and C(drift)
    says when the hook's pins disagree with it - the program pinned in the pin directory is not the
    attached one, or the attached program does not use the maps pinned there (for example after
    M(ebpf.tc.bpf_filter) attached the program again from another O(ebpf.tc.bpf_filter#module:pin_dir)).
    The steering rule set and counters are read from the maps of the program the hook runs, not from
    the pins.
  - A hook is C(shadowed) when our program is a clsact filter and the TCX chain in front of it is not empty -
    TCX programs run first and end the hook for every packet they do not pass on with C(TCX_NEXT), so a CNI
    attached with TCX (Cilium 1.16 and later) leaves our filter without most packets. Attach with
    O(ebpf.tc.bpf_filter#module:backend=tcx) to run in front of them.
  - Read-only; never changes anything, in check mode or not.
author:
  - ebpf.tc contributors (!UNKNOWN)
extends_documentation_fragment:
  - ebpf.tc.read_only
options:
  interface:
    description:
      - Name of the interface. When omitted, every interface of the namespace is reported.
    type: str
  direction:
    description:
      - The clsact hook to report. When omitted, both.
    type: str
    choices: [ingress, egress]
  netns:
    description:
      - Name of a network namespace under C(/run/netns). When absent, the module's own namespace.
      - A missing namespace is an error; it is never created.
    type: str
attributes:
  platform:
    support: full
    platforms: posix
    description: Linux 5.11 or later (proven on 6.1, 6.12 and 6.18).
requirements:
  - Python 3.9 or later on the target.
  - Linux 5.11 or later (proven on 6.1, 6.12 and 6.18).
  - pyroute2 0.7.2 or later (C(python3-pyroute2)) on the target.
  - libbpf (C(libbpf.so.1), or C(libbpf.so.0) 0.5 or later) on the target.
  - Root on the target (C(become=true)).
notes:
  - Pins are looked for in the default layout, C(/sys/fs/bpf/ebpf_tc/<interface>/<direction>) or
    C(/sys/fs/bpf/ebpf_tc/netns/<netns>/<interface>/<direction>).
  - C(rp_filter) is read from C(/proc/sys/net/ipv4/conf/<interface>/rp_filter) inside the namespace; for
    another namespace, a short-lived child process enters it with C(setns) to read the value.
seealso:
  - module: ebpf.tc.bpf_filter
  - module: ebpf.tc.steering_rules
'''

EXAMPLES = r'''
- name: Everything about eth0's hooks
  become: true
  ebpf.tc.tc_info:
    interface: eth0
  register: tc

- name: Show the per-rule counters table
  ansible.builtin.debug:
    msg: "{{ tc.table }}"

- name: Fail when the program on eth0 egress is not the one pinned for it, or does not use the pinned maps
  ansible.builtin.assert:
    that:
      - tc.interfaces.eth0.egress.drift is none
    fail_msg: "{{ tc.interfaces.eth0.egress.drift.message | default('') }}"

- name: Every interface of a namespace, egress only
  become: true
  ebpf.tc.tc_info:
    netns: blue
    direction: egress
'''

RETURN = r'''
netns:
  description: The namespace reported on (null - the module's own).
  returned: always
  type: str
  sample: blue
interfaces:
  description:
    - One entry per interface, keyed by name. Each holds C(ingress) and/or C(egress) as asked with
      O(direction).
  returned: success
  type: dict
  contains:
    ifindex:
      description: Interface index.
      type: int
    qdiscs:
      description: Qdiscs of the interface (C(kind), C(handle) and C(parent) as tc prints them).
      type: list
      elements: dict
      sample: [{kind: clsact, handle: 'ffff:', parent: 'ffff:fff1'}]
    rp_filter:
      description: Value of C(net.ipv4.conf.<interface>.rp_filter) (0 off, 1 strict, 2 loose); null if unreadable.
      type: int
    rp_filter_effective:
      description: The mode the kernel applies - the larger of the interface's and C(conf.all)'s values.
      type: int
    egress:
      description: The egress hook (the same keys for C(ingress)).
      type: dict
      contains:
        tcx:
          description:
            - The hook's TCX chain in the order the kernel runs it (empty on kernels without TCX, before 6.6).
            - C(position) (0 runs first), C(id), C(tag) and C(prog_name) of each program, C(link_id) (0 when it
              was attached without a link), C(map_ids); C(owned) is true for links this collection pinned
              (C(<pin_dir>/<program>_tcx)), with their C(program) and C(link_pin).
          type: list
          elements: dict
          version_added: 0.2.0
          sample: [{position: 0, id: 91, link_id: 12, prog_name: cil_to_netdev, tag: 1a2b3c4d5e6f7081,
                    map_ids: [7, 9], owned: false, program: null, link_pin: null}]
        shadowed:
          description:
            - Null unless C(attached) is a clsact filter behind a non-empty TCX chain; then C(programs) (ids of
              the TCX programs in front of it) and C(message).
            - The C(ebpf.tc.steering) role's verification and the C(ebpf.tc.rollout) playbook's checks fail on a
              shadowed hook unless C(ebpf_tc_allow_shadowed) is true.
          type: dict
          version_added: 0.2.0
          sample: {programs: [91], message: 'shadowed: egress of eth0 runs filter ebpf_tc:steering ... behind the TCX programs ...'}
        filters:
          description:
            - BPF filters attached to the hook's clsact qdisc, in dump order. Empty when there is no clsact qdisc.
            - C(owned) is true for filters this collection attached (TC filter name C(ebpf_tc:<program>)).
            - C(prog_name) and C(map_ids) are the kernel's name of the filter's program and the ids of the maps
              it uses (null when the kernel no longer knows the program).
          type: list
          elements: dict
          sample: [{priority: 49152, handle: 1, name: 'ebpf_tc:steering', prog_id: 57, tag: 9f3c0e0d5a1b2c3d,
                    owned: true, direct_action: true, prog_name: steering, map_ids: [31, 32, 33]}]
        attached:
          description:
            - The program the hook runs for this collection - the first in the order the kernel runs them, our
              TCX link before our filters named C(ebpf_tc:<program>) - or null when there is none.
            - C(backend) (V(tcx) or V(clsact)); C(priority), C(handle) of a filter, C(link_id), C(link_pin),
              C(position) of a link (null for the other backend); C(name) (C(ebpf_tc:<program>)), C(program), C(id)
              and C(tag) of its program; C(prog_name) and C(map_ids) from the kernel.
          type: dict
          version_added: 0.2.0
          sample: {backend: clsact, priority: 10, handle: 1, name: 'ebpf_tc:steering', program: steering, id: 57,
                   tag: 9f3c0e0d5a1b2c3d, prog_name: steering, map_ids: [31, 32, 33], link_id: null, link_pin: null,
                   position: null}
        drift:
          description:
            - Null when the pins of the hook's pin directory agree with the attached program (or there is no
              attached program, or nothing pinned).
            - Else C(reason) - V(program) (another program is pinned at C(<pin dir>/<program>)) or V(maps)
              (the attached program does not use maps pinned there) -, C(message) (what disagrees and how to
              repair it) and C(pinned_at) (where the attached program is pinned, when that is under
              C(/sys/fs/bpf); else null).
            - M(ebpf.tc.steering_rules) refuses to work on a hook with drift, and so do the C(ebpf.tc.steering) role's
              verification and the C(ebpf.tc.rollout) playbook's health check.
          type: dict
          version_added: 0.2.0
          sample: {reason: program, pinned_at: /sys/fs/bpf/ebpf_tc/eth0/egress-typo,
                   message: 'drift: egress of eth0 runs program steering (id 71, ...), not the program pinned at ...'}
        pins:
          description: C(path) of the hook's pin directory and the C(programs) and C(maps) pinned in it.
          type: dict
          sample: {path: /sys/fs/bpf/ebpf_tc/eth0/egress, programs: [{name: steering, id: 57, tag: 9f3c0e0d5a1b2c3d,
                   prog_name: steering}], maps: [{name: settings, id: 12, type: array, key_size: 4, value_size: 8,
                   max_entries: 1}]}
        steering:
          description:
            - Null unless the hook runs the steering program or the pin directory holds the steering program's
              maps.
            - Read from the maps of the steering program the hook runs (C(source) V(attached)); only when the
              hook runs none, from the maps pinned in the pin directory (C(source) V(pinned)). With drift, these
              are the attached program's rules, not the pinned ones.
            - When those maps cannot be read, C(applied) is null and C(error) says why.
            - C(applied) (whether a rule set was ever applied), C(generation) (+1 per switch),
              C(default_action), C(rules) (the applied set in canonical form, as M(ebpf.tc.steering_rules)
              returns it), C(counters) (per rule name - C(packets), C(bytes), C(drops); the default action's
              under C((default))), C(protocols) (C(packets) and C(bytes) of every frame seen, by protocol
              name - C(tcp), C(udp), C(icmp), C(icmpv6), C(sctp), other numbers as strings, C(non-ip),
              C(malformed); only non-zero ones).
          type: dict
          sample:
            applied: true
            generation: 3
            default_action: pass
            rules: [{name: no-ping, match: {proto: [icmp]}, action: drop}]
            counters: {no-ping: {packets: 4, bytes: 392, drops: 4}, (default): {packets: 10, bytes: 800, drops: 0}}
            protocols: {icmp: {packets: 4, bytes: 392}, tcp: {packets: 10, bytes: 800}}
            source: attached
table:
  description:
    - A compact text table - interface, direction, program, rule, packets, bytes, drops - one line per
      steering rule (and the default action), or per filter of hooks without steering rules. Empty when
      there is nothing to show. The filter of a hook with drift is shown as C(ebpf_tc:steering(drift)), a
      shadowed one as C(ebpf_tc:steering(shadowed)); TCX programs come first, as C(tcx:<name>).
  returned: success
  type: str
  sample: |-
    INTERFACE  DIRECTION  PROGRAM           RULE              PACKETS  BYTES  DROPS
    eth0       egress     ebpf_tc:steering  no-ping           4        392    4
    eth0       egress     ebpf_tc:steering  (default: pass)   10       800    0
'''

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _facts
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import check_host
from ansible_collections.ebpf.tc.plugins.module_utils._rules import DIRECTIONS


def main():
    module = AnsibleModule(
        argument_spec=dict(
            interface=dict(type='str'),
            direction=dict(type='str', choices=list(DIRECTIONS)),
            netns=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    check_host(module, bpffs=False)
    params = module.params
    directions = (params['direction'],) if params['direction'] else DIRECTIONS
    try:
        facts = _facts.gather(netns=params['netns'], interface=params['interface'], directions=directions)
    except EbpfTcError as err:
        module.fail_json(msg=str(err))
    except Exception as err:  # netlink errors: report them, with the traceback for -vvv
        module.fail_json(msg='cannot read the TC state: %s' % err, exception=traceback.format_exc())
    module.exit_json(changed=False, **facts)


if __name__ == '__main__':
    main()

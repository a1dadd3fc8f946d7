#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: steering_rules
short_description: Apply a steering rule set to the eBPF steering program on a TC hook
version_added: 0.1.0
description:
  - Validates and compiles a whole rule set (pass, drop, redirect, mark, police; matched on source and
    destination prefixes, protocol and ports) and switches the steering program attached at
    O(interface)/O(direction) to it in one atomic step. No packet is ever classified by part of the old
    and part of the new set.
  - The whole set is validated before anything on the host changes. An invalid set fails with a message
    that names the rule and the field (bad CIDR, C(via) of the wrong family, ports without a port protocol,
    unknown interface, duplicate names, more rules than the program holds, unknown action), in check mode
    too.
  - Idempotent on the compiled form read back from the program's maps, never on a cache file.
  - Counters of rules whose name and match are unchanged survive an update.
  - The program must already be attached and pinned at O(pin_dir) (by M(ebpf.tc.bpf_filter) with
    C(files/bpf/steering.bpf.o) and program C(steering)).
  - The rule set read back and written is the one of the maps the program attached to the hook uses (the
    kernel's answer, its filter's program id and that program's map ids). When the hook runs another
    program than the one pinned at O(pin_dir), or one that does not use the maps pinned there (drift, for
    example after M(ebpf.tc.bpf_filter) attached it from another O(pin_dir)), the module fails, in check
    mode too, with a message naming both and how to repair, instead of reporting no change on maps nothing
    uses. M(ebpf.tc.tc_info) reports the same drift.
  - With O(confirm_timeout) the new set is a trial that reverts to the previous set by itself unless a
    later run confirms it with O(confirm=true) (commit-confirm, like M(community.general.iptables_state)).
author:
  - ebpf.tc contributors (!UNKNOWN)
extends_documentation_fragment:
  - ebpf.tc.hook
options:
  rules:
    description:
      - The rule set, in order; the first rule that matches a packet decides.
      - Required with O(state=present) unless O(confirm=true) is given alone (then the applied set is left
        as it is). Use V([]) for no rules.
      - 'Each rule: C(name) (unique, C([a-z0-9_.-]{1,32}); counters are keyed by it); C(match), a mapping of
        C(src) and C(dst) (CIDR or list, IPv4 and IPv6 may mix), C(proto) (C(tcp), C(udp), C(sctp), C(icmp),
        C(icmpv6) or 0-255, or a list), C(sport) and C(dport) (port, C("1000-2000") or a list; need a
        protocol list of tcp, udp and sctp only), C(icmp_type) and C(icmp_code) (0-255, C("lo-hi"), a type
        name like C(echo-request) or C(neighbor-solicitation), or a list; need C(proto) exactly C(icmp) or
        C(icmpv6)), every given field must match; C(action), one of C(pass),
        C(drop), C(redirect), C(mark), C(police), C(learn) (ingress: record the flow''s way in), C(reply)
        (egress: send it back that way); and the action''s parameter: C(redirect) (C(interface),
        and optionally C(via), the next hop; for C(reply), where replies nothing was learned for go),
        C(mark) (an integer, for example C(0x10)), C(police) (C(rate) like C(100pps) or C(10mbit),
        optionally C(burst)).'
      - Redirect interfaces must exist in O(netns) (or the current namespace); they are stored by ifindex
        and read back by name.
      - The schema is described in R(the rules guide,ansible_collections.ebpf.tc.docsite.rules), and how a
        field given several ways is made canonical in
        R(the dataplane guide,ansible_collections.ebpf.tc.docsite.dataplane.schema_choices).
    type: list
    elements: dict
  default_action:
    description:
      - What a packet that matches no rule gets.
      - Non-IP frames (ARP and the like) always pass.
    type: str
    choices: [pass, drop]
    default: pass
  state:
    description:
      - V(present) makes O(rules) and O(default_action) the applied set.
      - V(absent) applies the empty set with default action V(pass), so every packet passes; the program
        stays attached (detach it with M(ebpf.tc.bpf_filter)). The rule counters of the removed rules are
        gone from the result; the C((default)) counter keeps counting.
      - A program to which no set was ever applied passes every packet too, so it counts as the empty set
        with default V(pass) (V(absent) and V(rules=[]) report no change there).
    type: str
    choices: [present, absent]
    default: present
  confirm_timeout:
    description:
      - Seconds after which the set applied by this run reverts by itself to the previous one, unless a
        later run confirms it with O(confirm=true) (or applies another set without O(confirm_timeout)).
      - The previous set is recorded in C(/run/ebpf_tc/pending/) and a detached timer process on the target
        puts it back at the deadline, but only if the set applied then is still the one this run applied.
      - Applying again with O(confirm_timeout) while a set is pending replaces the pending set and restarts
        the timer with the new timeout; the set to revert to stays the last confirmed one (the set applied
        before the first unconfirmed change).
      - When the set does not change, nothing is started and a pending trial keeps its own deadline.
      - Cannot be combined with O(confirm=true).
    type: int
  confirm:
    description:
      - V(true) confirms the pending set. Its timer is stopped and the set stays.
      - Given alone (without O(rules)) when nothing is pending, the module fails, in check mode too - an
        operator who confirms late must not believe the trial set is live. When the last trial was reverted
        at its deadline the message says when, and the generation applied then. Confirming again a set
        that was confirmed and is still applied is not an error (no change).
      - With O(rules) (or O(state=absent)), that set is applied first, then confirmed; nothing pending is
        fine then, the set given is the one applied.
      - Reports a change when there was a pending set to confirm.
    type: bool
    default: false
attributes:
  check_mode:
    description: Validates and compiles the set and reports the change and diff it would make; writes nothing.
    support: full
  diff_mode:
    description: Returns C(before) and C(after) as C({default_action, rules}) in canonical form.
    support: full
  idempotent:
    description: A second run with the same rule set reports no change (compared in compiled form).
    support: full
  platform:
    description: Linux targets only (eBPF, TC).
    support: full
    platforms: posix
notes:
  - Applying without O(confirm_timeout) while a set is pending makes the applied set the confirmed one and
    stops the pending revert.
  - The records of pending sets live on tmpfs (C(/run)), as the program's maps live on bpffs; a reboot
    forgets both.
seealso:
  - module: ebpf.tc.bpf_filter
  - module: ebpf.tc.tc_info
  - module: community.general.iptables_state
'''

EXAMPLES = r'''
- name: Send the service's replies out of eth1 to its next hop, drop ping, count the rest
  ebpf.tc.steering_rules:
    interface: eth0
    rules:
      - name: vip-return-eth1-v4
        match: {src: 198.51.100.10/32}
        action: redirect
        redirect:
          interface: eth1
          via: 203.0.113.1
      - name: vip-return-eth1-v6  # a next hop is of one family: one rule per family
        match: {src: "2001:db8:100::10/128"}
        action: redirect
        redirect:
          interface: eth1
          via: "2001:db8:1::1"
      - name: no-ping
        match: {proto: icmp}
        action: drop
  become: true

- name: Try a stricter set; it reverts by itself after 60 s unless confirmed
  ebpf.tc.steering_rules:
    interface: eth0
    default_action: drop
    rules:
      - name: web
        match: {proto: tcp, dport: [80, 443]}
        action: pass
    confirm_timeout: 60
  become: true

- name: Still reachable, keep it
  ebpf.tc.steering_rules:
    interface: eth0
    confirm: true
  become: true

- name: Police a UDP range and mark a prefix, in namespace blue
  ebpf.tc.steering_rules:
    interface: veth0
    netns: blue
    rules:
      - name: bulk
        match: {dport: "5000-6000", proto: udp}
        action: police
        police: {rate: 100pps, burst: 200}
      - name: tag
        match: {dst: 192.0.2.0/24}
        action: mark
        mark: 0x10
  become: true

- name: Remove every rule (the program stays attached and passes everything)
  ebpf.tc.steering_rules:
    interface: eth0
    state: absent
  become: true
'''

RETURN = r'''
rules:
  description:
    - The applied rule set after the run (in check mode, the set that would be applied), in canonical form
      (lists for every match field, addresses sorted and merged, ports merged into ranges). Given back as
      O(rules), it is the same set.
  returned: always
  type: list
  elements: dict
  sample:
    - name: no-ping
      match: {proto: [icmp]}
      action: drop
default_action:
  description: The default action after the run.
  returned: always
  type: str
  sample: pass
counters:
  description:
    - Per rule of the applied set, by rule name, C(packets), C(bytes) (layer-2 sizes) and C(drops), summed
      over CPUs; C((default)) counts the packets the default action decided.
    - Empty when no set was ever applied. In check mode, the counters of the set applied now.
  returned: always
  type: dict
  sample:
    no-ping: {packets: 4, bytes: 392, drops: 4}
    (default): {packets: 120, bytes: 10432, drops: 0}
generation:
  description: The applied set's generation (increases by one on every switch; 0 when none was applied).
  returned: always
  type: int
  sample: 3
pending:
  description: The trial set waiting for a confirmation after the run, or null when there is none.
  returned: always
  type: dict
  contains:
    generation:
      description: Generation of the pending set; the revert happens only while it is still applied.
      type: int
    deadline:
      description: When it reverts, in seconds since the epoch.
      type: float
    expires_in:
      description: Seconds left until then.
      type: float
    revert_to:
      description: The set it reverts to, as C({default_action, rules}).
      type: dict
    timer_running:
      description: Whether the timer process that will revert it is running.
      type: bool
    error:
      description: Why a revert failed, when it did (the record stays until confirmed); else null.
      type: str
  sample: null
diff:
  description: In diff mode, C(before) and C(after), each C({default_action, rules}) in canonical form.
  returned: when diff mode is on
  type: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _steering
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import (
    check_host, hook_argument_spec, pin_dir_of)


def main():
    argument_spec = hook_argument_spec()
    argument_spec.update(
        rules=dict(type='list', elements='dict'),
        default_action=dict(type='str', choices=['pass', 'drop'], default='pass'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        confirm_timeout=dict(type='int'),
        confirm=dict(type='bool', default=False),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
    )
    check_host(module)
    params = module.params
    try:
        result = _steering.manage(
            pin_dir_of(params), params['interface'], netns=params['netns'], state=params['state'],
            rules=params['rules'], default_action=params['default_action'],
            confirm_timeout=params['confirm_timeout'], confirm=params['confirm'], check_mode=module.check_mode,
            direction=params['direction'])
    except EbpfTcError as err:
        module.fail_json(msg=str(err))
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: steering_explain
short_description: Which steering rule decides a described packet on a live hook, and what it does
version_added: 0.2.0
description:
  - Answers, for a packet described by its fields, which rule of the rule set live on a hook decides, what
    the action is, and where a redirect goes (interface, next hop, and the state of that neighbour in the
    kernel's table), or for a reply rule, the way its flow was learned.
  - The kernel answers, on the live maps. The explain build of the steering program (the same parser and
    classifier, C(files/bpf/steering_explain.bpf.o) of the collection, which writes nothing) is loaded over the
    maps of the program attached to the hook (by the ids the kernel reports, not by pins) and run once on a
    frame built from O(packet) with C(BPF_PROG_TEST_RUN). No counter, policer bucket, flow cache entry or
    learned path moves.
  - Says when the hook is shadowed (our clsact filter behind TCX programs, which decide first) and when its
    pins have drifted from what runs.
  - Read-only.
author:
  - ebpf.tc contributors (!UNKNOWN)
extends_documentation_fragment:
  - ebpf.tc.read_only
  - ebpf.tc.hook
options:
  packet:
    description:
      - The packet, as the hook would see it.
      - C(src) and C(dst) (required, one IP family), C(proto) (C(tcp) by default; C(udp), C(sctp), C(icmp),
        C(icmpv6) or 0-255), C(sport) and C(dport) (TCP, UDP and SCTP), C(icmp_type) (a number or a type name
        like C(echo-request)) and C(icmp_code) (ICMP and ICMPv6), C(vlan) (an 802.1Q tag in the frame).
    type: dict
    required: true
  explain_object:
    description:
      - Path on the target of the explain build of the steering object. Set by the action plugin, which sends
        the collection's own C(files/bpf/steering_explain.bpf.o); give it only to use another build.
    type: path
attributes:
  platform:
    support: full
    platforms: posix
    description: Linux; an action plugin sends the explain object to the target.
notes:
  - The explain build comes from the same source as the steering program the collection attaches. A hook running
    an older build is explained by this collection's classifier over its maps, which agree as long as the map
    layout is the same (a build that changed it fails to load over them).
seealso:
  - module: ebpf.tc.tc_info
  - module: ebpf.tc.steering_rules
  - ref: ansible_collections.ebpf.tc.docsite.troubleshooting
    description: The troubleshooting guide, with examples.
'''

EXAMPLES = r'''
- name: Which rule decides a reply from the service address to a client?
  ebpf.tc.steering_explain:
    interface: eth0
    direction: egress
    packet: {src: 198.51.100.10, dst: 10.99.0.2, proto: tcp, sport: 8080, dport: 40000}
  register: why

- name: Show it
  ansible.builtin.debug:
    msg: "{{ why.summary }}"   # rule 0 (rp-web-vip-v4) decides: redirect out of eth1 to 203.0.113.1 (neighbour reachable)

- name: Would a neighbour solicitation leave eth0?
  ebpf.tc.steering_explain:
    interface: eth0
    packet: {src: "2001:db8:2::2", dst: "ff02::1:ff00:1", proto: icmpv6, icmp_type: neighbor-solicitation}
'''

RETURN = r'''
verdict:
  description:
    - C(rule) (a rule decides), C(default) (no rule matches), C(malformed) (the default action too),
      C(non-ip) (passes), C(no rule set) (nothing applied yet, so it passes), or C(not attached) (no steering
      program runs on the hook).
  returned: success
  type: str
  sample: rule
action:
  description: What happens to the packet - the rule's action, or the default action, or C(pass).
  returned: success
  type: str
  sample: redirect
rule:
  description: The deciding rule in canonical form, with its C(index) in the set; null when no rule decides.
  returned: success
  type: dict
  sample: {index: 0, name: rp-web-vip-v4, match: {src: [198.51.100.10/32]}, action: redirect,
           redirect: {interface: eth1, via: 203.0.113.1}}
redirect:
  description:
    - Where a redirect (or a reply with nothing learned) sends the packet - C(interface), C(via), and the
      C(neighbour) the kernel hands it to, C({address, state, lladdr}), C(state) one of C(reachable), C(stale),
      C(delay), C(probe), C(permanent), C(incomplete), C(failed), C(noarp) or C(none) (no entry yet).
  returned: success
  type: dict
reply:
  description:
    - For a reply rule, the learned way back - C(interface), C(router_mac), C(own_mac); null when nothing is
      learned for the flow.
  returned: success
  type: dict
hook:
  description:
    - C(interface), C(direction), C(netns), C(backend) and C(prog_id) of the program explained, C(shadowed)
      and C(drift) (a sentence each, or null).
  returned: success
  type: dict
packet:
  description: The packet explained, in canonical form.
  returned: success
  type: dict
summary:
  description: The answer in one line.
  returned: success
  type: str
  sample: 'rule 3 (drop-icmp) decides: drop'
'''

import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _explain
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import (
    check_host, hook_argument_spec, pin_dir_of)


def main():
    spec = hook_argument_spec()
    spec.update(packet=dict(type='dict', required=True), explain_object=dict(type='path'))
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    check_host(module)
    params = module.params
    if not params['explain_object']:
        module.fail_json(msg='explain_object: not given, and no action plugin sent one (run the module as '
                             'ebpf.tc.steering_explain)')
    try:
        result = _explain.explain(params['interface'], params['direction'], params['netns'], pin_dir_of(params),
                                  params['packet'], params['explain_object'])
    except EbpfTcError as err:
        module.fail_json(msg=str(err))
    except Exception as err:  # netlink and libbpf surprises: the traceback for -vvv
        module.fail_json(msg='cannot explain: %s' % err, exception=traceback.format_exc())
    module.exit_json(**result)


if __name__ == '__main__':
    main()

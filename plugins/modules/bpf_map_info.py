#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: bpf_map_info
short_description: Read any pinned BPF map, decoded by the map's own BTF
version_added: 0.2.0
description:
  - Reads the BPF map pinned at O(path), or every map pinned in O(pin_dir), and returns what the kernel says
    of it (type, key and value sizes, capacity, flags, id, BTF types) and its entries, the way
    C(bpftool map dump) shows them. Works with any object's maps, not only the collection's steering program.
  - B(With BTF) (every map defined in C(.maps) by a C(clang -g) build has it) keys and values are decoded by
    their types - integers, booleans, enums by name, char arrays holding text as strings, arrays as lists,
    structs and unions as dicts of their members (an anonymous member's members sit in the enclosing dict),
    bitfields as integers, global data (C(.data), C(.bss), C(.rodata)) as a dict of its variables.
  - B(Without BTF) keys and values are shown in the forms M(ebpf.tc.bpf_map) accepts - an integer up to
    8 bytes (little-endian), hex bytes otherwise.
  - B(LPM tries) - a key of an IPv4 or IPv6 address (8 or 20 bytes) is shown as its prefix, for example
    C(10.0.0.0/8).
  - B(Per-CPU maps) - RV(map.entries[].values) holds each possible CPU's value, and RV(map.entries[].value)
    their sum (numbers are added member by member; other fields are kept when every CPU agrees, else null).
  - B(Map-in-map and program arrays) - a value is the id of the inner map (with its name and type) or of the
    program. Maps whose entries user space cannot read (ring buffers, perf event arrays, socket maps, queues,
    stacks, storage maps and the like) are returned with RV(map.readable=false) and no entries.
author:
  - ebpf.tc contributors (!UNKNOWN)
extends_documentation_fragment:
  - ebpf.tc.read_only
options:
  path:
    description:
      - Path of a pinned map on bpffs, for example C(/sys/fs/bpf/ebpf_tc/eth0/egress/rule_stats).
      - Exactly one of O(path) and O(pin_dir) is required.
    type: path
  pin_dir:
    description:
      - A directory on bpffs; every map pinned directly in it is read (subdirectories are not entered,
        pinned programs and links are listed in RV(other_pins)).
      - Exactly one of O(path) and O(pin_dir) is required.
    type: path
  keys:
    description:
      - Read only these keys, in the encodings M(ebpf.tc.bpf_map) accepts (integers, IP addresses, CIDR
        prefixes of an LPM trie, hex bytes such as a returned RV(map.entries[].key_hex)). A key the map does
        not hold is returned with a null value.
      - Only with O(path).
    type: list
    elements: raw
  max_entries:
    description:
      - Return at most this many entries per map; RV(map.truncated) tells whether there were more.
      - V(0) returns what the kernel says of the map and no entries.
      - Omitted, every entry is returned (a full 65,536-entry map is a large result).
    type: int
  skip_zero:
    description:
      - Leave out entries whose value is all zero bytes (on every CPU). On an array, whose indexes all
        exist, that leaves the ones a program or an operator wrote.
      - Applies when the whole map is read, not to O(keys).
    type: bool
    default: false
attributes:
  platform:
    support: full
    platforms: posix
    description: Linux 5.11 or later (proven on 6.1, 6.12 and 6.18).
requirements:
  - Python 3.9 or later on the target.
  - Linux 5.11 or later (proven on 6.1, 6.12 and 6.18), with bpffs mounted.
  - libbpf (C(libbpf.so.1), or C(libbpf.so.0) 0.5 or later) on the target.
  - Root on the target (C(become=true)).
notes:
  - The entries are read one after the other while programs may update them; an entry is consistent in
    itself, the map as a whole is a moving picture (as with C(bpftool map dump)).
  - Decoding differs from C(bpftool map dump)'s formatted output in four documented ways, all to make the
    values easier to use in templates - bitfields are integers (bpftool - hex strings), anonymous members are
    merged into their parent (bpftool - nested under an empty name), global data is one dict of variables,
    integers wider than 8 bytes are integers.
seealso:
  - module: ebpf.tc.bpf_map
  - module: ebpf.tc.bpf_filter
  - module: ebpf.tc.tc_info
'''

EXAMPLES = r'''
- name: Read the per-protocol counters of a program attached with ebpf.tc.bpf_filter
  become: true
  ebpf.tc.bpf_map_info:
    path: /sys/fs/bpf/ebpf_tc/eth0/egress/protocol_stats
    skip_zero: true
  register: stats

- name: Packets per protocol number, summed over the CPUs
  ansible.builtin.debug:
    msg: "{{ stats.map.entries | items2dict(key_name='key', value_name='value') }}"

- name: Every map of a hook, with at most 10 entries each
  become: true
  ebpf.tc.bpf_map_info:
    pin_dir: /sys/fs/bpf/ebpf_tc/eth0/egress
    max_entries: 10
  register: hook_maps

- name: Two keys of an LPM trie, exactly
  become: true
  ebpf.tc.bpf_map_info:
    path: /sys/fs/bpf/my_prog/prefixes
    keys: [10.0.0.0/8, 2001:db8::/32]
'''

RETURN = r'''
map:
  description: The map at O(path), with its entries.
  returned: when O(path) is given
  type: dict
  contains:
    path:
      description: The pin the map was read from.
      type: str
    id:
      description: Kernel map id.
      type: int
    name:
      description: Map name (at most 15 characters).
      type: str
    type:
      description: Map type, for example C(hash), C(percpu_array), C(lpm_trie), C(array_of_maps).
      type: str
    key_size:
      description: Bytes per key.
      type: int
    value_size:
      description: Bytes per value (per CPU, for a per-CPU map).
      type: int
    max_entries:
      description: Capacity of the map.
      type: int
    flags:
      description: Map flags (for example 1 = C(BPF_F_NO_PREALLOC), 1024 = C(BPF_F_MMAPABLE)).
      type: int
    btf_id:
      description: Id of the map's BTF; 0 without BTF.
      type: int
    key_type:
      description: The key's C type from the BTF, null without one.
      type: str
      sample: struct flow_key
    value_type:
      description: The value's C type from the BTF, null without one.
      type: str
      sample: __u64
    percpu:
      description: Whether each key holds one value per possible CPU.
      type: bool
    readable:
      description: Whether user space can read the entries of a map of this type.
      type: bool
    truncated:
      description: Whether O(max_entries) left entries out.
      type: bool
    entries:
      description: The entries, in the kernel's iteration order.
      type: list
      elements: dict
      contains:
        key:
          description: The key, decoded (see the description).
          type: raw
          sample: 6
        value:
          description: The value, decoded; for a per-CPU map the sum over the CPUs; null for an absent key
            asked for in O(keys).
          type: raw
          sample: {packets: 12, bytes: 1032}
        values:
          description: Per-CPU maps - each possible CPU's value, decoded, in CPU order.
          type: list
          elements: raw
          returned: per-CPU maps
        key_hex:
          description: The key's bytes as hex - a form O(keys) and M(ebpf.tc.bpf_map) accept.
          type: str
          sample: '0x06000000'
        value_hex:
          description: The value's bytes as hex (per-CPU maps - a list, one per CPU); null when absent.
          type: raw
        inner_map:
          description: Map-in-map - the inner map's C(id), C(name) and C(type); null when it is gone.
          type: dict
          returned: map-in-map
maps:
  description: Every map pinned in O(pin_dir), by pin name, each as RV(map) describes.
  returned: when O(pin_dir) is given
  type: dict
  sample: {rule_stats: {id: 42, type: percpu_array, entries: []}}
other_pins:
  description: Pins in O(pin_dir) that are not maps (programs, links).
  returned: when O(pin_dir) is given
  type: list
  elements: str
  sample: [steering]
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _mapinfo
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import check_host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path'),
            pin_dir=dict(type='path'),
            keys=dict(type='list', elements='raw', no_log=False),
            max_entries=dict(type='int'),
            skip_zero=dict(type='bool', default=False),
        ),
        required_one_of=[('path', 'pin_dir')],
        mutually_exclusive=[('path', 'pin_dir'), ('pin_dir', 'keys')],
        supports_check_mode=True,
    )
    params = module.params
    if params['max_entries'] is not None and params['max_entries'] < 0:
        module.fail_json(msg='max_entries must be 0 or more, not %d' % params['max_entries'])
    check_host(module, pyroute2=False, bpffs=False)  # the path may be on any bpffs mount
    try:
        if params['path'] is not None:
            facts, warnings = _mapinfo.read_pinned(params['path'], params['keys'], params['max_entries'],
                                                   params['skip_zero'])
            result = {'map': facts}
        else:
            maps, others, warnings = _mapinfo.read_pin_dir(params['pin_dir'], params['max_entries'],
                                                           params['skip_zero'])
            result = {'maps': maps, 'other_pins': others}
    except EbpfTcError as err:
        module.fail_json(msg=str(err), path=params['path'] or params['pin_dir'])
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: bpf_map
short_description: Manage the entries of a pinned BPF map
version_added: 0.1.0
description:
  - Makes the BPF map pinned at O(path) hold the given O(entries) (O(state=present)), or not hold them
    (O(state=absent)). With O(exclusive=true) every other entry is removed as well.
  - Works with any pinned map of type C(hash), C(lru_hash), C(percpu_hash), C(lru_percpu_hash),
    C(array), C(percpu_array) and C(lpm_trie), not only the maps of the collection's steering program.
  - Keys and values are sized from the map's own key and value size. They can be given as
    B(integers) (unsigned, little-endian, which is host order on x86_64 and aarch64, zero-padded to the
    size; a string of decimal digits is an integer too), B(IP addresses) (4 or 16 bytes in network order,
    zero-padded at the end), B(CIDR prefixes) such as C(10.0.0.0/8) (the kernel's LPM trie key, a u32
    prefix length in host order, then the address; host bits must be zero), or B(hex bytes)
    C(0x0a000001) or C(0a:00:00:01) (the bytes in the order written, zero-padded at the end;
    colon-separated groups of exactly two hex digits are always bytes, never an IPv6 address).
    Nothing is ever truncated, a key or value longer than the map's size is an error naming the key.
  - Idempotence is decided on the encoded bytes read back from the map.
  - B(Per-CPU maps) - a value is written to every possible CPU, and an entry is present when every CPU
    holds that value.
  - B(Array maps) cannot delete entries, every index always exists. An absent entry of an array is one
    whose value is all zeros - O(state=absent) writes zeros, O(exclusive=true) zeroes every other
    non-zero index, and a key outside the array is an error.
  - B(LPM tries) are compared by exact keys (prefix length and address), never by longest-prefix match.
author:
  - ebpf.tc contributors (!UNKNOWN)
options:
  path:
    description:
      - Path of the pinned map on bpffs, for example C(/sys/fs/bpf/ebpf_tc/eth0/egress/settings).
    type: path
    required: true
  entries:
    description:
      - The entries, as a dict of key to value, or as a list of dicts with C(key) and C(value) (for keys
        that YAML cannot use as dict keys).
      - With O(state=absent), the keys to remove - a dict (its values are ignored), a list of keys, or a
        list of dicts with C(key).
      - Omitted or empty with O(exclusive=true), the map is emptied.
    type: raw
  state:
    description:
      - V(present) - the keys hold the given values.
      - V(absent) - the keys are not in the map (arrays - their values are zeros).
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description:
      - Also remove every entry not listed in O(entries) (arrays - set it to zeros).
      - Only with O(state=present).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reads the map and reports what would change; writes nothing.
  diff_mode:
    support: full
    description: Before and after values of the keys that change (readable forms, see RV(diff)).
  idempotent:
    support: full
    description: Compares the encoded bytes of keys and values with what the map holds.
  platform:
    support: full
    platforms: posix
    description: Linux 5.11 or later (proven on 6.1, 6.12 and 6.18).
requirements:
  - Python 3.9 or later on the target.
  - Linux 5.11 or later (proven on 6.1, 6.12 and 6.18), with bpffs mounted at C(/sys/fs/bpf).
  - libbpf (C(libbpf.so.1), or C(libbpf.so.0) 0.5 or later) on the target.
  - Root on the target (C(become=true)).
notes:
  - Maps of other types (program arrays, map-in-map, ring buffers, socket maps) hold kernel objects or
    are not readable from user space; the module refuses them.
  - The steering program's maps are managed as a whole by M(ebpf.tc.steering_rules); write them with
    this module only to tune something such as C(settings).
seealso:
  - module: ebpf.tc.bpf_filter
  - module: ebpf.tc.tc_info
'''

EXAMPLES = r'''
- name: Allow two source addresses in a hash map keyed by IPv4 address (value u32 1)
  become: true
  ebpf.tc.bpf_map:
    path: /sys/fs/bpf/ebpf_tc/eth0/egress/allowed
    entries:
      198.51.100.10: 1
      198.51.100.11: 1

- name: Exactly these prefixes in an LPM trie (everything else removed)
  become: true
  ebpf.tc.bpf_map:
    path: /sys/fs/bpf/ebpf_tc/eth0/egress/prefixes
    exclusive: true
    entries:
      10.0.0.0/8: 1
      2001:db8::/32: 2

- name: Keys YAML cannot express as dict keys, as a list
  become: true
  ebpf.tc.bpf_map:
    path: /sys/fs/bpf/ebpf_tc/eth0/egress/by_mac
    entries:
      - key: "02:00:00:00:00:01"
        value: "0x0000000000000001"

- name: Set slot 0 of an array (u32 index) to 0x10, on every CPU of a per-CPU array too
  become: true
  ebpf.tc.bpf_map:
    path: /sys/fs/bpf/ebpf_tc/eth0/egress/config
    entries:
      0: 16

- name: Remove keys (in an array, zero them)
  become: true
  ebpf.tc.bpf_map:
    path: /sys/fs/bpf/ebpf_tc/eth0/egress/allowed
    state: absent
    entries: [198.51.100.11]
'''

RETURN = r'''
entries:
  description:
    - The keys named in O(entries), as they are after the task (as they would be, in check mode).
    - C(value) is null for an absent key; in an array it is the index's value (zeros when absent).
      For a per-CPU map whose CPUs hold different values, C(value) is a list of hex values, one per CPU.
  returned: success
  type: list
  elements: dict
  contains:
    key:
      description: The key's bytes, as hex.
      type: str
      sample: '0x0a000001'
    key_int:
      description: The key as a little-endian unsigned integer, when it is at most 8 bytes.
      type: int
      sample: 16777226
    key_cidr:
      description: For an LPM trie key of an IPv4 or IPv6 address, the prefix it stands for.
      type: str
      sample: 10.0.0.0/8
    value:
      description: The value's bytes, as hex; null when the key is absent.
      type: raw
      sample: '0x01000000'
    value_int:
      description: The value as a little-endian unsigned integer, when it is at most 8 bytes.
      type: int
      sample: 1
  sample:
    - {key: '0x0a000001', key_int: 16777226, value: '0x01000000', value_int: 1}
removed:
  description: Keys not named in O(entries) that O(exclusive=true) removed (arrays - zeroed), readable.
  returned: success
  type: list
  elements: str
  sample: ['10.1.0.0/16']
diff:
  description:
    - Before and after values of every key that changes; keys shown as CIDR (LPM tries), integers (up to
      8 bytes) or hex, values as integers (up to 8 bytes) or hex, null for absent.
  returned: diff mode
  type: dict
  sample: {before: {'1': null}, after: {'1': 16}}
map:
  description: What the kernel says of the map.
  returned: success
  type: dict
  contains:
    id:
      description: Kernel map id.
      type: int
    name:
      description: Map name (at most 15 characters).
      type: str
    type:
      description: Map type, for example C(hash), C(array), C(lpm_trie).
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
      description: Map flags (for example 1 = C(BPF_F_NO_PREALLOC)).
      type: int
  sample: {id: 42, name: settings, type: array, key_size: 4, value_size: 8, max_entries: 1, flags: 0}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _mapcodec
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import check_host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            entries=dict(type='raw'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            exclusive=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    check_host(module, pyroute2=False, bpffs=False)  # the path may be on any bpffs mount
    params = module.params
    try:
        result = _mapcodec.ensure(params['path'], params['entries'], state=params['state'],
                                  exclusive=params['exclusive'], check_mode=module.check_mode)
    except EbpfTcError as err:
        module.fail_json(msg=str(err), path=params['path'])
    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(**result)


if __name__ == '__main__':
    main()

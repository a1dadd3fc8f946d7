#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: bpf_object_info
short_description: Whether the target's kernel accepts a BPF object - load it once, pin and attach nothing
version_added: 0.2.0
description:
  - Opens a BPF ELF object from a path on the target and loads it into the running kernel once, with fresh
    maps and nothing pinned or attached, then closes it again. The kernel's verifier is the only judge of
    whether a kernel runs an object; a kernel version number is a guess.
  - Returns whether the object loads, its programs and maps, the tag of O(program), and when the kernel
    refuses it, the end of the verifier's log. A refusal is a result (RV(loads=false)), not a failure of the
    module, so that a play can assert on it and show the verifier's line.
  - The C(ebpf.tc.steering) role and the C(ebpf.tc.rollout) playbook run it in their preflight, so that a
    host whose kernel refuses the steering object fails before any host changes.
author:
  - ebpf.tc contributors (!UNKNOWN)
options:
  object:
    description:
      - Path of the BPF ELF object on the target.
      - Exactly one of O(object) and O(src) is required.
    type: path
  src:
    description:
      - Path of the BPF ELF object on the controller (relative paths are looked up like the C(copy) module's
        C(src)). The object is copied to the task's temporary directory on the target, loaded from there and
        removed with it - one task, nothing left behind.
      - Exactly one of O(object) and O(src) is required.
    type: path
    version_added: 0.2.0
  program:
    description:
      - Name of a program (the C function) that must be in O(object); its tag is returned.
      - When omitted, every program of the object is loaded and none is singled out.
    type: str
attributes:
  check_mode:
    support: full
    description: Read-only, so check mode loads the object the same way.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  idempotent:
    support: full
    description: Never changes anything; the loaded object is gone when the module ends.
  platform:
    support: full
    platforms: posix
    description: Linux; the kernels the collection is tested on are listed in the troubleshooting guide.
requirements:
  - Python 3.9 or later on the target.
  - libbpf (C(libbpf.so.1), or C(libbpf.so.0) 0.5 or later) on the target.
  - Root on the target (C(become=true)).
notes:
  - A missing file, a file that is not a BPF object, or a O(program) the object does not hold fails the
    module; only the kernel's refusal is returned as RV(loads=false).
seealso:
  - module: ebpf.tc.bpf_filter
'''

EXAMPLES = r'''
- name: Does this host's kernel accept the steering object?
  become: true
  ebpf.tc.bpf_object_info:
    object: /usr/local/lib/ebpf_tc/steering.bpf.o
    program: steering
  register: steering_object

- name: Stop here, with the verifier's words, when it does not
  ansible.builtin.assert:
    that: steering_object.loads
    fail_msg: "kernel {{ steering_object.kernel }} refuses the object: {{ steering_object.error }}"

- name: The same for a build on the controller, before it is deployed anywhere
  become: true
  ebpf.tc.bpf_object_info:
    src: build/steering.bpf.o
    program: steering
  register: new_build
'''

RETURN = r'''
kernel:
  description: The running kernel's release (C(uname -r)).
  returned: always
  type: str
  sample: 6.1.0-57-amd64
loads:
  description: Whether the kernel loaded the object (its verifier accepted every program).
  returned: always
  type: bool
  sample: true
programs:
  description: The names of the object's programs.
  returned: always
  type: list
  elements: str
  sample: [steering]
maps:
  description: The object's maps (not libbpf's internal ones), by name, as the kernel created them.
  returned: when the object loads
  type: dict
  sample: {rules: {type: 2, key_size: 4, value_size: 96, max_entries: 8192, flags: 1024}}
tag:
  description: The kernel's tag of O(program) (a hash of its instructions), as C(bpftool prog show) prints it.
  returned: when O(program) is given and the object loads
  type: str
  sample: 5c8a1f3e2b7d9a04
src:
  description: With O(src), the controller path of the object that was loaded.
  returned: with O(src)
  type: str
  sample: /home/me/build/steering.bpf.o
error:
  description: Why the kernel refused the object, with the end of the verifier's log.
  returned: when RV(loads) is false
  type: str
  sample: "back-edge from insn 629 to 630"
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ebpf.tc.plugins.module_utils import _program
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._module_support import check_host


def main():
    module = AnsibleModule(
        argument_spec=dict(
            object=dict(type='path'),
            src=dict(type='path'),
            program=dict(type='str'),
        ),
        required_one_of=[('object', 'src')],
        mutually_exclusive=[('object', 'src')],
        supports_check_mode=True,
    )
    if module.params['src'] is not None:
        module.fail_json(msg='src: only the action plugin of ebpf.tc.bpf_object_info can copy an object from the '
                         'controller; run the module as a task (or give object, a path on the target)')
    check_host(module, pyroute2=False, bpffs=False)
    params = module.params
    try:
        result = _program.object_check(params['object'], params['program'])
    except EbpfTcError as err:
        module.fail_json(msg=str(err), kernel=os.uname()[2])
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()

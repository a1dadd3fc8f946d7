"""Make the source tree importable as ``ansible_collections.ebpf.tc`` for pytest.

Ansible imports collection code only by its full package name, so the tests do the same: a symlink
``.tmp/collections/ansible_collections/ebpf/tc`` points at the repository root.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, '.tmp', 'collections')
_link = os.path.join(COLLECTIONS, 'ansible_collections', 'ebpf', 'tc')
if not os.path.islink(_link):
    os.makedirs(os.path.dirname(_link), exist_ok=True)
    try:
        os.symlink(ROOT, _link)
    except FileExistsError:  # another worker made it first
        pass
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

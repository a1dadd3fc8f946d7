# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The execution-environment metadata (meta/execution-environment.yml, bindep.txt, requirements.txt)
names the same packages the role installs on managed hosts, distribution by distribution."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

import pytest
import yaml
from bindep.depends import Depends

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# bindep profiles of a distribution, and the role's vars file for it (roles/steering/vars/)
DISTRIBUTIONS = {
    'Debian 12': (['platform:dpkg', 'platform:debian', 'platform:debian-12', 'platform:debian-bookworm'],
                  'Debian.yml'),
    'Ubuntu 22.04': (['platform:dpkg', 'platform:ubuntu', 'platform:ubuntu-22.04', 'platform:ubuntu-jammy'],
                     'Ubuntu-22.yml'),
    'Ubuntu 24.04': (['platform:dpkg', 'platform:ubuntu', 'platform:ubuntu-24.04', 'platform:ubuntu-noble'],
                     'Debian.yml'),  # the role's Debian-family default
    'RHEL 9': (['platform:rpm', 'platform:redhat', 'platform:rhel', 'platform:rhel-9'], 'RedHat.yml'),
}


def load_yaml(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return yaml.safe_load(f)


def test_metadata_points_at_files_that_exist():
    meta = load_yaml('meta', 'execution-environment.yml')
    assert meta['version'] == 1
    assert meta['dependencies'] == {'python': 'requirements.txt', 'system': 'bindep.txt'}
    for name in meta['dependencies'].values():
        assert os.path.isfile(os.path.join(ROOT, name)), name


def test_python_requirements_are_the_modules_library():
    with open(os.path.join(ROOT, 'requirements.txt')) as f:
        lines = [line.split('#')[0].strip() for line in f]
    assert [line for line in lines if line] == ['pyroute2>=0.7.2']


@pytest.mark.parametrize('distribution', sorted(DISTRIBUTIONS))
def test_bindep_names_the_system_packages_the_role_installs(distribution):
    profiles, vars_file = DISTRIBUTIONS[distribution]
    with open(os.path.join(ROOT, 'bindep.txt')) as f:
        bindep = Depends(f.read())
    wanted = set(rule[0] for rule in bindep.active_rules(profiles))
    # the role also installs the distribution's pyroute2 package; an EE gets pyroute2 from requirements.txt
    role = set(load_yaml('roles', 'steering', 'vars', vars_file)['_ebpf_tc_packages']) - {'python3-pyroute2'}
    assert wanted == role

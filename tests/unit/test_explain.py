# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""steering_explain's packet descriptions: validation naming the field, and the frame the parser reads."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

import model
from ansible_collections.ebpf.tc.plugins.module_utils import _explain
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError


def test_the_frame_of_a_description_is_what_the_parser_reads():
    for description in ({'src': '192.0.2.1', 'dst': '198.51.100.10', 'proto': 'udp', 'sport': 53, 'dport': 4000},
                        {'src': '2001:db8::1', 'dst': 'ff02::1:ff00:1', 'proto': 'icmpv6',
                         'icmp_type': 'neighbour-solicitation', 'vlan': 7},
                        {'src': '10.0.0.1', 'dst': '10.0.0.2', 'proto': 47}):
        packet = _explain.describe(description)
        parsed = model.parse(_explain.frame_of(packet))
        want_ip = ('ip', packet['src'], packet['dst'], packet['proto'])
        assert (parsed.kind, parsed.src, parsed.dst, parsed.proto) == want_ip
        # a field left out is 0 in the frame: a TCP packet always has ports, an ICMP one a type and code
        zero = dict((key, packet[key] or 0) for key in ('sport', 'dport', 'icmp_type', 'icmp_code'))
        want = {6: 'ports', 17: 'ports', 132: 'ports', 1: 'icmp', 58: 'icmp'}.get(packet['proto'])
        assert (parsed.sport, parsed.dport) == ((zero['sport'], zero['dport']) if want == 'ports' else (None, None))
        assert (parsed.icmp_type, parsed.icmp_code) == (
            (zero['icmp_type'], zero['icmp_code']) if want == 'icmp' else (None, None))
    assert _explain.describe({'src': '::1', 'dst': '::2', 'proto': 'icmpv6',
                              'icmp_type': 'neighbour-solicitation'})['icmp_type'] == 135


@pytest.mark.parametrize('packet, field, text', [
    ({'dst': '10.0.0.1'}, 'packet.src', 'is not an IP address (required)'),
    ({'src': '10.0.0.1', 'dst': '::1'}, 'packet.dst', 'IPv6, but src is IPv4'),
    ({'src': '10.0.0.1', 'dst': '10.0.0.2', 'proto': 'gre'}, 'packet.proto', 'is not a number 0-255'),
    ({'src': '10.0.0.1', 'dst': '10.0.0.2', 'proto': 'icmp', 'dport': 80}, 'packet.dport', 'have ports'),
    ({'src': '10.0.0.1', 'dst': '10.0.0.2', 'sport': 70000}, 'packet.sport', 'is not a number 0-65535'),
    ({'src': '10.0.0.1', 'dst': '10.0.0.2', 'icmp_type': 8}, 'packet.icmp_type', 'have a type and code'),
    ({'src': '::1', 'dst': '::2', 'proto': 'icmpv6', 'icmp_type': 'ping'}, 'packet.icmp_type', 'ICMP type name'),
    ({'src': '10.0.0.1', 'dst': '10.0.0.2', 'vlan': 4096}, 'packet.vlan', 'is not a number 0-4095'),
    ({'src': '10.0.0.1', 'dst': '10.0.0.2', 'ttl': 3}, 'packet.ttl', 'unknown key'),
])
def test_bad_descriptions_name_the_field(packet, field, text):
    with pytest.raises(EbpfTcError) as info:
        _explain.describe(packet)
    assert str(info.value).startswith(field + ':') and text in str(info.value), str(info.value)

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Frame builders for the model and dataplane tests.

Plain ``struct`` rather than scapy: every field can be set to a wrong value and every frame cut at any
byte, which is what the malformed-frame tests need. Checksums are filled in where they are cheap
(IPv4 header); the program never looks at them. Addresses are strings or ``ipaddress`` objects.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import struct

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
ETH_P_LLDP = 0x88CC
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8

IPPROTO = {'icmp': 1, 'tcp': 6, 'udp': 17, 'icmpv6': 58, 'sctp': 132}

# IPv6 extension header numbers
HOPOPTS = 0
ROUTING = 43
FRAGMENT = 44
AH = 51
DSTOPTS = 60
NONXT = 59
ESP = 50

SRC_MAC = b'\x02\x00\x00\x00\x00\x01'
DST_MAC = b'\x02\x00\x00\x00\x00\x02'


def _addr(value, version):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    ip = ipaddress.ip_address(value)
    if ip.version != version:
        raise ValueError('%s is not IPv%d' % (value, version))
    return ip.packed


def _csum(data):
    if len(data) % 2:
        data += b'\x00'
    total = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


# ---------------------------------------------------------------------------------------------- L2

def ether(payload, ethertype, vlan=None, tpid=ETH_P_8021Q, src=SRC_MAC, dst=DST_MAC):
    """Ethernet header (+ one tag when ``vlan`` is a VLAN id) + payload."""
    hdr = dst + src
    if vlan is not None:
        hdr += struct.pack('!HH', tpid, vlan & 0xFFFF)
    return hdr + struct.pack('!H', ethertype) + payload


def qinq(payload, ethertype, outer=100, inner=200):
    """Two tags (802.1ad then 802.1Q): the program parses only one, so this is not IP to it."""
    return DST_MAC + SRC_MAC + struct.pack('!HHHH', ETH_P_8021AD, outer, ETH_P_8021Q, inner) + \
        struct.pack('!H', ethertype) + payload


def arp(vlan=None):
    body = struct.pack('!HHBBH', 1, ETH_P_IP, 6, 4, 1) + SRC_MAC + bytes([192, 0, 2, 1]) + \
        b'\x00' * 6 + bytes([192, 0, 2, 2])
    return ether(body, ETH_P_ARP, vlan=vlan, dst=b'\xff' * 6)


def lldp():
    # chassis id TLV, port id TLV, TTL TLV, end
    body = b'\x02\x07\x04' + SRC_MAC + b'\x04\x04\x05eth' + b'\x06\x02\x00\x78' + b'\x00\x00'
    return ether(body, ETH_P_LLDP, dst=b'\x01\x80\xc2\x00\x00\x0e')


# ---------------------------------------------------------------------------------------------- L4

def tcp(sport, dport, payload=b''):
    return struct.pack('!HHIIBBHHH', sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0) + payload


def udp(sport, dport, payload=b''):
    return struct.pack('!HHHH', sport, dport, 8 + len(payload), 0) + payload


def sctp(sport, dport, payload=b''):
    return struct.pack('!HHII', sport, dport, 0x01020304, 0) + payload


def icmp(type_=8, code=0, payload=b'ping'):
    body = struct.pack('!BBHHH', type_, code, 0, 1, 1) + payload
    return body[:2] + struct.pack('!H', _csum(body)) + body[4:]


def icmpv6(type_=128, code=0, payload=b'ping'):
    return struct.pack('!BBHHH', type_, code, 0, 1, 1) + payload


def l4(proto, sport=None, dport=None, payload=b'', icmp_type=None, icmp_code=None):
    """An L4 header for ``proto`` (name or number); ports default to 1234 → 80, ICMP messages are echo
    requests unless ``icmp_type``/``icmp_code`` say otherwise."""
    number = IPPROTO.get(proto, proto)
    sport = 1234 if sport is None else sport
    dport = 80 if dport is None else dport
    if number == 6:
        return tcp(sport, dport, payload)
    if number == 17:
        return udp(sport, dport, payload)
    if number == 132:
        return sctp(sport, dport, payload)
    if number == 1:
        return icmp(8 if icmp_type is None else icmp_type, icmp_code or 0, payload=payload or b'ping')
    if number == 58:
        return icmpv6(128 if icmp_type is None else icmp_type, icmp_code or 0, payload=payload or b'ping')
    return payload or b'\xde\xad\xbe\xef' * 2


# ---------------------------------------------------------------------------------------------- IPv4

def ipv4(src, dst, proto, payload, options=b'', frag_offset=0, more_fragments=False, dont_fragment=False,
         ihl=None, version=4, ttl=64, total_length=None, ident=1):
    """IPv4 header + payload. ``frag_offset`` is in 8-byte units; ``ihl`` overrides the computed one."""
    if len(options) % 4:
        raise ValueError('IPv4 options must be a multiple of 4 bytes')
    number = IPPROTO.get(proto, proto)
    if ihl is None:
        ihl = 5 + len(options) // 4
    if total_length is None:
        total_length = 20 + len(options) + len(payload)
    flags = (0x4000 if dont_fragment else 0) | (0x2000 if more_fragments else 0) | (frag_offset & 0x1FFF)
    hdr = struct.pack('!BBHHHBBH4s4s', (version & 0xF) << 4 | (ihl & 0xF), 0, total_length & 0xFFFF, ident,
                      flags, ttl, number, 0, _addr(src, 4), _addr(dst, 4)) + options
    hdr = hdr[:10] + struct.pack('!H', _csum(hdr)) + hdr[12:]
    return hdr + payload


def ipv4_frame(src='192.0.2.1', dst='198.51.100.1', proto='tcp', sport=None, dport=None, payload=b'',
               vlan=None, tpid=ETH_P_8021Q, icmp_type=None, icmp_code=None, **kwargs):
    """A whole IPv4 frame. ``kwargs`` go to :func:`ipv4` (options, frag_offset, ihl, ...)."""
    body = l4(proto, sport, dport, payload, icmp_type, icmp_code)
    return ether(ipv4(src, dst, proto, body, **kwargs), ETH_P_IP, vlan=vlan, tpid=tpid)


# ---------------------------------------------------------------------------------------------- IPv6

def ipv6(src, dst, next_header, payload, version=6, hop_limit=64, payload_length=None):
    if payload_length is None:
        payload_length = len(payload)
    first = ((version & 0xF) << 28) | 0
    return struct.pack('!IHBB16s16s', first, payload_length & 0xFFFF, next_header, hop_limit,
                       _addr(src, 6), _addr(dst, 6)) + payload


def ext_options(next_header, units=0):
    """Hop-by-hop or destination options header: (units + 1) * 8 bytes, PadN filled."""
    size = (units + 1) * 8
    pad = size - 2
    return struct.pack('!BB', next_header, units) + struct.pack('!BB', 1, pad - 2) + b'\x00' * (pad - 2)


def ext_routing(next_header, units=2, routing_type=4, segments_left=0):
    size = (units + 1) * 8
    return struct.pack('!BBBB', next_header, units, routing_type, segments_left) + b'\x00' * (size - 4)


def ext_fragment(next_header, offset=0, more=False, ident=0x1234):
    """Fragment header; ``offset`` in 8-byte units."""
    return struct.pack('!BBHI', next_header, 0, (offset & 0x1FFF) << 3 | (1 if more else 0), ident)


def ext_ah(next_header, payload_len=4):
    """Authentication header: (payload_len + 2) * 4 bytes (payload_len 4 = 24 bytes: 96-bit ICV)."""
    size = (payload_len + 2) * 4
    data = struct.pack('!BBHII', next_header, payload_len, 0, 0x100, 1) + b'\x00' * max(0, size - 12)
    return data[:size]


def ext_header(kind, next_header, **kw):
    """``kind`` is 'hbh', 'routing', 'dstopts', 'ah' or 'frag' (or the header number)."""
    kind = {HOPOPTS: 'hbh', ROUTING: 'routing', DSTOPTS: 'dstopts', AH: 'ah', FRAGMENT: 'frag'}.get(kind, kind)
    if kind in ('hbh', 'dstopts'):
        return ext_options(next_header, **kw)
    if kind == 'routing':
        return ext_routing(next_header, **kw)
    if kind == 'ah':
        return ext_ah(next_header, **kw)
    if kind == 'frag':
        return ext_fragment(next_header, **kw)
    raise ValueError(kind)


EXT_NUMBER = {'hbh': HOPOPTS, 'routing': ROUTING, 'dstopts': DSTOPTS, 'ah': AH, 'frag': FRAGMENT}


def ext_chain(exts, last_header):
    """``exts``: a list of ``(kind, kwargs)`` or kinds; returns (first next-header number, bytes)."""
    data = b''
    nxt = last_header
    for item in reversed(exts):
        kind, kw = (item, {}) if isinstance(item, str) else item
        data = ext_header(kind, nxt, **kw) + data
        nxt = EXT_NUMBER[kind]
    return nxt, data


def ipv6_frame(src='2001:db8::1', dst='2001:db8:1::1', proto='tcp', sport=None, dport=None, payload=b'',
               exts=(), vlan=None, tpid=ETH_P_8021Q, l4_data=None, icmp_type=None, icmp_code=None, **kwargs):
    """A whole IPv6 frame with an optional extension header chain (see :func:`ext_chain`)."""
    number = IPPROTO.get(proto, proto)
    body = l4(proto, sport, dport, payload, icmp_type, icmp_code) if l4_data is None else l4_data
    first, chain = ext_chain(list(exts), number)
    return ether(ipv6(src, dst, first, chain + body, **kwargs), ETH_P_IPV6, vlan=vlan, tpid=tpid)


# ---------------------------------------------------------------------------------------------- misc

def truncate(frame, length):
    return frame[:length]


def pad_to(frame, length):
    """Pad with zeros to at least ``length`` bytes (Ethernet minimum is 60 without FCS)."""
    return frame + b'\x00' * max(0, length - len(frame))


def min_test_run_length(frame):
    """The shortest prefix of ``frame`` that BPF_PROG_TEST_RUN accepts for a TC program.

    The kernel (6.x) wants the Ethernet header, and for an untagged IPv4/IPv6 ethertype also the
    20/40-byte IP header (EINVAL otherwise). A tagged frame is taken as it is, which is how the tests
    reach the program's own checks of a cut IP header.
    """
    ethertype = frame[12:14]
    if ethertype == b'\x08\x00':
        return 14 + 20
    if ethertype == b'\x86\xdd':
        return 14 + 40
    return 14


def test_runnable(frame):
    return len(frame) >= min_test_run_length(frame)

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a hook's steering program does with a described packet, answered by the kernel without moving anything.

The explain build of the program (files/bpf/steering_explain.bpf.o: the same parser and classifier, writing
nothing) is loaded over the maps of the program attached to the hook - by the ids the kernel reports for that
program, not by pins - and run once with BPF_PROG_TEST_RUN on a frame built from the description. Its answer
(which rule of the applied set decides, or why none does) comes back in skb->cb; the rule itself is read from
the same maps, and what its action would do (the redirect's neighbour, the learned path of a reply) from the
kernel's tables. docs/docsite/rst/troubleshooting.rst shows it in use.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import struct

from ansible_collections.ebpf.tc.plugins.module_utils import _layout as L
from ansible_collections.ebpf.tc.plugins.module_utils import _attached, _bpfmap, _bpfobject, _libbpf, _tc
from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
from ansible_collections.ebpf.tc.plugins.module_utils._steering import STEERING_PROGRAM, SteeringMaps, map_ids_by_name
from ansible_collections.ebpf.tc.plugins.module_utils._rules import (
    ICMP_PROTOS, ICMP_TYPE_ALIASES, ICMP_TYPES, PORT_PROTOS, PROTO_NAMES, PROTO_NUMBERS, is_int)

PROGRAM = 'steering_explain'
PACKET_KEYS = ('src', 'dst', 'proto', 'sport', 'dport', 'icmp_type', 'icmp_code', 'vlan')
SKB_CTX_SIZE = 192          # sizeof(struct __sk_buff)
SKB_CB_OFFSET = 48          # offsetof(struct __sk_buff, cb): five u32
# enum explain_answer of steering.bpf.c
ANSWERS = {0: 'no rule set', 1: 'non-ip', 2: 'malformed', 3: 'default', 4: 'rule'}
_OUR_MAC, _PEER_MAC = b'\x02\x00\x00\x00\x00\x02', b'\x02\x00\x00\x00\x00\x01'


def _fail(field, message):
    raise EbpfTcError('packet.%s: %s' % (field, message))


def _number(packet, key, maximum, names=None, hint='', default=None):
    """packet[key] as a number 0-maximum, None when absent; a name of `names` (lower case) stands for its number."""
    value = packet.get(key, default)
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        text = ICMP_TYPE_ALIASES.get(text, text)
        if names and text in names:
            return names[text]
        if text.isdigit():
            value = int(text)
    if not is_int(value) or not 0 <= value <= maximum:
        _fail(key, '%r is not a number 0-%d%s' % (value, maximum, hint))
    return value


def describe(packet):
    """The canonical packet of a description ({src, dst, proto, sport, dport, icmp_type, icmp_code, vlan}):
    addresses of one family, the protocol as a number, ports only for TCP/UDP/SCTP, ICMP fields only for
    ICMP/ICMPv6. EbpfTcError names the field at fault."""
    if not isinstance(packet, dict):
        raise EbpfTcError('packet: must be a mapping of %s' % ', '.join(PACKET_KEYS))
    for key in packet:
        if key not in PACKET_KEYS:
            _fail(key, 'unknown key; expected one of %s' % ', '.join(PACKET_KEYS))
    out = {}
    for key in ('src', 'dst'):
        try:
            out[key] = ipaddress.ip_address(str(packet.get(key) or '').strip())
        except ValueError:
            _fail(key, '%r is not an IP address (required)' % (packet.get(key),))
    if out['src'].version != out['dst'].version:
        _fail('dst', 'IPv%d, but src is IPv%d' % (out['dst'].version, out['src'].version))
    out['proto'] = _number(packet, 'proto', 255, PROTO_NUMBERS, ' or a name (%s)' % ', '.join(sorted(PROTO_NUMBERS)),
                           default='tcp')
    for key in ('sport', 'dport'):
        out[key] = _number(packet, key, 65535)
        if out[key] is not None and out['proto'] not in PORT_PROTOS:
            _fail(key, 'only TCP, UDP and SCTP packets have ports')
    out['icmp_type'] = _number(packet, 'icmp_type', 255, ICMP_TYPES.get(out['proto']), ' or an ICMP type name')
    out['icmp_code'] = _number(packet, 'icmp_code', 255)
    for key in ('icmp_type', 'icmp_code'):
        if out[key] is not None and out['proto'] not in ICMP_PROTOS:
            _fail(key, 'only ICMP and ICMPv6 packets have a type and code')
    out['vlan'] = _number(packet, 'vlan', 4095)
    return out


def frame_of(packet):
    """The Ethernet frame of a canonical packet (describe()): the headers the parser reads, zero elsewhere."""
    proto = packet['proto']
    if proto in PORT_PROTOS:
        ports = struct.pack('!HH', packet['sport'] or 0, packet['dport'] or 0)
        l4 = ports + b'\0' * {6: 16, 17: 4, 132: 8}[proto]
    elif proto in ICMP_PROTOS:
        l4 = struct.pack('!BB', packet['icmp_type'] or 0, packet['icmp_code'] or 0) + b'\0' * 6
    else:
        l4 = b'\0' * 8
    src, dst = packet['src'].packed, packet['dst'].packed
    if packet['src'].version == 4:
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 0, 0, 64, proto, 0, src, dst)
        ethertype = 0x0800
    else:
        ip = struct.pack('!IHBB16s16s', 6 << 28, len(l4), proto, 64, src, dst)
        ethertype = 0x86DD
    eth = _OUR_MAC + _PEER_MAC
    if packet['vlan'] is not None:
        eth += struct.pack('!HH', 0x8100, packet['vlan'])
    frame = eth + struct.pack('!H', ethertype) + ip + l4
    return frame + b'\0' * max(0, 60 - len(frame))


def canonical(packet):
    """The packet as the module reports it: names for the protocol, None fields left out."""
    out = {'src': str(packet['src']), 'dst': str(packet['dst']),
           'proto': PROTO_NAMES.get(packet['proto'], packet['proto'])}
    for key in ('sport', 'dport', 'icmp_type', 'icmp_code', 'vlan'):
        if packet[key] is not None:
            out[key] = packet[key]
    return out


def classify(object_path, map_ids, frame):
    """(answer, rule index, slot, generation) of the explain build run over the maps `map_ids` ({name: map id},
    those of the attached program). Maps the attached program lacks are private to this run."""
    with _bpfobject.BpfObject.open(object_path) as obj:
        if PROGRAM not in obj.program_names():
            raise EbpfTcError('%s has no program %s: not the explain build of the steering object'
                              % (object_path, PROGRAM))
        fds = []
        try:
            for name in obj.map_names():
                if name in map_ids:
                    fd = _bpfmap.Map.from_id(map_ids[name])
                    fds.append(fd)
                    obj.reuse_map(name, fd.fd)
            obj.load()
            ctx = bytes(SKB_CTX_SIZE)
            out = _libbpf.test_run(obj.program_fd(PROGRAM), frame, ctx=ctx)
        finally:
            for bpf_map in fds:
                bpf_map.close()
    answer, index, slot, gen_low, gen_high = struct.unpack_from('<5I', out.ctx_out, SKB_CB_OFFSET)
    return ANSWERS.get(answer, 'unknown'), index, slot, gen_high << 32 | gen_low


def path_key(packet):
    """The learned_paths key of a reply: the flow as its client sent it (addresses and ports swapped back)."""
    ports = packet['proto'] in PORT_PROTOS
    return L.PathKey(packet['src'].version, packet['proto'], packet['dst'].packed,
                     (packet['dport'] or 0) if ports else 0, packet['src'].packed,
                     (packet['sport'] or 0) if ports else 0)


def mac_text(mac):
    return ':'.join('%02x' % b for b in bytearray(mac))


# NUD_* of linux/neighbour.h
NEIGHBOUR_STATES = ((0x80, 'permanent'), (0x02, 'reachable'), (0x04, 'stale'), (0x08, 'delay'), (0x10, 'probe'),
                    (0x01, 'incomplete'), (0x20, 'failed'), (0x40, 'noarp'))


def neighbour(ipr, ifindex, address):
    """{'address', 'state', 'lladdr'} of `address` in the neighbour table of `ifindex`: state 'none' when the
    kernel has no entry (the first packet makes one and waits for ARP/ND)."""
    out = {'address': str(address), 'state': 'none', 'lladdr': None}
    family = 2 if address.version == 4 else 10
    for msg in ipr.get_neighbours(family=family, ifindex=ifindex):
        if msg.get_attr('NDA_DST') == str(address):
            state = msg['state']
            out['state'] = next((name for bit, name in NEIGHBOUR_STATES if state & bit), str(state))
            out['lladdr'] = msg.get_attr('NDA_LLADDR')
    return out


def _summary(out):
    where = '%s %s' % (out['hook']['interface'], out['hook']['direction'])
    verdict = out['verdict']
    if verdict == 'not attached':
        text = 'no steering program runs on %s: ebpf.tc does nothing to the packet' % where
    elif verdict == 'no rule set':
        text = '%s runs no rule set yet: the packet passes' % where
    elif verdict == 'non-ip':
        text = 'not IP: the packet passes'
    elif verdict in ('default', 'malformed'):
        reason = 'no rule matches' if verdict == 'default' else 'malformed'
        text = '%s: the default action, %s' % (reason, out['action'])
    else:
        rule = out['rule']
        text = 'rule %d (%s) decides: %s' % (rule['index'], rule['name'], out['action'])
        redirect = out.get('redirect')
        if out.get('reply'):
            path = out['reply']
            text += ', back the learned way: out of %s to %s' % (path['interface'], path['router_mac'])
        elif redirect:
            hop = redirect['neighbour'] or {'address': redirect['via'] or out['packet']['dst'], 'state': 'unknown'}
            text += '%s out of %s to %s (neighbour %s)' % (' (nothing learned)' if out['action'] == 'reply' else '',
                                                           redirect['interface'], hop['address'], hop['state'])
        elif out['action'] == 'reply':
            text += ' (nothing learned): the normal route'
    if out['hook']['shadowed']:
        text += '; but the hook is shadowed: TCX programs in front of it decide first'
    return text


def explain(interface, direction, netns, pin_dir, description, object_path):
    """The answer of ebpf.tc.steering_explain (see its RETURN documentation)."""
    packet = describe(description)
    with _tc.open_netlink(netns, interface) as ipr:
        index = _tc.ifindex(ipr, interface)
        state = _attached.hook_state(ipr, index, direction, pin_dir, interface, STEERING_PROGRAM, netns)
        names = _tc.InterfaceNames(ipr)
        attached = state['attached']
        out = {'changed': False, 'packet': canonical(packet), 'rule': None, 'action': 'pass', 'redirect': None,
               'reply': None,
               'hook': {'interface': interface, 'direction': direction, 'netns': netns,
                        'backend': attached and attached['backend'], 'prog_id': attached and attached['id'],
                        'shadowed': state['shadowed'] and state['shadowed']['message'],
                        'drift': state['drift'] and state['drift']['message']}}
        ids = map_ids_by_name(attached['id']) if attached else None
        if not ids:
            out['verdict'] = 'not attached'
            out['summary'] = _summary(out)
            return out
        for dummy in range(3):  # a switch between the run and the read: ask again
            verdict, rule_index, dummy_slot, generation = classify(object_path, ids, frame_of(packet))
            with SteeringMaps('program id %d' % attached['id'], maps=ids) as maps:
                header = maps.header()
                if verdict != 'no rule set' and (header is None or header.generation != generation):
                    continue
                out['verdict'] = verdict
                if verdict in ('default', 'malformed'):
                    out['action'] = 'drop' if header.default_action == L.ACT_DROP else 'pass'
                if verdict == 'rule':
                    rule = maps.applied(names.ifname).rules[rule_index]
                    out['rule'] = dict(rule.to_dict(), index=rule_index)
                    out['action'] = rule.action
                    if rule.action == 'reply' and L.MAP_LEARNED_PATHS in ids:
                        found = maps[L.MAP_LEARNED_PATHS].lookup(L.pack_path_key(path_key(packet)))
                        if found is not None:
                            path = L.unpack_path(found)
                            out['reply'] = {'interface': names.ifname(path.ifindex) or '#%d' % path.ifindex,
                                            'router_mac': mac_text(path.peer_mac),
                                            'own_mac': mac_text(path.own_mac)}
                    target = names.ifindex(rule.redirect.interface) if rule.redirect is not None else 0
                    # a reply's fallback to the hook's own interface is the normal route (steering.bpf.c, reply())
                    if rule.redirect is not None and out['reply'] is None and not (
                            rule.action == 'reply' and target == index):
                        hop = rule.redirect.via or packet['dst']
                        out['redirect'] = {'interface': rule.redirect.interface,
                                           'via': str(rule.redirect.via) if rule.redirect.via else None,
                                           'neighbour': neighbour(ipr, target, hop) if target else None}
                out['summary'] = _summary(out)
                return out
        raise EbpfTcError('the rule set of %s %s changed three times while it was being explained: run again'
                          % (interface, direction))

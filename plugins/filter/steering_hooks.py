# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters ``steering_hooks`` and ``return_path_interfaces``: the role's intents turned into rule sets;
``shadowed_hooks`` and ``steering_snapshot``: what ebpf.tc.rollout reads of a host.

Pure Python on the controller, no host access. Documentation: ``steering_hooks.yml`` and
``return_path_interfaces.yml`` beside this file (``ansible-doc -t filter ebpf.tc.steering_hooks``).

What the role keeps in inventory (explicit hooks, return-path intents, a simple policy) becomes one hook
per (interface, direction), rules in this order: explicit rules, return-path redirects, ``drop-<proto>``,
``block-<proto>-<ports>``, ``police-<name>``, ``count-<proto>``. Every merged hook is then checked with
the modules' own validator (``_rules.validate``), and its errors are reported against the inventory
variable the offending rule came from, so a bad inventory fails while templating, before any task runs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import ipaddress
import json
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six import string_types

from ansible_collections.ebpf.tc.plugins.module_utils import _rules
from ansible_collections.ebpf.tc.plugins.module_utils._errors import RuleError

DIRECTIONS = sorted(_rules.DIRECTIONS)     # as error messages list them
MAX_NAME = 32
# Intent and police names: the characters of a rule name, any length (long ones are shortened).
INTENT_NAME_RE = re.compile(r'^[a-z0-9_.-]+$')
PORT_RE = re.compile(r'^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$')
HOOK_KEYS = ('interface', 'direction', 'default_action', 'rules')
RETURN_PATH_KEYS = ('name', 'addresses', 'interface', 'gateway', 'gateway6', 'egress_interfaces', 'mode')
# static: every reply to the configured gateway; learned: each flow's replies to the router its requests came from
RETURN_PATH_MODES = ('static', 'learned')
POLICY_KEYS = ('interfaces', 'direction', 'default_action', 'drop_protocols', 'keep_icmpv6_types', 'block_ports',
               'police', 'count_protocols')
# What drop_protocols: [icmpv6] still lets through unless keep_icmpv6_types says otherwise: IPv6 stops working
# on a link without neighbour discovery (RFC 4861), and path MTU discovery without packet-too-big.
KEEP_ICMPV6_TYPES = ('packet-too-big', 'router-solicitation', 'router-advertisement', 'neighbor-solicitation',
                     'neighbor-advertisement', 'redirect')
BLOCK_KEYS = ('proto', 'ports')
POLICE_KEYS = ('name', 'match', 'rate', 'burst')
DIGEST_LEN = 8
# The actions of return-path rules: their packets are what the rollout's health check counts
RETURN_PATH_ACTIONS = ('redirect', 'reply')
# Origins of rules, in the order they take inside a hook.
_PHASES = ('explicit', 'return_path', 'drop', 'block', 'police', 'count')

HOOKS_VAR = 'ebpf_tc_hooks'
RETURN_PATHS_VAR = 'ebpf_tc_return_paths'
POLICY_VAR = 'ebpf_tc_policy'
DEFAULT_IF_VAR = 'ebpf_tc_default_interface'


def _fail(path, message):
    raise AnsibleFilterError('%s: %s' % (path, message))


def _text(value):
    """A plain str (not a YAML/Jinja/unsafe subclass) for what we return."""
    return str(to_text(value))


def rule_name(prefix, part, suffix=''):
    """``prefix + part + suffix`` when it fits in 32 characters, else a deterministic short form.

    The short form keeps prefix and suffix, the start of `part`, and 8 hex digits of the SHA-256 of the
    whole `part`: ``rp-`` + 17 characters + ``-`` + digest + ``-v4``. The same input always gives the same
    name (counters are keyed by it), and two long parts with a common start still get distinct names.
    """
    full = prefix + part + suffix
    if len(full) <= MAX_NAME:
        return full
    digest = hashlib.sha256(part.encode('utf-8')).hexdigest()[:DIGEST_LEN]
    room = MAX_NAME - len(prefix) - len(suffix) - 1 - DIGEST_LEN
    return '%s%s-%s%s' % (prefix, part[:room], digest, suffix)


def _mapping(value, path, allowed):
    if not isinstance(value, dict):
        _fail(path, 'must be a mapping, not %s' % _rules.type_name(value))
    for key in value:
        if key not in allowed:
            _fail('%s.%s' % (path, key), 'unknown key; expected one of %s' % ', '.join(allowed))
    return value


def _list(value, path, allow_scalar=False):
    """A list from a list (or a single scalar when `allow_scalar`); None is an empty list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if allow_scalar and (isinstance(value, string_types) or _rules.is_int(value)):
        return [value]
    _fail(path, 'must be a list, not %s' % _rules.type_name(value))


def _string(value, path, required=True):
    if value is None or (isinstance(value, string_types) and not value.strip()):
        if required:
            _fail(path, 'is required (a non-empty string)')
        return None
    if not isinstance(value, string_types):
        _fail(path, 'must be a string, not %s' % _rules.type_name(value))
    return _text(value).strip()


def _choice(value, path, choices):
    if value is None:
        return None
    if value not in choices:
        _fail(path, 'must be one of %s, not %r' % (', '.join(choices), value))
    return _text(value)


def _intent_name(value, path):
    name = _string(value, path)
    if not INTENT_NAME_RE.match(name):
        _fail(path, '%r: use only a-z, 0-9, _, . and - (it becomes part of rule names)' % (name,))
    return name


def _interfaces(value, path):
    out = []
    for index, item in enumerate(_list(value, path, allow_scalar=True)):
        name = _string(item, '%s[%d]' % (path, index))
        if name not in out:
            out.append(name)
    return out


def _protocol(value, path):
    """(name used in rule names, value used in the rule) of a protocol name or number."""
    if _rules.is_int(value):
        number = value
    elif isinstance(value, string_types) and value.strip().lower() in _rules.PROTO_NUMBERS:
        name = _text(value).strip().lower()
        return name, name
    elif isinstance(value, string_types) and value.strip().isdigit():
        number = int(value.strip())
    else:
        number = None
    if number is None or not 0 <= number <= 255:
        _fail(path, '%r is not a protocol: use %s or a number 0-255'
              % (value, ', '.join(sorted(_rules.PROTO_NUMBERS))))
    name = _rules.PROTO_NAMES.get(number)
    return (name, name) if name else (str(number), number)


def _port(value, path):
    """(text used in rule names, value used in the rule) of a port or "lo-hi" range."""
    if _rules.is_int(value) and 0 <= value <= _rules.MAX_PORT:
        return str(value), value
    match = PORT_RE.match(value) if isinstance(value, string_types) else None
    if match:
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if lo <= hi <= _rules.MAX_PORT:
            if lo == hi:
                return str(lo), lo
            text = '%d-%d' % (lo, hi)
            return text, text
    _fail(path, '%r is not a port or range: use 443 or "1000-2000" (ports 0-%d, low-high)'
          % (value, _rules.MAX_PORT))


class _Hooks:
    """The hooks being built: one per (interface, direction), in order of first appearance.

    Each rule is kept with its source, (phase, inventory path): the phase orders rules inside a hook
    (``_PHASES``), the path names the rule's origin in errors.
    """

    def __init__(self):
        self.order = []
        self.hooks = {}

    def hook(self, interface, direction):
        key = (interface, direction)
        if key not in self.hooks:
            self.order.append(key)
            self.hooks[key] = {'default_action': None, 'default_from': None, 'rules': [], 'sources': []}
        return self.hooks[key]

    def add_rule(self, interface, direction, rule, source):
        hook = self.hook(interface, direction)
        hook['rules'].append(rule)
        hook['sources'].append(source)

    def set_default(self, interface, direction, action, source):
        hook = self.hook(interface, direction)
        if action is None:
            return
        if hook['default_action'] is not None and hook['default_action'] != action:
            _fail(source, 'default_action %s conflicts with %s (%s) on %s %s: give the same value in both, '
                  'or leave one out' % (action, hook['default_from'], hook['default_action'], interface,
                                        direction))
        if hook['default_action'] is None:
            hook['default_action'] = action
            hook['default_from'] = source

    def result(self):
        """The hooks, rules ordered by origin (stable inside one), each checked with _rules.validate."""
        out = []
        for interface, direction in self.order:
            hook = self.hooks[(interface, direction)]
            pairs = sorted(zip(hook['rules'], hook['sources']), key=lambda pair: _PHASES.index(pair[1][0]))
            rules = [rule for rule, dummy in pairs]
            default_action = hook['default_action'] or 'pass'
            _check(interface, direction, rules, [source[1] for dummy, source in pairs], default_action)
            out.append({'interface': interface, 'direction': direction, 'default_action': default_action,
                        'rules': rules})
        return out


def _check(interface, direction, rules, sources, default_action):
    """Validate one merged hook with the modules' validator; name the inventory entry on error."""
    seen = {}
    for rule, source in zip(rules, sources):
        name = rule.get('name') if isinstance(rule, dict) else None
        if isinstance(name, string_types):
            if name in seen:
                _fail(source, 'rule name %r is also used by %s, on the same hook (%s %s): rule names must '
                      'be unique per hook' % (name, seen[name], interface, direction))
            seen[name] = source
    try:
        _rules.validate(rules, default_action)
    except RuleError as err:
        index = err.index
        if index is None and err.rule is not None:
            names = [rule.get('name') if isinstance(rule, dict) else None for rule in rules]
            index = names.index(err.rule) if err.rule in names else None
        where = 'hook %s %s' % (interface, direction)
        if index is None:  # a set-level error (too many rules): no one entry to blame
            raise AnsibleFilterError('%s: %s' % (where, err))
        # the inventory entry is named already; the position in the merged hook's list would only confuse
        plain = RuleError(err.message, rule=err.rule, field=err.field)
        raise AnsibleFilterError('%s (%s): %s' % (sources[index], where, plain))


def _explicit(hooks, out):
    for index, raw in enumerate(_list(hooks, HOOKS_VAR)):
        path = '%s[%d]' % (HOOKS_VAR, index)
        _mapping(raw, path, HOOK_KEYS)
        interface = _string(raw.get('interface'), path + '.interface')
        direction = _choice(raw.get('direction'), path + '.direction', DIRECTIONS) or 'egress'
        default_action = _choice(raw.get('default_action'), path + '.default_action', _rules.DEFAULT_ACTIONS)
        out.hook(interface, direction)
        out.set_default(interface, direction, default_action, path + '.default_action')
        for rule_index, rule in enumerate(_list(raw.get('rules'), path + '.rules')):
            out.add_rule(interface, direction, copy.deepcopy(rule),
                         ('explicit', '%s.rules[%d]' % (path, rule_index)))


def _address_families(value, path):
    """{4: [prefix text], 6: [...]} of a list of addresses or prefixes, in the order given."""
    families = {4: [], 6: []}
    items = _list(value, path, allow_scalar=True)
    if not items:
        _fail(path, 'is required: the service addresses or prefixes (IPv4 and/or IPv6)')
    for index, item in enumerate(items):
        item_path = '%s[%d]' % (path, index)
        text = _string(item, item_path)
        try:
            net = ipaddress.ip_network(text)
        except ValueError as exc:
            try:
                wide = ipaddress.ip_network(text, strict=False)
            except ValueError:
                _fail(item_path, '%r is not an address or CIDR prefix: %s' % (text, exc))
            _fail(item_path, '%s has host bits set: write %s for the network, or %s/%d for the one address'
                  % (text, wide, text.partition('/')[0], wide.max_prefixlen))
        families[net.version].append(str(net))
    return families


def _gateway(value, path, version, addresses):
    if value is None:
        return None
    text = _string(value, path)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        _fail(path, '%r is not an IP address' % (text,))
    if address.version != version:
        _fail(path, '%s is IPv%d; this field is the IPv%d next hop (%s)'
              % (text, address.version, version, 'gateway6' if address.version == 6 else 'gateway'))
    if not addresses:
        _fail(path, 'IPv%d next hop %s given, but addresses has no IPv%d entry: leave it out, or add the '
              'addresses' % (version, text, version))
    return str(address)


def _interfaces_or_default(value, path, default_interface, purpose):
    """The interfaces listed at `path`, or [default_interface] when the list is not given."""
    if value is None:
        if not default_interface:
            _fail(path, 'not given, and %s is empty (no default IPv4 route in the facts): %s'
                  % (DEFAULT_IF_VAR, purpose))
        return [default_interface]
    return _interfaces(value, path)


def _return_paths(return_paths, default_interface, out):
    names = {}
    for index, raw in enumerate(_list(return_paths, RETURN_PATHS_VAR)):
        path = '%s[%d]' % (RETURN_PATHS_VAR, index)
        _mapping(raw, path, RETURN_PATH_KEYS)
        name = _intent_name(raw.get('name'), path + '.name')
        if name in names:
            _fail(path + '.name', '%r is also the name of %s' % (name, names[name]))
        names[name] = path
        families = _address_families(raw.get('addresses'), path + '.addresses')
        interface = _string(raw.get('interface'), path + '.interface')
        vias = {4: _gateway(raw.get('gateway'), path + '.gateway', 4, families[4]),
                6: _gateway(raw.get('gateway6'), path + '.gateway6', 6, families[6])}
        mode = _choice(raw.get('mode'), path + '.mode', RETURN_PATH_MODES) or 'static'
        if mode == 'learned':
            _learned_return_path(raw, path, name, families, interface, vias, default_interface, out)
            continue
        egress = _interfaces_or_default(raw.get('egress_interfaces'), path + '.egress_interfaces',
                                        default_interface, 'name the uplinks the replies leave by')
        # (the default route through the service interface itself: replies already leave right)
        egress = [other for other in egress if other != interface]
        if not egress and raw.get('egress_interfaces') is not None:
            _fail(path + '.egress_interfaces', 'names no interface other than %s, where the replies '
                  'must leave: nothing to steer' % interface)
        for egress_if in egress:
            for version in (4, 6):
                if not families[version]:
                    continue
                rule = {'name': rule_name('rp-', name, '-v%d' % version),
                        'match': {'src': list(families[version])},
                        'action': 'redirect',
                        'redirect': {'interface': interface}}
                if vias[version] is not None:
                    rule['redirect']['via'] = vias[version]
                out.add_rule(egress_if, 'egress', rule, ('return_path', path))


def _learned_return_path(raw, path, name, families, interface, vias, default_interface, out):
    """learn-<name>-v4/v6 on the ingress of the service interface; rp-<name>-v4/v6 (action reply) on the egress
    of it and of every egress interface: a learned path wins, else the gateway (not on the service interface
    itself, where the replies leave already), else the normal route."""
    egress = _interfaces_or_default(raw.get('egress_interfaces'), path + '.egress_interfaces', default_interface,
                                    'name the uplinks the replies leave by')
    egress = [interface] + [other for other in egress if other != interface]
    for version in (4, 6):
        if not families[version]:
            continue
        suffix = '-v%d' % version
        out.add_rule(interface, 'ingress', {'name': rule_name('learn-', name, suffix),
                                            'match': {'dst': list(families[version])}, 'action': 'learn'},
                     ('return_path', path))
        for egress_if in egress:
            rule = {'name': rule_name('rp-', name, suffix), 'match': {'src': list(families[version])},
                    'action': 'reply'}
            if egress_if != interface and vias[version] is not None:
                rule['redirect'] = {'interface': interface, 'via': vias[version]}
            out.add_rule(egress_if, 'egress', rule, ('return_path', path))


def _policy(policy, default_interface, out):
    if policy is None:
        return
    _mapping(policy, POLICY_VAR, POLICY_KEYS)
    direction = _choice(policy.get('direction'), POLICY_VAR + '.direction', DIRECTIONS) or 'egress'
    default_action = _choice(policy.get('default_action'), POLICY_VAR + '.default_action',
                             _rules.DEFAULT_ACTIONS)
    rules = []  # (rule, phase, path), the same on every interface of the policy

    for index, item in enumerate(_list(policy.get('drop_protocols'), POLICY_VAR + '.drop_protocols')):
        path = '%s.drop_protocols[%d]' % (POLICY_VAR, index)
        label, proto = _protocol(item, path)
        if label == 'icmpv6':
            keep_path = POLICY_VAR + '.keep_icmpv6_types'
            keep = policy.get('keep_icmpv6_types')
            keep = list(KEEP_ICMPV6_TYPES) if keep is None else _list(keep, keep_path)
            if keep:
                rules.append(({'name': 'keep-icmpv6', 'match': {'proto': proto, 'icmp_type': copy.deepcopy(keep)},
                               'action': 'pass'}, 'drop', keep_path))
        rules.append(({'name': 'drop-' + label, 'match': {'proto': proto}, 'action': 'drop'}, 'drop', path))

    for index, item in enumerate(_list(policy.get('block_ports'), POLICY_VAR + '.block_ports')):
        path = '%s.block_ports[%d]' % (POLICY_VAR, index)
        _mapping(item, path, BLOCK_KEYS)
        label, proto = _protocol(_string(item.get('proto'), path + '.proto'), path + '.proto')
        if proto not in ('tcp', 'udp', 'sctp'):
            _fail(path + '.proto', '%s has no ports: use tcp, udp or sctp' % label)
        ports = _list(item.get('ports'), path + '.ports', allow_scalar=True)
        if not ports:
            _fail(path + '.ports', 'is required: a port, "lo-hi" range, or a list of them')
        texts, values = [], []
        for port_index, port in enumerate(ports):
            text, value = _port(port, '%s.ports[%d]' % (path, port_index))
            texts.append(text)
            values.append(value)
        rules.append(({'name': rule_name('block-%s-' % label, '_'.join(texts)),
                       'match': {'proto': proto, 'dport': values}, 'action': 'drop'}, 'block', path))

    for index, item in enumerate(_list(policy.get('police'), POLICY_VAR + '.police')):
        path = '%s.police[%d]' % (POLICY_VAR, index)
        _mapping(item, path, POLICE_KEYS)
        name = _intent_name(item.get('name'), path + '.name')
        if item.get('rate') is None:
            _fail(path + '.rate', 'is required: e.g. 100pps or 10mbit')
        match = item.get('match')
        if match is not None and not isinstance(match, dict):
            _fail(path + '.match', 'must be a mapping of %s, not %s'
                  % (', '.join(_rules.MATCH_KEYS), _rules.type_name(match)))
        police = {'rate': copy.deepcopy(item['rate'])}
        if item.get('burst') is not None:
            police['burst'] = copy.deepcopy(item['burst'])
        rule = {'name': rule_name('police-', name), 'match': copy.deepcopy(match or {}), 'action': 'police',
                'police': police}
        rules.append((rule, 'police', path))

    for index, item in enumerate(_list(policy.get('count_protocols'), POLICY_VAR + '.count_protocols')):
        path = '%s.count_protocols[%d]' % (POLICY_VAR, index)
        label, proto = _protocol(item, path)
        rules.append(({'name': 'count-' + label, 'match': {'proto': proto}, 'action': 'pass'}, 'count', path))

    if not rules and default_action is None:
        return  # nothing to put anywhere: interfaces may stay unknown
    interfaces = _interfaces_or_default(policy.get('interfaces'), POLICY_VAR + '.interfaces', default_interface,
                                        'name the interfaces the policy applies to')
    if not interfaces:
        _fail(POLICY_VAR + '.interfaces', 'is empty: leave it out for the default-route interface')
    for interface in interfaces:
        out.hook(interface, direction)
        out.set_default(interface, direction, default_action, POLICY_VAR + '.default_action')
        for rule, phase, path in rules:
            out.add_rule(interface, direction, copy.deepcopy(rule), (phase, path))


def steering_hooks(hooks, return_paths=None, policy=None, default_interface=''):
    """The role's inventory intents as a list of hooks ``{interface, direction, default_action, rules}``.

    See steering_hooks.yml for the contract; errors are AnsibleFilterError naming the variable path.
    """
    if default_interface is not None and not isinstance(default_interface, string_types):
        _fail(DEFAULT_IF_VAR, 'must be a string, not %s' % _rules.type_name(default_interface))
    default_interface = _text(default_interface).strip() if default_interface else ''
    out = _Hooks()
    _explicit(hooks, out)
    _return_paths(return_paths, default_interface, out)
    _policy(policy, default_interface, out)
    return out.result()


def return_path_interfaces(return_paths):
    """The interfaces return-path intents redirect to (their `interface`), each once, in order."""
    out = []
    for index, raw in enumerate(_list(return_paths, RETURN_PATHS_VAR)):
        path = '%s[%d]' % (RETURN_PATHS_VAR, index)
        if not isinstance(raw, dict):
            _fail(path, 'must be a mapping, not %s' % _rules.type_name(raw))
        interface = _string(raw.get('interface'), path + '.interface')
        if interface not in out:
            out.append(interface)
    return out


def shadowed_hooks(hooks, facts, backend='auto', allow_shadowed=False):
    """With `backend` clsact (and not `allow_shadowed`), one message per hook of `hooks` whose interface and
    direction run TCX programs that are not ours in `facts` (ebpf.tc.tc_info's result): our clsact filter
    would run behind them, and they end the hook for every packet they do not pass on. [] otherwise."""
    if backend != 'clsact' or allow_shadowed:
        return []
    interfaces = (facts or {}).get('interfaces') or {}
    out = []
    for hook in hooks or []:
        seen = (interfaces.get(hook['interface']) or {}).get(hook['direction']) or {}
        foreign = [entry['prog_name'] for entry in seen.get('tcx') or [] if not entry.get('owned')]
        if foreign:
            out.append('%s %s runs the TCX programs %s' % (hook['interface'], hook['direction'], ', '.join(foreign)))
    return out


def steering_snapshot(facts, program='steering'):
    """What the host's hooks run of `program`, from `facts` (ebpf.tc.tc_info's result): the hooks in canonical
    form with their rule sets (what a rollback reapplies), their fingerprint (the same rule sets give the same
    one on any host), a one-line description, and the packets the return-path rules (redirect, reply) and all
    rules counted."""
    hooks, redirect, packets = [], 0, 0
    for name, interface in sorted(((facts or {}).get('interfaces') or {}).items()):
        for direction in ('egress', 'ingress'):
            hook = interface.get(direction) or {}
            steering = hook.get('steering')
            if not (steering and steering.get('applied') and (hook.get('attached') or {}).get('program') == program):
                continue
            hooks.append({'interface': name, 'direction': direction, 'default_action': steering['default_action'],
                          'rules': steering['rules']})
            counters = steering.get('counters') or {}
            packets += sum(counter['packets'] for counter in counters.values())
            redirect += sum((counters.get(rule['name']) or {}).get('packets', 0)
                            for rule in steering['rules'] if rule['action'] in RETURN_PATH_ACTIONS)
    fingerprint = hashlib.sha1(json.dumps(hooks, sort_keys=True).encode()).hexdigest()[:8]
    described = '; '.join('%s/%s %d rules (default %s)' % (hook['interface'], hook['direction'], len(hook['rules']),
                                                           hook['default_action']) for hook in hooks)
    return {'hooks': hooks, 'fingerprint': fingerprint, 'redirect_packets': redirect, 'packets': packets,
            'description': '%s #%s' % (described, fingerprint) if hooks else 'no steering'}


class FilterModule(object):
    """ebpf.tc filters for the steering role."""

    def filters(self):
        return {
            'steering_hooks': steering_hooks,
            'return_path_interfaces': return_path_interfaces,
            'shadowed_hooks': shadowed_hooks,
            'steering_snapshot': steering_snapshot,
        }

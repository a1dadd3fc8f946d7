# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Exceptions shared by the collection's module_utils.

Modules turn an EbpfTcError into ``module.fail_json(msg=str(err))``: the message is written for the
operator and names what was wrong (the rule and field, the interface, the path).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class EbpfTcError(Exception):
    """Base class of every error this collection raises on purpose."""


class RuleError(EbpfTcError):
    """A rule set is invalid. Raised before anything on the host changes.

    ``rule`` is the rule's name (or ``rules[i]`` when it has none), ``index`` its position in the list
    when known, ``field`` the dotted path of the offending field inside the rule (``match.src``,
    ``redirect.via``), or None for set-level errors. The message starts with where:
    ``rules[2] (name web): match.src: ...``, ``rules[0]: name: ...``, ``rules: ...``.
    """

    def __init__(self, message, rule=None, field=None, index=None):
        self.rule = rule
        self.field = field
        self.index = index
        self.message = message
        where = []
        if index is not None:
            label = 'rules[%d]' % index
            where.append(label if rule in (None, label) else '%s (name %s)' % (label, rule))
        elif rule is not None:
            where.append(rule if str(rule).startswith('rules[') else 'rule %s' % (rule,))
        if field is not None:
            where.append(str(field))
        super(RuleError, self).__init__(''.join('%s: ' % part for part in where) + message)

    def at(self, index):
        """This error with the rule's position in the list (unchanged when it already has one)."""
        if self.index is not None or self.rule is None:
            return self
        return RuleError(self.message, rule=self.rule, field=self.field, index=index)


class LibbpfError(EbpfTcError):
    """A libbpf or bpf(2) call failed.

    ``errno`` is the positive errno (or None), ``log`` what libbpf printed during the failing call
    (for a load, the end of the kernel verifier's log).
    """

    def __init__(self, message, errno=None, log=None):
        self.errno = errno
        self.log = log or ''
        text = message
        if self.log:
            text = '%s\n%s' % (message, self.log)
        super(LibbpfError, self).__init__(text)


class MissingLibbpf(EbpfTcError):
    """No usable libbpf shared library on this host."""

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write the steering program's counters as a Prometheus textfile (node_exporter's textfile collector).

Usage: python3 ebpf_tc_metrics.py --output FILE [--netns NAME]

Installed by the ebpf.tc.steering role as <ebpf_tc_lib_dir>/ebpf_tc_metrics.py, beside ebpf_tc_restore.py
(whose import bootstrap it uses) and the collection's module_utils, and run by the unit
ebpf-tc-metrics.service, which ebpf-tc-metrics.timer starts every ebpf_tc_metrics_interval. Reads the hooks
of the namespace (the host's, or NAME under /run/netns) as ebpf.tc.tc_info does, and replaces FILE
atomically (a temporary file in the same directory, synced, then renamed over it, mode 0644): a reader
never sees half a file. Exits 0; or prints a one-line error on stderr, leaves FILE as it was and exits 1.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import os
import sys
import tempfile
import traceback

PROG = 'ebpf_tc_metrics'
FILE_MODE = 0o644

sys.dont_write_bytecode = True  # before the sibling import below: leave the installed directory as the role put it


def fail(message):
    lines = str(message).strip().splitlines() or ['unknown error']
    sys.stderr.write('%s: error: %s\n' % (PROG, lines[0]))
    for line in lines[1:]:
        sys.stderr.write('    %s\n' % line)
    return 1


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line exits 1 with the same one-line error format as everything else."""

    def error(self, message):
        self.print_usage(sys.stderr)
        sys.exit(fail(message))


def parse_args(argv):
    parser = _Parser(prog=PROG, description='Write the counters of the ebpf.tc steering programs as a '
                     'Prometheus textfile for node_exporter.')
    parser.add_argument('--output', required=True, metavar='FILE',
                        help='the .prom file to replace (its directory must exist)')
    parser.add_argument('--netns', metavar='NAME',
                        help='network namespace (a name under /run/netns); default: this process\'s')
    args = parser.parse_args(argv)
    if not args.output:
        parser.error('--output needs a non-empty path')
    return args


def write_atomically(path, text):
    """Replace `path` with `text`: written to a temporary file in the same directory (its name does not end
    in .prom, so the textfile collector skips it), synced, made 0644 and renamed over `path`."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OSError('directory %s does not exist' % directory)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix='.%s.' % os.path.basename(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'w') as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
            os.fchmod(out.fileno(), FILE_MODE)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # the rename itself survives a crash once the directory is synced
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        from ebpf_tc_restore import use_own_module_utils
    except ImportError as err:
        return fail('cannot import ebpf_tc_restore.py beside %s: %s' % (__file__, err))
    use_own_module_utils(here)
    try:
        from ansible_collections.ebpf.tc.plugins.module_utils import _facts, _metrics
        from ansible_collections.ebpf.tc.plugins.module_utils._errors import EbpfTcError
    except ImportError as err:
        return fail('cannot import the collection code beside %s: %s' % (__file__, err))
    where = 'network namespace %s' % args.netns if args.netns else 'this network namespace'
    try:
        gathered = _facts.gather(args.netns)
        text = _metrics.render(gathered)
    except EbpfTcError as err:
        return fail('cannot read the hooks of %s: %s' % (where, err))
    except Exception as err:  # a bug, or an error nothing above turned into a message: keep the trace
        return fail('reading the hooks of %s: unexpected %s: %s\n%s'
                    % (where, type(err).__name__, err, traceback.format_exc()))
    try:
        write_atomically(args.output, text)
    except (IOError, OSError) as err:
        return fail('cannot write %s: %s' % (args.output, err.strerror or err))
    for interface, direction, hook in _metrics.hooks_of(gathered):
        steering = hook.get('steering') or {}
        if 'error' in steering:  # exported as ebpf_tc_hook_read_error; said here for the journal too
            sys.stderr.write('%s: warning: %s %s: %s\n' % (PROG, interface, direction, steering['error']))
    return 0


if __name__ == '__main__':
    sys.exit(main())

# -*- coding: utf-8 -*-
# Copyright (c) ebpf.tc contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commit-confirm: a change that undoes itself at a deadline unless it is confirmed first.

One pending change per key (the steering program's pin directory). Its record is a JSON file under
/run/ebpf_tc/pending/ (tmpfs: a reboot forgets it, as it forgets the pinned maps it is about); a
detached timer process sleeps until the deadline, then, holding the lock and only if the record is still
the one it was started for, runs the expiry callback and removes the record. Confirming removes the
record and stops the timer (after checking, by its start time, that the pid is still our timer). How the
last change ended (confirmed, or reverted and when) is kept next to the record, so that a late
confirmation can say what happened.

Every change to a record happens under an exclusive flock on the records' directory, so a confirmation and an
expiry never interleave: the timer is either still sleeping when it is stopped, or it has finished.

The timer is forked from the module process: everything it runs must already be imported (the AnsiballZ
payload is gone once the module exits), and it keeps no descriptor of the module's, so Ansible does not
wait for it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import hashlib
import json
import os
import signal
import sys
import time
import uuid
from contextlib import contextmanager

PENDING_DIR = '/run/ebpf_tc/pending'


def _proc_start_time(pid):
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or None.

    None too for a zombie: it is gone for our purposes.
    """
    try:
        with open('/proc/%d/stat' % pid) as stat:
            data = stat.read()
    except (IOError, OSError):
        return None
    fields = data[data.rindex(')') + 2:].split()  # the command name may hold spaces and parentheses
    if fields[0] == 'Z':
        return None
    return int(fields[19])


class Pending:
    """The pending-change record of one key (a path), and its timer."""

    def __init__(self, key, directory=PENDING_DIR):
        self.key = key
        self.directory = directory
        digest = hashlib.sha256(os.path.realpath(key).encode('utf-8')).hexdigest()[:24]
        self.path = os.path.join(directory, digest + '.json')
        self.outcome_path = os.path.join(directory, digest + '.outcome.json')

    @contextmanager
    def locked(self, create=True):
        """Hold the lock of every record (blocking) for the duration of the block.

        One lock for the directory (an flock on the directory itself): runs are short, and no lock
        file is left behind per key. With create=False (check mode) nothing is created: without the
        directory there is no record and no timer to race with.
        """
        if not os.path.isdir(self.directory):
            if not create:
                yield
                return
            os.makedirs(self.directory, 0o700)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self):
        """The record (a dict), or None when nothing is pending."""
        try:
            with open(self.path) as src:
                return json.load(src)
        except (IOError, OSError) as err:
            if err.errno == errno.ENOENT:
                return None
            raise
        except ValueError:  # a torn or foreign file: treat as nothing pending, it is replaced on write
            return None

    def write(self, record):
        self._write(self.path, record)

    def _write(self, path, record):
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, 0o700)
        tmp = '%s.%d.tmp' % (path, os.getpid())
        with open(tmp, 'w') as out:
            json.dump(record, out, sort_keys=True)
        os.rename(tmp, path)

    def remove(self):
        self._unlink(self.path)

    @staticmethod
    def _unlink(path):
        try:
            os.unlink(path)
        except OSError as err:
            if err.errno != errno.ENOENT:
                raise

    # How the last pending change ended ('confirmed' or 'reverted', when, and the generation then
    # applied), kept after the record is gone so that a late confirmation can be told what happened.

    def read_outcome(self):
        """The last outcome (a dict: outcome, at, generation...), or None."""
        try:
            with open(self.outcome_path) as src:
                return json.load(src)
        except (IOError, OSError, ValueError):
            return None

    def write_outcome(self, outcome, **details):
        self._write(self.outcome_path, dict(details, outcome=outcome, at=time.time(), key=self.key))

    def forget(self):
        """Remove the record and the outcome (the key's state is gone, for example unpinned)."""
        self._unlink(self.path)
        self._unlink(self.outcome_path)

    @staticmethod
    def timer_alive(record):
        pid = record.get('timer_pid')
        return bool(pid) and _proc_start_time(pid) == record.get('timer_start')

    @staticmethod
    def stop_timer(record, wait=2.0):
        """Stop the record's timer if it still runs (checked by pid AND start time). True if it did."""
        pid = record.get('timer_pid')
        if not pid or _proc_start_time(pid) != record.get('timer_start'):
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as err:
            if err.errno == errno.ESRCH:
                return False
            raise
        end = time.time() + wait
        while time.time() < end and _proc_start_time(pid) is not None:
            time.sleep(0.02)
        return True

    def start_timer(self, record, on_expiry):
        """Write `record` with a new timer that runs on_expiry(record) at record['deadline'] (epoch s).

        Call with the lock held. Returns the record as written (with token, timer_pid, timer_start).
        on_expiry's exceptions are kept in the record as 'error' (the record then stays, for the next
        run to report). The timer is a grandchild in its own session, with stdin/stdout/stderr on
        /dev/null and every other descriptor closed.
        """
        record = dict(record, token=uuid.uuid4().hex)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        read_end, write_end = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the forked processes
            try:
                os.close(read_end)
                os.setsid()
                grandchild = os.fork()
                if grandchild:
                    os.write(write_end, str(grandchild).encode('ascii'))
                    os._exit(0)
                os.close(write_end)
                self._timer_main(record, on_expiry)
            finally:
                os._exit(0)
        os.close(write_end)
        try:
            data = b''
            while True:
                chunk = os.read(read_end, 64)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(read_end)
            os.waitpid(child, 0)
        pid = int(data.decode('ascii'))
        record['timer_pid'] = pid
        record['timer_start'] = _proc_start_time(pid)
        self.write(record)
        return record

    def _timer_main(self, record, on_expiry):  # pragma: no cover - runs in the detached timer
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 65536)
        os.chdir('/')
        while True:
            left = record['deadline'] - time.time()
            if left <= 0:
                break
            time.sleep(min(left, 60))
        with self.locked():
            current = self.read()
            if current is None or current.get('token') != record['token']:
                return  # confirmed, or replaced by a newer change with its own timer
            try:
                reverted = on_expiry(current)
            except Exception as err:  # kept for the next run to report; nothing else can see it
                current['error'] = '%s: %s' % (type(err).__name__, err)
                current['timer_pid'] = None
                self.write(current)
                return
            if reverted:
                # on_expiry's truthy answer (the generation it applied, for steering) is kept as the outcome
                self.write_outcome('reverted', trial_generation=current.get('generation'), generation=reverted,
                                   deadline=current.get('deadline'))
            self.remove()

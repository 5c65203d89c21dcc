# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``/proc/PID/stat`` says about a process: its start time and its parent.

Small on purpose: reading a container's state (every repeat of a task) needs
only this, not the monitor or the start sequence.
"""

from __future__ import annotations


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (field 3 on), or None."""
    try:
        with open('/proc/%d/stat' % pid, 'rb') as f:
            data = f.read().decode('ascii', 'replace')
    except OSError:
        return None
    parts = data.rsplit(')', 1)
    return parts[1].split() if len(parts) == 2 else None


def process_start_time(pid):
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None: tells a PID from its reuse.

    A zombie counts as gone.
    """
    fields = _stat_fields(pid)
    if not fields or fields[0] in ('Z', 'X'):
        return None
    return int(fields[19])


def parent_of(pid):
    """The parent PID of ``pid``, or None when it is gone."""
    fields = _stat_fields(pid)
    try:
        return int(fields[1]) if fields else None
    except (ValueError, IndexError):
        return None


__all__ = ['parent_of', 'process_start_time']

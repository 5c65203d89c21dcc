# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Timestamps as Docker writes them (RFC 3339, UTC, ``Z``): image configs, container states."""

from __future__ import annotations

import time


MIN_SECONDS = -62135596800     # 0001-01-01T00:00:00Z
MAX_SECONDS = 253402300799     # 9999-12-31T23:59:59Z: RFC 3339 has four-digit years


def rfc3339(ts):
    """A timestamp as Docker writes it: UTC, ``Z``, nanoseconds trimmed to what we have
    (microseconds, rounded half to even as :mod:`datetime` rounds them; ``datetime`` itself is not
    imported: every task would pay for it)."""
    seconds = int(ts // 1)
    micros = round((ts - seconds) * 1e6)
    if micros >= 1000000:
        seconds, micros = seconds + 1, micros - 1000000
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError('%r is outside the years 1 to 9999' % (ts,))
    text = '%04d-%02d-%02dT%02d:%02d:%02d' % time.gmtime(seconds)[:6]
    return '%s.%06dZ' % (text, micros) if micros else text + 'Z'


def parse_rfc3339(text):
    """Seconds since the epoch of an RFC 3339 UTC time as :func:`rfc3339` and the monitor write it
    (``Z``, up to nanoseconds); ValueError when it is something else."""
    import datetime
    import re
    m = re.match(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$', text or '')
    if not m:
        raise ValueError('%r is not an RFC 3339 UTC time' % (text,))
    dt = datetime.datetime.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S').replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp() + (int(m.group(2).ljust(9, '0')) / 1e9 if m.group(2) else 0.0)


def now():
    return rfc3339(time.time())


__all__ = ['now', 'parse_rfc3339', 'rfc3339']

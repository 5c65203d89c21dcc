# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Timestamps as Docker writes them (RFC 3339, UTC, ``Z``): image configs, container states."""

from __future__ import annotations

import datetime
import time


def rfc3339(ts):
    """A timestamp as Docker writes it: UTC, ``Z``, nanoseconds trimmed to what we have."""
    dt = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    if dt.microsecond:
        return dt.strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


def now():
    return rfc3339(time.time())


__all__ = ['now', 'rfc3339']

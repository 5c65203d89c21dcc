# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every CLI command file shares: its output streams, sizes as Docker prints them, KEY=VALUE lists."""

from __future__ import annotations

import os
import sys

from .errors import InvalidArgument


def out(text):
    sys.stdout.write('%s\n' % text)


def err(text):
    sys.stderr.write('%s\n' % text)


def human(size):
    """A size as Docker prints it (powers of 1000: kB, MB, GB)."""
    for unit in ('B', 'kB', 'MB', 'GB'):
        if size < 1000 or unit == 'GB':
            return ('%d%s' if unit == 'B' else '%.3g%s') % (size, unit)
        size /= 1000.0
    return str(size)


def pairs(items, option, environ=False, unset=''):
    """Repeated ``KEY=VALUE`` arguments as a dict. A bare ``KEY`` is ``''``; with ``environ`` it is the
    caller's variable of that name, or ``unset`` when there is none (None: left out, as ``--build-arg``)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        if not key:
            raise InvalidArgument('%s "%s" is not KEY=VALUE' % (option, item))
        if not sep and environ:
            value = os.environ.get(key, unset)
            if value is None:
                continue
        out[key] = value
    return out

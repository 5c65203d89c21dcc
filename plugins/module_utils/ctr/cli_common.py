# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every CLI command file shares: its two output streams."""

from __future__ import annotations

import sys


def out(text):
    sys.stdout.write('%s\n' % text)


def err(text):
    sys.stderr.write('%s\n' % text)


def human(size):
    for unit in ('B', 'kB', 'MB', 'GB'):
        if size < 1000 or unit == 'GB':
            return ('%d%s' if unit == 'B' else '%.3g%s') % (size, unit)
        size /= 1000.0
    return str(size)

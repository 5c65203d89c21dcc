# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Resource limits as the user gives them (``memory: 512m``, ``cpus: 0.5``, ``pids_limit: 100``).

Parsing and validation only: planning or comparing a container needs these,
not the cgroup machinery in :mod:`.cgroups` that enforces them.
"""

from __future__ import annotations

import math
import os
import re

from ..errors import InvalidArgument
from ..records import record
from ..regex import lazy

PERIOD_US = 100000                  # CFS period for the cpus limit, as Docker uses
MIN_MEMORY = 6 * 1024 * 1024        # Docker refuses less: "Minimum memory limit allowed is 6MB"
MIN_CPUS = 0.01                     # a quota below 1 ms per period is refused by the kernel
MAX_INT64 = (1 << 63) - 1
PAGE_SIZE = os.sysconf('SC_PAGE_SIZE')

_MEMORY = lazy(r'(\d{1,20})(?:\.(\d{1,20}))? ?(?:([kmgtp])i?)?b?', re.IGNORECASE)
_CPUS = lazy(r'\d+(?:\.\d*)?|\.\d+')
_UNITS = {None: 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40, 'p': 1 << 50}


def invalid(option, value, reason):
    text = str(value)
    text = text if text.isprintable() else repr(text)[1:-1]
    return InvalidArgument('invalid %s "%s": %s' % (option, text, reason), option=option, value=value)


def parse_memory(value):
    """Bytes from ``512m``, ``1g``, ``1.5GiB``, ``64k`` or ``1048576`` (binary units, as Docker reads them)."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _MEMORY.fullmatch(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise invalid('memory', value, 'give a number of bytes with an optional unit b, k, m, g, t or p, '
                                           'such as 512m or 1g')
        whole, fraction, unit = match.groups()
        scale = _UNITS[unit.lower() if unit else None]
        size = int(whole) * scale + int(fraction or '0') * scale // 10 ** len(fraction or '')
    if size > MAX_INT64:
        raise invalid('memory', value, 'it exceeds the largest limit the kernel takes')
    if size < MIN_MEMORY:
        raise invalid('memory', value, 'Minimum memory limit allowed is 6MB')
    return size


def parse_cpus(value, ncpu=None):
    """CPUs as a float (``0.5``, ``2``), from 0.01 up to the number of CPUs on this host."""
    ncpu = ncpu or os.cpu_count() or 1
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        cpus = float(value)
    elif isinstance(value, str) and _CPUS.fullmatch(value.strip()):
        cpus = float(value.strip())
    else:
        raise invalid('cpus', value, 'give a number of CPUs such as 0.5 or 2')
    if not math.isfinite(cpus) or cpus < MIN_CPUS or cpus > ncpu:
        raise invalid('cpus', value, 'the range of CPUs is from %.2f to %d, the number of CPUs on this host'
                      % (MIN_CPUS, ncpu))
    return cpus


def parse_pids_limit(value):
    """The most processes a container may hold at once: a whole number, 1 or more."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise invalid('pids_limit', value, 'give a whole number of processes, 1 or more (omit the option '
                                           'for no limit)')
    return value


@record(frozen=True)
class Limits:
    """Resource limits of one container; None means no limit."""

    memory: int | None = None     # bytes
    cpus: float | None = None     # CPUs (quota / period)
    pids: int | None = None       # processes

    def __post_init__(self):
        if self.memory is not None:
            if isinstance(self.memory, bool) or not isinstance(self.memory, int):
                raise invalid('memory', self.memory, 'give a number of bytes')
            parse_memory(self.memory)
        if self.cpus is not None:
            if isinstance(self.cpus, bool) or not isinstance(self.cpus, (int, float)) \
                    or not math.isfinite(self.cpus) or self.cpus < MIN_CPUS:
                raise invalid('cpus', self.cpus, 'give a number of CPUs, 0.01 or more')
            object.__setattr__(self, 'cpus', float(self.cpus))
        if self.pids is not None:
            parse_pids_limit(None if isinstance(self.pids, str) else self.pids)

    @classmethod
    def parse(cls, memory=None, cpus=None, pids_limit=None, ncpu=None):
        """Limits from the user's options (strings or numbers); an omitted option is no limit."""
        return cls(memory=None if memory is None else parse_memory(memory),
                   cpus=None if cpus is None else parse_cpus(cpus, ncpu),
                   pids=None if pids_limit is None else parse_pids_limit(pids_limit))

    def as_kernel_keeps(self):
        """These limits as the kernel stores and reads them back: memory down to a page, cpus to a quota."""
        return Limits(memory=None if self.memory is None else self.memory // PAGE_SIZE * PAGE_SIZE,
                      cpus=None if self.cpus is None else quota(self.cpus) / PERIOD_US,
                      pids=self.pids)


def quota(cpus):
    """The CFS quota (microseconds per period) of ``cpus``."""
    return int(round(cpus * PERIOD_US))


__all__ = ['Limits', 'invalid', 'parse_cpus', 'parse_memory', 'parse_pids_limit', 'quota']

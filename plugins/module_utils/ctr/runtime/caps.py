# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Linux capabilities by name and number, and Docker's rules for a container's set.

Names and sets only: planning or comparing a container needs these; giving a
process its set (capset, the bounding set) is :mod:`.security`'s work.
"""

from __future__ import annotations

from ..errors import InvalidArgument

# linux/capability.h, by number
CAPABILITIES = (
    'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
    'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
    'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE',
    'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT',
    'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
    'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
    'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
)
CAP_NUMBERS = {name: number for number, name in enumerate(CAPABILITIES)}

# moby oci/caps/defaults.go, in its order
DEFAULT_CAPS = (
    'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
    'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL',
    'CAP_AUDIT_WRITE',
)
ALL = 'ALL'
MAX_CAP_BITS = 64          # capset v3 carries two 32-bit words


def cap_name(number):
    """``CAP_SYS_ADMIN`` for 21; ``CAP_41`` for a number newer than this table."""
    return CAPABILITIES[number] if 0 <= number < len(CAPABILITIES) else 'CAP_%d' % number


def cap_numbers(caps):
    """Capability numbers, ascending, for names (canonical ``CAP_X`` form) or numbers."""
    numbers = set()
    for cap in caps:
        if isinstance(cap, int):
            numbers.add(cap)
        elif cap in CAP_NUMBERS:
            numbers.add(CAP_NUMBERS[cap])
        elif cap.startswith('CAP_') and cap[4:].isdigit():
            numbers.add(int(cap[4:]))
        else:
            raise InvalidArgument('"%s" is not a Linux capability' % cap, value=cap)
    return sorted(numbers)


def caps_mask(caps):
    """The 64-bit mask of names or numbers (bit N: capability N)."""
    mask = 0
    for number in cap_numbers(caps):
        mask |= 1 << number
    return mask


def caps_from_mask(mask):
    """The names of the bits set in ``mask``, by number."""
    return tuple(cap_name(n) for n in range(MAX_CAP_BITS) if mask >> n & 1)


def kernel_last_cap(path='/proc/sys/kernel/cap_last_cap'):
    """The highest capability number the running kernel knows (the table's last if it cannot say)."""
    try:
        with open(path, 'rb') as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return len(CAPABILITIES) - 1


def normalize_caps(names, option):
    """Docker's normalisation: case-insensitive, ``CAP_`` optional, ``ALL`` kept; unknown names refused."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    out = []
    for raw in names:
        if not isinstance(raw, str):
            raise InvalidArgument('%s: %r is not a capability name' % (option, raw), option=option, value=raw)
        name = raw.strip().upper()
        if name == ALL:
            out.append(ALL)
            continue
        if not name.startswith('CAP_'):
            name = 'CAP_' + name
        if name not in CAP_NUMBERS:
            raise InvalidArgument('%s: unknown capability "%s" (use a name such as NET_ADMIN or CAP_NET_ADMIN, or ALL)'
                                  % (option, raw), option=option, value=raw)
        if name not in out:
            out.append(name)
    return out


def all_caps(last_cap=None):
    """Every capability name up to ``last_cap`` (default: the whole table)."""
    last = len(CAPABILITIES) - 1 if last_cap is None else min(last_cap, len(CAPABILITIES) - 1)
    return CAPABILITIES[:last + 1]


def effective_caps(add=None, drop=None, privileged=False, last_cap=None):
    """The container's capability set, by Docker's rules (moby ``TweakCapabilities``), ascending by number.

    * ``privileged``: every capability; ``add`` and ``drop`` are ignored (but still validated, unlike Docker).
    * ``ALL`` in ``add``: every capability except those named in ``drop`` (this wins over ``ALL`` in drop).
    * ``ALL`` in ``drop``: only the capabilities named in ``add``.
    * otherwise: the default set minus ``drop``, plus ``add``.

    ``add`` is the ``capabilities`` option, ``drop`` ``cap_drop``; names are case-insensitive
    with or without ``CAP_``. ``last_cap`` limits "every capability" to what a kernel knows.
    """
    capdrop = normalize_caps(drop, 'cap_drop')
    capadd = normalize_caps(add, 'capabilities')
    if privileged:
        chosen = list(all_caps(last_cap))
    elif ALL in capadd:
        chosen = [c for c in all_caps(last_cap) if c not in capdrop]
    elif ALL in capdrop:
        chosen = [c for c in capadd if c != ALL]
    else:
        chosen = [c for c in DEFAULT_CAPS if c not in capdrop] + capadd
    return tuple(cap_name(n) for n in cap_numbers(chosen))


__all__ = ['ALL', 'CAPABILITIES', 'CAP_NUMBERS', 'DEFAULT_CAPS', 'MAX_CAP_BITS', 'all_caps', 'cap_name', 'cap_numbers', 'caps_from_mask',
           'caps_mask', 'effective_caps', 'kernel_last_cap', 'normalize_caps']

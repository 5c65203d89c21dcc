# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which cgroup hierarchies a host has mounted, and which of them serves each controller.

Three layouts exist, told apart by ``/proc/self/mountinfo`` (see :mod:`cgroups` for what a
container's cgroup is made of in each): ``unified`` (one cgroup2 tree), ``hybrid`` (v1
hierarchies hold the controllers, a cgroup2 tree holds few or none) and ``legacy`` (v1 only).
A controller is served by the v1 hierarchy it is mounted on, else by the cgroup2 tree when that
tree's root lists it in ``cgroup.controllers``. Parsers take text, so tests feed them fixtures.
"""

from __future__ import annotations

import os

from ..errors import KernelError
from ..fsutil import unescape_mountinfo
from ..records import record

# The v1 hierarchies a container joins, when mounted, and the controllers it may get from cgroup2.
V1_CONTROLLERS = ('memory', 'cpu', 'cpuacct', 'pids', 'freezer', 'devices')
V2_CONTROLLERS = ('memory', 'cpu', 'pids')

# v1 super options that are not controller names.
_V1_OPTIONS = frozenset(('rw', 'ro', 'noprefix', 'xattr', 'clone_children', 'cpuset_v2_mode',
                         'favordynmods', 'all', 'none'))


def read(path, missing_ok=False):
    """The file's text; with ``missing_ok``, None when it (or its cgroup, or its process) is gone."""
    try:
        with open(path, encoding='utf-8') as handle:
            return handle.read()
    except (FileNotFoundError, ProcessLookupError) as exc:
        if missing_ok:
            return None
        raise KernelError.from_oserror('read', path, exc) from None
    except OSError as exc:
        raise KernelError.from_oserror('read', path, exc) from None


@record(frozen=True)
class Mount:
    """One mounted cgroup hierarchy."""

    version: int                    # 1 or 2
    point: str                      # where it is mounted
    root: str                       # the cgroup at the mount's root, relative to the hierarchy's root
    controllers: frozenset          # v1: the controllers (and name=...) bound to it; v2: empty


@record(frozen=True)
class Layout:
    """The cgroup hierarchies mounted on a host."""

    kind: str                       # 'unified', 'hybrid', 'legacy' or 'none'
    v1: tuple[Mount, ...]
    v2: Mount | None

    def v1_mount(self, controller):
        for mount in self.v1:
            if controller in mount.controllers:
                return mount
        return None


def parse_mountinfo(text):
    """The cgroup :class:`Layout` described by the text of a ``/proc/PID/mountinfo``.

    The first mount of a hierarchy wins; later mounts of it (bind mounts) are ignored.
    """
    v1, seen, v2 = [], set(), None
    for line in text.splitlines():
        fields = line.split(' ')
        if '-' not in fields[6:]:
            continue
        sep = fields.index('-', 6)
        if len(fields) < sep + 4:
            continue
        fstype, options = fields[sep + 1], fields[sep + 3].split(',')
        root, point = unescape_mountinfo(fields[3]), unescape_mountinfo(fields[4])
        if fstype == 'cgroup2' and v2 is None:
            v2 = Mount(2, point, root, frozenset())
        elif fstype == 'cgroup':
            bound = frozenset(o for o in options if o.startswith('name=') or ('=' not in o and o not in _V1_OPTIONS))
            if bound and not bound & seen:
                seen |= bound
                v1.append(Mount(1, point, root, bound))
    has_v1_controllers = any(c for m in v1 for c in m.controllers if not c.startswith('name='))
    if v2 is not None:
        kind = 'hybrid' if has_v1_controllers else 'unified'
    else:
        kind = 'legacy' if v1 else 'none'
    return Layout(kind, tuple(v1), v2)


def read_layout(mountinfo=None):
    """The layout from ``mountinfo`` text, else from this process's ``/proc/self/mountinfo``."""
    if mountinfo is None:
        mountinfo = read('/proc/self/mountinfo')
    return parse_mountinfo(mountinfo)


def controllers(mountinfo=None):
    """Each controller a container can use here, mapped to the cgroup version serving it (1 or 2)."""
    return served(read_layout(mountinfo))


def served(layout):
    """v1 first: a controller bound to a v1 hierarchy is not in the cgroup2 tree."""
    served = {c: 1 for c in V1_CONTROLLERS if layout.v1_mount(c)}
    if layout.v2 is not None:
        offered = (read(os.path.join(layout.v2.point, 'cgroup.controllers'), missing_ok=True) or '').split()
        served.update((c, 2) for c in V2_CONTROLLERS if c in offered and c not in served)
    return served


def cgroup_paths(text):
    """The cgroup paths listed in the text of a ``/proc/PID/cgroup`` file."""
    paths = set()
    for line in text.splitlines():
        parts = line.split(':', 2)
        if len(parts) == 3:
            paths.add(parts[2])
    return paths

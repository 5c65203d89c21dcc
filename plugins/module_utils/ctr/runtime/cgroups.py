# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Control groups: one directory per container in every hierarchy it uses, on cgroup v2, v1 or both.

Three layouts exist, told apart by ``/proc/self/mountinfo``:

* ``unified``: one cgroup2 tree; a parent enables controllers for its children by
  writing ``+memory`` and so on to its ``cgroup.subtree_control``.
* ``hybrid``: v1 hierarchies (``/sys/fs/cgroup/<controller>``) hold the controllers, and a
  cgroup2 tree (``/sys/fs/cgroup/unified``) holds few or none of them.
* ``legacy``: v1 hierarchies only.

One rule covers all three (:mod:`cgrouplayout` reads the layout): a controller is served by
the v1 hierarchy it is mounted on, else by the cgroup2 tree when that tree's root lists it in
``cgroup.controllers``. A container's directory is ``<mount point>/<parent>/<name>`` (``name`` is the container's
64-hex ID, ``parent`` is ``ctr`` unless told otherwise) in each v1 hierarchy it joins, and in
the cgroup2 tree whenever there is one: that directory gives ``cgroup.kill``,
``cgroup.freeze`` and ``cgroup.events`` even when it serves no controller.

Every write to a cgroup file goes through :func:`_write`, which turns an ``OSError`` into
:class:`KernelError` naming the file.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from ..errors import CtrError, KernelError
from ..regex import lazy
from . import devices
from .cgrouplayout import V2_CONTROLLERS, cgroup_paths, read as _read, read_layout, served as _served
from .limits import PERIOD_US, Limits, invalid as _invalid, quota as _quota

DEFAULT_PARENT = 'ctr'
UNIFIED = 'unified'                 # the key of the cgroup2 directory in Cgroup.paths
V1_UNLIMITED = 1 << 62              # v1 reads back "no limit" as LONG_MAX rounded down to a page

# The option each limit comes from, and the controller that enforces it.
LIMIT_CONTROLLERS = (('memory', 'memory'), ('cpus', 'cpu'), ('pids_limit', 'pids'))

FREEZE_TIMEOUT = 10.0
KILL_TIMEOUT = 10.0
RMDIR_TIMEOUT = 5.0
MAKE_ATTEMPTS = 10                  # a concurrent destroy may remove an empty parent under a create

_NAME = lazy(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,254}')


# -- file access: the one place a cgroup file is written -------------------------------------------

def _write(path, value):
    """Write ``value`` to an existing cgroup file in one write(2)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode('ascii'))
        finally:
            os.close(fd)
    except OSError as exc:
        raise KernelError.from_oserror('write', path, exc) from None


def _keyed(text, key):
    """The integer after ``key`` in a flat-keyed file (``oom_kill 3``), or None."""
    for line in (text or '').splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None


def _mkdir(path):
    """mkdir; a directory already there is fine."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        raise KernelError.from_oserror('mkdir', path, exc) from None


def _rmdir(path, timeout=RMDIR_TIMEOUT):
    """rmdir that tolerates a missing directory and waits out processes still leaving it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise KernelError.from_oserror('rmdir', path, exc) from None
        time.sleep(0.01)


def _wait_for(predicate, timeout):
    """Poll ``predicate`` until true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def _check_name(what, value):
    if not all(_NAME.fullmatch(part) for part in value.split('/')) or (what == 'name' and '/' in value):
        raise _invalid('cgroup ' + what, value, '%suse letters, digits, "_", "." and "-", not starting with '
                       '"." or "-"' % ('one path component: ' if what == 'name' else ''))


# -- one container's cgroup ------------------------------------------------------------------------

class Cgroup:
    """One container's directories in the cgroup hierarchies of this host."""

    def __init__(self, name, parent, layout, served, v1_dirs, v2_dir):
        self.name = name
        self.parent = parent
        self.layout = layout
        self._served = served             # controller -> 1 or 2
        self._v1 = v1_dirs                # controller -> directory (co-mounted ones share it)
        self._v2 = v2_dir                 # the cgroup2 directory, or None

    # construction --------------------------------------------------------------------------------

    @classmethod
    def _plan(cls, name, parent, mountinfo):
        _check_name('name', name)
        _check_name('parent', parent)
        layout = read_layout(mountinfo)
        if layout.kind == 'none':
            raise CtrError('no cgroup filesystem is mounted on this host (no cgroup or cgroup2 mount in mountinfo)')
        served = _served(layout)
        v1_dirs = {c: os.path.join(layout.v1_mount(c).point, parent, name) for c in served if served[c] == 1}
        v2_dir = os.path.join(layout.v2.point, parent, name) if layout.v2 else None
        return cls(name, parent, layout, served, v1_dirs, v2_dir)

    @classmethod
    def create(cls, name, limits=None, parent=DEFAULT_PARENT, mountinfo=None, allow_all_devices=False):
        """Make (or reuse) the container's directories and apply ``limits``.

        A limit whose controller the host lacks fails before anything is made. Unless
        ``allow_all_devices`` (privileged containers), the devices the container can open are
        limited to Docker's default set (see :meth:`_restrict_devices`).
        """
        limits = limits if limits is not None else Limits()
        cgroup = cls._plan(name, parent, mountinfo)
        cgroup._check_controllers(limits)
        try:
            cgroup._make()
            if not allow_all_devices:
                cgroup._restrict_devices()
            cgroup.set_limits(limits)
        except BaseException:
            try:
                cgroup.destroy()
            except CtrError:
                pass
            raise
        return cgroup

    @classmethod
    def open(cls, name, parent=DEFAULT_PARENT, mountinfo=None):
        """The container's existing cgroup, or None when none of its directories exists."""
        cgroup = cls._plan(name, parent, mountinfo)
        return cgroup if cgroup.exists() else None

    def _make(self):
        for directory in sorted(set(self._v1.values())):
            self._make_chain(directory, ())
        if self._v2:
            enable = tuple(c for c in V2_CONTROLLERS if self._served.get(c) == 2)
            self._make_chain(self._v2, enable)

    def _make_chain(self, leaf, enable):
        """mkdir parent components and the leaf, enabling ``enable`` for children on the way.

        A concurrent ``destroy`` of another container may remove an empty parent between two
        steps; the chain is then made again.
        """
        parts = self.parent.split('/') + [self.name]
        base = leaf
        for dummy in parts:
            base = os.path.dirname(base)
        for attempt in range(MAKE_ATTEMPTS):
            try:
                directory = base
                _enable_for_children(directory, enable)
                for part in parts:
                    directory = os.path.join(directory, part)
                    _mkdir(directory)
                    if directory != leaf:
                        _enable_for_children(directory, enable)
                return
            except KernelError as exc:
                if exc.details.get('errno') != errno.ENOENT or attempt == MAKE_ATTEMPTS - 1:
                    raise

    def _restrict_devices(self):
        """Docker's default device rules (:mod:`devices`): in the v1 devices controller when it is
        mounted, and as an eBPF program on the cgroup2 directory when there is one. Without the v1
        controller the program is the only filter, so failing to attach it fails the create."""
        directory = self._v1.get('devices')
        if directory is not None:
            _write(os.path.join(directory, 'devices.deny'), 'a')
            for line in devices.v1_lines():
                _write(os.path.join(directory, 'devices.allow'), line)
        if self._v2:
            try:
                devices.attach(self._v2)
            except KernelError:
                if directory is None:
                    raise

    @property
    def devices_restricted(self):
        """True when the kernel limits the devices this cgroup's processes may open: a v1 devices list
        that does not allow everything, or a device program on the cgroup2 directory."""
        directory = self._v1.get('devices')
        listed = _read(os.path.join(directory, 'devices.list'), missing_ok=True) if directory else None
        if listed is not None and 'a *:* rwm' not in listed.split('\n'):
            return True
        return bool(self._v2) and devices.attached(self._v2) > 0

    # inspection ----------------------------------------------------------------------------------

    @property
    def paths(self):
        """Controller -> directory; ``unified`` is the cgroup2 directory."""
        paths = dict(self._v1)
        if self._v2:
            paths.update((c, self._v2) for c, version in self._served.items() if version == 2)
            paths[UNIFIED] = self._v2
        return paths

    def directories(self):
        """Every directory of this cgroup, once each."""
        return sorted(set(self.paths.values()))

    def exists(self):
        return any(os.path.isdir(d) for d in self.directories())

    def pids(self):
        """The processes in the cgroup, from every hierarchy it uses."""
        found = set()
        for directory in self.directories():
            text = _read(os.path.join(directory, 'cgroup.procs'), missing_ok=True)
            found.update(int(p) for p in (text or '').split())
        return sorted(found)

    def add(self, pid):
        """Move process ``pid`` into the cgroup, in every hierarchy it uses."""
        for directory in self.directories():
            _write(os.path.join(directory, 'cgroup.procs'), str(pid))

    # limits --------------------------------------------------------------------------------------

    def _check_controllers(self, limits):
        for option, controller in LIMIT_CONTROLLERS:
            value = getattr(limits, 'pids' if option == 'pids_limit' else option)
            if value is not None and controller not in self._served:
                raise CtrError('%s needs the %s cgroup controller, which this host lacks' % (option, controller),
                               option=option)

    def _file(self, controller, filename):
        """(version, path) of a controller's file, or (None, None) when the controller is not served."""
        version = self._served.get(controller)
        if version is None:
            return None, None
        directory = self._v1[controller] if version == 1 else self._v2
        return version, os.path.join(directory, filename)

    def set_limits(self, limits):
        """Write ``limits``; None lifts a limit. Fails, changing nothing, when a controller is missing."""
        self._check_controllers(limits)
        if 'memory' in self._served:
            self._set_memory(limits.memory)
        version, path = self._file('cpu', 'cpu.max')
        if version == 2:
            _write(path, '%s %d' % ('max' if limits.cpus is None else _quota(limits.cpus), PERIOD_US))
        elif version == 1:
            directory = self._v1['cpu']
            _write(os.path.join(directory, 'cpu.cfs_period_us'), str(PERIOD_US))
            _write(os.path.join(directory, 'cpu.cfs_quota_us'),
                   '-1' if limits.cpus is None else str(_quota(limits.cpus)))
        version, path = self._file('pids', 'pids.max')
        if version is not None:
            _write(path, 'max' if limits.pids is None else str(limits.pids))

    def _set_memory(self, memory):
        """The memory limit, and the same limit on memory plus swap so swap cannot dodge it."""
        if self._served['memory'] == 2:
            _write(os.path.join(self._v2, 'memory.max'), 'max' if memory is None else str(memory))
            swap = os.path.join(self._v2, 'memory.swap.max')
            if os.path.exists(swap):
                _write(swap, 'max' if memory is None else '0')
            return
        directory = self._v1['memory']
        value = '-1' if memory is None else str(memory)
        limit = os.path.join(directory, 'memory.limit_in_bytes')
        memsw = os.path.join(directory, 'memory.memsw.limit_in_bytes')
        current = _read(memsw, missing_ok=True)
        if current is None:
            _write(limit, value)
            return
        # The kernel keeps memory <= memory+swap at every step: raise memsw first, lower it last.
        raising = memory is None or memory > int(current)
        for path in ((memsw, limit) if raising else (limit, memsw)):
            _write(path, value)

    def limits(self):
        """The limits as the kernel holds them now (read back, not remembered)."""
        memory = quota = pids = None
        version, path = self._file('memory', 'memory.max' if self._served.get('memory') == 2
                                   else 'memory.limit_in_bytes')
        if version:
            memory = _max_or_int(_read(path))     # v1 says "no limit" with a huge number (or -1)
            memory = None if memory is None or memory < 0 or memory >= V1_UNLIMITED else memory
        version, path = self._file('cpu', 'cpu.max' if self._served.get('cpu') == 2 else 'cpu.cfs_quota_us')
        if version:
            quota = _read(path).split()       # v2 "quota period", v1 "quota" (-1: none)
            period = quota[1] if version == 2 else _read(os.path.join(self._v1['cpu'], 'cpu.cfs_period_us'))
            quota = None if quota[0] in ('max', '-1') else int(quota[0]) / int(period)
        version, path = self._file('pids', 'pids.max')
        if version:
            pids = _max_or_int(_read(path))
        return Limits(memory=memory, cpus=quota, pids=pids)

    def oom_kills(self):
        """How many processes of this cgroup the kernel's OOM killer has killed, ever (a counter:
        compare two readings to learn about one run).

        v2 reads ``oom_kill`` in ``memory.events``; v1 the ``oom_kill`` counter of
        ``memory.oom_control`` (Linux 4.13 and later; older kernels always give 0).
        """
        version, path = self._file('memory', 'memory.events')
        if version == 1:
            path = os.path.join(self._v1['memory'], 'memory.oom_control')
        if version is None:
            return 0
        return _keyed(_read(path, missing_ok=True), 'oom_kill') or 0

    def oom_killed(self):
        return self.oom_kills() > 0

    # freezer -------------------------------------------------------------------------------------

    def _freezer(self):
        """(version, directory) of the freezer: v1 freezer hierarchy, else cgroup2 ``cgroup.freeze``."""
        if 'freezer' in self._v1:
            return 1, self._v1['freezer']
        if self._v2 and os.path.exists(os.path.join(self._v2, 'cgroup.freeze')):
            return 2, self._v2
        return None, None

    def is_frozen(self):
        version, directory = self._freezer()
        if version == 1:
            return (_read(os.path.join(directory, 'freezer.state'), missing_ok=True) or '').strip() == 'FROZEN'
        if version == 2:
            return _keyed(_read(os.path.join(directory, 'cgroup.events'), missing_ok=True), 'frozen') == 1
        return False

    def freeze(self, timeout=FREEZE_TIMEOUT):
        """Stop every process of the cgroup; return once the kernel says all are frozen."""
        self._set_frozen(True, timeout)

    def thaw(self, timeout=FREEZE_TIMEOUT):
        """Let the processes of a frozen cgroup run again; return once all are."""
        self._set_frozen(False, timeout)

    def _set_frozen(self, frozen, timeout):
        version, directory = self._freezer()
        if version is None:
            raise CtrError('freezing cgroup "%s/%s" needs the freezer cgroup controller (v1) or cgroup.freeze '
                           '(v2, Linux 5.2), which this host lacks' % (self.parent, self.name))
        if version == 1:
            _write(os.path.join(directory, 'freezer.state'), 'FROZEN' if frozen else 'THAWED')
        else:
            _write(os.path.join(directory, 'cgroup.freeze'), '1' if frozen else '0')
        if not _wait_for(lambda: self.is_frozen() == frozen, timeout):
            raise CtrError('%s cgroup "%s/%s" did not finish within %g s' % (
                'freezing' if frozen else 'thawing', self.parent, self.name, timeout))

    # killing and removal -------------------------------------------------------------------------

    def kill_all(self, sig=signal.SIGKILL, timeout=KILL_TIMEOUT):
        """Send ``sig`` to every process of the cgroup; for SIGKILL, also wait until it is empty.

        cgroup2's ``cgroup.kill`` (Linux 5.14) kills the whole tree at once; without it, or
        for a process it missed (one in the v1 hierarchies only), the cgroup is frozen when it
        can be, each process signalled, and the cgroup thawed, in rounds until none is left.
        """
        if sig != signal.SIGKILL:
            for pid in self.pids():
                self._signal(pid, sig)
            return
        deadline = time.monotonic() + timeout
        kill_file = os.path.join(self._v2, 'cgroup.kill') if self._v2 else None
        first = True
        while self.pids():
            if first and kill_file and os.path.exists(kill_file):
                _write(kill_file, '1')
            else:
                self._best_effort_frozen(True)
                for pid in self.pids():
                    self._signal(pid, signal.SIGKILL)
            self._best_effort_frozen(False)     # v1 frozen processes die only once thawed
            first = False
            if _wait_for(lambda: not self.pids(), min(0.5, max(deadline - time.monotonic(), 0))):
                return
            if time.monotonic() > deadline:
                left = self.pids()
                raise CtrError('cgroup "%s/%s" still holds %d process(es) %s %g s after SIGKILL' % (
                    self.parent, self.name, len(left), ' '.join(map(str, left[:10])), timeout))

    def _best_effort_frozen(self, frozen):
        if self._freezer()[0] is None:
            return
        try:
            self._set_frozen(frozen, 1.0)
        except CtrError:
            pass

    def _signal(self, pid, sig):
        """Signal ``pid`` only if it is still ours: pidfd first, then check its cgroup, then signal."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                raise KernelError.from_oserror('pidfd_open', '/proc/%d' % pid, exc) from None
            pidfd = None
        try:
            if not self._owns(pid):
                return
            if pidfd is None:
                os.kill(pid, sig)
            else:
                signal.pidfd_send_signal(pidfd, sig)
        except ProcessLookupError:
            pass
        except OSError as exc:
            raise KernelError.from_oserror('kill', '/proc/%d' % pid, exc) from None
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def _owns(self, pid):
        """True when ``/proc/PID/cgroup`` puts the process in this cgroup (or below it)."""
        text = _read('/proc/%d/cgroup' % pid, missing_ok=True)
        if text is None:
            return False
        mine = set()
        for mount in self.layout.v1 + ((self.layout.v2,) if self.layout.v2 else ()):
            mine.add(os.path.normpath(os.path.join('/', mount.root.lstrip('/'), self.parent, self.name)))
        return any(p in mine or any(p.startswith(m + '/') for m in mine) for p in cgroup_paths(text))

    def destroy(self):
        """Kill every process, then remove the container's directories and any parent left empty.

        Idempotent: a cgroup already (partly) gone is fine.
        """
        if self.exists():
            self.kill_all()
        for directory in self.directories():
            _rmdir(directory)
        for directory in self.directories():
            parent = os.path.dirname(directory)
            for dummy in self.parent.split('/'):
                try:
                    os.rmdir(parent)
                except OSError as exc:
                    if exc.errno in (errno.EBUSY, errno.ENOTEMPTY, errno.EEXIST):
                        break       # another container's cgroup is still there
                    if exc.errno != errno.ENOENT:
                        raise KernelError.from_oserror('rmdir', parent, exc) from None
                parent = os.path.dirname(parent)

    def __repr__(self):
        return 'Cgroup(%r, parent=%r, kind=%r, paths=%r)' % (self.name, self.parent, self.layout.kind, self.paths)


def _max_or_int(text):
    text = text.strip()
    return None if text == 'max' else int(text)


def _enable_for_children(directory, wanted):
    """Enable each of ``wanted`` in ``directory``'s cgroup.subtree_control that is not yet enabled."""
    if not wanted:
        return
    path = os.path.join(directory, 'cgroup.subtree_control')
    enabled = set(_read(path).split())
    for controller in wanted:
        if controller not in enabled:
            _write(path, '+' + controller)

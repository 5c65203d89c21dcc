# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The start sequence: what a container's first process does between fork and execve.

It runs as PID 1 of a fresh PID namespace (the monitor unshared CLONE_NEWPID
and forked it) and reads top to bottom: wait for the monitor (cgroup placed),
new namespaces, a private view of the mounts, the kernel filesystems inside
the rootfs, the user's binds and tmpfs, pivot_root, masks, hostname, identity,
capabilities, working directory, and execve -- so the application *is* PID 1.
Any failure is written to the error pipe as one sentence and the process exits
127; a successful execve closes that pipe (it is close-on-exec), which is how
the monitor knows.
"""

from __future__ import annotations

import os
import signal
import stat

from .. import libc
from ..errors import CtrError
from ..records import field, record
from . import mounts

_NS_FLAGS = libc.CLONE_NEWNS | libc.CLONE_NEWUTS | libc.CLONE_NEWIPC | libc.CLONE_NEWCGROUP
_NOSUID_NODEV_NOEXEC = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
# (name, major, minor): the devices every container gets, as runc's defaults
_DEVICES = (('null', 1, 3), ('zero', 1, 5), ('full', 1, 7), ('random', 1, 8), ('urandom', 1, 9), ('tty', 5, 0))
_DEV_LINKS = (('fd', '/proc/self/fd'), ('stdin', '/proc/self/fd/0'), ('stdout', '/proc/self/fd/1'),
              ('stderr', '/proc/self/fd/2'), ('ptmx', 'pts/ptmx'), ('core', '/proc/kcore'))


@record
class StartPlan:
    """Everything the start sequence needs; built by the runtime before the monitor forks."""

    rootfs: str                     # the mounted overlay (merged dir)
    argv: list[str]
    env: list[str]
    cwd: str = '/'
    hostname: str = ''
    network: str = 'none'           # 'none' (own netns, lo up), 'host', or 'join' (the namespace ``netns``)
    netns: str = ''                 # 'join': a held namespace (bridge networks) or another container's
    network_owned: bool = False     # the monitor detaches the container's networks when it is done for good
    netns_pid: tuple | None = None   # (pid, start time) when netns is /proc/PID/ns/net: that process, still
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    caps: list[int] | None = None        # None: keep all (privileged)
    no_new_privs: bool = False      # Docker's default; --security-opt no-new-privileges sets it
    read_only: bool = False
    mask: bool = True               # runc's masked and read-only paths (off for privileged)
    mounts: list = field(default_factory=list)     # mountspec.MountSpec: binds and tmpfs, mounted before pivot_root
    seccomp: bytes | None = None     # the filter (runtime.seccomp.program), made on the host side; none when
    #                                     privileged. Nothing may be imported here after pivot_root


class StartError(Exception):
    """A step of the start sequence failed; the message is what the user sees."""


def contain(plan, go_fd, error_fd):
    """Run the start sequence and exec; never returns. Call in the freshly forked PID 1."""
    try:
        if os.read(go_fd, 1) != b'g':           # the monitor has put us in our cgroup -- or died trying
            raise StartError('the monitor went away before the container was placed in its cgroup')
        os.close(go_fd)
        if plan.network == 'join':
            _join_netns(plan.netns, plan.netns_pid)
        _step('create namespaces', None, libc.unshare,
              _NS_FLAGS | (libc.CLONE_NEWNET if plan.network == 'none' else 0))
        if plan.network == 'none':
            _step('bring up lo', None, libc.link_up, 'lo')
        _step('make the mounts private', '/', libc.mount, None, '/', None, libc.MS_REC | libc.MS_SLAVE)
        _mount_kernel_filesystems(plan.rootfs)
        _mount_user_mounts(plan)
        _pivot_root(plan.rootfs)
        if plan.mask:
            from . import security
            _step('mask paths', None, security.mask_paths)
            _step('make paths read-only', None, security.readonly_paths)
        if plan.read_only:
            _step('make the rootfs read-only', '/', libc.mount, None, '/', None,
                  libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY)
        if plan.hostname:
            _step('set the hostname', None, libc.sethostname, plan.hostname)
        _step('join a new session keyring', None, libc.join_session_keyring)
        try:
            os.makedirs(plan.cwd, 0o755, exist_ok=True)     # inside the rootfs now, as runc does
        except OSError as exc:
            raise StartError('working directory "%s" cannot be created: %s' % (plan.cwd, exc.strerror))
        if plan.seccomp:
            _step('install the seccomp filter', None, libc.seccomp_filter, plan.seccomp)
        _become(plan)
        _reset_signals()
        try:
            os.chdir(plan.cwd)
        except OSError as exc:
            raise StartError('working directory "%s" cannot be entered: %s' % (plan.cwd, exc.strerror))
        _close_inherited(keep=(0, 1, 2, error_fd))
        try:
            os.execvpe(plan.argv[0], plan.argv, dict(e.split('=', 1) for e in plan.env if '=' in e))
        except OSError as exc:
            raise StartError('cannot run "%s": %s' % (plan.argv[0], exc.strerror))
    except BaseException as exc:   # pylint: disable=broad-except
        message = str(exc) if isinstance(exc, StartError) else '%s: %s' % (type(exc).__name__, exc)
        try:
            os.write(error_fd, message.encode('utf-8', 'replace')[:4000])
        finally:
            os._exit(127)


def _join_netns(path, owner=None):
    if owner is not None:       # a /proc/PID/ns/net: the process it was must still hold that PID
        from .procs import process_start_time
        pid, started = owner
        if not started or process_start_time(pid) != started:
            raise StartError('the container whose network this one joins (PID %d) is gone' % pid)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StartError('open the network namespace "%s": %s' % (path, (exc.strerror or str(exc)).lower()))
    try:
        _step('join the network namespace', path, libc.setns, fd, libc.CLONE_NEWNET)
    finally:
        os.close(fd)


def _step(what, path, func, *args):
    try:
        return func(*args)
    except OSError as exc:
        where = ' "%s"' % path if path else ''
        raise StartError('%s%s: %s' % (what, where, (exc.strerror or str(exc)).lower()))


def _mount(source, target, fstype, flags, data=None):
    _step('mount %s on' % fstype, target, libc.mount, source, target, fstype, flags, data)


def _mkdir_in(root, rel, mode=0o755):
    """A mount point inside the rootfs; refuses to follow a symlink the image put there."""
    path = os.path.join(root, rel)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.makedirs(path, mode)
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise StartError('the image has a non-directory at /%s, where %s must be mounted' % (rel, rel.split('/')[-1]))
    return path


def _mount_kernel_filesystems(root):
    """/proc, /dev (tmpfs with the standard nodes), /dev/pts, /dev/shm, /dev/mqueue, /sys (read-only)."""
    _mount('proc', _mkdir_in(root, 'proc'), 'proc', _NOSUID_NODEV_NOEXEC)
    dev = _mkdir_in(root, 'dev')
    _mount('tmpfs', dev, 'tmpfs', libc.MS_NOSUID, 'mode=755,size=65536k')
    for name, major, minor in _DEVICES:
        _step('create device', '/dev/' + name, os.mknod, os.path.join(dev, name), stat.S_IFCHR | 0o666,
              os.makedev(major, minor))
        os.chmod(os.path.join(dev, name), 0o666)
    for name, target in _DEV_LINKS:
        os.symlink(target, os.path.join(dev, name))
    os.mkdir(os.path.join(dev, 'pts'), 0o755)
    _mount('devpts', os.path.join(dev, 'pts'), 'devpts', libc.MS_NOSUID | libc.MS_NOEXEC,
           'newinstance,ptmxmode=0666,mode=0620,gid=5')
    os.mkdir(os.path.join(dev, 'shm'), 0o1777)
    _mount('shm', os.path.join(dev, 'shm'), 'tmpfs', _NOSUID_NODEV_NOEXEC, 'mode=1777,size=65536k')
    os.mkdir(os.path.join(dev, 'mqueue'), 0o755)
    _mount('mqueue', os.path.join(dev, 'mqueue'), 'mqueue', _NOSUID_NODEV_NOEXEC)
    _mount('sysfs', _mkdir_in(root, 'sys'), 'sysfs', _NOSUID_NODEV_NOEXEC | libc.MS_RDONLY)


def _mount_user_mounts(plan):
    """Binds and tmpfs of ``volumes``/``mounts``/``tmpfs``, after /proc and /dev (a bind may go inside them)."""
    try:
        mounts.apply(plan.mounts, plan.rootfs)
    except CtrError as exc:
        raise StartError(str(exc))


def _pivot_root(root):
    """pivot_root(".", ".") then detach the old root stacked beneath: nothing of the host stays reachable."""
    _step('enter the rootfs', root, os.chdir, root)
    _step('pivot_root to', root, libc.pivot_root, '.', '.')
    _step('detach the old root', '/', libc.umount, '.', libc.MNT_DETACH)
    os.chdir('/')


def _become(plan):
    """Bounding set, groups, gid, uid, capabilities, no_new_privs -- in runc's order (security.become)."""
    from . import security
    _step('set user %d:%d and capabilities' % (plan.uid, plan.gid), None, security.become, plan.uid, plan.gid,
          list(plan.groups), plan.caps, plan.no_new_privs)


def _reset_signals():
    """What the caller ignored or blocked (SIGCHLD, SIGHUP under nohup, SIGXFSZ...) must not reach the app."""
    for number in range(1, signal.NSIG):
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            libc.signal_default(number)       # glibc's own signals: past Python, to the kernel
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _close_inherited(keep):
    """No descriptor of the host reaches the application but stdio (and the close-on-exec error pipe).

    By ranges, never by listing ``/proc/self/fd``: that is the container's /proc, which a
    privileged container could have replaced with a fake one.
    """
    low = 0
    for fd in sorted(set(keep)) + [None]:
        if fd is None:
            try:
                libc.close_range(low)
            except OSError:         # before Linux 5.9: one close a descriptor, up to the limit
                os.closerange(low, max(os.sysconf('SC_OPEN_MAX'), low))   # (no import: after pivot_root)
            return
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1


__all__ = ['StartPlan', 'StartError', 'contain']

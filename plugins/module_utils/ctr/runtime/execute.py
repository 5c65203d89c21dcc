# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a command inside a running container: ``docker exec`` through ``setns()``.

The sequence, in a child of the caller (the *joiner*), reads top to bottom:

1. the joiner is put into the container's cgroup (from the host's side, before anything else);
2. it opens every namespace of the container's PID 1 (``/proc/PID/ns/...``) and its root,
   then joins them: user (when there is one), ipc, uts, net, cgroup, pid and mount last;
   joining the mount namespace makes the container's root ours;
3. it forks: ``setns(CLONE_NEWPID)`` moves only the children, so the process that runs
   the command is this grandchild, really inside the container's PID namespace;
4. the grandchild takes the container's identity (or the exec's ``user``), capabilities
   and ``no_new_privs`` (:func:`.security.become`), resets signals, closes every
   descriptor but stdio and the close-on-exec error pipe, enters the working directory and
   execs. The masked paths need nothing: they are mounts of the namespace just joined.

The joiner waits for the grandchild and exits with its status (or, detached, exits at
once: the orphaned command goes to the reaper of the joiner's PID namespace, the host's
init or a subreaper, as runc's detached exec goes to containerd's shim). The
caller feeds ``stdin`` and collects stdout and stderr through pipes.
"""

from __future__ import annotations

import os
import select
import signal

from .. import libc
from ..errors import Conflict, CtrError, InvalidArgument

# the order runc joins them in; mnt last, since joining it changes our root
_NAMESPACES = (('user', libc.CLONE_NEWUSER), ('ipc', libc.CLONE_NEWIPC), ('uts', libc.CLONE_NEWUTS),
               ('net', libc.CLONE_NEWNET), ('cgroup', libc.CLONE_NEWCGROUP), ('pid', libc.CLONE_NEWPID),
               ('mnt', libc.CLONE_NEWNS))


class ExecResult:
    """What an exec gave: exit code (128 + signal when killed), output, and the PID when detached."""

    __slots__ = ('rc', 'stdout', 'stderr', 'pid')

    def __init__(self, rc, stdout=b'', stderr=b'', pid=None):
        self.rc, self.stdout, self.stderr, self.pid = rc, stdout, stderr, pid


class ExecPlan:
    """Everything the joiner needs, computed by the caller before it forks."""

    __slots__ = ('pid', 'argv', 'env', 'cwd', 'uid', 'gid', 'groups', 'caps', 'no_new_privs', 'cgroup', 'pid_start',
                 'seccomp')

    def __init__(self, pid, argv, env, cwd, uid, gid, groups, caps, no_new_privs, cgroup, pid_start=None,
                 seccomp=None):
        self.pid, self.argv, self.env, self.cwd, self.pid_start = pid, argv, env, cwd, pid_start
        self.uid, self.gid, self.groups, self.caps, self.no_new_privs = uid, gid, groups, caps, no_new_privs
        self.cgroup, self.seccomp = cgroup, seccomp     # seccomp: the filter's program (bytes), None: none


def _namespace_fds(pid):
    """Descriptors of PID's namespaces that differ from ours (same ones are skipped, as nsenter does)."""
    fds = []
    try:
        for name, flag in _NAMESPACES:
            theirs = '/proc/%d/ns/%s' % (pid, name)
            try:
                if os.readlink(theirs) == os.readlink('/proc/self/ns/%s' % name):
                    continue
            except FileNotFoundError:
                continue            # a kernel without that namespace type
            fds.append((name, flag, os.open(theirs, os.O_RDONLY | os.O_CLOEXEC)))
    except OSError:
        for _name, _flag, fd in fds:
            os.close(fd)
        raise
    return fds


def open_pty(pid):
    """A pseudo-terminal in the container's own devpts: ``(master fd, slave fd)``.

    The master is opened through ``/proc/PID/root/dev/pts/ptmx`` (the instance mounted in the
    container, so ``tty`` inside names it) and the slave with ``TIOCGPTPEER``, never by path.
    """
    import fcntl
    import struct
    try:
        master = os.open('/proc/%d/root/dev/pts/ptmx' % pid, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise CtrError('exec: cannot open the container\'s /dev/pts/ptmx: %s' % (exc.strerror or exc))
    if os.fstat(master).st_rdev != os.makedev(5, 2):        # a ptmx, not what a container put in its place
        os.close(master)
        raise CtrError('exec: the container\'s /dev/pts/ptmx is not a pseudo-terminal multiplexer')
    try:
        fcntl.ioctl(master, 0x40045431, struct.pack('i', 0))                  # TIOCSPTLCK: unlock
        slave = fcntl.ioctl(master, 0x5441, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)   # TIOCGPTPEER
    except OSError as exc:
        os.close(master)
        raise CtrError('exec: cannot make a terminal: %s' % (exc.strerror or exc))
    return master, slave


def start_tty(plan, slave, ours=()):
    """Start ``plan`` on the terminal ``slave`` (its controlling tty); returns the joiner's PID for :func:`wait`.

    Raises CtrError when the command could not start.
    """
    joiner, _started, fail_r = _start(plan, (slave, slave, slave), detach=False, tty=True, ours=ours)
    fail = _read_all(fail_r)            # EOF at execve: then it runs
    if fail:
        _reap(joiner)
        raise CtrError(fail.decode('utf-8', 'replace'))
    return joiner


def wait(joiner):
    """The exit code of a command started by :func:`start_tty` (128 + signal when killed)."""
    return _reap(joiner)


def _start(plan, stdio, detach, tty=False, ours=()):
    """Fork the joiner, ``stdio`` (three descriptors) the command's; returns (joiner, its PID text, fail_r).

    ``fail_r`` reads the command's start error, or EOF once it has exec'd; the caller closes it.
    ``ours``: the caller's ends of the command's pipes, which the joiner must not hold open.
    """
    from .procs import process_start_time
    try:
        ns_fds = _namespace_fds(plan.pid)
    except OSError as exc:
        raise Conflict('the container\'s PID 1 (%d) is gone: %s' % (plan.pid, exc.strerror))
    joined = {name for name, _flag, _fd in ns_fds}
    if (plan.pid_start and process_start_time(plan.pid) != plan.pid_start) or not {'mnt', 'pid'} <= joined:
        for _name, _flag, fd in ns_fds:         # PID 1 exited and its PID went to another process
            os.close(fd)
        raise Conflict('the container\'s PID 1 (%d) is gone (its PID now names another process)' % plan.pid)
    fail_r, fail_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    joiner = os.fork()
    if joiner == 0:                                     # the joiner
        try:
            for fd in (fail_r, pid_r, go_w) + tuple(ours):
                os.close(fd)
            if os.read(go_r, 1) == b'g':                # placed in the container's cgroup: children inherit it
                _joiner(plan, ns_fds, stdio, fail_w, pid_w, detach, tty)
        finally:
            os._exit(127)
    for _name, _flag, fd in ns_fds:
        os.close(fd)
    for fd in (fail_w, pid_w, go_r):
        os.close(fd)
    try:
        if plan.cgroup is not None:
            plan.cgroup.add(joiner)
        os.write(go_w, b'g')
    except Exception as exc:    # pylint: disable=broad-except
        os.kill(joiner, signal.SIGKILL)
        _reap(joiner)
        os.close(fail_r)
        os.close(pid_r)
        raise CtrError('exec: cannot join the container\'s cgroup: %s' % exc)
    finally:
        os.close(go_w)
    started = _read_all(pid_r)
    return joiner, started, fail_r


def run(plan, stdin=None, detach=False):
    """Run ``plan`` in the container; returns an :class:`ExecResult`. Raises CtrError if it cannot start."""
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        joiner, started, fail_r = _start(plan, (in_r, out_w, err_w), detach, ours=(in_w, out_r, err_r))
    except BaseException:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        raise
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    if detach:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
        fail = _read_all(fail_r)
        _reap(joiner)
        if fail:
            raise CtrError(fail.decode('utf-8', 'replace'))
        return ExecResult(0, pid=int(started) if started.strip() else None)
    out, err, fail = _pump(in_w, stdin or b'', out_r, err_r, fail_r)
    status = _reap(joiner)
    if fail:
        raise CtrError(fail.decode('utf-8', 'replace'))
    return ExecResult(status, out, err)


def _read_all(fd):
    with os.fdopen(fd, 'rb') as f:
        return f.read()


def _reap(pid):
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status) if hasattr(os, 'waitstatus_to_exitcode') else (
        -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    return 128 - code if code < 0 else code


def _pump(in_w, data, out_r, err_r, fail_r):
    """Write ``data`` to the command's stdin while reading its stdout, stderr and the error pipe to EOF."""
    buffers = {out_r: [], err_r: [], fail_r: []}
    poller = select.poll()
    for fd in buffers:
        poller.register(fd, select.POLLIN)
    open_fds = set(buffers)
    offset = 0
    if data:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
    else:
        os.close(in_w)
        in_w = None
    while open_fds or in_w is not None:
        for fd, event in poller.poll():
            if fd == in_w:
                try:
                    offset += os.write(in_w, data[offset:offset + 65536])
                except BrokenPipeError:
                    offset = len(data)
                if offset >= len(data) or event & (select.POLLERR | select.POLLHUP):
                    poller.unregister(in_w)
                    os.close(in_w)
                    in_w = None
                continue
            chunk = os.read(fd, 65536)
            if chunk:
                buffers[fd].append(chunk)
            else:
                poller.unregister(fd)
                open_fds.discard(fd)
                os.close(fd)
    return b''.join(buffers[out_r]), b''.join(buffers[err_r]), b''.join(buffers[fail_r])


def _joiner(plan, ns_fds, stdio, fail_w, pid_w, detach, tty=False):
    """In the joiner (a child of the caller): join, fork the command, wait for it."""
    from . import start
    try:
        # not dumpable until execve: no process of the container may open our /proc/PID/exe, mem or fds
        # (the runc CVE-2019-5736 pattern), and no core of the caller's memory lands in the container
        libc.prctl(libc.PR_SET_DUMPABLE, 0)
        os.setsid()
        for name, flag, fd in ns_fds:
            try:
                libc.setns(fd, flag)
            except OSError as exc:
                raise start.StartError('join the container\'s %s namespace: %s' % (name, exc.strerror.lower()))
            os.close(fd)
        child = os.fork()
    except BaseException as exc:    # pylint: disable=broad-except
        _fail(fail_w, exc)
        os._exit(127)
    if child == 0:
        _command(plan, stdio, fail_w, pid_w, detach, tty)
    for fd in set(stdio):           # a terminal is all three
        os.close(fd)
    os.write(pid_w, str(child).encode() if detach else b'')
    os.close(pid_w)
    os.close(fail_w)
    if detach:
        os._exit(0)             # the command goes on, the host's init (or a subreaper) reaps it
    _pid, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))         # the shell's convention; never a core of ours
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 127)


def _command(plan, stdio, fail_w, pid_w, detach, tty=False):
    """In the grandchild, inside every namespace: identity, signals, descriptors, cwd, exec."""
    from . import security, start
    try:
        os.close(pid_w)
        if tty:
            import fcntl
            import termios
            os.setsid()                                 # a session of its own, with the terminal as its tty
            fcntl.ioctl(stdio[0], termios.TIOCSCTTY, 0)
        if detach:
            null = os.open('/dev/null', os.O_RDWR)
            for target in (0, 1, 2):
                os.dup2(null, target)
        else:
            for target, fd in zip((0, 1, 2), stdio):
                os.dup2(fd, target)
        if plan.seccomp:                    # the container's filter (none when privileged), as docker exec
            try:
                libc.seccomp_filter(plan.seccomp)
            except OSError as exc:
                raise start.StartError('install the seccomp filter: %s' % exc)
        try:
            security.become(plan.uid, plan.gid, plan.groups, plan.caps, plan.no_new_privs)
        except CtrError as exc:
            raise start.StartError('set user %d:%d and capabilities: %s' % (plan.uid, plan.gid, exc))
        start._reset_signals()              # pylint: disable=protected-access
        try:
            os.chdir(plan.cwd)
        except OSError as exc:
            raise start.StartError('working directory "%s": %s' % (plan.cwd, (exc.strerror or '').lower()))
        start._close_inherited(keep=(0, 1, 2, fail_w))    # pylint: disable=protected-access
        env = dict(e.split('=', 1) for e in plan.env if '=' in e)
        try:
            os.execvpe(plan.argv[0], plan.argv, env)
        except OSError as exc:
            raise start.StartError('cannot run "%s": %s' % (plan.argv[0], (exc.strerror or '').lower()))
    except BaseException as exc:   # pylint: disable=broad-except
        _fail(fail_w, exc)
    finally:
        os._exit(126)


def _fail(fd, exc):
    message = str(exc) or type(exc).__name__
    try:
        os.write(fd, message.encode('utf-8', 'replace')[:4000])
    except OSError:
        pass


def prepare(container, argv, env=None, user=None, workdir=None):
    """The :class:`ExecPlan` of ``argv`` in a running ``container`` (its record read back from the host).

    env = the container's (image Env + its env) + ``env``; ``user`` (name or uid[:gid], looked
    up in the container's own /etc/passwd and /etc/group) defaults to the container's;
    ``workdir`` to the container's working directory; the capabilities and no_new_privs are
    the container's.
    """
    from . import security, spec
    from .caps import effective_caps
    from .procs import process_start_time
    state = container.State
    if not state.Running or not state.Pid:
        raise Conflict('container %s is not running' % container.Name, container=container.Name)
    if state.PidStart and process_start_time(state.Pid) != state.PidStart:
        raise Conflict('container %s is not running (its PID 1 is gone)' % container.Name, container=container.Name)
    if not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
        raise InvalidArgument('exec needs a command: a non-empty list of strings', option='argv')
    cfg, host = container.Config, container.HostConfig
    spec_user = user if user not in (None, '') else (cfg.get('User') or '')
    who = security.resolve_user(spec_user, '/proc/%d/root' % state.Pid)
    cwd = spec.working_dir({'WorkingDir': cfg.get('WorkingDir') or '/'}, workdir)
    environment = spec.runtime_env(spec.merge_env(cfg.get('Env') or [], env or {}), cfg.get('Hostname'), who.home)
    caps = None if host.get('Privileged') else list(
        effective_caps(host.get('CapAdd') or (), host.get('CapDrop') or (), False))
    try:
        from . import cgroups
        cgroup = cgroups.Cgroup.open(container.Id)
        if cgroup is not None and not state.Paused and cgroup.is_frozen():
            cgroup.thaw()       # a commit killed while it had the container frozen: nothing else freezes it
    except (ImportError, CtrError, OSError):
        cgroup = None
    from . import seccomp
    return ExecPlan(state.Pid, list(argv), environment, cwd, who.uid, who.gid, list(who.additional_gids), caps,
                    bool(host.get('NoNewPrivileges')), cgroup, state.PidStart or None, seccomp.for_caps(caps))


__all__ = ['ExecPlan', 'ExecResult', 'open_pty', 'prepare', 'run', 'start_tty', 'wait']

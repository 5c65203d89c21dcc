# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-container monitor: our conmon. One small process per running container.

A :class:`Launcher` (made by the caller, the CLI or a module, as a start begins)
double-forks the monitor into its own session, so it outlives the caller and is
adopted by init. Before anything else the monitor-to-be drops every descriptor
it inherited but its pipes (Ansible reads the module's stdout and stderr until
EOF). A fork keeps its caller's whole heap for the container's lifetime, so:

* a light caller (the CLI) forks its monitor in :meth:`Launcher.start`, with the
  container's records in memory;
* a heavy caller (an Ansible module, see ``FRESH_ABOVE``) gets a fresh
  interpreter (``python -I -S``), launched as the start begins so that it boots
  while the caller prepares the rootfs and the network. It imports only the
  engine modules a monitor needs, from where the caller's engine is (the
  AnsiballZ zip, still there while the module waits), and :meth:`Launcher.start`
  sends it the container, the store, the start plan and the rootfs paths
  (pickled, over a pipe between our own processes).

Then, for each run of the container:

1. ``unshare(CLONE_NEWPID)`` and fork: the child is PID 1 of a new PID namespace
   and runs the start sequence (``start.contain``) up to execve;
2. places it in its cgroup, lets it go, and learns from the close-on-exec error
   pipe whether execve happened;
3. records the state atomically, tells the launcher the PID (or the error);
4. copies the container's stdout and stderr into a json-file log (Docker's
   format: one JSON object per line with ``log``, ``stream``, ``time``), capped
   and rotated;
5. reaps PID 1, records exit code, times and OOM kill, and applies the restart
   policy with back-off, unless a stop was asked for.

When the container is done for good the monitor unmounts the rootfs, removes
the cgroup and exits.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

from .. import libc
from ..timestamps import rfc3339
from .procs import process_start_time

LOG_MAX = 10 << 20              # bytes before the log rotates (one old file kept)
_LINE_MAX = 16 << 10            # a line longer than this is split, as Docker does
_STOP_MARKER = 'stop-requested'
_BACKOFF_START, _BACKOFF_MAX, _BACKOFF_RESET = 0.1, 10.0, 10.0


def stop_marker(container_dir):
    return os.path.join(container_dir, _STOP_MARKER)


# The fresh interpreter's program; argv: root, package, cache, args_fd, report_fd, then the caller's
# sys.path. ``root`` is the sys.path entry the engine package ``package`` is imported from under the
# caller's own name (so the pickled records find their classes); the rest of the caller's path
# follows it (-S skips site, which would add site-packages again, slowly). ``cache`` names the
# bytecode cache module to install first (an engine in a zip), or is empty. Its stdio is /dev/null:
# an engine that does not load is reported on report_fd as a failed boot (to nobody, if the caller
# went away), and the caller forks a monitor instead.
_BOOT = """import importlib, json, os, sys
try:
    sys.path[:] = sys.argv[1:2] + sys.argv[6:]
    if sys.argv[3]:
        importlib.import_module(sys.argv[3]).install()
    monitor = importlib.import_module(sys.argv[2] + '.runtime.monitor')
except BaseException as exc:
    try:
        os.write(int(sys.argv[5]), json.dumps({'boot': 'the monitor cannot load the engine from %s: %s'
                                                       % (sys.argv[1], exc)}).encode())
    except BaseException:
        pass
    raise SystemExit(1)
monitor._booted(int(sys.argv[4]), int(sys.argv[5]))
"""


class Launcher:
    """A monitor on its way up, then the container it started.

    Made as a start begins. For a caller that gets a fresh interpreter as its monitor (see
    ``FRESH_ABOVE``) that interpreter is launched at once, to boot while the caller prepares the
    rootfs and the network; a forked monitor is forked by :meth:`start`, from a caller that by then
    holds the container's records. :meth:`start` once, or :meth:`close` (or dropping it) to send a
    booting monitor away: it exits at the end of its input. A monitor holds none of the caller's
    descriptors but its pipes (it drops the rest before the exec or, forked, before anything else),
    so a caller that exits (a module whose output Ansible reads to its end) is not held up by it.
    """

    _args_w = _report_r = None
    _started = False

    def __init__(self):
        self._fresh = _fresh_monitor()
        if self._fresh:
            self._launch(None)

    def start(self, container, store, plan, rootfs_paths, cgroup_parent='ctr'):
        """Hand the monitor its container; the container's PID once it has exec'd.

        A fresh interpreter that failed to boot (it could not load the engine, say) is replaced by a
        forked monitor: nothing of the container was touched yet. Raises CtrError with the start
        sequence's own message when the container could not start.
        """
        from ..errors import CtrError
        if self._started:
            raise CtrError('a monitor launcher starts one container once')
        self._started = True
        payload = (container, store, plan, rootfs_paths, cgroup_parent)
        result = None
        if self._fresh:
            import pickle
            data = pickle.dumps(payload, protocol=4)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._args_w, view):]
            except BrokenPipeError:
                pass                            # it died booting: its report says why
            finally:
                self._close_args()
            result = self._result()
            if 'boot' in result:
                result = None
        if result is None:
            self._launch(payload)
            result = self._result()
        if 'error' in result:
            raise CtrError('container %s failed to start: %s' % (container.Name, result['error']),
                           container=container.Name)
        return result['pid']

    def _result(self):
        """What the monitor reported on the report pipe (which this closes)."""
        with os.fdopen(self._report_r, 'rb') as report:
            self._report_r = None
            data = report.read()
        try:
            return json.loads(data.decode('utf-8')) if data else {'error': 'the monitor died before it reported'}
        except ValueError:
            return {'error': 'the monitor reported garbage: %r' % data[:200]}

    def close(self):
        """Send an unused monitor away; nothing once :meth:`start` ran."""
        self._close_args()
        if self._report_r is not None:
            os.close(self._report_r)
            self._report_r = None

    __del__ = close

    def _close_args(self):
        if self._args_w is not None:
            os.close(self._args_w)
            self._args_w = None

    def _launch(self, payload):
        """Double-fork the monitor into a session of its own (adopted by init once the intermediate
        exits): with ``payload``, the forked monitor of that container; without, the fresh
        interpreter, which reads its payload from the args pipe."""
        self._report_r, report_w = os.pipe()
        args_r = None
        try:
            if payload is None:
                args_r, self._args_w = os.pipe()
            child = os.fork()
            if child == 0:
                try:
                    os.close(self._report_r)
                    if self._args_w is not None:
                        os.close(self._args_w)
                    os.setsid()
                    if os.fork() == 0:
                        _grandchild(payload, args_r, report_w)
                finally:
                    os._exit(0)
            os.waitpid(child, 0)
        except BaseException:
            self.close()
            raise
        finally:
            os.close(report_w)
            if args_r is not None:
                os.close(args_r)


def _grandchild(payload, args_r, report_w):
    """The monitor-to-be: off the caller's stdio (its pipes moved above 0-2 first), then the container's
    monitor (``payload``) or the fresh interpreter (failing that, this fork reads the args pipe)."""
    import fcntl
    report_w = fcntl.fcntl(report_w, fcntl.F_DUPFD_CLOEXEC, 3) if report_w < 3 else report_w
    if args_r is not None and args_r < 3:
        args_r = fcntl.fcntl(args_r, fcntl.F_DUPFD_CLOEXEC, 3)
    _detach_from_caller(keep=(args_r, report_w))
    if payload is not None:
        _monitor(*payload, report_w)
    command = _boot_command(args_r, report_w)
    os.set_inheritable(args_r, True)
    os.set_inheritable(report_w, True)
    try:
        os.execv(command[0], command)
    except OSError:
        pass                                    # the interpreter is gone: this fork is the monitor
    _booted(args_r, report_w)


# A caller heavier than this (its own anonymous memory) gets a fresh interpreter as the monitor of
# its container. A forked monitor keeps what its caller weighed for the container's lifetime; a
# fresh one weighs 6 to 9 MB (PSS; the more when it imports from an AnsiballZ zip) and costs about
# 30 ms of CPU to boot, beside the caller's work. An Ansible module (13 MB and more once it has
# imported Ansible's module_utils) is above; the CLI (5.5 to 8 MB when it launches, the more when
# it compiled its modules) is below, and its forked monitors weigh about 8.4 MB. Kernels without
# RssAnon (before 4.5) read 0: a fork.
FRESH_ABOVE = 10 << 20


def _caller_weight():
    """This process's anonymous resident memory in bytes (RssAnon), 0 when unknown."""
    try:
        with open('/proc/self/status', 'rb') as handle:
            for line in handle:
                if line.startswith(b'RssAnon:'):
                    return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _fresh_monitor():
    """Whether this caller's monitor is a fresh interpreter: it weighs more than FRESH_ABOVE and has
    an interpreter to exec."""
    return (bool(sys.executable) and os.path.isabs(sys.executable) and not getattr(sys, 'frozen', False)
            and _caller_weight() > FRESH_ABOVE)


def _boot_command(args_fd, report_fd):
    """The argv that execs the monitor's fresh interpreter, reading its payload from ``args_fd``."""
    package = __name__.rsplit('.', 2)[0]                # the engine package: this is <package>.runtime.monitor
    root = __file__
    for dummy in range(package.count('.') + 3):         # monitor.py, runtime, the package's own parts
        root = os.path.dirname(root)
    cache = package.rpartition('.')[0] + '.bytecode_cache' if '.' in package else ''
    if cache not in sys.modules:
        cache = ''
    path = [entry for entry in sys.path if entry and entry != root]
    return [sys.executable, '-I', '-S', '-c', _BOOT, root, package, cache, str(args_fd), str(report_fd)] + path


def _booted(args_fd, report_fd):
    """The fresh monitor: its container from the launcher, or nothing (sent away)."""
    import importlib
    import pickle
    os.set_inheritable(report_fd, False)        # the container's init closes it anyway; nothing else may have it
    try:
        for name in _BOOT_IMPORTS:
            importlib.import_module('%s.runtime.%s' % (__name__.rsplit('.', 2)[0], name))
        with os.fdopen(args_fd, 'rb') as args:
            data = args.read()
        if not data:
            os._exit(0)
        container, store, plan, rootfs_paths, cgroup_parent = pickle.loads(data)
    except Exception as exc:    # pylint: disable=broad-except
        failure = {'boot': 'the monitor could not take over: %s' % exc}
        _safe(lambda: _report(report_fd, failure))
        os._exit(1)
    _monitor(container, store, plan, rootfs_paths, cgroup_parent, report_fd)


# The modules of a container's run, imported while the caller is still busy rather than after the
# hand-over. (What the monitor runs after its report, when the caller's engine files may be gone --
# Ansible deletes the module's payload -- is imported by then anyway: by these modules' own imports,
# by ``_monitor`` and by the unpickling; tests/integration/test_monitor.py deletes them to be sure.)
_BOOT_IMPORTS = ('start', 'security', 'rootfs', 'cgroups', 'containers')


class _Log:
    """Docker's json-file log: ``{"log": "...\\n", "stream": "stdout", "time": "..."}`` per line."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, 'ab', buffering=0)
        self._partial = {'stdout': b'', 'stderr': b''}

    def feed(self, stream, data):
        buf = self._partial[stream] + data
        while True:
            cut = buf.find(b'\n')
            if cut < 0 and len(buf) < _LINE_MAX:
                break
            end = cut + 1 if cut >= 0 else _LINE_MAX
            self._write(stream, buf[:end])
            buf = buf[end:]
        self._partial[stream] = buf

    def flush(self):
        for stream, buf in self._partial.items():
            if buf:
                self._write(stream, buf)
            self._partial[stream] = b''

    def _write(self, stream, chunk):
        ts = time.time()
        record = {'log': chunk.decode('utf-8', 'replace'), 'stream': stream,
                  'time': time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ts)) + '.%09dZ' % int((ts % 1) * 1e9)}
        self._f.write(json.dumps(record).encode('utf-8') + b'\n')
        if self._f.tell() > LOG_MAX:
            self._f.close()
            os.replace(self.path, self.path + '.1')
            self._f = open(self.path, 'ab', buffering=0)

    def close(self):
        self.flush()
        self._f.close()


def _detach_from_caller(keep):
    """Stdio to /dev/null, every other inherited descriptor closed: Ansible must see EOF on its pipes."""
    devnull = os.open('/dev/null', os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != devnull:
            os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    else:
        os.set_inheritable(devnull, True)       # it is stdio now: an exec keeps it
    for name in os.listdir('/proc/self/fd'):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _monitor(container, store, plan, rootfs_paths, cgroup_parent, report_w):
    from . import rootfs
    from .start import contain
    endpoints = None
    if plan.network_owned:                          # in memory now: the module's files may go
        from ..network import endpoints

    try:                                                # the launcher detached it from the caller already
        os.chdir('/')                                   # not the module's temp dir, which Ansible deletes
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)   # waitpid needs it, whatever the caller set
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        libc.prctl(libc.PR_SET_NAME, _name_arg(b'ctr-monitor'))
        directory = store.dir(container.Id)
        state = container.State
        state.MonitorPid = os.getpid()
        state.MonitorStart = process_start_time(os.getpid())
        log = _Log(os.path.join(directory, container.Id + '-json.log'))
    except Exception as exc:    # pylint: disable=broad-except
        failure = {'error': 'the monitor could not set up: %s' % exc}       # nothing recorded or made yet
        _safe(lambda: _report(report_w, failure))
        os._exit(1)
    cgroup = None
    policy, retries = _policy(container.HostConfig)
    backoff = _BACKOFF_START
    pending = None
    try:
        while True:
            if cgroup is None:
                cgroup = _cgroup(container, cgroup_parent)
            oom_before = (_safe(cgroup.oom_kills) or 0) if cgroup is not None else 0   # a counter: per run
            pid, error = _run_once(plan, cgroup, log, contain)
            if error is not None:
                _record_failure(container, store, error)
                pending = {'error': error}      # reported last, once nothing of ours is left to clean
                break
            started = time.time()
            state.Status, state.Running, state.Restarting, state.Pid = 'running', True, False, pid
            state.PidStart = process_start_time(pid) or 0
            state.StartedAt, state.ExitCode, state.Error, state.OOMKilled = rfc3339(started), 0, '', False
            store.save_state(container)
            if report_w is not None:        # a caller gone meanwhile (a killed task) leaves it running
                _safe(lambda: _report(report_w, {'pid': pid}))
                report_w = None
            status = _pump(pid, log)
            code = os.waitstatus_to_exitcode(status) if hasattr(os, 'waitstatus_to_exitcode') else _exitcode(status)
            state.ExitCode = 128 - code if code < 0 else code
            state.OOMKilled = bool(cgroup is not None and (_safe(cgroup.oom_kills) or 0) > oom_before)
            state.FinishedAt = rfc3339(time.time())
            state.Running, state.Pid = False, 0
            stopped = os.path.exists(stop_marker(directory))
            if time.time() - started > _BACKOFF_RESET:
                backoff = _BACKOFF_START
            if stopped or not _should_restart(policy, retries, state):
                state.Status = 'exited'
                store.save_state(container)
                break
            state.Status, state.Restarting = 'restarting', True
            state.RestartCount += 1
            store.save_state(container)
            time.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
            if os.path.exists(stop_marker(directory)):
                state.Status, state.Restarting = 'exited', False
                store.save_state(container)
                break
    except BaseException as exc:    # pylint: disable=broad-except
        _record_failure(container, store, 'the monitor failed: %s' % exc)
        pending = {'error': 'the monitor failed: %s' % exc}
    finally:
        log.close()
        if cgroup is not None:
            _safe(cgroup.destroy)
        _safe(lambda: rootfs.unmount(rootfs_paths))
        if endpoints is not None:
            _safe(_own_pid_namespace_for_children)      # nft runs as our child: not in PID 1's dead namespace
            _safe(lambda: endpoints.detach(store.root, container.Id, directory))
        state.MonitorPid = 0
        _safe(lambda: store.save_state(container))
        if report_w is not None:
            _safe(lambda: _report(report_w, pending or {'error': 'the container exited before it was reported'}))
    os._exit(0)


def _name_arg(name):
    import ctypes
    buf = ctypes.create_string_buffer(name)
    _name_arg.keep = buf                 # the kernel copies it, but keep it alive across the call
    return ctypes.addressof(buf)


def _cgroup(container, parent):
    """The container's cgroup with its limits; None when this host offers no cgroup we can use."""
    try:
        from . import cgroups
    except ImportError:
        return None
    limits = cgroups.Limits(memory=container.HostConfig.get('Memory') or None,
                            cpus=(container.HostConfig.get('NanoCpus') or 0) / 1e9 or None,
                            pids=container.HostConfig.get('PidsLimit') or None)
    return cgroups.Cgroup.create(container.Id, limits, parent=parent,
                                 allow_all_devices=bool(container.HostConfig.get('Privileged')))


def _run_once(plan, cgroup, log, contain):
    """Fork PID 1 of a new PID namespace and see it through execve: ``(pid, None)`` or ``(None, error)``."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    go_r, go_w = os.pipe()
    fail_r, fail_w = os.pipe2(os.O_CLOEXEC)
    _new_pid_namespace_for_children()
    pid = os.fork()
    if pid == 0:
        try:
            for fd in (out_r, err_r, go_w, fail_r):
                os.close(fd)
            null = os.open('/dev/null', os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            contain(plan, go_r, fail_w)
        finally:
            os._exit(127)
    for fd in (out_w, err_w, go_r, fail_w):
        os.close(fd)
    try:
        if cgroup is not None:
            cgroup.add(pid)
        os.write(go_w, b'g')
    except Exception as exc:    # pylint: disable=broad-except
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for fd in (out_r, err_r, fail_r):
            os.close(fd)
        return None, 'cannot place the container in its cgroup: %s' % exc
    finally:
        os.close(go_w)
    with os.fdopen(fail_r, 'rb') as fail:
        message = fail.read()
    if message:
        os.waitpid(pid, 0)
        os.close(out_r)
        os.close(err_r)
        return None, message.decode('utf-8', 'replace')
    log.fds = (out_r, err_r)
    return pid, None


def _own_pid_namespace_for_children():
    """Children in our own PID namespace again (a fork into the dead container's one fails: ENOMEM)."""
    if os.readlink('/proc/self/ns/pid_for_children') != os.readlink('/proc/self/ns/pid'):
        fd = os.open('/proc/self/ns/pid', os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc.setns(fd, libc.CLONE_NEWPID)
        finally:
            os.close(fd)


def _new_pid_namespace_for_children():
    """The next fork is PID 1 of a new PID namespace -- also on a restart.

    unshare(CLONE_NEWPID) works only while the children's PID namespace is still our
    own, so after a first run we go back to ours (setns) before making another.
    """
    _own_pid_namespace_for_children()
    libc.unshare(libc.CLONE_NEWPID)


def _pump(pid, log):
    """Copy stdout/stderr to the log until PID 1 exits; returns its wait status.

    A pidfd in the poll set wakes us the moment PID 1 exits (no polling interval
    between the exit and its record); kernels without pidfd fall back to 20 ms polls.
    """
    out_r, err_r = log.fds
    poller = select.poll()
    streams = {out_r: 'stdout', err_r: 'stderr'}
    for fd in streams:
        poller.register(fd, select.POLLIN)
    try:
        pidfd = os.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = None
    open_fds = set(streams)
    status, deadline = None, None
    while status is None or open_fds:
        timeout = (None if pidfd is not None else 20) if status is None else 50
        for fd, _event in poller.poll(timeout):
            if fd == pidfd:
                continue
            data = os.read(fd, 65536)
            if data:
                log.feed(streams[fd], data)
            else:
                poller.unregister(fd)
                open_fds.discard(fd)
                os.close(fd)
        if status is None:
            done, wstatus = os.waitpid(pid, os.WNOHANG)
            if done:
                status = wstatus
                deadline = time.time() + 1.0     # what is still in the pipes, unless a grandchild holds them
                if pidfd is not None:
                    poller.unregister(pidfd)
                    os.close(pidfd)
                    pidfd = None
        elif time.time() > deadline:
            break
    for fd in open_fds:
        os.close(fd)
    log.flush()
    return status


def _exitcode(status):
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _policy(host_config):
    rp = host_config.get('RestartPolicy') or {}
    return rp.get('Name') or 'no', int(rp.get('MaximumRetryCount') or 0)


def _should_restart(policy, retries, state):
    if policy in ('always', 'unless-stopped'):
        return True
    if policy == 'on-failure':
        return state.ExitCode != 0 and (retries == 0 or state.RestartCount < retries)
    return False


def _record_failure(container, store, error):
    state = container.State
    state.Status, state.Running, state.Restarting, state.Pid = 'exited', False, False, 0
    state.ExitCode, state.Error, state.FinishedAt = 127, error, rfc3339(time.time())
    _safe(lambda: store.save_state(container))


def _report(fd, obj):
    try:
        os.write(fd, json.dumps(obj).encode('utf-8'))
    finally:
        os.close(fd)


def _safe(func):
    try:
        return func()
    except Exception:       # pylint: disable=broad-except
        return None

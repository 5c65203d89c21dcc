# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The monitor as its own interpreter: booted ahead, handed its container, independent of the caller's files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

import helpers
import pytest

import ctr
from ctr.errors import CtrError
from ctr.runtime import monitor

ENGINE = os.path.dirname(ctr.__file__)


@pytest.fixture
def runtime(store_root, busybox_rootfs):
    with helpers.busybox_runtime(store_root, busybox_rootfs) as rt:
        yield rt


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def _cmdline(pid):
    with open('/proc/%d/cmdline' % pid, 'rb') as handle:
        return [part.decode() for part in handle.read().split(b'\0')[:-1]]


def _processes_mentioning(text):
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if any(text in part for part in _cmdline(int(name))):
                    found.append(int(name))
            except OSError:
                pass
    return found


def _engine_copy(tmp_path):
    """The engine in a directory of the test's own, which the test can delete under a running container."""
    root = tmp_path / 'engine-copy'
    shutil.copytree(ENGINE, str(root / 'ctr'), ignore=shutil.ignore_patterns('__pycache__'))
    return root


def test_the_monitor_of_a_heavy_caller_is_a_fresh_interpreter_not_a_fork(runtime, monkeypatch):
    monkeypatch.setattr(monitor, 'FRESH_ABOVE', 0)
    c = runtime.create('busybox', command=['sleep', '30'], network_mode='none')
    runtime.start(c.Id)
    state = runtime.get(c.Id).State
    argv = _cmdline(state.MonitorPid)
    assert argv[:4] == [sys.executable, '-I', '-S', '-c']
    assert argv[5:7] == [os.path.dirname(ENGINE), 'ctr']
    with open('/proc/%d/comm' % state.MonitorPid) as handle:
        assert handle.read().strip() == 'ctr-monitor'
    assert os.getppid() != state.MonitorPid and open('/proc/%d/stat' % state.Pid).read().split()[3] == \
        str(state.MonitorPid)                     # still the parent of the container's PID 1


def test_the_monitor_of_a_light_caller_is_a_fork(runtime, monkeypatch):
    monkeypatch.setattr(monitor, 'FRESH_ABOVE', 1 << 40)
    c = runtime.create('busybox', command=['sleep', '30'], network_mode='none')
    runtime.start(c.Id)
    state = runtime.get(c.Id).State
    assert _cmdline(state.MonitorPid) == _cmdline(os.getpid())
    with open('/proc/%d/comm' % state.MonitorPid) as handle:
        assert handle.read().strip() == 'ctr-monitor'


@pytest.mark.parametrize('network_mode', ['none', 'bridge'])
@pytest.mark.parametrize('ballast', [0, 32], ids=['light-caller', 'heavy-caller'])
def test_restarts_and_cleanup_work_after_the_callers_files_are_gone(store_root, tmp_path, runtime, network_mode,
                                                                    ballast):
    """As after an Ansible task, whose payload is deleted: the monitor (forked, or a fresh interpreter for a
    caller that weighs ``ballast`` MiB more) restarts the container (on-failure:2), records its exits and, at
    the end, unmounts, removes the cgroup and the network endpoint, from memory."""
    copy = _engine_copy(tmp_path)
    script = textwrap.dedent('''
        import sys
        ballast = b'x' * (%d << 20)
        sys.path.insert(0, %r)
        from ctr.runtime.lifecycle import Runtime
        rt = Runtime(%r)
        c = rt.create('busybox', command=['sh', '-c', 'sleep 0.5; exit 3'], network_mode=%r,
                      restart_policy='on-failure', restart_retries=2)
        rt.start(c.Id)
        print(c.Id)
    ''' % (ballast, str(copy), str(store_root), network_mode))
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    cid = done.stdout.split()[-1]
    argv = _cmdline(runtime.get(cid).State.MonitorPid)
    assert (argv[1:3] == ['-I', '-S'] and str(copy) in argv) is bool(ballast), argv
    shutil.rmtree(str(copy))

    def at_rest():
        state = runtime.get(cid).State
        return state if state.Status == 'exited' and not state.MonitorPid else None

    final = _wait_for(at_rest, timeout=30)
    assert final, 'the container did not come to rest: %r' % runtime.get(cid).State
    assert (final.ExitCode, final.RestartCount, final.Error) == (3, 2, '')
    assert not [line for line in open('/proc/self/mountinfo') if str(store_root) in line]
    assert not [p for p in ('/sys/fs/cgroup/memory/ctr/' + cid, '/sys/fs/cgroup/unified/ctr/' + cid,
                            '/sys/fs/cgroup/ctr/' + cid) if os.path.exists(p)]
    out = subprocess.run(['ip', '-o', 'link', 'show'], capture_output=True, text=True, check=True).stdout
    assert ('veth' + cid[:8]) not in out and cid[:8] not in out
    assert ''.join(text for _s, text in runtime.logs(cid)) == ''


def test_an_unused_launcher_goes_away(store_root, tmp_path):
    copy = _engine_copy(tmp_path)
    script = ('import sys\nballast = b"x" * (32 << 20)\nsys.path.insert(0, %r)\n'
              'from ctr.runtime.lifecycle import Runtime\nRuntime(%r).prelaunch()\n' % (str(copy), str(store_root)))
    subprocess.run([sys.executable, '-c', script], check=True, timeout=60)
    assert _wait_for(lambda: not _processes_mentioning(str(copy)), timeout=10), 'a booted monitor stayed behind'


@pytest.mark.parametrize('breakage', ['engine', 'takeover'])
def test_a_fresh_monitor_that_fails_to_boot_gives_way_to_a_fork(runtime, store_root, monkeypatch, breakage):
    """The fresh interpreter cannot load the engine (a bad root), or loads it but cannot take over (a module
    it must import is missing): nothing of the container was touched, so a forked monitor starts it."""
    monkeypatch.setattr(monitor, 'FRESH_ABOVE', 0)
    real = monitor._boot_command

    def broken(args_fd, report_fd):
        command = real(args_fd, report_fd)
        if breakage == 'engine':
            command[5] = '/nonexistent/engine'  # root: the package is not there
            command[11:] = []                   # nor anywhere on the caller's path
        else:
            command[4] = command[4].replace("monitor._booted(", "monitor._BOOT_IMPORTS += ('gone',); monitor._booted(")
        return command
    monkeypatch.setattr(monitor, '_boot_command', broken)
    c = runtime.create('busybox', command=['sh', '-c', 'echo started; sleep 30'], network_mode='none')
    runtime.start(c.Id)
    state = runtime.get(c.Id).State
    assert state.Running and _cmdline(state.MonitorPid) == _cmdline(os.getpid())     # the fork
    assert _wait_for(lambda: ''.join(text for _s, text in runtime.logs(c.Id)) == 'started\n')


def test_a_launcher_starts_one_container_once(runtime):
    """A second start on a used launcher would make a second monitor for the same rootfs: refused."""
    used = monitor.Launcher()
    used._started = True                              # pylint: disable=protected-access
    with pytest.raises(CtrError, match='starts one container once'):
        used.start(None, None, None, None)
    used.close()


def test_the_pickled_start_reaches_the_monitor_whole(runtime):
    """Everything the start plan carries (env, user, workdir, mounts, limits) arrives in the booted monitor."""
    c = runtime.create('busybox', command=['sh', '-c', 'echo $GREETING; id -u; pwd; cat /proc/self/status'],
                       env={'GREETING': 'hi there'}, user='65534', working_dir='/tmp', network_mode='none',
                       tmpfs=['/scratch'], pids_limit=64)
    runtime.start(c.Id)
    assert runtime.wait(c.Id, timeout=30) == 0
    out = ''.join(text for _s, text in runtime.logs(c.Id)).splitlines()
    assert out[:3] == ['hi there', '65534', '/tmp']
    assert json.loads(json.dumps(runtime.inspect(runtime.get(c.Id))['HostConfig']['PidsLimit'])) == 64


def test_without_an_interpreter_to_exec_the_monitor_is_a_fork(runtime, monkeypatch):
    """An embedded Python has no sys.executable: the forked monitor then runs the container, as before."""
    monkeypatch.setattr(sys, 'executable', '')
    c = runtime.create('busybox', command=['sh', '-c', 'echo forked'], network_mode='none')
    runtime.start(c.Id)
    assert runtime.wait(c.Id, timeout=30) == 0
    assert ''.join(text for _s, text in runtime.logs(c.Id)) == 'forked\n'


@pytest.mark.parametrize('ballast', [0, 32], ids=['light-caller', 'heavy-caller'])
def test_a_caller_with_stdio_closed_still_hears_from_its_monitor(store_root, tmp_path, runtime, ballast):
    """Pipes made by a process whose fds 0-2 are closed get those numbers; the monitor moves them above
    stdio before taking /dev/null as its own, and the caller reads its report as usual."""
    script = textwrap.dedent('''
        import os, sys
        ballast = b'x' * (%d << 20)
        sys.path.insert(0, %r)
        for fd in (0, 1, 2):
            os.close(fd)
        from ctr.runtime.lifecycle import Runtime
        rt = Runtime(%r)
        c = rt.create('busybox', command=['sleep', '30'], network_mode='none', name='quiet')
        rt.start(c.Id)
        open(%r, 'w').write(str(rt.get(c.Id).State.Pid))
    ''' % (ballast, os.path.dirname(ENGINE), str(store_root), str(tmp_path / 'pid')))
    subprocess.run([sys.executable, '-c', script], timeout=60, check=True)
    state = runtime.get('quiet').State
    assert state.Running and (tmp_path / 'pid').read_text() == str(state.Pid)


def test_the_module_output_pipe_closes_when_the_caller_exits_while_the_monitor_boots(store_root):
    """A caller that prelaunches and exits at once: whoever reads its stdout and stderr to the end (Ansible)
    sees the end right away, not when the booting monitor is done."""
    script = 'import sys\nballast = b"x" * (32 << 20)\nsys.path.insert(0, %r)\nfrom ctr.runtime.lifecycle import Runtime\n' \
             'Runtime(%r).prelaunch()\nprint("bye")\n' % (os.path.dirname(ENGINE), str(store_root))
    proc = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)         # returns at EOF on both pipes
    assert (proc.returncode, out, err) == (0, b'bye\n', b'')


def test_a_caller_gone_before_the_report_leaves_the_container_running(store_root, runtime):
    """A task killed while its container starts: the monitor's report meets a closed pipe, and the
    container it has just started keeps running (it is not torn down for want of a reader)."""
    script = textwrap.dedent('''
        import os, sys
        sys.path.insert(0, %r)
        from ctr.runtime import monitor
        from ctr.runtime.lifecycle import Runtime

        def gone(launcher):
            os.close(launcher._report_r)
            os._exit(0)
        monitor.Launcher._result = gone
        rt = Runtime(%r)
        c = rt.create('busybox', command=['sleep', '30'], network_mode='none', name='orphan')
        rt.start(c.Id)
    ''' % (os.path.dirname(ENGINE), str(store_root)))
    subprocess.run([sys.executable, '-c', script], timeout=60, check=True)
    assert _wait_for(lambda: runtime.get('orphan').State.Running, timeout=20), runtime.get('orphan').State
    time.sleep(0.5)
    state = runtime.get('orphan').State
    assert state.Running and os.path.exists('/proc/%d' % state.Pid)


@pytest.mark.parametrize('fresh_above', [0, 1 << 40], ids=['fresh', 'fork'])
def test_a_monitor_that_cannot_set_up_says_why(runtime, store_root, monkeypatch, fresh_above):
    """Its log cannot be opened (a directory is in the way): the start fails with that reason, in one
    sentence, and leaves nothing mounted; once the way is clear, it starts."""
    monkeypatch.setattr(monitor, 'FRESH_ABOVE', fresh_above)
    c = runtime.create('busybox', command=['true'], network_mode='none')
    blocker = os.path.join(runtime.containers.dir(c.Id), c.Id + '-json.log')
    os.mkdir(blocker)
    with pytest.raises(CtrError) as info:
        runtime.start(c.Id)
    assert str(info.value).startswith('container %s failed to start: the monitor could not set up: ' % c.Name)
    assert 'Is a directory' in str(info.value) and '\n' not in str(info.value)
    assert not runtime.get(c.Id).State.Running
    assert not [line for line in open('/proc/self/mountinfo') if str(store_root) in line]
    os.rmdir(blocker)
    runtime.start(c.Id)
    assert runtime.wait(c.Id, timeout=30) == 0

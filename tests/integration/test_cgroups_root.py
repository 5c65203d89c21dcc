# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cgroups on the real kernel, as root, with real processes.

Each test runs under a parent of its own (``ctr-test-<random>``) in every hierarchy, which its
fixture removes even when the test fails: processes killed (thawed first), directories removed.

Tests run once per *view* of this host's cgroups: the host's own mountinfo, and, on a hybrid
host, its v1 lines alone (the legacy layout, on real v1 hierarchies) and its cgroup2 line alone
(the unified layout's core files: cgroup.procs, cgroup.kill, cgroup.freeze, cgroup.events, on
the real v2 tree, whatever controllers it holds). A view is only used for the behaviour its
controllers can show.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from ctr.errors import CtrError
from ctr.runtime import cgrouplayout, cgroups, devices
from ctr.runtime.cgroups import Cgroup, Limits

MiB = 1 << 20
HOST_MOUNTINFO = open('/proc/self/mountinfo', encoding='utf-8').read()
HOST_LAYOUT = cgrouplayout.parse_mountinfo(HOST_MOUNTINFO)


def _only(predicate):
    return ''.join(line + '\n' for line in HOST_MOUNTINFO.splitlines() if predicate(line))


def _is_v1(line):
    return ' - cgroup ' in line


def _views():
    views = {HOST_LAYOUT.kind + '-host': None}
    if HOST_LAYOUT.kind == 'hybrid':
        views['legacy-v1-lines'] = _only(_is_v1)
        views['unified-v2-line'] = _only(lambda line: ' - cgroup2 ' in line)
    if HOST_LAYOUT.v1_mount('pids'):
        views['legacy-without-pids'] = _only(lambda line: _is_v1(line) and not line.endswith(',pids'))
    return views


VIEWS = _views()


def views_with(*needed):
    """The views whose served controllers include every one of ``needed``."""
    return [pytest.param(text, id=name) for name, text in VIEWS.items()
            if set(needed) <= set(cgrouplayout.controllers(text))]


def views_without(controller):
    return [pytest.param(text, id=name) for name, text in VIEWS.items()
            if controller not in cgrouplayout.controllers(text)]


ALL_VIEWS = [pytest.param(text, id=name) for name, text in VIEWS.items()]


# -- fixtures --------------------------------------------------------------------------------------

def _remove_tree(top):
    """Kill whatever is in a cgroup subtree, then remove it deepest first (engine-independent cleanup)."""
    if not os.path.isdir(top):
        return
    for dirpath, dummy, dummy2 in sorted(os.walk(top), key=lambda e: -e[0].count('/')):
        for name, value in (('freezer.state', 'THAWED'), ('cgroup.freeze', '0'), ('cgroup.kill', '1')):
            path = os.path.join(dirpath, name)
            if os.path.exists(path):
                with open(path, 'w', encoding='ascii') as handle:
                    handle.write(value)
        with open(os.path.join(dirpath, 'cgroup.procs'), encoding='ascii') as handle:
            for pid in handle.read().split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for dummy3 in range(200):
            try:
                os.rmdir(dirpath)
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                time.sleep(0.01)


def _all_points():
    return [m.point for m in HOST_LAYOUT.v1] + ([HOST_LAYOUT.v2.point] if HOST_LAYOUT.v2 else [])


@pytest.fixture
def parent():
    """A parent cgroup name of this test's own, removed from every hierarchy afterwards."""
    assert os.geteuid() == 0, 'tests/integration/test_cgroups_root.py runs as root'
    name = 'ctr-test-' + uuid.uuid4().hex[:12]
    yield name
    for point in _all_points():
        _remove_tree(os.path.join(point, name))
    left = [os.path.join(p, name) for p in _all_points() if os.path.exists(os.path.join(p, name))]
    assert not left, 'cleanup left cgroup directories behind: %s' % left


class Procs:
    """Python processes that wait on stdin before running their code, so they can be moved first."""

    def __init__(self):
        self.started = []

    def start(self, code, cgroup=None, **kwargs):
        gate = 'import sys\nsys.stdin.readline()\n'
        proc = subprocess.Popen([sys.executable, '-c', gate + code], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
        self.started.append(proc)
        if cgroup is not None:
            cgroup.add(proc.pid)
        proc.stdin.write(b'go\n')
        proc.stdin.flush()
        return proc

    def cleanup(self):
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                stream.close()


@pytest.fixture
def procs():
    spawned = Procs()
    yield spawned
    spawned.cleanup()


SLEEPER = 'import time\ntime.sleep(30)\n'


def _gone(pid):
    """True when ``pid`` no longer runs (absent, or a zombie waiting for its parent)."""
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] == 'Z'
    except (FileNotFoundError, ProcessLookupError):
        return True


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _read(path):
    with open(path, encoding='ascii') as handle:
        return handle.read().strip()


# -- tests -----------------------------------------------------------------------------------------

@pytest.mark.parametrize('mountinfo', ALL_VIEWS)
def test_add_moves_a_process_into_every_hierarchy(parent, procs, mountinfo):
    cg = Cgroup.create('c0', parent=parent, mountinfo=mountinfo)
    assert cg.layout.kind in ('unified', 'hybrid', 'legacy')
    assert all(os.path.isdir(d) for d in cg.directories())
    proc = procs.start(SLEEPER, cg)
    assert cg.pids() == [proc.pid]
    lines = _read('/proc/%d/cgroup' % proc.pid).splitlines()
    inside = [line for line in lines if line.endswith(':/%s/c0' % parent)]
    assert len(inside) == len(cg.directories())
    if cg.paths.get('unified'):
        assert '0::/%s/c0' % parent in lines
    assert Cgroup.open('c0', parent=parent, mountinfo=mountinfo).pids() == [proc.pid]
    cg.destroy()


@pytest.mark.parametrize('mountinfo', views_with('memory', 'cpu', 'pids'))
def test_limits_are_written_and_read_back(parent, mountinfo):
    cg = Cgroup.create('c1', Limits(memory=32 * MiB, cpus=0.5, pids=8), parent=parent, mountinfo=mountinfo)
    assert cg.limits() == Limits(memory=32 * MiB, cpus=0.5, pids=8)
    paths = cg.paths
    if cgrouplayout.controllers(mountinfo)['cpu'] == 1:
        assert _read(os.path.join(paths['cpu'], 'cpu.cfs_quota_us')) == '50000'
        assert _read(os.path.join(paths['cpu'], 'cpu.cfs_period_us')) == '100000'
        assert _read(os.path.join(paths['pids'], 'pids.max')) == '8'
        assert _read(os.path.join(paths['memory'], 'memory.limit_in_bytes')) == str(32 * MiB)
        memsw = os.path.join(paths['memory'], 'memory.memsw.limit_in_bytes')
        if os.path.exists(memsw):
            assert _read(memsw) == str(32 * MiB)
    else:
        assert _read(os.path.join(paths['cpu'], 'cpu.max')) == '50000 100000'
        assert _read(os.path.join(paths['memory'], 'memory.max')) == str(32 * MiB)
    # raise, lower, lift: memory and memory+swap move in the order the kernel accepts
    for limits in (Limits(memory=64 * MiB, cpus=1, pids=100), Limits(memory=16 * MiB, cpus=0.25, pids=2),
                   Limits(), Limits(memory=7 * MiB + 5, cpus=0.333333, pids=1)):
        cg.set_limits(limits)
        assert cg.limits() == limits.as_kernel_keeps()
    cg.destroy()


@pytest.mark.parametrize('mountinfo', views_with('memory'))
def test_a_memory_hog_is_oom_killed_and_reported(parent, procs, mountinfo):
    cg = Cgroup.create('c2', Limits(memory=32 * MiB), parent=parent, mountinfo=mountinfo)
    assert cg.oom_killed() is False
    hog = procs.start('chunks = []\nwhile True:\n    chunks.append(b"x" * (1 << 20))\n', cg)
    assert hog.wait(timeout=60) == -signal.SIGKILL
    assert cg.oom_killed() is True
    cg.destroy()


FORKER = '''
import errno, os, time
made, failure = 0, None
while made < 64:
    try:
        pid = os.fork()
    except OSError as exc:
        failure = errno.errorcode[exc.errno]
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    made += 1
print(made, failure, flush=True)
time.sleep(30)
'''


@pytest.mark.parametrize('mountinfo', views_with('pids'))
def test_forks_beyond_the_pids_limit_fail_with_eagain(parent, procs, mountinfo):
    cg = Cgroup.create('c3', Limits(pids=8), parent=parent, mountinfo=mountinfo)
    forker = procs.start(FORKER, cg)
    assert forker.stdout.readline().split() == [b'7', b'EAGAIN']     # 8 = the forker and 7 children
    members = cg.pids()
    assert len(members) == 8 and forker.pid in members
    cg.destroy()
    assert forker.wait(timeout=10) == -signal.SIGKILL
    assert _wait(lambda: all(_gone(pid) for pid in members))
    assert not cg.exists()


@pytest.mark.parametrize('mountinfo', views_with('cpu'))
def test_cpus_limit_throttles_a_busy_loop(parent, procs, mountinfo):
    cg = Cgroup.create('c4', Limits(cpus=0.1), parent=parent, mountinfo=mountinfo)
    spinner = procs.start('while True:\n    pass\n', cg)
    time.sleep(0.1)
    before = _cpu_seconds(spinner.pid)
    time.sleep(1.0)
    used = _cpu_seconds(spinner.pid) - before
    assert 0 < used < 0.3, 'a 0.1 CPU limit let the spinner use %.2f s of CPU in 1 s' % used
    cg.destroy()


def _cpu_seconds(pid):
    fields = _read('/proc/%d/stat' % pid).rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


TICKER = '''
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
n = 0
while True:
    n += 1
    os.pwrite(fd, b"%012d" % n, 0)
    time.sleep(0.005)
'''


@pytest.mark.parametrize('mountinfo', ALL_VIEWS)
def test_freeze_stops_the_processes_and_thaw_resumes_them(parent, procs, tmp_path, mountinfo):
    counter = tmp_path / 'counter'
    cg = Cgroup.create('c5', parent=parent, mountinfo=mountinfo)
    ticker = procs.start(TICKER.replace('sys.argv[1]', repr(str(counter))), cg)
    assert _wait(lambda: counter.exists() and int(counter.read_bytes() or b'0') > 3)
    cg.freeze()
    assert cg.is_frozen()
    if 'freezer' in cg.paths:
        assert _read(os.path.join(cg.paths['freezer'], 'freezer.state')) == 'FROZEN'
        assert _read('/proc/%d/status' % ticker.pid).split('State:')[1].split()[0] == 'D'
    else:
        assert 'frozen 1' in _read(os.path.join(cg.paths['unified'], 'cgroup.events'))
    frozen_at = int(counter.read_bytes())
    time.sleep(0.3)
    assert int(counter.read_bytes()) == frozen_at
    cg.freeze()     # freezing a frozen cgroup is fine
    cg.thaw()
    assert not cg.is_frozen()
    assert _wait(lambda: int(counter.read_bytes()) > frozen_at + 3)
    cg.destroy()


@pytest.mark.parametrize('mountinfo', ALL_VIEWS)
def test_kill_all_with_another_signal_signals_without_waiting(parent, procs, mountinfo):
    cg = Cgroup.create('c6', parent=parent, mountinfo=mountinfo)
    proc = procs.start('import signal, time\nsignal.signal(signal.SIGUSR1, lambda *a: print("usr1", flush=True))\n'
                       'print("ready", flush=True)\ntime.sleep(30)\n', cg)
    assert proc.stdout.readline() == b'ready\n'
    cg.kill_all(signal.SIGUSR1)
    assert proc.stdout.readline() == b'usr1\n'
    cg.kill_all(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM
    cg.destroy()


@pytest.mark.parametrize('mountinfo', ALL_VIEWS)
def test_destroy_kills_everything_and_leaves_no_directory(parent, procs, mountinfo):
    cg = Cgroup.create('c7', Limits(), parent=parent, mountinfo=mountinfo)
    other = Cgroup.create('c8', parent=parent, mountinfo=mountinfo)
    outsider = procs.start(SLEEPER, other)
    sleepers = [procs.start(SLEEPER, cg) for dummy in range(3)]
    forker = procs.start(FORKER.replace('64', '5'), cg)
    assert forker.stdout.readline().split() == [b'5', b'None']
    members = cg.pids()
    assert len(members) == 3 + 1 + 5
    cg.freeze()     # a frozen cgroup is killed too
    cg.destroy()
    assert all(p.wait(timeout=10) == -signal.SIGKILL for p in sleepers + [forker])
    assert _wait(lambda: all(_gone(pid) for pid in members))
    assert not any(os.path.exists(d) for d in cg.directories())
    assert Cgroup.open('c7', parent=parent, mountinfo=mountinfo) is None
    cg.destroy()    # idempotent
    # the parent stays while another container's cgroup is in it, and goes with the last one
    assert outsider.poll() is None and other.pids() == [outsider.pid]
    assert all(os.path.isdir(os.path.dirname(d)) for d in other.directories())
    other.destroy()
    assert outsider.wait(timeout=10) == -signal.SIGKILL
    assert not any(os.path.exists(os.path.dirname(d)) for d in other.directories())


HYBRID_VIEWS = [pytest.param(text, id=name) for name, text in VIEWS.items()
                if cgrouplayout.read_layout(text).kind == 'hybrid']


@pytest.mark.parametrize('mountinfo', HYBRID_VIEWS)
def test_destroy_kills_a_process_that_is_in_the_v1_hierarchies_only(parent, procs, mountinfo):
    cg = Cgroup.create('c11', parent=parent, mountinfo=mountinfo)
    proc = procs.start(SLEEPER)
    for directory in set(cg.directories()) - {cg.paths['unified']}:
        with open(os.path.join(directory, 'cgroup.procs'), 'w', encoding='ascii') as handle:
            handle.write(str(proc.pid))
    assert cg.pids() == [proc.pid]
    cg.destroy()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert not cg.exists()


@pytest.mark.parametrize('mountinfo', views_without('pids'))
def test_a_limit_without_its_controller_is_refused_and_makes_nothing(parent, mountinfo):
    with pytest.raises(CtrError) as info:
        Cgroup.create('c9', Limits(pids=8), parent=parent, mountinfo=mountinfo)
    assert str(info.value) == 'pids_limit needs the pids cgroup controller, which this host lacks'
    assert not [p for p in _all_points() if os.path.exists(os.path.join(p, parent))]


_DEVICE_PROBE = (
    'import errno, os, stat\n'
    'def attempt(call, *args):\n'
    '    try:\n        call(*args)\n        return "ok"\n'
    '    except OSError as exc:\n        return errno.errorcode[exc.errno]\n'
    'for name, kind, major, minor in (("null", stat.S_IFCHR, 1, 3), ("kmsg", stat.S_IFCHR, 1, 11),\n'
    '                                 ("loop", stat.S_IFBLK, 7, 0)):\n'
    '    path = os.path.join(where, name)\n'
    '    made = attempt(os.mknod, path, kind | 0o600, os.makedev(major, minor))\n'
    '    opened = attempt(lambda: os.close(os.open(path, os.O_RDONLY)))\n'
    '    print(name, made, opened, flush=True)\n'
)


@pytest.mark.parametrize('allow_all', [False, True], ids=['default', 'privileged'])
@pytest.mark.parametrize('mountinfo', ALL_VIEWS)
def test_devices_a_default_cgroup_may_open(parent, procs, mountinfo, allow_all, tmp_path):
    """Device nodes of any kind can be made, but only the default ones opened, in every layout: by the v1
    devices list where the view has that controller, by the eBPF program on the cgroup2 directory where
    it has a cgroup2 tree (the only filter of a unified host). Privileged: everything opens."""
    cg = Cgroup.create('c10', parent=parent, mountinfo=mountinfo, allow_all_devices=allow_all)
    layout = cgrouplayout.read_layout(mountinfo)
    assert cg.devices_restricted is not allow_all
    if layout.v2 is not None:
        assert devices.attached(cg.paths[cgroups.UNIFIED]) == (0 if allow_all else 1)
    proc = procs.start('where = %r\n' % str(tmp_path) + _DEVICE_PROBE, cg)
    denied = 'ok' if allow_all else 'EPERM'
    assert proc.stdout.read().decode().splitlines() == [
        'null ok ok', 'kmsg ok %s' % denied, 'loop ok %s' % denied]
    assert proc.wait(timeout=10) == 0
    cg.destroy()


@pytest.mark.skipif(HOST_LAYOUT.v2 is None, reason='this host has no cgroup2 tree')
def test_device_program_alone_filters_and_is_replaced_on_reuse(parent, procs, tmp_path):
    """On the cgroup2 view (no v1 devices controller) the program is what denies; a create that reuses
    the directory (after a crash) leaves one program, not two; the directory's removal frees it."""
    view = _only(lambda line: ' - cgroup2 ' in line)
    cg = Cgroup.create('c12', parent=parent, mountinfo=view)
    again = Cgroup.create('c12', parent=parent, mountinfo=view)
    directory = again.paths[cgroups.UNIFIED]
    assert devices.attached(directory) == 1
    proc = procs.start('where = %r\n' % str(tmp_path) + _DEVICE_PROBE, again)
    assert proc.stdout.read().decode().splitlines() == ['null ok ok', 'kmsg ok EPERM', 'loop ok EPERM']
    assert proc.wait(timeout=10) == 0
    cg.destroy()
    assert not os.path.exists(directory)
    assert devices.attached(directory) == 0


@pytest.mark.parametrize('mountinfo', ALL_VIEWS)
def test_containers_created_while_others_are_destroyed_under_one_parent(parent, mountinfo):
    """destroy removes the parent once empty while another create may be making its directory in it."""
    failures = []

    def churn(index):
        try:
            for round_ in range(25):
                cg = Cgroup.create('c%d-%d' % (index, round_), parent=parent, mountinfo=mountinfo)
                cg.destroy()
        except Exception as exc:  # pylint: disable=broad-except
            failures.append(exc)

    workers = [threading.Thread(target=churn, args=(index,)) for index in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert failures == []
    assert not [p for p in _all_points() if os.path.exists(os.path.join(p, parent))]

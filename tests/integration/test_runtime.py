# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Containers for real: namespaces, PID 1, the monitor, logs, stop, restart, limits, masks, cleanup."""

from __future__ import annotations

import collections
import os
import signal
import time

import helpers
import pytest

from ctr.errors import Conflict, CtrError, InvalidArgument


@pytest.fixture
def runtime(store_root, busybox_rootfs):
    with helpers.busybox_runtime(store_root, busybox_rootfs) as rt:
        yield rt


Ran = collections.namedtuple('Ran', 'code out err container')


def run(rt, *argv, **options):
    """Create, start and wait; returns Ran(exit code, stdout text, stderr text, container)."""
    c = rt.create('busybox', command=list(argv), **options)
    rt.start(c.Id)
    code = rt.wait(c.Id, timeout=60)
    out = ''.join(t for s, t in rt.logs(c.Id) if s == 'stdout')
    err = ''.join(t for s, t in rt.logs(c.Id) if s == 'stderr')
    return Ran(code, out, err, rt.get(c.Id))


def mounts_of(root):
    with open('/proc/self/mountinfo') as f:
        return [line for line in f if str(root) in line]


def test_the_application_is_pid_1_with_the_short_id_as_hostname(runtime):
    ran = run(runtime, 'sh', '-c', 'echo $$; hostname; cat /etc/hostname')
    code, out, c = ran.code, ran.out, ran.container
    assert code == 0
    assert out.split() == ['1', c.Id[:12], c.Id[:12]]


def test_exit_codes_and_stderr(runtime):
    ran = run(runtime, 'sh', '-c', 'echo out; echo err >&2; exit 42')
    code, out, err = ran.code, ran.out, ran.err
    assert (code, out, err) == (42, 'out\n', 'err\n')
    c = runtime.create('busybox', command=['sleep', '30'])
    runtime.start(c.Id)
    runtime.kill(c.Id, 'KILL')          # from outside: PID 1 ignores even SIGKILL sent from inside its namespace
    assert runtime.wait(c.Id, timeout=10) == 137 and runtime.get(c.Id).State.Status == 'exited'


def test_a_missing_command_fails_clearly(runtime):
    c = runtime.create('busybox', command=['/no/such/program'])
    with pytest.raises(CtrError) as err:
        runtime.start(c.Id)
    assert 'cannot run "/no/such/program"' in err.value.msg
    assert runtime.get(c.Id).State.Status == 'exited'
    assert not mounts_of(runtime.containers.dir(c.Id))


def test_no_host_descriptor_reaches_the_container(runtime):
    leak = os.open('/etc/hostname', os.O_RDONLY)       # inheritable on purpose
    os.set_inheritable(leak, True)
    try:
        ran = run(runtime, 'ls', '/proc/self/fd')
        code, out = ran.code, ran.out
    finally:
        os.close(leak)
    assert code == 0 and out.split() == ['0', '1', '2', '3']      # 3 is ls's own directory


def test_namespaces_are_new_and_network_none_has_only_lo(runtime):
    ran = run(runtime, 'sh', '-c', 'for ns in net mnt uts ipc; do readlink /proc/1/ns/$ns; done;'
              ' ls /sys/class/net', network_mode='none')
    code, out = ran.code, ran.out
    lines = out.split()
    assert code == 0
    for ns, value in zip(('net', 'mnt', 'uts', 'ipc'), lines[:4]):
        assert value != os.readlink('/proc/self/ns/' + ns)
    assert lines[4:] == ['lo']


def test_network_host_shares_the_host_netns(runtime):
    ran = run(runtime, 'readlink', '/proc/1/ns/net', network_mode='host')
    code, out = ran.code, ran.out
    assert code == 0 and out.strip() == os.readlink('/proc/self/ns/net')


def test_default_container_cannot_mount_and_masked_paths_are_masked(runtime):
    ran = run(runtime, 'sh', '-c', 'mkdir -p /m; mount -t tmpfs x /m 2>&1; echo rc=$?; wc -c < /proc/keys;'
              ' echo 1 > /proc/sys/kernel/domainname 2>&1; echo w=$?')
    code, out = ran.code, ran.out
    assert 'rc=0' not in out and 'w=0' not in out
    assert '\n0\n' in out


def test_privileged_keeps_every_capability_and_mounts(runtime):
    ran = run(runtime, 'sh', '-c', 'mkdir -p /m && mount -t tmpfs x /m && echo mounted', privileged=True)
    code, out = ran.code, ran.out
    assert code == 0 and 'mounted' in out


_OPEN_A_NODE_IT_MADE = ('mknod /dev/k c 1 11 && echo made; (exec 3</dev/k) 2>/dev/null && echo opened || echo denied;'
                        ' (exec 3</dev/null) && echo null')


def test_a_default_container_makes_device_nodes_but_opens_only_the_default_ones(runtime):
    """CAP_MKNOD is in the default set and /dev is a tmpfs that allows devices (the rootfs is nodev); the
    device filter (v1 list, eBPF program on cgroup2) denies all but the defaults. Privileged: no filter."""
    ran = run(runtime, 'sh', '-c', _OPEN_A_NODE_IT_MADE)
    assert (ran.code, ran.out.split()) == (0, ['made', 'denied', 'null'])
    ran = run(runtime, 'sh', '-c', _OPEN_A_NODE_IT_MADE, privileged=True)
    assert (ran.code, ran.out.split()) == (0, ['made', 'opened', 'null'])


@pytest.mark.skipif(not os.path.exists('/sys/fs/cgroup/cgroup.controllers') and
                    not os.path.exists('/sys/fs/cgroup/unified/cgroup.controllers'), reason='no cgroup2 tree here')
def test_a_default_container_has_the_device_program_on_its_cgroup2_directory(runtime):
    from ctr.runtime import devices
    c = runtime.create('busybox', command=['sleep', '30'])
    runtime.start(c.Id)
    with open('/proc/%d/cgroup' % runtime.get(c.Id).State.Pid) as handle:
        unified = [line.split(':', 2)[2].strip() for line in handle if line.startswith('0::')][0]
    mount = '/sys/fs/cgroup/unified' if os.path.exists('/sys/fs/cgroup/unified/cgroup.controllers') else '/sys/fs/cgroup'
    assert unified.endswith('/' + c.Id) and devices.attached(mount + unified) == 1
    runtime.remove(c.Id, force=True)
    assert devices.attached(mount + unified) == 0


def test_user_env_workdir_and_read_only(runtime):
    ran = run(runtime, 'sh', '-c', 'id -u; echo $GREETING; pwd; touch /x 2>/dev/null || echo ro',
              user='65534', env={'GREETING': 'hi'}, working_dir='/tmp', read_only=True)
    code, out = ran.code, ran.out
    assert code == 0 and out.split() == ['65534', 'hi', '/tmp', 'ro']


def test_stop_sends_the_stop_signal_then_sigkill(runtime):
    c = runtime.create('busybox', command=['sh', '-c', 'trap "exit 3" TERM; while true; do sleep 0.1; done'])
    runtime.start(c.Id)
    c, changed = runtime.stop(c.Id, timeout=10)
    assert changed and c.State.ExitCode == 3
    assert not runtime.stop(c.Id)[1]
    stubborn = runtime.create('busybox', command=['sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done'])
    runtime.start(stubborn.Id)
    time.sleep(0.3)
    started = time.time()
    c = runtime.stop(stubborn.Id, timeout=1)[0]
    assert c.State.ExitCode == 137 and time.time() - started < 8


def test_restart_policy_on_failure_with_retries(runtime):
    c = runtime.create('busybox', command=['sh', '-c', 'echo try; exit 1'], restart_policy='on-failure',
                       restart_retries=2)
    runtime.start(c.Id)
    assert runtime.wait(c.Id, timeout=30) == 1
    c = runtime.get(c.Id)
    assert c.State.RestartCount == 2
    assert [t for s, t in runtime.logs(c.Id)] == ['try\n'] * 3


def test_memory_hog_is_oom_killed(runtime):
    ran = run(runtime, 'sh', '-c', 'x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done', memory='16m')
    code, c = ran.code, ran.container
    assert code == 137 and c.State.OOMKilled


def test_oom_killed_is_about_the_last_run_only(runtime):
    # first run: OOM-killed; the restart exits 3 on its own: OOMKilled must not stick (the kernel counts on)
    ran = run(runtime, 'sh', '-c', 'if [ -e /ran ]; then exit 3; fi; touch /ran; x=aaaaaaaaaaaaaaaa; '
              'while true; do x=$x$x; done', memory='16m', restart_policy='on-failure', restart_retries=1)
    assert ran.code == 3 and ran.container.State.RestartCount == 1 and not ran.container.State.OOMKilled


def test_pids_limit_stops_a_fork_bomb(runtime):
    ran = run(runtime, 'sh', '-c', 'for i in $(seq 1 40); do sleep 5 & done; echo all forked',
              pids_limit=10)
    code, out, err = ran.code, ran.out, ran.err
    assert 'all forked' not in out and "can't fork" in err and code != 0
    ran = run(runtime, 'sh', '-c', 'for i in $(seq 1 5); do sleep 1 & done; echo all forked',
              pids_limit=10)
    code, out = ran.code, ran.out
    assert code == 0 and 'all forked' in out


def test_monitor_killed_is_reported_honestly_and_restart_works(runtime):
    c = runtime.create('busybox', command=['sleep', '30'])
    runtime.start(c.Id)
    c = runtime.get(c.Id)
    os.kill(c.State.Pid, signal.SIGKILL)
    os.kill(c.State.MonitorPid, signal.SIGKILL)
    deadline = time.time() + 5
    while runtime.get(c.Id).State.Running and time.time() < deadline:
        time.sleep(0.05)
    c = runtime.get(c.Id)
    assert not c.State.Running and c.State.Status == 'exited' and 'monitor' in c.State.Error
    runtime.containers.save_state(c)
    changed = runtime.start(c.Id)[1]
    assert changed and runtime.get(c.Id).State.Running


def test_remove_leaves_nothing_behind(runtime, store_root):
    c = runtime.create('busybox', name='gone', command=['sleep', '30'], memory='64m')
    runtime.start(c.Id)
    running = runtime.get(c.Id)
    with pytest.raises(Conflict):
        runtime.remove('gone')
    assert runtime.remove('gone', force=True)
    assert not mounts_of(store_root)
    assert not os.path.exists(runtime.containers.dir(c.Id))
    assert not os.path.exists('/proc/%d' % running.State.MonitorPid) or \
        open('/proc/%d/stat' % running.State.MonitorPid).read().split()[2] == 'Z'
    for controller in ('memory', 'pids', 'cpu'):
        assert not os.path.exists('/sys/fs/cgroup/%s/ctr/%s' % (controller, c.Id))
    assert not runtime.remove('gone')


def test_bad_options_create_nothing(runtime):
    for kwargs in ({'memory': 'lots'}, {'cpus': '-1'}, {'name': 'bad name'}, {'network_mode': 'bad name'},
                   {'restart_policy': 'sometimes'}, {'stop_signal': 'SIGNOPE'}, {'capabilities': ['CAP_NOPE']},
                   {'working_dir': 'relative'}, {'restart_retries': -1}):
        with pytest.raises(InvalidArgument):
            runtime.create('busybox', **kwargs)
    assert runtime.list() == []


# -- regressions from the runtime review -----------------------------------------------------------------

def test_orphaned_container_without_monitor_can_be_stopped_and_removed(runtime, store_root):
    c = runtime.create('busybox', command=['sleep', '300'])
    runtime.start(c.Id)
    c = runtime.get(c.Id)
    pid = c.State.Pid
    os.kill(c.State.MonitorPid, signal.SIGKILL)
    deadline = time.time() + 5
    while runtime.get(c.Id).State.MonitorPid and time.time() < deadline:
        time.sleep(0.05)
    orphan = runtime.get(c.Id)
    assert orphan.State.Running and 'monitor is gone' in orphan.State.Error
    stopped = runtime.stop(c.Id, timeout=1)[0]
    assert not stopped.State.Running
    assert runtime.remove(c.Id, force=True)
    assert monitor_gone(pid) and not mounts_of(store_root)


def monitor_gone(pid):
    from ctr.runtime.procs import process_start_time
    deadline = time.time() + 5
    while process_start_time(pid) is not None and time.time() < deadline:
        time.sleep(0.05)
    return process_start_time(pid) is None


def test_start_right_after_exit_and_while_restarting(runtime):
    c = runtime.create('busybox', command=['true'])
    for attempt in range(5):
        assert runtime.start(c.Id)[1], attempt
        assert runtime.wait(c.Id, timeout=10) == 0
    looping = runtime.create('busybox', command=['sh', '-c', 'exit 1'], restart_policy='always')
    runtime.start(looping.Id)
    deadline = time.time() + 5
    while runtime.get(looping.Id).State.RestartCount < 1 and time.time() < deadline:
        time.sleep(0.02)
    assert not runtime.start(looping.Id)[1]
    assert runtime.stop(looping.Id, timeout=1)[0].State.Status == 'exited'


def _raw_ignore(signum):
    """SIG_IGN for a signal glibc keeps to itself (32), as some CI shells leave it; x86_64 numbering."""
    import ctypes
    import struct
    from ctr import libc
    action = ctypes.create_string_buffer(struct.pack('<QQQQ', 1, 0x04000000, 0, 0) + b'\0' * 32)
    libc._lib().syscall(ctypes.c_long(13), ctypes.c_int(signum), action, None, ctypes.c_size_t(8))


def test_signals_the_caller_ignores_do_not_reach_the_container(runtime):
    from ctr import libc
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if os.uname().machine == 'x86_64':
        _raw_ignore(32)
    try:
        ran = run(runtime, 'grep', '-E', 'SigIgn|SigBlk', '/proc/self/status')     # the app itself, no shell
    finally:
        signal.signal(signal.SIGHUP, previous)
        libc.signal_default(32)
    assert ran.code == 0 and ran.out.split() == ['SigBlk:', '0000000000000000', 'SigIgn:', '0000000000000000']


def test_a_missing_working_dir_is_created(runtime):
    ran = run(runtime, 'pwd', working_dir='/srv/app/data')
    assert ran.code == 0 and ran.out.strip() == '/srv/app/data'


def test_unknown_user_fails_at_create_once_the_image_is_unpacked(runtime):
    runtime.images.unpack('busybox')
    with pytest.raises(CtrError) as err:
        runtime.create('busybox', command=['true'], user='ghost')
    assert 'ghost' in err.value.msg
    assert runtime.list() == []


def test_boot_starts_what_the_restart_policies_say(runtime):
    """After a reboot (monitors and processes gone, no daemon to notice), ``boot`` does Docker's daemon's job."""
    made = {}
    for name, policy in (('always', 'always'), ('unless', 'unless-stopped'), ('stopped', 'unless-stopped'),
                         ('never', 'no')):
        c = runtime.create('busybox', command=['sleep', '60'], name=name, restart_policy=policy, network_mode='none')
        runtime.start(c.Id)
        made[name] = c.Id
    runtime.stop('stopped', timeout=0)                  # stopped by a user: unless-stopped stays stopped
    for name in ('always', 'unless', 'never'):          # the "reboot"
        state = runtime.get(name).State
        os.kill(state.MonitorPid, signal.SIGKILL)
        os.kill(state.Pid, signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and any(runtime.get(n).State.Running for n in ('always', 'unless', 'never')):
        time.sleep(0.05)
    assert sorted(name for name, error in runtime.boot() if error is None) == ['always', 'unless']
    assert runtime.get('always').State.Running and runtime.get('unless').State.Running
    assert not runtime.get('stopped').State.Running and not runtime.get('never').State.Running
    assert runtime.boot() == []                         # a second boot finds nothing to do


@pytest.mark.parametrize('options,expected', [
    ({}, ['Seccomp:\t2', 'unshare: unshare(0x10000000): Operation not permitted']),
    ({'capabilities': ['SYS_ADMIN']}, ['Seccomp:\t2', 'user namespace made']),
    ({'privileged': True}, ['Seccomp:\t0', 'user namespace made']),
])
def test_seccomp_refuses_what_dockers_profile_refuses(runtime, options, expected):
    ran = run(runtime, 'sh', '-c', 'grep "^Seccomp:" /proc/self/status; unshare -U true 2>&1 && echo user namespace made',
              network_mode='none', **options)
    for line in expected:
        assert line in ran.out, ran.out


def test_exec_gets_the_containers_seccomp_filter(runtime):
    c = runtime.create('busybox', command=['sleep', '30'], network_mode='none')
    runtime.start(c.Id)
    result = runtime.exec(c.Id, ['sh', '-c', 'grep "^Seccomp:" /proc/self/status; unshare -U true 2>&1; true'])
    assert b'Seccomp:\t2' in result.stdout and b'Operation not permitted' in result.stdout, result.stdout

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exec through setns(): every namespace of PID 1 really joined, identity, working directory, stdin,
exit codes, detach, the cgroup, a network_mode container:X container; and ctr_exec as Ansible runs it
(creates/removes, check mode, failures)."""

from __future__ import annotations

import os
import time

import helpers
import pytest

from ctr.errors import Conflict, CtrError, NotFound


@pytest.fixture
def runtime(store_root, busybox_rootfs):
    with helpers.busybox_runtime(store_root, busybox_rootfs, ['WORKDIR /srv', 'ENV IMG=1']) as rt:
        yield rt


@pytest.fixture
def sleeper(runtime):
    c = runtime.create('busybox', command=['sleep', '120'], name='box', env={'CTR': '2'}, network_mode='none')
    runtime.start(c.Id)
    return runtime.get(c.Id)


NAMESPACES = ('net', 'mnt', 'pid', 'uts', 'ipc', 'cgroup')


def test_exec_joins_every_namespace_of_pid_1(runtime, sleeper):
    script = 'for n in %s; do readlink /proc/self/ns/$n; done; echo $$' % ' '.join(NAMESPACES)
    result = runtime.exec('box', ['sh', '-c', script])
    assert result.rc == 0, result.stderr
    lines = result.stdout.decode().split()
    for name, seen in zip(NAMESPACES, lines):
        assert seen == os.readlink('/proc/%d/ns/%s' % (sleeper.State.Pid, name)), name
        assert seen != os.readlink('/proc/self/ns/%s' % name), name
    assert int(lines[-1]) > 1          # a process of the container's PID namespace, not its PID 1


def test_exec_sees_the_containers_root_masks_and_descriptors(runtime, sleeper):
    result = runtime.exec('box', ['sh', '-c', 'cat /etc/hostname; ls /proc/self/fd; cat /proc/kcore | head -c1 | wc -c'])
    lines = result.stdout.decode().split()
    assert lines[0] == sleeper.Id[:12]
    assert lines[1:5] == ['0', '1', '2', '3']          # stdio and ls's own directory, nothing of ours
    assert lines[-1] == '0'                             # /proc/kcore is masked


def test_exec_environment_user_and_working_directory(runtime, sleeper):
    result = runtime.exec('box', ['sh', '-c', 'echo $IMG $CTR $EXTRA $HOSTNAME; id -u; id -g; pwd'],
                          env={'EXTRA': '3'})
    assert result.stdout.decode().split() == ['1', '2', '3', sleeper.Id[:12], '0', '0', '/srv']
    result = runtime.exec('box', ['sh', '-c', 'id -u; id -g; pwd; cat /proc/self/status | grep CapEff'],
                          user='nobody', workdir='/tmp')
    out = result.stdout.decode().split()
    assert out[:3] == ['65534', '65534', '/tmp']
    assert out[-1] == '0000000000000000'               # no capabilities for a non-root user, as Docker
    with pytest.raises(CtrError) as err:
        runtime.exec('box', ['true'], user='ghost')
    assert 'ghost' in err.value.msg


def test_exec_stdin_exit_codes_signals_and_a_missing_program(runtime, sleeper):
    data = b'line one\n' + b'x' * 300000 + b'\n'
    result = runtime.exec('box', ['sh', '-c', 'cat; echo err >&2; exit 7'], stdin=data)
    assert (result.rc, result.stdout, result.stderr) == (7, data, b'err\n')
    assert runtime.exec('box', ['sh', '-c', 'kill -9 $$']).rc == 137
    with pytest.raises(CtrError) as err:
        runtime.exec('box', ['/no/such/program'])
    assert 'cannot run "/no/such/program"' in err.value.msg


def test_exec_runs_in_the_containers_cgroup(runtime, sleeper):
    # seen from inside (its cgroup namespace): the same cgroups as PID 1, the namespace's root
    result = runtime.exec('box', ['sh', '-c', 'cat /proc/self/cgroup; echo --; cat /proc/1/cgroup'])
    own, pid1 = result.stdout.decode().split('--\n')
    assert own == pid1 and '/ctr/' not in own
    # seen from the host: the exec's process is in the container's own cgroup
    detached = runtime.exec('box', ['sleep', '20'], detach=True)
    with open('/proc/%d/cgroup' % detached.pid) as f:
        theirs = f.read()
    with open('/proc/%d/cgroup' % sleeper.State.Pid) as f:
        assert theirs == f.read() and sleeper.Id in theirs


def test_exec_detached_returns_its_pid_and_keeps_running(runtime, sleeper):
    result = runtime.exec('box', ['sleep', '30'], detach=True)
    assert result.pid and os.path.exists('/proc/%d' % result.pid)
    assert os.readlink('/proc/%d/ns/pid' % result.pid) == os.readlink('/proc/%d/ns/pid' % sleeper.State.Pid)
    with open('/proc/%d/status' % result.pid) as f:
        parent = int(next(line for line in f if line.startswith('PPid:')).split()[1])
    # orphaned by its joiner, it goes to the reaper of the joiner's (the host's) PID namespace: no
    # zombie is left to a PID 1 that may never reap one
    assert parent != sleeper.State.Pid


def test_exec_into_a_stopped_or_missing_container_fails_clearly(runtime):
    c = runtime.create('busybox', command=['true'], name='done', network_mode='none')
    with pytest.raises(Conflict) as err:
        runtime.exec('done', ['true'])
    assert 'not running' in err.value.msg
    with pytest.raises(NotFound):
        runtime.exec('nowhere', ['true'])
    del c


def test_exec_into_a_container_sharing_anothers_network(runtime, sleeper):
    c = runtime.create('busybox', command=['sleep', '60'], name='side', network_mode='container:box')
    runtime.start(c.Id)
    result = runtime.exec('side', ['readlink', '/proc/self/ns/net'])
    assert result.stdout.decode().strip() == os.readlink('/proc/%d/ns/net' % sleeper.State.Pid)


# -- ctr_exec --------------------------------------------------------------------------------------------

@pytest.fixture
def ctr_exec(run_module, store_root, sleeper):
    def call(check=False, **args):
        full = {'root': str(store_root), 'container': 'box'}
        full.update(args)
        return run_module('ctr_exec', full, check=check)
    return call


def test_module_runs_and_returns_like_command(ctr_exec):
    result = ctr_exec(command='sh -c "echo one; echo two; echo oops >&2"')
    assert result['changed'] and result['rc'] == 0
    assert result['stdout_lines'] == ['one', 'two'] and result['stderr'] == 'oops'
    fed = ctr_exec(argv=['cat'], stdin='fed')
    assert fed['stdout'] == 'fed'
    raw = ctr_exec(argv=['printf', 'x\\n\\n'], strip_empty_ends=False)
    assert raw['stdout'] == 'x\n\n'


def test_module_fails_on_a_non_zero_exit_with_the_output(ctr_exec):
    result = ctr_exec(argv=['sh', '-c', 'echo partial; exit 3'])
    assert result['failed'] and result['rc'] == 3 and result['stdout'] == 'partial'
    assert result['msg'] == 'non-zero return code'


def test_module_creates_and_removes_make_it_idempotent(ctr_exec, runtime):
    first = ctr_exec(argv=['touch', '/tmp/done'], creates='/tmp/done')
    assert first['changed']
    again = ctr_exec(argv=['touch', '/tmp/done'], creates='/tmp/done')
    assert not again['changed'] and 'skipped' in again['msg']
    assert ctr_exec(check=True, argv=['rm', '/tmp/done'], removes='/tmp/done')['changed']
    assert runtime.path_exists(runtime.get('box'), '/tmp/done')       # check mode ran nothing
    assert ctr_exec(argv=['rm', '/tmp/done'], removes='/tmp/done')['changed']
    assert not ctr_exec(argv=['rm', '/tmp/done'], removes='/tmp/done')['changed']
    assert not ctr_exec(check=True, argv=['touch', '/x'], creates='/srv')['changed']


def test_module_check_mode_runs_nothing(ctr_exec, runtime):
    result = ctr_exec(check=True, argv=['touch', '/tmp/never'])
    assert result['changed'] and 'rc' not in result
    assert not runtime.path_exists(runtime.get('box'), '/tmp/never')


@pytest.mark.parametrize('args, fragment', [
    ({'container': 'nowhere', 'command': 'true'}, 'container nowhere does not exist'),
    ({'command': 'sh -c "unbalanced'}, 'cannot be split'),
    ({'command': ''}, 'must name a program'),
    ({'argv': ['/no/such/program']}, 'cannot run "/no/such/program"'),
    ({'command': 'true', 'user': 'ghost'}, 'ghost'),
])
def test_module_bad_values_fail_clearly(ctr_exec, args, fragment):
    result = ctr_exec(**args)
    assert result['failed'] and fragment in result['msg'], result
    assert '\n' not in result['msg']


def test_module_detach(ctr_exec):
    result = ctr_exec(argv=['sleep', '20'], detach=True)
    assert result['changed'] and result['pid'] > 1
    time.sleep(0.2)
    assert os.path.exists('/proc/%d' % result['pid'])


def test_cli_exec_it_gives_a_real_terminal(runtime, sleeper, store_root):
    """``exec -it`` through a pty of ours, as a user's terminal: the shell inside has a tty of the
    container's devpts, sees our window size, reads what we type, and its exit code comes back."""
    import fcntl
    import select
    import struct
    import subprocess
    import sys
    import termios
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 33, 101, 0, 0))
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))
    proc = subprocess.Popen([sys.executable, '-m', 'ctr', '--root', str(store_root), 'exec', '-it', 'box', 'sh'],
                            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    seen = b''

    def read_until(marker, timeout=20.0):
        nonlocal seen
        deadline = time.time() + timeout
        while marker not in seen and time.time() < deadline:
            ready, _w, _x = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:         # EIO: every holder of the terminal has gone
                    return
                if not chunk:
                    return
                seen += chunk
            elif proc.poll() is not None:
                return
    read_until(b'# ')                   # the prompt: ash discards what was typed before it
    os.write(master, b'tty; stty size; echo typed-$((6*7)); exit 3\n')
    read_until(b'never printed')
    text = seen.decode('utf-8', 'replace')
    try:
        assert proc.wait(timeout=20) == 3, text
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert '/dev/pts/0' in text and '33 101' in text and 'typed-42' in text, text


@pytest.mark.parametrize('args, expected', [
    ({'argv': ['pwd'], 'chdir': '/tmp'}, '/tmp'),
    ({'argv': ['pwd']}, '/srv'),                                        # the container's working directory
    ({'argv': ['sh', '-c', 'echo $IMG-$CTR-$MINE'], 'env': {'MINE': 3}}, '1-2-3'),
    ({'argv': ['id', '-u'], 'user': 'nobody'}, '65534'),
    ({'argv': ['id', '-u'], 'user': '65534:65534'}, '65534'),
    ({'argv': ['id', '-u']}, '0'),
    ({'argv': ['cat'], 'stdin': 'a', 'stdin_add_newline': False}, 'a'),
])
def test_module_options(ctr_exec, args, expected):
    result = ctr_exec(**args)
    assert result['changed'] and result['stdout'] == expected, result


def test_module_bad_chdir_fails_clearly(ctr_exec):
    result = ctr_exec(argv=['true'], chdir='relative')
    assert result['failed'] and 'working_dir "relative"' in result['msg']

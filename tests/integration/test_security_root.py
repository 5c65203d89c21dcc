# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr.runtime.security against the real kernel (root): capability sets after apply_caps and
become, across execve, no_new_privs, and runc's masked and read-only paths.

Everything that changes a process happens in a forked child that reports JSON through a pipe
and exits; every mount happens in that child's own private mount namespace (unshare(CLONE_NEWNS),
then / made rprivate), and each test checks that the host's mount table is unchanged afterwards.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys

import pytest

_MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))
if _MODULE_UTILS not in [os.path.abspath(p) for p in sys.path]:
    sys.path.insert(0, _MODULE_UTILS)

from ctr import libc  # noqa: E402
from ctr.runtime import caps, security  # noqa: E402

DEFAULT_MASK = 0xa80425fb          # Docker's default set, as /proc/self/status shows it
NOBODY = 65534
CAT = '/bin/cat'


# -- helpers --------------------------------------------------------------------------------------

def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)


def in_child(func):
    """Run ``func()`` in a forked child; return what it returned (JSON-able), or fail with its error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:                                    # the child never returns into pytest
        code = 1
        try:
            os.close(read_fd)
            payload = {'ok': func()}
            code = 0
        except BaseException as exc:   # pylint: disable=broad-except
            payload = {'error': '%s: %s' % (type(exc).__name__, exc)}
        try:
            os.write(write_fd, json.dumps(payload).encode())
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        data = _read_all(read_fd)
    finally:
        os.close(read_fd)
    status = os.waitpid(pid, 0)[1]
    result = json.loads(data.decode() or '{}')
    assert 'error' not in result, result.get('error')
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, 'child status %r' % status
    return result['ok']


def exec_status_in_child(prepare):
    """Fork; the child runs ``prepare()`` then execs cat /proc/self/status; return its CapState and Uid line."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            prepare()
            os.dup2(write_fd, 1)
            os.execv(CAT, [CAT, '/proc/self/status'])
        finally:
            os._exit(127)
    os.close(write_fd)
    try:
        text = _read_all(read_fd).decode()
    finally:
        os.close(read_fd)
    status = os.waitpid(pid, 0)[1]
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, 'child status %r' % status
    uid_line = next(line for line in text.splitlines() if line.startswith('Uid:'))
    return security.parse_cap_status(text), uid_line.split()[1:]


def private_mount_namespace():
    """In a child: a mount (and UTS) namespace of its own, with nothing propagating back to the host."""
    libc.unshare(libc.CLONE_NEWNS | libc.CLONE_NEWUTS)
    libc.mount(None, '/', None, libc.MS_REC | libc.MS_PRIVATE)


def own_status():
    with open('/proc/self/status') as f:
        return f.read()


def host_mounts():
    with open('/proc/self/mountinfo') as f:
        return f.read()


@pytest.fixture(autouse=True)
def host_mounts_unchanged():
    before = host_mounts()
    yield
    assert host_mounts() == before


@pytest.fixture(scope='module', autouse=True)
def needs_root():
    assert os.geteuid() == 0, 'tests/integration/test_security_root.py runs as root'


# -- capabilities ---------------------------------------------------------------------------------

def test_apply_caps_gives_root_dockers_default_set():
    def child():
        security.apply_caps(caps.DEFAULT_CAPS)
        security.set_no_new_privs()
        return own_status()

    state = security.parse_cap_status(in_child(child))
    assert (state.effective, state.permitted, state.bounding) == (DEFAULT_MASK,) * 3
    assert (state.inheritable, state.ambient) == (0, 0)
    assert state.no_new_privs is True


def test_apply_caps_takes_numbers_and_survives_execve_as_root():
    numbers = caps.cap_numbers(caps.effective_caps(['NET_ADMIN'], ['MKNOD']))
    state, uids = exec_status_in_child(lambda: security.apply_caps(numbers))
    expected = caps.caps_mask(numbers)
    assert uids == ['0', '0', '0', '0']
    assert (state.effective, state.permitted, state.bounding) == (expected,) * 3
    assert state.inheritable == 0 and state.ambient == 0
    assert 'CAP_NET_ADMIN' in state.names('effective') and 'CAP_MKNOD' not in state.names('bounding')


def test_privileged_set_keeps_what_the_host_has():
    """Every capability asked for: the process keeps what it held (this host withholds some)."""
    held = security.current_caps().permitted

    def child():
        security.apply_caps(caps.effective_caps(privileged=True))
        return own_status()

    state = security.parse_cap_status(in_child(child))
    assert state.effective == state.permitted == held & caps.caps_mask(caps.CAPABILITIES)


def test_become_non_root_keeps_only_the_bounding_set():
    """Docker's rule: a non-root user gets no effective or permitted capabilities, before or after execve."""
    def child():
        security.become(NOBODY, NOBODY, [NOBODY, 100], caps.DEFAULT_CAPS, no_new_privs=True)
        return {'status': own_status(), 'groups': os.getgroups(), 'ids': [os.getresuid(), os.getresgid()]}

    result = in_child(child)
    state = security.parse_cap_status(result['status'])
    assert (state.effective, state.permitted, state.inheritable, state.ambient) == (0, 0, 0, 0)
    assert state.bounding == DEFAULT_MASK and state.no_new_privs is True
    assert sorted(result['groups']) == [100, NOBODY]
    assert result['ids'] == [[NOBODY] * 3, [NOBODY] * 3]

    state, uids = exec_status_in_child(
        lambda: security.become(NOBODY, NOBODY, [NOBODY], caps.DEFAULT_CAPS))
    assert uids == [str(NOBODY)] * 4
    assert (state.effective, state.permitted) == (0, 0) and state.bounding == DEFAULT_MASK


def test_become_works_when_setuid_and_setgid_are_dropped():
    kept = caps.effective_caps(None, ['SETUID', 'SETGID'])

    def child():
        security.become(NOBODY, NOBODY, [], kept)
        return own_status()

    state = security.parse_cap_status(in_child(child))
    assert state.bounding == caps.caps_mask(kept) and state.effective == 0
    assert 'CAP_SETUID' not in state.names('bounding')


def test_become_root_keeps_the_set():
    def child():
        security.become(0, 0, [0, 10], caps.effective_caps(None, ['CHOWN']))
        return own_status()

    state = security.parse_cap_status(in_child(child))
    assert state.effective == state.permitted == state.bounding == DEFAULT_MASK & ~1


def test_default_set_cannot_mount(tmp_path):
    """No CAP_SYS_ADMIN: mount(2) fails with EPERM (tried in a private namespace, in case it did not)."""
    target = str(tmp_path)

    def child():
        private_mount_namespace()
        security.apply_caps(caps.DEFAULT_CAPS)
        try:
            libc.mount('tmpfs', target, 'tmpfs', 0)
        except OSError as exc:
            return exc.errno
        return 0

    assert in_child(child) == errno.EPERM


def test_no_new_privs_is_off_until_set():
    def child():
        before = security.parse_cap_status(own_status()).no_new_privs
        security.set_no_new_privs()
        return [before, libc.prctl(libc.PR_GET_NO_NEW_PRIVS)]

    assert in_child(child) == [False, 1]


# -- masked and read-only paths -------------------------------------------------------------------
# /proc/kcore and /proc/sysrq-trigger are absent on kernels built without CONFIG_PROC_KCORE and
# CONFIG_MAGIC_SYSRQ (this machine's): the probes look at every default path the kernel has, and
# check those two whenever they exist.

def _masked_view(root=''):
    """{path: what it looks like} for each default masked path present under ``root``."""
    view = {}
    for path in security.MASKED_PATHS:
        full = root + path
        if not os.path.lexists(full):
            continue
        st = os.lstat(full)
        if stat.S_ISDIR(st.st_mode):
            view[path] = {'dir': True, 'entries': len(os.listdir(full)),
                          'ro': bool(os.statvfs(full).f_flag & os.ST_RDONLY)}
        else:
            with open(full, 'rb') as f:
                data = f.read(4096)
            view[path] = {'dir': False, 'null': stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3),
                          'bytes': len(data)}
    return view


def _assert_masked(view):
    assert '/proc/keys' in view, 'every kernel with keyrings has /proc/keys'
    for path, seen in view.items():
        if seen['dir']:
            assert seen['entries'] == 0 and seen['ro'], path
        else:
            assert seen['null'] and seen['bytes'] == 0, path


def _assert_not_masked(view):
    for path, seen in view.items():
        if seen['dir']:
            assert not seen['ro'], path
        else:
            assert not seen['null'], path


def _probe_readonly():
    out = {'proc_sys_ro': bool(os.statvfs('/proc/sys').f_flag & os.ST_RDONLY),
           'proc_sys_flags': os.statvfs('/proc/sys').f_flag & (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC)}
    with open('/proc/sys/kernel/domainname') as f:
        current = f.read()
    try:
        # the same value back, in our own UTS namespace: harmless even if the remount had failed
        with open('/proc/sys/kernel/domainname', 'w') as f:
            f.write(current)
        out['domainname_write'] = 0
    except OSError as exc:
        out['domainname_write'] = exc.errno
    out['sysrq_open'] = None
    if os.path.exists('/proc/sysrq-trigger'):                   # absent without CONFIG_MAGIC_SYSRQ
        try:
            os.close(os.open('/proc/sysrq-trigger', os.O_WRONLY))  # opened, never written
            out['sysrq_open'] = 0
        except OSError as exc:
            out['sysrq_open'] = exc.errno
    return out


def test_mask_and_readonly_paths_in_a_private_namespace():
    proc_sys_flags = os.statvfs('/proc/sys').f_flag & (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC)
    present = [p for p in security.MASKED_PATHS if os.path.exists(p)]

    def child():
        private_mount_namespace()
        masked = security.mask_paths()
        readonly = security.readonly_paths()
        kcore = None
        if os.path.exists('/proc/kcore'):
            with open('/proc/kcore', 'rb') as f:
                kcore = len(f.read(4096))
        return {'masked': masked, 'readonly': readonly, 'view': _masked_view(), 'kcore': kcore,
                'ro': _probe_readonly()}

    result = in_child(child)
    assert result['masked'] == present                 # every one that exists, and only those
    assert sorted(result['view']) == sorted(present)
    _assert_masked(result['view'])
    if result['kcore'] is not None:
        assert result['kcore'] == 0
    assert result['readonly'] == [p for p in security.READONLY_PATHS if os.path.exists(p)]
    probe = result['ro']
    assert probe['proc_sys_ro'] and probe['proc_sys_flags'] == proc_sys_flags
    assert probe['domainname_write'] == errno.EROFS
    assert probe['sysrq_open'] == (errno.EROFS if os.path.exists('/proc/sysrq-trigger') else None)
    # and on the host, nothing happened
    _assert_not_masked(_masked_view())
    assert not os.statvfs('/proc/sys').f_flag & os.ST_RDONLY


def test_masks_under_a_root_directory(tmp_path):
    """Before pivot_root: masks go on <root>/proc, never on the /proc of the namespace they run in."""
    root = tmp_path / 'root'
    (root / 'proc').mkdir(parents=True)

    def child():
        private_mount_namespace()
        libc.mount('proc', str(root / 'proc'), 'proc', libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
        masked = security.mask_paths(str(root))
        readonly = security.readonly_paths(str(root))
        return {'masked': masked, 'readonly': readonly,
                'inside': _masked_view(str(root)), 'outside': _masked_view(),
                'inside_ro': bool(os.statvfs(str(root / 'proc' / 'sys')).f_flag & os.ST_RDONLY),
                'outside_ro': bool(os.statvfs('/proc/sys').f_flag & os.ST_RDONLY)}

    result = in_child(child)
    assert '/proc/keys' in result['masked'] and '/proc/sys' in result['readonly']
    assert all(p.startswith('/proc/') for p in result['masked'])       # no /sys under this root
    _assert_masked(result['inside'])
    assert result['inside_ro']
    _assert_not_masked(result['outside'])
    assert not result['outside_ro']


@pytest.mark.parametrize('link', ['/', '../../../..'])
def test_hostile_proc_symlink_masks_nothing_outside(tmp_path, link):
    """An image whose /proc is a symlink out of it: resolved inside the root, it names nothing to mask."""
    root = tmp_path / 'root'
    root.mkdir()
    (root / 'proc').symlink_to(link)

    def child():
        private_mount_namespace()
        masked = security.mask_paths(str(root))
        readonly = security.readonly_paths(str(root))
        return {'masked': masked, 'readonly': readonly, 'view': _masked_view(),
                'proc_sys_ro': bool(os.statvfs('/proc/sys').f_flag & os.ST_RDONLY)}

    result = in_child(child)
    assert result['masked'] == [] and result['readonly'] == []
    _assert_not_masked(result['view'])
    assert not result['proc_sys_ro']

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr.runtime.security without root: capability tables and Docker's cap-add/cap-drop rules,
/proc/PID/status parsing, runc's user resolution, and reading /etc/passwd from a hostile rootfs.
"""

from __future__ import annotations

import os
import sys

import pytest

_MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))
if _MODULE_UTILS not in [os.path.abspath(p) for p in sys.path]:
    sys.path.insert(0, _MODULE_UTILS)

from ctr.errors import CtrError, InvalidArgument, KernelError, NotFound, UnsafeContent  # noqa: E402
from ctr.runtime import caps, security  # noqa: E402
from ctr.runtime.security import ExecUser  # noqa: E402

DEFAULT = set(caps.DEFAULT_CAPS)
EVERY = set(caps.CAPABILITIES)


# -- the capability table -------------------------------------------------------------------------

@pytest.mark.parametrize('name, number', [
    ('CAP_CHOWN', 0), ('CAP_DAC_OVERRIDE', 1), ('CAP_KILL', 5), ('CAP_SETUID', 7), ('CAP_SETPCAP', 8),
    ('CAP_NET_BIND_SERVICE', 10), ('CAP_NET_ADMIN', 12), ('CAP_NET_RAW', 13), ('CAP_SYS_MODULE', 16),
    ('CAP_SYS_CHROOT', 18), ('CAP_SYS_PTRACE', 19), ('CAP_SYS_ADMIN', 21), ('CAP_SYS_RESOURCE', 24),
    ('CAP_MKNOD', 27), ('CAP_AUDIT_WRITE', 29), ('CAP_SETFCAP', 31), ('CAP_SYSLOG', 34), ('CAP_AUDIT_READ', 37),
    ('CAP_PERFMON', 38), ('CAP_BPF', 39), ('CAP_CHECKPOINT_RESTORE', 40),
])
def test_capability_numbers_are_the_kernels(name, number):
    assert caps.CAP_NUMBERS[name] == number
    assert caps.cap_name(number) == name


def test_table_is_complete_and_default_set_is_dockers():
    assert len(caps.CAPABILITIES) == 41 and len(set(caps.CAPABILITIES)) == 41
    assert caps.cap_name(41) == 'CAP_41'
    assert DEFAULT == {'CAP_' + n for n in ('CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID',
                                            'SETUID', 'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL',
                                            'AUDIT_WRITE')}
    # what `grep Cap /proc/self/status` shows in a default Docker container
    assert caps.caps_mask(caps.DEFAULT_CAPS) == 0xa80425fb


def test_masks_round_trip():
    assert caps.caps_from_mask(caps.caps_mask(caps.DEFAULT_CAPS)) == \
        tuple(sorted(caps.DEFAULT_CAPS, key=caps.CAP_NUMBERS.get))
    assert caps.cap_numbers(['CAP_SYS_ADMIN', 0, 'CAP_41', 'CAP_CHOWN']) == [0, 21, 41]
    assert caps.caps_mask([]) == 0
    with pytest.raises(InvalidArgument):
        caps.cap_numbers(['CAP_NOPE'])


# -- Docker's rules (moby oci/caps TweakCapabilities) ---------------------------------------------

def _without(*names):
    return DEFAULT - {'CAP_' + n for n in names}


def _with(*names):
    return DEFAULT | {'CAP_' + n for n in names}


@pytest.mark.parametrize('add, drop, privileged, expected', [
    # nothing to tweak: the default set
    (None, None, False, DEFAULT),
    ([], [], False, DEFAULT),
    # names with or without CAP_, in any case
    (['NET_ADMIN'], None, False, _with('NET_ADMIN')),
    (['net_admin'], None, False, _with('NET_ADMIN')),
    (['Cap_Net_Admin'], None, False, _with('NET_ADMIN')),
    ('SYS_PTRACE', None, False, _with('SYS_PTRACE')),
    ([' sys_time '], None, False, _with('SYS_TIME')),
    # adding a default capability changes nothing
    (['CHOWN'], None, False, DEFAULT),
    (None, ['chown', 'CAP_NET_RAW'], False, _without('CHOWN', 'NET_RAW')),
    # dropping what is not in the set is fine
    (None, ['SYS_ADMIN'], False, DEFAULT),
    # drops apply to the default set first, then adds: a cap both added and dropped stays
    (['MKNOD'], ['MKNOD'], False, DEFAULT),
    (['NET_ADMIN'], ['NET_ADMIN', 'KILL'], False, _with('NET_ADMIN') - {'CAP_KILL'}),
    # ALL in add: every capability but those dropped
    (['ALL'], None, False, EVERY),
    (['all'], ['NET_ADMIN', 'sys_admin'], False, EVERY - {'CAP_NET_ADMIN', 'CAP_SYS_ADMIN'}),
    # ALL in drop: only what is added
    (None, ['ALL'], False, set()),
    (['NET_BIND_SERVICE'], ['all'], False, {'CAP_NET_BIND_SERVICE'}),
    # ALL in add wins over ALL in drop (the add case is tested first)
    (['ALL'], ['ALL'], False, EVERY),
    # privileged: everything, whatever add and drop say
    (None, None, True, EVERY),
    (None, ['ALL'], True, EVERY),
])
def test_effective_caps_follow_docker(add, drop, privileged, expected):
    chosen = caps.effective_caps(add, drop, privileged)
    assert set(chosen) == expected
    assert list(chosen) == sorted(chosen, key=caps.CAP_NUMBERS.get)    # ascending, no repeats
    assert len(chosen) == len(set(chosen))


def test_all_is_limited_to_what_the_kernel_knows():
    chosen = caps.effective_caps(['ALL'], None, last_cap=37)
    assert chosen[-1] == 'CAP_AUDIT_READ' and len(chosen) == 38
    assert len(caps.effective_caps(privileged=True, last_cap=35)) == 36


@pytest.mark.parametrize('add, drop, option, shown', [
    (['NET_ADMN'], None, 'capabilities', 'NET_ADMN'),
    (None, ['bogus'], 'cap_drop', 'bogus'),
    (['CAP_ALL'], None, 'capabilities', 'CAP_ALL'),     # ALL has no CAP_ form (Docker)
    ([''], None, 'capabilities', '""'),
    (None, [5], 'cap_drop', '5'),
    (['CHOWN'], ['CAP_'], 'cap_drop', 'CAP_'),
])
def test_unknown_capabilities_name_option_and_value(add, drop, option, shown):
    with pytest.raises(InvalidArgument) as info:
        caps.effective_caps(add, drop)
    assert info.value.msg.startswith(option + ':')
    assert shown in info.value.msg
    assert info.value.details['option'] == option


# -- /proc/PID/status ------------------------------------------------------------------------------

STATUS = """Name:\tsh
Umask:\t0022
State:\tS (sleeping)
Uid:\t0\t0\t0\t0
CapInh:\t0000000000000000
CapPrm:\t00000000a80425fb
CapEff:\t00000000a80425fb
CapBnd:\t00000000a80425fb
CapAmb:\t0000000000000000
NoNewPrivs:\t1
Seccomp:\t2
"""


def test_parse_cap_status():
    state = security.parse_cap_status(STATUS)
    assert state == security.CapState(inheritable=0, permitted=0xa80425fb, effective=0xa80425fb,
                                      bounding=0xa80425fb, ambient=0, no_new_privs=True)
    assert set(state.names('effective')) == DEFAULT
    assert state.names('ambient') == ()


def test_parse_cap_status_of_an_old_kernel():
    state = security.parse_cap_status('CapInh:\t0\nCapPrm:\tffffffffff\nCapEff:\t0\nCapBnd:\tffffffffff\n')
    assert state.ambient == 0 and state.no_new_privs is None
    assert state.names('bounding') == caps.CAPABILITIES[:40]


def test_current_caps_reads_this_process():
    state = security.current_caps()
    assert isinstance(state.bounding, int) and state.no_new_privs in (True, False)
    with pytest.raises(NotFound):
        security.current_caps(pid=2 ** 30)


# -- masked and read-only paths: the data, and nothing done where nothing exists ---------------------

def test_runc_default_path_lists():
    assert security.MASKED_PATHS == (
        '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap')
    assert security.READONLY_PATHS == ('/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger')


def test_mask_and_readonly_skip_paths_that_do_not_exist(tmp_path):
    (tmp_path / 'proc').mkdir()
    (tmp_path / 'sys').symlink_to('/')     # resolved inside tmp_path: tmp_path itself, which has no 'firmware'
    assert security.mask_paths(str(tmp_path)) == []
    assert security.readonly_paths(str(tmp_path)) == []


# -- user resolution: runc's libcontainer/user rules ------------------------------------------------

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bob:x:1000:1000:Bob:/home/bob:/bin/sh
1234:x:4321:4321:numeric name:/home/num:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
nohome:x:2000:2000:::/bin/sh
"""
GROUP = """root:x:0:root
wheel:x:10:root,bob
staff:x:50: bob , alice
bob:x:1000:
nogroup:x:65534:
"""


@pytest.mark.parametrize('spec, expected', [
    # '' is root: the uid-0 entry, its gid and the groups listing "root"
    ('', ExecUser(0, 0, (0, 10), '/root')),
    (None, ExecUser(0, 0, (0, 10), '/root')),
    ('root', ExecUser(0, 0, (0, 10), '/root')),
    ('0', ExecUser(0, 0, (0, 10), '/root')),
    (0, ExecUser(0, 0, (0, 10), '/root')),
    # a name or its uid: passwd gid first, then every group listing the name
    ('bob', ExecUser(1000, 1000, (1000, 10, 50), '/home/bob')),
    ('1000', ExecUser(1000, 1000, (1000, 10, 50), '/home/bob')),
    ('nobody', ExecUser(65534, 65534, (65534,), '/nonexistent')),
    ('nohome', ExecUser(2000, 2000, (2000,), '/')),
    # an explicit group sets the gid and no supplementary groups are looked up
    ('bob:staff', ExecUser(1000, 50, (50,), '/home/bob')),
    ('bob:0', ExecUser(1000, 0, (0,), '/home/bob')),
    ('1000:999', ExecUser(1000, 999, (999,), '/home/bob')),
    ('bob:', ExecUser(1000, 1000, (1000, 10, 50), '/home/bob')),
    (':staff', ExecUser(0, 50, (50,), '/root')),
    # a numeric uid without an entry is fine: gid 0, home /
    ('5000', ExecUser(5000, 0, (0,), '/')),
    ('5000:5000', ExecUser(5000, 5000, (5000,), '/')),
    # numeric is always a uid, even when a user is named like a number
    ('1234', ExecUser(1234, 0, (0,), '/')),
    ('4321', ExecUser(4321, 4321, (4321,), '/home/num')),
])
def test_lookup_user(spec, expected):
    assert security.lookup_user(spec, PASSWD, GROUP) == expected


@pytest.mark.parametrize('spec, expected', [
    ('', ExecUser(0, 0, (0,), '/')),
    ('1000', ExecUser(1000, 0, (0,), '/')),
    ('1000:1000', ExecUser(1000, 1000, (1000,), '/')),
])
def test_lookup_user_without_passwd_or_group(spec, expected):
    assert security.lookup_user(spec, None, None) == expected


def test_lookup_user_without_group_file():
    assert security.lookup_user('bob', PASSWD, None) == ExecUser(1000, 1000, (1000,), '/home/bob')


@pytest.mark.parametrize('spec, passwd, group, error, shown', [
    ('alice', PASSWD, GROUP, NotFound, 'no user "alice"'),
    ('alice', None, None, NotFound, 'no user "alice"'),
    ('bob:admins', PASSWD, GROUP, NotFound, 'no group "admins"'),
    ('bob:staff', PASSWD, None, NotFound, 'no group "staff"'),
    ('a:b:c', PASSWD, GROUP, InvalidArgument, '"a:b:c"'),
    ('99999999999', PASSWD, GROUP, InvalidArgument, 'out of range'),
    ('bob:4294967296', PASSWD, GROUP, InvalidArgument, 'out of range'),
    ('-1', PASSWD, GROUP, NotFound, 'no user "-1"'),
    ('bob\0', PASSWD, GROUP, InvalidArgument, 'user'),
    (['bob'], PASSWD, GROUP, InvalidArgument, 'user'),
])
def test_lookup_user_errors_name_option_and_value(spec, passwd, group, error, shown):
    with pytest.raises(error) as info:
        security.lookup_user(spec, passwd, group)
    assert info.value.msg.startswith('user ')
    assert shown in info.value.msg
    assert info.value.details['option'] == 'user'


def test_passwd_and_group_parsers_skip_junk():
    text = '# comment\n\n+::::::\nbad:x:abc:0::/:/bin/sh\nshort:x\nneg:x:-1:0::/:\nok:x:7:8\n  sp:x:9:9:g:/h:/s  \n'
    assert security.parse_passwd(text) == [
        security.PasswdEntry('ok', 7, 8, '', '', ''),
        security.PasswdEntry('sp', 9, 9, 'g', '/h', '/s'),
    ]
    assert security.parse_group('g:x:5\nh:x:6:a,,b\nbad:x:q:a\n') == [
        security.GroupEntry('g', 5, ()), security.GroupEntry('h', 6, ('a', 'b'))]


# -- reading /etc/passwd from an untrusted rootfs ---------------------------------------------------

SECRET = 'secret:x:777:777:host only:/secret:/bin/sh\n'


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / 'rootfs'
    (root / 'etc').mkdir(parents=True)
    (root / 'etc' / 'passwd').write_text(PASSWD)
    (root / 'etc' / 'group').write_text(GROUP)
    return root


@pytest.fixture
def outside(tmp_path):
    """Files of "the host": the same names a hostile image would aim at, holding a user that must stay unseen."""
    host_etc = tmp_path / 'host' / 'etc'
    host_etc.mkdir(parents=True)
    (host_etc / 'shadow').write_text(SECRET)
    (host_etc / 'passwd').write_text(SECRET)
    (host_etc / 'group').write_text('secret:x:777:bob\n')
    return host_etc


def test_resolve_user_from_a_rootfs(rootfs):
    assert security.resolve_user('bob', str(rootfs)) == ExecUser(1000, 1000, (1000, 10, 50), '/home/bob')
    fd = os.open(str(rootfs), os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert security.resolve_user('bob:staff', fd) == ExecUser(1000, 50, (50,), '/home/bob')
        os.fstat(fd)        # still ours, still open
    finally:
        os.close(fd)


def test_resolve_user_in_a_rootfs_without_etc(tmp_path):
    root = tmp_path / 'empty'
    root.mkdir()
    assert security.resolve_user('', str(root)) == ExecUser(0, 0, (0,), '/')
    assert security.resolve_user('33:33', str(root)) == ExecUser(33, 33, (33,), '/')
    with pytest.raises(NotFound):
        security.resolve_user('bob', str(root))


def test_symlink_inside_the_rootfs_is_followed_there(rootfs):
    (rootfs / 'usr' / 'lib').mkdir(parents=True)
    os.rename(rootfs / 'etc' / 'passwd', rootfs / 'usr' / 'lib' / 'passwd')
    (rootfs / 'etc' / 'passwd').symlink_to('../usr/lib/passwd')
    assert security.resolve_user('bob', str(rootfs)).uid == 1000


@pytest.mark.parametrize('make_link', [
    'absolute-to-host-file', 'relative-escape', 'absolute-etc-dir', 'relative-etc-dir', 'dotdot-chain',
])
def test_hostile_symlinked_passwd_never_reads_outside(rootfs, outside, make_link):
    etc = rootfs / 'etc'
    if make_link == 'absolute-to-host-file':
        (etc / 'passwd').unlink()
        (etc / 'passwd').symlink_to(outside / 'shadow')
    elif make_link == 'relative-escape':
        (etc / 'passwd').unlink()
        (etc / 'passwd').symlink_to('../' * 12 + os.path.relpath(outside / 'shadow', '/'))
    elif make_link == 'dotdot-chain':
        (etc / 'passwd').unlink()
        (etc / 'up').symlink_to('../..')
        (etc / 'passwd').symlink_to('up/' + os.path.relpath(outside / 'shadow', rootfs.parent))
    else:
        for child in etc.iterdir():
            child.unlink()
        etc.rmdir()
        if make_link == 'absolute-etc-dir':
            etc.symlink_to(outside)
        else:
            etc.symlink_to(os.path.relpath(outside, rootfs))
    with pytest.raises(NotFound):
        security.resolve_user('secret', str(rootfs))
    # the link was resolved as if the rootfs were '/': it names nothing there, so no passwd at all
    assert security.resolve_user('', str(rootfs)) == ExecUser(0, 0, (0,), '/')


def test_absolute_symlink_lands_inside_the_rootfs(rootfs):
    """/etc/passwd -> /etc/shadow reads the image's own /etc/shadow, never the host's."""
    (rootfs / 'etc' / 'shadow').write_text('inside:x:5:5::/in:/bin/sh\n')
    (rootfs / 'etc' / 'passwd').unlink()
    (rootfs / 'etc' / 'passwd').symlink_to('/etc/shadow')
    assert security.resolve_user('inside', str(rootfs)) == ExecUser(5, 5, (5,), '/in')
    with pytest.raises(NotFound):
        security.resolve_user('root', str(rootfs))


@pytest.mark.parametrize('kind', ['fifo', 'directory', 'loop'])
def test_special_passwd_is_refused_without_hanging(rootfs, kind):
    passwd = rootfs / 'etc' / 'passwd'
    passwd.unlink()
    if kind == 'fifo':
        os.mkfifo(passwd)
        expected = UnsafeContent
    elif kind == 'directory':
        passwd.mkdir()
        expected = UnsafeContent
    else:
        passwd.symlink_to('/etc/passwd')
        expected = KernelError
    with pytest.raises(expected) as info:
        security.resolve_user('bob', str(rootfs))
    assert isinstance(info.value, CtrError) and '/etc/passwd' in info.value.msg


def test_malformed_spec_is_refused_before_reading(tmp_path):
    with pytest.raises(InvalidArgument):
        security.resolve_user('a:b:c', str(tmp_path / 'does-not-exist'))


def test_open_in_root_clamps_dotdot_at_the_root(rootfs):
    root_fd = os.open(str(rootfs), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = security.open_in_root(root_fd, '../../../etc/./passwd')
        try:
            assert os.fstat(fd).st_ino == os.stat(rootfs / 'etc' / 'passwd').st_ino
        finally:
            os.close(fd)
        fd = security.open_in_root(root_fd, '/..')
        try:
            assert os.fstat(fd).st_ino == os.stat(rootfs).st_ino
        finally:
            os.close(fd)
        with pytest.raises(NotADirectoryError):
            security.open_in_root(root_fd, '/etc/passwd/x')
        with pytest.raises(FileNotFoundError):
            security.open_in_root(root_fd, '/nope/passwd')
    finally:
        os.close(root_fd)


def test_the_seccomp_program_refuses_by_capability_and_lets_the_rest_through():
    import struct
    from ctr.runtime import seccomp

    def run_bpf(prog, nr, arch=0xC000003E, arg0=0):
        insns = [struct.unpack('=HBBI', prog[i:i + 8]) for i in range(0, len(prog), 8)]
        data = {0: nr, 4: arch, 16: arg0}
        pc, acc = 0, 0
        while True:
            code, jt, jf, k = insns[pc]
            if code == 0x20:
                acc = data[k]
            elif code == 0x06:
                return k
            else:
                taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
                pc += jt if taken else jf
            pc += 1

    default = seccomp.program(['CAP_CHOWN', 'CAP_SETUID'], 'x86_64')
    admin = seccomp.program(['CAP_SYS_ADMIN'], 'x86_64')
    allow, eperm, enosys = 0x7FFF0000, 0x50001, 0x50026
    assert run_bpf(default, 0) == allow                            # read
    assert run_bpf(default, 250) == eperm                          # keyctl: never
    assert run_bpf(admin, 250) == eperm
    assert run_bpf(default, 272) == eperm and run_bpf(admin, 272) == allow     # unshare needs SYS_ADMIN
    assert run_bpf(default, 56, arg0=0x11) == allow               # clone (fork-like)
    assert run_bpf(default, 56, arg0=0x10000000) == eperm         # clone(CLONE_NEWUSER)
    assert run_bpf(admin, 56, arg0=0x10000000) == allow
    assert run_bpf(default, 435) == enosys                         # clone3: libc falls back to clone
    assert run_bpf(default, 0, arch=0x40000003) == eperm           # i386 calls
    assert run_bpf(default, 0x40000000) == eperm                   # x32 calls
    assert seccomp.program([], 'sparc64') is None

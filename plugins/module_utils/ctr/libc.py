# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one seam for system calls the ``os`` module lacks.

One small function per call, each raising :class:`OSError` with the errno and
the path it was about, so a failure reads ``mount "/x": permission denied``
once wrapped by :meth:`KernelError.from_oserror`. libc is loaded lazily: the
image commands never pay for it.
"""

from __future__ import annotations

import os
import struct

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_SYNCHRONOUS = 0x10
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
# umount2(2) flags
MNT_FORCE = 0x1
MNT_DETACH = 0x2
# namespaces (clone(2) flags)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36

_libc = None
ctypes = None       # imported on the first call: commands that make no system call never pay for it


def _lib():
    global _libc, ctypes
    if _libc is None:
        import ctypes as module
        ctypes = module
        try:
            _libc = ctypes.CDLL('libc.so.6', use_errno=True)
        except OSError:             # not glibc: the symbols of the running process
            _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result, call, path=None):
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, '%s: %s' % (call, os.strerror(err)) if path is None else os.strerror(err), path)
    return result


def _number(call, table):
    """The system call number of ``call`` for this process's ABI, from ``table`` (64-bit machines).

    Keyed by the kernel's machine name, which is this process's ABI only for a 64-bit process: a
    32-bit Python on a 64-bit kernel (i386, armhf userlands) has other numbers, and gets ENOSYS.
    """
    machine = os.uname().machine
    nr = table.get(machine) if struct.calcsize('P') == 8 else None
    if nr is None:
        raise OSError(38, '%s: no system call number known for a %d-bit process on %s'
                      % (call, struct.calcsize('P') * 8, machine))
    return nr


def _b(path):
    return None if path is None else os.fsencode(path)


def mount(source, target, fstype, flags=0, data=None):
    """mount(2). ``data`` is the comma-separated option string."""
    return _check(_lib().mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
                  'mount', target)


def umount(target, flags=0):
    """umount2(2)."""
    return _check(_lib().umount2(_b(target), ctypes.c_int(flags)), 'umount', target)


def close_range(first, last=0xFFFFFFFF):
    """close_range(2) (Linux 5.9, same number everywhere): closes ``first``..``last`` in one call."""
    return _check(_lib().syscall(ctypes.c_long(436), ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(0)),
                  'close_range')


def mount_setattr_rdonly(fd, recursive=True):
    """mount_setattr(2) (Linux 5.12, same number everywhere) setting MOUNT_ATTR_RDONLY on the mount
    ``fd`` is, and with ``recursive`` on every mount below it (AT_EMPTY_PATH | AT_RECURSIVE)."""
    attr = (ctypes.c_uint64 * 4)(0x1, 0, 0, 0)          # struct mount_attr {attr_set, attr_clr, propagation, userns_fd}
    flags = 0x1000 | (0x8000 if recursive else 0)
    return _check(_lib().syscall(ctypes.c_long(442), ctypes.c_int(fd), b'', ctypes.c_uint(flags), attr,
                                 ctypes.c_size_t(32)), 'mount_setattr')


def unshare(flags):
    return _check(_lib().unshare(ctypes.c_int(flags)), 'unshare')


def setns(fd, nstype=0):
    return _check(_lib().setns(ctypes.c_int(fd), ctypes.c_int(nstype)), 'setns')


def pivot_root(new_root, put_old):
    """pivot_root(2) has no glibc wrapper: it goes through syscall(2)."""
    nr = _number('pivot_root', {'x86_64': 155, 'aarch64': 41, 'riscv64': 41, 'ppc64le': 203, 's390x': 217})
    return _check(_lib().syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), 'pivot_root', new_root)


def sethostname(name):
    data = name.encode()
    return _check(_lib().sethostname(data, ctypes.c_size_t(len(data))), 'sethostname')


def join_session_keyring(name=None):
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a fresh session keyring, so no key of the caller is reachable."""
    nr = _number('keyctl', {'x86_64': 250, 'aarch64': 219, 'riscv64': 219, 'ppc64le': 288, 's390x': 280})
    return _check(_lib().syscall(ctypes.c_long(nr), ctypes.c_int(1), _b(name)), 'keyctl')


def signal_default(signum):
    """rt_sigaction(signum, SIG_DFL) straight to the kernel.

    For the signals glibc keeps to itself (32, 33), which Python's signal module
    cannot touch, but whose SIG_IGN a caller may still have left to survive execve.
    """
    nr = _number('rt_sigaction', {'x86_64': 13, 'aarch64': 134, 'riscv64': 134, 'ppc64le': 173, 's390x': 174})
    lib = _lib()
    action = ctypes.create_string_buffer(64)        # handler SIG_DFL (0), no flags, empty mask
    return _check(lib.syscall(ctypes.c_long(nr), ctypes.c_int(signum), action, None, ctypes.c_size_t(8)),
                  'rt_sigaction')


def seccomp_filter(program):
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &sock_fprog): ``program`` is the bytes of its
    ``struct sock_filter`` array. Needs CAP_SYS_ADMIN or no_new_privs; exec keeps the filter."""
    lib = _lib()
    count = len(program) // 8
    insns = ctypes.create_string_buffer(program, len(program))

    class _Prog(ctypes.Structure):
        _fields_ = [('len', ctypes.c_ushort), ('filter', ctypes.c_void_p)]
    prog = _Prog(count, ctypes.addressof(insns))
    return _check(lib.prctl(ctypes.c_int(22), ctypes.c_ulong(2), ctypes.byref(prog), ctypes.c_ulong(0),
                            ctypes.c_ulong(0)), 'prctl PR_SET_SECCOMP')


# -- eBPF (bpf(2)): the cgroup device filter ------------------------------------------------------
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6                   # attach type
BPF_F_ALLOW_MULTI = 2                   # attach flag: programs of parents and children all run
_BPF_PROG_LOAD, _BPF_PROG_ATTACH, _BPF_PROG_DETACH, _BPF_PROG_GET_FD_BY_ID, _BPF_PROG_QUERY = 5, 8, 9, 13, 16
_BPF_ATTR_SIZE = 128                    # bigger than every field used here; the kernel wants the rest zero


def _bpf(cmd, attr):
    nr = _number('bpf', {'x86_64': 321, 'aarch64': 280, 'riscv64': 280, 'ppc64le': 361, 's390x': 351})
    return _check(_lib().syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(_BPF_ATTR_SIZE)), 'bpf')


def bpf_prog_load(prog_type, program, name, license='GPL', log_size=0):
    """BPF_PROG_LOAD: the new program's fd. ``program`` is the bytes of its ``struct bpf_insn`` array.

    With ``log_size``, a failure's OSError carries the verifier's log (its last lines) in its text.
    """
    _lib()
    insns = ctypes.create_string_buffer(program, len(program))
    lic = ctypes.create_string_buffer(license.encode() + b'\0')
    log = ctypes.create_string_buffer(log_size) if log_size else None
    attr = ctypes.create_string_buffer(struct.pack(
        '=IIQQIIQII16s', prog_type, len(program) // 8, ctypes.addressof(insns), ctypes.addressof(lic),
        1 if log_size else 0, log_size, ctypes.addressof(log) if log else 0, 0, 0, name.encode()[:15]),
        _BPF_ATTR_SIZE)
    try:
        return _bpf(_BPF_PROG_LOAD, attr)
    except OSError as exc:
        text = log.value.decode('utf-8', 'replace').strip() if log else ''
        if text:
            raise OSError(exc.errno, 'bpf: %s; the verifier says: %s' % (os.strerror(exc.errno),
                                                                         ' / '.join(text.splitlines()[-3:]))) from None
        raise


def bpf_prog_attach(target_fd, prog_fd, attach_type, flags=0):
    """BPF_PROG_ATTACH of program ``prog_fd`` to the cgroup directory ``target_fd``."""
    _lib()
    return _bpf(_BPF_PROG_ATTACH, ctypes.create_string_buffer(
        struct.pack('=IIII', target_fd, prog_fd, attach_type, flags), _BPF_ATTR_SIZE))


def bpf_prog_detach(target_fd, prog_fd, attach_type):
    """BPF_PROG_DETACH of program ``prog_fd`` from the cgroup directory ``target_fd``."""
    _lib()
    return _bpf(_BPF_PROG_DETACH, ctypes.create_string_buffer(
        struct.pack('=III', target_fd, prog_fd, attach_type), _BPF_ATTR_SIZE))


def bpf_prog_query(target_fd, attach_type, limit=64):
    """BPF_PROG_QUERY: the IDs of the programs attached to the cgroup ``target_fd`` itself (not its parents)."""
    _lib()
    ids = (ctypes.c_uint32 * limit)()
    attr = ctypes.create_string_buffer(struct.pack('=IIIIQI', target_fd, attach_type, 0, 0, ctypes.addressof(ids),
                                                   limit), _BPF_ATTR_SIZE)
    _bpf(_BPF_PROG_QUERY, attr)
    count = struct.unpack_from('=I', attr.raw, 24)[0]
    return list(ids[:min(count, limit)])


def bpf_prog_get_fd_by_id(prog_id):
    """BPF_PROG_GET_FD_BY_ID: an fd of the loaded program ``prog_id``."""
    _lib()
    return _bpf(_BPF_PROG_GET_FD_BY_ID, ctypes.create_string_buffer(struct.pack('=I', prog_id), _BPF_ATTR_SIZE))


def link_up(name):
    """Set a network interface up (SIOCGIFFLAGS / SIOCSIFFLAGS on a datagram socket)."""
    import _socket      # not socket: its enum set-up costs milliseconds on every container start
    import fcntl
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack('16sH14x', name.encode(), 0)
        flags = struct.unpack('16sH14x', fcntl.ioctl(sock.fileno(), siocgifflags, ifreq))[1]
        fcntl.ioctl(sock.fileno(), siocsifflags, struct.pack('16sH14x', name.encode(), flags | iff_up))
    finally:
        sock.close()


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    return _check(_lib().prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                               ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), 'prctl')


# -- capabilities (capget/capset, version 3: two 32-bit words per set) -------------------------
# prctl(2) options for the capability sets and the privilege flags
PR_GET_KEEPCAPS = 7
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_IS_SET = 1
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capget(pid=0):
    """capget(2): the (effective, permitted, inheritable) sets of ``pid`` (0: this thread) as 64-bit masks."""
    lib = _lib()
    header = ctypes.create_string_buffer(struct.pack('=Ii', _LINUX_CAPABILITY_VERSION_3, pid), 8)
    data = ctypes.create_string_buffer(24)      # two {effective, permitted, inheritable} words
    _check(lib.capget(header, data), 'capget')
    words = struct.unpack('=6I', data.raw)
    return tuple(words[i] | words[i + 3] << 32 for i in range(3))


def capset(effective, permitted, inheritable):
    """capset(2) for this thread; each set is a 64-bit mask (bit N: capability N)."""
    lib = _lib()
    header = ctypes.create_string_buffer(struct.pack('=Ii', _LINUX_CAPABILITY_VERSION_3, 0), 8)
    low, high = ((effective, permitted, inheritable), (effective >> 32, permitted >> 32, inheritable >> 32))
    data = ctypes.create_string_buffer(struct.pack('=6I', *[v & 0xffffffff for v in low + high]), 24)
    return _check(lib.capset(header, data), 'capset')

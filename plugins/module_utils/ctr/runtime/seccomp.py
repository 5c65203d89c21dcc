# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A seccomp filter for containers: the system calls Docker's default profile keeps from them.

Docker's profile is an allow list of some 350 calls; this is the other side of it, the calls
it refuses, which is what matters on a kernel we know: the keyring (not namespaced), kernel
modules, kexec, swap, the clock, BPF and perf, userfaultfd and io_uring, the new mount API,
and making or entering namespaces (``unshare``, ``setns``, ``clone`` with namespace flags:
user namespaces need no capability and open much of the kernel). A call whose capability the
container has is let through, as Docker's profile does (``CAP_SYS_ADMIN`` allows ``mount``,
``unshare``...). ``clone3`` gives ENOSYS so that libc falls back to ``clone``, whose flags a
filter can see. A refused call fails with EPERM.

Only the native ABI is let in: 32-bit (i386, x32) calls on x86_64 are refused. A privileged
container gets no filter, as with Docker. The filter is installed by the start sequence and
by exec (``libc.seccomp_filter``) while they still hold every capability (no ``no_new_privs``
needed), just before they take the container's identity; the program is made on the host
side first (:func:`for_caps`), as nothing can be imported inside the container.
"""

from __future__ import annotations

import errno
import os
import struct


# name -> the capability that lets it through (None: never)
DENIED = {
    'add_key': None, 'keyctl': None, 'request_key': None, 'kexec_load': None, 'kexec_file_load': None,
    'userfaultfd': None, 'io_uring_setup': None, 'io_uring_enter': None, 'io_uring_register': None,
    'nfsservctl': None, 'swapon': None, 'swapoff': None,
    'acct': 'CAP_SYS_PACCT', 'init_module': 'CAP_SYS_MODULE', 'finit_module': 'CAP_SYS_MODULE',
    'delete_module': 'CAP_SYS_MODULE', 'reboot': 'CAP_SYS_BOOT', 'kcmp': 'CAP_SYS_PTRACE',
    'settimeofday': 'CAP_SYS_TIME', 'clock_settime': 'CAP_SYS_TIME', 'clock_adjtime': 'CAP_SYS_TIME',
    'iopl': 'CAP_SYS_RAWIO', 'ioperm': 'CAP_SYS_RAWIO', 'vhangup': 'CAP_SYS_TTY_CONFIG',
    'get_mempolicy': 'CAP_SYS_NICE', 'set_mempolicy': 'CAP_SYS_NICE', 'mbind': 'CAP_SYS_NICE',
    'move_pages': 'CAP_SYS_NICE', 'syslog': 'CAP_SYSLOG', 'open_by_handle_at': 'CAP_DAC_READ_SEARCH',
    'bpf': 'CAP_SYS_ADMIN', 'perf_event_open': 'CAP_SYS_ADMIN', 'lookup_dcookie': 'CAP_SYS_ADMIN',
    'mount': 'CAP_SYS_ADMIN', 'umount2': 'CAP_SYS_ADMIN', 'pivot_root': 'CAP_SYS_ADMIN',
    'name_to_handle_at': 'CAP_SYS_ADMIN', 'quotactl': 'CAP_SYS_ADMIN', 'setns': 'CAP_SYS_ADMIN',
    'unshare': 'CAP_SYS_ADMIN', 'sethostname': 'CAP_SYS_ADMIN', 'setdomainname': 'CAP_SYS_ADMIN',
    'open_tree': 'CAP_SYS_ADMIN', 'move_mount': 'CAP_SYS_ADMIN', 'fsopen': 'CAP_SYS_ADMIN',
    'fsconfig': 'CAP_SYS_ADMIN', 'fsmount': 'CAP_SYS_ADMIN', 'fspick': 'CAP_SYS_ADMIN',
    'mount_setattr': 'CAP_SYS_ADMIN',
}
_NAMESPACE_FLAGS = 0x7E020000       # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

# (AUDIT_ARCH, {name: number}) per machine; calls a table lacks do not exist there
_ARCHES = {
    'x86_64': (0xC000003E, {
        'add_key': 248, 'keyctl': 250, 'request_key': 249, 'kexec_load': 246, 'kexec_file_load': 320,
        'userfaultfd': 323, 'io_uring_setup': 425, 'io_uring_enter': 426, 'io_uring_register': 427,
        'nfsservctl': 180, 'swapon': 167, 'swapoff': 168, 'acct': 163, 'init_module': 175, 'finit_module': 313,
        'delete_module': 176, 'reboot': 169, 'kcmp': 312, 'settimeofday': 164, 'clock_settime': 227,
        'clock_adjtime': 305, 'iopl': 172, 'ioperm': 173, 'vhangup': 153, 'get_mempolicy': 239,
        'set_mempolicy': 238, 'mbind': 237, 'move_pages': 279, 'syslog': 103, 'open_by_handle_at': 304,
        'bpf': 321, 'perf_event_open': 298, 'lookup_dcookie': 212, 'mount': 165, 'umount2': 166,
        'pivot_root': 155, 'name_to_handle_at': 303, 'quotactl': 179, 'setns': 308, 'unshare': 272,
        'sethostname': 170, 'setdomainname': 171, 'open_tree': 428, 'move_mount': 429, 'fsopen': 430,
        'fsconfig': 431, 'fsmount': 432, 'fspick': 433, 'mount_setattr': 442,
        'clone': 56, 'clone3': 435}),
    'aarch64': (0xC00000B7, {
        'add_key': 217, 'keyctl': 219, 'request_key': 218, 'kexec_load': 104, 'kexec_file_load': 294,
        'userfaultfd': 282, 'io_uring_setup': 425, 'io_uring_enter': 426, 'io_uring_register': 427,
        'nfsservctl': 42, 'swapon': 224, 'swapoff': 225, 'acct': 89, 'init_module': 105, 'finit_module': 273,
        'delete_module': 106, 'reboot': 142, 'kcmp': 272, 'settimeofday': 170, 'clock_settime': 112,
        'clock_adjtime': 266, 'vhangup': 58, 'get_mempolicy': 236, 'set_mempolicy': 237, 'mbind': 235,
        'move_pages': 239, 'syslog': 116, 'open_by_handle_at': 265, 'bpf': 280, 'perf_event_open': 241,
        'lookup_dcookie': 18, 'mount': 40, 'umount2': 39, 'pivot_root': 41, 'name_to_handle_at': 264,
        'quotactl': 60, 'setns': 268, 'unshare': 97, 'sethostname': 161, 'setdomainname': 162,
        'open_tree': 428, 'move_mount': 429, 'fsopen': 430, 'fsconfig': 431, 'fsmount': 432, 'fspick': 433,
        'mount_setattr': 442, 'clone': 220, 'clone3': 435}),
}

# classic BPF, as seccomp reads it (struct seccomp_data: nr at 0, arch at 4, args at 16)
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_X32_BIT = 0x40000000


def program(caps, machine=None):
    """The filter for a container holding ``caps`` (names), as bytes of ``struct sock_filter``; None when
    this machine has no table (no filter) -- the caller installs it with :func:`install`."""
    arch, numbers = _ARCHES.get(machine or os.uname().machine, (None, None))
    if arch is None:
        return None
    held = set(caps or ())
    denied = sorted(numbers[name] for name, cap in DENIED.items() if name in numbers and cap not in held)
    admin = 'CAP_SYS_ADMIN' in held
    insns = [(_LD_W_ABS, 0, 0, 4), (_JEQ, 1, 0, arch), ('deny',), (_LD_W_ABS, 0, 0, 0)]
    if arch == 0xC000003E:              # x86_64: the x32 ABI sets this bit in the number
        insns.append((_JGE, 'deny', 0, _X32_BIT))
    insns += [(_JEQ, 'deny', 0, nr) for nr in denied]
    if not admin:
        insns += [(_JEQ, 'enosys', 0, numbers['clone3']),
                  (_JEQ, 0, 'allow', numbers['clone']),
                  (_LD_W_ABS, 0, 0, 16),                     # clone's flags (the low word of args[0])
                  (_JSET, 'deny', 0, _NAMESPACE_FLAGS)]
    labels = {'allow': len(insns), 'deny': len(insns) + 1, 'enosys': len(insns) + 2}
    insns += [(_RET, 0, 0, _ALLOW), (_RET, 0, 0, _ERRNO | errno.EPERM), (_RET, 0, 0, _ERRNO | errno.ENOSYS)]
    out = []
    for index, insn in enumerate(insns):
        if insn == ('deny',):
            insn = (_RET, 0, 0, _ERRNO | errno.EPERM)
        code, jt, jf, k = insn
        jt = labels[jt] - index - 1 if isinstance(jt, str) else jt
        jf = labels[jf] - index - 1 if isinstance(jf, str) else jf
        out.append(struct.pack('=HBBI', code, jt, jf, k))
    return b''.join(out)


def for_caps(caps):
    """The program for a container's capability list (numbers or names); None when privileged (``caps``
    None) or on a machine without a table. Made before the start sequence leaves the host's files."""
    if caps is None:
        return None
    from .caps import cap_name
    return program([cap_name(c) if isinstance(c, int) else c for c in caps])


__all__ = ['DENIED', 'for_caps', 'program']

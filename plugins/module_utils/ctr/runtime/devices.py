# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device nodes a container may create and open, written for both kernels' device filters.

A default container holds ``CAP_MKNOD`` (Docker's default set), and an image's layers may
carry device nodes; what keeps it off the host's disks is the kernel's device check, which
allows only the rules below. The same rules are written two ways:

* cgroup v1: lines for the ``devices`` controller's ``devices.allow`` (after ``devices.deny``
  of everything), see :func:`v1_lines`;
* cgroup v2, which has no devices file: an eBPF program of type
  ``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to the container's cgroup2 directory, see
  :func:`program` and :func:`attach`. The kernel runs it on every ``mknod`` and on every open
  of a device node by a process in that cgroup; it returns 1 (allow) when a rule matches,
  else 0 (deny, ``EPERM``). Programs a parent cgroup holds (systemd's) run as well: the
  attach uses ``BPF_F_ALLOW_MULTI``, so every one of them must allow.

A privileged container gets neither.
"""

from __future__ import annotations

import errno
import os
import struct
import sys

from .. import libc
from ..errors import KernelError
from ..records import record

MKNOD, READ, WRITE = 1, 2, 4        # the access bits of struct bpf_cgroup_dev_ctx
BLOCK, CHAR = 1, 2                  # its device types
_ACCESS = {'m': MKNOD, 'r': READ, 'w': WRITE}
_KINDS = {'a': None, 'b': BLOCK, 'c': CHAR}


@record(frozen=True)
class Rule:
    """One allow rule: ``kind`` ``a`` (all), ``b`` or ``c``; ``major``/``minor`` None for any."""

    kind: str
    major: int | None
    minor: int | None
    access: str                     # letters of "rwm"

    def __post_init__(self):
        if (self.kind not in _KINDS or not self.access or set(self.access) - set('rwm')
                or not (self.major is None or 0 <= self.major < 1 << 12)
                or not (self.minor is None or 0 <= self.minor < 1 << 20)):
            raise ValueError('bad device rule %r' % (self,))

    @property
    def line(self):
        """The rule as a v1 ``devices.allow`` line: ``c 1:3 rwm``."""
        major, minor = ('*' if value is None else str(value) for value in (self.major, self.minor))
        return '%s %s:%s %s' % (self.kind, major, minor, self.access)


# Docker's defaults: any node may be created (mknod), only these opened: null, zero, full,
# random, urandom, tty, console, ptmx, and the pseudo-terminals under /dev/pts.
DEFAULT_RULES = (
    Rule('c', None, None, 'm'), Rule('b', None, None, 'm'),
    Rule('c', 1, 3, 'rwm'), Rule('c', 1, 5, 'rwm'), Rule('c', 1, 7, 'rwm'), Rule('c', 1, 8, 'rwm'),
    Rule('c', 1, 9, 'rwm'), Rule('c', 5, 0, 'rwm'), Rule('c', 5, 1, 'rwm'), Rule('c', 5, 2, 'rwm'),
    Rule('c', 136, None, 'rwm'),
)


def v1_lines(rules=DEFAULT_RULES):
    """The ``devices.allow`` lines of ``rules``, to write after ``devices.deny`` of ``a``."""
    return tuple(rule.line for rule in rules)


def allows(rules, kind, major, minor, access):
    """Whether ``rules`` allow ``access`` (bits of READ, WRITE, MKNOD) to device ``kind`` (BLOCK or CHAR)
    ``major:minor``: the meaning :func:`program` compiles, in Python."""
    for rule in rules:
        if (_KINDS[rule.kind] in (None, kind) and rule.major in (None, major) and rule.minor in (None, minor)
                and not access & ~_mask(rule.access)):
            return True
    return False


def _mask(letters):
    bits = 0
    for letter in letters:
        bits |= _ACCESS[letter]
    return bits


# -- the eBPF program --------------------------------------------------------------------------------
# struct bpf_insn: code (8 bits), dst_reg and src_reg (4 bits each), off (s16), imm (s32).
_LDX_W = 0x61           # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
_AND32_K = 0x54         # BPF_ALU | BPF_AND | BPF_K: dst = (u32)(dst & imm)
_RSH32_K = 0x74         # BPF_ALU | BPF_RSH | BPF_K: dst = (u32)(dst >> imm)
_MOV64_X = 0xbf         # BPF_ALU64 | BPF_MOV | BPF_X: dst = src
_MOV64_K = 0xb7         # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
_JNE_K = 0x55           # BPF_JMP | BPF_JNE | BPF_K: if dst != imm, skip off instructions
_EXIT = 0x95            # BPF_JMP | BPF_EXIT: return r0


def _insn(code, dst=0, src=0, off=0, imm=0):
    regs = (dst | src << 4) if sys.byteorder == 'little' else (dst << 4 | src)
    return struct.pack('=BBhi', code, regs, off, imm)


def program(rules=DEFAULT_RULES):
    """The bytes of a ``BPF_PROG_TYPE_CGROUP_DEVICE`` program that returns 1 when one of ``rules``
    allows the access, else 0.

    Registers: r2 the device type, r3 the access bits, r4 the major, r5 the minor, all read
    from the context (``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}``,
    ``access_type`` = access << 16 | type) before the rules; r1 is scratch after that.
    """
    code = [
        (_LDX_W, 2, 1, 0, 0), (_AND32_K, 2, 0, 0, 0xffff),
        (_LDX_W, 3, 1, 0, 0), (_RSH32_K, 3, 0, 0, 16),
        (_LDX_W, 4, 1, 4, 0),
        (_LDX_W, 5, 1, 8, 0),
    ]
    for rule in rules:
        block = []                  # (code, dst, src, imm) with a jump to the next rule for each test
        if _KINDS[rule.kind] is not None:
            block.append((_JNE_K, 2, 0, _KINDS[rule.kind]))
        mask = _mask(rule.access)
        if mask != MKNOD | READ | WRITE:
            block += [(_MOV64_X, 1, 3, 0), (_AND32_K, 1, 0, ~mask), (_JNE_K, 1, 0, 0)]
        if rule.major is not None:
            block.append((_JNE_K, 4, 0, rule.major))
        if rule.minor is not None:
            block.append((_JNE_K, 5, 0, rule.minor))
        block += [(_MOV64_K, 0, 0, 1), (_EXIT, 0, 0, 0)]
        for index, (op, dst, src, imm) in enumerate(block):
            off = len(block) - index - 1 if op == _JNE_K else 0        # past the block's end
            code.append((op, dst, src, off, imm))
        if len(block) == 2:
            return _encode(code)    # a rule that allows everything: what follows could never run
    code += [(_MOV64_K, 0, 0, 0, 0), (_EXIT, 0, 0, 0, 0)]
    return _encode(code)


def _encode(code):
    return b''.join(_insn(op, dst, src, off, imm) for op, dst, src, off, imm in code)


# -- attaching it to a cgroup2 directory -----------------------------------------------------------

def attach(directory, rules=DEFAULT_RULES):
    """Load the program of ``rules`` and attach it to the cgroup2 ``directory``, replacing any device
    program attached there before (a directory reused after a crash). :class:`KernelError` when the
    kernel refuses."""
    fd = _open(directory)
    try:
        try:
            earlier = libc.bpf_prog_query(fd, libc.BPF_CGROUP_DEVICE)
            prog = _load(program(rules))
        except OSError as exc:
            raise _error('load the device filter for', directory, exc) from None
        try:
            libc.bpf_prog_attach(fd, prog, libc.BPF_CGROUP_DEVICE, libc.BPF_F_ALLOW_MULTI)
        except OSError as exc:
            raise _error('attach the device filter to', directory, exc) from None
        finally:
            os.close(prog)
        for prog_id in earlier:
            try:
                _detach(fd, prog_id)
            except OSError as exc:
                raise _error('replace the device filter of', directory, exc) from None
    finally:
        os.close(fd)


def attached(directory):
    """How many device programs are attached to the cgroup2 ``directory`` itself; 0 when it is gone."""
    try:
        fd = _open(directory)
    except KernelError as exc:
        if exc.details.get('errno') == errno.ENOENT:
            return 0
        raise
    try:
        return len(libc.bpf_prog_query(fd, libc.BPF_CGROUP_DEVICE))
    except OSError as exc:
        raise _error('query the device filter of', directory, exc) from None
    finally:
        os.close(fd)


def _open(directory):
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError.from_oserror('open', directory, exc) from None


def _load(code):
    """The program's fd. Kernels before 5.11 charge eBPF memory to RLIMIT_MEMLOCK (often 64 KiB,
    shared with systemd's programs) and say EPERM when it is spent: the limit is then raised for
    the load alone and put back, since the container inherits it. A verifier refusal is retried
    with its log, for the message."""
    try:
        return libc.bpf_prog_load(libc.BPF_PROG_TYPE_CGROUP_DEVICE, code, 'ctr_devices')
    except PermissionError:
        pass
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EACCES):
            raise
        return libc.bpf_prog_load(libc.BPF_PROG_TYPE_CGROUP_DEVICE, code, 'ctr_devices', log_size=1 << 16)
    import resource
    before = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (OSError, ValueError):       # no CAP_SYS_RESOURCE: as far as the hard limit goes
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (before[1], before[1]))
    try:
        return libc.bpf_prog_load(libc.BPF_PROG_TYPE_CGROUP_DEVICE, code, 'ctr_devices')
    finally:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, before)


def _detach(fd, prog_id):
    try:
        prog = libc.bpf_prog_get_fd_by_id(prog_id)
    except FileNotFoundError:
        return                      # detached and freed meanwhile
    try:
        libc.bpf_prog_detach(fd, prog, libc.BPF_CGROUP_DEVICE)
    except FileNotFoundError:
        pass
    finally:
        os.close(prog)


def _error(what, directory, exc):
    hint = ''
    if exc.errno in (errno.EPERM, errno.EACCES):
        hint = (' (loading eBPF programs needs CAP_SYS_ADMIN or CAP_BPF, a seccomp filter and kernel that allow '
                'bpf(2), and, before Linux 5.11, enough RLIMIT_MEMLOCK)')
    elif exc.errno in (errno.EINVAL, errno.ENOSYS):
        hint = ' (the kernel needs CONFIG_CGROUP_BPF)'
    reason = exc.strerror or str(exc)
    reason = reason[len('bpf: '):] if reason.startswith('bpf: ') else reason
    return KernelError('cannot %s the container\'s cgroup %s: %s%s' % (what, directory, reason[:1].lower() + reason[1:],
                                                                       hint), path=directory, errno=exc.errno)

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The device rules and the eBPF program compiled from them, run here by a small interpreter of the
instructions the compiler emits (the kernel runs it in tests/integration/test_cgroups_root.py)."""

from __future__ import annotations

import itertools
import struct
import sys

import pytest

from ctr.runtime import devices
from ctr.runtime.devices import BLOCK, CHAR, MKNOD, READ, WRITE, Rule

MASK32, MASK64 = (1 << 32) - 1, (1 << 64) - 1


def run_program(code, kind, major, minor, access):
    """Interpret ``code`` on a ``bpf_cgroup_dev_ctx``; only the opcodes devices.program emits are known."""
    ctx = struct.pack('=III', access << 16 | kind, major, minor)
    insns = [struct.unpack_from('=BBhi', code, at) for at in range(0, len(code), 8)]
    regs = [0] * 11
    pc = steps = 0
    while True:
        steps += 1
        assert steps < 10000 and 0 <= pc < len(insns), 'the program runs off its end or loops'
        op, byte, off, imm = insns[pc]
        dst, src = (byte & 15, byte >> 4) if sys.byteorder == 'little' else (byte >> 4, byte & 15)
        pc += 1
        if op == 0x61:
            assert src == 1 and off in (0, 4, 8), 'only the context is read'
            regs[dst] = struct.unpack_from('=I', ctx, off)[0]
        elif op == 0x54:
            regs[dst] = regs[dst] & imm & MASK32
        elif op == 0x74:
            regs[dst] = (regs[dst] & MASK32) >> imm
        elif op == 0xbf:
            regs[dst] = regs[src]
        elif op == 0xb7:
            regs[dst] = imm & MASK64
        elif op == 0x55:
            if regs[dst] != imm & MASK64:
                pc += off
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError('unexpected opcode %#x' % op)


def reachable(code):
    """The indexes of the instructions some path reaches (jumps taken or not; exit ends a path)."""
    insns = [struct.unpack_from('=BBhi', code, at) for at in range(0, len(code), 8)]
    seen, todo = set(), [0]
    while todo:
        pc = todo.pop()
        if pc in seen or pc >= len(insns):
            continue
        seen.add(pc)
        op, off = insns[pc][0], insns[pc][2]
        if op != 0x95:
            todo.append(pc + 1)
        if op == 0x55:
            todo.append(pc + 1 + off)
    return seen


ACCESSES = list(range(1, 8))
DEVICES = [(kind, major, minor) for kind in (BLOCK, CHAR) for major, minor in
           ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (1, 11), (5, 0), (5, 1), (5, 2), (5, 3), (136, 0), (136, 9999),
            (8, 0), (7, 0), (0, 0), (4095, 1048575))]


@pytest.mark.parametrize('rules', [
    devices.DEFAULT_RULES,
    (),
    (Rule('a', None, None, 'rwm'),),
    (Rule('b', 8, None, 'r'), Rule('c', None, 3, 'w'), Rule('a', 1, 5, 'm')),
    (Rule('c', 1, 3, 'rwm'), Rule('a', None, None, 'rwm'), Rule('b', 8, 0, 'r')),
], ids=['default', 'none', 'all', 'mixed', 'all-in-the-middle'])
def test_the_program_means_what_allows_says(rules):
    code = devices.program(rules)
    assert len(code) % 8 == 0
    assert reachable(code) == set(range(len(code) // 8)), 'the verifier refuses unreachable instructions'
    for (kind, major, minor), access in itertools.product(DEVICES, ACCESSES):
        expected = devices.allows(rules, kind, major, minor, access)
        assert run_program(code, kind, major, minor, access) == int(expected), (kind, major, minor, access)


def test_the_default_rules_make_anything_and_open_only_the_default_nodes():
    rules = devices.DEFAULT_RULES
    assert devices.allows(rules, BLOCK, 8, 0, MKNOD) and devices.allows(rules, CHAR, 1, 11, MKNOD)
    assert not devices.allows(rules, BLOCK, 8, 0, READ)
    assert not devices.allows(rules, CHAR, 1, 11, READ | WRITE)
    assert devices.allows(rules, CHAR, 1, 3, READ | WRITE | MKNOD)
    assert devices.allows(rules, CHAR, 136, 42, READ | WRITE)
    assert not devices.allows(rules, BLOCK, 136, 42, READ)
    assert not devices.allows(rules, CHAR, 1, 3, READ | 8)        # an access bit no rule names


def test_v1_lines_are_dockers_default_list():
    assert devices.v1_lines() == ('c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm',
                                  'c 1:9 rwm', 'c 5:0 rwm', 'c 5:1 rwm', 'c 5:2 rwm', 'c 136:* rwm')


@pytest.mark.parametrize('args', [('x', None, None, 'r'), ('c', 1, 3, ''), ('c', 1, 3, 'rx'), ('c', 4096, 0, 'r'),
                                  ('c', 1, 1 << 20, 'r'), ('b', -1, 0, 'r')])
def test_a_bad_rule_is_refused(args):
    with pytest.raises(ValueError):
        Rule(*args)


def test_a_load_refused_for_memlock_is_retried_with_the_limit_raised_then_put_back(monkeypatch):
    """Kernels before 5.11 charge programs to RLIMIT_MEMLOCK and answer EPERM when it is spent."""
    import resource
    from ctr import libc
    before = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    seen = []

    def load(prog_type, code, name, log_size=0):
        seen.append(resource.getrlimit(resource.RLIMIT_MEMLOCK))
        if len(seen) == 1:
            raise PermissionError(1, 'bpf: Operation not permitted')
        return 42
    monkeypatch.setattr(libc, 'bpf_prog_load', load)
    assert devices._load(devices.program()) == 42
    assert seen[0] == before and seen[1][0] == seen[1][1] and seen[1][0] in (resource.RLIM_INFINITY, before[1])
    assert resource.getrlimit(resource.RLIMIT_MEMLOCK) == before

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python3 -m ctr`` ends without the interpreter's teardown: its output must still arrive whole,
and its exit status be the command's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

MODULE_UTILS = str(Path(__file__).resolve().parents[2] / 'plugins' / 'module_utils')


def ctr(*args, stdout=subprocess.PIPE):
    env = dict(os.environ, PYTHONPATH=MODULE_UTILS)
    return subprocess.run([sys.executable, '-m', 'ctr'] + list(args), env=env, stdout=stdout,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False)


def test_output_to_a_file_is_flushed_whole(tmp_path):
    out = tmp_path / 'out.txt'
    with open(out, 'w') as f:
        proc = ctr('--help', stdout=f)
    assert proc.returncode == 0
    text = out.read_text()
    assert text.startswith('usage: ctr') and text.endswith('\n') and 'build' in text


def test_an_error_exits_1_with_its_sentence(tmp_path):
    proc = ctr('--root', str(tmp_path / 'store'), 'history', 'no-such-image')
    assert proc.returncode == 1
    assert proc.stderr.startswith('ctr: error: ') and proc.stderr.endswith('\n')


def test_a_reader_that_goes_away_is_not_an_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=MODULE_UTILS)
    proc = subprocess.run('"%s" -m ctr --help | head -c 1 >/dev/null; echo "${PIPESTATUS[0]}"' % sys.executable,
                          shell=True, executable='/bin/bash', env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=True)
    assert proc.stdout.strip() == '0' and 'Traceback' not in proc.stderr


@pytest.mark.parametrize('code, status, stderr', [(None, 0, ''), (0, 0, ''), (3, 3, ''), ('bad thing', 1, 'bad thing\n')])
def test_exit_status_as_system_exit_gives_it(code, status, stderr):
    env = dict(os.environ, PYTHONPATH=MODULE_UTILS)
    proc = subprocess.run([sys.executable, '-c', 'from ctr.__main__ import _exit; _exit(%r)' % (code,)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    assert (proc.returncode, proc.stderr) == (status, stderr)


def test_under_a_profiler_the_process_exits_normally_so_the_profile_is_written(tmp_path):
    env = dict(os.environ, PYTHONPATH=MODULE_UTILS)
    prof = tmp_path / 'run.prof'
    proc = subprocess.run([sys.executable, '-m', 'cProfile', '-o', str(prof), '-m', 'ctr', '--root',
                           str(tmp_path / 'store'), 'history', 'no-such-image'], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    # (cProfile itself swallows SystemExit: its status is 0 whatever the command's)
    assert 'ctr: error: ' in proc.stderr and prof.stat().st_size > 0


def test_output_that_cannot_be_written_fails_the_command(tmp_path):
    env = dict(os.environ, PYTHONPATH=MODULE_UTILS)
    env.pop('PYTHONUNBUFFERED', None)
    with open('/dev/full', 'w') as full:
        proc = subprocess.run([sys.executable, '-c', 'import sys; from ctr.__main__ import _exit; '
                               'sys.stdout.write("x" * 100); _exit(0)'], env=env, stdout=full,
                              stderr=subprocess.PIPE, universal_newlines=True, check=False)
    assert proc.returncode == 120 and 'could not be written' in proc.stderr


def test_a_closed_stdout_is_not_an_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=MODULE_UTILS)
    proc = subprocess.run('"%s" -c "from ctr.__main__ import _exit; _exit(0)" >&-' % sys.executable, shell=True,
                          env=env, stderr=subprocess.PIPE, universal_newlines=True, check=False)
    assert proc.returncode == 0 and proc.stderr == ''

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by tests/unit and tests/integration.

- ``import ctr`` works: plugins/module_utils is put on sys.path.
- ``import ansible_collections.daemonless.ctr...`` works: a session temp dir holding
  ansible_collections/daemonless/ctr -> this repository is put on sys.path. Import the engine one
  way only in a test (``ctr.errors.CtrError`` and the same class reached through
  ``ansible_collections...`` are two different classes).
- ``CTR_ROOT`` points at the test's own ``store_root`` for every test, so nothing defaults to
  /var/lib/ctr.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import helpers  # noqa: E402  pylint: disable=wrong-import-position

if str(helpers.MODULE_UTILS) not in sys.path:
    sys.path.insert(0, str(helpers.MODULE_UTILS))

SESSION_DIR = Path(tempfile.mkdtemp(prefix='ctr-tests-'))
COLLECTIONS_ROOT = helpers.make_collection_tree(SESSION_DIR / 'collections')
PYCACHE_DIR = SESSION_DIR / 'ctr-pycache'      # bytecode_cache's directory for every playbook run
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.append(str(COLLECTIONS_ROOT))

MODULE_TIMEOUT = 600
PLAYBOOK_TIMEOUT = 900


def pytest_unconfigure(config):
    """Remove the session temp dir (the collection symlink tree and anything left in it)."""
    del config
    helpers.force_rmtree(SESSION_DIR)


@pytest.fixture
def store_root():
    """A fresh, empty store root for one test (never /var/lib/ctr); removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix='ctr-store-'))
    try:
        yield path
    finally:
        if os.geteuid() == 0:
            helpers.release_store(path)
        helpers.force_rmtree(path)


@pytest.fixture(autouse=True)
def _ctr_root_env(store_root, monkeypatch):
    """Point CTR_ROOT at this test's store_root so code that falls back to it stays in the sandbox."""
    monkeypatch.setenv('CTR_ROOT', str(store_root))


@pytest.fixture
def busybox_rootfs(tmp_path):
    """A deterministic busybox root filesystem directory (see helpers.make_busybox_rootfs)."""
    try:
        return helpers.make_busybox_rootfs(tmp_path / 'busybox-rootfs')
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


def _module_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    paths = [str(COLLECTIONS_ROOT)]
    if env.get('PYTHONPATH'):
        paths.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(paths)
    env['LC_ALL'] = 'C.UTF-8'
    env.update(extra or {})
    return env


@pytest.fixture
def run_module(tmp_path):
    """Run plugins/modules/NAME.py in a subprocess the way Ansible does and return its JSON result.

    ``run_module(name, args, check=False, diff=False, env=None) -> dict``. A module that prints no
    JSON (a traceback, a crash) fails the test with its exit code, stdout and stderr.
    """
    counter = [0]

    def run(name: str, args: dict, check: bool = False, diff: bool = False, env: dict | None = None) -> dict:
        module = helpers.MODULES / f'{name}.py'
        if not module.is_file():
            pytest.fail(f'module {name} does not exist at {module}', pytrace=False)
        counter[0] += 1
        workdir = tmp_path / f'module-{counter[0]}-{name}'
        workdir.mkdir()
        args_path = helpers.module_args_file(workdir, args, check=check, diff=diff)
        proc = subprocess.run(
            [sys.executable, str(module), str(args_path)],
            cwd=workdir, env=_module_env(env), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=MODULE_TIMEOUT, check=False,
        )
        result = helpers.parse_module_output(proc.stdout)
        if result is None:
            pytest.fail(
                f'module {name} printed no JSON result (rc={proc.returncode})\n'
                f'--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}',
                pytrace=False,
            )
        return result

    return run


@dataclasses.dataclass
class PlaybookRun:
    """What ``run_playbook`` returns; unpacks as ``rc, stdout, results``."""

    rc: int
    stdout: str
    results: list
    stderr: str = ''
    stats: dict = dataclasses.field(default_factory=dict)

    def __iter__(self):
        return iter((self.rc, self.stdout, self.results))

    def task(self, name: str) -> dict:
        """Return the result of the (last) task called NAME."""
        for entry in reversed(self.results):
            if entry['task'] == name:
                return entry['result']
        raise KeyError(f'no task named {name!r} ran; tasks: {[entry["task"] for entry in self.results]}')


@pytest.fixture
def pycache_dir():
    """Where the modules run by run_playbook keep the engine's compiled code (``$CTR_PYCACHE``)."""
    return PYCACHE_DIR


@pytest.fixture
def run_playbook(tmp_path):
    """Run a playbook text against localhost (connection local, this Python) and parse its results.

    ``run_playbook(text, check=False, diff=False, extra_vars=None) -> PlaybookRun``; ``results`` is
    a list of ``{"host", "task", "action", "status", "result"}`` in execution order. Slow (~2 s):
    prefer run_module.
    """
    counter = [0]
    playbook_bin = Path(sys.executable).parent / 'ansible-playbook'

    def run(text: str, check: bool = False, diff: bool = False, extra_vars: dict | None = None) -> PlaybookRun:
        counter[0] += 1
        workdir = tmp_path / f'playbook-{counter[0]}'
        workdir.mkdir()
        (workdir / 'playbook.yml').write_text(textwrap.dedent(text), encoding='utf-8')
        (workdir / 'inventory.ini').write_text(
            f'localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n',
            encoding='utf-8')
        cmd = [str(playbook_bin), '-i', 'inventory.ini', 'playbook.yml']
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        if extra_vars:
            cmd += ['--extra-vars', json.dumps(extra_vars)]
        (workdir / 'ansible.cfg').write_text('[defaults]\n', encoding='utf-8')
        env = dict(os.environ)
        env.update({
            'ANSIBLE_CONFIG': str(workdir / 'ansible.cfg'),
            'ANSIBLE_COLLECTIONS_PATH': str(COLLECTIONS_ROOT),
            'ANSIBLE_CALLBACK_PLUGINS': str(helpers.TEST_CALLBACKS),
            'ANSIBLE_STDOUT_CALLBACK': 'ctr_test_json',
            'ANSIBLE_NOCOLOR': '1',
            'ANSIBLE_RETRY_FILES_ENABLED': '0',
            'ANSIBLE_LOCAL_TEMP': str(workdir / 'ansible-local'),
            'ANSIBLE_REMOTE_TEMP': str(workdir / 'ansible-remote'),
            'CTR_PYCACHE': str(PYCACHE_DIR),    # the engine's code, compiled once per session
            'LC_ALL': 'C.UTF-8',
        })
        proc = subprocess.run(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=PLAYBOOK_TIMEOUT, check=False)
        data = helpers.parse_module_output(proc.stdout)
        if data is None:
            pytest.fail(
                f'ansible-playbook printed no JSON (rc={proc.returncode})\n'
                f'--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}',
                pytrace=False,
            )
        return PlaybookRun(rc=proc.returncode, stdout=proc.stdout, results=data.get('results', []),
                           stderr=proc.stderr, stats=data.get('stats', {}))

    return run

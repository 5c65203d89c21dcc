# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/bytecode_cache.py: the engine imported from a zip, as AnsiballZ ships it, compiles
once per source and then loads its code from the cache; nothing else changes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PKG = 'ansible_collections/daemonless/ctr/plugins/module_utils'
ENGINE = PKG.replace('/', '.') + '.ctr'

ENGINE_FILES = {
    'ctr/__init__.py': '',
    'ctr/a.py': 'from . import b\nVALUE = b.BASE + 1\n',
    'ctr/b.py': 'BASE = 40\n',
    'ctr/sub/__init__.py': '',
    'ctr/sub/c.py': 'def boom():\n    raise RuntimeError("boom from c")  # the line a traceback shows\n',
}

SCRIPT = r'''
import builtins, json, sys, traceback
sys.path.insert(0, sys.argv[1])
compiled = []
real_compile = builtins.compile
def counting(source, filename, *args, **kwargs):
    if "/module_utils/ctr/" in str(filename):
        compiled.append(str(filename).rpartition("/module_utils/")[2])
    return real_compile(source, filename, *args, **kwargs)
from ansible_collections.daemonless.ctr.plugins.module_utils import bytecode_cache
builtins.compile = counting
bytecode_cache.install(sys.argv[2] if len(sys.argv) > 2 else None)
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr import a
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.sub import c
try:
    c.boom()
except RuntimeError:
    shown = traceback.format_exc()
print(json.dumps({"compiled": sorted(compiled), "value": a.VALUE, "file": a.__file__,
                  "loader": type(a.__loader__).__name__, "traceback": shown}))
'''


def make_zip(path, files=None):
    """A zip laid out as AnsiballZ's: the collection's packages, bytecode_cache.py and a small engine."""
    files = dict(ENGINE_FILES, **(files or {}))
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        parts = PKG.split('/')
        for i in range(1, len(parts) + 1):
            z.writestr('/'.join(parts[:i]) + '/__init__.py', '')
        z.write(REPO / 'plugins/module_utils/bytecode_cache.py', PKG + '/bytecode_cache.py')
        for name, text in files.items():
            z.writestr(PKG + '/' + name, text)
    return path


def run(zip_path, cache=None, env=None):
    args = [sys.executable, '-I', '-c', SCRIPT, str(zip_path)] + ([str(cache)] if cache is not None else [])
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=dict(os.environ, **(env or {})), check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


ALL = ['ctr/__init__.py', 'ctr/a.py', 'ctr/b.py', 'ctr/sub/__init__.py', 'ctr/sub/c.py']


def each(compiled):
    """The modules compiled (Python's zip importer compiles each one twice: once to name its file)."""
    return sorted(set(compiled))


def test_first_import_compiles_and_stores_then_loads_from_the_cache(tmp_path):
    zip_path, cache = make_zip(tmp_path / 'payload.zip'), tmp_path / 'home/.cache/pyc'
    first = run(zip_path, cache)
    assert first['compiled'] == ALL
    assert first['value'] == 41 and first['loader'] == '_CachingLoader'
    assert first['file'] == '%s/%s/ctr/a.py' % (zip_path, PKG)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    entries = sorted(os.listdir(cache))
    assert len(entries) == 5
    assert all(stat.S_IMODE(os.stat(cache / e).st_mode) == 0o600 for e in entries)

    second = run(zip_path, cache)
    assert second['compiled'] == [] and second['value'] == 41
    assert sorted(os.listdir(cache)) == entries
    # the source is still there for tracebacks
    assert 'raise RuntimeError("boom from c")  # the line a traceback shows' in second['traceback']


def test_a_changed_module_is_compiled_again_and_only_it(tmp_path):
    cache = tmp_path / 'pyc'
    run(make_zip(tmp_path / 'v1.zip'), cache)
    changed = run(make_zip(tmp_path / 'v2.zip', {'ctr/b.py': 'BASE = 100\n'}), cache)
    assert changed['compiled'] == ['ctr/b.py'] and changed['value'] == 101
    assert run(make_zip(tmp_path / 'v1-again.zip'), cache)['value'] == 41


def test_entries_others_could_write_or_that_do_not_unmarshal_are_not_loaded(tmp_path):
    zip_path, cache = make_zip(tmp_path / 'payload.zip'), tmp_path / 'pyc'
    run(zip_path, cache)
    entries = sorted(os.listdir(cache))
    os.chmod(cache / entries[0], 0o666)
    (cache / entries[1]).write_bytes(b'not marshal data')
    out = run(zip_path, cache)
    assert len(out['compiled']) == 2 and out['value'] == 41


def test_a_directory_others_can_write_is_not_used(tmp_path):
    zip_path, cache = make_zip(tmp_path / 'payload.zip'), tmp_path / 'pyc'
    run(zip_path, cache)
    os.chmod(cache, 0o777)
    out = run(zip_path, cache)
    assert each(out['compiled']) == ALL and out['loader'] != '_CachingLoader' and out['value'] == 41


def test_ctr_pycache_empty_turns_it_off(tmp_path):
    out = run(make_zip(tmp_path / 'payload.zip'), env={'CTR_PYCACHE': '', 'HOME': str(tmp_path)})
    assert each(out['compiled']) == ALL and out['loader'] != '_CachingLoader'
    assert not (tmp_path / '.cache').exists()


def test_default_directory_is_under_the_users_cache(tmp_path):
    env = {'HOME': str(tmp_path)}
    env_without = dict(os.environ, **env)
    env_without.pop('CTR_PYCACHE', None)
    proc = subprocess.run([sys.executable, '-I', '-c', SCRIPT, str(make_zip(tmp_path / 'payload.zip'))],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          env=env_without, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(os.listdir(tmp_path / '.cache/daemonless.ctr/pyc')) == 5


def test_old_entries_are_pruned_when_a_new_one_is_written(tmp_path):
    cache = tmp_path / 'pyc'
    cache.mkdir(mode=0o700)
    old, recent = cache / ('0' * 64), cache / ('1' * 64)
    old.write_bytes(b'x')
    recent.write_bytes(b'y')
    forty_days_ago = time.time() - 40 * 86400
    os.utime(old, (forty_days_ago, forty_days_ago))
    run(make_zip(tmp_path / 'payload.zip'), cache)
    assert not old.exists() and recent.exists()


def test_the_engine_outside_a_zip_is_left_to_python(tmp_path):
    tree = tmp_path / 'tree'
    with zipfile.ZipFile(make_zip(tmp_path / 'payload.zip')) as z:
        z.extractall(tree)
    out = run(tree, tmp_path / 'pyc')
    assert out['loader'] == 'SourceFileLoader' and out['value'] == 41
    assert not (tmp_path / 'pyc').exists()


def test_a_cache_that_cannot_be_made_falls_back_to_compiling(tmp_path):
    (tmp_path / 'a-file').write_text('')
    out = run(make_zip(tmp_path / 'payload.zip'), tmp_path / 'a-file' / 'pyc')
    assert each(out['compiled']) == ALL and out['value'] == 41 and out['loader'] != '_CachingLoader'

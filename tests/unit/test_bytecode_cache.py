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
import importlib
reloaded = importlib.reload(a).VALUE    # the loader dropped its copy of the source: read again
print(json.dumps({"compiled": sorted(compiled), "value": a.VALUE, "file": a.__file__,
                  "code_file": c.boom.__code__.co_filename, "reloaded": reloaded,
                  "hashlib": "hashlib" in sys.modules,
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
    assert first['value'] == 41 and first['loader'] == '_CachingLoader' and first['reloaded'] == 41
    assert not first['hashlib']                 # OpenSSL stays out of a process that did not load it
    assert first['file'] == '%s/%s/ctr/a.py' % (zip_path, PKG)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    entries = sorted(os.listdir(cache))
    assert len(entries) == 5
    assert all(stat.S_IMODE(os.stat(cache / e).st_mode) == 0o600 for e in entries)

    moved = tmp_path / 'elsewhere.zip'            # AnsiballZ's zip is in a new temp dir every run
    os.rename(zip_path, moved)
    second = run(moved, cache)
    assert second['compiled'] == [] and second['value'] == 41
    assert sorted(os.listdir(cache)) == entries
    # code from the cache names this run's zip, as a .pyc's code names its source
    assert second['code_file'] == '%s/%s/ctr/sub/c.py' % (moved, PKG)
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
    damaged = bytearray((cache / entries[2]).read_bytes())
    damaged[-5] ^= 0xff                                   # a torn block: the header's SHA-256 no longer matches
    (cache / entries[2]).write_bytes(bytes(damaged))
    out = run(zip_path, cache)
    assert len(out['compiled']) == 3 and out['value'] == 41


def test_a_directory_others_can_write_is_not_used(tmp_path):
    zip_path, cache = make_zip(tmp_path / 'payload.zip'), tmp_path / 'pyc'
    run(zip_path, cache)
    os.chmod(cache, 0o777)
    out = run(zip_path, cache)
    assert each(out['compiled']) == ALL and out['loader'] != '_CachingLoader' and out['value'] == 41


def test_ctr_pycache_empty_turns_it_off(tmp_path):
    out = run(make_zip(tmp_path / 'payload.zip'), env={'CTR_PYCACHE': ''})
    assert each(out['compiled']) == ALL and out['loader'] != '_CachingLoader'


def test_a_relative_cache_path_is_not_used(tmp_path):
    out = run(make_zip(tmp_path / 'payload.zip'), 'relative/pyc')
    assert each(out['compiled']) == ALL and out['loader'] != '_CachingLoader'


def test_a_cache_path_through_a_symbolic_link_is_not_used(tmp_path):
    (tmp_path / 'real').mkdir(mode=0o700)
    os.symlink(tmp_path / 'real', tmp_path / 'link')
    out = run(make_zip(tmp_path / 'payload.zip'), tmp_path / 'link' / 'pyc')
    assert each(out['compiled']) == ALL and out['loader'] != '_CachingLoader'
    assert not (tmp_path / 'real' / 'pyc').exists()


def test_default_directory_is_in_the_users_home_from_the_password_database(tmp_path):
    """Not $HOME: under sudo -E it may be another user's, whose directories root would then fill."""
    code = ('import sys; sys.path.insert(0, sys.argv[1]); import bytecode_cache, pwd, os; '
            'print(bytecode_cache.default_dir() == os.path.join(pwd.getpwuid(os.geteuid()).pw_dir, '
            '".cache", "daemonless.ctr", "pyc"))')
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop('CTR_PYCACHE', None)
    out = subprocess.run([sys.executable, '-I', '-c', code, str(REPO / 'plugins/module_utils')], env=env,
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    assert out.strip() == 'True'


def test_the_cache_is_reached_through_its_descriptor_not_its_path_again(tmp_path):
    """Once open, a directory swapped for a link elsewhere neither receives entries nor loses files."""
    sys.path.insert(0, str(REPO / 'plugins/module_utils'))
    try:
        import bytecode_cache  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.remove(str(REPO / 'plugins/module_utils'))
    cache_dir, victim = tmp_path / 'pyc', tmp_path / 'victim'
    victim.mkdir()
    (victim / ('a' * 64)).write_bytes(b'keep me')
    os.utime(victim / ('a' * 64), (0, 0))
    fd = bytecode_cache.open_dir(str(cache_dir))
    assert fd is not None
    try:
        os.rename(cache_dir, tmp_path / 'pyc-moved')
        os.symlink(victim, cache_dir)
        code = bytecode_cache._Cache(fd).code('m', '/x/m.py', b'X = 1\n')  # pylint: disable=protected-access
        assert code.co_filename == '/x/m.py'
    finally:
        os.close(fd)
    assert os.listdir(victim) == ['a' * 64] and len(os.listdir(tmp_path / 'pyc-moved')) == 1


def test_old_entries_are_pruned_when_a_new_one_is_written(tmp_path):
    cache = tmp_path / 'pyc'
    cache.mkdir(mode=0o700)
    old, recent, other = cache / ('0' * 64), cache / ('1' * 64), cache / 'notes.txt'
    for path in (old, recent, other):
        path.write_bytes(b'x')
    forty_days_ago = time.time() - 40 * 86400
    os.utime(old, (forty_days_ago, forty_days_ago))
    os.utime(other, (forty_days_ago, forty_days_ago))
    run(make_zip(tmp_path / 'payload.zip'), cache)
    assert not old.exists() and recent.exists() and other.exists()    # only what the cache names


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

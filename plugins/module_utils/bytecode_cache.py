# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compiled code for the engine when Ansible ships it in a zip.

Ansible runs a module by putting its module_utils in a zip (AnsiballZ) and importing from
there. Python's zip importer cannot write ``.pyc`` files, so every task compiled the engine's
source again: ~55 ms for what ``ctr_exec`` imports, more than the rest of the task's own work.

:func:`install` puts a finder in front of Python's for the engine's package only. When the
package comes from a zip, each module's code is looked up in a cache directory on the managed
host, by the SHA-256 of the interpreter's bytecode magic, the module's name and its source, and
compiled (then stored) only when it is not there. A module that comes from a directory (an
installed collection, ``python3 -m ctr``) is left to Python's own ``__pycache__``.

The cache is ``$CTR_PYCACHE`` when set (empty: no cache), else ``~/.cache/daemonless.ctr/pyc``.
Code is loaded from it only when the directory and the file belong to the user running the
module and nobody else can write them; anything unexpected (a missing home, a read-only disk,
a file that does not unmarshal) falls back to compiling, as before. Entries not used for 30 days
are removed when a new one is written.
"""

from __future__ import annotations

import marshal
import os
import stat
import sys
import time
import zipimport
from importlib.machinery import PathFinder
from importlib.util import MAGIC_NUMBER, spec_from_file_location

ENGINE = 'ansible_collections.daemonless.ctr.plugins.module_utils.ctr'
_MAX_AGE = 30 * 86400       # seconds an entry may go unused before a write prunes it
_TOUCH_AFTER = 86400        # an entry used is marked so (mtime) at most once a day


def default_dir():
    """The cache directory: ``$CTR_PYCACHE`` (empty: none), else under the user's ``~/.cache``."""
    configured = os.environ.get('CTR_PYCACHE')
    if configured is not None:
        return configured or None
    home = os.path.expanduser('~')
    if not home or home == '~':
        return None
    return os.path.join(home, '.cache', 'daemonless.ctr', 'pyc')


def _private(st):
    """Owned by us and writable by nobody else."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _ready(directory):
    """Make ``directory`` (0700) when missing; True when it is a private directory of ours."""
    try:
        os.makedirs(directory, 0o700, exist_ok=True)
        st = os.lstat(directory)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and _private(st)


class _CachingLoader:
    """Loads one engine module from the zip: its source from the archive, its code from the cache."""

    def __init__(self, importer, directory, source):
        self._importer = importer
        self._directory = directory
        self._source = source

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        spec = module.__spec__
        code = self._code(spec.name, spec.origin, self._source)
        exec(code, module.__dict__)  # pylint: disable=exec-used

    # linecache and tracebacks ask the module's loader for its source
    def get_source(self, name):
        return self._importer.get_source(name)

    def is_package(self, name):
        return self._importer.is_package(name)

    def _code(self, name, origin, source):
        import hashlib
        key = hashlib.sha256(MAGIC_NUMBER + name.encode() + b'\0' + source).hexdigest()
        path = os.path.join(self._directory, key)
        code = _load(path)
        if code is None:
            code = compile(source, origin, 'exec', dont_inherit=True)
            _store(self._directory, path, code)
        return code


def _load(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _private(st):
            return None
        with os.fdopen(os.dup(fd), 'rb') as f:
            data = f.read()
        if time.time() - st.st_mtime > _TOUCH_AFTER:
            os.utime(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        code = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, type(_load.__code__)) else None


def _store(directory, path, code):
    tmp = '%s.%d.tmp' % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, 'wb') as f:
            f.write(marshal.dumps(code))
        os.rename(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return
    _prune(directory)


def _prune(directory):
    """Remove entries unused for :data:`_MAX_AGE` (left by older versions of the collection)."""
    now = time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        entry = os.path.join(directory, name)
        try:
            if now - os.lstat(entry).st_mtime > _MAX_AGE:
                os.unlink(entry)
        except OSError:
            pass


class _Finder:
    """Finds the engine's modules in a zip itself (the zip importer's own finder compiles each module
    just to report its file name) and gives them a :class:`_CachingLoader`; anything else, and the
    engine outside a zip, is left to Python's finders."""

    def __init__(self, directory):
        self.directory = directory
        self._usable = None         # checked (and made) at the first module found in a zip

    def find_spec(self, name, path=None, target=None):
        if not path or not name.startswith(ENGINE + '.') and name != ENGINE:
            return None
        tail = name.rpartition('.')[2]
        for entry in path:
            importer = _zip_importer(entry)
            if importer is None:
                return None
            inner = importer.prefix + tail
            for member, package in ((inner + '/__init__.py', True), (inner + '.py', False)):
                try:
                    source = importer.get_data(member)
                except OSError:
                    continue
                if self._usable is None:
                    self._usable = _ready(self.directory)
                if not self._usable:
                    return None
                location = os.path.join(importer.archive, inner)
                return spec_from_file_location(
                    name, os.path.join(importer.archive, member),
                    loader=_CachingLoader(importer, self.directory, source),
                    submodule_search_locations=[location] if package else None)
        return None

    def invalidate_caches(self):
        pass


def _zip_importer(entry):
    """The zip importer for a package path entry inside a zip; None for anything else."""
    importer = sys.path_importer_cache.get(entry)
    if importer is None:
        try:
            importer = zipimport.zipimporter(entry)
        except (zipimport.ZipImportError, OSError):
            return None
    return importer if isinstance(importer, zipimport.zipimporter) else None


def install(directory=None):
    """Put the finder in front of Python's path finder (once); a no-op without a cache directory."""
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    directory = directory if directory is not None else default_dir()
    if not directory:
        return
    # just before Python's path finder, which would find the same modules: whatever comes first
    # (ansible's own finders, the built-in and frozen importers) keeps its place
    where = next((i for i, f in enumerate(sys.meta_path) if f is PathFinder), len(sys.meta_path))
    sys.meta_path.insert(where, _Finder(directory))

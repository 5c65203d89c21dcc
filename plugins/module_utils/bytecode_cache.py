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

The cache is ``$CTR_PYCACHE`` when set (an absolute path; empty: no cache), else
``.cache/daemonless.ctr/pyc`` in the home directory of the user the module runs as (from the
password database: ``$HOME`` may be another user's, under ``sudo -E``). It is trusted only when
every directory on the way, opened one by one without following links, belongs to root or to
that user and nobody else can write it (a sticky directory such as ``/tmp`` excepted), and the
cache directory itself is that user's alone; every later access goes through the descriptor of
that directory, never through its path again. An entry is loaded only when it is a regular file
of that user's that nobody else can write, and its bytes match the SHA-256 in its header.
Anything unexpected (no home, a read-only disk, a damaged entry) falls back to compiling, as
before. Entries (and only files named as entries) unused for 30 days are removed when a new one
is written.
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


def _sha256_function():
    """hashlib's sha256 (OpenSSL's, ten times faster) when this process already loaded hashlib, as an
    Ansible module has; else the interpreter's own, so that a process that had no use for OpenSSL (a
    container's monitor) does not load it just for this."""
    if 'hashlib' not in sys.modules:
        try:
            from _sha2 import sha256 as function            # pylint: disable=import-outside-toplevel
            return function
        except ImportError:
            try:
                from _sha256 import sha256 as function      # Python before 3.12
                return function
            except ImportError:
                pass
    from hashlib import sha256 as function
    return function


sha256 = _sha256_function()

ENGINE = 'ansible_collections.daemonless.ctr.plugins.module_utils.ctr'
_MAX_AGE = 30 * 86400       # seconds an entry may go unused before a write prunes it
_TOUCH_AFTER = 86400        # an entry used is marked so (mtime) at most once a day
_HEADER = b'ctr-pyc1'       # then the SHA-256 of the marshalled code, then the code
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_HEX = frozenset('0123456789abcdef')


def default_dir():
    """The cache directory: ``$CTR_PYCACHE`` (empty: none), else under the user's home's ``.cache``."""
    configured = os.environ.get('CTR_PYCACHE')
    if configured is not None:
        return configured or None
    try:
        import pwd
        home = pwd.getpwuid(os.geteuid()).pw_dir
    except (ImportError, KeyError):
        return None
    return os.path.join(home, '.cache', 'daemonless.ctr', 'pyc') if os.path.isabs(home) else None


def _trusted(st, final):
    """A directory of root's or ours that nobody else can write; the cache directory must be ours."""
    uid = os.geteuid()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, uid):
        return False
    others_write = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if final:
        return st.st_uid == uid and not others_write
    return not others_write or bool(st.st_mode & stat.S_ISVTX)


def open_dir(path):
    """A descriptor of the cache directory ``path``, made (0700) where missing, every component
    opened without following links and checked (:func:`_trusted`); None when that fails."""
    if not path or not os.path.isabs(path):
        return None
    parts = [part for part in path.split('/') if part not in ('', '.')]
    if '..' in parts or not parts:
        return None
    fd = None
    try:
        fd = os.open('/', _DIR_FLAGS)
        if not _trusted(os.fstat(fd), False):
            raise OSError('untrusted /')
        for i, part in enumerate(parts):
            try:
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                try:
                    os.mkdir(part, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if not _trusted(os.fstat(fd), i == len(parts) - 1):
                raise OSError('untrusted %s' % part)
        return fd
    except OSError:
        if fd is not None:
            os.close(fd)
        return None


def _is_entry(name):
    """A name this cache writes: 64 hex digits, or that plus ``.PID.tmp`` while being written."""
    key, dot, rest = name.partition('.')
    return len(key) == 64 and set(key) <= _HEX and (not dot or rest.endswith('.tmp'))


class _CachingLoader:
    """Loads one engine module from the zip: its source from the archive, its code from the cache."""

    def __init__(self, importer, cache, source, member):
        self._importer = importer
        self._cache = cache
        self._source = source           # dropped once used: a long-lived process (a monitor) keeps no copy
        self._member = member

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        spec = module.__spec__
        source, self._source = self._source, None
        if source is None:
            source = self._importer.get_data(self._member)      # a reload
        code = self._cache.code(spec.name, spec.origin, source)
        exec(code, module.__dict__)  # pylint: disable=exec-used

    # get_source (linecache, tracebacks), is_package, get_data, get_resource_reader, ...: the zip's
    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return getattr(self._importer, name)


class _Cache:
    """The entries in one trusted directory, always reached through its descriptor."""

    def __init__(self, fd):
        self.fd = fd

    def code(self, name, origin, source):
        key = sha256(MAGIC_NUMBER + b'%d\0' % sys.flags.optimize + name.encode() + b'\0' + source).hexdigest()
        code = self._load(key)
        if code is None:
            code = compile(source, origin, 'exec', dont_inherit=True)
            self._store(key, code)
        else:
            _fix_filename(code, origin)
        return code

    def _load(self, key):
        try:
            fd = os.open(key, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() \
                    or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return None
            with os.fdopen(os.dup(fd), 'rb') as f:
                data = f.read()
            if time.time() - st.st_mtime > _TOUCH_AFTER:
                try:
                    os.utime(fd)
                except OSError:
                    pass
        except OSError:
            return None
        finally:
            os.close(fd)
        start = len(_HEADER) + 32
        if data[:len(_HEADER)] != _HEADER or sha256(data[start:]).digest() != data[len(_HEADER):start]:
            return None
        try:
            code = marshal.loads(data[start:])
        except (EOFError, ValueError, TypeError):
            return None
        return code if isinstance(code, type(_fix_filename.__code__)) else None

    def _store(self, key, code):
        payload = marshal.dumps(code)
        tmp = '%s.%d.tmp' % (key, os.getpid())
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=self.fd)
            with os.fdopen(fd, 'wb') as f:
                f.write(_HEADER + sha256(payload).digest() + payload)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, key, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError:
            try:
                os.unlink(tmp, dir_fd=self.fd)
            except OSError:
                pass
            return
        self._prune()

    def _prune(self):
        """Remove entries unused for :data:`_MAX_AGE` (left by older versions of the collection)."""
        now = time.time()
        try:
            names = os.listdir(self.fd)
        except OSError:
            return
        for name in names:
            if not _is_entry(name):
                continue
            try:
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and now - st.st_mtime > _MAX_AGE:
                    os.unlink(name, dir_fd=self.fd)
            except OSError:
                pass


def _fix_filename(code, origin):
    """Point the code (and its functions') file name at this run's zip, as importlib does for a
    .pyc: the zip's temp directory differs from run to run."""
    try:
        import _imp
        _imp._fix_co_filename(code, origin)  # pylint: disable=protected-access
    except (ImportError, AttributeError):
        pass


class _Finder:
    """Finds the engine's modules in a zip itself (the zip importer's own finder compiles each module
    just to report its file name) and gives them a :class:`_CachingLoader`; anything else, and the
    engine outside a zip, is left to Python's finders."""

    def __init__(self, directory):
        self.directory = directory
        self._cache = None          # opened (and checked) at the first module found in a zip
        self._tried = False

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
                if not self._tried:
                    self._tried = True
                    fd = open_dir(self.directory)
                    self._cache = _Cache(fd) if fd is not None else None
                if self._cache is None:
                    return None
                location = os.path.join(importer.archive, inner)
                return spec_from_file_location(
                    name, os.path.join(importer.archive, member),
                    loader=_CachingLoader(importer, self._cache, source, member),
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

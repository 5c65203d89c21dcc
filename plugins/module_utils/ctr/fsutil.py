# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Atomic file writes and small filesystem helpers shared by every room.

The contract: a reader sees either the old file or the new one, never a torn
one, even if the writer is killed; a writer killed halfway leaves at most a
``.tmp-*`` file that nothing reads and garbage collection removes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat

TMP_PREFIX = '.tmp-'
DEFAULT_ROOT = '/var/lib/ctr'


def resolve_root(root=None):
    """The store root: the argument, else ``$CTR_ROOT``, else ``/var/lib/ctr``."""
    root = root or os.environ.get('CTR_ROOT') or DEFAULT_ROOT
    return os.path.abspath(root)


def fsync_dir(path):
    """Make a rename or an unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs(path, mode=0o755):
    """``mkdir -p`` that tolerates a concurrent creator."""
    try:
        os.makedirs(path, mode)
    except FileExistsError:
        if not os.path.isdir(path):
            raise


@contextlib.contextmanager
def flocked(path, exclusive=True, make_dir=True):
    """Hold an ``flock`` on ``path`` (made if missing, mode 0600; its directory too, with ``make_dir``)."""
    if make_dir:
        makedirs(os.path.dirname(path), 0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def atomic_write(path, data, mode=0o644, durable=True):
    """Write ``data`` (bytes) to ``path`` through a temp file, fsync and rename."""
    import tempfile  # not at the top: most runs write nothing, and it imports random
    directory = os.path.dirname(path) or '.'
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if durable:
        fsync_dir(directory)


def canonical_json(obj):
    """The byte form every JSON document we hash is written in."""
    return json.dumps(obj, sort_keys=True, separators=(',', ':'), ensure_ascii=False).encode('utf-8')


def atomic_write_json(path, obj, mode=0o644, pretty=False, durable=True):
    if pretty:
        data = json.dumps(obj, sort_keys=True, indent=2).encode('utf-8') + b'\n'
    else:
        data = canonical_json(obj)
    atomic_write(path, data, mode, durable)


def read_json(path, default=None):
    """Parse a JSON state file; ``default`` when it does not exist."""
    try:
        with open(path, 'rb') as f:
            return json.loads(f.read().decode('utf-8'))
    except FileNotFoundError:
        return default


def read_text(path, default=None):
    """A small state file's text; ``default`` when it does not exist."""
    try:
        with open(path, 'r', encoding='utf-8') as f:
            return f.read()
    except FileNotFoundError:
        return default


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def unescape_mountinfo(field):
    """mountinfo's octal escapes (``\\040`` for a space)."""
    import re
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def mount_points(under=None, mountinfo='/proc/self/mountinfo'):
    """Mount points of this mount namespace; with ``under``, those at or below that path (deepest first)."""
    try:
        with open(mountinfo, 'r', encoding='utf-8', errors='surrogateescape') as f:
            points = [unescape_mountinfo(line.split()[4]) for line in f if len(line.split()) > 4]
    except OSError:
        return []
    if under is None:
        return points
    base = os.path.abspath(under).rstrip('/') or '/'
    hits = [p for p in points if p == base or p.startswith(base + '/')]
    return sorted(set(hits), key=len, reverse=True)


def is_mount_point(path):
    """Is ``path`` a mount point here, a bind of the same filesystem included (os.path.ismount misses those)?"""
    return os.path.abspath(path) in mount_points(under=path)


def remove_tree(path):
    """Remove a file or a directory tree without following symlinks; missing is fine.

    The walk goes by directory descriptors (``openat`` with ``O_NOFOLLOW``, ``unlinkat``), so a
    directory swapped for a symlink meanwhile (by a container sharing the tree) fails the
    removal instead of leading it out. Directories are made writable first (``fchmod``), so
    trees holding read-only directories (as image layers do) go too. A mount point in the tree,
    a bind of the same filesystem included, is never entered: the removal stops with EBUSY
    naming it, and what lies beyond is left alone.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        _unlink_quietly(path)
        return
    busy = mount_points(under=path)
    if busy:            # a bind of the same filesystem keeps st_dev: mountinfo is what tells
        raise OSError(errno.EBUSY, 'a mount point is in the way of the removal; left as it is', busy[0])
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        _remove_contents(fd, st.st_dev, path)
    finally:
        os.close(fd)
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass


def _remove_contents(dir_fd, device, shown):
    try:
        os.fchmod(dir_fd, 0o700)
    except OSError:
        pass
    for name in os.listdir(dir_fd):
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            try:
                os.unlink(name, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            continue
        where = os.path.join(shown, name)
        if st.st_dev != device:
            raise OSError(errno.EBUSY, 'a mount point is in the way of the removal; left as it is', where)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            if os.fstat(child).st_dev != device:
                raise OSError(errno.EBUSY, 'a mount point is in the way of the removal; left as it is', where)
            _remove_contents(child, device, where)
        finally:
            os.close(child)
        try:
            os.rmdir(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass

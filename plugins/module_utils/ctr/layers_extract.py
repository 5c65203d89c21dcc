# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe extraction of a layer tar into a layer directory (the stream itself is read by ``tarscan``).

A layer tar is hostile input. ``LayerWriter`` never writes, links, changes or
deletes anything outside the layer directory:

* every call works relative to a directory file descriptor (``dir_fd=``); no
  joined path string ever reaches a call that follows symlinks;
* names are cleaned lexically ('/' stripped, '.' dropped, '..' applied); a name
  that climbs above the root is refused;
* parent directories are resolved *inside* the root: a symlink met on the way is
  followed as if the layer directory were '/' (absolute targets restart at the
  root, '..' stops at the root, at most 40 hops) -- as containerd and umoci do;
* the last component is never followed: an entry replaces whatever is there.

OCI whiteouts become overlayfs whiteouts so the directory can serve as an
overlay lowerdir: ``.wh.NAME`` becomes a 0/0 character device at NAME and
``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on its directory. Whiteouts
only hide lower layers (OCI image spec, layer.md), so a whiteout never deletes
an entry of its own layer: it marks such a directory opaque and leaves other
entries be, whichever order the tar gives them in.
"""

from __future__ import annotations

import base64
import errno
import os
import stat
from urllib.parse import unquote

from .errors import CorruptContent, KernelError, NotFound, UnsafeContent
from .records import record

WHITEOUT_PREFIX = '.wh.'
OPAQUE_MARKER = '.wh..wh..opq'
OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque'
MAX_SYMLINK_HOPS = 40

_O_PATH = getattr(os, 'O_PATH', 0o10000000)
_PATH_DIR = _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_CACHE_MAX = 64
# xattrs a layer may not set: overlayfs metadata (redirects, metacopy, opaque
# markers are ours to make) and host-specific SELinux labels.
_DROPPED_XATTR_PREFIXES = ('trusted.overlay.', 'user.overlay.', 'security.selinux')
_XATTR_UNSUPPORTED = (errno.ENOTSUP, errno.EOPNOTSUPP)


@record(frozen=True)
class EntryPlan:
    """What one tar entry name asks for once whiteout names are decoded.

    ``action`` is 'write' (create the entry at ``parts``), 'whiteout' (hide the
    lower ``parts``), 'opaque' (hide every lower child of directory ``parts``)
    or 'ignore' (another ``.wh..wh.`` marker, e.g. aufs hardlink bookkeeping).
    """

    action: str
    parts: tuple


def clean_parts(name, entry=None):
    """Split a tar path into clean components, refusing one that climbs above the root."""
    out = []
    for part in name.split('/'):
        if part in ('', '.'):
            continue
        if part == '..':
            if not out:
                shown = name if entry is None else entry
                raise UnsafeContent('layer entry "%s" escapes the layer root' % shown, entry=shown)
            out.pop()
        else:
            out.append(part)
    return tuple(out)


def plan_entry(name):
    """Decode a tar entry name: a plain entry, a whiteout, an opaque marker or an ignored marker."""
    parts = clean_parts(name)
    if not parts or not parts[-1].startswith(WHITEOUT_PREFIX):
        return EntryPlan('write', parts)
    base = parts[-1]
    if base == OPAQUE_MARKER:
        return EntryPlan('opaque', parts[:-1])
    if base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
        return EntryPlan('ignore', parts)
    target = base[len(WHITEOUT_PREFIX):]
    if target in ('', '.', '..'):
        raise UnsafeContent('layer entry "%s" is a whiteout that names no file of its directory' % name,
                            entry=name)
    return EntryPlan('whiteout', parts[:-1] + (target,))


def whiteout_name(name):
    """The OCI whiteout entry name that removes ``name`` (a basename) from lower layers."""
    return WHITEOUT_PREFIX + name


def is_overlay_whiteout(st):
    """True for an overlayfs whiteout: a character device numbered 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def tar_xattrs(member):
    """The xattrs a tar member carries (SCHILY.xattr.* and LIBARCHIVE.xattr.*), as (name, bytes)."""
    found = {}
    for key, value in sorted(member.pax_headers.items()):
        if key.startswith('LIBARCHIVE.xattr.'):
            name = unquote(key[len('LIBARCHIVE.xattr.'):], errors='surrogateescape')
            found.setdefault(name, base64.b64decode(value + '=' * (-len(value) % 4)))
    for key, value in member.pax_headers.items():
        if key.startswith('SCHILY.xattr.'):
            found[key[len('SCHILY.xattr.'):]] = value.encode('utf-8', 'surrogateescape')
    return sorted((k, v) for k, v in found.items() if k and not k.startswith(_DROPPED_XATTR_PREFIXES))


def rmtree_at(parent_fd, name):
    """Remove ``name`` (a directory under ``parent_fd``) and all it holds, never following a symlink."""
    frames = [[parent_fd, name, os.open(name, _READ_DIR, dir_fd=parent_fd), None]]
    try:
        while frames:
            frame = frames[-1]
            if frame[3] is None:
                frame[3] = _clear_files(frame[2])
            if frame[3]:
                sub = frame[3].pop()
                frames.append([frame[2], sub, os.open(sub, _READ_DIR, dir_fd=frame[2]), None])
                continue
            frames.pop()
            os.close(frame[2])
            frame[2] = None
            os.rmdir(frame[1], dir_fd=frame[0])
    finally:
        for frame in frames:
            if frame[2] is not None:
                os.close(frame[2])


def _clear_files(dir_fd):
    """Unlink every non-directory in ``dir_fd``; return the names of its subdirectories."""
    subdirs = []
    with os.scandir(dir_fd) as entries:
        listed = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for child, is_dir in listed:
        if is_dir:
            subdirs.append(child)
        else:
            os.unlink(child, dir_fd=dir_fd)
    return subdirs


def _lstat(dir_fd, name):
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _mtime_ns(member):
    return int(round(member.mtime * 1000000000))


class LayerWriter:
    """Applies tar members, in archive order, to one layer directory.

    Use as a context manager; call ``apply(member, data)`` for each member
    (``data``: a readable object for regular files) and ``finish()`` once at
    the end, which sets directory modes and mtimes, deepest first.
    """

    def __init__(self, dest_dir):
        try:
            self._root = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound('layer directory "%s" does not exist' % dest_dir, path=dest_dir) from None
        except OSError as exc:
            raise KernelError.from_oserror('open', dest_dir, exc) from None
        self._dest = dest_dir
        self._as_root = os.geteuid() == 0
        self._cache = {}      # lexical parent parts -> (O_PATH fd, canonical parts)
        self._retired = []    # fds dropped from the cache, closed after the current entry
        self._dirs = {}       # canonical parts -> (mode, mtime_ns, inode), applied by finish()
        self._entry = ''

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Release every descriptor; the writer cannot be used afterwards."""
        self._drop_cache()
        self._close_retired()
        if self._root is not None:
            os.close(self._root)
            self._root = None

    # -- public steps --------------------------------------------------------------------------

    def apply(self, member, data=None):
        """Create, replace or white out what one tar member describes."""
        self._entry = member.name
        try:
            plan = plan_entry(member.name)
            if plan.action == 'write':
                self._write(plan.parts, member, data)
            elif plan.action == 'whiteout':
                self._whiteout(plan.parts)
            elif plan.action == 'opaque':
                fd, canon = self._resolve(plan.parts, create=True)
                dir_fd = os.open('.', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                try:
                    self._set_opaque(dir_fd, canon)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise KernelError.from_oserror('extract layer entry', self._show(), exc) from None
        finally:
            self._close_retired()

    def finish(self):
        """Set the deferred directory modes and mtimes, deepest directory first."""
        for canon in sorted(self._dirs, key=lambda c: (-len(c), c)):
            mode, mtime_ns, ino = self._dirs[canon]
            fd = self._reopen_dir(canon)
            if fd is None:
                continue   # replaced by a later entry
            try:
                if os.fstat(fd).st_ino != ino:
                    continue
                os.chmod(fd, mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            except OSError as exc:
                raise KernelError.from_oserror('chmod', self._path(canon), exc) from None
            finally:
                if fd != self._root:
                    os.close(fd)
        self._dirs.clear()

    # -- entries ------------------------------------------------------------------------------

    def _write(self, parts, member, data):
        if not parts:
            if not member.isdir():
                raise CorruptContent('layer entry "%s" would replace the layer root with a non-directory'
                                     % member.name, entry=member.name)
            self._update_dir(self._root, (), member)
            return
        parent, canon = self._resolve(parts[:-1], create=True)
        leaf = parts[-1]
        if member.isdir():
            self._make_dir(parent, leaf, canon + (leaf,), member)
        elif member.islnk():
            self._make_hardlink(parent, leaf, member)
        elif member.issym():
            self._replace(parent, leaf)
            os.symlink(member.linkname, leaf, dir_fd=parent)
            self._finish_special(parent, leaf, member, chmod=False)
        elif member.isreg():
            self._make_file(parent, leaf, member, data)
        elif member.ischr() or member.isblk() or member.isfifo():
            self._replace(parent, leaf)
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            device = os.makedev(member.devmajor, member.devminor) if kind != stat.S_IFIFO else 0
            os.mknod(leaf, kind | 0o600, device, dir_fd=parent)
            self._finish_special(parent, leaf, member, chmod=True)
        else:
            raise CorruptContent('layer entry "%s" has the unsupported tar type %r' % (member.name, member.type),
                                 entry=member.name)

    def _make_dir(self, parent, leaf, canon, member):
        st = _lstat(parent, leaf)
        was_whiteout = st is not None and is_overlay_whiteout(st)
        if st is None or not stat.S_ISDIR(st.st_mode):
            self._replace(parent, leaf)
            os.mkdir(leaf, 0o700, dir_fd=parent)
        fd = os.open(leaf, _READ_DIR, dir_fd=parent)
        try:
            if was_whiteout:
                self._set_opaque(fd, canon)
            self._update_dir(fd, canon, member)
        finally:
            os.close(fd)

    def _update_dir(self, fd, canon, member):
        self._own(fd, member)
        self._set_xattrs(fd, member, regular=True)
        self._dirs[canon] = (member.mode & 0o7777, _mtime_ns(member), os.fstat(fd).st_ino)

    def _make_file(self, parent, leaf, member, data):
        self._replace(parent, leaf)
        fd = os.open(leaf, _NEW_FILE, 0o600, dir_fd=parent)
        try:
            if data is not None:
                _copy_into(data, fd)
            self._own(fd, member)
            self._set_xattrs(fd, member, regular=True)
            os.chmod(fd, member.mode & 0o7777)   # after chown, which clears setuid bits
            os.utime(fd, ns=(_mtime_ns(member),) * 2)
        finally:
            os.close(fd)

    def _make_hardlink(self, parent, leaf, member):
        tparent, tleaf, tst = self._link_target(member)
        st = _lstat(parent, leaf)
        if st is not None and (st.st_dev, st.st_ino) == (tst.st_dev, tst.st_ino):
            return
        self._replace(parent, leaf)
        os.link(tleaf, leaf, src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)

    def _link_target(self, member):
        """Resolve a hardlink's target inside the root: an existing non-directory, or UnsafeContent."""
        def refuse(why):
            return UnsafeContent('layer entry "%s" is a hardlink to "%s", which %s'
                                 % (member.name, member.linkname, why), entry=member.name)
        try:
            target = clean_parts(member.linkname, entry=member.name)
        except UnsafeContent:
            raise refuse('escapes the layer root') from None
        if not target:
            raise refuse('is the layer root')
        try:
            tparent = self._resolve(target[:-1], create=False)[0]
        except UnsafeContent:
            raise
        except (NotFound, CorruptContent):
            raise refuse('does not exist in this layer') from None
        tst = _lstat(tparent, target[-1])
        if tst is None:
            raise refuse('does not exist in this layer')
        if stat.S_ISDIR(tst.st_mode):
            raise refuse('is a directory')
        return tparent, target[-1], tst

    def _finish_special(self, parent, leaf, member, chmod):
        """Ownership, xattrs, mode and mtime of a symlink, device or fifo (never followed)."""
        if self._as_root:
            os.chown(leaf, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        self._set_xattrs(_proc_child(parent, leaf), member, regular=False)
        if chmod:
            fd = os.open(leaf, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            try:
                if stat.S_ISLNK(os.fstat(fd).st_mode):
                    raise CorruptContent('layer entry "%s" changed type while it was extracted' % member.name)
                os.chmod('/proc/self/fd/%d' % fd, member.mode & 0o7777)
            finally:
                os.close(fd)
        os.utime(leaf, ns=(_mtime_ns(member),) * 2, dir_fd=parent, follow_symlinks=False)

    def _whiteout(self, parts):
        parent, canon = self._resolve(parts[:-1], create=True)
        leaf = parts[-1]
        st = _lstat(parent, leaf)
        if st is None:
            try:
                os.mknod(leaf, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
            except OSError as exc:
                raise KernelError.from_oserror('mknod overlay whiteout', self._path(canon + (leaf,)), exc) from None
        elif stat.S_ISDIR(st.st_mode):
            # the directory belongs to this layer: keep it, hide the lower one's children
            fd = os.open(leaf, _READ_DIR, dir_fd=parent)
            try:
                self._set_opaque(fd, canon + (leaf,))
            finally:
                os.close(fd)
        # anything else (this layer's own file, or a whiteout already) hides the lower entry

    # -- helpers ------------------------------------------------------------------------------

    def _replace(self, parent, leaf):
        """Remove whatever is at ``leaf`` (a symlink itself, a directory recursively)."""
        st = _lstat(parent, leaf)
        if st is None:
            return
        self._drop_cache()
        if stat.S_ISDIR(st.st_mode):
            rmtree_at(parent, leaf)
        else:
            os.unlink(leaf, dir_fd=parent)

    def _own(self, fd, member):
        if self._as_root:
            os.chown(fd, member.uid, member.gid)

    def _set_opaque(self, fd, canon):
        try:
            os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b'y')
        except OSError as exc:
            raise KernelError.from_oserror('setxattr %s' % OVERLAY_OPAQUE_XATTR, self._path(canon), exc) from None

    def _set_xattrs(self, target, member, regular):
        """Set the member's xattrs on ``target`` (an fd, or a /proc path used without following)."""
        for name, value in tar_xattrs(member):
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, value)
                else:
                    os.setxattr(target, name, value, follow_symlinks=False)
            except OSError as exc:
                if not self._xattr_failure_matters(exc, name, regular):
                    continue
                raise KernelError.from_oserror('setxattr %s' % name, self._show(), exc) from None

    def _xattr_failure_matters(self, exc, name, regular):
        if exc.errno in _XATTR_UNSUPPORTED:
            return False           # the filesystem keeps no xattrs of this kind
        if exc.errno == errno.EPERM:
            privileged = name.startswith(('trusted.', 'security.'))
            # best effort without root; user.* is refused by the kernel on symlinks and devices
            return not ((privileged and not self._as_root) or (not regular and name.startswith('user.')))
        return True

    def _resolve(self, parts, create):
        """An O_PATH fd for directory ``parts`` resolved inside the root, and its canonical parts."""
        if not parts:
            return self._root, ()
        hit = self._cache.get(parts)
        if hit is not None:
            return hit
        found = self._walk(parts, create)
        if len(self._cache) >= _CACHE_MAX:
            self._drop_cache()
        self._cache[parts] = found
        return found

    def _walk(self, parts, create):
        stack = []              # fds below the root; stack[-1] is the current directory
        canon = []
        todo = list(reversed(parts))
        hops = 0
        try:
            while todo:
                comp = todo.pop()
                if comp in ('', '.'):
                    continue
                if comp == '..':
                    if stack:      # '..' stops at the root
                        os.close(stack.pop())
                        canon.pop()
                    continue
                cur = stack[-1] if stack else self._root
                st = self._parent_stat(cur, comp, canon, create)
                if stat.S_ISLNK(st.st_mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise UnsafeContent('layer entry "%s" meets more than %d symbolic links on its way'
                                            % (self._entry, MAX_SYMLINK_HOPS), entry=self._entry)
                    target = os.readlink(comp, dir_fd=cur)
                    if target.startswith('/'):
                        while stack:
                            os.close(stack.pop())
                        del canon[:]
                    todo.extend(reversed(target.split('/')))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise CorruptContent('layer entry "%s" has a parent "%s" that is not a directory'
                                         % (self._entry, '/'.join(canon + [comp])), entry=self._entry)
                stack.append(os.open(comp, _PATH_DIR, dir_fd=cur))
                canon.append(comp)
            if not stack:
                return self._root, ()
            return stack.pop(), tuple(canon)
        finally:
            for fd in stack:
                os.close(fd)

    def _parent_stat(self, cur, comp, canon, create):
        """lstat a parent component, creating it (0755) when missing or a whiteout of this layer."""
        st = _lstat(cur, comp)
        if st is not None and not (create and is_overlay_whiteout(st)):
            return st
        if not create:
            raise NotFound('layer entry "%s" needs "%s", which does not exist'
                           % (self._entry, '/'.join(canon + [comp])))
        if st is not None:            # a whiteout in this layer: the new directory hides the lower one
            self._replace(cur, comp)
        try:
            os.mkdir(comp, 0o755, dir_fd=cur)
        except FileExistsError:
            return _lstat(cur, comp)
        fd = os.open(comp, _READ_DIR, dir_fd=cur)
        try:
            os.chmod(fd, 0o755)
            if st is not None:
                self._set_opaque(fd, tuple(canon) + (comp,))
        finally:
            os.close(fd)
        return os.stat(comp, dir_fd=cur, follow_symlinks=False)

    def _reopen_dir(self, canon):
        """A readable fd for ``canon`` walked without following anything, or None if it is gone."""
        if not canon:
            return self._root
        cur = self._root
        try:
            for i, comp in enumerate(canon):
                flags = _READ_DIR if i == len(canon) - 1 else _PATH_DIR
                nxt = os.open(comp, flags, dir_fd=cur)
                if cur != self._root:
                    os.close(cur)
                cur = nxt
            return cur
        except OSError as exc:
            if cur != self._root:
                os.close(cur)
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise KernelError.from_oserror('open', self._path(canon), exc) from None

    def _drop_cache(self):
        for fd, _canon in self._cache.values():
            if fd != self._root:
                self._retired.append(fd)
        self._cache.clear()

    def _close_retired(self):
        while self._retired:
            os.close(self._retired.pop())

    def _path(self, canon):
        return os.path.join(self._dest, *canon)

    def _show(self):
        return os.path.join(self._dest, *clean_parts(self._entry, entry=self._entry))


def _proc_child(dir_fd, name):
    """A path naming ``name`` in ``dir_fd`` through /proc, for calls that have no dir_fd form."""
    return '/proc/self/fd/%d/%s' % (dir_fd, name)


def _copy_into(data, fd):
    """Copy a readable object into ``fd`` in big chunks."""
    while True:
        chunk = data.read(_CHUNK)
        if not chunk:
            return
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]

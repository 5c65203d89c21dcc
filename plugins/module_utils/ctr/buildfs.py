# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filesystem steps of a build: WORKDIR, COPY and ADD.

A step works on a scratch area under ``<root>/build/tmp/``::

    upper/  work/     the overlay's writable half: what the step changed becomes its layer
    merged/           the stage's layers with upper/ on top, mounted only in a child process
    view/             a read-only overlay of another stage or image (COPY --from)
    files/            downloads (ADD URL) and heredoc bodies, made by the parent

The child forks off, takes a private mount namespace (so the mounts vanish
with it, whatever happens), mounts, applies the step's operations and exits;
the parent then packs ``upper/`` (overlay whiteouts become OCI ones).

Every destination inside the image is resolved the way the kernel would
resolve it if the image's root were ``/`` (:func:`resolve_in_root`): an
absolute symlink in a hostile image leads back into the image, never to the
host. Leaves are created without following symlinks.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tempfile

from . import fsutil, libc
from .errors import CtrError, InvalidArgument, KernelError
from .records import field, record

_MAX_HOPS = 40
_CHUNK = 1 << 20


class StepError(CtrError):
    """An operation of a filesystem step failed (the message is the user's)."""


# -- operations ------------------------------------------------------------------------------------

@record(frozen=True)
class Source:
    """One thing to copy: a file, dir or symlink on the host (the context, a download) or in ``view/``."""

    path: str                   # host path, or a path inside the view when ``in_view``
    kind: str                   # 'file', 'dir', 'symlink'
    in_view: bool = False
    extract: bool = False       # ADD of a local archive: unpack it into the destination
    mode: int | None = None  # overrides the source's mode bits (downloads: 0600)
    name: str = ''              # the name the copy gets when the destination is a directory (default: basename)
    mtime_ns: int | None = None
    entries: tuple[tuple[str, str], ...] | None = None     # a context dir: (path under it, host path), walked
    #                                                           by the parent (ignore rules applied), parents first
    data: bytes | None = None    # a heredoc: the file's content (``path`` is unused)


@record(frozen=True)
class Copy:
    """COPY/ADD: ``sources`` to ``dest`` (absolute, inside the image) with Docker's rules."""

    sources: tuple[Source, ...]
    dest: str
    dest_is_dir: bool                   # the destination ends with '/' or there are several sources
    owner: tuple[int, int] | None    # --chown; None keeps the source's owner (view) or root (context)
    chmod: int | None = None
    view_patterns: tuple[str, ...] = ()  # COPY --from: patterns resolved inside view/ by the child
    what: str = 'COPY'


@record(frozen=True)
class MakeDir:
    """WORKDIR: the directory and its missing parents."""

    path: str
    owner: tuple[int, int] = (0, 0)


@record
class Scratch:
    """A step's work area; ``close()`` removes it."""

    base: str
    lower: list[str] = field(default_factory=list)      # the stage's layer dirs, lowest first
    view_lower: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, store_root, lower, view_lower=()):
        parent = os.path.join(store_root, 'build', 'tmp')
        fsutil.makedirs(parent, 0o700)
        base = tempfile.mkdtemp(prefix='step-', dir=parent)
        for name in ('upper', 'work', 'merged', 'view', 'files', 'empty'):
            os.mkdir(os.path.join(base, name), 0o755)
        return cls(base, list(lower), list(view_lower))

    def path(self, name):
        return os.path.join(self.base, name)

    def close(self):
        fsutil.remove_tree(self.base)


# -- running a step ------------------------------------------------------------------------------

def apply(scratch, operations):
    """Apply ``operations`` in a child with its own mount namespace; raises StepError on failure."""
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise KernelError.from_oserror('fork the build step helper for', scratch.base, exc)
    if pid == 0:            # pragma: no cover - runs in the child
        os.close(read_fd)
        code = 0
        try:
            _child(scratch, operations)
        except BaseException as exc:    # every failure becomes one sentence for the parent
            code = 1
            try:
                os.write(write_fd, _sentence(exc).encode('utf-8', 'replace')[:65536])
            except BaseException:
                pass
        os._exit(code)
    os.close(write_fd)
    chunks = []
    try:
        while True:
            data = os.read(read_fd, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(read_fd)
        status = os.waitpid(pid, 0)[1]
    message = b''.join(chunks).decode('utf-8', 'replace')
    if os.waitstatus_to_exitcode(status) != 0 or message:
        raise StepError(message or 'the build step helper died (wait status %d)' % status)


def _sentence(exc):
    if isinstance(exc, CtrError):
        return exc.msg
    if isinstance(exc, OSError):
        where = ' "%s"' % exc.filename if exc.filename else ''
        return '%s%s: %s' % (type(exc).__name__, where, exc.strerror or exc)
    return '%s: %s' % (type(exc).__name__, exc)


def _child(scratch, operations):   # pragma: no cover - runs in the child
    libc.unshare(libc.CLONE_NEWNS)
    libc.mount(None, '/', None, libc.MS_REC | libc.MS_PRIVATE)
    lower = list(reversed(scratch.lower)) or [scratch.path('empty')]
    _overlay(scratch.path('merged'), lower, scratch.path('upper'), scratch.path('work'))
    if scratch.view_lower:
        _overlay(scratch.path('view'), list(reversed(scratch.view_lower)) + [scratch.path('empty')])
    root = scratch.path('merged')
    for op in operations:
        if isinstance(op, MakeDir):
            resolve_in_root(root, op.path, make=op.owner)
        elif isinstance(op, Copy):
            _copy(root, scratch.path('view'), op)
        else:
            raise TypeError('unknown build operation %r' % (op,))


def _overlay(target, lower, upper=None, work=None):
    from .runtime import rootfs
    rootfs.mount_overlay(rootfs.RootfsPaths(init='', upper=upper or '', work=work or '', merged=target, lower=lower))


# -- paths inside an image -------------------------------------------------------------------------

def resolve_in_root(root, path, make=None, follow_leaf=True):
    """The host path of ``path`` inside ``root``, symlinks resolved as if ``root`` were ``/``.

    ``make=(uid, gid)`` creates missing directories (mode 0755, that owner) on the way;
    without it, the missing rest is appended as it is. ``..`` never climbs above ``root``.
    """
    parts = [p for p in path.split('/') if p and p != '.']
    done, hops = [], 0
    while parts:
        comp = parts.pop(0)
        if comp == '..':
            if done:
                done.pop()
            continue
        host = os.path.join(root, *done, comp)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            if make is None:
                rest = os.path.normpath('/' + '/'.join([comp] + parts)).lstrip('/')
                return os.path.join(root, *done, rest) if rest else os.path.join(root, *done)
            os.mkdir(host, 0o755)
            os.lchown(host, make[0], make[1])
            os.chmod(host, 0o755)
            done.append(comp)
            continue
        if stat.S_ISLNK(st.st_mode) and (parts or follow_leaf):
            hops += 1
            if hops > _MAX_HOPS:
                raise InvalidArgument('too many levels of symbolic links resolving %s inside the image' % path)
            target = os.readlink(host)
            if target.startswith('/'):
                done = []
            parts = [p for p in target.split('/') if p and p != '.'] + parts
            continue
        if parts and not stat.S_ISDIR(st.st_mode):
            raise InvalidArgument('%s is not a directory inside the image (it is on the way to %s)'
                                  % ('/' + '/'.join(done + [comp]), path))
        done.append(comp)
    return os.path.join(root, *done)


def _glob_in_root(root, pattern, what):
    """COPY --from sources: Go ``filepath.Match`` patterns, one component at a time, inside ``root``;
    ``[(name, host path)]`` where the name is the matched one (a symlink source keeps its own name)."""
    from .buildcontext import has_wildcard, translate
    parts = [p for p in pattern.split('/') if p and p != '.']
    found = ['']
    for comp in parts:
        nxt = []
        for rel in found:
            if not has_wildcard(comp):
                nxt.append(rel + '/' + comp)
                continue
            base = resolve_in_root(root, rel or '/')
            try:
                names = sorted(os.listdir(base))
            except OSError:
                continue
            nxt.extend(rel + '/' + n for n in names if _go_match(translate(comp, docker=False), n))
        found = nxt
    out = []
    for rel in found or ['/']:
        host = resolve_in_root(root, rel or '/')
        if os.path.lexists(host):
            out.append((posixpath.basename(posixpath.normpath('/' + rel)), host))
    if not out:
        raise StepError('%s source "%s" does not exist in the stage or image it copies from' % (what, pattern))
    return out


def _go_match(compiled, name):
    kind, value = compiled
    if kind == 'exact':
        return name == value
    if kind == 'prefix':
        return name.startswith(value)
    if kind == 'suffix':
        return name.endswith(value)
    return value.match(name) is not None


def _kind(st):
    if stat.S_ISDIR(st.st_mode):
        return 'dir'
    if stat.S_ISLNK(st.st_mode):
        return 'symlink'
    if stat.S_ISREG(st.st_mode):
        return 'file'
    return 'other'


# -- COPY and ADD --------------------------------------------------------------------------------

def _copy(root, view_root, op):
    sources = list(op.sources)
    for pattern in op.view_patterns:
        for name, host in _glob_in_root(view_root, pattern, op.what):
            st = os.stat(host) if os.path.exists(host) else os.lstat(host)   # the top source is followed
            sources.append(Source(host, _kind(st), in_view=True, name=name))
    if len(sources) > 1 and not op.dest_is_dir:
        raise StepError('%s with more than one source needs a destination directory ending in "/" (%s)'
                        % (op.what, op.dest))
    made = op.owner or (0, 0)
    for src in sources:
        owner = op.owner if op.owner is not None else (None if src.in_view else (0, 0))
        if src.kind == 'dir':
            target = resolve_in_root(root, op.dest, make=made)
            _ensure_dir(target, op.dest)
            if src.entries is None:
                _copy_tree(src.path, target, owner, op.chmod)
            else:
                _copy_entries(src.entries, target, owner, op.chmod)
        elif src.extract:
            target = resolve_in_root(root, op.dest, make=made)
            _ensure_dir(target, op.dest)
            _extract(src.path, target, op.owner)
        else:
            dest_host = resolve_in_root(root, op.dest)
            if op.dest_is_dir or os.path.isdir(dest_host):
                parent = resolve_in_root(root, op.dest, make=made)
                _ensure_dir(parent, op.dest)
                leaf = os.path.join(parent, src.name or os.path.basename(src.path))
            else:
                parent = resolve_in_root(root, os.path.dirname(op.dest.rstrip('/')) or '/', make=made)
                leaf = os.path.join(parent, os.path.basename(op.dest.rstrip('/')))
            if src.data is not None:
                _write_data(leaf, src.data, owner or (0, 0), op.chmod if op.chmod is not None else src.mode,
                            src.mtime_ns)
            else:
                _place(src.path, leaf, os.stat(src.path) if src.in_view else os.lstat(src.path), owner, op.chmod,
                       src.mode, src.mtime_ns)


def _ensure_dir(host, shown):
    if not os.path.isdir(host) or os.path.islink(host):
        raise StepError('the destination %s exists inside the image and is not a directory' % shown)


def _copy_tree(src_dir, dest_dir, owner, chmod):
    """The contents of ``src_dir`` into ``dest_dir`` (which exists): dirs before their children."""
    for name in sorted(os.listdir(src_dir)):
        src = os.path.join(src_dir, name)
        st = os.lstat(src)
        leaf = os.path.join(dest_dir, name)
        _place(src, leaf, st, owner, chmod)
        if stat.S_ISDIR(st.st_mode):
            _copy_tree(src, leaf, owner, chmod)
            os.utime(leaf, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_entries(entries, dest_dir, owner, chmod):
    """Walked context entries into ``dest_dir``; directory mtimes are set last, deepest first."""
    dirs = []
    for rel, host in entries:
        st = os.lstat(host)
        if _kind(st) == 'other':
            continue
        leaf = os.path.join(dest_dir, rel)
        _place(host, leaf, st, owner, chmod)
        if stat.S_ISDIR(st.st_mode):
            dirs.append((leaf, st))
    for leaf, st in reversed(dirs):
        os.utime(leaf, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _place(src, leaf, st, owner, chmod, mode=None, mtime_ns=None):
    """One entry at ``leaf`` (whose parent is real and inside the image); the leaf is never followed."""
    want_dir = stat.S_ISDIR(st.st_mode)
    old = _make_room(leaf, keep_dir=want_dir)
    uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
    bits = chmod if chmod is not None else (mode if mode is not None else stat.S_IMODE(st.st_mode))
    if want_dir:
        if old is None:
            os.mkdir(leaf, 0o700)
    elif _kind(st) == 'other':          # FIFOs and devices of an image are made again, never opened
        if stat.S_ISSOCK(st.st_mode):
            return
        os.mknod(leaf, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), leaf)
        os.lchown(leaf, uid, gid)
        os.utime(leaf, ns=(st.st_atime_ns, mtime_ns or st.st_mtime_ns), follow_symlinks=False)
        return
    else:
        _copy_file(src, leaf)
    os.lchown(leaf, uid, gid)
    os.chmod(leaf, bits)
    os.utime(leaf, ns=(st.st_atime_ns, mtime_ns or st.st_mtime_ns), follow_symlinks=False)


def _make_room(leaf, keep_dir):
    """Remove what is at ``leaf`` (never following it), but a directory when ``keep_dir``; what is left."""
    try:
        old = os.lstat(leaf)
    except FileNotFoundError:
        return None
    if keep_dir and stat.S_ISDIR(old.st_mode):
        return old
    if stat.S_ISDIR(old.st_mode):
        fsutil.remove_tree(leaf)
    else:
        os.unlink(leaf)
    return None


def _write_data(leaf, data, owner, mode, mtime_ns):
    _make_room(leaf, keep_dir=False)
    fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.lchown(leaf, owner[0], owner[1])
    os.chmod(leaf, mode if mode is not None else 0o644)
    if mtime_ns is not None:
        os.utime(leaf, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


def _copy_file(src, dest):
    fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd_in).st_mode):
        os.close(fd_in)
        raise StepError('%s changed while it was being copied: it is no longer a regular file' % src)
    try:
        fd_out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fd_in).st_size
            offset = 0
            while offset < size:
                try:
                    sent = os.sendfile(fd_out, fd_in, offset, min(size - offset, 1 << 30))
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                        raise
                    _copy_plain(fd_in, fd_out, offset)
                    break
                if sent == 0:
                    break
                offset += sent
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_plain(fd_in, fd_out, offset):
    os.lseek(fd_in, offset, os.SEEK_SET)
    os.lseek(fd_out, offset, os.SEEK_SET)
    while True:
        data = os.read(fd_in, _CHUNK)
        if not data:
            return
        while data:
            data = data[os.write(fd_out, data):]


def _extract(archive, dest_dir, owner):
    """ADD of a local tar (plain, gzip, bzip2, xz): unpacked into ``dest_dir`` by the safe layer writer."""
    import tarfile
    from .layers_extract import LayerWriter
    with tarfile.open(archive, 'r:*') as tar, LayerWriter(dest_dir) as writer:
        for member in tar:
            if owner is not None:
                member.uid, member.gid = owner
            writer.apply(member, tar.extractfile(member) if member.isreg() else None)
        writer.finish()


def is_archive(path):
    """Whether ADD unpacks ``path``: a tar, plain or compressed with gzip, bzip2 or xz (as Docker)."""
    import tarfile
    try:
        with open(path, 'rb') as f:
            head = f.read(262)
    except OSError:
        return False
    if not (head[:2] == b'\x1f\x8b' or head[:3] == b'BZh' or head[:6] == b'\xfd7zXZ\x00'
            or head[257:262] == b'ustar'):
        return False
    try:
        with tarfile.open(path, 'r:*') as tar:
            tar.next()
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False


__all__ = ['Copy', 'MakeDir', 'Scratch', 'Source', 'StepError', 'apply', 'is_archive', 'resolve_in_root']

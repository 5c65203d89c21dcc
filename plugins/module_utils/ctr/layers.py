# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI image layers: deterministic tar packing, import, safe extraction, diff and chain IDs.

A layer blob is a tar stream, usually gzip-compressed. Its *diff ID* is the
sha256 of the uncompressed stream, its *digest* the sha256 of the blob; a
*chain ID* names a stack of layers (OCI image spec, config.md).

Packing and importing make one streaming pass through ``streams.BlobSink``
(diff ID, deflate on a worker thread behind a fixed gzip header, digest), so the
same tree always gives the same bytes. Writing a blob into the store atomically
is the caller's job; these functions only write to the file object they are given.
Reading and validating tar streams lives in ``tarscan``, the descriptor-based,
hostile-input safe extraction in ``layers_extract``.
"""

from __future__ import annotations

import errno
import os
import stat

from .errors import Conflict, CorruptContent, InvalidArgument, KernelError, NotFound
from .records import record
from .store import chain_ids, check_digest
from .streams import (CHUNK, COMPRESSIONS, MEDIA_TYPE_TAR, MEDIA_TYPE_TAR_GZIP, BlobSink, LayerDigests,
                      detect_compression, open_uncompressed, read_diff_id)
from .layers_extract import OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, LayerWriter, is_overlay_whiteout, whiteout_name
from .tarscan import TAR_ERRORS, TarScan

_BLOCK = 512
FAST_LEVEL = 1      # the gzip level of layers made on the host (build steps, commits): speed first
_NOT_PACKED_XATTRS = ('security.selinux', 'trusted.overlay.')
_OVERLAY_UNPACKABLE = ('trusted.overlay.redirect', 'trusted.overlay.metacopy')


# -- tar headers ----------------------------------------------------------------------------------

def tar_header(name, typeflag, *, mode=0, uid=0, gid=0, size=0, mtime=0, linkname=b'', devmajor=0, devminor=0,
               xattrs=()):
    """A PAX/ustar header for one entry (bytes name and linkname), with empty uname/gname.

    A pax extended header is prepended, its records sorted, when the entry has
    xattrs (SCHILY.xattr.*) or a value the ustar fields cannot hold.
    """
    records = {}
    for key, value in ((b'path', name), (b'linkpath', linkname)):
        if len(value) > 100 or not _is_ascii(value):
            records[key] = value
            if not _is_utf8(value):
                records[b'hdrcharset'] = b'BINARY'
    for key, value, width in ((b'uid', uid, 8), (b'gid', gid, 8), (b'size', size, 12), (b'mtime', mtime, 12)):
        if not 0 <= value < 8 ** (width - 1):
            records[key] = b'%d' % value
    for key, value in xattrs:
        records[b'SCHILY.xattr.' + key] = value
    head = b''
    if records:
        payload = b''.join(_pax_record(key, records[key]) for key in sorted(records))
        head = _ustar(b'././@PaxHeader', b'x', 0o644, 0, 0, len(payload), 0, b'', None) + payload + _pad(len(payload))
    device = (devmajor, devminor) if typeflag in (b'3', b'4') else None
    return head + _ustar(name[:100], typeflag, mode, uid, gid, size, mtime, linkname[:100], device)


def _ustar(name, typeflag, mode, uid, gid, size, mtime, linkname, device):
    def num(value, width):
        return b'%0*o\0' % (width - 1, value if 0 <= value < 8 ** (width - 1) else 0)

    devfields = num(device[0], 8) + num(device[1], 8) if device else b'\0' * 16
    block = b''.join((
        name.ljust(100, b'\0'), num(mode & 0o7777, 8), num(uid, 8), num(gid, 8), num(size, 12), num(mtime, 12),
        b' ' * 8, typeflag, linkname.ljust(100, b'\0'), b'ustar\x0000', b'\0' * 64, devfields, b'\0' * 167))
    return block[:148] + b'%06o\0 ' % sum(block) + block[156:]


def _pax_record(key, value):
    body = b' ' + key + b'=' + value + b'\n'
    length = len(body) + 1
    while len(body) + len(b'%d' % length) != length:
        length = len(body) + len(b'%d' % length)
    return b'%d' % length + body


def _pad(size):
    return b'\0' * (-size % _BLOCK)


def _is_ascii(value):
    return all(b < 128 for b in value)


def _is_utf8(value):
    try:
        value.decode('utf-8')
        return True
    except UnicodeDecodeError:
        return False


# -- packing a tree -------------------------------------------------------------------------------

def pack_tree(src_dir, out, *, compression='gzip', level=6, mtime_clamp=None, overlay_whiteouts=False, skip=None):
    """Deterministic layer tar of ``src_dir`` written to binary file object ``out``.

    Entries are sorted by the bytes of their relative path (parents first);
    the opaque marker of an overlay directory comes first among its children.
    Sockets are skipped; ``skip(relpath)`` drops an entry and its subtree;
    ``mtime_clamp`` caps every mtime; ``overlay_whiteouts`` reads an overlayfs
    upper dir (0/0 character devices and opaque directories become OCI
    whiteouts). One streaming pass; returns the LayerDigests.
    """
    if mtime_clamp is not None and (isinstance(mtime_clamp, bool) or not isinstance(mtime_clamp, int)
                                    or mtime_clamp < 0):
        raise InvalidArgument('mtime clamp "%s" is not a non-negative integer (seconds since the epoch)'
                              % (mtime_clamp,), mtime_clamp=mtime_clamp)
    sink = BlobSink(out, compression, level)
    try:
        _TreePacker(src_dir, sink, mtime_clamp, overlay_whiteouts, skip).run()
        sink.write(b'\0' * (2 * _BLOCK))
        return sink.finish()
    finally:
        sink.abort()


@record
class _Item:
    key: bytes            # sort key among siblings
    kind: str             # 'entry', 'tree' (the subtree of a directory) or 'opaque'
    name: str             # name on disk
    out_name: str         # name in the tar
    st: os.stat_result
    whiteout: bool = False


class _TreePacker:
    def __init__(self, src_dir, sink, mtime_clamp, overlay, skip):
        self._src = src_dir
        self._sink = sink
        self._clamp = mtime_clamp
        self._overlay = overlay
        self._skip = skip
        self._links = {}
        self._proc = os.path.isdir('/proc/self/fd')
        self._where = src_dir

    def run(self):
        try:
            root = os.open(self._src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound('layer source directory "%s" does not exist' % self._src, path=self._src) from None
        except OSError as exc:
            raise KernelError.from_oserror('open', self._src, exc) from None
        stack = [(root, '', iter(self._children(root, '', os.fstat(root))))]
        try:
            while stack:
                dir_fd, prefix, items = stack[-1]
                item = next(items, None)
                if item is None:
                    os.close(stack.pop()[0])
                elif item.kind == 'tree':
                    self._where = os.path.join(self._src, prefix + item.name)
                    sub = os.open(item.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  dir_fd=dir_fd)
                    sub_prefix = prefix + item.name + '/'
                    stack.append((sub, sub_prefix, iter(())))   # closed by the finally if listing fails
                    stack[-1] = (sub, sub_prefix, iter(self._children(sub, sub_prefix, item.st)))
                else:
                    self._where = os.path.join(self._src, prefix + item.name)
                    self._emit(dir_fd, prefix, item)
        except OSError as exc:
            raise KernelError.from_oserror('pack', self._where, exc) from None
        finally:
            for frame in stack:
                os.close(frame[0])

    def _children(self, dir_fd, prefix, dir_st):
        items = []
        if self._overlay and _getxattr(dir_fd, OVERLAY_OPAQUE_XATTR) == b'y':
            items.append(_Item(b'', 'opaque', '', OPAQUE_MARKER, dir_st))
        with os.scandir(dir_fd) as entries:
            listed = list(entries)
        for entry in listed:
            if self._skip is not None and self._skip(prefix + entry.name):
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISSOCK(st.st_mode):
                continue
            whiteout = self._overlay and is_overlay_whiteout(st)
            out_name = whiteout_name(entry.name) if whiteout else entry.name
            key = os.fsencode(out_name)
            items.append(_Item(key, 'entry', entry.name, out_name, st, whiteout))
            if stat.S_ISDIR(st.st_mode):
                items.append(_Item(key + b'/', 'tree', entry.name, out_name, st))
        items.sort(key=lambda item: item.key)
        return items

    def _mtime(self, st):
        mtime = st.st_mtime_ns // 1000000000
        return mtime if self._clamp is None else min(mtime, self._clamp)

    def _header(self, name, typeflag, st, **extra):
        mode = extra.pop('mode', st.st_mode)
        self._sink.write(tar_header(os.fsencode(name), typeflag, mode=mode, uid=st.st_uid, gid=st.st_gid,
                                    mtime=self._mtime(st), **extra))

    def _emit(self, dir_fd, prefix, item):
        st, name = item.st, prefix + item.out_name
        if item.kind == 'opaque' or item.whiteout:
            self._header(name, b'0', st, mode=0o600)
            return
        fmt = stat.S_IFMT(st.st_mode)
        if fmt != stat.S_IFDIR and st.st_nlink > 1:
            first = self._links.setdefault((st.st_dev, st.st_ino), name)
            if first != name:
                self._header(name, b'1', st, linkname=os.fsencode(first))
                return
        if fmt == stat.S_IFREG:
            self._emit_file(dir_fd, item, name)
        elif fmt == stat.S_IFDIR:
            fd = os.open(item.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                xattrs = self._xattrs(fd, name)
            finally:
                os.close(fd)
            self._header(name + '/', b'5', st, xattrs=xattrs)
        else:
            xattrs = self._xattrs(self._proc_child(dir_fd, item.name), name) if self._proc else ()
            if fmt == stat.S_IFLNK:
                target = os.fsencode(os.readlink(item.name, dir_fd=dir_fd))
                self._header(name, b'2', st, linkname=target, xattrs=xattrs)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                self._header(name, b'3' if fmt == stat.S_IFCHR else b'4', st, xattrs=xattrs,
                             devmajor=os.major(st.st_rdev), devminor=os.minor(st.st_rdev))
            elif fmt == stat.S_IFIFO:
                self._header(name, b'6', st, xattrs=xattrs)

    def _emit_file(self, dir_fd, item, name):
        fd = os.open(item.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            now = os.fstat(fd)
            if not stat.S_ISREG(now.st_mode) or now.st_ino != item.st.st_ino:
                raise Conflict('file "%s" was replaced while its layer was being packed' % self._where)
            self._header(name, b'0', item.st, size=item.st.st_size, xattrs=self._xattrs(fd, name))
            remaining = item.st.st_size
            while remaining:
                chunk = os.read(fd, min(CHUNK, remaining))
                if not chunk:
                    raise Conflict('file "%s" shrank while its layer was being packed' % self._where)
                self._sink.write(chunk)
                remaining -= len(chunk)
            self._sink.write(_pad(item.st.st_size))
        finally:
            os.close(fd)

    def _xattrs(self, target, name):
        """Sorted (name, value) xattrs of an fd or a /proc path, without the ones layers never carry."""
        is_fd = isinstance(target, int)
        try:
            names = os.listxattr(target) if is_fd else os.listxattr(target, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOENT):
                return ()
            raise
        found = []
        for key in names:
            if self._overlay and key in _OVERLAY_UNPACKABLE:
                raise Conflict('overlay upper entry "%s" carries %s; mount overlays with redirect_dir=off and '
                               'metacopy=off to pack their upper dir' % (name, key), path=self._where)
            if key.startswith(_NOT_PACKED_XATTRS):
                continue
            value = _getxattr(target, key) if is_fd else _getxattr(target, key, follow_symlinks=False)
            if value is not None:
                found.append((os.fsencode(key), value))
        return sorted(found)

    @staticmethod
    def _proc_child(dir_fd, name):
        return '/proc/self/fd/%d/%s' % (dir_fd, name)


def _getxattr(target, key, **kwargs):
    try:
        return os.getxattr(target, key, **kwargs)
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
            return None
        raise


def import_tar(src, out, *, compression='gzip', level=6, what='imported archive'):
    """Take an existing tar (plain, gzip or zstd) as a layer, as ``docker import`` does.

    Every member is parsed (damage -> CorruptContent); the diff ID is the
    sha256 of the uncompressed tar bytes as given, re-compressed with our fixed
    gzip framing. One pass.
    """
    sink = BlobSink(out, compression, level)
    try:
        scan = TarScan(open_uncompressed(src), what, sink=sink)
        for member in scan.members():
            del member     # parsing every header is the validation
        return sink.finish()
    finally:
        sink.abort()


def extract_layer(src, dest_dir, *, expected_diff_id=None):
    """Safely extract one layer blob into ``dest_dir`` (its own directory); return its diff ID.

    OCI whiteouts become overlayfs whiteouts. Nothing outside ``dest_dir`` is
    ever touched (see layers_extract). A diff ID other than
    ``expected_diff_id`` raises CorruptContent.
    """
    if expected_diff_id is not None:
        check_digest(expected_diff_id, 'expected diff ID')
    scan = TarScan(open_uncompressed(src), 'layer archive')
    with LayerWriter(dest_dir) as writer:
        for member in scan.members():
            try:
                data = scan.tar.extractfile(member) if member.isreg() else None
                writer.apply(member, data)
            except TAR_ERRORS as exc:
                raise scan.corrupt(exc) from None
        diff_id = scan.diff_id()
        if expected_diff_id is not None and diff_id != expected_diff_id:
            raise CorruptContent('layer archive has diff ID %s, not the expected %s' % (diff_id, expected_diff_id),
                                 diff_id=diff_id, expected=expected_diff_id)
        writer.finish()
    return diff_id


__all__ = ['COMPRESSIONS', 'FAST_LEVEL', 'MEDIA_TYPE_TAR', 'MEDIA_TYPE_TAR_GZIP', 'LayerDigests', 'chain_ids', 'detect_compression',
           'extract_layer', 'import_tar', 'open_uncompressed', 'pack_tree', 'read_diff_id', 'tar_header']

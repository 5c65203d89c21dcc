# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI image layers: deterministic tar packing, import, safe extraction, diff and chain IDs.

A layer blob is a tar stream, usually gzip-compressed. Its *diff ID* is the
sha256 of the uncompressed stream, its *digest* the sha256 of the blob; a
*chain ID* names a stack of layers (OCI image spec, config.md).

Packing and importing make one streaming pass: the tar stream is hashed on the
calling thread while a worker thread deflates it (zlib and hashlib release the
GIL on big buffers) behind our own fixed gzip header, so the same tree always
gives the same bytes. Writing a blob into the store atomically is the
caller's job; these functions only write to the file object they are given.
Reading and validating tar streams and the descriptor-based, hostile-input
safe extraction live in ``layers_extract``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import re
import stat
import struct
import threading
import zlib
from dataclasses import dataclass

from .errors import Conflict, CorruptContent, CtrError, InvalidArgument, KernelError, NotFound
from .layers_extract import (OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, TAR_ERRORS, LayerWriter, TarScan,
                             is_overlay_whiteout, whiteout_name)

MEDIA_TYPE_TAR = 'application/vnd.oci.image.layer.v1.tar'
MEDIA_TYPE_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
COMPRESSIONS = ('gzip', 'none')

_CHUNK = 1 << 20            # read/compress granularity
_BATCH = 1 << 20            # small writes are gathered up to this size before hashing
_QUEUE_DEPTH = 8            # chunks in flight between the tar thread and the deflate thread
_BLOCK = 512
_GZIP_HEADER = b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff'   # deflate, no flags, mtime 0, XFL 0, OS 255
_GZIP_MAGIC = b'\x1f\x8b'
_ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'
_DIGEST_RE = re.compile(r'^sha256:[0-9a-f]{64}$')
_NOT_PACKED_XATTRS = ('security.selinux', 'trusted.overlay.')
_OVERLAY_UNPACKABLE = ('trusted.overlay.redirect', 'trusted.overlay.metacopy')


@dataclass(frozen=True)
class LayerDigests:
    """What writing a layer blob produced."""

    diff_id: str      # 'sha256:..' of the uncompressed tar stream
    digest: str       # 'sha256:..' of the bytes written (compressed blob)
    size: int         # bytes written
    media_type: str   # MEDIA_TYPE_TAR_GZIP or MEDIA_TYPE_TAR


# -- IDs ------------------------------------------------------------------------------------------

def chain_ids(diff_ids):
    """OCI ChainID of every prefix: ChainID(L0) = DiffID(L0), then sha256(parent + ' ' + DiffID)."""
    out = []
    for diff_id in diff_ids:
        _check_digest(diff_id, 'diff ID')
        if out:
            diff_id = 'sha256:' + hashlib.sha256(('%s %s' % (out[-1], diff_id)).encode('ascii')).hexdigest()
        out.append(diff_id)
    return out


def _check_digest(value, what):
    if not isinstance(value, str) or not _DIGEST_RE.match(value):
        raise InvalidArgument('%s "%s" is not a sha256 digest (sha256: and 64 lowercase hex digits)'
                              % (what, value), value=value)


# -- reading compressed streams -------------------------------------------------------------------

def detect_compression(head):
    """'gzip', 'zstd' or 'none', from the first bytes of a blob."""
    head = bytes(head)
    if head.startswith(_GZIP_MAGIC):
        return 'gzip'
    if head.startswith(_ZSTD_MAGIC):
        return 'zstd'
    return 'none'


def open_uncompressed(fileobj):
    """A readable stream of the tar bytes of ``fileobj`` (plain, gzip or zstd; detected)."""
    head = b''
    while len(head) < 4:
        more = fileobj.read(4 - len(head))
        if not more:
            break
        head += more
    stream = _Prefixed(head, fileobj)
    kind = detect_compression(head)
    if kind == 'gzip':
        return _GzipReader(stream)
    if kind == 'zstd':
        return _zstd_reader(stream)
    return stream


def read_diff_id(src):
    """sha256 of the uncompressed stream of a (maybe compressed) blob."""
    reader = open_uncompressed(src)
    digest = hashlib.sha256()
    while True:
        chunk = reader.read(_CHUNK)
        if not chunk:
            return 'sha256:' + digest.hexdigest()
        digest.update(chunk)


class _Prefixed:
    """Bytes already read from a stream, then the rest of it."""

    def __init__(self, head, raw):
        self._head = head
        self._raw = raw

    def read(self, size=-1):
        if self._head:
            if size is None or size < 0:
                data, self._head = self._head + self._raw.read(), b''
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._raw.read(size)


class _GzipReader:
    """Multi-member gzip decoding with clear errors for truncated or damaged data."""

    def __init__(self, raw):
        self._raw = raw
        self._dec = None
        self._pending = b''
        self._eof = False

    def read(self, size=-1):
        if size is None or size < 0:
            return b''.join(iter(lambda: self.read(_CHUNK), b''))
        if size == 0:       # zlib reads max_length 0 as "no limit"
            return b''
        while not self._eof:
            if self._dec is None and not self._start_member():
                self._eof = True
                break
            if not self._pending:
                self._pending = self._raw.read(_CHUNK // 4)
                if not self._pending:
                    raise CorruptContent('gzip stream is truncated: it ends inside a compressed member')
            try:
                out = self._dec.decompress(self._pending, size)
            except zlib.error as exc:
                raise CorruptContent('gzip stream is corrupt: %s' % exc) from None
            self._pending = self._dec.unconsumed_tail
            if self._dec.eof:
                self._pending = self._dec.unused_data + self._pending
                self._dec = None
            if out:
                return out
        return b''

    def _start_member(self):
        while len(self._pending) < 2:
            more = self._raw.read(_CHUNK // 4)
            if not more:
                break
            self._pending += more
        if not self._pending:
            return False
        if self._pending.startswith(_GZIP_MAGIC):
            self._dec = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return True
        while self._pending:      # zero padding after the last member is allowed, as gzip(1) does
            if self._pending.strip(b'\0'):
                raise CorruptContent('gzip stream has trailing garbage after its last member')
            self._pending = self._raw.read(_CHUNK // 4)
        return False


def _zstd_reader(stream):
    try:
        import zstandard
    except ImportError:
        raise CtrError('the layer is zstd-compressed, but the Python module "zstandard" is not installed '
                       'on this host; install python3-zstandard (or pip install zstandard)') from None
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    except TypeError:     # zstandard < 0.16
        reader = zstandard.ZstdDecompressor().stream_reader(stream)
    return _ZstdErrors(reader, zstandard.ZstdError)


class _ZstdErrors:
    def __init__(self, reader, error):
        self._reader = reader
        self._error = error

    def read(self, size=-1):
        try:
            return self._reader.read(size)
        except self._error as exc:
            raise CorruptContent('zstd stream is corrupt: %s' % exc) from None


# -- writing blobs --------------------------------------------------------------------------------

class _BlobSink:
    """Hashes a tar stream (diff ID) and hands it to a writer that compresses, hashes and writes it."""

    def __init__(self, out, compression, level):
        if compression not in COMPRESSIONS:
            raise InvalidArgument('layer compression "%s" is not one of %s' % (compression, ', '.join(COMPRESSIONS)),
                                  compression=compression)
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise InvalidArgument('gzip level "%s" is not an integer from 0 to 9' % (level,), level=level)
        self._diff = hashlib.sha256()
        self._buf = bytearray()
        self._gzip = compression == 'gzip'
        self._writer = _GzipWorker(out, level) if self._gzip else _PlainWriter(out)

    def write(self, data):
        if len(data) >= _BATCH // 4:
            self._flush()
            self._send(bytes(data))
        else:
            self._buf += data
            if len(self._buf) >= _BATCH:
                self._flush()

    def _flush(self):
        if self._buf:
            data = bytes(self._buf)
            del self._buf[:]
            self._send(data)

    def _send(self, data):
        self._diff.update(data)
        self._writer.feed(data)

    def finish(self):
        self._flush()
        digest, size = self._writer.close()
        return LayerDigests(diff_id='sha256:' + self._diff.hexdigest(), digest=digest, size=size,
                            media_type=MEDIA_TYPE_TAR_GZIP if self._gzip else MEDIA_TYPE_TAR)

    def abort(self):
        """Stop the worker thread if ``finish`` was not reached; safe to call twice."""
        self._writer.abort()


class _Output:
    """Writes to the caller's file object, hashing and counting what was written."""

    def __init__(self, out):
        self._out = out
        self._hash = hashlib.sha256()
        self.size = 0

    def emit(self, data):
        view = memoryview(data)
        while view:
            try:
                written = self._out.write(view)
            except OSError as exc:
                raise KernelError.from_oserror('write layer blob', getattr(self._out, 'name', None), exc) from None
            if written is None or written >= len(view):
                break
            view = view[written:]
        self._hash.update(data)
        self.size += len(data)

    def result(self):
        return 'sha256:' + self._hash.hexdigest(), self.size


class _PlainWriter:
    def __init__(self, out):
        self._out = _Output(out)

    def feed(self, data):
        self._out.emit(data)

    def close(self):
        return self._out.result()

    def abort(self):
        pass


_FINISH = object()
_ABORT = object()


class _GzipWorker:
    """Deflates on a worker thread fed by a bounded queue; gzip framing is ours and fixed."""

    def __init__(self, out, level):
        self._out = _Output(out)
        self._level = level
        self._queue = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error = None
        self._thread = threading.Thread(target=self._run, name='ctr-layer-gzip', daemon=True)
        self._thread.start()

    def feed(self, data):
        if self._error is not None:
            self._stop(_ABORT)
        self._queue.put(data)

    def close(self):
        self._stop(_FINISH)
        return self._out.result()

    def abort(self):
        if self._thread.is_alive():
            self._queue.put(_ABORT)
            self._thread.join()

    def _stop(self, how):
        self._queue.put(how)
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _run(self):
        comp = zlib.compressobj(self._level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY)
        crc = size = 0
        self._guard(self._out.emit, _GZIP_HEADER)
        while True:
            item = self._queue.get()
            if item is _FINISH or item is _ABORT:
                break
            if self._error is None:
                crc = zlib.crc32(item, crc)
                size += len(item)
                self._guard(lambda data: self._out.emit(comp.compress(data)), item)
        if item is _FINISH and self._error is None:
            trailer = struct.pack('<II', crc & 0xffffffff, size & 0xffffffff)
            self._guard(lambda data: self._out.emit(comp.flush() + data), trailer)

    def _guard(self, func, data):
        try:
            func(data)
        except BaseException as exc:     # handed to the calling thread
            self._error = exc


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
    sink = _BlobSink(out, compression, level)
    try:
        _TreePacker(src_dir, sink, mtime_clamp, overlay_whiteouts, skip).run()
        sink.write(b'\0' * (2 * _BLOCK))
        return sink.finish()
    finally:
        sink.abort()


@dataclass
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
                chunk = os.read(fd, min(_CHUNK, remaining))
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


def import_tar(src, out, *, compression='gzip', level=6):
    """Take an existing tar (plain, gzip or zstd) as a layer, as ``docker import`` does.

    Every member is parsed (damage -> CorruptContent); the diff ID is the
    sha256 of the uncompressed tar bytes as given, re-compressed with our fixed
    gzip framing. One pass.
    """
    sink = _BlobSink(out, compression, level)
    try:
        scan = TarScan(open_uncompressed(src), 'imported archive', sink=sink)
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
        _check_digest(expected_diff_id, 'expected diff ID')
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

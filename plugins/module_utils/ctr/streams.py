# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Blob streams: reading plain, gzip or zstd layer data, and writing a layer blob in one pass.

Writing hashes the uncompressed stream (the diff ID) on the calling thread while
worker threads deflate it in fixed blocks behind our own fixed gzip header (zlib
and hashlib release the GIL on big buffers), then hashes and writes the
compressed bytes (the digest): one pass, no temp file, and the same input always
gives the same bytes, whatever the number of cores.
"""

from __future__ import annotations

import collections
import hashlib
import os
import struct
import zlib

from .errors import CorruptContent, CtrError, InvalidArgument, KernelError
from .records import record

MEDIA_TYPE_TAR = 'application/vnd.oci.image.layer.v1.tar'
MEDIA_TYPE_TAR_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
COMPRESSIONS = ('gzip', 'none')

CHUNK = 1 << 20             # read/compress granularity
_BATCH = 1 << 20            # small writes are gathered up to this size before hashing
_DEFLATE_BLOCK = 1 << 20    # the unit of parallel deflate: the output depends on it, so it never changes
_DEFLATE_WINDOW = 32768     # what each block is primed with: the end of the block before it
_MAX_THREADS = 8
_GZIP_HEADER = b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff'   # deflate, no flags, mtime 0, XFL 0, OS 255
_GZIP_MAGIC = b'\x1f\x8b'
_ZSTD_MAGIC = b'\x28\xb5\x2f\xfd'


@record(frozen=True)
class LayerDigests:
    """What writing a layer blob produced."""

    diff_id: str      # 'sha256:..' of the uncompressed tar stream
    digest: str       # 'sha256:..' of the bytes written (compressed blob)
    size: int         # bytes written
    media_type: str   # MEDIA_TYPE_TAR_GZIP or MEDIA_TYPE_TAR
    diff_size: int = 0  # bytes of the uncompressed tar stream


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
        chunk = reader.read(CHUNK)
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
            return b''.join(iter(lambda: self.read(CHUNK), b''))
        if size == 0:       # zlib reads max_length 0 as "no limit"
            return b''
        while not self._eof:
            if self._dec is None and not self._start_member():
                self._eof = True
                break
            if not self._pending:
                self._pending = self._raw.read(CHUNK // 4)
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
            more = self._raw.read(CHUNK // 4)
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
            self._pending = self._raw.read(CHUNK // 4)
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

class BlobSink:
    """Hashes a tar stream (diff ID) and hands it to a writer that compresses, hashes and writes it."""

    def __init__(self, out, compression, level):
        if compression not in COMPRESSIONS:
            raise InvalidArgument('layer compression "%s" is not one of %s' % (compression, ', '.join(COMPRESSIONS)),
                                  compression=compression)
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 9:
            raise InvalidArgument('gzip level "%s" is not an integer from 0 to 9' % (level,), level=level)
        self._diff = hashlib.sha256()
        self._diff_size = 0
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
        self._diff_size += len(data)
        self._writer.feed(data)

    def finish(self):
        self._flush()
        digest, size = self._writer.close()
        return LayerDigests(diff_id='sha256:' + self._diff.hexdigest(), digest=digest, size=size,
                            diff_size=self._diff_size,
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


class _GzipWorker:
    """Deflates fixed-size blocks on a small thread pool, in order, behind our fixed gzip header.

    As pigz does: each block but the first is primed with the 32 KiB before it,
    each but the last ends with a sync flush, and the raw deflate pieces are
    concatenated. The bytes depend on the block size only -- never on the
    number of cores -- so a layer has the same digest on every host (given the
    same zlib), while a 500 MB layer compresses on every core.
    """

    def __init__(self, out, level):
        from concurrent.futures import ThreadPoolExecutor   # only layer writers pay for it

        self._out = _Output(out)
        self._out.emit(_GZIP_HEADER)
        self._level = level
        self._pending = bytearray()
        self._tail = b''
        self._crc = self._size = 0
        self._workers = max(1, min(os.cpu_count() or 1, _MAX_THREADS))
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix='ctr-layer-gzip')
        self._inflight = collections.deque()

    def feed(self, data):
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        self._pending += data
        while len(self._pending) >= _DEFLATE_BLOCK:
            block = bytes(self._pending[:_DEFLATE_BLOCK])
            del self._pending[:_DEFLATE_BLOCK]
            self._submit(block, last=False)

    def _submit(self, block, last):
        self._inflight.append(self._pool.submit(_deflate, block, self._tail, self._level, last))
        self._tail = block[-_DEFLATE_WINDOW:]
        while len(self._inflight) > 2 * self._workers:
            self._out.emit(self._inflight.popleft().result())

    def close(self):
        try:
            self._submit(bytes(self._pending), last=True)
            while self._inflight:
                self._out.emit(self._inflight.popleft().result())
            self._out.emit(struct.pack('<II', self._crc & 0xffffffff, self._size & 0xffffffff))
        finally:
            self.abort()
        return self._out.result()

    def abort(self):
        """Drop what is queued and wait for the threads; safe to call twice."""
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        self._pool.shutdown(wait=True)


_SAMPLE = 64 << 10


def _deflate(block, primer, level, last):
    """One block as raw deflate; a sync flush leaves it byte-aligned and open for the next one.

    A block whose first 64 KiB do not shrink by 3% at level 1 (random, encrypted or already
    compressed data) is stored (level 0): deflating it would cost 5x the time for nothing.
    The choice depends on the block's bytes only, so the output stays the same everywhere.
    """
    if level and len(block) >= 2 * _SAMPLE and len(zlib.compress(block[:_SAMPLE], 1)) > _SAMPLE * 0.97:
        level = 0
    if primer:
        comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, primer)
    else:
        comp = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY)
    return comp.compress(block) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)

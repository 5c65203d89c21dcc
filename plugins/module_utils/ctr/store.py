# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content store: an OCI image layout plus unpacked layers, under one root.

::

    <root>/oci/        oci-layout, index.json, blobs/sha256/   (skopeo and umoci read it as is)
    <root>/layers/<chain-id hex>/   a layer unpacked, ready to be an overlay lowerdir
    <root>/tmp/        blobs and layers being written (same filesystem, so rename is atomic)
    <root>/locks/      the store locks

Contracts:

* ``put_*`` is idempotent: when it returns, the content is stored under its
  digest, whole and verified; a writer killed halfway leaves only a temp file.
* Every blob handed out (``read_blob``, ``open_blob``) is checked against its
  digest; a mismatch raises :class:`CorruptContent`, never returns bad bytes.
* Writers hold the *writer* lock shared for the whole operation; garbage
  collection holds it exclusively, so it never deletes a blob that a running
  import has written but not yet referenced. ``index.json`` changes under the
  exclusive *index* lock (read, modify, atomic rename).
"""

from __future__ import annotations

import fcntl
import json
import os

from . import fsutil
from . import mediatypes as mt
from .errors import CorruptContent, CtrError, InvalidArgument, KernelError, NotFound
from .records import field, record
from .regex import lazy

REF_NAME = 'org.opencontainers.image.ref.name'
CHUNK = 1 << 20


def sha256(data=b'', bulk=False):
    """A SHA-256 hasher. ``bulk`` hashing (layers, file contents) and ``data`` of 1 MiB or more get
    hashlib's (OpenSSL): several times faster on large data, but ~3 ms to load. Anything else starts
    on the interpreter's own implementation, which loads in microseconds, and moves to hashlib's
    once 1 MiB has been fed to it: a run that hashes only small things (cache keys, JSON documents:
    a cached build, a container start) never loads OpenSSL, and one that hashes much pays for it."""
    if bulk or len(data) >= CHUNK or _small_sha256 is None:
        import hashlib
        return hashlib.sha256(data)
    return _Sha256(data)


class _Sha256:
    """SHA-256 on the interpreter's implementation while small (see :func:`sha256`). Until it moves
    to hashlib's it keeps what it was fed (under 1 MiB) to hash it there from the start."""

    __slots__ = ('_fed', '_size', '_bulk')

    def __init__(self, data=b''):
        self._fed, self._size, self._bulk = [bytes(data)], len(data), None

    def update(self, data):
        if self._bulk is not None:
            self._bulk.update(data)
            return
        self._fed.append(bytes(data))
        self._size += len(data)
        if self._size >= CHUNK:
            import hashlib
            self._bulk = hashlib.sha256(b''.join(self._fed))
            self._fed = None

    def _hash(self):
        return self._bulk if self._bulk is not None else _small_sha256(b''.join(self._fed))

    def digest(self):
        return self._hash().digest()

    def hexdigest(self):
        return self._hash().hexdigest()


try:
    from _sha2 import sha256 as _small_sha256          # Python 3.12 and later
except ImportError:
    try:
        from _sha256 import sha256 as _small_sha256    # before 3.12
    except ImportError:                                 # a Python built without them
        _small_sha256 = None


def digest_hex(digest):
    algo, dummy, hexpart = digest.partition(':')
    if algo != 'sha256' or len(hexpart) != 64 or hexpart.strip('0123456789abcdef'):
        raise CorruptContent('unsupported or malformed digest "%s"' % digest, digest=digest)
    return hexpart


_DIGEST_RE = lazy(r'^sha256:[0-9a-f]{64}$')


def check_digest(value, what):
    if not isinstance(value, str) or not _DIGEST_RE.match(value):
        raise InvalidArgument('%s "%s" is not a sha256 digest (sha256: and 64 lowercase hex digits)'
                              % (what, value), value=value)


def chain_ids(diff_ids):
    """OCI ChainID of every prefix: ChainID(L0) = DiffID(L0), then sha256(parent + ' ' + DiffID).

    Chain IDs name the unpacked layer directories, so they live here, cheap to import.
    """
    out = []
    for diff_id in diff_ids:
        check_digest(diff_id, 'diff ID')
        if out:
            diff_id = 'sha256:' + sha256(('%s %s' % (out[-1], diff_id)).encode('ascii')).hexdigest()
        out.append(diff_id)
    return out


@record(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index says about a blob."""

    media_type: str
    digest: str
    size: int
    annotations: dict = field(default_factory=dict)
    platform: dict = field(default_factory=dict)

    def to_json(self):
        out = {'mediaType': self.media_type, 'digest': self.digest, 'size': self.size}
        if self.annotations:
            out['annotations'] = dict(self.annotations)
        if self.platform:
            out['platform'] = dict(self.platform)
        return out

    @classmethod
    def from_json(cls, obj, what='descriptor'):
        try:
            desc = cls(media_type=str(obj['mediaType']), digest=str(obj['digest']), size=int(obj['size']),
                       annotations=dict(obj.get('annotations') or {}), platform=dict(obj.get('platform') or {}))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise CorruptContent('%s is not a valid OCI descriptor: %s' % (what, json.dumps(obj)[:200]))
        digest_hex(desc.digest)
        if desc.size < 0:
            raise CorruptContent('%s has a negative size' % what)
        return desc


class HashingWriter:
    """A file-like sink that hashes what passes through and counts it."""

    def __init__(self, target=None):
        self._target = target
        self._hash = sha256()           # moves to hashlib's once the blob passes 1 MiB
        self.size = 0

    def write(self, data):
        self._hash.update(data)
        self.size += len(data)
        if self._target is not None:
            self._target.write(data)
        return len(data)

    def flush(self):
        if self._target is not None:
            self._target.flush()

    @property
    def digest(self):
        return 'sha256:' + self._hash.hexdigest()


class VerifyingReader:
    """Reads a stored blob and raises :class:`CorruptContent` as soon as it is found wrong.

    With a known ``size`` the digest is checked the moment that many bytes have
    been read, and a blob longer than its descriptor says is refused; without
    one, at EOF. :meth:`verify` reads whatever is left and checks.
    """

    def __init__(self, path, digest, size=None):
        self._f = open(path, 'rb')
        self._hash = sha256()
        self._digest = digest
        self._size = size
        self._seen = 0
        self._checked = False

    def read(self, n=-1):
        data = self._f.read(n)
        self._hash.update(data)
        self._seen += len(data)
        if self._size is not None and self._seen > self._size:
            raise CorruptContent('stored blob %s is longer than the %d bytes its descriptor says'
                                 % (self._digest, self._size), digest=self._digest)
        if not data or n is None or n < 0 or (self._size is not None and self._seen == self._size):
            self._check()
        return data

    def verify(self):
        """Read to the end and check; a no-op when the whole blob was already read."""
        while self.read(CHUNK):
            pass
        self._check()

    def readinto(self, buf):
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def readable(self):
        return True

    def _check(self):
        if self._checked:
            return
        self._checked = True
        if self._size is not None and self._seen != self._size:
            raise CorruptContent('stored blob %s is %d bytes, but its descriptor says %d'
                                 % (self._digest, self._seen, self._size), digest=self._digest)
        actual = 'sha256:' + self._hash.hexdigest()
        if actual != self._digest:
            raise CorruptContent('stored blob %s is corrupt: its content hashes to %s' % (self._digest, actual),
                                 digest=self._digest)

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BlobWriter:
    """Streams a new blob into ``<root>/tmp`` and renames it into place on :meth:`commit`."""

    def __init__(self, store):
        import tempfile  # not at the top: a run that writes no blob need not import it
        self._store = store
        fd, self._tmp = tempfile.mkstemp(prefix=fsutil.TMP_PREFIX + 'blob-', dir=store.tmp_dir)
        self._file = os.fdopen(fd, 'wb', buffering=0)
        self._hasher = HashingWriter(self._file)
        self.digest = None
        self.size = 0

    def write(self, data):
        return self._hasher.write(data)

    def flush(self):
        pass

    def commit(self, expected_digest=None):
        """Fsync, verify and rename; returns the blob's digest."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.digest, self.size = self._hasher.digest, self._hasher.size
        if expected_digest is not None and expected_digest != self.digest:
            self.abort()
            raise CorruptContent('blob content hashes to %s, not the expected %s' % (self.digest, expected_digest),
                                 digest=expected_digest)
        self._store._place(self._tmp, self.digest)
        self._tmp = None
        return self.digest

    def abort(self):
        if not self._file.closed:
            self._file.close()
        if self._tmp:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None


class Store:
    """One store root. Cheap to construct; :meth:`init` creates the layout on first write."""

    def __init__(self, root=None):
        self.root = fsutil.resolve_root(root)
        self.oci_dir = os.path.join(self.root, 'oci')
        self.blob_dir = os.path.join(self.oci_dir, 'blobs', 'sha256')
        self.layers_dir = os.path.join(self.root, 'layers')
        self.tmp_dir = os.path.join(self.root, 'tmp')
        self.locks_dir = os.path.join(self.root, 'locks')
        self.index_path = os.path.join(self.oci_dir, 'index.json')

    # -- layout -------------------------------------------------------------

    def exists(self):
        return os.path.isfile(self.index_path)

    def init(self):
        """Create the layout (idempotent, safe to race)."""
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise InvalidArgument('root "%s" exists and is not a directory' % self.root, path=self.root)
        try:
            fsutil.makedirs(self.root, 0o711)
            for path, mode in ((self.blob_dir, 0o755), (self.layers_dir, 0o700),
                               (self.tmp_dir, 0o700), (self.locks_dir, 0o700)):
                fsutil.makedirs(path, mode)
            layout = os.path.join(self.oci_dir, 'oci-layout')
            if not os.path.exists(layout):
                fsutil.atomic_write(layout, fsutil.canonical_json({'imageLayoutVersion': '1.0.0'}))
            if not os.path.exists(self.index_path):
                with self._flock('index', exclusive=True):
                    if not os.path.exists(self.index_path):
                        self._write_index_doc({'schemaVersion': 2, 'mediaType': mt.OCI_INDEX, 'manifests': []})
        except OSError as exc:
            raise KernelError.from_oserror('initialise store', self.root, exc)
        return self

    # -- locks --------------------------------------------------------------

    def _flock(self, name, exclusive):
        return fsutil.flocked(os.path.join(self.locks_dir, name + '.lock'), exclusive)

    def writing(self):
        """Held (shared) by every operation that adds content; excludes garbage collection."""
        return self._flock('writers', exclusive=False)

    def collecting(self):
        return self._flock('writers', exclusive=True)

    def index_lock(self):
        return self._flock('index', exclusive=True)

    def sweep_temp(self):
        """Remove what killed writers left in ``tmp/``, ``layers/.tmp-*`` and ``build/tmp/``, if no writer
        is running now."""
        if not os.path.isdir(self.locks_dir):
            return
        fd = os.open(os.path.join(self.locks_dir, 'writers.lock'), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return          # someone is writing: their temp files are live
            self._remove_temp()
        finally:
            os.close(fd)

    def _remove_temp(self):
        """Call with the writers lock held exclusively."""
        if os.path.isdir(self.tmp_dir):
            for name in os.listdir(self.tmp_dir):
                fsutil.remove_tree(os.path.join(self.tmp_dir, name))
        if os.path.isdir(self.layers_dir):
            for name in os.listdir(self.layers_dir):
                if name.startswith(fsutil.TMP_PREFIX):
                    fsutil.remove_tree(os.path.join(self.layers_dir, name))
        scratch = os.path.join(self.root, 'build', 'tmp')       # the work areas of killed build steps
        if os.path.isdir(scratch):
            for name in os.listdir(scratch):
                fsutil.remove_tree(os.path.join(scratch, name))

    # -- layer sizes ---------------------------------------------------------
    # The uncompressed size of each layer (what Docker and podman call an image's Size) is
    # counted when a layer enters the store and kept beside it, keyed by diff ID.

    def _size_path(self, diff_id):
        return os.path.join(self.root, 'diffs', digest_hex(diff_id))

    def record_diff_size(self, diff_id, size):
        path = self._size_path(diff_id)
        if not os.path.exists(path):
            fsutil.makedirs(os.path.dirname(path), 0o700)
            fsutil.atomic_write(path, str(int(size)).encode(), durable=False)

    def diff_size(self, diff_id):
        """The uncompressed size of a layer, or None when it was never counted."""
        try:
            with open(self._size_path(diff_id), 'rb') as f:
                return int(f.read().decode() or 'x')
        except (OSError, ValueError):
            return None

    # -- blobs --------------------------------------------------------------

    def blob_path(self, digest):
        return os.path.join(self.blob_dir, digest_hex(digest))

    def has_blob(self, digest):
        return os.path.isfile(self.blob_path(digest))

    def blob_size(self, digest):
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            raise NotFound('blob %s is not in the store at %s' % (digest, self.root), digest=digest)

    def new_blob(self):
        fsutil.makedirs(self.tmp_dir, 0o700)
        return BlobWriter(self)

    def put_bytes(self, data, expected_digest=None):
        """Store ``data``; returns its digest. A blob already present is not rewritten."""
        digest = 'sha256:' + sha256(data).hexdigest()
        if expected_digest is not None and expected_digest != digest:
            raise CorruptContent('blob content hashes to %s, not the expected %s' % (digest, expected_digest),
                                 digest=expected_digest)
        if not self.has_blob(digest):
            writer = self.new_blob()
            try:
                writer.write(data)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        return digest

    def put_json(self, obj, media_type):
        data = fsutil.canonical_json(obj)
        return Descriptor(media_type, self.put_bytes(data), len(data))

    def _place(self, tmp, digest):
        final = self.blob_path(digest)
        if os.path.exists(final):
            os.unlink(tmp)
            return
        os.chmod(tmp, 0o644)
        os.rename(tmp, final)
        fsutil.fsync_dir(self.blob_dir)

    def read_blob(self, digest, limit=64 << 20):
        """The whole (small) blob, verified."""
        path = self.blob_path(digest)
        try:
            with open(path, 'rb') as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            raise NotFound('blob %s is not in the store at %s' % (digest, self.root), digest=digest)
        if len(data) > limit:
            raise CorruptContent('blob %s is larger than the %d bytes allowed for metadata' % (digest, limit))
        actual = 'sha256:' + sha256(data).hexdigest()
        if actual != digest:
            raise CorruptContent('stored blob %s is corrupt: its content hashes to %s' % (digest, actual), digest=digest)
        return data

    def read_json(self, digest, what='blob'):
        data = self.read_blob(digest)
        try:
            return json.loads(data.decode('utf-8'))
        except ValueError as exc:
            raise CorruptContent('%s %s is not valid JSON: %s' % (what, digest, exc), digest=digest)

    def open_blob(self, digest, size=None):
        """A reader that verifies the digest when it reaches the end."""
        try:
            return VerifyingReader(self.blob_path(digest), digest, size)
        except FileNotFoundError:
            raise NotFound('blob %s is not in the store at %s' % (digest, self.root), digest=digest)

    # -- index --------------------------------------------------------------

    def read_index(self):
        """The manifest descriptors of ``index.json`` (empty when the store is new)."""
        try:
            with open(self.index_path, 'rb') as f:
                doc = json.loads(f.read().decode('utf-8'))
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise InvalidArgument('root "%s" is not a directory (or holds a file where a directory belongs)'
                                  % self.root, path=self.root)
        except OSError as exc:
            raise KernelError.from_oserror('read store index', self.index_path, exc)
        except ValueError as exc:
            raise CorruptContent('store index %s is not valid JSON: %s' % (self.index_path, exc))
        if not isinstance(doc, dict) or not isinstance(doc.get('manifests') or [], list):
            raise CorruptContent('store index %s is not an OCI image index' % self.index_path)
        return [Descriptor.from_json(m, 'an entry of %s' % self.index_path) for m in doc.get('manifests') or []]

    def _write_index_doc(self, doc):
        fsutil.atomic_write(self.index_path, fsutil.canonical_json(doc))

    def write_index(self, descriptors):
        """Replace the manifest list; call under :meth:`index_lock`."""
        doc = {'schemaVersion': 2, 'mediaType': mt.OCI_INDEX,
               'manifests': [d.to_json() for d in descriptors]}
        self._write_index_doc(doc)

    # -- unpacked layers ----------------------------------------------------

    def layer_dir(self, chain_id):
        return os.path.join(self.layers_dir, digest_hex(chain_id))

    def ensure_unpacked(self, layer_descriptors, diff_ids):
        """Unpack every missing layer (lowest first); returns their directories, lowest first.

        Each layer is extracted into a temp dir and renamed to ``layers/<chain id>``,
        so a half-done unpack is never seen and two racing unpackers both succeed.
        """
        chains = chain_ids(diff_ids)
        dirs = []
        with self.writing():
            for desc, diff_id, chain in zip(layer_descriptors, diff_ids, chains):
                final = self.layer_dir(chain)
                dirs.append(final)
                if os.path.isdir(final):
                    continue
                from . import layers  # tar machinery only when a layer is missing
                import tempfile
                fsutil.makedirs(self.layers_dir, 0o700)
                tmp = tempfile.mkdtemp(prefix=fsutil.TMP_PREFIX, dir=self.layers_dir)
                os.chmod(tmp, 0o755)
                try:
                    with self.open_blob(desc.digest, desc.size) as src:
                        layers.extract_layer(src, tmp, expected_diff_id=diff_id)
                    try:
                        os.rename(tmp, final)
                    except OSError:
                        if not os.path.isdir(final):
                            raise
                        fsutil.remove_tree(tmp)
                except CtrError:
                    fsutil.remove_tree(tmp)
                    raise
                except OSError as exc:
                    fsutil.remove_tree(tmp)
                    raise KernelError.from_oserror('unpack layer %s into' % diff_id, final, exc)
        return dirs

    # -- garbage collection ------------------------------------------------

    def gc(self, extra_roots=(), extra_chains=()):
        """Remove blobs and unpacked layers nothing references; returns what went.

        Roots are the manifests in ``index.json`` plus ``extra_roots`` (manifest
        digests that later rooms, e.g. containers, keep alive), ``extra_chains``, the images of
        containers and the build cache's steps.
        """
        from . import layers

        removed = GcReport()
        if not self.exists():
            return removed
        with self.collecting():
            keep_blobs, keep_chains, keep_diffs = set(), set(extra_chains), set()
            from . import buildcache
            manifests = ([d.digest for d in self.read_index()] + list(extra_roots) + self._container_roots()
                         + buildcache.roots(self.root))
            for digest in manifests:
                self._mark(digest, keep_blobs, keep_chains, keep_diffs, layers)
            for name in sorted(os.listdir(self.blob_dir)):
                if 'sha256:' + name not in keep_blobs:
                    path = os.path.join(self.blob_dir, name)
                    removed.bytes += os.lstat(path).st_size
                    os.unlink(path)
                    removed.blobs.append('sha256:' + name)
            self._remove_temp()
            if os.path.isdir(self.layers_dir):
                for name in sorted(os.listdir(self.layers_dir)):
                    if 'sha256:' + name not in keep_chains:
                        fsutil.remove_tree(os.path.join(self.layers_dir, name))
                        removed.layers.append('sha256:' + name)
            links = os.path.join(self.root, 'l')     # short names of layers (rootfs.mount_overlay)
            for name in os.listdir(links) if os.path.isdir(links) else ():
                if not os.path.exists(os.path.join(links, name)):
                    os.unlink(os.path.join(links, name))
            sizes = os.path.join(self.root, 'diffs')
            if os.path.isdir(sizes):
                for name in os.listdir(sizes):
                    if 'sha256:' + name not in keep_diffs:
                        fsutil.remove_tree(os.path.join(sizes, name))
        return removed

    def _container_roots(self):
        """Manifests that containers were made from: their images stay while the containers do."""
        roots = []
        base = os.path.join(self.root, 'containers')
        for name in os.listdir(base) if os.path.isdir(base) else ():
            record = fsutil.read_json(os.path.join(base, name, 'config.json'), {})
            if isinstance(record, dict) and isinstance(record.get('ImageManifest'), str) and record['ImageManifest']:
                roots.append(record['ImageManifest'])
        return roots

    def _mark(self, digest, keep_blobs, keep_chains, keep_diffs, layers):
        if digest in keep_blobs or not self.has_blob(digest):
            return
        keep_blobs.add(digest)
        doc = self.read_json(digest, 'manifest')
        for child in doc.get('manifests') or []:
            self._mark(child['digest'], keep_blobs, keep_chains, keep_diffs, layers)
        config = doc.get('config')
        if config:
            keep_blobs.add(config['digest'])
            if self.has_blob(config['digest']):
                diff_ids = (self.read_json(config['digest'], 'config').get('rootfs') or {}).get('diff_ids') or []
                keep_chains.update(chain_ids(diff_ids))
                keep_diffs.update(diff_ids)
        for layer in doc.get('layers') or []:
            keep_blobs.add(layer['digest'])


@record
class GcReport:
    blobs: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    bytes: int = 0

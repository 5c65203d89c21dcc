# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Loading docker-archive and oci-archive files (``docker load``), as hostile input.

Members are read by name from the tar and never extracted to disk. Every
layer is checked against the diff ID its config claims (and, from an
oci-archive, against its digest and size too) while it is copied, in the same
pass; nothing enters the index unless all of an image's content did. The
archive's shape is bounded: member count, metadata size, image count.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tarfile

from . import mediatypes as mt
from .errors import CorruptContent, InvalidArgument, KernelError, NotFound
from .records import field, record
from .refs import Reference
from .store import REF_NAME, Descriptor, digest_hex
from .streams import CHUNK

MAX_MEMBERS = 100000
MAX_IMAGES = 1000
METADATA_LIMIT = 64 << 20      # all configs, manifests and indexes of one archive together
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError)


@record
class LoadOutcome:
    changed: bool
    images: list = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    new: bool = False           # some image was not in the store at all (not just renamed)
    displaced: bool = False     # a name moved away from another image


class _Archive:
    """Random access to the regular members of a (maybe compressed) tar, by normalised name."""

    def __init__(self, path):
        self.path = path
        self._metadata = {}
        self._budget = METADATA_LIMIT
        try:
            with open(path, 'rb') as f:
                head = f.read(4)
        except OSError as exc:
            raise KernelError.from_oserror('open load_path', path, exc)
        if head == b'\x28\xb5\x2f\xfd':
            raise InvalidArgument('load_path "%s" is zstd-compressed; decompress it first (zstd -d)' % path)
        try:
            self.tf = tarfile.open(path, 'r:*')
            self.members = {}
            for count, info in enumerate(self.tf, 1):
                if count > MAX_MEMBERS:
                    raise CorruptContent('load_path "%s" has more than %d members; no image archive needs that many'
                                         % (path, MAX_MEMBERS))
                self.members[_norm(info.name)] = info
        except CorruptContent:
            raise
        except _TAR_ERRORS as exc:
            reason = str(exc) if '\n' not in str(exc) else \
                'it is not a tar archive, plain or compressed with gzip, bzip2 or xz'
            raise CorruptContent('load_path "%s" is not a readable tar archive: %s' % (path, reason))

    def _regular(self, name):
        """The regular member ``name`` names, following at most one symlink or hard link within the archive."""
        info = self.members.get(_norm(name))
        if info is not None and (info.issym() or info.islnk()):
            target = info.linkname if info.islnk() else posixpath.join(posixpath.dirname(_norm(name)), info.linkname)
            info = self.members.get(_norm(target))
        if info is None:
            raise CorruptContent('archive "%s" lacks the member "%s" its manifest names' % (self.path, name))
        if not info.isreg():
            raise CorruptContent('archive "%s": member "%s" is not a regular file' % (self.path, name))
        return info

    def open(self, name):
        info = self._regular(name)
        try:
            return self.tf.extractfile(info)
        except _TAR_ERRORS as exc:
            raise CorruptContent('archive "%s": member "%s" cannot be read: %s' % (self.path, name, exc))

    def read(self, name):
        """A metadata member (config, manifest, index), read once and shared; bounded in total."""
        key = _norm(name)
        if key not in self._metadata:
            info = self._regular(name)
            if info.size > self._budget:
                raise CorruptContent('archive "%s": its metadata (configs, manifests) exceed %d MiB at "%s"'
                                     % (self.path, METADATA_LIMIT >> 20, name))
            self._budget -= info.size
            try:
                self._metadata[key] = self.tf.extractfile(info).read()
            except _TAR_ERRORS as exc:
                raise CorruptContent('archive "%s" is truncated or damaged at "%s": %s' % (self.path, name, exc))
        return self._metadata[key]

    def read_json(self, name, kind, data=None):
        return _json(self.read(name) if data is None else data, kind, 'archive "%s": "%s"' % (self.path, name))

    def close(self):
        self.tf.close()


def _norm(name):
    return posixpath.normpath('/' + name).lstrip('/') or '.'


def _json(data, kind, what):
    """Parse ``data`` and require the JSON type ``kind`` (dict or list)."""
    try:
        value = json.loads(data.decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptContent('%s is not valid JSON: %s' % (what, exc))
    if not isinstance(value, kind):
        raise CorruptContent('%s is not a JSON %s' % (what, 'object' if kind is dict else 'list'))
    return value


def _str_list(value, what):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CorruptContent('%s is not a list of strings' % what)
    return value


@record
class _Entry:
    config_bytes: bytes
    names: list
    layers: list             # [(member name, Descriptor from an oci-archive or None, diff ID)]
    manifest_bytes: bytes = None
    source: str = ''

    @property
    def id(self):
        return 'sha256:' + hashlib.sha256(self.config_bytes).hexdigest()


def load(images, path, name=None, check=False):
    """Load every image of a docker-archive or oci-archive at ``path``.

    With ``name``, the archive must hold an image of that name, or exactly one
    unnamed image, which then gets it; otherwise nothing is loaded.
    """
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise NotFound('load_path "%s" does not exist or is not a file' % path)
    wanted = str(Reference.parse(name)) if name else None
    archive = _Archive(path)
    try:
        if 'manifest.json' in archive.members:
            entries = _docker_entries(archive)
        elif 'index.json' in archive.members:
            entries = _oci_entries(archive)
        else:
            raise CorruptContent('load_path "%s" is neither a docker-archive (no manifest.json) nor an oci-archive '
                                 '(no index.json)' % path)
        if wanted and not any(wanted in e.names for e in entries):
            if len(entries) == 1 and not entries[0].names:
                entries[0].names.append(wanted)
            else:
                held = ', '.join(n for e in entries for n in e.names) or 'only unnamed images'
                raise NotFound('load_path "%s" holds no image named %s (it holds %s)' % (path, wanted, held))
        if check:
            return _plan(images, entries, LoadOutcome(False), check=True)
        images.store.init()
        with images.store.writing():
            outcome = _plan(images, entries, LoadOutcome(False), check=False)
            if outcome.changed:
                _apply(images, archive, outcome)
    finally:
        archive.close()
    if outcome.displaced:
        images.store.gc()
    else:
        images.store.sweep_temp()
    return outcome


def _docker_entries(archive):
    doc = archive.read_json('manifest.json', list)
    if len(doc) > MAX_IMAGES:
        raise CorruptContent('archive "%s" lists more than %d images' % (archive.path, MAX_IMAGES))
    entries = []
    for item in doc:
        what = 'archive "%s": an entry of manifest.json' % archive.path
        if not isinstance(item, dict) or not isinstance(item.get('Config'), str):
            raise CorruptContent('%s lacks Config' % what)
        layer_names = _str_list(item.get('Layers'), what + ' (Layers)')
        config_name = item['Config']
        config_bytes = archive.read(config_name)
        diff_ids = _diff_ids(config_bytes, archive, config_name)
        if len(diff_ids) != len(layer_names):
            raise CorruptContent('archive "%s": image %s lists %d layers but its config has %d diff IDs'
                                 % (archive.path, config_name, len(layer_names), len(diff_ids)))
        names = _names(_str_list(item.get('RepoTags'), what + ' (RepoTags)'), archive)
        entries.append(_Entry(config_bytes, names, [(n, None, d) for n, d in zip(layer_names, diff_ids)],
                              source=config_name))
    return entries


def _names(values, archive):
    out = []
    for v in values:
        try:
            out.append(str(Reference.parse(v)))
        except InvalidArgument:
            raise CorruptContent('archive "%s" names an image "%s", which is not a valid reference' % (archive.path, v))
    return out


def _diff_ids(config_bytes, archive, what):
    config = archive.read_json(what, dict, config_bytes)
    rootfs = config.get('rootfs')
    diff_ids = _str_list(rootfs.get('diff_ids') if isinstance(rootfs, dict) else None,
                         'archive "%s": the rootfs.diff_ids of %s' % (archive.path, what))
    if not isinstance(rootfs, dict):
        raise CorruptContent('archive "%s": %s is not an image config with rootfs.diff_ids' % (archive.path, what))
    for d in diff_ids:
        digest_hex(d)
    return diff_ids


def _blob_name(digest):
    return 'blobs/sha256/' + digest_hex(digest)


def _read_verified(archive, desc):
    data = archive.read(_blob_name(desc.digest))
    if 'sha256:' + hashlib.sha256(data).hexdigest() != desc.digest or len(data) != desc.size:
        raise CorruptContent('archive "%s": blob %s does not match its digest and size' % (archive.path, desc.digest))
    return data


def _oci_entries(archive):
    from .images import host_platform

    index = archive.read_json('index.json', dict)
    listed = index.get('manifests') or []
    if not isinstance(listed, list) or len(listed) > MAX_IMAGES:
        raise CorruptContent('archive "%s": index.json has no usable manifests list' % archive.path)
    entries = []
    for raw in listed:
        desc = Descriptor.from_json(raw, 'an index.json entry of "%s"' % archive.path)
        ann = desc.annotations
        if desc.media_type in mt.INDEXES:
            nested = archive.read_json(_blob_name(desc.digest), dict, _read_verified(archive, desc))
            plat = host_platform()
            candidates = [Descriptor.from_json(m, 'an entry of index %s' % desc.digest)
                          for m in nested.get('manifests') or [] if isinstance(m, dict)]
            chosen = [c for c in candidates if c.platform.get('architecture') == plat['architecture']
                      and c.platform.get('os', 'linux') == 'linux' and c.media_type in mt.MANIFESTS]
            if not chosen:
                found = sorted({'%s/%s' % (c.platform.get('os', '?'), c.platform.get('architecture', '?'))
                                for c in candidates})
                raise NotFound('archive "%s": index %s has no image for linux/%s (it has %s)'
                               % (archive.path, desc.digest, plat['architecture'], ', '.join(found) or 'none'))
            desc = chosen[0]
        if desc.media_type not in mt.MANIFESTS:
            raise CorruptContent('archive "%s": entry %s has media type %s, not an image manifest'
                                 % (archive.path, desc.digest, desc.media_type))
        manifest_bytes = _read_verified(archive, desc)
        manifest = archive.read_json(_blob_name(desc.digest), dict, manifest_bytes)
        config_desc = Descriptor.from_json(manifest.get('config'), 'the config of manifest %s' % desc.digest)
        config_bytes = _read_verified(archive, config_desc)
        diff_ids = _diff_ids(config_bytes, archive, _blob_name(config_desc.digest))
        raw_layers = manifest.get('layers') or []
        if not isinstance(raw_layers, list):
            raise CorruptContent('archive "%s": manifest %s has no layers list' % (archive.path, desc.digest))
        layer_descs = [Descriptor.from_json(layer, 'a layer of manifest %s' % desc.digest) for layer in raw_layers]
        if len(layer_descs) != len(diff_ids):
            raise CorruptContent('archive "%s": manifest %s has %d layers but its config has %d diff IDs'
                                 % (archive.path, desc.digest, len(layer_descs), len(diff_ids)))
        for layer in layer_descs:
            if layer.media_type not in mt.LAYER_BY_COMPRESSION.values() and layer.media_type not in mt.TO_OCI:
                raise CorruptContent('archive "%s": layer %s has the unsupported media type %s'
                                     % (archive.path, layer.digest, layer.media_type))
        name = ann.get('io.containerd.image.name') or ann.get(REF_NAME)
        names = _names([name], archive) if isinstance(name, str) and ('/' in name or ':' in name) else []
        keep_manifest = manifest_bytes if desc.media_type == mt.OCI_MANIFEST and all(
            layer.media_type not in mt.TO_OCI for layer in layer_descs) else None
        entries.append(_Entry(config_bytes, names, [(_blob_name(d.digest), d, i) for d, i in zip(layer_descs, diff_ids)],
                              keep_manifest, desc.digest))
    return entries


def _plan(images, entries, outcome, check):
    """Sort entries into present, to rename, and to load; predict ``changed``."""
    stored = {}
    for image in images.list():
        stored.setdefault(image.id, image)
    current = {n: i.manifest.digest for i in stored.values() for n in i.names}
    outcome.todo, outcome.renames = [], []
    for entry in entries:
        image = stored.get(entry.id)
        if image is not None and all(n in image.names for n in entry.names):
            outcome.images.append(image)
        elif image is not None:
            # the image is here (same ID), maybe under another manifest: keep it and only add the names
            outcome.renames.append((image, entry))
        else:
            outcome.todo.append(entry)
            outcome.new = True
        wanted = image.manifest.digest if image is not None else None
        if any(n in current and current[n] != wanted for n in entry.names):
            outcome.displaced = True
    outcome.changed = bool(outcome.todo or outcome.renames)
    if check:
        outcome.actions = ['load %s' % (', '.join(e.names) or e.source) for e in outcome.todo] + \
            ['name %s as %s' % (i.short_id, ', '.join(e.names)) for i, e in outcome.renames]
    return outcome


def _apply(images, archive, outcome):
    from . import layers as layermod

    store = images.store
    for image, entry in outcome.renames:
        images.set_names(image.manifest, entry.names)
        outcome.actions.append('named %s as %s' % (image.short_id, ', '.join(entry.names)))
        outcome.images.append(images.get(image.id))
    known, verified = _known_layers(images)
    for entry in outcome.todo:
        descs = []
        for member, desc, diff_id in entry.layers:
            if desc is not None:
                # blobs of an oci-archive are kept byte for byte; Docker media types become OCI ones
                _copy_layer(store, archive, member, desc, diff_id, verified, layermod)
                descs.append(Descriptor(mt.TO_OCI.get(desc.media_type, desc.media_type), desc.digest, desc.size))
            elif diff_id in known:
                descs.append(known[diff_id])
            else:
                descs.append(_import_layer(store, archive, member, diff_id, layermod))
                known[diff_id] = descs[-1]
            verified[descs[-1].digest] = diff_id
        image = images.commit_image(entry.config_bytes, descs, entry.names, entry.manifest_bytes)
        outcome.images.append(image)
        outcome.actions.append('loaded %s%s' % (image.id, ' as ' + ', '.join(entry.names) if entry.names else ''))


def _known_layers(images):
    """``(diff ID -> stored layer descriptor, layer digest -> diff ID)`` from the images in the store."""
    known, verified = {}, {}
    for image in images.list():
        for desc, diff_id in zip(image.layers, image.diff_ids):
            if images.store.has_blob(desc.digest) and images.store.blob_size(desc.digest) == desc.size:
                known.setdefault(diff_id, desc)
                verified.setdefault(desc.digest, diff_id)
    return known, verified


class _Tee:
    """Reads ``size`` bytes of ``src``, copying them into ``sink`` on the way."""

    def __init__(self, src, sink, size):
        self._src, self._sink, self.left = src, sink, size

    def read(self, n=-1):
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self._src.read(n) if n else b''
        self.left -= len(data)
        self._sink.write(data)
        return data


def _copy_layer(store, archive, member, desc, diff_id, verified, layermod):
    """Copy a layer blob byte for byte, checking digest, size and diff ID in one pass."""
    if store.has_blob(desc.digest):
        if store.blob_size(desc.digest) != desc.size:
            raise CorruptContent('archive "%s": layer %s is %d bytes in the store, but its descriptor says %d'
                                 % (archive.path, desc.digest, store.blob_size(desc.digest), desc.size))
        have = verified.get(desc.digest)
        if have is None:
            with store.open_blob(desc.digest, desc.size) as src:
                have = layermod.read_diff_id(src)
                src.verify()
        if have != diff_id:
            raise CorruptContent('archive "%s": layer %s has diff ID %s but the image config says %s'
                                 % (archive.path, desc.digest, have, diff_id))
        return
    writer = store.new_blob()
    try:
        tee = _Tee(archive.open(member), writer, desc.size)
        uncompressed = layermod.open_uncompressed(tee)
        digest, size = hashlib.sha256(), 0
        try:
            for chunk in iter(lambda: uncompressed.read(CHUNK), b''):
                digest.update(chunk)
                size += len(chunk)
        except CorruptContent as exc:
            raise CorruptContent('archive "%s": layer blob %s: %s' % (archive.path, desc.digest, exc.msg)) from None
        while tee.read(CHUNK):
            pass
        if tee.left:
            raise CorruptContent('archive "%s" is truncated: blob %s lacks %d of its %d bytes'
                                 % (archive.path, desc.digest, tee.left, desc.size))
        actual = 'sha256:' + digest.hexdigest()
        if actual != diff_id:
            raise CorruptContent('archive "%s": layer %s has diff ID %s but the image config says %s'
                                 % (archive.path, desc.digest, actual, diff_id))
        writer.commit(desc.digest)
        store.record_diff_size(diff_id, size)
    except _TAR_ERRORS as exc:
        writer.abort()
        raise CorruptContent('archive "%s" is truncated or damaged at blob %s: %s' % (archive.path, desc.digest, exc))
    except BaseException:
        writer.abort()
        raise


def _import_layer(store, archive, member, diff_id, layermod):
    writer = store.new_blob()
    try:
        digests = layermod.import_tar(archive.open(member), writer,
                                      what='layer "%s" of archive "%s"' % (member, archive.path))
        if digests.diff_id != diff_id:
            raise CorruptContent('archive "%s": layer "%s" has diff ID %s but the image config says %s'
                                 % (archive.path, member, digests.diff_id, diff_id))
        writer.commit(digests.digest)
    except _TAR_ERRORS as exc:
        writer.abort()
        raise CorruptContent('archive "%s" is truncated or damaged at layer "%s": %s' % (archive.path, member, exc))
    except BaseException:
        writer.abort()
        raise
    store.record_diff_size(diff_id, digests.diff_size)
    return Descriptor(digests.media_type, digests.digest, digests.size)

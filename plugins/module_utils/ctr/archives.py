# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image archives: ``docker save``/``docker load`` (docker-archive) and oci-archive.

docker-archive written here is the layout every loader knows (names in full)::

    <config hex>.json        the image config, byte for byte
    <diff id hex>/layer.tar  each layer, uncompressed (its sha256 is its diff ID)
    manifest.json            [{"Config": ..., "RepoTags": [...], "Layers": [...]}]
    repositories             {"docker.io/library/busybox": {"latest": "<top layer dir>"}}

oci-archive is a tar of an OCI image layout holding exactly the saved images.

Archives are written deterministically (sorted, fixed times and owners) to a
temp file beside the target and renamed into place. Before writing, an existing
archive is read back: when it already holds exactly the content that would be
written, nothing is written and nothing changed.

Loading reads members by name without ever extracting to disk; every layer is
checked against the diff ID its config claims and every blob against its digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import List

from . import mediatypes as mt
from .errors import CorruptContent, CtrError, InvalidArgument, KernelError, NotFound
from .fsutil import TMP_PREFIX, canonical_json, fsync_dir
from .refs import Reference
from .store import REF_NAME, Descriptor, digest_hex

FORMATS = ('docker-archive', 'oci-archive')
BLOCK = 512
CHUNK = 1 << 20
CONFIG_LIMIT = 64 << 20


@dataclass
class Member:
    """One entry of an archive we write: its content is either bytes or a producer."""

    name: str
    sha256: str = ''            # expected 'sha256:..' of the content ('' for directories)
    data: bytes = None
    blob: Descriptor = None     # copy this stored blob as is
    layer: Descriptor = None    # decompress this stored layer blob (content = its diff ID)
    is_dir: bool = False


@dataclass
class LoadOutcome:
    changed: bool
    images: list = field(default_factory=list)
    actions: List[str] = field(default_factory=list)


# -- saving ------------------------------------------------------------------

def _selected(images, refs):
    """[(image, [names to record])] in the order asked, merging repeats of one image."""
    out = {}
    for text in refs:
        image = images.get(text)
        entry = out.setdefault(image.id, (image, []))
        if not (text.startswith('sha256:') or text == image.id[7:] or image.id[7:].startswith(text)):
            name = str(Reference.parse(text))
            if name in image.names and name not in entry[1]:
                entry[1].append(name)
    return list(out.values())


def _docker_members(selection):
    manifest, repositories, members, seen = [], {}, [], set()
    for image, names in selection:
        config_name = image.id[7:] + '.json'
        if config_name not in seen:
            seen.add(config_name)
            members.append(Member(config_name, image.id, data=image.config_bytes))
        layer_paths = []
        for desc, diff_id in zip(image.layers, image.diff_ids):
            folder = digest_hex(diff_id)
            layer_paths.append(folder + '/layer.tar')
            if folder not in seen:
                seen.add(folder)
                members.append(Member(folder + '/', is_dir=True))
                members.append(Member(folder + '/layer.tar', diff_id, layer=desc))
        # full names: podman reads a short 'busybox:latest' as localhost/busybox, Docker reads both
        tags = [str(Reference.parse(n)) for n in names]
        manifest.append({'Config': config_name, 'RepoTags': tags or None, 'Layers': layer_paths})
        for tag in tags:
            repo, dummy, t = tag.rpartition(':')
            if layer_paths:
                repositories.setdefault(repo, {})[t] = layer_paths[-1].split('/')[0]
    members.append(_bytes_member('manifest.json', json.dumps(manifest, separators=(',', ':')).encode()))
    repositories_json = json.dumps(repositories, sort_keys=True, separators=(',', ':'))
    members.append(_bytes_member('repositories', repositories_json.encode()))
    return members


def _oci_members(selection):
    members, seen, index = [], set(), []
    members.append(_bytes_member('oci-layout', canonical_json({'imageLayoutVersion': '1.0.0'})))
    members.append(Member('blobs/', is_dir=True))
    members.append(Member('blobs/sha256/', is_dir=True))
    for image, names in selection:
        blobs = [image.manifest, Descriptor(mt.OCI_CONFIG, image.id, len(image.config_bytes))] + image.layers
        for desc in blobs:
            if desc.digest not in seen:
                seen.add(desc.digest)
                members.append(Member('blobs/sha256/' + digest_hex(desc.digest), desc.digest, blob=desc))
        for name in names or [None]:
            ann = {REF_NAME: name} if name else {}
            index.append(Descriptor(image.manifest.media_type, image.manifest.digest, image.manifest.size, ann).to_json())
    members.insert(1, _bytes_member('index.json', canonical_json(
        {'schemaVersion': 2, 'mediaType': mt.OCI_INDEX, 'manifests': index})))
    return members


def _bytes_member(name, data):
    return Member(name, 'sha256:' + hashlib.sha256(data).hexdigest(), data=data)


def _header(name, size, is_dir=False):
    info = tarfile.TarInfo(name)
    info.size = 0 if is_dir else size
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = 0o755 if is_dir else 0o644
    info.mtime = 0
    info.uname = info.gname = ''
    return info.tobuf(tarfile.GNU_FORMAT, 'utf-8', 'surrogateescape')


def _matches(path, members):
    """True when the archive at ``path`` holds exactly ``members`` with the same content."""
    if not os.path.isfile(path):
        return False
    expected = {m.name.rstrip('/'): m for m in members}
    try:
        with tarfile.open(path, 'r:') as tf:
            seen = set()
            for info in tf:
                name = info.name.rstrip('/')
                m = expected.get(name)
                if m is None or name in seen or info.isdir() != m.is_dir:
                    return False
                seen.add(name)
                if m.is_dir:
                    continue
                if not info.isreg():
                    return False
                h = hashlib.sha256()
                f = tf.extractfile(info)
                for chunk in iter(lambda: f.read(CHUNK), b''):
                    h.update(chunk)
                if 'sha256:' + h.hexdigest() != m.sha256:
                    return False
            return seen == set(expected)
    except (tarfile.TarError, OSError, EOFError):
        return False


def _write(store, members, out):
    for m in members:
        if m.is_dir:
            out.write(_header(m.name, 0, True))
        elif m.data is not None:
            _write_bytes(out, m.name, m.data)
        elif m.blob is not None:
            out.write(_header(m.name, m.blob.size))
            with store.open_blob(m.blob.digest, m.blob.size) as src:
                _copy(src, out, m.blob.size, m.name)
        else:
            _write_layer(store, out, m)
    out.write(b'\0' * (BLOCK * 2))


def _write_bytes(out, name, data):
    out.write(_header(name, len(data)))
    out.write(data)
    out.write(b'\0' * (-len(data) % BLOCK))


def _copy(src, out, size, name):
    left = size
    while left:
        chunk = src.read(min(CHUNK, left))
        if not chunk:
            raise CorruptContent('stored blob for archive member %s ended early' % name)
        out.write(chunk)
        left -= len(chunk)
    src.read(1)  # reach EOF so the digest is checked
    out.write(b'\0' * (-size % BLOCK))


def _write_layer(store, out, m):
    """An uncompressed layer whose size is known only at the end: header back-patched."""
    from .layers import open_uncompressed

    start = out.tell()
    out.write(_header(m.name, 0))
    h, size = hashlib.sha256(), 0
    with store.open_blob(m.layer.digest, m.layer.size) as blob:
        src = open_uncompressed(blob)
        for chunk in iter(lambda: src.read(CHUNK), b''):
            h.update(chunk)
            out.write(chunk)
            size += len(chunk)
        blob.read()
    if 'sha256:' + h.hexdigest() != m.sha256:
        raise CorruptContent('stored layer %s does not match its diff ID %s' % (m.layer.digest, m.sha256))
    out.write(b'\0' * (-size % BLOCK))
    end = out.tell()
    out.seek(start)
    header = _header(m.name, size)
    if len(header) != BLOCK:
        raise CtrError('archive member %s needs an extended header; this is a bug' % m.name)
    out.write(header)
    out.seek(end)


def save(images, refs, path, fmt='docker-archive', check=False):
    """Write the images ``refs`` name to the archive ``path``; returns whether it changed."""
    if fmt not in FORMATS:
        raise InvalidArgument('archive_format "%s" is not one of %s' % (fmt, ', '.join(FORMATS)))
    if not refs:
        raise InvalidArgument('name an image to save')
    selection = _selected(images, refs)
    members = _docker_members(selection) if fmt == 'docker-archive' else _oci_members(selection)
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise NotFound('archive_path "%s": the directory %s does not exist' % (path, directory))
    if os.path.isdir(path):
        raise InvalidArgument('archive_path "%s" is a directory, not a file' % path)
    if _matches(path, members):
        return False
    if check:
        return True
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, 'w+b') as out:
            _write(images.store, members, out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise KernelError.from_oserror('write archive', path, exc)
        raise
    fsync_dir(directory)
    return True


# -- loading -----------------------------------------------------------------

class _Archive:
    """Random access to the members of a (maybe compressed) tar, by normalised name."""

    def __init__(self, path):
        self.path = path
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
            for info in self.tf.getmembers():
                self.members[os.path.normpath(info.name.lstrip('/')).lstrip('./') or '.'] = info
        except (tarfile.TarError, EOFError, OSError) as exc:
            reason = str(exc) if '\n' not in str(exc) else 'it is not a tar archive, plain or compressed with gzip, bzip2 or xz'
            raise CorruptContent('load_path "%s" is not a readable tar archive: %s' % (path, reason))

    def open(self, name):
        info = self.members.get(os.path.normpath(name.lstrip('/')).lstrip('./'))
        if info is None:
            raise CorruptContent('archive "%s" lacks the member "%s" its manifest names' % (self.path, name))
        try:
            f = self.tf.extractfile(info)
        except (tarfile.TarError, KeyError) as exc:
            raise CorruptContent('archive "%s": member "%s" cannot be read: %s' % (self.path, name, exc))
        if f is None:
            raise CorruptContent('archive "%s": member "%s" is not a file' % (self.path, name))
        return f

    def read(self, name, limit=CONFIG_LIMIT):
        try:
            data = self.open(name).read(limit + 1)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise CorruptContent('archive "%s" is truncated or damaged at "%s": %s' % (self.path, name, exc))
        if len(data) > limit:
            raise CorruptContent('archive "%s": member "%s" is too large for metadata' % (self.path, name))
        return data

    def read_json(self, name):
        try:
            return json.loads(self.read(name).decode('utf-8'))
        except ValueError as exc:
            raise CorruptContent('archive "%s": "%s" is not valid JSON: %s' % (self.path, name, exc))

    def close(self):
        self.tf.close()


def load(images, path, name=None, check=False):
    """Load every image of a docker-archive or oci-archive at ``path``."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise NotFound('load_path "%s" does not exist or is not a file' % path)
    default_name = str(Reference.parse(name)) if name else None
    archive = _Archive(path)
    try:
        if 'manifest.json' in archive.members:
            entries = _docker_entries(archive)
        elif 'index.json' in archive.members:
            entries = _oci_entries(archive)
        else:
            raise CorruptContent('load_path "%s" is neither a docker-archive (no manifest.json) nor an oci-archive '
                                 '(no index.json)' % path)
        if default_name and len(entries) == 1 and not entries[0].names:
            entries[0].names.append(default_name)
        return _apply(images, archive, entries, check)
    finally:
        archive.close()


@dataclass
class _Entry:
    config_bytes: bytes
    names: list
    layers: list             # [(member name or None, Descriptor or None, diff_id)]
    manifest_bytes: bytes = None
    source: str = ''


def _names(values, archive):
    out = []
    for v in values or []:
        try:
            out.append(str(Reference.parse(v)))
        except InvalidArgument:
            raise CorruptContent('archive "%s" names an image "%s", which is not a valid reference' % (archive.path, v))
    return out


def _docker_entries(archive):
    doc = archive.read_json('manifest.json')
    if not isinstance(doc, list):
        raise CorruptContent('archive "%s": manifest.json is not a list of images' % archive.path)
    entries = []
    for item in doc:
        try:
            config_name, layer_names = item['Config'], list(item['Layers'])
        except (KeyError, TypeError):
            raise CorruptContent('archive "%s": a manifest.json entry lacks Config or Layers' % archive.path)
        config_bytes = archive.read(config_name)
        diff_ids = _diff_ids(config_bytes, archive, config_name)
        if len(diff_ids) != len(layer_names):
            raise CorruptContent('archive "%s": image %s lists %d layers but its config has %d diff IDs'
                                 % (archive.path, config_name, len(layer_names), len(diff_ids)))
        entries.append(_Entry(config_bytes, _names(item.get('RepoTags'), archive),
                              [(n, None, d) for n, d in zip(layer_names, diff_ids)], source=config_name))
    return entries


def _diff_ids(config_bytes, archive, what):
    try:
        config = json.loads(config_bytes.decode('utf-8'))
        diff_ids = list(config['rootfs']['diff_ids'])
    except (ValueError, KeyError, TypeError):
        raise CorruptContent('archive "%s": %s is not an image config with rootfs.diff_ids' % (archive.path, what))
    for d in diff_ids:
        digest_hex(d)
    return diff_ids


def _blob_name(digest):
    algo, dummy, hexpart = digest.partition(':')
    return 'blobs/%s/%s' % (algo, hexpart)


def _read_verified(archive, desc):
    data = archive.read(_blob_name(desc.digest))
    if 'sha256:' + hashlib.sha256(data).hexdigest() != desc.digest:
        raise CorruptContent('archive "%s": blob %s does not match its digest' % (archive.path, desc.digest))
    return data


def _oci_entries(archive):
    from .images import host_platform

    index = archive.read_json('index.json')
    entries = []
    for raw in index.get('manifests') or []:
        desc = Descriptor.from_json(raw, 'an index.json entry of "%s"' % archive.path)
        ann = desc.annotations
        if desc.media_type in mt.INDEXES:
            nested = json.loads(_read_verified(archive, desc).decode('utf-8'))
            plat = host_platform()
            candidates = [Descriptor.from_json(m) for m in nested.get('manifests') or []]
            chosen = [c for c in candidates if c.platform.get('architecture') == plat['architecture']
                      and c.platform.get('os', 'linux') == 'linux'] or candidates[:1]
            if not chosen:
                continue
            desc = chosen[0]
        if desc.media_type not in mt.MANIFESTS:
            raise CorruptContent('archive "%s": entry %s has media type %s, not an image manifest'
                                 % (archive.path, desc.digest, desc.media_type))
        manifest_bytes = _read_verified(archive, desc)
        manifest = json.loads(manifest_bytes.decode('utf-8'))
        config_desc = Descriptor.from_json(manifest.get('config'), 'the config of manifest %s' % desc.digest)
        config_bytes = _read_verified(archive, config_desc)
        diff_ids = _diff_ids(config_bytes, archive, config_desc.digest)
        layer_descs = [Descriptor.from_json(layer, 'a layer of manifest %s' % desc.digest)
                       for layer in manifest.get('layers') or []]
        if len(layer_descs) != len(diff_ids):
            raise CorruptContent('archive "%s": manifest %s has %d layers but its config has %d diff IDs'
                                 % (archive.path, desc.digest, len(layer_descs), len(diff_ids)))
        for layer in layer_descs:
            if layer.media_type not in mt.LAYER_BY_COMPRESSION.values() and layer.media_type not in mt.TO_OCI:
                raise CorruptContent('archive "%s": layer %s has the unsupported media type %s'
                                     % (archive.path, layer.digest, layer.media_type))
        name = ann.get('io.containerd.image.name') or ann.get(REF_NAME)
        names = _names([name], archive) if name and ('/' in name or ':' in name) else []
        keep_manifest = manifest_bytes if desc.media_type == mt.OCI_MANIFEST and all(
            layer.media_type not in mt.TO_OCI for layer in layer_descs) else None
        entries.append(_Entry(config_bytes, names, [(_blob_name(d.digest), d, i) for d, i in zip(layer_descs, diff_ids)],
                              keep_manifest, desc.digest))
    return entries


def _known_layers(images):
    """diff ID -> a stored layer descriptor, from the images already in the store."""
    known = {}
    for image in images.list():
        for desc, diff_id in zip(image.layers, image.diff_ids):
            if images.store.has_blob(desc.digest):
                known.setdefault(diff_id, desc)
    return known


def _present(images, entry):
    digest = 'sha256:' + hashlib.sha256(entry.config_bytes).hexdigest()
    have = [i for i in images.list() if i.id == digest]
    if not have:
        return None
    image = have[0]
    if entry.manifest_bytes is not None and image.manifest.digest != \
            'sha256:' + hashlib.sha256(entry.manifest_bytes).hexdigest():
        return None
    if all(n in image.names for n in entry.names):
        return image
    return None


def _same_id(images, entry):
    digest = 'sha256:' + hashlib.sha256(entry.config_bytes).hexdigest()
    return next((i for i in images.list() if i.id == digest), None)


def _apply(images, archive, entries, check):
    from . import layers as layermod

    outcome = LoadOutcome(False)
    todo, renames = [], []
    for entry in entries:
        image = _present(images, entry)
        if image is not None:
            outcome.images.append(image)
            continue
        same = _same_id(images, entry)
        if same is not None:
            # the image is already here (same ID) under another manifest or without these names:
            # keep the stored manifest and only add the names
            renames.append((same, entry))
        else:
            todo.append(entry)
    if not todo and not renames:
        return outcome
    outcome.changed = bool(todo) or any(images.set_names(i.manifest, e.names, check=True) for i, e in renames)
    if check:
        outcome.actions = ['load %s' % (', '.join(e.names) or e.source) for e in todo + [r[1] for r in renames]]
        return outcome
    store = images.store
    store.init()
    with store.writing():
        for image, entry in renames:
            if images.set_names(image.manifest, entry.names):
                outcome.actions.append('named %s as %s' % (image.id, ', '.join(entry.names)))
            outcome.images.append(images.get(image.id))
        known = _known_layers(images)
        for entry in todo:
            descs = []
            for member, desc, diff_id in entry.layers:
                if desc is not None:
                    # blobs of an oci-archive are kept byte for byte; Docker media types become OCI ones
                    copied = _copy_blob(store, archive, member, desc)
                    descs.append(Descriptor(mt.TO_OCI.get(desc.media_type, desc.media_type), copied.digest,
                                            copied.size))
                elif diff_id in known:
                    descs.append(known[diff_id])
                else:
                    descs.append(_import_layer(store, archive, member, diff_id, layermod))
                    known[diff_id] = descs[-1]
            image = images.commit_image(entry.config_bytes, descs, entry.names, entry.manifest_bytes)
            outcome.images.append(image)
            outcome.actions.append('loaded %s%s' % (image.id, ' as ' + ', '.join(entry.names) if entry.names else ''))
    return outcome


def _copy_blob(store, archive, member, desc):
    if store.has_blob(desc.digest):
        return desc
    writer = store.new_blob()
    try:
        src = archive.open(member)
        left = desc.size
        while left:
            chunk = src.read(min(CHUNK, left))
            if not chunk:
                raise CorruptContent('archive "%s" is truncated: blob %s ends early' % (archive.path, desc.digest))
            writer.write(chunk)
            left -= len(chunk)
        writer.commit(desc.digest)
    except (tarfile.TarError, EOFError, OSError) as exc:
        writer.abort()
        raise CorruptContent('archive "%s" is truncated or damaged at blob %s: %s' % (archive.path, desc.digest, exc))
    except BaseException:
        writer.abort()
        raise
    return desc


def _import_layer(store, archive, member, diff_id, layermod):
    writer = store.new_blob()
    try:
        digests = layermod.import_tar(archive.open(member), writer)
        if digests.diff_id != diff_id:
            raise CorruptContent('archive "%s": layer "%s" has diff ID %s but the image config says %s'
                                 % (archive.path, member, digests.diff_id, diff_id))
        writer.commit(digests.digest)
    except (tarfile.TarError, EOFError) as exc:
        writer.abort()
        raise CorruptContent('archive "%s" is truncated or damaged at layer "%s": %s' % (archive.path, member, exc))
    except BaseException:
        writer.abort()
        raise
    return Descriptor(digests.media_type, digests.digest, digests.size)

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

Loading lives in ``archives_load`` (``load`` is re-exported here).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile

from . import mediatypes as mt
from .errors import CorruptContent, CtrError, InvalidArgument, KernelError, NotFound
from .fsutil import canonical_json, fsync_dir
from .records import record
from .refs import Reference
from .archives_load import LoadOutcome, load
from .store import REF_NAME, Descriptor, digest_hex

FORMATS = ('docker-archive', 'oci-archive')
BLOCK = 512
CHUNK = 1 << 20


@record
class Member:
    """One entry of an archive we write: its content is either bytes or a producer."""

    name: str
    sha256: str = ''            # expected 'sha256:..' of the content ('' for directories)
    data: bytes = None
    blob: Descriptor = None     # copy this stored blob as is
    layer: Descriptor = None    # decompress this stored layer blob (content = its diff ID)
    is_dir: bool = False


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
    src.verify()
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
        blob.verify()
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
    # one fixed temp name per target: a save killed halfway leaves one file the next save replaces
    tmp = os.path.join(directory, '.%s.ctr-tmp' % os.path.basename(path))
    try:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
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
            raise KernelError.from_oserror('write archive_path', path, exc)
        raise
    fsync_dir(directory)
    return True


__all__ = ['FORMATS', 'LoadOutcome', 'load', 'save']

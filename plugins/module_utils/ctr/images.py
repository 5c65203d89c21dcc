# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images: manifests, configs, names, import, inspect, tag, untag and remove.

An image is a manifest in the store's ``index.json``; each of its names is one
index entry whose ``org.opencontainers.image.ref.name`` is the full normalised
reference (``docker.io/library/busybox:latest``). Its ID is the config digest,
as in Docker. Every mutating call takes ``check`` and then only predicts.
"""

from __future__ import annotations

import copy
import os
import time

from . import mediatypes as mt
from .errors import Conflict, CorruptContent, CtrError, InvalidArgument, KernelError, NotFound
from .records import field, record
from .refs import Reference
from .regex import lazy
from .store import REF_NAME, Descriptor, Store
from .timestamps import MAX_SECONDS, rfc3339

_GOARCH = {'x86_64': 'amd64', 'amd64': 'amd64', 'aarch64': 'arm64', 'arm64': 'arm64', 'armv7l': 'arm',
           'armv6l': 'arm', 'i386': '386', 'i686': '386', 'ppc64le': 'ppc64le', 's390x': 's390x',
           'riscv64': 'riscv64', 'mips64': 'mips64le', 'loongarch64': 'loong64'}


_HEX = lazy(r'^[0-9a-f]{1,64}$')
_FULL_ID = lazy(r'^[0-9a-f]{64}$')


def host_platform():
    """The OCI platform of this host: ``{'architecture': 'amd64', 'os': 'linux'}``."""
    machine = os.uname().machine.lower()
    out = {'architecture': _GOARCH.get(machine, machine), 'os': 'linux'}
    if machine.startswith('armv'):
        out['variant'] = 'v' + machine[4]
    return out


def source_date_epoch():
    """``$SOURCE_DATE_EPOCH`` as an int, or None; a malformed value is an error, not ignored."""
    value = os.environ.get('SOURCE_DATE_EPOCH')
    if value in (None, ''):
        return None
    try:
        epoch = int(value)
    except ValueError:
        epoch = -1
    if not 0 <= epoch <= MAX_SECONDS:
        raise InvalidArgument('SOURCE_DATE_EPOCH "%s" is not a whole number of seconds from 0 to %d (the end of '
                              'the year 9999)' % (value, MAX_SECONDS))
    return epoch


@record
class Image:
    """One image in the store, with every name that points at it."""

    manifest: Descriptor
    manifest_doc: dict
    config_bytes: bytes
    config: dict
    names: list[str] = field(default_factory=list)

    @property
    def id(self):
        return self.manifest_doc['config']['digest']

    @property
    def short_id(self):
        return self.id.split(':', 1)[1][:12]

    @property
    def layers(self):
        return [Descriptor.from_json(d, 'a layer of manifest %s' % self.manifest.digest)
                for d in self.manifest_doc.get('layers') or []]

    @property
    def diff_ids(self):
        return list((self.config.get('rootfs') or {}).get('diff_ids') or [])

    def size(self, store=None):
        """Bytes of the image's uncompressed layers, as Docker and podman count ``Size``.

        A layer whose uncompressed size was never counted (content from before
        sizes were kept) counts with its compressed size.
        """
        total = 0
        for desc, diff_id in zip(self.layers, self.diff_ids):
            counted = store.diff_size(diff_id) if store is not None else None
            total += counted if counted is not None else desc.size
        return total

    def inspect(self, store=None):
        """Docker's ``image inspect`` shape (names are full references, as podman shows them)."""
        cfg = self.config
        history = list(cfg.get('history') or [])
        refs = [Reference.parse(n) for n in self.names]
        out = {
            'Id': self.id,
            'Digest': self.manifest.digest,
            'RepoTags': [str(r) for r in refs if r.tag and not r.digest],
            'RepoDigests': sorted({'%s@%s' % (r.name, self.manifest.digest) for r in refs}),
            'Parent': '',
            'Comment': (history[-1].get('comment') or '') if history else '',
            'Created': cfg.get('created') or '',
            'Author': cfg.get('author') or '',
            'Architecture': cfg.get('architecture') or '',
            'Os': cfg.get('os') or '',
            'Config': copy.deepcopy(cfg.get('config') or {}),
            'Size': self.size(store),
            'RootFS': {'Type': 'layers', 'Layers': self.diff_ids},
            'History': history,
            'ManifestMediaType': self.manifest.media_type,
        }
        if cfg.get('variant'):
            out['Variant'] = cfg['variant']
        if store is not None:
            from .store import chain_ids
            dirs = [store.layer_dir(c) for c in reversed(chain_ids(self.diff_ids))]
            data = {'LowerDir': ':'.join(dirs)} if dirs and all(os.path.isdir(d) for d in dirs) else {}
            out['GraphDriver'] = {'Name': 'overlay', 'Data': data}
        return out


@record
class Outcome:
    """What a mutating call did (or, in check mode, would do)."""

    changed: bool
    image: Image | None = None
    before: dict | None = None
    actions: list[str] = field(default_factory=list)
    displaced: bool = False     # a name moved away from another image


def _same_config(a, b):
    """Equal but for creation times: re-importing the same tree later is no change."""
    def strip(cfg):
        cfg = copy.deepcopy(cfg)
        cfg.pop('created', None)
        for h in cfg.get('history') or []:
            h.pop('created', None)
        return cfg
    return strip(a) == strip(b)


class ImageStore:
    """The image operations over one :class:`Store`."""

    def __init__(self, root=None, store=None):
        self.store = store or Store(root)

    # -- reading -----------------------------------------------------------

    def _load(self, desc, names):
        doc = self.store.read_json(desc.digest, 'manifest')
        if desc.media_type not in mt.MANIFESTS or 'config' not in doc:
            raise CorruptContent('index entry %s of %s is not an image manifest (%s)'
                                 % (desc.digest, self.store.index_path, desc.media_type))
        config_desc = Descriptor.from_json(doc['config'], 'the config of manifest %s' % desc.digest)
        config_bytes = self.store.read_blob(config_desc.digest)
        import json
        try:
            config = json.loads(config_bytes.decode('utf-8'))
        except ValueError as exc:
            raise CorruptContent('image config %s is not valid JSON: %s' % (config_desc.digest, exc))
        return Image(Descriptor(desc.media_type, desc.digest, desc.size), doc, config_bytes, config, names)

    def list(self):
        """Every image, once, with its names (in index order).

        An index entry whose manifest or config is missing or damaged is left out
        (and listed in :attr:`broken`), so one bad entry never makes the whole store
        unusable; removing its name still works.
        """
        grouped = {}
        for desc in self.store.read_index():
            names = grouped.setdefault(desc.digest, (desc, []))[1]
            name = desc.annotations.get(REF_NAME)
            if name and name not in names:
                names.append(name)
        images, self.broken = [], []
        for desc, names in grouped.values():
            try:
                images.append(self._load(desc, names))
            except (NotFound, CorruptContent) as exc:
                self.broken.append((desc, names, exc.msg))
        return images

    def resolve(self, text):
        """``(image or None, kind)``: how ``text`` names an image -- kind is 'id', 'digest' or 'name'.

        IDs: ``sha256:`` and 1 to 64 hex digits, or a 64-hex string; any other string is a
        reference first, then, when no name matches and it is 4 or more hex digits, an ID prefix
        (as Docker does). ``name@digest`` finds the manifest of that digest under that repository.
        """
        text = (text or '').strip() if isinstance(text, str) else ''
        if not text:
            raise InvalidArgument('an empty string is not an image name or ID')
        images = self.list()
        hexpart = text[7:] if text.startswith('sha256:') else text
        if text.startswith('sha256:') or _FULL_ID.match(text):
            if not _HEX.match(hexpart):
                raise InvalidArgument('"%s" is not an image ID: sha256: must be followed by hex digits' % text)
            return self._by_prefix(images, hexpart, text), 'id'
        ref = Reference.parse(text)
        if ref.digest:
            return next((i for i in images if i.manifest.digest == ref.digest
                         and any(Reference.parse(n).name == ref.name for n in i.names)), None), 'digest'
        wanted = str(ref)
        hit = next((i for i in images if wanted in i.names), None)
        if hit is None and len(text) >= 4 and _HEX.match(text):
            return self._by_prefix(images, text, text), 'id'
        return hit, 'name'

    @staticmethod
    def _by_prefix(images, prefix, text):
        matches = [i for i in images if i.id[7:].startswith(prefix)]
        if len(matches) > 1:
            raise InvalidArgument('image ID prefix "%s" is ambiguous: it matches %d images' % (text, len(matches)))
        return matches[0] if matches else None

    def find(self, text):
        """The image ``text`` names (reference, ``name@digest``, ID or unique ID prefix), or None."""
        return self.resolve(text)[0]

    def by_manifest(self, digest):
        """The image of a stored manifest, named or not (a container's image after its last name went)."""
        if not digest or not self.store.has_blob(digest):
            return None
        desc = Descriptor(mt.OCI_MANIFEST, digest, self.store.blob_size(digest))
        return self._load(desc, [])

    def get(self, text):
        image = self.find(text)
        if image is None:
            raise NotFound('image "%s" is not in the store at %s' % (text, self.store.root), image=text)
        return image

    # -- writing -----------------------------------------------------------

    def commit_image(self, config_bytes, layer_descs, names, manifest_bytes=None):
        """Store config and manifest (built here unless given), then point ``names`` at it.

        The caller holds :meth:`Store.writing` and has stored the layers.
        """
        config_digest = self.store.put_bytes(config_bytes)
        if manifest_bytes is None:
            from .fsutil import canonical_json
            manifest = {
                'schemaVersion': 2,
                'mediaType': mt.OCI_MANIFEST,
                'config': Descriptor(mt.OCI_CONFIG, config_digest, len(config_bytes)).to_json(),
                'layers': [d.to_json() for d in layer_descs],
            }
            manifest_bytes = canonical_json(manifest)
        manifest_desc = Descriptor(mt.OCI_MANIFEST, self.store.put_bytes(manifest_bytes), len(manifest_bytes))
        self.set_names(manifest_desc, names)
        return self._load(manifest_desc, list(names))

    def set_names(self, manifest_desc, names, check=False):
        """Point each name at the manifest; returns True when ``index.json`` changed."""
        wanted = [str(Reference.parse(n)) for n in names]
        with self.store.index_lock():
            index = self.store.read_index()
            current = {d.annotations.get(REF_NAME): d.digest for d in index}
            present = manifest_desc.digest in current.values()
            if all(current.get(n) == manifest_desc.digest for n in wanted) and (wanted or present):
                return False
            if check:
                return True
            kept = [d for d in index if d.annotations.get(REF_NAME) not in wanted]
            # an unnamed entry for this manifest is superseded by a named one
            if wanted:
                kept = [d for d in kept if not (d.digest == manifest_desc.digest and not d.annotations.get(REF_NAME))]
            plat = {}
            for n in wanted or [None]:
                ann = {REF_NAME: n} if n else {}
                kept.append(Descriptor(manifest_desc.media_type, manifest_desc.digest, manifest_desc.size,
                                       ann, plat))
            self.store.write_index(kept)
            return True

    def tag(self, source, target, check=False):
        """Give ``source``'s image the name ``target`` too (moving the name if it was elsewhere)."""
        ref = Reference.parse(target)
        if ref.digest:
            raise InvalidArgument('cannot tag with "%s": a tag name must not carry a digest' % target)
        if check or not self.store.exists():
            return self._tag(source, ref, check)
        # the writer lock keeps gc out between finding the image and naming it
        with self.store.writing():
            outcome = self._tag(source, ref, check)
        if outcome.displaced:
            self.store.gc()
        return outcome

    def _tag(self, source, ref, check):
        image = self.get(source)
        before = self.find(str(ref))
        changed = before is None or before.manifest.digest != image.manifest.digest
        if changed and not check:
            self.set_names(image.manifest, [str(ref)])
        outcome = Outcome(changed, image, before.inspect() if before else None,
                          ['tagged %s as %s' % (image.short_id, ref)] if changed else [])
        if changed and not check and before is not None:
            outcome.displaced = True
        return outcome

    def _drop_entries(self, keep, check):
        """Remove the index entries ``keep(desc)`` refuses; True when there were any."""
        if not self.store.exists():
            return False
        with self.store.index_lock():
            index = self.store.read_index()
            kept = [d for d in index if keep(d)]
            if len(kept) != len(index) and not check:
                self.store.write_index(kept)
        return len(kept) != len(index)

    def untag(self, name, check=False):
        """Drop one name; the image goes when its last name does."""
        ref = Reference.parse(name)
        image = self.find(str(ref))
        changed = self._drop_entries(lambda d: d.annotations.get(REF_NAME) != str(ref), check)
        if changed and not check:
            self.store.gc()
        return Outcome(changed, None, image.inspect() if image else None, ['untagged %s' % ref] if changed else [])

    def remove(self, text, force=False, check=False):
        """``docker rmi``: a name removes that name, ``repo@digest`` that repository's names of the
        manifest, an ID the image (with ``force`` when it has several names, or always with ``force``)."""
        image, kind = self.resolve(text)
        if kind == 'name' and not force:
            return self.untag(text, check)
        if image is None:
            return Outcome(False)
        if kind == 'digest' and not force:
            repo = Reference.parse(text).name
            changed = self._drop_entries(lambda d: not (d.digest == image.manifest.digest and Reference.parse(
                d.annotations.get(REF_NAME) or 'x').name == repo and d.annotations.get(REF_NAME)), check)
            if changed and not check:
                self.store.gc()
            return Outcome(changed, None, image.inspect(), ['untagged %s' % text] if changed else [])
        if len(image.names) > 1 and not force:
            raise Conflict('image %s has several names (%s); remove them one by one or use force'
                           % (image.short_id, ', '.join(image.names)))
        self._drop_entries(lambda d: d.digest != image.manifest.digest, check)
        if not check:
            self.store.gc()
        return Outcome(True, None, image.inspect(), ['deleted %s' % image.id] + ['untagged %s' % n for n in image.names])

    # -- import --------------------------------------------------------------

    def import_rootfs(self, source, name, changes=(), message=None, check=False):
        """``docker import``: a directory or a tar (plain or compressed) becomes a one-layer image."""
        ref = Reference.parse(name)
        if ref.digest:
            raise InvalidArgument('cannot import as "%s": the name must not carry a digest' % name)
        source = os.path.abspath(source)
        is_dir = os.path.isdir(source)
        if not is_dir and not os.path.isfile(source):
            raise NotFound('import_path "%s" does not exist or is neither a directory nor a file' % source)
        epoch = source_date_epoch()
        created = rfc3339(epoch if epoch is not None else time.time())
        from . import dockerfile
        body = dockerfile.apply_changes({}, changes)
        history = {'created': created, 'created_by': 'ctr import'}
        if message:
            history['comment'] = message
        config = dict(host_platform())
        config.update({'created': created, 'config': body,
                       'rootfs': {'type': 'layers', 'diff_ids': []}, 'history': [history]})
        skip = self._skip_store(source) if is_dir else None

        before = self.find(str(ref))
        if check or (before is not None and len(before.diff_ids) == 1):
            # a hash-only pass (validating a tarball whole) decides whether anything would change
            diff_id = self._diff_id_of(source, is_dir, epoch, skip)
            config['rootfs']['diff_ids'] = [diff_id]
            if before is not None and _same_config(before.config, config):
                return Outcome(False, before, before.inspect(self.store))
        if check:
            return Outcome(True, None, before.inspect(self.store) if before else None,
                           ['import %s as %s' % (source, ref)])

        fresh = not os.path.exists(self.store.root)
        try:
            image = self._import(source, is_dir, epoch, skip, config, ref, before)
        except BaseException:
            if fresh:
                from .fsutil import remove_tree
                remove_tree(self.store.root)
            raise
        if image is None:
            return Outcome(False, before, before.inspect(self.store))
        if before is not None:
            self.store.gc()
        else:
            self.store.sweep_temp()
        return Outcome(True, image, before.inspect(self.store) if before else None,
                       ['imported %s as %s (%s)' % (source, ref, image.short_id)])

    def _import(self, source, is_dir, epoch, skip, config, ref, before):
        from . import layers
        from .fsutil import canonical_json

        self.store.init()
        with self.store.writing():
            writer = self.store.new_blob()
            try:
                if is_dir:
                    digests = layers.pack_tree(source, writer, mtime_clamp=epoch, skip=skip)
                else:
                    with _open_source(source, 'import_path') as f:
                        digests = layers.import_tar(f, writer, what='import_path "%s"' % source)
                writer.commit(digests.digest)
            except BaseException:
                writer.abort()
                raise
            self.store.record_diff_size(digests.diff_id, digests.diff_size)
            config['rootfs']['diff_ids'] = [digests.diff_id]
            if before is not None and _same_config(before.config, config):
                return None
            layer = Descriptor(digests.media_type, digests.digest, digests.size)
            return self.commit_image(canonical_json(config), [layer], [str(ref)])

    def _skip_store(self, source):
        """Importing a tree that holds the store itself must not pack the store into the image."""
        inside = os.path.relpath(self.store.root, source)
        if inside == '.' or inside.startswith('..'):
            if inside == '.':
                raise InvalidArgument('import_path "%s" is the store root itself' % source)
            return None
        return lambda rel: rel.strip('/') == inside

    @staticmethod
    def _diff_id_of(source, is_dir, epoch, skip):
        from . import layers
        if is_dir:
            return layers.pack_tree(source, _NullSink(), compression='none', mtime_clamp=epoch, skip=skip).diff_id
        with _open_source(source, 'import_path') as f:
            return layers.import_tar(f, _NullSink(), compression='none', what='import_path "%s"' % source).diff_id

    def unpack(self, text):
        """Unpack ``text``'s layers (missing ones only); their directories, lowest first."""
        image = self.get(text)
        return self.store.ensure_unpacked(image.layers, image.diff_ids)


class _NullSink:
    def write(self, data):
        return len(data)

    def flush(self):
        pass


def _open_source(path, option):
    try:
        return open(path, 'rb')
    except OSError as exc:
        raise KernelError.from_oserror('open %s' % option, path, exc)


__all__ = ['Image', 'ImageStore', 'Outcome', 'host_platform', 'CtrError']

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``docker commit``: a container becomes a new image, its image plus one layer holding its changes.

The layer is the container's overlay upper dir packed as an OCI layer (overlay whiteouts
become ``.wh.`` entries, opaque directories ``.wh..wh..opq``), less what Docker never
commits: the container's copies of the init files (``/etc/hostname``, ``/etc/hosts``,
``/etc/resolv.conf``) and anything under a mount target (volumes, binds, tmpfs, ``/proc``,
``/sys``, ``/dev``); a mount point the runtime made stays, as an empty directory. A
container without changes gets no layer, only a history entry marked ``empty_layer``, as
in Docker.

The config follows moby's ``CreateImageFromContainer``: the base image's config with
Cmd, Entrypoint, Env, WorkingDir, User, ExposedPorts, Volumes, Labels and StopSignal taken
from the container's Config (Hostname, Domainname and OnBuild are not committed), then
``changes`` applied; the history gains one entry whose ``created_by`` is the container's
Cmd joined by spaces.

A running container is frozen (its cgroup's freezer) while its upper dir is read and
thawed afterwards, unless ``pause`` is false. Check mode reads the upper dir once, hashing
only, without freezing anything.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import os
import time

from .. import mediatypes as mt
from ..errors import Conflict, CtrError, InvalidArgument, KernelError, NotFound
from ..store import Descriptor

# the diff ID of a tar holding nothing (1024 zero bytes): Docker's DigestSHA256EmptyTar
EMPTY_DIFF_ID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef'
# Config keys the commit takes from the container, as moby's merge() does
FROM_CONTAINER = ('Cmd', 'Entrypoint', 'Env', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'Labels', 'StopSignal')
# keys of the base image's Config a commit drops: the container's own, and ONBUILD (moby never copies it over)
_NOT_COMMITTED = ('Hostname', 'Domainname', 'Image', 'OnBuild', 'AttachStdin', 'AttachStdout', 'AttachStderr',
                  'Tty', 'OpenStdin', 'StdinOnce')
# the top-level keys of the base image's config a child image keeps
_PLATFORM_KEYS = ('architecture', 'os', 'variant', 'os.version', 'os.features')
# the kernel filesystems every container gets: their mount points are kept, never their contents
_KERNEL_MOUNTS = ('/proc', '/sys', '/dev')


def commit(runtime, container, name=None, changes=(), pause=True, message=None, author=None, check=False):
    """Commit ``container`` (name or ID) as image ``name`` (None: an unnamed image); returns an Outcome.

    ``changes`` are Dockerfile instructions (``CMD``, ``ENV``, ``EXPOSE``, ``LABEL``, ...)
    applied to the config; ``message`` is the history comment. Committing the same
    container state under the same name again is no change.
    """
    from .. import images as img
    ref = _reference(name)
    for option, value in (('message', message), ('author', author)):
        if value is not None and not isinstance(value, str):
            raise InvalidArgument('%s %r is not a string' % (option, value), option=option, value=value)
    found = runtime.get(container)
    base = _base_image(runtime, found)
    image_config = base.config.get('config') or {}
    body = container_config(found, image_config, changes)
    epoch = img.source_date_epoch()
    created = _rfc3339(epoch if epoch is not None else time.time())
    history = {'created': created, 'created_by': ' '.join((found.Config.get('Cmd') or []))}
    if message:
        history['comment'] = message
    if author:
        history['author'] = author
    skip = commit_skip(found, _volume_targets(found, image_config))
    plan = _Plan(runtime, found, base, body, history, author, epoch, ref, skip)
    before = runtime.images.find(str(ref)) if ref is not None else None
    if check:
        return plan.predict(before)
    store = runtime.images.store
    with contextlib.ExitStack() as stack:
        try:        # no start or removal of the container meanwhile
            stack.enter_context(runtime.container_lock(found.Id))
        except FileNotFoundError:
            raise NotFound('container "%s" was removed while it was being committed' % container,
                           container=container) from None
        plan.container = runtime.get(found.Id)      # its state as it is now
        with store.writing():
            outcome = plan.write(before, pause)
    if outcome.displaced:
        store.gc()
    elif outcome.changed:
        store.sweep_temp()
    return outcome


def container_config(container, image_config, changes=()):
    """The new image's ``config``: the base image's, the container's command and settings, then ``changes``.

    As in Docker, the container ports published are exposed and its anonymous volumes
    given in ``volumes`` (``docker run -v /path``) become VOLUMEs; named volumes, binds
    and ``mounts`` do not. Empty values are left out; a WorkingDir of ``/`` and a
    StopSignal of ``SIGTERM`` (the runtime's defaults) are kept only when the base had
    one. A bad change raises InvalidArgument.
    """
    from .. import dockerfile
    from . import mountspec
    cfg, image_config = container.Config or {}, image_config or {}
    body = {k: copy.deepcopy(v) for k, v in image_config.items()
            if k not in FROM_CONTAINER and k not in _NOT_COMMITTED}
    values = {key: copy.deepcopy(cfg.get(key)) for key in FROM_CONTAINER}
    exposed = dict(values['ExposedPorts'] or {})
    exposed.update((port, {}) for port in (container.HostConfig.get('PortBindings') or {}))
    values['ExposedPorts'] = exposed          # docker run -p publishes and exposes
    volumes = dict(image_config.get('Volumes') or {}) if values['Volumes'] is None else dict(values['Volumes'])
    volumes.update((m.target, {}) for m in mountspec.from_host_config(container.HostConfig or {})
                   if m.type == mountspec.VOLUME and not m.source and m.origin == mountspec.ORIGIN_VOLUMES)
    values['Volumes'] = volumes
    defaults = {'WorkingDir': '/', 'StopSignal': 'SIGTERM'}
    for key in FROM_CONTAINER:
        value = values[key]
        if value in (None, '', [], {}):
            continue
        if key in defaults and value == defaults[key] and not image_config.get(key):
            continue
        body[key] = value
    if isinstance(changes, str):
        changes = [changes]
    return dockerfile.apply_changes(body, list(changes or ()))


def commit_skip(container, volume_targets=()):
    """``skip(relpath)`` for packing the container's upper dir: init files and what lies under mount targets."""
    from . import mountspec
    from .rootfs import INIT_FILES
    targets = set(_KERNEL_MOUNTS) | set(volume_targets)
    targets.update(m.target for m in mountspec.from_host_config(container.HostConfig or {}))
    prefixes = tuple(sorted(t.strip('/') + '/' for t in targets if t.strip('/')))
    init_files = frozenset(INIT_FILES)

    def skip(rel):
        rel = rel.strip('/')
        return rel in init_files or rel.startswith(prefixes)
    return skip


class _Plan:
    """One commit: everything decided before the upper dir is read."""

    def __init__(self, runtime, container, base, body, history, author, epoch, ref, skip):
        self.runtime, self.container, self.base = runtime, container, base
        self.body, self.history, self.author, self.epoch, self.ref = body, history, author, epoch, ref
        self.skip = skip

    @property
    def shown(self):
        return str(self.ref) if self.ref is not None else 'an unnamed image'

    def upper(self):
        from .rootfs import paths
        return paths(self.runtime.containers.dir(self.container.Id), []).upper

    def pack(self, out, compression='gzip'):
        """Pack the upper dir into ``out``; None when the container never got one (created, never started)."""
        from .. import layers
        upper = self.upper()
        if not os.path.isdir(upper):
            return None
        return layers.pack_tree(upper, out, compression=compression, level=layers.FAST_LEVEL, mtime_clamp=self.epoch,
                                overlay_whiteouts=True, skip=self.skip)

    def config(self, diff_id):
        """The image config with ``diff_id`` appended (nothing when the diff is empty)."""
        base = self.base.config
        out = {k: copy.deepcopy(base[k]) for k in _PLATFORM_KEYS if k in base}
        history = dict(self.history)
        diff_ids = list(self.base.diff_ids)
        if diff_id is None or diff_id == EMPTY_DIFF_ID:
            history['empty_layer'] = True
        else:
            diff_ids.append(diff_id)
        out.update({'created': history['created'], 'config': copy.deepcopy(self.body),
                    'rootfs': {'type': 'layers', 'diff_ids': diff_ids},
                    'history': copy.deepcopy(list(base.get('history') or [])) + [history]})
        if self.author:
            out['author'] = self.author
        return out

    def predict(self, before):
        """Check mode: would the commit change anything? A hashing pass decides when ``name`` exists."""
        from ..images import Outcome, _NullSink, _same_config
        if before is not None:
            try:
                digests = self.pack(_NullSink(), compression='none')
            except (Conflict, KernelError) as exc:
                if isinstance(exc, KernelError) and exc.details.get('errno') != errno.ENOENT:
                    raise
                digests = False         # the upper dir changed under the hashing: so would the image
            if digests is not False and _same_config(before.config, self.config(digests and digests.diff_id)):
                return Outcome(False, before, before.inspect(self.runtime.images.store))
        return Outcome(True, None, before.inspect(self.runtime.images.store) if before is not None else None,
                       ['commit %s as %s' % (self.container.Name, self.shown)])

    def write(self, before, pause):
        """Pack (paused), store layer, config and manifest, and name the image; call under Store.writing."""
        from ..fsutil import canonical_json
        from ..images import Outcome, _NullSink, _same_config
        images = self.runtime.images
        store = images.store
        writer = store.new_blob()
        try:
            with _paused(self.runtime, self.container, pause):
                if before is not None:      # a hashing pass first: an unchanged commit compresses nothing
                    probe = self.pack(_NullSink(), compression='none')
                    same = probe is None or probe.diff_id == EMPTY_DIFF_ID
                    if _same_config(before.config, self.config(None if same else probe.diff_id)):
                        writer.abort()
                        return Outcome(False, before, before.inspect(store))
                digests = self.pack(writer)
            empty = digests is None or digests.diff_id == EMPTY_DIFF_ID
            config = self.config(None if empty else digests.diff_id)
            if before is not None and _same_config(before.config, config):
                writer.abort()
                return Outcome(False, before, before.inspect(store))
            docker = self.base.manifest.media_type == mt.DOCKER_MANIFEST
            layer_descs = [copy.deepcopy(d) for d in self.base.manifest_doc.get('layers') or []]
            if empty:
                writer.abort()
            else:
                writer.commit(digests.digest)
                store.record_diff_size(digests.diff_id, digests.diff_size)
                media_type = mt.DOCKER_LAYER_GZIP if docker else digests.media_type
                layer_descs.append(Descriptor(media_type, digests.digest, digests.size).to_json())
        except BaseException:
            writer.abort()
            raise
        config_bytes = canonical_json(config)
        config_desc = Descriptor(mt.DOCKER_CONFIG if docker else mt.OCI_CONFIG, store.put_bytes(config_bytes),
                                 len(config_bytes))
        manifest_type = mt.DOCKER_MANIFEST if docker else mt.OCI_MANIFEST
        manifest_bytes = canonical_json({'schemaVersion': 2, 'mediaType': manifest_type,
                                         'config': config_desc.to_json(), 'layers': layer_descs})
        manifest = Descriptor(manifest_type, store.put_bytes(manifest_bytes), len(manifest_bytes))
        changed = images.set_names(manifest, [str(self.ref)] if self.ref is not None else [])
        image = images.find(str(self.ref)) if self.ref is not None else images.by_manifest(manifest.digest)
        if not changed:         # the very same image (unnamed, same SOURCE_DATE_EPOCH) is there already
            return Outcome(False, image, image.inspect(store))
        outcome = Outcome(True, image, before.inspect(store) if before is not None else None,
                          ['committed %s as %s (%s)' % (self.container.Name, self.shown, image.short_id)])
        outcome.displaced = before is not None and before.manifest.digest != manifest.digest
        return outcome


@contextlib.contextmanager
def _paused(runtime, container, pause):
    """Freeze a running container's cgroup for the block (thawed whatever happens); others as they are.

    A container paused on purpose (``State.Paused``) stays paused. A cgroup found frozen
    without that is what a commit killed while packing left behind: it is thawed afterwards.
    """
    if not pause or not container.State.Running or container.State.Paused:
        yield False
        return
    from . import cgroups
    what = 'cannot pause container %s for the commit' % container.Name
    hint = '; commit with pause=false to copy it while it runs'
    try:
        cgroup = cgroups.Cgroup.open(container.Id)
    except CtrError as exc:
        raise CtrError('%s: %s%s' % (what, exc.msg, hint)) from None
    if cgroup is None:
        if runtime.get(container.Id).State.Running:
            raise CtrError('%s: it has no cgroup%s' % (what, hint))
        yield False             # it stopped meanwhile: nothing to freeze
        return
    try:
        cgroup.freeze()
    except CtrError as exc:
        with contextlib.suppress(CtrError):
            cgroup.thaw()
        raise CtrError('%s: %s%s' % (what, exc.msg, hint)) from None
    try:
        yield True
    finally:
        cgroup.thaw()


def _reference(name):
    if name is None:
        return None
    from ..refs import Reference
    ref = Reference.parse(name)
    if ref.digest:
        raise InvalidArgument('cannot commit as "%s": the name must not carry a digest' % name, value=name)
    return ref


def _base_image(runtime, container):
    images = runtime.images
    image = images.find(container.Image) or images.by_manifest(container.ImageManifest)
    if image is None:
        raise NotFound('container %s uses image %s, which is no longer in the store'
                       % (container.Name, container.Image[7:19]), image=container.Image)
    return image


def _volume_targets(container, image_config):
    """The container's volume mount targets: its volume mounts and the image's VOLUMEs."""
    from . import volumemounts
    return sorted({spec.target for spec, _name in volumemounts.wanted(container, image_config)})


def _rfc3339(ts):
    from ..timestamps import rfc3339
    return rfc3339(ts)


__all__ = ['EMPTY_DIFF_ID', 'FROM_CONTAINER', 'commit', 'commit_skip', 'container_config']

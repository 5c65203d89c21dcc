# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's volumes: which it uses, making them at create, binding them at start, going at removal.

At create, each anonymous volume (``volumes: ["/path"]``, a ``mounts`` entry of type volume
without source, or a ``VOLUME`` of the image no mount covers) gets a random name, kept in the
container's record (``AnonymousVolumes``: target -> name), and every volume the container
uses is made if missing. At start each is prepared (its tmpfs or bind mounted, for those
options), filled from the image when new and empty (Docker's copy-up, unless ``nocopy``),
and bound on its target like any bind mount.
"""

from __future__ import annotations

import os

from .. import volumes as vol
from . import mountspec


def image_volumes(image_config):
    """The image's ``VOLUME`` paths, normalised, sorted; one Docker would refuse (``/``, inside /proc) is an error."""
    paths = ((image_config or {}).get('Volumes') or {})
    return sorted({mountspec.parse_volume(p).target for p in paths if isinstance(p, str)})


def wanted(container, image_config=None):
    """``[(spec, name or '')]``: the container's volume mounts, then the image's VOLUMEs no mount covers."""
    specs = mountspec.from_host_config(container.HostConfig)
    out = [(s, s.source) for s in specs if s.type == mountspec.VOLUME]
    covered = {s.target for s in specs}
    for path in image_volumes(image_config):
        if path not in covered:
            out.append((mountspec.MountSpec(mountspec.VOLUME, '', path, origin='image'), ''))
    return out


def assign(container, image_config):
    """Name the anonymous volumes of a new container record (in place)."""
    names = dict(container.AnonymousVolumes or {})
    for spec, name in wanted(container, image_config):
        if not name and spec.target not in names:
            names[spec.target] = vol.new_anonymous_name()
    container.AnonymousVolumes = names


def name_of(container, spec):
    return spec.source or (container.AnonymousVolumes or {}).get(spec.target, '')


def ensure(root, container, image_config):
    """Make every volume the container uses that does not exist yet (named ones included, as Docker does)."""
    store = vol.VolumeStore(root)
    for spec, _name in wanted(container, image_config):
        name = name_of(container, spec)
        if name:
            store.create(name, anonymous=not spec.source)


def bind_specs(root, container, image_config, merged):
    """The container's volumes as bind :class:`~.mountspec.MountSpec` (prepared, copied up where new and empty)."""
    from . import security
    from .containers import ContainerStore
    store = vol.VolumeStore(root)
    others = [c for c in ContainerStore(root).list() if c.Id != container.Id and c.State.Running]
    out = []
    for spec, _name in wanted(container, image_config):
        name = name_of(container, spec)
        store.create(name, anonymous=not spec.source)          # removed meanwhile (force): a new, empty one
        data = store.prepare(name)
        shared = any(name in vol.volume_names(c) for c in others)     # a running container could race the copy
        if not spec.no_copy and not shared and not os.listdir(data):
            root_fd = os.open(merged, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                try:
                    src = security.open_in_root(root_fd, spec.target)
                except (FileNotFoundError, NotADirectoryError):
                    src = None
                if src is not None:
                    try:
                        fd = os.open('/proc/self/fd/%d' % src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    except NotADirectoryError:
                        fd = None
                    finally:
                        os.close(src)
                    if fd is not None:
                        try:
                            vol.copy_up(fd, data)
                        finally:
                            os.close(fd)
            finally:
                os.close(root_fd)
        out.append(mountspec.MountSpec(mountspec.BIND, data, spec.target, read_only=spec.read_only,
                                       origin=spec.origin if spec.origin != 'image' else mountspec.ORIGIN_VOLUMES,
                                       mode=spec.mode))
    return out


def inspect(root, container, image_config):
    """Docker's ``Mounts`` entries of the container's volumes."""
    store = vol.VolumeStore(root)
    specs = [spec for spec, _name in wanted(container, image_config)]
    return mountspec.inspect_mounts(specs, lambda s: (name_of(container, s), store.mountpoint(name_of(container, s))))


def remove_anonymous(root, container, others):
    """Remove the container's anonymous volumes (those no other container record uses)."""
    store = vol.VolumeStore(root)
    for name in sorted(set((container.AnonymousVolumes or {}).values())):
        if not any(name in vol.volume_names(o) for o in others):
            store.remove(name)


__all__ = ['assign', 'bind_specs', 'ensure', 'image_volumes', 'inspect', 'remove_anonymous', 'wanted']

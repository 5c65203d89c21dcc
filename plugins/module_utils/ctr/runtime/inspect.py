# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container in Docker's ``container inspect`` shape: State, Config, HostConfig, GraphDriver, Mounts,
NetworkSettings, read back from the container's record and directory."""

from __future__ import annotations

import os

from .. import fsutil


def inspect(runtime, container):
    """Docker's ``container inspect`` shape."""
    directory = runtime.containers.dir(container.Id)
    from ..store import chain_ids
    from . import mountspec, rootfs, volumemounts
    image = runtime.images.find(container.Image) or runtime.images.by_manifest(container.ImageManifest)
    layer_dirs = [runtime.images.store.layer_dir(c) for c in chain_ids(image.diff_ids)] if image else []
    state = {k: v for k, v in container.State.__dict__.items() if not k.startswith('Monitor')}
    state.pop('RestartCount', None)
    return {
        'Id': container.Id, 'Name': '/' + container.Name, 'Created': container.Created,
        'Path': container.Path, 'Args': list(container.Args), 'State': state,
        'Image': container.Image, 'RestartCount': container.State.RestartCount,
        'Config': container.Config, 'HostConfig': container.HostConfig,
        'GraphDriver': rootfs.paths(directory, layer_dirs).graph_driver(),
        'Mounts': mountspec.inspect_mounts([m for m in mountspec.from_host_config(container.HostConfig)
                                            if m.type != mountspec.VOLUME]) + volumemounts.inspect(
            runtime.containers.root, container, (image.config.get('config') or {}) if image else {}),
        'LogPath': runtime.log_path(container), 'Platform': 'linux',
        'NetworkSettings': _network_settings(container, directory),
    }


def _network_settings(container, directory):
    """Docker's ``NetworkSettings``: addresses while attached, published ports as assigned."""
    data = fsutil.read_json(os.path.join(directory, 'network.json')) or {}
    networks = data.get('Networks') or {}
    first = networks.get((data.get('Order') or [None])[0]) or {}
    ports = {}
    for key in sorted((container.HostConfig.get('PortBindings') or {})):
        ports[key] = None
    for p in data.get('Published') or []:
        key = '%d/%s' % (p['ContainerPort'], p['Proto'])
        ports[key] = (ports.get(key) or []) + [{'HostIp': p['HostIp'] or '0.0.0.0', 'HostPort': str(p['HostPort'])}]
    out = {'Networks': networks, 'Ports': ports, 'IPAddress': first.get('IPAddress', ''),
           'IPPrefixLen': first.get('IPPrefixLen', 0), 'Gateway': first.get('Gateway', ''),
           'MacAddress': first.get('MacAddress', ''), 'SandboxKey': os.path.join(directory, 'netns') if data else ''}
    mode = container.HostConfig.get('NetworkMode') or ''
    if mode.startswith('container:'):
        out['JoinedContainer'] = mode[len('container:'):]
    return out

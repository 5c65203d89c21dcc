# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container records: identity, configuration and state under ``<root>/containers/<id>/``.

::

    <root>/containers/<id>/config.json   what the container is (Docker's Config and HostConfig shapes)
    <root>/containers/<id>/state.json    what it is doing (status, pids, exit code, times)

Both files are written atomically. Names are unique: creating or renaming a
container happens under ``locks/containers.lock``, and a name is looked up
from the records on disk, never from a cache. The configuration of a
container never changes after creation (Docker's rule; a change means a new
container), so idempotence compares the desired configuration with
``config.json`` as read back.
"""

from __future__ import annotations

import os
import re
import time

from .. import fsutil
from ..errors import Conflict, CorruptContent, CtrError, InvalidArgument, KernelError, NotFound
from ..fsutil import resolve_root
from ..records import asdict, field, field_names, record
from ..regex import lazy
from ..timestamps import rfc3339

_NAME_RE = lazy(r'^[a-zA-Z0-9][a-zA-Z0-9_.-]*$')
_ID_RE = lazy(r'^[0-9a-f]{64}$')
STATUSES = ('created', 'running', 'paused', 'restarting', 'exited', 'dead')


def validate_name(name):
    """Docker's rule: ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``, at most 253 characters (a leading ``/`` is dropped)."""
    text = name[1:] if isinstance(name, str) and name.startswith('/') else name
    if not isinstance(text, str) or not _NAME_RE.match(text) or len(text) > 253:
        raise InvalidArgument('name "%s" is not a valid container name: use letters, digits and _ . - '
                              '(starting with a letter or digit)' % (name,), value=name)
    return text


def new_id():
    return os.urandom(32).hex()


@record
class State:
    """Docker's ``State`` object, as the monitor and the runtime keep it."""

    Status: str = 'created'
    Running: bool = False
    Paused: bool = False
    Restarting: bool = False
    OOMKilled: bool = False
    Dead: bool = False
    Pid: int = 0
    MonitorPid: int = 0
    MonitorStart: int = 0       # the monitor's start time (clock ticks since boot): a PID reused is not it
    PidStart: int = 0           # the same for the container's PID 1
    ExitCode: int = 0
    Error: str = ''
    StartedAt: str = '0001-01-01T00:00:00Z'
    FinishedAt: str = '0001-01-01T00:00:00Z'
    RestartCount: int = 0

    @classmethod
    def from_json(cls, obj):
        known = {k: v for k, v in (obj or {}).items() if k in field_names(cls)}
        return cls(**known)


@record
class Container:
    """A container record: what ``docker inspect`` shows, less what is derived at read time."""

    Id: str
    Name: str
    Created: str
    Image: str                  # image ID (config digest)
    ImageName: str              # the reference the user gave
    Path: str
    Args: list
    Config: dict                # Docker's Config: Hostname, User, Env, Cmd, Entrypoint, WorkingDir, Labels, ...
    HostConfig: dict            # Docker's HostConfig: Binds, Mounts, Tmpfs, NetworkMode, RestartPolicy, ...
    State: State = field(default_factory=State)
    ImageManifest: str = ''     # the manifest the container was made from: a gc root while the container exists
    NetworkingConfig: dict = field(default_factory=dict)    # Docker's: EndpointsConfig {network: {IPAMConfig, Aliases}}
    AnonymousVolumes: dict = field(default_factory=dict)    # mount target -> the anonymous volume's name

    def config_json(self):
        out = asdict(self)
        out.pop('State')
        return out


class ContainerStore:
    """The container records of one store root."""

    def __init__(self, root=None):
        self.root = resolve_root(root)
        self.base = os.path.join(self.root, 'containers')
        self.locks_dir = os.path.join(self.root, 'locks')

    def dir(self, container_id):
        if not _ID_RE.match(container_id or ''):
            raise CorruptContent('"%s" is not a container ID' % (container_id,))
        return os.path.join(self.base, container_id)

    def lock(self):
        """Serialises creation, renaming and removal (name uniqueness)."""
        return fsutil.flocked(os.path.join(self.locks_dir, 'containers.lock'))

    # -- reading -------------------------------------------------------------

    def ids(self):
        try:
            names = os.listdir(self.base)
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            raise InvalidArgument('root "%s" is not a directory' % self.root)
        return sorted(n for n in names if _ID_RE.match(n) and os.path.isfile(os.path.join(self.base, n, 'config.json')))

    def load(self, container_id):
        directory = self.dir(container_id)
        try:
            config = fsutil.read_json(os.path.join(directory, 'config.json'))
            state = fsutil.read_json(os.path.join(directory, 'state.json'), {})
        except ValueError as exc:
            raise CorruptContent('container %s has a damaged record: %s' % (container_id[:12], exc))
        except OSError as exc:
            raise KernelError.from_oserror('read container record', directory, exc)
        if not isinstance(config, dict):
            raise NotFound('container %s does not exist' % container_id[:12])
        try:
            fields = {k: config[k] for k in ('Id', 'Name', 'Created', 'Image', 'ImageName', 'Path', 'Args',
                                             'Config', 'HostConfig')}
            fields['ImageManifest'] = config.get('ImageManifest', '')
            fields['NetworkingConfig'] = config.get('NetworkingConfig') or {}
            fields['AnonymousVolumes'] = config.get('AnonymousVolumes') or {}
        except KeyError as exc:
            raise CorruptContent('container %s has a damaged record: %s is missing' % (container_id[:12], exc))
        return Container(State=State.from_json(state), **fields)

    def list(self):
        out = []
        for container_id in self.ids():
            try:
                out.append(self.load(container_id))
            except NotFound:
                continue        # removed meanwhile
        return out

    def find(self, text, prefixes=True):
        """The container ``text`` names: its name, its full ID or (``prefixes``) a unique ID prefix; or None.

        Modules pass ``prefixes=False``: a ``name`` like ``cafe`` must never pick another container
        whose ID happens to start with it.
        """
        text = (text or '').strip().lstrip('/')
        if not text:
            raise InvalidArgument('an empty string is not a container name or ID')
        containers = self.list()
        hit = next((c for c in containers if c.Name == text), None)
        if hit is None and not prefixes:
            hit = next((c for c in containers if c.Id == text), None)
        elif hit is None and re.match(r'^[0-9a-f]{1,64}$', text):
            matches = [c for c in containers if c.Id.startswith(text)]
            if len(matches) > 1:
                raise InvalidArgument('container ID prefix "%s" is ambiguous: it matches %d containers'
                                      % (text, len(matches)))
            hit = matches[0] if matches else None
        return hit

    def get(self, text):
        container = self.find(text)
        if container is None:
            raise NotFound('container "%s" does not exist in %s' % (text, self.root), container=text)
        return container

    # -- writing -------------------------------------------------------------

    def create(self, container):
        """Write a new record; the name must be free. Returns the container directory."""
        validate_name(container.Name)
        fsutil.makedirs(self.base, 0o700)
        with self.lock():
            taken = next((c for c in self.list() if c.Name == container.Name), None)
            if taken is not None:
                raise Conflict('name "%s" is already used by container %s' % (container.Name, taken.Id[:12]),
                               container=container.Name)
            self._sweep()
            directory = self.dir(container.Id)
            tmp = os.path.join(self.base, fsutil.TMP_PREFIX + container.Id)     # whole or not at all
            os.mkdir(tmp, 0o700)
            fsutil.atomic_write_json(os.path.join(tmp, 'state.json'), asdict(container.State), 0o600, pretty=True,
                                     durable=False)
            fsutil.atomic_write_json(os.path.join(tmp, 'config.json'), container.config_json(), 0o600,
                                     pretty=True)
            os.rename(tmp, directory)
            fsutil.fsync_dir(self.base)
        return directory

    def _sweep(self):
        """Under the lock: what a create or a removal killed half-way left (a temp dir, or a container
        directory whose config.json is gone); the tree removal never enters a mount point."""
        for name in os.listdir(self.base):
            path = os.path.join(self.base, name)
            if name.startswith(fsutil.TMP_PREFIX) or (_ID_RE.match(name) and
                                                      not os.path.exists(os.path.join(path, 'config.json'))):
                try:
                    fsutil.remove_tree(path)
                except (OSError, CtrError):
                    pass

    def save_state(self, container):
        fsutil.atomic_write_json(os.path.join(self.dir(container.Id), 'state.json'), asdict(container.State),
                                 0o600, pretty=True)

    def remove_record(self, container):
        """Forget the container; its rootfs must be unmounted already (never delete through a mount)."""
        directory = self.dir(container.Id)
        with self.lock():
            for name in os.listdir(directory) if os.path.isdir(directory) else ():
                if os.path.ismount(os.path.join(directory, name)):
                    raise Conflict('container %s still has %s mounted; stop it first'
                                   % (container.Id[:12], os.path.join(directory, name)))
            try:
                os.unlink(os.path.join(directory, 'config.json'))   # from here on it is not listed
            except FileNotFoundError:
                pass
            fsutil.remove_tree(directory)


def now():
    return rfc3339(time.time())


def short(container_id):
    return container_id[:12]


__all__ = ['Container', 'ContainerStore', 'State', 'STATUSES', 'new_id', 'now', 'short', 'validate_name']

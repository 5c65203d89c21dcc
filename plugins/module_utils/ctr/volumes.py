# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named and anonymous volumes: storage that outlives containers, under ``<root>/volumes/``.

::

    <root>/volumes/<name>/volume.json   Docker's fields: Name, Driver, Labels, Options, CreatedAt
    <root>/volumes/<name>/_data         what containers see (the Mountpoint)
    <root>/locks/volumes.lock           held around every create and remove

The ``local`` driver's options are Docker's: none (a directory), ``type: tmpfs`` with
``o`` (``size=64m,mode=1777,uid=1000``), or ``type: none`` with ``o: bind`` and ``device``
(a host directory bound at ``_data``). A tmpfs or bind is mounted on ``_data`` the first
time a container needs it (and again after a reboot), and unmounted when the volume goes.

An anonymous volume has a random 64-hex name and is removed with its container (unless
the container's removal keeps volumes); a named one is never removed but by name. A
volume a container record refers to is in use: removing it needs ``force``.
"""

from __future__ import annotations

import os
import shutil
import stat

from . import fsutil, libc
from .errors import Conflict, CorruptContent, InvalidArgument, KernelError, NotFound
from .regex import lazy
from .timestamps import now

DRIVERS = ('local',)
NAME_RE = lazy(r'[A-Za-z0-9][A-Za-z0-9_.-]+\Z')
_OPTION_KEYS = ('type', 'o', 'device')
_TMPFS_KEYS = ('size', 'mode', 'uid', 'gid', 'nr_inodes', 'nr_blocks')


def validate_name(name, option='name'):
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 255:
        raise InvalidArgument('volume name "%s" is invalid: use letters, digits and _ . - (two or more, starting '
                              'with a letter or digit)' % (name,), option=option, value=name)
    return name


def new_anonymous_name():
    return os.urandom(32).hex()


def normalize_options(options):
    """The local driver's options, validated: ``{}``, tmpfs with ``o``, or a bind of ``device``."""
    out = {}
    for key, value in (options or {}).items():
        if key not in _OPTION_KEYS:
            raise InvalidArgument('driver_options: unknown option "%s" (the local driver knows type, o and device)'
                                  % key, option='driver_options', value=key)
        out[key] = str(value)
    kind = out.get('type')
    if not out:
        return out
    if kind == 'tmpfs':
        if out.get('device') not in (None, '', 'tmpfs'):
            raise InvalidArgument('driver_options: a tmpfs volume takes no device', option='driver_options')
        for opt in filter(None, out.get('o', '').split(',')):
            key = opt.partition('=')[0]
            if key not in _TMPFS_KEYS and opt not in ('ro', 'rw', 'noexec'):
                raise InvalidArgument('driver_options: tmpfs option "%s" is not one of %s'
                                      % (opt, ', '.join(_TMPFS_KEYS)), option='driver_options', value=opt)
    elif kind == 'none':
        parts = [p for p in out.get('o', '').split(',') if p]
        if not {'bind', 'rbind'} & set(parts):
            raise InvalidArgument('driver_options: type none needs o: bind (a bind of device)', option='driver_options')
        unknown = sorted(set(parts) - {'bind', 'rbind', 'ro', 'rw', 'noexec'})
        if unknown:
            raise InvalidArgument('driver_options: bind option "%s" is not one of bind, rbind, ro, rw, noexec'
                                  % unknown[0], option='driver_options', value=unknown[0])
        if not out.get('device', '').startswith('/'):
            raise InvalidArgument('driver_options: a bind volume needs device, an absolute host path',
                                  option='driver_options')
        if not os.path.isdir(out['device']):
            raise InvalidArgument('driver_options: device "%s" is not a directory of the host' % out['device'],
                                  option='driver_options', value=out['device'])
    else:
        raise InvalidArgument('driver_options: type "%s" is not supported (tmpfs, or none with o: bind)' % (kind,),
                              option='driver_options', value=kind)
    return out


class Volume:
    """One volume's record."""

    def __init__(self, name, driver='local', labels=None, options=None, created=None, anonymous=False):
        self.name, self.driver = name, driver
        self.labels, self.options = dict(labels or {}), dict(options or {})
        self.created, self.anonymous = created or now(), bool(anonymous)

    def to_json(self):
        return {'Name': self.name, 'Driver': self.driver, 'Labels': self.labels, 'Options': self.options,
                'CreatedAt': self.created, 'Anonymous': self.anonymous}

    @classmethod
    def from_json(cls, obj, path):
        try:
            return cls(obj['Name'], obj.get('Driver', 'local'), obj.get('Labels'), obj.get('Options'),
                       obj.get('CreatedAt'), obj.get('Anonymous', False))
        except (KeyError, TypeError) as exc:
            raise CorruptContent('volume record %s is damaged: %s' % (path, exc))

    def settings(self):
        return {'driver': self.driver, 'driver_options': self.options, 'labels': self.labels}


class VolumeStore:
    """The volumes of one store root."""

    def __init__(self, root=None):
        self.root = fsutil.resolve_root(root)
        self.base = os.path.join(self.root, 'volumes')
        self.locks_dir = os.path.join(self.root, 'locks')

    def lock(self):
        return fsutil.flocked(os.path.join(self.locks_dir, 'volumes.lock'))

    def dir(self, name):
        return os.path.join(self.base, validate_name(name))

    def mountpoint(self, name):
        return os.path.join(self.dir(name), '_data')

    def find(self, name):
        if not isinstance(name, str) or not NAME_RE.match(name):
            return None
        path = os.path.join(self.base, name, 'volume.json')
        obj = fsutil.read_json(path)
        return Volume.from_json(obj, path) if obj is not None else None

    def get(self, name):
        volume = self.find(name)
        if volume is None:
            raise NotFound('volume "%s" does not exist' % (name,), volume=name)
        return volume

    def list(self):
        try:
            names = sorted(os.listdir(self.base))
        except FileNotFoundError:
            return []
        return [v for v in (self.find(n) for n in names) if v is not None]

    def create(self, name, driver='local', driver_options=None, labels=None, anonymous=False):
        """Make the volume unless it exists; returns ``(volume, created)``."""
        validate_name(name)
        if driver not in DRIVERS:
            raise InvalidArgument('driver "%s" is not supported (only local)' % (driver,), option='driver')
        options = normalize_options(driver_options)
        for key, value in (labels or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArgument('labels must map strings to strings (%r: %r)' % (key, value), option='labels')
        with self.lock():
            existing = self.find(name)
            if existing is not None:
                return existing, False
            volume = Volume(name, driver, labels, options, anonymous=anonymous)
            directory = self.dir(name)
            fsutil.makedirs(self.base, 0o700)
            tmp = os.path.join(self.base, '.tmp-%s-%s' % (name, os.urandom(4).hex()))   # never a volume name
            os.mkdir(tmp, 0o700)
            os.mkdir(os.path.join(tmp, '_data'), 0o755)
            fsutil.atomic_write_json(os.path.join(tmp, 'volume.json'), volume.to_json(), 0o600, pretty=True)
            os.rename(tmp, directory)           # seen whole or not at all
        return volume, True

    def users(self, name, containers):
        """The containers (records) whose mounts use volume ``name``."""
        return [c for c in containers if name in volume_names(c)]

    def remove(self, name, containers=(), force=False):
        """Remove a volume; in use by one of ``containers`` it fails unless ``force``. Returns whether it existed.

        A volume a running container has mounted is never removed, ``force`` or not (as Docker).
        """
        with self.lock():
            volume = self.find(name)
            if volume is None:
                return False
            users = self.users(name, containers)
            running = [c for c in users if c.State.Running]
            if running:
                raise Conflict('volume %s is mounted by running container(s) %s: stop them first'
                               % (name, ', '.join(sorted(c.Name for c in running))), volume=name)
            if users and not force:
                raise Conflict('volume %s is in use by container(s) %s: remove them first, or use force'
                               % (name, ', '.join(sorted(c.Name for c in users))), volume=name)
            self._unmount(name)
            directory = self.dir(name)
            gone = os.path.join(self.base, '.gone-%s-%s' % (name, os.urandom(4).hex()))
            os.rename(directory, gone)          # not listed from here on, even if the removal is cut short
            fsutil.remove_tree(gone)
        return True

    # -- on use --------------------------------------------------------------------------------------

    def prepare(self, name):
        """The volume's ``_data``, with its tmpfs or bind mounted there when its options ask for one."""
        volume = self.get(name)
        data = self.mountpoint(name)
        kind = volume.options.get('type')
        if not kind or fsutil.is_mount_point(data):
            return data
        opts = [o for o in volume.options.get('o', '').split(',') if o]
        flags = (libc.MS_RDONLY if 'ro' in opts else 0) | (libc.MS_NOEXEC if 'noexec' in opts else 0)
        try:
            if kind == 'tmpfs':
                data_opts = ','.join(o for o in opts if '=' in o)
                libc.mount('tmpfs', data, 'tmpfs', flags | libc.MS_NOSUID | libc.MS_NODEV, data_opts or None)
            else:
                recursive = libc.MS_REC if 'rbind' in opts else 0
                libc.mount(volume.options['device'], data, None, libc.MS_BIND | recursive)
                if flags:       # a bind takes its flags from a remount
                    libc.mount(None, data, None, libc.MS_REMOUNT | libc.MS_BIND | libc.MS_NOSUID | flags)
        except OSError as exc:
            raise KernelError.from_oserror('mount volume %s on' % name, data, exc)
        return data

    def _unmount(self, name):
        """Take the volume's tmpfs or bind off ``_data`` (all of them, if stacked); never delete through one."""
        data = self.mountpoint(name)
        for _attempt in range(8):
            if not fsutil.is_mount_point(data):
                return
            try:
                libc.umount(data, libc.MNT_DETACH)
            except OSError as exc:
                raise KernelError.from_oserror('umount', data, exc)
        raise Conflict('volume %s: %s is still a mount point; left as it is' % (name, data))

    def inspect(self, volume):
        """Docker's ``volume inspect`` shape."""
        return {'Name': volume.name, 'Driver': volume.driver, 'Mountpoint': self.mountpoint(volume.name),
                'Labels': volume.labels, 'Options': volume.options or None, 'Scope': 'local',
                'CreatedAt': volume.created}


def volume_names(container):
    """Every volume a container record uses: named ones in its mounts, and its anonymous ones."""
    from .runtime import mountspec
    names = set((container.AnonymousVolumes or {}).values())
    for spec in mountspec.from_host_config(container.HostConfig):
        if spec.type == mountspec.VOLUME and spec.source:
            names.add(spec.source)
    return names


def copy_up(source_dir_fd, dest):
    """Docker's copy-up: what the image has at a volume's mount point, into the new, empty volume ``dest``.

    ``source_dir_fd`` is a descriptor of that directory inside the container's rootfs (resolved
    safely by the caller; no container runs on it yet). Symlinks are copied as symlinks, never
    followed; FIFOs and sockets are made again; device nodes are left out (a volume is no place
    for them, and a host-side node would outlive every device rule); modes, owners and times
    are kept. The caller copies only into a volume that no running container has mounted.
    """
    src = '/proc/self/fd/%d' % source_dir_fd
    st = os.fstat(source_dir_fd)
    for entry in os.listdir(src):
        s, d = os.path.join(src, entry), os.path.join(dest, entry)
        if os.path.isdir(s) and not os.path.islink(s):
            shutil.copytree(s, d, symlinks=True, copy_function=_copy_entry)
        else:
            _copy_entry(s, d)
    for directory, dirs, files in os.walk(dest):
        rel = os.path.relpath(directory, dest)
        for entry in dirs + files:
            path = os.path.join(directory, entry)
            theirs = os.lstat(os.path.join(src, rel, entry) if rel != '.' else os.path.join(src, entry))
            os.lchown(path, theirs.st_uid, theirs.st_gid)
            if not stat.S_ISLNK(theirs.st_mode):
                os.chmod(path, stat.S_IMODE(theirs.st_mode))       # chown cleared set-id bits
    os.chown(dest, st.st_uid, st.st_gid)
    os.chmod(dest, stat.S_IMODE(st.st_mode))


def _copy_entry(src, dst):
    st = os.lstat(src)
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        os.mknod(dst, stat.S_IFMT(st.st_mode) | stat.S_IMODE(st.st_mode))
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return
    else:
        shutil.copy2(src, dst, follow_symlinks=False)


__all__ = ['Volume', 'VolumeStore', 'copy_up', 'new_anonymous_name', 'normalize_options', 'validate_name',
           'volume_names']

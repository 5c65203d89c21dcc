# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mounting a container's binds and tmpfs (:class:`~.mountspec.MountSpec`), inside its mount namespace.

:func:`apply` runs in the start sequence, inside the container's own mount namespace,
after the kernel filesystems and before ``pivot_root``. Mounts go on in order of target
depth (``/a`` before ``/a/b``). A target is resolved one component at a time inside the
rootfs, which is untrusted: a symlink the image holds (``/data -> /etc`` or ``-> ../..``)
is followed as if the rootfs were ``/``, missing components are created there, and the
mount is made on ``/proc/self/fd/N`` of what was found, so it never lands outside.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import libc
from ..errors import CtrError, KernelError
from .mountspec import BIND, ORIGIN_VOLUMES, PROPAGATIONS, TMPFS_DEFAULT_FLAGS, TMPFS_FLAGS
from .security import open_in_root


# -- mounting, inside the container's mount namespace --------------------------------------------------

_O_PATH = getattr(os, 'O_PATH', 0o10000000)
# statvfs f_flag bit -> the MS_ flag a read-only bind remount must repeat to keep it
_KEPT_FLAGS = ((0x2, libc.MS_NOSUID), (0x4, libc.MS_NODEV), (0x8, libc.MS_NOEXEC), (0x400, libc.MS_NOATIME),
               (0x800, libc.MS_NODIRATIME), (0x1000, libc.MS_RELATIME))


def sort_for_mounting(specs):
    """Shallow targets first (``/a`` before ``/a/b``), otherwise in the order given."""
    return sorted(specs, key=lambda s: s.target.rstrip('/').count('/'))


def apply(specs, rootfs):
    """Mount ``specs`` inside ``rootfs`` (a path); call in the container's own mount namespace before pivot_root.

    Raises :class:`KernelError` (or :class:`CtrError`) naming the mount that failed.
    """
    if not specs:
        return
    try:
        root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError.from_oserror('open rootfs', rootfs, exc) from None
    try:
        for spec in sort_for_mounting(specs):
            if spec.type == BIND:
                _bind(spec, root_fd)
            else:
                _tmpfs(spec, root_fd)
    finally:
        os.close(root_fd)


def _fd_path(fd):
    return '/proc/self/fd/%d' % fd


def _bind(spec, root_fd):
    what = 'bind mount "%s" on' % spec.source
    src_fd = _open_source(spec)
    try:
        directory = stat.S_ISDIR(os.fstat(src_fd).st_mode)
        target_fd = _open_mount_point(root_fd, spec, directory)
        try:
            under = _mount_id(target_fd)
            _mount(what, spec.target, _fd_path(src_fd), _fd_path(target_fd), None, libc.MS_BIND | libc.MS_REC)
        finally:
            os.close(target_fd)
    finally:
        os.close(src_fd)
    fd = _reopen_mounted(root_fd, spec, under)
    try:
        if spec.read_only:
            flags = os.statvfs(_fd_path(fd)).f_flag
            kept = 0
            for st_bit, ms_flag in _KEPT_FLAGS:
                kept |= ms_flag if flags & st_bit else 0
            _mount('remount read-only', spec.target, None, _fd_path(fd), None,
                   libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY | kept)
            try:            # the mounts under it too, as Docker's read-only binds are (where the kernel can)
                libc.mount_setattr_rdonly(fd)
            except OSError as exc:
                if exc.errno not in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
                    raise KernelError.from_oserror('make read-only, with the mounts below it,', spec.target, exc)
        _mount('set propagation %s of' % spec.propagation, spec.target, None, _fd_path(fd), None,
               PROPAGATIONS[spec.propagation])
    finally:
        os.close(fd)


def _open_source(spec):
    """An O_PATH descriptor of the bind source (a host path: symlinks followed); ``volumes`` creates a missing dir."""
    try:
        return os.open(spec.source, _O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        if spec.origin != ORIGIN_VOLUMES:
            raise CtrError('%s: bind source path "%s" of the mount on "%s" does not exist'
                           % (spec.origin, spec.source, spec.target), path=spec.source) from None
    except OSError as exc:
        raise KernelError.from_oserror('open bind source', spec.source, exc) from None
    try:
        os.makedirs(spec.source, 0o755, exist_ok=True)          # as docker run -v does
        return os.open(spec.source, _O_PATH | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError.from_oserror('create bind source', spec.source, exc) from None


def _tmpfs(spec, root_fd):
    flags = TMPFS_DEFAULT_FLAGS | (libc.MS_RDONLY if spec.read_only else 0)
    data = []
    for opt in spec.options:
        if opt in TMPFS_FLAGS:
            add, remove = TMPFS_FLAGS[opt]
            flags = (flags & ~remove) | add
        else:
            data.append(opt)
    fd = _open_mount_point(root_fd, spec, True)
    try:
        _mount('mount tmpfs on', spec.target, 'tmpfs', _fd_path(fd), 'tmpfs', flags, ','.join(data) or None)
    finally:
        os.close(fd)


def _mount(what, shown, source, target, fstype, flags, data=None):
    try:
        libc.mount(source, target, fstype, flags, data)
    except OSError as exc:
        raise KernelError.from_oserror(what, shown, exc) from None


def _open_mount_point(root_fd, spec, directory):
    """The target inside the rootfs, created if missing, checked to be the kind the source needs."""
    try:
        fd = open_target(root_fd, spec.target, directory)
    except OSError as exc:
        raise KernelError.from_oserror('create mount point', spec.target, exc) from None
    st, root = os.fstat(fd), os.fstat(root_fd)
    problem = None
    if (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino):
        problem = 'resolves to the root of the container (through a symlink of the image)'
    elif directory and not stat.S_ISDIR(st.st_mode):
        problem = 'is not a directory in the image, but the mount needs one'
    elif not directory and stat.S_ISDIR(st.st_mode):
        problem = 'is a directory in the image, but the bind source "%s" is a file' % spec.source
    if problem:
        os.close(fd)
        raise CtrError('%s: mount target "%s" %s' % (spec.origin, spec.target, problem), path=spec.target)
    return fd


def _reopen_mounted(root_fd, spec, under):
    """The mount just made on the target (not the directory beneath it)."""
    try:
        fd = open_in_root(root_fd, spec.target)
    except OSError as exc:
        raise KernelError.from_oserror('reopen mount point', spec.target, exc) from None
    if under is not None and _mount_id(fd) == under:
        os.close(fd)
        raise CtrError('%s: the bind mount on "%s" is not where it was made (the path changed under us)'
                       % (spec.origin, spec.target), path=spec.target)
    return fd


def _mount_id(fd):
    """The mount ID of a descriptor (``mnt_id`` of /proc/self/fdinfo), or None if the kernel does not say."""
    try:
        with open('/proc/self/fdinfo/%d' % fd, 'rb') as f:
            for line in f:
                if line.startswith(b'mnt_id:'):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def open_target(root_fd, path, directory):
    """An ``O_PATH`` descriptor of ``path`` inside ``root_fd``, made if missing (a mount point).

    :func:`security.open_in_root`'s walk, creating what is missing: directories, and for the
    last component an empty file when ``directory`` is false. Raises OSError. The caller closes it.
    """
    return open_in_root(root_fd, path,
                        create=lambda parent, name, more: _create(parent, name, directory or more))


def _create(parent_fd, name, directory):
    """mkdirat or an empty file, O_EXCL: neither follows a symlink; one that appeared meanwhile is fine."""
    try:
        if directory:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        else:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=parent_fd))
    except FileExistsError:
        pass


__all__ = ['apply', 'open_target', 'sort_for_mounting']

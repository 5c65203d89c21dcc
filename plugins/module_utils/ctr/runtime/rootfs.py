# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's root filesystem: one overlay mount.

::

    lowerdir = <container>/init : <top image layer> : ... : <bottom image layer>
    upperdir = <container>/upper        workdir = <container>/work
    mounted at <container>/merged       (in the host's mount namespace, as Docker does)

The init layer holds ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf``,
and the mount points ``/proc``, ``/sys`` and ``/dev`` (as Docker's init layer
does); being a lower layer, they never show up in the container's changes (what
a commit or a build step packs) unless the container itself edits them. The overlay features that
make an upper dir unreadable as a plain diff (``redirect_dir``, ``metacopy``,
``index``) are switched off where the kernel knows them.
"""

from __future__ import annotations

import os

from .. import fsutil, libc
from ..errors import CtrError, KernelError
from ..records import record

INIT_FILES = ('etc/hostname', 'etc/hosts', 'etc/resolv.conf')
INIT_DIRS = ('proc', 'sys', 'dev')    # mount points made here, so an image without them gets no upper-dir entries
_MOUNT_DATA_MAX = 4095          # the kernel copies at most one page of mount options
_OFF_FEATURES = ('redirect_dir', 'metacopy', 'index')


@record(frozen=True)
class RootfsPaths:
    init: str
    upper: str
    work: str
    merged: str
    lower: list[str]            # top first, as overlayfs wants them: init, then image layers top to bottom

    def graph_driver(self):
        """Docker's ``GraphDriver`` of a container."""
        return {'Name': 'overlay', 'Data': {'LowerDir': ':'.join(self.lower), 'UpperDir': self.upper,
                                            'WorkDir': self.work, 'MergedDir': self.merged}}


def paths(container_dir, layer_dirs):
    """The rootfs paths of a container over image layer dirs given lowest first."""
    init = os.path.join(container_dir, 'init')
    return RootfsPaths(init=init, upper=os.path.join(container_dir, 'upper'), work=os.path.join(container_dir, 'work'),
                       merged=os.path.join(container_dir, 'merged'), lower=[init] + list(reversed(layer_dirs)))


def prepare(container_dir, layer_dirs, hostname, hosts_text=None, resolv_text=None):
    """Make the container's dirs and init layer (idempotent); returns its :class:`RootfsPaths`.

    ``hosts_text`` and ``resolv_text`` default to what a container without a network gets
    (:mod:`..network.dns`).
    """
    from ..network import dns
    p = paths(container_dir, layer_dirs)
    for d in (p.upper, p.work, p.merged):
        fsutil.makedirs(d, 0o755)
    os.chmod(p.upper, 0o755)
    for rel in ('etc',) + INIT_DIRS:
        fsutil.makedirs(os.path.join(p.init, rel), 0o755)
    contents = {'etc/hostname': hostname + '\n',
                'etc/hosts': hosts_text if hosts_text is not None else dns.hosts_file(hostname),
                'etc/resolv.conf': resolv_text if resolv_text is not None else dns.resolv_conf()}
    for rel in INIT_FILES:
        fsutil.atomic_write(os.path.join(p.init, rel), contents[rel].encode('utf-8'), 0o644, durable=False)
    return p


def overlay_options(p, features_dir='/sys/module/overlay/parameters'):
    """The mount data for the overlay; features the kernel knows are switched off."""
    opts = ['lowerdir=' + ':'.join(p.lower)]
    if p.upper:
        opts += ['upperdir=' + p.upper, 'workdir=' + p.work]
    for feature in _OFF_FEATURES:
        if os.path.exists(os.path.join(features_dir, feature)):
            opts.append('%s=off' % feature)
    data = ','.join(opts)
    if len(data) > _MOUNT_DATA_MAX:
        raise CtrError('the image has too many layers for one overlay mount (%d bytes of mount options, '
                       'the kernel takes %d)' % (len(data), _MOUNT_DATA_MAX))
    return data


def mount(p):
    """Mount the overlay at ``merged`` (nothing to do when it is mounted already)."""
    if os.path.ismount(p.merged):
        return False
    mount_overlay(p, libc.MS_NODEV)
    return True


def mount_overlay(p, flags=0):
    """Mount ``p``'s overlay at ``p.merged`` (no upper dir when ``p.upper`` is empty: read-only).

    When the lower dirs' paths overflow the page of mount options (about 40 layers), the
    store's layers are named by short links (``<root>/l/<12 hex>``, overlay2's trick) relative
    to the store root, which the mount is made from; that fits some 240 layers.
    """
    try:
        data, base = overlay_options(p), None
    except CtrError:
        base, lower = _short_lowers(p.lower)
        if base is None:
            raise
        data = overlay_options(RootfsPaths(p.init, p.upper, p.work, p.merged, lower))
    if not p.upper:
        flags |= libc.MS_RDONLY
    cwd = os.open('.', os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if base else None
    try:
        if base:
            os.chdir(base)
        libc.mount('overlay', p.merged, 'overlay', flags, data)
    except OSError as exc:
        raise KernelError.from_oserror('mount overlay on', p.merged, exc)
    finally:
        if cwd is not None:
            os.fchdir(cwd)
            os.close(cwd)


def _short_lowers(lower):
    """(store root, lower dirs with the store's layers as ``l/<12 hex>`` links), or (None, lower)."""
    base, out = None, []
    for path in lower:
        parent, name = os.path.split(path)
        if os.path.basename(parent) != 'layers' or len(name) != 64:
            out.append(path)
            continue
        root = os.path.dirname(parent)
        if base not in (None, root):
            return None, lower
        base = root
        links = os.path.join(root, 'l')
        fsutil.makedirs(links, 0o700)
        link, target = os.path.join(links, name[:12]), os.path.join('..', 'layers', name)
        try:
            os.symlink(target, link)
        except FileExistsError:
            if os.readlink(link) != target:     # another layer with the same 12 hex digits: no short name
                return None, lower
        out.append(os.path.join('l', name[:12]))
    return base, out


def unmount(p):
    """Detach the overlay (idempotent)."""
    if not os.path.ismount(p.merged):
        return False
    try:
        libc.umount(p.merged, libc.MNT_DETACH)
    except OSError as exc:
        raise KernelError.from_oserror('umount', p.merged, exc)
    return True

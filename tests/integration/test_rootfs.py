# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container rootfs is one overlay: image layers below, the init layer, an upper dir that takes every change."""

from __future__ import annotations

import os

import pytest

from ctr.images import ImageStore
from ctr.runtime import rootfs


@pytest.fixture
def mounted(store_root, busybox_rootfs):
    images = ImageStore(str(store_root))
    images.import_rootfs(str(busybox_rootfs), 'busybox')
    layer_dirs = images.unpack('busybox')
    p = rootfs.prepare(str(store_root / 'containers' / ('c' * 64)), layer_dirs, 'cccccccccccc',
                       resolv_text='nameserver 192.0.2.1\n')
    assert rootfs.mount(p)
    try:
        yield p, layer_dirs
    finally:
        rootfs.unmount(p)


def test_overlay_shows_image_and_init_layer_and_writes_go_up(mounted):
    p, layer_dirs = mounted
    assert not rootfs.mount(p)                       # already mounted: nothing to do
    merged = p.merged
    assert os.path.isfile(os.path.join(merged, 'bin', 'busybox'))
    with open(os.path.join(merged, 'etc', 'hostname')) as f:
        assert f.read() == 'cccccccccccc\n'
    with open(os.path.join(merged, 'etc', 'resolv.conf')) as f:
        assert f.read() == 'nameserver 192.0.2.1\n'
    with open(os.path.join(merged, 'etc', 'motd'), 'w') as f:
        f.write('hello\n')
    os.unlink(os.path.join(merged, 'bin', 'ls'))
    assert os.path.isfile(os.path.join(p.upper, 'etc', 'motd'))
    assert os.path.exists(os.path.join(layer_dirs[0], 'bin', 'ls'))          # the image is untouched
    assert not os.path.exists(os.path.join(p.upper, 'etc', 'hostname'))      # init files stay below
    with open('/proc/self/mountinfo') as f:
        line = next(line for line in f if ' %s ' % merged in line)
    for feature in ('redirect_dir', 'index', 'metacopy'):
        if os.path.exists('/sys/module/overlay/parameters/' + feature):
            assert feature + '=on' not in line


def test_unmount_leaves_nothing_mounted(mounted):
    p = mounted[0]
    assert rootfs.unmount(p)
    assert not rootfs.unmount(p)
    with open('/proc/self/mountinfo') as f:
        assert p.merged not in f.read()

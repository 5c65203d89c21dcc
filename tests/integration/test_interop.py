# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Interop with real peers: podman runs what we save, we load what podman saves, skopeo and umoci read
our store as it is, and an unpacked multi-layer image works as overlay lower dirs.

podman runs with a private storage root per test (vfs driver) and ``--pull=never``, so it neither touches
the host's podman store nor ever contacts a registry.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile

import pytest

from ctr import archives, libc
from ctr.images import ImageStore


def run(cmd, **kwargs):
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300, check=False,
                          **kwargs)
    assert proc.returncode == 0, '%s failed (%d):\n%s\n%s' % (' '.join(cmd), proc.returncode, proc.stdout,
                                                              proc.stderr)
    return proc.stdout


@pytest.fixture
def podman():
    """A podman with its own throw-away storage; removed (and unmounted) afterwards."""
    base = tempfile.mkdtemp(prefix='ctr-podman-')
    prefix = ['podman', '--root', os.path.join(base, 'root'), '--runroot', os.path.join(base, 'run'),
              '--storage-driver', 'vfs', '--tmpdir', os.path.join(base, 'tmp')]
    try:
        yield lambda *args: run(prefix + list(args))
    finally:
        subprocess.run(prefix + ['rm', '-a', '-f'], capture_output=True, stdin=subprocess.DEVNULL, timeout=120, check=False)
        subprocess.run(prefix + ['rmi', '-a', '-f'], capture_output=True, stdin=subprocess.DEVNULL, timeout=120,
                       check=False)
        subprocess.run(['umount', '-R', base], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def images(store_root):
    return ImageStore(str(store_root))


@pytest.fixture
def busybox(images, busybox_rootfs):
    return images.import_rootfs(str(busybox_rootfs), 'busybox', changes=['CMD ["sh"]']).image


@pytest.mark.parametrize('fmt', archives.FORMATS)
def test_podman_runs_what_we_save(images, busybox, podman, tmp_path, fmt):
    path = str(tmp_path / 'busybox.tar')
    archives.save(images, ['busybox'], path, fmt)
    out = podman('load', '-i', path)
    assert 'docker.io/library/busybox:latest' in out
    inspect = json.loads(podman('image', 'inspect', 'docker.io/library/busybox:latest'))[0]
    assert inspect['Id'] == busybox.id[7:]
    assert inspect['RootFS']['Layers'] == busybox.diff_ids
    out = podman('run', '--rm', '--pull=never', '--network', 'none', 'docker.io/library/busybox:latest',
                 'sh', '-c', 'echo hello from $(cat /etc/passwd | head -1 | cut -d: -f1)')
    assert out.strip() == 'hello from root'


@pytest.mark.parametrize('fmt', archives.FORMATS)
def test_we_load_what_podman_saves(images, busybox_rootfs, podman, tmp_path, fmt):
    tarball = str(tmp_path / 'rootfs.tar')
    with tarfile.open(tarball, 'w') as tf:
        tf.add(str(busybox_rootfs), arcname='.')
    podman('import', '--change', 'CMD ["sh"]', tarball, 'localhost/from-podman:1')
    podman_id = json.loads(podman('image', 'inspect', 'localhost/from-podman:1'))[0]['Id']
    saved = str(tmp_path / 'podman.tar')
    podman('save', '--format', fmt, '-o', saved, 'localhost/from-podman:1')
    out = archives.load(images, saved, name='localhost/from-podman:1')
    assert out.changed
    image = images.get('localhost/from-podman:1')
    assert image.id == 'sha256:' + podman_id
    assert image.config['config']['Cmd'] == ['sh']
    dirs = images.unpack('localhost/from-podman:1')
    assert os.path.isfile(os.path.join(dirs[-1], 'bin', 'busybox'))
    assert not archives.load(images, saved, name='localhost/from-podman:1').changed


def test_skopeo_reads_the_store_as_it_is(images, busybox, store_root, tmp_path):
    ref = 'oci:%s/oci:docker.io/library/busybox:latest' % store_root
    inspect = json.loads(run(['skopeo', 'inspect', ref]))
    assert inspect['Digest'] == busybox.manifest.digest
    config = json.loads(run(['skopeo', 'inspect', '--config', ref]))
    assert config['rootfs']['diff_ids'] == busybox.diff_ids
    # and copies out of it, verifying every blob on the way
    run(['skopeo', 'copy', ref, 'dir:%s' % (tmp_path / 'copy')])
    assert os.path.isfile(tmp_path / 'copy' / 'manifest.json')


def test_umoci_unpacks_from_the_store(images, busybox, store_root, tmp_path):
    listed = run(['umoci', 'ls', '--layout', '%s/oci' % store_root]).split()
    assert 'docker.io/library/busybox:latest' in listed
    bundle = str(tmp_path / 'bundle')
    run(['umoci', 'unpack', '--image', '%s/oci:docker.io/library/busybox:latest' % store_root, bundle])
    assert os.path.isfile(os.path.join(bundle, 'rootfs', 'bin', 'busybox'))
    with open(os.path.join(bundle, 'config.json')) as f:
        assert json.load(f)['process']['args'] == ['sh']


def _layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _docker_archive(path, layers):
    import hashlib
    diff_ids = ['sha256:' + hashlib.sha256(data).hexdigest() for data in layers]
    config = json.dumps({'architecture': 'amd64', 'os': 'linux', 'config': {},
                         'rootfs': {'type': 'layers', 'diff_ids': diff_ids}}).encode()
    with tarfile.open(path, 'w') as tf:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        add('config.json', config)
        for i, data in enumerate(layers):
            add('l%d.tar' % i, data)
        add('manifest.json', json.dumps([{'Config': 'config.json', 'RepoTags': ['layered:1'],
                                          'Layers': ['l%d.tar' % i for i in range(len(layers))]}]).encode())


def test_unpacked_layers_stack_as_an_overlay(images, tmp_path):
    """Two layers, the second deleting a file and making a directory opaque: the overlay shows the result."""
    lower = _layer([('etc/', None), ('etc/keep', b'keep\n'), ('etc/gone', b'gone\n'),
                    ('opaque/', None), ('opaque/old', b'old\n')])
    upper = _layer([('etc/', None), ('etc/.wh.gone', b''), ('etc/new', b'new\n'),
                    ('opaque/', None), ('opaque/.wh..wh..opq', b''), ('opaque/fresh', b'fresh\n')])
    path = str(tmp_path / 'layered.tar')
    _docker_archive(path, [lower, upper])
    archives.load(images, path)
    dirs = images.unpack('layered:1')
    assert len(dirs) == 2 and dirs[0] != dirs[1]
    merged, upperdir, workdir = (str(tmp_path / n) for n in ('merged', 'upper', 'work'))
    for d in (merged, upperdir, workdir):
        os.mkdir(d)
    options = 'lowerdir=%s,upperdir=%s,workdir=%s' % (':'.join(reversed(dirs)), upperdir, workdir)
    libc.mount('overlay', merged, 'overlay', 0, options)
    try:
        assert sorted(os.listdir(os.path.join(merged, 'etc'))) == ['keep', 'new']
        assert sorted(os.listdir(os.path.join(merged, 'opaque'))) == ['fresh']
    finally:
        libc.umount(merged, libc.MNT_DETACH)

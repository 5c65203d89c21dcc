# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker-archive and oci-archive: save, load, idempotence, and damaged input (no root needed)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from ctr import archives
from ctr.errors import CorruptContent, InvalidArgument, NotFound
from ctr.images import ImageStore


@pytest.fixture
def images(store_root):
    return ImageStore(str(store_root))


@pytest.fixture
def image(images, tmp_path):
    tree = tmp_path / 'tree'
    (tree / 'bin').mkdir(parents=True)
    (tree / 'bin' / 'hello').write_bytes(b'hello world\n' * 100)
    os.symlink('hello', tree / 'bin' / 'hi')
    return images.import_rootfs(str(tree), 'busybox', changes=['CMD ["sh"]']).image


def members(path):
    with tarfile.open(path) as tf:
        return {m.name: (tf.extractfile(m).read() if m.isreg() else None) for m in tf.getmembers()}


def rewrite(src, dst, edit):
    """Copy a tar, letting ``edit(name, data) -> data or None (drop)`` change members."""
    with tarfile.open(src) as tin, tarfile.open(dst, 'w') as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read() if m.isreg() else None
            if data is not None:
                data = edit(m.name, data)
                if data is None:
                    continue
                m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
            else:
                tout.addfile(m)


def test_docker_archive_layout(images, image, tmp_path):
    path = tmp_path / 'out.tar'
    assert archives.save(images, ['busybox'], str(path))
    got = members(path)
    manifest = json.loads(got['manifest.json'])
    diff = image.diff_ids[0][7:]
    assert manifest == [{'Config': image.id[7:] + '.json', 'RepoTags': ['docker.io/library/busybox:latest'],
                         'Layers': [diff + '/layer.tar']}]
    assert json.loads(got['repositories']) == {'docker.io/library/busybox': {'latest': diff}}
    assert got[image.id[7:] + '.json'] == image.config_bytes
    # layers are uncompressed, and their sha256 is the diff ID
    assert 'sha256:' + hashlib.sha256(got[diff + '/layer.tar']).hexdigest() == image.diff_ids[0]


def test_oci_archive_layout(images, image, tmp_path):
    path = tmp_path / 'out.tar'
    assert archives.save(images, ['busybox'], str(path), 'oci-archive')
    got = members(path)
    index = json.loads(got['index.json'])
    assert [m['annotations']['org.opencontainers.image.ref.name'] for m in index['manifests']] == \
        ['docker.io/library/busybox:latest']
    assert json.loads(got['oci-layout']) == {'imageLayoutVersion': '1.0.0'}
    for name, data in got.items():
        if name.startswith('blobs/sha256/') and data is not None:
            assert hashlib.sha256(data).hexdigest() == name.rsplit('/', 1)[1]


@pytest.mark.parametrize('fmt', archives.FORMATS)
def test_save_is_deterministic_and_idempotent(images, image, tmp_path, fmt):
    a, b = tmp_path / 'a.tar', tmp_path / 'b.tar'
    assert archives.save(images, ['busybox'], str(a), fmt)
    assert archives.save(images, ['busybox'], str(b), fmt)
    assert a.read_bytes() == b.read_bytes()
    mtime = os.stat(a).st_mtime_ns
    assert not archives.save(images, ['busybox'], str(a), fmt)
    assert not archives.save(images, ['busybox'], str(a), fmt, check=True)
    assert os.stat(a).st_mtime_ns == mtime
    a.write_bytes(a.read_bytes()[:-2048] + b'x' * 2048)
    assert archives.save(images, ['busybox'], str(a), fmt, check=True)
    assert archives.save(images, ['busybox'], str(a), fmt)
    assert a.read_bytes() == b.read_bytes()
    assert [n for n in os.listdir(tmp_path) if n.startswith('.tmp-')] == []


@pytest.mark.parametrize('fmt', archives.FORMATS)
def test_round_trip_into_another_store(images, image, tmp_path, fmt):
    path = tmp_path / 'out.tar'
    archives.save(images, ['busybox'], str(path), fmt)
    other = ImageStore(str(tmp_path / 'other'))
    assert archives.load(other, str(path), check=True).changed
    assert other.list() == []
    out = archives.load(other, str(path))
    assert out.changed
    loaded = other.get('busybox')
    assert loaded.id == image.id and loaded.diff_ids == image.diff_ids
    assert not archives.load(other, str(path)).changed
    assert other.unpack('busybox')


def test_load_names_a_single_unnamed_image(images, image, tmp_path):
    path = tmp_path / 'out.tar'
    archives.save(images, [image.id], str(path), 'oci-archive')
    other = ImageStore(str(tmp_path / 'other'))
    archives.load(other, str(path))
    assert [i.names for i in other.list()] == [[]]
    out = archives.load(other, str(path), name='named:1')
    assert out.changed and other.get('named:1').id == image.id
    assert len(other.list()) == 1


@pytest.mark.parametrize('fmt', archives.FORMATS)
def test_truncated_archive_leaves_nothing(images, image, tmp_path, fmt):
    path = tmp_path / 'out.tar'
    archives.save(images, ['busybox'], str(path), fmt)
    data = path.read_bytes()
    cut = tmp_path / 'cut.tar'
    cut.write_bytes(data[:len(data) // 2])
    other = ImageStore(str(tmp_path / 'other'))
    with pytest.raises(CorruptContent) as err:
        archives.load(other, str(cut))
    assert str(cut) in err.value.msg
    assert other.list() == []
    assert not os.path.isdir(other.store.tmp_dir) or os.listdir(other.store.tmp_dir) == []


def test_docker_archive_with_a_tampered_layer_is_refused(images, image, tmp_path):
    path, bad = tmp_path / 'out.tar', tmp_path / 'bad.tar'
    archives.save(images, ['busybox'], str(path))

    def edit(name, data):
        if name.endswith('layer.tar'):
            info = tarfile.TarInfo('evil')
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode='w') as tf:
                tf.addfile(info, io.BytesIO(b''))
            return buf.getvalue()
        return data
    rewrite(path, bad, edit)
    other = ImageStore(str(tmp_path / 'other'))
    with pytest.raises(CorruptContent) as err:
        archives.load(other, str(bad))
    assert 'diff ID' in err.value.msg
    assert other.list() == []
    assert os.listdir(other.store.blob_dir) == []


def test_oci_archive_with_a_tampered_blob_is_refused(images, image, tmp_path):
    path, bad = tmp_path / 'out.tar', tmp_path / 'bad.tar'
    archives.save(images, ['busybox'], str(path), 'oci-archive')
    layer = image.layers[0].digest[7:]
    rewrite(path, bad, lambda name, data: data[:-1] + bytes([data[-1] ^ 1]) if name.endswith(layer) else data)
    other = ImageStore(str(tmp_path / 'other'))
    with pytest.raises(CorruptContent):
        archives.load(other, str(bad))
    assert other.list() == []


@pytest.mark.parametrize('edit, fragment', [
    (lambda n, d: None if n == 'manifest.json' else d, 'neither a docker-archive'),
    (lambda n, d: b'{not json' if n == 'manifest.json' else d, 'not valid JSON'),
    (lambda n, d: b'[{"Config": "missing.json", "Layers": []}]' if n == 'manifest.json' else d,
     'lacks the member "missing.json"'),
    (lambda n, d: b'{"rootfs": 1}' if n.endswith('.json') and n != 'manifest.json' else d,
     'not an image config'),
    (lambda n, d: json.dumps([{'Config': json.loads(d)[0]['Config'], 'RepoTags': ['Bad Name'],
                               'Layers': json.loads(d)[0]['Layers']}]).encode() if n == 'manifest.json' else d,
     'not a valid reference'),
])
def test_damaged_docker_archives(images, image, tmp_path, edit, fragment):
    path, bad = tmp_path / 'out.tar', tmp_path / 'bad.tar'
    archives.save(images, ['busybox'], str(path))
    rewrite(path, bad, edit)
    other = ImageStore(str(tmp_path / 'other'))
    with pytest.raises(CorruptContent) as err:
        archives.load(other, str(bad))
    assert fragment in err.value.msg
    assert '\n' not in err.value.msg
    assert other.list() == []


def test_load_errors_for_missing_and_garbage(images, tmp_path):
    with pytest.raises(NotFound):
        archives.load(images, str(tmp_path / 'nope.tar'))
    garbage = tmp_path / 'garbage.tar'
    garbage.write_bytes(os.urandom(3000))
    with pytest.raises(CorruptContent) as err:
        archives.load(images, str(garbage))
    assert 'not a readable tar archive' in err.value.msg and '\n' not in err.value.msg


def test_save_errors(images, image, tmp_path):
    with pytest.raises(InvalidArgument):
        archives.save(images, ['busybox'], str(tmp_path / 'x.tar'), 'tarball')
    with pytest.raises(NotFound):
        archives.save(images, ['nothere'], str(tmp_path / 'x.tar'))
    with pytest.raises(NotFound):
        archives.save(images, ['busybox'], str(tmp_path / 'no' / 'dir' / 'x.tar'))
    with pytest.raises(InvalidArgument):
        archives.save(images, ['busybox'], str(tmp_path))

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hand-made hostile archives: every one is refused with one sentence, and nothing enters the store."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from ctr import archives, archives_load
from ctr.errors import CorruptContent, NotFound
from ctr.images import ImageStore, host_platform

MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
INDEX = 'application/vnd.oci.image.index.v1+json'
CONFIG = 'application/vnd.oci.image.config.v1+json'
LAYER_GZ = 'application/vnd.oci.image.layer.v1.tar+gzip'


def sha(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def layer_tar(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w') as tf:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_tar(path, members):
    """members: (name, bytes) or (name, None, linkname) for a symlink."""
    with tarfile.open(path, 'w') as tf:
        for member in members:
            info = tarfile.TarInfo(member[0])
            if member[1] is None:
                info.type, info.linkname = tarfile.SYMTYPE, member[2]
                tf.addfile(info)
            else:
                info.size = len(member[1])
                tf.addfile(info, io.BytesIO(member[1]))
    return str(path)


def oci_archive(path, layer, diff_ids, name='docker.io/library/evil:1', size=None, platform_index=None):
    config = json.dumps({'architecture': host_platform()['architecture'], 'os': 'linux',
                         'rootfs': {'type': 'layers', 'diff_ids': diff_ids}}).encode()
    manifest = json.dumps({'schemaVersion': 2, 'mediaType': MANIFEST,
                           'config': {'mediaType': CONFIG, 'digest': sha(config), 'size': len(config)},
                           'layers': [{'mediaType': LAYER_GZ, 'digest': sha(layer),
                                       'size': len(layer) if size is None else size}]}).encode()
    members = [('blobs/sha256/' + sha(b)[7:], b) for b in (manifest, config, layer)]
    top = {'mediaType': MANIFEST, 'digest': sha(manifest), 'size': len(manifest),
           'annotations': {'org.opencontainers.image.ref.name': name}}
    if platform_index is not None:
        nested = json.dumps({'schemaVersion': 2, 'mediaType': INDEX, 'manifests': [
            dict(top, platform={'architecture': platform_index, 'os': 'linux'})]}).encode()
        members.append(('blobs/sha256/' + sha(nested)[7:], nested))
        top = {'mediaType': INDEX, 'digest': sha(nested), 'size': len(nested),
               'annotations': {'org.opencontainers.image.ref.name': name}}
    members.append(('index.json', json.dumps({'schemaVersion': 2, 'manifests': [top]}).encode()))
    return write_tar(path, members)


@pytest.fixture
def images(store_root):
    return ImageStore(str(store_root))


def assert_refused(images, path, fragment, error=CorruptContent):
    with pytest.raises(error) as err:
        archives.load(images, path)
    assert fragment in err.value.msg, err.value.msg
    assert '\n' not in err.value.msg
    assert images.list() == []
    blobs = images.store.blob_dir
    assert not os.path.isdir(blobs) or os.listdir(blobs) == []


def test_oci_layer_lying_about_its_diff_id_is_refused(images, tmp_path):
    real = layer_tar([('bin/sh', b'real shell')])
    evil = gzip.compress(layer_tar([('bin/sh', b'pwned')]), mtime=0)
    path = oci_archive(tmp_path / 'evil.tar', evil, [sha(real)])
    assert_refused(images, path, 'but the image config says ' + sha(real))


def test_oci_layer_with_a_lying_size_is_refused(images, tmp_path):
    data = layer_tar([('f', b'x')])
    layer = gzip.compress(data, mtime=0)
    assert_refused(images, oci_archive(tmp_path / 'a.tar', layer, [sha(data)], size=len(layer) - 3), 'blob')
    assert_refused(images, oci_archive(tmp_path / 'b.tar', layer, [sha(data)], size=len(layer) + 3), 'truncated')


def test_oci_layer_already_stored_under_another_diff_id_is_refused(images, tmp_path):
    data = layer_tar([('f', b'x')])
    layer = gzip.compress(data, mtime=0)
    archives.load(images, oci_archive(tmp_path / 'good.tar', layer, [sha(data)], name='docker.io/library/good:1'))
    lie = sha(layer_tar([('g', b'y')]))
    with pytest.raises(CorruptContent) as err:
        archives.load(images, oci_archive(tmp_path / 'bad.tar', layer, [lie], name='docker.io/library/bad:1'))
    assert 'but the image config says ' + lie in err.value.msg
    assert [i.names for i in images.list()] == [['docker.io/library/good:1']]


def test_nested_index_without_this_platform_is_refused(images, tmp_path):
    data = layer_tar([('f', b'x')])
    path = oci_archive(tmp_path / 'multi.tar', gzip.compress(data, mtime=0), [sha(data)], platform_index='s390x')
    assert_refused(images, path, 'has no image for linux/%s (it has linux/s390x)' % host_platform()['architecture'],
                   NotFound)


def test_nested_index_for_this_platform_loads(images, tmp_path):
    data = layer_tar([('f', b'x')])
    path = oci_archive(tmp_path / 'multi.tar', gzip.compress(data, mtime=0), [sha(data)],
                       platform_index=host_platform()['architecture'])
    assert archives.load(images, path).changed
    assert images.get('evil:1').diff_ids == [sha(data)]


CONFIG_OK = json.dumps({'rootfs': {'type': 'layers', 'diff_ids': []}}).encode()
NOT_JSON = b'{not json'


@pytest.mark.parametrize('members, fragment', [
    ([('a', None, 'manifest.json'), ('manifest.json', None, 'a')], 'not a regular file'),
    ([('manifest.json', None, '/etc/passwd')], 'lacks the member'),
    ([('index.json', json.dumps({'manifests': [{'mediaType': MANIFEST, 'digest': sha(NOT_JSON),
                                                'size': len(NOT_JSON)}]}).encode()),
      ('blobs/sha256/' + sha(NOT_JSON)[7:], NOT_JSON)], 'is not valid JSON'),
    ([('index.json', b'[]')], 'is not a JSON object'),
    ([('index.json', b'{"manifests": 5}')], 'no usable manifests list'),
    ([('manifest.json', b'{"Config": "c.json"}')], 'is not a JSON list'),
    ([('manifest.json', b'[{"Config": 5, "Layers": []}]')], 'lacks Config'),
    ([('manifest.json', b'[{"Config": "c.json", "Layers": "x"}]')], 'is not a list of strings'),
    ([('c.json', CONFIG_OK), ('manifest.json', b'[{"Config": "c.json", "Layers": [], "RepoTags": "busybox"}]')],
     '(RepoTags) is not a list of strings'),
    ([('c.json', b'{"rootfs": {"diff_ids": [5]}}'), ('manifest.json', b'[{"Config": "c.json", "Layers": ["x"]}]')],
     'is not a list of strings'),
    ([('c.json', b'[1, 2]'), ('manifest.json', b'[{"Config": "../../c.json", "Layers": []}]')], 'not a JSON object'),
])
def test_malformed_archives_are_refused_cleanly(images, tmp_path, members, fragment):
    assert_refused(images, write_tar(tmp_path / 'bad.tar', members), fragment)


def test_member_count_is_bounded(images, tmp_path, monkeypatch):
    monkeypatch.setattr(archives_load, 'MAX_MEMBERS', 10)
    path = write_tar(tmp_path / 'many.tar', [('m%d' % i, b'') for i in range(11)])
    assert_refused(images, path, 'more than 10 members')


def test_metadata_is_read_once_and_bounded(images, tmp_path, monkeypatch):
    monkeypatch.setattr(archives_load, 'METADATA_LIMIT', 4096)
    config = json.dumps({'rootfs': {'type': 'layers', 'diff_ids': []}, 'pad': 'a' * 1000}).encode()
    many = json.dumps([{'Config': 'c.json', 'Layers': [], 'RepoTags': ['x%d:1' % i]} for i in range(20)]).encode()
    path = write_tar(tmp_path / 'shared.tar', [('c.json', config), ('manifest.json', many)])
    assert archives.load(images, path).changed          # one config named 20 times: read once
    big = json.dumps({'rootfs': {'type': 'layers', 'diff_ids': []}, 'pad': 'a' * 5000}).encode()
    other = ImageStore(str(tmp_path / 'other'))
    assert_refused(other, write_tar(tmp_path / 'big.tar', [('c.json', big), ('manifest.json', many)]),
                   'metadata (configs, manifests) exceed')


def test_podman_style_layer_symlinks_are_followed_once(images, tmp_path):
    data = layer_tar([('f', b'x')])
    config = json.dumps({'rootfs': {'type': 'layers', 'diff_ids': [sha(data)]}}).encode()
    path = write_tar(tmp_path / 'podman.tar', [
        ('abc.tar', data), ('legacy/layer.tar', None, '../abc.tar'), ('c.json', config),
        ('manifest.json', json.dumps([{'Config': 'c.json', 'Layers': ['legacy/layer.tar'],
                                       'RepoTags': ['p:1']}]).encode())])
    assert archives.load(images, path).changed
    assert images.get('p:1').diff_ids == [sha(data)]


def test_load_with_a_name_the_archive_lacks_loads_nothing(images, tmp_path):
    data = layer_tar([('f', b'x')])
    path = oci_archive(tmp_path / 'a.tar', gzip.compress(data, mtime=0), [sha(data)], name='docker.io/library/foo:1')
    for check in (True, False):
        with pytest.raises(NotFound) as err:
            archives.load(images, path, name='bar', check=check)
        assert 'holds no image named docker.io/library/bar:latest (it holds docker.io/library/foo:1)' in err.value.msg
    assert images.list() == []

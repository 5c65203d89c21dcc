# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images: import, names, lookup, removal, inspect shape, check-mode predictions (no root needed)."""

from __future__ import annotations

import json
import os
import tarfile

import pytest

from ctr.errors import Conflict, CorruptContent, InvalidArgument, NotFound
from ctr.images import ImageStore, host_platform
from ctr.store import REF_NAME


@pytest.fixture
def images(store_root):
    return ImageStore(str(store_root))


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'tree'
    (root / 'bin').mkdir(parents=True)
    (root / 'etc').mkdir()
    (root / 'bin' / 'tool').write_bytes(b'#!/bin/sh\necho tool\n')
    os.chmod(root / 'bin' / 'tool', 0o755)
    (root / 'etc' / 'passwd').write_text('root:x:0:0::/root:/bin/sh\n')
    os.symlink('tool', root / 'bin' / 'alias')
    for path in [root] + list(root.rglob('*')):
        os.utime(path, (1600000000, 1600000000), follow_symlinks=False)
    return root


def index_names(images):
    return sorted(d.annotations.get(REF_NAME, '') for d in images.store.read_index())


def test_import_directory_makes_a_one_layer_image(images, tree):
    out = images.import_rootfs(str(tree), 'busybox', changes=['CMD ["sh"]', 'ENV A=1'])
    assert out.changed
    info = out.image.inspect()
    assert info['RepoTags'] == ['docker.io/library/busybox:latest']
    assert info['Id'].startswith('sha256:') and len(info['RootFS']['Layers']) == 1
    assert info['Config'] == {'Cmd': ['sh'], 'Env': ['A=1']}
    assert info['Architecture'] == host_platform()['architecture'] and info['Os'] == 'linux'
    assert info['History'][0]['created_by'] == 'ctr import'
    assert info['Size'] > 0
    assert index_names(images) == ['docker.io/library/busybox:latest']
    manifest = images.store.read_json(info['Digest'])
    assert manifest['mediaType'] == 'application/vnd.oci.image.manifest.v1+json'
    assert manifest['layers'][0]['mediaType'] == 'application/vnd.oci.image.layer.v1.tar+gzip'


def test_import_twice_is_not_changed(images, tree):
    first = images.import_rootfs(str(tree), 'busybox')
    second = images.import_rootfs(str(tree), 'busybox')
    assert not second.changed
    assert second.image.id == first.image.id
    assert images.import_rootfs(str(tree), 'busybox', check=True).changed is False


def test_import_change_of_content_or_config_is_changed(images, tree):
    first = images.import_rootfs(str(tree), 'busybox')
    (tree / 'etc' / 'motd').write_text('hello\n')
    assert images.import_rootfs(str(tree), 'busybox', check=True).changed
    second = images.import_rootfs(str(tree), 'busybox')
    assert second.changed and second.image.id != first.image.id
    third = images.import_rootfs(str(tree), 'busybox', changes=['CMD ["sh"]'])
    assert third.changed and third.image.id != second.image.id
    # the old image had no other name: it is gone, blobs and all
    assert [i.id for i in images.list()] == [third.image.id]
    assert len(os.listdir(images.store.blob_dir)) == 3


def test_import_check_mode_changes_nothing(images, tree):
    out = images.import_rootfs(str(tree), 'busybox', check=True)
    assert out.changed and out.image is None
    assert not os.path.exists(images.store.root + '/oci')


def test_import_is_reproducible_with_source_date_epoch(tmp_path, tree, monkeypatch):
    monkeypatch.setenv('SOURCE_DATE_EPOCH', '1700000000')
    os.utime(tree / 'etc' / 'passwd', (1750000000, 1750000000))
    a = ImageStore(str(tmp_path / 'a')).import_rootfs(str(tree), 'x').image
    os.utime(tree / 'etc' / 'passwd', (1800000000, 1800000000))
    b = ImageStore(str(tmp_path / 'b')).import_rootfs(str(tree), 'x').image
    assert a.id == b.id and a.manifest.digest == b.manifest.digest
    assert a.config['created'] == '2023-11-14T22:13:20Z'


def test_import_of_a_tarball(images, tree, tmp_path):
    tarball = tmp_path / 'rootfs.tar.gz'
    with tarfile.open(tarball, 'w:gz') as tf:
        tf.add(str(tree), arcname='.')
    out = images.import_rootfs(str(tarball), 'app:1')
    assert out.changed and out.image.names == ['docker.io/library/app:1']
    assert not images.import_rootfs(str(tarball), 'app:1').changed


@pytest.mark.parametrize('kwargs, error, fragment', [
    ({'source': '/nonexistent/rootfs'}, NotFound, 'import_path "/nonexistent/rootfs" does not exist'),
    ({'name': 'Bad/Name'}, InvalidArgument, 'must be lowercase'),
    ({'name': 'x@sha256:' + 'a' * 64}, InvalidArgument, 'must not carry a digest'),
    ({'changes': ['RUN rm -rf /']}, InvalidArgument, 'not a metadata instruction'),
])
def test_import_bad_input_changes_nothing(images, tree, kwargs, error, fragment):
    args = {'source': str(tree), 'name': 'ok', 'changes': ()}
    args.update(kwargs)
    with pytest.raises(error) as err:
        images.import_rootfs(**args)
    assert fragment in err.value.msg
    assert images.list() == []


def test_import_of_a_corrupt_tarball_leaves_nothing(images, tmp_path):
    bad = tmp_path / 'bad.tar'
    bad.write_bytes(b'\x1f\x8b' + os.urandom(5000))
    with pytest.raises(CorruptContent):
        images.import_rootfs(str(bad), 'bad')
    assert images.list() == []
    assert os.listdir(images.store.tmp_dir) == []
    assert os.listdir(images.store.blob_dir) == []


def test_tag_untag_and_lookup(images, tree):
    image = images.import_rootfs(str(tree), 'busybox').image
    assert images.tag('busybox', 'localhost:5000/tools/bb:1').changed
    assert not images.tag('busybox', 'localhost:5000/tools/bb:1').changed
    assert images.tag(image.id, 'other', check=True).changed
    assert index_names(images) == ['docker.io/library/busybox:latest', 'localhost:5000/tools/bb:1']
    for text in ('busybox', 'docker.io/library/busybox:latest', image.id, image.id[7:], image.id[7:19],
                 'localhost:5000/tools/bb:1', 'localhost:5000/tools/bb@' + image.manifest.digest):
        assert images.get(text).id == image.id, text
    assert images.find('nothere') is None
    with pytest.raises(NotFound):
        images.get('nothere')
    assert images.untag('localhost:5000/tools/bb:1').changed
    assert not images.untag('localhost:5000/tools/bb:1').changed
    assert images.get('busybox').names == ['docker.io/library/busybox:latest']


def test_tag_moves_a_name(images, tree, tmp_path):
    a = images.import_rootfs(str(tree), 'a').image
    (tree / 'new').write_text('x')
    b = images.import_rootfs(str(tree), 'b').image
    assert images.tag('b', 'a').changed
    assert images.get('a').id == b.id
    # an image left without a name is removed with its blobs (no dangling <none> images)
    assert images.find(a.id) is None
    assert not images.store.has_blob(a.id)


def test_remove_by_name_and_by_id(images, tree):
    image = images.import_rootfs(str(tree), 'busybox').image
    images.tag('busybox', 'second')
    with pytest.raises(Conflict):
        images.remove(image.id)
    assert images.remove('second').changed
    assert images.get('busybox')
    assert images.remove(image.id, check=True).changed
    assert images.get('busybox')
    assert images.remove(image.id).changed
    assert images.list() == []
    assert os.listdir(images.store.blob_dir) == []
    assert not images.remove('busybox').changed


def test_force_remove_takes_every_name(images, tree):
    images.import_rootfs(str(tree), 'busybox')
    images.tag('busybox', 'second')
    out = images.remove('busybox', force=True)
    assert out.changed and images.list() == []


def test_unpack_into_layers_dir_is_shared_and_reused(images, tree):
    images.import_rootfs(str(tree), 'a')
    images.tag('a', 'b')
    dirs = images.unpack('a')
    assert len(dirs) == 1 and dirs == images.unpack('b')
    assert os.path.basename(dirs[0]) == images.get('a').diff_ids[0][7:]  # one layer: chain ID = diff ID
    assert sorted(os.listdir(dirs[0])) == ['bin', 'etc']
    assert os.readlink(os.path.join(dirs[0], 'bin', 'alias')) == 'tool'
    info = images.get('a').inspect(images.store)
    assert info['GraphDriver'] == {'Name': 'overlay', 'Data': {'LowerDir': dirs[0]}}


def test_unpack_refuses_a_corrupt_blob(images, tree):
    image = images.import_rootfs(str(tree), 'a').image
    blob = images.store.blob_path(image.layers[0].digest)
    data = bytearray(open(blob, 'rb').read())
    data[len(data) // 2] ^= 0xff
    os.chmod(blob, 0o644)
    with open(blob, 'wb') as f:
        f.write(bytes(data))
    with pytest.raises(CorruptContent):
        images.unpack('a')
    assert os.listdir(images.store.layers_dir) == []


def test_inspect_shape_is_json_and_docker_like(images, tree):
    info = images.import_rootfs(str(tree), 'busybox', changes=['EXPOSE 80', 'LABEL a=b']).image.inspect()
    json.dumps(info)
    for key in ('Id', 'RepoTags', 'RepoDigests', 'Created', 'Size', 'Architecture', 'Os', 'Config', 'RootFS',
                'History'):
        assert key in info
    assert info['Config']['ExposedPorts'] == {'80/tcp': {}}
    assert info['RepoDigests'] == ['docker.io/library/busybox@' + info['Digest']]


# -- lookups, removal forms, sizes, self-imports, check-mode validation, locking -----------------------

def test_id_forms_docker_accepts(images, tree):
    image = images.import_rootfs(str(tree), 'busybox').image
    hexid = image.id[7:]
    for text in (image.id, hexid, 'sha256:' + hexid[:6], hexid[:4]):
        assert images.get(text).id == image.id, text
    with pytest.raises(InvalidArgument):
        images.find('sha256:xyz')


def test_remove_by_full_hex_id(images, tree):
    image = images.import_rootfs(str(tree), 'busybox').image
    assert images.remove(image.id[7:]).changed
    assert images.list() == []


def test_remove_by_repository_and_digest(images, tree):
    image = images.import_rootfs(str(tree), 'busybox').image
    images.tag('busybox', 'other:1')
    out = images.remove('busybox@' + image.manifest.digest)
    assert out.changed
    assert images.get(image.id).names == ['docker.io/library/other:1']
    assert not images.remove('busybox@' + image.manifest.digest).changed


def test_size_is_the_uncompressed_layer_size(images, tree):
    image = images.import_rootfs(str(tree), 'busybox').image
    with images.store.open_blob(image.layers[0].digest) as blob:
        import gzip
        uncompressed = len(gzip.decompress(blob.read()))
    assert image.inspect(images.store)['Size'] == uncompressed
    assert image.size() == image.layers[0].size      # without the store: what is stored


def test_importing_a_tree_that_holds_the_store_skips_the_store(tmp_path, tree):
    images = ImageStore(str(tree / 'var' / 'lib' / 'ctr'))
    first = images.import_rootfs(str(tree), 'self')
    second = images.import_rootfs(str(tree), 'self')
    assert not second.changed and second.image.id == first.image.id
    dirs = images.unpack('self')
    assert not os.path.exists(os.path.join(dirs[0], 'var', 'lib', 'ctr'))


def test_check_mode_reads_the_tarball_and_a_failed_import_leaves_no_store(tmp_path):
    images = ImageStore(str(tmp_path / 'new-root'))
    bad = tmp_path / 'passwd'
    bad.write_text('root:x:0:0::/root:/bin/sh\n' * 40)
    with pytest.raises(CorruptContent) as err:
        images.import_rootfs(str(bad), 'x', check=True)
    assert 'import_path "%s"' % bad in err.value.msg
    with pytest.raises(CorruptContent):
        images.import_rootfs(str(bad), 'x')
    assert not os.path.exists(images.store.root)


def test_temp_files_of_killed_writers_are_swept(images, tree):
    images.store.init()
    leftover = os.path.join(images.store.tmp_dir, '.tmp-blob-killed')
    with open(leftover, 'wb') as f:
        f.write(b'half a blob')
    os.mkdir(os.path.join(images.store.layers_dir, '.tmp-killed-unpack'))
    images.import_rootfs(str(tree), 'busybox')
    assert os.listdir(images.store.tmp_dir) == []
    assert os.listdir(images.store.layers_dir) == []


def test_tag_holds_the_writer_lock_so_gc_cannot_interleave(images, tree, monkeypatch):
    import fcntl
    images.import_rootfs(str(tree), 'busybox')
    seen = []
    original = ImageStore.set_names

    def probe(self, *args, **kwargs):
        fd = os.open(os.path.join(self.store.locks_dir, 'writers.lock'), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append('gc could run')
        except BlockingIOError:
            seen.append('gc kept out')
        finally:
            os.close(fd)
        return original(self, *args, **kwargs)
    monkeypatch.setattr(ImageStore, 'set_names', probe)
    images.tag('busybox', 'other')
    assert seen == ['gc kept out']


def test_a_broken_index_entry_does_not_break_the_store(images, tree):
    good = images.import_rootfs(str(tree), 'good').image
    (tree / 'more').write_text('x')
    bad = images.import_rootfs(str(tree), 'bad').image
    os.unlink(images.store.blob_path(bad.manifest.digest))
    assert [i.id for i in images.list()] == [good.id]
    assert images.broken and images.broken[0][1] == ['docker.io/library/bad:latest']
    assert images.remove('bad').changed
    images.list()
    assert images.broken == []


@pytest.mark.parametrize('value', ['-1', '253402300800', '1e9', 'soon'])
def test_source_date_epoch_out_of_range_or_malformed_is_refused(images, tree, monkeypatch, value):
    monkeypatch.setenv('SOURCE_DATE_EPOCH', value)
    with pytest.raises(InvalidArgument, match='SOURCE_DATE_EPOCH'):
        images.import_rootfs(str(tree), 'busybox:latest')
    assert images.list() == []


def test_rfc3339_has_four_digit_years_and_refuses_what_rfc3339_cannot_write():
    from ctr.timestamps import MAX_SECONDS, rfc3339  # pylint: disable=import-outside-toplevel
    assert rfc3339(0) == '1970-01-01T00:00:00Z'
    assert rfc3339(1700000000.25) == '2023-11-14T22:13:20.250000Z'
    assert rfc3339(MAX_SECONDS) == '9999-12-31T23:59:59Z'
    assert rfc3339(-62135596800) == '0001-01-01T00:00:00Z'
    for ts in (MAX_SECONDS + 1, -62135596801):
        with pytest.raises(ValueError):
            rfc3339(ts)

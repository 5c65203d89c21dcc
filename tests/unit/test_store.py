# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content store: layout, atomic idempotent blobs, verified reads, index, locks, gc."""

from __future__ import annotations

import hashlib
import json
import os
import threading

import pytest

from ctr import mediatypes as mt
from ctr.errors import CorruptContent, NotFound
from ctr.fsutil import resolve_root
from ctr.store import REF_NAME, Descriptor, Store


def sha(data):
    return 'sha256:' + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path):
    return Store(str(tmp_path / 'root')).init()


def test_layout_is_an_oci_image_layout(store):
    with open(os.path.join(store.oci_dir, 'oci-layout')) as f:
        assert json.load(f) == {'imageLayoutVersion': '1.0.0'}
    with open(store.index_path) as f:
        assert json.load(f) == {'schemaVersion': 2, 'mediaType': mt.OCI_INDEX, 'manifests': []}
    assert os.path.isdir(os.path.join(store.oci_dir, 'blobs', 'sha256'))
    # nothing of ours inside the layout but the layout itself
    assert sorted(os.listdir(store.oci_dir)) == ['blobs', 'index.json', 'oci-layout']


def test_init_is_idempotent(store):
    store.put_bytes(b'x')
    Store(store.root).init()
    assert store.has_blob(sha(b'x'))


def test_resolve_root(monkeypatch):
    monkeypatch.delenv('CTR_ROOT', raising=False)
    assert resolve_root() == '/var/lib/ctr'
    monkeypatch.setenv('CTR_ROOT', '/srv/ctr')
    assert resolve_root() == '/srv/ctr'
    assert resolve_root('/other') == '/other'


def test_put_bytes_is_idempotent_and_content_addressed(store):
    d1 = store.put_bytes(b'hello')
    mtime = os.stat(store.blob_path(d1)).st_mtime_ns
    d2 = store.put_bytes(b'hello')
    assert d1 == d2 == sha(b'hello')
    assert os.stat(store.blob_path(d1)).st_mtime_ns == mtime
    assert os.listdir(store.tmp_dir) == []


def test_put_bytes_refuses_a_wrong_expected_digest(store):
    with pytest.raises(CorruptContent):
        store.put_bytes(b'hello', expected_digest=sha(b'other'))
    assert os.listdir(store.blob_dir) == []


def test_streamed_blob_commit_and_abort(store):
    w = store.new_blob()
    w.write(b'a' * 100)
    w.write(b'b' * 100)
    digest = w.commit()
    assert digest == sha(b'a' * 100 + b'b' * 100)
    w = store.new_blob()
    w.write(b'junk')
    w.abort()
    assert os.listdir(store.tmp_dir) == []
    w = store.new_blob()
    w.write(b'junk')
    with pytest.raises(CorruptContent):
        w.commit(expected_digest=sha(b'not junk'))
    assert not store.has_blob(sha(b'junk'))
    assert os.listdir(store.tmp_dir) == []


def test_reads_are_verified(store):
    digest = store.put_bytes(b'{"a": 1}')
    assert store.read_json(digest) == {'a': 1}
    path = store.blob_path(digest)
    os.chmod(path, 0o644)
    with open(path, 'wb') as f:
        f.write(b'{"a": 2}')
    with pytest.raises(CorruptContent) as err:
        store.read_blob(digest)
    assert digest in err.value.msg
    with pytest.raises(CorruptContent):
        with store.open_blob(digest) as r:
            while r.read(3):
                pass


def test_verifying_reader_passes_good_content(store):
    data = os.urandom(3 << 20)
    digest = store.put_bytes(data)
    out = b''
    with store.open_blob(digest, len(data)) as r:
        for chunk in iter(lambda: r.read(65536), b''):
            out += chunk
    assert out == data


def test_missing_blob_is_not_found(store):
    with pytest.raises(NotFound):
        store.read_blob(sha(b'nope'))
    with pytest.raises(NotFound):
        store.open_blob(sha(b'nope'))


@pytest.mark.parametrize('digest', ['md5:abc', 'sha256:xyz', 'sha256:' + 'A' * 64, 'sha256:' + 'a' * 63,
                                    'sha256:../../etc/passwd'])
def test_malformed_digests_never_become_paths(store, digest):
    with pytest.raises(CorruptContent):
        store.blob_path(digest)


def test_index_round_trip(store):
    desc = Descriptor(mt.OCI_MANIFEST, sha(b'm'), 1, {REF_NAME: 'docker.io/library/busybox:latest'})
    with store.index_lock():
        store.write_index([desc])
    assert store.read_index() == [desc]


def test_index_with_bad_entries_is_corrupt(store):
    with open(store.index_path, 'w') as f:
        json.dump({'schemaVersion': 2, 'manifests': [{'digest': 'sha256:x'}]}, f)
    with pytest.raises(CorruptContent):
        store.read_index()


def test_gc_keeps_what_the_index_reaches(store):
    layer = store.put_bytes(b'layer')
    config = store.put_json({'rootfs': {'type': 'layers', 'diff_ids': [sha(b'layer-diff')]}}, mt.OCI_CONFIG)
    manifest = store.put_json({'schemaVersion': 2, 'mediaType': mt.OCI_MANIFEST, 'config': config.to_json(),
                               'layers': [{'mediaType': mt.OCI_LAYER, 'digest': layer, 'size': 5}]},
                              mt.OCI_MANIFEST)
    orphan = store.put_bytes(b'orphan')
    with store.index_lock():
        store.write_index([manifest])
    os.makedirs(os.path.join(store.layers_dir, '0' * 64))
    os.makedirs(os.path.join(store.layers_dir, '.tmp-half-done'))
    report = store.gc()
    assert report.blobs == [orphan]
    assert report.layers == ['sha256:' + '0' * 64]
    for digest in (layer, config.digest, manifest.digest):
        assert store.has_blob(digest)
    assert os.listdir(store.layers_dir) == []


def test_gc_waits_for_writers(store):
    """A blob written under the writer lock survives a gc that starts meanwhile."""
    order = []
    with store.writing():
        digest = store.put_bytes(b'not yet referenced')
        t = threading.Thread(target=lambda: order.append(('gc', store.gc().blobs)))
        t.start()
        t.join(0.3)
        order.append('writer done')
    t.join(5)
    assert order[0] == 'writer done'
    assert order[1] == ('gc', [digest])


def test_a_blob_longer_than_its_descriptor_is_refused(store):
    data = b'0123456789'
    digest = store.put_bytes(data)
    path = store.blob_path(digest)
    os.chmod(path, 0o644)
    with open(path, 'ab') as f:
        f.write(b'!')
    with pytest.raises(CorruptContent) as err:
        with store.open_blob(digest, len(data)) as r:
            r.read(len(data))
            r.verify()
    assert 'longer than the 10 bytes' in err.value.msg
    with pytest.raises(CorruptContent) as err:
        with store.open_blob(digest, 12) as r:
            r.verify()
    assert 'is 11 bytes, but its descriptor says 12' in err.value.msg


@pytest.mark.parametrize('pieces', [[b''], [b'abc'], [b'x' * 1000] * 3, [b'y' * 700000, b'z' * 700000, b'w' * 5],
                                    [b'a' * (1 << 20)], [b'b' * ((1 << 20) - 1), b'c', b'd' * 10]])
def test_small_and_bulk_sha256_agree_with_hashlib(pieces):
    from ctr.store import sha256  # pylint: disable=import-outside-toplevel
    expected = hashlib.sha256(b''.join(pieces))
    for h in (sha256(), sha256(bulk=True)):
        for piece in pieces:
            h.update(piece)
        assert h.hexdigest() == expected.hexdigest() and h.digest() == expected.digest()
    assert sha256(b''.join(pieces)).hexdigest() == expected.hexdigest()

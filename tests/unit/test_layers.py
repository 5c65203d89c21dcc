# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer packing, import, IDs and safe extraction; no root needed.

Every hostile-archive case builds its own tar with tarfile and checks that a
sentinel in a sibling directory ("outside") is untouched.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import socket
import stat
import struct
import subprocess
import sys
import tarfile

import pytest

_MODULE_UTILS = os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils')
if os.path.abspath(_MODULE_UTILS) not in [os.path.abspath(p) for p in sys.path]:
    sys.path.insert(0, os.path.abspath(_MODULE_UTILS))

from ctr import layers  # noqa: E402
from ctr.errors import CorruptContent, CtrError, InvalidArgument, KernelError, UnsafeContent  # noqa: E402
from ctr.layers_extract import EntryPlan, plan_entry  # noqa: E402

IS_ROOT = os.geteuid() == 0
CLAMP = 1600000000
SENTINEL = b'keep me'


# -- helpers --------------------------------------------------------------------------------------

def build_tree(root, content=b'hello\n', mtime=1700000000):
    """A small tree with every kind of entry a non-root user can make."""
    os.makedirs(os.path.join(root, 'a', 'b'))
    os.makedirs(os.path.join(root, 'a-b'))
    os.makedirs(os.path.join(root, 'empty'))
    with open(os.path.join(root, 'a', 'b', 'file'), 'wb') as f:
        f.write(content)
    with open(os.path.join(root, 'a-b', 'big'), 'wb') as f:
        f.write(bytes(range(256)) * 9000)     # > 2 MiB: crosses chunk boundaries
    with open(os.path.join(root, 'a.txt'), 'wb') as f:
        f.write(b'text')
    os.chmod(os.path.join(root, 'a.txt'), 0o640)
    os.link(os.path.join(root, 'a', 'b', 'file'), os.path.join(root, 'hardlink'))
    os.symlink('a/b/file', os.path.join(root, 'symlink'))
    os.symlink('/nonexistent/target', os.path.join(root, 'dangling'))
    os.mkfifo(os.path.join(root, 'fifo'))
    set_mtimes(root, mtime)


def set_mtimes(root, mtime):
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
    os.utime(root, (mtime, mtime))


def pack(src, **kwargs):
    out = io.BytesIO()
    digests = layers.pack_tree(str(src), out, **kwargs)
    return digests, out.getvalue()


def snapshot(root):
    """relpath -> (type, mode, mtime, content or link target) for everything under root."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            info = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), int(st.st_mtime))
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as f:
                    info += (hashlib.sha256(f.read()).hexdigest(),)
            elif stat.S_ISLNK(st.st_mode):
                info += (os.readlink(path),)
            found[os.path.relpath(path, root)] = info
    return found


def member_names(blob):
    with tarfile.open(fileobj=io.BytesIO(blob), mode='r:*') as tar:
        return [m.name for m in tar.getmembers()]


def make_tar(entries, compress=False):
    """Build a tar from (name, kind, extra) tuples: kind in file/dir/symlink/hardlink/fifo."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = CLAMP
            info.mode = 0o644
            data = None
            if kind == 'file':
                data = extra if extra is not None else b''
                info.size = len(data)
            elif kind == 'dir':
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == 'symlink':
                info.type, info.linkname = tarfile.SYMTYPE, extra
            elif kind == 'hardlink':
                info.type, info.linkname = tarfile.LNKTYPE, extra
            elif kind == 'fifo':
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    blob = raw.getvalue()
    return gzip.compress(blob, mtime=0) if compress else blob


def extract(blob, dest, **kwargs):
    return layers.extract_layer(io.BytesIO(blob), str(dest), **kwargs)


@pytest.fixture
def place(tmp_path):
    """An empty layer dir and a sibling "outside" dir holding a sentinel file."""
    layer = tmp_path / 'layer'
    outside = tmp_path / 'outside'
    layer.mkdir()
    outside.mkdir()
    (outside / 'sentinel').write_bytes(SENTINEL)
    return layer, outside


def assert_outside_untouched(tmp_path, outside):
    assert sorted(os.listdir(str(outside))) == ['sentinel']
    assert (outside / 'sentinel').read_bytes() == SENTINEL
    assert os.lstat(str(outside / 'sentinel')).st_nlink == 1
    assert sorted(os.listdir(str(tmp_path))) == ['layer', 'outside']


@pytest.fixture(scope='session')
def user_xattrs(tmp_path_factory):
    """Whether the temp filesystem keeps user.* xattrs (checked once)."""
    probe = tmp_path_factory.mktemp('xattr') / 'probe'
    probe.write_bytes(b'')
    try:
        os.setxattr(str(probe), 'user.ctr.probe', b'1')
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise


# -- IDs and compression detection ----------------------------------------------------------------

A = 'sha256:' + 'a' * 64
B = 'sha256:' + 'b' * 64
C = 'sha256:' + 'c' * 64
AB = 'sha256:' + hashlib.sha256(('%s %s' % (A, B)).encode()).hexdigest()
ABC = 'sha256:' + hashlib.sha256(('%s %s' % (AB, C)).encode()).hexdigest()


@pytest.mark.parametrize('diff_ids, expected', [
    ([], []),
    ([A], [A]),
    ([A, B], [A, AB]),
    ([A, B, C], [A, AB, ABC]),
])
def test_chain_ids_follow_the_oci_formula(diff_ids, expected):
    assert layers.chain_ids(diff_ids) == expected


@pytest.mark.parametrize('bad', ['sha256:abc', 'sha512:' + 'a' * 64, 'a' * 64, 'sha256:' + 'A' * 64, None])
def test_chain_ids_refuse_malformed_diff_ids(bad):
    with pytest.raises(InvalidArgument, match='is not a sha256 digest'):
        layers.chain_ids([A, bad])


@pytest.mark.parametrize('head, kind', [
    (b'\x1f\x8b\x08\x00', 'gzip'),
    (b'\x28\xb5\x2f\xfd', 'zstd'),
    (b'ustar', 'none'),
    (b'', 'none'),
    (b'\x1f', 'none'),
])
def test_detect_compression(head, kind):
    assert layers.detect_compression(head) == kind


# -- whiteout name mapping ------------------------------------------------------------------------

@pytest.mark.parametrize('name, plan', [
    ('a/b', EntryPlan('write', ('a', 'b'))),
    ('./a/./b/', EntryPlan('write', ('a', 'b'))),
    ('/abs/x', EntryPlan('write', ('abs', 'x'))),
    ('a/../b', EntryPlan('write', ('b',))),
    ('./', EntryPlan('write', ())),
    ('a/.wh.b', EntryPlan('whiteout', ('a', 'b'))),
    ('.wh.top', EntryPlan('whiteout', ('top',))),
    ('a/.wh..wh..opq', EntryPlan('opaque', ('a',))),
    ('.wh..wh..opq', EntryPlan('opaque', ())),
    ('a/.wh..wh.plnk', EntryPlan('ignore', ('a', '.wh..wh.plnk'))),
    ('.wh..wh.aufs', EntryPlan('ignore', ('.wh..wh.aufs',))),
    ('a/x.wh.b', EntryPlan('write', ('a', 'x.wh.b'))),
])
def test_plan_entry_maps_oci_names(name, plan):
    assert plan_entry(name) == plan


@pytest.mark.parametrize('name, message', [
    ('../x', 'escapes the layer root'),
    ('a/../../x', 'escapes the layer root'),
    ('a/.wh...', 'whiteout that names no file'),
    ('a/.wh..', 'whiteout that names no file'),
    ('.wh.', 'whiteout that names no file'),
])
def test_plan_entry_refuses_unsafe_names(name, message):
    with pytest.raises(UnsafeContent, match=message):
        plan_entry(name)


# -- packing --------------------------------------------------------------------------------------

def test_pack_is_deterministic_across_dirs_and_mtimes(tmp_path):
    build_tree(str(tmp_path / 'one'), mtime=1700000000)
    build_tree(str(tmp_path / 'two'), mtime=1800000000)
    first, blob1 = pack(tmp_path / 'one', mtime_clamp=CLAMP)
    second, blob2 = pack(tmp_path / 'two', mtime_clamp=CLAMP)
    assert first == second
    assert blob1 == blob2
    again = pack(tmp_path / 'one', mtime_clamp=CLAMP)[0]
    assert again == first
    unclamped1 = pack(tmp_path / 'one')[0]
    unclamped2 = pack(tmp_path / 'two')[0]
    assert unclamped1.diff_id != unclamped2.diff_id


def test_pack_ids_change_with_content(tmp_path):
    build_tree(str(tmp_path / 'one'), content=b'hello\n')
    build_tree(str(tmp_path / 'two'), content=b'hellO\n')
    first = pack(tmp_path / 'one', mtime_clamp=CLAMP)[0]
    second = pack(tmp_path / 'two', mtime_clamp=CLAMP)[0]
    assert first.diff_id != second.diff_id
    assert first.digest != second.digest


def test_pack_sorts_entries_by_path_bytes_parents_first(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root))
    names = member_names(pack(root)[1])
    assert names == sorted(names, key=os.fsencode)
    assert names == ['a', 'a-b', 'a-b/big', 'a.txt', 'a/b', 'a/b/file', 'dangling', 'empty', 'fifo',
                     'hardlink', 'symlink']


def test_pack_names_are_relative_dirs_end_with_slash_and_owner_names_empty(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root))
    blob = pack(root, compression='none')[1]
    listed = subprocess.run(['tar', '-tf', '-'], input=blob, stdout=subprocess.PIPE, check=True).stdout
    lines = listed.decode().splitlines()
    assert 'a/' in lines and 'a/b/' in lines and 'empty/' in lines and 'a/b/file' in lines
    assert not [line for line in lines if line.startswith(('/', './'))]
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = tar.getmembers()
    assert {(m.uname, m.gname) for m in members} == {('', '')}
    assert {m.uid for m in members} == {os.geteuid()}
    assert all(isinstance(m.mtime, int) for m in members)


def test_pack_keeps_hardlinks_symlinks_fifos_and_modes(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root))
    with tarfile.open(fileobj=io.BytesIO(pack(root)[1])) as tar:
        by_name = {m.name: m for m in tar.getmembers()}
    assert by_name['a/b/file'].isreg()
    assert by_name['hardlink'].islnk() and by_name['hardlink'].linkname == 'a/b/file'
    assert by_name['symlink'].issym() and by_name['symlink'].linkname == 'a/b/file'
    assert by_name['dangling'].linkname == '/nonexistent/target'
    assert by_name['fifo'].isfifo()
    assert by_name['a.txt'].mode == 0o640


def test_pack_skips_sockets(tmp_path):
    root = tmp_path / 'src'
    root.mkdir()
    (root / 'file').write_bytes(b'x')
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / 'sock'))
        assert member_names(pack(root)[1]) == ['file']
    finally:
        sock.close()


def test_pack_skip_drops_entries_and_subtrees(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root))
    names = member_names(pack(root, skip=lambda rel: rel in ('a', 'fifo'))[1])
    assert not [n for n in names if n == 'a' or n.startswith('a/') or n == 'fifo']
    assert 'a-b/big' in names
    # the hardlinked file is now first met as "hardlink": it carries the data
    with tarfile.open(fileobj=io.BytesIO(pack(root, skip=lambda rel: rel == 'a')[1])) as tar:
        assert tar.getmember('hardlink').isreg()


def test_pack_clamps_mtimes(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root), mtime=CLAMP + 1000)
    os.utime(str(root / 'a.txt'), (CLAMP - 5, CLAMP - 5))
    with tarfile.open(fileobj=io.BytesIO(pack(root, mtime_clamp=CLAMP)[1])) as tar:
        mtimes = {m.name: m.mtime for m in tar.getmembers()}
    assert mtimes.pop('a.txt') == CLAMP - 5
    assert set(mtimes.values()) == {CLAMP}


def test_pack_without_overlay_content_is_the_same_with_overlay_whiteouts(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root))
    assert pack(root, overlay_whiteouts=True) == pack(root)


def test_pack_gzip_is_standard_and_ids_match_bytes(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root))
    digests, blob = pack(root, level=9)
    assert digests.media_type == 'application/vnd.oci.image.layer.v1.tar+gzip'
    assert blob[:10] == b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff'
    assert digests.size == len(blob)
    assert digests.digest == 'sha256:' + hashlib.sha256(blob).hexdigest()
    unzipped = subprocess.run(['gzip', '-dc'], input=blob, stdout=subprocess.PIPE, check=True).stdout
    assert unzipped == gzip.decompress(blob)
    assert digests.diff_id == 'sha256:' + hashlib.sha256(unzipped).hexdigest()
    listing = subprocess.run(['tar', '-tvzf', '-'], input=blob, stdout=subprocess.PIPE, check=True).stdout
    assert b'a/b/file' in listing and b'hardlink link to a/b/file' in listing


def test_pack_uncompressed_digest_is_the_diff_id(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root))
    digests, blob = pack(root, compression='none')
    assert digests.media_type == 'application/vnd.oci.image.layer.v1.tar'
    assert digests.digest == digests.diff_id == 'sha256:' + hashlib.sha256(blob).hexdigest()
    assert digests.diff_id == pack(root)[0].diff_id


@pytest.mark.parametrize('kwargs, message', [
    ({'compression': 'xz'}, 'layer compression "xz"'),
    ({'level': 10}, 'gzip level "10"'),
    ({'level': True}, 'gzip level'),
])
def test_pack_refuses_bad_options(tmp_path, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        layers.pack_tree(str(tmp_path), io.BytesIO(), **kwargs)


@pytest.mark.parametrize('clamp', [-1, 1.5, '1600000000', True])
def test_pack_refuses_bad_mtime_clamp(tmp_path, clamp):
    with pytest.raises(InvalidArgument, match='mtime clamp'):
        layers.pack_tree(str(tmp_path), io.BytesIO(), mtime_clamp=clamp)


def test_pack_round_trips_long_and_non_utf8_names(tmp_path):
    root = tmp_path / 'src'
    deep = os.path.join(str(root), 'd' * 90, 'e' * 90)
    os.makedirs(deep)
    with open(os.path.join(deep, 'f' * 200), 'wb') as f:
        f.write(b'long')
    with open(os.path.join(os.fsencode(str(root)), b'bad-\xff\xfe-name'), 'wb') as f:
        f.write(b'bytes')
    os.symlink('t' * 300, str(root / 'longlink'))
    os.symlink('caf\u00e9', str(root / 'unicode'))
    digests, blob = pack(root)
    listing = subprocess.run(['tar', '--quoting-style=literal', '-tzf', '-'], input=blob,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout
    assert b'bad-\xff\xfe-name\n' in listing and os.fsencode('f' * 200) in listing
    dest = tmp_path / 'dest'
    dest.mkdir()
    extract(blob, dest)
    assert snapshot(str(dest)) == snapshot(str(root))


@pytest.mark.parametrize('field, value', [
    ('uid', 3000000), ('gid', 8 ** 7), ('mtime', -5), ('mtime', 8 ** 11 + 7), ('uid', 0), ('mtime', 8 ** 11 - 1),
])
def test_tar_header_puts_out_of_range_numbers_in_pax_records(field, value):
    header = layers.tar_header(b'entry', b'0', **{field: value})
    blob = header + bytes(1024)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        member = tar.next()
    assert getattr(member, field) == value
    assert (field in member.pax_headers) == (not 0 <= value < 8 ** (11 if field == 'mtime' else 7))
    assert len(header) % 512 == 0


def test_open_uncompressed_reads_zero_bytes_as_empty():
    reader = layers.open_uncompressed(io.BytesIO(gzip.compress(b'data')))
    assert reader.read(0) == b''
    assert reader.read() == b'data'


def test_pack_missing_source_is_not_found(tmp_path):
    with pytest.raises(CtrError, match='does not exist'):
        layers.pack_tree(str(tmp_path / 'missing'), io.BytesIO())


def test_pack_worker_errors_reach_the_caller(tmp_path):
    class Broken(io.RawIOBase):
        def writable(self):
            return True

        def write(self, data):
            raise OSError(errno.ENOSPC, 'No space left on device')

    root = tmp_path / 'src'
    build_tree(str(root))
    with pytest.raises(KernelError, match='no space left on device'):
        layers.pack_tree(str(root), Broken())


def test_pack_round_trips_user_xattrs(tmp_path, user_xattrs):
    root = tmp_path / 'src'
    build_tree(str(root))
    dest = tmp_path / 'dest'
    dest.mkdir()
    if user_xattrs:
        os.setxattr(str(root / 'a.txt'), 'user.b', b'\x00\xffbinary')
        os.setxattr(str(root / 'a.txt'), 'user.a', b'text')
        os.setxattr(str(root / 'a'), 'user.dir', b'yes')
        with tarfile.open(fileobj=io.BytesIO(pack(root)[1])) as tar:
            keys = [k for k in tar.getmember('a.txt').pax_headers if k.startswith('SCHILY.xattr.')]
        assert keys == ['SCHILY.xattr.user.a', 'SCHILY.xattr.user.b']
        extract(pack(root)[1], dest)
        assert os.getxattr(str(dest / 'a.txt'), 'user.b') == b'\x00\xffbinary'
        assert os.getxattr(str(dest / 'a'), 'user.dir') == b'yes'
    else:   # a filesystem without user xattrs: extraction still succeeds, dropping them
        info = tarfile.TarInfo('a.txt')
        info.pax_headers = {'SCHILY.xattr.user.a': 'text'}
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(info, io.BytesIO(b''))
        extract(raw.getvalue(), dest)
        assert (dest / 'a.txt').read_bytes() == b''


# -- extraction round trip ------------------------------------------------------------------------

def test_extract_round_trips_pack_output(tmp_path):
    root = tmp_path / 'src'
    build_tree(str(root))
    os.chmod(str(root / 'empty'), 0o500)        # applied last, so extraction can fill it first
    digests, blob = pack(root)
    dest = tmp_path / 'dest'
    dest.mkdir()
    assert extract(blob, dest, expected_diff_id=digests.diff_id) == digests.diff_id
    assert snapshot(str(dest)) == snapshot(str(root))
    assert os.stat(str(dest / 'hardlink')).st_ino == os.stat(str(dest / 'a' / 'b' / 'file')).st_ino
    os.chmod(str(dest / 'empty'), 0o700)
    os.chmod(str(root / 'empty'), 0o700)


def test_extract_applies_root_entry_metadata(tmp_path):
    dest = tmp_path / 'dest'
    dest.mkdir()
    extract(make_tar([('./', 'dir', None), ('f', 'file', b'x')]), dest)
    assert stat.S_IMODE(os.stat(str(dest)).st_mode) == 0o755
    assert int(os.stat(str(dest)).st_mtime) == CLAMP


def test_extract_reports_diff_id_mismatch(tmp_path):
    with pytest.raises(CorruptContent, match='not the expected'):
        extract(make_tar([('f', 'file', b'x')]), tmp_path, expected_diff_id=A)


def test_extract_refuses_malformed_expected_diff_id(tmp_path):
    with pytest.raises(InvalidArgument, match='expected diff ID'):
        extract(make_tar([('f', 'file', b'x')]), tmp_path, expected_diff_id='sha256:nope')


def test_extract_diff_id_covers_bytes_after_the_end_marker(tmp_path):
    blob = make_tar([('f', 'file', b'x')]) + b'trailing bytes'
    assert extract(blob, tmp_path) == 'sha256:' + hashlib.sha256(blob).hexdigest()


def test_extract_creates_missing_parents(tmp_path):
    extract(make_tar([('x/y/z', 'file', b'deep')]), tmp_path)
    assert (tmp_path / 'x' / 'y' / 'z').read_bytes() == b'deep'
    assert stat.S_IMODE(os.stat(str(tmp_path / 'x')).st_mode) == 0o755


def test_extract_directory_over_directory_keeps_contents(tmp_path):
    extract(make_tar([('d/', 'dir', None), ('d/f', 'file', b'1'), ('d/', 'dir', None)]), tmp_path)
    assert (tmp_path / 'd' / 'f').read_bytes() == b'1'


def test_extract_file_over_directory_removes_it(tmp_path):
    extract(make_tar([('d/', 'dir', None), ('d/sub/f', 'file', b'1'), ('d', 'file', b'2')]), tmp_path)
    assert (tmp_path / 'd').read_bytes() == b'2'


def test_extract_refuses_non_directory_parent(tmp_path):
    with pytest.raises(CorruptContent, match='has a parent "f" that is not a directory'):
        extract(make_tar([('f', 'file', b'1'), ('f/x', 'file', b'2')]), tmp_path)


def test_extract_refuses_non_directory_root_entry(tmp_path):
    with pytest.raises(CorruptContent, match='would replace the layer root'):
        extract(make_tar([('./', 'file', b'1')]), tmp_path)


def test_extract_missing_destination_is_not_found(tmp_path):
    with pytest.raises(CtrError, match='does not exist'):
        extract(make_tar([('f', 'file', b'1')]), tmp_path / 'missing')


# -- hostile archives -----------------------------------------------------------------------------

def test_hostile_dotdot_name_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='layer entry "../x" escapes the layer root'):
        extract(make_tar([('../x', 'file', b'evil')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_nested_dotdot_name_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='"a/../../x" escapes the layer root'):
        extract(make_tar([('a/', 'dir', None), ('a/../../x', 'file', b'evil')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_dotdot_into_sibling_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent):
        extract(make_tar([('../outside/sentinel', 'file', b'evil')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_absolute_name_lands_inside(tmp_path, place):
    layer, outside = place
    extract(make_tar([('/x', 'file', b'inside'), (str(outside / 'sentinel'), 'file', b'evil')]), layer)
    assert (layer / 'x').read_bytes() == b'inside'
    assert (layer / str(outside).lstrip('/') / 'sentinel').read_bytes() == b'evil'
    assert_outside_untouched(tmp_path, outside)


# A broken resolver would follow these symlinks on the host; every follow-up name is chosen so
# that it would then land in the test's own "outside" dir (and be detected), never elsewhere.

def test_hostile_symlink_to_root_then_child_lands_inside(tmp_path, place):
    layer, outside = place
    via_root = str(outside).lstrip('/')
    extract(make_tar([('evil', 'symlink', '/'), ('evil/' + via_root + '/x', 'file', b'1'),
                      ('evil/' + via_root + '/sentinel', 'file', b'evil')]), layer)
    assert (layer / via_root / 'x').read_bytes() == b'1'
    assert (layer / via_root / 'sentinel').read_bytes() == b'evil'
    assert os.readlink(str(layer / 'evil')) == '/'
    assert_outside_untouched(tmp_path, outside)


def test_hostile_symlink_climbing_dotdot_is_clamped_at_the_root(tmp_path, place):
    layer, outside = place
    # layer/../../.. is tmp_path's grandparent; come back down to outside from there
    down = '%s/%s/outside' % (tmp_path.parent.name, tmp_path.name)
    extract(make_tar([('evil', 'symlink', '../../..'), ('evil/' + down + '/sentinel', 'file', b'evil')]), layer)
    assert (layer / down / 'sentinel').read_bytes() == b'evil'
    assert_outside_untouched(tmp_path, outside)


def test_hostile_nested_symlink_climbing_dotdot_is_clamped(tmp_path, place):
    layer, outside = place
    extract(make_tar([('a/b/', 'dir', None), ('a/b/evil', 'symlink', '../../../outside'),
                      ('a/b/evil/sentinel', 'file', b'evil')]), layer)
    assert (layer / 'outside' / 'sentinel').read_bytes() == b'evil'
    assert_outside_untouched(tmp_path, outside)


def test_hostile_symlink_to_outside_absolute_path_lands_inside(tmp_path, place):
    layer, outside = place
    extract(make_tar([('evil', 'symlink', str(outside)), ('evil/sentinel', 'file', b'evil'),
                      ('evil/new', 'file', b'new')]), layer)
    inside = layer / str(outside).lstrip('/')
    assert (inside / 'sentinel').read_bytes() == b'evil'
    assert (inside / 'new').read_bytes() == b'new'
    assert_outside_untouched(tmp_path, outside)


def test_hostile_dotdot_symlink_chain_stays_inside(tmp_path, place):
    layer, outside = place
    # on the host, layer/up is tmp_path and layer/d/up2 is tmp_path's parent
    extract(make_tar([('up', 'symlink', '..'), ('d/', 'dir', None), ('d/up2', 'symlink', '../up/..'),
                      ('d/up2/%s/outside/x' % tmp_path.name, 'file', b'1'),
                      ('up/outside/sentinel', 'file', b'evil')]), layer)
    assert (layer / tmp_path.name / 'outside' / 'x').read_bytes() == b'1'
    assert (layer / 'outside' / 'sentinel').read_bytes() == b'evil'
    assert_outside_untouched(tmp_path, outside)


def test_hostile_hardlink_to_etc_passwd_is_refused(tmp_path, place):
    layer, outside = place
    links = os.stat('/etc/passwd').st_nlink
    with pytest.raises(UnsafeContent, match='hardlink to "/etc/passwd", which does not exist in this layer'):
        extract(make_tar([('h', 'hardlink', '/etc/passwd')]), layer)
    assert os.stat('/etc/passwd').st_nlink == links
    assert os.listdir(str(layer)) == []
    assert_outside_untouched(tmp_path, outside)


def test_hostile_hardlink_to_dotdot_outside_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='hardlink to "../outside/sentinel", which escapes the layer root'):
        extract(make_tar([('h', 'hardlink', '../outside/sentinel')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_hardlink_through_symlink_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='does not exist in this layer'):
        extract(make_tar([('evil', 'symlink', str(outside)), ('h', 'hardlink', 'evil/sentinel')]), layer)
    assert not os.path.lexists(str(layer / 'h'))
    assert_outside_untouched(tmp_path, outside)


def test_hostile_hardlink_through_dotdot_symlink_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='does not exist in this layer'):
        extract(make_tar([('up', 'symlink', '..'), ('h', 'hardlink', 'up/outside/sentinel')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_hardlink_to_directory_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='hardlink to "d", which is a directory'):
        extract(make_tar([('d/', 'dir', None), ('h', 'hardlink', 'd')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_hardlink_to_root_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='which is the layer root'):
        extract(make_tar([('h', 'hardlink', './')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_hardlink_to_symlink_links_the_symlink_itself(tmp_path, place):
    layer, outside = place
    extract(make_tar([('s', 'symlink', str(outside / 'sentinel')), ('h', 'hardlink', 's')]), layer)
    assert os.readlink(str(layer / 'h')) == str(outside / 'sentinel')
    assert os.lstat(str(layer / 'h')).st_ino == os.lstat(str(layer / 's')).st_ino
    assert_outside_untouched(tmp_path, outside)


def test_hostile_whiteout_under_symlinked_parent_stays_inside(tmp_path, place):
    layer, outside = place
    blob = make_tar([('evil', 'symlink', str(outside)), ('evil/.wh.sentinel', 'file', b'')])
    try:
        extract(blob, layer)
    except KernelError as exc:      # kernels before 5.8 let only root make whiteout devices
        assert not IS_ROOT
        assert 'mknod overlay whiteout "%s' % layer in str(exc)
    else:
        made = os.lstat(str(layer / str(outside).lstrip('/') / 'sentinel'))
        assert stat.S_ISCHR(made.st_mode) and made.st_rdev == 0
    assert_outside_untouched(tmp_path, outside)


def test_hostile_whiteout_of_dotdot_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='whiteout that names no file'):
        extract(make_tar([('.wh...', 'file', b'')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_directory_replaced_by_symlink_then_child(tmp_path, place):
    layer, outside = place
    extract(make_tar([('d/', 'dir', None), ('d/old', 'file', b'old'), ('d', 'symlink', str(outside)),
                      ('d/f', 'file', b'evil')]), layer)
    assert os.readlink(str(layer / 'd')) == str(outside)
    assert (layer / str(outside).lstrip('/') / 'f').read_bytes() == b'evil'
    assert_outside_untouched(tmp_path, outside)


def test_hostile_symlink_loop_as_parent_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='meets more than 40 symbolic links'):
        extract(make_tar([('a', 'symlink', 'b'), ('b', 'symlink', 'a'), ('a/x', 'file', b'1')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_self_symlink_loop_is_refused(tmp_path, place):
    layer, outside = place
    with pytest.raises(UnsafeContent, match='symbolic links'):
        extract(make_tar([('loop', 'symlink', 'loop/x'), ('loop/y', 'file', b'1')]), layer)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_file_over_symlink_to_outside_replaces_the_symlink(tmp_path, place):
    layer, outside = place
    extract(make_tar([('link', 'symlink', str(outside / 'sentinel')), ('link', 'file', b'new')]), layer)
    assert not os.path.islink(str(layer / 'link'))
    assert (layer / 'link').read_bytes() == b'new'
    assert_outside_untouched(tmp_path, outside)


def test_hostile_entries_over_symlinks_already_in_the_layer_dir(tmp_path, place):
    layer, outside = place
    os.symlink(str(outside), str(layer / 'pre'))
    os.symlink(str(outside / 'sentinel'), str(layer / 'file'))
    os.symlink(str(outside), str(layer / 'dir'))
    extract(make_tar([('pre/x', 'file', b'1'), ('file', 'file', b'2'), ('dir/', 'dir', None),
                      ('fifo', 'symlink', str(outside / 'sentinel')), ('fifo', 'fifo', None)]), layer)
    assert (layer / str(outside).lstrip('/') / 'x').read_bytes() == b'1'
    assert (layer / 'file').read_bytes() == b'2'
    assert os.path.isdir(str(layer / 'dir')) and not os.path.islink(str(layer / 'dir'))
    assert stat.S_ISFIFO(os.lstat(str(layer / 'fifo')).st_mode)
    assert_outside_untouched(tmp_path, outside)


def test_hostile_file_over_hardlink_does_not_write_through(tmp_path, place):
    layer, outside = place
    extract(make_tar([('a', 'file', b'one'), ('b', 'hardlink', 'a'), ('b', 'file', b'two')]), layer)
    assert (layer / 'a').read_bytes() == b'one'
    assert (layer / 'b').read_bytes() == b'two'
    assert_outside_untouched(tmp_path, outside)


def test_hostile_directory_symlink_swap_does_not_redirect_deletes(tmp_path, place):
    layer, outside = place
    # a file entry over "d" (now a symlink to outside) removes the symlink, never outside's contents
    extract(make_tar([('d', 'symlink', str(outside)), ('d', 'file', b'x')]), layer)
    assert (layer / 'd').read_bytes() == b'x'
    assert_outside_untouched(tmp_path, outside)


# -- import ---------------------------------------------------------------------------------------

def test_import_plain_tar_recompresses_with_fixed_gzip(tmp_path):
    plain = make_tar([('d/', 'dir', None), ('d/f', 'file', b'data' * 1000)])
    out = io.BytesIO()
    digests = layers.import_tar(io.BytesIO(plain), out)
    blob = out.getvalue()
    assert digests.diff_id == 'sha256:' + hashlib.sha256(plain).hexdigest()
    assert digests.digest == 'sha256:' + hashlib.sha256(blob).hexdigest()
    assert digests.size == len(blob)
    assert gzip.decompress(blob) == plain
    assert blob[:10] == b'\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff'


def test_import_gzip_tar_keeps_the_uncompressed_bytes(tmp_path):
    plain = make_tar([('f', 'file', b'x' * 5000)]) + b'after the end marker'
    digests = layers.import_tar(io.BytesIO(gzip.compress(plain, mtime=12345)), io.BytesIO())
    assert digests.diff_id == 'sha256:' + hashlib.sha256(plain).hexdigest()
    assert digests == layers.import_tar(io.BytesIO(plain), io.BytesIO())


def test_import_multi_member_gzip(tmp_path):
    plain = make_tar([('f', 'file', b'x' * 5000)])
    blob = gzip.compress(plain[:700]) + gzip.compress(plain[700:])
    assert layers.import_tar(io.BytesIO(blob), io.BytesIO()).diff_id == \
        'sha256:' + hashlib.sha256(plain).hexdigest()


def test_import_uncompressed_output(tmp_path):
    plain = make_tar([('f', 'file', b'x')])
    out = io.BytesIO()
    digests = layers.import_tar(io.BytesIO(gzip.compress(plain)), out, compression='none')
    assert out.getvalue() == plain
    assert digests.digest == digests.diff_id


def _zstd_frame(data):
    """One zstd frame of raw blocks (no compression needed to make it)."""
    frame = b'\x28\xb5\x2f\xfd\x60' + struct.pack('<H', len(data) - 256)
    return frame + ((len(data) << 3) | 1).to_bytes(3, 'little') + data


def test_import_zstd_needs_the_zstandard_module(tmp_path):
    plain = make_tar([('f', 'file', b'x')])
    try:
        import zstandard  # noqa: F401
    except ImportError:
        with pytest.raises(CtrError, match='"zstandard" is not installed'):
            layers.import_tar(io.BytesIO(_zstd_frame(plain)), io.BytesIO())
    else:
        digests = layers.import_tar(io.BytesIO(_zstd_frame(plain)), io.BytesIO())
        assert digests.diff_id == 'sha256:' + hashlib.sha256(plain).hexdigest()


def _truncated_in_data():
    return make_tar([('f', 'file', b'x' * 5000)])[:2048]


def _truncated_at_member_boundary():
    blob = make_tar([('f', 'file', b'x' * 512)])
    return blob[:blob.index(b'x' * 512) + 512]


CORRUPT = [
    ('empty', b'', 'is empty'),
    ('text', b'this is not a tar archive at all' * 40, 'is not a readable tar archive'),
    ('noise', bytes((i * 151 + 7) % 256 for i in range(4096)), 'is not a readable tar archive'),
    ('cut-in-data', _truncated_in_data(), 'unexpected end of data|truncated'),
    ('cut-at-member-end', _truncated_at_member_boundary(), 'truncated: it ends without the tar end-of-archive'),
    ('garbage-header', make_tar([('f', 'file', b'x')])[:1024] + b'garbage!' * 64, 'invalid tar header'),
    ('cut-gzip', gzip.compress(make_tar([('f', 'file', b'x' * 9000)]), mtime=0)[:-20], 'gzip stream is truncated'),
    ('gzip-junk', gzip.compress(make_tar([('f', 'file', b'x')]), mtime=0) + b'junk', 'trailing garbage'),
    ('bad-deflate', b'\x1f\x8b\x08\x00' + b'\x00' * 6 + b'not deflate data', 'gzip stream is corrupt'),
]


@pytest.mark.parametrize('blob, message', [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_import_refuses_corrupt_archives(blob, message):
    with pytest.raises(CorruptContent, match=message):
        layers.import_tar(io.BytesIO(blob), io.BytesIO())


@pytest.mark.parametrize('blob', [_truncated_in_data(), _truncated_at_member_boundary()],
                         ids=['cut-in-data', 'cut-at-member-end'])
def test_extract_refuses_truncated_archives(tmp_path, blob):
    with pytest.raises(CorruptContent):
        extract(blob, tmp_path)


def test_read_diff_id_of_plain_and_gzip(tmp_path):
    plain = make_tar([('f', 'file', b'x' * 3000)])
    expected = 'sha256:' + hashlib.sha256(plain).hexdigest()
    assert layers.read_diff_id(io.BytesIO(plain)) == expected
    assert layers.read_diff_id(io.BytesIO(gzip.compress(plain))) == expected
    assert layers.open_uncompressed(io.BytesIO(gzip.compress(plain))).read() == plain

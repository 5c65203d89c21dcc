# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layer features that need root: ownership, device nodes, trusted xattrs, overlay
whiteouts, and real overlayfs mounts of extracted layers.

Every mount is made under the test's own temp dir and always unmounted.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import subprocess
import sys
import tarfile

import pytest

_MODULE_UTILS = os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils')
if os.path.abspath(_MODULE_UTILS) not in [os.path.abspath(p) for p in sys.path]:
    sys.path.insert(0, os.path.abspath(_MODULE_UTILS))

from ctr import layers  # noqa: E402
from ctr.errors import Conflict  # noqa: E402

OPAQUE = 'trusted.overlay.opaque'
CLAMP = 1600000000


# -- helpers --------------------------------------------------------------------------------------

def make_tar(entries):
    """Build a tar from (name, kind, extra, pax) tuples: kind in file/dir/symlink."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            name, kind, extra = entry[:3]
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = CLAMP, 0o644
            if len(entry) > 3:
                info.pax_headers = entry[3]
            data = None
            if kind == 'file':
                data = extra or b''
                info.size = len(data)
            elif kind == 'dir':
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == 'symlink':
                info.type, info.linkname = tarfile.SYMTYPE, extra
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return raw.getvalue()


def pack(src, **kwargs):
    out = io.BytesIO()
    digests = layers.pack_tree(str(src), out, **kwargs)
    return digests, out.getvalue()


def extract(blob, dest):
    os.makedirs(str(dest), exist_ok=True)
    return layers.extract_layer(io.BytesIO(blob), str(dest))


def members(blob):
    with tarfile.open(fileobj=io.BytesIO(blob), mode='r:*') as tar:
        return tar.getmembers()


def is_whiteout(path):
    st = os.lstat(str(path))
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def xattr(path, name):
    try:
        return os.getxattr(str(path), name, follow_symlinks=False)
    except OSError:
        return None


def view(root):
    """What a reader of ``root`` sees: relpath -> (type, mode, uid, content or link target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            info = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid)
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as f:
                    info += (f.read(),)
            elif stat.S_ISLNK(st.st_mode):
                info += (os.readlink(path),)
            found[os.path.relpath(path, str(root))] = info
    return found


@contextlib.contextmanager
def overlay(target, lowers, upper=None, work=None):
    """Mount an overlay at ``target`` (under the test's temp dir) and always unmount it."""
    os.makedirs(str(target), exist_ok=True)
    opts = 'lowerdir=' + ':'.join(str(p) for p in lowers)
    if upper is not None:
        opts += ',upperdir=%s,workdir=%s' % (upper, work)
    tuned = opts + ',redirect_dir=off,metacopy=off,index=off'
    done = subprocess.run(['mount', '-t', 'overlay', 'overlay', '-o', tuned, str(target)],
                          stderr=subprocess.PIPE, check=False)
    if done.returncode != 0:    # a kernel that does not know one of the tuning options
        subprocess.run(['mount', '-t', 'overlay', 'overlay', '-o', opts, str(target)], check=True)
    try:
        yield target
    finally:
        subprocess.run(['umount', str(target)], check=True)


# -- ownership, modes, devices, xattrs ------------------------------------------------------------

def test_ownership_round_trips(tmp_path):
    src = tmp_path / 'src'
    (src / 'd').mkdir(parents=True)
    (src / 'd' / 'f').write_bytes(b'x')
    os.symlink('f', str(src / 'd' / 'l'))
    os.chown(str(src / 'd'), 42, 43)
    os.chown(str(src / 'd' / 'f'), 1234, 5678)
    os.lchown(str(src / 'd' / 'l'), 7, 8)
    (src / 'big_ids').write_bytes(b'')
    os.chown(str(src / 'big_ids'), 3000000, 4000000)     # beyond ustar's 7 octal digits: pax records
    blob = pack(src)[1]
    owners = {m.name: (m.uid, m.gid, m.uname, m.gname) for m in members(blob)}
    assert owners == {'d': (42, 43, '', ''), 'd/f': (1234, 5678, '', ''), 'd/l': (7, 8, '', ''),
                      'big_ids': (3000000, 4000000, '', '')}
    dest = tmp_path / 'dest'
    extract(blob, dest)
    assert view(dest) == view(src)
    assert (os.lstat(str(dest / 'd' / 'l')).st_uid, os.lstat(str(dest / 'd' / 'l')).st_gid) == (7, 8)


def test_setuid_and_setgid_survive_chown(tmp_path):
    src = tmp_path / 'src'
    (src / 'shared').mkdir(parents=True)
    (src / 'suid').write_bytes(b'#!/bin/sh\n')
    os.chown(str(src / 'suid'), 1000, 1000)
    os.chmod(str(src / 'suid'), 0o4755)
    os.chown(str(src / 'shared'), 0, 100)
    os.chmod(str(src / 'shared'), 0o2775)
    dest = tmp_path / 'dest'
    extract(pack(src)[1], dest)
    st = os.stat(str(dest / 'suid'))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4755, 1000, 1000)
    st = os.stat(str(dest / 'shared'))
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o2775, 100)


def test_device_nodes_round_trip(tmp_path):
    src = tmp_path / 'src'
    src.mkdir()
    os.mknod(str(src / 'null'), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(str(src / 'loop'), stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.chmod(str(src / 'null'), 0o666)
    os.chmod(str(src / 'loop'), 0o660)
    by_name = {m.name: m for m in members(pack(src)[1])}
    assert by_name['null'].ischr() and (by_name['null'].devmajor, by_name['null'].devminor) == (1, 3)
    assert by_name['loop'].isblk() and (by_name['loop'].devmajor, by_name['loop'].devminor) == (7, 0)
    dest = tmp_path / 'dest'
    extract(pack(src)[1], dest)
    for name, mode, rdev in (('null', stat.S_IFCHR | 0o666, os.makedev(1, 3)),
                             ('loop', stat.S_IFBLK | 0o660, os.makedev(7, 0))):
        st = os.lstat(str(dest / name))
        assert (st.st_mode, st.st_rdev) == (mode, rdev)


def test_trusted_xattrs_round_trip_but_overlay_ones_never_travel(tmp_path):
    src = tmp_path / 'src'
    (src / 'd').mkdir(parents=True)
    (src / 'f').write_bytes(b'x')
    os.setxattr(str(src / 'f'), 'trusted.ctr.test', b'value')
    os.setxattr(str(src / 'd'), OPAQUE, b'y')
    os.setxattr(str(src / 'd'), 'trusted.overlay.impure', b'y')
    blob = pack(src)[1]
    pax = {m.name: m.pax_headers for m in members(blob)}
    assert pax['f'] == {'SCHILY.xattr.trusted.ctr.test': 'value'}
    assert pax['d'] == {}
    dest = tmp_path / 'dest'
    extract(blob, dest)
    assert xattr(dest / 'f', 'trusted.ctr.test') == b'value'
    assert xattr(dest / 'd', OPAQUE) is None


def test_extract_drops_overlay_xattrs_smuggled_in_the_tar(tmp_path):
    blob = make_tar([('d/', 'dir', None, {'SCHILY.xattr.trusted.overlay.redirect': '/etc',
                                          'SCHILY.xattr.trusted.overlay.opaque': 'y'}),
                     ('f', 'file', b'x', {'SCHILY.xattr.trusted.overlay.metacopy': '',
                                          'SCHILY.xattr.trusted.ok': 'fine'})])
    dest = tmp_path / 'dest'
    extract(blob, dest)
    assert os.listxattr(str(dest / 'd')) == []
    assert os.listxattr(str(dest / 'f')) == ['trusted.ok']


# -- whiteouts on extraction ----------------------------------------------------------------------

def test_oci_whiteouts_become_overlay_whiteouts(tmp_path):
    blob = make_tar([('a/', 'dir', None), ('a/.wh.gone', 'file', b''), ('b/', 'dir', None),
                     ('b/.wh..wh..opq', 'file', b''), ('b/new', 'file', b'n'), ('.wh.topfile', 'file', b''),
                     ('c/.wh..wh.plnk', 'file', b'')])
    dest = tmp_path / 'dest'
    extract(blob, dest)
    assert is_whiteout(dest / 'a' / 'gone')
    assert is_whiteout(dest / 'topfile')
    assert xattr(dest / 'b', OPAQUE) == b'y'
    assert (dest / 'b' / 'new').read_bytes() == b'n'
    assert xattr(dest / 'a', OPAQUE) is None
    assert sorted(os.listdir(str(dest))) == ['a', 'b', 'topfile']   # ".wh..wh.plnk" is ignored whole


def test_opaque_marker_before_its_directory_entry(tmp_path):
    dest = tmp_path / 'dest'
    extract(make_tar([('d/.wh..wh..opq', 'file', b''), ('d/', 'dir', None), ('d/x', 'file', b'1')]), dest)
    assert xattr(dest / 'd', OPAQUE) == b'y'
    assert (dest / 'd' / 'x').read_bytes() == b'1'


@pytest.mark.parametrize('entries', [
    [('.wh.d', 'file', b''), ('d/', 'dir', None), ('d/x', 'file', b'1')],
    [('d/', 'dir', None), ('d/x', 'file', b'1'), ('.wh.d', 'file', b'')],
    [('.wh.d', 'file', b''), ('d/x', 'file', b'1')],
])
def test_whiteout_and_same_layer_directory_give_an_opaque_directory(tmp_path, entries):
    dest = tmp_path / 'dest'
    extract(make_tar(entries), dest)
    assert xattr(dest / 'd', OPAQUE) == b'y'
    assert (dest / 'd' / 'x').read_bytes() == b'1'


@pytest.mark.parametrize('entries', [
    [('.wh.f', 'file', b''), ('f', 'file', b'mine')],
    [('f', 'file', b'mine'), ('.wh.f', 'file', b'')],
])
def test_whiteout_never_hides_a_file_of_its_own_layer(tmp_path, entries):
    dest = tmp_path / 'dest'
    extract(make_tar(entries), dest)
    assert (dest / 'f').read_bytes() == b'mine'


def test_whiteouts_through_symlinked_parents_stay_inside(tmp_path):
    outside = tmp_path / 'outside'
    (outside / 'sub').mkdir(parents=True)
    (outside / 'sentinel').write_bytes(b'keep')
    dest = tmp_path / 'dest'
    extract(make_tar([('evil', 'symlink', str(outside)), ('evil/.wh.sentinel', 'file', b''),
                      ('evil/sub/.wh..wh..opq', 'file', b''), ('up', 'symlink', '..'),
                      ('up/.wh..wh..opq', 'file', b'')]), dest)
    inside = dest / str(outside).lstrip('/')
    assert is_whiteout(inside / 'sentinel')
    assert xattr(inside / 'sub', OPAQUE) == b'y'
    assert xattr(dest, OPAQUE) == b'y'          # '..' stops at the layer root
    assert (outside / 'sentinel').read_bytes() == b'keep'
    assert xattr(outside / 'sub', OPAQUE) is None
    assert xattr(tmp_path, OPAQUE) is None


# -- whiteouts on packing -------------------------------------------------------------------------

def test_pack_overlay_upper_dir_makes_oci_whiteouts(tmp_path):
    upper = tmp_path / 'upper'
    (upper / 'opq' / 'z').mkdir(parents=True)
    (upper / 'opq' / 'child').write_bytes(b'c')
    (upper / 'kept').write_bytes(b'k')
    os.mknod(str(upper / 'gone'), stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(str(upper / 'opq' / 'z' / 'deep'), stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(str(upper / 'realdev'), stat.S_IFCHR | 0o600, os.makedev(1, 3))
    os.setxattr(str(upper / 'opq'), OPAQUE, b'y')
    os.setxattr(str(upper / 'kept'), 'trusted.overlay.origin', b'\x00fh')
    blob = pack(upper, overlay_whiteouts=True)[1]
    by_name = {m.name: m for m in members(blob)}
    assert [m.name for m in members(blob)] == [
        '.wh.gone', 'kept', 'opq', 'opq/.wh..wh..opq', 'opq/child', 'opq/z', 'opq/z/.wh.deep', 'realdev']
    for name in ('.wh.gone', 'opq/.wh..wh..opq', 'opq/z/.wh.deep'):
        assert by_name[name].isreg() and by_name[name].size == 0
    assert by_name['realdev'].ischr()
    assert all(not k.startswith('SCHILY.xattr.trusted.overlay') for m in by_name.values() for k in m.pax_headers)
    dest = tmp_path / 'dest'
    extract(blob, dest)
    assert is_whiteout(dest / 'gone') and is_whiteout(dest / 'opq' / 'z' / 'deep')
    assert xattr(dest / 'opq', OPAQUE) == b'y'
    assert not is_whiteout(dest / 'realdev')


def test_pack_refuses_overlay_metacopy_and_redirect(tmp_path):
    upper = tmp_path / 'upper'
    upper.mkdir()
    (upper / 'f').write_bytes(b'')
    os.setxattr(str(upper / 'f'), 'trusted.overlay.metacopy', b'')
    with pytest.raises(Conflict, match='metacopy=off'):
        pack(upper, overlay_whiteouts=True)


# -- real overlay mounts --------------------------------------------------------------------------

def _base_tree(root):
    for d in ('keep', 'gone_dir/sub', 'opaque_dir'):
        (root / d).mkdir(parents=True)
    for f, data in (('keep/a', b'a'), ('keep/b', b'b'), ('gone_file', b'g'), ('gone_dir/sub/x', b'x'),
                    ('opaque_dir/old', b'old')):
        (root / f).write_bytes(data)


def test_extracted_whiteouts_hide_lower_files_in_an_overlay_mount(tmp_path):
    base = tmp_path / 'base'
    base.mkdir()
    _base_tree(base)
    lower1 = tmp_path / 'layers' / '1'
    lower2 = tmp_path / 'layers' / '2'
    extract(pack(base)[1], lower1)
    extract(make_tar([('keep/.wh.a', 'file', b''), ('.wh.gone_file', 'file', b''), ('.wh.gone_dir', 'file', b''),
                      ('opaque_dir/', 'dir', None), ('opaque_dir/.wh..wh..opq', 'file', b''),
                      ('opaque_dir/new', 'file', b'new'), ('added', 'file', b'added')]), lower2)
    with overlay(tmp_path / 'mnt' / 'merged', [lower2, lower1]) as merged:
        assert sorted(os.listdir(str(merged))) == ['added', 'keep', 'opaque_dir']
        assert sorted(os.listdir(str(merged / 'keep'))) == ['b']
        assert sorted(os.listdir(str(merged / 'opaque_dir'))) == ['new']
        assert (merged / 'opaque_dir' / 'new').read_bytes() == b'new'
        assert (merged / 'keep' / 'b').read_bytes() == b'b'
    assert not os.path.ismount(str(tmp_path / 'mnt' / 'merged'))


def test_packed_upper_dir_reproduces_the_merged_view(tmp_path):
    """Change files through a real overlay, pack its upper dir, and stack the result again."""
    base = tmp_path / 'base'
    base.mkdir()
    _base_tree(base)
    lower = tmp_path / 'layers' / 'base'
    extract(pack(base)[1], lower)
    upper, work = tmp_path / 'c' / 'upper', tmp_path / 'c' / 'work'
    upper.mkdir(parents=True)
    work.mkdir(parents=True)
    with overlay(tmp_path / 'c' / 'merged', [lower], upper, work) as merged:
        os.unlink(str(merged / 'keep' / 'a'))
        os.unlink(str(merged / 'gone_file'))
        subprocess.run(['rm', '-rf', str(merged / 'gone_dir'), str(merged / 'opaque_dir')], check=True)
        (merged / 'opaque_dir').mkdir()
        (merged / 'opaque_dir' / 'new').write_bytes(b'new')
        (merged / 'keep' / 'b').write_bytes(b'changed')
        (merged / 'added').write_bytes(b'added')
        expected = view(merged)
    digests, blob = pack(upper, overlay_whiteouts=True)
    names = [m.name for m in members(blob)]
    assert '.wh.gone_file' in names and '.wh.gone_dir' in names and 'keep/.wh.a' in names
    assert 'opaque_dir/.wh..wh..opq' in names
    lower2 = tmp_path / 'layers' / 'commit'
    assert extract(blob, lower2) == digests.diff_id
    with overlay(tmp_path / 'check' / 'merged', [lower2, lower]) as merged:
        assert view(merged) == expected

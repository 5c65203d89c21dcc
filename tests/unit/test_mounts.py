# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr.runtime.mounts without root: Docker's volumes/mounts/tmpfs syntaxes, the HostConfig and
inspect shapes, mount order, and making mount points inside a hostile rootfs (no mount is made).
"""

from __future__ import annotations

import errno
import os
import stat
import sys

import pytest

_MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))
if _MODULE_UTILS not in [os.path.abspath(p) for p in sys.path]:
    sys.path.insert(0, _MODULE_UTILS)

from ctr.errors import CtrError, InvalidArgument  # noqa: E402
from ctr.runtime import mounts, mountspec  # noqa: E402
from ctr.runtime.mountspec import MountSpec  # noqa: E402


def bind(source, target, origin='volumes', **kw):
    return MountSpec('bind', source, target, origin=origin, **kw)


def tmpfs(target, origin='tmpfs', **kw):
    return MountSpec('tmpfs', '', target, origin=origin, **kw)


# -- volumes: "/host:/ctr[:mode]" ---------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('/srv/data:/data', bind('/srv/data', '/data')),
    ('/srv/data/:/data/', bind('/srv/data', '/data')),
    ('//srv//x/./:/a/../b', bind('/srv/x', '/b')),
    ('/srv:/data:ro', bind('/srv', '/data', read_only=True, mode='ro')),
    ('/srv:/data:rw', bind('/srv', '/data', mode='rw')),
    ('/srv:/data:ro,rslave', bind('/srv', '/data', read_only=True, propagation='rslave', mode='ro,rslave')),
    ('/srv:/data:shared', bind('/srv', '/data', propagation='shared', mode='shared')),
    ('/srv:/data:Z', bind('/srv', '/data', mode='Z')),
    ('/srv:/data:z,ro,private,cached',
     bind('/srv', '/data', read_only=True, propagation='private', mode='z,ro,private,cached')),
    ('/etc/hosts:/etc/hosts:ro', bind('/etc/hosts', '/etc/hosts', read_only=True, mode='ro')),
    ('/x:/proc/cpuinfo', bind('/x', '/proc/cpuinfo')),
    ('/x:/dev/fuse', bind('/x', '/dev/fuse')),
])
def test_volume_entries(text, expected):
    assert mountspec.parse_volume(text) == expected


@pytest.mark.parametrize('text, error, words', [
    ('', InvalidArgument, 'is not of the form'),
    (42, InvalidArgument, 'is not of the form'),
    ('/a:/b:ro:x', InvalidArgument, 'more than three'),
    (':/data', InvalidArgument, 'host path of ":/data" is empty'),
    ('./data:/data', InvalidArgument, 'host path "./data" of "./data:/data" must be absolute'),
    ('data/sub:/data', InvalidArgument, 'must be absolute'),
    ('~/data:/data', InvalidArgument, 'must be absolute'),
    ('/srv:data', InvalidArgument, 'container path "data" of "/srv:data" must be absolute'),
    ('/srv:/', InvalidArgument, 'cannot be "/"'),
    ('/srv:/a/..', InvalidArgument, 'cannot be "/"'),
    ('/srv:/data:rx', InvalidArgument, 'mode "rx" of "/srv:/data:rx" is not valid'),
    ('/srv:/data:ro,rw', InvalidArgument, 'is not valid'),
    ('/srv:/data:rshared,rslave', InvalidArgument, 'is not valid'),
    ('/srv:/data:nocopy', InvalidArgument, '"nocopy" of "/srv:/data:nocopy" applies to volumes'),
    ('/data:ro', InvalidArgument, '"/data:ro" has no host path'),
    ('/srv:/proc', InvalidArgument, 'inside /proc'),
    ('/srv:/proc/sys/kernel', InvalidArgument, 'inside /proc'),
    ('/srv\0:/data', InvalidArgument, 'NUL'),
    ('data', InvalidArgument, 'must be absolute'),
    ('my data:/data', InvalidArgument, 'must be absolute (or a volume name'),
    ('mydata:/data:rshared', InvalidArgument, 'a volume takes no propagation'),
])
def test_bad_volume_entries(text, error, words):   # pylint: disable=unused-argument
    with pytest.raises(error) as err:
        mountspec.parse_volume(text)
    assert words in err.value.msg
    assert err.value.msg.startswith('volumes: ')


# -- mounts: dicts ---------------------------------------------------------------------------------------

@pytest.fixture
def src(tmp_path):
    path = tmp_path / 'src'
    path.mkdir()
    return str(path)


@pytest.mark.parametrize('entry, expected', [
    ({'type': 'bind', 'source': '{src}', 'target': '/data'}, bind('{src}', '/data', 'mounts')),
    ({'type': 'bind', 'source': '{src}/', 'target': '/data/', 'read_only': True, 'propagation': 'rslave',
      'tmpfs_size': None, 'tmpfs_mode': None}, bind('{src}', '/data', 'mounts', read_only=True, propagation='rslave')),
    ({'type': 'bind', 'source': '{src}', 'target': '/data', 'propagation': None}, bind('{src}', '/data', 'mounts')),
    ({'type': 'tmpfs', 'target': '/run'}, tmpfs('/run', 'mounts')),
    ({'type': 'tmpfs', 'target': '/run', 'tmpfs_size': '64m'}, tmpfs('/run', 'mounts', options=('size=67108864',))),
    ({'type': 'tmpfs', 'target': '/run', 'tmpfs_size': '1.5GiB', 'tmpfs_mode': '1777'},
     tmpfs('/run', 'mounts', options=('size=1610612736', 'mode=1777'))),
    ({'type': 'tmpfs', 'target': '/run', 'tmpfs_size': 4096, 'tmpfs_mode': 0o700, 'read_only': True},
     tmpfs('/run', 'mounts', read_only=True, options=('size=4096', 'mode=700'))),
    ({'type': 'tmpfs', 'target': '/run', 'source': '', 'tmpfs_size': 0, 'tmpfs_mode': '0755'},
     tmpfs('/run', 'mounts', options=('mode=755',))),
])
def test_mount_entries(entry, expected, src):
    entry = {k: v.replace('{src}', src) if isinstance(v, str) else v for k, v in entry.items()}
    expected = MountSpec(**dict(expected.__dict__, source=expected.source.replace('{src}', src)))
    assert mountspec.parse_mount(entry) == expected


@pytest.mark.parametrize('entry, error, words', [
    ('/a:/b', InvalidArgument, 'is not a dict'),
    ({'type': 'bind', 'source': '/', 'target': '/x', 'readonly': True}, InvalidArgument, 'unknown key "readonly"'),
    ({'source': '/srv', 'target': '/x'}, InvalidArgument, 'volume name \'/srv\' of the mount on "/x" is not a name'),
    ({'type': 'volume', 'source': 'vv', 'target': '/x', 'propagation': 'rslave'}, InvalidArgument,
     'a volume takes no propagation'),
    ({'type': 'volume', 'target': '/x', 'no_copy': 'yes'}, InvalidArgument, 'no_copy \'yes\''),
    ({'type': 'bind', 'source': '/', 'target': '/x', 'no_copy': True}, InvalidArgument, 'no_copy applies to volumes'),
    ({'type': 'npipe', 'source': '/', 'target': '/x'}, InvalidArgument, 'type "npipe" of the mount on "/x"'),
    ({'type': 'bind', 'source': '/'}, InvalidArgument, 'container path is missing'),
    ({'type': 'bind', 'source': '/', 'target': 'x'}, InvalidArgument, 'container path "x"'),
    ({'type': 'tmpfs', 'target': '/'}, InvalidArgument, 'cannot be "/"'),
    ({'type': 'bind', 'target': '/x'}, InvalidArgument, 'host path is missing'),
    ({'type': 'bind', 'source': 'rel', 'target': '/x'}, InvalidArgument, 'host path "rel"'),
    ({'type': 'bind', 'source': '/no/such/dir', 'target': '/x'}, InvalidArgument,
     'bind source path "/no/such/dir" of the mount on "/x" does not exist'),
    ({'type': 'bind', 'source': '/', 'target': '/x', 'propagation': 'sideways'}, InvalidArgument,
     'propagation "sideways"'),
    ({'type': 'bind', 'source': '/', 'target': '/x', 'read_only': 'yes'}, InvalidArgument, 'not a boolean'),
    ({'type': 'bind', 'source': '/', 'target': '/x', 'tmpfs_size': '1m'}, InvalidArgument,
     'a bind mount takes no tmpfs_size'),
    ({'type': 'tmpfs', 'source': '/srv', 'target': '/x'}, InvalidArgument, 'a tmpfs takes no source'),
    ({'type': 'tmpfs', 'target': '/x', 'propagation': 'rshared'}, InvalidArgument, 'a tmpfs takes no propagation'),
    ({'type': 'tmpfs', 'target': '/x', 'tmpfs_size': 'big'}, InvalidArgument, 'tmpfs_size \'big\''),
    ({'type': 'tmpfs', 'target': '/x', 'tmpfs_size': -1}, InvalidArgument, 'tmpfs_size -1'),
    ({'type': 'tmpfs', 'target': '/x', 'tmpfs_mode': '999'}, InvalidArgument, 'tmpfs_mode \'999\''),
    ({'type': 'tmpfs', 'target': '/x', 'tmpfs_mode': 0o17777}, InvalidArgument, 'not an octal mode'),
    ({'type': 'tmpfs', 'target': '/proc/sys'}, InvalidArgument, 'inside /proc'),
])
def test_bad_mount_entries(entry, error, words):
    with pytest.raises(error) as err:
        mountspec.parse_mount(entry)
    assert words in err.value.msg
    assert err.value.msg.startswith('mounts: ')


def test_a_bind_source_must_exist_only_when_asked():
    entry = {'type': 'bind', 'source': '/no/such/dir', 'target': '/x'}
    assert mountspec.parse_mount(entry, check_source=False) == bind('/no/such/dir', '/x', 'mounts')


# -- tmpfs: "/ctr[:options]" -----------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('/run', tmpfs('/run')),
    ('/run/', tmpfs('/run')),
    ('/run:', tmpfs('/run')),
    ('/run:size=64m,mode=1777', tmpfs('/run', options=('size=64m', 'mode=1777'))),
    ('/run:ro,exec', tmpfs('/run', read_only=True, options=('exec',))),
    ('/run:rw,size=10%,uid=1000,gid=1000,nr_inodes=1k,noatime', tmpfs(
        '/run', options=('size=10%', 'uid=1000', 'gid=1000', 'nr_inodes=1k', 'noatime'))),
    ('/run: size=1g , suid', tmpfs('/run', options=('size=1g', 'suid'))),
])
def test_tmpfs_entries(text, expected):
    assert mountspec.parse_tmpfs(text) == expected


@pytest.mark.parametrize('text, words', [
    (7, 'is not of the form'),
    ('run', 'container path "run"'),
    ('/', 'cannot be "/"'),
    ('/run:size=', 'option "size" of the tmpfs on "/run" has an invalid value ""'),
    ('/run:size=lots', 'invalid value "lots"'),
    ('/run:mode=8', 'option "mode"'),
    ('/run:uid=root', 'option "uid"'),
    ('/run:bogus', 'unknown option "bogus" for the tmpfs on "/run"'),
    ('/run:mpol=default', 'unknown option "mpol=default"'),
    ('/proc/acpi', 'inside /proc'),
])
def test_bad_tmpfs_entries(text, words):
    with pytest.raises(InvalidArgument) as err:
        mountspec.parse_tmpfs(text)
    assert words in err.value.msg and err.value.msg.startswith('tmpfs: ')


# -- all three, and the CLI's --mount -------------------------------------------------------------------

@pytest.mark.parametrize('volumes, entries, tmpfs_, option', [
    (['/a:/data', '/b:/data/'], None, None, 'volumes'),
    (['/a:/data'], None, ['/data'], 'tmpfs'),
    (None, [{'type': 'tmpfs', 'target': '/x/../data'}], ['/data:size=1m'], 'tmpfs'),
    (['/a:/data'], [{'type': 'tmpfs', 'target': '/data'}], None, 'mounts'),
])
def test_a_target_is_used_once(volumes, entries, tmpfs_, option):
    with pytest.raises(InvalidArgument) as err:
        mountspec.parse_all(volumes, entries, tmpfs_)
    assert err.value.msg.startswith('%s: "/data" is already the target of a mount' % option)


@pytest.mark.parametrize('option, value', [('volumes', '/a:/b'), ('mounts', {'type': 'tmpfs'}), ('tmpfs', '/t')])
def test_each_option_is_a_list(option, value):
    with pytest.raises(InvalidArgument) as err:
        mountspec.parse_all(**{option: value})
    assert err.value.msg.startswith(option + ': expected a list')


def test_nothing_given_is_no_mount():
    assert mountspec.parse_all() == [] and mountspec.parse_all([], [], []) == []


@pytest.mark.parametrize('text, expected', [
    ('type=bind,source=/a,target=/b,readonly', {'type': 'bind', 'source': '/a', 'target': '/b', 'read_only': True}),
    ('type=bind,src=/a,dst=/b,ro=false', {'type': 'bind', 'source': '/a', 'target': '/b', 'read_only': False}),
    ('type=bind,source=/a,destination=/b,readonly=1,bind-propagation=rslave,consistency=cached',
     {'type': 'bind', 'source': '/a', 'target': '/b', 'read_only': True, 'propagation': 'rslave'}),
    ('type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770',
     {'type': 'tmpfs', 'target': '/t', 'tmpfs_size': '1m', 'tmpfs_mode': '1770'}),
    ('target=/v', {'target': '/v'}),
])
def test_the_cli_mount_flag(text, expected):
    assert mountspec.parse_mount_flag(text) == expected


@pytest.mark.parametrize('text, error, words', [
    ('type=bind,source=/a,target=/b,foo=bar', InvalidArgument, 'unexpected field "foo=bar"'),
    ('type=bind,source,target=/b', InvalidArgument, 'unexpected field "source"'),
    ('type=bind,source=/a,target=/b,readonly=maybe', InvalidArgument, 'readonly "maybe"'),
])
def test_bad_cli_mount_flags(text, error, words):
    with pytest.raises(error) as err:
        mountspec.parse_mount_flag(text)
    assert words in err.value.msg


# -- HostConfig and inspect ------------------------------------------------------------------------------

def _sample(src):
    return mountspec.parse_all(
        volumes=['/srv/www:/var/www:ro', '/srv/logs/:/var/log/app', '/srv/x:/x:z,rshared'],
        mounts=[{'type': 'bind', 'source': src, 'target': '/data', 'read_only': True, 'propagation': 'rslave'},
                {'type': 'bind', 'source': src, 'target': '/plain'},
                {'type': 'tmpfs', 'target': '/cache', 'tmpfs_size': '64m', 'tmpfs_mode': '1770'},
                {'type': 'tmpfs', 'target': '/scratch'}],
        tmpfs=['/run:size=64m,mode=755', '/tmp:ro,exec', '/var/tmp'])


def test_host_config_is_dockers_shape(src):
    assert mountspec.to_host_config(_sample(src)) == {
        'Binds': ['/srv/www:/var/www:ro', '/srv/logs:/var/log/app', '/srv/x:/x:z,rshared'],
        'Mounts': [
            {'Type': 'bind', 'Source': src, 'Target': '/data', 'ReadOnly': True, 'BindOptions': {'Propagation': 'rslave'}},
            {'Type': 'bind', 'Source': src, 'Target': '/plain'},
            {'Type': 'tmpfs', 'Target': '/cache', 'TmpfsOptions': {'SizeBytes': 64 << 20, 'Mode': 0o1770}},
            {'Type': 'tmpfs', 'Target': '/scratch'},
        ],
        'Tmpfs': {'/run': 'size=64m,mode=755', '/tmp': 'exec,ro', '/var/tmp': ''},
    }
    assert mountspec.to_host_config([]) == {'Binds': [], 'Mounts': [], 'Tmpfs': {}}


def test_host_config_round_trips(src):
    specs = _sample(src)
    host_config = dict(mountspec.to_host_config(specs), NetworkMode='none')
    assert mountspec.from_host_config(host_config) == specs
    assert mountspec.from_host_config({}) == [] and mountspec.from_host_config({'Binds': None}) == []


def test_round_trip_does_not_need_the_bind_source_any_more(tmp_path):
    gone = tmp_path / 'gone'
    gone.mkdir()
    specs = mountspec.parse_all(mounts=[{'type': 'bind', 'source': str(gone), 'target': '/g'}])
    gone.rmdir()
    assert mountspec.from_host_config(mountspec.to_host_config(specs)) == specs


def test_inspect_mounts_is_dockers_shape(src):
    assert mountspec.inspect_mounts(_sample(src)) == [
        {'Type': 'bind', 'Source': '/srv/www', 'Destination': '/var/www', 'Mode': 'ro', 'RW': False,
         'Propagation': 'rprivate'},
        {'Type': 'bind', 'Source': '/srv/logs', 'Destination': '/var/log/app', 'Mode': '', 'RW': True,
         'Propagation': 'rprivate'},
        {'Type': 'bind', 'Source': '/srv/x', 'Destination': '/x', 'Mode': 'z,rshared', 'RW': True,
         'Propagation': 'rshared'},
        {'Type': 'bind', 'Source': src, 'Destination': '/data', 'Mode': '', 'RW': False, 'Propagation': 'rslave'},
        {'Type': 'bind', 'Source': src, 'Destination': '/plain', 'Mode': '', 'RW': True, 'Propagation': 'rprivate'},
        {'Type': 'tmpfs', 'Source': '', 'Destination': '/cache', 'Mode': '', 'RW': True, 'Propagation': ''},
        {'Type': 'tmpfs', 'Source': '', 'Destination': '/scratch', 'Mode': '', 'RW': True, 'Propagation': ''},
    ]


@pytest.mark.parametrize('targets, order', [
    (['/a/b/c', '/a', '/z', '/a/b'], ['/a', '/z', '/a/b', '/a/b/c']),
    (['/dev/fuse', '/data', '/data/cache/x'], ['/data', '/dev/fuse', '/data/cache/x']),
    (['/b', '/a'], ['/b', '/a']),
])
def test_shallow_targets_are_mounted_first(targets, order):
    specs = [tmpfs(t) for t in targets]
    assert [s.target for s in mounts.sort_for_mounting(specs)] == order


# -- mount points inside a hostile rootfs ---------------------------------------------------------------

@pytest.fixture
def hostile(tmp_path):
    """A rootfs whose links all try to lead out of it; ``outside`` is a sentinel dir of the 'host'."""
    outside = tmp_path / 'outside'
    outside.mkdir()
    root = tmp_path / 'deep' / 'er' / 'rootfs'
    (root / 'etc').mkdir(parents=True)
    (root / 'file').write_text('x')
    links = {'data': '/etc', 'up': '../../../..', 'out': str(outside), 'abs': '/', 'dangling': '/made/here',
             'loop': 'loop', 'relup': 'etc/../../../outside', 'tofile': '/file'}
    for name, target in links.items():
        os.symlink(target, root / name)
    fd = os.open(str(root), os.O_RDONLY | os.O_DIRECTORY)
    yield root, fd, outside
    os.close(fd)
    assert os.listdir(outside) == []
    assert sorted(os.listdir(tmp_path)) == ['deep', 'outside']
    assert os.listdir(tmp_path / 'deep' / 'er') == ['rootfs']


def _same(fd, path):
    a, b = os.fstat(fd), os.lstat(path)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@pytest.mark.parametrize('target, directory, made', [
    ('/data/conf.d', True, 'etc/conf.d'),
    ('/data/app.conf', False, 'etc/app.conf'),
    ('/up/escaped', True, 'escaped'),
    ('/up/up/../a/b/c', True, 'a/b/c'),
    ('/out/x', True, '{outside}/x'),
    ('/relup/y', True, 'outside/y'),
    ('/dangling', True, 'made/here'),
    ('/dangling/deeper', False, 'made/here/deeper'),
    ('/etc', True, 'etc'),
    ('/tofile', False, 'file'),
])
def test_mount_points_are_made_inside_the_rootfs(hostile, target, directory, made):
    root, root_fd, outside = hostile
    made = made.replace('{outside}', str(outside).lstrip('/'))
    fd = mounts.open_target(root_fd, target, directory)
    try:
        path = root / made
        assert _same(fd, path)
        assert stat.S_ISDIR(os.lstat(path).st_mode) == directory
    finally:
        os.close(fd)
    fd = mounts.open_target(root_fd, target, directory)        # a second time: found, nothing new
    os.close(fd)


@pytest.mark.parametrize('target, code', [
    ('/file/x', errno.ENOTDIR),
    ('/tofile/x', errno.ENOTDIR),
    ('/loop/x', errno.ELOOP),
])
def test_mount_points_that_cannot_be_made(hostile, target, code):
    _root, root_fd, _outside = hostile
    with pytest.raises(OSError) as err:
        mounts.open_target(root_fd, target, True)
    assert err.value.errno == code


@pytest.mark.parametrize('spec, words', [
    (tmpfs('/abs'), 'mount target "/abs" resolves to the root of the container'),
    (tmpfs('/up/up'), 'resolves to the root of the container'),
    (tmpfs('/tofile'), 'mount target "/tofile" is not a directory in the image'),
    (bind('/etc/hostname', '/data'), 'mount target "/data" is a directory in the image, but the bind source'),
])
def test_mount_points_of_the_wrong_kind_are_refused(hostile, spec, words):
    _root, root_fd, _outside = hostile
    with pytest.raises(CtrError) as err:
        mounts._open_mount_point(root_fd, spec, spec.type == 'tmpfs')     # pylint: disable=protected-access
    assert words in err.value.msg


# -- volumes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('/data', MountSpec('volume', '', '/data', origin='volumes')),
    ('mydata:/data', MountSpec('volume', 'mydata', '/data', origin='volumes')),
    ('my.data_1:/data/:ro,nocopy', MountSpec('volume', 'my.data_1', '/data', read_only=True, origin='volumes',
                                             mode='ro,nocopy', no_copy=True)),
])
def test_volume_mounts_named_and_anonymous(text, expected):
    assert mountspec.parse_volume(text) == expected
    assert mountspec.from_host_config(mountspec.to_host_config([expected])) == [expected]


def test_volume_mounts_from_the_mounts_option_and_the_cli_flag():
    spec = mountspec.parse_mount({'type': 'volume', 'source': 'vv', 'target': '/v', 'read_only': True,
                                  'no_copy': True})
    assert spec == MountSpec('volume', 'vv', '/v', read_only=True, origin='mounts', no_copy=True)
    assert mountspec.to_host_config([spec])['Mounts'] == [
        {'Type': 'volume', 'Source': 'vv', 'Target': '/v', 'ReadOnly': True, 'VolumeOptions': {'NoCopy': True}}]
    assert mountspec.from_host_config(mountspec.to_host_config([spec])) == [spec]
    assert mountspec.parse_mount({'target': '/anon'}) == MountSpec('volume', '', '/anon', origin='mounts')
    assert mountspec.parse_mount_flag('type=volume,source=v,target=/v,volume-nocopy') == {
        'type': 'volume', 'source': 'v', 'target': '/v', 'no_copy': True}


def test_inspect_shows_volumes_by_name_and_mountpoint():
    specs = [mountspec.parse_volume('data:/d:ro'), mountspec.parse_volume('/anon')]
    shown = mountspec.inspect_mounts(specs, lambda s: (s.source or 'f' * 64, '/v/%s/_data' % (s.source or 'f' * 64)))
    assert shown[0] == {'Type': 'volume', 'Name': 'data', 'Source': '/v/data/_data', 'Destination': '/d',
                        'Driver': 'local', 'Mode': 'ro', 'RW': False, 'Propagation': ''}
    assert shown[1]['Name'] == 'f' * 64 and shown[1]['RW'] is True

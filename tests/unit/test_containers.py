# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container records and rootfs paths (no root needed)."""

from __future__ import annotations

import json
import os

import pytest

from ctr.errors import Conflict, InvalidArgument, NotFound
from ctr.runtime import rootfs
from ctr.runtime.containers import Container, ContainerStore, State, new_id, validate_name


def record(name, **kw):
    return Container(Id=kw.get('Id', new_id()), Name=name, Created='2026-01-01T00:00:00Z', Image='sha256:' + 'a' * 64,
                     ImageName='busybox', Path='sh', Args=[], Config={'Cmd': ['sh']}, HostConfig={})


@pytest.mark.parametrize('name', ['web', 'web-1', 'a.b_c', '/web', 'X' * 253])
def test_valid_names(name):
    assert validate_name(name) == name.lstrip('/')


@pytest.mark.parametrize('name', ['', '-web', '.web', 'we b', 'web/1', 'X' * 254, 'ünï'])
def test_invalid_names(name):
    with pytest.raises(InvalidArgument) as err:
        validate_name(name)
    assert 'not a valid container name' in err.value.msg


def test_create_find_state_remove(store_root):
    store = ContainerStore(str(store_root))
    c = record('web')
    directory = store.create(c)
    assert oct(os.stat(directory).st_mode & 0o777) == '0o700'
    with open(os.path.join(directory, 'config.json')) as f:
        assert json.load(f)['Name'] == 'web'
    for text in ('web', '/web', c.Id, c.Id[:12], c.Id[:3]):
        assert store.get(text).Id == c.Id
    with pytest.raises(Conflict):
        store.create(record('web'))
    c.State = State(Status='running', Running=True, Pid=42)
    store.save_state(c)
    assert store.get('web').State.Pid == 42
    store.remove_record(c)
    assert store.find('web') is None
    with pytest.raises(NotFound):
        store.get('web')
    assert store.list() == []


def test_ambiguous_prefix(store_root):
    store = ContainerStore(str(store_root))
    store.create(record('a', Id='ab' + '0' * 62))
    store.create(record('b', Id='ab' + '1' * 62))
    with pytest.raises(InvalidArgument):
        store.find('ab')
    assert store.find('ab0').Name == 'a'


def test_rootfs_paths_and_graph_driver(tmp_path):
    p = rootfs.paths(str(tmp_path / 'c'), ['/l/bottom', '/l/top'])
    assert p.lower == [str(tmp_path / 'c' / 'init'), '/l/top', '/l/bottom']
    data = p.graph_driver()['Data']
    assert data['LowerDir'].split(':')[0].endswith('/init')
    assert data['MergedDir'].endswith('/merged') and data['UpperDir'].endswith('/upper')


def test_prepare_writes_the_init_layer(tmp_path):
    p = rootfs.prepare(str(tmp_path / 'c'), ['/l/one'], 'abcdef012345', resolv_text='nameserver 10.0.0.1\n')
    with open(os.path.join(p.init, 'etc', 'hostname')) as f:
        assert f.read() == 'abcdef012345\n'
    with open(os.path.join(p.init, 'etc', 'hosts')) as f:
        assert '127.0.0.1\tlocalhost' in f.read()
    assert os.path.isdir(p.upper) and os.path.isdir(p.work) and os.path.isdir(p.merged)


def test_overlay_options_switch_features_off_and_refuse_overlong_data(tmp_path):
    features = tmp_path / 'params'
    features.mkdir()
    (features / 'redirect_dir').write_text('Y')
    p = rootfs.paths('/c', ['/l/%02d' % i for i in range(3)])
    data = rootfs.overlay_options(p, str(features))
    assert data.startswith('lowerdir=/c/init:/l/02:/l/01:/l/00,upperdir=/c/upper,workdir=/c/work')
    assert data.endswith(',redirect_dir=off') and 'metacopy' not in data
    many = rootfs.paths('/c', ['/var/lib/ctr/layers/' + '%064d' % i for i in range(60)])
    with pytest.raises(Exception) as err:
        rootfs.overlay_options(many, str(features))
    assert 'too many layers' in str(err.value)


def test_a_create_or_removal_killed_half_way_leaves_nothing_behind(tmp_path):
    from ctr.runtime.containers import Container, ContainerStore, new_id
    store = ContainerStore(str(tmp_path))
    first = Container(Id=new_id(), Name='a', Created='now', Image='sha256:' + '0' * 64, ImageName='x', Path='sh',
                      Args=[], Config={}, HostConfig={})
    store.create(first)
    base = tmp_path / 'containers'
    (base / ('.tmp-' + new_id())).mkdir()                    # a create killed before its rename
    half_removed = base / new_id()
    half_removed.mkdir()
    (half_removed / 'state.json').write_text('{}')           # a removal killed after config.json went
    second = Container(Id=new_id(), Name='b', Created='now', Image='sha256:' + '0' * 64, ImageName='x', Path='sh',
                       Args=[], Config={}, HostConfig={})
    store.create(second)
    assert sorted(p.name for p in base.iterdir()) == sorted([first.Id, second.Id])
    assert [c.Name for c in store.list()] == ['a', 'b'] or sorted(c.Name for c in store.list()) == ['a', 'b']

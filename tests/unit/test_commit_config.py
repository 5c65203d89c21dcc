# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Committing a container, without root: the config a commit writes (moby's rules), what its layer leaves
out, and commits of container records whose upper dir the test writes by hand (nothing runs)."""

from __future__ import annotations

import os
import tarfile

import pytest

from ctr import layers
from ctr.errors import CtrError, InvalidArgument, NotFound
from ctr.images import _NullSink
from ctr.runtime import cgroups
from ctr.runtime import commit as commit_mod
from ctr.runtime.commit import EMPTY_DIFF_ID, commit, commit_skip, container_config
from ctr.runtime.containers import Container
from ctr.runtime.lifecycle import Runtime


def record(config=None, host_config=None):
    return Container(Id='a' * 64, Name='c', Created='', Image='sha256:' + 'b' * 64, ImageName='img', Path='sh',
                     Args=[], Config=dict(config or {}), HostConfig=dict(host_config or {}))


PATH = 'PATH=/usr/bin'


@pytest.mark.parametrize('image, config, host, changes, expected', [
    # the container's command, env and labels replace the image's; Hostname and ONBUILD are not committed
    ({'Cmd': ['sh'], 'Env': [PATH], 'OnBuild': ['RUN x'], 'Healthcheck': {'Test': ['NONE']}},
     {'Hostname': 'abc', 'Cmd': ['top'], 'Env': [PATH, 'A=1'], 'Labels': {'l': '1'}, 'WorkingDir': '/',
      'StopSignal': 'SIGTERM', 'ExposedPorts': {}, 'Entrypoint': None},
     {}, [],
     {'Cmd': ['top'], 'Env': [PATH, 'A=1'], 'Labels': {'l': '1'}, 'Healthcheck': {'Test': ['NONE']}}),
    # defaults kept when the image had them; published ports exposed; docker run -v /anon becomes a VOLUME
    ({'WorkingDir': '/', 'StopSignal': 'SIGTERM', 'Volumes': {'/img': {}}},
     {'WorkingDir': '/', 'StopSignal': 'SIGTERM', 'Entrypoint': ['/bin/app'], 'User': 'nobody'},
     {'PortBindings': {'80/tcp': [{'HostIp': '', 'HostPort': '4000'}]},
      'Binds': ['/anon', 'named:/named', '/host:/bind'], 'Mounts': [{'Type': 'volume', 'Target': '/m'}]},
     [],
     {'WorkingDir': '/', 'StopSignal': 'SIGTERM', 'Entrypoint': ['/bin/app'], 'User': 'nobody',
      'ExposedPorts': {'80/tcp': {}}, 'Volumes': {'/img': {}, '/anon': {}}}),
    # changes come last
    ({}, {'Cmd': ['sh'], 'WorkingDir': '/srv', 'StopSignal': 'SIGINT'}, {},
     ['CMD ["run"]', 'ENV B=2', 'EXPOSE 53/udp', 'LABEL a=b', 'WORKDIR sub', 'USER 1000', 'STOPSIGNAL 9'],
     {'Cmd': ['run'], 'Env': ['B=2'], 'ExposedPorts': {'53/udp': {}}, 'Labels': {'a': 'b'}, 'WorkingDir': '/srv/sub',
      'User': '1000', 'StopSignal': '9'}),
])
def test_container_config(image, config, host, changes, expected):
    assert container_config(record(config, host), image, changes) == expected


def test_a_bad_change_names_itself():
    with pytest.raises(InvalidArgument) as err:
        container_config(record({'Cmd': ['sh']}), {}, ['EXPOSE 0'])
    assert err.value.msg.startswith('changes: ') and '"0" is out of the range' in err.value.msg


def test_commit_skip_leaves_out_init_files_and_mounted_contents():
    skip = commit_skip(record(host_config={'Binds': ['/host:/bind'], 'Tmpfs': {'/t': ''}}), ['/vol/deep'])
    for rel in ('etc/hosts', 'etc/hostname', 'etc/resolv.conf', 'bind/f', 'bind/d/f', 't/x', 'vol/deep/f',
                'proc/1', 'dev/null', 'sys/x'):
        assert skip(rel), rel
    for rel in ('etc', 'etc/passwd', 'etc/hosts.allow', 'bind', 'binder/f', 't', 'vol', 'vol/deep', 'vol/other',
                'proc', 'dev', 'sys', 'device'):
        assert not skip(rel), rel


def test_the_empty_diff_id_is_an_empty_tree(tmp_path):
    assert layers.pack_tree(str(tmp_path), _NullSink(), compression='none').diff_id == EMPTY_DIFF_ID


# -- commits of container records with a hand-written upper dir -------------------------------------------

@pytest.fixture
def runtime(store_root, tmp_path):
    tree = tmp_path / 'rootfs'
    (tree / 'etc').mkdir(parents=True)
    (tree / 'etc' / 'passwd').write_text('root:x:0:0::/root:/bin/sh\n')
    (tree / 'bin').mkdir()
    rt = Runtime(str(store_root))
    rt.images.import_rootfs(str(tree), 'base', changes=['CMD ["sh"]', 'ENV A=1'])
    return rt


def make_container(rt, files, **options):
    c = rt.create('base', command=['sh', '-c', 'echo hi'], network_mode='none', **options)
    upper = os.path.join(rt.containers.dir(c.Id), 'upper')
    for rel, text in files.items():
        path = os.path.join(upper, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
    return c


def members(rt, image):
    desc = rt.images.get(image).layers[-1]
    with rt.images.store.open_blob(desc.digest) as blob, tarfile.open(fileobj=blob, mode='r|*') as tar:
        return [m.name for m in tar]


def test_commit_writes_one_layer_and_is_idempotent(runtime):
    c = make_container(runtime, {'srv/app.txt': 'app\n', 'etc/hosts': 'the container\'s copy\n',
                                 'data/in-volume': 'no\n'}, volumes=['/data'])
    assert commit(runtime, c.Name, 'snap', check=True).changed
    out = commit(runtime, c.Name, 'snap', message='first')
    assert out.changed and out.before is None
    assert members(runtime, 'snap') == ['data', 'etc', 'srv', 'srv/app.txt']
    base = runtime.images.get('base')
    assert out.image.diff_ids[:-1] == base.diff_ids and len(out.image.diff_ids) == 2
    assert out.image.config['config'] == {'Cmd': ['sh', '-c', 'echo hi'], 'Env': c.Config['Env'],
                                          'Volumes': {'/data': {}}}
    assert c.Config['Env'][-1] == 'A=1'
    assert out.image.inspect()['Comment'] == 'first'
    assert not commit(runtime, c.Name, 'snap', message='first', check=True).changed
    again = commit(runtime, c.Name, 'snap', message='first')
    assert not again.changed and again.image.id == out.image.id
    with open(os.path.join(runtime.containers.dir(c.Id), 'upper', 'srv', 'more.txt'), 'w') as f:
        f.write('more\n')
    assert commit(runtime, c.Name, 'snap', message='first', check=True).changed
    moved = commit(runtime, c.Name, 'snap', message='first')
    assert moved.changed and moved.displaced and moved.before['Id'] == out.image.id
    assert not runtime.images.store.has_blob(out.image.id)             # gc took the image the name left


def test_commit_without_changes_adds_no_layer(runtime):
    c = runtime.create('base', command=['true'], network_mode='none')
    out = commit(runtime, c.Id, 'same', author='me')
    base = runtime.images.get('base')
    assert out.image.diff_ids == base.diff_ids and out.image.manifest_doc['layers'] == base.manifest_doc['layers']
    assert out.image.config['history'][-1] == {'created': out.image.config['created'], 'created_by': 'true',
                                               'author': 'me', 'empty_layer': True}
    assert out.image.config['author'] == 'me'


def test_unnamed_commits_with_a_fixed_epoch_are_one_image(runtime, monkeypatch):
    monkeypatch.setenv('SOURCE_DATE_EPOCH', '1600000000')
    c = make_container(runtime, {'f': 'x\n'})
    first = commit(runtime, c.Name)
    assert first.changed and first.image.names == [] and first.actions == ['committed %s as an unnamed image (%s)' % (c.Name, first.image.short_id)]
    second = commit(runtime, c.Name)
    assert not second.changed and second.image.id == first.image.id
    assert [d.annotations for d in runtime.images.store.read_index()].count({}) == 1


def test_errors_change_nothing(runtime, store_root):
    c = make_container(runtime, {'f': 'x\n'})
    index = runtime.images.store.read_index()
    with pytest.raises(NotFound):
        commit(runtime, 'nope', 'x')
    with pytest.raises(InvalidArgument) as err:
        commit(runtime, c.Name, 'x@sha256:' + '0' * 64)
    assert err.value.msg == 'cannot commit as "x@sha256:%s": the name must not carry a digest' % ('0' * 64)
    with pytest.raises(InvalidArgument):
        commit(runtime, c.Name, 'x', changes=['NOTANINSTRUCTION x'])
    with pytest.raises(InvalidArgument):
        commit(runtime, c.Name, 'x', author=7)
    assert runtime.images.store.read_index() == index
    assert os.listdir(os.path.join(str(store_root), 'tmp')) == []


# -- pausing (a fake cgroup: no container runs) -------------------------------------------------------------

class FakeCgroup:
    def __init__(self, frozen=False, fail=None):
        self.frozen, self.fail, self.calls = frozen, fail, []

    def is_frozen(self):
        return self.frozen

    def freeze(self):
        self.calls.append('freeze')
        if self.fail:
            raise CtrError(self.fail)
        self.frozen = True

    def thaw(self):
        self.calls.append('thaw')
        self.frozen = False


def running(name='web'):
    c = record()
    c.Name, c.State.Running = name, True
    return c


def test_pause_freezes_a_running_container_and_always_thaws(monkeypatch):
    cgroup = FakeCgroup()
    monkeypatch.setattr(cgroups.Cgroup, 'open', classmethod(lambda cls, name: cgroup))
    with pytest.raises(RuntimeError):
        with commit_mod._paused(None, running(), True) as paused:
            assert paused and cgroup.frozen
            raise RuntimeError('packing failed')
    assert cgroup.calls == ['freeze', 'thaw'] and not cgroup.frozen


@pytest.mark.parametrize('pause, state', [(False, 'running'), (True, 'exited'), (True, 'paused')])
def test_pause_leaves_alone_what_it_need_not_or_must_not_touch(monkeypatch, pause, state):
    cgroup = FakeCgroup(frozen=state == 'paused')
    monkeypatch.setattr(cgroups.Cgroup, 'open', classmethod(lambda cls, name: cgroup))
    c = running()
    c.State.Running, c.State.Paused = state != 'exited', state == 'paused'
    with commit_mod._paused(None, c, pause) as paused:
        assert not paused
    assert cgroup.calls == [] and cgroup.frozen == (state == 'paused')     # paused on purpose: stays paused


def test_a_freeze_left_by_a_killed_commit_is_thawed(monkeypatch):
    cgroup = FakeCgroup(frozen=True)
    monkeypatch.setattr(cgroups.Cgroup, 'open', classmethod(lambda cls, name: cgroup))
    with commit_mod._paused(None, running(), True) as paused:
        assert paused
    assert cgroup.calls == ['freeze', 'thaw'] and not cgroup.frozen


def test_pause_without_a_freezer_says_so(monkeypatch):
    cgroup = FakeCgroup(fail='freezing cgroup "ctr/x" needs the freezer cgroup controller')
    monkeypatch.setattr(cgroups.Cgroup, 'open', classmethod(lambda cls, name: cgroup))
    with pytest.raises(CtrError) as err:
        with commit_mod._paused(None, running('web'), True):
            pytest.fail('the block ran without the container paused')
    assert err.value.msg == ('cannot pause container web for the commit: freezing cgroup "ctr/x" needs the freezer '
                             'cgroup controller; commit with pause=false to copy it while it runs')
    assert cgroup.calls == ['freeze', 'thaw']

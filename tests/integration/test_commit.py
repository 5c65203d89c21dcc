# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Committing real containers (as root): the layer holds exactly the changes (whiteouts, opaque dirs),
shares the base's layers byte for byte, leaves volumes and init files out, takes changes, is idempotent
and deterministic, and pauses a running container only while its upper dir is read."""

from __future__ import annotations

import os
import tarfile
import time

import helpers
import pytest

import ctr.layers
from ctr.errors import InvalidArgument, NotFound
from ctr.runtime.cgroups import Cgroup
from ctr.runtime.commit import EMPTY_DIFF_ID, commit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root: runs real containers')


@pytest.fixture
def runtime(store_root, busybox_rootfs):
    for rel, text in (('data/keep.txt', 'keep\n'), ('data/gone.txt', 'gone\n'), ('olddir/x', 'x\n'),
                      ('opq/a', 'a\n'), ('opq/b', 'b\n')):
        path = busybox_rootfs / rel
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    with helpers.busybox_runtime(store_root, busybox_rootfs) as rt:
        yield rt


def run(rt, script, image='busybox', **options):
    return helpers.run_sh(rt, script, image, **options)


def layer_members(rt, image, index=-1):
    """The tar members of one layer of ``image`` (the last by default): {name: TarInfo}.

    The kernel filesystems' mount points are left out: an image without /proc, /sys or /dev gets
    them from the init layer, or (where the runtime makes them in the rootfs) as empty directories.
    """
    desc = rt.images.get(image).layers[index]
    with rt.images.store.open_blob(desc.digest, desc.size) as blob, tarfile.open(fileobj=blob, mode='r|*') as tar:
        members = {m.name.rstrip('/'): m for m in tar}
    for name in KERNEL_MOUNTS:
        assert name not in members or (members[name].isdir() and not any(n.startswith(name + '/') for n in members))
        members.pop(name, None)
    return members


def store_snapshot(store_root):
    blobs = sorted(os.listdir(os.path.join(str(store_root), 'oci', 'blobs', 'sha256')))
    with open(os.path.join(str(store_root), 'oci', 'index.json'), 'rb') as f:
        return blobs, f.read()


KERNEL_MOUNTS = ('proc', 'sys', 'dev')
CHANGES = ('echo new > /new.txt; echo changed > /data/keep.txt; rm /data/gone.txt; rm -rf /olddir; '
           'rm -rf /opq; mkdir /opq; echo fresh > /opq/c')


def test_the_layer_holds_exactly_the_changes(runtime):
    code, _out, c = run(runtime, CHANGES)
    assert code == 0
    outcome = commit(runtime, c.Name, 'committed')
    assert outcome.changed
    assert outcome.actions == ['committed %s as docker.io/library/committed:latest (%s)'
                               % (c.Name, outcome.image.short_id)]
    names = layer_members(runtime, 'committed')
    assert set(names) == {'new.txt', 'data', 'data/keep.txt', 'data/.wh.gone.txt', '.wh.olddir', 'opq',
                          'opq/.wh..wh..opq', 'opq/c'}
    assert list(names).index('opq/.wh..wh..opq') < list(names).index('opq/c')
    code, out, _c = run(runtime, 'cat /new.txt /data/keep.txt; ls /data; ls /opq; ls -d /olddir 2>&1 || echo no-olddir',
                        image='committed')
    assert code == 0
    assert out == 'new\nchanged\nkeep.txt\nc\nls: /olddir: No such file or directory\nno-olddir\n'


def test_the_new_image_is_its_base_plus_one_layer(runtime):
    _code, _out, c = run(runtime, 'echo hi > /hi')
    base = runtime.images.get('busybox')
    image = commit(runtime, c.Id[:12], 'child:1').image
    assert image.diff_ids[:-1] == base.diff_ids and len(image.diff_ids) == len(base.diff_ids) + 1
    assert image.manifest_doc['layers'][:-1] == base.manifest_doc['layers']
    assert image.inspect()['RootFS']['Layers'][:len(base.diff_ids)] == base.diff_ids
    assert image.manifest_doc['layers'][-1]['mediaType'] == 'application/vnd.oci.image.layer.v1.tar+gzip'
    history = image.config['history']
    assert history[:-1] == base.config['history']
    assert history[-1]['created_by'] == 'sh -c echo hi > /hi' and 'empty_layer' not in history[-1]
    assert 'Hostname' not in image.config['config'] and image.config['created'] == history[-1]['created']
    assert image.names == ['docker.io/library/child:1']


def test_volume_contents_and_init_files_are_left_out(runtime, tmp_path):
    bound = tmp_path / 'bound'
    bound.mkdir()
    code, _out, c = run(runtime, 'echo v > /anon/f; echo n > /named/f; echo b > /bound/f; echo t > /scratch/f; '
                        'echo "10.9.9.9 extra" >> /etc/hosts; echo other > /etc/hostname; rm /etc/resolv.conf; '
                        'echo kept > /kept.txt',
                        volumes=['/anon', 'named:/named', '%s:/bound' % bound], tmpfs=['/scratch'])
    assert code == 0
    upper = os.path.join(runtime.containers.dir(c.Id), 'upper')
    assert os.path.isfile(os.path.join(upper, 'etc', 'hosts'))      # network_mode none: a plain copy-up
    with open(os.path.join(upper, 'anon', 'sneaked-in'), 'w') as f:  # never packed, even if there
        f.write('not for the image\n')
    outcome = commit(runtime, c.Name, 'withvolumes')
    names = layer_members(runtime, 'withvolumes')
    assert set(names) == {'anon', 'named', 'bound', 'scratch', 'etc', 'kept.txt'}
    assert all(names[n].isdir() for n in ('anon', 'named', 'bound', 'scratch', 'etc'))
    # docker run -v /anon is committed as a VOLUME; named volumes, binds and tmpfs are not
    assert outcome.image.config['config']['Volumes'] == {'/anon': {}}
    code, out, c2 = run(runtime, 'ls -A /anon /named /bound /scratch; cat /etc/hostname; grep -c extra /etc/hosts',
                        image='withvolumes')
    assert out == '/anon:\n\n/bound:\n\n/named:\n\n/scratch:\n%s\n0\n' % c2.Id[:12]


def test_changes_message_and_author(runtime):
    _code, _out, c = run(runtime, 'echo content > /new.txt', env={'FROM_RUN': '1'}, labels={'run': 'yes'})
    outcome = commit(runtime, c.Name, 'changed', changes=['CMD ["cat", "/new.txt"]', 'ENV GREETING=hi',
                                                          'EXPOSE 8080', 'LABEL team=core'],
                     message='a message', author='Ann <ann@example.org>')
    info = outcome.image.inspect()
    cfg = info['Config']
    assert cfg['Cmd'] == ['cat', '/new.txt']
    assert cfg['Env'][-2:] == ['FROM_RUN=1', 'GREETING=hi'] and cfg['Env'][0].startswith('PATH=')
    assert cfg['ExposedPorts'] == {'8080/tcp': {}} and cfg['Labels'] == {'run': 'yes', 'team': 'core'}
    assert info['Comment'] == 'a message' and info['Author'] == 'Ann <ann@example.org>'
    assert info['History'][-1]['author'] == 'Ann <ann@example.org>'
    assert 'WorkingDir' not in cfg and 'StopSignal' not in cfg         # the runtime's defaults, not the image's
    code, out, _c2 = run_default(runtime, 'changed')
    assert (code, out) == (0, 'content\n')


def run_default(rt, image):
    c = rt.create(image, network_mode='none')
    rt.start(c.Id)
    code = rt.wait(c.Id, timeout=60)
    return code, ''.join(t for s, t in rt.logs(c.Id)), c


@pytest.mark.parametrize('change, fragment', [
    ('EXPOSE notaport', '"notaport" is not a port'),
    ('FROM busybox', 'FROM "FROM busybox" is not a metadata instruction'),
])
def test_a_bad_change_writes_nothing(runtime, store_root, change, fragment):
    _code, _out, c = run(runtime, 'echo x > /x')
    before = store_snapshot(store_root)
    with pytest.raises(InvalidArgument) as err:
        commit(runtime, c.Name, 'bad', changes=['CMD ["sh"]', change])
    assert fragment in err.value.msg and '\n' not in err.value.msg
    assert store_snapshot(store_root) == before


def test_committing_again_is_no_change_until_the_container_changes(runtime, store_root):
    _code, _out, c = run(runtime, 'echo run >> /runs.txt')
    predicted = commit(runtime, c.Name, 'snap', check=True)
    assert predicted.changed and predicted.actions == ['commit %s as docker.io/library/snap:latest' % c.Name]
    assert runtime.images.find('snap') is None
    first = commit(runtime, c.Name, 'snap')
    assert first.changed
    snapshot = store_snapshot(store_root)
    assert not commit(runtime, c.Name, 'snap', check=True).changed
    second = commit(runtime, c.Name, 'snap')
    assert not second.changed and second.actions == [] and second.image.id == first.image.id
    assert store_snapshot(store_root) == snapshot
    assert commit(runtime, c.Name, 'snap', message='now with a comment', check=True).changed
    runtime.start(c.Id)                                      # runs its command once more: one more line
    runtime.wait(c.Id, timeout=60)
    assert commit(runtime, c.Name, 'snap', check=True).changed
    third = commit(runtime, c.Name, 'snap')
    assert third.changed and third.image.id != first.image.id and third.before['Id'] == first.image.id
    assert not runtime.images.store.has_blob(first.image.id)            # the old image went with its name
    code, out, _c = run(runtime, 'cat /runs.txt', image='snap')
    assert out == 'run\nrun\n'


def test_the_same_state_gives_the_same_digests(runtime, monkeypatch):
    _code, _out, c = run(runtime, 'echo same > /same.txt; mkdir -p /a/b; echo deep > /a/b/c')
    one = commit(runtime, c.Name, 'one').image
    two = commit(runtime, c.Name, 'two').image
    assert one.layers[-1] == two.layers[-1]
    monkeypatch.setenv('SOURCE_DATE_EPOCH', '1700000000')
    three = commit(runtime, c.Name, 'three').image
    four = commit(runtime, c.Name, 'four').image
    assert three.id == four.id and three.config['created'] == '2023-11-14T22:13:20Z'
    assert sorted(runtime.images.get('four').names) == ['docker.io/library/four:latest',
                                                        'docker.io/library/three:latest']
    assert all(m.mtime <= 1700000000 for m in layer_members(runtime, 'three').values())


def test_an_unnamed_commit_and_a_container_without_changes(runtime, store_root):
    c = runtime.create('busybox', command=['true'], network_mode='none')      # never started: no upper dir
    outcome = commit(runtime, c.Name)
    assert outcome.changed and outcome.image.names == []
    assert outcome.actions == ['committed %s as an unnamed image (%s)' % (c.Name, outcome.image.short_id)]
    image = outcome.image
    base = runtime.images.get('busybox')
    assert image.diff_ids == base.diff_ids and image.config['history'][-1]['empty_layer'] is True
    assert runtime.images.find(image.id) is not None
    runtime.images.store.gc()
    assert runtime.images.find(image.id) is not None                    # an unnamed index entry is kept
    assert EMPTY_DIFF_ID not in image.diff_ids


def test_a_running_container_is_paused_only_while_its_upper_dir_is_read(runtime, monkeypatch):
    c = runtime.create('busybox', command=['sh', '-c', 'echo up > /up.txt; exec sleep 30'], network_mode='none')
    runtime.start(c.Id)
    upper = os.path.join(runtime.containers.dir(c.Id), 'upper', 'up.txt')
    deadline = time.time() + 10
    while not os.path.exists(upper) and time.time() < deadline:
        time.sleep(0.05)
    seen = []
    real_pack = ctr.layers.pack_tree

    def spying_pack(*args, **kwargs):
        seen.append(Cgroup.open(c.Id).is_frozen())
        return real_pack(*args, **kwargs)
    monkeypatch.setattr(ctr.layers, 'pack_tree', spying_pack)
    assert commit(runtime, c.Name, 'live').changed
    assert commit(runtime, c.Name, 'live-unpaused', pause=False, message='unpaused').changed
    assert not commit(runtime, c.Name, 'live', check=True).changed      # check mode never freezes
    assert seen[:3] == [True, False, False]
    cgroup = Cgroup.open(c.Id)
    assert runtime.get(c.Id).State.Running and not cgroup.is_frozen()
    if 'freezer' in cgroup.paths:
        with open(os.path.join(cgroup.paths['freezer'], 'freezer.state')) as f:
            assert f.read().strip() == 'THAWED'
    cgroup.freeze()                                          # as a commit killed while packing leaves it
    assert commit(runtime, c.Name, 'after-a-killed-commit').changed
    assert runtime.get(c.Id).State.Running and not cgroup.is_frozen()
    history = runtime.images.get('live').config['history'][-1]
    assert history['created_by'] == 'sh -c echo up > /up.txt; exec sleep 30'
    code, out, _c = run(runtime, 'cat /up.txt', image='live')
    assert (code, out) == (0, 'up\n')


def test_bad_names_and_missing_containers(runtime):
    _code, _out, c = run(runtime, 'true')
    with pytest.raises(NotFound) as err:
        commit(runtime, 'no-such-container', 'x')
    assert 'no-such-container' in err.value.msg
    with pytest.raises(InvalidArgument) as err:
        commit(runtime, c.Name, 'x@sha256:' + 'a' * 64)
    assert 'must not carry a digest' in err.value.msg
    with pytest.raises(InvalidArgument):
        commit(runtime, c.Name, 'Not A Name')
    with pytest.raises(InvalidArgument) as err:
        commit(runtime, c.Name, 'ok', message=['not', 'text'])
    assert 'message' in err.value.msg


def test_a_container_left_frozen_by_a_killed_commit_still_execs_and_stops(runtime):
    c = runtime.create('busybox', command=['sleep', '30'], network_mode='none')
    runtime.start(c.Id)
    cgroup = Cgroup.open(c.Id)
    cgroup.freeze()                          # what a commit killed in the middle of its pack leaves behind
    assert cgroup.is_frozen()
    result = runtime.exec(c.Id, ['echo', 'thawed'])
    assert result.rc == 0 and result.stdout.strip() == b'thawed'
    cgroup.freeze()
    stopped, changed = runtime.stop(c.Id, timeout=2)
    assert changed and not stopped.State.Running

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Volumes for real: the walk-through's facts (data in the volume's directory, only the empty mount
point in the upper dir, named volumes outlive containers, anonymous ones go with them), copy-up,
nocopy, read-only, tmpfs and bind-device volumes, in-use protection, and ctr_volume as Ansible runs it."""

from __future__ import annotations

import os

import pytest

from ctr.errors import Conflict, InvalidArgument
from ctr.runtime.lifecycle import Runtime
from ctr.volumes import VolumeStore


@pytest.fixture
def runtime(store_root, busybox_rootfs):
    (busybox_rootfs / 'seed').mkdir()
    (busybox_rootfs / 'seed' / 'from-image.txt').write_text('seeded\n')
    os.chown(busybox_rootfs / 'seed' / 'from-image.txt', 65534, 65534)
    rt = Runtime(str(store_root))
    rt.images.import_rootfs(str(busybox_rootfs), 'busybox', changes=['CMD ["sh"]'])
    rt.images.import_rootfs(str(busybox_rootfs), 'withvolume', changes=['CMD ["sh"]', 'VOLUME /seed'])
    try:
        yield rt
    finally:
        for c in rt.list():
            rt.remove(c.Id, force=True)


def run(rt, script, image='busybox', **options):
    c = rt.create(image, command=['sh', '-c', script], network_mode='none', **options)
    rt.start(c.Id)
    code = rt.wait(c.Id, timeout=60)
    out = ''.join(t for s, t in rt.logs(c.Id))
    return code, out, rt.get(c.Id)


def mounts_under(path):
    with open('/proc/self/mountinfo') as f:
        return [line.split()[4] for line in f if str(path) in line.split()[4]]


def test_a_named_volume_holds_what_the_container_writes_and_outlives_it(runtime, store_root):
    code, _out, c = run(runtime, 'echo hello > /test/f', volumes=['data:/test'])
    assert code == 0
    data = os.path.join(str(store_root), 'volumes', 'data', '_data')
    with open(os.path.join(data, 'f')) as f:
        assert f.read() == 'hello\n'
    upper = os.path.join(runtime.containers.dir(c.Id), 'upper', 'test')
    assert os.path.isdir(upper) and os.listdir(upper) == []          # only the empty mount point
    shown = runtime.inspect(c)['Mounts']
    assert shown == [{'Type': 'volume', 'Name': 'data', 'Source': data, 'Destination': '/test', 'Driver': 'local',
                      'Mode': '', 'RW': True, 'Propagation': ''}]
    runtime.remove(c.Id)
    assert VolumeStore(str(store_root)).find('data') is not None     # named: it stays
    code, out, _c = run(runtime, 'cat /again/f', volumes=['data:/again'])
    assert (code, out) == (0, 'hello\n')


def test_an_anonymous_volume_goes_with_its_container_unless_kept(runtime, store_root):
    code, _out, c = run(runtime, 'echo x > /test/f', volumes=['/test'])
    assert code == 0
    name = c.AnonymousVolumes['/test']
    assert len(name) == 64
    store = VolumeStore(str(store_root))
    assert store.find(name) is not None
    runtime.remove(c.Id)
    assert store.find(name) is None
    _code, _out, kept = run(runtime, 'true', volumes=['/keep'])
    runtime.remove(kept.Id, keep_volumes=True)
    assert store.find(kept.AnonymousVolumes['/keep']) is not None


def test_copy_up_fills_a_new_volume_from_the_image_unless_nocopy(runtime, store_root):
    code, out, _c = run(runtime, 'cat /seed/from-image.txt; stat -c %u:%g /seed/from-image.txt', volumes=['filled:/seed'])
    assert (code, out) == (0, 'seeded\n65534:65534\n')
    code, out, _c = run(runtime, 'ls -A /seed | wc -l', volumes=['empty:/seed:nocopy'])
    assert out.strip() == '0'
    # an image VOLUME is an anonymous volume, copied up too
    code, out, c = run(runtime, 'cat /seed/from-image.txt', image='withvolume')
    assert out == 'seeded\n' and '/seed' in c.AnonymousVolumes


def test_read_only_volumes_refuse_writes(runtime):
    code, out, _c = run(runtime, 'touch /ro/x 2>&1; echo rc=$?', volumes=['ro-data:/ro:ro'])
    assert 'Read-only file system' in out and 'rc=1' in out


def test_tmpfs_and_bind_device_volumes(runtime, store_root, tmp_path):
    store = VolumeStore(str(store_root))
    store.create('scratch', driver_options={'type': 'tmpfs', 'o': 'size=1m'})
    device = tmp_path / 'device'
    device.mkdir()
    store.create('hostdir', driver_options={'type': 'none', 'o': 'bind', 'device': str(device)})
    code, out, c = run(runtime, 'grep " /s " /proc/mounts | cut -d" " -f3; echo y > /h/from-container',
                       volumes=['scratch:/s', 'hostdir:/h'])
    assert code == 0 and out.strip() == 'tmpfs'
    assert (device / 'from-container').read_text() == 'y\n'
    runtime.remove(c.Id)
    store.remove('scratch')
    store.remove('hostdir')
    assert mounts_under(os.path.join(str(store_root), 'volumes')) == []
    assert (device / 'from-container').exists()        # a bind's device is the user's: never deleted


def test_a_volume_in_use_needs_force_to_go(runtime, store_root):
    _code, _out, c = run(runtime, 'true', volumes=['busy:/b'])
    store = VolumeStore(str(store_root))
    with pytest.raises(Conflict) as err:
        store.remove('busy', runtime.containers.list())
    assert c.Name in err.value.msg
    assert store.remove('busy', runtime.containers.list(), force=True)
    runtime.start(c.Id)                                     # its next start makes a new, empty one
    assert store.find('busy') is not None


@pytest.mark.parametrize('options, fragment', [
    ({'type': 'nfs'}, 'type "nfs" is not supported'),
    ({'type': 'tmpfs', 'o': 'colour=blue'}, 'tmpfs option "colour=blue"'),
    ({'type': 'none', 'o': 'bind'}, 'needs device'),
    ({'type': 'none', 'device': '/srv'}, 'needs o: bind'),
    ({'size': '1m'}, 'unknown option "size"'),
])
def test_bad_driver_options_are_refused(store_root, options, fragment):
    with pytest.raises(InvalidArgument) as err:
        VolumeStore(str(store_root)).create('bad', driver_options=options)
    assert fragment in err.value.msg
    assert VolumeStore(str(store_root)).list() == []


# -- ctr_volume and ctr_volume_info -----------------------------------------------------------------------

@pytest.fixture
def volume(run_module, store_root):
    def call(check=False, diff=False, module='ctr_volume', **args):
        full = {'root': str(store_root), 'name': 'appdata'}
        full.update(args)
        return run_module(module, full, check=check, diff=diff)
    return call


def test_module_create_repeat_change_and_info(volume, store_root):
    checked = volume(check=True)
    assert checked['changed'] and VolumeStore(str(store_root)).find('appdata') is None
    first = volume(labels={'app': 'db'}, diff=True)
    assert first['changed'] and first['volume']['Name'] == 'appdata'
    assert first['volume']['Mountpoint'] == os.path.join(str(store_root), 'volumes', 'appdata', '_data')
    assert first['volume']['Labels'] == {'app': 'db'} and first['volume']['Scope'] == 'local'
    assert first['diff']['before'] == {}
    assert not volume(labels={'app': 'db'})['changed']
    assert not volume(labels={'app': 'web'})['changed']                 # recreate never: left as it is
    changed = volume(labels={'app': 'web'}, recreate='options-changed', diff=True)
    assert changed['changed'] and changed['volume']['Labels'] == {'app': 'web'}
    assert changed['diff']['before']['labels'] == {'app': 'db'}
    assert volume(labels={'app': 'web'}, recreate='always')['changed']
    info = volume(module='ctr_volume_info')
    assert info['exists'] and info['volume']['Name'] == 'appdata'
    assert [v['Name'] for v in volume(module='ctr_volume_info', name=None)['volumes']] == ['appdata']
    gone = volume(state='absent')
    assert gone['changed'] and not volume(state='absent')['changed']


@pytest.mark.parametrize('args, fragment', [
    ({'name': 'a'}, 'volume name "a" is invalid'),
    ({'driver_options': {'type': 'nfs'}}, 'type "nfs" is not supported'),
    ({'labels': {'a': 1}}, 'labels'),
])
def test_module_bad_values_change_nothing(volume, store_root, args, fragment):
    result = volume(**args)
    assert result['failed'] and fragment in result['msg'] and '\n' not in result['msg']
    assert VolumeStore(str(store_root)).list() == []


def test_module_refuses_to_remove_a_volume_in_use_without_force(volume, runtime):
    volume()
    c = runtime.create('busybox', command=['true'], volumes=['appdata:/d'], network_mode='none')
    result = volume(state='absent')
    assert result['failed'] and c.Name in result['msg'] and 'force' in result['msg']
    assert volume(state='absent', force=True)['changed']


def test_ctr_container_volumes_and_keep_volumes(run_module, runtime, store_root):
    def ctr(**args):
        full = {'root': str(store_root), 'name': 'web', 'image': 'busybox', 'command': ['sleep', '60'],
                'network_mode': 'none'}
        full.update(args)
        return run_module('ctr_container', full)
    first = ctr(volumes=['/anon', 'named:/named'], mounts=[{'type': 'volume', 'target': '/m', 'no_copy': True}])
    assert first['changed']
    kinds = {m['Destination']: m for m in first['container']['Mounts']}
    assert set(kinds) == {'/anon', '/named', '/m'} and kinds['/named']['Name'] == 'named'
    anon = kinds['/anon']['Name']
    again = ctr(volumes=['/anon', 'named:/named'], mounts=[{'type': 'volume', 'target': '/m', 'no_copy': True}])
    assert not again['changed']                                          # the anonymous names are not a difference
    store = VolumeStore(str(store_root))
    changed = ctr(volumes=['/anon', 'named:/named:ro'], keep_volumes=True)
    assert changed['changed'] and store.find(anon) is not None           # recreated, its old anonymous volume kept
    gone = ctr(state='absent')
    assert gone['changed'] and store.find('named') is not None
    new_anon = [m['Name'] for m in changed['container']['Mounts'] if m['Destination'] == '/anon'][0]
    assert store.find(new_anon) is None


def test_remove_tree_never_deletes_through_a_mount(tmp_path):
    """A bind of the same filesystem keeps st_dev: the removal must still stop at it."""
    import errno
    import subprocess
    from ctr import fsutil
    precious = tmp_path / 'precious'
    precious.mkdir()
    (precious / 'keep.txt').write_text('mine\n')
    tree = tmp_path / 'tree'
    (tree / 'sub' / 'mnt').mkdir(parents=True)
    subprocess.run(['mount', '--bind', str(precious), str(tree / 'sub' / 'mnt')], check=True)
    try:
        with pytest.raises(OSError) as err:
            fsutil.remove_tree(str(tree))
        assert err.value.errno == errno.EBUSY and err.value.filename == str(tree / 'sub' / 'mnt')
        assert (precious / 'keep.txt').read_text() == 'mine\n'
    finally:
        subprocess.run(['umount', str(tree / 'sub' / 'mnt')], check=False)
    fsutil.remove_tree(str(tree))
    assert not tree.exists() and (precious / 'keep.txt').exists()


def test_cli_network_and_volume_commands(store_root):
    import json
    import subprocess
    import sys
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))

    def ctr(*args):
        proc = subprocess.run([sys.executable, '-m', 'ctr', '--root', str(store_root)] + list(args), env=env,
                              capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr
    assert ctr('network', 'create', '--subnet', '172.29.98.0/24', '--internal', 'cli-net')[0] == 0
    code, out, _err = ctr('network', 'inspect', 'cli-net')
    assert code == 0 and json.loads(out)[0]['Internal'] is True
    assert 'cli-net' in ctr('network', 'ls')[1]
    assert ctr('network', 'rm', 'cli-net') == (0, 'cli-net\n', '')
    assert ctr('volume', 'create', '--label', 'k=v', 'cli-vol')[0] == 0
    assert json.loads(ctr('volume', 'inspect', 'cli-vol')[1])[0]['Labels'] == {'k': 'v'}
    assert 'cli-vol' in ctr('volume', 'ls')[1]
    code, out, err = ctr('volume', 'rm', 'cli-vol', 'nosuch')
    assert code == 1 and out == 'cli-vol\n' and 'no such volume: nosuch' in err


def test_copy_up_remakes_fifos_and_leaves_device_nodes_out(store_root, busybox_rootfs):
    special = busybox_rootfs / 'special'
    special.mkdir()
    os.mkfifo(str(special / 'pipe'))
    os.mknod(str(special / 'null-again'), 0o600 | 0o020000, os.makedev(1, 3))
    rt = Runtime(str(store_root))
    rt.images.import_rootfs(str(busybox_rootfs), 'special', changes=['CMD ["sh"]', 'VOLUME /special'])
    code, out, c = run(rt, 'ls -A /special', image='special')
    assert code == 0 and out.split() == ['pipe']
    rt.remove(c.Id)


def test_bind_volume_options_and_removal_while_running(runtime, store_root, tmp_path):
    device = tmp_path / 'ro-device'
    device.mkdir()
    store = VolumeStore(str(store_root))
    store.create('ro-bind', driver_options={'type': 'none', 'o': 'bind,ro', 'device': str(device)})
    c = runtime.create('busybox', command=['sh', '-c', 'touch /b/x 2>&1; sleep 60'], volumes=['ro-bind:/b'],
                       network_mode='none')
    runtime.start(c.Id)
    with pytest.raises(Conflict) as err:        # mounted by a running container: not even with force
        store.remove('ro-bind', runtime.containers.list(), force=True)
    assert 'running' in err.value.msg
    runtime.stop(c.Id, timeout=0)
    assert not (device / 'x').exists()
    assert 'Read-only file system' in ''.join(t for _s, t in runtime.logs(c.Id))
    assert store.remove('ro-bind', runtime.containers.list(), force=True)


def test_an_image_volume_docker_would_refuse_fails_at_create(store_root, busybox_rootfs):
    rt = Runtime(str(store_root))
    rt.images.import_rootfs(str(busybox_rootfs), 'badvol', changes=['CMD ["sh"]', 'VOLUME /proc/sys'])
    with pytest.raises(InvalidArgument) as err:
        rt.create('badvol', command=['true'], network_mode='none')
    assert 'inside /proc' in err.value.msg

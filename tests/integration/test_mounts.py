# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bind and tmpfs mounts for real (root): writes land on the host, ro is read-only, tmpfs options hold,
symlinks of a hostile image never lead a mount out of its rootfs, nested targets, and nothing of
these mounts shows in the host's mount table, while the container runs or after it is removed.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import uuid

import helpers
import pytest

from ctr.errors import CtrError, InvalidArgument
from ctr.runtime.lifecycle import Runtime

Ran = collections.namedtuple('Ran', 'code out err container')


@pytest.fixture
def runtime(store_root, busybox_rootfs, tmp_path):
    """A store with ``busybox`` and ``evil`` (busybox plus symlinks that lead out of the rootfs)."""
    rt = Runtime(str(store_root))
    rt.images.import_rootfs(str(busybox_rootfs), 'busybox', changes=['CMD ["sh"]'])
    sentinel = tmp_path / 'sentinel'
    sentinel.mkdir()
    (sentinel / 'keep').write_text('host\n')
    for name, target in (('data', '/etc'), ('up', '../../../../../../..'), ('out', str(sentinel)), ('toroot', '/'),
                         ('dangling', '/made/here')):
        os.symlink(target, busybox_rootfs / name)
    rt.images.import_rootfs(str(busybox_rootfs), 'evil', changes=['CMD ["sh"]'])
    rt.sentinel = sentinel
    try:
        yield rt
    finally:
        for c in rt.list():
            rt.remove(c.Id, force=True)


def run(rt, script, image='busybox', **options):
    """Create, start and wait for ``sh -c script``; returns Ran(exit code, stdout, stderr, container)."""
    c = rt.create(image, command=['sh', '-c', script], **options)
    rt.start(c.Id)
    code = rt.wait(c.Id, timeout=60)
    logs = rt.logs(c.Id)
    return Ran(code, ''.join(t for s, t in logs if s == 'stdout'), ''.join(t for s, t in logs if s == 'stderr'),
               rt.get(c.Id))


def host_mountinfo():
    with open('/proc/self/mountinfo', encoding='utf-8') as f:
        return f.read().splitlines()


def lines_about(words):
    return [line for line in host_mountinfo() if any(str(w) in line for w in words)]


@pytest.fixture
def host_dir(tmp_path):
    path = tmp_path / 'host'
    path.mkdir()
    (path / 'in').write_text('from the host\n')
    return path


def test_a_bind_mount_shows_the_host_dir_and_writes_land_on_the_host(runtime, host_dir):
    ran = run(runtime, 'cat /data/in; echo from the container > /data/out; ls /data',
              volumes=['%s:/data' % host_dir])
    assert ran.code == 0, ran.err
    assert ran.out == 'from the host\nin\nout\n'
    assert (host_dir / 'out').read_text() == 'from the container\n'
    upper = os.path.join(runtime.containers.dir(ran.container.Id), 'upper')
    assert not os.path.exists(os.path.join(upper, 'data', 'out'))      # not in the container's own layer


@pytest.mark.parametrize('options', [
    {'volumes': ['{host}:/data:ro']},
    {'mounts': [{'type': 'bind', 'source': '{host}', 'target': '/data', 'read_only': True}]},
])
def test_read_only_binds_refuse_writes(runtime, host_dir, options):
    options = json.loads(json.dumps(options).replace('{host}', str(host_dir)))
    ran = run(runtime, 'cat /data/in; echo no > /data/in; echo rc=$?; touch /data/new; echo rc=$?;'
              ' grep " /data " /proc/self/mountinfo', **options)
    assert 'from the host\nrc=1\nrc=1\n' in ran.out
    assert 'Read-only file system' in ran.err
    assert ' /data ro,' in ran.out
    assert (host_dir / 'in').read_text() == 'from the host\n' and not (host_dir / 'new').exists()


def test_read_only_keeps_the_sources_nosuid_nodev_noexec(runtime, tmp_path):
    source = tmp_path / 'restricted'
    source.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'nosuid,nodev,noexec,size=64k', 'tmpfs', str(source)], check=True)
    try:
        ran = run(runtime, 'grep " /d " /proc/self/mountinfo', volumes=['%s:/d:ro' % source])
    finally:
        subprocess.run(['umount', '-l', str(source)], check=True)
    assert ran.out.split()[5] == 'ro,nosuid,nodev,noexec,relatime'


def test_a_file_can_be_bound_and_the_host_dir_of_volumes_is_made(runtime, host_dir, tmp_path):
    missing = tmp_path / 'made' / 'by' / 'start'
    ran = run(runtime, 'cat /etc/motd.txt; echo hi > /new/x; cat /etc/motd.txt/x 2>/dev/null || echo file',
              volumes=['%s:/etc/motd.txt:ro' % (host_dir / 'in'), '%s:/new' % missing])
    assert ran.code == 0, ran.err
    assert ran.out == 'from the host\nfile\n'
    assert (missing / 'x').read_text() == 'hi\n'


def test_a_mounts_bind_source_deleted_before_start_fails_the_start_cleanly(runtime, tmp_path):
    gone = tmp_path / 'gone'
    gone.mkdir()
    c = runtime.create('busybox', command=['true'], mounts=[{'type': 'bind', 'source': str(gone), 'target': '/g'}])
    gone.rmdir()
    with pytest.raises(CtrError) as err:
        runtime.start(c.Id)
    assert 'bind source path "%s" of the mount on "/g" does not exist' % gone in err.value.msg
    assert not lines_about([runtime.containers.dir(c.Id)])


@pytest.mark.parametrize('options, mode, size_kb', [
    ({'tmpfs': ['/scratch:size=1m,mode=700']}, '700', 1024),
    ({'mounts': [{'type': 'tmpfs', 'target': '/scratch', 'tmpfs_size': '2m', 'tmpfs_mode': '1770'}]}, '1770', 2048),
    ({'tmpfs': ['/scratch']}, '1777', None),
])
def test_tmpfs_with_size_and_mode(runtime, options, mode, size_kb):
    ran = run(runtime, 'stat -c %a /scratch; grep " /scratch " /proc/self/mountinfo;'
              ' dd if=/dev/zero of=/scratch/fill bs=1k count=4096 2>/dev/null; echo dd=$?', **options)
    lines = ran.out.splitlines()
    assert lines[0] == mode
    assert ' - tmpfs ' in lines[1] and 'nosuid,nodev,noexec' in lines[1]
    if size_kb:
        assert 'size=%dk' % size_kb in lines[1] and lines[2] == 'dd=1'
    else:
        assert lines[2] == 'dd=0'


def test_tmpfs_flags_can_be_changed_and_it_can_be_read_only(runtime):
    ran = run(runtime, 'cp /bin/busybox /x/echo && /x/echo ran; cp /bin/busybox /scratch/echo && /scratch/echo no;'
              ' touch /r/f || echo ro; grep -E " /(x|r) " /proc/self/mountinfo',
              tmpfs=['/x:exec', '/r:ro', '/scratch'])
    assert 'ran\nro\n' in ran.out and 'no' not in ran.out.split()
    assert 'Permission denied' in ran.err               # a default tmpfs is noexec, as Docker's
    mounted = {line.split()[4]: line for line in ran.out.splitlines() if ' - tmpfs ' in line}
    x_line, r_line = mounted['/x'], mounted['/r']
    assert 'noexec' not in x_line.split(' - ')[0]
    assert r_line.split()[5].startswith('ro,')


def test_targets_through_the_images_symlinks_stay_inside_the_rootfs(runtime, host_dir):
    name = 'ctr-mounts-test-%s' % uuid.uuid4().hex[:8]
    host_etc = set(os.listdir('/etc'))
    inside = '%s/inside' % runtime.sentinel
    ran = run(runtime, 'cat /etc/%s/in; for m in /etc/%s /escaped /made/here %s; do'
              ' grep -c " $m " /proc/self/mountinfo; done' % (name, name, inside), image='evil',
              volumes=['%s:/data/%s' % (host_dir, name)],
              tmpfs=['/up/escaped', '/dangling', '/out/inside:size=64k'])
    assert ran.code == 0, ran.err
    assert ran.out.splitlines() == ['from the host', '1', '1', '1', '1']     # each where the rootfs has it
    assert set(os.listdir('/etc')) == host_etc and not os.path.exists('/etc/' + name)
    assert not os.path.exists('/escaped') and not os.path.exists('/made')
    assert os.listdir(runtime.sentinel) == ['keep']
    upper = os.path.join(runtime.containers.dir(ran.container.Id), 'upper')
    for made in ('etc/' + name, 'escaped', 'made/here', inside.lstrip('/')):
        assert os.path.isdir(os.path.join(upper, made)), made


def test_a_target_that_resolves_to_the_root_is_refused(runtime, host_dir):
    c = runtime.create('evil', command=['true'], volumes=['%s:/toroot' % host_dir])
    with pytest.raises(CtrError) as err:
        runtime.start(c.Id)
    assert 'mount target "/toroot" resolves to the root of the container' in err.value.msg
    assert not lines_about([runtime.containers.dir(c.Id)])


def test_nested_targets_are_mounted_shallow_first(runtime, host_dir):
    ran = run(runtime, 'echo deep > /n/a/b/f; cat /n/a/in; grep -E " /n/a(/b)? " /proc/self/mountinfo',
              tmpfs=['/n/a/b:size=64k'], volumes=['%s:/n/a' % host_dir])
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0] == 'from the host'
    assert [line.split()[4] for line in lines[1:]] == ['/n/a', '/n/a/b']
    assert os.path.isdir(host_dir / 'b') and os.listdir(host_dir / 'b') == []     # the mount point, on the host


@pytest.mark.parametrize('network_mode', ['none', 'bridge'])
def test_no_mount_shows_on_the_host_and_none_is_left_after_removal(runtime, host_dir, tmp_path, store_root,
                                                                   network_mode):
    ours = [str(tmp_path), str(store_root), 'size=1236k']
    assert lines_about(ours) == []
    c = runtime.create('busybox', command=['sleep', '60'], volumes=['%s:/data' % host_dir, '%s:/ro:ro' % host_dir],
                       mounts=[{'type': 'bind', 'source': str(host_dir), 'target': '/m', 'propagation': 'rshared'}],
                       tmpfs=['/scratch:size=1236k'], network_mode=network_mode)
    runtime.start(c.Id)
    pid = runtime.get(c.Id).State.Pid
    merged = os.path.join(runtime.containers.dir(c.Id), 'merged')
    netns = os.path.join(runtime.containers.dir(c.Id), 'netns')
    # the overlay, and for a bridge network the held network namespace; nothing else
    expected = [merged] if network_mode == 'none' else sorted([merged, netns])
    assert sorted(line.split()[4] for line in lines_about(ours)) == expected
    with open('/proc/%d/mountinfo' % pid, encoding='utf-8') as f:
        inside = [line.split()[4] for line in f]
    assert {'/data', '/ro', '/m', '/scratch'} <= set(inside)
    assert runtime.remove(c.Id, force=True)
    assert lines_about(ours) == []
    assert sorted(os.listdir(host_dir)) == ['in'] and (host_dir / 'in').read_text() == 'from the host\n'


def test_inspect_and_host_config_show_the_mounts(runtime, host_dir):
    c = runtime.create('busybox', command=['true'], volumes=['%s:/data:ro' % host_dir],
                       mounts=[{'type': 'tmpfs', 'target': '/cache', 'tmpfs_size': '1m'}], tmpfs=['/run:size=64k'])
    c = runtime.get(c.Id)
    assert c.HostConfig['Binds'] == ['%s:/data:ro' % host_dir]
    assert c.HostConfig['Mounts'] == [{'Type': 'tmpfs', 'Target': '/cache', 'TmpfsOptions': {'SizeBytes': 1 << 20}}]
    assert c.HostConfig['Tmpfs'] == {'/run': 'size=64k'}
    assert runtime.inspect(c)['Mounts'] == [
        {'Type': 'bind', 'Source': str(host_dir), 'Destination': '/data', 'Mode': 'ro', 'RW': False,
         'Propagation': 'rprivate'},
        {'Type': 'tmpfs', 'Source': '', 'Destination': '/cache', 'Mode': '', 'RW': True, 'Propagation': ''},
    ]


@pytest.mark.parametrize('options', [
    {'volumes': ['relative/path:/data']},
    {'volumes': ['/srv:/data:bogus']},
    {'volumes': ['/a:/x', '/b:/x']},
    {'mounts': [{'type': 'bind', 'source': '/no/such/path', 'target': '/x'}]},
    {'tmpfs': ['/x:size=huge']},
])
def test_bad_mounts_create_nothing(runtime, options):
    with pytest.raises(InvalidArgument):
        runtime.create('busybox', **options)
    assert runtime.list() == []


def test_the_cli_takes_docker_flags(runtime, host_dir, store_root):
    env = dict(os.environ, PYTHONPATH=str(helpers.MODULE_UTILS))
    out = subprocess.run(
        [sys.executable, '-m', 'ctr', '--root', str(store_root), 'run', '--rm', '-v', '%s:/v:ro' % host_dir,
         '--mount', 'type=bind,src=%s,dst=/m' % host_dir, '--mount', 'type=tmpfs,target=/t,tmpfs-mode=700',
         '--tmpfs', '/u:size=64k', 'busybox', 'sh', '-c', 'cat /v/in; echo cli > /m/cli; stat -c %a /t; df -k /u'],
        capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == ['from the host', '700']
    assert (host_dir / 'cli').read_text() == 'cli\n'
    assert runtime.list() == []


def test_read_only_binds_are_read_only_below_too(runtime, host_dir):
    sub = host_dir / 'sub'
    sub.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', str(sub)], check=True)
    try:
        ran = run(runtime, 'touch /data/sub/x 2>&1; touch /data/y 2>&1; echo done', volumes=['%s:/data:ro' % host_dir])
        assert ran.out.count('Read-only file system') == 2 and 'done' in ran.out, ran.out
        assert not (sub / 'x').exists()
    finally:
        subprocess.run(['umount', '-l', str(sub)], check=False)

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cgroups without root: limit parsers, layout detection from mountinfo fixtures, and the files a
container's cgroup writes, on a fake cgroup tree (plain directories standing in for cgroupfs)."""

from __future__ import annotations

import os

import pytest

from ctr.errors import CtrError, InvalidArgument, KernelError
from ctr.runtime import cgroups, devices
from ctr.runtime.cgrouplayout import cgroup_paths, parse_mountinfo
from ctr.runtime.cgroups import Cgroup
from ctr.runtime.limits import Limits, parse_cpus, parse_memory, parse_pids_limit

MiB = 1 << 20

# -- limit parsers ---------------------------------------------------------------------------------


@pytest.mark.parametrize('text, expected', [
    ('512m', 512 * MiB),
    ('512M', 512 * MiB),
    ('1g', 1 << 30),
    ('1G', 1 << 30),
    ('1gb', 1 << 30),
    ('1GiB', 1 << 30),
    ('1.5g', 3 << 29),
    ('64000k', 64000 << 10),
    ('6m', 6 * MiB),
    ('1048576000', 1048576000),
    ('7340032b', 7340032),
    ('100 m', 100 * MiB),
    (' 8m ', 8 * MiB),
    ('1t', 1 << 40),
    (64 * MiB, 64 * MiB),
])
def test_parse_memory_reads_docker_units(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize('text, reason', [
    ('', 'give a number of bytes'),
    ('abc', 'give a number of bytes'),
    ('-1', 'give a number of bytes'),
    ('1x', 'give a number of bytes'),
    ('1.2.3m', 'give a number of bytes'),
    ('m', 'give a number of bytes'),
    ('1e9', 'give a number of bytes'),
    (True, 'give a number of bytes'),
    (None, 'give a number of bytes'),
    ('64k', 'Minimum memory limit allowed is 6MB'),
    ('5m', 'Minimum memory limit allowed is 6MB'),
    ('0', 'Minimum memory limit allowed is 6MB'),
    (6 * MiB - 1, 'Minimum memory limit allowed is 6MB'),
    ('9000000p', 'largest limit'),
    ('9' * 19, 'largest limit'),
    ('1' * 5000, 'give a number of bytes'),
    ('1.' + '5' * 5000 + 'g', 'give a number of bytes'),
])
def test_parse_memory_rejects_bad_values_naming_option_and_value(text, reason):
    with pytest.raises(InvalidArgument) as info:
        parse_memory(text)
    assert reason in str(info.value)
    assert str(info.value).startswith('invalid memory "%s' % str(text)[:50])
    assert info.value.details['option'] == 'memory'


@pytest.mark.parametrize('text, expected', [
    ('0.5', 0.5), ('2', 2.0), ('1.25', 1.25), ('.5', 0.5), ('0.01', 0.01), (' 1 ', 1.0), (1, 1.0), (0.75, 0.75),
])
def test_parse_cpus(text, expected):
    assert parse_cpus(text, ncpu=2) == expected


@pytest.mark.parametrize('text, reason', [
    ('0', 'range of CPUs is from 0.01 to 2'),
    ('0.001', 'range of CPUs is from 0.01 to 2'),
    ('2.5', 'range of CPUs is from 0.01 to 2'),
    ('3', 'range of CPUs is from 0.01 to 2'),
    ('-1', 'give a number of CPUs'),
    ('one', 'give a number of CPUs'),
    ('', 'give a number of CPUs'),
    ('nan', 'give a number of CPUs'),
    (float('inf'), 'range of CPUs'),
    (True, 'give a number of CPUs'),
])
def test_parse_cpus_rejects_values_out_of_range(text, reason):
    with pytest.raises(InvalidArgument) as info:
        parse_cpus(text, ncpu=2)
    assert reason in str(info.value)
    assert str(info.value).startswith('invalid cpus "%s"' % text)
    assert info.value.details['option'] == 'cpus'


def test_parse_cpus_defaults_to_the_cpus_of_this_host():
    assert parse_cpus(str(os.cpu_count())) == float(os.cpu_count())
    with pytest.raises(InvalidArgument):
        parse_cpus(str(os.cpu_count() + 1))


@pytest.mark.parametrize('value, expected', [(1, 1), ('8', 8), (' 100 ', 100), (4096, 4096)])
def test_parse_pids_limit(value, expected):
    assert parse_pids_limit(value) == expected


@pytest.mark.parametrize('value', [0, -1, '0', '-1', 'many', 1.5, True, None, ''])
def test_parse_pids_limit_rejects(value):
    with pytest.raises(InvalidArgument, match='invalid pids_limit'):
        parse_pids_limit(value)


def test_limits_parse_and_validation():
    assert Limits.parse(memory='32m', cpus='0.5', pids_limit='8', ncpu=2) == Limits(32 * MiB, 0.5, 8)
    assert Limits.parse() == Limits(None, None, None)
    assert Limits(cpus=1).cpus == 1.0 and isinstance(Limits(cpus=1).cpus, float)


@pytest.mark.parametrize('kwargs, option', [
    ({'memory': '32m'}, 'memory'), ({'memory': MiB}, 'memory'), ({'memory': True}, 'memory'),
    ({'cpus': 0}, 'cpus'), ({'cpus': '1'}, 'cpus'), ({'cpus': float('nan')}, 'cpus'),
    ({'pids': 0}, 'pids_limit'), ({'pids': '8'}, 'pids_limit'),
])
def test_limits_refuse_values_out_of_range(kwargs, option):
    with pytest.raises(InvalidArgument) as info:
        Limits(**kwargs)
    assert info.value.details['option'] == option


def test_limits_as_kernel_keeps_them():
    page = os.sysconf('SC_PAGE_SIZE')
    kept = Limits(memory=6 * MiB + page + 1, cpus=0.333333, pids=5).as_kernel_keeps()
    assert kept == Limits(memory=6 * MiB + page, cpus=0.33333, pids=5)


# -- layout detection ------------------------------------------------------------------------------

UNIFIED = """\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

# systemd's hybrid mode: cpu and cpuacct co-mounted, an empty unified tree, a named systemd tree.
HYBRID_SYSTEMD = """\
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
32 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
33 25 0:31 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer
34 25 0:32 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,net_cls,net_prio
35 25 0:33 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,devices
"""

# The machine this project is developed on: every v1 controller alone, a unified tree holding hugetlb.
HYBRID_THIS_HOST = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# CentOS 7 style: v1 only, with a release agent on the named hierarchy.
LEGACY = """\
25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup \
rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
28 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
29 25 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
30 25 0:26 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,freezer
31 25 0:27 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
32 25 0:28 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,devices
"""

# A unified host that mounts a named v1 tree for old systemd containers: still unified.
UNIFIED_WITH_NAMED_V1 = UNIFIED + (
    '40 30 0:40 / /sys/fs/cgroup/systemd rw,relatime shared:20 - cgroup cgroup rw,xattr,name=systemd\n')

NO_CGROUPS = '22 1 0:21 / /proc rw,relatime - proc proc rw\n'


@pytest.mark.parametrize('text, kind, v2_point, v1_points', [
    (UNIFIED, 'unified', '/sys/fs/cgroup', {}),
    (UNIFIED_WITH_NAMED_V1, 'unified', '/sys/fs/cgroup', {'name=systemd': '/sys/fs/cgroup/systemd'}),
    (HYBRID_SYSTEMD, 'hybrid', '/sys/fs/cgroup/unified', {
        'cpu': '/sys/fs/cgroup/cpu,cpuacct', 'cpuacct': '/sys/fs/cgroup/cpu,cpuacct',
        'memory': '/sys/fs/cgroup/memory', 'pids': '/sys/fs/cgroup/pids', 'freezer': '/sys/fs/cgroup/freezer',
        'devices': '/sys/fs/cgroup/devices', 'net_prio': '/sys/fs/cgroup/net_cls,net_prio',
        'name=systemd': '/sys/fs/cgroup/systemd'}),
    (HYBRID_THIS_HOST, 'hybrid', '/sys/fs/cgroup/unified', {
        'cpu': '/sys/fs/cgroup/cpu', 'cpuacct': '/sys/fs/cgroup/cpuacct', 'cpuset': '/sys/fs/cgroup/cpuset',
        'memory': '/sys/fs/cgroup/memory', 'pids': '/sys/fs/cgroup/pids', 'blkio': '/sys/fs/cgroup/blkio'}),
    (LEGACY, 'legacy', None, {
        'cpu': '/sys/fs/cgroup/cpu,cpuacct', 'memory': '/sys/fs/cgroup/memory',
        'name=systemd': '/sys/fs/cgroup/systemd', 'pids': '/sys/fs/cgroup/pids'}),
    (NO_CGROUPS, 'none', None, {}),
    ('', 'none', None, {}),
])
def test_parse_mountinfo_detects_the_layout(text, kind, v2_point, v1_points):
    layout = parse_mountinfo(text)
    assert layout.kind == kind
    assert (layout.v2.point if layout.v2 else None) == v2_point
    for controller, point in v1_points.items():
        assert layout.v1_mount(controller).point == point
    assert all('rw' not in m.controllers and 'xattr' not in m.controllers for m in layout.v1)
    assert not any(c.startswith('release_agent') for m in layout.v1 for c in m.controllers)


def test_parse_mountinfo_unescapes_paths_and_keeps_the_first_mount_of_a_hierarchy():
    text = ('50 1 0:29 /ctr\\040a /tmp/my\\040cg rw master:3 shared:4 - cgroup cgroup rw,memory\n'
            '51 1 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n'
            '52 1 0:30 / /mnt/a rw - cgroup2 cgroup2 rw\n'
            '53 1 0:30 / /mnt/b rw - cgroup2 cgroup2 rw\n')
    layout = parse_mountinfo(text)
    assert layout.v1_mount('memory').point == '/tmp/my cg'
    assert layout.v1_mount('memory').root == '/ctr a'
    assert len(layout.v1) == 1
    assert layout.v2.point == '/mnt/a'


def test_parse_mountinfo_skips_malformed_lines():
    assert parse_mountinfo('garbage\n1 2 3\n' + LEGACY).kind == 'legacy'


def test_cgroup_paths_of_a_proc_cgroup_file():
    text = '9:name=systemd:/\n4:memory:/ctr/abc\n1:cpu,cpuacct:/ctr/abc\n0::/ctr/abc\n'
    assert cgroup_paths(text) == {'/', '/ctr/abc'}


# -- a fake cgroup tree ----------------------------------------------------------------------------

V2_FILES = {'cgroup.procs': '', 'cgroup.controllers': '', 'cgroup.subtree_control': '', 'cgroup.events':
            'populated 0\nfrozen 0\n', 'cgroup.freeze': '0\n', 'cgroup.kill': ''}
V2_CONTROLLER_FILES = {'memory': {'memory.max': 'max\n', 'memory.swap.max': 'max\n', 'memory.events':
                                  'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n'},
                       'cpu': {'cpu.max': 'max 100000\n'}, 'pids': {'pids.max': 'max\n'}}
V1_FILES = {'memory': {'memory.limit_in_bytes': '9223372036854771712\n',
                       'memory.memsw.limit_in_bytes': '9223372036854771712\n',
                       'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n'},
            'cpu': {'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_period_us': '100000\n'},
            'pids': {'pids.max': 'max\n'}, 'freezer': {'freezer.state': 'THAWED\n'},
            'devices': {'devices.allow': '', 'devices.deny': '', 'devices.list': 'a *:* rwm\n'}}


class FakeTree:
    """Plain directories laid out like cgroupfs; mkdir fills in the interface files as the kernel does."""

    def __init__(self, base, monkeypatch, v1=(), v2_controllers=None, bpf_error=None):
        self.base = str(base)
        self.writes = []
        self.programs = {}          # cgroup2 directory -> device programs attached (the kernel's side, faked)
        self.points = {}
        lines = []
        for spec in v1:
            point = os.path.join(self.base, spec)
            self.points[point] = (1, spec.split(','))
            lines.append('1 1 0:1 / %s rw - cgroup cgroup rw,%s' % (point, spec))
        if v2_controllers is not None:
            point = os.path.join(self.base, 'unified')
            self.points[point] = (2, v2_controllers)
            lines.append('2 1 0:2 / %s rw - cgroup2 cgroup2 rw' % point)
        self.mountinfo = '\n'.join(lines) + '\n'
        for point in self.points:
            os.makedirs(point)
            self._fill(point, root=True)
        real_mkdir, real_write = cgroups._mkdir, cgroups._write

        def mkdir(path):
            made = real_mkdir(path)
            self._fill(path)
            return made

        def write(path, value):
            self.writes.append((os.path.relpath(path, self.base), value))
            if os.path.isfile(path):
                os.truncate(path, 0)    # a cgroup file holds the last value written; a plain file must be emptied
            real_write(path, value)

        def attach(directory, rules=devices.DEFAULT_RULES):
            if bpf_error is not None:
                raise KernelError('cannot attach the device filter to %s: %s' % (directory, bpf_error))
            devices.program(rules)
            self.programs[os.path.relpath(directory, self.base)] = 1

        monkeypatch.setattr(cgroups, '_mkdir', mkdir)
        monkeypatch.setattr(cgroups, '_write', write)
        monkeypatch.setattr(devices, 'attach', attach)
        monkeypatch.setattr(devices, 'attached', lambda d: self.programs.get(os.path.relpath(d, self.base), 0))

    def _fill(self, path, root=False):
        point = next((p for p in self.points if path == p or path.startswith(p + '/')), None)
        if point is None:
            return
        version, names = self.points[point]
        files = {}
        if version == 2:
            files.update(V2_FILES, **{'cgroup.controllers': ' '.join(names) + '\n'})
            if not root:
                for name in names:
                    files.update(V2_CONTROLLER_FILES.get(name, {}))
        else:
            files['cgroup.procs'] = ''
            if not root:
                for name in names:
                    files.update(V1_FILES.get(name, {}))
        for name, text in files.items():
            with open(os.path.join(path, name), 'w', encoding='ascii') as handle:
                handle.write(text)

    def read(self, relpath):
        with open(os.path.join(self.base, relpath), encoding='ascii') as handle:
            return handle.read().strip()

    def set(self, relpath, text):
        with open(os.path.join(self.base, relpath), 'w', encoding='ascii') as handle:
            handle.write(text)

    def leaf_writes(self, leaf):
        return [(os.path.relpath(p, leaf), v) for p, v in self.writes if p.startswith(leaf + '/')]


LIMITS = Limits(memory=32 * MiB, cpus=0.5, pids=8)


def test_unified_create_enables_controllers_and_writes_v2_files(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v2_controllers=['cpu', 'memory', 'pids', 'io'])
    cg = Cgroup.create('abc', LIMITS, parent='ctr', mountinfo=fake.mountinfo)
    assert cg.layout.kind == 'unified'
    root_enable = [v for p, v in fake.writes if p == 'unified/cgroup.subtree_control']
    parent_enable = [v for p, v in fake.writes if p == 'unified/ctr/cgroup.subtree_control']
    assert root_enable == parent_enable == ['+memory', '+cpu', '+pids']
    assert fake.leaf_writes('unified/ctr/abc') == [
        ('memory.max', str(32 * MiB)), ('memory.swap.max', '0'), ('cpu.max', '50000 100000'), ('pids.max', '8')]
    assert cg.limits() == LIMITS
    assert cg.paths == {'memory': str(tmp_path / 'unified/ctr/abc'), 'cpu': str(tmp_path / 'unified/ctr/abc'),
                        'pids': str(tmp_path / 'unified/ctr/abc'), 'unified': str(tmp_path / 'unified/ctr/abc')}
    assert fake.programs == {'unified/ctr/abc': 1}
    assert cg.devices_restricted


def test_unified_lifting_limits_writes_max(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v2_controllers=['cpu', 'memory', 'pids'])
    cg = Cgroup.create('abc', LIMITS, mountinfo=fake.mountinfo)
    del fake.writes[:]
    cg.set_limits(Limits())
    assert fake.leaf_writes('unified/ctr/abc') == [
        ('memory.max', 'max'), ('memory.swap.max', 'max'), ('cpu.max', 'max 100000'), ('pids.max', 'max')]
    assert cg.limits() == Limits()


def test_unified_controllers_already_enabled_are_not_written_again(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v2_controllers=['cpu', 'memory', 'pids'])
    fake.set('unified/cgroup.subtree_control', 'cpu memory pids\n')
    Cgroup.create('abc', LIMITS, mountinfo=fake.mountinfo)
    assert not [p for p, v in fake.writes if p == 'unified/cgroup.subtree_control']


@pytest.mark.parametrize('kwargs, option, controller', [
    ({'pids': 8}, 'pids_limit', 'pids'), ({'memory': 32 * MiB}, 'memory', 'memory'), ({'cpus': 1.0}, 'cpus', 'cpu'),
])
def test_a_limit_without_its_controller_fails_before_anything_is_made(tmp_path, monkeypatch, kwargs, option,
                                                                      controller):
    fake = FakeTree(tmp_path, monkeypatch, v2_controllers=['io'])
    with pytest.raises(CtrError) as info:
        Cgroup.create('abc', Limits(**kwargs), mountinfo=fake.mountinfo)
    assert str(info.value) == '%s needs the %s cgroup controller, which this host lacks' % (option, controller)
    assert info.value.details['option'] == option
    assert not os.path.exists(tmp_path / 'unified' / 'ctr')
    assert fake.writes == []


def test_unified_without_limits_needs_no_controller(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v2_controllers=[])
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo)
    assert cg.paths == {'unified': str(tmp_path / 'unified/ctr/abc')}
    assert cg.limits() == Limits()
    assert fake.writes == []


def test_unified_create_fails_whole_when_the_device_program_cannot_be_attached(tmp_path, monkeypatch):
    """Without a v1 devices controller the program is the only device filter: no program, no cgroup."""
    fake = FakeTree(tmp_path, monkeypatch, v2_controllers=['memory'], bpf_error='operation not permitted')
    destroyed = []
    monkeypatch.setattr(Cgroup, 'destroy', lambda self: destroyed.append(self.name))     # plain dirs: no rmdir
    with pytest.raises(KernelError, match='device filter'):
        Cgroup.create('abc', parent='ctr', mountinfo=fake.mountinfo)
    assert destroyed == ['abc'] and not fake.programs


def test_hybrid_keeps_the_v1_list_when_the_program_cannot_be_attached(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['devices'], v2_controllers=[], bpf_error='operation not permitted')
    cg = Cgroup.create('abc', parent='ctr', mountinfo=fake.mountinfo)
    assert ('devices/ctr/abc/devices.deny', 'a') in fake.writes and not fake.programs
    fake.set('devices/ctr/abc/devices.list', 'c *:* m\nb *:* m\nc 1:3 rwm\n')
    assert cg.devices_restricted


def test_privileged_gets_no_device_rules(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['devices'], v2_controllers=[])
    cg = Cgroup.create('abc', parent='ctr', mountinfo=fake.mountinfo, allow_all_devices=True)
    assert not [w for w in fake.writes if w[0].startswith('devices/')] and not fake.programs
    assert not cg.devices_restricted


def test_legacy_create_writes_v1_files_and_the_device_allow_list(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['cpu,cpuacct', 'memory', 'pids', 'freezer', 'devices', 'name=systemd'])
    cg = Cgroup.create('abc', LIMITS, parent='ctr', mountinfo=fake.mountinfo)
    assert cg.layout.kind == 'legacy'
    assert sorted(cg.paths) == ['cpu', 'cpuacct', 'devices', 'freezer', 'memory', 'pids']
    assert cg.paths['cpu'] == cg.paths['cpuacct'] == str(tmp_path / 'cpu,cpuacct/ctr/abc')
    devices = [(p, v) for p, v in fake.writes if p.startswith('devices/')]
    assert devices[0] == ('devices/ctr/abc/devices.deny', 'a')
    assert ('devices/ctr/abc/devices.allow', 'c 1:3 rwm') in devices
    assert ('devices/ctr/abc/devices.allow', 'c 136:* rwm') in devices
    assert not cg.devices_restricted        # the fake's devices.list still says "a *:* rwm"...
    fake.set('devices/ctr/abc/devices.list', 'c *:* m\nb *:* m\nc 1:3 rwm\n')
    assert cg.devices_restricted            # ...the kernel's would list the rules
    others = [(p, v) for p, v in fake.writes if not p.startswith('devices/')]
    assert others == [      # lowered from no limit: memory first, memory+swap next
        ('memory/ctr/abc/memory.limit_in_bytes', str(32 * MiB)),
        ('memory/ctr/abc/memory.memsw.limit_in_bytes', str(32 * MiB)),
        ('cpu,cpuacct/ctr/abc/cpu.cfs_period_us', '100000'),
        ('cpu,cpuacct/ctr/abc/cpu.cfs_quota_us', '50000'),
        ('pids/ctr/abc/pids.max', '8')]
    assert cg.limits() == LIMITS


@pytest.mark.parametrize('memsw_now, new, order', [
    (32 * MiB, 16 * MiB, ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes']),     # lower: memory first
    (32 * MiB, 64 * MiB, ['memory.memsw.limit_in_bytes', 'memory.limit_in_bytes']),     # raise: memsw first
    (32 * MiB, None, ['memory.memsw.limit_in_bytes', 'memory.limit_in_bytes']),         # lift: memsw first
    (32 * MiB, 32 * MiB, ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes']),
])
def test_v1_memory_and_memsw_are_written_in_the_order_the_kernel_accepts(tmp_path, monkeypatch, memsw_now, new,
                                                                         order):
    fake = FakeTree(tmp_path, monkeypatch, v1=['memory'])
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo)
    fake.set('memory/ctr/abc/memory.memsw.limit_in_bytes', '%d\n' % memsw_now)
    del fake.writes[:]
    cg.set_limits(Limits(memory=new))
    expected = '-1' if new is None else str(new)
    assert fake.leaf_writes('memory/ctr/abc') == [(name, expected) for name in order]


def test_v1_without_swap_accounting_writes_memory_only(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['memory'])
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo)
    os.unlink(tmp_path / 'memory/ctr/abc/memory.memsw.limit_in_bytes')
    del fake.writes[:]
    cg.set_limits(Limits(memory=8 * MiB))
    assert fake.leaf_writes('memory/ctr/abc') == [('memory.limit_in_bytes', str(8 * MiB))]


def test_allow_all_devices_leaves_the_device_list_alone(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['devices', 'memory'])
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo, allow_all_devices=True)
    assert not [p for p, v in fake.writes if p.startswith('devices/')]
    assert not cg.devices_restricted


def test_hybrid_like_this_host_uses_v1_controllers_and_a_bare_v2_directory(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['cpu', 'cpuacct', 'memory', 'pids', 'freezer', 'devices', 'blkio'],
                    v2_controllers=['hugetlb'])
    cg = Cgroup.create('abc', LIMITS, mountinfo=fake.mountinfo)
    assert cg.layout.kind == 'hybrid'
    assert cg.paths['unified'] == str(tmp_path / 'unified/ctr/abc')
    assert cg.paths['memory'] == str(tmp_path / 'memory/ctr/abc')
    assert 'blkio' not in cg.paths
    assert not [p for p, v in fake.writes if p.startswith('unified/')]
    assert cg.limits() == LIMITS


def test_hybrid_takes_from_v2_what_v1_does_not_mount(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['cpu', 'memory'], v2_controllers=['pids', 'memory'])
    cg = Cgroup.create('abc', LIMITS, mountinfo=fake.mountinfo)
    assert cg.paths['pids'] == cg.paths['unified'] == str(tmp_path / 'unified/ctr/abc')
    assert cg.paths['memory'] == str(tmp_path / 'memory/ctr/abc')
    assert [v for p, v in fake.writes if p == 'unified/ctr/cgroup.subtree_control'] == ['+pids']
    assert fake.read('unified/ctr/abc/pids.max') == '8'


@pytest.mark.parametrize('v1, v2, events_file, text', [
    ([], ['memory'], 'unified/ctr/abc/memory.events', 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n'),
    (['memory'], None, 'memory/ctr/abc/memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n'),
])
def test_oom_killed_reads_the_kernel_counter(tmp_path, monkeypatch, v1, v2, events_file, text):
    fake = FakeTree(tmp_path, monkeypatch, v1=v1, v2_controllers=v2)
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo)
    assert cg.oom_killed() is False
    fake.set(events_file, text)
    assert cg.oom_killed() is True


def test_oom_killed_is_false_without_memory_controller_or_old_kernel(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['memory', 'pids'])
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo)
    fake.set('memory/ctr/abc/memory.oom_control', 'oom_kill_disable 0\nunder_oom 0\n')     # before Linux 4.13
    assert cg.oom_killed() is False
    fake2 = FakeTree(tmp_path / 'b', monkeypatch, v1=['pids'])
    assert Cgroup.create('abc', mountinfo=fake2.mountinfo).oom_killed() is False


def test_freeze_without_any_freezer_names_what_is_missing(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['memory'])
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo)
    with pytest.raises(CtrError, match='needs the freezer cgroup controller'):
        cg.freeze()
    assert cg.is_frozen() is False


def test_freeze_that_never_completes_times_out_with_a_clear_message(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v2_controllers=[])
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo)
    with pytest.raises(CtrError, match=r'^freezing cgroup "ctr/abc" did not finish within 0.05 s$'):
        cg.freeze(timeout=0.05)
    assert ('unified/ctr/abc/cgroup.freeze', '1') in fake.writes


def test_pids_reads_every_hierarchy(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['memory', 'pids'], v2_controllers=[])
    cg = Cgroup.create('abc', mountinfo=fake.mountinfo)
    fake.set('memory/ctr/abc/cgroup.procs', '12\n7\n')
    fake.set('unified/ctr/abc/cgroup.procs', '7\n30\n')
    assert cg.pids() == [7, 12, 30]


def test_open_finds_an_existing_cgroup_only(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['memory'], v2_controllers=[])
    assert Cgroup.open('abc', parent='p/q', mountinfo=fake.mountinfo) is None
    Cgroup.create('abc', parent='p/q', mountinfo=fake.mountinfo)
    found = Cgroup.open('abc', parent='p/q', mountinfo=fake.mountinfo)
    assert found.paths['memory'] == str(tmp_path / 'memory/p/q/abc')
    assert found.exists()


def test_create_again_reuses_the_directories(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['memory'], v2_controllers=['pids'])
    Cgroup.create('abc', Limits(pids=4), mountinfo=fake.mountinfo)
    cg = Cgroup.create('abc', Limits(pids=5), mountinfo=fake.mountinfo)
    assert cg.limits().pids == 5


@pytest.mark.parametrize('name, parent', [
    ('', 'ctr'), ('..', 'ctr'), ('a/b', 'ctr'), ('-x', 'ctr'), ('a b', 'ctr'), ('x' * 256, 'ctr'),
    ('abc', ''), ('abc', '../etc'), ('abc', '/ctr'), ('abc', 'ctr/'), ('abc', 'a//b'), ('abc', '.hidden'),
])
def test_names_that_could_leave_the_cgroup_tree_are_refused(tmp_path, monkeypatch, name, parent):
    fake = FakeTree(tmp_path, monkeypatch, v1=['memory'])
    with pytest.raises(InvalidArgument, match='invalid cgroup'):
        Cgroup.create(name, parent=parent, mountinfo=fake.mountinfo)
    assert os.listdir(tmp_path / 'memory') == ['cgroup.procs']


def test_no_cgroup_filesystem_is_a_clear_error():
    with pytest.raises(CtrError, match='no cgroup filesystem is mounted'):
        Cgroup.create('abc', mountinfo=NO_CGROUPS)


def test_write_errors_name_the_call_and_the_file(tmp_path):
    path = str(tmp_path / 'missing' / 'memory.max')
    with pytest.raises(KernelError) as info:
        cgroups._write(path, '1')
    assert str(info.value) == 'write "%s": no such file or directory' % path
    assert info.value.details['errno'] == 2


def test_create_rolls_back_when_a_limit_cannot_be_written(tmp_path, monkeypatch):
    fake = FakeTree(tmp_path, monkeypatch, v1=['pids'])
    real_write = cgroups._write

    def refuse_pids(path, value):
        if path.endswith('pids.max'):
            raise KernelError('write "%s": invalid argument' % path, errno=22)
        real_write(path, value)

    monkeypatch.setattr(cgroups, '_write', refuse_pids)
    monkeypatch.setattr(cgroups, '_rmdir', lambda path, timeout=0: fake.writes.append(('rmdir', path)))
    with pytest.raises(KernelError, match='invalid argument'):
        Cgroup.create('abc', Limits(pids=8), mountinfo=fake.mountinfo)
    assert ('rmdir', str(tmp_path / 'pids/ctr/abc')) in fake.writes

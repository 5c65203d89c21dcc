# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr_container and ctr_container_info as Ansible runs them: create, repeat (not changed), change
(changed: recreated), bad values (one sentence, nothing created), check and diff modes, states."""

from __future__ import annotations

import time

import pytest

from ctr.runtime.lifecycle import Runtime


@pytest.fixture
def ctr(run_module, store_root, busybox_rootfs):
    Runtime(str(store_root)).images.import_rootfs(str(busybox_rootfs), 'busybox', changes=['CMD ["sh"]'])

    def call(check=False, diff=False, module='ctr_container', **args):
        full = {'root': str(store_root), 'name': 'web'}
        full.update(args)
        return run_module(module, full, check=check, diff=diff)
    try:
        yield call
    finally:
        rt = Runtime(str(store_root))
        for c in rt.list():
            rt.remove(c.Id, force=True)


SLEEPER = {'image': 'busybox', 'command': ['sleep', '300']}


def assert_failed(result, *fragments):
    assert result.get('failed'), result
    assert '\n' not in result['msg'] and 'Traceback' not in result['msg'], result['msg']
    for fragment in fragments:
        assert fragment in result['msg'], result['msg']


def test_started_create_repeat_change(ctr):
    first = ctr(**SLEEPER)
    assert first['changed'] and first['container']['State']['Running']
    assert first['actions'] == ['created web', 'started web']
    first_id = first['container']['Id']
    again = ctr(**SLEEPER)
    assert not again['changed'] and again['container']['Id'] == first_id
    changed = ctr(image='busybox', command=['sleep', '301'])
    assert changed['changed'] and changed['container']['Id'] != first_id
    assert changed['actions'][0].startswith('recreated web (command')


@pytest.mark.parametrize('option, first, second', [
    ('env', {'A': '1'}, {'A': '2'}),
    ('user', '65534', '0'),
    ('working_dir', '/tmp', '/'),
    ('hostname', 'alpha', 'beta'),
    ('labels', {'a': 'b'}, {'a': 'c'}),
    ('memory', '64m', '128m'),
    ('cpus', '0.5', '1'),
    ('pids_limit', 50, 60),
    ('cap_drop', ['NET_RAW'], ['CHOWN']),
    ('capabilities', ['SYS_TIME'], ['SYS_NICE']),
    ('read_only', True, False),
    ('network_mode', 'host', 'none'),
    ('restart_policy', 'always', 'no'),
    ('restart_retries', 1, 2),
    ('privileged', True, False),
    ('stop_signal', 'SIGINT', 'SIGTERM'),
    ('stop_timeout', 3, 5),
    ('entrypoint', ['sleep'], ['/bin/sleep']),
    ('volumes', ['/tmp:/host-tmp:ro'], ['/tmp:/host-tmp']),
    ('tmpfs', ['/scratch:size=8m'], ['/scratch:size=16m']),
    ('mounts', [{'type': 'tmpfs', 'target': '/t'}], [{'type': 'tmpfs', 'target': '/t', 'read_only': True}]),
])
def test_each_option_create_repeat_change(ctr, option, first, second):
    args = dict(SLEEPER)
    if option == 'entrypoint':
        args['command'] = ['300']
    args[option] = first
    created = ctr(**args)
    assert created['changed'], created
    assert not ctr(**args)['changed']
    args[option] = second
    changed = ctr(**args)
    assert changed['changed'] and changed['container']['Id'] != created['container']['Id']


@pytest.mark.parametrize('args, fragments', [
    ({'image': 'nothere'}, ['nothere']),
    ({'memory': 'lots'}, ['memory', 'lots']),
    ({'cpus': '-1'}, ['cpus']),
    ({'capabilities': ['CAP_NOPE']}, ['capabilities', 'NOPE']),
    ({'working_dir': 'relative'}, ['working_dir']),
    ({'stop_signal': 'SIGNOPE'}, ['stop_signal']),
    ({'name': 'bad name'}, ['bad name']),
    ({'user': 'nobody-here'}, ['nobody-here']),
    ({'volumes': ['relative/sub:/x']}, ['volumes']),
    ({'mounts': [{'type': 'bind', 'source': '/no/such/dir', 'target': '/x'}]}, ['/no/such/dir']),
    ({'tmpfs': ['notabs']}, ['tmpfs']),
    ({'restart_retries': -1}, ['restart_retries']),
])
def test_bad_values_create_nothing(ctr, store_root, args, fragments):
    full = dict(SLEEPER)
    full.update(args)
    assert_failed(ctr(**full), *fragments)
    assert Runtime(str(store_root)).list() == []


def test_check_mode_predicts_and_changes_nothing(ctr, store_root):
    predicted = ctr(check=True, diff=True, **SLEEPER)
    assert predicted['changed'] and predicted['container'] == {}
    assert Runtime(str(store_root)).list() == []
    ctr(**SLEEPER)
    assert not ctr(check=True, **SLEEPER)['changed']
    change = ctr(check=True, diff=True, image='busybox', command=['sleep', '9'])
    assert change['changed'] and change['diff']['before']['command'] == ['sleep', '300']
    assert Runtime(str(store_root)).get('web').Args == ['300']


def test_states_stopped_present_absent(ctr, store_root):
    ctr(**SLEEPER)
    stopped = ctr(state='stopped')
    assert stopped['changed'] and not stopped['container']['State']['Running']
    assert not ctr(state='stopped')['changed']
    assert ctr(state='started')['changed']
    assert not ctr(state='present', **SLEEPER)['changed']
    restarted = ctr(restart=True, **SLEEPER)
    assert restarted['changed'] and restarted['actions'] == ['restarted web']
    assert ctr(recreate=True, **SLEEPER)['actions'][0].startswith('recreated web')
    assert ctr(state='absent')['changed']
    assert not ctr(state='absent')['changed']
    assert Runtime(str(store_root)).list() == []


def test_detach_false_returns_output_and_status_and_cleans_up(ctr, store_root):
    result = ctr(image='busybox', command='sh -c "echo hello; echo oops >&2; exit 3"', detach=False, cleanup=True)
    assert result['changed'] and result['status'] == 3
    assert result['output'] == 'hello\noops\n' or sorted(result['output'].split()) == ['hello', 'oops']
    assert Runtime(str(store_root)).list() == []


def test_container_info(ctr):
    assert ctr(module='ctr_container_info', name=None)['containers'] == []
    missing = ctr(module='ctr_container_info')
    assert not missing['exists'] and missing['container'] == {}
    ctr(image='busybox', command=['sh', '-c', 'echo line1; echo line2; sleep 300'])
    info = ctr(module='ctr_container_info', logs=True, tail=5)
    assert info['exists'] and info['container']['Name'] == '/web'
    for key in ('Id', 'Created', 'Path', 'Args', 'State', 'RestartCount', 'Image', 'Config', 'HostConfig',
                'GraphDriver', 'Mounts', 'LogPath'):
        assert key in info['container']
    assert info['container']['State']['Pid'] > 0
    assert info['container']['GraphDriver']['Data']['MergedDir'].endswith('/merged')
    deadline = time.time() + 5
    while info['logs'] != ['line1', 'line2'] and time.time() < deadline:
        time.sleep(0.1)
        info = ctr(module='ctr_container_info', logs=True)
    assert info['logs'] == ['line1', 'line2']
    assert not ctr(module='ctr_container_info', name='other')['exists']
    assert len(ctr(module='ctr_container_info', name=None)['containers']) == 1


# -- regressions from the runtime review -----------------------------------------------------------------

def test_a_hex_name_never_picks_another_container_by_id_prefix(ctr, store_root):
    first = ctr(**SLEEPER)
    prefix = first['container']['Id'][:2]
    result = ctr(name=prefix, state='absent')
    assert not result['changed']
    assert Runtime(str(store_root)).find('web') is not None
    created = ctr(name=prefix, **SLEEPER)
    assert created['changed'] and created['container']['Name'] == '/' + prefix


def test_recreate_with_a_bad_user_keeps_the_running_container(ctr, store_root):
    first = ctr(**SLEEPER)
    bad = ctr(user='ghost', **SLEEPER)
    assert_failed(bad, 'ghost')
    assert Runtime(str(store_root)).get('web').Id == first['container']['Id']
    assert_failed(ctr(recreate=True), 'image is required')


def test_capability_spellings_compare_equal(ctr):
    assert ctr(capabilities=['SYS_TIME'], **SLEEPER)['changed']
    assert not ctr(capabilities=['cap_sys_time'], **SLEEPER)['changed']


def test_detach_false_with_a_restart_policy_is_refused(ctr, store_root):
    assert_failed(ctr(detach=False, restart_policy='always', **SLEEPER), 'restart_policy')
    assert Runtime(str(store_root)).list() == []


def test_stopped_stops_a_crash_looping_container(ctr, store_root):
    ctr(image='busybox', command=['sh', '-c', 'exit 1'], restart_policy='always')
    result = ctr(image='busybox', command=['sh', '-c', 'exit 1'], restart_policy='always', state='stopped')
    assert result['changed']
    c = Runtime(str(store_root)).get('web')
    assert c.State.Status == 'exited' and not c.State.MonitorPid

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The modules through real ansible-playbook runs: AnsiballZ packs the engine (relative imports and all),
`module_defaults: group/daemonless.ctr.ctr` sets the root for every module, check and diff modes."""

from __future__ import annotations

import os
import time

PLAY = '''
- hosts: localhost
  gather_facts: false
  module_defaults:
    group/daemonless.ctr.ctr:
      root: {root}
  tasks:
    - name: import
      daemonless.ctr.ctr_image:
        name: busybox
        source: import
        import_path: {rootfs}
        changes: ['CMD ["sh"]']
      environment:
        SOURCE_DATE_EPOCH: "1700000000"
    - name: save
      daemonless.ctr.ctr_image:
        name: busybox
        source: import
        import_path: {rootfs}
        changes: ['CMD ["sh"]']
        archive_path: {archive}
      environment:
        SOURCE_DATE_EPOCH: "1700000000"
    - name: info
      daemonless.ctr.ctr_image_info:
        name: [busybox]
'''


def test_playbook_with_module_defaults_check_and_diff(run_playbook, store_root, busybox_rootfs, tmp_path):
    play = PLAY.format(root=store_root, rootfs=busybox_rootfs, archive=tmp_path / 'busybox.tar')

    predicted = run_playbook(play, check=True, diff=True)
    assert predicted.rc == 0, predicted.stdout + predicted.stderr
    assert predicted.task('import')['changed'] and predicted.task('save')['changed']
    assert predicted.task('info')['images'] == []
    assert not os.path.exists(store_root / 'oci') and not os.path.exists(tmp_path / 'busybox.tar')

    first = run_playbook(play, diff=True)
    assert first.rc == 0, first.stdout + first.stderr
    assert first.task('import')['changed'] and first.task('save')['changed']
    assert first.task('save')['actions'] == ['saved docker.io/library/busybox:latest to %s as docker-archive'
                                             % (tmp_path / 'busybox.tar')]
    assert first.task('import')['diff']['after']['names'] == ['docker.io/library/busybox:latest']
    image = first.task('info')['images'][0]
    assert image['Created'] == '2023-11-14T22:13:20Z'
    assert os.path.isfile(tmp_path / 'busybox.tar')

    again = run_playbook(play, check=True)
    assert again.rc == 0 and not again.task('import')['changed'] and not again.task('save')['changed']
    repeat = run_playbook(play)
    assert repeat.rc == 0 and not repeat.task('import')['changed'] and not repeat.task('save')['changed']
    assert repeat.task('info')['images'][0]['Id'] == image['Id']


def test_modules_load_the_engine_compiled_once(run_playbook, store_root, pycache_dir):
    """AnsiballZ imports the engine from a zip, where Python writes no .pyc: bytecode_cache keeps the
    compiled code in $CTR_PYCACHE (the session's, in these tests), so a second run compiles nothing."""
    play = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: info
      daemonless.ctr.ctr_image_info:
        root: {root}
'''.format(root=store_root)
    cache = pycache_dir
    first = run_playbook(play)
    assert first.rc == 0 and first.task('info')['images'] == []
    entries = sorted(os.listdir(cache))
    assert len(entries) >= 5        # the engine modules ctr_image_info imports, at least
    assert all(os.stat(cache / e).st_mode & 0o077 == 0 for e in entries)
    second = run_playbook(play)
    assert second.rc == 0 and sorted(os.listdir(cache)) == entries


def test_a_monitor_started_by_a_task_outlives_the_tasks_payload(run_playbook, store_root, busybox_rootfs):
    """The monitor of a container that ctr_container started is a fresh interpreter that imported the engine
    from the task's AnsiballZ payload; Ansible deletes that payload, and the monitor still restarts the
    container (on-failure, 2 retries), records every exit and cleans up at the end."""
    from ctr.runtime.lifecycle import Runtime
    rt = Runtime(str(store_root))
    rt.images.import_rootfs(str(busybox_rootfs), 'busybox', changes=['CMD ["sh"]'])
    play = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - name: flaky
      daemonless.ctr.ctr_container:
        root: {root}
        name: flaky
        image: busybox
        command: [sh, -c, "sleep 1; exit 3"]
        network_mode: none
        restart_policy: on-failure
        restart_retries: 2
'''.format(root=store_root)
    try:
        ran = run_playbook(play)
        assert ran.rc == 0 and ran.task('flaky')['changed']
        state = rt.get('flaky').State
        with open('/proc/%d/cmdline' % state.MonitorPid, 'rb') as handle:
            argv = handle.read().decode().split('\0')
        payload = argv[5]               # the engine's sys.path entry: inside the task's zip, gone now
        assert argv[1:3] == ['-I', '-S'] and '.zip' in payload and not os.path.exists(payload.split('.zip')[0] + '.zip')
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (rt.get('flaky').State.MonitorPid or rt.get('flaky').State.Running):
            time.sleep(0.1)
        final = rt.get('flaky')
        assert (final.State.Status, final.State.ExitCode, final.State.RestartCount, final.State.MonitorPid) == ('exited', 3, 2, 0)
        assert not [line for line in open('/proc/self/mountinfo') if str(store_root) in line]
    finally:
        for container in rt.list():
            rt.remove(container.Id, force=True)

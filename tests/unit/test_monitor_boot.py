# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The command line that boots a monitor's own interpreter, wherever the engine was imported from."""

from __future__ import annotations

import os
import sys
import types

from ctr.runtime import monitor


def heavy(monkeypatch):
    monkeypatch.setattr(monitor, '_caller_weight', lambda: monitor.FRESH_ABOVE + 1)


def test_an_engine_on_a_plain_path_boots_from_that_path(monkeypatch):
    heavy(monkeypatch)
    monkeypatch.setattr(sys, 'path', ['', '/opt/ctr/lib', '/usr/lib/python3/dist-packages'])
    command = monitor._boot_command(7, 9)
    root = os.path.dirname(os.path.dirname(os.path.dirname(monitor.__file__)))
    assert command[:4] == [sys.executable, '-I', '-S', '-c'] and command[4] == monitor._BOOT
    assert command[5:10] == [root, 'ctr', '', '7', '9']
    assert command[10:] == ['/opt/ctr/lib', '/usr/lib/python3/dist-packages']


def test_an_engine_in_an_ansiballz_zip_boots_from_the_zip_under_its_full_name(monkeypatch):
    heavy(monkeypatch)
    package = 'ansible_collections.daemonless.ctr.plugins.module_utils.ctr'
    zip_path = '/root/.ansible/tmp/ansible-tmp-1/AnsiballZ_ctr_container.py/payload.zip'
    monkeypatch.setattr(monitor, '__name__', package + '.runtime.monitor')
    monkeypatch.setattr(monitor, '__file__', zip_path + '/' + package.replace('.', '/') + '/runtime/monitor.py')
    monkeypatch.setitem(sys.modules, 'ansible_collections.daemonless.ctr.plugins.module_utils.bytecode_cache',
                        types.ModuleType('bytecode_cache'))
    monkeypatch.setattr(sys, 'path', [zip_path, '/usr/lib/python3.11'])
    command = monitor._boot_command(3, 4)
    assert command[5:8] == [zip_path, package, 'ansible_collections.daemonless.ctr.plugins.module_utils.bytecode_cache']
    assert command[10:] == ['/usr/lib/python3.11']


def test_a_light_caller_forks_its_monitor(monkeypatch):
    monkeypatch.setattr(monitor, '_caller_weight', lambda: monitor.FRESH_ABOVE)
    assert not monitor._fresh_monitor()
    heavy(monkeypatch)
    assert monitor._fresh_monitor()


def test_the_callers_weight_is_its_anonymous_memory():
    ballast = b'x' * (4 << 20)          # touched pages: counted
    assert monitor._caller_weight() >= len(ballast)


def test_no_interpreter_to_exec_no_fresh_monitor(monkeypatch):
    heavy(monkeypatch)
    monkeypatch.setattr(sys, 'executable', '')
    assert not monitor._fresh_monitor()
    monkeypatch.setattr(sys, 'executable', 'python3')     # relative: not something to exec from '/'
    assert not monitor._fresh_monitor()

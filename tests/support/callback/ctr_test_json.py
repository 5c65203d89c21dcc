# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only stdout callback: print one JSON document with every task result when the run ends.

ansible-core ships no JSON stdout callback (``json`` lives in ansible.posix), so the tests bring
this one; tests/conftest.py's ``run_playbook`` fixture selects it.
"""

from __future__ import annotations

import json

from ansible.module_utils.common.json import AnsibleJSONEncoder
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: ctr_test_json
type: stdout
short_description: every task result as one JSON document (tests only)
description:
  - Collects each task result and prints one JSON object with the keys C(results) and C(stats) at the end of the run.
'''


class CallbackModule(CallbackBase):
    """Collect task results in order and print them as JSON at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'ctr_test_json'

    def __init__(self, display=None):
        super().__init__(display)
        self.results = []
        self.warnings = []

    def _record(self, result, status):
        data = dict(result._result)  # pylint: disable=protected-access
        self.results.append({
            'host': result._host.get_name(),  # pylint: disable=protected-access
            'task': result._task.get_name(),  # pylint: disable=protected-access
            'action': result._task.action,  # pylint: disable=protected-access
            'status': status,
            'result': data,
        })

    def v2_runner_on_ok(self, result):
        self._record(result, 'changed' if result._result.get('changed') else 'ok')  # pylint: disable=protected-access

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'ignored' if ignore_errors else 'failed')

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        summary = {host: stats.summarize(host) for host in sorted(stats.processed)}
        document = {'results': self.results, 'stats': summary}
        self._display.display(json.dumps(document, cls=AnsibleJSONEncoder, indent=2, sort_keys=True))

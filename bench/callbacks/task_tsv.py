# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A callback for the benchmarks: one TSV line per task in $TASK_TSV (name, seconds from start to result)."""
from __future__ import annotations
import os
import time
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_tsv'
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self.start = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.start[task._uuid] = time.monotonic()

    def _done(self, result, failed=False):
        task = result._task
        seconds = time.monotonic() - self.start.get(task._uuid, time.monotonic())
        changed = bool(result._result.get('changed'))
        with open(os.environ['TASK_TSV'], 'a') as f:
            outcome = 'changed' if changed else 'ok'
            f.write('%s\t%.4f\t%s\t%s\n' % (task.get_name(), seconds, outcome, 'failed' if failed else ''))

    def v2_runner_on_ok(self, result):
        self._done(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, failed=True)

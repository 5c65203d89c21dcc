# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The only place where Ansible meets the engine.

Modules build their argument spec from the pieces here and hand their work to
:func:`run`, which turns a :class:`CtrError` into ``fail_json(msg=...)`` (with
the error's details beside the message) and never lets a traceback through for
an error the engine raised on purpose. The engine itself never sees ``module``.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

from ansible_collections.daemonless.ctr.plugins.module_utils import bytecode_cache

bytecode_cache.install()    # before the engine's first import: see bytecode_cache

from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.errors import CtrError  # noqa: E402

ROOT_OPTION = dict(type='path', default='/var/lib/ctr', fallback=(env_fallback, ['CTR_ROOT']))


def argument_spec(**options):
    """The module's own options plus the shared ``root``."""
    spec = dict(root=dict(ROOT_OPTION))
    spec.update(options)
    return spec


def run(module, work):
    """Call ``work()`` (returns the result dict) and exit the module with it, or fail cleanly."""
    try:
        result = work()
    except CtrError as exc:
        details = dict((k, v) for k, v in exc.details.items() if k not in ('msg', 'changed', 'failed'))
        module.fail_json(msg=exc.msg, **details)
    except OSError as exc:
        # an errno the engine did not expect: still one sentence, with the path
        where = ' "%s"' % exc.filename if exc.filename else ''
        module.fail_json(msg='unexpected system error%s: %s' % (where, exc.strerror or exc), errno=exc.errno)
    module.exit_json(**result)


def diff(before, after):
    """Diff mode's shape."""
    return dict(before=before if before is not None else {}, after=after if after is not None else {})

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entry point of ``python3 -m ctr`` (with plugins/module_utils on ``sys.path``)."""

from __future__ import annotations

import os
import sys

from .cli import main


def _exit(code):
    """End the process once the command is done, without the interpreter's teardown (every module's
    namespace cleared, a last garbage collection: ~5 ms of a 40 ms command). Nothing is left to
    it: the engine closes what it writes (and waits for the threads that compress layers),
    registers no atexit handler and no finalizer; only stdout and stderr are flushed here, and
    output that cannot be written fails the command as Python's own exit would (status 120), but
    a reader gone away (``| head``) does not. ``code`` as SystemExit takes it: None is 0. Under a
    profiler, a tracer or a coverage tool the process exits normally, so that they write their data."""
    if _observed():
        raise SystemExit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write('%s\n' % (code,))
        code = 1
    for stream in (sys.stdout, sys.stderr):
        if stream is None:              # started with the descriptor closed
            continue
        try:
            stream.flush()
        except BrokenPipeError:
            pass
        except (OSError, ValueError) as exc:
            try:
                sys.stderr.write('ctr: error: the output could not be written: %s\n' % (exc,))
                sys.stderr.flush()
            except (AttributeError, OSError, ValueError):
                pass
            code = code or 120
    os._exit(code)


def _observed():
    """A profiler or tracer is attached (sys.setprofile/settrace, or sys.monitoring from 3.12)."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, 'monitoring', None)
    return monitoring is not None and any(monitoring.get_tool(i) is not None for i in range(6))


if __name__ == '__main__':
    _exit(main())

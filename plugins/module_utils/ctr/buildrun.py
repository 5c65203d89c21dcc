# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RUN: the step's command in a container of our runtime, made from the step's image.

The container has the stage's env (plus the build args in scope), user,
working dir and shell, and the build's network (host unless told otherwise).
Its output is relayed line by line as it comes; its upper dir becomes the
layer, without the init layer's hosts, hostname and resolv.conf, which Docker
never commits. The container is removed whatever happens.
"""

from __future__ import annotations

import json
import os
import time

from .errors import CtrError

_TAIL = 10
_POLL = 0.02


def argv(cmd, shell):
    """The command line of a RUN: the exec form as is, the shell form through SHELL; heredocs kept for
    the shell (a lone ``RUN <<EOF`` runs its body as the script; a ``#!`` body runs through its interpreter)."""
    if cmd.json_args is not None:
        if not cmd.json_args:
            raise CtrError('RUN needs a command')
        return list(cmd.json_args)
    text = cmd.args
    if cmd.heredocs:
        first = cmd.heredocs[0]
        marker = text.strip()
        if len(cmd.heredocs) == 1 and marker.lstrip('<-').strip('\'"') == first.name and marker.startswith('<<'):
            if first.content.startswith('#!'):
                import shlex
                quoted = shlex.quote(first.content)
                text = ('f=$(mktemp) && printf %%s %s > "$f" && chmod 700 "$f" && "$f"; rc=$?; rm -f "$f"; exit $rc'
                        % quoted)
            else:
                text = first.content
        else:
            text = text + '\n' + ''.join(h.content + h.name + '\n' for h in cmd.heredocs)
    return list(shell) + [text]


def run(b, state, cmd, command, env, network):
    """Run ``command`` for the step; returns the new layer's LayerDigests."""
    from . import dockerfile_parse as dp
    from . import buildsteps
    from .build import BUILD_LABEL
    from .runtime.rootfs import INIT_FILES
    rt = b.runtime
    image = b.state_image(state)
    body = state.body
    container = rt.create(image, command=command, entrypoint=[], env=env, user=body.get('User') or None,
                          working_dir=body.get('WorkingDir') or None, network_mode=network,
                          labels={BUILD_LABEL: 'run'})
    try:
        rt.start(container.Id)
        lines = _follow(b, rt, container)
        done = rt.get(container.Id)
        if done.State.Error or done.State.ExitCode != 0:
            tail = lines[-_TAIL:]
            why = done.State.Error or 'exit code %d' % done.State.ExitCode
            raise dp.DockerfileError(
                b.shown_path, cmd.line, 'RUN', 'the command %s failed (%s)%s' % (
                    json.dumps(command), why, '; its last output:\n' + '\n'.join(tail) if tail else ''))
        upper = os.path.join(rt.containers.dir(container.Id), 'upper')
        skip = frozenset(INIT_FILES)
        return buildsteps.pack(b, state, upper, skip=lambda rel: rel.strip('/') in skip)
    finally:
        try:
            rt.remove(container.Id, force=True)
        except CtrError:
            pass


def _follow(b, rt, container):
    """Relay the container's log lines until its monitor is done; returns them."""
    path = rt.log_path(container)
    pos, partial, lines = 0, b'', []
    while True:
        state = rt.get(container.Id).State
        finished = not state.MonitorPid
        try:
            with open(path, 'rb') as f:
                f.seek(pos)
                data = f.read()
                pos = f.tell()
        except FileNotFoundError:
            data = b''
        data = partial + data
        *complete, partial = data.split(b'\n')
        for raw in complete:
            try:
                text = json.loads(raw.decode('utf-8'))['log'].rstrip('\n')
            except (ValueError, KeyError, TypeError):
                continue
            lines.append(text)
            b.emit(text)
        if finished:
            return lines
        time.sleep(_POLL)

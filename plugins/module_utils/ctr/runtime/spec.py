# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The process a container runs: its argv, environment, working directory, user and capabilities.

Everything here is computed before the container starts, from the image's
``Config`` (Docker-style keys: ``Entrypoint``, ``Cmd``, ``Env``, ``WorkingDir``,
``User``) and the task's options; ``lifecycle`` puts the results in the
:class:`~.start.StartPlan` that the start sequence consumes.

The command line follows Docker exactly (moby ``daemon.merge`` and
``mergeAndVerifyConfig``, and the ``docker run`` reference):

* no ``entrypoint`` option: argv = image Entrypoint + (``command`` if given and
  non-empty, else image Cmd);
* an ``entrypoint`` option replaces the image's Entrypoint and drops the image's Cmd
  ("passing --entrypoint clears out any default command set on the image"):
  argv = entrypoint + ``command``. ``[]``, ``['']`` and ``''`` give no entrypoint at all
  (Docker resets an Entrypoint of ``[""]`` to none);
* an empty result is an error ("no command specified").

A string ``command`` is split like a shell would (``shlex.split``), as
community.docker's ``docker_container`` does; a string ``entrypoint`` is one argv
element, as ``docker run --entrypoint`` and podman take it. (One API corner is not
copied: via Docker's HTTP API an Entrypoint of ``[]`` keeps the image's Cmd; the CLI
never sends that, and here ``[]`` means the same as ``--entrypoint ''``.)
"""

from __future__ import annotations

import posixpath
import shlex

from ..errors import InvalidArgument

DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'


# -- command line -----------------------------------------------------------------------------------

def _check_argv(items, option):
    if not isinstance(items, (list, tuple)):
        raise InvalidArgument('%s must be a string or a list of strings, not %r' % (option, items),
                              option=option, value=items)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument('%s: element %r is not a string' % (option, item), option=option, value=items)
        if '\0' in item:
            raise InvalidArgument('%s: element %r contains a NUL character' % (option, item),
                                  option=option, value=items)
        out.append(item)
    return out


def _command_argv(command):
    if isinstance(command, str):
        try:
            return _check_argv(shlex.split(command), 'command')
        except ValueError as exc:
            raise InvalidArgument('command "%s" cannot be split into words: %s' % (command, str(exc).lower()),
                                  option='command', value=command) from None
    return _check_argv(command, 'command')


def _entrypoint_argv(entrypoint):
    argv = _check_argv([entrypoint] if isinstance(entrypoint, str) else entrypoint, 'entrypoint')
    return [] if argv in ([], ['']) else argv


def _image_list(image_config, key):
    value = (image_config or {}).get(key) or []
    if isinstance(value, str):          # a hand-written config may carry a bare string
        value = [value]
    return list(value)


def entrypoint_and_cmd(image_config, entrypoint=None, command=None):
    """``(Entrypoint, Cmd)`` of the container, as Docker records them in its Config.

    None means "not given"; see the module docstring for Docker's rules.
    """
    cmd = _command_argv(command) if command is not None else []
    if entrypoint is not None:
        return _entrypoint_argv(entrypoint), cmd
    image_entrypoint = _image_list(image_config, 'Entrypoint')
    if image_entrypoint == ['']:
        image_entrypoint = []
    return image_entrypoint, cmd or _image_list(image_config, 'Cmd')


def command_line(image_config, entrypoint=None, command=None):
    """The container's argv: Entrypoint + Cmd after :func:`entrypoint_and_cmd`."""
    entry, cmd = entrypoint_and_cmd(image_config, entrypoint, command)
    argv = entry + cmd
    if not argv:
        raise InvalidArgument('no command specified: the image has no Entrypoint or Cmd and neither '
                              'entrypoint nor command was given', option='command')
    if argv[0] == '':
        raise InvalidArgument('the command to run is an empty string (argv %r)' % (argv,), option='command',
                              value=argv)
    return argv


# -- environment ------------------------------------------------------------------------------------

def _env_key(entry):
    return entry.split('=', 1)[0]


def _check_env_pair(key, value, shown):
    if not isinstance(key, str) or not key or '=' in key or '\0' in key:
        raise InvalidArgument('env: %s is not a valid variable name (it must be a non-empty string '
                              'without "=" or NUL)' % (shown,), option='env', value=key)
    if not isinstance(value, str):
        raise InvalidArgument('env: the value of %s must be a string, not %r (quote it in YAML)' % (key, value),
                              option='env', value=key)
    if '\0' in value:
        raise InvalidArgument('env: the value of %s contains a NUL character' % key, option='env', value=key)


def _env_overrides(env):
    """(key, 'KEY=value') pairs in the given order, from a dict or a list of 'KEY=value' strings."""
    if env is None:
        return []
    if isinstance(env, dict):
        pairs = []
        for key, value in env.items():
            _check_env_pair(key, value, repr(key))
            pairs.append((key, '%s=%s' % (key, value)))
        return pairs
    if not isinstance(env, (list, tuple)):
        raise InvalidArgument('env must be a dict or a list of KEY=value strings, not %r' % (env,),
                              option='env', value=env)
    pairs = []
    for entry in env:
        if not isinstance(entry, str) or '=' not in entry:
            raise InvalidArgument('env: %r is not of the form KEY=value' % (entry,), option='env', value=entry)
        key, value = entry.split('=', 1)
        _check_env_pair(key, value, repr(key))
        pairs.append((key, entry))
    return pairs


def merge_env(image_env, env=None):
    """The image's Env with ``env`` (dict or 'KEY=value' list) merged over it, as 'KEY=value' strings.

    Order is stable: the image's variables in the image's order (an override keeps
    its place), then new variables in the order given (a repeated key: first place,
    last value). PATH is set to Docker's default, first, when neither defines it.
    HOSTNAME and HOME are the runtime's to add (:func:`runtime_env`).
    """
    merged = {}
    for entry in image_env or []:
        merged[_env_key(entry)] = entry
    for key, entry in _env_overrides(env):
        merged[key] = entry
    out = list(merged.values())
    if 'PATH' not in merged:
        out.insert(0, 'PATH=' + DEFAULT_PATH)
    return out


def runtime_env(env, hostname=None, home=None):
    """``env`` plus what the runtime adds when it is unset: HOSTNAME (Docker) and HOME (runc, from passwd)."""
    keys = {_env_key(entry) for entry in env}
    out = list(env)
    if hostname and 'HOSTNAME' not in keys:
        out.append('HOSTNAME=' + hostname)
    if home and 'HOME' not in keys:
        out.append('HOME=' + home)
    return out


# -- working directory ------------------------------------------------------------------------------

def _clean_abs(path):
    """normpath, with a run of leading slashes made one (POSIX normpath keeps '//')."""
    return '/' + posixpath.normpath(path).lstrip('/')


def working_dir(image_config, override=None):
    """The process's cwd: ``override`` (absolute, required), else the image's WorkingDir, else '/'.

    An empty ``override`` means "not given", as in Docker. A relative WorkingDir in an
    image (no Docker build makes one) is taken from '/'.
    """
    if override is not None and override != '':
        if not isinstance(override, str) or '\0' in override:
            raise InvalidArgument('working_dir %r is not a path' % (override,), option='working_dir', value=override)
        if not override.startswith('/'):
            raise InvalidArgument('working_dir "%s" is invalid: it must be an absolute path' % override,
                                  option='working_dir', value=override)
        return _clean_abs(override)
    image_dir = (image_config or {}).get('WorkingDir') or ''
    if not isinstance(image_dir, str) or '\0' in image_dir:
        raise InvalidArgument('the image\'s WorkingDir %r is not a path' % (image_dir,), option='working_dir')
    return _clean_abs(image_dir or '/')


__all__ = ['DEFAULT_PATH', 'command_line', 'entrypoint_and_cmd', 'merge_env', 'runtime_env', 'working_dir']

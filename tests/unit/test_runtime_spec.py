# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr.runtime.spec: the container's argv (Docker's ENTRYPOINT/CMD rules), environment and working
directory.
"""

from __future__ import annotations

import os
import sys

import pytest

_MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))
if _MODULE_UTILS not in [os.path.abspath(p) for p in sys.path]:
    sys.path.insert(0, _MODULE_UTILS)

from ctr.errors import InvalidArgument  # noqa: E402
from ctr.runtime import spec  # noqa: E402

PATH = 'PATH=' + spec.DEFAULT_PATH
EP_CMD = {'Entrypoint': ['/entry', '-v'], 'Cmd': ['--help']}
CMD_ONLY = {'Entrypoint': None, 'Cmd': ['sh']}
EP_ONLY = {'Entrypoint': ['/entry'], 'Cmd': None}


# -- command line -----------------------------------------------------------------------------------
# Docker's rules: moby daemon/create.go merge() takes the image's Cmd only when the container's
# Entrypoint and Cmd are both empty, and its Entrypoint only when the container's is unset;
# mergeAndVerifyConfig() resets an Entrypoint of [""] to none and refuses an empty result
# ("No command specified"); getEntrypointAndArgs() runs Entrypoint + Cmd. The docker run reference:
# "passing --entrypoint clears out any default command set on the image", and `--entrypoint ''`
# sends [""]. community.docker's docker_container splits a string command with shlex.

@pytest.mark.parametrize('image, entrypoint, command, argv', [
    # nothing given: image Entrypoint + image Cmd
    (CMD_ONLY, None, None, ['sh']),
    (EP_CMD, None, None, ['/entry', '-v', '--help']),
    (EP_ONLY, None, None, ['/entry']),
    # a command replaces the image's Cmd and keeps its Entrypoint
    (EP_CMD, None, ['run', 'x'], ['/entry', '-v', 'run', 'x']),
    (CMD_ONLY, None, ['ls', '-l'], ['ls', '-l']),
    # an empty command is no command: Docker tests len(Cmd) == 0
    (EP_CMD, None, [], ['/entry', '-v', '--help']),
    (CMD_ONLY, None, '', ['sh']),
    # a string command is split like a shell would
    (CMD_ONLY, None, 'sh -c "echo a  b" \'c d\'', ['sh', '-c', 'echo a  b', 'c d']),
    (EP_ONLY, None, 'one', ['/entry', 'one']),
    # an entrypoint replaces the image's Entrypoint AND drops the image's Cmd
    (EP_CMD, ['/other'], None, ['/other']),
    (CMD_ONLY, ['/other', '-x'], None, ['/other', '-x']),
    (EP_CMD, ['/other'], ['arg'], ['/other', 'arg']),
    (EP_CMD, ['/other'], 'a "b c"', ['/other', 'a', 'b c']),
    # [''], [] and '' clear the entrypoint (and the image's Cmd): the command runs alone
    (EP_CMD, [''], ['ls', '-l'], ['ls', '-l']),
    (EP_CMD, [], ['ls'], ['ls']),
    (EP_CMD, '', 'echo hi', ['echo', 'hi']),
    # a string entrypoint is one argv element (docker run --entrypoint, podman)
    (EP_CMD, '/bin/my entry', None, ['/bin/my entry']),
    (CMD_ONLY, '/bin/sh', '-c true', ['/bin/sh', '-c', 'true']),
    # an image whose Entrypoint is [""] has none
    ({'Entrypoint': [''], 'Cmd': ['sh']}, None, None, ['sh']),
    # no image Config at all
    (None, None, ['true'], ['true']),
    ({}, ['/bin/true'], None, ['/bin/true']),
    ({'Cmd': 'sh'}, None, None, ['sh']),
])
def test_command_line_follows_docker(image, entrypoint, command, argv):
    assert spec.command_line(image, entrypoint=entrypoint, command=command) == argv


@pytest.mark.parametrize('image, entrypoint, command, shown', [
    # nothing to run anywhere
    ({}, None, None, 'no command specified'),
    (None, None, [], 'no command specified'),
    ({'Entrypoint': [''], 'Cmd': None}, None, None, 'no command specified'),
    # --entrypoint '' drops the image's Cmd too, so with no command there is nothing left
    (EP_CMD, '', None, 'no command specified'),
    (EP_CMD, [''], None, 'no command specified'),
    # malformed values
    (CMD_ONLY, None, 'echo "unterminated', 'command "echo "unterminated"'),
    (CMD_ONLY, None, ['sleep', 10], 'command: element 10'),
    (CMD_ONLY, None, ['a\0b'], 'NUL'),
    (CMD_ONLY, None, 42, 'command must be'),
    (CMD_ONLY, 5, None, 'entrypoint must be'),
    (CMD_ONLY, ['/x', None], None, 'entrypoint: element None'),
    (CMD_ONLY, None, [''], 'empty string'),
])
def test_command_line_errors(image, entrypoint, command, shown):
    with pytest.raises(InvalidArgument) as info:
        spec.command_line(image, entrypoint=entrypoint, command=command)
    assert shown in info.value.msg


# -- environment ------------------------------------------------------------------------------------

@pytest.mark.parametrize('image_env, env, expected', [
    # image order kept, overrides in place, new keys after in the given order
    (['PATH=/x', 'A=1', 'B=2'], {'B': '20', 'C': '3', 'A': '10'}, ['PATH=/x', 'A=10', 'B=20', 'C=3']),
    (['PATH=/x', 'A=1'], ['Z=1', 'A=2', 'Y=2'], ['PATH=/x', 'A=2', 'Z=1', 'Y=2']),
    # PATH defaults to Docker's when neither defines it, first
    (['A=1'], None, [PATH, 'A=1']),
    (None, None, [PATH]),
    ([], {}, [PATH]),
    (None, {'PATH': '/only'}, ['PATH=/only']),
    (['A=1', 'PATH=/img'], {'PATH': '/mine'}, ['A=1', 'PATH=/mine']),
    # a repeated key: first place, last value
    (None, ['B=1', 'C=2', 'B=3'], [PATH, 'B=3', 'C=2']),
    # values may hold '=' and be empty
    (['PATH=/x'], {'A': 'x=y', 'E': ''}, ['PATH=/x', 'A=x=y', 'E=']),
    (['PATH=/x'], ['A=x=y', 'E='], ['PATH=/x', 'A=x=y', 'E=']),
    # an image entry without '=' is kept as the image has it
    (['PATH=/x', 'FLAG'], None, ['PATH=/x', 'FLAG']),
])
def test_merge_env(image_env, env, expected):
    assert spec.merge_env(image_env, env) == expected


@pytest.mark.parametrize('env, shown', [
    ({'A=B': 'x'}, "'A=B'"),
    ({'': 'x'}, "''"),
    ({'A\0': 'x'}, 'not a valid variable name'),
    ({1: 'x'}, '1'),
    ({'A': 'x\0'}, 'NUL'),
    ({'A': 1}, 'the value of A must be a string'),
    ({'A': True}, 'the value of A must be a string'),
    ({'A': None}, 'the value of A must be a string'),
    (['NOEQUALS'], "'NOEQUALS'"),
    (['=value'], "''"),
    ([5], '5'),
    ('A=1', 'env must be a dict'),
])
def test_merge_env_refuses_bad_keys_and_values(env, shown):
    with pytest.raises(InvalidArgument) as info:
        spec.merge_env(['PATH=/x'], env)
    assert info.value.msg.startswith('env')
    assert shown in info.value.msg


@pytest.mark.parametrize('env, hostname, home, expected', [
    (['PATH=/x'], 'abc123', '/root', ['PATH=/x', 'HOSTNAME=abc123', 'HOME=/root']),
    (['HOSTNAME=mine', 'HOME=/h'], 'abc123', '/root', ['HOSTNAME=mine', 'HOME=/h']),
    (['PATH=/x'], '', None, ['PATH=/x']),
])
def test_runtime_env_adds_only_what_is_unset(env, hostname, home, expected):
    assert spec.runtime_env(env, hostname=hostname, home=home) == expected


# -- working directory ------------------------------------------------------------------------------

@pytest.mark.parametrize('image, override, expected', [
    (None, None, '/'),
    ({}, None, '/'),
    ({'WorkingDir': ''}, None, '/'),
    ({'WorkingDir': '/app'}, None, '/app'),
    ({'WorkingDir': '/app/'}, None, '/app'),
    ({'WorkingDir': 'rel/dir'}, None, '/rel/dir'),
    ({'WorkingDir': '/app'}, '/srv/x/', '/srv/x'),
    ({'WorkingDir': '/app'}, '', '/app'),               # empty means "not given", as in Docker
    (None, '//a//b/../c/.', '/a/c'),
    (None, '/', '/'),
])
def test_working_dir(image, override, expected):
    assert spec.working_dir(image, override) == expected


@pytest.mark.parametrize('override', ['relative', 'a/b', './x', '/a\0b', 5])
def test_working_dir_must_be_absolute(override):
    with pytest.raises(InvalidArgument) as info:
        spec.working_dir({'WorkingDir': '/app'}, override)
    assert info.value.msg.startswith('working_dir')
    assert info.value.details['option'] == 'working_dir'

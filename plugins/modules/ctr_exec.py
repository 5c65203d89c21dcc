#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_exec
short_description: Run a command inside a running container, without a daemon
version_added: 0.1.0
description:
  - Run a command in a running container, as C(docker exec) does, through C(setns()) into every namespace of the
    container's PID 1 (a fork after joining its PID namespace, so the command is really inside it), its cgroup,
    its root, its capability set and C(no_new_privs); its masked paths hold since they are mounts of the
    namespace joined.
  - The environment is the image's C(Env), then the container's O(daemonless.ctr.ctr_container#module:env), then O(env); the
    working directory defaults to the container's.
  - Like M(ansible.builtin.command), a non-zero exit fails the task (with RV(rc), RV(stdout) and RV(stderr) in the
    result), and O(creates) or O(removes) make it idempotent.
extends_documentation_fragment:
  - daemonless.ctr.ctr
attributes:
  check_mode:
    description: Runs nothing; predicts C(changed) (honouring O(creates) and O(removes)).
    support: full
  diff_mode:
    description: A command has no diff.
    support: none
options:
  container:
    description: The running container's name or ID.
    type: str
    required: true
  command:
    description: The command as one string, split like a shell would (no shell features such as pipes).
    type: str
  argv:
    description: The command as a list, passed as it is.
    type: list
    elements: str
  chdir:
    description: The working directory inside the container; the container's when omitted.
    type: str
  env:
    description: More environment variables, over the container's.
    type: dict
  user:
    description: User (name or uid, with an optional C(:group) or C(:gid)) inside the container; the container's
      when omitted.
    type: str
  stdin:
    description: Data fed to the command's standard input.
    type: str
  stdin_add_newline:
    description: Add a newline to O(stdin).
    type: bool
    default: true
  detach:
    description: Start the command and return at once with its RV(pid); its output is discarded.
    type: bool
    default: false
  creates:
    description: A path inside the container (relative to O(chdir), else the container's working directory; no
      glob); when it exists, the command is not run.
    type: str
  removes:
    description: A path inside the container (as O(creates)); when it does not exist, the command is not run.
    type: str
  strip_empty_ends:
    description: Strip empty lines from the end of RV(stdout) and RV(stderr).
    type: bool
    default: true
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_container
  - module: ansible.builtin.command
'''

EXAMPLES = r'''
- name: Look inside
  daemonless.ctr.ctr_exec:
    container: web
    command: ls -l /www
  register: listing

- name: Initialise once
  daemonless.ctr.ctr_exec:
    container: db
    argv: [sh, -c, 'init-db && touch /data/.initialised']
    creates: /data/.initialised

- name: Feed a script
  daemonless.ctr.ctr_exec:
    container: web
    command: sh
    stdin: |
      echo hello > /tmp/greeting
    user: nobody
'''

RETURN = r'''
rc:
  description: The command's exit code (128 plus the signal number when a signal killed it).
  returned: when the command ran and was not detached
  type: int
stdout:
  description: What it wrote to standard output.
  returned: when the command ran and was not detached
  type: str
stderr:
  description: What it wrote to standard error.
  returned: when the command ran and was not detached
  type: str
stdout_lines:
  description: RV(stdout) split into lines.
  returned: when the command ran and was not detached
  type: list
  elements: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: when the command ran and was not detached
  type: list
  elements: str
pid:
  description: With O(detach), the command's process ID on the host.
  returned: when detached
  type: int
'''

import shlex

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.errors import InvalidArgument, NotFound
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.runtime.lifecycle import Runtime


def _text(data, strip):
    text = data.decode('utf-8', 'replace')
    return text.rstrip('\r\n') if strip else text


def work(module):
    p = module.params
    rt = Runtime(p['root'])
    container = rt.find(p['container'], prefixes=False)
    if container is None:
        raise NotFound('container %s does not exist' % p['container'], container=p['container'])
    if p['argv']:
        argv = [str(a) for a in p['argv']]
    else:
        try:
            argv = shlex.split(p['command'] or '')
        except ValueError as exc:
            raise InvalidArgument('command %r cannot be split: %s' % (p['command'], exc), option='command')
    if not argv:
        raise InvalidArgument('command or argv must name a program', option='command')
    if not container.State.Running:
        raise InvalidArgument('container %s is not running (%s)' % (container.Name, container.State.Status),
                              container=container.Name)
    for option, want in (('creates', False), ('removes', True)):
        if p[option] and rt.path_exists(container, p[option], p['chdir']) != want:
            reason = 'exists' if not want else 'does not exist'
            return dict(changed=False, msg='skipped, since %s %s' % (p[option], reason), rc=0, stdout='', stderr='',
                        stdout_lines=[], stderr_lines=[])
    if module.check_mode:
        return dict(changed=True, msg='would run %s' % ' '.join(shlex.quote(a) for a in argv))
    data = None
    if p['stdin'] is not None:
        data = (p['stdin'] + ('\n' if p['stdin_add_newline'] else '')).encode('utf-8')
    env = dict((k, str(v)) for k, v in (p['env'] or {}).items())
    result = rt.exec(container.Id, argv, env=env, user=p['user'], workdir=p['chdir'], stdin=data,
                     detach=p['detach'])
    if p['detach']:
        return dict(changed=True, pid=result.pid)
    out, err = _text(result.stdout, p['strip_empty_ends']), _text(result.stderr, p['strip_empty_ends'])
    outcome = dict(changed=True, rc=result.rc, stdout=out, stderr=err, stdout_lines=out.splitlines(),
                   stderr_lines=err.splitlines(), cmd=argv)
    if result.rc != 0:
        module.fail_json(msg='non-zero return code', **outcome)
    return outcome


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            container=dict(type='str', required=True),
            command=dict(type='str'),
            argv=dict(type='list', elements='str'),
            chdir=dict(type='str'),
            env=dict(type='dict'),
            user=dict(type='str'),
            stdin=dict(type='str'),
            stdin_add_newline=dict(type='bool', default=True),
            detach=dict(type='bool', default=False),
            creates=dict(type='str'),
            removes=dict(type='str'),
            strip_empty_ends=dict(type='bool', default=True),
        ),
        mutually_exclusive=[('command', 'argv')],
        required_one_of=[('command', 'argv')],
        supports_check_mode=True,
    )
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()

#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_container_info
short_description: Inspect containers run without a daemon
version_added: 0.1.0
description:
  - Return one container, or every container of the store (C(ps -a)), in Docker's inspect shape
    (C(Id), C(Name), C(Created), C(Path), C(Args), C(State), C(RestartCount), C(Image), C(Config),
    C(HostConfig), C(GraphDriver), C(Mounts), C(LogPath)).
  - The state is read back from the host, so a container whose monitor is gone is not reported as running.
extends_documentation_fragment:
  - daemonless.ctr.ctr
attributes:
  check_mode:
    description: Reads only; runs in check mode too.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: N/A
options:
  name:
    description: The container's name or ID; every container when omitted.
    type: str
  logs:
    description: With O(name), also return the container's log lines.
    type: bool
    default: false
  tail:
    description: With O(logs), only the last this many lines.
    type: int
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_container
'''

EXAMPLES = r'''
- name: Is web running?
  daemonless.ctr.ctr_container_info:
    name: web
  register: web

- ansible.builtin.debug:
    msg: "{{ web.container.State.Status if web.exists else 'no such container' }}"

- name: The last 20 log lines
  daemonless.ctr.ctr_container_info:
    name: web
    logs: true
    tail: 20
  register: web_logs

- name: Every container
  daemonless.ctr.ctr_container_info:
  register: all_containers
'''

RETURN = r'''
exists:
  description: With O(name), whether the container exists.
  returned: when name is given
  type: bool
container:
  description: With O(name), the container in Docker's inspect shape (empty when it does not exist).
  returned: when name is given
  type: dict
containers:
  description: Without O(name), every container in Docker's inspect shape.
  returned: when name is not given
  type: list
  elements: dict
logs:
  description: With O(logs), the container's log lines (stdout and stderr, in order).
  returned: when logs is true and the container exists
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.runtime.lifecycle import Runtime


def work(module):
    p = module.params
    rt = Runtime(p['root'])
    if p['name'] is None:
        return dict(changed=False, containers=[rt.inspect(c) for c in rt.list()])
    container = rt.find(p['name'], prefixes=False)
    result = dict(changed=False, exists=container is not None,
                  container=rt.inspect(container) if container is not None else {})
    if p['logs'] and container is not None:
        result['logs'] = [text.rstrip('\n') for _stream, text in rt.logs(container.Id, tail=p['tail'])]
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(name=dict(type='str'), logs=dict(type='bool', default=False),
                                    tail=dict(type='int')),
        supports_check_mode=True,
    )
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()

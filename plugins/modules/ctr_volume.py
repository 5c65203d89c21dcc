#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_volume
short_description: Manage volumes for containers run without a daemon
version_added: 0.1.0
description:
  - Create or remove a named volume of the store, as C(docker volume create) and C(docker volume rm) do.
  - A volume's data lives in C(<root>/volumes/<name>/_data) and outlives the containers that use it.
  - A container mounts it with O(daemonless.ctr.ctr_container#module:volumes) (V(name:/path)) or
    O(daemonless.ctr.ctr_container#module:mounts) (V(type=volume)); a new, empty volume is first filled with what
    the image has at that path, unless C(nocopy).
extends_documentation_fragment:
  - daemonless.ctr.ctr
attributes:
  check_mode:
    description: Predicts the change and makes none.
    support: full
  diff_mode:
    description: Returns the volume's settings before and after.
    support: full
options:
  name:
    description: The volume's name (letters, digits and C(_ . -), two or more, starting with a letter or digit).
    type: str
    required: true
  state:
    description: V(present) makes sure the volume exists; V(absent) removes it and its data.
    type: str
    choices: [present, absent]
    default: present
  driver:
    description: The volume driver; only V(local).
    type: str
    choices: [local]
    default: local
  driver_options:
    description:
      - The local driver's options, as Docker's C(--opt).
      - C(type=tmpfs) with C(o=size=64m,mode=1777) is a tmpfs (its content goes when the volume does).
      - C(type=none) with C(o=bind) and C(device=/srv/data) binds a host directory.
    type: dict
  labels:
    description: Labels of the volume.
    type: dict
  recreate:
    description:
      - V(never) leaves an existing volume as it is; V(options-changed) removes and makes it again (data lost)
        when O(driver_options) or O(labels) differ; V(always) does so every run.
    type: str
    choices: [never, always, options-changed]
    default: never
  force:
    description: Remove (or recreate) the volume even while container records use it.
    type: bool
    default: false
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_volume_info
  - module: daemonless.ctr.ctr_container
'''

EXAMPLES = r'''
- name: A volume for the database
  daemonless.ctr.ctr_volume:
    name: dbdata

- name: A scratch volume in memory
  daemonless.ctr.ctr_volume:
    name: scratch
    driver_options:
      type: tmpfs
      o: size=64m

- name: A host directory as a volume
  daemonless.ctr.ctr_volume:
    name: www
    driver_options:
      type: none
      o: bind
      device: /srv/www
'''

RETURN = r'''
volume:
  description: The volume in Docker's inspect shape (C(Name), C(Driver), C(Mountpoint), C(Labels), C(Options),
    C(Scope), C(CreatedAt)); empty when absent.
  returned: always
  type: dict
actions:
  description: What was done (or would be, in check mode).
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, diff, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.errors import Conflict
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.runtime.containers import ContainerStore
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.volumes import (Volume, VolumeStore,
                                                                                 normalize_options, validate_name)


def work(module):
    p = module.params
    store = VolumeStore(p['root'])
    validate_name(p['name'])
    existing = store.find(p['name'])
    before = existing.settings() if existing else {}
    containers = ContainerStore(store.root).list()
    users = store.users(p['name'], containers) if existing else []
    actions = []
    if p['state'] == 'absent':
        if existing is not None:
            if users and not p['force']:
                raise Conflict('volume %s is in use by container(s) %s: remove them first, or use force'
                               % (p['name'], ', '.join(sorted(c.Name for c in users))), volume=p['name'])
            if not module.check_mode:
                store.remove(p['name'], containers, force=p['force'])
            actions.append('removed %s' % p['name'])
        return dict(changed=bool(actions), actions=actions, volume={}, diff=diff(before, {}))

    options = normalize_options(p['driver_options'])
    wanted = Volume(p['name'], p['driver'], p['labels'], options).settings()
    volume = existing
    if existing is not None:
        differs = existing.settings() != wanted
        if p['recreate'] == 'always' or (p['recreate'] == 'options-changed' and differs):
            if users and not p['force']:
                raise Conflict('volume %s would be made again but container(s) %s use it: remove them first, or use '
                               'force' % (p['name'], ', '.join(sorted(c.Name for c in users))), volume=p['name'])
            actions.append('recreated %s' % p['name'])
            if not module.check_mode:
                store.remove(p['name'], containers, force=True)
            volume = None
    if volume is None:
        if not actions:
            actions.append('created %s' % p['name'])
        if not module.check_mode:
            volume, _created = store.create(p['name'], p['driver'], options, p['labels'])
    shown = store.inspect(volume) if volume is not None else {}
    after = volume.settings() if volume is not None else dict(wanted, predicted=actions)
    return dict(changed=bool(actions), actions=actions, volume=shown, diff=diff(before, after))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            driver=dict(type='str', default='local', choices=['local']),
            driver_options=dict(type='dict'),
            labels=dict(type='dict'),
            recreate=dict(type='str', default='never', choices=['never', 'always', 'options-changed']),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()

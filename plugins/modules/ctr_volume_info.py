#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_volume_info
short_description: Inspect volumes of containers run without a daemon
version_added: 0.1.0
description:
  - Return one volume, or every volume of the store (C(volume ls)), in Docker's inspect shape.
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
    description: The volume's name; every volume when omitted.
    type: str
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_volume
'''

EXAMPLES = r'''
- name: Where the database's data is
  daemonless.ctr.ctr_volume_info:
    name: dbdata
  register: db

- ansible.builtin.debug:
    msg: "{{ db.volume.Mountpoint if db.exists else 'no such volume' }}"

- name: Every volume
  daemonless.ctr.ctr_volume_info:
  register: all_volumes
'''

RETURN = r'''
exists:
  description: With O(name), whether the volume exists.
  returned: when name is given
  type: bool
volume:
  description: With O(name), the volume in Docker's inspect shape (empty when it does not exist).
  returned: when name is given
  type: dict
volumes:
  description: Without O(name), every volume in Docker's inspect shape.
  returned: when name is not given
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.volumes import VolumeStore


def work(module):
    p = module.params
    store = VolumeStore(p['root'])
    if p['name'] is None:
        return dict(changed=False, volumes=[store.inspect(v) for v in store.list()])
    volume = store.find(p['name'])
    return dict(changed=False, exists=volume is not None, volume=store.inspect(volume) if volume else {})


def main():
    module = AnsibleModule(argument_spec=argument_spec(name=dict(type='str')), supports_check_mode=True)
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()

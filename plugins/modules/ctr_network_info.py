#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_network_info
short_description: Inspect bridge networks of containers run without a daemon
version_added: 0.1.0
description:
  - Return one network, or every network of the store (C(network ls)), in Docker's inspect shape, with the
    containers attached to it now.
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
    description: The network's name or ID; every network when omitted.
    type: str
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_network
'''

EXAMPLES = r'''
- name: The app network's containers
  daemonless.ctr.ctr_network_info:
    name: app
  register: app_net

- ansible.builtin.debug:
    msg: "{{ app_net.network.Containers | dict2items | map(attribute='value.IPv4Address') | list }}"

- name: Every network
  daemonless.ctr.ctr_network_info:
  register: all_networks
'''

RETURN = r'''
exists:
  description: With O(name), whether the network exists.
  returned: when name is given
  type: bool
network:
  description: With O(name), the network in Docker's inspect shape (empty when it does not exist).
  returned: when name is given
  type: dict
networks:
  description: Without O(name), every network in Docker's inspect shape.
  returned: when name is not given
  type: list
  elements: dict
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.network import endpoints
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.network.networks import NetworkStore
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.fsutil import resolve_root


def work(module):
    p = module.params
    root = resolve_root(p['root'])
    store = NetworkStore(root)
    if p['name'] is None:
        return dict(changed=False, networks=[n.inspect(endpoints.network_containers(root, n)) for n in store.list()])
    network = store.find(p['name'])
    return dict(changed=False, exists=network is not None,
                network=network.inspect(endpoints.network_containers(root, network)) if network else {})


def main():
    module = AnsibleModule(argument_spec=argument_spec(name=dict(type='str')), supports_check_mode=True)
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()

#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_network
short_description: Manage bridge networks for containers run without a daemon
version_added: 0.1.0
description:
  - Create, change or remove a bridge network of the store, as C(docker network create) and C(docker network rm) do.
  - A network is a record until a container on it starts; then its bridge is made (and given the gateway address),
    each container gets a veth pair, an address from the network, and the network's nftables rules (masquerading
    unless O(internal)).
  - Containers on the same user-defined network find each other by name and alias (their C(/etc/hosts) is kept
    current as containers come and go). The default network C(ctr) (bridge C(ctr0)) is made on first use.
  - Every run with O(state=present) also rewrites the collection's nftables table from the store's state (reported
    as no change), which restores it after the host's ruleset was flushed.
extends_documentation_fragment:
  - daemonless.ctr.ctr
attributes:
  check_mode:
    description: Predicts the change and makes none.
    support: full
  diff_mode:
    description: Returns the network's settings before and after.
    support: full
options:
  name:
    description: The network's name.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the network exists with these settings; a network whose settings differ is
        removed and made again (which fails while containers use it, unless O(force)).
      - V(absent) removes it (which fails while containers use it, unless O(force)).
    type: str
    choices: [present, absent]
    default: present
  driver:
    description: The network driver; only V(bridge).
    type: str
    choices: [bridge]
    default: bridge
  subnet:
    description:
      - The IPv4 subnet in CIDR form, such as V(172.30.0.0/16).
      - When omitted, the first of Docker's default pools (V(172.17.0.0/16) to V(172.31.0.0/16), then
        V(192.168.0.0/20) steps) that overlaps neither another network nor a route of the host; an omitted
        subnet is then never a difference.
    type: str
  gateway:
    description: The bridge's address in O(subnet); the subnet's first address when omitted.
    type: str
  ip_range:
    description: Hand out container addresses from this part of O(subnet) only.
    type: str
  internal:
    description: No way out of the network (no masquerading, forwarding to other interfaces dropped).
    type: bool
    default: false
  labels:
    description: Labels of the network.
    type: dict
  options:
    description:
      - Driver options, as Docker's C(com.docker.network.bridge.name) (the bridge's name; C(br-) and 12 hex digits
        of the network ID when omitted, C(ctr0) for C(ctr)) and C(com.docker.network.driver.mtu) (the MTU of the
        bridge and veths).
      - The short keys C(bridge_name) and C(mtu) mean the same.
    type: dict
  force:
    description: With V(absent), or with settings that differ, disconnect the containers using the network first.
    type: bool
    default: false
notes:
  - Bridge networking needs the C(pyroute2) Python package and nftables (the C(nft) command) on the managed host;
    it sets C(net.ipv4.ip_forward) and the bridge's C(route_localnet) (for published ports on 127.0.0.1).
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_network_info
  - module: daemonless.ctr.ctr_container
'''

EXAMPLES = r'''
- name: A network for the app's containers
  daemonless.ctr.ctr_network:
    name: app
    subnet: 172.30.0.0/24

- name: A network with no way out
  daemonless.ctr.ctr_network:
    name: backend
    internal: true
    options:
      mtu: 1400

- name: Remove it, disconnecting whatever uses it
  daemonless.ctr.ctr_network:
    name: backend
    state: absent
    force: true
'''

RETURN = r'''
network:
  description: The network in Docker's inspect shape (C(Name), C(Id), C(Driver), C(IPAM.Config), C(Internal),
    C(Containers), C(Options), C(Labels)); empty when absent.
  returned: always
  type: dict
actions:
  description: What was done (or would be, in check mode).
  returned: always
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, diff, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.errors import Conflict
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.network import endpoints
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.network.networks import NetworkStore
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.fsutil import resolve_root


def _differences(existing, planned, p):
    have, want = existing.settings(), planned.settings()
    if not p['subnet']:
        for key in ('subnet', 'gateway'):
            want[key] = have[key]
    elif not p['gateway']:
        want['gateway'] = str(next(planned.subnet.hosts()))
    return sorted(k for k in want if want[k] != have[k])


def work(module):
    p = module.params
    root = resolve_root(p['root'])
    store = NetworkStore(root)
    if not module.check_mode and os.path.isdir(store.base):
        with store.lock():
            endpoints.reap(root, store)     # a container killed or gone with a reboot holds nothing
    existing = store.find(p['name'], ids=False)
    before = existing.settings() if existing else {}
    actions = []
    if p['state'] == 'absent':
        if existing is not None:
            if existing.allocations and not p['force']:
                users = sorted({c[:12] for c in existing.allocations.values()})
                raise Conflict('network %s is in use by container(s) %s: disconnect them, or use force'
                               % (existing.name, ', '.join(users)), network=existing.name)
            if not module.check_mode:
                endpoints.remove_network(root, existing.name, force=p['force'])
            actions.append('removed %s' % p['name'])
        return dict(changed=bool(actions), actions=actions, network={}, diff=diff(before, {}))

    planned = store.plan(p['name'], subnet=p['subnet'], gateway=p['gateway'], ip_range=p['ip_range'],
                         internal=p['internal'], labels=p['labels'], options=p['options'], driver=p['driver'])
    network = existing
    if existing is not None:
        changes = _differences(existing, planned, p)
        if changes:
            if existing.allocations and not p['force']:
                users = sorted({c[:12] for c in existing.allocations.values()})
                raise Conflict('network %s would change (%s) but container(s) %s use it: stop or disconnect them, '
                               'or use force' % (existing.name, ', '.join(changes), ', '.join(users)),
                               network=existing.name)
            actions.append('recreated %s (%s)' % (p['name'], ', '.join(changes)))
            if not module.check_mode:
                endpoints.remove_network(root, existing.name, force=p['force'])
            network = None
    if network is None:
        if not actions:
            actions.append('created %s' % p['name'])
        if not module.check_mode:
            network = store.create(planned)
    if network is not None and not module.check_mode:
        with store.lock():      # repairs our table if someone flushed the host's ruleset
            endpoints.sync_rules(root, store, force=True)
    if network is not None:
        shown = network.inspect(endpoints.network_containers(root, network))
        after = network.settings()
    else:
        shown, after = {}, dict(planned.settings(), predicted=actions)
    return dict(changed=bool(actions), actions=actions, network=shown, diff=diff(before, after))


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type='str', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            driver=dict(type='str', default='bridge', choices=['bridge']),
            subnet=dict(type='str'),
            gateway=dict(type='str'),
            ip_range=dict(type='str'),
            internal=dict(type='bool', default=False),
            labels=dict(type='dict'),
            options=dict(type='dict'),
            force=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()

#!/usr/bin/python
# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: ctr_container
short_description: Run containers without a daemon
version_added: 0.1.0
description:
  - Create, start, stop, restart and remove containers from images in the store of the managed host.
  - Each running container has its own mount, PID, UTS, IPC, network and cgroup namespaces, an overlay
    root filesystem, and a small monitor process (its only companion, no daemon) that records its exit,
    keeps its logs and applies its restart policy.
  - Idempotent. The container read back from the host, with the image's defaults merged in, is compared
    with what the task asks for; a container is recreated only on a real difference.
extends_documentation_fragment:
  - daemonless.ctr.ctr
attributes:
  check_mode:
    description: Predicts what the task would do and changes nothing.
    support: full
  diff_mode:
    description: Returns the container's settings and running state before and after.
    support: full
options:
  name:
    description: The container's name, unique on the host.
    type: str
    required: true
  image:
    description:
      - The image to run, by name or ID; it must be in the store (see M(daemonless.ctr.ctr_image)).
      - Required unless O(state=absent), or O(state=stopped) or O(state=started) for an existing container.
    type: str
  state:
    description:
      - V(present) makes sure the container exists (created, not started).
      - V(started) makes sure it exists and runs. V(stopped) makes sure it exists and does not run.
      - V(absent) removes it, stopping it first.
    type: str
    choices: [present, started, stopped, absent]
    default: started
  command:
    description: The command, replacing the image's CMD; a string is split like a shell would.
    type: raw
  entrypoint:
    description: The entrypoint, replacing the image's ENTRYPOINT (and dropping its CMD), as Docker does.
    type: list
    elements: str
  env:
    description: Environment variables, merged over the image's.
    type: dict
  user:
    description: The user to run as, C(name), C(uid), C(name:group) or C(uid:gid), looked up in the image.
    type: str
  working_dir:
    description: The working directory, an absolute path.
    type: str
  hostname:
    description: The hostname; by default the short container ID.
    type: str
  labels:
    description: Labels, merged over the image's.
    type: dict
  volumes:
    description:
      - Docker's C(-v) syntax. C(/host/path:/container/path[:ro|rw][,propagation]) is a bind mount; the host path
        must be absolute, and a missing host directory is created, as Docker does.
      - C(name:/container/path[:ro][,nocopy]) mounts the named volume (made when missing, see
        M(daemonless.ctr.ctr_volume)); C(/container/path) alone is an anonymous volume (a random 64-hex name),
        removed with the container unless O(keep_volumes).
      - A new, empty volume is first filled with what the image has at that path, unless C(nocopy).
        The image's C(VOLUME) paths get anonymous volumes too.
    type: list
    elements: str
  mounts:
    description:
      - Mounts as dicts with C(type) (V(bind), V(tmpfs) or V(volume), the default), C(source), C(target),
        C(read_only), C(propagation), C(tmpfs_size), C(tmpfs_mode), C(no_copy), as Docker's C(--mount).
      - A bind source must exist; a volume's C(source) is its name (none for an anonymous volume).
    type: list
    elements: dict
  tmpfs:
    description: tmpfs mounts, C(/container/path[:size=64m,mode=1777]).
    type: list
    elements: str
  network_mode:
    description:
      - V(bridge) puts the container on the default network C(ctr) (bridge C(ctr0), made on first use), or on
        the networks of O(networks); a network's name means the same as listing it first in O(networks).
      - V(none) gives the container its own network namespace with only C(lo).
      - V(host) shares the host's network namespace.
      - V(container:NAME) joins the network namespace of container NAME, which must be running when this one
        starts (same interfaces, same C(localhost)); inspect shows it as C(NetworkSettings.JoinedContainer).
    type: str
    default: bridge
  networks:
    description:
      - The bridge networks to attach, in order (C(eth0), C(eth1), ...); the first gives the default route.
        Each network must exist (M(daemonless.ctr.ctr_network)), except the default C(ctr).
      - On a user-defined network, the container is found by its name and O(networks[].aliases) from the other
        containers of that network.
    type: list
    elements: dict
    suboptions:
      name:
        description: The network.
        type: str
        required: true
      ipv4_address:
        description: A static address in the network's subnet; refused, naming its holder, when taken.
        type: str
      aliases:
        description: More names for the container on this network.
        type: list
        elements: str
  published_ports:
    description:
      - Ports of the container reachable through the host, as C(docker run -p)
        C([host_ip:][host_port:]container_port[/tcp|/udp]); ranges such as V(8000-8002:8000-8002); an omitted host
        port is picked from the host's ephemeral range when the container starts.
      - Reachable at the host's addresses, V(127.0.0.1) included, and from other containers. A host port that a
        socket of the host or another container holds fails the start, before anything is made.
    type: list
    elements: str
  dns_servers:
    description: Nameservers of the container's C(/etc/resolv.conf) instead of the host's.
    type: list
    elements: str
  dns_search_domains:
    description: Search domains of the container's C(/etc/resolv.conf).
    type: list
    elements: str
  dns_options:
    description: Options of the container's C(/etc/resolv.conf), such as V(ndots:2).
    type: list
    elements: str
  etc_hosts:
    description: More C(/etc/hosts) entries, host name to IPv4 address.
    type: dict
  restart_policy:
    description: When the monitor starts the container again after it exits.
    type: str
    choices: ['no', on-failure, always, unless-stopped]
    default: 'no'
  restart_retries:
    description: With O(restart_policy=on-failure), how many restarts at most (0 is no limit).
    type: int
    default: 0
  stop_signal:
    description: The signal that stops the container; by default the image's STOPSIGNAL, else C(SIGTERM).
    type: str
  stop_timeout:
    description: Seconds between the stop signal and C(SIGKILL).
    type: int
  memory:
    description: Memory limit, for example C(512m) or C(1g).
    type: str
  cpus:
    description: CPU limit in CPUs, for example C(0.5).
    type: str
  pids_limit:
    description: The most processes the container may have at once.
    type: int
  capabilities:
    description: Capabilities added to Docker's default set (C(ALL) for every one).
    type: list
    elements: str
  cap_drop:
    description: Capabilities removed from Docker's default set (C(ALL) for every one).
    type: list
    elements: str
  privileged:
    description: Keep every capability, no masked paths, every device allowed.
    type: bool
    default: false
  read_only:
    description: Mount the container's root filesystem read-only.
    type: bool
    default: false
  detach:
    description:
      - V(false) runs the container to completion and returns its RV(output) and exit RV(status).
    type: bool
    default: true
  cleanup:
    description: With O(detach=false), remove the container once it has exited.
    type: bool
    default: false
  recreate:
    description: Recreate the container even when it matches.
    type: bool
    default: false
  restart:
    description: Restart a running container even when it matches.
    type: bool
    default: false
  keep_volumes:
    description: When the container is removed (O(state=absent), a recreate, O(cleanup)), keep its anonymous
      volumes; named volumes are always kept.
    type: bool
    default: false
author:
  - daemonless.ctr contributors (@daemonless)
seealso:
  - module: daemonless.ctr.ctr_container_info
  - module: daemonless.ctr.ctr_image
  - module: daemonless.ctr.ctr_network
notes:
  - Bridge networks need the C(pyroute2) Python package and nftables (the C(nft) command) on the managed host.
'''

EXAMPLES = r'''
- name: Run a web server in the background, at http://localhost:4000
  daemonless.ctr.ctr_container:
    name: web
    image: busybox
    command: httpd -f -p 80 -h /var/www
    published_ports:
      - "4000:80"
    memory: 64m
    restart_policy: unless-stopped

- name: A database whose data outlives the container, and a scratch area that goes with it
  daemonless.ctr.ctr_container:
    name: db
    image: busybox
    command: sleep 3600
    volumes:
      - dbdata:/var/lib/db
      - /scratch
    keep_volumes: false

- name: Two containers that find each other by name
  daemonless.ctr.ctr_container:
    name: "{{ item }}"
    image: busybox
    command: sleep 3600
    networks:
      - name: app
        aliases: ["{{ item }}.internal"]
  loop: [api, worker]

- name: Serve a host directory read-only, with a tmpfs for scratch
  daemonless.ctr.ctr_container:
    name: static
    image: busybox
    command: httpd -f -p 8081 -h /srv
    network_mode: host
    volumes:
      - /srv/www:/srv:ro
    tmpfs:
      - /tmp:size=16m

- name: Run a one-off command and get its output
  daemonless.ctr.ctr_container:
    name: migrate
    image: busybox
    command: [sh, -c, 'echo migrated']
    detach: false
    cleanup: true
  register: job

- name: Stop it
  daemonless.ctr.ctr_container:
    name: web
    state: stopped

- name: Remove it
  daemonless.ctr.ctr_container:
    name: web
    state: absent
'''

RETURN = r'''
container:
  description: The container in Docker's inspect shape; empty when it was removed or only predicted.
  returned: always
  type: dict
  sample:
    Id: 4f1c9a...
    Name: /web
    State: {Status: running, Running: true, Pid: 4242, ExitCode: 0}
    NetworkSettings:
      IPAddress: 172.17.0.2
      Gateway: 172.17.0.1
      Ports: {80/tcp: [{HostIp: 0.0.0.0, HostPort: '4000'}]}
output:
  description: With O(detach=false), what the container printed (stdout and stderr, in order).
  returned: when detach is false and the container ran
  type: str
status:
  description: With O(detach=false), the container's exit code.
  returned: when detach is false and the container ran
  type: int
actions:
  description: What the task did, in order.
  returned: always
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.daemonless.ctr.plugins.module_utils.ansible_glue import argument_spec, diff, run
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.errors import InvalidArgument
from ansible_collections.daemonless.ctr.plugins.module_utils.ctr.runtime.lifecycle import Runtime

_CREATE_OPTIONS = ('command', 'entrypoint', 'env', 'user', 'working_dir', 'hostname', 'labels', 'volumes', 'mounts',
                   'tmpfs', 'network_mode', 'networks', 'published_ports', 'dns_servers', 'dns_search_domains',
                   'dns_options', 'etc_hosts',
                   'restart_policy', 'restart_retries', 'stop_signal', 'stop_timeout', 'memory', 'cpus',
                   'pids_limit', 'capabilities', 'cap_drop', 'privileged', 'read_only')


def _summary(rt, container):
    if container is None:
        return {}
    return {'id': container.Id, 'image': container.Image, 'command': [container.Path] + list(container.Args),
            'config': container.Config, 'host_config': container.HostConfig, 'running': container.State.Running}


def work(module):
    p = module.params
    check = module.check_mode
    rt = Runtime(p['root'])
    existing = rt.find(p['name'], prefixes=False)
    if not check and p['state'] == 'started' and (existing is None or not existing.State.Running or p['restart']):
        rt.prelaunch()          # a start is coming: the monitor boots while the container is planned and made
    before = _summary(rt, existing)
    actions = []

    if p['state'] == 'absent':
        if existing is not None:
            if not check:
                rt.remove(existing.Id, force=True, keep_volumes=p['keep_volumes'])
            actions.append('removed %s' % p['name'])
        return dict(changed=bool(actions), actions=actions, container={}, diff=diff(before, {}))

    options = dict((k, p[k]) for k in _CREATE_OPTIONS)
    options['env'] = dict((k, str(v)) for k, v in (p['env'] or {}).items())
    if isinstance(options['command'], list):
        options['command'] = [str(a) for a in options['command']]
    elif options['command'] is not None and not isinstance(options['command'], str):
        raise InvalidArgument('command must be a string or a list of strings, not %r' % (options['command'],))
    if not p['image'] and (existing is None or p['recreate']):
        raise InvalidArgument('image is required to %s container %s'
                              % ('create' if existing is None else 'recreate', p['name']))
    if not p['detach'] and p['restart_policy'] != 'no':
        raise InvalidArgument('detach false runs the container to completion, which restart_policy %s would never '
                              'reach; use one or the other' % p['restart_policy'])
    planned = rt.plan(p['image'] or existing.ImageName, name=p['name'], **options) if p['image'] else None
    differences = rt.differences(existing, planned) if existing is not None and planned is not None else []

    container = existing
    if not check and p['state'] == 'started' and (differences or p['recreate']):
        rt.prelaunch()          # recreated, so started: the monitor boots while the container is made
    if existing is not None and (differences or p['recreate']):
        actions.append('recreated %s (%s)' % (p['name'], ', '.join(differences) or 'recreate requested'))
        if not check:
            rt.remove(existing.Id, force=True, keep_volumes=p['keep_volumes'])
        container = None
    if container is None:
        if not actions:
            actions.append('created %s' % p['name'])
        if not check:
            container = rt.commit_plan(planned)

    result = dict(changed=False)
    if p['state'] == 'started':
        running = container is not None and container.State.Running
        if running and p['restart']:
            actions.append('restarted %s' % p['name'])
            if not check:
                rt.stop(container.Id)
                rt.start(container.Id)
        elif not running:
            actions.append('started %s' % p['name'])
            if not check:
                try:
                    rt.start(container.Id)
                except Exception:
                    if existing is None or existing.Id != container.Id:
                        rt.remove(container.Id, force=True)     # made by this task: leave nothing behind
                    raise
                if not p['detach']:
                    result['status'] = rt.wait(container.Id)
                    result['output'] = ''.join(text for _stream, text in rt.logs(container.Id))
                    if p['cleanup']:
                        rt.remove(container.Id, force=True, keep_volumes=p['keep_volumes'])
                        actions.append('removed %s' % p['name'])
                        container = None
    elif p['state'] == 'stopped' and container is not None and (
            container.State.Running or container.State.Status == 'restarting'):
        actions.append('stopped %s' % p['name'])
        if not check:
            rt.stop(container.Id, timeout=p['stop_timeout'])

    after_container = rt.find(p['name'], prefixes=False) if not check else None
    if check:
        after = dict(before, running=p['state'] == 'started') if not actions or not before else \
            {'image': p['image'], 'running': p['state'] == 'started', 'predicted': actions}
    else:
        after = _summary(rt, after_container)
    result.update(changed=bool(actions), actions=actions,
                  container=rt.inspect(after_container) if after_container is not None else {},
                  diff=diff(before, after))
    return result


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            name=dict(type='str', required=True),
            image=dict(type='str'),
            state=dict(type='str', default='started', choices=['present', 'started', 'stopped', 'absent']),
            command=dict(type='raw'),
            entrypoint=dict(type='list', elements='str'),
            env=dict(type='dict'),
            user=dict(type='str'),
            working_dir=dict(type='str'),
            hostname=dict(type='str'),
            labels=dict(type='dict'),
            volumes=dict(type='list', elements='str'),
            mounts=dict(type='list', elements='dict'),
            tmpfs=dict(type='list', elements='str'),
            network_mode=dict(type='str', default='bridge'),
            networks=dict(type='list', elements='dict', options=dict(
                name=dict(type='str', required=True), ipv4_address=dict(type='str'),
                aliases=dict(type='list', elements='str'))),
            published_ports=dict(type='list', elements='str'),
            dns_servers=dict(type='list', elements='str'),
            dns_search_domains=dict(type='list', elements='str'),
            dns_options=dict(type='list', elements='str'),
            etc_hosts=dict(type='dict'),
            restart_policy=dict(type='str', default='no', choices=['no', 'on-failure', 'always', 'unless-stopped']),
            restart_retries=dict(type='int', default=0),
            stop_signal=dict(type='str'),
            stop_timeout=dict(type='int'),
            memory=dict(type='str'),
            cpus=dict(type='str'),
            pids_limit=dict(type='int'),
            capabilities=dict(type='list', elements='str'),
            cap_drop=dict(type='list', elements='str'),
            privileged=dict(type='bool', default=False),
            read_only=dict(type='bool', default=False),
            detach=dict(type='bool', default=True),
            cleanup=dict(type='bool', default=False),
            recreate=dict(type='bool', default=False),
            restart=dict(type='bool', default=False),
            keep_volumes=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    run(module, lambda: work(module))


if __name__ == '__main__':
    main()

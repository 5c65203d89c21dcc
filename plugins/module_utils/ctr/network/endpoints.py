# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Attaching a container to its bridge networks, and detaching it.

A container on bridge networks gets a network namespace of its own before it
starts, kept alive by a bind mount on ``<container>/netns`` (as ``ip netns add``
does), so it outlives restarts of the container's process and ``container:NAME``
can join it. ``attach``, under the networks lock:

1. an address on each network (its static one, or the lowest free), and host ports;
2. the namespace, with ``lo`` up;
3. in a short-lived child process (pyroute2's codec stays out of the caller, and out
   of the monitor it forks later): each network's bridge made and given its gateway
   address if missing, and a veth pair per network, ``eth0``, ``eth1``, ... inside
   with address, Docker's MAC (02:42 + the IPv4 bytes), a default route via the first
   network's gateway;
4. ``ip_forward`` and the bridges' ``route_localnet`` on;
5. ``<container>/network.json`` (what inspect shows as NetworkSettings), the hosts
   files of the container and of its peers on user-defined networks, and the
   nftables table, rebuilt.

``detach`` undoes it: the namespace unmounted (the veth pairs go with it), the
addresses freed, peers' hosts files and the table rebuilt. Both are idempotent, and
a failed attach detaches what it did.
"""

from __future__ import annotations

import os

from .. import fsutil, libc
from ..errors import CtrError, KernelError
from . import dns, nft
from . import ports as portspec
from .netlink import delete_link          # no pyroute2 at import: the codec loads on first use
from .networks import DEFAULT_NETWORK, NetworkStore, mac_address, store_tag

NETNS_FILE = 'netns'
SETTINGS_FILE = 'network.json'
HOSTS_FILE = 'hosts'


def netns_path(container_dir):
    return os.path.join(container_dir, NETNS_FILE)


def settings(container_dir):
    """The container's attachment (``network.json``), or None when it is not attached."""
    return fsutil.read_json(os.path.join(container_dir, SETTINGS_FILE))


# -- the namespace ---------------------------------------------------------------------------------

def _mounted(path):
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(path)).st_dev
    except OSError:
        return False


def create_netns(path):
    """A new network namespace held by a bind mount on ``path``, with ``lo`` up (nothing if held already)."""
    if _mounted(path):
        return
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    own = os.open('/proc/thread-self/ns/net', os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            libc.unshare(libc.CLONE_NEWNET)
        except OSError as exc:
            raise KernelError.from_oserror('unshare net', None, exc)
        try:
            libc.link_up('lo')
            _disable_ipv6()
            libc.mount('/proc/thread-self/ns/net', path, None, libc.MS_BIND)
        except OSError as exc:
            raise KernelError.from_oserror('hold the network namespace on', path, exc)
        finally:
            libc.setns(own, libc.CLONE_NEWNET)
    finally:
        os.close(own)


def _disable_ipv6():
    """IPv4 only, as Docker's default: no link-local IPv6 on the container's interfaces (this namespace's)."""
    for scope in ('default', 'all'):
        try:
            with open('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % scope, 'w') as f:
                f.write('1')
        except OSError:
            pass        # a kernel without IPv6


def remove_netns(path):
    """Unmount and remove a held namespace (its veths go with it); missing is fine."""
    if _mounted(path):
        try:
            libc.umount(path, libc.MNT_DETACH)
        except OSError as exc:
            raise KernelError.from_oserror('umount', path, exc)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- wiring, in a child -----------------------------------------------------------------------------

def _in_child(func, *args):
    """Run ``func`` in a forked child; its exception comes back as CtrError with the same message."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        raise
    if pid == 0:
        try:
            os.close(read_fd)
            func(*args)
        except BaseException as exc:     # pylint: disable=broad-except
            try:
                os.write(write_fd, (str(exc) or type(exc).__name__).encode('utf-8', 'replace')[:4000])
            finally:
                os._exit(1)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, 'rb') as f:
        message = f.read()
    _pid, status = os.waitpid(pid, 0)
    if message or status:
        raise CtrError(message.decode('utf-8', 'replace') or 'network set-up failed (exit status %d)' % status)


class Wirer:
    """A child that loads pyroute2's codec while the caller goes on with the start, then wires on request.

    Forked early in a start, it overlaps the ~40 ms import with the rest of the set-up (image
    lookup, rootfs, addresses); :meth:`wire` hands it the job and waits for the outcome. A
    Wirer never asked to wire is let go by :meth:`close` (the child exits on EOF).
    """

    def __init__(self):
        job_r, self._job_w = os.pipe2(os.O_CLOEXEC)
        self._result_r, result_w = os.pipe2(os.O_CLOEXEC)
        try:
            self.pid = os.fork()
        except OSError:
            for fd in (job_r, self._job_w, self._result_r, result_w):
                os.close(fd)
            raise
        if self.pid == 0:
            try:
                os.close(self._job_w)
                os.close(self._result_r)
                self._child(job_r, result_w)
            finally:
                os._exit(0)
        os.close(job_r)
        os.close(result_w)

    @staticmethod
    def _child(job_r, result_w):
        import json
        message = b''
        try:
            from .netlink import codec
            codec()
        except BaseException as exc:     # pylint: disable=broad-except
            message = (str(exc) or type(exc).__name__).encode('utf-8', 'replace')
        with os.fdopen(job_r, 'rb') as f:
            job = f.read()
        if job and not message:
            try:
                netns, links = json.loads(job.decode('utf-8'))
                _wire(netns, links)
            except BaseException as exc:     # pylint: disable=broad-except
                message = (str(exc) or type(exc).__name__).encode('utf-8', 'replace')
        if job:
            os.write(result_w, message[:4000] or b'ok')
        os.close(result_w)

    def wire(self, netns, links):
        import json
        try:
            os.write(self._job_w, json.dumps([netns, links]).encode('utf-8'))
        finally:
            os.close(self._job_w)
            self._job_w = None
        with os.fdopen(self._result_r, 'rb') as f:
            self._result_r = None
            answer = f.read()
        os.waitpid(self.pid, 0)
        self.pid = None
        if answer != b'ok':
            raise CtrError(answer.decode('utf-8', 'replace') or 'network set-up failed: the helper died')

    def close(self):
        for fd in (self._job_w, self._result_r):
            if fd is not None:
                os.close(fd)
        self._job_w = self._result_r = None
        if self.pid:
            os.waitpid(self.pid, 0)
            self.pid = None


def host_veth(container_id, endpoint):
    """The host-side veth of an endpoint: ``veth`` + 9 hex of the ID + the number of its ``ethN``."""
    return 'veth%s%s' % (container_id[:9], (endpoint.get('Interface') or 'eth0')[3:])


def _wire(netns, links):
    """Bridges, veth pairs and addresses; ``links``: dicts with bridge, mtu, gateway, prefix, host, peer, ip, mac."""
    from .netlink import Netlink
    ns_fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with Netlink() as host, Netlink(ns_fd) as inside:
            for i, link in enumerate(links):
                bridge = host.index(link['bridge'])
                if bridge is not None and not os.path.isdir('/sys/class/net/%s/bridge' % link['bridge']):
                    raise CtrError('interface %s of the host is not a bridge: it cannot be a network\'s'
                                   % link['bridge'])
                if bridge is None:
                    host.add_bridge(link['bridge'], link['mtu'])
                    bridge = host.index(link['bridge'])
                try:
                    host.add_address(bridge, link['gateway'], link['prefix'], link['bridge'])
                except KernelError as exc:
                    if exc.details.get('errno') != 17:      # EEXIST: it has it already
                        raise
                host.up(bridge, link['bridge'])
                old = host.index(link['host'])
                if old is not None:                          # left by a killed attach
                    host.delete(old, link['host'])
                host.add_veth(link['host'], link['peer'], ns_fd, master=bridge, mtu=link['mtu'],
                              peer_mac=link['mac'])
                host.up(host.index(link['host']), link['host'])
                index = inside.index(link['peer'])
                inside.add_address(index, link['ip'], link['prefix'], link['peer'])
                inside.up(index, link['peer'])
                if i == 0:
                    inside.add_default_route(link['gateway'], index)
    finally:
        os.close(ns_fd)


def _sysctl(path, value):
    try:
        with open(path, 'r') as f:
            if f.read().strip() == value:
                return
        with open(path, 'w') as f:
            f.write(value)
    except OSError as exc:
        raise KernelError.from_oserror('set sysctl', path, exc)


# -- attach / detach --------------------------------------------------------------------------------

def endpoints_of(container):
    """``[(network name, static address or None, aliases)]`` of a bridge-mode container, in order."""
    configured = (container.NetworkingConfig or {}).get('EndpointsConfig') or {}
    if not configured:
        return [(DEFAULT_NETWORK, None, [])]
    order = [n for n in (container.NetworkingConfig.get('Order') or []) if n in configured]
    out = []
    for name in order + sorted(n for n in configured if n not in order):
        endpoint = configured[name] or {}
        ip = ((endpoint.get('IPAMConfig') or {}).get('IPv4Address')) or None
        out.append((name, ip, list(endpoint.get('Aliases') or [])))
    return out


def _containers_dir(root):
    return os.path.join(root, 'containers')


def _attached(root):
    """``{container id: network.json}`` of every attached container of the store."""
    base = _containers_dir(root)
    out = {}
    try:
        ids = os.listdir(base)
    except FileNotFoundError:
        return out
    for cid in ids:
        data = fsutil.read_json(os.path.join(base, cid, SETTINGS_FILE))
        if isinstance(data, dict):
            out[cid] = data
    return out


def _starting(container_dir):
    """Is a start of this container under way (its start lock held by someone)?"""
    import fcntl
    try:
        fd = os.open(os.path.join(container_dir, 'start.lock'), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _alive(root, container_id):
    """Does the container have a live monitor or PID 1, or a start under way (state read back, start times checked)?"""
    from ..runtime.procs import process_start_time
    directory = os.path.join(_containers_dir(root), container_id)
    if _starting(directory):
        return True
    state = fsutil.read_json(os.path.join(directory, 'state.json')) or {}
    for pid_key, start_key in (('MonitorPid', 'MonitorStart'), ('Pid', 'PidStart')):
        pid = state.get(pid_key)
        if pid and process_start_time(pid) is not None and (
                not state.get(start_key) or process_start_time(pid) == state.get(start_key)):
            return True
    return False


def reap(root, store):
    """Detach containers whose monitor and PID 1 are gone (killed, or the host rebooted); call under lock.

    Their addresses and ports would otherwise stay taken, and their networks "in use".
    """
    for cid in list(_attached(root)):
        if not _alive(root, cid):
            _detach(root, store, cid, os.path.join(_containers_dir(root), cid))
    for network in store.list():
        stale = [ip for ip, cid in network.allocations.items()
                 if not os.path.exists(os.path.join(_containers_dir(root), cid, SETTINGS_FILE))
                 and not _alive(root, cid)]
        if stale:
            for ip in stale:
                del network.allocations[ip]
            store.save(network, durable=False)


def check_ports(root, port_bindings, name=None):
    """Fail now (Conflict) when a given host port is held by a socket or another attached container.

    For ``create``: a clash is reported before anything is made. ``name``'s own container (the
    one a task compares with, or replaces) does not count. Open host ports are picked at start;
    a port taken between create and start still fails the start, cleanly.
    """
    bindings = [b for b in portspec.from_port_bindings(port_bindings) if b.host_port]
    if not bindings:
        return
    taken = [(p['HostIp'], int(p['HostPort']), p['Proto']) for cid, s in _attached(root).items()
             if s.get('Name') != name and _alive(root, cid) for p in s.get('Published', [])]
    portspec.assign(bindings, taken)


def attach(root, container, container_dir, wirer=None):
    """Give ``container`` its namespace, addresses, links, ports and rules; returns its settings.

    ``wirer``: a :class:`Wirer` forked earlier (one is made here when not given); it is used up.
    """
    store = NetworkStore(root)
    wirer = wirer or Wirer()
    try:
        with store.lock():
            try:
                return _attach(root, store, container, container_dir, wirer)
            except BaseException:
                try:
                    _detach(root, store, container.Id, container_dir)
                except Exception:       # pylint: disable=broad-except
                    store.release(container.Id)     # the first error is the one to tell
                raise
    finally:
        wirer.close()


def _attach(root, store, container, container_dir, wirer):
    reap(root, store)
    wanted = endpoints_of(container)
    attached = _attached(root)
    attached.pop(container.Id, None)
    taken = [(p['HostIp'], int(p['HostPort']), p['Proto']) for s in attached.values() for p in s.get('Published', [])]
    networks, links, endpoints = [], [], {}
    for i, (name, ip, aliases) in enumerate(wanted):
        if name == DEFAULT_NETWORK:
            store.ensure_default()
        network, address = store.allocate(name, container.Id, ip)
        networks.append(network)
        mac = mac_address(address)
        links.append({'bridge': network.bridge, 'mtu': network.mtu, 'gateway': str(network.gateway),
                      'prefix': network.subnet.prefixlen, 'host': 'veth%s%d' % (container.Id[:9], i),
                      'peer': 'eth%d' % i, 'ip': str(address), 'mac': mac})
        endpoints[network.name] = {
            'NetworkID': network.id, 'EndpointID': container.Id[:32] + network.id[:32], 'Gateway': str(network.gateway),
            'IPAddress': str(address), 'IPPrefixLen': network.subnet.prefixlen, 'MacAddress': mac,
            'Aliases': list(dict.fromkeys([container.Name] + aliases)) if name != DEFAULT_NETWORK else aliases,
            'IPv6Gateway': '', 'GlobalIPv6Address': '', 'GlobalIPv6PrefixLen': 0, 'Interface': 'eth%d' % i}
    published = portspec.assign(portspec.from_port_bindings(container.HostConfig.get('PortBindings')), taken)
    netns = netns_path(container_dir)
    create_netns(netns)
    wirer.wire(netns, links)
    _sysctl('/proc/sys/net/ipv4/ip_forward', '1')
    for network in networks:
        _sysctl('/proc/sys/net/ipv4/conf/%s/route_localnet' % network.bridge, '1')
    first = links[0]['ip']
    data = {'Networks': endpoints, 'Order': [n.name for n in networks], 'Name': container.Name,
            'Hostname': container.Config.get('Hostname') or '', 'ExtraHosts': container.HostConfig.get('ExtraHosts') or [],
            'Published': [{'HostIp': h, 'HostPort': p, 'ContainerPort': c, 'Proto': proto, 'IPAddress': first}
                          for h, p, c, proto in published]}
    fsutil.atomic_write_json(os.path.join(container_dir, SETTINGS_FILE), data, 0o600, pretty=True,
                             durable=False)
    _refresh(root, store, {n.name for n in networks})
    return data


def detach(root, container_id, container_dir):
    """Undo :func:`attach` (idempotent): namespace, addresses, peers' hosts files, rules."""
    store = NetworkStore(root)
    with store.lock():
        _detach(root, store, container_id, container_dir)


def _detach(root, store, container_id, container_dir):
    data = settings(container_dir) or {}
    for endpoint in (data.get('Networks') or {}).values():
        # gone with the namespace too, but not while anything else holds it (a joiner, an nsenter),
        # and never later than now: the address and MAC go to the next container at once
        delete_link(host_veth(container_id, endpoint))
    remove_netns(netns_path(container_dir))
    released = store.release(container_id)
    try:
        os.unlink(os.path.join(container_dir, SETTINGS_FILE))
    except FileNotFoundError:
        pass
    _refresh(root, store, set(data.get('Networks') or {}) | {n.name for n in released})


# -- networks as a whole ----------------------------------------------------------------------------

def network_containers(root, network):
    """Docker's ``Containers`` of a network inspect: ``{id: {Name, EndpointID, MacAddress, IPv4Address}}``."""
    out = {}
    for cid, data in sorted(_attached(root).items()):
        endpoint = (data.get('Networks') or {}).get(network.name)
        if endpoint:
            out[cid] = {'Name': data.get('Name', ''), 'EndpointID': endpoint.get('EndpointID', ''),
                        'MacAddress': endpoint.get('MacAddress', ''), 'IPv4Address': '%s/%s' % (
                            endpoint['IPAddress'], endpoint.get('IPPrefixLen', network.subnet.prefixlen)),
                        'IPv6Address': ''}
    return out


def disconnect(root, network_name, container_id):
    """Take a running container off one network: its veth pair deleted, its address freed."""
    store = NetworkStore(root)
    container_dir = os.path.join(_containers_dir(root), container_id)
    with store.lock():
        data = settings(container_dir)
        if data and network_name in (data.get('Networks') or {}):
            link = host_veth(container_id, data['Networks'][network_name])
            _in_child(_delete_links, [link])
            first = (data.get('Order') or [None])[0]
            del data['Networks'][network_name]
            data['Order'] = [n for n in data['Order'] if n != network_name]
            if first == network_name:
                data['Published'] = []          # they went to the address just taken away
            fsutil.atomic_write_json(os.path.join(container_dir, SETTINGS_FILE), data, 0o600, pretty=True,
                                     durable=False)
        network = store.find(network_name)
        if network is not None:
            for ip in [ip for ip, cid in network.allocations.items() if cid == container_id]:
                del network.allocations[ip]
            store.save(network, durable=False)
        _refresh(root, store, {network_name})


def remove_network(root, name, force=False):
    """Remove a network: in use, it fails unless ``force`` (which disconnects its containers); its bridge goes."""
    store = NetworkStore(root)
    with store.lock():
        reap(root, store)
    network = store.get(name)
    if network.allocations:
        if not force:
            users = sorted({cid[:12] for cid in network.allocations.values()})
            raise CtrError('network %s is in use by container(s) %s: disconnect them, or use force'
                           % (network.name, ', '.join(users)), network=network.name)
        for cid in sorted(set(network.allocations.values())):
            disconnect(root, network.name, cid)
    store.remove(network.name)
    ports = '/sys/class/net/%s/brif' % network.bridge
    if os.path.isdir(ports) and not [p for p in os.listdir(ports) if not p.startswith('veth')]:
        _in_child(_delete_links, [network.bridge])      # a bridge, with nothing of anyone else's on it
    with store.lock():
        sync_rules(root, store, force=True)
    return network


def _delete_links(names):
    from .netlink import Netlink
    with Netlink() as host:
        for name in names:
            index = host.index(name)
            if index is not None:
                host.delete(index, name)


# -- derived state: hosts files and the nftables table ----------------------------------------------

def _hosts_text(data, attached):
    """A container's /etc/hosts: itself, its extra hosts, its peers on user-defined networks."""
    first = (data.get('Order') or [None])[0]
    own = (data.get('Networks') or {}).get(first) or {}
    extra = []
    for entry in data.get('ExtraHosts') or []:
        name, _sep, ip = entry.partition(':')
        extra.append((name, ip))
    peers = []
    for name in sorted(data.get('Networks') or {}):
        if name == DEFAULT_NETWORK:
            continue
        for other in sorted(attached.values(), key=lambda d: d.get('Name', '')):
            if other is data:
                continue
            theirs = (other.get('Networks') or {}).get(name)
            if theirs:
                names = [other.get('Name', '')] + list(theirs.get('Aliases') or [])
                if other.get('Hostname'):
                    names.append(other['Hostname'])
                peers.append((theirs['IPAddress'], [n for n in names if n]))
    aliases = [data.get('Name', '')] + [a for ep in (data.get('Networks') or {}).values() for a in ep.get('Aliases', [])]
    return dns.hosts_file(data.get('Hostname') or '', own.get('IPAddress'), aliases, extra, peers)


def write_hosts(container_dir, text):
    """Rewrite ``<container>/hosts`` in place: it is bind-mounted, a rename would leave the container the old one."""
    path = os.path.join(container_dir, HOSTS_FILE)
    data = text.encode('utf-8')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        done = 0
        while done < len(data):             # over the old text, never an empty file in between
            done += os.pwrite(fd, data[done:], done)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _refresh(root, store, network_names):
    """Hosts files of the containers on ``network_names``, and the nftables table, from the current state."""
    attached = _attached(root)
    for cid, data in attached.items():
        if set(data.get('Networks') or {}) & set(network_names) or not os.path.exists(
                os.path.join(_containers_dir(root), cid, HOSTS_FILE)):
            write_hosts(os.path.join(_containers_dir(root), cid), _hosts_text(data, attached))
    sync_rules(root, store, attached)


def sync_rules(root, store=None, attached=None, force=False):
    """Rebuild our nftables table from the bridges present and the ports published now.

    A bridge's rules (masquerading, DNS, isolation) live as long as the bridge, which outlives
    its containers as docker0 does; a container's published ports live as long as it is
    attached. The script last applied is remembered (with the boot it was applied in), and
    an unchanged one is not applied again: a container that publishes nothing starts and
    goes without running nft at all. ``force`` applies it anyway (after someone flushed the
    host's ruleset, say).
    """
    store = store or NetworkStore(root)
    attached = _attached(root) if attached is None else attached
    resolver = dns.host_resolver()
    gateway_dns = dns.gateway_dns()
    bridges, forwards = [], []
    for network in store.list():
        if os.path.exists('/sys/class/net/%s' % network.bridge):
            bridges.append(nft.BridgeRules(network.bridge, network.subnet, network.gateway, network.internal,
                                           resolver if gateway_dns else None))
    for data in attached.values():
        for p in data.get('Published') or []:
            forwards.append(nft.Forward(p['HostIp'], p['HostPort'], p['Proto'], p['IPAddress'], p['ContainerPort']))
    table = nft.table_name(store_tag(root))
    script = nft.ruleset(bridges, forwards, table)
    memo = os.path.join(store.base, '.nft-applied')
    stamp = '# boot %s\n' % _boot_id()
    if not force and fsutil.read_text(memo) == stamp + script and (not bridges or nft.listed(table)):
        return                  # unchanged, and still there (a `flush ruleset` would have taken it)
    if bridges or nft.listed(table):
        nft.apply(script, table)
    fsutil.makedirs(store.base, 0o700)
    fsutil.atomic_write(memo, (stamp + script).encode('utf-8'), 0o600, durable=False)


def _boot_id():
    try:
        with open('/proc/sys/kernel/random/boot_id') as f:
            return f.read().strip()
    except OSError:
        return ''


__all__ = ['attach', 'check_ports', 'create_netns', 'detach', 'disconnect', 'endpoints_of', 'netns_path', 'network_containers',
           'remove_netns', 'remove_network', 'settings', 'sync_rules', 'write_hosts']

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge networks and their address management, under ``<root>/networks/``.

::

    <root>/networks/<name>.json    the network (Docker's fields) and its allocations {ip: container id}
    <root>/locks/networks.lock     held around every change to any network or allocation

A network is a record first: its bridge is made on the first container start that
needs it (and again after a reboot), so creating one changes no interface.
Addresses are handed out lowest first from ``ip_range`` (default: the subnet) under
the lock, skipping the network and broadcast addresses and the gateway; a static
address is honoured when free and refused, naming its holder, when not.

A new network's subnet comes from Docker's default pools (172.17.0.0/16 up to
172.31.0.0/16, then 192.168.0.0/20 up to 192.168.240.0/20), skipping any that
overlaps another network of ours or a route the host already has.
"""

from __future__ import annotations

import ipaddress
import os
import re
import time

from .. import fsutil
from ..fsutil import DEFAULT_ROOT
from ..errors import Conflict, CorruptContent, InvalidArgument, NotFound
from ..regex import lazy

DEFAULT_NETWORK = 'ctr'
DEFAULT_BRIDGE = 'ctr0'
DRIVERS = ('bridge',)
OPT_BRIDGE = 'com.docker.network.bridge.name'
OPT_MTU = 'com.docker.network.driver.mtu'
_OPTION_ALIASES = {'bridge_name': OPT_BRIDGE, 'mtu': OPT_MTU, OPT_BRIDGE: OPT_BRIDGE, OPT_MTU: OPT_MTU}
_NAME_RE = lazy(r'[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z')
_IFNAME_RE = lazy(r'[A-Za-z0-9_.-]{1,15}\Z')
RESERVED_NAMES = ('host', 'none', 'bridge', 'default')


def store_tag(root):
    """'' for the default store; 8 hex digits naming another store root in host-wide names.

    Bridges and nftables tables belong to the host, not to a store: a second store on
    the same host (a test's, a user's) gets ``ctr0-<tag>`` and ``daemonless_ctr_<tag>``,
    so the two never rebuild each other's rules or share a bridge.
    """
    import zlib
    path = os.path.realpath(root)
    return '' if path == DEFAULT_ROOT else '%08x' % zlib.crc32(path.encode('utf-8', 'surrogateescape'))


def default_bridge(root):
    tag = store_tag(root)
    return DEFAULT_BRIDGE if not tag else 'ctr0-' + tag


def is_bridge(name):
    """Is interface ``name`` a bridge (it has /sys/class/net/NAME/bridge)?"""
    return os.path.isdir('/sys/class/net/%s/bridge' % name)


def default_pools():
    """Docker's default address pools, in order."""
    for second in range(17, 32):
        yield ipaddress.IPv4Network('172.%d.0.0/16' % second)
    for third in range(0, 256, 16):
        yield ipaddress.IPv4Network('192.168.%d.0/20' % third)


def host_routes(path='/proc/net/route'):
    """The IPv4 destinations the host routes somewhere (default route excluded), as networks."""
    out = []
    try:
        with open(path, 'r', encoding='ascii', errors='replace') as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = int(fields[1], 16).to_bytes(4, 'little')
        mask = int(fields[7], 16).to_bytes(4, 'little')
        network = ipaddress.IPv4Network('%s/%s' % (ipaddress.IPv4Address(dest), ipaddress.IPv4Address(mask)),
                                        strict=False)
        if network.prefixlen:
            out.append(network)
    return out


def _now():
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


class Network:
    """One bridge network: Docker's fields, plus its allocations."""

    def __init__(self, name, id_, subnet, gateway, ip_range=None, internal=False, labels=None, options=None,
                 driver='bridge', created=None, allocations=None):
        self.name, self.id, self.driver = name, id_, driver
        self.subnet = ipaddress.IPv4Network(subnet)
        self.gateway = ipaddress.IPv4Address(gateway)
        self.ip_range = ipaddress.IPv4Network(ip_range) if ip_range else None
        self.internal = bool(internal)
        self.labels = dict(labels or {})
        self.options = dict(options or {})
        self.created = created or _now()
        self.allocations = dict(allocations or {})      # ip text -> container id

    @property
    def bridge(self):
        if self.options.get(OPT_BRIDGE):
            return self.options[OPT_BRIDGE]
        return DEFAULT_BRIDGE if self.name == DEFAULT_NETWORK else 'br-' + self.id[:12]

    @property
    def mtu(self):
        return int(self.options[OPT_MTU]) if self.options.get(OPT_MTU) else None

    def to_json(self):
        return {'Name': self.name, 'Id': self.id, 'Driver': self.driver, 'Created': self.created,
                'Subnet': str(self.subnet), 'Gateway': str(self.gateway),
                'IPRange': str(self.ip_range) if self.ip_range else '', 'Internal': self.internal,
                'Labels': self.labels, 'Options': self.options, 'Allocations': self.allocations}

    @classmethod
    def from_json(cls, obj, path):
        try:
            return cls(obj['Name'], obj['Id'], obj['Subnet'], obj['Gateway'], obj.get('IPRange') or None,
                       obj.get('Internal', False), obj.get('Labels'), obj.get('Options'), obj.get('Driver', 'bridge'),
                       obj.get('Created'), obj.get('Allocations'))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptContent('network record %s is damaged: %s' % (path, exc))

    def settings(self):
        """What decides whether a network must be recreated: everything but name, id, time and allocations."""
        return {'driver': self.driver, 'subnet': str(self.subnet), 'gateway': str(self.gateway),
                'ip_range': str(self.ip_range) if self.ip_range else None, 'internal': self.internal,
                'labels': self.labels, 'options': self.options}

    def inspect(self, containers=None):
        """Docker's ``network inspect`` shape; ``containers`` maps container id -> endpoint dict."""
        config = {'Subnet': str(self.subnet), 'Gateway': str(self.gateway)}
        if self.ip_range:
            config['IPRange'] = str(self.ip_range)
        return {'Name': self.name, 'Id': self.id, 'Created': self.created, 'Scope': 'local', 'Driver': self.driver,
                'EnableIPv6': False, 'IPAM': {'Driver': 'default', 'Options': {}, 'Config': [config]},
                'Internal': self.internal, 'Attachable': False, 'Ingress': False,
                'Containers': containers or {}, 'Options': dict(self.options, **{OPT_BRIDGE: self.bridge}),
                'Labels': self.labels}

    def free_address(self, wanted=None):
        """The address to hand out: ``wanted`` if free (else Conflict), or the lowest free one."""
        reserved = {self.subnet.network_address, self.subnet.broadcast_address, self.gateway}
        if wanted is not None:
            address = ipaddress.IPv4Address(wanted)
            if address not in self.subnet or address in reserved:
                raise InvalidArgument('ipv4_address %s is not a usable address of network %s (%s, gateway %s)'
                                      % (address, self.name, self.subnet, self.gateway), option='ipv4_address')
            holder = self.allocations.get(str(address))
            if holder:
                raise Conflict('ipv4_address %s of network %s is already used by container %s'
                               % (address, self.name, holder[:12]), option='ipv4_address')
            return address
        pool = self.ip_range or self.subnet
        for address in pool.hosts() if pool.prefixlen < 31 else pool:
            if address not in reserved and str(address) not in self.allocations:
                return address
        raise Conflict('network %s has no free address left in %s' % (self.name, pool))


def validate_name(name):
    if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 128:
        raise InvalidArgument('network name "%s" is invalid: use letters, digits and _ . - (starting with a '
                              'letter or digit)' % (name,), option='name', value=name)
    return name


def normalize_options(options):
    """Docker's driver option keys (short ``bridge_name``/``mtu`` accepted), values as strings, validated."""
    out = {}
    for key, value in (options or {}).items():
        if key not in _OPTION_ALIASES:
            raise InvalidArgument('options: unknown option "%s" (known: %s, or bridge_name and mtu)'
                                  % (key, ', '.join((OPT_BRIDGE, OPT_MTU))), option='options', value=key)
        out[_OPTION_ALIASES[key]] = str(value)
    if OPT_BRIDGE in out and not _IFNAME_RE.match(out[OPT_BRIDGE]):
        raise InvalidArgument('options: bridge name "%s" is not an interface name (1-15 letters, digits, _ . -)'
                              % out[OPT_BRIDGE], option='options')
    if OPT_BRIDGE in out:
        name = out[OPT_BRIDGE]
        if name == DEFAULT_BRIDGE or name.startswith(DEFAULT_BRIDGE + '-') or name.startswith('veth'):
            raise InvalidArgument('options: bridge name "%s" is reserved (the default networks\' and veths\')'
                                  % name, option='options')
        if os.path.exists('/sys/class/net/%s' % name) and not is_bridge(name):
            raise InvalidArgument('options: "%s" is an interface of the host, not a bridge' % name,
                                  option='options')
    if OPT_MTU in out:
        if not out[OPT_MTU].isdigit() or not 68 <= int(out[OPT_MTU]) <= 65535:
            raise InvalidArgument('options: mtu "%s" is not a number from 68 to 65535' % out[OPT_MTU],
                                  option='options')
    return out


class NetworkStore:
    """The networks of one store root."""

    def __init__(self, root):
        self.root = root
        self.base = os.path.join(root, 'networks')
        self.locks_dir = os.path.join(root, 'locks')

    def lock(self):
        """Serialises every change to networks and allocations (no address is handed out twice)."""
        return fsutil.flocked(os.path.join(self.locks_dir, 'networks.lock'))

    def _path(self, name):
        return os.path.join(self.base, validate_name(name) + '.json')

    def list(self):
        try:
            names = sorted(n[:-5] for n in os.listdir(self.base) if n.endswith('.json') and not n.startswith('.'))
        except FileNotFoundError:
            return []
        return [n for n in (self.find(name) for name in names) if n is not None]

    def find(self, name, ids=True):
        """The network called ``name`` (or, with ``ids``, with that ID or unique ID prefix), or None."""
        if isinstance(name, str) and _NAME_RE.match(name) and len(name) <= 128:
            path = os.path.join(self.base, name + '.json')
            obj = fsutil.read_json(path)
            if obj is not None:
                return Network.from_json(obj, path)
        if ids and isinstance(name, str) and re.match(r'[0-9a-f]{6,64}\Z', name):
            hits = [n for n in self._all() if n.id.startswith(name)]
            if len(hits) == 1:
                return hits[0]
        return None

    def _all(self):
        try:
            names = os.listdir(self.base)
        except FileNotFoundError:
            return []
        out = []
        for n in sorted(names):
            if n.endswith('.json') and not n.startswith('.'):
                path = os.path.join(self.base, n)
                obj = fsutil.read_json(path)
                if obj is not None:
                    out.append(Network.from_json(obj, path))
        return out

    def get(self, name):
        network = self.find(name)
        if network is None:
            raise NotFound('network "%s" does not exist' % (name,), network=name)
        return network

    def save(self, network, durable=True):
        """Write the record; ``durable=False`` for allocations (runtime state: a reboot frees them anyway)."""
        fsutil.makedirs(self.base, 0o700)
        fsutil.atomic_write_json(self._path(network.name), network.to_json(), 0o600, pretty=True, durable=durable)

    # -- planning -------------------------------------------------------------------------------

    def plan(self, name, subnet=None, gateway=None, ip_range=None, internal=False, labels=None, options=None,
             driver='bridge'):
        """The network ``create`` would make, validated; a missing subnet is picked later, under the lock."""
        validate_name(name)
        if name in RESERVED_NAMES:
            raise InvalidArgument('network name "%s" is reserved (it is a network_mode)' % name, option='name')
        if driver not in DRIVERS:
            raise InvalidArgument('driver "%s" is not supported (only bridge)' % (driver,), option='driver')
        net = _parse_subnet(subnet) if subnet else None
        gw = _parse_address(gateway, 'gateway') if gateway else None
        rng = _parse_subnet(ip_range, 'ip_range') if ip_range else None
        if (gw or rng) and net is None:
            raise InvalidArgument('gateway and ip_range need subnet', option='subnet')
        if net is not None:
            gw = gw or next(net.hosts())
            _check_layout(net, gw, rng)
        for key, value in (labels or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidArgument('labels must map strings to strings (%r: %r)' % (key, value), option='labels')
        opts = normalize_options(options)
        return Network(name, os.urandom(32).hex(), net or '0.0.0.0/32', gw or '0.0.0.0', rng, internal, labels,
                       opts, driver)

    def create(self, network):
        """Store ``network`` (subnet picked now when not given); its name and bridge must be free."""
        with self.lock():
            return self._create(network)

    def _create(self, network):
        """:meth:`create`, under the lock."""
        others = self._all()
        if any(n.name == network.name for n in others):
            raise Conflict('network %s already exists' % network.name)
        if any(n.bridge == network.bridge for n in others):
            raise Conflict('bridge %s is already used by another network' % network.bridge, option='options')
        taken = [n.subnet for n in others]
        if network.subnet.prefixlen == 32 and str(network.subnet.network_address) == '0.0.0.0':
            routed = host_routes()
            pick = next((p for p in default_pools()
                         if not any(p.overlaps(t) for t in taken + routed)), None)
            if pick is None:
                raise Conflict('no free subnet left in the default pools for network %s: give subnet'
                               % network.name, option='subnet')
            network.subnet, network.gateway = pick, next(pick.hosts())
        else:
            clash = next((n for n in others if n.subnet.overlaps(network.subnet)), None)
            if clash is not None:
                raise Conflict('subnet %s overlaps network %s (%s)' % (network.subnet, clash.name, clash.subnet),
                               option='subnet')
        self.save(network)
        return network

    def ensure_default(self):
        """The default network ``ctr`` (bridge ``ctr0``), created on first use; call under the lock."""
        network = self.find(DEFAULT_NETWORK)
        if network is not None:
            return network
        options = {OPT_BRIDGE: default_bridge(self.root)} if store_tag(self.root) else {}
        return self._create(Network(DEFAULT_NETWORK, os.urandom(32).hex(), '0.0.0.0/32', '0.0.0.0',
                                    options=options))

    def remove(self, name):
        """Forget a network that no container uses (callers disconnect first)."""
        with self.lock():
            network = self.get(name)
            if network.allocations:
                raise Conflict('network %s is in use by %d container(s) (%s)'
                               % (network.name, len(network.allocations),
                                  ', '.join(sorted(c[:12] for c in network.allocations.values()))))
            os.unlink(self._path(network.name))
        return network

    # -- addresses ------------------------------------------------------------------------------

    def allocate(self, name, container_id, wanted=None):
        """Hand ``container_id`` an address on ``name`` (its current one if it holds one); call under lock."""
        network = self.get(name)
        held = next((ip for ip, cid in network.allocations.items() if cid == container_id), None)
        if held is not None and (wanted is None or str(wanted) == held):
            return network, ipaddress.IPv4Address(held)
        if held is not None:
            del network.allocations[held]
        address = network.free_address(wanted)
        network.allocations[str(address)] = container_id
        self.save(network, durable=False)
        return network, address

    def release(self, container_id):
        """Free every address ``container_id`` holds, on every network; call under lock."""
        changed = []
        for network in self._all():
            held = [ip for ip, cid in network.allocations.items() if cid == container_id]
            if held:
                for ip in held:
                    del network.allocations[ip]
                self.save(network, durable=False)
                changed.append(network)
        return changed


def _parse_subnet(text, option='subnet'):
    try:
        net = ipaddress.ip_network(str(text), strict=True)
    except ValueError as exc:
        raise InvalidArgument('%s "%s" is not an IPv4 network in CIDR form such as 172.30.0.0/16 (%s)'
                              % (option, text, exc), option=option, value=text)
    if net.version != 4:
        raise InvalidArgument('%s "%s": only IPv4 networks are supported' % (option, text), option=option)
    if net.prefixlen > 30:
        raise InvalidArgument('%s "%s" is too small: give a /30 or larger' % (option, text), option=option)
    return net


def _parse_address(text, option):
    try:
        address = ipaddress.ip_address(str(text))
    except ValueError:
        raise InvalidArgument('%s "%s" is not an IPv4 address' % (option, text), option=option, value=text)
    if address.version != 4:
        raise InvalidArgument('%s "%s": only IPv4 is supported' % (option, text), option=option)
    return address


def _check_layout(subnet, gateway, ip_range):
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument('gateway %s is not a usable address of subnet %s' % (gateway, subnet),
                              option='gateway')
    if ip_range is not None and not ip_range.subnet_of(subnet):
        raise InvalidArgument('ip_range %s is not inside subnet %s' % (ip_range, subnet), option='ip_range')


def mac_address(ip):
    """Docker's MAC for a container address: 02:42 then the four bytes of the IPv4 address."""
    return '02:42:' + ':'.join('%02x' % b for b in ipaddress.IPv4Address(ip).packed)


__all__ = ['DEFAULT_BRIDGE', 'DEFAULT_NETWORK', 'Network', 'NetworkStore', 'default_bridge', 'default_pools',
           'host_routes', 'mac_address', 'normalize_options', 'store_tag', 'validate_name']

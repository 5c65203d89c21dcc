# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's network options, validated into Docker's record fields.

``network_mode``: ``bridge`` (the default: the default network ``ctr``, or the
``networks`` given), a network's name (the same as ``networks: [{name: ...}]``),
``host``, ``none``, or ``container:NAME`` (join that container's network namespace).
The result goes to ``HostConfig`` (``NetworkMode``, ``PortBindings``, ``Dns``,
``DnsSearch``, ``DnsOptions``, ``ExtraHosts``) and ``NetworkingConfig.EndpointsConfig``,
so that an unchanged task compares equal and a changed option is a difference.
"""

from __future__ import annotations

import ipaddress

from ..errors import InvalidArgument, NotFound
from ..regex import lazy
from . import ports as portspec
from .networks import DEFAULT_NETWORK, NetworkStore, validate_name

BRIDGE, HOST, NONE, CONTAINER = 'bridge', 'host', 'none', 'container:'
_HOSTNAME = lazy(r'[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\Z')
_NETWORK_KEYS = ('name', 'ipv4_address', 'aliases')


def is_bridge(mode):
    """Does this NetworkMode mean bridge networks (the default one or named ones)?"""
    return mode not in (HOST, NONE) and not mode.startswith(CONTAINER)


def _ipv4(value, option):
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        raise InvalidArgument('%s "%s" is not an IP address' % (option, value), option=option, value=value)
    if address.version != 4:
        raise InvalidArgument('%s "%s": only IPv4 is supported' % (option, value), option=option, value=value)
    return str(address)


def _names(values, option):
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out = []
    for value in values:
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
            raise InvalidArgument('%s: %r is not a name' % (option, value), option=option, value=value)
        out.append(value.strip())
    return out


def _endpoints(networks, store):
    """``EndpointsConfig`` from the ``networks`` option; every network must exist (``ctr`` is made on use)."""
    if not isinstance(networks, list):
        raise InvalidArgument('networks must be a list of {name, ipv4_address, aliases}', option='networks')
    out = {}
    for entry in networks:
        if isinstance(entry, str):
            entry = {'name': entry}
        if not isinstance(entry, dict) or not entry.get('name'):
            raise InvalidArgument('networks: %r has no name' % (entry,), option='networks')
        unknown = sorted(set(entry) - set(_NETWORK_KEYS))
        if unknown:
            raise InvalidArgument('networks: unknown key(s) %s in the entry for %s (known: %s)'
                                  % (', '.join(unknown), entry['name'], ', '.join(_NETWORK_KEYS)), option='networks')
        name = validate_name(entry['name'])
        if name in out:
            raise InvalidArgument('networks: %s is listed twice' % name, option='networks')
        if name != DEFAULT_NETWORK and store.find(name) is None:
            raise NotFound('network "%s" does not exist: create it with ctr_network first' % name, option='networks')
        ip = _ipv4(entry['ipv4_address'], 'networks ipv4_address') if entry.get('ipv4_address') else None
        if ip is not None:
            network = store.find(name)
            if network is not None and ipaddress.IPv4Address(ip) not in network.subnet:
                raise InvalidArgument('networks: ipv4_address %s is not in network %s (%s)'
                                      % (ip, name, network.subnet), option='networks')
        aliases = _names(entry.get('aliases'), 'networks aliases')
        out[name] = {'IPAMConfig': {'IPv4Address': ip} if ip else None, 'Aliases': aliases}
    return out


def plan(root, network_mode=None, networks=None, published_ports=None, dns_servers=None, dns_search_domains=None,
         dns_options=None, etc_hosts=None, find_container=None):
    """``(host_config fields, networking_config)`` for the options; nothing on the host changes."""
    mode = network_mode or BRIDGE
    store = NetworkStore(root)
    endpoints = {}
    if mode.startswith(CONTAINER):
        target = mode[len(CONTAINER):]
        other = find_container(target) if target and find_container else None
        if other is None:
            raise NotFound('network_mode %s: container "%s" does not exist' % (mode, target), option='network_mode')
        mode = CONTAINER + other.Id
        if networks:
            raise InvalidArgument('networks cannot be combined with network_mode container:NAME', option='networks')
    elif mode in (HOST, NONE):
        if networks:
            raise InvalidArgument('networks need network_mode bridge (or a network name), not %s' % mode,
                                  option='networks')
    else:
        listed = list(networks or [])
        if mode != BRIDGE:
            validate_name(mode)
            if not any((n if isinstance(n, str) else (n or {}).get('name')) == mode for n in listed):
                listed.insert(0, {'name': mode})
        endpoints = _endpoints(listed, store) if listed else {}
        if list(endpoints) == [DEFAULT_NETWORK] and endpoints[DEFAULT_NETWORK] == {'IPAMConfig': None, 'Aliases': []}:
            endpoints = {}          # the same as not saying: the default network
        mode = BRIDGE if not endpoints or list(endpoints)[0] == DEFAULT_NETWORK else list(endpoints)[0]
    bindings = portspec.parse_all(published_ports)
    if bindings and not is_bridge(mode):
        raise InvalidArgument('published_ports need a bridge network; network_mode %s has none'
                              % mode.split(':')[0], option='published_ports')
    servers = [_ipv4(s, 'dns_servers') for s in (dns_servers or [])]
    search = _names(dns_search_domains, 'dns_search_domains')
    opts = _names(dns_options, 'dns_options')
    extra = []
    for name, ip in sorted((etc_hosts or {}).items()):
        if not isinstance(name, str) or not _HOSTNAME.match(name):
            raise InvalidArgument('etc_hosts: "%s" is not a host name' % (name,), option='etc_hosts')
        extra.append('%s:%s' % (name, _ipv4(ip, 'etc_hosts')))
    if mode.startswith(CONTAINER) and (servers or search or opts or extra):
        raise InvalidArgument('dns_servers, dns_search_domains, dns_options and etc_hosts come from the container '
                              'whose network is joined (network_mode container:NAME)', option='network_mode')
    host_config = {'NetworkMode': mode, 'PortBindings': portspec.to_port_bindings(bindings), 'Dns': servers,
                   'DnsSearch': search, 'DnsOptions': opts, 'ExtraHosts': extra}
    # EndpointsConfig is a map (and written with sorted keys): Order keeps the interfaces' order
    return host_config, ({'EndpointsConfig': endpoints, 'Order': list(endpoints)} if endpoints else {})


__all__ = ['BRIDGE', 'CONTAINER', 'HOST', 'NONE', 'is_bridge', 'plan']

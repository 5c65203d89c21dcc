# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A container's ``/etc/resolv.conf`` and ``/etc/hosts``.

resolv.conf: ``dns_servers``, ``dns_search_domains`` and ``dns_options`` when given;
otherwise the host's file. A loopback nameserver (``127.0.0.53`` of systemd-resolved,
a local dnsmasq) means nothing in another network namespace, so it is dropped, and
then, in this order:

1. systemd-resolved's upstream list (``/run/systemd/resolve/resolv.conf``) is used
   when it names real servers;
2. on a bridge network, the container's gateway is its nameserver and the network's
   nftables rules forward DNS to the gateway on to the host's loopback resolver
   (``route_localnet`` on the bridge makes that legal): the container asks the same
   resolver the host does, and no daemon of ours answers;
3. with ``network_mode: none`` there is nothing to reach, and no nameserver line.

``network_mode: host`` containers share the host's network, loopback included, and get
the host's file as it is.

hosts: localhost lines, the container's own address (or 127.0.1.1 without one) with
its hostname, name and aliases, ``etc_hosts`` entries, and on a user-defined network
the other containers of that network by name and alias: the file is bind-mounted from
the container's directory and rewritten in place when they come and go.
"""

from __future__ import annotations

LOOPBACK_PREFIXES = ('127.', '::1', '0:0:0:0:0:0:0:1')
RESOLVED_UPSTREAM = '/run/systemd/resolve/resolv.conf'

_LOCALHOST = ('127.0.0.1\tlocalhost\n'
              '::1\tlocalhost ip6-localhost ip6-loopback\n'
              'fe00::0\tip6-localnet\n'
              'ff00::0\tip6-mcastprefix\n'
              'ff02::1\tip6-allnodes\n'
              'ff02::2\tip6-allrouters\n')


def read(path):
    try:
        with open(path, 'r', encoding='utf-8', errors='replace') as f:
            return f.read()
    except OSError:
        return ''


def nameservers(text):
    return [line.split()[1] for line in text.splitlines()
            if len(line.split()) >= 2 and line.split()[0] == 'nameserver']


def is_loopback(address):
    return address.startswith(LOOPBACK_PREFIXES)


def host_resolver(host_text=None):
    """The host's first loopback nameserver (what DNS to the gateway is forwarded to), or None."""
    import ipaddress
    text = read('/etc/resolv.conf') if host_text is None else host_text
    for ns in nameservers(text):
        try:
            address = ipaddress.IPv4Address(ns)
        except ValueError:
            continue                        # IPv6, or not an address at all: never into a rule
        if address.is_loopback:
            return str(address)
    return None


def gateway_dns(host_text=None, upstream_text=None):
    """Do containers on a bridge get their gateway as nameserver (the host resolves through loopback only)?

    The same fallback :func:`resolv_conf` takes when given a gateway; the nftables rules
    forward DNS to the gateway only then.
    """
    host_text = read('/etc/resolv.conf') if host_text is None else host_text
    upstream = read(RESOLVED_UPSTREAM) if upstream_text is None else upstream_text
    return not [ns for ns in nameservers(host_text) if not is_loopback(ns)] and \
        not [ns for ns in nameservers(upstream) if not is_loopback(ns)]


def resolv_conf(host_text=None, servers=None, search=None, options=None, gateway=None, upstream_text=None):
    """The container's resolv.conf (see the module docstring for the fallbacks)."""
    host_text = read('/etc/resolv.conf') if host_text is None else host_text
    dropped = {'nameserver'} | ({'search', 'domain'} if search else set()) | ({'options'} if options else set())
    lines = [line for line in host_text.splitlines() if line.split()[:1] and line.split()[0] not in dropped]
    if servers:
        chosen = list(servers)
    else:
        chosen = [ns for ns in nameservers(host_text) if not is_loopback(ns)]
        if not chosen and any(is_loopback(ns) for ns in nameservers(host_text)):
            upstream = read(RESOLVED_UPSTREAM) if upstream_text is None else upstream_text
            chosen = [ns for ns in nameservers(upstream) if not is_loopback(ns)]
            if not chosen and gateway:
                chosen = [str(gateway)]
    out = [line for line in lines if line.strip() and not line.lstrip().startswith('#')]
    if search:
        out.append('search ' + ' '.join(search))
    if options:
        out.append('options ' + ' '.join(options))
    out.extend('nameserver ' + ns for ns in chosen)
    return '\n'.join(out) + '\n' if out else ''


def hosts_file(hostname, address=None, names=(), extra_hosts=(), peers=()):
    """``/etc/hosts``: localhost, the container itself, ``extra_hosts`` (name, ip), then ``peers`` (ip, names)."""
    own = [hostname] + [n for n in names if n and n != hostname]
    text = _LOCALHOST + '%s\t%s\n' % (address or '127.0.1.1', ' '.join(dict.fromkeys(own)))
    for name, ip in extra_hosts:
        text += '%s\t%s\n' % (ip, name)
    for ip, peer_names in peers:
        text += '%s\t%s\n' % (ip, ' '.join(dict.fromkeys(peer_names)))
    return text


__all__ = ['host_resolver', 'hosts_file', 'nameservers', 'resolv_conf']

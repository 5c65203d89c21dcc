# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Packet rules in one nftables table of our own: ``ip daemonless_ctr``.

The table is rebuilt whole from the store's state (bridges in use, published ports
of attached containers) whenever that changes, in one ``nft -f`` transaction that
declares, deletes and re-creates it: never a flush of anyone else's rules, never a
half-applied set, and the same state always gives the same table. When no bridge is
in use the table is deleted.

What the rules do, per bridge in use:

* ``postrouting``: masquerade what leaves a non-internal bridge's subnet for anywhere
  else; masquerade DNATed traffic from the bridge back onto it (hairpin: a container
  reaching a published port of its own network through a host address); masquerade
  what comes from 127.0.0.0/8 onto the bridge (``curl localhost:4000``; the bridge
  has ``route_localnet`` on for that);
* ``prerouting``/``output``: traffic to a local address (``fib daddr type local``)
  and a published port goes to the container (``dnat``); DNS to the gateway of a
  bridge goes to the host's loopback resolver when the host has one;
* ``forward``: an internal bridge's traffic stays on the bridge.

Nothing but ``lo`` may send to 127.0.0.0/8 (``route_localnet`` would otherwise open
the host's loopback services to containers and neighbours), and nothing enters a bridge
from elsewhere but replies and published ports. Our accept policies cannot override another table's drop: a host firewall that drops
forwarded traffic must allow the bridges' (docs/networking.md says how).
"""

from __future__ import annotations

import os
import subprocess

from ..errors import CtrError

TABLE = 'daemonless_ctr'
_NFT_PATHS = ('/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft')


class BridgeRules:
    """What the ruleset needs to know of one bridge network in use."""

    __slots__ = ('bridge', 'subnet', 'gateway', 'internal', 'resolver')

    def __init__(self, bridge, subnet, gateway, internal=False, resolver=None):
        self.bridge, self.subnet, self.gateway = bridge, str(subnet), str(gateway)
        self.internal, self.resolver = bool(internal), resolver


class Forward:
    """One published port: ``host_ip:host_port/proto`` to ``ctr_ip:ctr_port``."""

    __slots__ = ('host_ip', 'host_port', 'proto', 'ctr_ip', 'ctr_port')

    def __init__(self, host_ip, host_port, proto, ctr_ip, ctr_port):
        self.host_ip, self.host_port, self.proto = host_ip, int(host_port), proto
        self.ctr_ip, self.ctr_port = str(ctr_ip), int(ctr_port)


def _quoted(name):
    return '"%s"' % name


def table_name(tag=''):
    """Our table: ``daemonless_ctr`` for the default store, ``daemonless_ctr_<tag>`` for another."""
    return TABLE + ('_' + tag if tag else '')


def ruleset(bridges, forwards, table=TABLE):
    """The nft script that replaces ``table`` (or removes it when ``bridges`` is empty)."""
    head = 'table ip %s\ndelete table ip %s\n' % (table, table)
    if not bridges:
        return head
    pre, post, fwd, published = [], [], [], []
    for b in sorted(bridges, key=lambda x: x.bridge):
        br = _quoted(b.bridge)
        if b.resolver and not b.internal:
            for proto in ('udp', 'tcp'):
                pre.append('iifname %s ip daddr %s %s dport 53 dnat to %s:53' % (br, b.gateway, proto, b.resolver))
        post.append('ip saddr 127.0.0.0/8 oifname %s masquerade' % br)
        post.append('ct status dnat ip saddr %s oifname %s masquerade' % (b.subnet, br))
        if b.internal:
            fwd.append('iifname %s oifname != %s drop' % (br, br))
            fwd.append('oifname %s iifname != %s drop' % (br, br))
        else:
            post.append('ip saddr %s oifname != %s masquerade' % (b.subnet, br))
            # into a bridge from elsewhere: replies, and published ports (DNAT); nothing else (another
            # network's containers, a neighbour routing straight to a container's address)
            fwd.append('oifname %s iifname != %s ct state established,related accept' % (br, br))
            fwd.append('oifname %s iifname != %s ct status dnat accept' % (br, br))
            fwd.append('oifname %s iifname != %s drop' % (br, br))
    for f in sorted(forwards, key=lambda x: (x.proto, x.host_port, x.host_ip)):
        match = ('ip daddr %s ' % f.host_ip) if f.host_ip else ''
        published.append('%s%s dport %d dnat to %s:%d' % (match, f.proto, f.host_port, f.ctr_ip, f.ctr_port))
    lines = ['table ip %s {' % table,
             # route_localnet is on for our bridges: nothing but lo may send to 127.0.0.0/8 (a container's raw
             # packet to the host's loopback services, a neighbour's to a port published on 127.0.0.1)
             '  chain loopback {', '    type filter hook prerouting priority raw; policy accept;',
             '    iifname != "lo" ip daddr 127.0.0.0/8 drop', '  }',
             '  chain published {']
    lines += ['    ' + r for r in published]
    lines += ['  }', '  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;']
    lines += ['    ' + r for r in pre]
    lines += ['    fib daddr type local jump published', '  }',
              '  chain output {', '    type nat hook output priority -100; policy accept;',
              '    fib daddr type local jump published', '  }',
              '  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;']
    lines += ['    ' + r for r in post]
    lines += ['  }', '  chain forward {', '    type filter hook forward priority filter; policy accept;']
    lines += ['    ' + r for r in fwd]
    lines += ['  }', '}']
    return head + '\n'.join(lines) + '\n'


def nft_path():
    for path in _NFT_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def apply(script, table=TABLE):
    """Run ``script`` through ``nft -f -`` (one transaction); CtrError with nft's own message on failure."""
    nft = nft_path()
    if nft is None:
        raise CtrError('bridge networking needs nftables on the managed host (the nft command, Debian package '
                       'nftables): install it, or use network_mode host or none')
    result = subprocess.run([nft, '-f', '-'], input=script.encode('utf-8'), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, check=False)
    if result.returncode != 0:
        message = result.stderr.decode('utf-8', 'replace').strip().splitlines()
        raise CtrError('nft refused the rules of table %s: %s' % (table, message[0] if message else 'exit %d'
                                                                  % result.returncode))


def listed(table=TABLE):
    """``table`` as ``nft list`` prints it, or '' when it does not exist."""
    nft = nft_path()
    if nft is None:
        return ''
    result = subprocess.run([nft, 'list', 'table', 'ip', table], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            check=False)
    return result.stdout.decode('utf-8', 'replace') if result.returncode == 0 else ''


__all__ = ['BridgeRules', 'Forward', 'TABLE', 'apply', 'listed', 'nft_path', 'ruleset', 'table_name']

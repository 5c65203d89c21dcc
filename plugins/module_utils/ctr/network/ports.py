# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Published ports: ``[host_ip:][host_port[-end]]:container_port[-end][/tcp|/udp]``, as ``docker run -p``.

``"4000:80"``, ``"127.0.0.1:4000:80"``, ``"127.0.0.1::80"`` (any free host port),
``"80"`` (any free host port, every address), ``"5000-5002:5000-5002/udp"``, and a
host range with one container port (``"8000-8010:80"``: the first free one). The
record keeps them as given, in Docker's ``HostConfig.PortBindings`` shape; host ports
left open are picked when the container starts, as Docker does, and shown in
``NetworkSettings.Ports``.

A host port is refused when a socket on this host holds it (a bind test, without
``SO_REUSEPORT``) or another container of ours publishes it: the rules that carry
the traffic (nftables DNAT) hold no socket, so nothing else would notice.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket

from ..errors import Conflict, InvalidArgument
from ..regex import lazy

PROTOCOLS = ('tcp', 'udp')
_SPEC = lazy(r'^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):)?'
             r'(?:(?P<host>(?:\d+(?:-\d+)?)?):)?(?P<ctr>\d+(?:-\d+)?)(?:/(?P<proto>[a-zA-Z]+))?$')


class PortBinding:
    """One container port published on one host address and port (0: pick one at start)."""

    __slots__ = ('host_ip', 'host_port', 'host_end', 'container_port', 'proto')

    def __init__(self, host_ip, host_port, container_port, proto='tcp', host_end=None):
        self.host_ip, self.host_port, self.container_port, self.proto = host_ip, host_port, container_port, proto
        self.host_end = host_end if host_end is not None else host_port     # a range to pick from

    @property
    def key(self):
        return '%d/%s' % (self.container_port, self.proto)

    def __eq__(self, other):
        return isinstance(other, PortBinding) and self._tuple() == other._tuple()

    def __hash__(self):
        return hash(self._tuple())

    def _tuple(self):
        return self.host_ip, self.host_port, self.host_end, self.container_port, self.proto

    def __repr__(self):
        return 'PortBinding(%r, %r-%r, %r/%s)' % (self.host_ip, self.host_port, self.host_end,
                                                  self.container_port, self.proto)


def _port(text, entry):
    value = int(text)
    if not 1 <= value <= 65535:
        raise InvalidArgument('published_ports "%s": port %s is out of the range 1-65535' % (entry, text),
                              option='published_ports', value=entry)
    return value


def _range(text, entry):
    first, _sep, last = text.partition('-')
    start = _port(first, entry)
    end = _port(last, entry) if last else start
    if end < start:
        raise InvalidArgument('published_ports "%s": the range %s ends before it starts' % (entry, text),
                              option='published_ports', value=entry)
    return start, end


def parse(entry):
    """The :class:`PortBinding` list of one ``published_ports`` entry (ranges expanded)."""
    text = str(entry).strip()
    match = _SPEC.match(text)
    if match is None:
        raise InvalidArgument('published_ports "%s" is not of the form [host_ip:][host_port:]container_port'
                              '[/tcp|/udp]' % (entry,), option='published_ports', value=entry)
    proto = (match.group('proto') or 'tcp').lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument('published_ports "%s": protocol "%s" is not tcp or udp' % (entry, proto),
                              option='published_ports', value=entry)
    host_ip = match.group('ip') or ''
    if host_ip.startswith('['):
        raise InvalidArgument('published_ports "%s": IPv6 host addresses are not supported yet' % (entry,),
                              option='published_ports', value=entry)
    if host_ip:
        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise InvalidArgument('published_ports "%s": %s is not an IPv4 address' % (entry, host_ip),
                                  option='published_ports', value=entry)
        if host_ip == '0.0.0.0':
            host_ip = ''
    c_start, c_end = _range(match.group('ctr'), entry)
    host = match.group('host') or ''
    if not host:
        return [PortBinding(host_ip, 0, port, proto) for port in range(c_start, c_end + 1)]
    h_start, h_end = _range(host, entry)
    if c_start == c_end and h_end > h_start:
        return [PortBinding(host_ip, h_start, c_start, proto, host_end=h_end)]
    if h_end - h_start != c_end - c_start:
        raise InvalidArgument('published_ports "%s": the host range and the container range differ in length'
                              % (entry,), option='published_ports', value=entry)
    return [PortBinding(host_ip, h_start + i, c_start + i, proto) for i in range(c_end - c_start + 1)]


def parse_all(entries):
    if entries is None:
        return []
    if isinstance(entries, (str, int)):
        entries = [entries]
    out = []
    for entry in entries:
        for binding in parse(entry):
            if binding not in out:
                out.append(binding)
    return out


def to_port_bindings(bindings):
    """Docker's ``HostConfig.PortBindings``: ``{"80/tcp": [{"HostIp": "", "HostPort": "4000"}]}``."""
    out = {}
    for b in bindings:
        port = '' if not b.host_port else (str(b.host_port) if b.host_end == b.host_port
                                           else '%d-%d' % (b.host_port, b.host_end))
        out.setdefault(b.key, []).append({'HostIp': b.host_ip, 'HostPort': port})
    return out


def from_port_bindings(port_bindings):
    out = []
    for key, entries in sorted((port_bindings or {}).items()):
        number, _sep, proto = key.partition('/')
        for e in entries or [{}]:
            host = e.get('HostPort') or ''
            start, _sep, end = host.partition('-')
            out.append(PortBinding(e.get('HostIp') or '', int(start) if start else 0, int(number), proto or 'tcp',
                                   host_end=int(end) if end else None))
    return out


def _bindable(host_ip, port, proto):
    kind = socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if proto == 'tcp':          # a TIME_WAIT leftover is not a user (for UDP it would hide real ones)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host_ip or '0.0.0.0', port))
        return True
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument('published_ports: %s is not an address of this host' % host_ip,
                                  option='published_ports', value=host_ip)
        return False
    finally:
        sock.close()


def _clash(host_ip, port, proto, taken):
    """Another container's binding this one would collide with, or None."""
    for t_ip, t_port, t_proto in taken:
        if t_port == port and t_proto == proto and (not t_ip or not host_ip or t_ip == host_ip):
            return True
    return False


def local_range(path='/proc/sys/net/ipv4/ip_local_port_range'):
    try:
        with open(path) as f:
            low, high = (int(v) for v in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def assign(bindings, taken=()):
    """Host ports for ``bindings`` (given ones checked, open ones picked): ``[(host_ip, port, ctr_port, proto)]``.

    ``taken`` is what other containers of ours publish: ``(host_ip, port, proto)``.
    Raises Conflict naming the port when one is held.
    """
    taken = list(taken)
    out = []
    for b in bindings:
        if b.host_port and b.host_end == b.host_port:
            candidates = [b.host_port]
        elif b.host_port:
            candidates = range(b.host_port, b.host_end + 1)
        else:
            low, high = local_range()
            span = high - low + 1
            first = int.from_bytes(os.urandom(2), 'big') % span
            candidates = (low + (first + i) % span for i in range(span))
        chosen = None
        for port in candidates:
            if not _clash(b.host_ip, port, b.proto, taken) and _bindable(b.host_ip, port, b.proto):
                chosen = port
                break
        if chosen is None:
            where = '%s:' % b.host_ip if b.host_ip else ''
            wanted = ('%d' % b.host_port if b.host_end == b.host_port else '%d-%d' % (b.host_port, b.host_end)) \
                if b.host_port else 'any'
            raise Conflict('published port %s%s/%s is already in use on this host' % (where, wanted, b.proto),
                           option='published_ports')
        taken.append((b.host_ip, chosen, b.proto))
        out.append((b.host_ip, chosen, b.container_port, b.proto))
    return out


def settings_ports(assigned, bindings=()):
    """``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "4000"}]}``."""
    out = {}
    for host_ip, port, ctr_port, proto in assigned:
        out.setdefault('%d/%s' % (ctr_port, proto), []).append({'HostIp': host_ip or '0.0.0.0', 'HostPort': str(port)})
    return out


__all__ = ['PortBinding', 'assign', 'from_port_bindings', 'parse', 'parse_all', 'settings_ports',
           'to_port_bindings']

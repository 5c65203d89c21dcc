# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Links, addresses and routes over rtnetlink: pyroute2's message codec, our own socket.

pyroute2's package ``__init__`` imports every netlink family it knows and asyncio
(~0.2 s here), and its ``IPRoute`` runs an event loop. A container start needs five
messages, so this module loads only pyroute2's message classes (``ifinfmsg``,
``ifaddrmsg``, ``rtmsg``: ~40 ms) without running the package ``__init__``, and
sends them on a plain blocking ``AF_NETLINK`` socket: no event loop, no thread,
nothing that makes a later ``fork()`` unsafe.

A :class:`Netlink` opened with ``netns_fd`` talks to that network namespace: the
socket is created inside it (``setns`` there and back), as ``ip -n`` does.
"""

from __future__ import annotations

import os
import socket
import sys

from .. import libc
from ..errors import CtrError, KernelError

NETLINK_ROUTE = 0
_RECV = 1 << 16

_codec = None


class _Codec:
    """The pyroute2 names this module uses."""

    def __init__(self):
        from pyroute2.netlink import (NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NLMSG_DONE,
                                      NLMSG_ERROR, nlmsgerr)
        from pyroute2.netlink.rtnl import (RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWLINK,
                                           RTM_NEWROUTE, RTM_SETLINK)
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
        from pyroute2.netlink.rtnl.rtmsg import rtmsg
        self.F_ACK, self.F_CREATE, self.F_EXCL, self.F_REQUEST = NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
        self.DONE, self.ERROR, self.nlmsgerr = NLMSG_DONE, NLMSG_ERROR, nlmsgerr
        self.RTM_DELLINK, self.RTM_GETLINK, self.RTM_NEWADDR = RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR
        self.RTM_NEWLINK, self.RTM_NEWROUTE, self.RTM_SETLINK = RTM_NEWLINK, RTM_NEWROUTE, RTM_SETLINK
        self.ifaddrmsg, self.ifinfmsg, self.rtmsg = ifaddrmsg, ifinfmsg, rtmsg


def codec():
    """pyroute2's message classes, loaded without the package ``__init__``; a clear error without pyroute2.

    When pyroute2 is not imported yet, a bare package object stands in for it in
    ``sys.modules`` (same ``__path__``), so ``pyroute2.netlink...`` imports run but
    ``pyroute2/__init__.py`` does not. A process that already imported pyroute2 whole
    keeps it.
    """
    global _codec
    if _codec is not None:
        return _codec
    if 'pyroute2' not in sys.modules:
        from importlib.machinery import ModuleSpec, PathFinder
        spec = PathFinder.find_spec('pyroute2')
        if spec is None or not spec.submodule_search_locations:
            raise CtrError('bridge networking needs the pyroute2 Python package on the managed host: install '
                           'python3-pyroute2 (Debian, Ubuntu) or "pip install pyroute2"', option='network_mode')
        package = type(sys)('pyroute2')
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = ModuleSpec('pyroute2', None, is_package=True)
        package.__spec__.submodule_search_locations = package.__path__
        package.__file__ = spec.origin
        sys.modules['pyroute2'] = package
    try:
        _codec = _without_file_command(_Codec)
    except ImportError as exc:
        raise CtrError('pyroute2 on the managed host lacks its rtnetlink messages (%s): install pyroute2 0.7 or '
                       'later' % exc, option='network_mode')
    return _codec


def _without_file_command(load):
    """Call ``load`` with ``platform.architecture()`` answered from the interpreter itself.

    pyroute2's ``config`` calls ``platform.architecture()`` at import, which runs the
    ``file`` command on the interpreter (a fork and exec: ~10 ms, and nothing pyroute2's
    rtnetlink messages use); without that command's output, ``platform`` falls back to
    what the running interpreter says, which is the same answer here.
    """
    import platform
    original = getattr(platform, '_syscmd_file', None)
    if original is None:
        return load()
    platform._syscmd_file = lambda target, default='': default     # pylint: disable=protected-access
    try:
        return load()
    finally:
        platform._syscmd_file = original                             # pylint: disable=protected-access


class Netlink:
    """A blocking rtnetlink socket, in this network namespace or in ``netns_fd``'s."""

    def __init__(self, netns_fd=None):
        self.c = codec()
        self._seq = 0
        if netns_fd is None:
            self.sock = self._open()
            return
        own = os.open('/proc/self/ns/net', os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(netns_fd)
            try:
                self.sock = self._open()
            finally:
                _setns(own)
        finally:
            os.close(own)

    @staticmethod
    def _open():
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        sock.bind((0, 0))
        return sock

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- transport -------------------------------------------------------------------------------

    def _send(self, msg, kind, flags):
        self._seq += 1
        msg['header']['type'] = kind
        msg['header']['flags'] = self.c.F_REQUEST | flags
        msg['header']['sequence_number'] = self._seq
        msg.encode()
        self.sock.send(msg.data)
        return self._seq

    def request(self, msg, kind, flags, what):
        """Send and wait for the kernel's acknowledgement; a refusal raises KernelError naming ``what``."""
        seq = self._send(msg, kind, flags | self.c.F_ACK)
        while True:
            for kind_got, got_seq, data in self._messages():
                if got_seq != seq or kind_got != self.c.ERROR:
                    continue
                err = self.c.nlmsgerr(data)
                err.decode()
                code = -err['error']
                if code:
                    raise KernelError.from_oserror(what, None, OSError(code, os.strerror(code)))
                return

    def get(self, msg, kind, what):
        """Send a get request; the kernel's one answer, decoded with ``msg``'s class."""
        seq = self._send(msg, kind, 0)
        while True:
            for kind_got, got_seq, data in self._messages():
                if got_seq != seq:
                    continue
                if kind_got == self.c.ERROR:
                    err = self.c.nlmsgerr(data)
                    err.decode()
                    code = -err['error']
                    raise KernelError.from_oserror(what, None, OSError(code, os.strerror(code)))
                answer = type(msg)(data)
                answer.decode()
                return answer

    def _messages(self):
        data = self.sock.recv(_RECV)
        offset = 0
        while offset + 16 <= len(data):
            length = int.from_bytes(data[offset:offset + 4], sys.byteorder)
            kind = int.from_bytes(data[offset + 4:offset + 6], sys.byteorder)
            seq = int.from_bytes(data[offset + 8:offset + 12], sys.byteorder)
            if length < 16:
                break
            yield kind, seq, data[offset:offset + length]
            offset += (length + 3) & ~3

    # -- links ---------------------------------------------------------------------------------

    def _link(self, attrs, index=0, flags=0, change=0):
        msg = self.c.ifinfmsg()
        msg['family'] = socket.AF_UNSPEC
        msg['index'] = index
        msg['flags'] = flags
        msg['change'] = change
        msg['attrs'] = attrs
        return msg

    def index(self, name):
        """The interface index of ``name`` in this socket's namespace, or None."""
        try:
            answer = self.get(self._link([('IFLA_IFNAME', name)]), self.c.RTM_GETLINK, 'find link %s' % name)
        except KernelError as exc:
            if exc.details.get('errno') == 19:      # ENODEV
                return None
            raise
        return answer['index']

    def add_bridge(self, name, mtu=None):
        attrs = [('IFLA_IFNAME', name), ('IFLA_LINKINFO', {'attrs': [('IFLA_INFO_KIND', 'bridge')]})]
        if mtu:
            attrs.append(('IFLA_MTU', mtu))
        self.request(self._link(attrs), self.c.RTM_NEWLINK, self.c.F_CREATE | self.c.F_EXCL,
                     'create bridge %s' % name)

    def add_veth(self, name, peer, peer_netns_fd, master=None, mtu=None, peer_mac=None):
        """A veth pair: ``name`` here (on bridge ``master``), ``peer`` in the namespace of ``peer_netns_fd``."""
        peer_attrs = [('IFLA_IFNAME', peer), ('IFLA_NET_NS_FD', peer_netns_fd)]
        if peer_mac:
            peer_attrs.append(('IFLA_ADDRESS', peer_mac))
        if mtu:
            peer_attrs.append(('IFLA_MTU', mtu))
        attrs = [('IFLA_IFNAME', name),
                 ('IFLA_LINKINFO', {'attrs': [('IFLA_INFO_KIND', 'veth'),
                                              ('IFLA_INFO_DATA', {'attrs': [('VETH_INFO_PEER',
                                                                             {'attrs': peer_attrs})]})]})]
        if master:
            attrs.append(('IFLA_MASTER', master))
        if mtu:
            attrs.append(('IFLA_MTU', mtu))
        self.request(self._link(attrs), self.c.RTM_NEWLINK, self.c.F_CREATE | self.c.F_EXCL,
                     'create veth pair %s/%s' % (name, peer))

    def up(self, index, name):
        self.request(self._link([], index=index, flags=1, change=1), self.c.RTM_NEWLINK, 0, 'set %s up' % name)

    def delete(self, index, name):
        self.request(self._link([], index=index), self.c.RTM_DELLINK, 0, 'delete link %s' % name)

    # -- addresses and routes -------------------------------------------------------------------

    def add_address(self, index, address, prefixlen, name):
        msg = self.c.ifaddrmsg()
        msg['family'] = socket.AF_INET
        msg['prefixlen'] = prefixlen
        msg['index'] = index
        broadcast = _broadcast(address, prefixlen)
        msg['attrs'] = [('IFA_LOCAL', address), ('IFA_ADDRESS', address)] + (
            [('IFA_BROADCAST', broadcast)] if broadcast else [])
        self.request(msg, self.c.RTM_NEWADDR, self.c.F_CREATE | self.c.F_EXCL,
                     'add address %s/%d to %s' % (address, prefixlen, name))

    def add_default_route(self, gateway, index):
        msg = self.c.rtmsg()
        msg['family'] = socket.AF_INET
        msg['table'] = 254          # main
        msg['proto'] = 3            # boot, as ip route add
        msg['scope'] = 0            # universe
        msg['type'] = 1             # unicast
        msg['attrs'] = [('RTA_GATEWAY', gateway), ('RTA_OIF', index)]
        self.request(msg, self.c.RTM_NEWROUTE, self.c.F_CREATE | self.c.F_EXCL,
                     'add a default route via %s' % gateway)


def delete_link(name):
    """Delete interface ``name`` of this namespace if it exists: one bare RTM_DELLINK by index.

    Without pyroute2 on purpose: the monitor calls it when a container is done, and loads
    nothing new then (the files of a module that started it may be gone).
    """
    import struct
    try:
        with open('/sys/class/net/%s/ifindex' % name) as f:
            index = int(f.read())
    except (OSError, ValueError):
        return False
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        sock.bind((0, 0))
        body = struct.pack('=BxHiII', socket.AF_UNSPEC, 0, index, 0, 0)      # ifinfomsg
        header = struct.pack('=IHHII', 16 + len(body), 17, 0x1 | 0x4, 1, 0)   # RTM_DELLINK, REQUEST|ACK
        sock.send(header + body)
        reply = sock.recv(_RECV)
        code = -struct.unpack('=i', reply[16:20])[0] if len(reply) >= 20 else 0
        if code and code != 19:             # ENODEV: gone meanwhile
            raise KernelError.from_oserror('delete link %s' % name, None, OSError(code, os.strerror(code)))
        return True
    finally:
        sock.close()


def _setns(fd):
    try:
        libc.setns(fd, libc.CLONE_NEWNET)
    except OSError as exc:
        raise KernelError.from_oserror('setns net', None, exc)


def _broadcast(address, prefixlen):
    if prefixlen >= 31:
        return None
    value = int.from_bytes(socket.inet_aton(address), 'big') | ((1 << (32 - prefixlen)) - 1)
    return socket.inet_ntoa(value.to_bytes(4, 'big'))


__all__ = ['Netlink', 'codec', 'delete_link']

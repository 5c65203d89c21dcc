# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bridge networks for real: addresses, names, published ports (TCP, UDP, loopback, hairpin), outbound
masquerading to a fake outside host, internal networks, container:NAME, and that nothing is left.

Traffic goes only to 127.0.0.1, to the bridges' gateway addresses (host addresses this test's store
made) and to network namespaces the tests make; a container subnet is checked to be routed on its
bridge before the host sends anything to it.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import time
import uuid

import helpers
import pytest

from ctr.errors import Conflict, CtrError, NotFound
from ctr.network import nft
from ctr.network.networks import NetworkStore, store_tag

# the host's /usr, /lib and /lib64 read-only: the container can run the host's python3 (a UDP echo server)
HOST_PYTHON = ['/usr:/usr:ro', '/lib:/lib:ro'] + (['/lib64:/lib64:ro'] if os.path.isdir('/lib64') else [])
SYSTEM_PYTHON = '/usr/bin/python3'

Ran = collections.namedtuple('Ran', 'code out err container')


@pytest.fixture
def runtime(store_root, busybox_rootfs):
    with helpers.busybox_runtime(store_root, busybox_rootfs) as rt:
        yield rt


def run(rt, *argv, **options):
    c = rt.create('busybox', command=list(argv), **options)
    rt.start(c.Id)
    code = rt.wait(c.Id, timeout=60)
    out = ''.join(t for s, t in rt.logs(c.Id) if s == 'stdout')
    err = ''.join(t for s, t in rt.logs(c.Id) if s == 'stderr')
    return Ran(code, out, err, rt.get(c.Id))


def start(rt, *argv, **options):
    c = rt.create('busybox', command=list(argv), **options)
    rt.start(c.Id)
    return rt.inspect(rt.get(c.Id))


def links():
    out = subprocess.run(['ip', '-o', 'link', 'show'], capture_output=True, text=True, check=True).stdout
    return [line.split(':')[1].strip().split('@')[0] for line in out.splitlines()]


def assert_routed(subnet, bridge):
    """The network rule: the host sends to a container subnet only if it is routed on that bridge."""
    out = subprocess.run(['ip', '-o', 'route', 'show', str(subnet)], capture_output=True, text=True,
                         check=True).stdout
    assert 'dev %s ' % bridge in out, out


def http_get(host, port, timeout=5.0):
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b'GET / HTTP/1.0\r\n\r\n')
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data.decode('utf-8', 'replace')
            data += chunk


def wait_for(predicate, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def serving(host, port):
    try:
        return 'HTTP/1.' in http_get(host, port, 1.0)
    except OSError:
        return False


@pytest.fixture
def www(tmp_path):
    site = tmp_path / 'www'
    site.mkdir()
    (site / 'index.html').write_text('hello from the container\n')
    return site


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# -- addresses, names ---------------------------------------------------------------------------------

def test_default_network_gives_eth0_an_address_a_route_and_dockers_mac(runtime, store_root):
    ran = run(runtime, 'sh', '-c', 'ip -o -4 addr show eth0; ip route; cat /sys/class/net/eth0/address')
    assert ran.code == 0, ran.err
    settings = runtime.inspect(ran.container)['NetworkSettings']
    network = NetworkStore(str(store_root)).get('ctr')
    assert network.bridge == 'ctr0-' + store_tag(str(store_root))
    # the settings are shown while it runs; the address was the lowest free one
    assert 'inet %s/%d' % (next(network.subnet.hosts()) + 1, network.subnet.prefixlen) in ran.out
    assert 'default via %s dev eth0' % network.gateway in ran.out
    mac = '02:42:' + ':'.join('%02x' % b for b in (next(network.subnet.hosts()) + 1).packed)
    assert mac in ran.out
    assert settings['IPAddress'] == ''          # exited: detached, the address is free again
    assert network.allocations == {}


def test_inspect_shows_docker_network_settings_while_running(runtime, store_root):
    info = start(runtime, 'sleep', '60', published_ports=['127.0.0.1::80'])
    ns = info['NetworkSettings']
    network = NetworkStore(str(store_root)).get('ctr')
    assert ns['IPAddress'] == str(next(network.subnet.hosts()) + 1)
    assert ns['Gateway'] == str(network.gateway) and ns['IPPrefixLen'] == network.subnet.prefixlen
    assert ns['MacAddress'].startswith('02:42:')
    assert ns['Networks']['ctr']['NetworkID'] == network.id
    assert ns['Networks']['ctr']['IPAddress'] == ns['IPAddress']
    [binding] = ns['Ports']['80/tcp']
    assert binding['HostIp'] == '127.0.0.1' and 32768 <= int(binding['HostPort']) <= 65535
    assert info['HostConfig']['PortBindings'] == {'80/tcp': [{'HostIp': '127.0.0.1', 'HostPort': ''}]}
    assert network.allocations == {ns['IPAddress']: info['Id']}


def test_containers_on_a_network_find_each_other_by_name_and_alias(runtime, store_root):
    store = NetworkStore(str(store_root))
    store.create(store.plan('app', subnet='172.29.77.0/24'))
    api = start(runtime, 'sleep', '60', name='api', networks=[{'name': 'app', 'aliases': ['api.internal']}])
    ran = run(runtime, 'sh', '-c', 'ping -c1 -W3 api >/dev/null && ping -c1 -W3 api.internal >/dev/null && '
              'echo reached; cat /etc/hosts', name='client', networks=[{'name': 'app'}])
    assert ran.code == 0, ran.out + ran.err
    assert 'reached' in ran.out
    api_ip = api['NetworkSettings']['Networks']['app']['IPAddress']
    assert '%s\tapi api.internal' % api_ip in ran.out
    # the answers follow containers as they come and go: api's own hosts file learns of a newcomer
    late = start(runtime, 'sleep', '60', name='late', networks=['app'])
    late_ip = late['NetworkSettings']['Networks']['app']['IPAddress']
    hosts = os.path.join(runtime.containers.dir(api['Id']), 'hosts')
    with open('/proc/%d/root/etc/hosts' % api['State']['Pid']) as f:
        assert '%s\tlate' % late_ip in f.read()
    runtime.remove(late['Id'], force=True)
    with open(hosts) as f:
        assert 'late' not in f.read()


def test_a_static_address_is_honoured_and_refused_when_taken(runtime, store_root):
    store = NetworkStore(str(store_root))
    store.create(store.plan('fixed', subnet='172.29.78.0/24'))
    first = start(runtime, 'sleep', '60', networks=[{'name': 'fixed', 'ipv4_address': '172.29.78.50'}])
    assert first['NetworkSettings']['IPAddress'] == '172.29.78.50'
    second = runtime.create('busybox', command=['sleep', '60'],
                            networks=[{'name': 'fixed', 'ipv4_address': '172.29.78.50'}])
    with pytest.raises(Conflict) as err:
        runtime.start(second.Id)
    assert '172.29.78.50' in err.value.msg and first['Id'][:12] in err.value.msg
    assert not runtime.get(second.Id).State.Running
    assert list(store.get('fixed').allocations) == ['172.29.78.50']
    assert not os.path.exists(os.path.join(runtime.containers.dir(second.Id), 'netns'))


def test_an_unknown_network_is_refused_at_create(runtime):
    with pytest.raises(NotFound) as err:
        runtime.create('busybox', command=['true'], networks=[{'name': 'nowhere'}])
    assert 'nowhere' in err.value.msg
    assert runtime.list() == []


def test_container_mode_shares_the_network_namespace(runtime):
    web = start(runtime, 'sleep', '60', name='web')
    ran = run(runtime, 'sh', '-c', 'readlink /proc/1/ns/net; ip -o -4 addr show eth0', network_mode='container:web')
    assert ran.code == 0, ran.err
    assert ran.out.split('\n')[0] == os.readlink('/proc/%d/ns/net' % web['State']['Pid'])
    assert web['NetworkSettings']['IPAddress'] in ran.out
    assert ran.container.HostConfig['NetworkMode'] == 'container:' + web['Id']
    assert runtime.inspect(ran.container)['NetworkSettings']['JoinedContainer'] == web['Id']


def test_container_mode_needs_the_other_container_running(runtime):
    other = runtime.create('busybox', command=['true'], name='idle')
    c = runtime.create('busybox', command=['true'], network_mode='container:idle')
    with pytest.raises(Conflict) as err:
        runtime.start(c.Id)
    assert 'idle' in err.value.msg or other.Id[:12] in err.value.msg


# -- published ports ------------------------------------------------------------------------------------

def test_a_published_port_answers_on_loopback_the_gateway_and_from_another_container(runtime, store_root, www):
    port = free_port()
    web = start(runtime, 'httpd', '-f', '-p', '80', '-h', '/www', name='web', volumes=['%s:/www:ro' % www],
                published_ports=['%d:80' % port])
    assert wait_for(lambda: serving('127.0.0.1', port))
    assert 'hello from the container' in http_get('127.0.0.1', port)
    gateway = web['NetworkSettings']['Gateway']
    assert 'hello from the container' in http_get(gateway, port)       # a host address
    # hairpin: another container reaches it through a host address
    ran = run(runtime, 'sh', '-c', 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 %s %d' % (gateway, port))
    assert 'hello from the container' in ran.out, ran.out + ran.err
    # and straight to its address over the bridge (routed there: checked first)
    network = NetworkStore(str(store_root)).get('ctr')
    assert_routed(network.subnet, network.bridge)
    assert 'hello from the container' in http_get(web['NetworkSettings']['IPAddress'], 80)


@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason='needs the host python3 for a UDP echo server')
def test_a_published_udp_port_echoes(runtime):
    port = free_port()
    server = ('import socket\n'
              's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n'
              's.bind(("0.0.0.0", 5353))\n'
              'while True:\n'
              '    data, peer = s.recvfrom(2048)\n'
              '    s.sendto(b"echo:" + data, peer)\n')
    start(runtime, SYSTEM_PYTHON, '-c', server, volumes=HOST_PYTHON, published_ports=['127.0.0.1:%d:5353/udp' % port])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        answer = None
        for _attempt in range(40):            # until the server is up
            s.sendto(b'ping', ('127.0.0.1', port))
            try:
                answer = s.recv(2048)
                break
            except socket.timeout:
                continue
    assert answer == b'echo:ping'


def test_a_port_in_use_fails_clearly_and_leaves_nothing(runtime, store_root):
    holder = socket.socket()
    holder.bind(('0.0.0.0', 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        before = links()
        with pytest.raises(Conflict) as err:          # at create: nothing is made
            runtime.create('busybox', command=['sleep', '60'], published_ports=['%d:80' % port])
        assert 'published port %d/tcp is already in use' % port in err.value.msg
        assert runtime.list() == []
    finally:
        holder.close()
    # taken between create and start: the start fails, and leaves nothing of the network behind
    c = runtime.create('busybox', command=['sleep', '60'], published_ports=['%d:80' % port])
    holder = socket.socket()
    holder.bind(('0.0.0.0', port))
    holder.listen(1)
    try:
        with pytest.raises(Conflict):
            runtime.start(c.Id)
        assert links() == before
        assert NetworkStore(str(store_root)).get('ctr').allocations == {}
        assert not os.path.exists(os.path.join(runtime.containers.dir(c.Id), 'network.json'))
        assert not runtime.get(c.Id).State.Running
    finally:
        holder.close()


def test_two_containers_cannot_publish_the_same_port(runtime):
    port = free_port()
    start(runtime, 'sleep', '60', name='first', published_ports=['%d:80' % port])
    with pytest.raises(Conflict) as err:
        runtime.create('busybox', command=['sleep', '60'], published_ports=['%d:81' % port])
    assert str(port) in err.value.msg
    # planning the same container again (a task's repeat) checks no port: nothing is made then
    assert runtime.plan('busybox', name='first', command=['sleep', '60'], published_ports=['%d:80' % port])


# -- the outside world ----------------------------------------------------------------------------------

@pytest.fixture
def outside():
    """A fake outside host: a network namespace of its own behind a veth, 198.51.100.2 (host side .1)."""
    tag = uuid.uuid4().hex[:6]
    ns, host_if = 'ctr-out-' + tag, 'ctrout' + tag
    subprocess.run(['ip', 'netns', 'add', ns], check=True)
    try:
        subprocess.run(['ip', 'link', 'add', host_if, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns],
                       check=True)
        subprocess.run(['ip', 'addr', 'add', '198.51.100.1/30', 'dev', host_if], check=True)
        subprocess.run(['ip', 'link', 'set', host_if, 'up'], check=True)
        for cmd in (['ip', 'addr', 'add', '198.51.100.2/30', 'dev', 'eth0'], ['ip', 'link', 'set', 'eth0', 'up'],
                    ['ip', 'link', 'set', 'lo', 'up']):
            subprocess.run(['ip', 'netns', 'exec', ns] + cmd, check=True)
        yield ns
    finally:
        subprocess.run(['ip', 'link', 'del', host_if], check=False, capture_output=True)
        subprocess.run(['ip', 'netns', 'del', ns], check=False, capture_output=True)


def _peer_server(ns):
    """A TCP server in ``ns`` on port 7000 that answers each client with the address it came from."""
    code = ('import socket\n'
            's = socket.socket()\n'
            's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n'
            's.bind(("198.51.100.2", 7000))\n'
            's.listen(8)\n'
            'print("ready", flush=True)\n'
            'while True:\n'
            '    c, peer = s.accept()\n'
            '    c.sendall(("from " + peer[0] + "\\n").encode())\n'
            '    c.close()\n')
    proc = subprocess.Popen(['ip', 'netns', 'exec', ns, sys.executable, '-c', code], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == 'ready'
    return proc


def test_outbound_traffic_is_masqueraded_and_an_internal_network_has_no_way_out(runtime, store_root, outside):
    server = _peer_server(outside)
    try:
        ran = run(runtime, 'sh', '-c', 'nc -w 5 198.51.100.2 7000 </dev/null')
        assert ran.out.strip() == 'from 198.51.100.1', ran.out + ran.err    # the host's address, not the container's
        store = NetworkStore(str(store_root))
        store.create(store.plan('sealed', subnet='172.29.79.0/24', internal=True))
        ran = run(runtime, 'sh', '-c', 'nc -w 3 198.51.100.2 7000 </dev/null; echo rc=$?', networks=['sealed'])
        assert 'from ' not in ran.out and 'rc=0' not in ran.out, ran.out
    finally:
        server.kill()
        server.wait()


# -- leaving nothing behind ------------------------------------------------------------------------------

def test_removal_leaves_no_veth_rule_or_address(runtime, store_root):
    from ctr.network import endpoints
    before = links()
    table = nft.table_name(store_tag(str(store_root)))
    port = free_port()
    c = start(runtime, 'sleep', '60', published_ports=['%d:80' % port])
    veth = 'veth%s0' % c['Id'][:9]
    address = c['NetworkSettings']['IPAddress']
    assert veth in links()
    assert 'dnat to %s:80' % address in nft.listed(table)
    runtime.remove(c['Id'], force=True)
    bridge = NetworkStore(str(store_root)).get('ctr').bridge
    assert [name for name in links() if name not in before] in ([], [bridge])     # the bridge stays, as docker0
    rules = nft.listed(table)
    assert address not in rules and str(port) not in rules          # its rules went; the bridge's stay
    assert NetworkStore(str(store_root)).get('ctr').allocations == {}
    with open(os.path.join(str(store_root), 'networks', 'ctr.json')) as f:
        assert json.load(f)['Allocations'] == {}
    endpoints.remove_network(str(store_root), 'ctr')                  # the network itself: bridge and table go
    assert bridge not in links() and nft.listed(table) == ''


def test_a_killed_monitor_is_cleaned_up_by_remove(runtime, store_root):
    c = start(runtime, 'sleep', '60')
    os.kill(runtime.get(c['Id']).State.MonitorPid, 9)
    runtime.remove(c['Id'], force=True)
    assert 'veth%s0' % c['Id'][:9] not in links()
    assert NetworkStore(str(store_root)).get('ctr').allocations == {}


def test_removing_a_network_in_use_needs_force(runtime, store_root):
    from ctr.network import endpoints
    store = NetworkStore(str(store_root))
    network = store.create(store.plan('busy', subnet='172.29.80.0/24'))
    c = start(runtime, 'sleep', '60', networks=['busy'])
    with pytest.raises(CtrError) as err:
        endpoints.remove_network(str(store_root), 'busy')
    assert c['Id'][:12] in err.value.msg
    endpoints.remove_network(str(store_root), 'busy', force=True)
    assert store.find('busy') is None
    assert network.bridge not in links() and 'veth%s0' % c['Id'][:9] not in links()
    assert runtime.get(c['Id']).State.Running          # still running, without that network


def test_a_dead_containers_address_is_freed_for_the_next_start(runtime, store_root):
    """Monitor and PID 1 killed (as by a reboot): its address, veth and ports do not stay taken."""
    store = NetworkStore(str(store_root))
    store.create(store.plan('fixed2', subnet='172.29.81.0/24'))
    first = start(runtime, 'sleep', '60', networks=[{'name': 'fixed2', 'ipv4_address': '172.29.81.9'}])
    state = runtime.get(first['Id']).State
    os.kill(state.MonitorPid, 9)
    os.kill(state.Pid, 9)
    assert wait_for(lambda: not runtime.get(first['Id']).State.Running)
    second = start(runtime, 'sleep', '60', networks=[{'name': 'fixed2', 'ipv4_address': '172.29.81.9'}])
    assert second['NetworkSettings']['IPAddress'] == '172.29.81.9'
    assert store.get('fixed2').allocations == {'172.29.81.9': second['Id']}
    assert 'veth%s0' % first['Id'][:9] not in links()


def test_two_networks_give_eth0_and_eth1_and_the_first_routes(runtime, store_root):
    store = NetworkStore(str(store_root))
    store.create(store.plan('front', subnet='172.29.82.0/24'))
    store.create(store.plan('back', subnet='172.29.83.0/24', internal=True))
    ran = run(runtime, 'sh', '-c', 'ip -o -4 addr show; ip route show default', networks=['front', 'back'])
    assert ran.code == 0, ran.err
    assert 'eth0    inet 172.29.82.2/24' in ran.out and 'eth1    inet 172.29.83.2/24' in ran.out
    assert 'default via 172.29.82.1 dev eth0' in ran.out


def test_networks_are_isolated_from_each_other(runtime, store_root, www):
    store = NetworkStore(str(store_root))
    store.create(store.plan('netA', subnet='172.29.84.0/24'))
    store.create(store.plan('netB', subnet='172.29.85.0/24'))
    web = start(runtime, 'httpd', '-f', '-p', '80', '-h', '/www', networks=['netB'], volumes=['%s:/www:ro' % www])
    address = web['NetworkSettings']['Networks']['netB']['IPAddress']
    probe = 'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 %s 80; echo rc=$?' % address
    same = run(runtime, 'sh', '-c', 'sleep 0.5; ' + probe, networks=['netB'])
    assert 'hello from the container' in same.out, same.out
    other = run(runtime, 'sh', '-c', probe, networks=['netA'])
    assert 'hello from the container' not in other.out, other.out


def test_a_host_interface_cannot_be_a_networks_bridge_and_hostnames_are_checked(runtime, store_root):
    store = NetworkStore(str(store_root))
    for name in ('lo', 'ctr0', 'vethabc'):
        with pytest.raises(CtrError) as err:
            store.plan('stolen', subnet='172.29.86.0/24', options={'bridge_name': name})
        assert name in err.value.msg
    with pytest.raises(CtrError) as err:
        runtime.create('busybox', command=['true'], hostname='web\n6.6.6.6 bank.example')
    assert 'hostname' in err.value.msg and runtime.list() == []


def test_disconnecting_from_two_networks_takes_the_right_veths(runtime, store_root):
    from ctr.network import endpoints
    store = NetworkStore(str(store_root))
    store.create(store.plan('one', subnet='172.29.87.0/24'))
    store.create(store.plan('two', subnet='172.29.88.0/24'))
    c = start(runtime, 'sleep', '60', networks=['one', 'two'])
    first, second = 'veth%s0' % c['Id'][:9], 'veth%s1' % c['Id'][:9]
    assert first in links() and second in links()
    endpoints.disconnect(str(store_root), 'one', c['Id'])
    assert first not in links() and second in links()
    endpoints.disconnect(str(store_root), 'two', c['Id'])
    assert second not in links()
    assert store.get('one').allocations == {} and store.get('two').allocations == {}

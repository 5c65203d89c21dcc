# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr.network without root: published port specs, network records and IPAM, pools, resolv.conf and
hosts, the nftables script, and the container network options."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys

import pytest

_MODULE_UTILS = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))
if _MODULE_UTILS not in [os.path.abspath(p) for p in sys.path]:
    sys.path.insert(0, _MODULE_UTILS)

from ctr.errors import Conflict, InvalidArgument, NotFound  # noqa: E402
from ctr.network import dns, networks, nft, options, ports  # noqa: E402
from ctr.network.networks import Network, NetworkStore  # noqa: E402


# -- published ports ----------------------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('4000:80', [('', 4000, 4000, 80, 'tcp')]),
    ('127.0.0.1:4000:80', [('127.0.0.1', 4000, 4000, 80, 'tcp')]),
    ('127.0.0.1::80', [('127.0.0.1', 0, 0, 80, 'tcp')]),
    ('80', [('', 0, 0, 80, 'tcp')]),
    ('53/udp', [('', 0, 0, 53, 'udp')]),
    ('0.0.0.0:8080:80/TCP', [('', 8080, 8080, 80, 'tcp')]),
    ('5000-5001:6000-6001/udp', [('', 5000, 5000, 6000, 'udp'), ('', 5001, 5001, 6001, 'udp')]),
    ('8000-8010:80', [('', 8000, 8010, 80, 'tcp')]),
    ('7000-7001', [('', 0, 0, 7000, 'tcp'), ('', 0, 0, 7001, 'tcp')]),
])
def test_parse_published_ports(text, expected):
    got = [(b.host_ip, b.host_port, b.host_end, b.container_port, b.proto) for b in ports.parse(text)]
    assert got == expected


@pytest.mark.parametrize('text, fragment', [
    ('http', 'is not of the form'),
    ('4000:80/sctp', 'protocol "sctp"'),
    ('70000:80', 'out of the range'),
    ('4000:0', 'out of the range'),
    ('5000-5002:80-81', 'differ in length'),
    ('5002-5000:80', 'ends before it starts'),
    ('[::1]:4000:80', 'IPv6'),
    ('300.1.1.1:4000:80', 'not an IPv4 address'),
])
def test_parse_published_ports_refuses(text, fragment):
    with pytest.raises(InvalidArgument) as err:
        ports.parse(text)
    assert fragment in err.value.msg and err.value.details['option'] == 'published_ports'


def test_port_bindings_round_trip_in_dockers_shape():
    bindings = ports.parse_all(['127.0.0.1:4000:80', '53/udp', '8000-8010:8080', '4000:80'])
    shape = ports.to_port_bindings(bindings)
    assert shape == {'80/tcp': [{'HostIp': '127.0.0.1', 'HostPort': '4000'}, {'HostIp': '', 'HostPort': '4000'}],
                     '53/udp': [{'HostIp': '', 'HostPort': ''}],
                     '8080/tcp': [{'HostIp': '', 'HostPort': '8000-8010'}]}
    assert sorted(ports.from_port_bindings(shape), key=repr) == sorted(bindings, key=repr)
    assert ports.parse_all(['4000:80', '4000:80']) == ports.parse('4000:80')     # duplicates once


def test_assign_checks_given_ports_and_picks_free_ones():
    holder = socket.socket()
    holder.bind(('127.0.0.1', 0))
    holder.listen(1)
    held = holder.getsockname()[1]
    try:
        with pytest.raises(Conflict) as err:
            ports.assign(ports.parse('127.0.0.1:%d:80' % held))
        assert 'published port 127.0.0.1:%d/tcp is already in use' % held in err.value.msg
        [(ip, port, ctr_port, proto)] = ports.assign(ports.parse('127.0.0.1::80'))
        low, high = ports.local_range()
        assert (ip, ctr_port, proto) == ('127.0.0.1', 80, 'tcp') and low <= port <= high
        # another container of ours holds it: refused although no socket does
        with pytest.raises(Conflict):
            ports.assign(ports.parse('%d:81' % port), taken=[('', port, 'tcp')])
        assert ports.assign(ports.parse('%d:81/udp' % port), taken=[('', port, 'tcp')])[0][1] == port
    finally:
        holder.close()


def _two_free_ports():
    """A port P such that P and P + 1 are both free on 127.0.0.1 right now."""
    for _attempt in range(50):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port < 65535 and ports._bindable('127.0.0.1', port + 1, 'tcp'):    # pylint: disable=protected-access
            return port
    pytest.fail('no two adjacent free ports found')


def test_assign_takes_the_first_free_port_of_a_host_range():
    port = _two_free_ports()
    [(_ip, got, _c, _p)] = ports.assign(ports.parse('127.0.0.1:%d-%d:80' % (port, port + 1)),
                                        taken=[('', port, 'tcp')])
    assert got == port + 1


# -- networks and addresses --------------------------------------------------------------------------

ROUTE_TABLE = '''Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
'''


def test_host_routes_reads_proc_net_route_without_the_default(tmp_path):
    path = tmp_path / 'route'
    path.write_text(ROUTE_TABLE)
    assert networks.host_routes(str(path)) == [ipaddress.IPv4Network('192.0.2.0/24'),
                                               ipaddress.IPv4Network('172.17.0.0/16')]


def test_default_pools_start_where_dockers_do():
    pools = list(networks.default_pools())
    assert str(pools[0]) == '172.17.0.0/16' and str(pools[14]) == '172.31.0.0/16'
    assert str(pools[15]) == '192.168.0.0/20' and len(pools) == 31


def test_create_picks_a_pool_subnet_no_route_or_network_has(tmp_path, monkeypatch):
    monkeypatch.setattr(networks, 'host_routes', lambda: [ipaddress.IPv4Network('172.17.0.0/16')])
    store = NetworkStore(str(tmp_path))
    first = store.create(store.plan('one'))
    second = store.create(store.plan('two'))
    assert (str(first.subnet), str(first.gateway)) == ('172.18.0.0/16', '172.18.0.1')
    assert str(second.subnet) == '172.19.0.0/16'
    assert second.bridge == 'br-' + second.id[:12]
    with pytest.raises(Conflict) as err:
        store.create(store.plan('three', subnet='172.18.5.0/24'))
    assert 'overlaps network one' in err.value.msg
    with pytest.raises(Conflict):
        store.create(store.plan('one'))
    with open(os.path.join(str(tmp_path), 'networks', 'one.json')) as f:
        assert json.load(f)['Subnet'] == '172.18.0.0/16'


@pytest.mark.parametrize('kwargs, fragment', [
    ({'name': 'bad name'}, 'network name'),
    ({'name': 'host'}, 'reserved'),
    ({'name': 'n', 'subnet': '10.0.0.0/33'}, 'not an IPv4 network'),
    ({'name': 'n', 'subnet': '10.0.0.1/24'}, 'not an IPv4 network'),
    ({'name': 'n', 'subnet': 'fd00::/64'}, 'only IPv4'),
    ({'name': 'n', 'subnet': '10.0.0.0/31'}, 'too small'),
    ({'name': 'n', 'subnet': '10.0.0.0/24', 'gateway': '10.0.1.1'}, 'gateway 10.0.1.1 is not a usable address'),
    ({'name': 'n', 'subnet': '10.0.0.0/24', 'gateway': '10.0.0.255'}, 'not a usable address'),
    ({'name': 'n', 'subnet': '10.0.0.0/24', 'ip_range': '10.0.1.0/25'}, 'not inside subnet'),
    ({'name': 'n', 'gateway': '10.0.0.1'}, 'need subnet'),
    ({'name': 'n', 'options': {'colour': 'blue'}}, 'unknown option'),
    ({'name': 'n', 'options': {'mtu': 20}}, 'mtu'),
    ({'name': 'n', 'options': {'bridge_name': 'much-too-long-a-name'}}, 'not an interface name'),
    ({'name': 'n', 'driver': 'macvlan'}, 'only bridge'),
    ({'name': 'n', 'labels': {'a': 1}}, 'labels'),
])
def test_plan_refuses_bad_settings(tmp_path, kwargs, fragment):
    with pytest.raises(InvalidArgument) as err:
        NetworkStore(str(tmp_path)).plan(**kwargs)
    assert fragment in err.value.msg
    assert not os.path.exists(os.path.join(str(tmp_path), 'networks'))


def test_options_keep_dockers_keys():
    assert networks.normalize_options({'bridge_name': 'br-app', 'mtu': 1400}) == {
        networks.OPT_BRIDGE: 'br-app', networks.OPT_MTU: '1400'}


def test_addresses_lowest_first_static_honoured_and_released(tmp_path):
    store = NetworkStore(str(tmp_path))
    store.create(store.plan('app', subnet='10.9.0.0/29', ip_range='10.9.0.0/29'))
    with store.lock():
        assert str(store.allocate('app', 'a' * 64)[1]) == '10.9.0.2'          # .1 is the gateway
        assert str(store.allocate('app', 'a' * 64)[1]) == '10.9.0.2'          # held: the same again
        assert str(store.allocate('app', 'b' * 64, '10.9.0.5')[1]) == '10.9.0.5'
        with pytest.raises(Conflict) as err:
            store.allocate('app', 'c' * 64, '10.9.0.5')
        assert 'already used by container bbbbbbbbbbbb' in err.value.msg
        with pytest.raises(InvalidArgument):
            store.allocate('app', 'c' * 64, '10.9.0.7')       # broadcast
        for n in range(3, 7):
            if n != 5:
                store.allocate('app', str(n) * 64)
        with pytest.raises(Conflict) as err:
            store.allocate('app', 'd' * 64)
        assert 'no free address' in err.value.msg
        assert [n.name for n in store.release('b' * 64)] == ['app']
        assert str(store.allocate('app', 'd' * 64)[1]) == '10.9.0.5'


def test_remove_refuses_a_network_in_use(tmp_path):
    store = NetworkStore(str(tmp_path))
    store.create(store.plan('app', subnet='10.9.1.0/24'))
    with store.lock():
        store.allocate('app', 'a' * 64)
    with pytest.raises(Conflict) as err:
        store.remove('app')
    assert 'in use' in err.value.msg
    with store.lock():
        store.release('a' * 64)
    store.remove('app')
    assert store.find('app') is None
    with pytest.raises(NotFound):
        store.get('app')


def test_inspect_has_dockers_shape(tmp_path):
    store = NetworkStore(str(tmp_path))
    net = store.create(store.plan('app', subnet='10.9.2.0/24', ip_range='10.9.2.128/25', labels={'a': 'b'}))
    shown = net.inspect({'c' * 64: {'Name': 'web'}})
    assert shown['IPAM']['Config'] == [{'Subnet': '10.9.2.0/24', 'Gateway': '10.9.2.1', 'IPRange': '10.9.2.128/25'}]
    assert (shown['Name'], shown['Driver'], shown['Internal'], shown['Labels']) == ('app', 'bridge', False, {'a': 'b'})
    assert shown['Options'][networks.OPT_BRIDGE] == 'br-' + net.id[:12]
    assert shown['Containers'] == {'c' * 64: {'Name': 'web'}}
    assert store.find(net.id[:12]).name == 'app' and store.find(net.id[:12], ids=False) is None


def test_store_tag_names_other_stores_apart(tmp_path):
    assert networks.store_tag(networks.DEFAULT_ROOT) == ''
    assert networks.default_bridge(networks.DEFAULT_ROOT) == 'ctr0'
    tag = networks.store_tag(str(tmp_path))
    assert len(tag) == 8 and networks.default_bridge(str(tmp_path)) == 'ctr0-' + tag
    assert nft.table_name(tag) == 'daemonless_ctr_' + tag


def test_mac_address_is_dockers():
    assert networks.mac_address('172.17.0.2') == '02:42:ac:11:00:02'


# -- resolv.conf and hosts ------------------------------------------------------------------------------

@pytest.mark.parametrize('host, upstream, kwargs, expected', [
    ('nameserver 10.1.2.3\nnameserver 127.0.0.1\nsearch example.org\n', '', {},
     'search example.org\nnameserver 10.1.2.3\n'),
    ('nameserver 127.0.0.53\noptions edns0\n', 'nameserver 192.0.2.53\n', {}, 'options edns0\nnameserver 192.0.2.53\n'),
    ('nameserver 127.0.0.53\n', 'nameserver 127.0.0.1\n', {'gateway': '172.17.0.1'}, 'nameserver 172.17.0.1\n'),
    ('nameserver 127.0.0.53\n', '', {}, ''),
    ('nameserver ::1\nnameserver 2001:db8::1\n', '', {}, 'nameserver 2001:db8::1\n'),
    ('nameserver 10.1.2.3\nsearch a.example\noptions ndots:1\n', '',
     {'servers': ['9.9.9.9'], 'search': ['b.example'], 'options': ['ndots:2']},
     'search b.example\noptions ndots:2\nnameserver 9.9.9.9\n'),
])
def test_resolv_conf(host, upstream, kwargs, expected):
    assert dns.resolv_conf(host, upstream_text=upstream, **kwargs) == expected


def test_host_resolver_is_the_first_ipv4_loopback_nameserver():
    assert dns.host_resolver('nameserver ::1\nnameserver 127.0.0.53\n') == '127.0.0.53'
    assert dns.host_resolver('nameserver 10.0.0.1\n') is None


def test_hosts_file_lists_self_extras_and_peers():
    text = dns.hosts_file('abc123', '172.18.0.2', ['web', 'web.internal', 'abc123'], [('db.local', '10.0.0.9')],
                          [('172.18.0.3', ['api', 'api.internal', 'def456'])])
    lines = text.splitlines()
    assert lines[0] == '127.0.0.1\tlocalhost'
    assert '172.18.0.2\tabc123 web web.internal' in lines
    assert lines[-2:] == ['10.0.0.9\tdb.local', '172.18.0.3\tapi api.internal def456']
    assert '127.0.1.1\thost1' in dns.hosts_file('host1')


# -- the nftables script --------------------------------------------------------------------------------

def test_ruleset_replaces_our_table_whole():
    script = nft.ruleset([nft.BridgeRules('ctr0', '172.17.0.0/16', '172.17.0.1', resolver='127.0.0.53'),
                          nft.BridgeRules('br-x', '172.18.0.0/16', '172.18.0.1', internal=True, resolver='127.0.0.53')],
                         [nft.Forward('', 4000, 'tcp', '172.17.0.2', 80),
                          nft.Forward('127.0.0.1', 5353, 'udp', '172.17.0.3', 53)], table='daemonless_ctr_x')
    assert script.startswith('table ip daemonless_ctr_x\ndelete table ip daemonless_ctr_x\ntable ip daemonless_ctr_x {')
    assert 'tcp dport 4000 dnat to 172.17.0.2:80' in script
    assert 'ip daddr 127.0.0.1 udp dport 5353 dnat to 172.17.0.3:53' in script
    assert 'ip saddr 172.17.0.0/16 oifname != "ctr0" masquerade' in script
    assert 'ip saddr 172.18.0.0/16 oifname != "br-x" masquerade' not in script     # internal: no way out
    assert 'iifname "br-x" oifname != "br-x" drop' in script
    assert 'iifname "ctr0" ip daddr 172.17.0.1 udp dport 53 dnat to 127.0.0.53:53' in script
    assert 'iifname != "lo" ip daddr 127.0.0.0/8 drop' in script
    assert 'oifname "ctr0" iifname != "ctr0" ct status dnat accept' in script
    assert 'oifname "ctr0" iifname != "ctr0" drop' in script
    assert 'iifname "br-x" ip daddr' not in script
    assert 'ip saddr 127.0.0.0/8 oifname "ctr0" masquerade' in script
    assert nft.ruleset([], []) == 'table ip daemonless_ctr\ndelete table ip daemonless_ctr\n'


# -- container options ------------------------------------------------------------------------------

def test_options_default_to_the_default_bridge(tmp_path):
    host_config, networking = options.plan(str(tmp_path))
    assert host_config == {'NetworkMode': 'bridge', 'PortBindings': {}, 'Dns': [], 'DnsSearch': [],
                           'DnsOptions': [], 'ExtraHosts': []}
    assert networking == {}
    assert options.plan(str(tmp_path), 'bridge', [{'name': 'ctr'}]) == (host_config, {})


def test_options_with_networks_dns_and_hosts(tmp_path):
    store = NetworkStore(str(tmp_path))
    store.create(store.plan('app', subnet='10.9.3.0/24'))
    host_config, networking = options.plan(
        str(tmp_path), 'bridge', [{'name': 'app', 'ipv4_address': '10.9.3.9', 'aliases': ['api']}, 'ctr'],
        ['8080:80'], ['9.9.9.9'], ['example.org'], ['ndots:2'], {'db': '10.0.0.5'})
    assert host_config['NetworkMode'] == 'app'
    assert host_config['PortBindings'] == {'80/tcp': [{'HostIp': '', 'HostPort': '8080'}]}
    assert (host_config['Dns'], host_config['DnsSearch'], host_config['DnsOptions']) == (
        ['9.9.9.9'], ['example.org'], ['ndots:2'])
    assert host_config['ExtraHosts'] == ['db:10.0.0.5']
    assert networking == {'EndpointsConfig': {'app': {'IPAMConfig': {'IPv4Address': '10.9.3.9'}, 'Aliases': ['api']},
                                              'ctr': {'IPAMConfig': None, 'Aliases': []}},
                          'Order': ['app', 'ctr']}
    # a network's name as network_mode is the same as listing it first
    assert options.plan(str(tmp_path), 'app')[1] == {'EndpointsConfig': {'app': {'IPAMConfig': None, 'Aliases': []}},
                                                     'Order': ['app']}


@pytest.mark.parametrize('args, error, fragment', [
    (('host', ['app']), InvalidArgument, 'networks need network_mode bridge'),
    (('none', None, ['80']), InvalidArgument, 'published_ports need a bridge network'),
    (('bridge', [{'name': 'nowhere'}]), NotFound, 'network "nowhere" does not exist'),
    (('bridge', [{'name': 'app', 'ipv4_address': '10.1.1.1'}]), InvalidArgument, 'is not in network app'),
    (('bridge', [{'name': 'app', 'mac': 'x'}]), InvalidArgument, 'unknown key(s) mac'),
    (('bridge', ['app', 'app']), InvalidArgument, 'listed twice'),
    (('bridge', None, None, ['not-an-ip']), InvalidArgument, 'dns_servers "not-an-ip"'),
    (('bridge', None, None, None, None, None, {'bad host': '10.0.0.1'}), InvalidArgument, 'etc_hosts'),
    (('bridge', None, None, None, None, None, {'db': 'x'}), InvalidArgument, 'etc_hosts "x"'),
    (('container:ghost',), NotFound, 'container "ghost" does not exist'),
    (('bad name',), InvalidArgument, 'network name'),
])
def test_options_refuse(tmp_path, args, error, fragment):
    store = NetworkStore(str(tmp_path))
    store.create(store.plan('app', subnet='10.9.4.0/24'))
    with pytest.raises(error) as err:
        options.plan(str(tmp_path), *args, find_container=lambda name: None)
    assert fragment in err.value.msg


def test_is_bridge():
    assert options.is_bridge('bridge') and options.is_bridge('app')
    assert not options.is_bridge('host') and not options.is_bridge('none') and not options.is_bridge('container:x')


def test_network_records_survive_a_round_trip(tmp_path):
    net = Network('app', 'f' * 64, '10.9.5.0/24', '10.9.5.1', '10.9.5.0/25', True, {'k': 'v'},
                  {networks.OPT_MTU: '1400'}, allocations={'10.9.5.2': 'a' * 64})
    again = Network.from_json(json.loads(json.dumps(net.to_json())), 'x')
    assert again.settings() == net.settings() and again.allocations == net.allocations and again.mtu == 1400


def test_concurrent_allocations_never_hand_out_an_address_twice(tmp_path):
    """Eight processes, ten addresses each, one network: eighty different addresses."""
    store = NetworkStore(str(tmp_path))
    store.create(store.plan('busy', subnet='10.9.6.0/24'))
    pids = []
    for worker in range(8):
        pid = os.fork()
        if pid == 0:
            try:
                mine = NetworkStore(str(tmp_path))
                for n in range(10):
                    with mine.lock():
                        mine.allocate('busy', '%02d%02d' % (worker, n) + 'f' * 60)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    allocations = store.get('busy').allocations
    assert len(allocations) == 80 and len(set(allocations.values())) == 80

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr_network and ctr_network_info as Ansible runs them, and ctr_container's network options: create,
repeat (not changed), change (changed), bad values (one sentence, nothing changed), check and diff."""

from __future__ import annotations

import os
import socket

import pytest

from ctr.network.networks import NetworkStore
from ctr.runtime.lifecycle import Runtime


@pytest.fixture
def net(run_module, store_root):
    def call(check=False, diff=False, module='ctr_network', **args):
        full = {'root': str(store_root), 'name': 'app'}
        full.update(args)
        return run_module(module, full, check=check, diff=diff)
    return call


@pytest.fixture
def ctr(run_module, store_root, busybox_rootfs):
    Runtime(str(store_root)).images.import_rootfs(str(busybox_rootfs), 'busybox', changes=['CMD ["sh"]'])

    def call(check=False, diff=False, **args):
        full = {'root': str(store_root), 'name': 'web', 'image': 'busybox', 'command': ['sleep', '300']}
        full.update(args)
        return run_module('ctr_container', full, check=check, diff=diff)
    try:
        yield call
    finally:
        rt = Runtime(str(store_root))
        for c in rt.list():
            rt.remove(c.Id, force=True)


def assert_failed(result, *fragments):
    assert result.get('failed'), result
    assert '\n' not in result['msg'] and 'Traceback' not in result['msg'], result['msg']
    for fragment in fragments:
        assert fragment in result['msg'], result['msg']


# -- ctr_network ----------------------------------------------------------------------------------------

def test_create_repeat_and_info(net, store_root):
    checked = net(check=True, subnet='172.29.90.0/24')
    assert checked['changed'] and checked['actions'] == ['created app'] and checked['network'] == {}
    assert NetworkStore(str(store_root)).find('app') is None
    first = net(subnet='172.29.90.0/24', labels={'tier': 'front'}, diff=True)
    assert first['changed'] and first['diff']['before'] == {}
    shown = first['network']
    assert shown['Name'] == 'app' and len(shown['Id']) == 64 and shown['Driver'] == 'bridge'
    assert shown['IPAM']['Config'] == [{'Subnet': '172.29.90.0/24', 'Gateway': '172.29.90.1'}]
    assert shown['Labels'] == {'tier': 'front'} and shown['Internal'] is False and shown['Containers'] == {}
    again = net(subnet='172.29.90.0/24', labels={'tier': 'front'})
    assert not again['changed'] and again['network']['Id'] == shown['Id']
    info = net(module='ctr_network_info')
    assert info['exists'] and info['network']['Id'] == shown['Id']
    listed = net(module='ctr_network_info', name=None)
    assert [n['Name'] for n in listed['networks']] == ['app']
    assert not net(module='ctr_network_info', name='nowhere')['exists']


def test_an_omitted_subnet_is_picked_once_and_never_a_difference(net):
    first = net()
    subnet = first['network']['IPAM']['Config'][0]['Subnet']
    assert first['changed'] and (subnet.endswith('/16') or subnet.endswith('/20'))
    again = net()
    assert not again['changed'] and again['network']['IPAM']['Config'][0]['Subnet'] == subnet


@pytest.mark.parametrize('change', [{'subnet': '172.29.91.0/24'}, {'internal': True}, {'labels': {'a': 'b'}},
                                    {'options': {'mtu': 1400}}, {'ip_range': '172.29.90.128/25'},
                                    {'gateway': '172.29.90.254'}])
def test_a_change_recreates_the_network(net, change):
    first = net(subnet='172.29.90.0/24')
    args = dict({'subnet': '172.29.90.0/24'}, **change)
    checked = net(check=True, diff=True, **args)
    assert checked['changed'] and checked['actions'][0].startswith('recreated app')
    changed = net(diff=True, **args)
    assert changed['changed'] and changed['network']['Id'] != first['network']['Id']
    assert changed['diff']['before'] != changed['diff']['after']
    assert not net(**args)['changed']


@pytest.mark.parametrize('args, fragment', [
    ({'subnet': '172.29.90.0/33'}, 'subnet'),
    ({'subnet': '172.29.90.0/24', 'gateway': '10.0.0.1'}, 'gateway'),
    ({'name': 'bad name'}, 'network name'),
    ({'name': 'host'}, 'reserved'),
    ({'options': {'colour': 'blue'}}, 'unknown option'),
])
def test_bad_values_fail_and_change_nothing(net, store_root, args, fragment):
    assert_failed(net(**args), fragment)
    assert NetworkStore(str(store_root)).list() == []


def test_in_use_a_change_or_removal_needs_force(net, ctr, store_root):
    net(subnet='172.29.92.0/24')
    started = ctr(networks=[{'name': 'app'}])
    assert started['container']['NetworkSettings']['Networks']['app']['IPAddress'] == '172.29.92.2'
    info = net(module='ctr_network_info')
    assert list(info['network']['Containers']) == [started['container']['Id']]
    assert info['network']['Containers'][started['container']['Id']]['IPv4Address'] == '172.29.92.2/24'
    assert_failed(net(subnet='172.29.93.0/24'), 'network app would change (gateway, subnet)',
                  started['container']['Id'][:12], 'force')
    assert_failed(net(state='absent'), 'in use', 'force')
    assert NetworkStore(str(store_root)).get('app').allocations
    gone = net(state='absent', force=True)
    assert gone['changed'] and gone['network'] == {}
    assert NetworkStore(str(store_root)).find('app') is None
    assert not net(state='absent')['changed']


# -- ctr_container's network options --------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_published_ports_create_repeat_change_bad(ctr, store_root):
    port = _free_port()
    first = ctr(published_ports=['127.0.0.1:%d:80' % port])
    assert first['changed']
    assert first['container']['NetworkSettings']['Ports'] == {'80/tcp': [{'HostIp': '127.0.0.1',
                                                                          'HostPort': str(port)}]}
    assert not ctr(published_ports=['127.0.0.1:%d:80' % port])['changed']
    changed = ctr(published_ports=['127.0.0.1:%d:81' % port])
    assert changed['changed'] and 'PortBindings' in changed['actions'][0]
    before = Runtime(str(store_root)).get('web').Id
    assert_failed(ctr(published_ports=['http']), 'published_ports "http"')
    assert Runtime(str(store_root)).get('web').Id == before


def test_networks_create_repeat_change_bad(ctr, net, store_root):
    net(subnet='172.29.94.0/24')
    first = ctr(networks=[{'name': 'app', 'ipv4_address': '172.29.94.10', 'aliases': ['api']}])
    assert first['changed']
    endpoint = first['container']['NetworkSettings']['Networks']['app']
    assert endpoint['IPAddress'] == '172.29.94.10' and endpoint['Aliases'] == ['web', 'api']
    assert not ctr(networks=[{'name': 'app', 'ipv4_address': '172.29.94.10', 'aliases': ['api']}])['changed']
    changed = ctr(networks=[{'name': 'app', 'ipv4_address': '172.29.94.11', 'aliases': ['api']}])
    assert changed['changed'] and 'networks' in changed['actions'][0]
    assert changed['container']['NetworkSettings']['Networks']['app']['IPAddress'] == '172.29.94.11'
    keep = Runtime(str(store_root)).get('web').Id
    assert_failed(ctr(networks=[{'name': 'nowhere'}]), 'network "nowhere" does not exist')
    assert_failed(ctr(networks=[{'name': 'app', 'ipv4_address': '10.0.0.1'}]), 'is not in network app')
    assert Runtime(str(store_root)).get('web').Id == keep


@pytest.mark.parametrize('option, value, other, bad, fragment', [
    ('dns_servers', ['192.0.2.53'], ['192.0.2.54'], ['dns.example'], 'dns_servers'),
    ('dns_search_domains', ['example.org'], ['example.net'], ['two words'], 'dns_search_domains'),
    ('dns_options', ['ndots:2'], ['ndots:3'], ['a b'], 'dns_options'),
    ('etc_hosts', {'db': '10.0.0.5'}, {'db': '10.0.0.6'}, {'db': 'nowhere'}, 'etc_hosts'),
])
def test_dns_and_hosts_options_create_repeat_change_bad(ctr, store_root, option, value, other, bad, fragment):
    first = ctr(**{option: value})
    assert first['changed']
    pid = first['container']['State']['Pid']
    with open('/proc/%d/root/etc/resolv.conf' % pid) as f:
        resolv = f.read()
    with open('/proc/%d/root/etc/hosts' % pid) as f:
        hosts = f.read()
    shown = {'dns_servers': 'nameserver 192.0.2.53' in resolv, 'dns_search_domains': 'search example.org' in resolv,
             'dns_options': 'options ndots:2' in resolv, 'etc_hosts': '10.0.0.5\tdb' in hosts}
    assert shown[option], (resolv, hosts)
    assert not ctr(**{option: value})['changed']
    assert ctr(**{option: other})['changed']
    keep = Runtime(str(store_root)).get('web').Id
    assert_failed(ctr(**{option: bad}), fragment)
    assert Runtime(str(store_root)).get('web').Id == keep


def test_network_mode_changes_recreate(ctr, store_root):
    assert ctr()['container']['HostConfig']['NetworkMode'] == 'bridge'
    assert not ctr(network_mode='bridge')['changed']
    none = ctr(network_mode='none')
    assert none['changed'] and none['container']['NetworkSettings']['IPAddress'] == ''
    assert not os.path.exists(os.path.join(str(store_root), 'containers', none['container']['Id'], 'netns'))
    assert_failed(ctr(network_mode='container:ghost'), 'container "ghost" does not exist')

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python3 -m ctr network ...`` and ``volume ...``: the CLI's commands for networks and volumes."""

from __future__ import annotations

import json

from .cli_common import err as _err
from .cli_common import out as _out
from .cli_common import pairs as _pairs


def _args_network(s):
    verbs = s.add_subparsers(dest='verb', metavar='VERB')
    verbs.required = True
    v = verbs.add_parser('ls', help='list networks')
    v.set_defaults(func=_network)
    v = verbs.add_parser('create', help='create a bridge network')
    v.add_argument('--subnet')
    v.add_argument('--gateway')
    v.add_argument('--ip-range', dest='ip_range')
    v.add_argument('--internal', action='store_true')
    v.add_argument('-o', '--opt', action='append', default=[], metavar='KEY=VALUE')
    v.add_argument('--label', action='append', default=[], metavar='KEY=VALUE')
    v.add_argument('name', metavar='NETWORK')
    v.set_defaults(func=_network)
    for verb, text in (('rm', 'remove networks'), ('inspect', 'show networks in Docker\'s shape')):
        v = verbs.add_parser(verb, help=text)
        if verb == 'rm':
            v.add_argument('-f', '--force', action='store_true', help='disconnect the containers using it')
        v.add_argument('names', nargs='+', metavar='NETWORK')
        v.set_defaults(func=_network)


def _network(args):
    from .fsutil import resolve_root
    from .network import endpoints
    from .network.networks import NetworkStore
    root = resolve_root(args.root)
    store = NetworkStore(root)
    if args.verb == 'ls':
        rows = [('NETWORK ID', 'NAME', 'DRIVER', 'SUBNET')]
        rows += [(n.id[:12], n.name, n.driver, str(n.subnet)) for n in store.list()]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for row in rows:
            _out('   '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    elif args.verb == 'create':
        network = store.create(store.plan(args.name, args.subnet, args.gateway, args.ip_range, args.internal,
                                          _pairs(args.label, '--label'), _pairs(args.opt, '--opt')))
        _out(network.id)
    elif args.verb == 'rm':
        for name in args.names:
            _out(endpoints.remove_network(root, name, force=args.force).name)
    else:
        _out(json.dumps([store.get(n).inspect(endpoints.network_containers(root, store.get(n))) for n in args.names],
                        indent=4, sort_keys=True))
    return 0


def _args_volume(s):
    verbs = s.add_subparsers(dest='verb', metavar='VERB')
    verbs.required = True
    v = verbs.add_parser('ls', help='list volumes')
    v.set_defaults(func=_volume)
    v = verbs.add_parser('create', help='create a volume')
    v.add_argument('-o', '--opt', action='append', default=[], metavar='KEY=VALUE', help='type, o, device')
    v.add_argument('--label', action='append', default=[], metavar='KEY=VALUE')
    v.add_argument('name', metavar='VOLUME')
    v.set_defaults(func=_volume)
    for verb, text in (('rm', 'remove volumes'), ('inspect', 'show volumes in Docker\'s shape')):
        v = verbs.add_parser(verb, help=text)
        if verb == 'rm':
            v.add_argument('-f', '--force', action='store_true', help='even while containers use it')
        v.add_argument('names', nargs='+', metavar='VOLUME')
        v.set_defaults(func=_volume)


def _volume(args):
    from .runtime.containers import ContainerStore
    from .volumes import VolumeStore
    store = VolumeStore(args.root)
    if args.verb == 'ls':
        rows = [('DRIVER', 'VOLUME NAME')] + [(v.driver, v.name) for v in store.list()]
        for row in rows:
            _out('%-8s   %s' % row)
    elif args.verb == 'create':
        volume, _created = store.create(args.name, driver_options=_pairs(args.opt, '--opt'), labels=_pairs(args.label, '--label'))
        _out(volume.name)
    elif args.verb == 'rm':
        containers = ContainerStore(store.root).list()
        status = 0
        for name in args.names:
            if store.remove(name, containers, force=args.force):
                _out(name)
            else:
                _err('ctr: error: no such volume: %s' % name)
                status = 1
        return status
    else:
        _out(json.dumps([store.inspect(store.get(n)) for n in args.names], indent=4, sort_keys=True))
    return 0

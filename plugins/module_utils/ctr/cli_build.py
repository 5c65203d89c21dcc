# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python3 -m ctr build | commit | history | builder prune``: making images, at a shell."""

from __future__ import annotations

import os
import sys

from .cli_common import human as _human
from .cli_common import out as _out
from .cli_common import pairs as _pairs


def _args_build(s):
    s.add_argument('-t', '--tag', action='append', default=[], metavar='NAME', help='name the image (repeatable)')
    s.add_argument('-f', '--file', metavar='DOCKERFILE', help='default: PATH/Dockerfile')
    s.add_argument('--build-arg', action='append', default=[], dest='build_arg', metavar='KEY=VALUE')
    s.add_argument('--target', default='', metavar='STAGE')
    s.add_argument('--no-cache', action='store_true', dest='no_cache')
    s.add_argument('--network', default='host', choices=['host', 'none', 'bridge'], help='for RUN (default host)')
    s.add_argument('--label', action='append', default=[], metavar='KEY=VALUE')
    s.add_argument('-q', '--quiet', action='store_true', help='print only the image ID')
    s.add_argument('path', metavar='PATH', help='the build context')
    s.set_defaults(func=_build)


def _build(args):
    from .build import Builder, BuildOptions
    from .refs import Reference
    names = [str(Reference.parse(t)) for t in args.tag]
    dockerfile = os.path.abspath(args.file) if args.file else None     # -f is relative to here, as in docker build
    options = BuildOptions(path=args.path, dockerfile=dockerfile, args=_pairs(args.build_arg, '--build-arg', environ=True, unset=None),
                           target=args.target, nocache=args.no_cache, network=args.network,
                           labels=_pairs(args.label, '--label'))

    def emit(line):
        sys.stdout.write(line + '\n')
        sys.stdout.flush()
    result = Builder(args.root, options, emit=None if args.quiet else emit).build(names)   # runtime: on a RUN
    if args.quiet:
        _out(result.image.id)
    return 0


def _args_commit(s):
    s.add_argument('-c', '--change', action='append', default=[], help='apply a Dockerfile instruction')
    s.add_argument('-m', '--message', help='history comment')
    s.add_argument('-a', '--author')
    s.add_argument('-p', '--pause', default='true', choices=['true', 'false'],
                   help='freeze the container while its changes are read (default true)')
    s.add_argument('container', metavar='CONTAINER')
    s.add_argument('name', nargs='?', metavar='NAME')
    s.set_defaults(func=_commit)


def _commit(args):
    from .refs import Reference
    from .runtime import commit
    from .runtime.lifecycle import Runtime
    name = str(Reference.parse(args.name)) if args.name else None
    outcome = commit.commit(Runtime(args.root), args.container, name, changes=args.change,
                            pause=args.pause == 'true', message=args.message, author=args.author)
    image = outcome.image
    _out(image.id if image is not None else '')
    return 0


def _args_history(s):
    s.add_argument('--no-trunc', action='store_true', dest='no_trunc')
    s.add_argument('-q', '--quiet', action='store_true', help='only the IDs')
    s.add_argument('image', metavar='IMAGE')
    s.set_defaults(func=_history)


def _history(args):
    from .images import ImageStore
    images = ImageStore(args.root)
    image = images.get(args.image)
    rows = history_rows(image, images.store)
    if args.quiet:
        for row in rows:
            _out(row[0] if args.no_trunc else row[0][:19].replace('sha256:', '')[:12] if row[0] != '<missing>'
                 else row[0])
        return 0
    table = [('IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT')]
    for image_id, created, created_by, size, comment in rows:
        shown_id = image_id if args.no_trunc or image_id == '<missing>' else image_id[7:19]
        text = created_by if args.no_trunc or len(created_by) <= 45 else created_by[:44] + '…'
        table.append((shown_id, created, text.replace('\n', ' '), _human(size), comment))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for row in table:
        _out('   '.join([c.ljust(w) for c, w in zip(row[:4], widths)] + [row[4]]).rstrip())
    return 0


def history_rows(image, store):
    """``(image id or <missing>, created, created_by, size, comment)``, newest first, as ``docker history``."""
    diff_ids = list(image.diff_ids)
    layers = list(image.layers)
    sizes = []
    for desc, diff_id in zip(layers, diff_ids):
        counted = store.diff_size(diff_id)
        sizes.append(counted if counted is not None else desc.size)
    rows, layer = [], 0
    for entry in image.config.get('history') or []:
        size = 0
        if not entry.get('empty_layer'):
            size = sizes[layer] if layer < len(sizes) else 0
            layer += 1
        rows.append(['<missing>', entry.get('created', ''), entry.get('created_by', ''), size,
                     entry.get('comment', '')])
    rows.reverse()
    if rows:
        rows[0][0] = image.id
    return [tuple(r) for r in rows]


def _args_builder(s):
    verbs = s.add_subparsers(dest='verb', metavar='VERB')
    verbs.required = True
    v = verbs.add_parser('prune', help='forget every cached build step (gc then frees their layers)')
    v.set_defaults(func=_builder)


def _builder(args):
    from . import buildcache
    from .fsutil import resolve_root
    from .store import Store
    root = resolve_root(args.root)
    count = buildcache.prune(root)
    report = Store(root).gc()
    _out('forgot %d cached steps; freed %d blobs (%s)' % (count, len(report.blobs), _human(report.bytes)))
    return 0


ARGUMENTS = {'build': _args_build, 'commit': _args_commit, 'history': _args_history, 'builder': _args_builder}

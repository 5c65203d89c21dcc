# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each Dockerfile instruction does in a build (the builder's loop is in :mod:`.build`).

Each handler substitutes variables where Docker does, decides the step's
history text (Docker's classic ``/bin/sh -c #(nop) ...`` forms, which also
make the cache key) and hands :meth:`Builder.step` an action that changes the
image config and, for WORKDIR, COPY, ADD and RUN, returns the new layer.
"""

from __future__ import annotations

import functools
import json
import os
import posixpath
import re
import time

from . import dockerfile
from .dockerfile import DEFAULT_SHELL, Instruction
from .errors import CtrError, InvalidArgument
from .regex import lazy
from .store import sha256

NOP = '/bin/sh -c #(nop) '
LAYER_COMPRESSION = 'gzip'
_HEREDOC = lazy(r'^<<(-?)(["\']?)([A-Za-z0-9_.-]+)\2$')


def run(builder, state, cmd):
    handler = _HANDLERS.get(cmd.keyword)
    if handler is None:
        raise InvalidArgument('%s is not supported inside a stage' % cmd.keyword)
    scratch = []
    builder.downloads = []
    try:
        builder._wrap(cmd, handler, builder, state, cmd, scratch)
    finally:
        for area in scratch + builder.downloads:
            area.close()


def _env(b, state):
    return b.expand_env(state)


def _word(b, state, text):
    from . import dockerfile_parse as dp
    return dp.expand_word(text, _env(b, state), b.dockerfile.escape)


def _words(b, state, text):
    from . import dockerfile_parse as dp
    return dp.expand_words(text, _env(b, state), b.dockerfile.escape)


def _no_layer(state, config):
    return None


def _unsupported_flags(cmd, allowed):
    for name, dummy in cmd.flags:
        if name not in allowed:
            raise InvalidArgument('the --%s flag of %s is not supported by this builder' % (name, cmd.keyword))


# -- metadata ------------------------------------------------------------------------------------

def _arg(b, state, cmd, scratch):
    from . import dockerfile_parse as dp
    pairs = dp.parse_arg(cmd.args, b.dockerfile.escape)
    for name, default in pairs:
        state.args[name] = b.arg_value(cmd, name, default, b.expand_env(state))
    text = ' '.join(n if d is None else '%s=%s' % (n, d) for n, d in pairs)
    b.step(state, cmd, NOP + ' ARG ' + text, None, _no_layer)


def _env_instruction(b, state, cmd, scratch):
    from . import dockerfile_parse as dp
    pairs = dp.expand_pairs(cmd.args, _env(b, state), b.dockerfile.escape, cmd.keyword)

    def action(st, config):
        body = config['config']
        if cmd.keyword == 'ENV':
            body['Env'] = dockerfile.set_env(body.get('Env'), pairs)
        else:
            labels = dict(body.get('Labels') or {})
            labels.update(pairs)
            body['Labels'] = labels
    text = ' '.join('%s=%s' % (k, v) for k, v in pairs)
    b.step(state, cmd, NOP + ' %s %s' % (cmd.keyword, text), None, action)


def _expose(b, state, cmd, scratch):
    written = _words(b, state, cmd.args)
    ports = dockerfile.parse_ports(Instruction('EXPOSE', ' '.join(written), cmd.original))

    def action(st, config):
        exposed = dict(config['config'].get('ExposedPorts') or {})
        exposed.update((p, {}) for p in ports)
        config['config']['ExposedPorts'] = exposed
    b.step(state, cmd, NOP + ' EXPOSE %s' % ' '.join(written), None, action)


def _volume(b, state, cmd, scratch):
    if cmd.json_args is not None:
        paths = [_word(b, state, p) for p in cmd.json_args]
    else:           # BuildKit: split on whitespace first, then substitute in each word
        paths = [_word(b, state, w) for w in cmd.args.split()]
    if not paths or any(not p.strip() for p in paths):
        raise InvalidArgument('VOLUME needs at least one non-empty path')

    def action(st, config):
        volumes = dict(config['config'].get('Volumes') or {})
        volumes.update((p, {}) for p in paths)
        config['config']['Volumes'] = volumes
    b.step(state, cmd, NOP + ' VOLUME [%s]' % ' '.join(paths), None, action)


def _simple(b, state, cmd, scratch):
    """USER, STOPSIGNAL, SHELL, ONBUILD, MAINTAINER, CMD, ENTRYPOINT."""
    key = cmd.keyword
    if key in ('USER', 'STOPSIGNAL'):
        value = _word(b, state, cmd.args)
        if key == 'USER' and (not value or len(value.split()) != 1):
            raise InvalidArgument('USER needs exactly one user[:group], not "%s"' % value)
        if key == 'STOPSIGNAL':
            value = dockerfile.validate_signal(value, 'STOPSIGNAL')
        field_name = 'User' if key == 'USER' else 'StopSignal'
        shown = value
    elif key == 'SHELL':
        if not cmd.json_args:
            raise InvalidArgument('SHELL must be written in JSON form, for example SHELL ["/bin/bash", "-c"]')
        field_name, value, shown = 'Shell', list(cmd.json_args), '[%s]' % ' '.join(cmd.json_args)
    elif key == 'ONBUILD':
        field_name, value, shown = 'OnBuild', cmd.args, cmd.args
    elif key == 'MAINTAINER':
        field_name, value, shown = None, cmd.args, cmd.args
    else:           # CMD, ENTRYPOINT: no substitution (Docker leaves it to the shell)
        argv = cmd.json_args if cmd.json_args is not None else list(state.body.get('Shell') or DEFAULT_SHELL) + [cmd.args]
        field_name, value, shown = ('Cmd' if key == 'CMD' else 'Entrypoint'), argv, go_quoted(argv)
    reset_cmd = key == 'ENTRYPOINT' and not state.cmd_set
    if key == 'CMD':
        state.cmd_set = True

    def action(st, config):
        body = config['config']
        if field_name is None:
            config['author'] = value
        elif field_name == 'OnBuild':
            body['OnBuild'] = list(body.get('OnBuild') or []) + [value]
        else:
            body[field_name] = value
        if reset_cmd:       # Docker: an ENTRYPOINT drops the CMD inherited from the base image
            body['Cmd'] = None
    b.step(state, cmd, NOP + ' %s %s' % (key, shown), None, action)


def go_quoted(argv):
    """A list as Go's ``%q`` prints it, the form ``docker history`` shows: ``["sh" "-c" "echo hi"]``."""
    return '[%s]' % ' '.join(json.dumps(a, ensure_ascii=False) for a in argv)


def _healthcheck(b, state, cmd, scratch):
    args = cmd.args.strip()
    if args.upper() == 'NONE':
        check = {'Test': ['NONE']}
    else:
        word, rest = (args.split(None, 1) + [''])[:2]
        if word.upper() != 'CMD' or not rest.strip():
            raise InvalidArgument('HEALTHCHECK must be NONE or [options] CMD command')
        rest = rest.strip()
        argv = cmd.json_args
        if argv is None and rest.startswith('['):
            try:
                argv = json.loads(rest)
            except ValueError:
                argv = None
        check = {'Test': ['CMD'] + argv if isinstance(argv, list) else ['CMD-SHELL', rest]}
        for flag, key in (('interval', 'Interval'), ('timeout', 'Timeout'), ('start-period', 'StartPeriod'),
                          ('start-interval', 'StartInterval')):
            if cmd.flag(flag) is not None:
                check[key] = _duration(cmd.flag(flag), flag)
        if cmd.flag('retries') is not None:
            try:
                check['Retries'] = int(cmd.flag('retries'))
            except ValueError:
                raise InvalidArgument('HEALTHCHECK --retries "%s" is not a whole number' % cmd.flag('retries'))
            if check['Retries'] < 0:
                raise InvalidArgument('HEALTHCHECK --retries must not be negative')

    def action(st, config):
        config['config']['Healthcheck'] = check
    b.step(state, cmd, NOP + ' HEALTHCHECK %s' % json.dumps(check, sort_keys=True), None, action)


def _duration(text, flag):
    from . import dockerfile_parse as dp
    try:
        return dp.parse_duration(text)
    except InvalidArgument:
        raise InvalidArgument('HEALTHCHECK --%s "%s" is not a duration such as 30s or 1m30s' % (flag, text)) from None


# -- filesystem steps ----------------------------------------------------------------------------

def _workdir(b, state, cmd, scratch):
    path = _word(b, state, cmd.args)
    if not path:
        raise InvalidArgument('WORKDIR needs a path')
    path = posixpath.normpath(posixpath.join(state.body.get('WorkingDir') or '/', path))

    def action(st, config):
        from . import buildfs
        config['config']['WorkingDir'] = path
        area = _scratch(b, st, scratch)
        buildfs.apply(area, [buildfs.MakeDir(path)])
        return pack(b, st, area.path('upper'), adopt=True)
    b.step(state, cmd, NOP + 'WORKDIR %s' % path, None, action)


def _copy(b, state, cmd, scratch):
    add = cmd.keyword == 'ADD'
    _unsupported_flags(cmd, ('chown', 'chmod', 'link', 'checksum') if add else ('chown', 'chmod', 'link', 'from'))
    words = [_word(b, state, w) for w in (cmd.json_args if cmd.json_args is not None else cmd.args.split())]
    if len(words) < 2:
        raise InvalidArgument('%s needs at least one source and a destination' % cmd.keyword)
    srcs, dest = words[:-1], words[-1]
    dest_is_dir = dest.endswith('/') or dest in ('.', '..') or dest.endswith(('/.', '/..'))
    dest_abs = posixpath.normpath(posixpath.join(state.body.get('WorkingDir') or '/', dest))   # as Docker cleans it
    if len(srcs) > 1 and not dest_is_dir:
        raise InvalidArgument('%s with more than one source needs a destination directory ending in "/", not "%s"'
                              % (cmd.keyword, dest))
    owner, chown_text = _owner(b, state, cmd)
    chmod_text = cmd.flag('chmod')
    chmod = _chmod(chmod_text)
    source_from = cmd.flag('from')
    view = None
    if source_from:
        source_from = _word(b, state, source_from)
        ref = b._stage_ref(source_from, state.index)
        if ref is not None:
            if ref not in b.stages:
                raise InvalidArgument('COPY --from="%s": that stage was not built before this one' % source_from)
            view = b.stages[ref]
            view_key = view.key
        else:
            image = b.images.find(source_from)
            if image is None:
                raise InvalidArgument('COPY --from="%s" names neither an earlier stage nor an image in the store'
                                      % source_from)
            view, view_key = image, image.id
        makers, patterns = [], tuple(srcs)
        extra = [view_key, srcs, chown_text, chmod_text]
        shown = '--from=%s %s' % (source_from, ' '.join(srcs))
    else:
        makers, kinds, parts = _context_sources(b, state, cmd, srcs, add)
        patterns = ()
        extra = [parts, chown_text, chmod_text]
        kind = 'multi' if len(kinds) != 1 else ('dir' if kinds[0] == 'dir' else 'file')
        shown = '%s:%s' % (kind, _short_hash(parts))

    def action(st, config):
        from . import buildfs
        view_layers = []
        if view is not None:
            view_layers = (b.layer_dirs(view) if hasattr(view, 'key')
                           else b.store.ensure_unpacked(view.layers, view.diff_ids))
        area = _scratch(b, st, scratch, view_layers)
        sources = tuple(source for make in makers for source in make(area))    # only now: a cache hit walks nothing
        copy_op = buildfs.Copy(sources=sources, view_patterns=patterns, dest=dest_abs, dest_is_dir=dest_is_dir,
                               owner=owner, chmod=chmod, what=cmd.keyword)
        buildfs.apply(area, [copy_op])
        return pack(b, st, area.path('upper'), adopt=True)
    b.step(state, cmd, NOP + '%s %s in %s ' % (cmd.keyword, shown, dest), extra, action)


def _context_sources(b, state, cmd, srcs, add):
    """COPY/ADD sources from the context, URLs and heredocs: (makers, kinds, what the cache key hashes).

    The key needs only the content hashes; a maker turns one source into buildfs.Sources when the
    step runs (given its scratch area), so a cache hit walks no directory and downloads no
    ``--checksum`` URL.
    """
    heredocs = {h.name: h for h in cmd.heredocs}
    makers, kinds, parts = [], [], []
    for src in srcs:
        m = _HEREDOC.match(src)
        if m and m.group(3) in heredocs:
            doc = heredocs[m.group(3)]
            text = _word(b, state, doc.content) if doc.expand and '$' in doc.content else doc.content
            data, name = text.encode('utf-8'), _leaf_name(m.group(3), src)
            makers.append(functools.partial(_data_source, name, data, _epoch_ns(b)))
            kinds.append('file')
            parts.append(['heredoc', m.group(3), sha256(data).hexdigest()])
        elif add and re.match(r'^https?://', src, re.IGNORECASE):
            want = cmd.flag('checksum')
            if want:
                if not re.match(r'^sha256:[0-9a-f]{64}$', want):
                    raise InvalidArgument('ADD --checksum "%s" is not sha256: and 64 hex digits' % want)
                makers.append(functools.partial(_url_source, b, cmd, src))     # fetched when the step runs
                parts.append(['url', src, want])
            else:
                b.stop_if_check()           # the content decides the key: only a download tells
                source, digest = _fetch_source(b, cmd, src, None, with_digest=True)
                makers.append(lambda area, source=source: [source])
                parts.append(['url', src, digest])
            kinds.append('file')
        elif add and re.match(r'^[a-z][a-z0-9+.-]*://', src, re.IGNORECASE) or src.startswith('git@'):
            raise InvalidArgument('ADD source "%s": only http and https URLs are supported' % src)
        else:
            tops = b.context.sources(src, cmd.keyword)
            for top in tops:
                if top.kind not in ('dir', 'file', 'symlink'):
                    raise InvalidArgument('%s source "%s" is not a file, directory or symlink' % (cmd.keyword, top.rel))
                kinds.append(top.kind)
            makers.append(functools.partial(_context_source, b, tops, add))
            # files from the context belong to root unless --chown says otherwise: the host's owners never count
            parts.append(['context', src, b.context.digest(tops, chown='0:0')])
    return makers, kinds, parts


def _data_source(name, data, mtime_ns, area):
    from . import buildfs
    return [buildfs.Source('', 'file', mode=0o644, name=name, mtime_ns=mtime_ns, data=data)]


def _url_source(b, cmd, url, area):
    return [_fetch_source(b, cmd, url, area)]


def _context_source(b, tops, add, area):
    from . import buildfs
    out = []
    for top in tops:
        if top.kind == 'dir':
            entries = tuple((_under(top.rel, e.rel), e.path) for e in b.context.walk(top)
                            if e.rel != top.rel and e.kind != 'other')
            out.append(buildfs.Source(top.path, 'dir', entries=entries))
        else:
            out.append(buildfs.Source(top.path, top.kind, extract=add and top.kind == 'file' and _is_archive(top.path),
                                      name=posixpath.basename(top.rel) if top.rel not in ('', '.') else ''))
    return out


def _leaf_name(name, shown):
    if name in ('', '.', '..') or '/' in name:
        raise InvalidArgument('"%s" cannot name a file' % shown)
    return name


def _fetch_source(b, cmd, url, area, with_digest=False):
    """Download ``url`` for ADD into a scratch area (made when ``area`` is None): a buildfs.Source."""
    from . import buildfs
    if area is None:
        area = buildfs.Scratch.create(b.store.root, [])
        b.downloads.append(area)
    path, digest, name, mtime_ns = _download(cmd, url, area)
    source = buildfs.Source(path, 'file', mode=0o600, name=_leaf_name(name, url), mtime_ns=mtime_ns)
    return (source, digest) if with_digest else source


def _is_archive(path):
    from . import buildfs
    return buildfs.is_archive(path)


def _under(top, rel):
    return rel[len(top) + 1:] if top not in ('', '.') else rel


def _short_hash(parts):
    return sha256(json.dumps(parts, sort_keys=True).encode('utf-8')).hexdigest()


def _epoch_ns(b):
    return int((b.epoch if b.epoch is not None else time.time()) * 1e9)


def _download(cmd, url, area):
    """ADD URL: fetched when the step needs it, checked against --checksum when given, and whole."""
    import email.utils
    import http.client
    path = os.path.join(area.path('files'), 'download-%d' % len(os.listdir(area.path('files'))))
    digest = sha256(bulk=True)
    got_bytes = 0
    try:
        with _http_get(url) as resp, open(path, 'wb') as f:
            expected = resp.getheader('Content-Length')
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                got_bytes += len(chunk)
                f.write(chunk)
            modified = resp.getheader('Last-Modified')
        if expected is not None and expected.isdigit() and int(expected) != got_bytes:
            raise ValueError('the download stopped after %d of %s bytes' % (got_bytes, expected))
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise InvalidArgument('ADD could not download %s: %s' % (url, exc))
    got = 'sha256:' + digest.hexdigest()
    want = cmd.flag('checksum')
    if want and want != got:
        raise InvalidArgument('ADD %s: the download has digest %s, not the --checksum %s' % (url, got, want))
    mtime_ns = None
    if modified:
        try:
            mtime_ns = int(email.utils.parsedate_to_datetime(modified).timestamp() * 1e9)
        except (TypeError, ValueError):
            mtime_ns = None
    name = posixpath.basename(url.split('?', 1)[0].rstrip('/')) or 'download'
    return path, got, name, mtime_ns


def _http_get(url, redirects=5):
    """A GET of an http(s) URL following up to ``redirects`` redirects; the response (a context manager)."""
    import http.client
    import urllib.parse
    for dummy in range(redirects + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ValueError('"%s" is not an http or https URL' % url)
        kind = http.client.HTTPSConnection if parts.scheme == 'https' else http.client.HTTPConnection
        conn = kind(parts.hostname, parts.port, timeout=60)
        conn.request('GET', urllib.parse.urlunsplit(('', '', parts.path or '/', parts.query, '')),
                     headers={'User-Agent': 'daemonless.ctr'})
        resp = conn.getresponse()
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader('Location'):
            url = urllib.parse.urljoin(url, resp.getheader('Location'))
            conn.close()
            continue
        if resp.status != 200:
            conn.close()
            raise ValueError('the server answered %d %s' % (resp.status, resp.reason))
        return resp
    raise ValueError('more than %d redirects' % redirects)


def _owner(b, state, cmd):
    """--chown: (uid, gid), names looked up in the stage's /etc/passwd and /etc/group."""
    text = cmd.flag('chown')
    if text is None:
        return None, None
    text = _word(b, state, text)
    user, dummy, group = text.partition(':')
    if not user:
        raise InvalidArgument('--chown "%s" names no user' % text)
    uid = _id_of(b, state, user, '/etc/passwd', 2, text)
    gid = _id_of(b, state, group, '/etc/group', 2, text) if group else uid
    return (uid, gid), text


def _id_of(b, state, name, table, column, shown):
    if name.isdigit():
        return int(name)
    from .runtime import security
    for layer in reversed(b.layer_dirs(state)):
        try:
            content = security.read_file_in_root(layer, table)
        except CtrError:
            content = None
        if content is None:
            continue
        for line in content.splitlines():
            fields = line.split(':')
            if len(fields) > column and fields[0] == name and fields[column].isdigit():
                return int(fields[column])
        break
    raise InvalidArgument('--chown "%s": %s has no entry for "%s"' % (shown, table, name))


def _chmod(text):
    if text is None:
        return None
    if not re.match(r'^[0-7]{3,4}$', text):
        raise InvalidArgument('--chmod "%s" is not an octal mode such as 755 or 0644' % text)
    return int(text, 8)


def _scratch(b, state, scratch, view_layers=()):
    from . import buildfs
    if not scratch:
        scratch.append(buildfs.Scratch.create(b.store.root, b.layer_dirs(state), view_layers))
    elif view_layers:
        scratch[0].view_lower = list(view_layers)
    return scratch[0]


def pack(b, state, upper, skip=None, adopt=False):
    """The layer of an upper dir: stored as a blob (overlay whiteouts as OCI ones, mtimes clamped to the
    build's epoch); with ``adopt`` the dir itself becomes the unpacked layer, sparing an extraction."""
    from . import layers
    from .store import chain_ids
    writer = b.store.new_blob()
    try:
        digests = layers.pack_tree(upper, writer, compression=LAYER_COMPRESSION, level=layers.FAST_LEVEL,
                                   mtime_clamp=b.epoch, overlay_whiteouts=True, skip=skip)
        writer.commit(digests.digest)
    except BaseException:
        writer.abort()
        raise
    b.store.record_diff_size(digests.diff_id, digests.diff_size)
    if adopt:
        final = b.store.layer_dir(chain_ids(state.diff_ids + [digests.diff_id])[-1])
        if not os.path.exists(final):
            try:
                os.rename(upper, final)
            except OSError:
                pass            # another build unpacked it meanwhile, or a different filesystem: unpack later
    return digests


# -- RUN -------------------------------------------------------------------------------------------

def _run(b, state, cmd, scratch):
    from . import buildrun
    _unsupported_flags(cmd, ('network',))
    network = cmd.flag('network') or 'default'
    if network not in ('default', 'none', 'host'):
        raise InvalidArgument('RUN --network "%s" is not one of default, none, host' % network)
    if network == 'host' and b.opts.network != 'host':       # a Dockerfile narrows the network, never widens it
        raise InvalidArgument('--network=host needs a build whose network is host, not %s' % b.opts.network)
    network = b.opts.network if network == 'default' else network
    argv = buildrun.argv(cmd, state.body.get('Shell') or DEFAULT_SHELL)
    args = [(k, v) for k, v in state.args.items() if v is not None]
    created_by = ' '.join(argv)
    if args:
        created_by = '|%d %s %s' % (len(args), ' '.join('%s=%s' % kv for kv in args), created_by)
    env_names = {e.partition('=')[0] for e in state.body.get('Env') or []}
    env = {k: v for k, v in args if k not in env_names}

    def action(st, config):
        return buildrun.run(b, st, cmd, argv, env, network)
    b.step(state, cmd, created_by, None, action)


_HANDLERS = {
    'ARG': _arg, 'ENV': _env_instruction, 'LABEL': _env_instruction, 'EXPOSE': _expose, 'VOLUME': _volume,
    'USER': _simple, 'STOPSIGNAL': _simple, 'SHELL': _simple, 'ONBUILD': _simple, 'MAINTAINER': _simple,
    'CMD': _simple, 'ENTRYPOINT': _simple, 'HEALTHCHECK': _healthcheck, 'WORKDIR': _workdir,
    'COPY': _copy, 'ADD': _copy, 'RUN': _run,
}

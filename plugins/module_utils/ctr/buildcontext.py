# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build context of ``docker build PATH``: its ignore file, COPY/ADD sources and their content hash.

Ignore rules are Docker's (moby/patternmatcher and its ignorefile reader, as BuildKit uses them):
a line starting with ``#`` is a comment, lines are trimmed, patterns are cleaned like Go's
``filepath.Clean`` and lose a leading ``/``; ``*`` and ``?`` stop at ``/``, ``[...]`` is a class
(negated by ``^``), ``\\`` escapes, ``**`` spans any number of directories (none included); a
pattern matching a directory excludes everything under it, and the last matching line decides.
An excluded directory is still walked when a ``!`` exception could match below it (fsutil's rule);
it then appears only as the parent of what the exception brings back.

The ignore file is ``<Dockerfile>.dockerignore`` beside the Dockerfile when it exists (BuildKit's
rule), else ``<context>/.dockerignore``.

Walks never follow symlinks: a symlink is an entry of kind ``symlink``; one whose target resolves
outside the context is refused. A COPY source that is itself a symlink is followed (Docker does),
inside the context only. Fifos, sockets and devices are entries of kind ``other``: COPY skips them.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
import time

from . import fsutil
from .errors import Conflict, InvalidArgument, KernelError, NotFound
from .records import record
from .regex import lazy
from .store import sha256

CHUNK = 1 << 20
RACY_NS = 2 * 10 ** 9          # a file changed this recently is hashed but not remembered in the cache
CACHE_MAX = 200000             # cache entries kept beyond the ones this context used
_TOKEN = lazy(r'\\.|([*?[])', re.DOTALL)
_KINDS = {stat.S_IFREG: 'file', stat.S_IFDIR: 'dir', stat.S_IFLNK: 'symlink'}


@record(frozen=True)
class Entry:
    """One thing in the context. ``rel`` is '/'-separated from the context root, seen through the COPY
    source as written (a followed source symlink keeps its own name); ``'.'`` only for the context root
    as a source. ``kind``: file, dir, symlink or other (fifo, socket, device: COPY skips those)."""
    rel: str
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    target: str
    path: str


def clean(path):
    """Go's ``filepath.Clean`` for '/'-separated paths (POSIX keeps a leading '//', Go does not)."""
    text = posixpath.normpath(path)
    return '/' + text.lstrip('/') if text.startswith('//') else text


def _char_class(p, i):
    """Go's ``[...]`` at ``p[i]`` -> (Python regex class, index after it); ValueError when malformed."""
    i += 1
    negate = i < len(p) and p[i] == '^'
    i += negate
    items = []
    while True:
        if i < len(p) and p[i] == ']' and items:
            return '[%s%s]' % ('^' if negate else '', ''.join(items)), i + 1
        lo, i = _class_char(p, i)
        hi = lo
        if i < len(p) and p[i] == '-':
            hi, i = _class_char(p, i + 1)
            if hi < lo:
                raise ValueError('the range %s-%s runs backwards' % (lo, hi))
        items.append(re.escape(lo) if lo == hi else '%s-%s' % (re.escape(lo), re.escape(hi)))


def _class_char(p, i):
    if i >= len(p):
        raise ValueError('"[" is never closed')
    if p[i] in '-]':
        raise ValueError('"%s" must be escaped inside [...]' % p[i])
    if p[i] == '\\':
        i += 1
        if i >= len(p):
            raise ValueError('"[" is never closed')
    return p[i], i + 1


def translate(p, docker=True):
    """A pattern -> (kind, value): kind 'exact'/'prefix'/'suffix' with a string, or 'regex' with a compiled
    regex. ``docker`` adds ``**`` (patternmatcher's rules); without it this is Go's ``filepath.Match``."""
    out, kind, i = [], 'exact', 0
    while i < len(p):
        c = p[i]
        if c == '*' and docker and p.startswith('**', i):
            first, i = i == 0, i + 2
            i += i < len(p) and p[i] == '/'          # '**/' is '**'
            at_end = i == len(p)
            out.append('.*' if at_end else '(?:.*/)?')
            kind = 'prefix' if at_end and kind == 'exact' else 'regex'
            kind = 'suffix' if first else kind       # patternmatcher's quirk: '**' then literal text
            continue
        if c == '[':
            cls, i = _char_class(p, i)
            out.append(cls)
        elif c == '\\':
            if i + 1 == len(p):
                raise ValueError('it ends with a lone "\\"')
            out.append(re.escape(p[i + 1]))
            i += 2
        else:
            out.append({'*': '[^/]*', '?': '[^/]'}.get(c) or re.escape(c))
            i += 1
            if c not in '*?]':
                continue
        kind = 'regex'
    if kind != 'regex':             # patternmatcher's shortcuts (``suffix`` is not quite the regex)
        return kind, {'exact': p, 'prefix': p[:-2], 'suffix': p[2:]}[kind]
    return kind, re.compile(''.join(out), re.DOTALL)


def has_wildcard(name):
    """Does a COPY source component hold an unescaped ``*``, ``?`` or ``[`` (fsutil's test)?"""
    return any(m.group(1) for m in _TOKEN.finditer(name))


class _Pattern:
    __slots__ = ('text', 'exception', 'kind', 'value', 'parts')

    def __init__(self, text, exception):
        self.text, self.exception = text, exception
        self.kind, self.value = translate(text)
        self.parts = []             # for may_include_under: a matcher a component, None from the first '**' on
        for comp in text.split('/') if exception else ():
            try:
                self.parts.append(None if '**' in comp else translate(comp, docker=False))
            except ValueError:      # a class holding '/': give up precision, not correctness
                self.parts.append(None)
            if self.parts[-1] is None:
                break

    def match(self, path):
        kind, value = self.kind, self.value
        if kind == 'exact':
            return path == value
        if kind == 'prefix':
            return path.startswith(value)
        if kind == 'suffix':
            return path.endswith(value) or (value[:1] == '/' and path == value[1:])
        return value.fullmatch(path) is not None


def _match_name(matcher, name):
    kind, value = matcher
    return name == value if kind == 'exact' else value.fullmatch(name) is not None


class IgnoreRules:
    """The parsed lines of an ignore file; ``patterns`` keeps their cleaned text (``!`` included)."""

    def __init__(self, patterns=()):
        self._patterns = tuple(patterns)
        self.patterns = [('!' if p.exception else '') + p.text for p in self._patterns]
        self._exceptions = [p for p in self._patterns if p.exception]

    @classmethod
    def parse(cls, text, what='.dockerignore'):
        if isinstance(text, bytes):
            text = text.decode('utf-8', 'surrogateescape')
        patterns = []
        for number, line in enumerate(text.split('\n'), 1):
            line = line.rstrip('\r')
            if number == 1:
                line = line.lstrip('\ufeff')
            if line.startswith('#'):
                continue
            p = line.strip()
            if not p:
                continue
            exception = p.startswith('!')
            if exception:
                p = p[1:].strip()
                if not p:
                    raise InvalidArgument('line %d of %s is a lone "!", which names nothing' % (number, what),
                                          path=what, line=number)
            p = clean(p)
            if len(p) > 1 and p.startswith('/'):
                p = p[1:]
            try:
                patterns.append(_Pattern(p, exception))
            except ValueError as exc:
                raise InvalidArgument('pattern "%s" on line %d of %s is malformed: %s' % (line.strip(), number, what, exc),
                                      path=what, line=number, value=line.strip())
        return cls(patterns)

    def vector(self, rel, parent=None):
        """Which patterns match ``rel`` or one of its parents, given the same for its parent directory."""
        if parent is None:
            return tuple(p.match(rel) for p in self._patterns)
        return tuple(hit or p.match(rel) for hit, p in zip(parent, self._patterns))

    def verdict(self, vector):
        for hit, pattern in zip(reversed(vector), reversed(self._patterns)):
            if hit:
                return not pattern.exception
        return False

    def chain(self, rel):
        """``vector`` of a clean relative path, its parents worked out on the way."""
        vec, sofar = None, ''
        for part in rel.split('/'):
            sofar = sofar + '/' + part if sofar else part
            vec = self.vector(sofar, vec)
        return vec

    def excluded(self, rel):
        rel = clean(rel.lstrip('/'))
        if rel == '.' or rel == '..' or rel.startswith('../') or not self._patterns:
            return False
        return self.verdict(self.chain(rel))

    def may_include_under(self, rel_dir):
        """Could a ``!`` exception match something strictly under ``rel_dir``?"""
        if not self._exceptions:
            return False
        rel_dir = clean(rel_dir.lstrip('/'))
        if rel_dir == '.':
            return True
        names = rel_dir.split('/')
        for p in self._exceptions:
            for k, name in enumerate(names + [None]):
                if k >= len(p.parts):
                    break
                if p.parts[k] is None or name is None:
                    return True
                if not _match_name(p.parts[k], name):
                    break
        return False


def read_ignore_file(path):
    """An ignore file's rules; NotFound when it does not exist."""
    return IgnoreRules.parse(_read(path, 'ignore file'), what=path)


def _read(path, what):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        raise NotFound('%s "%s" does not exist' % (what, path), path=path)
    except IsADirectoryError:
        raise InvalidArgument('%s "%s" is a directory, not a file' % (what, path), path=path)
    except OSError as exc:
        raise KernelError.from_oserror('read %s' % what, path, exc)
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise InvalidArgument('%s "%s" is not UTF-8 text (byte %d)' % (what, path, exc.start), path=path)


def _inside(path, root):
    return path == root or path.startswith(root.rstrip('/') + '/')


class _Frame:
    """A directory being walked: its paths, pattern vector, whether it is excluded and already yielded."""
    __slots__ = ('path', 'rel', 'shown', 'vec', 'excluded', 'item', 'emitted', 'names')

    def __init__(self, path, rel, shown, vec, excluded, item, emitted):
        self.path, self.rel, self.shown, self.vec = path, rel, shown, vec
        self.excluded, self.item, self.emitted = excluded, item, emitted
        self.names = _names(path, excluded)


def _names(path, excluded):
    try:
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        names = []                  # gone meanwhile, or a wildcard's base that is a file
    except PermissionError as exc:
        if not excluded:
            raise KernelError.from_oserror('read directory', path, exc)
        names = []                  # fsutil too skips an unreadable excluded directory
    except OSError as exc:
        raise KernelError.from_oserror('read directory', path, exc)
    return iter(sorted(names, key=os.fsencode))


class BuildContext:
    """A context directory, its Dockerfile and ignore rules. See the module docstring for the rules."""

    def __init__(self, path, dockerfile=None, hash_cache=None):
        given = os.path.abspath(path)
        if not os.path.lexists(given):
            raise NotFound('build context "%s" does not exist' % path, path=path)
        if not os.path.isdir(given):
            raise InvalidArgument('build context "%s" is not a directory' % path, path=path)
        self.root = os.path.realpath(given)
        name = dockerfile or 'Dockerfile'
        if os.path.isabs(name):
            self.dockerfile_path = name
        else:
            self.dockerfile_path = os.path.join(self.root, name)
            if dockerfile is None and not os.path.lexists(self.dockerfile_path) and \
                    os.path.lexists(os.path.join(self.root, 'dockerfile')):
                self.dockerfile_path = os.path.join(self.root, 'dockerfile')     # BuildKit's fallback
            self._refuse_outside(self.dockerfile_path, 'Dockerfile "%s"' % name)
        self.dockerfile_text = _read(self.dockerfile_path, 'Dockerfile')
        beside = os.path.join(self.root, name) if not os.path.isabs(name) else name
        self.ignore_path = beside + '.dockerignore'
        if not os.path.lexists(self.ignore_path):
            self.ignore_path = os.path.join(self.root, '.dockerignore')
            if not os.path.lexists(self.ignore_path):
                self.ignore_path = None
        if self.ignore_path and self.ignore_path.startswith(self.root + '/'):
            self._refuse_outside(self.ignore_path, 'ignore file "%s"' % self.ignore_path)
        self.rules = read_ignore_file(self.ignore_path) if self.ignore_path else IgnoreRules()
        self._ignore_name = os.path.basename(self.ignore_path or '.dockerignore')
        self.hash_cache = hash_cache
        self._cache, self._used, self._dirty = None, set(), False

    def _refuse_outside(self, path, what):
        real = os.path.realpath(path)
        if not _inside(real, self.root):
            raise InvalidArgument('%s resolves to "%s", outside the build context %s' % (what, real, self.root),
                                  path=path)

    def excluded(self, rel):
        return self.rules.excluded(rel)

    def _rel(self, path):
        return '' if path == self.root else path[len(self.root.rstrip('/')) + 1:]

    def _entry(self, rel, path, st):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), 'other')
        try:
            target = os.readlink(path) if kind == 'symlink' else ''
        except OSError as exc:
            raise KernelError.from_oserror('readlink', path, exc)
        return Entry(rel, kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                     st.st_size if kind == 'file' else 0, target, path)

    # ---- COPY/ADD sources -------------------------------------------------------------------

    def sources(self, pattern, what='COPY'):
        """A COPY/ADD source argument -> its matches as Entry tops (symlinks followed), in name order."""
        shown = '%s source "%s"' % (what, pattern)
        if not isinstance(pattern, str) or not pattern.strip():
            raise InvalidArgument('%s source is empty' % what, value=pattern)
        cleaned = clean(pattern.lstrip('/'))
        if cleaned == '.':
            return [self._entry('.', self.root, os.lstat(self.root))]
        parts = cleaned.split('/')
        if parts[0] == '..':
            raise InvalidArgument('%s is outside the build context' % shown, value=pattern)
        k = next((i for i, part in enumerate(parts) if has_wildcard(part)), len(parts))
        prefix = '/'.join(parts[:k])
        if k == len(parts):
            found = [(prefix, os.path.join(self.root, prefix))]
        else:
            base = os.path.realpath(os.path.join(self.root, prefix)) if prefix else self.root
            if not _inside(base, self.root):
                raise InvalidArgument('%s resolves to "%s", outside the build context' % (shown, base), value=pattern)
            try:
                matchers = [translate(part, docker=False) for part in parts[k:]]
            except ValueError as exc:
                raise InvalidArgument('%s is a malformed pattern: %s' % (shown, exc), value=pattern)
            found = self._glob(prefix, base, matchers)
        tops = [top for top in (self._follow(rel, path, shown, pattern) for rel, path in found) if top]
        if not tops:
            raise NotFound('%s is not in the build context (or is excluded by %s)' % (shown, self._ignore_name),
                           value=pattern)
        return tops

    def _glob(self, shown_prefix, base, matchers):
        level = [(shown_prefix, base)]
        for depth, matcher in enumerate(matchers):
            last, below = depth == len(matchers) - 1, []
            for shown, path in level:
                for name in _names(path, excluded=False):
                    if not _match_name(matcher, name):
                        continue
                    child, child_shown = os.path.join(path, name), (shown + '/' + name if shown else name)
                    if last:
                        below.append((child_shown, child))
                    elif os.path.isdir(child) and not os.path.islink(child):
                        rel = self._rel(child)
                        if not self.rules.excluded(rel) or self.rules.may_include_under(rel):
                            below.append((child_shown, child))
            level = below
        return level

    def _follow(self, rel, path, shown, pattern):
        """The top for one matched path: followed if a symlink, None when absent or excluded."""
        if not os.path.lexists(path):
            return None
        real, parent = os.path.realpath(path), os.path.realpath(os.path.dirname(path))
        for where in (real, parent):
            if not _inside(where, self.root):
                raise InvalidArgument('%s resolves to "%s", outside the build context' % (shown, where),
                                      value=pattern)
        if real != path and self.rules.excluded(self._rel(os.path.join(parent, os.path.basename(path)))):
            return None             # the symlink itself is not in the context
        try:
            st = os.lstat(real)
        except (FileNotFoundError, NotADirectoryError):
            return None             # a dangling symlink
        except OSError as exc:
            raise KernelError.from_oserror('stat', real, exc)
        real_rel = self._rel(real)
        if self.rules.excluded(real_rel):
            if not stat.S_ISDIR(st.st_mode) or not self.rules.may_include_under(real_rel):
                return None
            top = self._entry(rel, real, st)
            if next(self._iterate(top, st, check_links=False), None) is None:
                return None         # an excluded directory with nothing brought back under it
            return top
        return self._entry(rel, real, st)

    # ---- walking ----------------------------------------------------------------------------

    def walk(self, entry):
        """``entry``, then everything under it that is not excluded, dirs before their children, in
        name-byte order; symlinks are yielded, never followed, and refused when they lead outside."""
        for item, _sub, _st in self._walk(entry):
            yield item

    def _walk(self, top):
        """(entry, path relative to the top, lstat) for ``top`` and its tree."""
        try:
            st = os.lstat(top.path)
        except OSError as exc:
            raise KernelError.from_oserror('stat', top.path, exc)
        if top.kind == 'symlink':
            self._check_link(top.path, top.target)
        yield top, '', st
        if top.kind == 'dir' and stat.S_ISDIR(st.st_mode):
            yield from self._iterate(top, st)

    def _iterate(self, top, st, check_links=True):
        """The tree under the directory ``top`` (not ``top`` itself)."""
        rel = self._rel(top.path)
        vec = self.rules.chain(rel) if rel and self.rules.patterns else None
        stack = [_Frame(top.path, rel, '', vec, bool(vec) and self.rules.verdict(vec), (top, '', st), True)]
        prefix = '' if top.rel == '.' else top.rel + '/'
        while stack:
            frame = stack[-1]
            name = next(frame.names, None)
            if name is None:
                stack.pop()
                continue
            path = os.path.join(frame.path, name)
            rel = frame.rel + '/' + name if frame.rel else name
            sub = frame.shown + '/' + name if frame.shown else name
            try:
                cst = os.lstat(path)
            except FileNotFoundError:
                continue            # gone since the listing
            except OSError as exc:
                raise KernelError.from_oserror('stat', path, exc)
            vec = self.rules.vector(rel, frame.vec) if self.rules.patterns else None
            excluded = bool(vec) and self.rules.verdict(vec)
            is_dir = stat.S_ISDIR(cst.st_mode)
            if excluded and not (is_dir and self.rules.may_include_under(rel)):
                continue
            item = (self._entry(prefix + sub, path, cst), sub, cst)
            if not excluded:
                if check_links and item[0].kind == 'symlink':
                    self._check_link(path, item[0].target)
                for parent in stack:
                    if not parent.emitted:
                        parent.emitted = True
                        yield parent.item
                yield item
            if is_dir:
                stack.append(_Frame(path, rel, sub, vec, excluded, item, not excluded))

    def _check_link(self, path, target):
        if not _inside(os.path.realpath(path), self.root):
            raise InvalidArgument('symlink %s -> %s points outside the build context %s'
                                  % (self._rel(path) or path, target, self.root), path=path, target=target)

    # ---- content hash -------------------------------------------------------------------------

    def digest(self, entries_or_tops, chown=None, chmod=None):
        """``sha256:<hex>`` of the tops and their trees: names relative to each top, kind, mode, owner
        (or the ``chown``/``chmod`` strings given), symlink targets and file bytes; never times or inodes,
        nor the metadata of a top that is a directory (COPY copies its contents, not it)."""
        tops = [entries_or_tops] if isinstance(entries_or_tops, Entry) else list(entries_or_tops)
        h = sha256(b'ctr-buildcontext-digest-v1\n')
        for top in tops:
            h.update(_record(['top', top.rel]))
            for entry, sub, st in self._walk(top):
                owner = [str(chown)] if chown is not None else [entry.uid, entry.gid]
                mode = str(chmod) if chmod is not None and entry.kind != 'symlink' else entry.mode
                if sub == '' and entry.kind == 'dir':
                    owner, mode = [], ''        # COPY takes a directory's contents: its own metadata never lands
                content = self._file_sha256(entry.path, st) if entry.kind == 'file' else ''
                h.update(_record([sub, entry.kind, mode] + owner + [entry.size, entry.target, content]))
        if self._dirty:
            self._save_cache()
        return 'sha256:' + h.hexdigest()

    def _file_sha256(self, path, st):
        key, stamp = '%d:%d' % (st.st_dev, st.st_ino), [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        cache = self._load_cache()
        known = cache.get(key) if cache is not None else None
        if isinstance(known, list) and len(known) == 4 and known[:3] == stamp:
            self._used.add(key)
            return known[3]
        hexdigest, after = hash_file(path, st)
        settled = time.time_ns() - RACY_NS
        if cache is not None and [after.st_size, after.st_mtime_ns, after.st_ctime_ns] == stamp and \
                st.st_mtime_ns < settled and st.st_ctime_ns < settled:
            cache[key] = stamp + [hexdigest]
            self._used.add(key)
            self._dirty = True
        return hexdigest

    def _load_cache(self):
        if self.hash_cache is None or self._cache is not None:
            return self._cache
        try:
            data = fsutil.read_json(self.hash_cache, default={})
        except (OSError, ValueError):
            data = {}               # a damaged cache only costs a rehash
        files = data.get('files') if isinstance(data, dict) and data.get('version') == 1 else None
        self._cache = files if isinstance(files, dict) else {}
        return self._cache

    def _save_cache(self):
        files = self._cache
        if len(files) > CACHE_MAX:
            files = {k: v for k, v in files.items() if k in self._used}
        try:
            fsutil.makedirs(os.path.dirname(os.path.abspath(self.hash_cache)), 0o700)
            fsutil.atomic_write_json(self.hash_cache, {'version': 1, 'files': files}, mode=0o600, durable=False)
        except OSError as exc:
            raise KernelError.from_oserror('write hash cache', self.hash_cache, exc)
        self._dirty = False


def _record(fields):
    return json.dumps(fields, ensure_ascii=True, separators=(',', ':')).encode('ascii') + b'\n'


def hash_file(path, st):
    """(sha256 hex of a regular file's bytes, its fstat after reading); ``st`` is its lstat from the walk."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise KernelError.from_oserror('open', path, exc)
    h, buf = sha256(bulk=True), bytearray(CHUNK)
    view = memoryview(buf)
    with os.fdopen(fd, 'rb', buffering=0) as f:
        now = os.fstat(f.fileno())
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise Conflict('file "%s" was replaced while the build context was read' % path, path=path)
        try:
            n = f.readinto(buf)
            while n:
                h.update(view[:n])
                n = f.readinto(buf)
        except OSError as exc:
            raise KernelError.from_oserror('read', path, exc)
        return h.hexdigest(), os.fstat(f.fileno())

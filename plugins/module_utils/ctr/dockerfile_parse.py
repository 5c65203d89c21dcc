# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole-file Dockerfile parser: text -> stages of commands, as BuildKit reads it.

``parse()`` follows BuildKit's ``frontend/dockerfile/parser`` (directives, comments, line
continuations, heredocs, flags, the JSON form) and the checks of its ``instructions``
package that need no build context. Nothing is expanded here: the builder expands words
with ``expand_word``/``expand_words``/``expand_pairs`` (the lexer lives in shellwords.py)
once it knows the ARG and ENV values of each stage.
"""

from __future__ import annotations

import json
import re

from .errors import InvalidArgument
from .records import record
from .regex import lazy
from .shellwords import expand_word, expand_words, process, split_raw_words

__all__ = ('KEYWORDS', 'FLAGS', 'DockerfileError', 'Heredoc', 'Command', 'Stage', 'Dockerfile', 'parse',
           'expand_word', 'expand_words', 'expand_pairs', 'parse_arg', 'parse_duration')

KEYWORDS = ('FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT',
            'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL')
_TEXT, _BOOL, _LIST = 'text', 'bool', 'list'   # flag kinds: one value, true/false, repeatable
FLAGS = {
    'FROM': {'platform': _TEXT},
    'RUN': {'mount': _LIST, 'network': _TEXT, 'security': _TEXT},
    'COPY': {'from': _TEXT, 'chown': _TEXT, 'chmod': _TEXT, 'link': _BOOL, 'parents': _BOOL, 'exclude': _LIST},
    'ADD': {'chown': _TEXT, 'chmod': _TEXT, 'checksum': _TEXT, 'keep-git-dir': _BOOL, 'link': _BOOL,
            'exclude': _LIST},
    'HEALTHCHECK': {'interval': _TEXT, 'timeout': _TEXT, 'start-period': _TEXT, 'start-interval': _TEXT,
                    'retries': _TEXT},
}
_JSON_KEYWORDS = ('RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'COPY', 'ADD', 'VOLUME')
_HEREDOC_KEYWORDS = ('RUN', 'COPY', 'ADD')
_WS = lazy(r'[\t\v\f\r ]+')
_DIRECTIVE = lazy(r'([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*')
_HEREDOC = lazy(r'([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)')
_STAGE_NAME = lazy(r'^[a-z][a-z0-9_.-]*\Z')
_ARG_NAME = lazy(r'^[A-Za-z_][A-Za-z0-9_.-]*\Z')
_DURATION = lazy(r'([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)')
_UNIT_NS = {'ns': 1, 'us': 10 ** 3, '\u00b5s': 10 ** 3, '\u03bcs': 10 ** 3, 'ms': 10 ** 6, 's': 10 ** 9,
            'm': 60 * 10 ** 9, 'h': 3600 * 10 ** 9}


class DockerfileError(InvalidArgument):
    """A Dockerfile that Docker would refuse: ``Dockerfile, line 3: COPY: needs ...``."""

    def __init__(self, path, line, keyword, message):
        if keyword:
            msg = '%s, line %d: %s: %s' % (path, line, keyword, message)
        else:
            msg = '%s, line %d: %s' % (path, line, message)
        super().__init__(msg, path=path, line=line, keyword=keyword)
        self.path = path
        self.line = line
        self.keyword = keyword


@record(frozen=True)
class Heredoc:
    name: str          # delimiter word, e.g. 'EOF'
    content: str       # body; every line keeps its '\n'; leading tabs removed for <<-
    expand: bool       # False when (part of) the delimiter was quoted
    strip_tabs: bool   # <<-


@record(frozen=True)
class Command:
    keyword: str                  # upper case; for ONBUILD, args hold the trigger instruction
    original: str                 # the logical instruction as written, continuations joined
    args: str                     # after keyword and flags, continuations removed, stripped
    flags: tuple                  # ((name, value), ...) in written order; bare --link -> ('link', 'true')
    heredocs: tuple               # Heredoc, in marker order
    json_args: list | None     # the exec form (for HEALTHCHECK: the part after CMD), else None
    line: int                     # 1-based first line
    end_line: int                 # last line, heredoc bodies included

    def flag(self, name, default=None):
        values = self.flag_values(name)
        return values[-1] if values else default

    def flag_values(self, name):
        return [value for key, value in self.flags if key == name]


@record(frozen=True)
class Stage:
    index: int
    name: str          # the AS name, lowercased; '' when none
    base: str          # FROM's image word as written (meta ARGs expand it later)
    platform: str      # --platform value or ''
    line: int
    commands: tuple    # Commands after FROM, up to the next FROM


@record(frozen=True)
class Dockerfile:
    path: str
    escape: str        # '\\' or '`'
    syntax: str        # the syntax directive or ''
    meta_args: tuple   # ARG Commands before the first FROM
    stages: tuple

    def stage(self, ref):
        """A stage by name (case-insensitive) or index (int or decimal string)."""
        text = str(ref).strip()
        if isinstance(ref, int) or (text.isdecimal() and text.isascii()):
            if 0 <= int(text) < len(self.stages):
                return self.stages[int(text)]
        else:
            for stage in self.stages:
                if stage.name and stage.name == text.lower():
                    return stage
        known = ', '.join(s.name or str(s.index) for s in self.stages)
        raise InvalidArgument('%s has no build stage "%s"; its stages are: %s' % (self.path, ref, known),
                              value=ref)


def parse(text, path='Dockerfile'):
    """Parse a Dockerfile's text (str or UTF-8 bytes); raise DockerfileError on the first problem."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode('utf-8')
        except UnicodeDecodeError as exc:
            raise DockerfileError(path, text.count(b'\n', 0, exc.start) + 1, '', 'the text is not valid UTF-8') from None
    return _Parser(text, path).run()


def parse_arg(text, escape='\\'):
    """``ARG`` arguments -> ``[(name, default or None)]``; defaults raw (quotes kept) for expand_word."""
    try:
        return _arg_pairs(text, escape)
    except InvalidArgument as exc:
        raise InvalidArgument('ARG "%s": %s' % (text, exc.msg), value=text) from None


def expand_pairs(text, env, escape='\\', what='ENV'):
    """``ENV``/``LABEL`` arguments -> ``[(key, value)]``, keys and values expanded against ``env``."""
    try:
        pairs = [(expand_word(k, env, escape), expand_word(v, env, escape)) for k, v in _raw_pairs(text, escape)]
    except InvalidArgument as exc:
        raise InvalidArgument('%s "%s": %s' % (what, text, exc.msg), value=text) from None
    for key, dummy in pairs:
        if not key:
            raise InvalidArgument('%s "%s": a name expands to an empty string' % (what, text), value=text)
    return pairs


def parse_duration(text):
    """Go's ``time.ParseDuration`` (``1m30s``, ``1.5h``, ``250ms``, ``0``) -> integer nanoseconds."""
    sign = -1 if text.startswith('-') else 1
    body = text[1:] if text.startswith(('+', '-')) else text
    if body == '0':
        return 0
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION.match(body, pos)
        if not match or match.group(1) in ('', '.'):
            break
        total += float(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if not body or pos < len(body):
        raise InvalidArgument('"%s" is not a duration such as 30s, 1m30s or 250ms' % text, value=text)
    return sign * int(round(total))


def _arg_pairs(text, escape):
    words = split_raw_words(text, escape)
    if not words:
        raise InvalidArgument('needs at least one name')
    pairs = []
    for word in words:
        name, sep, default = word.partition('=')
        if not _ARG_NAME.match(name):
            raise InvalidArgument('"%s" is not a valid name: use letters, digits, "_", "." and "-", '
                                  'starting with a letter or "_"' % name)
        pairs.append((name, default if sep else None))
    return pairs


def _raw_pairs(text, escape):
    """ENV/LABEL pairs, unexpanded: ``k=v k2="v 2"`` words, or the legacy ``KEY rest of line``."""
    words = split_raw_words(text, escape)
    if not words:
        raise InvalidArgument('needs at least one key=value pair')
    if '=' not in words[0]:
        parts = _WS.split(text.strip(), 1)
        if len(parts) < 2:
            raise InvalidArgument('"%s" has no value: write %s=VALUE' % (parts[0], parts[0]))
        return [(parts[0], parts[1])]
    pairs = []
    for word in words:
        key, sep, value = word.partition('=')
        if not sep:
            raise InvalidArgument('"%s" is not of the form name=value' % word)
        if not key:
            raise InvalidArgument('"%s" has an empty name' % word)
        pairs.append((key, value))
    return pairs


def _json_list(args):
    """The JSON array of strings ``args`` holds, None for the shell form; ValueError for non-strings."""
    if not args.startswith('['):
        return None
    try:
        value = json.loads(args, parse_constant=_not_json)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise TypeError('a JSON array must hold only strings')
    return value


def _not_json(name):
    raise ValueError(name)


def _extract_flags(rest, escape):
    """Leading ``--name[=value]`` words (quotes and escapes removed) -> (remaining args, words)."""
    words, i, n = [], 0, len(rest)
    while True:
        while i < n and rest[i].isspace():
            i += 1
        if not rest.startswith('--', i):
            return rest[i:], words
        buf, quote, quoted = [], None, False
        while i < n:
            ch = rest[i]
            if quote is None and ch.isspace():
                break
            i += 1
            if quote is not None and ch == quote:
                quote = None
                continue
            if quote is None and ch in '\'"':
                quote, quoted = ch, True
                continue
            if ch == escape:
                if i == n:
                    break
                ch = rest[i]
                i += 1
            buf.append(ch)
        word = ''.join(buf)
        if word == '--':
            return rest[i:], words
        if quoted or word:
            words.append(word)


def _continuation(line, escape):
    """(line without a trailing escape character, True) for a continued line, else (line, False)."""
    body = line.rstrip(' \t')
    if body.endswith(escape) and (len(body) == 1 or body[-2] != escape):
        return body[:-1], True
    return line, False


def _heredoc_marker(word):
    """(name, expand, strip_tabs) when ``word`` is a heredoc marker such as ``<<-'EOF'``, else None."""
    match = _HEREDOC.fullmatch(word)
    if not match or not match.group(3):
        return None
    rest = match.group(3)
    try:
        plain = process(rest, escape='\\', words=True, skip_unset=True)
        raw = process(rest, escape='\\', words=True, raw_quotes=True, skip_unset=True)
    except InvalidArgument:
        return None
    if len(plain) != 1 or len(raw) != 1:
        return None
    quotes = [w.count("'") + w.count('"') for w in (plain[0], raw[0])]
    return plain[0], quotes[0] == quotes[1], match.group(2) == '-'


def _heredoc_markers(line):
    try:
        words = process(line, escape='\\', words=True, raw_quotes=True, raw_escapes=True, skip_unset=True)
    except InvalidArgument:
        return []
    return [marker for marker in map(_heredoc_marker, words) if marker]


@record(frozen=True)
class _Instruction:
    keyword: str
    args: str
    flags: tuple
    json_args: list | None
    heredoc_keyword: str    # the keyword whose heredocs count (the trigger's for ONBUILD), '' for none


class _Parser:
    def __init__(self, text, path):
        if text.startswith('\ufeff'):
            text = text[1:]
        parts = text.split('\n')
        self.lines = [part + '\n' for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
        self.path = path
        self.pos = 0
        self.escape = '\\'
        self.syntax = ''
        self.directives = {}      # name -> line; None once directives are over

    def fail(self, line, keyword, message):
        raise DockerfileError(self.path, line, keyword, message)

    def directive(self, token, line):
        if self.directives is None:
            return
        match = _DIRECTIVE.fullmatch(token[1:].lstrip()) if token.startswith('#') else None
        key = match.group(1).lower() if match else ''
        if key not in ('escape', 'syntax', 'check'):
            self.directives = None
            return
        if key in self.directives:
            self.fail(line, '', 'the %s parser directive is given twice (first on line %d)'
                      % (key, self.directives[key]))
        self.directives[key] = line
        if key == 'escape':
            if match.group(2) not in ('\\', '`'):
                self.fail(line, '', 'the escape parser directive must be \\ or `, not "%s"' % match.group(2))
            self.escape = match.group(2)
        elif key == 'syntax':
            self.syntax = match.group(2)

    def run(self):
        commands = []
        while self.pos < len(self.lines):
            self.pos += 1
            line = self.pos
            token = self.lines[line - 1].rstrip('\r\n').lstrip()
            self.directive(token, line)
            if token.startswith('#'):
                continue
            token, more = _continuation(token, self.escape)
            if not token and not more:
                continue
            parts = [token]
            while more and self.pos < len(self.lines):
                text = self.lines[self.pos].rstrip('\r\n')
                self.pos += 1
                if text.lstrip().startswith('#') or not text.strip():
                    continue
                text, more = _continuation(text, self.escape)
                parts.append(text)
            commands.append(self.command(''.join(parts).strip(), line))
        return self.build(commands)

    def command(self, text, line):
        inst = self.instruction(text, line)
        heredocs = []
        if inst.heredoc_keyword in _HEREDOC_KEYWORDS and '<<' in text:
            for name, expand, strip_tabs in _heredoc_markers(text):
                body = []
                while True:
                    if self.pos >= len(self.lines):
                        self.fail(line, inst.keyword, 'the heredoc "%s" is not terminated: no line "%s" follows it'
                                  % (name, name))
                    raw = self.lines[self.pos]
                    self.pos += 1
                    candidate = raw.rstrip('\r\n')
                    if (candidate.lstrip('\t') if strip_tabs else candidate) == name:
                        break
                    body.append(raw.lstrip('\t') if strip_tabs else raw)
                heredocs.append(Heredoc(name, ''.join(body), expand, strip_tabs))
        return Command(inst.keyword, text, inst.args, inst.flags, tuple(heredocs), inst.json_args, line, self.pos)

    def instruction(self, text, line, outer=''):
        """Split and check one instruction (``outer`` is 'ONBUILD' for a trigger)."""
        parts = _WS.split(text.strip(), 1)
        keyword = parts[0].upper()
        where = ('%s %s' % (outer, keyword)).strip()
        if keyword not in KEYWORDS:
            self.fail(line, outer, 'unknown instruction "%s"' % parts[0])
        args, words = _extract_flags(parts[1] if len(parts) > 1 else '', self.escape)
        args = args.strip()
        flags = self.flags(words, keyword, line, where)
        json_args = None
        if keyword in _JSON_KEYWORDS:
            try:
                json_args = _json_list(args)
            except TypeError as exc:
                self.fail(line, where, str(exc))
        if not args:
            self.fail(line, where, 'needs an argument')
        heredoc_keyword = keyword if json_args is None else ''
        if keyword == 'ONBUILD':
            trigger = self.instruction(args, line, 'ONBUILD')
            if trigger.keyword in ('ONBUILD', 'FROM', 'MAINTAINER'):
                self.fail(line, where, '%s is not allowed as an ONBUILD trigger' % trigger.keyword)
            heredoc_keyword = trigger.heredoc_keyword
        elif keyword == 'HEALTHCHECK':
            json_args = self.check_healthcheck(args, flags, line, where)
        elif hasattr(self, 'check_' + keyword.lower()):     # check_from, check_arg, check_env, ...
            getattr(self, 'check_' + keyword.lower())(args, json_args, line, where)
        return _Instruction(keyword, args, flags, json_args, heredoc_keyword)

    def flags(self, words, keyword, line, where):
        allowed = FLAGS.get(keyword, {})
        flags = []
        for word in words:
            name, sep, value = word[2:].partition('=')
            kind = allowed.get(name)
            if kind is None:
                known = ', '.join('--' + n for n in allowed) if allowed else 'none'
                self.fail(line, where, 'unknown flag --%s (allowed flags: %s)' % (name, known))
            if kind != _LIST and any(name == seen for seen, dummy in flags):
                self.fail(line, where, 'the flag --%s is given twice' % name)
            if kind == _BOOL:
                if (sep and not value) or value.lower() not in ('', 'true', 'false'):
                    self.fail(line, where, 'the flag --%s takes true or false, not "%s"' % (name, value))
                value = 'false' if value.lower() == 'false' else 'true'
            elif not sep:
                self.fail(line, where, 'the flag --%s needs a value: --%s=VALUE' % (name, name))
            flags.append((name, value))
        return tuple(flags)

    def check_from(self, args, json_args, line, where):
        words = _WS.split(args)
        if len(words) == 3 and words[1].lower() == 'as':
            if not _STAGE_NAME.match(words[2].lower()):
                self.fail(line, where, 'invalid stage name "%s": it must start with a letter and hold only letters, '
                          'digits, "_", "." and "-"' % words[2])
        elif len(words) != 1:
            self.fail(line, where, 'expected "FROM [--platform=PLATFORM] IMAGE [AS NAME]", got "%s"' % args)

    def check_arg(self, args, json_args, line, where):
        try:
            _arg_pairs(args, self.escape)
        except InvalidArgument as exc:
            self.fail(line, where, exc.msg)

    def check_env(self, args, json_args, line, where):
        try:
            _raw_pairs(args, self.escape)
        except InvalidArgument as exc:
            self.fail(line, where, exc.msg)

    check_label = check_env

    def check_run(self, args, json_args, line, where):
        if json_args == []:
            self.fail(line, where, 'needs a command, not an empty JSON array')

    def check_shell(self, args, json_args, line, where):
        if json_args is None:
            self.fail(line, where, 'needs the JSON form, such as SHELL ["/bin/sh", "-c"]')
        self.check_run(args, json_args, line, where)

    def check_copy(self, args, json_args, line, where):
        words = json_args if json_args is not None else _WS.split(args)
        if len(words) < 2:
            self.fail(line, where, 'needs at least a source and a destination')
        if _heredoc_marker(words[-1]):
            self.fail(line, where, 'the destination "%s" cannot be a heredoc' % words[-1])

    check_add = check_copy

    def check_volume(self, args, json_args, line, where):
        if json_args is not None and (not json_args or not all(path.strip() for path in json_args)):
            self.fail(line, where, 'needs paths that are not empty')

    def check_healthcheck(self, args, flags, line, where):
        fields = _WS.split(args, 1)
        kind, command = fields[0], fields[1].strip() if len(fields) > 1 else ''
        if kind.upper() == 'NONE':
            if command:
                self.fail(line, where, 'NONE takes no arguments, got "%s"' % command)
            return None
        if kind.upper() != 'CMD':
            self.fail(line, where, 'unknown type "%s": use HEALTHCHECK [flags] CMD command, or HEALTHCHECK NONE' % kind)
        try:
            json_args = _json_list(command)
        except TypeError as exc:
            self.fail(line, where, str(exc))
        if not command or json_args == []:
            self.fail(line, where, 'CMD needs a command')
        for name, value in flags:
            if name == 'retries':
                if not re.match(r'^[+-]?[0-9]+\Z', value) or not 0 <= int(value) < 2 ** 31:
                    self.fail(line, where, 'the flag --retries takes a whole number from 0, not "%s"' % value)
            elif value:
                try:
                    nanoseconds = parse_duration(value)
                except InvalidArgument as exc:
                    self.fail(line, where, 'the flag --%s: %s' % (name, exc.msg))
                if nanoseconds and nanoseconds < 10 ** 6:
                    self.fail(line, where, 'the flag --%s must be 0 or at least 1ms, not "%s"' % (name, value))
        return json_args

    def build(self, commands):
        if not commands:
            self.fail(1, '', 'the file is empty: it holds no instructions')
        meta, stages, names, current = [], [], {}, None
        for cmd in commands:
            if cmd.keyword == 'FROM':
                if current:
                    stages.append(Stage(commands=tuple(current.pop('commands')), **current))
                words = _WS.split(cmd.args)
                name = words[2].lower() if len(words) == 3 else ''
                if name in names:
                    self.fail(cmd.line, 'FROM', 'the stage name "%s" is already used on line %d' % (name, names[name]))
                if name:
                    names[name] = cmd.line
                current = dict(index=len(stages), name=name, base=words[0], platform=cmd.flag('platform', ''),
                               line=cmd.line, commands=[])
            elif current is not None:
                current['commands'].append(cmd)
            elif cmd.keyword == 'ARG':
                meta.append(cmd)
            else:
                self.fail(cmd.line, cmd.keyword, 'only ARG may come before the first FROM')
        if current is None:
            self.fail(1, '', 'there is no FROM instruction: a Dockerfile needs at least one build stage')
        stages.append(Stage(commands=tuple(current.pop('commands')), **current))
        return Dockerfile(self.path, self.escape, self.syntax, tuple(meta), tuple(stages))

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker's shell-word lexer: quotes, escapes and ``$VAR`` expansion as a Dockerfile sees them.

This follows BuildKit's ``frontend/dockerfile/shell/lex.go`` rule for rule (not bash):

- ``'...'`` is literal; ``"..."`` expands ``$`` and lets the escape character escape only
  ``"``, ``$`` and the escape character itself (any other escape stays as written);
- outside quotes the escape character escapes any next character; one at the very end is dropped;
- ``$name``, ``${name}``, ``${name:-w}``, ``${name-w}``, ``${name:+w}``, ``${name+w}``,
  ``${name:?msg}``, ``${name?msg}``, ``${name#pat}``, ``${name##pat}``, ``${name%pat}``,
  ``${name%%pat}``, ``${name/pat/repl}``, ``${name//pat/repl}``; an unset name is '';
  positional and special parameters (``$1``, ``$@``, ``$$``...) are never set, so they expand
  to ''; a ``$`` followed by anything else stays a literal ``$``;
- word splitting (``expand_words``) happens after expansion: a variable's value outside quotes
  is split on whitespace, a quoted one is not; an empty quoted word (``""``) yields no word.
"""

from __future__ import annotations

import re

from .errors import InvalidArgument

_SPECIAL_PARAMS = '@*#?-$!0'
_MODIFIERS = ('+', '-', '?', '#', '%')


def is_space(ch):
    """Go's ``unicode.IsSpace`` (Python's ``isspace`` also counts the \\x1c-\\x1f separators)."""
    return ch.isspace() and ch not in '\x1c\x1d\x1e\x1f'


class _LexError(Exception):
    pass


class _Words:
    """The word splitter fed while a text is expanded (lex.go's ``wordsStruct``)."""

    def __init__(self):
        self.buf = ''
        self.words = []

    def add_char(self, ch):
        if not is_space(ch):
            self.buf += ch
        elif self.buf:
            self.words.append(self.buf)
            self.buf = ''

    def add_raw(self, text):
        self.buf += text

    def add_string(self, text):
        for ch in text:
            self.add_char(ch)

    def result(self):
        if self.buf:
            self.words.append(self.buf)
            self.buf = ''
        return self.words


class _Lexer:
    def __init__(self, text, env, escape, raw_quotes=False, raw_escapes=False, skip_unset=False):
        self.text = text
        self.pos = 0
        self.env = env if env is not None else {}
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_unset = skip_unset

    def peek(self):
        return self.text[self.pos] if self.pos < len(self.text) else ''

    def next(self):
        ch = self.peek()
        self.pos += len(ch)
        return ch

    def stop_on(self, stop, raw_escapes):
        """Process up to ``stop`` (consumed) or the end when ``stop`` is ''; return (text, words)."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            result, words = [], _Words()
            special = {'$': self.dollar, '<': self.possible_heredoc, "'": self.single_quote, '"': self.double_quote}
            while self.pos < len(self.text):
                ch = self.text[self.pos]
                if ch == stop:
                    self.pos += 1
                    return ''.join(result), words.result()
                if ch in special:
                    tmp = special[ch]()
                    result.append(tmp)
                    if ch == '$':
                        words.add_string(tmp)
                    else:
                        words.add_raw(tmp)
                    continue
                self.pos += 1
                if ch == self.escape:
                    if raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    if self.pos >= len(self.text):
                        break
                    ch = self.next()
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop:
                raise _LexError('unexpected end of text while looking for the matching %s' % stop)
            return ''.join(result), words.result()
        finally:
            self.raw_escapes = saved

    def single_quote(self):
        quote = self.next()
        out = [quote] if self.raw_quotes else []
        while True:
            ch = self.next()
            if not ch:
                raise _LexError('unterminated single quote')
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return ''.join(out)
            out.append(ch)

    def double_quote(self):
        quote = self.next()
        out = [quote] if self.raw_quotes else []
        while True:
            ch = self.peek()
            if not ch:
                raise _LexError('unterminated double quote')
            if ch == '"':
                self.pos += 1
                if self.raw_quotes:
                    out.append(ch)
                return ''.join(out)
            if ch == '$':
                out.append(self.dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self.peek()
                if not following:
                    continue
                if following in ('"', '$', self.escape):
                    ch = self.next()
            out.append(ch)

    def possible_heredoc(self):
        self.pos += 1
        if self.peek() != '<':
            return '<'
        self.pos += 1
        start = self.pos
        while self.peek() and self.peek() in ' \t\r':
            self.pos += 1
        return '<<' + self.text[start:self.pos]

    def name(self):
        text, start = self.text, self.pos
        ch = self.peek()
        if ch and ch.isdecimal():
            while self.peek() and self.peek().isdecimal():
                self.pos += 1
            return text[start:self.pos]
        if ch and ch in _SPECIAL_PARAMS:
            self.pos += 1
            return ch
        while self.peek() and (self.peek().isalpha() or self.peek().isdecimal() or self.peek() == '_'):
            self.pos += 1
        return text[start:self.pos]

    def lookup(self, name):
        return self.env.get(name, ''), name in self.env

    def sub_word(self, stop, raw_escapes, missing="missing '}'"):
        try:
            return self.stop_on(stop, raw_escapes)[0]
        except _LexError:
            if self.pos >= len(self.text):
                raise _LexError(missing) from None
            raise

    def dollar(self):
        self.pos += 1
        if self.peek() != '{':
            name = self.name()
            if not name:
                return '$'
            value, is_set = self.lookup(name)
            return '$' + name if self.skip_unset and not is_set else value
        self.pos += 1
        if not self.peek():
            raise _LexError("missing '}'")
        if self.peek() in '{}:':
            raise _LexError('bad substitution')
        name = self.name()
        ch = self.next()
        if ch == '}':
            value, is_set = self.lookup(name)
            return '${%s}' % name if self.skip_unset and not is_set else value
        if ch == '/':
            return self.replace(name)
        modifier, colon = ch, ch == ':'
        if colon:
            ch = self.next()
            modifier += ch
        if not ch:
            raise _LexError("missing '}'")
        if ch not in _MODIFIERS or (colon and ch in '#%'):
            raise _LexError('unsupported modifier (%s) in substitution' % modifier)
        word = self.sub_word('}', ch in '#%')
        value, is_set = self.lookup(name)
        if self.skip_unset and not is_set:
            return '${%s%s%s}' % (name, modifier, word)
        unset = not is_set or (colon and value == '')
        if ch == '-':
            return word if unset else value
        if ch == '+':
            return '' if unset else word
        if ch == '?':
            if unset:
                empty = 'is not allowed to be empty' if is_set else 'is not allowed to be unset'
                raise _LexError('%s: %s' % (name, word or empty))
            return value
        greedy = word.startswith(ch)
        if greedy:
            word = word[1:]
        if ch == '#':
            return _trim_prefix(word, value, greedy)
        return _trim_prefix(_reverse_pattern(word), value[::-1], greedy)[::-1]

    def replace(self, name):
        replace_all = self.peek() == '/'
        if replace_all:
            self.pos += 1
        pattern = self.sub_word('/', True, "missing '/' in ${}")
        replacement = self.sub_word('}', True)
        value, is_set = self.lookup(name)
        if self.skip_unset and not is_set:
            return '${%s/%s/%s}' % (name, pattern, replacement)
        regex = _pattern_regex(pattern, True, False)
        return regex.sub(lambda match: replacement, value, count=0 if replace_all else 1)


def _pattern_regex(pattern, greedy, anchored):
    """A shell wildcard pattern (``*``, ``?``, ``\\`` escapes; no brackets) as a compiled regex."""
    out = ['^'] if anchored else []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == '*':
            out.append('.*' if greedy else '.*?')
        elif ch == '?':
            out.append('.')
        elif ch == '\\':
            if i < len(pattern) and pattern[i] in '}/':
                continue
            if i >= len(pattern) or pattern[i] not in '*?\\':
                raise _LexError('invalid pattern (%s) in substitution: invalid escape' % pattern)
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile(''.join(out))


def _trim_prefix(pattern, value, greedy):
    match = _pattern_regex(pattern, greedy, True).match(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern):
    """Reverse a pattern, keeping each ``\\x`` escape pair in order (``a\\*c`` -> ``c\\*a``)."""
    out = [''] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        if pattern[i] == '\\' and i != last:
            out[last - i - 1] = '\\'
            out[last - i] = pattern[i + 1]
            i += 2
        else:
            out[last - i] = pattern[i]
            i += 1
    return ''.join(out)


def process(text, env=None, escape='\\', words=False, raw_quotes=False, raw_escapes=False, skip_unset=False):
    """The lexer with all of lex.go's switches; ``expand_word``/``expand_words`` are the usual entries."""
    lexer = _Lexer(text, env, escape, raw_quotes, raw_escapes, skip_unset)
    try:
        result, split = lexer.stop_on('', raw_escapes)
    except _LexError as exc:
        raise InvalidArgument('cannot expand "%s": %s' % (text, exc), value=text) from None
    return split if words else result


def expand_word(text, env, escape='\\'):
    """One word: quotes removed, escapes processed, variables expanded; spaces kept."""
    return process(text, env, escape)


def expand_words(text, env, escape='\\'):
    """Split on unquoted whitespace (including whitespace inside unquoted variable values), then expand."""
    return process(text, env, escape, words=True)


def split_raw_words(text, escape='\\'):
    """Words of ENV/LABEL/ARG arguments, quotes and escapes kept as written (BuildKit ``parseWords``)."""
    words, buf, quote, in_word, blank_ok = [], [], None, False, False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if quote is None:
            if is_space(ch):
                if in_word and (blank_ok or buf):
                    words.append(''.join(buf))
                buf, in_word, blank_ok = [], False, False
                i += 1
                continue
            in_word = True
            if ch in '\'"':
                quote, blank_ok = ch, True
            elif ch == escape:
                if i + 1 == n:
                    break
                buf.append(ch)
                i += 1
                ch = text[i]
        elif ch == quote:
            quote = None
        elif ch == escape and quote != "'":
            if i + 1 == n:
                break
            buf.append(ch)
            i += 1
            ch = text[i]
        buf.append(ch)
        i += 1
    if (in_word or quote) and (blank_ok or buf):
        words.append(''.join(buf))
    return words

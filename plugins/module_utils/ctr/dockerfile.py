# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockerfile instructions: parsing their arguments and applying metadata ones to an image config.

For now this serves ``changes`` (as ``docker import --change``): CMD,
ENTRYPOINT, ENV, EXPOSE, WORKDIR, USER, LABEL, VOLUME, STOPSIGNAL, ONBUILD.
The whole-file parser of the build issue grows here.
"""

from __future__ import annotations

import json
import posixpath
import re
import signal

from .errors import InvalidArgument
from .records import record
from .regex import lazy

METADATA_INSTRUCTIONS = ('CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'WORKDIR', 'USER', 'LABEL', 'VOLUME',
                         'STOPSIGNAL', 'ONBUILD')
DEFAULT_SHELL = ['/bin/sh', '-c']
_PORT_RE = lazy(r'^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$', re.IGNORECASE)


@record(frozen=True)
class Instruction:
    keyword: str   # upper case
    args: str      # the rest of the line, stripped
    source: str    # the original text, for messages


def parse_instruction(text, what='change'):
    """``'CMD ["sh"]'`` -> ``Instruction('CMD', '["sh"]', ...)``."""
    stripped = (text or '').strip()
    if not stripped:
        raise InvalidArgument('%s "%s" is empty' % (what, text))
    parts = stripped.split(None, 1)
    return Instruction(parts[0].upper(), parts[1].strip() if len(parts) > 1 else '', stripped)


def json_form(args):
    """The exec (JSON) form's list of strings, or None when ``args`` is in shell form."""
    if not args.startswith('['):
        return None
    try:
        value = json.loads(args)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def split_words(text, what):
    """Split on unquoted whitespace, removing quotes and backslash escapes (Docker's word rules)."""
    words, word, quote, have_word = [], [], None, False
    i = 0
    while i < len(text):
        c = text[i]
        if c == '\\' and quote != "'" and i + 1 < len(text):
            word.append(text[i + 1])
            have_word = True
            i += 2
            continue
        if quote:
            if c == quote:
                quote = None
            else:
                word.append(c)
        elif c in '"\'':
            quote = c
            have_word = True
        elif c.isspace():
            if have_word or word:
                words.append(''.join(word))
            word, have_word = [], False
        else:
            word.append(c)
        i += 1
    if quote:
        raise InvalidArgument('%s has an unterminated %s quote' % (what, quote))
    if have_word or word:
        words.append(''.join(word))
    return words


def key_values(inst, legacy_allowed=True):
    """Pairs of ``ENV``/``LABEL``: ``k=v k2="v 2"`` or the legacy ``k some value``."""
    what = '%s "%s"' % (inst.keyword, inst.source)
    if not inst.args:
        raise InvalidArgument('%s needs at least one key=value pair' % what)
    first = split_words(inst.args, what)
    if legacy_allowed and '=' not in first[0]:
        key, dummy, value = inst.args.partition(' ')
        if not value.strip():
            raise InvalidArgument('%s must have a value: use %s key=value' % (what, inst.keyword))
        return [(key, value.strip())]
    pairs = []
    for word in first:
        key, sep, value = word.partition('=')
        if not sep or not key:
            raise InvalidArgument('%s: "%s" is not of the form key=value' % (what, word))
        pairs.append((key, value))
    return pairs


def parse_ports(inst):
    ports = []
    what = 'EXPOSE "%s"' % inst.source
    for word in split_words(inst.args, what):
        m = _PORT_RE.match(word)
        if not m:
            raise InvalidArgument('%s: "%s" is not a port, a port range or port/protocol' % (what, word))
        low = int(m.group(1))
        high = int(m.group(2) or low)
        proto = (m.group(3) or 'tcp').lower()
        if not 1 <= low <= high <= 65535:
            raise InvalidArgument('%s: port "%s" is out of the range 1-65535' % (what, word))
        ports.extend('%d/%s' % (p, proto) for p in range(low, high + 1))
    if not ports:
        raise InvalidArgument('%s names no port' % what)
    return ports


def validate_signal(value, what):
    text = value.strip()
    if text.isdigit():
        if not 1 <= int(text) <= 64:
            raise InvalidArgument('%s: signal %s is out of the range 1-64' % (what, text))
        return text
    name = text.upper()
    if not name.startswith('SIG'):
        name = 'SIG' + name
    if name.startswith('SIGRTMIN') or name.startswith('SIGRTMAX') or hasattr(signal.Signals, name):
        return name
    raise InvalidArgument('%s: "%s" is not a signal name or number' % (what, value))


def set_env(env, pairs):
    """``Env`` with each (name, value) set as Docker does: a variable already there keeps its place."""
    env = list(env or [])
    for name, value in pairs:
        entry = '%s=%s' % (name, value)
        at = next((i for i, e in enumerate(env) if e.partition('=')[0] == name), None)
        if at is None:
            env.append(entry)
        else:
            env[at] = entry
    return env


def apply_metadata(config, inst, shell=None):
    """Apply one metadata instruction to the ``config`` dict of an OCI image config (in place)."""
    what = '%s "%s"' % (inst.keyword, inst.source)
    key = inst.keyword
    if key in ('CMD', 'ENTRYPOINT'):
        argv = json_form(inst.args)
        if argv is None:
            if not inst.args:
                raise InvalidArgument('%s needs a command' % what)
            argv = list(shell or DEFAULT_SHELL) + [inst.args]
        config['Cmd' if key == 'CMD' else 'Entrypoint'] = argv
    elif key == 'ENV':
        config['Env'] = set_env(config.get('Env'), key_values(inst))
    elif key == 'LABEL':
        labels = dict(config.get('Labels') or {})
        labels.update(key_values(inst))
        config['Labels'] = labels
    elif key == 'EXPOSE':
        exposed = dict(config.get('ExposedPorts') or {})
        exposed.update((p, {}) for p in parse_ports(inst))
        config['ExposedPorts'] = exposed
    elif key == 'VOLUME':
        paths = json_form(inst.args) or split_words(inst.args, what)
        if not paths or any(not p for p in paths):
            raise InvalidArgument('%s names no path' % what)
        volumes = dict(config.get('Volumes') or {})
        volumes.update((p, {}) for p in paths)
        config['Volumes'] = volumes
    elif key == 'WORKDIR':
        if not inst.args:
            raise InvalidArgument('%s needs a path' % what)
        config['WorkingDir'] = posixpath.normpath(posixpath.join(config.get('WorkingDir') or '/', inst.args))
    elif key == 'USER':
        if not inst.args or len(inst.args.split()) != 1:
            raise InvalidArgument('%s needs exactly one user[:group]' % what)
        config['User'] = inst.args
    elif key == 'STOPSIGNAL':
        config['StopSignal'] = validate_signal(inst.args, what)
    elif key == 'ONBUILD':
        trigger = parse_instruction(inst.args, 'ONBUILD trigger')
        if trigger.keyword in ('ONBUILD', 'FROM', 'MAINTAINER'):
            raise InvalidArgument('%s: %s is not allowed as an ONBUILD trigger' % (what, trigger.keyword))
        config['OnBuild'] = list(config.get('OnBuild') or []) + [inst.args]
    else:
        raise InvalidArgument('%s is not a metadata instruction; allowed: %s'
                              % (what, ', '.join(METADATA_INSTRUCTIONS)))
    return config


def apply_changes(config, changes, what='changes'):
    """Apply a list of instruction strings (``docker import --change``) to ``config``."""
    for text in changes or ():
        try:
            apply_metadata(config, parse_instruction(text, what))
        except InvalidArgument as exc:
            raise InvalidArgument('%s: %s' % (what, exc.msg), value=text) from None
    return config

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module-level regular expressions compiled at their first use, not at import.

Compiling costs ~0.1-0.3 ms a pattern; a module run imports some 30 of them and uses a few, and
every task starts a new interpreter. ``lazy(r'...')`` stands for ``re.compile(r'...')``: the first
method call compiles, and from then on the pattern's methods are the compiled pattern's own.
"""

from __future__ import annotations

import re

_METHODS = ('match', 'fullmatch', 'search', 'sub', 'subn', 'split', 'findall', 'finditer', 'groups',
            'groupindex', 'flags', 'pattern')


class LazyPattern:
    """``re.compile(source, flags)`` when first used."""

    def __init__(self, source, flags=0):
        self._source = source
        self._flags = flags

    def __getattr__(self, name):
        if name.startswith('_') or name not in _METHODS:
            raise AttributeError(name)
        compiled = re.compile(self._source, self._flags)
        for method in _METHODS:
            setattr(self, method, getattr(compiled, method))
        return getattr(compiled, name)

    def __repr__(self):
        return 'lazy(%r)' % (self._source,)


def lazy(source, flags=0):
    """A pattern compiled at its first use: ``_NAME = lazy(r'[a-z]+\\Z')``, then ``_NAME.match(text)``."""
    return LazyPattern(source, flags)

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine's one exception family.

Every message is one sentence that names the object and the cause, so the
Ansible glue can hand it to ``fail_json(msg=...)`` unchanged.
"""

from __future__ import annotations


class CtrError(Exception):
    """Base of every error the engine raises on purpose.

    ``msg`` is the sentence a user sees; ``details`` carries machine-readable
    context (option names, paths, errno) that the glue returns beside ``msg``.
    """

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self):
        return self.msg


class InvalidArgument(CtrError):
    """A value given by the user is malformed or out of range."""


class NotFound(CtrError):
    """An image, blob, container or file the user named does not exist."""


class Conflict(CtrError):
    """The request clashes with the state of the host (in use, name taken)."""


class CorruptContent(CtrError):
    """Stored or supplied content is damaged: digest mismatch, truncated or unreadable archive."""


class UnsafeContent(CorruptContent):
    """An archive tried to write, link or delete outside the directory it belongs in."""


class KernelError(CtrError):
    """A system call failed; ``errno``, ``call`` and ``path`` are kept in details."""

    @classmethod
    def from_oserror(cls, call, path, exc):
        """``mount "/x": permission denied`` -- the umoci style of context prefix."""
        reason = (exc.strerror or str(exc)).rstrip('.')
        reason = reason[:1].lower() + reason[1:]
        where = ' "%s"' % path if path else ''
        return cls('%s%s: %s' % (call, where, reason), call=call, path=path, errno=exc.errno)

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image references: parse, validate and normalise them the way ``docker pull`` does.

Grammar (that of distribution/reference)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ host [ ":" port ] "/" ] component ( "/" component )*
    component  := [a-z0-9]+ ( ( [._] | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex

The first component is a registry host when it contains ``.`` or ``:``, starts
with ``[`` (an IPv6 address) or is ``localhost``; otherwise the registry is
``docker.io``, and a one-component name there lives under ``library/``.
``index.docker.io`` is the legacy spelling of ``docker.io``.
"""

from __future__ import annotations


from .errors import InvalidArgument
from .records import record, replace
from .regex import lazy

DEFAULT_REGISTRY = 'docker.io'
LEGACY_REGISTRY = 'index.docker.io'
OFFICIAL_PREFIX = 'library/'
DEFAULT_TAG = 'latest'
NAME_MAX = 255
TAG_MAX = 128

# Hex length of each digest algorithm Docker can verify.
DIGEST_HEX_LENGTHS = {'sha256': 64, 'sha384': 96, 'sha512': 128}

_COMPONENT = lazy(r'[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*')
_TAG = lazy(r'[A-Za-z0-9_][A-Za-z0-9_.-]*')
_DOMAIN_LABEL = r'(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])'
_HOST = lazy(
    r'(?:%s(?:\.%s)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?' % (_DOMAIN_LABEL, _DOMAIN_LABEL))
_ALGORITHM = lazy(r'[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*')
_LOWER_HEX = lazy(r'[a-f0-9]+')
_FULL_ID = lazy(r'[a-f0-9]{64}')
_ID = lazy(r'(?:sha256:[a-f0-9]{64}|[a-f0-9]{12,64})')


def _show(text):
    """The value as it goes between quotes in a message; control characters escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


def _invalid(text, reason):
    return InvalidArgument('invalid image reference "%s": %s' % (_show(text), reason),
                           value=text)


def _digest_problem(text):
    """Why ``text`` is not a valid digest, or None when it is one."""
    algorithm, sep, hexpart = text.partition(':')
    if not sep or not _ALGORITHM.fullmatch(algorithm) or not hexpart:
        return 'a digest must have the form "algorithm:hex", such as "sha256:" and 64 hex digits'
    length = DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        return 'digest algorithm "%s" is not supported (use %s)' % (
            _show(algorithm), ', '.join(sorted(DIGEST_HEX_LENGTHS)))
    if len(hexpart) != length or not _LOWER_HEX.fullmatch(hexpart):
        return 'a %s digest must have exactly %d lowercase hexadecimal digits' % (algorithm, length)
    return None


def _tag_problem(tag):
    """Why ``tag`` is not a valid tag, or None when it is one."""
    if not tag:
        return 'the tag is empty'
    if len(tag) > TAG_MAX:
        return 'tag "%s..." is longer than %d characters' % (_show(tag[:20]), TAG_MAX)
    if not _TAG.fullmatch(tag):
        return ('tag "%s" must start with a letter, digit or "_" and contain only letters, '
                'digits, "_", "." and "-"' % _show(tag))
    return None


def _path_problem(path):
    """Why ``path`` is not a valid repository path, or None when it is one."""
    if path.lower() != path:
        return 'repository name must be lowercase'
    for component in path.split('/'):
        if not component:
            return 'repository name has an empty path component'
        if not _COMPONENT.fullmatch(component):
            return ('repository path component "%s" must be lowercase letters and digits, '
                    'separated by ".", "_", "__" or "-"' % _show(component))
    return None


def _split_registry(name):
    """``(registry, path)`` with Docker's defaults applied; nothing validated yet."""
    first, sep, rest = name.partition('/')
    if sep and ('.' in first or ':' in first or first == 'localhost' or first.startswith('[')):
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, name
    if registry == LEGACY_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and path and '/' not in path:
        path = OFFICIAL_PREFIX + path
    return registry, path


@record(frozen=True)
class Reference:
    """A normalised image reference; build one with :meth:`parse`.

    The constructor trusts its arguments: only :meth:`parse`, :meth:`with_tag`
    and :meth:`with_digest` validate.
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str, default_tag: bool = True) -> Reference:
        """Parse ``text`` as ``docker pull`` would; raise InvalidArgument when it is malformed.

        With ``default_tag`` (the default) a reference without tag and digest gets
        the tag ``latest``.
        """
        if not isinstance(text, str):
            raise InvalidArgument('invalid image reference %r: it must be a string' % (text,),
                                  value=text)
        if not text:
            raise _invalid(text, 'it is empty')
        if _FULL_ID.fullmatch(text):
            raise _invalid(text, 'a 64-digit hexadecimal string is an image ID, not a name')
        name, at, digest = text.partition('@')
        if at:
            problem = _digest_problem(digest)
            if problem:
                raise _invalid(text, problem)
        else:
            digest = None
        tag = None
        colon = name.rfind(':')
        if colon > name.rfind('/'):
            name, tag = name[:colon], name[colon + 1:]
            problem = _tag_problem(tag)
            if problem:
                raise _invalid(text, problem)
        if not name:
            raise _invalid(text, 'the repository name is empty')
        registry, path = _split_registry(name)
        if not _HOST.fullmatch(registry):
            raise _invalid(text, 'registry "%s" is not a host name, IPv4 address or [IPv6] '
                                 'address with an optional port' % _show(registry))
        if not path:
            raise _invalid(text, 'the repository name is empty')
        problem = _path_problem(path)
        if problem:
            raise _invalid(text, problem)
        if len(registry) + 1 + len(path) > NAME_MAX:
            raise _invalid(text, 'the repository name "%s/%s" is longer than %d characters' % (
                registry, path[:20] + '...', NAME_MAX))
        if tag is None and digest is None and default_tag:
            tag = DEFAULT_TAG
        return cls(registry, path, tag, digest)

    @property
    def name(self) -> str:
        """The full repository name, ``docker.io/library/busybox``."""
        return '%s/%s' % (self.registry, self.repository)

    def _suffix(self):
        return ((':' + self.tag) if self.tag is not None else '') + (
            ('@' + self.digest) if self.digest is not None else '')

    def __str__(self) -> str:
        """The full normalised form, ``docker.io/library/busybox:latest``."""
        return self.name + self._suffix()

    def familiar(self) -> str:
        """Docker's short display form: ``busybox:latest``, ``user/app:1.0``, ``localhost:5000/a:b``."""
        if self.registry != DEFAULT_REGISTRY:
            return str(self)
        path = self.repository
        if path.startswith(OFFICIAL_PREFIX) and path.count('/') == 1:
            path = path[len(OFFICIAL_PREFIX):]
        return path + self._suffix()

    def with_tag(self, tag: str | None) -> Reference:
        """A copy with ``tag`` (validated; None removes the tag)."""
        if tag is not None:
            problem = _tag_problem(tag) if isinstance(tag, str) else 'the tag must be a string'
            if problem:
                raise InvalidArgument('invalid tag "%s" for image "%s": %s' % (
                    _show(str(tag)), self, problem), value=tag)
        return replace(self, tag=tag)

    def with_digest(self, digest: str | None) -> Reference:
        """A copy with ``digest`` (validated; None removes the digest)."""
        if digest is not None:
            problem = (_digest_problem(digest) if isinstance(digest, str)
                       else 'the digest must be a string')
            if problem:
                raise InvalidArgument('invalid digest "%s" for image "%s": %s' % (
                    _show(str(digest)), self, problem), value=digest)
        return replace(self, digest=digest)


def normalize(text: str) -> str:
    """The full normalised form of ``text``: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    return str(Reference.parse(text))


def is_digest(text) -> bool:
    """True when ``text`` is a valid ``algorithm:hex`` digest of a supported algorithm."""
    return isinstance(text, str) and _digest_problem(text) is None


def parse_digest(text) -> str:
    """``text`` when it is a valid digest; InvalidArgument naming it otherwise."""
    problem = _digest_problem(text) if isinstance(text, str) else 'it must be a string'
    if problem:
        raise InvalidArgument('invalid digest "%s": %s' % (_show(str(text)), problem), value=text)
    return text


def looks_like_id(text) -> bool:
    """True for ``sha256:`` + 64 hex digits or 12 to 64 lowercase hex digits (an image ID or prefix).

    A 12..63-digit string is also a valid name; callers decide which wins.
    Only a 64-digit one is never a name (:meth:`Reference.parse` refuses it).
    """
    return isinstance(text, str) and _ID.fullmatch(text) is not None

# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading a tar stream whole (hostile input): every header parsed, huge metadata headers refused,
the end-of-archive marker required, every byte hashed (the diff ID) or handed to a sink."""

from __future__ import annotations

import hashlib
import tarfile
import zlib

from .errors import CorruptContent

_CHUNK = 1 << 20
_MAX_META_SIZE = 16 << 20   # largest pax / GNU long-name header we accept
_HEADER_ERROR = tarfile.HeaderError


class _CheckedTarInfo(tarfile.TarInfo):
    """Records why tarfile stopped, and refuses huge metadata headers (hostile input)."""

    # keeps tarfile's own parameter name, which shadows the module here
    @classmethod
    def fromtarfile(cls, tarfile):  # pylint: disable=redefined-outer-name
        tarfile._ctr_stop = None
        try:
            return super().fromtarfile(tarfile)
        except _HEADER_ERROR as exc:
            tarfile._ctr_stop = exc
            raise

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        obj = super().frombuf(buf, encoding, errors)
        if obj.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                        tarfile.GNUTYPE_LONGLINK) and obj.size > _MAX_META_SIZE:
            raise CorruptContent('tar metadata header "%s" is %d bytes long; more than %d is refused'
                                 % (obj.name, obj.size, _MAX_META_SIZE))
        return obj


TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, ValueError, OverflowError)


class TarScan:
    """Reads a tar stream member by member, all of it, and checks that it ends properly."""

    def __init__(self, raw, what, sink=None):
        self.what = what
        self._raw = raw
        self._sink = sink
        self._hash = hashlib.sha256() if sink is None else None
        try:
            self.tar = tarfile.open(fileobj=self, mode='r|', bufsize=_CHUNK, tarinfo=_CheckedTarInfo)
        except TAR_ERRORS as exc:
            raise self.corrupt(exc) from None

    def read(self, size=-1):
        """The stream tarfile reads: every byte is hashed (or handed to the sink) on its way."""
        data = self._raw.read(size)
        if data:
            if self._hash is not None:
                self._hash.update(data)
            else:
                self._sink.write(data)
        return data

    def members(self):
        while True:
            try:
                member = self.tar.next()
            except TAR_ERRORS as exc:
                raise self.corrupt(exc) from None
            if member is None:
                break
            self.tar.members = []     # stream mode: keep no index (Python < 3.13 does)
            yield member
        stop = getattr(self.tar, '_ctr_stop', None)
        if not isinstance(stop, tarfile.EOFHeaderError):
            if isinstance(stop, tarfile.InvalidHeaderError):
                raise CorruptContent('%s is corrupt: invalid tar header at byte %d (%s)'
                                     % (self.what, self.tar.offset, stop))
            raise CorruptContent('%s is truncated: it ends without the tar end-of-archive marker' % self.what)
        while self.read(_CHUNK):      # what follows the end-of-archive blocks counts too
            pass

    def diff_id(self):
        return 'sha256:' + self._hash.hexdigest()

    def corrupt(self, exc):
        if isinstance(exc, CorruptContent):
            return exc
        reason = str(exc) or type(exc).__name__
        if 'empty file' in reason:
            return CorruptContent('%s is empty' % self.what)
        return CorruptContent('%s is not a readable tar archive: %s' % (self.what, reason))

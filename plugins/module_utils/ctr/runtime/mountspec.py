# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bind mounts and tmpfs mounts as the user spells them and as a container records them.

* ``volumes: ["/host:/ctr[:mode]"]`` (``docker run -v``): the mode is a comma list of at most
  one each of ``ro``/``rw``, ``z``/``Z`` (SELinux labels: accepted, nothing is relabelled), a
  propagation (``rprivate`` default, ``private``, ``rshared``, ``shared``, ``rslave``, ``slave``)
  and a consistency (``consistent``, ``cached``, ``delegated``: ignored on Linux). A missing host
  directory is created at start, as Docker does. Kept in ``HostConfig.Binds``.
* ``mounts: [{type, source, target, read_only, propagation, tmpfs_size, tmpfs_mode}]``
  (``docker run --mount``): a bind source must exist. Kept in ``HostConfig.Mounts``.
* ``tmpfs: ["/ctr[:size=64m,mode=1777,...]"]`` (``docker run --tmpfs``). Kept in ``HostConfig.Tmpfs``.

``volumes: ["/ctr"]`` is an anonymous volume, ``volumes: ["name:/ctr[:ro,nocopy]"]`` a named one, and
``mounts: [{type: volume, source, target, read_only, no_copy}]`` either. A tmpfs is
``nosuid,nodev,noexec`` unless its options say otherwise, as in Docker. Mounting them is
:mod:`.mounts`' work; planning and comparing a container needs only this module.
"""

from __future__ import annotations

import os
import re

from .. import libc
from ..errors import InvalidArgument
from ..records import record
from ..regex import lazy

BIND, TMPFS, VOLUME = 'bind', 'tmpfs', 'volume'
DEFAULT_PROPAGATION = 'rprivate'
PROPAGATIONS = {
    'rprivate': libc.MS_PRIVATE | libc.MS_REC, 'private': libc.MS_PRIVATE,
    'rshared': libc.MS_SHARED | libc.MS_REC, 'shared': libc.MS_SHARED,
    'rslave': libc.MS_SLAVE | libc.MS_REC, 'slave': libc.MS_SLAVE,
}
# where each spec came from: the option, and the HostConfig field that keeps it
ORIGIN_VOLUMES, ORIGIN_MOUNTS, ORIGIN_TMPFS = 'volumes', 'mounts', 'tmpfs'

_RW_MODES = ('ro', 'rw')
_LABEL_MODES = ('z', 'Z')
_COPY_MODES = ('nocopy',)
_CONSISTENCY_MODES = ('consistent', 'cached', 'delegated', 'default')
_MODE_GROUPS = (_RW_MODES, _LABEL_MODES, tuple(PROPAGATIONS), _COPY_MODES, _CONSISTENCY_MODES)
_VOLUME_NAME = lazy(r'[A-Za-z0-9][A-Za-z0-9_.-]+\Z')
# runc refuses mounts inside /proc but over these files (lxcfs and friends need them)
PROC_ALLOWED = ('/proc/cpuinfo', '/proc/diskstats', '/proc/meminfo', '/proc/stat', '/proc/swaps', '/proc/uptime',
                '/proc/loadavg', '/proc/slabinfo', '/proc/net/dev', '/proc/sys/kernel/ns_last_pid',
                '/proc/sys/crypto/fips_enabled')

# --tmpfs flags: name -> (flags to set, flags to clear)
TMPFS_DEFAULT_FLAGS = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
TMPFS_FLAGS = {
    'exec': (0, libc.MS_NOEXEC), 'noexec': (libc.MS_NOEXEC, 0),
    'suid': (0, libc.MS_NOSUID), 'nosuid': (libc.MS_NOSUID, 0),
    'dev': (0, libc.MS_NODEV), 'nodev': (libc.MS_NODEV, 0),
    'atime': (0, libc.MS_NOATIME), 'noatime': (libc.MS_NOATIME, 0),
    'diratime': (0, libc.MS_NODIRATIME), 'nodiratime': (libc.MS_NODIRATIME, 0),
    'relatime': (libc.MS_RELATIME, 0), 'norelatime': (0, libc.MS_RELATIME),
    'strictatime': (libc.MS_STRICTATIME, 0), 'nostrictatime': (0, libc.MS_STRICTATIME),
    'sync': (libc.MS_SYNCHRONOUS, 0), 'async': (0, libc.MS_SYNCHRONOUS), 'dirsync': (libc.MS_DIRSYNC, 0),
}
# --tmpfs data: name -> the value's pattern (what tmpfs(5) takes)
_TMPFS_DATA = {
    'size': lazy(r'[0-9]+[kKmMgGtTpPeE%]?\Z'), 'nr_blocks': lazy(r'[0-9]+[kKmMgGtTpPeE%]?\Z'),
    'nr_inodes': lazy(r'[0-9]+[kKmMgGtTpPeE%]?\Z'), 'mode': lazy(r'[0-7]{1,4}\Z'),
    'uid': lazy(r'[0-9]+\Z'), 'gid': lazy(r'[0-9]+\Z'),
}
_RAM_SIZE = lazy(r'([0-9]+(?:\.[0-9]+)?) ?([kKmMgGtTpP]?)[iI]?[bB]?\Z')
_UNITS = {'': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30, 't': 1 << 40, 'p': 1 << 50}
_MOUNT_KEYS = ('type', 'source', 'target', 'read_only', 'propagation', 'tmpfs_size', 'tmpfs_mode', 'no_copy')


@record(frozen=True)
class MountSpec:
    """One bind, tmpfs or volume mount of a container, normalised (equal specs mean the same mount)."""

    type: str                       # 'bind', 'tmpfs' or 'volume'
    source: str                     # absolute host path (bind), volume name ('' anonymous), '' (tmpfs)
    target: str                     # absolute, normalised path in the container
    read_only: bool = False
    propagation: str = DEFAULT_PROPAGATION
    options: tuple[str, ...] = ()   # tmpfs: Docker's --tmpfs options but ro/rw ('size=64m', 'mode=1777', 'exec')
    origin: str = ORIGIN_MOUNTS     # 'volumes', 'mounts' or 'tmpfs': the option and HostConfig field it lives in
    mode: str = ''                  # volumes: the mode field as given ('ro', 'ro,z'); Docker's inspect Mode
    no_copy: bool = False           # volume: no copy-up of the image's content into a new volume


# -- parsing ----------------------------------------------------------------------------------------

def _invalid(option, value, message):
    return InvalidArgument('%s: %s' % (option, message), option=option, value=value)


def _abs_path(option, value, text, what):
    """``text`` as an absolute, normalised path (``//a/./b/`` -> ``/a/b``)."""
    if not isinstance(text, str) or not text:
        raise _invalid(option, value, '%s is missing in %s' % (what, _shown(value)))
    if '\0' in text:
        raise _invalid(option, value, '%s %r contains a NUL byte' % (what, text))
    if not text.startswith('/'):
        raise _invalid(option, value, '%s "%s" of %s must be absolute' % (what, text, _shown(value)))
    return '/' + os.path.normpath(text).lstrip('/')


def _shown(value):
    return '"%s"' % value if isinstance(value, str) else repr(value)


def _target(option, value, text):
    target = _abs_path(option, value, text, 'container path')
    if target == '/':
        raise _invalid(option, value, 'the container path of %s cannot be "/"' % _shown(value))
    if (target == '/proc' or target.startswith('/proc/')) and target not in PROC_ALLOWED:
        raise _invalid(option, value, 'container path "%s" is inside /proc, where only %s may be mounted over'
                       % (target, ', '.join(PROC_ALLOWED)))
    return target


def parse_volume(text):
    """A ``volumes`` entry, ``/host:/ctr[:mode]``, as a bind :class:`MountSpec`."""
    option = ORIGIN_VOLUMES
    if not isinstance(text, str) or not text:
        raise _invalid(option, text, '%s is not of the form /host/path:/container/path[:mode]' % _shown(text))
    if '\0' in text:
        raise _invalid(option, text, '%r contains a NUL byte' % text)
    fields = text.split(':')
    if len(fields) > 3:
        raise _invalid(option, text, '"%s" has more than three ":"-separated fields '
                       '(use /host/path:/container/path[:mode])' % text)
    if len(fields) == 1:             # an anonymous volume
        return MountSpec(VOLUME, '', _target(option, text, fields[0]), origin=ORIGIN_VOLUMES)
    if len(fields) == 2 and _valid_mode(fields[1]):
        raise _invalid(option, text, '"%s" has no host path (an anonymous volume takes no mode)' % text)
    source, target = fields[0], fields[1]
    mode = fields[2] if len(fields) == 3 else ''
    if not source:
        raise _invalid(option, text, 'the host path of "%s" is empty; it must be an absolute path' % text)
    if not _valid_mode(mode):
        raise _invalid(option, text, 'mode "%s" of "%s" is not valid (a comma list of at most one each of ro or rw, '
                       'z or Z, a propagation such as rslave, and a consistency)' % (mode, text))
    parts = mode.split(',') if mode else []
    if not source.startswith('/'):
        if not _VOLUME_NAME.match(source):
            raise _invalid(option, text, 'host path "%s" of "%s" must be absolute (or a volume name: letters, '
                           'digits and _ . -)' % (source, text))
        if any(p in PROPAGATIONS for p in parts):
            raise _invalid(option, text, 'a volume takes no propagation, but "%s" has one' % text)
        return MountSpec(VOLUME, source, _target(option, text, target), read_only='ro' in parts,
                         origin=ORIGIN_VOLUMES, mode=mode, no_copy='nocopy' in parts)
    if 'nocopy' in parts:
        raise _invalid(option, text, 'mode "nocopy" of "%s" applies to volumes, not to a bind mount' % text)
    propagation = next((p for p in parts if p in PROPAGATIONS), DEFAULT_PROPAGATION)
    return MountSpec(BIND, _abs_path(option, text, source, 'host path'), _target(option, text, target),
                     read_only='ro' in parts, propagation=propagation, origin=ORIGIN_VOLUMES, mode=mode)


def _valid_mode(mode):
    """Docker's rule: known words only, at most one of each kind."""
    if mode == '':
        return True
    counts = [0] * len(_MODE_GROUPS)
    for part in mode.split(','):
        group = next((i for i, words in enumerate(_MODE_GROUPS) if part in words), None)
        if group is None:
            return False
        counts[group] += 1
    return max(counts) <= 1


def parse_mount(entry, check_source=True):
    """A ``mounts`` entry (dict with the keys of ``_MOUNT_KEYS``; None means unset) as a :class:`MountSpec`.

    ``check_source``: a bind source must exist now (Docker's ``--mount`` refuses a missing one).
    """
    option = ORIGIN_MOUNTS
    if not isinstance(entry, dict):
        raise _invalid(option, entry, '%r is not a dict with type, source and target' % (entry,))
    unknown = sorted(str(k) for k in entry if k not in _MOUNT_KEYS)
    if unknown:
        raise _invalid(option, entry, 'unknown key "%s" in %r (known: %s)' % (unknown[0], entry, ', '.join(_MOUNT_KEYS)))
    given = {k: v for k, v in entry.items() if v is not None}
    kind = given.get('type', VOLUME)
    target = _target(option, entry, given.get('target'))
    if kind not in (BIND, TMPFS, VOLUME):
        raise _invalid(option, entry, 'type "%s" of the mount on "%s" is not bind, tmpfs or volume' % (kind, target))
    read_only = given.get('read_only', False)
    if not isinstance(read_only, bool):
        raise _invalid(option, entry, 'read_only %r of the mount on "%s" is not a boolean' % (read_only, target))
    if kind == BIND:
        return _bind_from_entry(entry, given, target, read_only, check_source)
    if kind == VOLUME:
        return _volume_from_entry(entry, given, target, read_only)
    if 'no_copy' in given:
        raise _invalid(option, entry, 'no_copy applies to volumes, not to the tmpfs on "%s"' % target)
    for key in ('source', 'propagation'):
        if given.get(key) not in (None, ''):
            raise _invalid(option, entry, 'a tmpfs takes no %s, but the one on "%s" has %s %r'
                           % (key, target, key, given[key]))
    options = []
    size = _ram_bytes(given.get('tmpfs_size', 0), entry, target)
    if size:
        options.append('size=%d' % size)
    mode = _tmpfs_mode(given.get('tmpfs_mode'), entry, target)
    if mode is not None:
        options.append('mode=%o' % mode)
    return MountSpec(TMPFS, '', target, read_only=read_only, options=tuple(options), origin=ORIGIN_MOUNTS)


def _volume_from_entry(entry, given, target, read_only):
    option = ORIGIN_MOUNTS
    for key in ('tmpfs_size', 'tmpfs_mode', 'propagation'):
        if key in given:
            raise _invalid(option, entry, 'a volume takes no %s, but the one on "%s" has %r' % (key, target, given[key]))
    source = given.get('source') or ''
    if source and (not isinstance(source, str) or not _VOLUME_NAME.match(source)):
        raise _invalid(option, entry, 'volume name %r of the mount on "%s" is not a name (letters, digits and _ . -)'
                       % (source, target))
    no_copy = given.get('no_copy', False)
    if not isinstance(no_copy, bool):
        raise _invalid(option, entry, 'no_copy %r of the mount on "%s" is not a boolean' % (no_copy, target))
    return MountSpec(VOLUME, source, target, read_only=read_only, origin=ORIGIN_MOUNTS, no_copy=no_copy)


def _bind_from_entry(entry, given, target, read_only, check_source):
    option = ORIGIN_MOUNTS
    if 'no_copy' in given:
        raise _invalid(option, entry, 'no_copy applies to volumes, not to the bind mount on "%s"' % target)
    for key in ('tmpfs_size', 'tmpfs_mode'):
        if key in given:
            raise _invalid(option, entry, 'a bind mount takes no %s, but the one on "%s" has %r'
                           % (key, target, given[key]))
    source = _abs_path(option, entry, given.get('source'), 'host path')
    propagation = given.get('propagation') or DEFAULT_PROPAGATION
    if propagation not in PROPAGATIONS:
        raise _invalid(option, entry, 'propagation "%s" of the mount on "%s" is not one of %s'
                       % (propagation, target, ', '.join(PROPAGATIONS)))
    if check_source and not os.path.exists(source):
        raise _invalid(option, entry, 'bind source path "%s" of the mount on "%s" does not exist' % (source, target))
    return MountSpec(BIND, source, target, read_only=read_only, propagation=propagation, origin=ORIGIN_MOUNTS)


def _ram_bytes(value, entry, target):
    """Docker's RAMInBytes: 64m, 1.5g, 512KiB, 1048576 (binary units)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _RAM_SIZE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise _invalid(ORIGIN_MOUNTS, entry, 'tmpfs_size %r of the mount on "%s" is not a size such as 64m or 1g'
                       % (value, target))
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _tmpfs_mode(value, entry, target):
    """An octal string ('1777') or the mode as a number (0o1777); None when unset."""
    if value is None or value == '':
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and re.match(r'0?[0-7]{1,4}\Z', value.strip()):
        mode = int(value.strip(), 8)
    else:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise _invalid(ORIGIN_MOUNTS, entry, 'tmpfs_mode %r of the mount on "%s" is not an octal mode such as 1777'
                       % (value, target))
    return mode


def parse_tmpfs(text):
    """A ``tmpfs`` entry, ``/ctr[:opt,opt=value,...]``, as a tmpfs :class:`MountSpec`."""
    if not isinstance(text, str):
        raise _invalid(ORIGIN_TMPFS, text, '%r is not of the form /container/path[:options]' % (text,))
    target, _sep, options = text.partition(':')
    return _tmpfs_spec(text, target, options)


def _tmpfs_spec(value, target_text, options_text):
    option = ORIGIN_TMPFS
    target = _target(option, value, target_text)
    read_only, options = False, []
    for opt in (o.strip() for o in options_text.split(',')):
        if not opt:
            continue
        key, sep, val = opt.partition('=')
        if opt in _RW_MODES:
            read_only = opt == 'ro'
        elif not sep and opt in TMPFS_FLAGS:
            options.append(opt)
        elif sep and key in _TMPFS_DATA:
            if not _TMPFS_DATA[key].match(val):
                raise _invalid(option, value, 'option "%s" of the tmpfs on "%s" has an invalid value "%s"'
                               % (key, target, val))
            options.append(opt)
        else:
            raise _invalid(option, value, 'unknown option "%s" for the tmpfs on "%s" (known: ro, rw, %s, %s)'
                           % (opt, target, ', '.join(TMPFS_FLAGS), ', '.join(k + '=' for k in _TMPFS_DATA)))
    return MountSpec(TMPFS, '', target, read_only=read_only, options=tuple(options), origin=ORIGIN_TMPFS)


def _as_list(value, option):
    if value is None:
        return []
    if isinstance(value, (str, bytes, dict)):
        raise _invalid(option, value, 'expected a list, got %r' % (value,))
    return list(value)


def parse_all(volumes=None, mounts=None, tmpfs=None, check_source=True):
    """Every mount of a container from the three options; a target used twice is refused."""
    specs = [parse_volume(v) for v in _as_list(volumes, ORIGIN_VOLUMES)]
    specs += [parse_mount(m, check_source) for m in _as_list(mounts, ORIGIN_MOUNTS)]
    if isinstance(tmpfs, dict):             # Docker's HostConfig.Tmpfs shape is accepted too
        specs += [_tmpfs_spec(t, t, o or '') for t, o in tmpfs.items()]
    else:
        specs += [parse_tmpfs(t) for t in _as_list(tmpfs, ORIGIN_TMPFS)]
    seen = {}
    for spec in specs:
        if spec.target in seen:
            raise InvalidArgument('%s: "%s" is already the target of a mount in %s (duplicate mount point)'
                                  % (spec.origin, spec.target, seen[spec.target].origin),
                                  option=spec.origin, value=spec.target)
        seen[spec.target] = spec
    return specs


def parse_mount_flag(text):
    """``docker run --mount``'s ``type=bind,source=/a,target=/b,readonly`` as a ``mounts`` dict."""
    keys = {'type': 'type', 'source': 'source', 'src': 'source', 'target': 'target', 'destination': 'target',
            'dst': 'target', 'bind-propagation': 'propagation', 'tmpfs-size': 'tmpfs_size',
            'tmpfs-mode': 'tmpfs_mode'}
    entry = {}
    for field in (f.strip() for f in text.split(',')):
        if not field:
            continue
        key, sep, value = field.partition('=')
        key = key.strip().lower()
        if key in ('readonly', 'ro'):
            if sep and value.lower() not in ('true', '1', 'false', '0'):
                raise _invalid(ORIGIN_MOUNTS, text, 'readonly "%s" in "%s" is not true or false' % (value, text))
            entry['read_only'] = not sep or value.lower() in ('true', '1')
        elif key in keys and sep:
            entry[keys[key]] = value
        elif key == 'consistency':
            continue                        # macOS only; Docker ignores it on Linux
        elif key == 'volume-nocopy':
            entry['no_copy'] = not sep or value.lower() in ('true', '1')
        else:
            raise _invalid(ORIGIN_MOUNTS, text, 'unexpected field "%s" in "%s"' % (field, text))
    return entry


# -- the container's HostConfig and inspect ------------------------------------------------------------

def to_host_config(specs):
    """``{'Binds': [...], 'Mounts': [...], 'Tmpfs': {...}}`` as Docker keeps them in a container's HostConfig."""
    binds, mounts, tmpfs = [], [], {}
    for spec in specs:
        if spec.origin == ORIGIN_VOLUMES and spec.type == VOLUME and not spec.source:
            binds.append(spec.target)           # an anonymous volume, as docker run -v /path keeps it
        elif spec.origin == ORIGIN_VOLUMES:
            binds.append('%s:%s%s' % (spec.source, spec.target, ':' + spec.mode if spec.mode else ''))
        elif spec.origin == ORIGIN_TMPFS:
            tmpfs[spec.target] = ','.join(spec.options + (('ro',) if spec.read_only else ()))
        else:
            mounts.append(_api_mount(spec))
    return {'Binds': binds, 'Mounts': mounts, 'Tmpfs': tmpfs}


def _api_mount(spec):
    """Docker's API ``Mount`` (empty fields left out, as Docker's JSON does)."""
    out = {'Type': spec.type}
    if spec.source:
        out['Source'] = spec.source
    out['Target'] = spec.target
    if spec.read_only:
        out['ReadOnly'] = True
    if spec.type == BIND and spec.propagation != DEFAULT_PROPAGATION:
        out['BindOptions'] = {'Propagation': spec.propagation}
    if spec.type == VOLUME and spec.no_copy:
        out['VolumeOptions'] = {'NoCopy': True}
    if spec.type == TMPFS:
        data = dict(o.split('=', 1) for o in spec.options)
        tmpfs_options = {}
        if data.get('size'):
            tmpfs_options['SizeBytes'] = int(data['size'])
        if data.get('mode'):
            tmpfs_options['Mode'] = int(data['mode'], 8)
        if tmpfs_options:
            out['TmpfsOptions'] = tmpfs_options
    return out


def from_host_config(host_config):
    """The :class:`MountSpec` list kept in a HostConfig (the inverse of :func:`to_host_config`)."""
    entries = []
    for item in host_config.get('Mounts') or ():
        bind_options, tmpfs_options = item.get('BindOptions') or {}, item.get('TmpfsOptions') or {}
        entries.append({'type': item.get('Type'), 'source': item.get('Source') or None, 'target': item.get('Target'),
                        'read_only': bool(item.get('ReadOnly')), 'propagation': bind_options.get('Propagation'),
                        'tmpfs_size': tmpfs_options.get('SizeBytes'), 'tmpfs_mode': tmpfs_options.get('Mode'),
                        'no_copy': True if (item.get('VolumeOptions') or {}).get('NoCopy') else None})
    return parse_all(host_config.get('Binds') or (), entries, host_config.get('Tmpfs') or {}, check_source=False)


def inspect_mounts(specs, volume_source=None):
    """Docker inspect's ``Mounts``: binds, volumes and ``mounts`` tmpfs (Docker leaves ``--tmpfs`` ones out).

    ``volume_source(spec)`` gives a volume's ``(name, mountpoint)``.
    """
    out = []
    for spec in specs:
        if spec.origin == ORIGIN_TMPFS:
            continue
        if spec.type == VOLUME:
            name, source = volume_source(spec) if volume_source else (spec.source, '')
            out.append({'Type': VOLUME, 'Name': name, 'Source': source, 'Destination': spec.target,
                        'Driver': 'local', 'Mode': spec.mode, 'RW': not spec.read_only, 'Propagation': ''})
            continue
        out.append({'Type': spec.type, 'Source': spec.source, 'Destination': spec.target, 'Mode': spec.mode,
                    'RW': not spec.read_only, 'Propagation': spec.propagation if spec.type == BIND else ''})
    return out


__all__ = [
    'BIND', 'TMPFS', 'VOLUME', 'DEFAULT_PROPAGATION', 'PROPAGATIONS', 'PROC_ALLOWED', 'TMPFS_DEFAULT_FLAGS',
    'TMPFS_FLAGS', 'MountSpec', 'parse_volume', 'parse_mount', 'parse_tmpfs', 'parse_all', 'parse_mount_flag',
    'to_host_config', 'from_host_config', 'inspect_mounts',
]

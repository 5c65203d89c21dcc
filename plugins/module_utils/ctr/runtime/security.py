# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a container may do: capabilities, masked and read-only kernel paths, and its user.

Capabilities follow Docker (moby ``oci/caps``): the default set below, adjusted by
``capabilities`` (cap-add) and ``cap_drop``; ``privileged`` keeps every capability.
Docker gives root in the container that set as bounding, permitted and effective
set, and a non-root user only the bounding set (execve gives a non-root user no
capabilities, so Docker does not pretend otherwise). The inheritable and ambient
sets stay empty: since CVE-2022-24769 neither Docker nor runc fills the inheritable
set, which would let file capabilities of a binary raise a non-root process.

Masked and read-only paths are runc's defaults, applied inside the container's own
mount namespace: a file is hidden under a bind mount of ``/dev/null``, a directory
under an empty read-only tmpfs; a read-only path is bound onto itself and remounted
read-only.

Users are resolved like runc's ``libcontainer/user`` (which Docker uses) from the
image's ``/etc/passwd`` and ``/etc/group``. The rootfs is untrusted: those files are
found with ``openat`` one component at a time, never following a symlink out of
the rootfs (a symlink is resolved as if the rootfs were ``/``, as runc's securejoin
does), and only a regular file is read.
"""

from __future__ import annotations

import errno
import os
import stat

from .. import libc
from ..errors import InvalidArgument, KernelError, NotFound, UnsafeContent
from ..records import record
from ..regex import lazy
from .caps import MAX_CAP_BITS, cap_name, caps_from_mask, caps_mask, kernel_last_cap


@record(frozen=True)
class CapState:
    """A process's capability sets as masks (``/proc/PID/status``) and its no_new_privs flag."""

    inheritable: int = 0
    permitted: int = 0
    effective: int = 0
    bounding: int = 0
    ambient: int = 0
    no_new_privs: bool | None = None

    def names(self, which):
        """The names in one set: ``state.names('effective')``."""
        return caps_from_mask(getattr(self, which))


_STATUS_FIELDS = {'CapInh': 'inheritable', 'CapPrm': 'permitted', 'CapEff': 'effective',
                  'CapBnd': 'bounding', 'CapAmb': 'ambient'}


def parse_cap_status(text):
    """Read the Cap* and NoNewPrivs lines of a ``/proc/PID/status`` text."""
    values = {}
    for line in text.splitlines():
        key, _sep, value = line.partition(':')
        value = value.strip()
        if key in _STATUS_FIELDS:
            values[_STATUS_FIELDS[key]] = int(value, 16)
        elif key == 'NoNewPrivs':
            values['no_new_privs'] = value == '1'
    return CapState(**values)


def current_caps(pid='self'):
    """The capability sets of process ``pid`` as the kernel reports them."""
    path = '/proc/%s/status' % pid
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return parse_cap_status(f.read())
    except FileNotFoundError:
        raise NotFound('process %s does not exist' % pid, pid=pid) from None
    except OSError as exc:
        raise KernelError.from_oserror('read', path, exc) from None


def drop_bounding_set(caps):
    """Drop every capability not in ``caps`` from the bounding set (needs CAP_SETPCAP).

    A capability the kernel does not know answers EINVAL and is skipped.
    """
    keep = caps_mask(caps)
    for number in range(min(kernel_last_cap(), MAX_CAP_BITS - 1) + 1):
        if keep >> number & 1:
            continue
        try:
            if libc.prctl(libc.PR_CAPBSET_READ, number) == 0:
                continue
            libc.prctl(libc.PR_CAPBSET_DROP, number)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                continue
            raise KernelError.from_oserror('prctl PR_CAPBSET_DROP %s' % cap_name(number), None, exc) from None


def _set_caps(mask):
    """capset: effective = permitted = ``mask`` (what this process holds of it), inheritable and ambient empty."""
    try:
        held = libc.capget()[1]
        target = mask & held
        libc.capset(target, target, 0)
    except OSError as exc:
        raise KernelError.from_oserror('capset', None, exc) from None
    try:
        libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError as exc:
        if exc.errno != errno.EINVAL:      # kernels before 4.3 have no ambient set
            raise KernelError.from_oserror('prctl PR_CAP_AMBIENT_CLEAR_ALL', None, exc) from None


def apply_caps(caps):
    """Cut this (root) process to ``caps`` (names or numbers), as Docker sets up root in a container.

    Bounding set: only ``caps``; permitted = effective = ``caps`` (those this process
    holds: a capability the host withheld cannot be granted); inheritable and ambient:
    empty. Call it while still root. A later ``setresuid`` to a non-zero uid clears the
    permitted and effective sets, which leaves a non-root user exactly what Docker gives
    it: the bounding set and nothing else. That ``setresuid`` needs CAP_SETUID, so when a
    set without it may meet a non-root user, use :func:`become`, which switches user
    before it cuts the capabilities.
    """
    drop_bounding_set(caps)
    _set_caps(caps_mask(caps))


def become(uid, gid, additional_gids, caps, no_new_privs=False):
    """Switch this (root) process to its container identity in runc's order.

    Bounding set first (needs CAP_SETPCAP), then supplementary groups, gid and uid
    (need CAP_SETGID and CAP_SETUID, whatever ``caps`` says), then the capability sets:
    ``caps`` for uid 0, none for another uid (Docker's rule), then no_new_privs.
    ``caps`` None keeps every capability (privileged).
    """
    if caps is not None:
        drop_bounding_set(caps)
    for call, func, args in (('setgroups', os.setgroups, (list(additional_gids),)),
                             ('setresgid %d' % gid, os.setresgid, (gid, gid, gid)),
                             ('setresuid %d' % uid, os.setresuid, (uid, uid, uid))):
        try:
            func(*args)
        except OSError as exc:
            raise KernelError.from_oserror(call, None, exc) from None
    if uid != 0:
        _set_caps(0)
    elif caps is not None:
        _set_caps(caps_mask(caps))
    if no_new_privs:
        set_no_new_privs()


def set_no_new_privs():
    """prctl(PR_SET_NO_NEW_PRIVS): execve can never again grant privileges (setuid bits, file caps)."""
    try:
        libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1)
    except OSError as exc:
        raise KernelError.from_oserror('prctl PR_SET_NO_NEW_PRIVS', None, exc) from None


# -- paths inside an untrusted root ---------------------------------------------------------------

_O_PATH = getattr(os, 'O_PATH', 0o10000000)
_MAX_SYMLINK_HOPS = 40


def _split(path):
    return [part for part in path.split('/') if part not in ('', '.')]


def open_in_root(root_fd, path, create=None):
    """An ``O_PATH`` descriptor of ``path`` resolved inside the directory ``root_fd``.

    With ``create(parent_fd, name, more_follows)``, a missing component is made where
    the walk stands and opened again (mount points: a dangling link of the image makes
    its target inside the root, never outside).

    Every component is opened with ``openat(O_NOFOLLOW)`` relative to the previous one;
    a symlink is read and resolved as if ``root_fd`` were ``/`` (absolute targets
    restart at the root, ``..`` stops at the root, at most 40 links), so no path, link
    or concurrent rename leads out of it. Raises OSError (ENOENT, ENOTDIR, ELOOP).
    The caller closes the descriptor.
    """
    todo = _split(path)[::-1]
    stack = []                      # descriptors below the root, deepest last
    hops = created = 0
    try:
        while todo:
            part = todo.pop()
            if part == '..':
                if stack:
                    os.close(stack.pop())
                continue
            parent = stack[-1] if stack else root_fd
            try:
                fd = os.open(part, _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            except FileNotFoundError:
                if create is None:
                    raise
                created += 1
                if created > 4 * _MAX_SYMLINK_HOPS + 256:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                create(parent, part, bool(todo))
                todo.append(part)           # open what is there now
                continue
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                os.close(fd)
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=parent)
                if not target:
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                if target.startswith('/'):
                    while stack:
                        os.close(stack.pop())
                todo.extend(_split(target)[::-1])
                continue
            stack.append(fd)
            if todo and not stat.S_ISDIR(mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return stack.pop() if stack else os.open('.', _O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root_fd)
    finally:
        for fd in stack:
            os.close(fd)


def _open_root(rootfs):
    """A directory descriptor for ``rootfs`` (a path, or a descriptor that is duplicated)."""
    if isinstance(rootfs, int):
        return os.dup(rootfs)
    try:
        return os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise KernelError.from_oserror('open rootfs', rootfs, exc) from None


def read_file_in_root(rootfs, path, limit=16 << 20):
    """The text of the regular file ``path`` inside ``rootfs`` (untrusted), or None if it does not exist.

    A special file (device, FIFO, socket, directory) is refused with UnsafeContent;
    at most ``limit`` bytes are read.
    """
    root_fd = _open_root(rootfs)
    try:
        try:
            fd = open_in_root(root_fd, path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise KernelError.from_oserror('resolve in the image', path, exc) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafeContent('the image\'s %s is not a regular file' % path, path=path)
            # reopen exactly the inode found, without another path walk
            data_fd = os.open('/proc/self/fd/%d' % fd, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise KernelError.from_oserror('open in the image', path, exc) from None
        finally:
            os.close(fd)
        with os.fdopen(data_fd, 'rb') as f:
            return f.read(limit).decode('utf-8', 'surrogateescape')
    finally:
        os.close(root_fd)


# -- masked and read-only paths -------------------------------------------------------------------

# runc's defaults (and Docker's: moby oci/defaults.go)
MASKED_PATHS = (
    '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
    '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
)
READONLY_PATHS = ('/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger')
_NULL_DEVICE = os.makedev(1, 3)
_MASK_TMPFS_FLAGS = libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
# statvfs f_flag bits that equal the MS_ flags a bind remount must keep (locked in user namespaces)
_KEPT_FLAGS = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC


def _fd_path(fd):
    return '/proc/self/fd/%d' % fd


def _open_target(root_fd, path):
    try:
        return open_in_root(root_fd, path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise KernelError.from_oserror('resolve', path, exc) from None


def _null_device():
    """An O_PATH descriptor of /dev/null, checked to be the 1:3 character device."""
    fd = os.open('/dev/null', _O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISCHR(st.st_mode) or st.st_rdev != _NULL_DEVICE:
        os.close(fd)
        raise UnsafeContent('/dev/null is not the null device, so paths cannot be masked with it', path='/dev/null')
    return fd


def mask_paths(root='/', paths=MASKED_PATHS):
    """Hide ``paths`` (inside ``root``) in this mount namespace; return those that existed.

    A file gets a bind mount of /dev/null, a directory an empty read-only tmpfs. Paths
    are resolved inside ``root`` (see :func:`open_in_root`) and mounted through their
    descriptor, so a symlink never redirects a mount out of it. Call it in the
    container's own mount namespace, after /proc and /sys are mounted.
    """
    done = []
    root_fd = _open_root(root)
    null_fd = None
    try:
        for path in paths:
            fd = _open_target(root_fd, path)
            if fd is None:
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    _mount('tmpfs', _fd_path(fd), 'tmpfs', _MASK_TMPFS_FLAGS, path)
                else:
                    if null_fd is None:
                        null_fd = _null_device()
                    _mount(_fd_path(null_fd), _fd_path(fd), None, libc.MS_BIND, path)
            finally:
                os.close(fd)
            done.append(path)
    finally:
        os.close(root_fd)
        if null_fd is not None:
            os.close(null_fd)
    return done


def readonly_paths(root='/', paths=READONLY_PATHS):
    """Make ``paths`` (inside ``root``) read-only in this mount namespace; return those that existed.

    Each is bound onto itself (recursively) and the bind remounted read-only, keeping
    its nosuid/nodev/noexec flags as runc does.
    """
    done = []
    root_fd = _open_root(root)
    try:
        for path in paths:
            fd = _open_target(root_fd, path)
            if fd is None:
                continue
            try:
                _mount(_fd_path(fd), _fd_path(fd), None, libc.MS_BIND | libc.MS_REC, path)
            finally:
                os.close(fd)
            fd = _open_target(root_fd, path)        # the new bind mount, now on top
            if fd is None:
                raise KernelError('remount read-only "%s": it vanished after the bind mount' % path, path=path)
            try:
                kept = os.statvfs(_fd_path(fd)).f_flag & _KEPT_FLAGS
                _mount(None, _fd_path(fd), None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | kept, path)
            finally:
                os.close(fd)
            done.append(path)
    finally:
        os.close(root_fd)
    return done


def _mount(source, target, fstype, flags, shown):
    try:
        libc.mount(source, target, fstype, flags)
    except OSError as exc:
        raise KernelError.from_oserror('mount', shown, exc) from None


# -- users ------------------------------------------------------------------------------------------

MAX_ID = (1 << 31) - 1          # runc's range for uids and gids
_NUMERIC = lazy(r'[0-9]+\Z')


@record(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str


@record(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


@record(frozen=True)
class ExecUser:
    """Who the container's process runs as; ``additional_gids`` goes to setgroups()."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


def _id(text):
    if not _NUMERIC.match(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def _records(text, min_fields):
    for line in (text or '').splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        fields = line.split(':')
        if len(fields) >= min_fields:
            yield fields


def parse_passwd(text):
    """The entries of an /etc/passwd text; lines without numeric uid and gid (NIS ``+``, junk) are skipped."""
    entries = []
    for fields in _records(text, 4):
        fields += [''] * (7 - len(fields))
        uid, gid = _id(fields[2]), _id(fields[3])
        if uid is None or gid is None:
            continue
        entries.append(PasswdEntry(fields[0], uid, gid, fields[4], fields[5], fields[6]))
    return entries


def parse_group(text):
    """The entries of an /etc/group text; lines without a numeric gid are skipped."""
    entries = []
    for fields in _records(text, 3):
        gid = _id(fields[2])
        if gid is None:
            continue
        members = tuple(m.strip() for m in fields[3].split(',') if m.strip()) if len(fields) > 3 else ()
        entries.append(GroupEntry(fields[0], gid, members))
    return entries


def _split_user_spec(spec):
    if spec is None:
        spec = ''
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = str(spec)
    if not isinstance(spec, str):
        raise InvalidArgument('user %r is not a user name or uid' % (spec,), option='user', value=spec)
    if '\0' in spec or spec.count(':') > 1:
        raise InvalidArgument('user "%s" is not of the form name, uid, name:group or uid:gid' % spec,
                              option='user', value=spec)
    user, _sep, group = spec.partition(':')
    return spec, user, group


def _checked_id(text, spec, what):
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument('user "%s": %s %s is out of range (0 to %d)' % (spec, what, text, MAX_ID),
                              option='user', value=spec)
    return value


def lookup_user(spec, passwd_text, group_text):
    """Resolve a ``user`` value against passwd and group texts (None: the file does not exist).

    runc's rules (``libcontainer/user.GetExecUser``), with Docker's additions:

    * '' is root: the passwd entry of uid 0 if any, else uid 0, gid 0;
    * a numeric user is always a uid, a name must have a passwd entry;
    * a numeric uid without an entry gets gid 0 and home '/';
    * without an explicit group, the gid is the passwd entry's and the supplementary
      groups are those of /etc/group listing the user's name;
    * an explicit group (name, or numeric gid with or without an entry) sets the gid
      and no supplementary groups are looked up;
    * ``additional_gids`` starts with the gid (Docker puts it first), without repeats.
    """
    spec, user, group = _split_user_spec(spec)
    users = parse_passwd(passwd_text)
    if user == '':
        match = next((u for u in users if u.uid == 0), None)
    elif _NUMERIC.match(user):
        uid = _checked_id(user, spec, 'uid')
        match = next((u for u in users if u.uid == uid), None)
    else:
        match = next((u for u in users if u.name == user), None)
        if match is None:
            raise NotFound('user "%s": no user "%s" in the image\'s /etc/passwd' % (spec, user),
                           option='user', value=spec)
    if match is not None:
        uid, gid, home, name = match.uid, match.gid, match.home or '/', match.name
    else:
        uid, gid, home, name = (int(user) if user else 0), 0, '/', None
    groups = parse_group(group_text)
    supplementary = []
    if group:
        if _NUMERIC.match(group):
            gid = _checked_id(group, spec, 'gid')
        else:
            entry = next((g for g in groups if g.name == group), None)
            if entry is None:
                raise NotFound('user "%s": no group "%s" in the image\'s /etc/group' % (spec, group),
                               option='user', value=spec)
            gid = entry.gid
    elif name is not None:
        supplementary = [g.gid for g in groups if name in g.members]
    additional = []
    for value in [gid] + supplementary:
        if value not in additional:
            additional.append(value)
    return ExecUser(uid, gid, tuple(additional), home)


def resolve_user(spec, rootfs):
    """Resolve a ``user`` value from the image's /etc/passwd and /etc/group inside ``rootfs``.

    ``rootfs`` is a path or a directory descriptor of the container's (untrusted) root;
    the files are read with :func:`read_file_in_root`, so a symlink cannot make us read
    a file of the host. Returns an :class:`ExecUser` (uid, gid, additional_gids, home).
    """
    _split_user_spec(spec)          # refuse a malformed value before touching the rootfs
    passwd = read_file_in_root(rootfs, '/etc/passwd')
    group = read_file_in_root(rootfs, '/etc/group')
    return lookup_user(spec, passwd, group)


__all__ = [
    'MASKED_PATHS', 'READONLY_PATHS', 'CapState', 'ExecUser', 'PasswdEntry', 'GroupEntry',
    'parse_cap_status', 'current_caps', 'drop_bounding_set', 'apply_caps', 'become',
    'set_no_new_privs', 'open_in_root', 'read_file_in_root', 'mask_paths', 'readonly_paths',
    'parse_passwd', 'parse_group', 'lookup_user', 'resolve_user',
]

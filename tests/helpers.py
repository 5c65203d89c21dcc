# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain helpers shared by the unit and integration tests (no fixtures here; see conftest.py)."""

from __future__ import annotations

import contextlib

import functools
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODULE_UTILS = REPO_ROOT / 'plugins' / 'module_utils'
MODULES = REPO_ROOT / 'plugins' / 'modules'
TEST_CALLBACKS = REPO_ROOT / 'tests' / 'support' / 'callback'

COLLECTION_NAMESPACE = 'daemonless'
COLLECTION_NAME = 'ctr'

# 2000-01-01T00:00:00Z: every entry of a generated rootfs carries this mtime.
FIXED_MTIME = 946684800
HOST_BUSYBOX = Path('/bin/busybox')

PASSWD = (
    'root:x:0:0:root:/root:/bin/sh\n'
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'
)
GROUP = (
    'root:x:0:\n'
    'nogroup:x:65534:\n'
)

_ELF_MAGIC = b'\x7fELF'
_PT_INTERP = 3


def is_static_elf(path: Path) -> bool:
    """Return True when PATH is an ELF executable without a program interpreter (statically linked)."""
    with open(path, 'rb') as handle:
        header = handle.read(64)
        if len(header) < 64 or header[:4] != _ELF_MAGIC:
            return False
        is_64 = header[4] == 2
        order = 'little' if header[5] == 1 else 'big'
        if is_64:
            phoff = int.from_bytes(header[32:40], order)
            phentsize = int.from_bytes(header[54:56], order)
            phnum = int.from_bytes(header[56:58], order)
        else:
            phoff = int.from_bytes(header[28:32], order)
            phentsize = int.from_bytes(header[42:44], order)
            phnum = int.from_bytes(header[44:46], order)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    for index in range(phnum):
        entry = table[index * phentsize:index * phentsize + 4]
        if int.from_bytes(entry, order) == _PT_INTERP:
            return False
    return True


def check_host_busybox(busybox: Path = HOST_BUSYBOX) -> None:
    """Raise RuntimeError with the fix when the host's busybox is missing or dynamically linked."""
    if not busybox.is_file():
        raise RuntimeError(f'{busybox} does not exist: install busybox-static (make deps).')
    if not is_static_elf(busybox):
        raise RuntimeError(f'{busybox} is not statically linked: install busybox-static instead of busybox (make deps).')


@functools.lru_cache(maxsize=None)
def busybox_applets(busybox: Path = HOST_BUSYBOX) -> tuple[str, ...]:
    """Return the sorted applet names that BUSYBOX was built with, without 'busybox' itself."""
    out = subprocess.run([str(busybox), '--list'], check=True, capture_output=True, text=True).stdout
    names = {line.strip() for line in out.splitlines()}
    names.discard('')
    names.discard('busybox')
    return tuple(sorted(name for name in names if '/' not in name))


def set_fixed_mtimes(root: Path, mtime: int = FIXED_MTIME) -> None:
    """Set the mtime and atime of ROOT and everything below it (symlinks themselves, not their targets)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (mtime, mtime), follow_symlinks=False)
        os.utime(dirpath, (mtime, mtime), follow_symlinks=False)


def make_busybox_rootfs(dest: Path, busybox: Path = HOST_BUSYBOX) -> Path:
    """Build a minimal, deterministic busybox root filesystem in DEST (created; must not exist yet).

    bin/busybox plus one relative symlink per applet in bin/, etc/passwd, etc/group, tmp/ (1777)
    and root/ (0700); every entry has the mtime FIXED_MTIME.
    """
    check_host_busybox(busybox)
    dest.mkdir(mode=0o755)
    for name, mode in (('bin', 0o755), ('etc', 0o755), ('tmp', 0o1777), ('root', 0o700)):
        (dest / name).mkdir()
        os.chmod(dest / name, mode)
    shutil.copyfile(busybox, dest / 'bin' / 'busybox')
    os.chmod(dest / 'bin' / 'busybox', 0o755)
    for applet in busybox_applets(busybox):
        os.symlink('busybox', dest / 'bin' / applet)
    for name, text in (('passwd', PASSWD), ('group', GROUP)):
        (dest / 'etc' / name).write_text(text, encoding='ascii')
        os.chmod(dest / 'etc' / name, 0o644)
    set_fixed_mtimes(dest)
    return dest


def mounts_under(path: Path) -> list[str]:
    """Return the mount points at or below PATH, deepest first, read from /proc/self/mountinfo."""
    prefix = os.path.realpath(path)
    found = []
    try:
        with open('/proc/self/mountinfo', encoding='utf-8') as handle:
            lines = handle.read().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split(' ')
        if len(fields) < 5:
            continue
        point = fields[4].encode('ascii').decode('unicode_escape')
        if point == prefix or point.startswith(prefix + '/'):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def force_rmtree(path: Path) -> None:
    """Remove PATH entirely: detach mounts below it first, and make read-only directories writable as needed."""
    path = Path(path)
    if not os.path.lexists(path):
        return
    for point in mounts_under(path):
        subprocess.run(['umount', '--lazy', point], check=False, capture_output=True)

    def retry_writable(func, failed_path, unused_exc):
        del unused_exc
        parent = os.path.dirname(failed_path)
        try:
            mode = os.lstat(parent).st_mode
            os.chmod(parent, stat.S_IMODE(mode) | stat.S_IRWXU)
            if os.path.isdir(failed_path) and not os.path.islink(failed_path):
                os.chmod(failed_path, stat.S_IMODE(os.lstat(failed_path).st_mode) | stat.S_IRWXU)
        except OSError:
            pass
        func(failed_path)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry_writable)  # pylint: disable=unexpected-keyword-arg
    else:
        shutil.rmtree(path, onerror=retry_writable)  # pylint: disable=deprecated-argument


def release_store(path: Path) -> None:
    """Stop what a test's store left running on the host: containers, their networks, bridges, nftables table.

    The engine does it first (best effort); then whatever is left is removed by hand, so a
    test that failed half-way leaves no process, veth, bridge or table behind.
    """
    path = Path(path)
    if not (path / 'containers').is_dir() and not (path / 'networks').is_dir():
        return
    from ctr.errors import CtrError  # pylint: disable=import-outside-toplevel
    from ctr.network import endpoints, networks, nft  # pylint: disable=import-outside-toplevel
    from ctr.runtime.lifecycle import Runtime  # pylint: disable=import-outside-toplevel
    try:
        runtime = Runtime(str(path))
        for container in runtime.list():
            try:
                runtime.remove(container.Id, force=True)
            except (CtrError, OSError):
                pass
    except (CtrError, OSError):
        pass
    for state in (path / 'containers').glob('*/state.json'):
        try:
            pids = json.loads(state.read_text())
        except (OSError, ValueError):
            continue
        for key in ('Pid', 'MonitorPid'):
            if pids.get(key):
                try:
                    os.kill(int(pids[key]), 9)
                except OSError:
                    pass
    store = networks.NetworkStore(str(path))
    bridges = []
    for network in store.list():
        bridges.append(network.bridge)
        try:
            endpoints.remove_network(str(path), network.name, force=True)
        except (CtrError, OSError):
            pass
    for bridge in bridges:
        subprocess.run(['ip', 'link', 'del', bridge], check=False, capture_output=True)
    table = nft.table_name(networks.store_tag(str(path)))
    subprocess.run(['nft', 'delete', 'table', 'ip', table], check=False, capture_output=True)


def make_collection_tree(parent: Path) -> Path:
    """Create PARENT/ansible_collections/daemonless/ctr as a symlink to this repository; return PARENT.

    Putting PARENT on PYTHONPATH (or ANSIBLE_COLLECTIONS_PATH) makes the live working tree importable
    as ``ansible_collections.daemonless.ctr`` without copying it.
    """
    namespace_dir = parent / 'ansible_collections' / COLLECTION_NAMESPACE
    namespace_dir.mkdir(parents=True, exist_ok=True)
    link = namespace_dir / COLLECTION_NAME
    if not os.path.lexists(link):
        os.symlink(REPO_ROOT, link)
    return parent


def module_args_file(directory: Path, args: dict, check: bool = False, diff: bool = False) -> Path:
    """Write the JSON file an Ansible module reads as argv[1] and return its path."""
    payload = dict(args)
    payload['_ansible_check_mode'] = check
    payload['_ansible_diff'] = diff
    path = directory / 'args.json'
    path.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': payload}), encoding='utf-8')
    return path


def parse_module_output(stdout: str) -> dict | None:
    """Return the JSON object a module printed, tolerating noise before it; None when there is none."""
    text = stdout.strip()
    start = text.find('{')
    while start != -1:
        try:
            value = json.loads(text[start:])
        except ValueError:
            start = text.find('\n{', start + 1)
            start = start + 1 if start != -1 else -1
            continue
        return value if isinstance(value, dict) else None
    return None


@contextlib.contextmanager
def busybox_runtime(store_root, rootfs, changes=()):
    """A runtime on ``store_root`` with ``rootfs`` imported as ``busybox`` (CMD sh, then ``changes``); the
    containers made meanwhile are removed afterwards, whatever happened."""
    from ctr.runtime.lifecycle import Runtime
    rt = Runtime(str(store_root))
    rt.images.import_rootfs(str(rootfs), 'busybox', changes=['CMD ["sh"]'] + list(changes))
    try:
        yield rt
    finally:
        for container in rt.list():
            rt.remove(container.Id, force=True)


def run_sh(rt, script, image='busybox', remove=False, **options):
    """``sh -c script`` in a new container (network none unless given) to its end: (exit code, output, record)."""
    options.setdefault('network_mode', 'none')
    container = rt.create(image, command=['sh', '-c', script], entrypoint=[], **options)
    rt.start(container.Id)
    code = rt.wait(container.Id, timeout=60)
    out = ''.join(text for _stream, text in rt.logs(container.Id))
    record = rt.get(container.Id)
    if remove:
        rt.remove(container.Id, force=True)
    return code, out, record

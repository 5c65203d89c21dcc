# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build cache's records: a step's key -> the manifest of the image the step made.

::

    <root>/build/cache/<key hex>.json     {"manifest": "sha256:..."}

Kept apart from the builder so that the store's garbage collection, which counts these
manifests as roots, reads them without loading the builder.
"""

from __future__ import annotations

import os

from . import fsutil
from .store import digest_hex


def _base(root):
    return os.path.join(root, 'build', 'cache')


def lookup(root, key):
    """The manifest digest recorded for ``key``, or None."""
    record = fsutil.read_json(os.path.join(_base(root), digest_hex(key) + '.json'), None)
    digest = record.get('manifest') if isinstance(record, dict) else None
    return digest if isinstance(digest, str) else None


def record(root, key, manifest):
    fsutil.makedirs(_base(root), 0o700)
    fsutil.atomic_write_json(os.path.join(_base(root), digest_hex(key) + '.json'), {'manifest': manifest},
                             durable=False)


def roots(root):
    """The manifests the cache keeps alive (the store's gc roots)."""
    base = _base(root)
    out = []
    for name in sorted(os.listdir(base)) if os.path.isdir(base) else ():
        if name.endswith('.json'):
            manifest = lookup(root, 'sha256:' + name[:-5])
            if manifest is not None:
                out.append(manifest)
    return out


def prune(root):
    """Forget every cached step (``docker builder prune``); the store's gc then frees their blobs."""
    base = _base(root)
    count = 0
    for name in os.listdir(base) if os.path.isdir(base) else ():
        os.unlink(os.path.join(base, name))
        count += 1
    return count


__all__ = ['lookup', 'prune', 'record', 'roots']

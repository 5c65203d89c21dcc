# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several processes (as Ansible forks would) import, tag and remove in one store at once."""

from __future__ import annotations

import os
import subprocess
import sys

from ctr.images import ImageStore

import helpers


def cli(root, *args):
    env = dict(os.environ, PYTHONPATH=str(helpers.MODULE_UTILS))
    return subprocess.Popen([sys.executable, '-m', 'ctr', '--root', root] + list(args), env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_concurrent_imports_tags_and_gc_keep_the_store_whole(store_root, tmp_path):
    root = str(store_root)
    trees = []
    for i in range(6):
        tree = tmp_path / ('tree%d' % i)
        tree.mkdir()
        (tree / 'file').write_bytes(os.urandom(200000) + bytes([i]))
        trees.append(tree)
    # a victim image that is removed while the others import
    for args in (('import', str(trees[0]), 'victim'), ('tag', 'victim', 'victim-alias')):
        assert cli(root, *args).wait() == 0
    procs = [cli(root, 'import', str(t), 'img%d' % i) for i, t in enumerate(trees)]
    procs += [cli(root, 'gc'), cli(root, 'rmi', 'victim'), cli(root, 'gc')]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    images = ImageStore(root)
    names = sorted(n for i in images.list() for n in i.names)
    assert names == ['docker.io/library/img%d:latest' % i for i in range(6)] + ['docker.io/library/victim-alias:latest']
    for image in images.list():
        assert images.store.read_json(image.id)
        for layer in image.layers:
            with images.store.open_blob(layer.digest, layer.size) as f:
                while f.read(1 << 20):
                    pass
    assert os.listdir(images.store.tmp_dir) == []

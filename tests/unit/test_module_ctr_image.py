# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr_image and ctr_image_info run as Ansible runs them: every option created, repeated (not changed),
changed (changed), and given a bad value (one clear sentence, nothing changed). No root needed."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'rootfs'
    (root / 'bin').mkdir(parents=True)
    (root / 'bin' / 'app').write_bytes(b'\x7fELF fake\n')
    (root / 'etc').mkdir()
    (root / 'etc' / 'hostname').write_text('x\n')
    return root


@pytest.fixture
def image(run_module, store_root, tree):
    """Run ctr_image with the test's store root and the import of ``tree`` as defaults."""
    def run(check=False, diff=False, **args):
        full = {'root': str(store_root), 'name': 'busybox'}
        full.update(args)
        return run_module('ctr_image', full, check=check, diff=diff)
    return run


def index(store_root):
    path = os.path.join(str(store_root), 'oci', 'index.json')
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def imported(image, tree, **args):
    return image(source='import', import_path=str(tree), **args)


def assert_failed(result, *fragments):
    assert result.get('failed'), result
    assert 'Traceback' not in result['msg'] and '\n' not in result['msg'], result['msg']
    for fragment in fragments:
        assert fragment in result['msg'], result['msg']


# -- name + source import ------------------------------------------------------------------------------

def test_import_create_repeat_change(image, tree, store_root):
    first = imported(image, tree)
    assert first['changed'] and first['image']['RepoTags'] == ['docker.io/library/busybox:latest']
    assert first['actions'] and first['image']['Id'].startswith('sha256:')
    again = imported(image, tree)
    assert not again['changed'] and again['image']['Id'] == first['image']['Id']
    (tree / 'etc' / 'motd').write_text('hi\n')
    changed = imported(image, tree)
    assert changed['changed'] and changed['image']['Id'] != first['image']['Id']


def test_import_check_and_diff(image, tree, store_root):
    predicted = imported(image, tree, check=True, diff=True)
    assert predicted['changed'] and predicted['image'] == {}
    assert predicted['diff']['before'] == {} and predicted['diff']['after']['names'] == [
        'docker.io/library/busybox:latest']
    assert index(store_root) is None
    real = imported(image, tree, diff=True)
    assert real['changed'] and real['diff']['after']['id'] == real['image']['Id']
    repeat = imported(image, tree, check=True, diff=True)
    assert not repeat['changed'] and repeat['diff']['before'] == repeat['diff']['after']


@pytest.mark.parametrize('args, fragments', [
    ({'name': 'Busy/Box'}, ['name', 'Busy/Box', 'lowercase']),
    ({'name': ''}, ['name']),
    ({'import_path': '/nonexistent/tree'}, ['import_path', '/nonexistent/tree']),
])
def test_import_bad_values(image, tree, store_root, args, fragments):
    full = {'source': 'import', 'import_path': str(tree)}
    full.update(args)
    assert_failed(image(**full), *fragments)
    assert index(store_root) is None


def test_source_import_needs_import_path(image, store_root):
    assert_failed(image(source='import'), 'import_path')


def test_source_local_needs_the_image(image, store_root):
    assert_failed(image(), 'busybox', 'not in the store')


# -- changes -------------------------------------------------------------------------------------------

def test_changes_create_repeat_change_bad(image, tree, store_root):
    first = imported(image, tree, changes=['CMD ["sh"]'])
    assert first['changed'] and first['image']['Config'] == {'Cmd': ['sh']}
    assert not imported(image, tree, changes=['CMD ["sh"]'])['changed']
    second = imported(image, tree, changes=['CMD ["sh"]', 'ENV A=1'])
    assert second['changed'] and second['image']['Config']['Env'] == ['A=1']
    before = index(store_root)
    assert_failed(imported(image, tree, changes=['RUN echo no']), 'RUN', 'not a metadata instruction')
    assert_failed(imported(image, tree, changes=['EXPOSE http']), 'EXPOSE', 'http')
    assert index(store_root) == before


# -- state absent + force ------------------------------------------------------------------------------

def test_absent_remove_repeat_check(image, tree, store_root):
    imported(image, tree)
    predicted = image(state='absent', check=True, diff=True)
    assert predicted['changed'] and predicted['diff']['after'] == {}
    assert index(store_root)['manifests']
    assert image(state='absent')['changed']
    assert index(store_root)['manifests'] == []
    assert not image(state='absent')['changed']


def test_force_removes_an_image_with_several_names(image, tree, store_root):
    first = imported(image, tree, repository='second:1')
    image_id = first['image']['Id']
    assert_failed(image(name=image_id, state='absent'), 'several names')
    assert len(index(store_root)['manifests']) == 2
    assert image(name=image_id, state='absent', force=True)['changed']
    assert index(store_root)['manifests'] == []


# -- repository ----------------------------------------------------------------------------------------

def test_repository_create_repeat_change_bad(image, tree, store_root):
    imported(image, tree)
    tagged = image(repository='localhost:5000/tools/busybox')
    assert tagged['changed']
    assert 'localhost:5000/tools/busybox:latest' in tagged['image']['RepoTags']
    assert not image(repository='localhost:5000/tools/busybox')['changed']
    moved = image(repository='localhost:5000/tools/busybox:v2')
    assert moved['changed'] and 'localhost:5000/tools/busybox:v2' in moved['image']['RepoTags']
    before = index(store_root)
    assert_failed(image(repository='UPPER/case'), 'UPPER/case')
    assert index(store_root) == before


def test_repository_in_check_mode_with_a_new_import(image, tree, store_root):
    result = imported(image, tree, repository='other', check=True)
    assert result['changed'] and any('other' in a for a in result['actions'])
    assert index(store_root) is None


# -- archive_path + archive_format ---------------------------------------------------------------------

@pytest.mark.parametrize('fmt', ['docker-archive', 'oci-archive'])
def test_archive_create_repeat_change(image, tree, store_root, tmp_path, fmt):
    path = str(tmp_path / 'img.tar')
    imported(image, tree)
    assert image(archive_path=path, archive_format=fmt)['changed']
    mtime = os.stat(path).st_mtime_ns
    assert not image(archive_path=path, archive_format=fmt)['changed']
    assert not image(archive_path=path, archive_format=fmt, check=True)['changed']
    assert os.stat(path).st_mtime_ns == mtime
    other = 'oci-archive' if fmt == 'docker-archive' else 'docker-archive'
    assert image(archive_path=path, archive_format=other, check=True)['changed']
    assert os.stat(path).st_mtime_ns == mtime
    assert image(archive_path=path, archive_format=other)['changed']


def test_archive_bad_values(image, tree, store_root, tmp_path):
    imported(image, tree)
    result = image(archive_path=str(tmp_path / 'x.tar'), archive_format='zip')
    assert result.get('failed') and 'archive_format' in result['msg']
    assert_failed(image(archive_path=str(tmp_path / 'missing' / 'x.tar')), 'archive_path', 'does not exist')
    assert not os.path.exists(tmp_path / 'x.tar')


# -- source load ---------------------------------------------------------------------------------------

def test_load_create_repeat_and_bad(image, tree, store_root, tmp_path, run_module):
    path = str(tmp_path / 'img.tar')
    saved = imported(image, tree, archive_path=path)
    other = str(tmp_path / 'other-root')

    def load(**args):
        full = {'root': other, 'name': 'busybox', 'source': 'load', 'load_path': path}
        full.update(args)
        return run_module('ctr_image', full)
    loaded = load()
    assert loaded['changed'] and loaded['image']['Id'] == saved['image']['Id']
    assert not load()['changed']
    assert_failed(load(name='not-in-archive'), 'not-in-archive', 'holds no image')
    garbage = tmp_path / 'garbage.tar'
    garbage.write_bytes(b'this is not a tar archive at all' * 100)
    assert_failed(load(load_path=str(garbage), name='x'), 'load_path', 'garbage.tar')
    assert_failed(load(load_path=str(tmp_path / 'nope.tar'), name='x'), 'load_path', 'nope.tar')
    assert_failed(run_module('ctr_image', {'root': other, 'name': 'x', 'source': 'load'}), 'load_path')


def test_load_check_mode(image, tree, store_root, tmp_path, run_module):
    path = str(tmp_path / 'img.tar')
    imported(image, tree, archive_path=path)
    other = str(tmp_path / 'other-root')
    result = run_module('ctr_image', {'root': other, 'name': 'busybox', 'source': 'load', 'load_path': path},
                        check=True)
    assert result['changed'] and not os.path.exists(os.path.join(other, 'oci'))


# -- root ------------------------------------------------------------------------------------------------

def test_root_falls_back_to_ctr_root_env(run_module, tree, tmp_path):
    env_root = str(tmp_path / 'from-env')
    result = run_module('ctr_image', {'name': 'x', 'source': 'import', 'import_path': str(tree)},
                        env={'CTR_ROOT': env_root})
    assert result['changed'] and os.path.exists(os.path.join(env_root, 'oci', 'index.json'))


# -- ctr_image_info ------------------------------------------------------------------------------------

def test_image_info(image, tree, store_root, run_module):
    empty = run_module('ctr_image_info', {'root': str(store_root)})
    assert empty == {'changed': False, 'images': [], 'invocation': empty['invocation']}
    imported(image, tree, repository='second')
    everything = run_module('ctr_image_info', {'root': str(store_root)})['images']
    assert len(everything) == 1 and sorted(everything[0]['RepoTags']) == [
        'docker.io/library/busybox:latest', 'docker.io/library/second:latest']
    some = run_module('ctr_image_info', {'root': str(store_root), 'name': ['second', 'missing', 'busybox']})
    assert [i['Id'] for i in some['images']] == [everything[0]['Id']]
    info = some['images'][0]
    for key in ('Id', 'RepoTags', 'RepoDigests', 'Created', 'Size', 'Architecture', 'Os', 'Config', 'RootFS',
                'History', 'GraphDriver'):
        assert key in info
    assert not some['changed']
    bad = run_module('ctr_image_info', {'root': str(store_root), 'name': ['Bad Name']})
    assert_failed(bad, 'Bad Name')


# -- messages name the option; check mode of load --------------------------------------------------------

@pytest.mark.parametrize('args, prefix', [
    ({'repository': 'Bad Repo'}, 'repository: '),
    ({'changes': ['FOO bar']}, 'changes: '),
    ({'name': 'Busybox', 'state': 'absent'}, 'name: '),
])
def test_bad_values_name_their_option(image, tree, store_root, args, prefix):
    full = {'source': 'import', 'import_path': str(tree)}
    full.update(args)
    result = image(**full)
    assert_failed(result)
    assert result['msg'].startswith(prefix), result['msg']


def test_root_that_is_a_file(run_module, tree, tmp_path):
    afile = tmp_path / 'afile'
    afile.write_text('x')
    result = run_module('ctr_image', {'root': str(afile), 'name': 'x', 'source': 'import', 'import_path': str(tree)})
    assert_failed(result, 'root', str(afile), 'not a directory')


def test_load_of_a_missing_name_fails_in_check_mode_too(image, tree, tmp_path, run_module):
    path = str(tmp_path / 'foo.tar')
    image(name='foo:1', source='import', import_path=str(tree), archive_path=path)
    other = str(tmp_path / 'other-root')
    for check in (True, False):
        result = run_module('ctr_image', {'root': other, 'name': 'bar', 'source': 'load', 'load_path': path},
                            check=check)
        assert_failed(result, 'holds no image named docker.io/library/bar:latest')
    assert not os.path.exists(os.path.join(other, 'oci', 'index.json')) or index(other)['manifests'] == []


def test_check_mode_diff_of_a_load_that_only_adds_a_name(image, tree, store_root, tmp_path):
    path = str(tmp_path / 'foo.tar')
    first = image(name='foo:1', source='import', import_path=str(tree), archive_path=path)
    image(name='foo:1', repository='other:1')
    image(name='foo:1', state='absent')
    predicted = image(name='foo:1', source='load', load_path=path, check=True, diff=True)
    assert predicted['changed']
    assert predicted['diff']['after']['id'] == first['image']['Id']

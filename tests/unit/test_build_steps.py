# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The parts of a build that need no root: paths resolved inside an image, RUN's command line,
history rows, option checks, and check mode (which walks the cache and writes nothing)."""

from __future__ import annotations

import os

import pytest

from ctr import buildfs, buildrun, dockerfile_parse
from ctr.build import DEFAULT_PATH, Builder, BuildOptions
from ctr.cli_build import history_rows
from ctr.errors import InvalidArgument
from ctr.runtime.lifecycle import Runtime


@pytest.fixture
def image_root(tmp_path):
    root = tmp_path / 'img'
    (root / 'usr' / 'lib').mkdir(parents=True)
    (root / 'etc').mkdir()
    os.symlink('/etc', root / 'abs')                # absolute: must lead back into the image
    os.symlink('../../../../..', root / 'up')       # climbing: clamped at the image's root
    os.symlink('usr/lib', root / 'lib')
    os.symlink('loop2', root / 'loop1')
    os.symlink('loop1', root / 'loop2')
    (root / 'file').write_text('x')
    return root


@pytest.mark.parametrize('path,expected', [
    ('/abs/passwd', 'etc/passwd'),
    ('/up/etc', 'etc'),
    ('/up/up/up', ''),
    ('/lib/x', 'usr/lib/x'),
    ('/../../etc/../usr', 'usr'),
    ('/missing/../etc', 'etc'),
    ('relative/dir', 'relative/dir'),
    ('/', ''),
])
def test_resolve_in_root_never_leaves_the_image(image_root, path, expected):
    got = buildfs.resolve_in_root(str(image_root), path)
    assert got == os.path.join(str(image_root), expected) if expected else got == str(image_root)


def test_resolve_in_root_makes_missing_dirs_and_refuses_loops_and_files(image_root):
    made = buildfs.resolve_in_root(str(image_root), '/abs/new/deeper', make=(os.getuid(), os.getgid()))
    assert made == str(image_root / 'etc' / 'new' / 'deeper') and os.path.isdir(made)
    with pytest.raises(InvalidArgument, match='symbolic links'):
        buildfs.resolve_in_root(str(image_root), '/loop1/x')
    with pytest.raises(InvalidArgument, match='not a directory'):
        buildfs.resolve_in_root(str(image_root), '/file/x')


def _cmd(text):
    return dockerfile_parse.parse('FROM scratch\n' + text).stages[0].commands[0]


@pytest.mark.parametrize('text,expected', [
    ('RUN ["echo", "a b"]', ['echo', 'a b']),
    ('RUN echo $HOME', ['/bin/sh', '-c', 'echo $HOME']),
    ('RUN <<EOF\necho one\necho two\nEOF\n', ['/bin/sh', '-c', 'echo one\necho two\n']),
    ('RUN cat <<EOF > /x\nbody\nEOF\n', ['/bin/sh', '-c', 'cat <<EOF > /x\nbody\nEOF\n']),
])
def test_run_command_lines(text, expected):
    assert buildrun.argv(_cmd(text), ['/bin/sh', '-c']) == expected


def test_a_shebang_heredoc_runs_through_its_interpreter():
    argv = buildrun.argv(_cmd('RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n'), ['/bin/sh', '-c'])
    assert argv[:2] == ['/bin/sh', '-c'] and 'mktemp' in argv[2] and '#!/usr/bin/env python3' in argv[2]


class _Image:
    id = 'sha256:' + 'ab' * 32
    diff_ids = ['sha256:' + '01' * 32, 'sha256:' + '02' * 32]
    layers = [type('D', (), {'size': 10})(), type('D', (), {'size': 20})()]
    config = {'history': [{'created': 't0', 'created_by': 'import'},
                          {'created': 't1', 'created_by': 'ENV', 'empty_layer': True},
                          {'created': 't2', 'created_by': 'RUN x', 'comment': 'c'}]}


class _Store:
    @staticmethod
    def diff_size(diff_id):
        return 1000 if diff_id.endswith('02' * 32) else None


def test_history_rows_newest_first_with_layer_sizes():
    rows = history_rows(_Image(), _Store())
    assert rows == [(_Image.id, 't2', 'RUN x', 1000, 'c'), ('<missing>', 't1', 'ENV', 0, ''),
                    ('<missing>', 't0', 'import', 10, '')]


@pytest.mark.parametrize('options,fragment', [
    (dict(network='overlay'), 'build network "overlay"'),
    (dict(args=['A=1']), 'build args must be a mapping'),
    (dict(created=-5), 'created "-5"'),
])
def test_bad_options_fail_before_anything(tmp_path, options, fragment):
    (tmp_path / 'Dockerfile').write_text('FROM scratch\n')
    with pytest.raises(InvalidArgument, match=fragment):
        Builder(Runtime(str(tmp_path / 'store')), BuildOptions(path=str(tmp_path), **options))


def test_check_mode_predicts_a_change_and_writes_nothing(tmp_path):
    (tmp_path / 'Dockerfile').write_text('FROM scratch\nENV A=1\n')
    store = tmp_path / 'store'
    result = Builder(Runtime(str(store)), BuildOptions(path=str(tmp_path))).build(['x'], check=True)
    assert result.changed and not result.complete and result.image is None
    assert not store.exists()


def test_a_scratch_image_of_metadata_builds_without_root_and_rebuilds_from_the_cache(tmp_path):
    (tmp_path / 'Dockerfile').write_text('FROM scratch\nARG V=1\nENV A=$V\nCMD ["/app"]\n')
    store = str(tmp_path / 'store')
    first = Builder(Runtime(store), BuildOptions(path=str(tmp_path), created=0)).build(['x'])
    assert first.changed and first.cached == 0
    assert first.image.config['config']['Env'] == [DEFAULT_PATH, 'A=1']      # Docker's default PATH, as on scratch
    assert [h['created_by'] for h in first.image.config['history']] == [
        '/bin/sh -c #(nop)  ARG V=1', '/bin/sh -c #(nop)  ENV A=1', '/bin/sh -c #(nop)  CMD ["/app"]']
    again = Builder(Runtime(store), BuildOptions(path=str(tmp_path), created=0)).build(['x'])
    assert not again.changed and again.cached == 3 and again.image.id == first.image.id
    predicted = Builder(Runtime(store), BuildOptions(path=str(tmp_path), args={'V': '2'})).build(['x'], check=True)
    assert predicted.changed and not predicted.complete


def test_a_build_without_a_name_is_an_unnamed_image_of_the_store(tmp_path):
    (tmp_path / 'Dockerfile').write_text('FROM scratch\nENV A=1\n')
    store = str(tmp_path / 'store')
    result = Builder(store, BuildOptions(path=str(tmp_path))).build([])
    assert result.changed and Runtime(store).images.get(result.image.id[7:19]).id == result.image.id
    assert not Builder(store, BuildOptions(path=str(tmp_path))).build([]).changed


def test_every_metadata_instruction_lands_in_the_config_as_docker_puts_it(tmp_path):
    (tmp_path / 'Dockerfile').write_text(
        'FROM scratch\n'
        'MAINTAINER someone <a@b.c>\n'
        'CMD ["inherited"]\n'
        'FROM scratch AS base\n'
        'ARG PORT=8080\n'
        'LABEL org.example.name="a b" version=1\n'
        'EXPOSE ${PORT} 53/udp\n'
        'ENV HOME=/home/app PATH=/app/bin:$PATH\n'
        'VOLUME ["/data", "/logs"]\n'
        'USER app:app\n'
        'STOPSIGNAL SIGQUIT\n'
        'SHELL ["/bin/ash", "-eo", "pipefail", "-c"]\n'
        'CMD echo $HOME\n'
        'ENTRYPOINT ["/entry"]\n'
        'HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD wget -q localhost\n'
        'ONBUILD RUN echo child\n')
    result = Builder(str(tmp_path / 'store'), BuildOptions(path=str(tmp_path), created=0)).build(['meta'])
    config = result.image.config['config']
    assert config['Labels'] == {'org.example.name': 'a b', 'version': '1'}
    assert config['ExposedPorts'] == {'8080/tcp': {}, '53/udp': {}}
    assert config['Env'] == ['PATH=/app/bin:' + DEFAULT_PATH[5:], 'HOME=/home/app']
    assert config['Volumes'] == {'/data': {}, '/logs': {}}
    assert config['User'] == 'app:app' and config['StopSignal'] == 'SIGQUIT'
    assert config['Shell'] == ['/bin/ash', '-eo', 'pipefail', '-c']
    assert config['Cmd'] == ['/bin/ash', '-eo', 'pipefail', '-c', 'echo $HOME']   # set in this stage: kept
    assert config['Entrypoint'] == ['/entry']
    assert config['Healthcheck'] == {'Test': ['CMD-SHELL', 'wget -q localhost'], 'Interval': 30 * 10 ** 9,
                                     'Timeout': 90 * 10 ** 9, 'Retries': 3}
    assert config['OnBuild'] == ['RUN echo child']
    history = [h['created_by'] for h in result.image.config['history']]
    assert len(history) == 12 and all(h.startswith('/bin/sh -c #(nop) ') for h in history)
    assert 'EXPOSE ${PORT} 53/udp' not in history[2] and history[2].endswith('EXPOSE 8080 53/udp')
    first = Builder(str(tmp_path / 'store'), BuildOptions(path=str(tmp_path), target='0', created=0)).build(['m0'])
    assert first.image.config.get('author') == 'someone <a@b.c>'
    (tmp_path / 'Dockerfile').write_text('FROM m0\nENTRYPOINT ["/e"]\n')       # drops the inherited CMD
    child = Builder(str(tmp_path / 'store'), BuildOptions(path=str(tmp_path), created=0)).build(['m1'])
    assert child.image.config['config']['Cmd'] is None and child.image.config['config']['Entrypoint'] == ['/e']

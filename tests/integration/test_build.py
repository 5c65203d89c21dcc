# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dockerfile builds for real (as root): what lands in the image, one history entry per instruction,
the step cache's hits and misses, multi-stage builds, reproducible digests, bad Dockerfiles, and
ctr_image's source build and commit as Ansible runs them."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading

import helpers
import pytest

from ctr.build import Builder, BuildOptions
from ctr.errors import CtrError, InvalidArgument
from ctr.runtime.lifecycle import Runtime

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='needs root: runs real containers')

HELLOWORLD = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'helloworld')
EPOCH = 1700000000


@pytest.fixture
def runtime(store_root, busybox_rootfs):
    with helpers.busybox_runtime(store_root, busybox_rootfs) as rt:
        yield rt


def build(rt, context, names=('out',), **options):
    options.setdefault('network', 'none')
    result = Builder(rt, BuildOptions(path=str(context), **options)).build(list(names))
    return result


def run(rt, image, script):
    return helpers.run_sh(rt, script, image, remove=True)[:2]


def write(ctx, files):
    for rel, text in files.items():
        path = ctx / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ctx


def test_helloworld_layers_history_and_rootfs(runtime):
    result = build(runtime, HELLOWORLD, ['friendlyhello'])
    image = runtime.images.get('friendlyhello')
    base = runtime.images.get('busybox')
    inspect = image.inspect(runtime.images.store)
    assert inspect['RootFS']['Layers'][:1] == base.diff_ids        # the base's layers, byte for byte
    assert [layer.digest for layer in image.layers[:1]] == [layer.digest for layer in base.layers]
    assert len(image.diff_ids) == 4                                 # WORKDIR, ADD, RUN
    history = inspect['History'][1:]
    assert [bool(h.get('empty_layer')) for h in history] == [False, False, False, True, True, True]
    assert 'WORKDIR /app' in history[0]['created_by'] and 'ADD dir:' in history[1]['created_by']
    assert history[2]['created_by'].startswith('/bin/sh -c chmod 755')
    assert inspect['Config']['ExposedPorts'] == {'80/tcp': {}}
    assert 'NAME=World' in inspect['Config']['Env']
    assert inspect['Config']['Cmd'] == ['httpd', '-f', '-p', '80', '-h', '/app']
    assert inspect['Config']['WorkingDir'] == '/app'
    code, out = run(runtime, 'friendlyhello', 'ls -l /app/cgi-bin/index.cgi; ls /app; '
                    'NAME=World REQUEST_METHOD=GET /app/cgi-bin/index.cgi')
    assert code == 0, out
    assert '-rwxr-xr-x' in out and 'Dockerfile' not in out and 'www' in out      # .dockerignore honoured
    assert '<h3>Hello World!</h3>' in out
    assert result.steps == 6 and result.cached == 0


def test_cache_hits_and_misses(runtime, tmp_path):
    ctx = write(tmp_path / 'ctx', {
        'Dockerfile': 'FROM busybox\nARG GREETING=hi\nCOPY app /app\nRUN echo "$GREETING" > /greeting\n'
                      'ENV X=1\n',
        'app/a.txt': 'a\n', 'app/b.txt': 'b\n', '.dockerignore': 'app/ignored*\n'})
    first = build(runtime, ctx)
    assert first.cached == 0 and first.changed
    image_id = first.image.id

    def again(**options):
        return build(runtime, ctx, **options)

    same = again()
    assert same.cached == same.steps == 4 and same.image.id == image_id and not same.changed
    assert any('Using cache' in line for line in same.log)

    os.utime(ctx / 'app' / 'a.txt', (1, 1))                 # mtime only: still a hit
    assert again().image.id == image_id
    (ctx / 'app' / 'ignored.txt').write_text('x')           # an ignored file: still a hit
    assert again().image.id == image_id

    (ctx / 'app' / 'a.txt').write_text('A\n')               # content: COPY and later miss
    changed = again()
    assert changed.cached == 1 and changed.image.id != image_id and changed.changed
    os.chmod(ctx / 'app' / 'b.txt', 0o600)                  # mode: miss
    assert again().cached == 1
    other_arg = again(args={'GREETING': 'hello'})           # build arg: RUN misses (COPY still hits)
    assert other_arg.cached == 2
    assert run(runtime, 'out', 'cat /greeting')[1] == 'hello\n'
    (ctx / 'Dockerfile').write_text('FROM busybox\nARG GREETING=hi\nCOPY app /app\nRUN echo "$GREETING" > /greeting\n'
                                    'ENV X=2\n')            # instruction text: only that step misses
    assert again(args={'GREETING': 'hello'}).cached == 3
    assert again(args={'GREETING': 'hello'}, nocache=True).cached == 0


def test_multi_stage_target_copy_from_and_onbuild(runtime, tmp_path):
    ctx = write(tmp_path / 'ctx', {'Dockerfile': (
        'ARG BASE=busybox\n'
        'FROM ${BASE} AS builder\n'
        'RUN mkdir -p /out && echo built > /out/artifact && echo junk > /junk\n'
        'FROM busybox AS tester\n'
        'RUN false\n'
        'FROM $BASE\n'
        'COPY --from=builder /out/artifact /artifact\n'
        'ONBUILD RUN echo triggered > /onbuild\n')})
    result = build(runtime, ctx, ['final'])
    assert not any('RUN false' in line for line in result.log)       # the unused stage is not built
    assert run(runtime, 'final', 'cat /artifact; ls /junk 2>&1')[1].startswith('built\n')
    assert runtime.images.get('final').config['config']['OnBuild'] == ['RUN echo triggered > /onbuild']
    build(runtime, ctx, ['builder-only'], target='builder')
    assert run(runtime, 'builder-only', 'cat /junk')[1] == 'junk\n'
    child = write(tmp_path / 'child', {'Dockerfile': 'FROM final\n'})
    build(runtime, child, ['child'])
    assert run(runtime, 'child', 'cat /onbuild')[1] == 'triggered\n'
    assert not runtime.images.get('child').config['config'].get('OnBuild')
    with pytest.raises(CtrError, match='target stage "nope"'):
        build(runtime, ctx, target='nope')


def test_heredocs_chown_chmod_archives_and_workdir(runtime, tmp_path):
    payload = tmp_path / 'payload.tar.gz'
    with tarfile.open(payload, 'w:gz') as tar:
        data = b'from the archive\n'
        info = tarfile.TarInfo('inner/file.txt')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    ctx = write(tmp_path / 'ctx', {'Dockerfile': (
        'FROM busybox\n'
        'WORKDIR /srv/app\n'
        'COPY --chown=1000:1001 --chmod=640 conf.txt ./\n'
        'ADD payload.tar.gz /unpacked/\n'
        'COPY <<EOF /etc/motd\nhello $NAME\nEOF\n'
        'ENV NAME=world\n'
        'RUN <<EOT\nset -e\necho "$NAME" > /from-heredoc\nEOT\n'
        'SHELL ["/bin/sh", "-e", "-c"]\n'
        'RUN echo shell-form > shell.txt\n'), 'conf.txt': 'conf\n'})
    shutil.copy(payload, ctx / 'payload.tar.gz')
    build(runtime, ctx)
    code, out = run(runtime, 'out', 'stat -c "%u:%g %a" /srv/app/conf.txt; cat /unpacked/inner/file.txt /etc/motd '
                    '/from-heredoc /srv/app/shell.txt')
    assert code == 0, out
    assert out == '1000:1001 640\nfrom the archive\nhello \nworld\nshell-form\n'
    assert runtime.images.get('out').config['config']['Shell'] == ['/bin/sh', '-e', '-c']


def test_same_dockerfile_and_context_give_the_same_digest_in_two_stores(tmp_path, busybox_rootfs, monkeypatch):
    monkeypatch.setenv('SOURCE_DATE_EPOCH', str(EPOCH))
    digests = []
    for n in (1, 2):
        root = tmp_path / ('store%d' % n)
        rt = Runtime(str(root))
        try:
            rt.images.import_rootfs(str(busybox_rootfs), 'busybox', changes=['CMD ["sh"]'])
            ctx = tmp_path / ('ctx%d' % n)
            shutil.copytree(HELLOWORLD, ctx)
            os.utime(ctx / 'cgi-bin' / 'index.cgi', (EPOCH + 1000 * n, EPOCH + 1000 * n))
            build(rt, ctx, ['friendlyhello'])
            digests.append(rt.images.get('friendlyhello').manifest.digest)
        finally:
            subprocess.run([sys.executable, '-c', 'import helpers; from pathlib import Path; '
                            'helpers.release_store(Path(%r))' % str(root)],
                           cwd=os.path.join(os.path.dirname(__file__), '..'), check=False)
    assert digests[0] == digests[1]


@pytest.mark.parametrize('dockerfile,files,fragment', [
    ('FROM busybox\nFROB x\n', {}, 'line 2: unknown instruction "FROB"'),
    ('FROM busybox\nCOPY missing.txt /x\n', {}, 'missing.txt'),
    ('FROM busybox\nCOPY ../outside /x\n', {}, 'outside the build context'),
    ('FROM busybox\nCOPY link /x\n', {'link': '->/etc/passwd'}, 'outside the build context'),
    ('FROM busybox\n\nRUN echo before-failing; exit 3\n', {}, 'line 3: RUN'),
    ('FROM nothere\n', {}, 'line 1: FROM'),
    ('FROM busybox\nCOPY a b c\n', {'a': 'a', 'b': 'b'}, 'destination directory'),
])
def test_bad_dockerfiles_fail_clearly_and_change_nothing(runtime, tmp_path, dockerfile, files, fragment):
    ctx = tmp_path / 'ctx'
    ctx.mkdir()
    (ctx / 'Dockerfile').write_text(dockerfile)
    for rel, text in files.items():
        if text.startswith('->'):
            os.symlink(text[2:], ctx / rel)
        else:
            (ctx / rel).write_text(text)
    with pytest.raises(CtrError) as err:
        build(runtime, ctx)
    assert fragment in err.value.msg
    assert runtime.images.find('out') is None
    assert runtime.list() == []                         # no build container left behind
    if 'RUN' in fragment:
        assert 'exit code 3' in err.value.msg and 'before-failing' in err.value.msg


class _Files(http.server.BaseHTTPRequestHandler):
    body = b'downloaded\n'

    def do_GET(self):   # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header('Content-Length', str(len(self.body)))
        self.send_header('Last-Modified', 'Wed, 21 Oct 2015 07:28:00 GMT')
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_add_url_with_checksum_from_a_loopback_server(runtime, tmp_path):
    server = http.server.HTTPServer(('127.0.0.1', 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = 'http://127.0.0.1:%d/file.txt' % server.server_port
        good = 'sha256:' + hashlib.sha256(_Files.body).hexdigest()
        ctx = write(tmp_path / 'ctx', {'Dockerfile': 'FROM busybox\nADD --checksum=%s %s /dl/\n' % (good, url)})
        build(runtime, ctx)
        assert run(runtime, 'out', 'cat /dl/file.txt; stat -c %a /dl/file.txt')[1] == 'downloaded\n600\n'
        (ctx / 'Dockerfile').write_text('FROM busybox\nADD --checksum=sha256:%s %s /dl/\n' % ('0' * 64, url))
        with pytest.raises(CtrError, match='not the --checksum'):
            build(runtime, ctx, ['bad'])
    finally:
        server.shutdown()
        server.server_close()


def test_module_build_create_repeat_change_check_and_bad_value(run_module, runtime, store_root, tmp_path):
    ctx = write(tmp_path / 'ctx', {'Dockerfile': 'FROM busybox\nCOPY page.txt /page.txt\nRUN wc -c /page.txt\n',
                                   'page.txt': 'one\n'})

    def image(check=False, **build):
        args = dict(path=str(ctx), network='none')
        args.update(build)
        return run_module('ctr_image', dict(name='site:1', source='build', build=args, root=str(store_root)),
                          check=check, diff=True)

    predicted = image(check=True)
    assert predicted['changed'] and not predicted.get('failed')
    assert runtime.images.find('site:1') is None
    assert not (store_root / 'build' / 'cache').exists()            # check mode wrote nothing
    created = image()
    assert created['changed'] and created['image']['RepoTags'] == ['docker.io/library/site:1']
    assert any('Step 3/3 : RUN wc -c /page.txt' == line for line in created['stdout_lines'])
    assert created['diff']['after']['id'] == created['image']['Id']
    again = image()
    assert not again['changed'] and again['image']['Id'] == created['image']['Id']
    assert image(check=True)['changed'] is False                     # every step cached: predicted exactly
    (ctx / 'page.txt').write_text('two\n')
    assert image(check=True)['changed']
    changed = image()
    assert changed['changed'] and changed['image']['Id'] != created['image']['Id']
    labelled = image(labels={'team': 'web'}, args={'UNUSED': 1})
    assert labelled['changed'] and labelled['image']['Config']['Labels'] == {'team': 'web'}
    assert any('not consumed: UNUSED' in line for line in labelled['stdout_lines'])
    before = runtime.images.get('site:1').id
    (ctx / 'Dockerfile').write_text('FROM busybox\nRUN exit 7\n')
    failed = image()
    assert failed.get('failed') and 'line 2: RUN' in failed['msg'] and 'exit code 7' in failed['msg']
    assert runtime.images.get('site:1').id == before
    bad = run_module('ctr_image', dict(name='site:1', source='build', build=dict(path=str(ctx), network='nope'),
                                       root=str(store_root)))
    assert bad.get('failed') and 'network' in bad['msg']
    missing = run_module('ctr_image', dict(name='site:1', source='build', build=dict(path=str(tmp_path / 'none')),
                                           root=str(store_root)))
    assert missing.get('failed') and 'none' in missing['msg'] and 'Traceback' not in missing['msg']


def test_module_commit_create_repeat_change_and_bad_value(run_module, runtime, store_root):
    c = runtime.create('busybox', name='box', command=['sh', '-c', 'echo v1 > /state; mkdir /vol'],
                       network_mode='none')
    runtime.start(c.Id)
    runtime.wait(c.Id, timeout=60)

    def commit(check=False, **extra):
        args = dict(name='snap:1', source='commit', container='box', root=str(store_root),
                    changes=['CMD ["cat", "/state"]'])
        args.update(extra)
        return run_module('ctr_image', args, check=check, diff=True)

    assert commit(check=True)['changed']
    assert runtime.images.find('snap:1') is None
    first = commit()
    assert first['changed'] and first['image']['Config']['Cmd'] == ['cat', '/state']
    assert len(first['image']['RootFS']['Layers']) == 2
    assert commit(check=True)['changed'] is False
    assert commit()['changed'] is False
    assert commit(changes=['CMD ["sh"]'])['changed']
    commented = commit(name='snap:2', comment='hotfix', pause=False)
    assert commented['changed'] and commented['image']['History'][-1]['comment'] == 'hotfix'
    assert commit(name='snap:2', comment='hotfix', pause=False)['changed'] is False
    bad = commit(changes=['FROB x'])
    assert bad.get('failed') and 'FROB' in bad['msg']
    missing = commit(container='nobody')
    assert missing.get('failed') and 'nobody' in missing['msg']


def test_cli_build_history_and_commit(runtime, store_root, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), '..', '..', 'plugins', 'module_utils'))

    def ctr(*args):
        return subprocess.run([sys.executable, '-m', 'ctr', '--root', str(store_root)] + list(args), env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    built = ctr('build', '-t', 'hello', '--network', 'none', HELLOWORLD)
    assert built.returncode == 0, built.stderr
    assert 'Successfully tagged docker.io/library/hello:latest' in built.stdout
    history = ctr('history', 'hello')
    assert history.returncode == 0 and history.stdout.splitlines()[0].split()[:3] == ['IMAGE', 'CREATED', 'CREATED']
    assert len(history.stdout.splitlines()) == 1 + 7          # the base's one entry and six steps
    c = runtime.create('hello', name='web', command=['sh', '-c', 'echo changed > /app/www/index.html'],
                       network_mode='none')
    runtime.start(c.Id)
    runtime.wait(c.Id, timeout=60)
    committed = ctr('commit', '-c', 'ENV VERSION=2', 'web', 'hello:v2')
    assert committed.returncode == 0, committed.stderr
    v2 = runtime.images.get('hello:v2')
    assert v2.diff_ids[:-1] == runtime.images.get('hello').diff_ids and 'VERSION=2' in v2.config['config']['Env']
    broken = ctr('build', str(tmp_path))
    assert broken.returncode == 1 and broken.stderr.startswith('ctr: error:') and 'Traceback' not in broken.stderr


def test_review_fixes_network_from_args_symlink_names_fifos_and_globs(runtime, store_root, tmp_path, busybox_rootfs):
    ctx = write(tmp_path / 'ctx', {'Dockerfile': 'FROM busybox\nRUN --network=host true\n'})
    with pytest.raises(CtrError, match='line 2: RUN: --network=host needs a build whose network is host'):
        build(runtime, ctx)                                  # a Dockerfile narrows the network, never widens it
    special = tmp_path / 'special'
    shutil.copytree(busybox_rootfs, special, symlinks=True)
    os.mkfifo(special / 'fifo')
    (special / 'g').mkdir()
    (special / 'g' / 'abc').write_text('abc')
    (special / 'g' / 'zed').write_text('zed')
    runtime.images.import_rootfs(str(special), 'special', changes=['CMD ["sh"]'])
    (ctx / 'Dockerfile').write_text(
        'FROM busybox AS builder\nRUN echo built > /out\n'
        'FROM busybox\nARG SRC=builder\nCOPY --from=$SRC /out /out\n'
        'COPY --from=special /bin/sh /bin/ls /x/\n'
        'COPY --from=special /fifo /fifo\n'
        'COPY --from=special /g/[^a-y]* /glob/\n')
    build(runtime, ctx)
    code, out = run(runtime, 'out', 'cat /out; ls /x; test -p /fifo && echo fifo; ls /glob')
    assert code == 0 and out == 'built\nls\nsh\nfifo\nzed\n', out


def test_review_fixes_check_mode_epoch_paths_errors_and_counts(runtime, store_root, tmp_path):
    ctx = write(tmp_path / 'ctx', {'Dockerfile': 'FROM busybox\nCOPY --chown=root:root a.txt /rel/../../x.txt\n'
                                                 'COPY <<EOF /motd\nhi\nEOF\nCOPY --from=busybox /bin/sh /sh\n',
                                   'a.txt': 'a'})
    before = sorted(p for p in store_root.rglob('*'))
    result = Builder(runtime, BuildOptions(path=str(ctx), network='none')).build(['out'], check=True)
    assert result.changed and not result.complete
    assert sorted(p for p in store_root.rglob('*')) == before          # check mode: not one file more
    first = build(runtime, ctx, created=1000)
    assert run(runtime, 'out', 'cat /x.txt /motd')[1] == 'ahi\n'         # the destination is cleaned, as Docker
    assert build(runtime, ctx, created=2000).image.id != first.image.id   # another clamp, another image
    os.chmod(ctx, 0o700)                                                 # the context dir's own mode: no miss
    assert build(runtime, ctx, created=1000).image.id == first.image.id
    for bad in (-1, 253402300800):                                       # RFC 3339 has years 1 to 9999
        with pytest.raises(InvalidArgument, match='created'):
            build(runtime, ctx, created=bad)
    (ctx / 'Dockerfile').write_text('FROM busybox\nCOPY nope /x\n')
    with pytest.raises(CtrError, match=r'^Dockerfile, line 2: COPY: .*nope'):
        build(runtime, ctx)
    (ctx / 'Dockerfile').write_text('FROM busybox\nONBUILD ENV T=1\n')
    build(runtime, ctx, ['parent'])
    (ctx / 'Dockerfile').write_text('FROM parent\nENV PATH=/opt/bin:$PATH\n')
    child = build(runtime, ctx, ['child'])
    assert 'Step 3/3 : ENV PATH=/opt/bin:$PATH' in child.log
    assert 'PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' in \
        child.image.config['config']['Env']


def test_many_layers_fit_one_overlay(runtime, tmp_path):
    steps = ''.join('WORKDIR /w%02d\n' % i for i in range(60))
    ctx = write(tmp_path / 'ctx', {'Dockerfile': 'FROM busybox\n' + steps + 'RUN ls -d /w59 > /done\n'})
    result = build(runtime, ctx)
    assert len(result.image.diff_ids) == 62
    assert run(runtime, 'out', 'cat /done')[1] == '/w59\n'


class _Short(_Files):
    def do_GET(self):   # noqa: N802
        self.send_response(200)
        self.send_header('Content-Length', '100000')
        self.end_headers()
        self.wfile.write(b'only this')


def test_a_truncated_download_fails(runtime, tmp_path):
    server = http.server.HTTPServer(('127.0.0.1', 0), _Short)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ctx = write(tmp_path / 'ctx', {'Dockerfile': 'FROM busybox\nADD http://127.0.0.1:%d/f /f\n'
                                                     % server.server_port})
        with pytest.raises(CtrError, match='stopped after 9 of 100000 bytes'):
            build(runtime, ctx)
    finally:
        server.shutdown()
        server.server_close()

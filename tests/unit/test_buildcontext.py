# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The build context: .dockerignore matching (Docker's documented examples and moby/patternmatcher's
test cases), COPY source lookup, the walk, and the content digest the build cache keys on."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ctr import buildcontext
from ctr.buildcontext import BuildContext, IgnoreRules
from ctr.errors import InvalidArgument, NotFound

# (pattern, path, excluded) -- one pattern at a time, as patternmatcher's TestMatches and matchTests
SINGLE = [
    ('**', 'file', True), ('**/', 'file', True), ('**', 'dir/file', True), ('**/', 'dir/file', True),
    ('**/**', 'dir/file', True), ('dir/**', 'dir/file', True), ('dir/**', 'dir/dir2/file', True),
    ('**/dir', 'dir', True), ('**/dir', 'dir/file', True), ('**/dir2/*', 'dir/dir2/file', True),
    ('**/dir2/**', 'dir/dir2/dir3/file', True), ('**file', 'file', True), ('**file', 'dir/file', True),
    ('**/file', 'dir/file', True), ('**file', 'dir/dir/file', True), ('**/file', 'dir/dir/file', True),
    ('**/file*', 'dir/dir/file', True), ('**/file*', 'dir/dir/file.txt', True),
    ('**/file*txt', 'dir/dir/file.txt', True), ('**/file*.txt', 'dir/dir/file.txt', True),
    ('**/file*.txt*', 'dir/dir/file.txt', True), ('**/**/*.txt', 'dir/dir/file.txt', True),
    ('**/**/*.txt2', 'dir/dir/file.txt', False), ('**/*.txt', 'file.txt', True),
    ('**/**/*.txt', 'file.txt', True), ('a**/*.txt', 'a/file.txt', True), ('a**/*.txt', 'a/dir/file.txt', True),
    ('a**/*.txt', 'a/dir/dir/file.txt', True), ('a/*.txt', 'a/dir/file.txt', False),
    ('a/*.txt', 'a/file.txt', True), ('a/*.txt**', 'a/file.txt', True),
    ('a[b-d]e', 'ae', False), ('a[b-d]e', 'ace', True), ('a[b-d]e', 'aae', False), ('a[^b-d]e', 'aze', True),
    ('.*', '.foo', True), ('.*', 'foo', False), ('abc.def', 'abcdef', False), ('abc.def', 'abc.def', True),
    ('abc.def', 'abcZdef', False), ('abc?def', 'abcZdef', True), ('abc?def', 'abcdef', False),
    ('a\\\\', 'a\\', True), ('**/foo/bar', 'foo/bar', True), ('**/foo/bar', 'dir/foo/bar', True),
    ('**/foo/bar', 'dir/dir2/foo/bar', True), ('abc/**', 'abc', False), ('abc/**', 'abc/def', True),
    ('abc/**', 'abc/def/ghi', True), ('**/.foo', '.foo', True), ('**/.foo', 'bar.foo', False),
    ('a(b)c/def', 'a(b)c/def', True), ('a(b)c/def', 'a(b)c/xyz', False), ('a.|)$(}+{bc', 'a.|)$(}+{bc', True),
    ('dist/*.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', True),
    ('a\\*b', 'a*b', True), ('a\\*b', 'ab', False),
    # Go's filepath.Match cases patternmatcher borrows
    ('abc', 'abc', True), ('*', 'abc', True), ('*c', 'abc', True), ('a*', 'a', True), ('a*', 'abc', True),
    ('a*', 'ab/c', True), ('a*/b', 'abc/b', True), ('a*/b', 'a/c/b', False),
    ('a*b*c*d*e*/f', 'axbxcxdxe/f', True), ('a*b*c*d*e*/f', 'axbxcxdxexxx/f', True),
    ('a*b*c*d*e*/f', 'axbxcxdxe/xxx/f', False), ('a*b*c*d*e*/f', 'axbxcxdxexxx/fff', False),
    ('a*b?c*x', 'abxbbxdbxebxczzx', True), ('a*b?c*x', 'abxbbxdbxebxczzy', False),
    ('ab[c]', 'abc', True), ('ab[b-d]', 'abc', True), ('ab[e-g]', 'abc', False), ('ab[^c]', 'abc', False),
    ('ab[^b-d]', 'abc', False), ('ab[^e-g]', 'abc', True), ('a?b', 'a\u263ab', True),
    ('a[^a]b', 'a\u263ab', True), ('a???b', 'a\u263ab', False), ('[a-\u03b6]*', '\u03b1', True),
    ('*[a-\u03b6]', 'A', False), ('a?b', 'a/b', False), ('a*b', 'a/b', False), ('[\\]a]', ']', True),
    ('[\\-]', '-', True), ('[x\\-]', 'x', True), ('[x\\-]', '-', True), ('[x\\-]', 'z', False),
    ('[\\-x]', 'x', True), ('[\\-x]', '-', True), ('[\\-x]', 'a', False), ('*x', 'xxx', True),
    # Docker's documentation
    ('*/temp*', 'somedir/temporary.txt', True), ('*/temp*', 'somedir/temp', True), ('*/temp*', 'temp', False),
    ('*/*/temp*', 'somedir/subdir/temporary.txt', True), ('*/*/temp*', 'somedir/temporary.txt', False),
    ('temp?', 'tempa', True), ('temp?', 'tempab', False), ('temp?', 'dir/tempa', False),
    ('**/*.go', 'main.go', True), ('**/*.go', 'a/b/c.go', True), ('/foo/bar', 'foo/bar', True),
    ('foo/bar', 'foo/bar/baz', True), ('foo/bar', 'bar', False), ('foo/bar', 'x/foo/bar', False),
    # cleaning: leading '/', './', trailing '/', '..' inside
    ('./x', 'x', True), ('x/', 'x/y', True), ('/x/', 'x', True), ('a/../b', 'b', True), ('a/./b', 'a/b', True),
    ('node_modules', 'node_modules/pkg/index.js', True), ('[a-z]*', 'Abc', False), ('[a-z]*', 'abc', True),
    ('*', '.hidden', True), ('**foo', 'xfoo', True),   # Go's '*' takes dot files; patternmatcher's '**text' suffix
]


@pytest.mark.parametrize('pattern, path, excluded', SINGLE)
def test_single_pattern(pattern, path, excluded):
    assert IgnoreRules.parse(pattern).excluded(path) is excluded


# (ignore file text, path, excluded)
MULTI = [
    ('**\n!util/docker/web', 'util/docker/web/foo', False),
    ('**\n!util/docker/web\nutil/docker/web/foo', 'util/docker/web/foo', True),
    ('**\n!dist/*.whl', 'dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl', False),
    ('!fileutils.go\n*.go', 'fileutils.go', True),
    ('*.go\n!fileutils.go', 'fileutils.go', False),
    ('docs\n!docs/README.md', 'docs/README.md', False),
    ('docs/\n!docs/README.md', 'docs/README.md', False),
    ('docs/*\n!docs/README.md', 'docs/README.md', False),
    ('docs\n!docs/README.md', 'docs/other.md', True),
    ('docs\n!docs/sub', 'docs/sub/deep/file', False),
    ('*.md\n!README.md', 'README.md', False),
    ('*.md\n!README.md', 'CHANGES.md', True),
    ('*.md\n!README*.md\nREADME-secret.md', 'README-secret.md', True),
    ('*.md\n!README*.md\nREADME-secret.md', 'README-public.md', False),
    ('*.md\nREADME-secret.md\n!README*.md', 'README-secret.md', False),
    ('*\n!src', 'src/main.c', False),
    ('*\n!src', 'Makefile', True),
    ('# comment\n\n   \n  x  ', 'x', True),
    ('# x', 'x', False),
    ('\ufeffx\r\ny\r\n', 'x', True),
    ('\ufeffx\r\ny\r\n', 'y', True),
    ('  ! x', 'x', False),
    ('x\n  ! x', 'x', False),
    ('x\n!/x/y', 'x/y', False),
    ('d/x\n!d', 'd/x', False),     # the last line matching the path or a parent decides (BuildKit's walk differs)
]


@pytest.mark.parametrize('text, path, excluded', MULTI)
def test_ignore_file(text, path, excluded):
    assert IgnoreRules.parse(text).excluded(path) is excluded


def test_bytes_and_patterns():
    rules = IgnoreRules.parse(b'/a/\n!./b//c\n')
    assert rules.patterns == ['a', '!b/c'] and rules.excluded('a/b') and not IgnoreRules().excluded('x')


@pytest.mark.parametrize('text', ['.', '/', '..', '*.go'])
def test_root_is_never_excluded(text):
    rules = IgnoreRules.parse(text)
    assert not rules.excluded('') and not rules.excluded('.')


@pytest.mark.parametrize('text, reason', [
    ('[]a]', 'escaped'), ('[-]', 'escaped'), ('[x-]', 'escaped'), ('[-x]', 'escaped'), ('\\', 'lone'),
    ('[a-b-c]', 'escaped'), ('[', 'never closed'), ('[^', 'never closed'), ('[^bc', 'never closed'),
    ('a[', 'never closed'), ('[Local-Only]/', 'backwards'), ('ok\n!', 'lone "!"'), ('ok\n  !  ', 'lone "!"'),
])
def test_malformed_patterns_are_refused(text, reason):
    with pytest.raises(InvalidArgument) as info:
        IgnoreRules.parse(text, what='/ctx/.dockerignore')
    assert '/ctx/.dockerignore' in str(info.value) and reason in str(info.value)
    assert str(info.value).count('.') >= 1 and '\n' not in str(info.value)


@pytest.mark.parametrize('text, directory, descend', [
    ('docs', 'docs', False),
    ('docs\n!docs/README.md', 'docs', True),
    ('docs\n!docs/README.md', 'other', False),
    ('docs\n!docs/a/b/c', 'docs/a', True),
    ('docs\n!docs/a/b/c', 'docs/x', False),
    ('docs\n!docs', 'docs/a', False),
    ('*\n!*/keep', 'anything', True),
    ('*\n!**/keep', 'a/b/c', True),
    ('node_modules\n!node_modules/foo/**', 'node_modules', True),
    ('node_modules\n!node_modules/foo/**', 'node_modules/bar', False),
    ('node_modules\n!node_modules/foo/**', 'node_modules/foo', True),
])
def test_may_include_under(text, directory, descend):
    assert IgnoreRules.parse(text).may_include_under(directory) is descend


# ---- the context directory ----------------------------------------------------------------------

def make(root, files):
    """``{'a/b.txt': 'text', 'dir/': None, 'link': ('->', 'target')}`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith('/'):
            path.mkdir(exist_ok=True)
        elif isinstance(content, tuple):
            os.symlink(content[1], path)
        else:
            path.write_text(content)
    return root


def rels(ctx, source):
    return [e.rel for top in ctx.sources(source) for e in ctx.walk(top)]


@pytest.fixture
def ctx_dir(tmp_path):
    return make(tmp_path / 'ctx', {
        'Dockerfile': 'FROM scratch\n', 'a.txt': 'a', 'b.txt': 'b', 'c.log': 'c',
        'sub/x.txt': 'x', 'sub/y.md': 'y', 'sub/deep/z.txt': 'z', 'empty/': None,
        'docs/README.md': 'r', 'docs/other.md': 'o', 'secret.key': 's',
        '.dockerignore': '*.log\nsecret.key\ndocs\n!docs/README.md\n',
    })


def test_sources_wildcards_and_order(ctx_dir):
    ctx = BuildContext(str(ctx_dir))
    assert [e.rel for e in ctx.sources('*.txt')] == ['a.txt', 'b.txt']
    assert [e.rel for e in ctx.sources('/sub/*.t?t')] == ['sub/x.txt']
    assert [e.rel for e in ctx.sources('s[t-v]b/*')] == ['sub/deep', 'sub/x.txt', 'sub/y.md']
    assert [e.rel for e in ctx.sources('*/*.txt')] == ['sub/x.txt']
    top = ctx.sources('a.txt')[0]
    assert (top.kind, top.size, top.path, top.target) == ('file', 1, str(ctx_dir / 'a.txt'), '')


def test_sources_dot_is_the_whole_context(ctx_dir):
    ctx = BuildContext(str(ctx_dir))
    top, = ctx.sources('.')
    assert (top.rel, top.kind, top.path) == ('.', 'dir', ctx.root)
    assert rels(ctx, './') == ['.', '.dockerignore', 'Dockerfile', 'a.txt', 'b.txt', 'docs', 'docs/README.md',
                               'empty', 'sub', 'sub/deep', 'sub/deep/z.txt', 'sub/x.txt', 'sub/y.md']


def test_sources_directory(ctx_dir):
    ctx = BuildContext(str(ctx_dir))
    assert rels(ctx, 'sub/') == ['sub', 'sub/deep', 'sub/deep/z.txt', 'sub/x.txt', 'sub/y.md']
    assert rels(ctx, 'docs') == ['docs', 'docs/README.md']    # excluded, but an exception keeps it


@pytest.mark.parametrize('source', ['c.log', 'secret.key', 'docs/other.md', '*.log', 'missing', 'sub/*.c',
                                    'nodir/*.txt'])
def test_excluded_or_missing_source_is_not_found(ctx_dir, source):
    with pytest.raises(NotFound) as info:
        BuildContext(str(ctx_dir)).sources(source)
    assert str(info.value) == ('COPY source "%s" is not in the build context (or is excluded by .dockerignore)'
                               % source)


@pytest.mark.parametrize('source', ['..', '../x', 'sub/../../x', '/../etc/passwd'])
def test_source_leaving_the_context_is_refused(ctx_dir, source):
    with pytest.raises(InvalidArgument, match='outside the build context'):
        BuildContext(str(ctx_dir)).sources(source, what='ADD')


@pytest.mark.parametrize('source, reason', [('', 'empty'), ('[', 'malformed'), ('sub/a[', 'malformed')])
def test_bad_sources(ctx_dir, source, reason):
    with pytest.raises(InvalidArgument, match=reason):
        BuildContext(str(ctx_dir)).sources(source)


@pytest.mark.parametrize('target', ['/etc/passwd', '../../outside', '../../etc', './../f/../../outside'])
def test_symlink_outside_is_refused(tmp_path, target):
    (tmp_path / 'outside').write_text('secret')
    ctx_dir = make(tmp_path / 'ctx', {'Dockerfile': '', 'sub/f': 'f', 'sub/link': ('->', target)})
    ctx = BuildContext(str(ctx_dir))
    with pytest.raises(InvalidArgument) as info:
        list(ctx.walk(ctx.sources('.')[0]))
    assert str(info.value).startswith('symlink sub/link -> %s points outside the build context' % target)
    with pytest.raises(InvalidArgument, match='outside the build context'):
        ctx.sources('sub/link')
    with pytest.raises(InvalidArgument, match='outside the build context'):
        ctx.sources('sub/*')


def test_symlink_outside_but_ignored_is_fine(tmp_path):
    ctx_dir = make(tmp_path / 'ctx', {'Dockerfile': '', 'link': ('->', '/etc'), '.dockerignore': 'link'})
    ctx = BuildContext(str(ctx_dir))
    assert rels(ctx, '.') == ['.', '.dockerignore', 'Dockerfile']


def test_symlinks_inside(tmp_path):
    ctx_dir = make(tmp_path / 'ctx', {
        'Dockerfile': '', 'real/f.txt': 'f', 'rel': ('->', 'real/f.txt'), 'abs': ('->', str(tmp_path / 'ctx/real')),
        'real/up': ('->', '../rel'), 'dangling': ('->', 'nothing'),
    })
    ctx = BuildContext(str(ctx_dir))
    walked = {e.rel: e for e in ctx.walk(ctx.sources('.')[0])}
    assert walked['abs'].kind == 'symlink' and 'abs/f.txt' not in walked      # never followed in a walk
    assert (walked['rel'].kind, walked['rel'].target) == ('symlink', 'real/f.txt')
    assert walked['real/up'].kind == 'symlink' and walked['dangling'].kind == 'symlink'
    top, = ctx.sources('rel')                       # a source symlink is followed, keeping its name
    assert (top.rel, top.kind, top.path) == ('rel', 'file', str(ctx_dir / 'real/f.txt'))
    top, = ctx.sources('abs')
    assert top.kind == 'dir' and [e.rel for e in ctx.walk(top)] == ['abs', 'abs/f.txt', 'abs/up']
    assert ctx.sources('abs/f.txt')[0].path == str(ctx_dir / 'real/f.txt')
    with pytest.raises(NotFound):
        ctx.sources('dangling')


def test_walk_order_and_kinds(tmp_path):
    ctx_dir = make(tmp_path / 'ctx', {'Dockerfile': '', 'b': '', 'B': '', 'a-': '', 'a/x': '', 'a.b/': None})
    os.mkfifo(str(ctx_dir / 'fifo'))
    ctx = BuildContext(str(ctx_dir))
    entries = list(ctx.walk(ctx.sources('.')[0]))
    assert [e.rel for e in entries] == ['.', 'B', 'Dockerfile', 'a', 'a/x', 'a-', 'a.b', 'b', 'fifo']
    assert entries[-1].kind == 'other' and entries[3].kind == 'dir' and entries[3].size == 0


def test_exception_deep_under_excluded_dir(tmp_path):
    ctx_dir = make(tmp_path / 'ctx', {
        'Dockerfile': '', 'vendor/a/keep.txt': 'k', 'vendor/a/drop.txt': 'd', 'vendor/b/drop.txt': 'd',
        '.dockerignore': 'vendor\n!vendor/*/keep.txt\n',
    })
    ctx = BuildContext(str(ctx_dir))
    assert rels(ctx, '.') == ['.', '.dockerignore', 'Dockerfile', 'vendor', 'vendor/a', 'vendor/a/keep.txt']
    assert rels(ctx, 'vendor/*') == ['vendor/a', 'vendor/a/keep.txt']
    assert ctx.excluded('vendor/b/drop.txt') and not ctx.excluded('/vendor/a/keep.txt')


# ---- the Dockerfile and the ignore file ---------------------------------------------------------

def test_dockerfile_outside_the_context(tmp_path):
    ctx_dir = make(tmp_path / 'ctx', {'a': 'a', 'b': 'b', '.dockerignore': 'a'})
    make(tmp_path / 'elsewhere', {'build.Dockerfile': 'FROM x\n', 'build.Dockerfile.dockerignore': 'b'})
    ctx = BuildContext(str(ctx_dir), dockerfile=str(tmp_path / 'elsewhere/build.Dockerfile'))
    assert ctx.dockerfile_text == 'FROM x\n' and ctx.rules.patterns == ['b']
    assert ctx.excluded('b') and not ctx.excluded('a')
    ctx = BuildContext(str(ctx_dir), dockerfile=str(tmp_path / 'ctx/a'))      # no a.dockerignore
    assert ctx.rules.patterns == ['a']


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    ctx_dir = make(tmp_path / 'ctx', {
        'Dockerfile': 'FROM a\n', 'Dockerfile.dockerignore': 'one', '.dockerignore': 'two',
        'ci/app.Dockerfile': 'FROM b\n', 'ci/app.Dockerfile.dockerignore': 'three',
    })
    assert BuildContext(str(ctx_dir)).rules.patterns == ['one']
    ctx = BuildContext(str(ctx_dir), dockerfile='ci/app.Dockerfile')
    assert (ctx.dockerfile_text, ctx.rules.patterns) == ('FROM b\n', ['three'])
    assert ctx.dockerfile_path == str(ctx_dir / 'ci/app.Dockerfile')
    os.unlink(str(ctx_dir / 'Dockerfile.dockerignore'))
    assert BuildContext(str(ctx_dir)).rules.patterns == ['two']
    os.unlink(str(ctx_dir / '.dockerignore'))
    assert BuildContext(str(ctx_dir)).rules.patterns == []


def test_ignore_file_outside_is_refused(tmp_path):
    (tmp_path / 'patterns').write_text('x')
    ctx_dir = make(tmp_path / 'ctx', {'Dockerfile': '', '.dockerignore': ('->', str(tmp_path / 'patterns'))})
    with pytest.raises(InvalidArgument, match='ignore file .* outside the build context'):
        BuildContext(str(ctx_dir))


def test_lower_case_dockerfile(tmp_path):
    ctx_dir = make(tmp_path / 'ctx', {'dockerfile': 'FROM c\n'})
    assert BuildContext(str(ctx_dir)).dockerfile_text == 'FROM c\n'


def test_context_and_dockerfile_errors(tmp_path):
    with pytest.raises(NotFound, match='build context ".*/nope" does not exist'):
        BuildContext(str(tmp_path / 'nope'))
    (tmp_path / 'file').write_text('')
    with pytest.raises(InvalidArgument, match='is not a directory'):
        BuildContext(str(tmp_path / 'file'))
    ctx_dir = make(tmp_path / 'ctx', {'x': 'x', 'Dockerfile.bad/': None, 'out': ('->', '/etc/hostname'),
                                      'bin': ('->', '/bin/sh')})
    with pytest.raises(NotFound, match=r'Dockerfile ".*/ctx/Dockerfile" does not exist'):
        BuildContext(str(ctx_dir))
    with pytest.raises(InvalidArgument, match='is a directory'):
        BuildContext(str(ctx_dir), dockerfile='Dockerfile.bad')
    with pytest.raises(InvalidArgument, match='outside the build context'):
        BuildContext(str(ctx_dir), dockerfile='out')
    with pytest.raises(InvalidArgument, match='not UTF-8'):
        BuildContext(str(ctx_dir), dockerfile='/bin/sh')
    (ctx_dir / 'Dockerfile').write_text('FROM x\n')
    (ctx_dir / '.dockerignore').write_text('ok\n[oops\n')
    with pytest.raises(InvalidArgument) as info:
        BuildContext(str(ctx_dir))
    assert str(info.value) == ('pattern "[oops" on line 2 of %s/.dockerignore is malformed: "[" is never closed'
                               % ctx_dir)


# ---- the digest ------------------------------------------------------------------------------------

TREE = {'Dockerfile': 'FROM scratch\n', 'app/main.py': 'print(1)\n', 'app/lib/util.py': 'x = 2\n',
        'app/empty/': None, 'app/link': ('->', 'main.py'), 'big.bin': 'z' * 3000000,
        'app/cache.pyc': 'junk', '.dockerignore': '**/*.pyc\n'}


def digest_of(ctx_dir, source='.', **kw):
    ctx = BuildContext(str(ctx_dir))
    return ctx.digest(ctx.sources(source), **kw)


def test_digest_is_stable_across_copies_and_times(tmp_path):
    one = make(tmp_path / 'one', TREE)
    two = tmp_path / 'somewhere' / 'else'
    shutil.copytree(str(one), str(two), symlinks=True)
    for dirpath, dirnames, filenames in os.walk(str(two)):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (1, 1), follow_symlinks=False)
    assert digest_of(one) == digest_of(two)
    assert digest_of(one).startswith('sha256:') and len(digest_of(one)) == 71
    assert digest_of(one, 'app') == digest_of(two, 'app') != digest_of(one)
    assert digest_of(one, 'app/*.py') == digest_of(two, 'app/*.py')


def _mode(p):
    os.chmod(str(p / 'app/main.py'), 0o600)


def _bytes(p):
    (p / 'app/main.py').write_text('print(2)\n')


def _bigbyte(p):
    with open(str(p / 'big.bin'), 'r+b') as f:
        f.seek(2500000)
        f.write(b'y')


def _owner(p):
    if os.geteuid() != 0:
        pytest.skip('changing a file owner needs root')
    os.chown(str(p / 'app/main.py'), 12345, 12345)


@pytest.mark.parametrize('change', [
    _mode, _bytes, _bigbyte, _owner,
    lambda p: (p / 'app/new.txt').write_text(''),
    lambda p: os.rename(str(p / 'app/lib/util.py'), str(p / 'app/lib/util2.py')),
    lambda p: os.rename(str(p / 'app/lib'), str(p / 'app/lib2')),
    lambda p: os.unlink(str(p / 'app/link')) or os.symlink('lib', str(p / 'app/link')),
    lambda p: (p / 'app/empty/x').mkdir(),
    lambda p: os.chmod(str(p / 'app/empty'), 0o700),
    lambda p: os.unlink(str(p / 'app/lib/util.py')),
], ids=['mode', 'bytes', 'bytes-past-1MiB', 'owner', 'new-file', 'rename-file', 'rename-dir',
        'symlink-target', 'new-dir', 'dir-mode', 'removed'])
def test_digest_changes(tmp_path, change):
    tree = make(tmp_path / 'ctx', TREE)
    before = digest_of(tree)
    change(tree)
    assert digest_of(tree) != before


@pytest.mark.parametrize('change', [
    lambda p: (p / 'app/cache.pyc').write_text('other junk'),
    lambda p: (p / 'app/lib/new.pyc').write_text('more'),
    lambda p: os.unlink(str(p / 'app/cache.pyc')),
    lambda p: os.utime(str(p / 'app/main.py'), (5, 5)),
])
def test_digest_ignores_ignored_files_and_times(tmp_path, change):
    tree = make(tmp_path / 'ctx', TREE)
    before = digest_of(tree)
    change(tree)
    assert digest_of(tree) == before


def test_digest_owner_and_mode_overrides(tmp_path):
    tree = make(tmp_path / 'ctx', TREE)
    plain = digest_of(tree, 'app')
    assert digest_of(tree, 'app', chown='1000:1000') not in (plain, digest_of(tree, 'app', chown='0:0'))
    assert digest_of(tree, 'app', chmod='755') not in (plain, digest_of(tree, 'app', chmod='644'))
    overridden = digest_of(tree, 'app', chown='app', chmod='755')
    _mode(tree)
    assert digest_of(tree, 'app', chown='app', chmod='755') == overridden
    assert digest_of(tree, 'app') != plain


def test_digest_names_its_tops(tmp_path):
    tree = make(tmp_path / 'ctx', {'Dockerfile': '', 'a': 'same', 'b': 'same'})
    ctx = BuildContext(str(tree))
    assert ctx.digest(ctx.sources('a')) != ctx.digest(ctx.sources('b'))
    assert ctx.digest(ctx.sources('a')[0]) == ctx.digest(ctx.sources('a'))


def test_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(buildcontext, 'RACY_NS', 0)
    tree = make(tmp_path / 'ctx', TREE)
    cache = tmp_path / 'state' / 'hashes.json'
    hashed = []
    real = buildcontext.hash_file

    def counting(path, st):
        hashed.append(os.path.basename(path))
        return real(path, st)

    monkeypatch.setattr(buildcontext, 'hash_file', counting)
    cold = digest_of(tree)
    assert sorted(hashed) == ['.dockerignore', 'Dockerfile', 'big.bin', 'main.py', 'util.py']
    first = BuildContext(str(tree), hash_cache=str(cache))
    assert first.digest(first.sources('.')) == cold
    assert len(json.loads(cache.read_text())['files']) == 5
    del hashed[:]
    again = BuildContext(str(tree), hash_cache=str(cache))
    assert again.digest(again.sources('.')) == cold and hashed == []
    main = tree / 'app/main.py'                     # same size, same mtime: the ctime still tells
    times = os.stat(str(main)).st_mtime_ns
    main.write_text('print(3)\n')
    os.utime(str(main), ns=(times, times))
    third = BuildContext(str(tree), hash_cache=str(cache))
    assert third.digest(third.sources('.')) != cold and hashed == ['main.py']


def test_damaged_hash_cache_is_ignored(tmp_path):
    tree = make(tmp_path / 'ctx', TREE)
    cache = tmp_path / 'hashes.json'
    for junk in ('{not json', '[]', '{"version": 1, "files": []}', '{"version": 1, "files": {"1:2": 3}}'):
        cache.write_text(junk)
        ctx = BuildContext(str(tree), hash_cache=str(cache))
        assert ctx.digest(ctx.sources('.')) == digest_of(tree)

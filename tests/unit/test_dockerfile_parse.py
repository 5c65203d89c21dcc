# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole-file Dockerfile parser and Docker's word lexer (BuildKit parser/ and shell/lex.go rules)."""

from __future__ import annotations


import pytest

from ctr import dockerfile_parse
from ctr.dockerfile_parse import Heredoc
from ctr.errors import InvalidArgument
from ctr.records import FrozenInstanceError


def C(line, keyword, args, flags=(), json=None, docs=(), end=None):
    """The expected outline of one Command."""
    return (line, end or line, keyword, args, tuple(flags), json, tuple(docs))


def H(name, content, expand=True, strip=False):
    return Heredoc(name, content, expand, strip)


def describe(cmd):
    return (cmd.line, cmd.end_line, cmd.keyword, cmd.args, cmd.flags, cmd.json_args, cmd.heredocs)


def outline(df):
    return {
        'escape': df.escape,
        'syntax': df.syntax,
        'meta': [describe(c) for c in df.meta_args],
        'stages': [(s.index, s.name, s.base, s.platform, s.line, [describe(c) for c in s.commands]) for s in df.stages],
    }


# ---------------------------------------------------------------------------------------------
# Real-world Dockerfiles, in the styles of popular official images.

NGINX = '''\
FROM debian:bookworm-slim

LABEL maintainer="NGINX Docker Maintainers <docker-maint@nginx.com>"

ENV NGINX_VERSION   1.25.4
ENV PKG_RELEASE     1~bookworm

RUN set -x \\
# create nginx user/group first, to be consistent throughout docker variants
    && groupadd --system --gid 101 nginx \\
    && useradd --system --gid nginx --no-create-home --comment "nginx user" --uid 101 nginx \\
    && apt-get update \\
    \\
    && rm -rf /var/lib/apt/lists/*

COPY docker-entrypoint.sh /
COPY 10-listen-on-ipv6-by-default.sh /docker-entrypoint.d
ENTRYPOINT ["/docker-entrypoint.sh"]

EXPOSE 80

STOPSIGNAL SIGQUIT

CMD ["nginx", "-g", "daemon off;"]
'''

NGINX_OUTLINE = {
    'escape': '\\', 'syntax': '', 'meta': [],
    'stages': [(0, '', 'debian:bookworm-slim', '', 1, [
        C(3, 'LABEL', 'maintainer="NGINX Docker Maintainers <docker-maint@nginx.com>"'),
        C(5, 'ENV', 'NGINX_VERSION   1.25.4'),
        C(6, 'ENV', 'PKG_RELEASE     1~bookworm'),
        C(8, 'RUN', 'set -x '
                    '    && groupadd --system --gid 101 nginx '
                    '    && useradd --system --gid nginx --no-create-home --comment "nginx user" --uid 101 nginx '
                    '    && apt-get update '
                    '    '
                    '    && rm -rf /var/lib/apt/lists/*', end=14),
        C(16, 'COPY', 'docker-entrypoint.sh /'),
        C(17, 'COPY', '10-listen-on-ipv6-by-default.sh /docker-entrypoint.d'),
        C(18, 'ENTRYPOINT', '["/docker-entrypoint.sh"]', json=['/docker-entrypoint.sh']),
        C(20, 'EXPOSE', '80'),
        C(22, 'STOPSIGNAL', 'SIGQUIT'),
        C(24, 'CMD', '["nginx", "-g", "daemon off;"]', json=['nginx', '-g', 'daemon off;']),
    ])],
}

PYTHON = '''\
FROM python:3.12-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_NO_CACHE_DIR=off

ARG UID=10001
RUN adduser \\
    --disabled-password \\
    --gecos "" \\
    --uid "${UID}" \\
    appuser

WORKDIR /app
COPY --chown=appuser:appuser requirements.txt .
RUN --mount=type=cache,target=/root/.cache/pip \\
    --mount=type=bind,source=requirements.txt,target=requirements.txt \\
    python -m pip install -r requirements.txt
USER appuser
COPY . .
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \\
  CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8000/')" || exit 1
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]
'''

PYTHON_OUTLINE = {
    'escape': '\\', 'syntax': '', 'meta': [],
    'stages': [(0, '', 'python:3.12-slim-bookworm', '', 1, [
        C(3, 'ENV', 'PYTHONDONTWRITEBYTECODE=1     PYTHONUNBUFFERED=1     PIP_NO_CACHE_DIR=off', end=5),
        C(7, 'ARG', 'UID=10001'),
        # flags are only leading words: --disabled-password after "adduser" is an argument
        C(8, 'RUN', 'adduser     --disabled-password     --gecos ""     --uid "${UID}"     appuser', end=12),
        C(14, 'WORKDIR', '/app'),
        C(15, 'COPY', 'requirements.txt .', flags=[('chown', 'appuser:appuser')]),
        C(16, 'RUN', 'python -m pip install -r requirements.txt', end=18, flags=[
            ('mount', 'type=cache,target=/root/.cache/pip'),
            ('mount', 'type=bind,source=requirements.txt,target=requirements.txt')]),
        C(19, 'USER', 'appuser'),
        C(20, 'COPY', '. .'),
        C(21, 'EXPOSE', '8000'),
        C(22, 'HEALTHCHECK',
          '''CMD python -c "import urllib.request; urllib.request.urlopen('http://localhost:8000/')" || exit 1''',
          end=23, flags=[('interval', '30s'), ('timeout', '5s'), ('start-period', '10s'), ('retries', '3')]),
        C(24, 'CMD', '["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]',
          json=['gunicorn', '--bind', '0.0.0.0:8000', 'app:app']),
    ])],
}

NODE = '''\
FROM node:20-alpine AS deps
RUN apk add --no-cache libc6-compat
WORKDIR /app
COPY package.json package-lock.json* ./
RUN npm ci

FROM node:20-alpine AS Builder
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY . .
ENV NEXT_TELEMETRY_DISABLED 1
RUN npm run build

from node:20-alpine as runner
workdir /app
Env NODE_ENV=production
RUN addgroup --system --gid 1001 nodejs && adduser --system --uid 1001 nextjs
COPY --from=builder --chown=nextjs:nodejs /app/.next/standalone ./
USER nextjs
EXPOSE 3000
ENV PORT=3000 HOSTNAME="0.0.0.0"
CMD ["node", "server.js"]
'''

NODE_OUTLINE = {
    'escape': '\\', 'syntax': '', 'meta': [],
    'stages': [
        (0, 'deps', 'node:20-alpine', '', 1, [
            C(2, 'RUN', 'apk add --no-cache libc6-compat'),
            C(3, 'WORKDIR', '/app'),
            C(4, 'COPY', 'package.json package-lock.json* ./'),
            C(5, 'RUN', 'npm ci'),
        ]),
        (1, 'builder', 'node:20-alpine', '', 7, [
            C(8, 'WORKDIR', '/app'),
            C(9, 'COPY', '/app/node_modules ./node_modules', flags=[('from', 'deps')]),
            C(10, 'COPY', '. .'),
            C(11, 'ENV', 'NEXT_TELEMETRY_DISABLED 1'),
            C(12, 'RUN', 'npm run build'),
        ]),
        (2, 'runner', 'node:20-alpine', '', 14, [
            C(15, 'WORKDIR', '/app'),
            C(16, 'ENV', 'NODE_ENV=production'),
            C(17, 'RUN', 'addgroup --system --gid 1001 nodejs && adduser --system --uid 1001 nextjs'),
            C(18, 'COPY', '/app/.next/standalone ./', flags=[('from', 'builder'), ('chown', 'nextjs:nodejs')]),
            C(19, 'USER', 'nextjs'),
            C(20, 'EXPOSE', '3000'),
            C(21, 'ENV', 'PORT=3000 HOSTNAME="0.0.0.0"'),
            C(22, 'CMD', '["node", "server.js"]', json=['node', 'server.js']),
        ]),
    ],
}

GOLANG = '''\
# syntax=docker/dockerfile:1.7
# check=skip=JSONArgsRecommended
ARG GO_VERSION=1.22
ARG ALPINE_VERSION=3.19

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine${ALPINE_VERSION} AS build
ARG TARGETOS TARGETARCH
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod \\
    --mount=type=bind,source=go.sum,target=go.sum \\
    go mod download -x
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=bind,target=. --network=none \\
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /bin/server ./cmd/server

FROM alpine:${ALPINE_VERSION} AS final
RUN --mount=type=cache,target=/var/cache/apk \\
    apk --update add ca-certificates tzdata && update-ca-certificates
ARG UID=10001
USER ${UID}
COPY --from=build --chmod=0755 --link /bin/server /bin/
EXPOSE 8080
ENTRYPOINT [ "/bin/server" ]
'''

GOLANG_OUTLINE = {
    'escape': '\\', 'syntax': 'docker/dockerfile:1.7',
    'meta': [C(3, 'ARG', 'GO_VERSION=1.22'), C(4, 'ARG', 'ALPINE_VERSION=3.19')],
    'stages': [
        (0, 'build', 'golang:${GO_VERSION}-alpine${ALPINE_VERSION}', '$BUILDPLATFORM', 6, [
            C(7, 'ARG', 'TARGETOS TARGETARCH'),
            C(8, 'WORKDIR', '/src'),
            C(9, 'RUN', 'go mod download -x', end=11, flags=[
                ('mount', 'type=cache,target=/go/pkg/mod'), ('mount', 'type=bind,source=go.sum,target=go.sum')]),
            C(12, 'RUN', 'CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /bin/server ./cmd/server',
              end=13, flags=[('mount', 'type=cache,target=/go/pkg/mod'), ('mount', 'type=bind,target=.'),
                             ('network', 'none')]),
        ]),
        (1, 'final', 'alpine:${ALPINE_VERSION}', '', 15, [
            C(16, 'RUN', 'apk --update add ca-certificates tzdata && update-ca-certificates', end=17,
              flags=[('mount', 'type=cache,target=/var/cache/apk')]),
            C(18, 'ARG', 'UID=10001'),
            C(19, 'USER', '${UID}'),
            C(20, 'COPY', '/bin/server /bin/', flags=[('from', 'build'), ('chmod', '0755'), ('link', 'true')]),
            C(21, 'EXPOSE', '8080'),
            C(22, 'ENTRYPOINT', '[ "/bin/server" ]', json=['/bin/server']),
        ]),
    ],
}

ALPINE_HEREDOCS = '''\
# syntax=docker/dockerfile:1
FROM alpine:3.19
RUN <<EOF
set -eux
apk add --no-cache curl
EOF
COPY <<-"EOT" /etc/motd
\tWelcome to $HOSTNAME
\t\tindented twice
\tEOT
RUN <<eot python3 - && echo done
print("hello")
eot
COPY --chmod=755 <<'SCRIPT' /usr/local/bin/hello
#!/bin/sh
# not a Dockerfile comment
echo "hello $1" \\
SCRIPT
COPY <<A <<B /etc/
a
A
b
B
RUN cat <<  SPACED
spaced marker
SPACED
RUN echo "<<NOT a heredoc" && echo '<<nor this' && echo $((1<<3))
RUN ["sh", "-c", "cat <<EOF"]
ONBUILD RUN <<X
echo triggered
X
'''

ALPINE_HEREDOCS_OUTLINE = {
    'escape': '\\', 'syntax': 'docker/dockerfile:1', 'meta': [],
    'stages': [(0, '', 'alpine:3.19', '', 2, [
        C(3, 'RUN', '<<EOF', end=6, docs=[H('EOF', 'set -eux\napk add --no-cache curl\n')]),
        C(7, 'COPY', '<<-"EOT" /etc/motd', end=10,
          docs=[H('EOT', 'Welcome to $HOSTNAME\nindented twice\n', expand=False, strip=True)]),
        C(11, 'RUN', '<<eot python3 - && echo done', end=13, docs=[H('eot', 'print("hello")\n')]),
        C(14, 'COPY', "<<'SCRIPT' /usr/local/bin/hello", end=18, flags=[('chmod', '755')],
          docs=[H('SCRIPT', '#!/bin/sh\n# not a Dockerfile comment\necho "hello $1" \\\n', expand=False)]),
        C(19, 'COPY', '<<A <<B /etc/', end=23, docs=[H('A', 'a\n'), H('B', 'b\n')]),
        C(24, 'RUN', 'cat <<  SPACED', end=26, docs=[H('SPACED', 'spaced marker\n')]),
        C(27, 'RUN', '''echo "<<NOT a heredoc" && echo '<<nor this' && echo $((1<<3))'''),
        C(28, 'RUN', '["sh", "-c", "cat <<EOF"]', json=['sh', '-c', 'cat <<EOF']),
        C(29, 'ONBUILD', 'RUN <<X', end=31, docs=[H('X', 'echo triggered\n')]),
    ])],
}

WINDOWS = '''\
# escape=`

FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
ENV NODE_VERSION=20.11.1 `
    NODE_DIR=C:\\nodejs
RUN Invoke-WebRequest -OutFile node.zip "https://nodejs.org/dist/v$env:NODE_VERSION/node.zip"; `
    Expand-Archive node.zip -DestinationPath C:\\ ; `
    Remove-Item -Force node.zip
COPY app\\ C:\\app\\
WORKDIR C:\\app
CMD ["node.exe", "server.js"]
'''

WINDOWS_OUTLINE = {
    'escape': '`', 'syntax': '', 'meta': [],
    'stages': [(0, '', 'mcr.microsoft.com/windows/servercore:ltsc2022', '', 3, [
        C(4, 'SHELL', '''["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]''',
          json=['powershell', '-Command', "$ErrorActionPreference = 'Stop';"]),
        C(5, 'ENV', 'NODE_VERSION=20.11.1     NODE_DIR=C:\\nodejs', end=6),
        C(7, 'RUN', 'Invoke-WebRequest -OutFile node.zip "https://nodejs.org/dist/v$env:NODE_VERSION/node.zip"; '
                    '    Expand-Archive node.zip -DestinationPath C:\\ ; '
                    '    Remove-Item -Force node.zip', end=9),
        # a trailing backslash is an ordinary character under `# escape=``
        C(10, 'COPY', 'app\\ C:\\app\\'),
        C(11, 'WORKDIR', 'C:\\app'),
        C(12, 'CMD', '["node.exe", "server.js"]', json=['node.exe', 'server.js']),
    ])],
}

EVERY_INSTRUCTION = '''\
ARG BASE=busybox:1.36
ARG TAG
FROM ${BASE}
MAINTAINER Jane Doe <jane@example.com>
LABEL org.opencontainers.image.title="demo" \\
      "com.example.vendor"="ACME Inc" version=1.0
ENV HOME=/root PATH=/opt/bin:$PATH
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /opt/
ADD --keep-git-dir=true --link=false --exclude=*.tmp https://github.com/moby/buildkit.git#v0.13.0 /src
ADD ["files with spaces/", "/dest dir/"]
COPY ["a b.txt", "c.txt", "/data/"]
VOLUME /var/lib/data /var/log
VOLUME ["/cache"]
USER 1000:1000
WORKDIR /home/app
EXPOSE 80/tcp 53/udp 8000-8010
STOPSIGNAL SIGTERM
ONBUILD COPY . /app/src
ONBUILD RUN ["make", "-C", "/app/src"]
HEALTHCHECK NONE
HEALTHCHECK CMD wget -q -O- http://localhost/ || exit 1
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
RUN --security=insecure --network=host -- --weird-but-legal
ENTRYPOINT ["/bin/app"]
CMD []
cmd [ "--serve" ]
'''

EVERY_INSTRUCTION_OUTLINE = {
    'escape': '\\', 'syntax': '', 'meta': [C(1, 'ARG', 'BASE=busybox:1.36'), C(2, 'ARG', 'TAG')],
    'stages': [(0, '', '${BASE}', '', 3, [
        C(4, 'MAINTAINER', 'Jane Doe <jane@example.com>'),
        C(5, 'LABEL', 'org.opencontainers.image.title="demo"       "com.example.vendor"="ACME Inc" version=1.0',
          end=6),
        C(7, 'ENV', 'HOME=/root PATH=/opt/bin:$PATH'),
        C(8, 'ADD', 'https://example.com/a.tar.gz /opt/',
          flags=[('checksum', 'sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d')]),
        C(9, 'ADD', 'https://github.com/moby/buildkit.git#v0.13.0 /src',
          flags=[('keep-git-dir', 'true'), ('link', 'false'), ('exclude', '*.tmp')]),
        C(10, 'ADD', '["files with spaces/", "/dest dir/"]', json=['files with spaces/', '/dest dir/']),
        C(11, 'COPY', '["a b.txt", "c.txt", "/data/"]', json=['a b.txt', 'c.txt', '/data/']),
        C(12, 'VOLUME', '/var/lib/data /var/log'),
        C(13, 'VOLUME', '["/cache"]', json=['/cache']),
        C(14, 'USER', '1000:1000'),
        C(15, 'WORKDIR', '/home/app'),
        C(16, 'EXPOSE', '80/tcp 53/udp 8000-8010'),
        C(17, 'STOPSIGNAL', 'SIGTERM'),
        C(18, 'ONBUILD', 'COPY . /app/src'),
        C(19, 'ONBUILD', 'RUN ["make", "-C", "/app/src"]'),
        C(20, 'HEALTHCHECK', 'NONE'),
        C(21, 'HEALTHCHECK', 'CMD wget -q -O- http://localhost/ || exit 1'),
        C(22, 'SHELL', '["/bin/ash", "-eo", "pipefail", "-c"]', json=['/bin/ash', '-eo', 'pipefail', '-c']),
        C(23, 'RUN', '--weird-but-legal', flags=[('security', 'insecure'), ('network', 'host')]),
        C(24, 'ENTRYPOINT', '["/bin/app"]', json=['/bin/app']),
        C(25, 'CMD', '[]', json=[]),
        C(26, 'CMD', '[ "--serve" ]', json=['--serve']),
    ])],
}


@pytest.mark.parametrize('text, expected', [
    (NGINX, NGINX_OUTLINE),
    (PYTHON, PYTHON_OUTLINE),
    (NODE, NODE_OUTLINE),
    (GOLANG, GOLANG_OUTLINE),
    (ALPINE_HEREDOCS, ALPINE_HEREDOCS_OUTLINE),
    (WINDOWS, WINDOWS_OUTLINE),
    (EVERY_INSTRUCTION, EVERY_INSTRUCTION_OUTLINE),
], ids=['nginx', 'python', 'node-multistage', 'golang-multistage', 'alpine-heredocs', 'windows-escape',
        'every-instruction'])
def test_real_world_dockerfiles(text, expected):
    assert outline(dockerfile_parse.parse(text)) == expected


# ---------------------------------------------------------------------------------------------
# Corners of comments, continuations, directives, flags, heredocs and the JSON form.
# Each text's commands after FROM (all stages) are compared.

@pytest.mark.parametrize('text, expected', [
    # continuations: trailing blanks after the escape, leading blanks of the next line kept
    ('FROM a\nRUN echo hello  \\  \nworld\n', [C(2, 'RUN', 'echo hello  world', end=3)]),
    ('FROM a\nRUN echo hello\\\n  world\\\n  goodnight\n', [C(2, 'RUN', 'echo hello  world  goodnight', end=4)]),
    # an escaped escape at the end of a line is not a continuation
    ('FROM a\nENV C trailing\\\\backslash\\\\\nENV D next\n',
     [C(2, 'ENV', 'C trailing\\\\backslash\\\\'), C(3, 'ENV', 'D next')]),
    # a line holding only the escape continues; comment and blank lines inside are skipped
    ('FROM a\nENV E hello\\\n\\\nworld\n', [C(2, 'ENV', 'E hello' + 'world', end=4)]),
    ('FROM a\nRUN echo a \\\n# comment \\\n\n   \n  # indented comment\n  && echo b\n',
     [C(2, 'RUN', 'echo a   && echo b', end=7)]),
    # a continuation at the end of the file just ends the instruction
    ('FROM a\nRUN something \\', [C(2, 'RUN', 'something')]),
    # CRLF line ends
    ('FROM a\r\nRUN echo \\\r\n  hi\r\nUSER app\r\n', [C(2, 'RUN', 'echo   hi', end=3), C(4, 'USER', 'app')]),
    # comments: leading blanks, trailing '\\' in a comment is no continuation, '#' mid-line is text
    ('FROM a\n   # indented comment \\\nRUN echo # not a comment\n', [C(3, 'RUN', 'echo # not a comment')]),
    # keywords are case-insensitive; indentation before a keyword is ignored
    ('from a\n  run echo hi\nExPoSe 80\n', [C(2, 'RUN', 'echo hi'), C(3, 'EXPOSE', '80')]),
    # flags: quotes removed from values, escapes processed, -- ends them, bool values normalised
    ('FROM a\nRUN --mount="type=secret,id=a b" --network=\'none\' echo\n',
     [C(2, 'RUN', 'echo', flags=[('mount', 'type=secret,id=a b'), ('network', 'none')])]),
    ('FROM a\nCOPY --chown=1:1 -- --odd-name /dst\n', [C(2, 'COPY', '--odd-name /dst', flags=[('chown', '1:1')])]),
    ('FROM a\nCOPY x --chown=1:1 /dst\n', [C(2, 'COPY', 'x --chown=1:1 /dst')]),
    ('FROM a\nCOPY --exclude=*.md --exclude="docs dir" --from=0 . /\n',
     [C(2, 'COPY', '. /', flags=[('exclude', '*.md'), ('exclude', 'docs dir'), ('from', '0')])]),
    ('FROM a\nADD --link=false --keep-git-dir x y\n',
     [C(2, 'ADD', 'x y', flags=[('link', 'false'), ('keep-git-dir', 'true')])]),
    # JSON form: only a JSON array of strings; anything else is the shell form
    ("FROM a\nCMD ['single', 'quotes']\n", [C(2, 'CMD', "['single', 'quotes']")]),
    ('FROM a\nCMD [not json\n', [C(2, 'CMD', '[not json')]),
    ('FROM a\nRUN [\n', [C(2, 'RUN', '[')]),
    ('FROM a\nENTRYPOINT ["a"] trailing\n', [C(2, 'ENTRYPOINT', '["a"] trailing')]),
    ('FROM a\nENTRYPOINT [ ]\n', [C(2, 'ENTRYPOINT', '[ ]', json=[])]),
    ('FROM a\nCMD ["a", NaN]\n', [C(2, 'CMD', '["a", NaN]')]),
    ('FROM a\nCMD [\t"a",\t"b"\t]\t\n', [C(2, 'CMD', '[\t"a",\t"b"\t]', json=['a', 'b'])]),
    ('FROM a\nCMD ["\\" \\\\ \\/ \\u00e9"]\n', [C(2, 'CMD', '["\\" \\\\ \\/ \\u00e9"]', json=['" \\ / \u00e9'])]),
    ('FROM a\nLABEL x=\'["not", "exec"]\'\n', [C(2, 'LABEL', 'x=\'["not", "exec"]\'')]),
    ('FROM a\nHEALTHCHECK --timeout=3s CMD ["curl", "-f", "http://localhost/"]\n',
     [C(2, 'HEALTHCHECK', 'CMD ["curl", "-f", "http://localhost/"]', flags=[('timeout', '3s')],
        json=['curl', '-f', 'http://localhost/'])]),
    ('FROM a\nHEALTHCHECK --start-period=0s --start-interval=0s --interval=1m30s --timeout=0s --retries=0 CMD true\n',
     [C(2, 'HEALTHCHECK', 'CMD true', flags=[
         ('start-period', '0s'), ('start-interval', '0s'), ('interval', '1m30s'), ('timeout', '0s'), ('retries', '0')])]),
    ('FROM a\nhealthcheck none\n', [C(2, 'HEALTHCHECK', 'none')]),
    # heredocs (BuildKit's parser_heredoc_test cases)
    ('FROM a\nRUN <<EMPTY\nEMPTY\n', [C(2, 'RUN', '<<EMPTY', end=3, docs=[H('EMPTY', '')])]),
    ('FROM a\nRUN 3<<FD\nx\nFD\n', [C(2, 'RUN', '3<<FD', end=4, docs=[H('FD', 'x\n')])]),
    ('FROM a\nRUN <<INDENT\n\tfoo\n\tbar\nINDENT\n', [C(2, 'RUN', '<<INDENT', end=5, docs=[H('INDENT', '\tfoo\n\tbar\n')])]),
    ('FROM a\nRUN <<-UNINDENT\n\tbaz\n\t\tquux\n\tUNINDENT\n',
     [C(2, 'RUN', '<<-UNINDENT', end=5, docs=[H('UNINDENT', 'baz\nquux\n', strip=True)])]),
    ('FROM a\nRUN <<eo\'f\'\necho foo\neof\n', [C(2, 'RUN', "<<eo'f'", end=4, docs=[H('eof', 'echo foo\n', expand=False)])]),
    ('FROM a\nRUN <<eo\\\'f\necho foo\neo\'f\n', [C(2, 'RUN', "<<eo\\'f", end=4, docs=[H("eo'f", 'echo foo\n')])]),
    ('FROM a\nRUN <<\'one two\'\necho bar\none two\n',
     [C(2, 'RUN', "<<'one two'", end=4, docs=[H('one two', 'echo bar\n', expand=False)])]),
    ('FROM a\nRUN <<$EOF\n$EOF\n', [C(2, 'RUN', '<<$EOF', end=3, docs=[H('$EOF', '')])]),
    ('FROM a\nCOPY <<X <<Y /dest\nY\nX\nX\nY\n', [C(2, 'COPY', '<<X <<Y /dest', end=6, docs=[H('X', 'Y\n'), H('Y', 'X\n')])]),
    ('FROM a\nRUN --mount=type=cache,target=/c <<MOUNT\necho hello\nMOUNT\n',
     [C(2, 'RUN', '<<MOUNT', end=4, flags=[('mount', 'type=cache,target=/c')], docs=[H('MOUNT', 'echo hello\n')])]),
    # the terminator must be the whole line; body lines keep their CRLF
    ('FROM a\nRUN <<EOF\nEOF \n EOF\nEOF\n', [C(2, 'RUN', '<<EOF', end=5, docs=[H('EOF', 'EOF \n EOF\n')])]),
    ('FROM a\r\nRUN <<EOF\r\nline\r\nEOF\r\n', [C(2, 'RUN', '<<EOF', end=4, docs=[H('EOF', 'line\r\n')])]),
    # the heredoc follows the whole logical instruction, continuation included
    ('FROM a\nRUN cat <<EOF \\\n  > /out\nbody\nEOF\n', [C(2, 'RUN', 'cat <<EOF   > /out', end=5, docs=[H('EOF', 'body\n')])]),
    # not heredocs: inside quotes, glued to a word (as Docker), JSON form, instructions other than RUN/COPY/ADD
    ('FROM a\nRUN echo "<<EOF"\n', [C(2, 'RUN', 'echo "<<EOF"')]),
    ('FROM a\nRUN cat<<EOF\n', [C(2, 'RUN', 'cat<<EOF')]),
    ('FROM a\nRUN ["<<EOF"]\n', [C(2, 'RUN', '["<<EOF"]', json=['<<EOF'])]),
    ('FROM a\nLABEL a=<<EOF\n', [C(2, 'LABEL', 'a=<<EOF')]),
    ('FROM a\nONBUILD RUN ["cat", "<<EOF"]\n', [C(2, 'ONBUILD', 'RUN ["cat", "<<EOF"]')]),
    ('FROM a\nONBUILD ADD <<-EOF /x\n\tdata\nEOF\n',
     [C(2, 'ONBUILD', 'ADD <<-EOF /x', end=4, docs=[H('EOF', 'data\n', strip=True)])]),
    # the escape directive switches the continuation character
    ('# escape=`\nFROM a\nRUN echo \\\nUSER x\n', [C(3, 'RUN', 'echo \\'), C(4, 'USER', 'x')]),
    ('#escape = `\nFROM `\n    image\nENV GOPATH `\n\\go\n', [C(4, 'ENV', 'GOPATH \\go', end=5)]),
])
def test_corners(text, expected):
    df = dockerfile_parse.parse(text)
    assert [describe(c) for s in df.stages for c in s.commands] == expected


@pytest.mark.parametrize('text, escape, syntax', [
    ('# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n', '`', 'docker/dockerfile:1'),
    ('#  SYNTAX = docker/dockerfile:1.4  \n#Escape=`\nFROM a\n', '`', 'docker/dockerfile:1.4'),
    ('\ufeff# escape=`\nFROM a\n', '`', ''),                     # a byte-order mark is dropped
    ('  # escape=`\nFROM a\n', '`', ''),                         # indentation is allowed
    ('# check=skip=all\n# escape=`\nFROM a\n', '`', ''),          # check is accepted and ignored
    ('# a comment\n# escape=`\nFROM a\n', '\\', ''),              # after a comment: ordinary comment
    ('\n# escape=`\nFROM a\n', '\\', ''),                         # after a blank line: ordinary comment
    ('# unknown=1\n# escape=`\nFROM a\n', '\\', ''),              # an unknown directive ends them
    ('FROM a\n# escape=`\n', '\\', ''),                           # after an instruction
    ('# escape=\nFROM a\n', '\\', ''),                            # no value: a comment
    ('#!/usr/bin/env docker-build\n# escape=`\nFROM a\n', '\\', ''),
])
def test_directives(text, escape, syntax):
    df = dockerfile_parse.parse(text)
    assert (df.escape, df.syntax) == (escape, syntax)


def test_onbuild_trigger_heredoc_and_command_fields():
    df = dockerfile_parse.parse('FROM a\nRUN --mount=type=cache,target=/a  --mount=type=tmpfs,target=/b \\\n'
                                '  # note\n  make \\\n  all\nCOPY --link x y\n', path='ctx/Dockerfile')
    run, copy = df.stages[0].commands
    assert run.original == 'RUN --mount=type=cache,target=/a  --mount=type=tmpfs,target=/b   make   all'
    assert run.args == 'make   all'
    assert run.flag('mount') == 'type=tmpfs,target=/b'
    assert run.flag_values('mount') == ['type=cache,target=/a', 'type=tmpfs,target=/b']
    assert run.flag('network') is None and run.flag('network', 'default') == 'default'
    assert run.flag_values('network') == []
    assert copy.flag('link') == 'true'
    assert df.path == 'ctx/Dockerfile'
    with pytest.raises(FrozenInstanceError):
        run.args = 'x'


def test_platform_flag():
    df = dockerfile_parse.parse('FROM --platform=linux/arm64 a AS one\nFROM --platform= b\nFROM c\n')
    assert [(s.name, s.base, s.platform) for s in df.stages] == [('one', 'a', 'linux/arm64'), ('', 'b', ''), ('', 'c', '')]


def test_bytes_input_and_stage_lookup():
    df = dockerfile_parse.parse(NODE.encode('utf-8'))
    assert df.stage('deps').index == 0
    assert df.stage('BUILDER').index == 1
    assert df.stage(2).name == 'runner'
    assert df.stage('1').name == 'builder'
    for ref in ('nope', 3, '3', -1):
        with pytest.raises(InvalidArgument, match='has no build stage'):
            df.stage(ref)


# ---------------------------------------------------------------------------------------------
# Errors: each names the file, the line and the instruction.

KEYWORDS_NEEDING_ARGS = [k for k in dockerfile_parse.KEYWORDS if k != 'FROM']


@pytest.mark.parametrize('text, line, keyword, fragment', [
    ('', 1, '', 'the file is empty'),
    ('# only a comment\n\n   \n', 1, '', 'the file is empty'),
    ('ARG A=1\nARG B\n', 1, '', 'no FROM instruction'),
    ('ARG A=1\nLABEL a=b\nFROM x\n', 2, 'LABEL', 'only ARG may come before the first FROM'),
    ('FROM x\nFROBNICATE y\n', 2, '', 'unknown instruction "FROBNICATE"'),
    ('FROM\n', 1, 'FROM', 'needs an argument'),
    ('FROM a b\n', 1, 'FROM', 'expected "FROM [--platform=PLATFORM] IMAGE [AS NAME]"'),
    ('FROM a AS\n', 1, 'FROM', 'expected'),
    ('FROM a AS b c\n', 1, 'FROM', 'expected'),
    ('FROM a AS 9lives\n', 1, 'FROM', 'invalid stage name "9lives"'),
    ('FROM a AS my/stage\n', 1, 'FROM', 'invalid stage name'),
    ('FROM a AS x\nRUN y\nFROM b AS X\n', 3, 'FROM', 'the stage name "x" is already used on line 1'),
    ('FROM --platform linux/amd64 a\n', 1, 'FROM', 'the flag --platform needs a value'),
    ('# escape=^\nFROM a\n', 1, '', 'the escape parser directive must be \\ or `, not "^"'),
    ('# syntax=a\n# syntax=b\nFROM a\n', 2, '', 'the syntax parser directive is given twice (first on line 1)'),
    ('FROM a\nCOPY --from x y\n', 2, 'COPY', 'the flag --from needs a value'),
    ('FROM a\nCOPY --link=maybe x y\n', 2, 'COPY', 'the flag --link takes true or false, not "maybe"'),
    ('FROM a\nCOPY --link= x y\n', 2, 'COPY', 'the flag --link takes true or false'),
    ('FROM a\nCOPY --link=TRUE --parents --link=False x y\n', 2, 'COPY', 'the flag --link is given twice'),
    ('FROM a\nRUN --network=none --network=host true\n', 2, 'RUN', 'the flag --network is given twice'),
    ('FROM a\nADD --from=x y z\n', 2, 'ADD', 'unknown flag --from (allowed flags: --chown'),
    ('FROM a\nENV --foo=bar A=1\n', 2, 'ENV', 'unknown flag --foo (allowed flags: none)'),
    ('FROM a\nCMD --help\n', 2, 'CMD', 'unknown flag --help'),           # as Docker: use the JSON form
    ('FROM a\nRUN --device=/dev/fuse true\n', 2, 'RUN', 'unknown flag --device'),
    ('FROM a\nRUN <<EOF\necho hi\n', 2, 'RUN', 'the heredoc "EOF" is not terminated: no line "EOF" follows it'),
    ('FROM a\nCOPY <<A <<B /x\na\nA\n', 2, 'COPY', 'the heredoc "B" is not terminated'),
    ('FROM a\nRUN <<EOF\n\tEOF\n', 2, 'RUN', 'the heredoc "EOF" is not terminated'),    # tabs only go with <<-
    ('FROM a\nCOPY x <<EOF\nEOF\n', 2, 'COPY', 'the destination "<<EOF" cannot be a heredoc'),
    ('FROM a\nCOPY onlyone\n', 2, 'COPY', 'needs at least a source and a destination'),
    ('FROM a\nADD ["onlyone"]\n', 2, 'ADD', 'needs at least a source and a destination'),
    ('FROM a\nCOPY --from=b\n', 2, 'COPY', 'needs an argument'),
    ('FROM a\nSHELL /bin/bash -c\n', 2, 'SHELL', 'needs the JSON form'),
    ('FROM a\nSHELL []\n', 2, 'SHELL', 'needs a command'),
    ('FROM a\nRUN []\n', 2, 'RUN', 'needs a command'),
    ('FROM a\nCMD ["a", 1]\n', 2, 'CMD', 'a JSON array must hold only strings'),
    ('FROM a\nVOLUME ["/data", " "]\n', 2, 'VOLUME', 'needs paths that are not empty'),
    ('FROM a\nVOLUME []\n', 2, 'VOLUME', 'needs paths that are not empty'),
    ('FROM a\nONBUILD ONBUILD RUN x\n', 2, 'ONBUILD', 'ONBUILD is not allowed as an ONBUILD trigger'),
    ('FROM a\nONBUILD from b\n', 2, 'ONBUILD', 'FROM is not allowed as an ONBUILD trigger'),
    ('FROM a\nONBUILD MAINTAINER me\n', 2, 'ONBUILD', 'MAINTAINER is not allowed as an ONBUILD trigger'),
    ('FROM a\nONBUILD BOGUS x\n', 2, 'ONBUILD', 'unknown instruction "BOGUS"'),
    ('FROM a\nONBUILD COPY --nope=1 a b\n', 2, 'ONBUILD COPY', 'unknown flag --nope'),
    ('FROM a\nONBUILD COPY x\n', 2, 'ONBUILD COPY', 'needs at least a source and a destination'),
    ('FROM a\nONBUILD RUN <<EOF\n', 2, 'ONBUILD', 'the heredoc "EOF" is not terminated'),
    ('FROM a\nHEALTHCHECK NONE extra\n', 2, 'HEALTHCHECK', 'NONE takes no arguments, got "extra"'),
    ('FROM a\nHEALTHCHECK CMD\n', 2, 'HEALTHCHECK', 'CMD needs a command'),
    ('FROM a\nHEALTHCHECK CMD []\n', 2, 'HEALTHCHECK', 'CMD needs a command'),
    ('FROM a\nHEALTHCHECK --interval=5s\n', 2, 'HEALTHCHECK', 'needs an argument'),
    ('FROM a\nHEALTHCHECK CONNECT TCP 7000\n', 2, 'HEALTHCHECK', 'unknown type "CONNECT"'),
    ('FROM a\nHEALTHCHECK --interval=fast CMD true\n', 2, 'HEALTHCHECK', '"fast" is not a duration'),
    ('FROM a\nHEALTHCHECK --timeout=10 CMD true\n', 2, 'HEALTHCHECK', '"10" is not a duration'),
    ('FROM a\nHEALTHCHECK --timeout=10us CMD true\n', 2, 'HEALTHCHECK', 'must be 0 or at least 1ms'),
    ('FROM a\nHEALTHCHECK --retries=-1 CMD true\n', 2, 'HEALTHCHECK', 'the flag --retries takes a whole number'),
    ('FROM a\nHEALTHCHECK --retries=three CMD true\n', 2, 'HEALTHCHECK', 'the flag --retries takes a whole number'),
    ('FROM a\nHEALTHCHECK --retries CMD true\n', 2, 'HEALTHCHECK', 'the flag --retries needs a value'),
    ('FROM a\nENV ONLYKEY\n', 2, 'ENV', '"ONLYKEY" has no value'),
    ('FROM a\nENV A=1 B\n', 2, 'ENV', '"B" is not of the form name=value'),
    ('FROM a\nLABEL =x\n', 2, 'LABEL', '"=x" has an empty name'),
    ('FROM a\nARG 9x=1\n', 2, 'ARG', '"9x" is not a valid name'),
    ('FROM a\nARG =1\n', 2, 'ARG', '"" is not a valid name'),
    ('ARG a$b\nFROM a\n', 1, 'ARG', '"a$b" is not a valid name'),
    # line numbers count continuation lines, comment lines, heredoc bodies and CRLF lines
    ('FROM a\n\nRUN echo a \\\n# c\n  && b\nCOPY x\n', 6, 'COPY', 'needs at least a source'),
    ('FROM a\nRUN <<EOF\nx\nEOF\nCOPY x\n', 5, 'COPY', 'needs at least a source'),
    ('FROM a\r\n\r\nCOPY x\r\n', 3, 'COPY', 'needs at least a source'),
    (b'FROM a\nRUN echo \xff\n', 2, '', 'the text is not valid UTF-8'),
])
def test_errors(text, line, keyword, fragment):
    with pytest.raises(dockerfile_parse.DockerfileError) as info:
        dockerfile_parse.parse(text, path='build/Dockerfile.prod')
    exc = info.value
    prefix = 'build/Dockerfile.prod, line %d: ' % line + ('%s: ' % keyword if keyword else '')
    assert str(exc).startswith(prefix), str(exc)
    assert fragment in str(exc)
    assert (exc.path, exc.line, exc.keyword) == ('build/Dockerfile.prod', line, keyword)
    assert isinstance(exc, InvalidArgument)
    assert '\n' not in str(exc)


@pytest.mark.parametrize('keyword', KEYWORDS_NEEDING_ARGS)
def test_every_instruction_needs_an_argument(keyword):
    with pytest.raises(dockerfile_parse.DockerfileError, match=r'^Dockerfile, line 3: %s: needs an argument$' % keyword):
        dockerfile_parse.parse('FROM a\n\n%s   \n' % keyword.lower())


# ---------------------------------------------------------------------------------------------
# Docker's word lexer (BuildKit shell/lex.go; cases from its envVarTest and wordsTest data).

ENV = {'PWD': '/home', 'SHELL': 'bash', 'NULL': '', 'KOREAN': '\ud55c\uad6d\uc5b4', 'SPACE': 'abc  def',
       'FILE': 'archive.tar.gz', 'P': '/usr/local/bin:/usr/bin'}


@pytest.mark.parametrize('word, expected', [
    ('hello', 'hello'),
    ("he'll'o", 'hello'),
    ("he\\'llo", "he'llo"),
    ('abc\\tdef', 'abctdef'),
    ('"abc\\tdef"', 'abc\\tdef'),           # inside "...", \ escapes only " $ and \
    ('"abc\\\\tdef"', 'abc\\tdef'),
    ("'abc\\tdef'", 'abc\\tdef'),
    ('hello\\', 'hello'),                    # an escape at the very end is dropped
    ('hello\\\\', 'hello\\'),
    ('"hel\'lo"', "hel'lo"),
    ("'hello\\'", 'hello\\'),
    ('"\'\'"', "''"),
    ('a"b c"d', 'ab cd'),
    ('$', '$'),
    ('$.', '$.'),
    ('$ x', '$ x'),
    ('he$.x', 'he$.x'),
    ('he$1x', 'hex'),                        # positional parameters are never set
    ('$999aaa', 'aaa'),
    ('$@', ''),
    ('$@@@', '@@'),
    ('$$', ''),
    ('${#}', ''),
    ('${1:-bbb}', 'bbb'),
    ('he$pwd.', 'he.'),                      # names are case-sensitive
    ('he$PWD', 'he/home'),
    ('he\\$PWD', 'he$PWD'),
    ('he\\\\$PWD', 'he\\/home'),
    ('"he\\$PWD"', 'he$PWD'),
    ('"he\\\\$PWD"', 'he\\/home'),
    ("'he\\$PWD'", 'he\\$PWD'),
    ("'$PWD'", '$PWD'),
    ('"he\'$PWD\'"', "he'/home'"),
    ('\\${}', '${}'),
    ('he\\${}xx', 'he${}xx'),
    ('he${hi}xx', 'hexx'),
    ('he${PWD}', 'he/home'),
    ('he${XXX:-000}xx', 'he000xx'),
    ('he${PWD:-000}xx', 'he/homexx'),
    ('he${XXX:-$PWD}xx', 'he/homexx'),
    ('he${XXX:-${PWD:-yyy}}xx', 'he/homexx'),
    ('he${XXX:-${YYY:-yyy}}xx', 'heyyyxx'),
    ('he${NULL-x}', 'he'),
    ('he${NULL:-x}', 'hex'),
    ('he${XXX:+${PWD}}xx', 'hexx'),
    ('he${PWD:+${SHELL}}xx', 'hebashxx'),
    ('he${NULL+set}', 'heset'),
    ('he${NULL:+set}', 'he'),
    ('he${PWD?}', 'he/home'),
    ('he${PWD:?}', 'he/home'),
    ('he${NULL?}', 'he'),
    ('he${PWD:+${PWD}:}xx', 'he/home:xx'),
    ('he${XXX:-\\$PWD:}xx', 'he$PWD:xx'),
    ('he${XXX:-\\${PWD}z}xx', 'he${PWDz}xx'),
    ('he${XXX:-"a  b"}', 'hea  b'),
    ("he${XXX:-'$PWD'}", 'he$PWD'),
    ('${aaa}}', '}'),
    ('${aaa:-bbb}}', 'bbb}'),
    ('${aaa:-bbb {foo}', 'bbb {foo'),
    ('"${SPACE}"', 'abc  def'),
    ('$SPACE', 'abc  def'),                  # one word: no splitting
    ('$KOREAN', '\ud55c\uad6d\uc5b4'),
    ('\uc548\ub155$PWD', '\uc548\ub155/home'),
    ('${FILE%.*}', 'archive.tar'),
    ('${FILE%%.*}', 'archive'),
    ('${FILE#*.}', 'tar.gz'),
    ('${FILE##*.}', 'gz'),
    ('${FILE#nomatch}', 'archive.tar.gz'),
    ('${FILE%.t?r.gz}', 'archive'),
    ('${FILE%\\*}', 'archive.tar.gz'),
    ('${XXX%.gz}', ''),
    ('${P/bin/sbin}', '/usr/local/sbin:/usr/bin'),
    ('${P//bin/sbin}', '/usr/local/sbin:/usr/sbin'),
    ('${FILE/.tar.gz/.tgz}', 'archive.tgz'),
    ('${FILE/*./x.}', 'x.gz'),
    ('cat << EOF', 'cat << EOF'),
])
def test_expand_word(word, expected):
    assert dockerfile_parse.expand_word(word, ENV) == expected


@pytest.mark.parametrize('word, expected', [
    ('C:\\path\\to', 'C:\\path\\to'),        # backslash is an ordinary character under escape=`
    ('a`"b', 'a"b'),
    ('"a`"b"', 'a"b'),
    ('"a`$PWD"', 'a$PWD'),
    ('`$PWD', '$PWD'),
    ('"C:\\$PWD"', 'C:\\/home'),
    ('"a``b"', 'a`b'),
    ('"a`xb"', 'a`xb'),
    ('a`', 'a'),
])
def test_expand_word_backtick_escape(word, expected):
    assert dockerfile_parse.expand_word(word, ENV, escape='`') == expected


@pytest.mark.parametrize('word, fragment', [
    ("he'llo", 'single quote'),
    ("he\\\\'llo", 'single quote'),
    ('"hello', 'double quote'),
    ('"hello\\"', 'double quote'),
    ('${}', 'bad substitution'),
    ('he${}xx', 'bad substitution'),
    ('${{aaa}', 'bad substitution'),
    ('${:}', 'bad substitution'),
    ('${:-bbb}', 'bad substitution'),
    ('he${.}', 'unsupported modifier'),
    ('he${XXX:YYY}', 'unsupported modifier (:Y)'),
    ('he${PWD:=000}xx', 'unsupported modifier (:=)'),
    ('${PWD:#x}', 'unsupported modifier (:#)'),
    ('he${PWD', "missing '}'"),
    ('${aaa', "missing '}'"),
    ('${aaa:-bbb', "missing '}'"),
    ('${aaa:-bbb ${foo}', "missing '}'"),
    ('${P/bin}', "missing '/'"),
    ('${FILE#\\x}', 'invalid pattern'),
    ('he${XXX?}', 'XXX: is not allowed to be unset'),
    ('he${XXX:?}', 'XXX: is not allowed to be unset'),
    ('he${NULL:?}', 'NULL: is not allowed to be empty'),
    ('${NULL:?set NULL, then $SHELL}', 'NULL: set NULL, then bash'),
    ('${XXX?need XXX}', 'XXX: need XXX'),
])
def test_expand_word_errors(word, fragment):
    with pytest.raises(InvalidArgument) as info:
        dockerfile_parse.expand_word(word, ENV)
    assert fragment in str(info.value)
    assert str(info.value).startswith('cannot expand "%s": ' % word)


WORDS_ENV = {'hi': 'hi', 'space': 'abc  def', 'leading': '  ab c', 'trailing': 'ab c   '}


@pytest.mark.parametrize('text, expected', [
    ('hello', ['hello']),
    ('hello${hi}bye', ['hellohibye']),
    ('hello${missing}bye', ['hellobye']),
    ('hello${space}bye', ['helloabc', 'defbye']),          # unquoted values are split ...
    ('hello"${space}"bye', ['helloabc  defbye']),          # ... quoted ones are not
    ('hello "${space}"bye', ['hello', 'abc  defbye']),
    ('hello${leading}def', ['hello', 'ab', 'cdef']),
    ('hello"${leading}" def', ['hello  ab c', 'def']),
    ('hello${leading}', ['hello', 'ab', 'c']),
    ('hello${trailing}', ['helloab', 'c']),
    ('hello${trailing}d', ['helloab', 'c', 'd']),
    ('hello"${trailing}"d', ['helloab c   d']),
    ('hel"lo${trailing}"', ['helloab c   ']),
    ('hello" there  "', ['hello there  ']),
    ('hello there     ', ['hello', 'there']),
    ('  spaced\t\tout  ', ['spaced', 'out']),
    ('hello\\ there', ['hello there']),
    ('hello\\" there', ['hello"', 'there']),
    ('hello"\\\\there"', ['hello\\there']),
    ('hello"\\there"', ['hello\\there']),
    ("hello'\\\\there'", ['hello\\\\there']),
    ("hello'$there'", ['hello$there']),
    ('a "" b', ['a', 'b']),                                 # an empty quoted word yields nothing
    ('${missing} x', ['x']),
    ('', []),
    ('src1 src2 /dest/', ['src1', 'src2', '/dest/']),
])
def test_expand_words(text, expected):
    assert dockerfile_parse.expand_words(text, WORDS_ENV) == expected


def test_expand_words_errors():
    with pytest.raises(InvalidArgument, match='double quote'):
        dockerfile_parse.expand_words('hello" there', WORDS_ENV)


@pytest.mark.parametrize('text, env, escape, expected', [
    ('A=1 B="two words" C=x\\ y', {}, '\\', [('A', '1'), ('B', 'two words'), ('C', 'x y')]),
    ('NAME World', {}, '\\', [('NAME', 'World')]),
    ('NAME Hello   "big"  World', {}, '\\', [('NAME', 'Hello   big  World')]),
    ('maintainer James Turnbull "james@example.com"', {}, '\\', [('maintainer', 'James Turnbull james@example.com')]),
    ('PATH=/app/bin:$PATH', {'PATH': '/usr/bin'}, '\\', [('PATH', '/app/bin:/usr/bin')]),
    ('PATH /app/bin:${PATH}', {'PATH': '/usr/bin'}, '\\', [('PATH', '/app/bin:/usr/bin')]),
    ('A=$B B=2', {'B': '1'}, '\\', [('A', '1'), ('B', '2')]),
    ('EMPTY= ALSO=""', {}, '\\', [('EMPTY', ''), ('ALSO', '')]),
    ("Q='$HOME' R=\"$HOME\"", {'HOME': '/root'}, '\\', [('Q', '$HOME'), ('R', '/root')]),
    ('"com.example.vendor"="ACME Inc" version=1.0', {}, '\\', [('com.example.vendor', 'ACME Inc'), ('version', '1.0')]),
    ('${K}=v', {'K': 'key'}, '\\', [('key', 'v')]),
    ('A=1     B=2', {}, '\\', [('A', '1'), ('B', '2')]),
    ('name="value\'quote space\'value2"', {}, '\\', [('name', "value'quote space'value2")]),
    ('name="a\\"b"', {}, '\\', [('name', 'a"b')]),
    ('name=\'a\\"b\'', {}, '\\', [('name', 'a\\"b')]),
    ('name=\'a\\\'b\'\'', {}, '\\', [('name', "a\\b")]),
    ('NODE_VERSION=20.11.1     NODE_DIR=C:\\nodejs', {}, '`', [('NODE_VERSION', '20.11.1'), ('NODE_DIR', 'C:\\nodejs')]),
    ('GOPATH \\go', {}, '`', [('GOPATH', '\\go')]),
    ('D=a`"b E=a` b', {}, '`', [('D', 'a"b'), ('E', 'a b')]),
])
def test_expand_pairs(text, env, escape, expected):
    assert dockerfile_parse.expand_pairs(text, env, escape) == expected


@pytest.mark.parametrize('text, what, fragment', [
    ('', 'ENV', 'ENV "": needs at least one key=value pair'),
    ('FOO', 'ENV', 'ENV "FOO": "FOO" has no value'),
    ('A=1 B', 'LABEL', 'LABEL "A=1 B": "B" is not of the form name=value'),
    ('=1', 'ENV', 'has an empty name'),
    ('A="x', 'LABEL', 'LABEL "A="x": cannot expand'),
    ('A="${X:?X is required}"', 'ENV', 'X: X is required'),
    ('A=${X:?X is required}', 'ENV', '"is" is not of the form name=value'),     # unquoted spaces split words
    ('${E}=1', 'ENV', 'a name expands to an empty string'),
])
def test_expand_pairs_errors(text, what, fragment):
    with pytest.raises(InvalidArgument) as info:
        dockerfile_parse.expand_pairs(text, {}, what=what)
    assert fragment in str(info.value)
    assert str(info.value).startswith(what + ' ')


@pytest.mark.parametrize('text, expected', [
    ('VERSION', [('VERSION', None)]),
    ('VERSION=1.0', [('VERSION', '1.0')]),
    ('A=1 B C=', [('A', '1'), ('B', None), ('C', '')]),
    ('TARGETOS TARGETARCH', [('TARGETOS', None), ('TARGETARCH', None)]),
    ('MSG="hello world"', [('MSG', '"hello world"')]),       # raw: quotes are kept for expand_word
    ("Q='$X'", [('Q', "'$X'")]),
    ('V=${BASE:-alpine}', [('V', '${BASE:-alpine}')]),
    ('P=a\\ b', [('P', 'a\\ b')]),
    ('http_proxy _private my-arg=1 a.b=2', [('http_proxy', None), ('_private', None), ('my-arg', '1'), ('a.b', '2')]),
])
def test_parse_arg(text, expected):
    assert dockerfile_parse.parse_arg(text) == expected


@pytest.mark.parametrize('text, fragment', [
    ('', 'ARG "": needs at least one name'),
    ('1x', '"1x" is not a valid name'),
    ('=v', '"" is not a valid name'),
    ('a$b=1', '"a$b" is not a valid name'),
    ('"A"=1', '""A"" is not a valid name'),
    ('A=1 -x', '"-x" is not a valid name'),
])
def test_parse_arg_errors(text, fragment):
    with pytest.raises(InvalidArgument) as info:
        dockerfile_parse.parse_arg(text)
    assert fragment in str(info.value)


def test_parse_arg_backtick_escape():
    assert dockerfile_parse.parse_arg('P=C:\\dir` x', escape='`') == [('P', 'C:\\dir` x')]


@pytest.mark.parametrize('text, expected', [
    ('0', 0), ('30s', 30 * 10 ** 9), ('1m30s', 90 * 10 ** 9), ('1.5h', 5400 * 10 ** 9), ('250ms', 250 * 10 ** 6),
    ('10us', 10000), ('10\u00b5s', 10000), ('7ns', 7), ('.5s', 5 * 10 ** 8), ('-1s', -10 ** 9), ('+2m', 120 * 10 ** 9),
])
def test_parse_duration(text, expected):
    assert dockerfile_parse.parse_duration(text) == expected


@pytest.mark.parametrize('text', ['', '10', 's', '1x', '1.s.', '.s', '1s2', '--1s'])
def test_parse_duration_errors(text):
    with pytest.raises(InvalidArgument, match='is not a duration'):
        dockerfile_parse.parse_duration(text)

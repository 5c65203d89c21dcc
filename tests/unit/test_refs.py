# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image reference parsing and normalisation, compared with what ``docker pull`` does."""

from __future__ import annotations

import os
import sys

_MODULE_UTILS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                             'plugins', 'module_utils')
if os.path.normpath(_MODULE_UTILS) not in [os.path.normpath(p) for p in sys.path]:
    sys.path.insert(0, os.path.normpath(_MODULE_UTILS))


import pytest  # noqa: E402

from ctr.errors import InvalidArgument  # noqa: E402
from ctr.records import FrozenInstanceError  # noqa: E402
from ctr.refs import (  # noqa: E402
    Reference, is_digest, looks_like_id, normalize, parse_digest,
)

H64 = '0123456789abcdef' * 4
H96 = '0123456789abcdef' * 6
H128 = '0123456789abcdef' * 8
D256 = 'sha256:' + H64
D512 = 'sha512:' + H128

# input -> (registry, repository, tag, digest, str(), familiar())
VALID = [
    # Docker Hub official images
    ('busybox', 'docker.io', 'library/busybox', 'latest', None,
     'docker.io/library/busybox:latest', 'busybox:latest'),
    ('busybox:1.36', 'docker.io', 'library/busybox', '1.36', None,
     'docker.io/library/busybox:1.36', 'busybox:1.36'),
    ('library/busybox', 'docker.io', 'library/busybox', 'latest', None,
     'docker.io/library/busybox:latest', 'busybox:latest'),
    ('docker.io/busybox', 'docker.io', 'library/busybox', 'latest', None,
     'docker.io/library/busybox:latest', 'busybox:latest'),
    ('docker.io/library/busybox:latest', 'docker.io', 'library/busybox', 'latest', None,
     'docker.io/library/busybox:latest', 'busybox:latest'),
    ('index.docker.io/busybox', 'docker.io', 'library/busybox', 'latest', None,
     'docker.io/library/busybox:latest', 'busybox:latest'),
    ('index.docker.io/user/app:2', 'docker.io', 'user/app', '2', None,
     'docker.io/user/app:2', 'user/app:2'),
    ('python:3.12-slim-bookworm', 'docker.io', 'library/python', '3.12-slim-bookworm', None,
     'docker.io/library/python:3.12-slim-bookworm', 'python:3.12-slim-bookworm'),
    ('ubuntu:22.04', 'docker.io', 'library/ubuntu', '22.04', None,
     'docker.io/library/ubuntu:22.04', 'ubuntu:22.04'),
    # Docker Hub user images
    ('user/app:1.0', 'docker.io', 'user/app', '1.0', None,
     'docker.io/user/app:1.0', 'user/app:1.0'),
    ('bitnami/redis', 'docker.io', 'bitnami/redis', 'latest', None,
     'docker.io/bitnami/redis:latest', 'bitnami/redis:latest'),
    ('docker.io/library/foo/bar', 'docker.io', 'library/foo/bar', 'latest', None,
     'docker.io/library/foo/bar:latest', 'library/foo/bar:latest'),
    ('my-org/my_app__x.y--z:V1_2.3-rc', 'docker.io', 'my-org/my_app__x.y--z', 'V1_2.3-rc', None,
     'docker.io/my-org/my_app__x.y--z:V1_2.3-rc', 'my-org/my_app__x.y--z:V1_2.3-rc'),
    ('a/b/c/d', 'docker.io', 'a/b/c/d', 'latest', None,
     'docker.io/a/b/c/d:latest', 'a/b/c/d:latest'),
    ('localhost:5000', 'docker.io', 'library/localhost', '5000', None,
     'docker.io/library/localhost:5000', 'localhost:5000'),
    ('deadbeefcafe', 'docker.io', 'library/deadbeefcafe', 'latest', None,
     'docker.io/library/deadbeefcafe:latest', 'deadbeefcafe:latest'),
    (H64 + ':tag', 'docker.io', 'library/' + H64, 'tag', None,
     'docker.io/library/%s:tag' % H64, H64 + ':tag'),
    # other registries, ports, localhost, IPv4 and IPv6 hosts
    ('registry.example.com/a', 'registry.example.com', 'a', 'latest', None,
     'registry.example.com/a:latest', 'registry.example.com/a:latest'),
    ('quay.io/prometheus/node-exporter:v1.8.0', 'quay.io', 'prometheus/node-exporter', 'v1.8.0',
     None, 'quay.io/prometheus/node-exporter:v1.8.0', 'quay.io/prometheus/node-exporter:v1.8.0'),
    ('ghcr.io/org/team/tool:sha-1a2b3c', 'ghcr.io', 'org/team/tool', 'sha-1a2b3c', None,
     'ghcr.io/org/team/tool:sha-1a2b3c', 'ghcr.io/org/team/tool:sha-1a2b3c'),
    ('Registry.Example.COM/a', 'Registry.Example.COM', 'a', 'latest', None,
     'Registry.Example.COM/a:latest', 'Registry.Example.COM/a:latest'),
    ('localhost/x', 'localhost', 'x', 'latest', None,
     'localhost/x:latest', 'localhost/x:latest'),
    ('localhost:5000/a:b', 'localhost:5000', 'a', 'b', None,
     'localhost:5000/a:b', 'localhost:5000/a:b'),
    ('localhost:5000/a/b@' + D256, 'localhost:5000', 'a/b', None, D256,
     'localhost:5000/a/b@' + D256, 'localhost:5000/a/b@' + D256),
    ('myhost:5000/x', 'myhost:5000', 'x', 'latest', None,
     'myhost:5000/x:latest', 'myhost:5000/x:latest'),
    ('127.0.0.1:5000/x/y:1', '127.0.0.1:5000', 'x/y', '1', None,
     '127.0.0.1:5000/x/y:1', '127.0.0.1:5000/x/y:1'),
    ('[::1]:5000/x:tag', '[::1]:5000', 'x', 'tag', None,
     '[::1]:5000/x:tag', '[::1]:5000/x:tag'),
    ('[fe80::1]/x', '[fe80::1]', 'x', 'latest', None, '[fe80::1]/x:latest', '[fe80::1]/x:latest'),
    ('[2001:DB8::42]:443/ns/img@' + D256, '[2001:DB8::42]:443', 'ns/img', None, D256,
     '[2001:DB8::42]:443/ns/img@' + D256, '[2001:DB8::42]:443/ns/img@' + D256),
    ('xn--bcher-kva.example:80/a', 'xn--bcher-kva.example:80', 'a', 'latest', None,
     'xn--bcher-kva.example:80/a:latest', 'xn--bcher-kva.example:80/a:latest'),
    # digests, and tag + digest together
    ('busybox@' + D256, 'docker.io', 'library/busybox', None, D256,
     'docker.io/library/busybox@' + D256, 'busybox@' + D256),
    ('busybox:1.36@' + D256, 'docker.io', 'library/busybox', '1.36', D256,
     'docker.io/library/busybox:1.36@' + D256, 'busybox:1.36@' + D256),
    ('user/app@' + D512, 'docker.io', 'user/app', None, D512,
     'docker.io/user/app@' + D512, 'user/app@' + D512),
    ('registry.example.com:8443/a/b:c@sha384:' + H96, 'registry.example.com:8443', 'a/b', 'c',
     'sha384:' + H96, 'registry.example.com:8443/a/b:c@sha384:' + H96,
     'registry.example.com:8443/a/b:c@sha384:' + H96),
    ('192.168.0.1', 'docker.io', 'library/192.168.0.1', 'latest', None,
     'docker.io/library/192.168.0.1:latest', '192.168.0.1:latest'),
    ('test_com/foo', 'docker.io', 'test_com/foo', 'latest', None,
     'docker.io/test_com/foo:latest', 'test_com/foo:latest'),
    ('docker.io/' + H64, 'docker.io', 'library/' + H64, 'latest', None,
     'docker.io/library/%s:latest' % H64, H64 + ':latest'),
    # limits: a 128-character tag, a 255-character name
    ('busybox:' + 'T' * 128, 'docker.io', 'library/busybox', 'T' * 128, None,
     'docker.io/library/busybox:' + 'T' * 128, 'busybox:' + 'T' * 128),
    ('a' * 237, 'docker.io', 'library/' + 'a' * 237, 'latest', None,
     'docker.io/library/%s:latest' % ('a' * 237), 'a' * 237 + ':latest'),
]


@pytest.mark.parametrize('text,registry,repository,tag,digest,full,familiar', VALID)
def test_parse_valid(text, registry, repository, tag, digest, full, familiar):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.name == '%s/%s' % (registry, repository)
    assert str(ref) == full
    assert normalize(text) == full
    assert ref.familiar() == familiar


@pytest.mark.parametrize('text', [row[0] for row in VALID])
def test_round_trips(text):
    ref = Reference.parse(text)
    assert Reference.parse(str(ref)) == ref
    assert Reference.parse(ref.familiar()) == ref
    assert normalize(str(ref)) == str(ref)


@pytest.mark.parametrize('text,reason', [
    ('', 'it is empty'),
    ('Busybox', 'repository name must be lowercase'),
    ('busyBox:latest', 'repository name must be lowercase'),
    ('User/app', 'repository name must be lowercase'),
    ('docker.io/Library/busybox', 'repository name must be lowercase'),
    ('localhost:5000/A', 'repository name must be lowercase'),
    ('a//b', 'empty path component'),
    ('a/b/', 'empty path component'),
    ('/busybox', 'empty path component'),
    ('localhost/', 'repository name is empty'),
    ('docker.io/', 'repository name is empty'),
    (':tag', 'repository name is empty'),
    ('@' + D256, 'repository name is empty'),
    ('name:', 'tag is empty'),
    ('localhost:5000/a:', 'tag is empty'),
    ('busybox:.hidden', 'must start with a letter, digit or "_"'),
    ('busybox:-x', 'must start with a letter, digit or "_"'),
    ('busybox:a+b', 'must start with a letter, digit or "_"'),
    ('busybox:' + 'T' * 129, 'longer than 128 characters'),
    ('busybox@', 'form "algorithm:hex"'),
    ('busybox@sha256', 'form "algorithm:hex"'),
    ('busybox@sha256:', 'form "algorithm:hex"'),
    ('busybox@:' + H64, 'form "algorithm:hex"'),
    ('busybox@sha256:' + H64[:-1], 'exactly 64 lowercase hexadecimal digits'),
    ('busybox@sha256:' + H64 + '0', 'exactly 64 lowercase hexadecimal digits'),
    ('busybox@sha256:' + H64.upper(), 'exactly 64 lowercase hexadecimal digits'),
    ('busybox@sha256:' + 'g' * 64, 'exactly 64 lowercase hexadecimal digits'),
    ('busybox@sha512:' + H64, 'exactly 128 lowercase hexadecimal digits'),
    ('busybox@md5:' + H64[:32], 'algorithm "md5" is not supported'),
    ('busybox@SHA256:' + H64, 'algorithm "SHA256" is not supported'),
    ('busybox@' + D256 + '@' + D256, 'exactly 64 lowercase hexadecimal digits'),
    ('a' * 238, 'longer than 255 characters'),
    ('registry.example.com/' + 'a/' * 117 + 'b', 'longer than 255 characters'),
    ('-leading', 'repository path component "-leading"'),
    ('trailing-', 'repository path component "trailing-"'),
    ('_under', 'repository path component "_under"'),
    ('a___b', 'repository path component "a___b"'),
    ('a.-b', 'repository path component "a.-b"'),
    ('a..b', 'repository path component "a..b"'),
    ('busy box', 'repository path component "busy box"'),
    (' busybox', 'repository path component " busybox"'),
    ('busybox ', 'repository path component "busybox "'),
    ('busybox\n', 'repository path component "busybox\\n"'),
    ('b\u00fcsybox', 'repository path component'),
    ('name:tag:more', 'repository path component "name:tag"'),
    ('-bad.example.com/a', 'registry "-bad.example.com" is not a host name'),
    ('bad_host.com/a', 'registry "bad_host.com" is not a host name'),
    ('example.com:/a', 'registry "example.com:" is not a host name'),
    ('example.com:port/a', 'registry "example.com:port" is not a host name'),
    ('[zz::1]:5000/a', 'registry "[zz::1]:5000" is not a host name'),
    ('[::1/a', 'registry "[::1" is not a host name'),
    (H64, 'is an image ID, not a name'),
    ('fc00::1:5000/debian', 'registry "fc00::1:5000" is not a host name'),
    ('[fe80::1%eth0]:5000/debian', 'registry "[fe80::1%eth0]:5000" is not a host name'),
    ('[2001:db8:3:4::192.0.2.33]:5000/a', 'is not a host name'),
    ('https://github.com/docker/docker', 'registry "https:" is not a host name'),
    ('____/____', 'repository path component "____"'),
    ('dock_.er/docker', 'registry "dock_.er" is not a host name'),
    ('dock-.er', 'repository path component "dock-.er"'),
    # newer Docker reads an uppercase first component as a registry host; we refuse it
    ('Docker/docker', 'repository name must be lowercase'),
])
def test_parse_invalid(text, reason):
    with pytest.raises(InvalidArgument) as info:
        Reference.parse(text)
    message = str(info.value)
    shown = text if text.isprintable() else repr(text)[1:-1]
    assert message.startswith('invalid image reference "%s": ' % shown)
    assert reason in message
    assert '\n' not in message
    assert info.value.details['value'] == text


def test_uppercase_message_matches_docker():
    with pytest.raises(InvalidArgument) as info:
        Reference.parse('Busybox')
    assert str(info.value) == 'invalid image reference "Busybox": repository name must be lowercase'


@pytest.mark.parametrize('value', [None, 42, b'busybox'])
def test_parse_rejects_non_strings(value):
    with pytest.raises(InvalidArgument, match='must be a string'):
        Reference.parse(value)


@pytest.mark.parametrize('text,default_tag,expected', [
    ('busybox', False, 'docker.io/library/busybox'),
    ('busybox', True, 'docker.io/library/busybox:latest'),
    ('busybox:1', False, 'docker.io/library/busybox:1'),
    ('busybox@' + D256, False, 'docker.io/library/busybox@' + D256),
    ('busybox@' + D256, True, 'docker.io/library/busybox@' + D256),
    ('localhost/x', False, 'localhost/x'),
])
def test_default_tag(text, default_tag, expected):
    ref = Reference.parse(text, default_tag=default_tag)
    assert str(ref) == expected
    assert Reference.parse(str(ref), default_tag=False) == ref


def test_familiar_without_tag():
    assert Reference.parse('busybox', default_tag=False).familiar() == 'busybox'
    assert Reference.parse('docker.io/user/app', default_tag=False).familiar() == 'user/app'


def test_reference_is_frozen_and_hashable():
    ref = Reference.parse('busybox')
    with pytest.raises(FrozenInstanceError):
        ref.tag = 'x'
    assert ref == Reference('docker.io', 'library/busybox', 'latest', None)
    assert len({ref, Reference.parse('docker.io/library/busybox:latest')}) == 1


@pytest.mark.parametrize('text,tag,expected', [
    ('busybox', '1.36', 'docker.io/library/busybox:1.36'),
    ('busybox@' + D256, 'v1', 'docker.io/library/busybox:v1@' + D256),
    ('localhost:5000/a:old', 'new', 'localhost:5000/a:new'),
    ('busybox:1', None, 'docker.io/library/busybox'),
])
def test_with_tag(text, tag, expected):
    ref = Reference.parse(text)
    assert str(ref.with_tag(tag)) == expected
    assert str(ref) == normalize(text)  # the original is unchanged


@pytest.mark.parametrize('text,digest,expected', [
    ('busybox', D256, 'docker.io/library/busybox:latest@' + D256),
    ('user/app@' + D256, D512, 'docker.io/user/app@' + D512),
    ('busybox:1@' + D256, None, 'docker.io/library/busybox:1'),
])
def test_with_digest(text, digest, expected):
    assert str(Reference.parse(text).with_digest(digest)) == expected


@pytest.mark.parametrize('tag', ['', '.x', 'a b', 'T' * 129, 5])
def test_with_tag_invalid(tag):
    with pytest.raises(InvalidArgument) as info:
        Reference.parse('busybox').with_tag(tag)
    message = str(info.value)
    assert message.startswith('invalid tag "%s" for image "docker.io/library/busybox:latest": ' % tag)


@pytest.mark.parametrize('digest', ['', 'sha256', 'sha256:' + H64[:-1], 'md5:' + H64, 7])
def test_with_digest_invalid(digest):
    with pytest.raises(InvalidArgument) as info:
        Reference.parse('busybox').with_digest(digest)
    assert str(info.value).startswith('invalid digest "%s" for image ' % digest)


@pytest.mark.parametrize('text,valid', [
    (D256, True),
    (D512, True),
    ('sha384:' + H96, True),
    ('sha256:' + H64[:-1], False),
    ('sha256:' + H64.upper(), False),
    ('sha512:' + H64, False),
    ('md5:' + H64[:32], False),
    (H64, False),
    ('sha256:', False),
    (':' + H64, False),
    ('', False),
    (None, False),
    (b'sha256:' + H64.encode(), False),
])
def test_digests(text, valid):
    assert is_digest(text) is valid
    if valid:
        assert parse_digest(text) == text
    else:
        with pytest.raises(InvalidArgument) as info:
            parse_digest(text)
        assert str(info.value).startswith('invalid digest "%s": ' % (text,))


@pytest.mark.parametrize('text,expected', [
    (D256, True),
    (H64, True),
    (H64[:12], True),
    (H64[:40], True),
    (H64[:11], False),
    (H64 + '0', False),
    (H64.upper(), False),
    ('sha256:' + H64[:12], False),
    (D512, False),
    ('busybox', False),
    ('', False),
    (None, False),
])
def test_looks_like_id(text, expected):
    assert looks_like_id(text) is expected

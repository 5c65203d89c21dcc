# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""`changes` (docker import --change): metadata instructions applied to an image config."""

from __future__ import annotations

import pytest

from ctr.dockerfile import apply_changes
from ctr.errors import InvalidArgument


@pytest.mark.parametrize('changes, expected', [
    (['CMD ["sh", "-c", "echo hi"]'], {'Cmd': ['sh', '-c', 'echo hi']}),
    (['CMD echo hi'], {'Cmd': ['/bin/sh', '-c', 'echo hi']}),
    (['cmd ["sh"]'], {'Cmd': ['sh']}),
    (['ENTRYPOINT ["/bin/httpd", "-f"]'], {'Entrypoint': ['/bin/httpd', '-f']}),
    (['CMD [not json'], {'Cmd': ['/bin/sh', '-c', '[not json']}),
    (['ENV A=1 B="two words" C=x\\ y'], {'Env': ['A=1', 'B=two words', 'C=x y']}),
    (['ENV NAME World'], {'Env': ['NAME=World']}),
    (['ENV NAME Hello World'], {'Env': ['NAME=Hello World']}),
    (['ENV A=1', 'ENV A=2'], {'Env': ['A=2']}),
    (['ENV EMPTY='], {'Env': ['EMPTY=']}),
    (["LABEL a=b 'c d'=\"e f\""], {'Labels': {'a': 'b', 'c d': 'e f'}}),
    (['EXPOSE 80'], {'ExposedPorts': {'80/tcp': {}}}),
    (['EXPOSE 53/udp 8000-8002/TCP'], {'ExposedPorts': {'53/udp': {}, '8000/tcp': {}, '8001/tcp': {},
                                                        '8002/tcp': {}}}),
    (['VOLUME /data /logs'], {'Volumes': {'/data': {}, '/logs': {}}}),
    (['VOLUME ["/data"]'], {'Volumes': {'/data': {}}}),
    (['WORKDIR /app', 'WORKDIR sub'], {'WorkingDir': '/app/sub'}),
    (['USER 1000:1000'], {'User': '1000:1000'}),
    (['STOPSIGNAL SIGQUIT'], {'StopSignal': 'SIGQUIT'}),
    (['STOPSIGNAL term'], {'StopSignal': 'SIGTERM'}),
    (['STOPSIGNAL 9'], {'StopSignal': '9'}),
    (['ONBUILD RUN echo hi'], {'OnBuild': ['RUN echo hi']}),
    ([], {}),
])
def test_changes_apply(changes, expected):
    assert apply_changes({}, changes) == expected


@pytest.mark.parametrize('change, fragment', [
    ('', 'is empty'),
    ('RUN echo hi', 'RUN "RUN echo hi" is not a metadata instruction'),
    ('FROM busybox', 'not a metadata instruction'),
    ('EXPOSE http', '"http" is not a port'),
    ('EXPOSE 0', 'out of the range'),
    ('EXPOSE 70000', 'out of the range'),
    ('ENV', 'needs at least one key=value'),
    ('ENV A', 'must have a value'),
    ('ENV A=1 B', '"B" is not of the form key=value'),
    ('LABEL a="unterminated', 'unterminated " quote'),
    ('USER a b', 'exactly one user'),
    ('STOPSIGNAL SIGNOPE', 'is not a signal'),
    ('STOPSIGNAL 99', 'out of the range'),
    ('WORKDIR', 'needs a path'),
    ('CMD', 'needs a command'),
    ('ONBUILD FROM x', 'not allowed as an ONBUILD trigger'),
])
def test_changes_refused(change, fragment):
    with pytest.raises(InvalidArgument) as err:
        apply_changes({}, [change])
    assert fragment in err.value.msg
    assert '\n' not in err.value.msg


def test_a_tab_after_the_keyword_keeps_the_arguments_case():
    assert apply_changes({}, ['ENV\tfoo=Bar', 'WORKDIR\t/srv/App']) == {'Env': ['foo=Bar'], 'WorkingDir': '/srv/App'}


def test_errors_name_the_option():
    with pytest.raises(InvalidArgument) as err:
        apply_changes({}, ['CMD'])
    assert err.value.msg.startswith('changes: ')

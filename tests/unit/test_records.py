# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ctr.records and ctr.regex: the engine's records behave as the dataclasses they replace, its lazy
patterns as compiled ones."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ctr import records
from ctr.records import FrozenInstanceError, asdict, field, field_names, record, replace


@record(frozen=True)
class Point:
    x: int
    y: int = 0
    tags: tuple = ()


@record
class Box:
    name: str
    items: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    where: Point | None = None


@record(frozen=True)
class Checked:
    value: int

    def __post_init__(self):
        if self.value < 0:
            raise ValueError('negative')


def both_inits(make):
    """Run ``make`` once with the generic __init__ and once with the generated one."""
    out = [make()]
    for dummy in range(records._COMPILE_AFTER + 1):
        out.append(make())
    return out[0], out[-1]


def test_fields_defaults_and_factories():
    for box in both_inits(lambda: Box('b')):
        assert box.name == 'b' and box.items == [] and box.meta == {} and box.where is None
    first, second = Box('a'), Box('a')
    first.items.append(1)
    assert second.items == []                 # a new list per record
    assert field_names(Box) == ('name', 'items', 'meta', 'where')
    assert field_names(first) == ('name', 'items', 'meta', 'where')


@pytest.mark.parametrize('call', [
    Point,                                      # missing x
    lambda: Point(1, 2, (), 4),                 # too many
    lambda: Point(1, x=2),                      # twice
    lambda: Point(1, z=3),                      # unknown
])
def test_bad_arguments_raise_type_error(call):
    for dummy in range(records._COMPILE_AFTER + 2):
        with pytest.raises(TypeError):
            call()


def test_generic_and_generated_init_agree():
    for make in (lambda: Point(1), lambda: Point(1, 2), lambda: Point(x=3, tags=('a',)),
                 lambda: Box('n', [1], where=Point(2))):
        early, late = both_inits(make)
        assert early == late
        assert repr(early) == repr(late)


def test_frozen_refuses_assignment_and_hashes():
    p = Point(1, 2)
    with pytest.raises(FrozenInstanceError):
        p.x = 5
    with pytest.raises(AttributeError):
        del p.y
    assert p == Point(1, 2) and p != Point(2, 1)
    assert len({Point(1, 2), Point(1, 2), Point(3)}) == 2
    assert p.__eq__(Box('x')) is NotImplemented


def test_mutable_records_are_unhashable_and_assignable():
    box = Box('b')
    box.name = 'c'
    assert box.name == 'c'
    with pytest.raises(TypeError):
        hash(box)


def test_repr():
    assert repr(Point(1, 2)) == 'Point(x=1, y=2, tags=())'


def test_post_init_runs_in_both_inits_and_in_replace():
    for dummy in range(records._COMPILE_AFTER + 2):
        with pytest.raises(ValueError):
            Checked(-1)
    ok = Checked(1)
    with pytest.raises(ValueError):
        replace(ok, value=-2)


def test_replace():
    p = Point(1, 2, ('t',))
    q = replace(p, y=5)
    assert q == Point(1, 5, ('t',)) and p.y == 2
    with pytest.raises(TypeError):
        replace(p, z=1)


def test_asdict_recurses_and_copies():
    box = Box('b', [Point(1)], {'k': [1, 2]}, Point(2, tags=('a',)))
    out = asdict(box)
    assert out == {'name': 'b', 'items': [{'x': 1, 'y': 0, 'tags': ()}], 'meta': {'k': [1, 2]},
                   'where': {'x': 2, 'y': 0, 'tags': ('a',)}}
    out['meta']['k'].append(3)
    assert box.meta == {'k': [1, 2]}


def test_definition_errors():
    with pytest.raises(TypeError):
        @record
        class Bad:      # pylint: disable=unused-variable
            a: int = 0
            b: int
    with pytest.raises(ValueError):
        @record
        class Shared:   # pylint: disable=unused-variable
            a: list = []
    with pytest.raises(TypeError):
        field(default_factory=3)
    with pytest.raises(TypeError):
        @record
        class Derived(Point):   # pylint: disable=unused-variable
            z: int = 0
    with pytest.raises(TypeError):
        @record
        class OwnInit:          # pylint: disable=unused-variable
            a: int

            def __init__(self):
                self.a = 1
    with pytest.raises(TypeError):
        @record
        class NoFields:         # pylint: disable=unused-variable
            pass


def test_engine_imports_neither_dataclasses_nor_typing():
    """The point of this module: starting the CLI (and a build) loads no dataclasses, inspect or typing."""
    code = ('import sys, ctr.cli, ctr.build, ctr.images, ctr.runtime.containers, ctr.runtime.start\n'
            'print(sorted(m for m in ("dataclasses", "inspect", "typing", "shutil", "tempfile", "datetime")'
            ' if m in sys.modules))')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, '-c', code], env=env, check=True, stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    assert out.strip() == '[]'


def test_lazy_patterns_compile_at_first_use_and_behave_as_compiled_ones():
    from ctr import regex
    pat = regex.lazy(r'([a-z]+)-(\d+)', 0)
    assert 'match' not in vars(pat)                  # nothing compiled at definition
    m = pat.match('abc-12')
    assert m.groups() == ('abc', '12') and 'match' in vars(pat)
    assert pat.fullmatch('abc-12x') is None and pat.search('x abc-1').group(1) == 'abc'
    assert pat.sub(r'\2', 'a-1 b-2') == '1 2' and pat.findall('a-1 b-2') == [('a', '1'), ('b', '2')]
    assert pat.pattern == r'([a-z]+)-(\d+)' and pat.groups == 2
    with pytest.raises(AttributeError):
        pat.nonexistent                 # pylint: disable=pointless-statement
    import re
    assert regex.lazy('a.b', re.DOTALL).match('a\nb')
    bad = regex.lazy('(')
    with pytest.raises(re.error):
        bad.match('x')

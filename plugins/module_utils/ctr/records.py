# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Typed records: the part of :mod:`dataclasses` the engine uses, at a fraction of its cost.

Every CLI call and module run starts a fresh interpreter, so import time is paid on every task.
``import dataclasses`` pulls in :mod:`inspect` (and with it ``ast``, ``dis``, ``tokenize``) and
then generates several functions per class, about 20 ms for the engine's records; a cached
build is 70 ms in all. ``@record`` reads the same class body (annotated fields, defaults,
``field(default_factory=...)``, ``__post_init__``) and generates only ``__init__``; ``__repr__``,
``__eq__`` and ``__hash__`` are shared by every record.

- ``@record`` / ``@record(frozen=True)``: like ``@dataclass`` with ``eq=True``. A frozen record
  refuses assignment (:class:`FrozenInstanceError`, an AttributeError) and hashes by its fields;
  a mutable one is unhashable, as a dataclass is.
- :func:`field`, :func:`asdict`, :func:`replace`, :func:`field_names`.

Annotations are read as written (every module here uses ``from __future__ import annotations``)
and never evaluated: they document, they do not convert.
"""

from __future__ import absolute_import, annotations, division, print_function

import sys

__metaclass__ = type

_FIELDS = '__record_fields__'
_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class _Factory:
    __slots__ = ('make',)

    def __init__(self, make):
        self.make = make


def field(*, default_factory):
    """A field whose default is made anew for each record: ``field(default_factory=list)``."""
    if not callable(default_factory):
        raise TypeError('default_factory must be callable')
    return _Factory(default_factory)


def field_names(cls_or_record):
    """The record's field names, in declaration order."""
    return getattr(cls_or_record, _FIELDS)


def _repr(self):
    return '%s(%s)' % (type(self).__qualname__, ', '.join(
        '%s=%r' % (name, getattr(self, name)) for name in getattr(self, _FIELDS)))


def _values(self):
    return tuple(getattr(self, name) for name in getattr(self, _FIELDS))


def _eq(self, other):
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self):
    return hash(_values(self))


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError('cannot assign to field "%s" of a frozen %s' % (name, type(self).__name__))


def _frozen_delattr(self, name):
    raise FrozenInstanceError('cannot delete field "%s" of a frozen %s' % (name, type(self).__name__))


def _check_order(cls, names, defaults):
    seen_default = False
    for name in names:
        if name in defaults:
            seen_default = True
        elif seen_default:
            raise TypeError('%s: field "%s" without a default follows one with a default' % (cls.__name__, name))


def _make_init(cls, names, defaults, frozen):
    """``__init__`` for ``cls``: positional-or-keyword parameters in field order."""
    params, body = [], []
    scope = {'_MISSING': _MISSING, '_setattr': object.__setattr__}
    for name in names:
        default = defaults.get(name, _MISSING)
        if isinstance(default, _Factory):
            scope['_make_' + name] = default.make
            params.append('%s=_MISSING' % name)
            value = '_make_%s() if %s is _MISSING else %s' % (name, name, name)
        elif default is not _MISSING:
            scope['_default_' + name] = default
            params.append('%s=_default_%s' % (name, name))
            value = name
        else:
            params.append(name)
            value = name
        body.append(('_setattr(self, %r, %s)' if frozen else 'self.%s = %s') % (name, value))
    if hasattr(cls, '__post_init__'):
        body.append('self.__post_init__()')
    source = 'def __init__(self, %s):\n    %s\n' % (', '.join(params), '\n    '.join(body or ['pass']))
    exec(compile(source, '<record %s>' % cls.__qualname__, 'exec'), scope)  # pylint: disable=exec-used
    init = scope['__init__']
    init.__qualname__ = cls.__qualname__ + '.__init__'
    return init


_COMPILE_AFTER = 32     # instances made by the generic __init__ before one is generated for the class


def _lazy_init(cls, names, defaults, frozen):
    """A generic ``__init__``, replaced by a generated one (faster per call) once the class has
    made :data:`_COMPILE_AFTER` instances: generating costs ~0.1 ms, and most runs make a handful
    of each record, so a run pays only for the records it makes many of."""
    count = [0]
    setter = object.__setattr__ if frozen else setattr
    post_init = getattr(cls, '__post_init__', None)

    def __init__(self, *args, **kwargs):
        count[0] += 1
        if count[0] > _COMPILE_AFTER:
            init = cls.__init__ = _make_init(cls, names, defaults, frozen)
            init(self, *args, **kwargs)
            return
        if len(args) > len(names):
            raise TypeError('%s() takes %d positional arguments but %d were given' % (
                cls.__name__, len(names), len(args)))
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError("%s() got multiple values for argument '%s'" % (cls.__name__, name))
            setter(self, name, value)
        for name in names[len(args):]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif name in defaults:
                value = defaults[name]
                if isinstance(value, _Factory):
                    value = value.make()
            else:
                raise TypeError("%s() missing required argument: '%s'" % (cls.__name__, name))
            setter(self, name, value)
        if kwargs:
            raise TypeError("%s() got an unexpected keyword argument '%s'" % (cls.__name__, sorted(kwargs)[0]))
        if post_init is not None:
            post_init(self)
    __init__.__qualname__ = cls.__qualname__ + '.__init__'
    return __init__


def _process(cls, frozen):
    if any(hasattr(base, _FIELDS) for base in cls.__mro__[1:]):
        raise TypeError('%s: a record cannot derive from a record (its fields would be lost)' % cls.__name__)
    if '__init__' in cls.__dict__:
        raise TypeError('%s: a record makes its own __init__ (use __post_init__)' % cls.__name__)
    annotations = cls.__dict__.get('__annotations__')
    if annotations is None and sys.version_info >= (3, 10):
        annotations = cls.__annotations__       # the class's own (3.14 evaluates them lazily)
    if not annotations:
        raise TypeError('%s: a record needs annotated fields' % cls.__name__)
    names = tuple(name for name in annotations
                  if not str(annotations[name]).startswith(('ClassVar', 'typing.ClassVar')))
    defaults = {}
    for name in names:
        if name in cls.__dict__:
            defaults[name] = cls.__dict__[name]
            if isinstance(defaults[name], (list, dict, set)):
                raise ValueError('%s.%s: a mutable default is shared; use field(default_factory=...)' % (
                    cls.__name__, name))
            if isinstance(defaults[name], _Factory):
                delattr(cls, name)
    setattr(cls, _FIELDS, names)
    _check_order(cls, names, defaults)
    cls.__init__ = _lazy_init(cls, names, defaults, frozen)
    if '__repr__' not in cls.__dict__:
        cls.__repr__ = _repr
    if '__eq__' not in cls.__dict__:
        cls.__eq__ = _eq
    if frozen:
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
        if '__hash__' not in cls.__dict__ or cls.__dict__['__hash__'] is None:
            cls.__hash__ = _hash
    elif '__hash__' not in cls.__dict__:
        cls.__hash__ = None
    return cls


def record(cls=None, *, frozen=False):
    """Make ``cls`` a record (``@record`` or ``@record(frozen=True)``)."""
    if cls is None:
        return lambda c: _process(c, frozen)
    return _process(cls, frozen)


def replace(obj, **changes):
    """A copy of ``obj`` with ``changes`` (field names) applied; __post_init__ checks run again."""
    names = getattr(obj, _FIELDS)
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError('%s has no field %s' % (type(obj).__name__, ', '.join(sorted(unknown))))
    values = {name: getattr(obj, name) for name in names}
    values.update(changes)
    return type(obj)(**values)


def asdict(obj):
    """``obj`` as plain dicts and lists, recursively (records, dicts, lists and tuples copied)."""
    if hasattr(type(obj), _FIELDS):
        return {name: asdict(getattr(obj, name)) for name in getattr(obj, _FIELDS)}
    if isinstance(obj, dict):
        return {asdict(k): asdict(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [asdict(v) for v in obj]
    if isinstance(obj, tuple):
        items = [asdict(v) for v in obj]
        return type(obj)(*items) if hasattr(obj, '_fields') else type(obj)(items)
    return obj

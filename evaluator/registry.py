"""One registry idiom for every extension point: a name maps to a dataclass whose options are checked.

``OPERATORS.create("knobs", {"scale": 0.5})`` builds the class registered as ``knobs`` from
its options. An unknown option, a missing required one or one of the wrong type is a
one-line ``ValueError`` that names the extension point, the entry and the option (a
misspelt ``wieght: 5`` is refused, not silently run with the default).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# Option types a config can give, by the annotation text of the dataclass field.
_TYPES: dict[str, type] = {"float": float, "int": int, "str": str, "bool": bool, "list": list, "dict": dict}


def is_config_type(value: object, kind: type) -> bool:
    """``isinstance`` as a config reads it: a bool is no number, an int is a float."""
    if kind in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


class Registry(Generic[T]):
    """Named dataclasses of one kind (``kind`` is how errors call them, e.g. "operator")."""

    def __init__(self, kind: str, internal: Iterable[str] = ("name",)):
        self.kind = kind
        self.internal = set(internal)  # fields a config may not set
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if not dataclasses.is_dataclass(cls):
                raise TypeError(f"{self.kind} {name!r}: {cls.__name__} must be a dataclass")
            self._classes[name] = cls
            return cls

        return add

    def names(self) -> list[str]:
        return list(self._classes)

    def __iter__(self):
        return iter(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def get(self, name: str) -> type[T]:
        """The class registered as ``name`` (unknown: one-line ``ValueError``)."""
        return self._lookup(name)

    def options(self, name: str) -> dict[str, dataclasses.Field]:
        """The options entry ``name`` takes, by name."""
        return {f.name: f for f in dataclasses.fields(self._lookup(name)) if f.init and f.name not in self.internal}

    def _lookup(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self._classes)}") from None

    def create(self, name: str, options: dict[str, Any] | None = None, ignore: Iterable[str] = ()) -> T:
        """An instance of entry ``name`` from ``options`` (keys in ``ignore`` belong to the caller)."""
        cls, known, given = self._lookup(name), self.options(name), dict(options or {})
        for key in ignore:
            given.pop(key, None)
        for key, value in given.items():
            if key not in known:
                raise ValueError(f"{self.kind} {name!r}: unknown option {key!r}; known: {', '.join(known) or 'none'}")
            want = _TYPES.get(str(known[key].type))
            if want and not is_config_type(value, want):
                raise ValueError(f"{self.kind} {name!r}: option {key!r} must be {known[key].type}, "
                                 f"got {type(value).__name__} {value!r}"[:300])
        missing = [k for k, f in known.items() if k not in given and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ValueError(f"{self.kind} {name!r} needs option {missing[0]!r}")
        return cls(**given)

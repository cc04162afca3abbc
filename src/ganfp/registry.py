"""One way to choose things by name: models, adapters, scorers, feature spaces, generator families.

A `Registry` maps a name to an object plus a few facts about it (`meta`), as timm's
`_model_entrypoints` does. `get` raises the one "unknown KIND NAME; choose one of: ..." error, so
help texts, option checks, benchmarks and contract tests all read the same list.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from ganfp.errors import InputError

T = TypeVar("T")


def did_you_mean(name: str, choices) -> str:
    """` (did you mean 'epochs'?)` for a name one typo away from a valid one, else "": a list of choices does not
    point at the one a new user misspelt. Case is a typo too: `Knn` is two letters of three from `knn` as it is."""
    folded: dict[str, str] = {}
    for choice in choices:
        folded.setdefault(choice.lower(), choice)
    close = difflib.get_close_matches(name.lower(), sorted(folded), n=1, cutoff=0.75)
    return f" (did you mean {folded[close[0]]!r}?)" if close else ""


def _calling_module() -> str:
    """The module whose code called the registry method that calls this (`__main__` for a notebook's cell)."""
    return sys._getframe(2).f_globals.get("__name__", "")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Named objects of one kind, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._by: dict[str, str] = {}  # name -> the module that registered it

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: `@SCORERS.register("knn", uses_k=True)`; see `add` for a name registered twice."""

        def wrap(obj: T) -> T:
            self._put(name, obj, meta, _calling_module())
            return obj

        return wrap

    def add(self, name: str, obj: T, **meta: Any) -> None:
        """Register `obj` as `name`. A second registration of a name is refused, but for one by the module outside
        ganfp that registered it: a notebook cell re-run (or a module reloaded) replaces its own entry, where a
        notebook user had to restart the kernel to edit a scorer; ganfp's own names stay its own."""
        self._put(name, obj, meta, _calling_module())

    def _put(self, name: str, obj: T, meta: dict[str, Any], by: str) -> None:
        owner = self._by.get(name)
        if owner is not None and (owner != by or owner == "ganfp" or owner.startswith("ganfp.")):
            raise InputError(f"{self.kind} {name!r} is registered already, by {owner}; give yours another name")
        self._entries[name] = Entry(name, obj, dict(meta))
        self._by[name] = by

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise InputError(f"unknown {self.kind} {name!r}{did_you_mean(str(name), self.names())}; choose one of: "
                             f"{', '.join(self.names())}")
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def names(self, **where: Any) -> list[str]:
        """Names in registration order, optionally only those whose meta matches every `where` item."""
        return [e.name for e in self._entries.values() if all(e.meta.get(k) == v for k, v in where.items())]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

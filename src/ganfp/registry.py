"""One way to choose things by name: models, adapters, scorers, feature spaces, generator families.

A `Registry` maps a name to an object plus a few facts about it (`meta`), as timm's
`_model_entrypoints` does. `get` raises the one "unknown KIND NAME; choose one of: ..." error, so
help texts, option checks, benchmarks and contract tests all read the same list.
"""

from __future__ import annotations

import difflib
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

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: `@SCORERS.register("knn", uses_k=True)`; a second registration of a name is a bug."""

        def wrap(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return wrap

    def add(self, name: str, obj: T, **meta: Any) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, obj, dict(meta))

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

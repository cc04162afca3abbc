"""Dataset adapters: `load_manifest("ADAPTER[:ARG]")` turns a dataset on disk into a Manifest.

A spec is `adapter:argument` (`demo:covid`, `folder:/data/x`) or a bare existing folder.
Adapters register themselves here; each module adds one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ganfp.data.manifest import Manifest, folder_warnings_once
from ganfp.errors import InputError, of_option, require_path
from ganfp.registry import Registry, did_you_mean


@dataclass(frozen=True)
class Adapter:
    name: str
    load: Callable[..., Manifest]  # load(arg, data_root, **options) -> Manifest
    help: str
    describe: Callable[[Path, str], dict] | None = None  # layout check of a fetched copy (fetch-data)
    # where its images live, from (arg, data_root, **options) as `load` takes them; None: <data_root>/<name>
    folders: Callable[..., list[Path]] | None = None
    # raises for an argument known bad without the disk (a misspelt demo part), when the spec is parsed
    check: Callable[[str | None], None] | None = None


ADAPTERS: Registry[Adapter] = Registry("dataset adapter")


def register_adapter(name: str, help: str, describe: Callable[[Path, str], dict] | None = None,
                     folders: Callable[..., list[Path]] | None = None,
                     check: Callable[[str | None], None] | None = None):
    def wrap(fn: Callable[..., Manifest]) -> Callable[..., Manifest]:
        ADAPTERS.add(name, Adapter(name, fn, help, describe, folders, check))
        return fn

    return wrap


def list_adapters() -> list[Adapter]:
    return [ADAPTERS.get(name) for name in sorted(ADAPTERS.names())]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """`demo:covid` -> ("demo", "covid"); a bare path (a str or a pathlib.Path) -> ("folder", path).

    The adapter's `check` judges the argument here: `demo:nope` was found only once the images were read, after a
    chain's checks and outside train-stage's, so its error named no option."""
    require_path("spec", spec)
    spec = os.fspath(spec)
    name, sep, arg = spec.partition(":")
    if name in ADAPTERS and not (sep and len(name) == 1 and os.name == "nt"):
        adapter, arg = ADAPTERS.get(name), arg or None
        if adapter.check:
            adapter.check(arg)
        return name, arg
    if Path(spec).expanduser().exists():
        return "folder", spec
    known = ", ".join(a.name for a in list_adapters())
    raise InputError(f"unknown dataset {spec!r}{did_you_mean(name, ADAPTERS.names())}: not an existing folder nor "
                     f"ADAPTER[:ARG] with adapter one of: {known}")


def check_spec(argument: str, spec: str) -> None:
    """`spec` is a folder or a dataset spec, else its error names the argument or option that gave it: classify and
    attribute read several image sets, and `unknown demo part 'nope'` said of none which one held it."""
    try:
        parse_spec(spec)
    except InputError as exc:
        raise of_option(argument, spec, exc) from None


@folder_warnings_once()
def load_manifest(spec: str, data_root: str | os.PathLike | None = None, **options) -> Manifest:
    from ganfp.paths import data_root as resolve_root

    name, arg = parse_spec(spec)
    return ADAPTERS.get(name).load(arg, resolve_root(data_root), **options)


def spec_folders(spec: str, data_root: str | os.PathLike | None = None, **options) -> list[Path]:
    """The folders a dataset spec's images are read from, found without listing (or building) them, for the
    checks that run before either: the output check, which missed an image written into a spec's folder. Empty
    for a spec ganfp does not know: reading it refuses it, naming its option. `options` are the adapter's, as
    `load_manifest` takes them (a stage's `extra`): `covid-ctset`'s `generated=FOLDER` is one of its folders."""
    from ganfp.paths import data_root as resolve_root

    try:
        name, arg = parse_spec(spec)
    except InputError:
        return []
    adapter, root = ADAPTERS.get(name), resolve_root(data_root)
    return adapter.folders(arg, root, **options) if adapter.folders else [root / name]


# Built-in adapters register on import.
from ganfp.data.adapters import casia, covid_ctset, demo, folder, imageclef  # noqa: E402,F401

"""`fetch_dataset`: get a dataset from its source or a local archive/folder, verify it, install it."""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Iterable

from ganfp import __version__
from ganfp.data.names import MACOS_FORKS
from ganfp.paths import data_root as default_root
from ganfp.paths import ensure_dir
from ganfp.errors import InputError, RuntimeFailure, require_path, require_text
from ganfp.fetch import store
from ganfp.fetch.archive import (
    ZSTD_MAGIC,
    archive_kind,
    check_inner,
    check_supported,
    check_members,
    is_macos_forks,
    misnamed_kind,
    name_too_long,
    starts_with,
    unpack,
)
from ganfp.fetch.download import Unreachable, download, fetch_json, file_digest
from ganfp.fetch.kaggle import kaggle_download
from ganfp.fetch.registry import DATASETS, DatasetInfo, Route
from ganfp.fileio import replace_file, write_json

FIGSHARE_API = "https://api.figshare.com/v2"
NESTED_ROUNDS = 2  # archives inside archives are unpacked this many levels deep


def get_info(name: str) -> DatasetInfo:
    store.known_dataset(name)
    return DATASETS[name]


def _sources(source) -> list:
    """`source` as a list of paths: one path, or an iterable of them; anything else is refused naming it (an int
    failed with "'int' object is not iterable", a None in a list inside pathlib)."""
    if source is None:
        return []
    if isinstance(source, (str, os.PathLike)):
        require_path("source", source)
        return [source]
    if isinstance(source, bytes) or not isinstance(source, Iterable):
        raise InputError(f"source={source!r}: must be a path or a list of paths, not {type(source).__name__}")
    sources = list(source)
    for n, raw in enumerate(sources):
        require_path(f"source[{n}]", raw)
    return sources


def fetch_dataset(
    name: str,
    data_root: str | os.PathLike | None,
    source: str | os.PathLike | Iterable[str | os.PathLike] | None = None,
    force: bool = False,
    progress=None,
    *,
    via: str | None = None,
    add: bool = False,
    link: bool = False,
    seed: int | None = None,
) -> Path:
    """Make `<data_root>/<name>` ready and return it.

    `source`: local archive(s) or folder(s) to import instead of downloading. `force`: fetch again
    even when ready. `add`: import `source` on top of a ready copy (ImageCLEF's test set arrives
    after the development set). `link`: hard-link files of a local folder instead of copying.
    `via`: a download route other than the first (e.g. "kaggle"). `seed`: the demo's draw (None: keep a
    ready demo of any seed, and rebuild one with its own seed; a new one gets seed 0).
    """
    info = get_info(name)
    require_path("data_root", data_root, optional=True)
    sources = _sources(source)
    if via is not None:
        require_text("via", via)
    check_options(info, sources, via=via, add=add, link=link, seed=seed, force=force)
    root = default_root(data_root)  # None: $GANFP_DATA, else the per-user data folder, as dataset_status reads it
    with store.removed_if_failed(root, name):
        root = ensure_dir(root, "data root")
        if name == "demo":
            return _fetch_demo(root, force, seed)
        return _fetch_locked(info, root, sources, force=force, add=add, via=via, link=link, progress=progress)


def _fetch_locked(info: DatasetInfo, root: Path, sources: list, *, force: bool, add: bool, via: str | None,
                  link: bool, progress) -> Path:
    """Stage, verify and install the dataset, one process at a time; a failure leaves the ready copy as it was."""
    name = info.name
    folder = store.dataset_dir(name, root)
    with store.locked(root, name):
        store.recover(root, name)
        ready = store.is_ready(folder)
        if ready and not (force or (add and sources)):
            return folder
        if not (ready or force):
            _check_not_hand_placed(folder, sources)
        staging = store.new_staging(root, name)
        try:
            meta = _stage(info, root, staging, sources, via, progress, link, prior=store.read_meta(folder) if add and ready else None)
            if add and ready:
                _link_tree(folder, staging, skip={store.META}, link=True, progress=None, keep_existing=True)
            meta["layout"] = verify_layout(name, staging, _describe_sources(sources))
            write_json(staging / store.META, meta)  # written last: from here on the copy reads as ready
            store.install(staging, folder)
        except OSError as exc:  # disk full, permissions: the input was fine, the machine was not
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeFailure(f"fetching {name} into {root} failed: {exc}") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(store.downloads_dir(root, name), ignore_errors=True)
    return folder


def check_options(info: DatasetInfo, sources: list, *, via: str | None, add: bool, link: bool,
                  seed: int | None, force: bool) -> None:
    """Refuse an option that would change nothing, before any work: ignoring it would hide a mistake."""
    if info.name == "demo":
        given = [opt for opt, on in (("--from", sources), ("--via", via), ("--add", add), ("--link", link)) if on]
        if given:
            raise InputError(f"demo is built on this machine, not fetched: {', '.join(given)} cannot be used with it")
        return
    if seed is not None:
        raise InputError(f"--seed draws the demo data; {info.name} is fetched as published, not drawn")
    if add and not sources:
        raise InputError("--add adds a local archive or folder to a ready dataset: give it with --from")
    if add and force:
        raise InputError("--add keeps the ready copy and adds to it, --force replaces it: give one of them")
    if via and sources:
        raise InputError("--via picks a download route; it cannot be combined with --from")
    for raw in sources:
        _check_source(raw)
    if link and not any(Path(raw).expanduser().is_dir() for raw in sources):
        given = f"--from {sources[0]} is a file, not a folder" if sources else "no --from was given"
        raise InputError(f"--link hard-links the files of a --from FOLDER; {given}")
    if not sources:
        _check_route(info, via)


def _check_source(raw) -> None:
    """An archive not named as one would be kept as a loose file (an empty path is refused with the others,
    `_sources`)."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise InputError(f"--from {raw}: no such file or folder")
    if path.is_file():
        check_supported(path)
        check_members(path)
    if path.is_dir():
        _check_inner_archives(path)
    kind = path.is_file() and misnamed_kind(path)
    if kind:
        suffix = ".zip" if kind == "zip" else ".tar (.tar.gz if it is compressed)"
        raise InputError(f"--from {raw}: a {kind} archive whose name does not end in {suffix}, so it would not be "
                         "unpacked; rename it and run again")


def _check_inner_archives(folder: Path) -> None:
    """Refuse a --from folder holding an archive ganfp cannot unpack (by name; a zip or tar name also by a zstd
    frame), before anything is copied: it was copied as a loose file, and its images were missing."""
    for path in _files_under(folder):
        rel = path.relative_to(folder).as_posix()
        check_inner(folder, rel, archive_kind(path) is not None and starts_with(path, ZSTD_MAGIC), in_folder=True)
        check_members(path, folder / rel)


def _check_route(info: DatasetInfo, via: str | None) -> None:
    if info.route(via) is not None:
        return
    if via:
        known = ", ".join(r.name for r in info.routes) or "none: use --from"
        raise InputError(f"{info.name}: no download route {via!r} (routes: {known})")
    raise InputError(f"{info.name} cannot be downloaded automatically: {info.manual}")


def _check_not_hand_placed(folder: Path, sources: list) -> None:
    """A dataset folder without a ready meta.json holds files someone put there (a fetch only ever renames a
    complete copy into place): installing over it would delete them, unless they are what is imported."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return
    if any(Path(raw).expanduser().resolve() == folder.resolve() for raw in sources):
        return
    raise InputError(f"{folder} holds files that ganfp did not install (no ready meta.json); to install them, give "
                     f"--from {folder}; or move them away (--force replaces them)")


def _fetch_demo(root: Path, force: bool, seed: int | None) -> Path:
    from ganfp.data.adapters.demo import ensure_demo

    return ensure_demo(root, seed=seed, force=force)


def _stage(info: DatasetInfo, root: Path, staging: Path, sources: list, via, progress, link: bool, prior: dict | None) -> dict:
    """Fill `staging` from local sources or the download route; return the meta.json fields."""
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if sources:
        digests = _import_local(info, sources, staging, progress, link)
        meta = {"source": [f"local:{Path(s).expanduser().resolve()}" for s in sources], "route": "local", "version": None}
    else:
        route = info.route(via)  # check_options made sure there is one
        try:
            digests, version, described = _fetch_route(info, route, root, staging, progress)
        except Unreachable as exc:  # offline: the data can still come by hand, as the docs say, but the error did not
            raise Unreachable(f"{exc}; or {info.manual}" if info.manual else str(exc)) from exc
        meta = {"source": described, "route": route.name, "version": version}
    _unpack_nested(info, staging, progress)
    meta.update({"name": info.name, "status": store.READY, "sha256": digests, "fetched_at": now, "ganfp_version": __version__})
    if prior:
        meta["source"] = list(dict.fromkeys(_as_list(prior.get("source")) + meta["source"]))  # an archive added again
        meta["sha256"] = {**(prior.get("sha256") or {}), **digests}
    return meta


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value] if value else []


def _import_local(info: DatasetInfo, sources: list, staging: Path, progress, link: bool) -> dict[str, str]:
    digests: dict[str, str] = {}
    budget = info.max_unpacked_bytes
    for raw in sources:
        path = Path(raw).expanduser()
        if path.is_dir():
            if staging.resolve().is_relative_to(path.resolve()):
                raise InputError(f"{path}: contains the data root itself; point --from at the dataset's own folder or archive")
            _link_tree(path, staging, skip=set(), link=link, progress=progress)
            continue
        check_supported(path)
        if archive_kind(path) is None:  # a loose file, e.g. a label list: kept beside the data
            shutil.copyfile(path, replace_file(staging / path.name))
            continue
        digests[path.name] = file_digest(path)
        budget -= unpack(path, staging, budget, progress)
    return digests


def _fetch_route(info: DatasetInfo, route: Route, root: Path, staging: Path, progress) -> tuple[dict, str | None, list]:
    downloads = store.downloads_dir(root, info.name)
    digests: dict[str, str] = {}
    files: list[Path] = []
    described: list[str] = []
    version = None
    for src in route.sources:
        if src.kind == "url":
            target = downloads / (src.filename or _safe_name(src.ref.rsplit("/", 1)[-1]))
            digests[target.name] = download(src.ref, target, sha256=src.sha256, progress=progress)
            files.append(target)
            described.append(src.ref)
        elif src.kind == "figshare":
            for entry in _figshare_files(src.ref):
                target = downloads / src.ref / _safe_name(entry["name"])
                md5 = entry.get("computed_md5") or entry.get("supplied_md5") or None
                digests[f"{src.ref}/{target.name}"] = download(entry["download_url"], target, md5=md5, size=entry.get("size"), progress=progress)
                files.append(target)
            described.append(f"figshare:{src.ref}")
        elif src.kind == "kaggle":
            path = kaggle_download(src.ref, info.name)
            _link_tree(path, staging, skip=set(), link=True, progress=progress)
            match = re.search(r"versions[/\\](\d+)", str(path))
            version = f"kaggle:{src.ref}/{match.group(1)}" if match else f"kaggle:{src.ref}"
            described.append(f"kaggle:{src.ref}")
        else:
            raise RuntimeFailure(f"{info.name}: unknown source kind {src.kind!r} in the registry")
    budget = info.max_unpacked_bytes
    for path in files:
        if archive_kind(path):
            budget -= unpack(path, staging, budget, progress)
        else:
            shutil.copyfile(path, replace_file(staging / path.name))
    return digests, version, described


def _figshare_files(article: str) -> list[dict]:
    url = f"{FIGSHARE_API}/articles/{article}/files?page_size=1000"
    listing = fetch_json(url)
    if not isinstance(listing, list) or not all(isinstance(e, dict) and "name" in e and "download_url" in e for e in listing):
        raise RuntimeFailure(f"{url}: unexpected answer (expected a list of files with name and download_url)")
    files = [e for e in listing if not e.get("is_link_only")]
    if not files:
        raise RuntimeFailure(f"{url}: the article lists no downloadable files")
    return files


def _safe_name(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._&+()-]", "_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    if not base:
        raise RuntimeFailure(f"the source names a file {name!r} that cannot be saved safely")
    return base


def _unpack_nested(info: DatasetInfo, staging: Path, progress) -> None:
    """Archives found inside what was fetched are unpacked beside themselves, then removed."""
    budget = info.max_unpacked_bytes - sum(p.stat().st_size for p in staging.rglob("*") if p.is_file())
    for _ in range(NESTED_ROUNDS):
        nested = sorted(p for p in staging.rglob("*") if p.is_file() and archive_kind(p))
        for path in nested:
            budget -= unpack(path, path.parent / _archive_stem(path), budget, progress, path.relative_to(staging))
            path.unlink()


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "archive"
    return name


def _link_tree(src: Path, dest: Path, skip: set[str], link: bool, progress, keep_existing: bool = False) -> None:
    """Copy (or hard-link) the files under `src` into `dest`; symlinked folders are followed once."""
    files = [p for p in _files_under(src) if not (p.parent == src and p.name in skip)]
    label = f"{'link' if link else 'copy'} {src.name}"
    task = progress.add_task(label, total=len(files), status="") if progress else None
    for i, path in enumerate(files, 1):
        target = dest / path.relative_to(src)
        if keep_existing and target.exists():
            continue
        _place_under(src, path, target, link)
        if task is not None and (i % 200 == 0 or i == len(files)):
            progress.update(task, completed=i)


def _files_under(src: Path) -> list[Path]:
    """The files under `src`; symlinked folders are followed once, macOS's resource forks (`__MACOSX/`, `._NAME`)
    left out."""
    files, seen = [], set()

    def unreadable(exc: OSError) -> None:  # skipping it would install a dataset with files silently missing
        raise InputError(f"{exc.filename or src}: cannot read the folder ({exc.strerror or exc})")

    for top, dirs, names in os.walk(src, onerror=unreadable, followlinks=True):
        dirs[:] = [d for d in dirs if d != MACOS_FORKS]  # as an archive's are skipped: `unzip` keeps them
        real = os.path.realpath(top)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        files.extend(Path(top) / n for n in names if not is_macos_forks(PurePosixPath(n)))
    return files


def _place_under(src: Path, path: Path, target: Path, link: bool) -> None:
    """`_place`, making the folders; a copy whose path grows too long in the data root (its staging folder's name
    added to the path) is named by its place in `src`, one line, not as an OSError quoting thousands of characters."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _place(path, target, link)
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        raise InputError(name_too_long(src, path.relative_to(src).as_posix(), "shorten the names in it, or use a "
                                       "shorter --data-root")) from exc


def _place(path: Path, target: Path, link: bool) -> None:
    """Link or copy `path` to a new `target` inode (a file already there may be a link to another user file)."""
    replace_file(target)
    if link:
        try:
            os.link(path, target)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    shutil.copyfile(path, target)


def _describe_sources(sources: list) -> str:
    if sources:
        return "the data from " + ", ".join(str(s) for s in sources)
    return "the downloaded data"


def verify_layout(name: str, folder: Path, where: str) -> dict:
    """What the dataset's adapter (of the same name) recognises in `folder`; a layout it does not know is an InputError."""
    from ganfp.data.adapters import ADAPTERS
    from ganfp.data.manifest import folder_warnings_once, log as scan_log

    adapter = ADAPTERS.get(name)
    if adapter.describe is None:
        raise RuntimeFailure(f"no layout check for dataset {name}")
    named = _NamedBySource(folder, where)
    scan_log.addFilter(named)
    try:
        with folder_warnings_once():  # a describe lists its folders more than once
            return adapter.describe(folder, where)
    except InputError as exc:  # a staged file's path names nothing once the staging folder is gone: name its source
        raise InputError(str(exc).replace(f"{folder}{os.sep}", f"{where}: ") + _left_packed(folder)) from exc
    finally:
        scan_log.removeFilter(named)


def _left_packed(folder: Path) -> str:
    """The archives nested deeper than `_unpack_nested` goes, for the layout error they likely caused: it named
    the folders around them ("found folders: b, b/c") and not the archive that held the data."""
    packed = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and archive_kind(p))
    if not packed:
        return ""
    more = f" (and {len(packed) - 1} more)" if len(packed) > 1 else ""
    return (f"; {packed[0]}{more} was not unpacked: archives inside the data are unpacked {NESTED_ROUNDS} levels "
            "deep, and it is nested deeper; unpack it and give the folder with --from")


class _NamedBySource(logging.Filter):
    """A warning of the layout check (files skipped as not images) names the data given, not the staging folder,
    which is gone once the fetch ends."""

    def __init__(self, staging: Path, where: str):
        super().__init__()
        self.staging, self.where = str(staging), where

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage().replace(self.staging, self.where), ()
        return True

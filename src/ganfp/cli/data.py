"""Commands: fetch-data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from ganfp import ui
from ganfp.cli.app import app
from ganfp.cli.options import DemoSeedOpt, JsonOpt, ReadDataRootOpt, RunsDirOpt, path_given

LIST_COLUMNS = ["name", "what it is", "size", "access", "status"]
# ganfp.fetch.registry.DATASETS, written out (the years folded) so `ganfp --help` reads no more of ganfp.fetch than
# it must; tests/test_cli.py checks that they agree
DATASETS_HELP = "Dataset: casia, covid-ctset, imageclef-gans-2023/2024/2025, demo."


@app.command("fetch-data")
def fetch_data(
    name: Optional[str] = typer.Argument(
        None, metavar="NAME",
        help=DATASETS_HELP,
    ),
    from_: Optional[List[str]] = typer.Option(
        None, "--from", metavar="PATH", callback=path_given("--from", "an archive or a folder"),
        help="Import a local archive (zip, tar, tar.gz, tar.bz2, tar.xz) or unpacked folder instead of downloading; "
        "repeat for several.",
    ),
    data_root: ReadDataRootOpt = None,
    force: bool = typer.Option(False, "--force", help="Fetch again even when the dataset is ready."),
    add: bool = typer.Option(
        False, "--add",
        help="With --from: add to a ready dataset (e.g. the ImageCLEF test set after the dev set).",
    ),
    via: Optional[str] = typer.Option(
        None, "--via", metavar="ROUTE",
        help="A download route other than the default (covid-ctset: kaggle).",
    ),
    link: bool = typer.Option(
        False, "--link",
        help="With --from FOLDER: hard-link the files instead of copying them (same file system).",
    ),
    list_: bool = typer.Option(
        False, "--list", help="List the datasets (or only NAME) and their status on this machine."
    ),
    json_: JsonOpt = False,
    seed: DemoSeedOpt = None,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Download or import a dataset, verify it, and install it in the data folder.

    The demo is built with --seed; without it a ready demo of any seed is kept, and a rebuild (--force, or an
    outdated demo) keeps the seed it was built with (a new demo: 0). A demo rebuilt with other images names the
    chain runs in --runs-dir trained on the old ones.
    """
    from ganfp.errors import InputError
    from ganfp.fetch import dataset_status, fetch_dataset, list_datasets, read_meta
    from ganfp.fileio import check_writable
    from ganfp.paths import data_root as resolve_root

    root = resolve_root(data_root)
    if list_:
        given = [opt for opt, on in (("--from", from_), ("--force", force), ("--add", add), ("--via", via),
                                      ("--link", link), ("--seed", seed is not None), ("--runs-dir", runs_dir)) if on]
        if given:
            raise InputError(f"--list only shows the datasets: {', '.join(given)} cannot be used with it")
        rows = list_datasets(root, name)
        if json_:
            ui.print_json({"data_root": str(root), "datasets": rows})
        else:
            table = [[r["name"], r["description"], r["size"], r["access"], r["status"]] for r in rows]
            ui.print_table("Datasets", LIST_COLUMNS, table, caption=f"data root: {root}")
        return
    if not name:
        raise InputError("name a dataset to fetch (ganfp fetch-data NAME), or list them: ganfp fetch-data --list")
    check_writable(root, "data root", folder=True)  # --list only reads it
    runs = _runs_folder(runs_dir, name)
    from ganfp.data.adapters.demo import demo_dir, demo_ready  # here: --list and --help import nothing heavy

    started = time.perf_counter()
    was_ready = demo_ready(root, seed) if name == "demo" else dataset_status(name, root) == "ready"
    before = read_meta(demo_dir(root)) if name == "demo" else None
    with ui.progress(transient=True) as progress:
        path = fetch_dataset(name, root, source=from_ or None, force=force, progress=progress, via=via, add=add,
                             link=link, seed=seed)
    already = was_ready and not force and not (add and from_)
    counts = _counts(read_meta(path))
    stale = _runs_on_old_demo(before, read_meta(path), runs) if before is not None else None
    left_out = _already_ready(name, path, from_) if already and from_ else None  # --json said only already_ready
    if json_:
        ui.print_json({"name": name, "path": str(path), "data_root": str(root), "already_ready": already,
                       "counts": counts, "seconds": round(time.perf_counter() - started, 2),
                       "warnings": [text for text in (left_out, stale) if text]})
        if left_out:
            ui.warn(left_out)
    elif already:
        ui.info(_already_ready(name, path, from_))
    else:
        ui.info(f"{name} ready in {path}{_summary(counts)}")
    if stale:
        ui.warn(stale)


def _already_ready(name: str, path: Path, sources: list[str] | None) -> str:
    """A ready dataset is kept; say so, and that --from's data was left out, or a user takes it for imported."""
    if name == "demo":
        return f"demo is already ready in {path} (--force builds it again)"
    if sources:
        return (f"{name} is already ready in {path}; --from was not imported: --add adds it to the dataset, "
                "--force replaces the dataset with it")
    return f"{name} is already ready in {path} (--force fetches it again)"


def _runs_folder(runs_dir: str | None, name: str) -> Path:
    """The folder the demo's warning searches for chain runs; a folder that does not exist holds none.

    A --runs-dir that is a file is refused before the build rather than found wanting after it. Only a given
    --runs-dir is checked: the default ($GANFP_RUNS, ./runs) never stops a fetch.
    """
    from ganfp.errors import InputError
    from ganfp.paths import runs_root

    if runs_dir and name != "demo":
        raise InputError(f"--runs-dir is where a rebuilt demo looks for runs trained on its old images; {name} is "
                         "not the demo")
    runs = runs_root(runs_dir)
    if runs_dir and runs.exists() and not runs.is_dir():
        raise InputError(f"--runs-dir {runs}: is a file, not a folder")
    return runs


def _runs_on_old_demo(before: dict, after: dict | None, runs_folder: Path) -> str | None:
    """A demo rebuilt with other images (another seed or demo version) leaves the models of the chain runs trained
    on the old ones in place until each chain runs again, which retrains them (docs/chain.md): name those runs, so
    nobody classifies with a model of images that are gone unawares.

    Only runs in `runs_folder` (--runs-dir, else $GANFP_RUNS, else ./runs) are found. The warning, or None.
    """
    old, new = (before.get("seed"), before.get("version")), ((after or {}).get("seed"), (after or {}).get("version"))
    if before.get("status") != "ready" or old == new:
        return None  # a partial build replaced, or the same seed again: byte-identical images
    from ganfp.chain import runs_trained_on
    from ganfp.data.adapters.demo import CHAIN_SPECS

    runs = runs_trained_on(CHAIN_SPECS, runs_folder)
    if not runs:
        return None
    change = f"seed {old[0]} -> {new[0]}" if old[0] != new[0] else f"demo version {old[1]} -> {new[1]}"
    listed = ", ".join(f"{run} (from stage {stage})" for run, stage in runs)
    return (f"the demo images changed ({change}); these runs hold models trained on the old images until their "
            f"chain runs again, which retrains them: {listed}")


IMAGE_COUNTS = ("used", "not_used", "generated", "real", "unknown", "images")  # an ImageCLEF part's layout counts


def _counts(meta: dict | None) -> dict:
    """Images per folder (per version of a versioned dataset, per part of an ImageCLEF set), from its meta.json."""
    layout = (meta or {}).get("layout") or meta or {}  # the demo keeps its counts at the top
    if "counts" in layout:
        return layout["counts"] or {}
    parts = {f"{part} {entry['folder'] or '.'}": {k: entry[k] for k in IMAGE_COUNTS if k in entry}
             for part in ("dev", "test", "attribution") for entry in layout.get(part, [])}
    return {name: per for name, per in parts.items() if per}


def _summary(counts: dict) -> str:
    if not counts:
        return ""
    if all(isinstance(v, dict) for v in counts.values()):
        parts = [f"{version}: " + ", ".join(f"{n} {c}" for c, n in per.items()) for version, per in counts.items()]
    else:
        parts = [", ".join(f"{n} {c}" for c, n in counts.items())]
    return f" ({'; '.join(parts)})"

"""Installing datasets: status absent/partial/ready, interrupted fetches, --force/--add, Kaggle, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import shutil
import sys
import textwrap
import time
import types
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.layouts import make_casia, make_gans_dev, tiny_image

from ganfp.data.adapters import load_manifest
from ganfp.errors import InputError, RuntimeFailure
from ganfp.fetch import DATASETS, Route, Source, dataset_status, fetch_dataset, read_meta
from ganfp.fetch import archive as archive_mod

ROOT = Path(__file__).resolve().parents[1]


def _casia_zip(tmp_path: Path, n_extra: int = 0) -> Path:
    src = tmp_path / "casia-src"
    make_casia(src, with_samples=False)
    for i in range(n_extra):
        tiny_image(src / "casia" / "CASIA2" / "Au" / f"Au_sec_{i + 10000:05d}.jpg", 1000 + i, size=16)
    archive = tmp_path / "casia.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    return archive


def test_status_goes_absent_then_ready_and_meta_is_complete(tmp_path):
    root = tmp_path / "data"
    assert dataset_status("casia", root) == "absent"
    archive = _casia_zip(tmp_path)
    path = fetch_dataset("casia", root, source=archive)
    assert path == root / "casia" and dataset_status("casia", root) == "ready"
    meta = read_meta(path)
    assert meta["status"] == "ready" and meta["route"] == "local" and meta["version"] is None
    assert set(meta) >= {"source", "sha256", "fetched_at", "version", "layout"}
    assert len(meta["sha256"]["casia.zip"]) == 64
    assert meta["layout"]["counts"]["v2"]["authentic"] == 5
    assert not list(root.glob(".tmp-*"))


def test_interrupted_unpack_is_never_ready_and_a_rerun_completes(tmp_path, monkeypatch):
    root, archive = tmp_path / "data", _casia_zip(tmp_path)
    real_write = archive_mod._write
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_write(*args, **kwargs)

    monkeypatch.setattr(archive_mod, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset("casia", root, source=archive)
    assert dataset_status("casia", root) in ("absent", "partial")
    with pytest.raises(InputError, match="run: ganfp fetch-data casia"):
        load_manifest("casia", root)
    monkeypatch.setattr(archive_mod, "_write", real_write)
    fetch_dataset("casia", root, source=archive)
    assert dataset_status("casia", root) == "ready" and len(load_manifest("casia", root)) > 0


def kill_when_flagged(script: str, args: list[str], flag: Path, never: str) -> None:
    """Run `script` in a new process and SIGKILL it once it writes `flag` (the middle of the work it does)."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT)
    try:
        deadline = time.time() + 60
        while not flag.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert flag.exists(), never
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)


def listed_status(run_cli, root: Path, name: str) -> str:
    code, out, err = run_cli("fetch-data", "--list", "--json", "--data-root", str(root))
    assert code == 0, err
    return {r["name"]: r["status"] for r in json.loads(out)["datasets"]}[name]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import ganfp.fetch.archive as archive
    real_write, calls = archive._write, []
    def slow(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            Path(sys.argv[3]).write_text("unpacking")
            time.sleep(60)
        return real_write(*args, **kwargs)
    archive._write = slow
    from ganfp.fetch import fetch_dataset
    fetch_dataset("casia", sys.argv[1], source=sys.argv[2])
    """
)


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL semantics")
def test_killed_fetch_leaves_partial_and_the_next_run_completes(tmp_path):
    root, archive, flag = tmp_path / "data", _casia_zip(tmp_path), tmp_path / "flag"
    kill_when_flagged(KILL_SCRIPT, [str(root), str(archive), str(flag)], flag, "the fetch never reached the middle of unpacking")
    assert dataset_status("casia", root) == "partial"
    assert list(root.glob(".tmp-casia-*")) and not (root / "casia").exists()
    fetch_dataset("casia", root, source=archive)
    assert dataset_status("casia", root) == "ready" and not list(root.glob(".tmp-*"))


DEMO_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import ganfp.data.demo as demo
    def slow(*args, **kwargs):
        Path(sys.argv[2]).write_text("building")
        time.sleep(60)
    demo.build_casia = slow
    from ganfp.fetch import fetch_dataset
    fetch_dataset("demo", sys.argv[1])
    """
)


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL semantics")
def test_killed_demo_build_lists_as_partial(tmp_path, run_cli):
    """The demo is built in `.demo.tmp-PID`, not a fetch's staging folder: a killed build is partial, not absent."""
    root, flag = tmp_path / "data", tmp_path / "flag"
    kill_when_flagged(DEMO_KILL_SCRIPT, [str(root), str(flag)], flag, "the demo build never started")
    (build,) = root.glob(".demo.tmp-*")
    assert not (root / "demo").exists()
    assert dataset_status("demo", root) == "partial"
    assert listed_status(run_cli, root, "demo") == "partial"
    build.rename(root / build.name.replace(".tmp-", ".old-"))  # as if killed after setting a ready copy aside
    assert dataset_status("demo", root) == "partial"


ATTRIBUTION_KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import ganfp.data.demo_attribution as demo_attribution
    def slow(root, seed):
        (root / "generated").mkdir()
        Path(sys.argv[2]).write_text("building")
        time.sleep(60)
    demo_attribution.BUILDERS["attribution-2025"] = slow
    demo_attribution.ensure_attribution_demo("attribution-2025", Path(sys.argv[1]))
    """
)


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL semantics")
def test_killed_attribution_demo_build_lists_as_partial_and_the_next_build_removes_it(tmp_path, run_cli, monkeypatch):
    """`demo:attribution-*` stage `.demo-attribution-2025.tmp-PID`: partial once killed, removed by the next build."""
    from ganfp.data import demo_attribution

    root, flag = tmp_path / "data", tmp_path / "flag"
    kill_when_flagged(ATTRIBUTION_KILL_SCRIPT, [str(root), str(flag)], flag, "the attribution demo build never started")
    (build,) = root.glob(".demo-attribution-2025.tmp-*")
    assert dataset_status("demo", root) == "partial"
    assert listed_status(run_cli, root, "demo") == "partial"
    set_aside = root / build.name.replace(".tmp-", ".old-")
    shutil.copytree(build, set_aside)  # as if another build was killed after setting a ready copy aside

    def tiny(folder: Path, seed: int) -> dict:
        (folder / "generated").mkdir()
        return {"images": 0}

    monkeypatch.setitem(demo_attribution.BUILDERS, "attribution-2025", tiny)
    demo_attribution.ensure_attribution_demo("attribution-2025", root)
    assert sorted(p.name for p in root.iterdir()) == ["demo-attribution-2025"]


def test_ready_is_kept_unless_forced_and_a_failed_force_keeps_the_old_copy(tmp_path):
    root, archive = tmp_path / "data", _casia_zip(tmp_path)
    fetch_dataset("casia", root, source=archive)
    first = read_meta(root / "casia")["fetched_at"]
    (root / "casia" / "marker").write_text("x")
    fetch_dataset("casia", root, source=archive)
    assert (root / "casia" / "marker").exists()  # ready: nothing redone
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil", b"x")
    with pytest.raises(InputError):
        fetch_dataset("casia", root, source=bad, force=True)
    assert dataset_status("casia", root) == "ready" and (root / "casia" / "marker").exists()
    fetch_dataset("casia", root, source=archive, force=True)
    assert not (root / "casia" / "marker").exists() and read_meta(root / "casia")["fetched_at"] >= first


def test_set_aside_copy_is_restored_after_a_crash_between_renames(tmp_path):
    root, archive = tmp_path / "data", _casia_zip(tmp_path)
    fetch_dataset("casia", root, source=archive)
    (root / "casia").rename(root / ".old-casia-0123abcd")  # as if killed right after setting it aside
    assert dataset_status("casia", root) == "partial"
    fetch_dataset("casia", root, source=archive)
    assert dataset_status("casia", root) == "ready" and not (root / ".old-casia-0123abcd").exists()


def test_folder_import_copies_or_hard_links(tmp_path):
    src = tmp_path / "src"
    make_gans_dev(src)
    for link in (False, True):
        root = tmp_path / f"data-{link}"
        fetch_dataset("imageclef-gans-2023", root, source=src, link=link)
        a = src / "used" / "used_0001.png"
        b = root / "imageclef-gans-2023" / "used" / "used_0001.png"
        assert b.read_bytes() == a.read_bytes()
        assert os.path.samefile(a, b) is link
    with pytest.raises(InputError, match="contains the data root"):
        fetch_dataset("imageclef-gans-2023", src / "inner", source=src, force=True)


def test_link_with_a_folder_and_an_archive_links_the_folder(tmp_path):
    """--link needs one --from FOLDER; the archives beside it are unpacked as usual."""
    src, extra = tmp_path / "src", tmp_path / "extra.zip"
    make_gans_dev(src)
    with zipfile.ZipFile(extra, "w") as zf:
        zf.writestr("notes.txt", "x")
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2023", root, source=[src, extra], link=True)
    linked = root / "imageclef-gans-2023" / "used" / "used_0001.png"
    assert os.path.samefile(src / "used" / "used_0001.png", linked)
    assert (root / "imageclef-gans-2023" / "notes.txt").read_text() == "x"


def test_options_that_would_change_nothing_are_refused_before_any_work(tmp_path):
    root = tmp_path / "data"
    for kwargs, words in (({"link": True}, "--link"), ({"seed": 2}, "--seed"),
                          ({"source": tmp_path / "x.zip"}, "--from")):
        with pytest.raises(InputError, match=words):
            fetch_dataset("covid-ctset", root, **kwargs)
    with pytest.raises(InputError, match="--link"):
        fetch_dataset("demo", root, link=True)
    assert not root.exists()


def test_nested_archives_are_unpacked(tmp_path):
    inner = tmp_path / "inner"
    make_gans_dev(inner)
    with zipfile.ZipFile(tmp_path / "dev.zip", "w") as zf:
        for p in sorted(inner.rglob("*")):
            zf.write(p, p.relative_to(inner).as_posix())
    outer = tmp_path / "outer"
    outer.mkdir()
    (outer / "dev.zip").write_bytes((tmp_path / "dev.zip").read_bytes())
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2023", root, source=outer)
    assert len(load_manifest("imageclef-gans-2023:dev", root)) == 8
    assert not list((root / "imageclef-gans-2023").rglob("*.zip"))


def test_an_archive_nested_too_deep_is_named_in_the_layout_error(tmp_path):
    """a.zip > b.zip > c.zip > d.zip (the data): d.zip is one level deeper than the fetch unpacks, and the layout
    error named only the folders around it ("found folders: b, b/c")."""
    inner = tmp_path / "inner"
    make_gans_dev(inner)
    packed = tmp_path / "d.zip"
    with zipfile.ZipFile(packed, "w") as zf:
        for p in sorted(inner.rglob("*")):
            zf.write(p, p.relative_to(inner).as_posix())
    for name in ("c", "b", "a"):
        with zipfile.ZipFile(tmp_path / f"{name}.zip", "w") as zf:
            zf.write(packed, packed.name)
        packed = tmp_path / f"{name}.zip"
    with pytest.raises(InputError) as err:
        fetch_dataset("imageclef-gans-2023", tmp_path / "data", source=packed)
    assert "b/c/d.zip was not unpacked" in str(err.value) and "\n" not in str(err.value), err.value
    assert dataset_status("imageclef-gans-2023", tmp_path / "data") == "absent"


def test_manual_datasets_and_unknown_names_explain_what_to_do(tmp_path):
    with pytest.raises(InputError, match=r"registration.*--from"):
        fetch_dataset("imageclef-gans-2023", tmp_path)
    with pytest.raises(InputError, match="unknown dataset 'mnist'"):
        fetch_dataset("mnist", tmp_path)
    with pytest.raises(InputError, match=r"unknown dataset 'casa' \(did you mean 'casia'\?\); choose one of"):
        fetch_dataset("casa", tmp_path)  # a new user's typo: the list of six did not point at the one meant
    with pytest.raises(InputError, match="no download route 'ftp'"):
        fetch_dataset("covid-ctset", tmp_path, via="ftp")
    with pytest.raises(InputError, match="no such file or folder"):
        fetch_dataset("casia", tmp_path, source=tmp_path / "missing.zip")
    with pytest.raises(InputError, match="give it with --from"):
        fetch_dataset("imageclef-gans-2023", tmp_path, add=True)
    with pytest.raises(InputError, match="cannot be combined with --from"):
        fetch_dataset("covid-ctset", tmp_path, source=tmp_path, via="kaggle")
    assert dataset_status("covid-ctset", tmp_path) == "absent"


def test_kaggle_missing_client_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kagglehub", None)
    with pytest.raises(InputError) as err:
        fetch_dataset("casia", tmp_path)
    msg = str(err.value)
    assert "pip install 'ganfp[kaggle]'" in msg and "kaggle.json" in msg and "--from" in msg and "\n" not in msg
    assert dataset_status("casia", tmp_path) == "absent"


def test_kaggle_route_imports_what_kagglehub_downloaded(tmp_path, monkeypatch):
    cache = tmp_path / "kagglehub" / "datasets" / "sophatvathana" / "casia-dataset" / "versions" / "3"
    make_casia(cache, with_samples=False)
    fake = types.SimpleNamespace(dataset_download=lambda slug: str(cache) if slug == "sophatvathana/casia-dataset" else None)
    monkeypatch.setitem(sys.modules, "kagglehub", fake)
    root = tmp_path / "data"
    fetch_dataset("casia", root)
    meta = read_meta(root / "casia")
    assert meta["version"] == "kaggle:sophatvathana/casia-dataset/3" and meta["source"] == ["kaggle:sophatvathana/casia-dataset"]
    assert load_manifest("casia", root).class_counts() == {"authentic": 5, "tampered": 3}
    assert any(cache.rglob("*.jpg"))  # kagglehub's own cache is left as it was


def test_via_takes_the_route_name_in_any_case(tmp_path, monkeypatch):
    cache = tmp_path / "kagglehub" / "versions" / "3"
    make_casia(cache, with_samples=False)
    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=lambda slug: str(cache)))
    fetch_dataset("casia", tmp_path / "data", via="Kaggle")
    assert read_meta(tmp_path / "data" / "casia")["route"] == "kaggle"


def test_kaggle_auth_and_network_failures(tmp_path, monkeypatch):
    class UnauthenticatedError(Exception):
        pass

    def refuse(slug):
        raise UnauthenticatedError("401 Client Error")

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=refuse))
    with pytest.raises(InputError, match="Kaggle refused"):
        fetch_dataset("casia", tmp_path)

    def offline(slug):
        raise ConnectionError("Max retries exceeded\nwith a long traceback text")

    monkeypatch.setitem(sys.modules, "kagglehub", types.SimpleNamespace(dataset_download=offline))
    with pytest.raises(RuntimeFailure, match="Max retries exceeded$"):
        fetch_dataset("casia", tmp_path)


def test_demo_is_built_by_the_demo_builder_and_rebuilt_on_force(tmp_path, monkeypatch):
    """fetch-data demo goes through ensure_demo/build_demo (a stand-in builder here)."""
    from ganfp.fileio import write_json

    builds = []

    def build_demo(target, seed=0):  # like the real one: a fresh folder replaces the old one
        builds.append(seed)
        shutil.rmtree(target, ignore_errors=True)
        tiny_image(Path(target) / "casia" / "authentic" / "a.png", seed)
        write_json(Path(target) / "meta.json", {"status": "ready", "seed": seed, "version": 1})
        return {"status": "ready"}

    monkeypatch.setitem(sys.modules, "ganfp.data.demo", types.SimpleNamespace(build_demo=build_demo, DEMO_VERSION=1))
    root = tmp_path / "data"
    assert fetch_dataset("demo", root, seed=3) == root / "demo" and dataset_status("demo", root) == "ready"
    fetch_dataset("demo", root, seed=3)
    assert builds == [3]
    (root / "demo" / "stale.txt").write_text("x")
    fetch_dataset("demo", root, force=True, seed=4)
    assert builds == [3, 4] and not (root / "demo" / "stale.txt").exists()
    fetch_dataset("demo", root)  # no seed: the ready demo of seed 4 is kept, not rebuilt with seed 0
    assert builds == [3, 4]
    fetch_dataset("demo", root, force=True)  # no seed: the same demo again, of its recorded seed
    assert builds == [3, 4, 4]


def test_cli_fetch_demo_without_seed_keeps_a_ready_demo(tmp_path, run_cli, monkeypatch):
    from ganfp.fileio import write_json

    builds = []

    def build_demo(target, seed=0):
        builds.append(seed)
        write_json(Path(target) / "meta.json", {"status": "ready", "seed": seed, "counts": {}, "version": 1})

    monkeypatch.setitem(sys.modules, "ganfp.data.demo", types.SimpleNamespace(build_demo=build_demo, DEMO_VERSION=1))
    root = str(tmp_path / "data")
    assert run_cli("fetch-data", "demo", "--seed", "5", "--data-root", root)[0] == 0
    code, out, err = run_cli("fetch-data", "demo", "--data-root", root, "--json")
    assert code == 0 and json.loads(out)["already_ready"] is True, err
    assert run_cli("fetch-data", "demo", "--seed", "6", "--data-root", root)[0] == 0
    assert builds == [5, 6]


def test_cli_fetch_list_and_errors(tmp_path, run_cli, monkeypatch):
    root = tmp_path / "data"
    archive = _casia_zip(tmp_path)
    code, _, err = run_cli("fetch-data", "casia", "--from", str(archive), "--data-root", str(root))
    assert code == 0, err
    assert "casia ready in" in err and "5 authentic" in err
    monkeypatch.setenv("GANFP_DATA", str(root))
    code, out, _ = run_cli("fetch-data", "--list", "--json")
    rows = {r["name"]: r for r in json.loads(out)["datasets"]}
    assert rows["casia"]["status"] == "ready" and rows["covid-ctset"]["status"] == "absent"
    assert rows["imageclef-gans-2023"]["access"] == "registration" and rows["covid-ctset"]["access"] == "public"
    code, out, _ = run_cli("fetch-data", "--list")
    assert code == 0 and "imageclef-gans-2025" in out and "ready" in out
    code, _, err = run_cli("fetch-data", "imageclef-gans-2023")
    assert code == 2 and err.count("\n") == 1 and "--from" in err
    code, _, err = run_cli("fetch-data", "nope")
    assert code == 2 and "unknown dataset" in err
    code, _, err = run_cli("fetch-data", "casia", "--from", str(archive))
    assert code == 0 and "already ready" in err


def test_cli_fetch_list_name_shows_that_dataset_only(tmp_path, run_cli):
    code, out, err = run_cli("fetch-data", "--list", "casia", "--json", "--data-root", str(tmp_path))
    assert code == 0, err
    assert [r["name"] for r in json.loads(out)["datasets"]] == ["casia"]
    code, out, err = run_cli("fetch-data", "--list", "demo", "--data-root", str(tmp_path))
    assert code == 0 and "demo" in out and "casia" not in out, err


def test_cli_fetch_json_describes_the_result(tmp_path, run_cli, monkeypatch):
    """`fetch-data NAME --json` prints one JSON object on stdout, from an import and from the demo builder."""
    from ganfp.fileio import write_json

    root, archive = tmp_path / "data", _casia_zip(tmp_path)
    code, out, err = run_cli("fetch-data", "casia", "--from", str(archive), "--data-root", str(root), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["name"] == "casia" and result["path"] == str(root / "casia") and result["data_root"] == str(root)
    assert result["already_ready"] is False and result["counts"]["v2"]["authentic"] == 5 and result["seconds"] >= 0
    code, out, err = run_cli("fetch-data", "casia", "--from", str(archive), "--data-root", str(root), "--json")
    assert code == 0 and json.loads(out)["already_ready"] is True, err

    def build_demo(target, seed=0):
        write_json(Path(target) / "meta.json", {"status": "ready", "counts": {"casia/authentic": 1}, "version": 1})

    monkeypatch.setitem(sys.modules, "ganfp.data.demo", types.SimpleNamespace(build_demo=build_demo, DEMO_VERSION=1))
    code, out, err = run_cli("fetch-data", "demo", "--data-root", str(root), "--json")
    assert code == 0, err
    assert json.loads(out)["counts"] == {"casia/authentic": 1} and json.loads(out)["path"] == str(root / "demo")


def test_cli_network_failure_exits_1(tmp_path, run_cli, monkeypatch):
    route = Route("x", "public", (Source("url", "http://127.0.0.1:9/all.csv"),))
    monkeypatch.setitem(DATASETS, "covid-ctset", replace(DATASETS["covid-ctset"], routes=(route,)))
    code, _, err = run_cli("fetch-data", "covid-ctset", "--data-root", str(tmp_path))
    assert code == 1 and "cannot connect" in err and err.count("\n") == 1
    # offline, the way by hand (--from) is named too: the error said only to check the network
    assert err.endswith("; or download COVID-CTset from github.com/mr7495/COVID-CTset (Figshare parts or Kaggle), "
                        "then run: ganfp fetch-data covid-ctset --from ARCHIVE_OR_FOLDER\n"), err


def stand_in_demo_builder(monkeypatch) -> list[int]:
    """A demo builder that writes only meta.json; returns the seeds it builds, as it builds them."""
    from ganfp.fileio import write_json

    builds = []

    def build_demo(target, seed=0):
        builds.append(seed)
        write_json(Path(target) / "meta.json", {"status": "ready", "seed": seed, "counts": {}, "version": 1})

    monkeypatch.setitem(sys.modules, "ganfp.data.demo", types.SimpleNamespace(build_demo=build_demo, DEMO_VERSION=1))
    return builds


def write_runs(runs: Path) -> None:
    """Two finished chain runs: `demo-resnet18` trained on the demo, `mine-conv5` on other data."""
    from ganfp.fileio import write_json

    for run, stages in (("demo-resnet18", ["demo:casia", "demo:covid"]), ("mine-conv5", ["covid-ctset"])):
        write_json(runs / run / "chain.json", {"chain": run.split("-")[0], "stages": []})
        for i, dataset in enumerate(stages, 1):
            name = dataset.rpartition(":")[2]
            write_json(runs / run / f"0{i}-{name}" / "meta.json",
                       {"status": "complete", "config": {"name": name, "dataset": dataset}})
            (runs / run / f"0{i}-{name}" / "model.safetensors").write_bytes(b"weights")


def test_cli_fetch_demo_with_other_images_names_the_runs_trained_on_the_old_ones(tmp_path, run_cli, monkeypatch):
    """Runs whose finished stages were trained on the demo before it was rebuilt with another seed hold models of
    images that are gone until their chain runs again (which retrains them): fetch-data names those runs and their
    first demo stage; the same seed again (byte-identical images) and runs on other data are not named."""
    stand_in_demo_builder(monkeypatch)
    runs = tmp_path / "runs"
    write_runs(runs)
    monkeypatch.setenv("GANFP_RUNS", str(runs))
    root = str(tmp_path / "data")
    for args in ((), ("--force",), ("--force", "--seed", "0")):  # first build; same seed again: same images
        code, _, err = run_cli("fetch-data", "demo", "--data-root", root, *args)
        assert code == 0 and "warning" not in err, err
    code, _, err = run_cli("fetch-data", "demo", "--data-root", root, "--force", "--seed", "7")
    assert code == 0, err
    warning = err[err.index("warning:"):]
    assert "seed 0 -> 7" in warning
    assert "until their chain runs again, which retrains them" in warning
    assert f"{runs / 'demo-resnet18'} (from stage casia)" in warning
    assert "mine-conv5" not in warning


def test_cli_fetch_demo_runs_dir_is_where_the_runs_are_looked_for(tmp_path, run_cli, monkeypatch):
    """A run made with `chain --runs-dir DIR` is named by `fetch-data demo --runs-dir DIR`, not by the default
    folders; a file as --runs-dir is refused before the build, and a folder that does not exist holds no runs."""
    builds = stand_in_demo_builder(monkeypatch)
    write_runs(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)  # ./runs: absent
    monkeypatch.setenv("GANFP_RUNS", str(tmp_path / "elsewhere"))
    root = str(tmp_path / "data")
    assert run_cli("fetch-data", "demo", "--data-root", root)[0] == 0
    code, _, err = run_cli("fetch-data", "demo", "--data-root", root, "--force", "--seed", "1")
    assert code == 0 and "warning" not in err, err
    code, _, err = run_cli("fetch-data", "demo", "--data-root", root, "--force", "--seed", "2", "--runs-dir", "mine")
    assert code == 0, err
    assert "seed 1 -> 2" in err and "mine/demo-resnet18 (from stage casia)" in err and "mine-conv5" not in err
    code, _, err = run_cli("fetch-data", "demo", "--data-root", root, "--force", "--seed", "3", "--runs-dir", "gone")
    assert code == 0 and "warning" not in err, err
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli("fetch-data", "demo", "--data-root", root, "--force", "--seed", "4", "--runs-dir", "afile")
    assert code == 2 and err == "error: --runs-dir afile: is a file, not a folder\n"
    assert builds == [0, 1, 2, 3]  # refused before any work
    code, _, err = run_cli("fetch-data", "casia", "--runs-dir", "mine", "--data-root", root)
    assert code == 2 and "--runs-dir" in err and "casia is not the demo" in err
    code, _, err = run_cli("fetch-data", "--list", "--runs-dir", "mine", "--data-root", root)
    assert code == 2 and "--runs-dir cannot be used with it" in err


def test_files_put_in_a_dataset_folder_by_hand_are_never_deleted_by_a_fetch(tmp_path, run_cli):
    """A dataset folder without a ready meta.json was replaced, and its files deleted, by the next fetch of another
    archive, which is what the "not ready" message told the user to run. Now that fetch is refused; --from the folder
    itself installs it, --force replaces it."""
    root, archive = tmp_path / "data", _casia_zip(tmp_path)
    by_hand = root / "casia"
    make_casia(by_hand, with_samples=False)
    (by_hand / "notes.txt").write_text("mine")
    code, _, err = run_cli("classify", "casia", "--out", tmp_path / "s.csv", "--data-root", root)
    assert code == 2 and "holds files that ganfp did not install (no ready meta.json)" in err
    assert f"run: ganfp fetch-data casia --from {by_hand} --data-root {root}" in err
    with pytest.raises(InputError, match=rf"{by_hand} holds files that ganfp did not install.*--from {by_hand}"):
        fetch_dataset("casia", root, source=archive)
    assert (by_hand / "notes.txt").read_text() == "mine" and not list(root.glob(".tmp-*"))
    fetch_dataset("casia", root, source=by_hand)
    assert dataset_status("casia", root) == "ready" and (by_hand / "notes.txt").read_text() == "mine"
    (root / "casia" / "meta.json").unlink()
    fetch_dataset("casia", root, source=archive, force=True)
    assert dataset_status("casia", root) == "ready" and not (by_hand / "notes.txt").exists()
    shutil.rmtree(root / "casia")
    (root / "casia").mkdir()  # an empty folder holds nothing to lose
    fetch_dataset("casia", root, source=archive)
    assert dataset_status("casia", root) == "ready"


def test_a_route_that_does_not_exist_is_refused_before_any_work(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(InputError, match="no download route 'ftp'"):
        fetch_dataset("covid-ctset", root, via="ftp")
    with pytest.raises(InputError, match="cannot be downloaded automatically"):
        fetch_dataset("imageclef-gans-2024", root)
    with pytest.raises(InputError, match="--add keeps the ready copy and adds to it, --force replaces it"):
        fetch_dataset("casia", root, source=_casia_zip(tmp_path), add=True, force=True)
    assert not root.exists()


def test_a_failed_fetch_removes_what_it_created_and_nothing_else(tmp_path):
    bad = tmp_path / "not-casia"
    tiny_image(bad / "photos" / "holiday.jpg", 1)
    new_root = tmp_path / "new" / "data"
    with pytest.raises(InputError, match="no CASIA images found"):
        fetch_dataset("casia", new_root, source=bad)
    assert not (tmp_path / "new").exists()  # the data root it made, its lock file, the folder above
    root = tmp_path / "data"
    (root / ".downloads" / "casia").mkdir(parents=True)  # empty, but there before: kept
    (root / ".casia.lock").touch()
    with pytest.raises(InputError, match="no CASIA images found"):
        fetch_dataset("casia", root, source=bad)
    assert sorted(p.name for p in root.iterdir()) == [".casia.lock", ".downloads"]
    assert (root / ".downloads" / "casia").is_dir()


@pytest.mark.skipif(sys.platform == "win32", reason="no advisory file locks on Windows")
def test_a_fetch_that_locks_a_lock_file_a_failed_fetch_removed_gives_way(tmp_path, monkeypatch):
    """A lock file goes with the failed fetch that made it: a fetch that opened it just before must not run beside
    one that locks the new file."""
    import fcntl

    from ganfp.fetch import store

    flock = fcntl.flock

    def removed_meanwhile(fd, op):  # the failed fetch unlinks the file, another creates a new one
        (tmp_path / ".casia.lock").unlink()
        (tmp_path / ".casia.lock").touch()
        return flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", removed_meanwhile)
    with pytest.raises(RuntimeFailure, match="another ganfp process is fetching casia"):
        with store.locked(tmp_path, "casia"):
            pytest.fail("the fetch ran on a lock file no longer in place")


def test_cli_fetch_warns_of_files_it_does_not_read_naming_the_source(tmp_path, run_cli):
    src = tmp_path / "src"
    make_casia(src, with_samples=False)
    (src / "casia" / "CASIA2" / "Tp" / "Tp_D_NRN_S_N_ani00001_ani00002_10003.raw").write_bytes(b"raw pixels")
    code, _, err = run_cli("fetch-data", "casia", "--from", src, "--data-root", tmp_path / "data")
    assert code == 0, err
    assert (f"warning: the data from {src}: 1 file skipped, not in an image format ganfp reads (first: "
            "casia/CASIA2/Tp/Tp_D_NRN_S_N_ani00001_ani00002_10003.raw)") in " ".join(err.split())
    assert ".tmp-" not in err


def test_the_same_archive_added_twice_is_one_source(tmp_path):
    root, archive = tmp_path / "data", _casia_zip(tmp_path)
    fetch_dataset("casia", root, source=archive)
    fetch_dataset("casia", root, source=archive, add=True)
    assert read_meta(root / "casia")["source"] == [f"local:{archive.resolve()}"]


def test_covid_label_lists_skip_resource_forks_and_errors_name_the_source(tmp_path):
    """A `._all.csv` (macOS's resource fork, left beside all.csv on a shared drive) was read as a label list and
    refused the fetch; an error in a real list named the staging folder, gone once the fetch failed."""
    from helpers.layouts import covid_rows, make_covid_flat

    src = tmp_path / "covid"
    make_covid_flat(src, covid_rows(per_patient=2))
    (src / "CSV" / "._all.csv").write_bytes(b"\x00\x05\x16\x07Mac OS X\xff\xfe")
    root = tmp_path / "data"
    fetch_dataset("covid-ctset", root, source=src)
    with open(src / "CSV" / "all.csv", "a") as f:
        f.write("x_patient9_SR_1_IM00001.tif,maybe\n")
    with pytest.raises(InputError) as err:
        fetch_dataset("covid-ctset", root, source=src, force=True)
    assert str(err.value).startswith(f"the data from {src}: CSV/all.csv: class 'maybe'"), err.value


def test_cli_already_ready_says_the_from_data_was_not_imported(tmp_path, run_cli):
    root, archive = tmp_path / "data", _casia_zip(tmp_path)
    assert run_cli("fetch-data", "casia", "--from", archive, "--data-root", root)[0] == 0
    code, _, err = run_cli("fetch-data", "casia", "--from", archive, "--data-root", root)
    assert code == 0 and err == (f"casia is already ready in {root / 'casia'}; --from was not imported: --add adds it "
                                 "to the dataset, --force replaces the dataset with it\n")
    code, out, err = run_cli("fetch-data", "casia", "--from", archive, "--data-root", root, "--json")
    said = f"casia is already ready in {root / 'casia'}; --from was not imported"
    result = json.loads(out)  # --json said only already_ready, which a script takes for "the data I gave is in"
    assert code == 0 and result["already_ready"] and len(result["warnings"]) == 1, out
    assert result["warnings"][0].startswith(said) and said in err, (out, err)


def test_cli_list_reads_a_read_only_data_root(tmp_path, run_cli, monkeypatch):
    """--list only reads: a data root shared read-only (a lab's dataset store) was refused as read-only."""
    root = tmp_path / "data"
    fetch_dataset("casia", root, source=_casia_zip(tmp_path))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == root and mode & os.W_OK
                        else real_access(path, mode, **kw))
    code, out, err = run_cli("fetch-data", "--list", "casia", "--json", "--data-root", root)
    assert code == 0 and json.loads(out)["datasets"][0]["status"] == "ready", err
    code, _, err = run_cli("fetch-data", "casia", "--data-root", root)
    assert code == 2 and err == f"error: data root {root}: folder is read-only (no permission to write it)\n"


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need a privilege on Windows")
def test_a_dataset_folder_linked_in_from_elsewhere_is_replaced_by_its_link_only(tmp_path):
    """A user's data linked in as `<root>/casia` and installed with --from that link: the link was set aside and
    never removed (rmtree refuses links), a `.old-casia-*` left in the data root for good; its target stays."""
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "data"
    make_casia(elsewhere, with_samples=False)
    root.mkdir()
    (root / "casia").symlink_to(elsewhere, target_is_directory=True)
    fetch_dataset("casia", root, source=root / "casia")
    assert sorted(p.name for p in root.iterdir()) == [".casia.lock", "casia"] and not (root / "casia").is_symlink()
    assert dataset_status("casia", root) == "ready" and any(elsewhere.rglob("*.jpg"))


def test_a_folder_whose_copy_grows_too_long_in_the_data_root_is_one_short_input_error(tmp_path, run_cli):
    """The copy's path is the data root's plus a staging folder's name: a deep folder that exists where it is can be
    too long there. It was exit 1 with an OSError quoting the whole path (thousands of characters)."""
    src = tmp_path / "in"
    deep = src.joinpath(*(["d" * 200] * 19))  # about 3,800 characters: fits where it is
    make_gans_dev(deep)
    root = tmp_path / ("r" * 250)
    code, _, err = run_cli("fetch-data", "imageclef-gans-2023", "--from", src, "--data-root", root)
    assert code == 2, err
    line = err.strip()
    assert "\n" not in line and len(line) < 400, line
    assert line.startswith(f"error: {src}: 'dddd") and "use a shorter --data-root" in line
    assert dataset_status("imageclef-gans-2023", root) == "absent" and not list(root.glob(".tmp-*"))

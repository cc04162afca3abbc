"""The Python entry points the docs show refuse bad arguments with one InputError naming the argument.

From a notebook nothing checks arguments before the library does (the CLI's typer callbacks are not
there), so a `k=2.5`, a `"5"`, a folder name where a manifest belongs or a chain's name where its
spec belongs used to fail deep inside torch, numpy or scikit-learn (TypeError, AttributeError), or,
for `Recipe(..., k=0)` and `Recipe("ensemble", "std32")`, silently scored something else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import pytest
from PIL import Image

from ganfp.attribution.methods import TrainerSettings
from ganfp.attribution.run import AttributeConfig, ClusterConfig, attribute, cluster
from ganfp.chain import load_chain, plan_chain, run_chain, stage_configs, train_stage
from ganfp.classify import classify
from ganfp.data.cache import load_images
from ganfp.data.decode import decode_image, image_header
from ganfp.data.demo import build_demo
from ganfp.data.generated import generated_manifest, image_headers, native_image_size
from ganfp.data.real import read_real
from ganfp.data.zoo import write_split
from ganfp.errors import InputError
from ganfp.evaluation import evaluate_classes, evaluate_clusters, evaluate_files
from ganfp.fetch import dataset_status, fetch_dataset
from ganfp.membership import MembershipScorer, Recipe, ScoringSetup, ShiftedNCC, SSIMDistance, fuse
from ganfp.plots import plot_report
from ganfp.submission import read_ids, read_labels, read_predictions, validate_submission, write_scores
from ganfp.train import StageConfig, run_stage


def _images(folder: Path, n: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(folder / f"im{seed}_{i:02d}.png")
    return folder


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    real = _images(root / "real", 6, 0)
    _images(root / "generated", 12, 1)
    _images(root / "classes" / "a", 6, 2)
    _images(root / "classes" / "b", 6, 3)
    ids = sorted(p.stem for p in real.glob("*.png"))
    (root / "labels.csv").write_text("id,label\n" + "".join(f"{i},{n % 2}\n" for n, i in enumerate(ids)))
    (root / "scores.csv").write_text("id,score\n" + "".join(f"{i},{n / 10}\n" for n, i in enumerate(ids)))
    return root


def _scorer(sets, **setup):
    return MembershipScorer(read_real(str(sets / "real")), generated_manifest(sets / "generated"),
                            ScoringSetup(**{"image_size": 16, **setup}))


SCORER_CASES = {
    "k=0": (lambda s: _scorer(s).score(Recipe("knn", "std16", 0)), r"Recipe k=0: must be at least 1"),
    "k=-1": (lambda s: _scorer(s).score(Recipe("knn", "std16", -1)), r"Recipe k=-1: must be at least 1"),
    "k=2.5": (lambda s: _scorer(s).score(Recipe("knn", "std16", 2.5)), r"Recipe k=2.5: must be a whole number"),
    "k='5'": (lambda s: _scorer(s).score(Recipe("knn", "std16", "5")), r"Recipe k='5': must be a whole number"),
    "features ignored": (lambda s: _scorer(s).score(Recipe("ensemble", "std16")),
                         r"'ensemble' does not read features='std16'; features is read by knn"),
    "k ignored": (lambda s: _scorer(s).score(Recipe("retrieval", "std16", 3)), r"'retrieval' does not read k=3"),
    "recipe as text": (lambda s: _scorer(s).score("knn"), r"recipe='knn': must be a Recipe"),
    "real as folder": (lambda s: MembershipScorer(str(s / "real"), None, ScoringSetup(16)),
                       r"MembershipScorer real=.*must be a Manifest, as ganfp.data.real.read_real"),
    "generated as folder": (lambda s: MembershipScorer(read_real(str(s / "real")), str(s / "generated"), ScoringSetup(16)),
                            r"MembershipScorer generated=.*must be a Manifest"),
    "no setup": (lambda s: MembershipScorer(read_real(str(s / "real")), None, None), r"setup=None: must be a ScoringSetup"),
    "image_size=0": (lambda s: ScoringSetup(image_size=0), r"ScoringSetup image_size=0: must be at least 8"),
    "image_size=5": (lambda s: ScoringSetup(image_size=5), r"ScoringSetup image_size=5: must be at least 8"),
    "image_size=None": (lambda s: _scorer(s, image_size=None).score(Recipe("knn")),
                        r"image_size=None: the membership scorers compare images at one size"),
    "batch_size=0": (lambda s: ScoringSetup(16, batch_size=0), r"ScoringSetup batch_size=0: must be at least 1"),
    "device=3": (lambda s: ScoringSetup(16, device=3), r"ScoringSetup device=3: must be a torch.device or a name"),
    "device unknown": (lambda s: ScoringSetup(16, device="gpu"), r"gpu: not a device"),
    "progress not callable": (lambda s: ScoringSetup(16, progress=5), r"progress=5: must be callable"),
}


def _classify(sets, **options):
    return classify(str(sets / "real"), sets / "out.csv", generated=str(sets / "generated"), **options)


CLASSIFY_CASES = {
    "k='5'": ({"method": "knn", "k": "5"}, r"k='5': must be a whole number"),
    "k=2.5": ({"method": "knn", "k": 2.5}, r"k=2.5: must be a whole number"),
    "used_fraction='0.5'": ({"used_fraction": "0.5"}, r"used_fraction='0.5': must be a finite number"),
    "threshold='x'": ({"threshold": "x"}, r"threshold='x': must be a finite number"),
    "image_size='64'": ({"image_size": "64"}, r"image_size='64': must be a whole number"),
    "batch_size=0": ({"batch_size": 0}, r"batch_size=0: must be at least 1"),
    "seed=-1": ({"seed": -1}, r"seed=-1: must be at least 0"),
    "report_n=0": ({"report_n": 0}, r"report_n=0: must be at least 1"),
}

ATTRIBUTE_CASES = {
    "k='5'": (lambda: AttributeConfig("u", "o.csv", method="knn", k="5"), r"k='5': must be a whole number"),
    "k=2.5": (lambda: AttributeConfig("u", "o.csv", method="knn", k=2.5), r"k=2.5: must be a whole number"),
    "batch_size='8'": (lambda: AttributeConfig("u", "o.csv", batch_size="8"), r"batch_size='8': must be a whole"),
    "image_size=64.0": (lambda: AttributeConfig("u", "o.csv", image_size=64.0), r"image_size=64.0: must be a whole"),
    "seed=-1": (lambda: AttributeConfig("u", "o.csv", seed=-1), r"seed=-1: must be at least 0"),
    "clusters=2.5": (lambda: ClusterConfig("u", "o.csv", clusters=2.5), r"clusters=2.5: must be a whole number"),
    "clusters='3'": (lambda: ClusterConfig("u", "o.csv", clusters="3"), r"clusters='3': must be a whole number"),
    "clusters=1": (lambda: ClusterConfig("u", "o.csv", clusters=1), r"--clusters 1: must be at least 2 \(or auto\)"),
    "cluster seed=-1": (lambda: ClusterConfig("u", "o.csv", clusters=2, seed=-1), r"seed=-1: must be at least 0"),
}


@pytest.mark.parametrize("case", list(SCORER_CASES))
def test_membership_scorer_refuses(case, sets):
    call, message = SCORER_CASES[case]
    with pytest.raises(InputError, match=message):
        call(sets)


def test_scoring_setup_takes_a_device_name(sets):
    scores = _scorer(sets, device="cpu").score(Recipe("knn", "std16", 3))
    assert scores.shape == (6,) and np.isfinite(scores).all()


@pytest.mark.parametrize("case", list(CLASSIFY_CASES))
def test_classify_refuses(case, sets):
    options, message = CLASSIFY_CASES[case]
    with pytest.raises(InputError, match=message):
        _classify(sets, **options)
    assert not (sets / "out.csv").exists()


@pytest.mark.parametrize("case", list(ATTRIBUTE_CASES))
def test_attribution_configs_refuse(case):
    make, message = ATTRIBUTE_CASES[case]
    with pytest.raises(InputError, match=message):
        make().validate()


@pytest.mark.parametrize("option, value", [("used_fraction", "0.5"), ("threshold", "x"), ("threshold", float("nan"))])
def test_evaluate_files_refuses_a_rule_that_is_not_a_number(option, value, sets):
    with pytest.raises(InputError, match=f"{option}=.*must be a finite number"):
        evaluate_files(sets / "scores.csv", sets / "labels.csv", **{option: value})


def test_run_chain_wants_a_spec_not_a_name(tmp_path):
    with pytest.raises(InputError, match=r"chain spec='demo': must be a ChainSpec, as load_chain"):
        run_chain("demo", "conv5", tmp_path / "runs")


def test_an_unknown_override_names_the_stage_settings():
    with pytest.raises(InputError, match=r"overrides epoch: not stage settings; choose among: .*epochs"):
        stage_configs(load_chain("demo"), "conv5", {"epoch": 1})


@pytest.mark.parametrize("option", ["out", "scores_path", "report"])
def test_classify_refuses_an_output_over_an_input_image(option, sets):
    image = sets / "real" / "im0_00.png"
    before = image.read_bytes()
    outputs = {"out": sets / "out.csv", option: image}
    with pytest.raises(InputError, match=rf"{option} .*im0_00.png: is an image; write the {option} file elsewhere"):
        classify(str(sets / "real"), outputs.pop("out"), generated=str(sets / "generated"), image_size=16, **outputs)
    assert image.read_bytes() == before and not (sets / "out.csv").exists()


def test_classify_refuses_two_outputs_on_one_file(sets):
    with pytest.raises(InputError, match=r"scores_path .*out.csv: the same file as out"):
        _classify(sets, scores_path=sets / "out.csv")


def test_attribute_refuses_an_output_over_an_input_image(sets):
    image = sets / "generated" / "im1_00.png"
    before = image.read_bytes()
    cfg = ClusterConfig(str(sets / "generated"), str(image), clusters=2)
    with pytest.raises(InputError, match=r"out .*im1_00.png: is an image"):
        cluster(cfg)
    assert image.read_bytes() == before


def test_classify_refuses_an_output_over_its_ids_file(sets):
    ids = sets / "ids.txt"
    ids.write_text("".join(f"{p.stem}\n" for p in sorted((sets / "real").glob("*.png"))))
    with pytest.raises(InputError, match=r"out .*ids.txt: would overwrite the input .*ids.txt"):
        classify(str(sets / "real"), ids, generated=str(sets / "generated"), ids_path=ids)
    assert ids.read_text().count("\n") == 6


def test_classify_takes_a_torch_device(sets):
    result = _classify(sets, device=torch.device("cpu"), image_size=16)
    assert result.summary["device"] == "cpu" and (sets / "out.csv").exists()
    (sets / "out.csv").unlink()


@pytest.mark.parametrize("device", [0, ["cpu"], 1.5])
def test_a_device_that_is_neither_a_name_nor_a_torch_device_is_refused(device, sets):
    with pytest.raises(InputError, match=r"device=.*: must be a torch.device or a name \(auto, cpu, cuda\)"):
        _classify(sets, device=device)
    with pytest.raises(InputError, match=r"device=.*: must be a torch.device or a name"):
        ClusterConfig("u", "o.csv", clusters=2, device=device).validate()
    with pytest.raises(InputError, match=r"overrides device=.*: must be a torch.device or a name"):
        stage_configs(load_chain("demo"), "conv5", {"device": device})
    assert not (sets / "out.csv").exists()


def test_attribution_and_the_chain_take_a_torch_device():
    AttributeConfig("u", "o.csv", device=torch.device("cpu")).validate()
    configs = stage_configs(load_chain("demo"), "conv5", {"device": torch.device("cpu")})
    assert {cfg.device for cfg in configs} == {"cpu"}


PATH_CASES = {
    "classify real=None": (lambda s: classify(None, s / "out.csv"), "real=None"),
    "classify real=[...]": (lambda s: classify([str(s / "real")], s / "out.csv"), r"real=\[.*"),
    "classify out=None": (lambda s: classify(str(s / "real"), None), "out=None"),
    "classify generated=[...]": (lambda s: classify(str(s / "real"), s / "out.csv", generated=[str(s / "generated")]),
                                 r"generated=\[.*"),
    "classify scores_path=1": (lambda s: _classify(s, scores_path=1), "scores_path=1"),
    "read_real": (lambda s: read_real(None), "spec=None"),
    "generated_manifest": (lambda s: generated_manifest(None), "path=None"),
    "evaluate_files": (lambda s: evaluate_files([s / "scores.csv"], s / "labels.csv"), r"preds_path=\[.*"),
    "evaluate_classes": (lambda s: evaluate_classes(s / "scores.csv", None), "labels_path=None"),
    "write_scores": (lambda s: write_scores(None, ["a"], [0.5]), "path=None"),
    "read_predictions": (lambda s: read_predictions(None), "path=None"),
    "build_demo": (lambda s: build_demo(None), "target=None"),
    "load_chain": (lambda s: load_chain(None), "name_or_path=None"),
    "run_chain": (lambda s: run_chain(load_chain("demo"), "conv5", None), "runs_root=None"),
    "cluster images": (lambda s: cluster(ClusterConfig(None, str(s / "c.csv"), clusters=2)), "images=None"),
    "attribute train": (lambda s: AttributeConfig("u", "o.csv", train=["t"]).validate(), r"train=\['t'\]"),
}


@pytest.mark.parametrize("case", list(PATH_CASES))
def test_a_path_argument_that_is_no_path_is_refused(case, sets):
    call, name = PATH_CASES[case]
    with pytest.raises(InputError, match=rf"{name}: must be a path \(a str or a pathlib.Path\), not "):
        call(sets)
    assert not (sets / "out.csv").exists()


def _stage(s, out_dir=None, data_root=None):
    return train_stage(StageConfig(name="one", dataset=str(s / "real"), model="conv5", image_size=16, epochs=1),
                       s / "stage" if out_dir is None else out_dir, data_root=data_root)


# each path argument of the public API, given as `e` (an empty path) where the others are fine
EMPTY_PATH_CASES = {
    "classify real": (lambda s, e: classify(e, s / "out.csv"), "real"),
    "classify out": (lambda s, e: classify(str(s / "real"), e), "out"),
    "classify generated": (lambda s, e: classify(str(s / "real"), s / "out.csv", generated=e), "generated"),
    **{f"classify {option}": ((lambda option: lambda s, e: _classify(s, **{option: e}))(option), option)
       for option in ("checkpoint", "scores_path", "ids_path", "calibrate_on", "data_root", "runs_dir",
                      "report")},
    "read_real spec": (lambda s, e: read_real(e), "spec"),
    "read_real generated": (lambda s, e: read_real(str(s / "real"), generated=e), "generated"),
    "generated_manifest": (lambda s, e: generated_manifest(e), "path"),
    "ScoringSetup data_root": (lambda s, e: ScoringSetup(16, data_root=e), "ScoringSetup data_root"),
    "ScoringSetup checkpoint": (lambda s, e: ScoringSetup(16, checkpoint=e), "ScoringSetup checkpoint"),
    "evaluate_files preds_path": (lambda s, e: evaluate_files(e, s / "labels.csv"), "preds_path"),
    "evaluate_files labels_path": (lambda s, e: evaluate_files(s / "scores.csv", e), "labels_path"),
    "evaluate_classes": (lambda s, e: evaluate_classes(e, s / "labels.csv"), "preds_path"),
    "evaluate_clusters": (lambda s, e: evaluate_clusters(s / "scores.csv", e), "labels_path"),
    "plot_report": (lambda s, e: plot_report(evaluate_files(s / "scores.csv", s / "labels.csv"), e), "out_path"),
    "read_ids": (lambda s, e: read_ids(e), "path"),
    "read_predictions": (lambda s, e: read_predictions(e), "path"),
    "write_scores": (lambda s, e: write_scores(e, ["a"], [0.5]), "path"),
    "load_chain": (lambda s, e: load_chain(e), "name_or_path"),
    "plan_chain runs_root": (lambda s, e: plan_chain(load_chain("demo"), "conv5", e), "runs_root"),
    "plan_chain data_root": (lambda s, e: plan_chain(load_chain("demo"), "conv5", s / "runs", e), "data_root"),
    "run_chain runs_root": (lambda s, e: run_chain(load_chain("demo"), "conv5", e), "runs_root"),
    "run_chain data_root": (lambda s, e: run_chain(load_chain("demo"), "conv5", s / "runs", e), "data_root"),
    "train_stage out_dir": (lambda s, e: _stage(s, out_dir=e), "out_dir"),
    "train_stage data_root": (lambda s, e: _stage(s, data_root=e), "data_root"),
    "attribute unknown": (lambda s, e: AttributeConfig(e, str(s / "o.csv")).validate(), "unknown"),
    "attribute out": (lambda s, e: AttributeConfig(str(s / "real"), e).validate(), "out"),
    **{f"attribute {option}": ((lambda option: lambda s, e: AttributeConfig(str(s / "real"), str(s / "o.csv"),
                                                                            **{option: e}).validate())(option), option)
       for option in ("train", "data_root", "report", "checkpoint")},
    "attribute runs_dir": (lambda s, e: AttributeConfig(str(s / "real"), str(s / "o.csv"),
                                                        trainer=TrainerSettings(runs_dir=e)).validate(), "runs_dir"),
    "cluster images": (lambda s, e: cluster(ClusterConfig(e, str(s / "c.csv"), clusters=2)), "images"),
    "cluster out": (lambda s, e: cluster(ClusterConfig(str(s / "generated"), e, clusters=2)), "out"),
    "build_demo": (lambda s, e: build_demo(e), "target"),
    "fetch_dataset data_root": (lambda s, e: fetch_dataset("demo", e), "data_root"),
    "fetch_dataset source": (lambda s, e: fetch_dataset("casia", s / "data", source=e), "source"),
    "fetch_dataset sources": (lambda s, e: fetch_dataset("casia", s / "data", source=[s / "real", e]), r"source\[1\]"),
    "dataset_status": (lambda s, e: dataset_status("casia", e), "data_root"),
}


@pytest.mark.parametrize("empty", ["", "  "], ids=["empty", "spaces"])
@pytest.mark.parametrize("case", list(EMPTY_PATH_CASES))
def test_an_empty_path_argument_is_refused_by_name_before_any_work(case, empty, sets, tmp_path, monkeypatch):
    """The CLI refuses `""` by name (a `"$DIR"` with DIR unset), but from Python `classify(real="")` scored the
    current folder, `generated=""` counted as not given and `load_chain("")` looked for a chain named "": each path
    argument of the public API refuses an empty one (or spaces alone), naming the argument, before any work."""
    call, name = EMPTY_PATH_CASES[case]
    monkeypatch.chdir(tmp_path)  # what an empty path would name
    before = sorted(p.name for p in sets.iterdir())
    with pytest.raises(InputError, match=rf"^{name}='{empty}': an empty path"):
        call(sets, empty)
    assert sorted(p.name for p in sets.iterdir()) == before and not any(tmp_path.iterdir())  # nothing written


def test_paths_may_be_pathlib_paths(sets, tmp_path):
    result = classify(sets / "real", tmp_path / "out.csv", generated=sets / "generated", scores_path=tmp_path / "s.csv",
                      image_size=16)
    assert len(result.ids) == 6 and (tmp_path / "s.csv").exists()
    report = evaluate_files(tmp_path / "s.csv", sets / "labels.csv")
    assert report.n == 6
    groups = cluster(ClusterConfig(sets / "generated", tmp_path / "c.csv", clusters=2, image_size=16))
    assert groups.k == 2 and (tmp_path / "c.csv").exists()


def test_a_chain_file_may_start_with_a_tilde(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "mine.toml").write_text((Path(__file__).parents[1] / "src/ganfp/chains/demo.toml").read_text())
    assert load_chain("~/mine.toml").name == load_chain("demo").name


def test_a_folder_written_under_the_home_folder_is_written_there_whole(sets, tmp_path, monkeypatch):
    """`train_stage(cfg, "~/stage")` and `run_chain(..., "~/runs")` wrote their weights under the home folder (the
    atomic writes expand `~`) and the rest in a folder named `~` in the current folder, then failed with a
    FileNotFoundError; `write_split(..., "~/split")` (and `build_demo`) built in `./~`, its temporary folder at home."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    summary = train_stage(_one(sets), "~/stage")
    assert summary.status == "trained" and (home / "stage" / "model.safetensors").is_file()
    chain = tmp_path / "tiny.toml"
    chain.write_text(f'name = "tiny"\n[[stages]]\nname = "one"\ndataset = "folder:{sets / "classes"}"\n')
    assert plan_chain(load_chain(chain), "conv5", "~/runs").run_dir == home / "runs" / "tiny-conv5"
    write_split(_split(), "~/split", "dev")
    assert (home / "split" / "used").is_dir() and not any(p.name.startswith(".split") for p in home.iterdir())
    assert not any(work.iterdir())


def test_files_written_under_the_home_folder_are_read_there(sets, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    truth = read_labels(sets / "labels.csv")
    write_scores("~/scores.csv", truth.ids, np.linspace(0, 1, len(truth.ids)))
    (tmp_path / "labels.csv").write_bytes((sets / "labels.csv").read_bytes())
    assert evaluate_files("~/scores.csv", "~/labels.csv").n == len(truth.ids)
    assert read_predictions("~/scores.csv").ids == truth.ids


DATA_ROOT_FILE_CASES = {
    "plan_chain": lambda s, f: plan_chain(load_chain("demo"), "conv5", s / "runs", f),
    "train_stage": lambda s, f: train_stage(StageConfig(dataset="demo:casia", model="conv5", image_size=16),
                                            s / "stage", data_root=f),
    "attribute": lambda s, f: attribute(AttributeConfig("demo:attribution-2025", str(s / "out.csv"), data_root=f)),
    "classify": lambda s, f: classify("demo:gans-dev", s / "out.csv", data_root=f),
}


@pytest.mark.parametrize("case", list(DATA_ROOT_FILE_CASES))
def test_a_data_root_that_is_a_file_is_refused_by_name(case, sets):
    """The command refuses `--data-root FILE` in its option; from Python it was a RuntimeFailure ("cannot build the
    demo data: File exists"), once the stages or options were checked."""
    with pytest.raises(InputError, match=r"^data root .*labels.csv: is a file, not a folder$"):
        DATA_ROOT_FILE_CASES[case](sets, str(sets / "labels.csv"))
    with pytest.raises(InputError, match=r"^data root .*labels.csv/sub: .*labels.csv is a file, not a folder$"):
        DATA_ROOT_FILE_CASES[case](sets, str(sets / "labels.csv" / "sub"))
    assert not (sets / "out.csv").exists() and not (sets / "stage").exists() and not (sets / "runs").exists()


def test_dataset_status_reads_a_data_root_under_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data" / "casia").mkdir(parents=True)
    (tmp_path / "data" / "casia" / "meta.json").write_text('{"status": "ready"}')
    assert dataset_status("casia", "~/data") == "ready"
    assert dataset_status("casia", Path("~/data")) == "ready"
    monkeypatch.setenv("GANFP_DATA", str(tmp_path / "data"))
    assert dataset_status("casia") == "ready"


@pytest.mark.parametrize("name", ["covid", "", None])
def test_dataset_status_refuses_an_unknown_dataset(name, tmp_path):
    with pytest.raises(InputError, match=r"unknown dataset .*; choose one of: casia, covid-ctset"):
        dataset_status(name, tmp_path)


READING_CASES = {
    "native_image_size()": (lambda s: native_image_size(), r"native_image_size\(\): give the Manifests"),
    "native_image_size(folder)": (lambda s: native_image_size(str(s / "real")),
                                  r"native_image_size argument 1='.*real': must be a Manifest, as .*read_real"),
    "image_headers(None)": (lambda s: image_headers(None), r"image_headers argument 1=None: must be a Manifest"),
    "decode_image size=0": (lambda s: decode_image(str(s / "real" / "im0_00.png"), 0), r"size=0: must be at least 1"),
    "decode_image size=2.5": (lambda s: decode_image(str(s / "real" / "im0_00.png"), 2.5),
                              r"size=2.5: must be a whole"),
    "decode_image path=None": (lambda s: decode_image(None, 16), r"path=None: must be a path"),
    "image_header path=None": (lambda s: image_header(None), r"path=None: must be a path"),
    "load_images folder": (lambda s: load_images(str(s / "real"), 16, data_root=s / "data"),
                           r"manifest='.*real': must be a Manifest"),
    "load_images image_size=0": (lambda s: load_images(read_real(str(s / "real")), 0, data_root=s / "data"),
                                 r"image_size=0: must be at least 1"),
}


def test_the_reading_helpers_take_paths(sets):
    image = sets / "real" / "im0_00.png"
    assert decode_image(image, 8).shape == (8, 8) and image_header(image).size == (16, 16)
    assert native_image_size(read_real(sets / "real"), generated_manifest(sets / "generated")) == 16


NAME_CASES = {
    "classify features=32": (lambda s: _classify(s, method="knn", features=32), r"features=32: must be text \(a str\)"),
    "attribute features=32": (lambda s: AttributeConfig("u", "o.csv", features=32).validate(), r"features=32: must be"),
    "attribute columns=1": (lambda s: AttributeConfig("u", "o.csv", columns=1).validate(), r"columns=1: must be text"),
    "cluster features=[...]": (lambda s: ClusterConfig("u", "o.csv", features=["pixels32"]).validate(),
                               r"features=\['pixels32'\]: must be text \(a str\), not list"),
}


@pytest.mark.parametrize("used_fraction", [0, 1, 0.0, 1.0, -0.5, 2])
def test_evaluate_files_refuses_a_used_fraction_that_labels_all_alike(used_fraction, sets):
    with pytest.raises(InputError, match=rf"used_fraction={used_fraction:g}: must be between 0 and 1 \(0 < q < 1\)"):
        evaluate_files(sets / "scores.csv", sets / "labels.csv", used_fraction=used_fraction)
    assert evaluate_files(sets / "scores.csv", sets / "labels.csv", used_fraction=0.5).n == 6


def _split():
    from ganfp.data.zoo import build_split

    return build_split("pcagmm", 0, used=4, not_used=4, generated=6, quick=True)


KIND_CASES = {
    "ScoringSetup data_root": (lambda s: ScoringSetup(16, data_root=["d"]),
                               r"ScoringSetup data_root=\['d'\]: must be a"),
    "ScoringSetup checkpoint": (lambda s: ScoringSetup(16, checkpoint=1), r"ScoringSetup checkpoint=1: must be a path"),
    "classify reading": (lambda s: _classify(s, reading="lung"), r"reading='lung': must be a MedicalReading"),
    "classify progress": (lambda s: _classify(s, progress=5), r"^progress=5: must be callable"),
    "attribute trainer": (lambda s: AttributeConfig("u", "o.csv", trainer=None).validate(),
                          r"trainer=None: must be a TrainerSettings"),
    "attribute use_real": (lambda s: AttributeConfig("u", "o.csv", use_real="no").validate(),
                           r"use_real='no': must be True or False"),
    "write_split folder": (lambda s: write_split(_split(), None, "dev"), r"folder=None: must be a path"),
    "write_split split": (lambda s: write_split(None, s / "split", "dev"), r"split=None: must be a MembershipSplit"),
    "plot_report report": (lambda s: plot_report(None, s / "x.png"), r"report=None: must be an EvaluationReport"),
    "plot_report out_path": (lambda s: plot_report(evaluate_files(s / "scores.csv", s / "labels.csv"), None),
                             r"out_path=None: must be a path"),
    "stage_configs overrides": (lambda s: stage_configs(load_chain("demo"), "conv5", ["epochs"]),
                                r"overrides=\['epochs'\]: must be a dict of stage settings"),
    "train_stage cfg": (lambda s: train_stage(None, s / "stage"), r"cfg=None: must be a StageConfig"),
    "train_stage out_dir": (lambda s: train_stage(StageConfig(dataset="demo:casia"), None), r"out_dir=None: must be"),
    "run_stage cfg": (lambda s: run_stage({"epochs": 1}, s / "stage"), r"cfg=\{'epochs': 1\}: must be a StageConfig"),
    "train_stage observer": (lambda s: train_stage(_one(s), s / "stage", observer=3),
                             r"^observer=3: must be a function, called as observer\(event, data\), or None$"),
    "train_stage resume": (lambda s: train_stage(_one(s), s / "stage", resume="no"),
                           r"^resume='no': must be True or False, not str$"),
    "train_stage force": (lambda s: train_stage(_one(s), s / "stage", force=1), r"^force=1: must be True or False"),
    "run_stage observer": (lambda s: run_stage(_one(s), s / "stage", observer=[]),
                           r"^observer=\[\]: must be a function"),
    "run_stage resume": (lambda s: run_stage(_one(s), s / "stage", resume=None),
                         r"^resume=None: must be True or False"),
    "run_chain observer_for": (lambda s: run_chain(load_chain("demo"), "conv5", s / "runs", observer_for=3),
                               r"^observer_for=3: must be a function, called as observer_for\(stage_config\)"),
    "train_stage extra key": (lambda s: train_stage(StageConfig(**{**vars(_one(s)), "extra": {1: 2}}), s / "stage"),
                              r"^stage one: extra: expected a table \(of named options\), got \{1: 2\}$"),
    "stage_configs override key": (lambda s: stage_configs(load_chain("demo"), "conv5", {1: 5}),
                                   r"^overrides 1: not stage settings; choose among: augment, "),
    "attribute cfg": (lambda s: attribute(None), r"^cfg=None: attribute\(\) takes an AttributeConfig"),
    "attribute a ClusterConfig": (lambda s: attribute(ClusterConfig(str(s / "generated"), str(s / "out.csv"))),
                                  r"attribute\(\) takes an AttributeConfig .*\(cluster\(\) takes a ClusterConfig\)$"),
    "cluster an AttributeConfig": (lambda s: cluster(AttributeConfig(str(s / "generated"), str(s / "out.csv"))),
                                   r"cluster\(\) takes a ClusterConfig .*\(attribute\(\) takes an AttributeConfig\)$"),
    "attribute message": (lambda s: attribute(AttributeConfig(str(s / "generated"), str(s / "out.csv")), message=None),
                          r"^message=None: must be a function, called as message\(text\)$"),
    "cluster message": (lambda s: cluster(ClusterConfig(str(s / "generated"), str(s / "out.csv"), clusters=2),
                                          message="x"), r"^message='x': must be a function"),
    "attribute trainer epochs": (lambda s: AttributeConfig("u", "o.csv", method="cnn",
                                                           trainer=TrainerSettings(epochs="1")).validate(),
                                 r"^epochs='1': must be a whole number, not str$"),
    "attribute trainer model": (lambda s: AttributeConfig("u", "o.csv", method="cnn",
                                                          trainer=TrainerSettings(model=5)).validate(),
                                r"^model=5: must be text \(a str\), not int$"),
}


def _one(s) -> StageConfig:
    """A stage the trainer could train (two labelled classes), so an argument it refuses is refused before the work."""
    return StageConfig(name="one", dataset=f"folder:{s / 'classes'}", model="conv5", image_size=16, epochs=1,
                       batch_size=4, device="cpu")


WRONG_KIND_CASES = READING_CASES | NAME_CASES | KIND_CASES


@pytest.mark.parametrize("case", list(WRONG_KIND_CASES))
def test_an_argument_of_the_wrong_kind_is_refused(case, sets):
    call, message = WRONG_KIND_CASES[case]
    with pytest.raises(InputError, match=message):
        call(sets)
    assert not (sets / "out.csv").exists() and not (sets / "stage").exists() and not (sets / "runs").exists()


FETCH_CASES = {
    "source=123": ({"source": 123}, r"source=123: must be a path or a list of paths, not int"),
    "source=[None]": ({"source": [None]}, r"source\[0\]=None: must be a path"),
    "via=1": ({"via": 1}, r"via=1: must be text \(a str\)"),
    "data_root=[...]": ({"data_root": ["d"]}, r"data_root=\['d'\]: must be a path"),
}


@pytest.mark.parametrize("case", list(FETCH_CASES))
def test_fetch_dataset_refuses_an_argument_of_the_wrong_kind(case, tmp_path):
    options, message = FETCH_CASES[case]
    with pytest.raises(InputError, match=message):
        fetch_dataset("casia", **{"data_root": tmp_path / "data", **options})
    assert not (tmp_path / "data").exists()


def test_the_submission_readers_refuse_what_is_no_file(sets):
    with pytest.raises(InputError, match=r"path=None: must be a path"):
        read_ids(None)
    with pytest.raises(InputError, match=r"path_or_lines=1: must be a path or the file's lines"):
        validate_submission(1, ["a"])


def test_a_seed_beyond_numpys_range_is_refused_before_any_work(sets):
    with pytest.raises(InputError, match=r"seed=1099511627776: must be at most 4294967295"):
        _classify(sets, seed=2**40)
    with pytest.raises(InputError, match=r"ScoringSetup seed=1099511627776: must be at most 4294967295"):
        ScoringSetup(16, seed=2**40)
    assert not (sets / "out.csv").exists()


def test_numpy_numbers_are_taken_as_pythons(sets, tmp_path):
    """A notebook's `np.int64(16)` image size wrote a cache file numpy could not read back (a ValueError from `ast`),
    and a numpy k or seed made the summary, the CLI's --json, unserialisable."""
    result = classify(sets / "real", tmp_path / "out.csv", generated=sets / "generated", method="knn", k=np.int64(3),
                      image_size=np.int64(16), seed=np.int64(1), used_fraction=np.float32(0.5), data_root=tmp_path)
    plain = classify(sets / "real", tmp_path / "plain.csv", generated=sets / "generated", method="knn", k=3,
                     image_size=16, seed=1, used_fraction=0.5, data_root=tmp_path)
    assert json.loads(json.dumps(result.summary))["k"] == 3
    np.testing.assert_array_equal(result.score, plain.score)
    images = load_images(read_real(sets / "real"), np.int64(12), data_root=tmp_path)
    assert images.images.shape[1:] == (12, 12)


def test_numpy_numbers_in_a_config_become_pythons():
    groups = ClusterConfig("u", "o.csv", clusters=np.int64(3), image_size=np.int64(32), seed=np.uint32(1))
    assert [type(v) for v in (groups.clusters, groups.image_size, groups.seed)] == [int, int, int]
    assert type(AttributeConfig("u", "o.csv", method="knn", k=np.int64(3)).k) is int
    assert type(TrainerSettings(epochs=np.int64(2), lr=np.float32(0.5)).lr) is float
    assert type(Recipe("knn", "std16", np.int64(3)).k) is int and type(ScoringSetup(np.int64(16)).image_size) is int


def test_a_stage_takes_numpy_numbers_and_a_torch_device():
    """Refused as "expected an integer" / "a string"; the chain's overrides took a torch.device already."""
    numpy_cfg = StageConfig(image_size=np.int64(16), epochs=np.int64(1), lr=np.float64(0.01), device=torch.device("cpu"))
    numpy_cfg.validate()
    plain_cfg = StageConfig(image_size=16, epochs=1, lr=0.01, device="cpu")
    assert numpy_cfg == plain_cfg and numpy_cfg.digest() == plain_cfg.digest()


def test_a_stage_takes_its_dataset_and_init_as_paths(tmp_path):
    """A folder given as a Path was refused ("expected a string"), though every other config takes one."""
    folder, weights = tmp_path / "scans", tmp_path / "w.safetensors"
    as_paths = StageConfig(dataset=folder, init=weights)
    as_text = StageConfig(dataset=str(folder), init=str(weights))
    assert as_paths == as_text and as_paths.digest() == as_text.digest()
    assert [f for f, _ in as_paths.problems()] == [f for f, _ in as_text.problems()]  # checked as folders


def test_a_classify_result_is_a_dict_as_the_other_results_are(sets, tmp_path):
    result = classify(sets / "real", tmp_path / "out.csv", generated=sets / "generated", image_size=16)
    assert json.loads(json.dumps(result.to_dict())) == result.summary


def test_each_result_keeps_the_warnings_its_call_logged(sets, tmp_path):
    """A file skipped as not an image is printed as it is logged and is in `--json`'s `warnings`, but from Python it
    was in no result (`ClassifyResult.to_dict()`, documented as what --json prints, `AttributionResult.warnings`,
    `ClusterResult.warnings`): a notebook saving the result lost it. Each call keeps its own, every time."""
    import shutil

    from ganfp.attribution.run import attribute

    unknown = tmp_path / "unknown"
    shutil.copytree(sets / "real", unknown)
    (unknown / "scan.raw").write_bytes(bytes(64))
    train = tmp_path / "train" / "generated"
    for cls, names in (("a", "im1_0[0-5]"), ("b", "im1_0[6-9]")):
        (train / cls).mkdir(parents=True)
        for p in (sets / "generated").glob(f"{names}.png"):
            shutil.copy(p, train / cls)
    skipped = [f"{unknown}: 1 file skipped, not in an image format ganfp reads (first: scan.raw)"]
    calls = {
        "classify": lambda folder, i: classify(folder, tmp_path / f"c{i}.csv", generated=sets / "generated",
                                               method="knn", features="pixels16", k=3).to_dict()["warnings"],
        "attribute": lambda folder, i: attribute(AttributeConfig(str(folder), str(tmp_path / f"a{i}.csv"),
                                                                 train=str(train.parent), method="knn", k=1)).warnings,
        "cluster": lambda folder, i: cluster(ClusterConfig(str(folder), str(tmp_path / f"k{i}.csv"), clusters=2,
                                                           features="pixels8")).warnings,
    }
    for name, call in calls.items():
        assert [call(unknown, 1), call(unknown, 2), call(sets / "real", 3)] == [skipped, skipped, []], name


def test_a_calls_own_warnings_are_printed_from_python_every_call(sets, tmp_path):
    """A notebook saw the files skipped as it read them, but none of classify's or cluster's own warnings (a k beyond
    the sets, few images per group), which only the result held: each is logged, as the library's other warnings,
    and Python prints it on stderr, on every call. In a fresh interpreter: pytest's log capture takes the records."""
    import ast
    import subprocess
    import sys

    script = f"""
from ganfp.attribution.run import ClusterConfig, cluster
from ganfp.classify import classify
for i in range(2):
    print(classify({str(sets / "real")!r}, {str(tmp_path)!r} + f"/c{{i}}.csv", generated={str(sets / "generated")!r},
                   method="knn", features="pixels16", k=50, data_root={str(tmp_path)!r}).summary["warnings"])
    print(cluster(ClusterConfig({str(sets / "real")!r}, {str(tmp_path)!r} + f"/k{{i}}.csv", features="pixels8",
                                data_root={str(tmp_path)!r})).warnings)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    results = [ast.literal_eval(line) for line in done.stdout.splitlines()]  # the four results' warnings
    assert len(results) == 4 and all(results), done.stdout
    for text in {t for warnings in results for t in warnings}:
        assert done.stderr.count(text) == 2, (text, done.stderr)  # once per call, both calls


def test_a_results_dict_is_its_own_copy(sets, tmp_path):
    """`to_dict()` handed back the result's own lists: a notebook appending to its `warnings` changed the result."""
    result = classify(sets / "real", tmp_path / "out.csv", generated=sets / "generated", image_size=16)
    grouped = cluster(ClusterConfig(str(sets / "real"), str(tmp_path / "k.csv"), clusters=2, features="pixels8"))
    for obj in (result, grouped):
        obj.to_dict()["warnings"].append("added in a notebook")
        assert "added in a notebook" not in obj.to_dict()["warnings"], type(obj).__name__


def test_a_dev_set_without_evidence_of_leakage_is_a_warning_of_the_result(sets, tmp_path):
    """Only the terminal said it, beside "calibration chose": from Python, and with --json, it was in no `warnings`,
    though the labels may be no better than chance."""
    from ganfp.membership.calibrate import NO_LEAK_EVIDENCE

    dev = tmp_path / "dev"
    for part, n, seed in (("used", 4, 7), ("not_used", 4, 8), ("generated", 12, 9)):
        _images(dev / part, n, seed)
    result = classify(sets / "real", tmp_path / "out.csv", generated=sets / "generated", calibrate_on=dev,
                      data_root=tmp_path)
    assert not result.calibration.leak_evidence and result.summary["warnings"][0] == NO_LEAK_EVIDENCE


def test_a_notebook_cell_that_registers_a_scorer_can_be_run_again(sets, tmp_path, monkeypatch):
    """The documented extension (`@SCORERS.register(...)`) failed with "registered twice" when its cell was run a
    second time, as a notebook user editing a scorer does: only a kernel restart let it be defined again. The module
    that registered a name now replaces its entry; a name ganfp registered stays refused."""
    from ganfp.membership import SCORERS

    monkeypatch.setattr(SCORERS, "_entries", dict(SCORERS._entries))  # put back after the test
    monkeypatch.setattr(SCORERS, "_by", dict(getattr(SCORERS, "_by", {})), raising=False)
    cell = ("@SCORERS.register('nearest1', needs='neighbours', uses_k=False, uses_features=True)\n"
            "def nearest1(nb, k=1):\n    return SIGN * nb.real_to_generated(1)[0][:, 0].double().numpy()\n")
    scores = []
    for sign in (-1, 1):
        exec(cell, {"__name__": "__main__", "SCORERS": SCORERS, "SIGN": sign})
        scores.append(classify(sets / "real", tmp_path / "out.csv", generated=sets / "generated", method="nearest1",
                               features="pixels16").score)
    np.testing.assert_array_equal(scores[0], -scores[1])
    with pytest.raises(InputError, match=r"method 'knn' is registered already, by ganfp\.membership\.scorers"):
        exec(cell.replace("nearest1", "knn"), {"__name__": "__main__", "SCORERS": SCORERS, "SIGN": 1})


@pytest.mark.parametrize("call, says", [
    (lambda: ShiftedNCC(8, 3), "leaves no crop"),
    (lambda: SSIMDistance(4), "SSIM needs images"),
    (lambda: fuse({}), "at least one scorer"),
], ids=["ncc", "ssim", "fuse"])
def test_the_membership_pieces_refuse_a_bad_argument_as_every_entry_point_does(call, says):
    """The lower-level pieces the docs name (ShiftedNCC, SSIMDistance, fuse) raised a bare ValueError, where every
    other function refuses a Python caller's mistake with an InputError: ArgumentError is both."""
    with pytest.raises(InputError, match=says) as refused:
        call()
    assert isinstance(refused.value, ValueError)

"""Chains: TOML presets and files, stage-to-stage initialisation, skipping finished stages, --from-stage."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.checkpoints import flip_tensor_byte
from helpers.images import write_class_folder
from helpers.output import check_shown_once
from PIL import Image

from ganfp.chain import builtin_chains, load_chain, run_chain, stage_configs
from ganfp.checkpoint import load_checkpoint
from ganfp.errors import InputError
from ganfp.models import list_models


def write_chain(tmp_path, first, second) -> str:
    path = tmp_path / "mine.toml"
    path.write_text(f"""
name = "mine"
[defaults]
image_size = 16
batch_size = 8
epochs = 1
lr = 0.01
[[stages]]
name = "first"
dataset = "{first}"
[[stages]]
name = "second"
dataset = "{second}"
[[stages]]
name = "self"
dataset = "{second}/a"
pseudo_labels = "self"
""")
    return str(path)


@pytest.fixture
def two_datasets(tmp_path):
    return write_class_folder(tmp_path / "d1", 12, 16, seed=1), write_class_folder(tmp_path / "d2", 12, 16, seed=2)


def test_builtin_chains_follow_the_paper():
    assert {"paper", "demo"} <= set(builtin_chains())
    paper = stage_configs(load_chain("paper"), "resnet18")
    assert [c.dataset for c in paper] == ["casia", "covid-ctset", "imageclef-gans-2023:dev", "imageclef-gans-2023:test"]
    first = paper[0]
    assert (first.batch_size, first.lr, first.momentum, first.epochs, first.val_fraction) == (256, 0.001, 0.9, 200, 0.2)
    assert paper[-1].pseudo_labels == "self" and first.init == "imagenet"
    assert stage_configs(load_chain("paper"), "conv5")[0].init == "none"  # no ImageNet conv5 exists


def test_chain_runs_each_stage_from_the_previous_and_skips_finished_ones(tmp_path, two_datasets):
    spec = load_chain(write_chain(tmp_path, *two_datasets))
    run_dir, rows = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert [r.status for r in rows] == ["trained"] * 3
    record = json.loads((run_dir / "chain.json").read_text())
    assert [s["status"] for s in record["stages"]] == ["complete"] * 3
    second = json.loads((run_dir / "02-second" / "meta.json").read_text())
    assert second["config"]["init"] == str(run_dir / "01-first")
    _, again = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert [r.status for r in again] == ["skipped"] * 3
    _, partly = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", from_stage="second")
    assert [r.status for r in partly] == ["skipped", "trained", "trained"]
    _, changed = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", overrides={"epochs": 2})
    assert [r.status for r in changed] == ["trained"] * 3  # new settings are not mistaken for finished work


def test_a_folder_named_as_a_builtin_chain_does_not_hide_it(tmp_path, monkeypatch):
    """`--chain demo` (and `load_chain("demo")`) where the current folder holds a `demo/` folder, the demo data built
    there, say, read "demo: chain file not found"; a folder is no chain file, so the built-in chain is meant."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "dir.toml").mkdir()
    assert load_chain("demo").source == "built-in demo"
    with pytest.raises(InputError, match=r"^mine: is a folder, not a chain file \(.toml\)$"):
        load_chain("mine")
    with pytest.raises(InputError, match=r"^dir.toml: is a folder, not a chain file"):
        load_chain("dir.toml")


def test_bad_chains_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="unknown chain 'nope'; choose one of: demo, paper"):
        load_chain("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[stages]]\ndataset = 'x'\nlearning_rate = 3\n")
    with pytest.raises(InputError, match=r"bad.toml:3: stage 1 has unknown key 'learning_rate'"):
        load_chain(str(bad))
    bad.write_text("[[stages\n")
    with pytest.raises(InputError, match="bad.toml: invalid TOML"):
        load_chain(str(bad))
    with pytest.raises(InputError, match="--from-stage 'x'"):
        run_chain(load_chain("demo"), "conv5", tmp_path / "runs", tmp_path / "root", from_stage="x")


GOOD_STAGE = '[[stages]]\nname = "one"\ndataset = "demo:casia"\n'
# (chain file text, [(line, words the message must hold)]): each bad key is named with its line
BAD_CHAINS = [
    ("stages = [1, 2]\n", [(1, "entry 1 is 1, expected a [[stages]] table"), (1, "entry 2 is 2")]),
    ("defaults = 5\n" + GOOD_STAGE, [(1, "defaults: expected a [defaults] table")]),
    ("[defaults]\nepochs = \"ten\"\n" + GOOD_STAGE, [(2, "[defaults] epochs: expected an integer, got 'ten'")]),
    (GOOD_STAGE + "image_size = \"big\"\n", [(4, "stage 1 image_size: expected an integer, got 'big'")]),
    (GOOD_STAGE + "extra = \"oops\"\n", [(4, "stage 1 extra: expected a table (of named options), got 'oops'")]),
    ('[[stages]]\nname = "one"\ndataset = 5\n', [(3, "stage 1 dataset: expected a string, got 5")]),
    (GOOD_STAGE + "epochs = -3\n", [(4, "stage 1 epochs: must be at least 1, got -3")]),
    ('name = "../../x"\n' + GOOD_STAGE, [(1, "chain name '../../x' is not a plain name")]),
    ('[[stages]]\nname = "../../../x"\ndataset = "demo:casia"\n', [(2, "stage 1 name: '../../../x' is not a plain name")]),
    ("[defaults]\nlr = 0\nmomentum = 1.5\n" + GOOD_STAGE + "patience = 0\nval_fraction = 1\n",
     [(2, "[defaults] lr: must be a positive number"), (3, "[defaults] momentum"), (7, "stage 1 patience"),
      (8, "stage 1 val_fraction")]),
    (GOOD_STAGE + '[[stages]]\nname = "two"\ndataset = "demo:covid"\npseudo_labels = "oracle"\n',
     [(7, "stage 2 pseudo_labels: unknown pseudo-label source 'oracle'; choose one of: self, knn")]),
    (GOOD_STAGE + 'pseudo_labels = "self"\n', [(4, "pseudo-labels need a trained model to start from")]),
    (GOOD_STAGE + "stage = 3\n", [(4, "stage 1 has unknown key 'stage'")]),
    # the feature space's error named an option of classify's: `pseudo_features: --features nope: ...`
    (GOOD_STAGE + '[[stages]]\nname = "two"\ndataset = "demo:covid"\npseudo_labels = "knn"\npseudo_features = "nope"\n',
     [(8, "stage 2 pseudo_features: nope: not one of pixels[N]")]),
    # a misspelt demo part was found when the stage read its images: after the stages before it trained
    ('[[stages]]\nname = "one"\ndataset = "demo:gans-tset"\n',
     [(3, "stage 1 dataset: unknown demo part 'gans-tset' (did you mean 'gans-test'?); choose one of: casia,")]),
    (GOOD_STAGE + '[[stages]]\nname = "two"\ndataset = "demo:covid"\ninit = "none"\n',
     [(7, "stage 2 init: only the first stage has an init; each later stage starts from the stage before it")]),
    ("oops = 1\n" + GOOD_STAGE, [(1, "unknown top-level key 'oops'")]),
    # a new user's typos: the table or key meant is named, and a misspelt table still has its line
    ("[default]\nepochs = 1\n" + GOOD_STAGE, [(1, "unknown top-level key 'default' (did you mean 'defaults'?)")]),
    (GOOD_STAGE + "epoch = 3\nimage-size = 32\n",
     [(4, "stage 1 has unknown key 'epoch' (did you mean 'epochs'?)"),
      (5, "stage 1 has unknown key 'image-size' (did you mean 'image_size'?)")]),
    (GOOD_STAGE + '[[stage]]\nname = "two"\n', [(4, "unknown top-level key 'stage' (did you mean 'stages'?)")]),
    (GOOD_STAGE + '[[stages]]\nname = "two"\ndataset = "demo:covid"\n' + GOOD_STAGE,
     [(8, "stage 3 name 'one': stage 1 has it already; stage names must be unique")]),
    ("name = 5\n" + GOOD_STAGE, [(1, "chain name expected a string")]),
    # a misspelt table hid a repeated stage name until it was fixed: the file's shape is reported in one go
    ("[default]\nepochs = 1\n" + GOOD_STAGE + '[[stages]]\nname = "one"\ndataset = "demo:covid"\n',
     [(1, "unknown top-level key 'default' (did you mean 'defaults'?)"),
      (7, "stage 2 name 'one': stage 1 has it already")]),
]


@pytest.mark.parametrize("text, expected", BAD_CHAINS, ids=[f"case{i}" for i in range(len(BAD_CHAINS))])
def test_every_bad_key_is_reported_at_once_with_its_line(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        stage_configs(load_chain(str(path)), "conv5", run_dir=tmp_path / "runs" / "bad-conv5")
    message = str(err.value)
    assert "\n" not in message
    for line, words in expected:
        assert f"bad.toml:{line}: " in message and words in message, message
    assert message.count("bad.toml:") == len(expected)  # every bad key, each once


def test_an_unknown_key_lists_only_the_keys_its_table_takes(tmp_path):
    """[defaults] offered `name` among its valid keys, and refused it when a user then wrote it there."""
    path = tmp_path / "c.toml"
    path.write_text("[defaults]\nepoch = 3\n" + GOOD_STAGE + "epoch = 3\n")
    with pytest.raises(InputError) as err:
        load_chain(str(path))
    in_defaults, in_stage = str(err.value).split(f"; {path}:6: ")
    assert ", name," not in in_defaults and "valid: augment," in in_defaults, in_defaults
    assert ", name," in in_stage and ", model," not in in_stage, in_stage


def test_a_relative_dataset_run_from_another_folder_says_where_it_was_read(tmp_path, monkeypatch):
    """`folder:data` in a chain file is read from the current folder: run from elsewhere, it was "no such folder"
    with no word of where it was looked for, and a finished stage was kept with the same bare words."""
    project = tmp_path / "project"
    write_class_folder(project / "data", n_per_class=4, size=8)
    (project / "c.toml").write_text('[[stages]]\nname = "one"\ndataset = "folder:data"\n')
    monkeypatch.chdir(tmp_path)
    hint = (f"(a relative path in a chain file is read from the current folder, {Path.cwd()}, not the file's; the "
            f"file's folder holds {project / 'data'}: write that path, or run ganfp from {project})")
    with pytest.raises(InputError) as err:
        run_chain(load_chain("project/c.toml"), "conv5", tmp_path / "runs", tmp_path / "root")
    assert str(err.value) == f"project/c.toml:3: stage 1 (one): data: no such folder {hint}"
    (project / "c.toml").write_text('[[stages]]\nname = "one"\ndataset = "data"\n')  # a bare path: no adapter
    with pytest.raises(InputError, match=re.escape(hint)):
        run_chain(load_chain("project/c.toml"), "conv5", tmp_path / "runs", tmp_path / "root")


@pytest.mark.parametrize("dataset", ["demo:gans-tset", "imageclef-gans-2023:dev"])
def test_an_adapters_spec_run_from_another_folder_has_no_relative_path_hint(tmp_path, monkeypatch, dataset):
    """A misspelt demo part or a dataset not fetched, in a chain file run from elsewhere, ended with "a relative path
    in a chain file is read from the current folder ...; the file's folder holds project: write that path": the
    spec's empty path, read as "."."""
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "c.toml").write_text(f'[[stages]]\nname = "one"\ndataset = "{dataset}"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError) as err:
        run_chain(load_chain("project/c.toml"), "conv5", tmp_path / "runs", tmp_path / "root")
    assert str(err.value).startswith("project/c.toml:3: stage 1") and "relative path" not in str(err.value), err.value


def test_a_first_stage_from_another_models_stage_is_named_where_its_init_was_given(tmp_path):
    """The stage folder given is named as written, with the model it holds and the one the chain trains: in the
    chain file by its line and stage, from the command line by `--init`, as train-stage names it."""
    from safetensors.numpy import save_file

    start = tmp_path / "c5"
    start.mkdir()
    meta = {"model": "conv5", "num_classes": 2, "image_size": 16, "classes": ["a", "b"]}
    save_file({"w": np.zeros(2, np.float32)}, str(start / "model.safetensors"), metadata={"ganfp": json.dumps(meta)})
    path = tmp_path / "c.toml"
    path.write_text(f'[[stages]]\nname = "one"\ndataset = "demo:casia"\ninit = "{start}"\n')
    said = f"{start}: holds a conv5 model ({start / 'model.safetensors'}), not the resnet18 this stage trains"
    with pytest.raises(InputError) as err:
        stage_configs(load_chain(str(path)), "resnet18")
    assert str(err.value) == f"{path}:4: stage 1 init: {said}"
    with pytest.raises(InputError) as err:
        stage_configs(load_chain("demo"), "resnet18", overrides={"init": str(start)})
    assert str(err.value) == f"--init {said}"


def test_a_name_too_long_for_a_folder_is_refused_before_any_stage_trains(tmp_path):
    """It failed with an OSError traceback ("File name too long") when the first stage's folder was looked at."""
    path = tmp_path / "long.toml"
    path.write_text(f'name = "{"c" * 250}"\n[[stages]]\nname = "{"x" * 300}"\ndataset = "demo:casia"\n')
    with pytest.raises(InputError) as err:
        run_chain(load_chain(str(path)), "conv5", tmp_path / "runs", tmp_path / "root")
    message = str(err.value)
    assert "long.toml:1: chain name 'cccccccccccccccccccc'...: the run folder's name would be 256 bytes, more " \
           "than the 255 a folder name can hold" in message, message
    assert "long.toml:3: stage 1 name 'xxxxxxxxxxxxxxxxxxxx'...: its folder's name would be 303 bytes" in message
    assert not (tmp_path / "runs").exists() and not (tmp_path / "root").exists()


def test_bad_chain_is_refused_before_any_stage_trains(tmp_path, run_cli):
    path = tmp_path / "late.toml"
    path.write_text(GOOD_STAGE + '[[stages]]\nname = "two"\ndataset = "demo:covid"\nepochs = "ten"\n')
    code, _, err = run_cli("chain", "--model", "conv5", "--chain", path, "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "root")
    assert code == 2 and "late.toml:7: stage 2 epochs" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "root").exists()  # nothing decoded, nothing trained
    code, _, err = run_cli("chain", "--model", "conv5", "--chain", "demo", "--epochs", "0", "--patience", "0",
                           "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "root")
    assert code == 2 and "--epochs: must be at least 1" in err and "--patience: must be at least 1" in err
    assert not (tmp_path / "runs").exists()


def test_stage_weights_arrive_in_the_next_stage(tmp_path, two_datasets, monkeypatch):
    import ganfp.train as train_mod
    from ganfp.checkpoint import read_safetensors

    starts = []
    real_build = train_mod.build_model

    def recording_build(cfg, classes, device):
        model, meta = real_build(cfg, classes, device)
        starts.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})  # GPU or not
        return model, meta

    monkeypatch.setattr(train_mod, "build_model", recording_build)
    spec = load_chain(write_chain(tmp_path, *two_datasets))
    run_dir, _ = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    first = read_safetensors(run_dir / "01-first" / "model.safetensors")[0]
    assert len(starts) == 3
    for key, tensor in first.items():
        if not key.startswith("head"):
            assert torch.equal(starts[1][key], tensor), key  # stage 2 starts from stage 1's best weights
    assert not all(torch.equal(starts[0][k], first[k]) for k in first)  # and stage 1 did train


@pytest.mark.parametrize("model", list_models())
def test_every_model_completes_the_demo_chain(tmp_path, model, run_cli, demo_root):
    code, out, err = run_cli("chain", "--model", model, "--chain", "demo", "--epochs", "1", "--image-size", "32", "--batch-size", "64",
                             "--runs-dir", tmp_path / "runs", "--data-root", demo_root, "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["stage"] for r in rows] == ["casia", "covid", "gans-dev", "gans-test"]
    assert all(r["epochs_run"] == 1 and r["status"] == "trained" for r in rows)
    assert rows[-1]["classes"] == ["not_used", "used"]
    # the last stage is scored on its own pseudo-labels: never reported as accuracy
    assert rows[-1]["val_labels"] == "pseudo:self" and "best_val_accuracy" not in rows[-1]
    assert "best_val_pseudo_agreement" in rows[-1] and "best_val_accuracy" in rows[0]


def test_paper_chain_runs_all_four_stages_on_real_layout_fixtures(tmp_path, run_cli):
    from helpers.layouts import build_paper_fixtures

    root = build_paper_fixtures(tmp_path / "data", tmp_path / "work")
    code, out, err = run_cli("chain", "--model", "resnet18", "--chain", "paper", "--init", "none", "--epochs", "1",
                             "--image-size", "32", "--batch-size", "16", "--data-root", root, "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["dataset"] for r in rows] == ["casia", "covid-ctset", "imageclef-gans-2023:dev", "imageclef-gans-2023:test"]
    assert all(r["status"] == "trained" for r in rows)


def test_the_demo_chain_trains_without_warning_against_its_own_settings(tmp_path, run_cli, demo_root):
    """The README's main job: every stage's batch gives the trainer enough SGD steps an epoch to learn."""
    code, out, err = run_cli("chain", "--model", "conv5", "--chain", "demo", "--epochs", "1", "--image-size", "32",
                             "--runs-dir", tmp_path / "runs", "--data-root", demo_root, "--json")
    assert code == 0, err
    assert {r["stage"]: r["warnings"] for r in json.loads(out)} == dict.fromkeys(["casia", "covid", "gans-dev", "gans-test"], [])


def test_the_first_stage_is_retrained_when_its_init_file_changes(tmp_path, two_datasets):
    from ganfp.checkpoint import save_model
    from ganfp.models import create_model

    weights = tmp_path / "start.safetensors"
    torch.manual_seed(0)
    save_model(weights, create_model("conv5", 2, 16), {})
    spec = load_chain(write_chain(tmp_path, *two_datasets))
    overrides = {"init": str(weights)}
    run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", overrides=overrides)
    _, again = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", overrides=overrides)
    assert [r.status for r in again] == ["skipped"] * 3
    torch.manual_seed(1)
    save_model(weights, create_model("conv5", 2, 16), {})  # other weights, same path
    _, changed = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", overrides=overrides)
    assert [r.status for r in changed] == ["trained"] * 3


def test_a_rerun_refuses_a_finished_stage_whose_model_file_changed_since(tmp_path, two_datasets):
    """A re-run skipped a finished stage whose model.safetensors was replaced or corrupted since (flipped bits still
    load), and the next stage started from those weights. Its meta.json records the file's SHA-256: the re-run
    refuses before any stage trains, naming the file and the --from-stage that retrains it."""
    spec = load_chain(write_chain(tmp_path, *two_datasets))
    run_dir, _ = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    file = run_dir / "02-second" / "model.safetensors"
    recorded = json.loads((file.parent / "meta.json").read_text())["weights_sha256"]
    assert recorded == hashlib.sha256(file.read_bytes()).hexdigest()
    flip_tensor_byte(file)
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    words = (f"{file}: does not match the weights_sha256 in its meta.json (replaced or corrupted after the stage "
             "finished)")
    with pytest.raises(InputError, match=re.escape(f"{words}; retrain it with --from-stage second")):
        run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == files  # nothing trained over it
    with pytest.raises(InputError, match=re.escape(f"{words}; train the stage again (ganfp chain --from-stage "
                                                   "second)")):
        load_checkpoint(file.parent)
    _, again = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", from_stage="second")
    assert [r.status for r in again] == ["skipped", "trained", "trained"]
    load_checkpoint(run_dir)


def test_a_chain_starts_from_a_finished_stage_folder(tmp_path, two_datasets, run_cli):
    """`chain --init` takes what `train-stage --init` takes, a stage folder included (its help named only files)."""
    from ganfp.train import StageConfig, run_stage

    first, second = two_datasets
    start = tmp_path / "start"
    run_stage(StageConfig(name="start", dataset=str(first), model="conv5", image_size=16, batch_size=8, epochs=1),
              start, data_root=tmp_path / "root")
    code, _, err = run_cli("chain", "--model", "conv5", "--chain", write_chain(tmp_path, first, second), "--init", start,
                           "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "root", "--json")
    assert code == 0, err
    meta = json.loads((tmp_path / "runs" / "mine-conv5" / "01-first" / "meta.json").read_text())
    assert meta["config"]["init"] == str(start)


def test_a_later_stage_with_no_data_stops_the_chain_before_the_first_stage_trains(tmp_path, two_datasets):
    import shutil

    first, second = two_datasets
    spec = load_chain(write_chain(tmp_path, first, f"folder:{tmp_path / 'not-there'}"))
    with pytest.raises(InputError, match=r"mine.toml:13: stage 2 \(second\): .*not-there: no such folder"):
        run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
    spec = load_chain(write_chain(tmp_path, f"folder:{first}", second))
    run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    shutil.rmtree(first)  # a finished stage whose data is gone is kept, saying its images went unchecked
    _, again = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert [r.status for r in again] == ["skipped"] * 3
    assert any("kept without comparing its images" in w and "no such folder" in w for w in again[0].warnings)


def test_every_stages_dataset_problem_is_reported_at_once(tmp_path, two_datasets, run_cli):
    """A new user's first `chain --chain paper --dry-run` named only the first dataset not fetched; each fix and
    re-run named the next."""
    path = write_chain(tmp_path, f"folder:{tmp_path / 'gone1'}", f"folder:{tmp_path / 'gone2'}")
    code, _, err = run_cli("chain", "--model", "conv5", "--chain", path, "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "root", "--dry-run")
    assert code == 2 and err.count("\n") == 1, err
    assert "mine.toml:10: stage 1 (first): " in err and "gone1: no such folder" in err, err
    assert "mine.toml:13: stage 2 (second): " in err and "mine.toml:16: stage 3 (self): " in err, err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_runs_dir_inside_a_stages_dataset_is_refused_before_any_stage_trains(tmp_path, two_datasets, run_cli,
                                                                               dry_run):
    """train-stage refused an --out inside its dataset, the chain did not: with --runs-dir in a stage's folder (or in
    the demo's data folder) the stage's checkpoints were written among its images, which a later read takes for
    images and a re-run for a change of the dataset. Refused for every stage, by train-stage's check, naming it."""
    first, second = two_datasets
    chain, more = write_chain(tmp_path, f"folder:{first}", second), ["--dry-run"] if dry_run else []
    before = sorted(second.rglob("*"))
    code, out, err = run_cli("chain", "--model", "conv5", "--chain", chain, "--runs-dir", second / "runs",
                             "--data-root", tmp_path / "root", *more)
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert (f"mine.toml:13: stage 2 (second): its folder {second / 'runs' / 'mine-conv5' / '02-second'} is inside its "
            f"dataset {second} (folder {second}), where the stage's files would become part of the data; choose a "
            "--runs-dir outside it") in err
    assert sorted(second.rglob("*")) == before and not (tmp_path / "root").exists()
    code, _, err = run_cli("chain", "--model", "conv5", "--chain", "demo", "--runs-dir", tmp_path / "root" / "demo",
                           "--data-root", tmp_path / "root", *more)
    assert code == 2 and "stage 1 (casia): its folder " in err and f"(folder {tmp_path / 'root' / 'demo'})" in err
    assert not (tmp_path / "root").exists()  # refused before the demo data is built


def _rewrite(path):
    """New pixels in the same file, dated a minute later (a coarse file system would not see a quick edit)."""
    Image.fromarray(np.full((16, 16), 7, dtype=np.uint8)).save(path)
    later = path.stat().st_mtime + 60
    os.utime(path, (later, later))


@pytest.mark.parametrize("edit", ["changed", "added", "removed"])
def test_a_stage_whose_images_changed_is_retrained_with_the_stages_after_it(tmp_path, two_datasets, edit):
    """Stage 2's `b` class (which stage 3, on `a`, does not read): stage 1 is kept, 2 and 3 retrain, and say why."""
    spec = load_chain(write_chain(tmp_path, *two_datasets))
    run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    b = two_datasets[1] / "b"
    {"changed": lambda: _rewrite(b / "b000.png"), "added": lambda: _rewrite(b / "b999.png"),
     "removed": lambda: (b / "b000.png").unlink()}[edit]()
    _, again = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert [r.status for r in again] == ["skipped", "trained", "trained"]
    assert [r.reason for r in again] == ["", "images changed", "second retrained"]
    _, after = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert [r.status for r in after] == ["skipped"] * 3  # the new images are recorded: current again


def test_a_stage_finished_before_images_were_recorded_is_kept_and_says_so(tmp_path, two_datasets):
    """A stage finished by an older ganfp (no `dataset_fingerprint` in meta.json) is not retrained unasked:
    it may be hours of work whose images never changed. The run says their images went unchecked, and how to
    retrain them."""
    spec = load_chain(write_chain(tmp_path, *two_datasets))
    run_dir, _ = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    for stage in ("01-first", "02-second"):
        meta = json.loads((run_dir / stage / "meta.json").read_text())
        del meta["dataset_fingerprint"]
        (run_dir / stage / "meta.json").write_text(json.dumps(meta))
    _rewrite(two_datasets[0] / "a" / "a000.png")
    _, again = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert [r.status for r in again] == ["skipped"] * 3
    assert any("older ganfp" in w and "--from-stage first" in w for w in again[0].warnings)
    assert any("--from-stage second" in w for w in again[1].warnings)


def test_the_chain_table_says_why_a_stage_is_retrained(tmp_path, two_datasets, run_cli):
    chain = write_chain(tmp_path, *two_datasets)
    args = ["chain", "--model", "conv5", "--chain", chain, "--runs-dir", tmp_path / "runs", "--data-root",
            tmp_path / "root"]
    assert run_cli(*args)[0] == 0
    _rewrite(two_datasets[1] / "b" / "b001.png")
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert "retraining second: images changed" in err
    assert "trained (images changed)" in out and "trained (second retrained)" in out
    code, out, err = run_cli(*args, "--json")
    assert [r["reason"] for r in json.loads(out)] == ["", "", ""]  # a kept stage has nothing to explain


def test_a_chain_shows_each_stages_planned_warnings_once_before_the_first_stage_trains(tmp_path, two_datasets,
                                                                                      run_cli):
    """A stage's warnings when it starts (here a batch as large as its split) were shown twice: as `WARNING: ...`
    progress lines, then as `warning:` lines below the results; and a later stage's only when it started, though the
    dry run knows it up front (at the task's scale, hours in). Each the plan knows is one `warning:` line now, before
    the first stage's first epoch, with --json or without, and in its own stage's --json "warnings"; the
    pseudo-labelled stage's, known only once its labels are drawn, is said when it starts."""
    args = ["chain", "--model", "conv5", "--chain", write_chain(tmp_path, *two_datasets), "--runs-dir",
            tmp_path / "runs", "--data-root", tmp_path / "root", "--batch-size", "256"]
    code, out, err = run_cli(*args, "--json")
    assert code == 0, err
    stages = json.loads(out)
    for stage in stages:
        assert [w for w in stage["warnings"] if "single SGD step" in w][0].startswith(f"stage {stage['stage']}: ")
    starts = {stage["stage"]: f"{stage['stage']} epoch 1 train loss" for stage in stages}
    before = {w: starts["first" if stage["stage"] != "self" else "self"] for stage in stages for w in stage["warnings"]}
    check_shown_once(err, list(before), before)
    (drawn,) = json.loads(out)[2]["warnings"]
    said = " ".join(err.split())
    assert said.index(starts["second"]) < said.index(" ".join(drawn.split()))  # when its stage starts, as before
    code, out, err = run_cli(*args, "--from-stage", "first")
    assert code == 0 and "warning:" not in out, err
    check_shown_once(err, list(before), before)
    code, out, err = run_cli(*args, "--from-stage", "first", "--dry-run", "--json")  # said first, by the plan
    planned = [w for stage in json.loads(out) for w in stage["warnings"]]
    assert code == 0 and len(planned) == 2, out  # the pseudo-labelled stage's are known only when it starts
    check_shown_once(err, planned)


def test_the_chain_files_device_is_not_replaced_by_the_commands_default(tmp_path, two_datasets, run_cli):
    """`device = "cpu"` in [defaults] became "auto" (and `compile = true` false): the command passed its own
    defaults as overrides. A dataset in [defaults] serves every stage (it read as "stage 1 has no dataset")."""
    chain = tmp_path / "cpu.toml"
    chain.write_text(f'[defaults]\ndevice = "cpu"\ndataset = "{two_datasets[0]}"\nimage_size = 16\nbatch_size = 8\n'
                     'epochs = 1\n[[stages]]\nname = "one"\n')
    args = ["chain", "--model", "conv5", "--chain", chain, "--runs-dir", tmp_path / "runs", "--data-root",
            tmp_path / "root"]
    assert run_cli(*args)[0] == 0
    meta = json.loads((tmp_path / "runs" / "cpu-conv5" / "01-one" / "meta.json").read_text())
    assert meta["config"]["device"] == "cpu" and meta["config"]["compile"] is False
    code, _, err = run_cli(*args, "--device", "nope", "--from-stage", "one")  # the option still wins over the file
    assert code == 2 and "--device: not a device (use auto, cpu or cuda), got 'nope'" in err


def test_a_first_stage_starting_inside_its_own_run_is_refused(tmp_path, two_datasets):
    """A cycle: the first stage started from the run's last stage, which it then retrained, so each run found its
    start changed and retrained every stage, for ever."""
    from ganfp.checkpoint import model_meta, save_model
    from ganfp.models import create_model

    spec = load_chain(write_chain(tmp_path, *two_datasets))
    last = tmp_path / "runs" / "mine-conv5" / "03-self"
    model = create_model("conv5", 2, 16)
    save_model(last / "model.safetensors", model, model_meta(model, ["a", "b"], 16))
    with pytest.raises(InputError, match=r"--init: .*03-self is in this chain's own run folder .*mine-conv5"):
        run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root", overrides={"init": str(last)})
    assert sorted(p.name for p in last.parent.iterdir()) == ["03-self"]  # nothing trained


def test_a_chain_file_of_the_same_name_in_another_folder_is_refused_before_it_trains(tmp_path, two_datasets, run_cli):
    """a/exp.toml and b/exp.toml shared the run folder exp-conv5: the second retrained the first's stages."""
    first, second = (tmp_path / folder / "exp.toml" for folder in "ab")
    for chain, data in zip((first, second), two_datasets):
        chain.parent.mkdir()
        chain.write_text(f'[defaults]\ndevice = "cpu"\nimage_size = 16\nbatch_size = 8\nepochs = 1\n'
                         f'[[stages]]\nname = "one"\ndataset = "{data}"\n')
    args = ["chain", "--model", "conv5", "--runs-dir", tmp_path / "runs", "--data-root", tmp_path / "root"]
    assert run_cli(*args, "--chain", first)[0] == 0
    stage = tmp_path / "runs" / "exp-conv5" / "01-one" / "meta.json"
    trained = stage.read_text()
    code, _, err = run_cli(*args, "--chain", second)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert all(words in " ".join(err.split()) for words in (str(second), str(first), "exp-conv5", "--runs-dir"))
    assert stage.read_text() == trained  # the first chain's stage is untouched
    assert run_cli(*args, "--chain", first)[0] == 0  # the chain that trained there still runs
    code, out, err = run_cli(*args, "--chain", second, "--runs-dir", tmp_path / "other")
    assert code == 0, err


@pytest.mark.parametrize("device, says", [("cuda:7", "this machine has 1 CUDA device (cuda:0; or cuda, auto), got "
                                           "'cuda:7'"), ("gpu", "not a device (use auto, cpu or cuda), got 'gpu'")])
def test_a_later_stages_device_is_checked_before_the_first_stage_trains(tmp_path, two_datasets, run_cli,
                                                                         monkeypatch, device, says):
    """Stage 3's device was resolved when stage 3 started, after stages 1 and 2 had trained."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    chain = write_chain(tmp_path, *two_datasets)
    with open(chain, "a") as f:
        f.write(f'device = "{device}"\n')
    code, _, err = run_cli("chain", "--model", "conv5", "--chain", chain, "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "root")
    assert code == 2 and f"mine.toml:18: stage 3 device: {says}" in " ".join(err.split()), err
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_a_later_pseudo_labelled_stage_after_a_three_class_stage_is_refused_before_training(tmp_path, two_datasets):
    """Pseudo-labels start from the stage before, whose classes its dataset names: a three-class stage 2 was found
    unfit for stage 3's pseudo-labels only after stage 2 had trained."""
    import shutil

    first, second = two_datasets
    shutil.copytree(second / "a", second / "c")  # stage 2 learns three classes
    spec = load_chain(write_chain(tmp_path, first, second))
    with pytest.raises(InputError) as err:
        run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
    assert "mine.toml:17: stage 3 (self): pseudo-labels need a two-class model" in str(err.value)
    assert "stage 2 (second) has 3 classes (a, b, c)" in str(err.value)
    assert not (tmp_path / "runs").exists()  # nothing trained


@pytest.mark.parametrize("model, image_size", [("resnet18", None), ("vit_b_32", None), ("convnext_atto", None),
                                               ("convnext_atto", 16)])
def test_the_chains_size_check_builds_each_model_configuration_once(tmp_path, demo_root, model, image_size,
                                                                    monkeypatch):
    """The start-up size check runs for every stage, three times over a run (the plan, the checks, each stage's own),
    and builds models on the meta device to answer: each (model, image size) must be built once, not once a call
    (docs/performance.md, "Where the demo chain's time goes on a CPU")."""
    from collections import Counter

    from ganfp.chain import plan_chain
    from ganfp.models import factory, sizes

    for cached in (sizes.patch_side, sizes.smallest_image_size, sizes._probe, sizes._skeleton):
        cached.cache_clear()  # a build another test made must not hide this run's
    builds, real = Counter(), factory.create_model

    def counted(name, **kwargs):
        builds[(name, kwargs["image_size"], kwargs["num_classes"])] += 1
        return real(name, **kwargs)

    monkeypatch.setattr(sizes, "create_model", counted)
    monkeypatch.setattr(factory, "create_model", counted)
    if image_size is None:
        plan = plan_chain(load_chain("demo"), model, tmp_path / "runs", demo_root)
        assert [row["action"] for row in plan.rows()] == ["train"] * 4
    else:  # refused: the smallest size it takes is searched for
        with pytest.raises(InputError, match=f"{model} needs at least 32 pixels, got {image_size}"):
            plan_chain(load_chain("demo"), model, tmp_path / "runs", demo_root, {"image_size": image_size})
    assert builds and all(n == 1 for n in builds.values()), builds


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_imagenet_weights_out_of_reach_are_found_before_the_chain_writes_anything(tmp_path, two_datasets, run_cli,
                                                                                monkeypatch, dry_run):
    """Offline, `chain --dry-run` passed a first stage starting from ImageNet weights, and the run itself wrote its
    chain.json before the first stage found the weights out of reach."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    path = tmp_path / "net.toml"
    path.write_text(f'[defaults]\ninit = "imagenet"\nimage_size = 16\nepochs = 1\nbatch_size = 4\n'
                    f'[[stages]]\nname = "one"\ndataset = "folder:{two_datasets[0]}"\n')
    code, _, err = run_cli("chain", "--model", "resnet18", "--chain", path, "--runs-dir", tmp_path / "runs",
                           "--data-root", tmp_path / "root", *(["--dry-run"] if dry_run else []))
    assert code == 1 and "ImageNet weights for resnet18 are not cached and HF_HUB_OFFLINE is set" in err, err
    assert "Traceback" not in err and not (tmp_path / "runs" / "net-resnet18" / "chain.json").exists()


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "run"])
def test_the_chains_checks_list_each_dataset_once_and_each_stage_lists_its_own_afresh(tmp_path, two_datasets,
                                                                                     monkeypatch, dry_run):
    """Before the first stage trains, a chain's checks listed a dataset up to four times (about a second each per
    20,000 files); a stage must still list its images when it starts, as they may have changed since the checks."""
    from collections import Counter

    from ganfp import train
    from ganfp.chain import plan_chain

    listed, real = Counter(), train.load_manifest

    def counted(spec, *args, **kwargs):
        listed[spec] += 1
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(train, "load_manifest", counted)
    spec = load_chain(write_chain(tmp_path, *two_datasets))
    datasets = {c.dataset for c in stage_configs(spec, "conv5")}
    if dry_run:
        plan_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
        assert set(listed) == datasets and all(n == 1 for n in listed.values()), listed
    else:
        _, rows = run_chain(spec, "conv5", tmp_path / "runs", tmp_path / "root")
        assert [r.status for r in rows] == ["trained"] * 3
        assert set(listed) == datasets and all(n == 2 for n in listed.values()), listed  # the checks', the stage's

"""`ganfp classify`: valid submissions from a checkpoint or from the membership scorers, clear one-line errors.

Runs in-process on tiny constructed cases (used images reappear, slightly noisy, among the
generated ones), so the right answer is known.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from helpers.checkpoints import flip_tensor_byte
from helpers.images import write_frames
from helpers.membership_cases import write_case, write_dev

from ganfp.checkpoint import model_meta, save_model
from ganfp.classify import calibration_candidates, dev_sets, k_beyond_the_sets
from ganfp.data.adapters import register_adapter
from ganfp.data.adapters.folder import folder_manifest
from ganfp.errors import InputError
from ganfp.membership import (
    DEFAULT_METHOD,
    SCORERS,
    AutoencoderConfig,
    MembershipScorer,
    Recipe,
    ScoringSetup,
    fuse,
    member_recipes,
    pipeline,
)
from ganfp.membership.pipeline import canonical
from ganfp.models import create_model
from ganfp.submission import read_predictions, validate_submission

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def tiny_autoencoder(monkeypatch):
    """The default autoencoder trains for seconds; tests need a fraction of that."""
    monkeypatch.setattr(pipeline, "DEFAULT_AUTOENCODER", AutoencoderConfig(size=16, width=8, code=16, steps=150, batch_size=16))


@pytest.fixture
def case(tmp_path):
    real, gen, labels = write_case(tmp_path / "case")
    return real, gen, labels, ["--data-root", str(tmp_path / "data")]


def stage_folder(folder, classes=("not_used", "used")):
    model = create_model("conv5", len(classes), 32)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(folder / "model.safetensors", model, model_meta(model, list(classes), 32))
    return folder


def one_line_error(code: int, err: str, *fragments: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def read_scores(path) -> tuple[list[str], dict[str, np.ndarray]]:
    header, *rows = path.read_text().splitlines()
    columns = header.split(",")
    cells = [row.split(",") for row in rows]
    return columns, {name: np.array([c[i] for c in cells]) for i, name in enumerate(columns)}


def test_generated_folder_default_method_labels_the_used_images(run_cli, case, tmp_path):
    real, gen, labels, root = case
    out, scores = tmp_path / "sub.csv", tmp_path / "scores.csv"
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", out, "--scores", scores, *root)
    assert code == 0, err
    assert validate_submission(out, labels) == []
    preds = read_predictions(out, labels)
    assert {i: int(v) for i, v in zip(preds.ids, preds.labels)} == labels  # half used, and the right half
    columns, _ = read_scores(scores)
    assert columns == ["id", "score", *(r.label for r in member_recipes(Recipe(DEFAULT_METHOD)))]
    assert "recipe" in stdout and DEFAULT_METHOD in stdout and "top 50.0% by rank" in stdout


@pytest.mark.parametrize("method", [m for m in SCORERS.names() if SCORERS.entry(m).meta["needs"] != "checkpoint"])
def test_every_method_from_the_command_line(run_cli, case, tmp_path, method):
    real, gen, labels, root = case
    out, scores = tmp_path / "sub.csv", tmp_path / "scores.csv"
    features = ["--features", "ssim32"] if method == "retrieval" else []
    k = ["--k", "2"] if SCORERS.entry(method).meta["uses_k"] else []  # refused where the method does not read it
    code, _, err = run_cli("classify", real, "--generated", gen, "--method", method, *k, "--out", out,
                           "--scores", scores, *features, *root)
    assert code == 0, err
    preds = read_predictions(out, labels)
    assert {i: int(v) for i, v in zip(preds.ids, preds.labels)} == labels
    columns, table = read_scores(scores)
    features = "ssim32" if method == "retrieval" else None
    assert columns == ["id", "score", *(r.label for r in member_recipes(Recipe(method, features, 2)))]
    assert sorted(table["id"]) == sorted(labels)


def test_same_seed_same_scores_even_without_caches(run_cli, case, tmp_path):
    real, gen, _, _ = case
    files = []
    for run, data_root in enumerate(["a", "a", "b"]):
        files.append(tmp_path / f"scores{run}.csv")
        code, _, err = run_cli("classify", real, "--generated", gen, "--method", "fusion", "--out", tmp_path / f"s{run}.csv",
                               "--scores", files[-1], "--seed", "3", "--data-root", tmp_path / data_root,
                               "--device", "cpu")  # the promise is the CPU's: a GPU's autoencoder is not bit-exact
        assert code == 0, err
    assert files[0].read_bytes() == files[1].read_bytes() == files[2].read_bytes()


def expected_p_used(stage, real) -> dict[str, float]:
    """P(used) per image computed here, image by image from the PNGs, with the CNN normalisation written out."""
    import torch

    from ganfp.checkpoint import load_checkpoint

    model, meta = load_checkpoint(stage)
    used = meta["classes"].index("used")
    out = {}
    for path in sorted(real.glob("*.png")):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("L"), dtype=np.float32))[None, None]
        with torch.no_grad():
            out[path.stem] = float(model((x / 255 - 0.449) / 0.226).softmax(-1)[0, used])
    return out


def test_checkpoint_classifier_without_generated_images(run_cli, case, tmp_path):
    real, _, labels, root = case
    stage = stage_folder(tmp_path / "stage", classes=("used", "not_used"))  # "used" is column 0: found by name
    out, scores = tmp_path / "sub.csv", tmp_path / "scores.csv"
    code, stdout, err = run_cli("classify", real, "--checkpoint", stage, "--out", out, "--scores", scores, "--json", *root,
                                "--device", "cpu")  # fp32, as expected_p_used computes it (a GPU runs bf16)
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["method"] == "classifier" and summary["checkpoint"] == str(stage)
    assert summary["labelled_used"] == summary["labelled_not_used"] == len(labels) // 2
    assert validate_submission(out, labels) == []
    columns, table = read_scores(scores)
    assert columns == ["id", "score", "classifier"]
    expected = expected_p_used(stage, real)
    got = dict(zip(table["id"], table["classifier"].astype(float)))
    assert got.keys() == expected.keys()
    assert np.allclose([got[i] for i in expected], list(expected.values()), atol=1e-5)  # the model's own P(used)
    preds = read_predictions(out, labels)
    top = sorted(expected, key=expected.get, reverse=True)[: len(labels) // 2]
    assert {i for i, v in zip(preds.ids, preds.labels) if v == 1} == set(top)  # the top half by P(used)


@pytest.mark.parametrize("classes", [("covid", "normal"), ("authentic", "tampered"), ("not_used", "used", "unsure")])
def test_classifier_of_another_task_is_refused_not_read_as_p_used(run_cli, case, tmp_path, classes):
    """A chain stopped after its covid stage leaves a covid classifier: its class 1 is not P(used). Nor is the "used"
    column of a third class's softmax: the mass on the other class moves every score and every --threshold."""
    real, _, _, root = case
    stage = stage_folder(tmp_path / "stage", classes=classes)
    out = tmp_path / "sub.csv"
    code, _, err = run_cli("classify", real, "--checkpoint", stage, "--out", out, *root)
    one_line_error(code, err, str(stage), ", ".join(classes), "not of used / not_used")
    assert not out.exists()

def test_an_image_size_other_than_the_checkpoints_is_refused_before_decoding(run_cli, case, tmp_path, monkeypatch):
    """The classifier reads images at the size its checkpoint was trained at: --image-size 64 was ignored without a
    word, so the user believed the images were classified at 64 px; so did the checkpoint feature space. Its own
    size is accepted."""
    real, gen, labels, root = case
    stage, out = stage_folder(tmp_path / "stage"), tmp_path / "sub.csv"

    def no_decoding(*args):
        raise AssertionError("the real images were decoded before --image-size was checked")

    monkeypatch.setattr(pipeline, "load_checked", no_decoding)
    for given in (("--checkpoint", stage), ("--checkpoint", stage / "model.safetensors"), ("--method", "classifier",
                  "--checkpoint", stage), ("--generated", gen, "--method", "knn", "--features", "checkpoint",
                                           "--checkpoint", stage)):
        code, _, err = run_cli("classify", real, *given, "--image-size", "64", "--out", out, *root)
        one_line_error(code, err, "--image-size 64", "trained on 32 px images", str(stage))
    assert not out.exists()
    monkeypatch.undo()
    code, _, err = run_cli("classify", real, "--checkpoint", stage, "--image-size", "32", "--out", out, *root)
    assert code == 0, err
    assert validate_submission(out, labels) == []


@pytest.mark.parametrize("edit", ["no head", "head of 3 classes"])
def test_a_checkpoint_whose_head_does_not_fit_its_classes_is_refused(run_cli, case, tmp_path, edit):
    """The head is the classifier: one missing, or of another number of classes than the metadata names, was
    replaced by a fresh random one (as a stage's starting model may be), so P(used) was noise."""
    from ganfp.checkpoint import read_safetensors, write_safetensors

    real, _, _, root = case
    file = stage_folder(tmp_path / "stage") / "model.safetensors"
    tensors, meta = read_safetensors(file)
    if edit == "no head":
        tensors = {k: v for k, v in tensors.items() if not k.startswith("head.")}
    else:
        tensors.update({"head.weight": torch.zeros(3, tensors["head.weight"].shape[1]), "head.bias": torch.zeros(3)})
    write_safetensors(file, tensors, meta)
    out = tmp_path / "sub.csv"
    code, _, err = run_cli("classify", real, "--checkpoint", file, "--out", out, *root)
    one_line_error(code, err, str(file), "head", "2 classes")
    assert not out.exists()


def test_generated_images_the_classifier_does_not_read_are_refused(run_cli, case, tmp_path):
    """--method classifier scores the real images alone: a --generated given beside it was read as a folder and then
    ignored, so a user who believed the generated set counted was not told otherwise."""
    real, gen, _, root = case
    stage, out = stage_folder(tmp_path / "stage"), tmp_path / "sub.csv"
    code, _, err = run_cli("classify", real, "--method", "classifier", "--generated", gen, "--checkpoint", stage,
                           "--out", out, *root)
    one_line_error(code, err, f"--generated {gen}", "--method classifier does not read it")
    assert not out.exists()


def test_a_missing_checkpoint_is_named_as_missing(run_cli, case, tmp_path):
    """A typo in --checkpoint said "not a checkpoint (expected a stage folder ...)", as if the path held something
    else: the user went looking at a folder that is not there."""
    real, _, _, root = case
    for missing in (tmp_path / "runs" / "demo-resnt18", tmp_path / "stage" / "model.safetensor"):
        code, _, err = run_cli("classify", real, "--checkpoint", missing, "--out", tmp_path / "sub.csv", *root)
        one_line_error(code, err, f"--checkpoint {missing}: not found")


def test_checkpoint_file_of_any_name(run_cli, case, tmp_path):
    real, _, labels, root = case
    weights = tmp_path / "chosen.safetensors"
    (stage_folder(tmp_path / "stage") / "model.safetensors").rename(weights)
    code, stdout, err = run_cli("classify", real, "--checkpoint", weights, "--out", tmp_path / "sub.csv", "--json", *root)
    assert code == 0, err
    assert json.loads(stdout)["checkpoint"] == str(weights)


def test_the_checkpoint_space_names_its_checkpoint(run_cli, case, tmp_path):
    """--features checkpoint read a model that the summary (and so --json and the report) left unnamed, where the
    classifier's is named: a user could not tell which model to give evaluate --report or attribute."""
    real, gen, _, root = case
    stage = stage_folder(tmp_path / "stage")
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--features", "checkpoint",
                                "--checkpoint", stage, "--out", tmp_path / "sub.csv", "--json", *root)
    assert code == 0, err
    assert json.loads(stdout)["checkpoint"] == str((stage / "model.safetensors").resolve())
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--out", tmp_path / "sub.csv",
                                "--json", *root)
    assert code == 0, err
    assert json.loads(stdout)["checkpoint"] is None


def membership_stage(class_folder, epochs: int):
    """A tiny conv5 stage over `class_folder`'s two classes renamed not_used/ and used/: a classifier checkpoint."""
    from ganfp.train import StageConfig

    for name, cls in (("a", "not_used"), ("b", "used")):
        (class_folder / name).rename(class_folder / cls)
    return StageConfig(name="s", dataset=str(class_folder), model="conv5", init="none", image_size=32, batch_size=8,
                       epochs=epochs, device="cpu")


def test_an_interrupted_stage_is_refused_until_it_is_finished(run_cli, case, class_folder, tmp_path):
    """A stage stopped midway holds only its best epoch so far: classify says so instead of scoring with it."""
    from ganfp.errors import Interrupted
    from ganfp.train import run_stage

    real, gen, _, root = case
    cfg = membership_stage(class_folder, epochs=2)
    stage, out = tmp_path / "stage", tmp_path / "sub.csv"

    def stop_after_the_first_epoch(event, data):
        if event == "epoch_end":
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        run_stage(cfg, stage, data_root=root[1], observer=stop_after_the_first_epoch)
    assert (stage / "model.safetensors").is_file()  # the best epoch so far, which was used as if finished
    for given in (("--checkpoint", stage), ("--checkpoint", stage / "model.safetensors"),
                  ("--generated", gen, "--method", "knn", "--features", "checkpoint", "--checkpoint", stage)):
        code, _, err = run_cli("classify", real, *given, "--out", out, *root)
        one_line_error(code, err, str(stage), "interrupted, saved after epoch 1", "ganfp train-stage", "--resume")
    assert not out.exists()
    run_stage(cfg, stage, resume=True, data_root=root[1])
    code, _, err = run_cli("classify", real, "--checkpoint", stage, "--out", out, *root)
    assert code == 0, err


def test_a_finished_stage_whose_model_file_changed_since_is_refused(run_cli, case, class_folder, tmp_path):
    """A model file replaced or corrupted after its stage finished (flipped bits still load) was scored with, without
    a word: its meta.json records the file's SHA-256. The same file given alone, no meta.json beside it, is used."""
    from ganfp.train import run_stage

    real, gen, _, root = case
    cfg = membership_stage(class_folder, epochs=1)
    stage, out = tmp_path / "stage", tmp_path / "sub.csv"
    run_stage(cfg, stage, data_root=root[1])
    flip_tensor_byte(stage / "model.safetensors")
    for given in (("--checkpoint", stage), ("--checkpoint", stage / "model.safetensors"),
                  ("--generated", gen, "--method", "knn", "--features", "checkpoint", "--checkpoint", stage)):
        code, _, err = run_cli("classify", real, *given, "--out", out, *root)
        one_line_error(code, err, f"{stage / 'model.safetensors'}: does not match the weights_sha256 in its meta.json "
                       "(replaced or corrupted after the stage finished)", "--force", "restore the file")
    assert not out.exists()
    lone = tmp_path / "lone.safetensors"
    shutil.copy(stage / "model.safetensors", lone)
    code, _, err = run_cli("classify", real, "--checkpoint", lone, "--out", out, *root)
    assert code == 0, err


def test_threshold_on_the_probability(run_cli, case, tmp_path):
    real, _, labels, root = case
    stage = stage_folder(tmp_path / "stage")
    expected = expected_p_used(stage, real)
    threshold = float(np.quantile(list(expected.values()), 0.3))  # between the probabilities: both labels occur
    out = tmp_path / "sub.csv"
    code, stdout, err = run_cli("classify", real, "--checkpoint", stage, "--out", out, "--threshold", repr(threshold),
                                "--json", *root, "--device", "cpu")  # fp32, as expected_p_used computes it
    assert code == 0, err
    want = {i for i, p in expected.items() if p >= threshold}
    assert 0 < len(want) < len(labels) and json.loads(stdout)["labelled_used"] == len(want)
    preds = read_predictions(out, labels)
    assert {i for i, v in zip(preds.ids, preds.labels) if v == 1} == want


def test_newest_chain_run_is_the_default_checkpoint(run_cli, case, tmp_path):
    real, _, _, root = case
    runs = tmp_path / "runs"
    code, _, err = run_cli("classify", real, "--out", tmp_path / "sub.csv", "--runs-dir", runs, *root)
    one_line_error(code, err, "no finished chain run")
    stage_folder(runs / "run1" / "s2")
    (runs / "run1" / "chain.json").write_text(json.dumps({"stages": [{"dir": "s2", "status": "complete"}]}))
    code, stdout, err = run_cli("classify", real, "--out", tmp_path / "sub.csv", "--runs-dir", runs, "--json", *root)
    assert code == 0, err
    assert json.loads(stdout)["checkpoint"].endswith("s2")


def test_no_chain_message_points_at_the_generated_folder_beside_the_real_one(run_cli, case, tmp_path):
    """A test set's real_unknown_1/ given alone runs the classifier; with no chain the message said only to
    train one, though the membership scorers need none and generated_1/ sits beside it."""
    real, gen, _, root = case
    test = tmp_path / "test"
    shutil.copytree(real, test / "real_unknown_1")
    shutil.copytree(gen, test / "generated_1")
    args = ["--out", tmp_path / "sub.csv", "--runs-dir", tmp_path / "runs", *root]
    code, _, err = run_cli("classify", test / "real_unknown_1", *args)
    one_line_error(code, err, "no finished chain run", f"pass --generated {test / 'generated_1'}")
    shutil.copytree(real, tmp_path / "lone" / "real")
    code, _, err = run_cli("classify", tmp_path / "lone" / "real", *args)  # no generated folder beside it
    one_line_error(code, err, "no finished chain run", "pass --generated GEN_DIR")
    assert not (tmp_path / "sub.csv").exists()


def test_the_classifier_run_for_want_of_generated_images_names_the_folder_beside(run_cli, case, tmp_path):
    """With a chain run there, a test set's real_unknown_1/ given alone (--generated forgotten) was labelled by the
    paper's classifier without a word, though generated_1/ sits beside it: a submission at chance, silently."""
    real, gen, _, root = case
    test = tmp_path / "test"
    shutil.copytree(real, test / "real_unknown_1")
    shutil.copytree(gen, test / "generated_1")
    runs = tmp_path / "runs"
    stage_folder(runs / "run1" / "s2")
    (runs / "run1" / "chain.json").write_text(json.dumps({"stages": [{"dir": "s2", "status": "complete"}]}))
    args = ["classify", test / "real_unknown_1", "--out", tmp_path / "sub.csv", "--runs-dir", runs, "--json", *root]
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    [warning] = json.loads(stdout)["warnings"]
    assert "so classify ran the paper's classifier" in warning and warning in err
    assert f"pass --generated {test / 'generated_1'}" in warning
    code, stdout, err = run_cli(*args, "--method", "classifier")  # asked for by name: nothing to warn of
    assert code == 0 and json.loads(stdout)["warnings"] == [] and "warning" not in err, err


def test_ids_file_must_match_the_images(run_cli, case, tmp_path):
    real, gen, labels, root = case
    ids = tmp_path / "ids.txt"
    args = ["classify", real, "--generated", gen, "--method", "knn", "--out", tmp_path / "sub.csv", "--ids", ids, *root]
    ids.write_text("\n".join(sorted(labels)) + "\n")
    assert run_cli(*args)[0] == 0
    ids.write_text("\n".join(sorted(labels) + ["real_999"]) + "\n")
    one_line_error(*run_cli(*args)[::2], "1 listed id without an image", "real_999")
    ids.write_text("\n".join(sorted(labels)[1:]) + "\n")
    one_line_error(*run_cli(*args)[::2], "1 image not listed", sorted(labels)[0])


def test_calibration_prints_its_choice(run_cli, case, tmp_path):
    real, gen, labels, root = case
    dev = write_dev(tmp_path / "dev")
    out = tmp_path / "sub.csv"
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--calibrate", dev, "--out", out, "--json", *root)
    assert code == 0, err
    summary = json.loads(stdout)
    calibration = summary["calibration"]
    assert calibration["recipe"] == summary["recipe"] and calibration["with_default"] == summary["with_default"]
    assert calibration["method"] == summary["method"] and calibration["cv_auc"] == 1.0 and calibration["leak_evidence"]
    assert calibration["used_fraction"] == 0.5 == summary["used_fraction"]  # the dev prevalence, not an F1 optimum
    assert validate_submission(out, labels) == []
    code, _, err = run_cli("classify", real, "--generated", gen, "--calibrate", dev, "--method", "knn", "--out", out, *root)
    assert code == 0 and "calibration chose: knn " in err and "95% bootstrap interval" in err


def test_a_dev_share_labelling_every_real_image_alike_is_refused_before_they_are_scored(run_cli, case, tmp_path,
                                                                                        monkeypatch):
    """The dev set's prevalence is the used fraction unless one is given: said as such, not as "used fraction"."""
    real, gen, _, root = case
    dev = write_dev(tmp_path / "dev", n_used=8, n_not_used=2)  # prevalence 0.8: both of 2 images used
    few = tmp_path / "few"
    few.mkdir()
    for image in sorted(real.iterdir())[:2]:
        shutil.copy(image, few / image.name)
    monkeypatch.setattr("ganfp.classify.calibration_candidates", lambda *a, **k: pytest.fail("the dev set was scored"))
    code, _, err = run_cli("classify", few, "--generated", gen, "--calibrate", dev, "--out", tmp_path / "s.csv", *root)
    one_line_error(code, err, "--calibrate", "share of used images, 0.8,", "all of the 2 real images",
                   "--used-fraction", "below 0.75")


def test_a_dev_set_calibration_cannot_use_is_refused_before_it_is_scored(run_cli, case, tmp_path, monkeypatch):
    """Too few images of a label for the folds, or a label folder missing: one line naming --calibrate, before a
    candidate is scored (the count was checked after every candidate had been, minutes on a real dev set)."""
    real, gen, _, root = case
    few = write_dev(tmp_path / "few")
    for image in sorted((few / "not_used").iterdir())[1:]:
        image.unlink()
    no_used = write_dev(tmp_path / "no_used")
    shutil.rmtree(no_used / "used")
    monkeypatch.setattr("ganfp.classify.calibration_candidates", lambda *a, **k: pytest.fail("the dev set was scored"))
    out = tmp_path / "s.csv"
    code, _, err = run_cli("classify", real, "--generated", gen, "--calibrate", few, "--out", out, *root)
    one_line_error(code, err, f"--calibrate {few}: calibration needs at least 2 used and 2 not_used images",
                   "1 not_used")
    code, _, err = run_cli("classify", real, "--generated", gen, "--calibrate", no_used, "--out", out, *root)
    one_line_error(code, err, f"--calibrate {no_used / 'used'}: folder missing", "holds generated/, not_used/")
    assert not out.exists()


def test_a_dev_folder_named_as_the_organisers_or_a_user_spell_it_is_read(tmp_path):
    """`Used/`, `Not-Used/`, `Generated/` (as `imageclef-gans-YYYY:dev` reads them) were refused as "class folder
    missing"; two spellings of one folder are refused, naming both."""
    dev = write_dev(tmp_path / "dev")
    for name, spelt in (("used", "Used"), ("not_used", "Not-Used"), ("generated", "Generated")):
        (dev / name).rename(dev / spelt)
    real, generated = dev_sets(str(dev))
    assert real.classes == ["not_used", "used"]
    assert {Path(it.path).parent.name for it in real.items if it.label == 1} == {"Used"}
    assert {Path(it.path).parent.name for it in real.items if it.label == 0} == {"Not-Used"}
    assert generated.root == str(dev / "Generated")
    shutil.copytree(dev / "Not-Used", dev / "not_used")
    with pytest.raises(InputError, match="Not-Used/, not_used/, each read as the not_used/ folder"):
        dev_sets(str(dev))
    shutil.rmtree(dev / "not_used")
    (dev / "Generated").rename(dev / "generated_1")  # the 2024 dev set's spelling
    assert dev_sets(str(dev))[1].root == str(dev / "generated_1")
    shutil.copytree(dev / "generated_1", dev / "generated_2")
    with pytest.raises(InputError, match="generated_1/, generated_2/, each read as the generated/ folder"):
        dev_sets(str(dev))


def test_what_makes_a_calibrated_run_less_than_it_seems_is_said_aloud(run_cli, case, tmp_path):
    """Real images that are dev images too (their labels chose the recipe), and dev images of another size than the
    real ones (the recipe runs at another resolution than it was judged at): warnings, the run goes on."""
    real, gen, _, root = case
    dev = write_dev(tmp_path / "dev")
    fast = ("--method", "knn", "--k", "3", "--out", tmp_path / "s.csv", "--json", *root)
    code, stdout, err = run_cli("classify", dev / "used", "--generated", gen, "--calibrate", dev, *fast)
    assert code == 0, err
    n_used = len(list((dev / "used").iterdir()))
    (warning,) = json.loads(stdout)["warnings"]
    assert warning.startswith(f"--calibrate {dev}: holds {n_used} of the {n_used} real images too (e.g. {dev}")
    assert "chosen on their labels" in warning
    big = write_dev(tmp_path / "big", size=48)
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--calibrate", big, *fast)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning == (f"--calibrate {big}: its images are 48 px and the real images 32 px, so the recipe was judged "
                       "at another resolution than it runs at; pass --image-size 32 to compare both at one size")
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--calibrate", big, "--image-size", "32", *fast)
    assert code == 0 and json.loads(stdout)["warnings"] == []


def test_a_dev_set_of_two_bit_depths_is_said_aloud(run_cli, case, tmp_path):
    """16-bit slices among a dev set's 8-bit ones are read with another contrast, so the recipe was chosen on images
    read two ways: warned as a mix of the real and generated images is (the dev set's images went unchecked)."""
    real, gen, labels, root = case
    dev = write_dev(tmp_path / "dev")
    first = sorted((dev / "used").glob("*.png"))[0]
    Image.fromarray(np.asarray(Image.open(first).convert("L"), dtype=np.uint16) * 256).save(first)
    n_dev, n_dev_gen = (len(list(dev.glob(f"{part}/*.png"))) for part in ("*used", "generated"))
    fast = ("--method", "knn", "--k", "3", "--out", tmp_path / "s.csv", "--json", *root)
    for size in ((), ("--image-size", "32")):  # with --image-size too, where no dev image's size is read
        code, stdout, err = run_cli("classify", real, "--generated", gen, "--calibrate", dev, *fast, *size)
        assert code == 0, err
        (warning,) = json.loads(stdout)["warnings"]
        assert warning.startswith(f"the images mix bit depths (the real images 8-bit ({len(labels)}), the generated "
                                  f"images 8-bit ({len(list(gen.glob('*.png')))}), the dev images 8-bit ({n_dev - 1}) "
                                  f"and 16-bit (1), the dev generated images 8-bit ({n_dev_gen})): ganfp stretches")
    first.unlink()  # the dev set of one depth again: no word of depths
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--calibrate", dev, *fast)
    assert code == 0 and json.loads(stdout)["warnings"] == [], err


def test_an_id_the_submission_cannot_hold_names_its_image_before_scoring(run_cli, case, tmp_path, monkeypatch):
    real, gen, _, root = case
    first = sorted(real.iterdir())[0]
    first.rename(real / "scan 1, slice 2.png")
    monkeypatch.setattr(MembershipScorer, "final", lambda *a: pytest.fail("the real images were scored"))
    code, _, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", *root)
    one_line_error(code, err, "scan 1, slice 2.png: its id", "holds a comma", "rename the file")


def test_an_id_with_a_double_quote_is_refused_as_attribute_refuses_it(run_cli, case, tmp_path, monkeypatch):
    """`a"b` went into the submission, and `--scores` wrote a file whose reader took the quote for CSV quoting;
    attribute refused the same name. Both now refuse it before any scoring, naming the file and the quote."""
    real, gen, _, root = case
    sorted(real.iterdir())[0].rename(real / '"a".png')
    monkeypatch.setattr(MembershipScorer, "final", lambda *a: pytest.fail("the real images were scored"))
    code, _, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", *root)
    one_line_error(code, err, '"a".png: its id \'"a"\'', "holds a double quote", "rename the file")
    assert not (tmp_path / "s.csv").exists()


def test_one_real_image_is_refused_before_calibration(run_cli, case, tmp_path, monkeypatch):
    real, gen, _, root = case
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(sorted(real.iterdir())[0], one)
    monkeypatch.setattr("ganfp.classify.calibrate", lambda *a, **k: pytest.fail("calibrated first"))
    code, _, err = run_cli("classify", one, "--generated", gen, "--calibrate", write_dev(tmp_path / "dev"),
                           "--out", tmp_path / "s.csv", *root)
    one_line_error(code, err, str(one), "1 real image", "at least 2")


def test_calibration_candidates_keep_half_of_the_default(tmp_path):
    """Unless a method is named, every candidate but the default is rank-averaged with the default: a dev
    set can prefer a scorer that the test images do not, and the default's half keeps what it sees."""
    real, gen = dev_sets(str(write_dev(tmp_path / "dev")))
    scorer = MembershipScorer(real, gen, ScoringSetup(32, data_root=tmp_path / "data"))
    default = canonical(Recipe(DEFAULT_METHOD))
    candidates = calibration_candidates(scorer, None, None, with_classifier=False, with_default=True)
    hedged = [c.recipe for c in candidates if c.recipe != default]
    assert len(hedged) == len(candidates) - 1 > 10 and all(r.with_default for r in hedged)
    for recipe in hedged[::7]:
        mixed = fuse({"default": scorer.score(default), "own": scorer.score(recipe.own)})
        np.testing.assert_allclose(scorer.score(recipe), mixed)
        assert recipe.label == f"{DEFAULT_METHOD} + {recipe.own.label} (rank average)"
        assert set(member_recipes(recipe)) == set(member_recipes(default)) | set(member_recipes(recipe.own))
    named = calibration_candidates(scorer, "knn", None, with_classifier=False, with_default=False)
    assert named and not any(c.recipe.with_default for c in named)


def test_calibration_candidates_that_a_small_dev_set_makes_one_are_scored_once_and_say_the_k_they_use(tmp_path):
    """local fits by at most a twelfth of the generated and a quarter of the other real images: on 32 and 15, its
    k=3 to k=40 all fit with 2 and 3 neighbours, and each was scored and listed as a recipe of its own, labelled
    with a k it did not use. The first of them is kept, its label saying what it uses, as classify's k warning does."""
    real, gen = dev_sets(str(write_dev(tmp_path / "dev")))
    assert (len(real), len(gen)) == (16, 32)
    scorer = MembershipScorer(real, gen, ScoringSetup(32, data_root=tmp_path / "data"))
    local = [c for c in calibration_candidates(scorer, "local", None, with_classifier=False)
             if c.recipe.features == "pixels32"]
    assert [(c.recipe.k, c.label) for c in local] == [
        (1, "local pixels32 k=1"), (3, "local pixels32 k=3 (on the dev set it uses k=2 among the 32 generated images)")]
    knn = {c.recipe.k: c for c in calibration_candidates(scorer, "knn", None, with_classifier=False, with_default=True)
           if c.recipe.features == "pixels32"}
    assert sorted(knn) == [1, 3, 5, 10, 20, 40]  # cut to the whole sets, k=20 and k=40 still differ
    assert knn[20].label == ("ensemble + knn pixels32 k=20 (on the dev set it uses k=15 among the 15 other real "
                             "images) (rank average)")
    assert knn[10].label == knn[10].recipe.label


def test_a_calibrated_recipe_whose_k_the_dev_set_cuts_says_the_k_it_used(run_cli, case, tmp_path):
    """`--calibrate DEV --method local --k 40` chose and listed "local ... k=40" though every candidate fit with 2
    and 3 neighbours on the dev set: the choice, its table and --json say so (the k that runs on the real images is
    classify's k warning's to say)."""
    real, gen, _, root = case
    uses = "(on the dev set it uses k=2 among the 32 generated images and k=3 among the 15 other real images)"
    args = ["classify", real, "--generated", gen, "--calibrate", write_dev(tmp_path / "dev"), "--method", "local",
            "--k", "40", "--out", tmp_path / "sub.csv", *root]
    code, stdout, err = run_cli(*args, "--json")
    assert code == 0, err
    calibration = json.loads(stdout)["calibration"]
    assert calibration["recipe"] == f"local {calibration['features']} k=40 {uses}"
    assert calibration["k"] == 40 and calibration["k_used"] == {"generated": 2, "other_real": 3}
    assert all(row["candidate"].endswith(f"k=40 {uses}") for row in calibration["table"]), calibration["table"]
    code, _, err = run_cli(*args)
    assert code == 0 and f"calibration chose: {calibration['recipe']}; used fraction" in " ".join(err.split()), err


def test_dataset_spec_brings_its_generated_images(run_cli, case, tmp_path):
    real, gen, labels, root = case

    @register_adapter("membership-test", "a test set with its generated images")
    def load(arg, data_root, **options):
        manifest = folder_manifest(real, name="membership-test")
        manifest.info["generated"] = str(gen)
        return manifest

    code, stdout, err = run_cli("classify", "membership-test:x", "--out", tmp_path / "sub.csv", "--json", *root)
    assert code == 0, err
    assert json.loads(stdout)["generated"] == len(list(gen.iterdir()))


def test_a_dev_folder_is_scored_against_its_own_generated_images(run_cli, case, tmp_path):
    real, gen, labels, root = case
    dev = tmp_path / "dev"
    for cls in ("used", "not_used"):
        (dev / cls).mkdir(parents=True)
    for image in real.iterdir():
        shutil.copy(image, dev / ("used" if labels[image.stem] else "not_used") / image.name)
    shutil.copytree(gen, dev / "generated")
    code, stdout, err = run_cli("classify", dev, "--out", tmp_path / "sub.csv", "--json", *root)
    assert code == 0, err  # not "no finished chain run": the classifier was never asked for
    assert json.loads(stdout)["generated"] == len(list(gen.iterdir()))


def test_empty_generated_folder(run_cli, case, tmp_path):
    real, _, _, root = case
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("classify", real, "--generated", tmp_path / "empty", "--out", tmp_path / "sub.csv", *root)
    one_line_error(code, err, "empty", "holds no images")
    assert not (tmp_path / "sub.csv").exists()


def test_images_of_different_sizes_need_an_image_size(run_cli, case, tmp_path):
    real, gen, _, root = case
    Image.new("L", (24, 24), 128).save(gen / "small.png")
    out = tmp_path / "sub.csv"
    code, _, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--out", out, *root)
    one_line_error(code, err, "different sizes", "32x32", "24x24 (1 file, e.g.", "small.png", "--image-size")
    assert not out.exists()
    code, _, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--out", out, "--image-size", "32", *root)
    assert code == 0, err


@pytest.mark.parametrize("where", ["real", "generated"])
def test_corrupt_image_is_one_line(run_cli, case, tmp_path, where):
    real, gen, _, root = case
    bad = (real if where == "real" else gen) / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, _, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--out", tmp_path / "sub.csv", *root)
    one_line_error(code, err, "broken.png")
    assert not (tmp_path / "sub.csv").exists()


@pytest.mark.parametrize("where,name", [("real", "volume.tif"), ("generated", "cine.gif"), ("generated", "cine.png")])
def test_a_file_of_several_frames_is_one_line_not_its_first_frame(run_cli, case, tmp_path, where, name):
    """A CT volume saved as one TIFF scored as its first slice, without a word."""
    real, gen, _, root = case
    write_frames((real if where == "real" else gen) / name, 4, size=32)
    code, _, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--out", tmp_path / "sub.csv",
                           *root)
    one_line_error(code, err, name, "holds 4 frames", "one image per slice")
    assert not (tmp_path / "sub.csv").exists()


def test_a_file_named_in_another_encoding_is_one_line_before_the_scoring(run_cli, case, tmp_path):
    """A Latin-1 name (an archive from another system, on Linux) has an id no UTF-8 submission can hold: it ended
    in a traceback in the decode cache's key, after the generated set was decoded."""
    import os

    real, gen, _, root = case
    first = sorted(real.iterdir())[0]
    os.rename(first, os.path.join(os.fsencode(real), b"caf\xe9.png"))
    code, _, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--out", tmp_path / "sub.csv",
                           *root)
    one_line_error(code, err, "caf", "cannot be written in UTF-8", "rename the file")
    assert not (tmp_path / "sub.csv").exists()


def test_truncated_image_is_one_line(run_cli, case, tmp_path):
    real, gen, _, root = case
    victim = next(gen.iterdir())
    victim.write_bytes(victim.read_bytes()[:60])  # a valid header, then nothing
    code, _, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--image-size", "32",
                           "--out", tmp_path / "sub.csv", *root)
    one_line_error(code, err, victim.name)


@pytest.mark.parametrize("args,fragments", [
    (["--used-fraction", "0.5", "--threshold", "0.5"], ["not both"]),
    (["--method", "nearest"], ["--method nearest", "knn"]),
    (["--features", "pixels2"], ["--features pixels2"]),
    (["--k", "0"], ["'--k'", "0 is below the minimum 1"]),
    (["--used-fraction", "1.5"], ["between 0 and 1"]),
])
def test_bad_options(run_cli, case, tmp_path, args, fragments):
    real, gen, _, root = case
    code, _, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "sub.csv", *args, *root)
    one_line_error(code, err, *fragments)


def test_membership_method_needs_generated_images(run_cli, case, tmp_path):
    real, _, _, root = case
    code, _, err = run_cli("classify", real, "--method", "knn", "--out", tmp_path / "sub.csv", *root)
    one_line_error(code, err, "--generated")


def test_missing_real_folder(run_cli, tmp_path):
    code, _, err = run_cli("classify", tmp_path / "nowhere", "--out", tmp_path / "sub.csv")
    one_line_error(code, err, "nowhere")


def test_a_demo_set_says_where_its_labels_are_and_how_to_score_it(run_cli, demo_root, tmp_path):
    """The docs' labels path is the default data root's; the line classify prints is this data root's."""
    out, scores = tmp_path / "sub.csv", tmp_path / "scores.csv"
    code, _, err = run_cli("classify", "demo:gans-test", "--out", out, "--scores", scores, "--data-root", demo_root)
    assert code == 0, err
    labels = demo_root / "demo" / "gans-test-labels.csv"
    line = next(x for x in err.splitlines() if x.startswith("score it with: "))
    assert line == f"score it with: ganfp evaluate {scores} {labels}"
    code, stdout, err = run_cli(*line.removeprefix("score it with: ganfp ").split())
    assert code == 0, err
    assert "ROC-AUC" in stdout


def test_the_ground_truth_of_a_demo_set_is_no_output_of_classify(run_cli, demo_root, tmp_path):
    """`--scores` (or `--out`) naming the demo's labels file replaced the ground truth with the scores, and the line
    printed to score them named one file twice: refused before any image is scored, the labels untouched."""
    labels = demo_root / "demo" / "gans-test-labels.csv"
    before = labels.read_bytes()
    for option, other in (("--scores", "--out"), ("--out", "--scores")):
        code, _, err = run_cli("classify", "demo:gans-test", option, labels, other, tmp_path / f"{option[2:]}.csv",
                               "--data-root", demo_root)
        assert code == 2 and err.strip().splitlines()[-1] == (
            f"error: {option} {labels}: is the ground truth of demo:gans-test, which ganfp evaluate scores the "
            "output against; write it elsewhere"), err
    assert labels.read_bytes() == before and not list(tmp_path.iterdir())


def test_a_threshold_labelling_every_image_alike_is_said_aloud(run_cli, case, tmp_path):
    """Membership scores are log ratios, not probabilities: --threshold 0.5 can label every image one way."""
    real, gen, labels, root = case
    out = tmp_path / "sub.csv"
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", out, "--threshold", "1e9", "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning.startswith(f"--threshold 1e+09 labels all {len(labels)} images not used") and warning in err
    assert set(read_predictions(out, labels).labels) == {0}  # written as asked, and said
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", out, "--json", *root)
    assert code == 0 and json.loads(stdout)["warnings"] == [] and "labels all" not in err


def test_one_real_image_labelled_by_rank_is_said_aloud(run_cli, case, tmp_path):
    """A used fraction ranks the images against each other: one image is labelled used by the default 0.5 whatever
    its score, which looked like a verdict. --threshold labels it by its score, and is not warned of."""
    real, gen, labels, root = case
    one = tmp_path / "one"
    one.mkdir()
    first = sorted(real.iterdir())[0]
    (one / first.name).write_bytes(first.read_bytes())
    args = ("classify", one, "--generated", gen, "--method", "autoencoder", "--out", tmp_path / "s.csv", "--json",
            *root)
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning.startswith("1 real image: a used fraction ranks the images against each other, so it labels "
                              "this one used whatever its score") and warning in err
    code, stdout, err = run_cli(*args, "--threshold", "-1e9")
    assert code == 0 and json.loads(stdout)["warnings"] == [], err


def test_real_images_among_the_generated_ones_are_said_aloud(run_cli, case, tmp_path):
    """--generated naming the folder above the real one: every real image is its own nearest generated image."""
    real, gen, labels, root = case
    code, stdout, err = run_cli("classify", real, "--generated", real.parent, "--out", tmp_path / "s.csv", "--json",
                                *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert f"--generated {real.parent}: holds {len(labels)} of the {len(labels)} real images too" in warning
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", "--json", *root)
    assert code == 0 and json.loads(stdout)["warnings"] == []


def test_a_generated_folder_with_a_copy_of_every_real_image_is_said_aloud(run_cli, case, tmp_path):
    """The real folder copied into the generated one: every real image, used or not, found its own copy, and the
    submission was written without a word. Copies of some of them (a copying generator's) are not warned of."""
    real, gen, labels, root = case
    mixed = tmp_path / "mixed"
    shutil.copytree(gen, mixed)
    for image in sorted(real.iterdir()):
        shutil.copy(image, mixed / f"copy_{image.name}")
    code, stdout, err = run_cli("classify", real, "--generated", mixed, "--out", tmp_path / "s.csv", "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning.startswith(f"--generated {mixed}: holds a copy of every real image ({len(labels)} byte-for-byte")
    (mixed / f"copy_{sorted(real.iterdir())[0].name}").unlink()  # one real image without its copy
    code, stdout, err = run_cli("classify", real, "--generated", mixed, "--out", tmp_path / "s.csv", "--json", *root)
    assert code == 0 and json.loads(stdout)["warnings"] == [], err


def test_copies_of_one_image_split_by_the_cut_are_said_aloud(run_cli, case, tmp_path):
    """Equal scores on both sides of a used fraction are labelled in id order: not evidence, so a warning."""
    real, gen, labels, root = case
    first, *others = sorted(real.iterdir())
    for image in others:
        shutil.copy(first, image)
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert f"{len(labels)} images share the score at the cut" in warning
    assert f"{len(labels) // 2} of them are labelled used in the order of their ids" in warning


def test_real_and_generated_images_of_other_bit_depths_are_said_aloud(run_cli, case, tmp_path):
    """16-bit real slices (CT values) against 8-bit generated ones: each set is read with its own contrast."""
    real, gen, labels, root = case
    for image in sorted(real.glob("*.png")):  # the same slices, saved as 16-bit PNGs
        pixels = np.asarray(Image.open(image).convert("L"), dtype=np.uint16) * 16 + 24
        Image.fromarray(pixels.astype(np.uint16)).save(image)
    n_gen = len(list(gen.glob("*.png")))
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning.startswith(f"the images mix bit depths (the real images 16-bit ({len(labels)}), the generated "
                              f"images 8-bit ({n_gen})): ganfp stretches each 16-bit")
    code, stdout, err = run_cli("classify", real, "--generated", real, "--out", tmp_path / "s.csv", "--json", *root)
    assert code == 0 and not any("bit" in w for w in json.loads(stdout)["warnings"])  # one depth: no word of it


def test_a_few_16_bit_images_in_a_set_of_8_bit_ones_are_said_aloud(run_cli, case, tmp_path):
    """Every file's header counts, not a sample of each set: one 16-bit generated image among 8-bit ones (the last,
    which a sample of every other file missed; with --image-size too, where no size is read) is read with its own
    contrast, and the set is named as mixed."""
    real, gen, labels, root = case
    last = sorted(gen.glob("*.png"))[-1]
    Image.fromarray(np.asarray(Image.open(last), dtype=np.uint16) * 256).save(last)
    n_gen = len(list(gen.glob("*.png")))
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", "--json",
                                "--image-size", "32", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning.startswith(f"the images mix bit depths (the real images 8-bit ({len(labels)}), the generated "
                              f"images 8-bit ({n_gen - 1}) and 16-bit (1)):")


def test_a_32_bit_image_is_said_to_be_stretched_too(run_cli, case, tmp_path):
    """A 32-bit integer TIFF is windowed by its percentiles as a 16-bit one is: the warning that names its depth says
    so (it named only 16-bit and float images, leaving the 32-bit one's reading unsaid)."""
    real, gen, labels, root = case
    last = sorted(gen.glob("*.png"))[-1]
    Image.fromarray(np.asarray(Image.open(last).convert("L"), dtype=np.int32) * 1000).save(last.with_suffix(".tif"))
    last.unlink()
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", tmp_path / "s.csv", "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert "and 32-bit (1)):" in warning and "stretches each 16-bit, 32-bit or float image" in warning


def test_a_real_set_of_two_bit_depths_is_said_aloud_to_the_classifier_too(run_cli, case, tmp_path):
    """The classifier reads each 16-bit image stretched by its own percentiles and each 8-bit one as it is: a real set
    mixing both is scored with two contrasts, which only the membership scorers' users were told."""
    real, _, labels, root = case
    for image in sorted(real.glob("*.png"))[:4]:
        Image.fromarray(np.asarray(Image.open(image), dtype=np.uint16) * 256).save(image)
    stage, out = stage_folder(tmp_path / "stage"), tmp_path / "sub.csv"
    code, stdout, err = run_cli("classify", real, "--checkpoint", stage, "--out", out, "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning.startswith(f"the images mix bit depths (the real images 8-bit ({len(labels) - 4}) and 16-bit (4)): "
                              "ganfp stretches each 16-bit")
    assert warning.endswith("windowed as the checkpoint's training images were")


def test_a_k_above_the_sets_sizes_is_said_aloud(run_cli, case, tmp_path):
    """--k 500 of a few dozen generated images compares with all of them: the user is told k was not 500."""
    real, gen, labels, root = case
    n_gen, n_real = len(list(gen.glob("*.png"))), len(labels)
    out = tmp_path / "sub.csv"
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--k", "500", "--out", out,
                                "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning == (f"--k 500: more than the {n_gen} generated images and the {n_real - 1} other real images; "
                       "those neighbour passes use them all") and warning in err
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--k", "2", "--out", out,
                                "--json", *root)
    assert code == 0 and json.loads(stdout)["warnings"] == []


def test_a_k_above_one_image_says_image(run_cli, case, tmp_path):
    """One generated image and two real ones read "the 1 generated images and the 1 other real images"."""
    real, gen, _, root = case
    small_real, small_gen = tmp_path / "real", tmp_path / "gen"
    for source, target, n in ((real, small_real, 2), (gen, small_gen, 1)):
        target.mkdir()
        for image in sorted(source.glob("*.png"))[:n]:
            shutil.copy(image, target)
    code, stdout, err = run_cli("classify", small_real, "--generated", small_gen, "--method", "knn", "--k", "3",
                                "--out", tmp_path / "sub.csv", "--json", *root)
    assert code == 0, err
    assert ("--k 3: more than the 1 generated image and the 1 other real image; those neighbour passes use them all"
            in json.loads(stdout)["warnings"])


def test_a_k_the_user_did_not_give_warns_only_above_a_whole_set(run_cli, case, tmp_path):
    """The ensemble's local member names k=40 and fits by a twelfth of the generated images (its cap, by design): on
    a few dozen images the warning said it used them all, on a few hundred nothing. No warning of that cap; one
    where a member's k is more than a whole set (knn wstd32 k=10 of 8 generated images), naming the k that ran."""
    real, gen, labels, root = case
    out = tmp_path / "sub.csv"
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", out, "--json", *root)
    assert code == 0 and json.loads(stdout)["warnings"] == [], err
    real, gen, _ = write_case(tmp_path / "few", n_used=8, n_not_used=8, copies=1, extra=0)  # 16 real, 8 generated
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--out", out, "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning == ("the default method, ensemble, uses k=10 (knn wstd32 k=10): more than the 8 generated images; "
                       "those neighbour passes use them all") and warning in err


def test_a_k_the_user_gave_that_local_caps_says_the_k_it_uses(run_cli, case, tmp_path):
    """local fits by at most a twelfth of the generated and a quarter of the other real images: `--k 40` on 32 and
    16 was said to use them all (it used 2 and 3), and on a few hundred nothing was said (it used 25 and 24)."""
    real, gen, labels, root = case
    n_gen, n_real = len(list(gen.glob("*.png"))), len(labels)
    code, stdout, err = run_cli("classify", real, "--generated", gen, "--method", "local", "--k", "40", "--out",
                                tmp_path / "sub.csv", "--json", *root)
    assert code == 0, err
    (warning,) = json.loads(stdout)["warnings"]
    assert warning == (f"--k 40: local std32 k=40 caps k on sets this small; it uses k={n_gen // 12} among the "
                       f"{n_gen} generated images and k={(n_real - 1) // 4} among the {n_real - 1} other real images")
    assert warning in err
    assert k_beyond_the_sets(Recipe("local", "std32", 40), 40, 100, 300, "--method local") == [
        "--k 40: local std32 k=40 caps k on sets this small; it uses k=25 among the 300 generated images and k=24 "
        "among the 99 other real images"]
    assert k_beyond_the_sets(Recipe("local", "std32", 40), 40, 200, 10_000, "--method local") == []


def test_densitys_k_is_said_of_the_generated_images_alone():
    """density's k-th nearest generated image sets its ball's radius, and it counts the other real images in that
    ball whatever k is: `--k 15` above the 11 other real images was said to use them all, with no pass of k there.
    In fusion, the members whose k is cut are named, as knn's and density's cuts differ."""
    assert k_beyond_the_sets(Recipe("density", "std32", 15), 15, 12, 24, "--method density") == []
    assert k_beyond_the_sets(Recipe("density", "std32", 30), 30, 12, 24, "--method density") == [
        "--k 30: more than the 24 generated images; those neighbour passes use them all"]
    assert k_beyond_the_sets(Recipe("fusion", "std32", 15), 15, 12, 24, "--method fusion") == [
        "--k 15 (knn std32 k=15): more than the 11 other real images; those neighbour passes use them all"]
    assert k_beyond_the_sets(Recipe("fusion", "std32", 30), 30, 12, 24, "--method fusion") == [
        "--k 30 (knn std32 k=30): more than the 24 generated images and the 11 other real images; those neighbour "
        "passes use them all",
        "--k 30 (density std32 k=30): more than the 24 generated images; those neighbour passes use them all"]


def test_a_feature_space_finer_than_the_images_is_said_aloud(run_cli, case, tmp_path):
    """--features white64 on 32 px images compares at 32 px under the name white64; std64 compares upsampled
    images: the user hears that the space asked for is not what ran."""
    real, gen, labels, root = case
    out = tmp_path / "sub.csv"
    expected = {"white64": "white64 is finer than the 32 px images; it compares them at 32 px, as white32",
                "std64": "std64 is finer than the 32 px images; they are upsampled to 64 px, which adds no detail",
                "std32": None}
    for features, says in expected.items():
        code, stdout, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--features", features,
                                    "--out", out, "--json", *root)
        assert code == 0, err
        assert json.loads(stdout)["warnings"] == ([f"--features {features}: {says}"] if says else [])


def test_a_generated_folder_inside_the_real_one_is_not_read_as_real_images(run_cli, case, tmp_path):
    """`classify real/ --generated real/fakes/`: the fakes were read as a class of real images (scored, each its own
    nearest generated image, and written to the submission), or refused beside loose real images as a second
    layout. The --generated folder is no part of the real images, as a `generated/` sub-folder never is."""
    real, gen, labels, root = case
    shutil.copytree(gen, real / "fakes")
    classes = tmp_path / "classes"
    for name in ("used", "not_used"):
        (classes / name).mkdir(parents=True)
    for image in sorted(real.glob("*.png")):
        shutil.copy(image, classes / ("used" if labels[image.stem] else "not_used") / image.name)
    shutil.copytree(gen, classes / "fakes")
    n_gen = len(list(gen.glob("*.png")))
    for folder in (real, classes):
        out = tmp_path / f"{folder.name}.csv"
        code, stdout, err = run_cli("classify", folder, "--generated", folder / "fakes", "--out", out, "--json", *root)
        assert code == 0, err
        summary = json.loads(stdout)
        assert (summary["images"], summary["generated"]) == (len(labels), n_gen)
        assert summary["warnings"] == []
        assert validate_submission(out, labels) == []


def test_a_generated_folder_deeper_inside_the_real_one_is_not_read_as_real_images(run_cli, case, tmp_path):
    """`classify real/ --generated real/out/fakes/` was refused as real/ holding loose images and a sub-folder of
    images (out/), the --generated folder unnamed; out/ holding anything else is still refused."""
    real, gen, labels, root = case
    shutil.copytree(gen, real / "out" / "fakes")
    out = tmp_path / "s.csv"
    code, stdout, err = run_cli("classify", real, "--generated", real / "out" / "fakes", "--out", out, "--json",
                                *root)
    assert code == 0, err
    assert json.loads(stdout)["images"] == len(labels)
    assert validate_submission(out, labels) == []
    shutil.copytree(gen, real / "out" / "more")  # images of out/ that are not the generated ones: not dropped
    code, _, err = run_cli("classify", real, "--generated", real / "out" / "fakes", "--out", out, *root)
    one_line_error(code, err, "holds both images", "(out)")


def test_a_feature_model_too_small_for_the_images_is_refused_before_any_image_is_decoded(tmp_path, run_cli):
    """--features convnext_atto on 16-pixel images failed with a torch traceback at the first batch, after the
    ImageNet weights were fetched and every image decoded."""
    real, gen, _ = write_case(tmp_path / "case", size=16)
    args = ["classify", real, "--generated", gen, "--method", "knn", "--out", tmp_path / "s.csv", "--data-root",
            tmp_path / "data"]
    code, _, err = run_cli(*args, "--features", "convnext_atto")
    one_line_error(code, err, "--features convnext_atto: convnext_atto needs at least 32 pixels, got 16 (the "
                   "images' own size; pass --image-size N to resize them)")
    code, _, err = run_cli(*args, "--features", "beit_base_patch16_224", "--image-size", "64")
    one_line_error(code, err, "--features beit_base_patch16_224: beit_base_patch16_224 takes only 224-pixel images")
    assert not (tmp_path / "data").exists() and not (tmp_path / "s.csv").exists()


def test_a_feature_model_without_imagenet_weights_is_refused_before_any_image_is_decoded(tmp_path, run_cli):
    """--features conv5 was refused when the model was built, after the decoding, with the trainer's advice
    (--init none), an option classify does not have."""
    real, gen, _ = write_case(tmp_path / "case", size=16)
    code, _, err = run_cli("classify", real, "--generated", gen, "--method", "knn", "--features", "conv5", "--out",
                           tmp_path / "s.csv", "--data-root", tmp_path / "data")
    line = one_line_error(code, err, "--features conv5: conv5 has no ImageNet weights; choose a model with them "
                          "(resnet18, vgg11, vit_b_32; see: ganfp models list), or checkpoint")
    assert "--init" not in line and not (tmp_path / "data").exists()

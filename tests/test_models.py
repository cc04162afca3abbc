"""The model registry: every registered model is built, embedded, re-headed, saved and loaded the same way."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ganfp.errors import GanfpError, InputError, RuntimeFailure
from ganfp.models import create_model, list_models, read_state_dict

SIZE = 32
MODELS = list_models()


def test_registry_holds_the_papers_four_architectures():
    assert set(MODELS) == {"conv5", "resnet18", "vgg11", "vit_b_32"}


def test_the_model_option_help_names_every_registered_model():
    """`--model`'s help lists the names by hand (the registry imports torch, which `ganfp --help` must not):
    a model registered, renamed or dropped must be edited there too."""
    from ganfp.cli.options import MODEL_NAMES

    assert list(MODEL_NAMES) == MODELS


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    torch.manual_seed(0)
    return create_model(request.param, num_classes=2, image_size=SIZE).eval()


def test_forward_embed_and_new_head(model):
    x = torch.randn(3, 1, SIZE, SIZE)  # grayscale input, the stage's image size
    assert model(x).shape == (3, 2)
    features = model.embed(x)
    assert features.shape == (3, model.num_features)
    model.reset_head(5)
    assert model(x).shape == (3, 5)
    assert torch.allclose(model.embed(x), features)  # a new head leaves the backbone alone
    model.reset_head(2)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_weights_round_trip(model, tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    loaded = create_model(model.name, num_classes=2, image_size=SIZE, weights=path)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_new_classes_keep_the_backbone_and_replace_the_head(model, tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    loaded = create_model(model.name, num_classes=3, image_size=SIZE, weights=path)
    x = torch.randn(2, 1, SIZE, SIZE)
    assert torch.allclose(loaded.eval().embed(x), model.embed(x), atol=1e-5)
    assert loaded(x).shape == (2, 3)


def test_weights_that_do_not_match_fail_loudly(model, tmp_path):
    state = model.state_dict()
    dropped = next(k for k in state if not model.is_head_key(k))
    path = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in state.items() if k != dropped}, str(path))
    with pytest.raises(InputError, match=r"partial\.safetensors: weights do not match.*1 missing"):
        create_model(model.name, num_classes=2, image_size=SIZE, weights=path)


def test_bare_timm_state_dict_with_rgb_stem_is_adapted(tmp_path):
    import timm

    net = timm.create_model("resnet18", num_classes=1000, in_chans=3)
    path = tmp_path / "resnet18_imagenet_like.pth"
    torch.save(net.state_dict(), path)
    model = create_model("resnet18", num_classes=2, image_size=SIZE, weights=path)
    assert torch.allclose(model.net.conv1.weight, net.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(model.net.layer4[1].conv2.weight, net.layer4[1].conv2.weight)


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."],
                         ids=["data-parallel", "compiled", "both"])
def test_a_state_dict_saved_from_a_wrapped_model_loads(tmp_path, prefix):
    """DataParallel, DDP and torch.compile save every name with their prefix: the file was refused as not fitting."""
    import timm

    net = timm.create_model("resnet18", num_classes=1000, in_chans=1)
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in net.state_dict().items()}, "epoch": 3}, path)
    model = create_model("resnet18", num_classes=2, image_size=SIZE, weights=path)
    assert torch.equal(model.net.layer4[1].conv2.weight, net.layer4[1].conv2.weight)


def test_pickled_objects_are_never_unpickled(tmp_path):
    flag = tmp_path / "payload-ran"

    class Evil:
        def __reduce__(self):  # unpickling calls open(flag, "w"): the file appears only if the payload runs
            return (open, (str(flag), "w"))

    for path in (tmp_path / "evil.pth", tmp_path / "evil_raw.pth"):
        if path.name == "evil.pth":
            torch.save({"w": Evil()}, path)  # torch's zip format, as a real checkpoint would be
        else:
            path.write_bytes(pickle.dumps({"w": Evil()}))
        with warnings.catch_warnings(record=True) as seen, pytest.raises(
                InputError, match=f"{path.name}: not a weights file ganfp can read safely: a pickle of other objects"):
            warnings.simplefilter("always")
            read_state_dict(path)
        assert not flag.exists(), "the pickle's payload ran: torch.load must use weights_only=True"
        assert [str(w.message) for w in seen] == []  # the one-line error only: no torch warning printed before it


def test_a_damaged_weights_file_is_called_damaged_not_unsafe(tmp_path):
    """Bytes that are no pickle (a file cut short or damaged in a copy) were refused as holding objects ganfp
    would not unpickle, which sent the user looking for code in a file that held none."""
    path = tmp_path / "cut.pth"
    torch.save({"w": torch.zeros(64)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match="cut.pth: cannot be read as weights: damaged, cut short"):
        read_state_dict(path)
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputError, match="cut.pth: cannot be read as weights: damaged, cut short"):
        read_state_dict(path)


def test_each_model_normalises_as_its_weights_expect(tmp_path):
    from ganfp.checkpoint import load_checkpoint, model_meta, save_model
    from ganfp.data.loader import to_model_input
    from ganfp.inference import predict_proba

    assert create_model("vit_b_32", image_size=SIZE).norm == (0.5, 0.5)  # timm's ViT config: mean 0.5, std 0.5
    assert create_model("resnet18", image_size=SIZE).norm == pytest.approx((0.449, 0.226))
    torch.manual_seed(0)
    model = create_model("conv5", image_size=SIZE).eval()
    model.norm = (0.5, 0.5)  # as a ViT's: recorded in the checkpoint, used again at inference
    save_model(tmp_path / "m.safetensors", model, model_meta(model, ["a", "b"], SIZE))
    loaded, meta = load_checkpoint(tmp_path / "m.safetensors")
    assert (meta["mean"], meta["std"]) == (0.5, 0.5) and loaded.norm == (0.5, 0.5)
    images = torch.randint(0, 256, (3, SIZE, SIZE), dtype=torch.uint8)
    with torch.no_grad():
        expected = model(to_model_input(images, norm=(0.5, 0.5))).softmax(-1).numpy()
        cnn_norm = model(to_model_input(images)).softmax(-1).numpy()
    probs = predict_proba(loaded, images, batch_size=2)
    assert np.allclose(probs, expected, atol=1e-5) and not np.allclose(probs, cnn_norm, atol=1e-5)


@pytest.mark.parametrize("change, words", [
    (lambda m: m.pop("num_classes"), "lacks 'num_classes'"),
    (lambda m: m.update(model="resnet19"), "unknown model 'resnet19'"),
    (lambda m: m.update(num_classes="two"), "invalid 'num_classes'"),
    (lambda m: m.update(classes=["a"]), "names 1 classes but num_classes is 2"),
    (lambda m: m.update(std=0), "invalid 'std'"),
])
def test_checkpoint_with_bad_metadata_is_one_line(tmp_path, run_cli, class_folder, change, words):
    from ganfp.checkpoint import load_checkpoint, model_meta, write_safetensors

    model = create_model("conv5", image_size=16)
    meta = model_meta(model, ["a", "b"], 16)
    change(meta)
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, {k: v.contiguous() for k, v in model.state_dict().items()}, meta)
    with pytest.raises(InputError, match=words):
        load_checkpoint(path)
    code, _, err = run_cli("train-stage", "--data", class_folder, "--out", tmp_path / "s", "--model", "conv5",
                           "--image-size", "16", "--init", path, "--data-root", tmp_path / "root")
    assert code == 2 and words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(InputError, match="conv5, resnet18, vgg11, vit_b_32"):
        create_model("resnet19")


@pytest.mark.parametrize("arguments, message", [
    ({"name": 5}, r"name=5: must be text"),
    ({"num_classes": 0}, r"num_classes=0: must be at least 1"),
    ({"image_size": 0}, r"image_size=0: must be at least 1"),
    ({"image_size": 32.0}, r"image_size=32.0: must be a whole number"),
    ({"weights": 1}, r"weights=1: must be a path"),
])
def test_create_model_names_an_argument_of_the_wrong_kind(arguments, message):
    with pytest.raises(InputError, match=message):
        create_model(**{"name": "conv5", **arguments})


def test_conv5_has_no_imagenet_weights():
    with pytest.raises(InputError, match="conv5 has no ImageNet weights"):
        create_model("conv5", weights="imagenet")


def test_imagenet_download_failure_is_one_clear_line(monkeypatch):
    import timm

    import ganfp.models.factory as factory

    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(factory, "check_weights_reachable", lambda name: None)  # the hub looked reachable
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeFailure) as err:
        create_model("resnet18", weights="imagenet")
    assert "--init none" in str(err.value) and "--init FILE" in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, GanfpError)


@pytest.mark.parametrize("damage", ["empty", "cut short"])
def test_damaged_cached_imagenet_weights_are_named_not_blamed_on_the_network(monkeypatch, tmp_path, damage):
    """A cached weights file that no longer loads (a download cut off, a disk that lost writes) is named, with the
    way out; "could not download" sent users to check a network that was never used."""
    from huggingface_hub import constants
    from safetensors.torch import save_file
    from timm.models import get_pretrained_cfg

    repo = get_pretrained_cfg("resnet18").hf_hub_id
    snapshot = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    weights = snapshot / "model.safetensors"
    save_file({"fc.weight": torch.zeros(4, 4)}, str(weights))
    weights.write_bytes(b"" if damage == "empty" else weights.read_bytes()[:40])
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the cached file is read; nothing is downloaded
    with pytest.raises(RuntimeFailure) as err:
        create_model("resnet18", weights="imagenet")
    message = str(err.value)
    assert message.startswith(f"{weights}: the cached ImageNet weights for resnet18 cannot be read")
    assert "delete the file to download them again" in message and "download ImageNet" not in message
    assert "\n" not in message


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "unreachable"])
def test_offline_imagenet_fails_fast_without_trying_the_hub(monkeypatch, tmp_path, how):
    import socket
    import time

    import timm
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", how == "HF_HUB_OFFLINE")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def unreachable(*a, **kw):
        raise OSError("no route to host")

    def must_not_download(name, pretrained=False, **kw):
        raise AssertionError("the hub was tried (a minute of retries when offline)")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    monkeypatch.setattr(timm, "create_model", must_not_download)
    started = time.perf_counter()
    with pytest.raises(RuntimeFailure, match="not cached.*--init none, or from a local weights file: --init FILE"):
        create_model("vit_b_32", image_size=SIZE, weights="imagenet")
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("name", MODELS)
def test_the_registry_minimum_is_the_smallest_image_the_model_takes(name):
    """`models list` prints the registry's minimum; a wrong one refused sizes that train, or let through a size
    that failed at the first batch."""
    from ganfp.models import model_entry
    from ganfp.models.sizes import smallest_image_size

    assert smallest_image_size(name) == model_entry(name).min_image_size


@pytest.mark.parametrize("name, size, problem", [
    ("convnext_atto", 16, "convnext_atto needs at least 32 pixels, got 16"),  # poolings leave nothing
    ("deit_tiny_patch16_224", 8, "deit_tiny_patch16_224 needs at least 16 pixels, got 8"),  # one patch
    ("beit_base_patch16_224", 64, "beit_base_patch16_224 takes only 224-pixel images (its input size is fixed)"),
    ("deit_tiny_patch16_224", 40, "deit_tiny_patch16_224 cuts images into 16-pixel patches, so 40 pixels would "
                                  "leave the last 8 rows and columns unseen; use a multiple of 16 (32 or 48)"),
    ("convnext_atto", 32, None),
    ("beit_base_patch16_224", 224, None),
    ("deit_tiny_patch16_224", 48, None),
], ids=["pooled-away", "under-one-patch", "fixed-grid", "part-of-a-patch", "convnet-fits", "fixed-grid-fits",
        "whole-patches"])
def test_a_timm_model_is_told_the_image_sizes_it_takes(name, size, problem):
    from ganfp.models import image_size_problem

    found = image_size_problem(name, size)
    assert found == problem if problem is None else problem in found


def test_models_list_says_the_smallest_image_and_whether_imagenet_weights_exist(run_cli):
    code, out, err = run_cli("models", "list", "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in __import__("json").loads(out)}
    assert {n: (r["min_image_size"], r["imagenet_weights"]) for n, r in rows.items()} == {
        "conv5": (8, False), "resnet18": (8, True), "vgg11": (32, True), "vit_b_32": (32, True)}
    code, out, _ = run_cli("models", "list")
    assert "min size (px)" in out and "ImageNet weights" in out


def test_models_help_says_what_each_command_does_in_full(run_cli, monkeypatch):
    """`ganfp models --help` said "The model registry." and cut the list command's description short ("...")."""
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli("models", "--help")
    assert code == 0
    assert "The models --model and --features accept." in out and "..." not in out.split("Commands:")[1]
    assert "List the models, the smallest image each takes, and its ImageNet" in out


def test_a_model_built_with_numpy_numbers_saves(tmp_path):
    """`num_classes=np.int64(2)` was kept as numpy's, and saving the model failed in json.dumps (int64)."""
    from ganfp.checkpoint import load_checkpoint, model_meta, save_model

    model = create_model("conv5", num_classes=np.int64(2), image_size=np.int64(32))
    save_model(tmp_path / "model.safetensors", model, model_meta(model, ["a", "b"], 32))
    assert load_checkpoint(tmp_path / "model.safetensors")[1]["num_classes"] == 2

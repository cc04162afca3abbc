"""The model registry: every registered model is built, embedded, re-headed, saved and loaded the same way."""

from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from ganfp.errors import GanfpError, InputError, RuntimeFailure
from ganfp.models import create_model, list_models, read_state_dict

SIZE = 32
MODELS = list_models()


def test_registry_holds_the_papers_four_architectures():
    assert set(MODELS) == {"conv5", "resnet18", "vgg11", "vit_b_32"}


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


def test_pickled_objects_are_never_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(InputError, match="evil.pth: not a readable weights file"):
        read_state_dict(path)


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(InputError, match="conv5, resnet18, vgg11, vit_b_32"):
        create_model("resnet19")


def test_conv5_has_no_imagenet_weights():
    with pytest.raises(InputError, match="conv5 has no ImageNet weights"):
        create_model("conv5", weights="imagenet")


def test_imagenet_download_failure_is_one_clear_line(monkeypatch):
    import timm

    real = timm.create_model

    def offline(name, pretrained=False, **kw):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(name, pretrained=False, **kw)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeFailure) as err:
        create_model("resnet18", weights="imagenet")
    assert "--weights none" in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, GanfpError)

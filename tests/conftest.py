"""Shared fixtures: tiny image datasets built on the fly, and the CLI run in-process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers.attribution import CLASSES, blobs, class_images, save
from helpers.images import write_class_folder

@pytest.fixture
def one_torch_thread():
    """Tiny convs gain nothing from threads, and on a shared 2-core machine competing threads spin 100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    return write_class_folder(tmp_path / "ds")


@pytest.fixture
def run_cli(capsys):
    """Run `ganfp ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from ganfp.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()  # only this run's output: a fixture's stage logs its warnings to the same stderr
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A data root holding the built-in demo data, built once per test session."""
    from ganfp.data.adapters.demo import ensure_demo

    root = tmp_path_factory.mktemp("demo-root")
    ensure_demo(root)
    return root


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Path:
    """generated/<class>/ (8 each), real/<class>/ (4 each), unknown/ (4 per class, shuffled) and labels.csv."""
    root = tmp_path_factory.mktemp("attribution")
    rng = np.random.default_rng(0)
    ids, truth = [], []
    for c, cls in enumerate(CLASSES):
        save(root / "train" / "generated" / cls, f"gen_{cls}", class_images(rng, c, 8))
        save(root / "train" / "real" / cls, f"real_{cls}", class_images(rng, c, 4))
        unknown = class_images(rng, c, 4)
        ids += save(root / "unknown", f"unknown_{cls}", unknown)
        truth += [cls] * len(unknown)
    (root / "labels.csv").write_text("id,label\n" + "".join(f"{i},{t}\n" for i, t in zip(ids, truth)))
    return root


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    images, truth = blobs(np.random.default_rng(1))
    order = np.random.default_rng(2).permutation(len(truth))
    ids = save(root / "generated", "img", images[order])
    (root / "labels.csv").write_text("id,generator\n" + "".join(f"{i},{truth[j]}\n" for i, j in zip(ids, order)))
    return root


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (minutes: documented training and benchmark commands)")


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` run only with --run-slow (or GANFP_RUN_SLOW=1): CI's default run stays short."""
    if config.getoption("--run-slow") or os.environ.get("GANFP_RUN_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

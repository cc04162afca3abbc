"""`ganfp --help` and `ganfp fetch-data --list` stay fast: nothing heavy is imported until a command needs it,
`ganfp classify` imports scikit-learn only to calibrate, `ganfp attribute` only for the methods that read it, and a
demo set already built is read without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "numpy", "PIL", "sklearn", "timm", "torchvision", "safetensors")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def imported_after(code: str, tmp_path: Path) -> list[str]:
    """The heavy modules present in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    env = {**os.environ, "PYTHONPATH": SRC, "GANFP_DATA": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_cli_imports_nothing_heavy(tmp_path):
    assert imported_after("import ganfp.cli", tmp_path) == []


def test_help_and_dataset_list_import_nothing_heavy(tmp_path):
    run = "from ganfp.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass"
    assert imported_after(run.format(args=["--help"]), tmp_path) == []
    assert imported_after(run.format(args=["fetch-data", "--list", "--json"]), tmp_path) == []
    assert imported_after(run.format(args=["attribute", "--help"]), tmp_path) == []


def test_membership_scoring_leaves_scikit_learn_to_calibration(tmp_path):
    """scikit-learn's metrics took 1.7 s of every `ganfp classify` start, though only --calibrate reads them."""
    assert "sklearn" not in imported_after("import ganfp.classify", tmp_path)


def test_attribution_leaves_scikit_learn_to_the_methods_that_read_it(tmp_path):
    """knn and centroid read no scikit-learn, yet `ganfp attribute` imported it (1.3 s) through ganfp.data.split,
    whose check of a class too small to train on it reads; linear and the clusterers import it themselves."""
    assert "sklearn" not in imported_after("import ganfp.attribution.run", tmp_path)
    assert "sklearn" not in imported_after("import ganfp.data.split", tmp_path)


def test_a_demo_set_already_built_is_read_without_scikit_learn(tmp_path, demo_root):
    """The demo's generator (PCA + Gaussian mixture) is scikit-learn's, but only a build fits it: reading a demo
    set imported it (1.4 s) to learn the demo's version, on every command given a demo spec."""
    load = f"from ganfp.data.adapters import load_manifest\nload_manifest('demo:gans-test', {str(demo_root)!r})"
    assert "sklearn" not in imported_after(load, tmp_path)
    assert "sklearn" not in imported_after("import ganfp.data.demo_attribution", tmp_path)

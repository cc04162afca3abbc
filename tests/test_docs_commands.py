"""Every command in a ```bash block of README.md and docs/*.md runs, as written, on the demo data.

Blocks are found when the tests are collected, so a changed doc is tested as it now reads. The
commands run in document order (README first, then docs/ by name) in one working folder, as a
reader following the docs would: a later command may read what an earlier one wrote. HOME is a
temporary folder whose ~/.local/share/ganfp is the data root (also $GANFP_DATA), holding the demo.

`ganfp ...` lines run in-process (the CLI's own entry point, much faster than a new interpreter
each); anything else runs in bash. Two short lists, keyed by the command text, say what cannot
run here, and why:

- SKIP: commands that need the network, a GPU or several processes, or that would run this suite;
- SLOW: commands that train or benchmark for minutes; marked `slow`, they run with --run-slow.

A command in neither list runs and must exit 0. Folder names the docs use for "your own data" are
stood in for by demo folders (PLACEHOLDERS), or by demo images written as DICOM and NIfTI.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.docs import DOCS, ROOT, fenced_blocks

from ganfp.data.demo_attribution import ensure_attribution_demo


SKIP = {
    "pip install .": "installs the package into this environment, which the suite already runs on",
    'pip install ".[test]" && python -m pytest -q': "runs this test suite itself",
    "torchrun --nproc_per_node=4 -m ganfp train-stage --data casia --out runs/casia --model resnet18":
        "needs 4 processes and the casia download (a Kaggle account)",
    "torchrun --nproc_per_node=4 -m ganfp chain --model resnet18 --chain paper":
        "needs 4 processes and the paper chain's downloads (Kaggle, ImageCLEF registration)",
    "OUT=bench-results PYTHON=python benchmarks/gpu_all.sh": "needs a CUDA GPU",
    'pip install "torch<=2.14.1" "torchvision<=0.29.1" --index-url https://download.pytorch.org/whl/cpu':
        "downloads torch from the PyTorch index",
    'pip install ".[medical]"': "installs packages (pydicom and nibabel are already in the test extra)",
    "ganfp attribute imageclef-gans-2025:attribution-unknown --out attribution.csv":
        "needs the ImageCLEF 2025 data (registration), imported with fetch-data --from",
}
SLOW = {
    "ganfp chain --model resnet18 --chain demo": "trains the four-stage demo chain (about 6 min on 2 cores)",
    "ganfp classify real/ --generated generated/ --calibrate dev/ --out sub.csv":
        "calibration cross-validates every scorer (about 1 min)",
    "ganfp classify real/ --out submission.csv --checkpoint runs/demo-resnet18": "needs the demo chain run",
    "ganfp classify demo:gans-test --method classifier --out paper.csv": "needs the demo chain run",
    "ganfp evaluate paper.csv ~/.local/share/ganfp/demo/gans-test-labels.csv": "reads paper.csv, from the step before",
    "python benchmarks/train_throughput.py --model resnet18 --image-size 64 --batch 64 --steps 4 --rounds 20":
        "a benchmark (minutes on a CPU)",
    "python benchmarks/infer_throughput.py --model resnet18 --image-size 64 --batch 256 --steps 4 --rounds 9":
        "a benchmark (minutes on a CPU)",
    "python benchmarks/knn_scale.py --device cpu --cases "
    "10000x200x512,10000x200x4096,100000x10000x512,1000000x200x512,200x1000000x512": "a benchmark (minutes)",
    "python benchmarks/demo_chain.py --models resnet18 conv5 vit_b_32 vgg11": "trains the demo chain four times",
    "python benchmarks/cpu_freed_memory.py --steps 4 --rounds 6": "a benchmark (minutes on a CPU)",
    "python benchmarks/cpu_freed_memory.py --models conv5 resnet18 --steps 4 --rounds 10":
        "a benchmark (minutes on a CPU)",
    "python benchmarks/cpu_sgd_foreach.py": "a benchmark (minutes on a CPU)",
    "OMP_NUM_THREADS=1 python benchmarks/zoo.py --write --out zoo": "fits every zoo family (minutes)",
}
# folder the docs use for the reader's own data -> the demo folder (under the data root) standing in
PLACEHOLDERS = {
    "real_images": "demo/gans-test/real_unknown_1",
    "real": "demo/gans-test/real_unknown_1",
    "generated": "demo/gans-test/generated_1",
    "gen": "demo/gans-test/generated_1",
    "dev": "demo/gans-dev",
    "my_images": "demo/covid",
    "generated_unknown": "demo-attribution-2025/generated_unknown",
    "train/generated": "demo-attribution-2025/generated",
}
# the same demo images as DICOM files and NIfTI volumes, for the docs' medical-format examples
MEDICAL_PLACEHOLDERS = {"dicom_dir": "dicom", "volumes": "nifti"}


def doc_commands() -> list[tuple[str, int, str]]:
    """(doc, line number, command without its comment) for every command line of every bash block."""
    found = []
    for doc, first, code in fenced_blocks("bash"):
        for offset, line in enumerate(code.splitlines()):
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command and not command.startswith("#"):
                found.append((doc, first + offset, command))
    return found


COMMANDS = doc_commands()


def _param(doc: str, line: int, command: str):
    marks = []
    if command in SKIP:
        marks.append(pytest.mark.skip(reason=SKIP[command]))
    elif command in SLOW:
        marks.append(pytest.mark.slow)
    return pytest.param(command, id=f"{doc}:{line}", marks=marks)


@pytest.fixture(scope="module")
def docs_env(tmp_path_factory, demo_root):
    """HOME, data root (with the demo) and the one working folder every command runs in."""
    base = tmp_path_factory.mktemp("docs")
    home = base / "home"
    data = home / ".local" / "share" / "ganfp"
    shutil.copytree(demo_root, data)
    work = base / "work"
    work.mkdir()
    ensure_attribution_demo("attribution-2025", data)
    for name, part in PLACEHOLDERS.items():
        shutil.copytree(data / part, work / name)
    for name, kind in MEDICAL_PLACEHOLDERS.items():
        write_medical(work / name, kind, data / "demo" / "gans-test" / "real_unknown_1")
    env = {"HOME": str(home), "GANFP_DATA": str(data), "GANFP_RUNS": "", "XDG_DATA_HOME": "",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return work, env


def write_medical(folder: Path, kind: str, source: Path) -> None:
    """Demo images in Hounsfield units: one DICOM file per image, or NIfTI volumes of 100 slices."""
    import numpy as np
    from helpers.medical import u8_to_hu, write_ct_dicom, write_nifti
    from PIL import Image

    slices = [u8_to_hu(np.asarray(Image.open(p).convert("L"))) for p in sorted(source.glob("*.png"))]
    if kind == "dicom":
        for i, hu in enumerate(slices):
            write_ct_dicom(folder / f"ct{i:03d}.dcm", hu)
    else:
        write_nifti(folder / "scan.nii.gz", np.stack(slices, axis=-1))


def run_in_process(command: str, run_cli) -> tuple[int, str]:
    args = [os.path.expanduser(a) for a in shlex.split(command)[1:]]
    code, out, err = run_cli(*args)
    return code, out + err


def run_in_bash(command: str, env: dict, work: Path) -> tuple[int, str]:
    bin_dir = Path(sys.executable).parent  # `python` is the interpreter running the tests
    full_env = {**os.environ, **env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    prelude = f'ganfp() {{ {shlex.quote(sys.executable)} -m ganfp "$@"; }}\n'
    done = subprocess.run(["bash", "-c", prelude + command], cwd=work, env=full_env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("command", [_param(*c) for c in COMMANDS])
def test_documented_command_runs(command, docs_env, run_cli, monkeypatch):
    work, env = docs_env
    for key, value in env.items():
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(work)
    simple = command.startswith("ganfp ") and not re.search(r"[|&;<>$`]", command)
    code, output = run_in_process(command, run_cli) if simple else run_in_bash(command, env, work)
    assert code == 0, f"`{command}` exited {code}:\n{output[-3000:]}"


def test_every_code_block_names_its_language():
    """A block without a tag is never run here, so a command in it can go stale: shell commands go in ```bash,
    help text, trees and file contents in ```text (or their own language)."""
    untagged = []
    for doc in DOCS:
        opening = True
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("```"):
                if opening and line.strip() == "```":
                    untagged.append(f"{doc.relative_to(ROOT).as_posix()}:{number}")
                opening = not opening
    assert not untagged, f"code blocks without a language: {untagged}"


def test_the_lists_name_only_commands_the_docs_still_hold():
    written = {c for _, _, c in COMMANDS}
    stale = [c for c in [*SKIP, *SLOW] if c not in written]
    assert not stale, f"no longer in the docs (remove them from SKIP/SLOW): {stale}"
    assert COMMANDS, "no ```bash blocks found"

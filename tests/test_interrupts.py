"""Interruptions as a user meets them: Ctrl-C and SIGTERM end a command with one line and leave every output whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import ganfp
from ganfp.errors import Interrupted

from conftest import write_class_folder
from helpers.membership_cases import write_case

SRC = str(Path(ganfp.__file__).resolve().parents[1])  # the processes started here run the ganfp this test imports
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX signals and advisory locks")

# Runs `ganfp ARGS...` in a new process that stops, before renaming it into place, in the fsync of the
# first file whose name holds NEEDLE, writes FLAG and sleeps: the test then signals it there.
STOP_IN_FSYNC = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    flag, needle, args = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    real_fsync = os.fsync
    def fsync(fd):
        if needle in os.readlink(f"/proc/self/fd/{fd}"):
            flag.write_text("writing")
            time.sleep(60)
        real_fsync(fd)
    os.fsync = fsync
    from ganfp.cli import main
    main(args)
    """
)


def start_and_wait(script: str, flag: Path, *args) -> subprocess.Popen:
    """Start `script` with `flag` and `args`; return the process once it has written `flag`."""
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen([sys.executable, "-c", script, str(flag), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
    deadline = time.time() + 120
    while not flag.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    if not flag.exists():
        proc.kill()
        raise AssertionError(f"the process never reached its stop: {proc.communicate()[1][-2000:]}")
    return proc


def temporaries(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.is_dir() for p in folder.rglob(".*.tmp")]


@POSIX
@pytest.mark.parametrize("sig, code, needle", [
    (signal.SIGINT, 130, "sub.csv"),  # Ctrl-C while the submission is written
    (signal.SIGTERM, 143, "sub.csv"),  # `kill`, a scheduler's time limit
    (signal.SIGTERM, 143, ".npy"),  # while the decode cache is written
])
def test_a_signal_ends_classify_with_one_line_and_every_output_whole(tmp_path, sig, code, needle):
    real, gen, _ = write_case(tmp_path / "case")
    out, root, flag = tmp_path / "out" / "sub.csv", tmp_path / "data", tmp_path / "flag"
    out.parent.mkdir()
    out.write_text("the previous submission\n")
    args = ["classify", real, "--generated", gen, "--method", "knn", "--features", "pixels16", "--out", out,
            "--data-root", root]
    proc = start_and_wait(STOP_IN_FSYNC, flag, needle, *args)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == code, err
    assert len(lines) == 1 and lines[0].startswith("error: interrupted by") and "Traceback" not in err, err
    assert out.read_text() == "the previous submission\n"  # nothing half-written, the old output kept
    assert temporaries(out.parent, root) == []  # and no temporary file left behind
    done = subprocess.run([sys.executable, "-m", "ganfp", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SRC})
    assert done.returncode == 0, done.stderr  # the next run needs no cleaning up
    assert out.read_text() != "the previous submission\n"


def test_a_stage_stopped_before_its_first_epoch_ends_does_not_point_at_a_missing_checkpoint(tmp_path):
    from ganfp.train import StageConfig, run_stage

    data = write_class_folder(tmp_path / "ds", 12, 16)
    cfg = StageConfig(name="s", dataset=str(data), model="conv5", image_size=16, batch_size=8, epochs=2, device="cpu")

    def ctrl_c_in_the_first_epoch(event, payload):
        if event == "epoch_start":
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as caught:
        run_stage(cfg, tmp_path / "s", data_root=tmp_path / "root", observer=ctrl_c_in_the_first_epoch)
    assert not (tmp_path / "s" / "last.safetensors").exists()
    assert "last.safetensors" not in str(caught.value) and "nothing was saved" in str(caught.value)
    assert caught.value.exit_code == 130

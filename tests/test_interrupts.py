"""Interruptions and concurrent runs as a user meets them: Ctrl-C and SIGTERM end a command with one line and
leave every output whole; two processes never write into one stage or chain run; a decode cache is built once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers.images import write_class_folder
from helpers.membership_cases import write_case

import ganfp
from ganfp import fileio
from ganfp.errors import Interrupted, RuntimeFailure, StopSignal


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

# Runs `ganfp ARGS...` in a new process whose first training epoch writes FLAG and sleeps.
STOP_IN_FIRST_EPOCH = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import ganfp.train as train
    def run_epoch(*args, **kwargs):
        Path(sys.argv[1]).write_text("training")
        time.sleep(60)
    train.run_epoch = run_epoch
    from ganfp.cli import main
    main(sys.argv[2:])
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


def into_a_closed_pipe(args, with_stderr: bool = False) -> tuple[int, str]:
    """`ganfp ARGS` whose reader of stdout (and of stderr with `with_stderr`: `2>&1 | head -1`) is gone before it
    writes; (exit code, stderr)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}  # buffered, as usual
    proc = subprocess.Popen([sys.executable, "-m", "ganfp", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if with_stderr else subprocess.PIPE,
                            env={**env, "PYTHONPATH": SRC})
    proc.stdout.close()
    err = b"" if with_stderr else proc.stderr.read()
    return proc.wait(timeout=300), err.decode()


@POSIX
@pytest.mark.parametrize("with_stderr", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_a_reader_gone_ends_a_command_quietly_with_its_outputs_whole(tmp_path, with_stderr):
    """`ganfp classify ... --json | head -1`: a reader that closes the pipe early got a BrokenPipeError traceback, or
    "Exception ignored ... BrokenPipeError" at exit (status 120 when stderr was the pipe). Now: exit 1, as the Python
    docs recommend, nothing printed, and the files written whole before the result was printed."""
    from ganfp.submission import validate_submission

    real, gen, labels = write_case(tmp_path / "case")
    out, scores, root = tmp_path / "sub.csv", tmp_path / "scores.csv", tmp_path / "data"
    code, err = into_a_closed_pipe(["classify", real, "--generated", gen, "--method", "knn", "--features", "pixels16",
                                    "--out", out, "--scores", scores, "--data-root", root, "--json"], with_stderr)
    assert code == 1 and err == "", err
    assert validate_submission(out, labels) == [] and len(scores.read_text().splitlines()) == len(labels) + 1
    assert temporaries(tmp_path, root) == []
    for args in (["fetch-data", "--list", "--data-root", root], ["fetch-data", "--list", "--json"], ["--help"],
                 ["classify", "--help"], ["--version"]):
        assert into_a_closed_pipe(args, with_stderr) == (1, ""), args


@POSIX
def test_a_stderr_reader_gone_before_the_outputs_are_written_keeps_them_as_they_were(tmp_path):
    """The warning of a file skipped as not an image, written while the images are listed, meets the closed pipe
    (`2>&1 | head -1`): the command stops there, quietly, as at a signal, and writes no output."""
    real, gen, _ = write_case(tmp_path / "case")
    (real / "scan.raw").write_bytes(b"not an image")
    out, root = tmp_path / "sub.csv", tmp_path / "data"
    out.write_text("the previous submission\n")
    code, err = into_a_closed_pipe(["classify", real, "--generated", gen, "--method", "knn", "--features", "pixels16",
                                    "--out", out, "--data-root", root], with_stderr=True)
    assert code == 1 and out.read_text() == "the previous submission\n"
    assert temporaries(tmp_path, root) == []


@POSIX
def test_a_broken_pipe_of_another_reader_keeps_its_traceback():
    """Only a reader of stdout or stderr that left is a quiet exit: a BrokenPipeError of another pipe (a worker's)
    is a bug, and says where it happened."""
    script = textwrap.dedent("""
        import sys
        from ganfp.cli import app, main
        @app.command("pipe")
        def pipe():
            raise BrokenPipeError(32, "a worker's pipe")
        main(["pipe"])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ,
                                                                                                "PYTHONPATH": SRC})
    assert done.returncode == 1 and "Traceback" in done.stderr and "a worker's pipe" in done.stderr, done.stderr


def stopped_by(error: BaseException):
    """A stand-in for a writer or builder that fails (or is interrupted) before it returns."""
    def stop(*args, **kwargs):
        raise error

    return stop


def contents(paths) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in paths}


SIGTERM_STOP = StopSignal("interrupted by SIGTERM; an output not finished keeps its previous content", 143)


@pytest.mark.parametrize("target, error, code", [
    ("ganfp.submission.write_scores", StopSignal("interrupted by Ctrl-C (SIGINT)", 130), 130),
    ("ganfp.report.build_report", RuntimeFailure("the report could not be built"), 1),
    ("ganfp.report.build_report", SIGTERM_STOP, 143),
], ids=["ctrl-c-in-the-scores", "error-in-the-report", "sigterm-in-the-report"])
def test_classify_stopped_after_its_submission_is_ready_replaces_no_output(tmp_path, run_cli, monkeypatch, target,
                                                                           error, code):
    """A new submission beside the scores and report of an earlier run reads as one result, and is not: an error or
    a signal while a later output is built leaves every output as the earlier run wrote it."""
    with_report = target.startswith("ganfp.report")
    if with_report:
        pytest.importorskip("matplotlib", reason="the report needs the plots extra (matplotlib)")
    real, gen, _ = write_case(tmp_path / "case")
    out = tmp_path / "out"
    outputs = {"--out": out / "sub.csv", "--scores": out / "scores.csv"}
    if with_report:
        outputs["--report"] = out / "report.html"
    args = ["classify", real, "--generated", gen, "--method", "knn", "--features", "pixels16", "--data-root",
            tmp_path / "data", *(arg for option, path in outputs.items() for arg in (option, path))]
    done, _, err = run_cli(*args)
    assert done == 0, err
    first = contents(outputs.values())
    monkeypatch.setattr(target, stopped_by(error))
    stopped, _, err = run_cli(*args, "--used-fraction", "0.25")  # another submission than the first run's
    assert stopped == code, err
    assert contents(outputs.values()) == first
    assert temporaries(out) == []
    monkeypatch.undo()
    done, _, err = run_cli(*args, "--used-fraction", "0.25")
    assert done == 0 and (out / "sub.csv").read_bytes() != first[outputs["--out"]], err  # it would have differed


def test_evaluate_stopped_while_drawing_its_plot_keeps_its_previous_report(tmp_path, run_cli, monkeypatch):
    """--report and --plot describe one evaluation: a report of this run beside the figure of another is not."""
    pytest.importorskip("matplotlib", reason="the report and the plot need the plots extra (matplotlib)")
    from ganfp.submission import write_scores

    real, gen, truth = write_case(tmp_path / "case")
    preds, labels, out = tmp_path / "scores.csv", tmp_path / "labels.csv", tmp_path / "out"
    write_scores(preds, list(truth), [float(i % 5) for i in range(len(truth))])
    labels.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in truth.items()))
    outputs = [out / "report.html", out / "figure.png"]
    args = ["evaluate", preds, labels, "--report", outputs[0], "--plot", outputs[1], "--real", real, "--generated", gen,
            "--report-n", "2", "--data-root", tmp_path / "data"]
    done, _, err = run_cli(*args)
    assert done == 0, err
    first = contents(outputs)
    monkeypatch.setattr("ganfp.plots.plot_report", stopped_by(SIGTERM_STOP))
    stopped, _, err = run_cli(*args, "--used-fraction", "0.25")
    assert stopped == 143, err
    assert contents(outputs) == first
    assert temporaries(out) == []


def tiny_stage(data: Path, out: Path, root: Path, *extra) -> list:
    return ["train-stage", "--data", data, "--out", out, "--model", "conv5", "--image-size", "16",
            "--batch-size", "8", "--epochs", "2", "--data-root", root, "--device", "cpu", *extra]


@POSIX
def test_a_second_train_stage_into_the_same_out_is_refused_before_any_work(tmp_path, run_cli):
    data = write_class_folder(tmp_path / "ds", 12, 16)
    out, flag = tmp_path / "s", tmp_path / "flag"
    first = start_and_wait(STOP_IN_FIRST_EPOCH, flag, *tiny_stage(data, out, tmp_path / "root"))
    try:
        code, _, err = run_cli(*tiny_stage(data, out, tmp_path / "root2", "--lr", "0.1"))
        assert code == 1, err
        assert err.strip() == (f"error: --out {out} is in use by process {first.pid} (another ganfp run writing "
                               "there); wait for it to finish, or choose another --out")
        assert not (tmp_path / "root2").exists()  # refused before decoding anything
        assert not (out / "meta.json").exists() and not (out / "model.safetensors").exists()
    finally:
        first.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock with the process
        first.communicate(timeout=60)
    code, _, err = run_cli(*tiny_stage(data, out, tmp_path / "root"))
    assert code == 0, err  # a killed run's lock is never stale
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "meta.json", "model.safetensors"]


@POSIX
def test_a_second_chain_into_the_same_run_is_refused(tmp_path, run_cli):
    data = write_class_folder(tmp_path / "ds", 12, 16)
    chain = tmp_path / "c.toml"
    chain.write_text(f'name = "c"\n[defaults]\nimage_size = 16\nbatch_size = 8\nepochs = 1\n'
                     f'[[stages]]\nname = "one"\ndataset = "{data}"\n')
    runs = tmp_path / "runs"
    args = ["chain", "--chain", chain, "--model", "conv5", "--runs-dir", runs, "--data-root", tmp_path / "root",
            "--init", "none", "--device", "cpu"]
    with fileio.folder_lock(runs / "c-conv5", "test", "test"):  # as another process's chain holds it
        code, _, err = run_cli(*args)
        assert code == 1 and f"chain run {runs / 'c-conv5'} is in use by process {os.getpid()}" in err, err
        assert "--runs-dir" in err and len(err.strip().splitlines()) == 1
        assert sorted(p.name for p in (runs / "c-conv5").iterdir()) == [".ganfp.lock"]  # nothing trained
    code, _, err = run_cli(*args)
    assert code == 0, err


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


def test_a_stage_stopped_while_its_files_are_written_says_how_to_resume_it(tmp_path, run_cli, monkeypatch):
    """Ctrl-C after the last epoch, while history.csv and meta.json were written, ended with no word of --resume,
    though --resume finishes the stage without training it again."""
    data = write_class_folder(tmp_path / "ds", 12, 16)
    out = tmp_path / "s"
    monkeypatch.setattr("ganfp.train.write_history", stopped_by(StopSignal("interrupted by Ctrl-C (SIGINT)", 130)))
    code, _, err = run_cli(*tiny_stage(data, out, tmp_path / "root"))
    assert code == 130, err
    message = " ".join(err.split("error: ")[-1].split())
    assert "stage s interrupted while its files were written, after epoch 2" in message
    assert f"the last good checkpoint is {out / 'last.safetensors'}" in message and "plus --resume" in message
    monkeypatch.undo()
    code, out_text, err = run_cli(*tiny_stage(data, out, tmp_path / "root", "--resume", "--json"))
    assert code == 0, err
    assert "resuming s after epoch 2" in err and json.loads(out_text)[0]["epochs_run"] == 2  # no epoch trained again
    assert sorted(p.name for p in out.iterdir()) == ["history.csv", "meta.json", "model.safetensors"]


def two_stage_chain(tmp_path: Path) -> list:
    """`ganfp chain` arguments for a chain of two tiny stages, "one" and "two", into tmp_path/runs."""
    one, two = write_class_folder(tmp_path / "d1", 12, 16, seed=1), write_class_folder(tmp_path / "d2", 12, 16, seed=2)
    chain = tmp_path / "c.toml"
    chain.write_text(f'name = "c"\n[defaults]\nimage_size = 16\nbatch_size = 8\nepochs = 1\n'
                     f'[[stages]]\nname = "one"\ndataset = "{one}"\n[[stages]]\nname = "two"\ndataset = "{two}"\n')
    return ["chain", "--chain", chain, "--model", "conv5", "--runs-dir", tmp_path / "runs", "--data-root",
            tmp_path / "root", "--device", "cpu", "--json"]


def interrupt_in_stage_two(args: list, run_cli, monkeypatch) -> None:
    """Run `two_stage_chain`'s `args` (with --epochs 2) until Ctrl-C in stage two's second epoch: its
    last.safetensors holds epoch 1."""
    import ganfp.train as train

    real_epoch = train.run_epoch

    def stop_in_stage_two_epoch_2(fit, epoch, observer):
        if fit.cfg.name == "two" and epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(fit, epoch, observer)

    monkeypatch.setattr(train, "run_epoch", stop_in_stage_two_epoch_2)
    assert run_cli(*args)[0] == 130
    monkeypatch.undo()


def error_line(err: str) -> str:
    """The one error line a command ended with (progress lines may come before it), with its wrapping undone."""
    assert "Traceback" not in err and err.count("error: ") == 1, err
    return " ".join(err.split("error: ")[-1].split())


def test_a_chain_stopped_before_its_first_stage_says_nothing_was_written(tmp_path, run_cli, monkeypatch):
    """Ctrl-C while the chain checked its stages' datasets ended with the generic line, no word of the chain."""
    args = two_stage_chain(tmp_path)
    monkeypatch.setattr("ganfp.chain.plan_stages", stopped_by(StopSignal("interrupted by Ctrl-C (SIGINT)", 130)))
    code, _, err = run_cli(*args)
    assert code == 130
    assert error_line(err) == ("chain c interrupted before stage 1 (one) started; nothing was written; run the same "
                             "command again to go on from stage 1 (one)")
    assert not (tmp_path / "runs" / "c-conv5" / "chain.json").exists()


def test_a_chain_stopped_between_stages_says_which_are_saved_and_goes_on_when_run_again(tmp_path, run_cli,
                                                                                        monkeypatch):
    import ganfp.chain as chain

    args, written, real_write = two_stage_chain(tmp_path), [], chain._write_record

    def write_then_stop_before_stage_two(run_dir, record):
        written.append(1)
        if len(written) == 3:  # before stage 1, after it, then before stage 2
            raise StopSignal("interrupted by SIGTERM", 143)
        real_write(run_dir, record)

    monkeypatch.setattr(chain, "_write_record", write_then_stop_before_stage_two)
    code, _, err = run_cli(*args)
    run_dir = tmp_path / "runs" / "c-conv5"
    assert code == 143
    assert error_line(err) == (f"chain c interrupted after stage 1 (one) finished, before stage 2 (two) started; "
                             f"stage 1 is finished in {run_dir}; run the same command again to go on from stage 2 "
                             "(two)")
    monkeypatch.undo()
    code, out, err = run_cli(*args)
    assert code == 0, err
    assert [row["status"] for row in json.loads(out)] == ["skipped", "trained"]


def test_a_chain_stopped_while_a_stage_decodes_says_nothing_of_it_was_saved(tmp_path, run_cli, monkeypatch):
    import ganfp.train as train

    args, real_load, calls = two_stage_chain(tmp_path), train.load_stage_images, []

    def load_then_stop_in_stage_two(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise StopSignal("interrupted by Ctrl-C (SIGINT)", 130)
        return real_load(*a, **kw)

    monkeypatch.setattr(train, "load_stage_images", load_then_stop_in_stage_two)
    code, _, err = run_cli(*args)
    assert code == 130
    assert error_line(err) == ("stage two interrupted before training started; no epoch had finished, so nothing was "
                             "saved; run the same command again")
    assert (tmp_path / "runs" / "c-conv5" / "01-one" / "meta.json").exists()


def _manifest(tmp_path: Path):
    from ganfp.data.adapters import load_manifest

    data = write_class_folder(tmp_path / "ds", 12, 16)
    return load_manifest(str(data), tmp_path / "root")


def test_a_killed_cache_build_leaves_no_temporary_file_after_the_next_build(tmp_path):
    from ganfp.data.cache import cache_key, load_images

    manifest, root = _manifest(tmp_path), tmp_path / "root"
    folder = root / "cache" / "images"
    folder.mkdir(parents=True)
    key = cache_key(manifest, 16)
    orphan = folder / f".{key}.npy.0123abcd.tmp"  # what a SIGKILL during the build leaves (GBs for a real set)
    orphan.write_bytes(b"\0" * 4096)
    other = folder / ".0000000000.npy.0123abcd.tmp"  # another entry's: maybe a build running now, left alone
    other.write_bytes(b"x")
    images = load_images(manifest, 16, root)
    assert images.images.shape == (24, 16, 16) and not images.reused
    assert not orphan.exists() and other.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted([other.name, f"{key}.json", f"{key}.npy"])


def test_two_processes_building_one_cache_decode_each_image_once(tmp_path, monkeypatch):
    import ganfp.data.cache as cache

    manifest, root = _manifest(tmp_path), tmp_path / "root"
    decoded, real_decode = [], cache.decode_with_depth

    def slow_decode(*args, **kwargs):
        decoded.append(args[0])
        time.sleep(0.02)
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(cache, "decode_with_depth", slow_decode)
    results = {}

    def build(name):
        results[name] = cache.load_images(manifest, 16, root)

    # threads stand in for processes: each opens the lock file itself, and flock locks an open file, not a process
    first = threading.Thread(target=build, args=("first",))
    first.start()
    while not decoded:
        time.sleep(0.005)
    build("second")
    first.join()
    assert len(decoded) == len(manifest)  # the second waited, then read what the first decoded
    assert not results["first"].reused and results["second"].reused
    assert (results["first"].images == results["second"].images).all()
    assert {p.suffix for p in (root / "cache" / "images").iterdir()} == {".npy", ".json"}  # no lock file left


@pytest.fixture
def finished_stage(tmp_path):
    from ganfp.train import StageConfig, run_stage

    data = write_class_folder(tmp_path / "ds", 12, 16)
    for name, cls in (("a", "not_used"), ("b", "used")):
        (data / name).rename(data / cls)
    cfg = StageConfig(name="s", dataset=str(data), model="conv5", image_size=16, batch_size=8, epochs=1, device="cpu")
    run_stage(cfg, tmp_path / "stage", data_root=tmp_path / "root")
    return tmp_path / "stage", data


@POSIX
def test_classify_refuses_a_stage_that_another_run_is_training_now(tmp_path, run_cli, finished_stage):
    """`train-stage --force` (or a chain's --from-stage) over a finished stage: its model file is not the result."""
    stage, data = finished_stage
    args = ["classify", data / "used", "--method", "classifier", "--checkpoint", stage, "--out", tmp_path / "s.csv",
            "--data-root", tmp_path / "root"]
    with fileio.folder_lock(stage, "test", "test"):  # as a train-stage process holds it while it trains
        code, _, err = run_cli(*args)
        assert code == 1 and f"{stage}: process {os.getpid()} is training this stage now" in err, err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s.csv").exists()
    code, _, err = run_cli(*args)
    assert code == 0, err


def test_a_checkpoint_retrained_while_it_is_read_is_refused(finished_stage, monkeypatch):
    """A stage that starts (and even finishes) training again during the read: the tensors may be either run's."""
    import json

    import ganfp.checkpoint as checkpoint
    from ganfp.errors import RuntimeFailure

    stage, _ = finished_stage
    real_read = checkpoint.read_safetensors

    def read_while_retrained(path, tensors=True):
        result = real_read(path, tensors)
        if tensors:
            meta = json.loads((stage / "meta.json").read_text())
            (stage / "meta.json").write_text(json.dumps({**meta, "run_id": "another run"}))
        return result

    assert checkpoint.load_checkpoint(stage)[1]["classes"] == ["not_used", "used"]
    monkeypatch.setattr(checkpoint, "read_safetensors", read_while_retrained)
    with pytest.raises(RuntimeFailure, match="started training again while it was read"):
        checkpoint.load_checkpoint(stage)


def test_a_killed_embedding_leaves_no_temporary_file_after_the_next_one(finished_stage, tmp_path):
    """The embedding cache (`--features checkpoint`, ImageNet features) keeps no partial array of a killed run."""
    import torch

    from ganfp.data.adapters import load_manifest
    from ganfp.membership.features import checkpoint_file, deep_features, embedding_key
    from ganfp.membership.spaces import parse_features

    stage, data = finished_stage
    manifest, root, space = load_manifest(str(data), tmp_path / "root"), tmp_path / "root", parse_features("checkpoint")
    key = embedding_key(space, manifest, 16, torch.device("cpu"), checkpoint_file(stage))
    folder = root / "cache" / "embeddings"
    folder.mkdir(parents=True)
    orphan = folder / f".{key}.npy.0123abcd.tmp"
    orphan.write_bytes(b"\0" * 4096)
    features = deep_features(space, manifest, image_size=16, device=torch.device("cpu"), data_root=root,
                             checkpoint=stage)
    assert features.shape[0] == len(manifest) and not orphan.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{key}.json", f"{key}.npy"])


@POSIX
def test_a_signal_is_not_taken_for_a_bad_file_by_code_that_catches_every_error(tmp_path, run_cli, finished_stage,
                                                                                 monkeypatch):
    """Readers wrap third-party decoders in `except Exception` (safetensors, DICOM, NIfTI, hub downloads): a signal
    arriving there must still stop the command as a signal, not report the file as unreadable (or be swallowed)."""
    import ganfp.checkpoint as checkpoint

    stage, data = finished_stage
    real_open = checkpoint.safe_open

    def open_while_killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # `kill PID` while the checkpoint is read
        time.sleep(5)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "safe_open", open_while_killed)
    code, _, err = run_cli("classify", data / "used", "--method", "classifier", "--checkpoint", stage,
                           "--out", tmp_path / "s.csv", "--data-root", tmp_path / "root")
    assert code == 143 and err.strip().startswith("error: interrupted by SIGTERM"), err
    assert "not a readable" not in err


def test_a_chain_says_so_when_an_interrupted_stage_cannot_be_continued_and_starts_over(tmp_path, run_cli,
                                                                                         monkeypatch):
    """A chain re-run started a stage over without a word when its last.safetensors could not be read (a chain
    cannot ask for --force, so it starts over; the user must still learn that the epochs so far are lost)."""
    from ganfp.checkpoint import read_safetensors, write_safetensors

    args = [*two_stage_chain(tmp_path), "--epochs", "2"]
    interrupt_in_stage_two(args, run_cli, monkeypatch)
    last = tmp_path / "runs" / "c-conv5" / "02-two" / "last.safetensors"
    tensors, meta = read_safetensors(last)
    del meta["state"]["history"]  # an older or edited file: it crashed with an IndexError at the stage's end
    write_safetensors(last, tensors, meta)
    code, out, err = run_cli(*args)
    assert code == 0 and f"{last}: cannot be read (damaged or cut short); two starts over" in " ".join(err.split())
    assert [row["status"] for row in json.loads(out)] == ["skipped", "trained"]


def test_a_chain_continues_an_interrupted_stage_with_more_epochs_and_refuses_fewer(tmp_path, run_cli, monkeypatch):
    """More epochs counted as other settings: the chain started the stage over, losing its epochs, as
    `train-stage --resume` refused them; now both continue it, and both refuse fewer epochs than it has done."""
    import ganfp.train as train

    args, real_epoch = two_stage_chain(tmp_path), train.run_epoch

    def stop_in_epoch_3(fit, epoch, observer):
        if epoch == 3:
            raise KeyboardInterrupt
        return real_epoch(fit, epoch, observer)

    monkeypatch.setattr(train, "run_epoch", stop_in_epoch_3)
    assert run_cli(*args, "--epochs", "3")[0] == 130
    monkeypatch.undo()
    stage = tmp_path / "runs" / "c-conv5" / "01-one"
    before = (stage / "last.safetensors").read_bytes()
    code, _, err = run_cli(*args, "--epochs", "1")
    assert code == 2 and "stage 1 (one): interrupted, saved after epoch 2" in error_line(err), err
    assert "give --epochs 2 or more to continue it; or add --from-stage one to start it over" in error_line(err)
    assert (stage / "last.safetensors").read_bytes() == before
    code, out, err = run_cli(*args, "--epochs", "4")
    assert code == 0 and "resuming one after epoch 2 with epochs 3 -> 4" in " ".join(err.split()), err
    assert [(r["status"], r["epochs_run"]) for r in json.loads(out)] == [("trained", 4), ("trained", 4)]
    assert json.loads((stage / "meta.json").read_text())["extended"] == [{"after_epoch": 2, "epochs": [3, 4]}]


def _files(folder: Path) -> dict:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")} if folder.exists() else {}


def test_a_dry_run_says_what_a_chain_would_train_and_writes_nothing(tmp_path, run_cli, monkeypatch):
    """Before an hour of training a user can see which stages would train, which resume and which are kept, and
    have every check made (`--from-stage` typos, datasets), without a stage trained or a file of the run written."""
    args, runs = [*two_stage_chain(tmp_path), "--epochs", "2"], tmp_path / "runs"

    def plan(*more):
        code, out, err = run_cli(*args, "--dry-run", *more)
        assert code == 0, err
        return [(r["stage"], r["action"], r["why"]) for r in json.loads(out)]

    assert plan() == [("one", "train", ""), ("two", "train", "")] and not runs.exists()
    interrupt_in_stage_two(args, run_cli, monkeypatch)
    before = _files(runs)
    assert plan() == [("one", "keep", ""), ("two", "resume after epoch 1", "")]
    lost = "its run interrupted, saved after epoch 1, starts over"
    assert plan("--from-stage", "one") == [("one", "train", "--from-stage"), ("two", "train", lost)]
    assert plan("--from-stage", "two") == [("one", "keep", ""), ("two", "train", lost)]
    assert plan("--seed", "1") == [("one", "train", "settings changed: seed 0 -> 1"), ("two", "train", lost)]
    code, _, err = run_cli(*args, "--dry-run", "--from-stage", "tow")
    assert code == 2 and error_line(err).startswith("--from-stage 'tow': not a stage of chain c"), err
    assert _files(runs) == before
    code, out, err = run_cli(*args)  # what the dry run said
    assert code == 0 and "resuming two after epoch 1" in err
    assert [r["status"] for r in json.loads(out)] == ["skipped", "trained"]


def test_a_stage_renamed_after_it_was_interrupted_is_named_before_the_run_trains(tmp_path, run_cli, monkeypatch):
    """Renaming an interrupted stage in the chain file trained it from the start in a new folder, and its old
    folder's epochs were neither continued nor reused, without a word: the dry run and the run both say so first, as
    a warning, which --json puts in the first stage's "warnings" (the run printed it as a progress line, in no JSON)."""
    args = [*two_stage_chain(tmp_path), "--epochs", "2"]
    interrupt_in_stage_two(args, run_cli, monkeypatch)
    chain = Path(args[2])
    chain.write_text(chain.read_text().replace('name = "two"', 'name = "second"'))
    old = tmp_path / "runs" / "c-conv5" / "02-two"
    says = f"{old} holds a stage interrupted, saved after epoch 1, that no stage of chain c trains in now"
    for extra, actions in ((["--dry-run"], ["keep", "train"]), ([], ["skipped", "trained"])):
        code, out, err = run_cli(*args, *extra)
        said = " ".join(err.split())
        assert code == 0 and said.count(f"warning: {says}") == 1 and f"WARNING: {says}" not in said, (extra, err)
        first, second = json.loads(out)
        assert [first.get("action", first.get("status")), second.get("action", second.get("status"))] == actions
        assert [w for w in first["warnings"] if says in " ".join(w.split())] == first["warnings"][:1], (extra, out)
        assert not any(says in w for w in second["warnings"]), (extra, out)
    assert (old / "last.safetensors").is_file()  # left for the user to decide


def test_a_dry_run_warns_of_each_stage_whose_epochs_are_too_few_steps(tmp_path, run_cli):
    """A batch as large as a stage's split makes each epoch one SGD step: the run says so only as that stage starts,
    after the stages before it have trained (hours, at the task's scale); the dry run says it of every stage that
    would train, in the run's words, and of none that is kept."""
    args = [*two_stage_chain(tmp_path), "--batch-size", "256"]
    code, _, err = run_cli(*args, "--dry-run")
    said = [f"stage {name}: batch size 256 is not smaller than the" for name in ("one", "two")]
    assert code == 0 and all(line in " ".join(err.split()) for line in said), err
    warned = {line for line in " ".join(err.split()).split("warning: ") if "SGD step" in line}
    assert len(warned) == 2, err
    code, _, err = run_cli(*args)
    assert code == 0 and all(line.strip() in " ".join(err.split()) for line in warned), err
    code, _, err = run_cli(*args, "--dry-run")
    assert code == 0 and "SGD step" not in err, err


@POSIX
def test_a_signal_while_outputs_are_renamed_waits_for_the_last_rename(tmp_path, monkeypatch):
    """SIGTERM between two renames of one batch left the first output new and the second old: a stage's best model
    beside the resume state of the epoch before, a submission beside the scores of an earlier run."""
    from ganfp.cli import signals_as_errors

    sig = signal.SIGTERM  # SIGINT is the same path, but a test run in the background inherits it ignored
    first, second = tmp_path / "model.safetensors", tmp_path / "last.safetensors"
    for path in (first, second):
        path.write_text("old")
    real_replace, renamed = os.replace, []

    def rename_then_signal(src, dst):
        real_replace(src, dst)
        renamed.append(dst)
        if len(renamed) == 1:
            os.kill(os.getpid(), sig)  # as a scheduler's time limit arriving just then

    monkeypatch.setattr(fileio.os, "replace", rename_then_signal)
    with signals_as_errors():
        handler = signal.getsignal(sig)
        with pytest.raises(StopSignal) as caught:
            with fileio.written_together() as batch:
                fileio.write_text(first, "new", batch)
                fileio.write_text(second, "new", batch)
        assert signal.getsignal(sig) is handler  # the handler is put back once the renames are done
    assert first.read_text() == second.read_text() == "new" and caught.value.exit_code == 128 + sig
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors", "model.safetensors"]


def test_a_chain_keeps_an_early_stopped_stage_when_only_its_epochs_grow(tmp_path, run_cli, monkeypatch):
    """`--epochs` applies to every stage: raising it to extend an interrupted stage 2 retrained a finished stage 1
    from scratch (a changed setting), and stage 2 started over from its new weights, losing its epochs. A stage
    whose early stopping ended it stops at the same epoch under any larger max, so it is kept."""
    import torch

    import ganfp.train as train
    from ganfp.checkpoint import read_safetensors

    one, two = write_class_folder(tmp_path / "d1", 12, 16, seed=1), write_class_folder(tmp_path / "d2", 12, 16, seed=2)
    chain = tmp_path / "c.toml"  # stage one's lr 0.1 and patience 1 stop it after epoch 3 of 4; two runs to its max
    chain.write_text(f'name = "c"\n[defaults]\nimage_size = 16\nbatch_size = 8\nlr = 0.01\n[[stages]]\nname = "one"\n'
                     f'dataset = "{one}"\nlr = 0.1\npatience = 1\n[[stages]]\nname = "two"\ndataset = "{two}"\n')
    base = ["chain", "--chain", chain, "--model", "conv5", "--data-root", tmp_path / "root", "--device", "cpu",
            "--json"]
    args, real_epoch = [*base, "--runs-dir", tmp_path / "runs"], train.run_epoch

    def stop_in_stage_two_epoch_2(fit, epoch, observer):
        if fit.cfg.name == "two" and epoch == 2:
            raise KeyboardInterrupt
        return real_epoch(fit, epoch, observer)

    monkeypatch.setattr(train, "run_epoch", stop_in_stage_two_epoch_2)
    assert run_cli(*args, "--epochs", "4")[0] == 130
    monkeypatch.undo()
    run = tmp_path / "runs" / "c-conv5"
    meta = json.loads((run / "01-one" / "meta.json").read_text())
    assert (meta["metrics"]["epochs_run"], meta["metrics"]["best_epoch"]) == (3, 2)  # it did stop early
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (run / "01-one").iterdir()}
    code, out, err = run_cli(*args, "--epochs", "6")
    assert code == 0 and "kept one in" in err, err
    assert ("early stopping ended it after epoch 3 (best epoch 2, patience 1), so epochs 4 -> 6 change nothing"
            in " ".join(err.split())), err
    assert "resuming two after epoch 1 with epochs 4 -> 6" in " ".join(err.split()), err
    assert [(r["status"], r["epochs_run"]) for r in json.loads(out)] == [("skipped", 3), ("trained", 6)]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (run / "01-one").iterdir()} == files
    assert json.loads((run / "chain.json").read_text())["stages"][0]["digest"] == meta["digest"]  # as trained
    assert run_cli(*base, "--runs-dir", tmp_path / "full", "--epochs", "6")[0] == 0  # uninterrupted, with 6
    full = tmp_path / "full" / "c-conv5"
    for stage in ("01-one", "02-two"):
        assert (run / stage / "history.csv").read_text() == (full / stage / "history.csv").read_text()
        mine, ref = (read_safetensors(d / stage / "model.safetensors")[0] for d in (run, full))
        assert mine.keys() == ref.keys() and all(torch.equal(t, ref[k]) for k, t in mine.items())
    code, out, err = run_cli(*args, "--epochs", "6")  # the same larger value again: nothing trains
    assert code == 0 and [r["status"] for r in json.loads(out)] == ["skipped", "skipped"] and "kept one" in err, err
    code, out, err = run_cli(*args, "--epochs", "7")  # stage two ran all its 6 epochs: more of them train it again
    assert code == 0 and "retraining two: settings changed: epochs 6 -> 7" in " ".join(err.split()), err
    assert [(r["status"], r["epochs_run"]) for r in json.loads(out)] == [("skipped", 3), ("trained", 7)]
    code, out, err = run_cli(*args, "--epochs", "4")  # back to the first value: its own digest keeps stage one
    assert code == 0 and "kept one" not in err and "retraining one" not in err, err
    assert [(r["status"], r["epochs_run"]) for r in json.loads(out)] == [("skipped", 3), ("trained", 4)]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (run / "01-one").iterdir()} == files
    code, out, err = run_cli(*args, "--epochs", "4", "--patience", "2")  # with patience 2 it would not stop at 3
    assert code == 0 and "retraining one: settings changed: patience 1 -> 2" in " ".join(err.split()), err
    assert [r["status"] for r in json.loads(out)] == ["trained", "trained"]

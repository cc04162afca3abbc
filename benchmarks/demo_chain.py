"""Wall time of the demo chain for each model, in fresh run folders (the numbers in docs/performance.md).

    python benchmarks/demo_chain.py [--models conv5 resnet18 vgg11 vit_b_32] [--device cpu]

Each model runs `ganfp chain --model M --chain demo` as a user would (a new process, default demo
settings), then once more to time the re-run that skips finished stages. Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ganfp import ui


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout


def best_scores(stages: list[dict]) -> dict:
    """Each stage's best validation score from `chain --json`, under the key the summary gives it: the
    pseudo-labelled gans-test stage has pseudo-agreement, never accuracy."""
    found = {}
    for key in ("best_val_accuracy", "best_val_pseudo_agreement"):
        found[key] = {s["stage"]: s[key] for s in stages if key in s}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["conv5", "resnet18", "vgg11", "vit_b_32"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ganfp-bench-"))
    env = {**os.environ, "GANFP_DATA": str(work / "data"), "GANFP_RUNS": str(work / "runs")}
    build_s, _ = timed([sys.executable, "-m", "ganfp", "fetch-data", "demo"], env)
    rows, results = [], {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "demo_build_s": round(build_s, 1)}
    for model in args.models:
        cmd = [sys.executable, "-m", "ganfp", "chain", "--model", model, "--chain", "demo", "--device", args.device, "--json"]
        first_s, out = timed(cmd, env)
        again_s, _ = timed(cmd, env)
        stages = json.loads(out)
        epochs = sum(s["epochs_run"] for s in stages)
        final = stages[-2]  # gans-dev: the labelled membership stage
        rows.append([model, f"{first_s:.1f}", epochs, f"{again_s:.1f}", f"{final['best_val_accuracy']:.3f}"])
        results[model] = {"wall_s": round(first_s, 1), "epochs": epochs, "rerun_s": round(again_s, 1),
                          **best_scores(stages)}
        ui.info(f"{model}: {first_s:.1f}s, {epochs} epochs, re-run {again_s:.1f}s")  # as it goes: long runs
    ui.print_table(f"demo chain wall time ({results['machine']}, demo built in {build_s:.1f}s)",
                   ["model", "wall time (s)", "epochs (all stages)", "re-run (s)", "gans-dev val acc"], rows)
    print(json.dumps(results))


if __name__ == "__main__":
    main()

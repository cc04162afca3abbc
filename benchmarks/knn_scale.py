"""Time and peak memory of the membership neighbour passes (ganfp.membership.distances) as sets grow.

    python benchmarks/knn_scale.py                      # the default cases on the best device
    python benchmarks/knn_scale.py --device cpu --cases 10000x200x512,100000x10000x512

A case QxRxD is Q query vectors against R reference vectors of dimension D (512: a model's
embedding; 4096: 64x64 pixels), e.g. 10,000 generated images against 200 real ones. Each case runs
in a fresh process, so its peak memory is its own: `nearest` (k nearest references of every query)
and `soft_count` (the density scorer's smooth ball count), both with the Euclidean metric, blocked
as the membership scorers call them. Prints one table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine  # noqa: E402

from ganfp import ui  # noqa: E402
from ganfp.device import resolve_device  # noqa: E402

CPU_CASES = "10000x200x512,10000x200x4096,100000x10000x512"
CUDA_CASES = CPU_CASES + ",1000000x10000x512,100000x100000x512"


def case_list(text: str) -> list[str]:
    """`--cases` checked when parsed: a malformed case must stop the run before the first case, not after."""
    cases = text.split(",")
    bad = [c for c in cases if not re.fullmatch(r"[1-9]\d*x[1-9]\d*x[1-9]\d*", c)]
    if bad:
        raise argparse.ArgumentTypeError(f"{', '.join(map(repr, bad))}: each case is QxRxD, three positive integers")
    return cases


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--cases", type=case_list, default=None,
                   help=f"comma-separated QxRxD (default CPU: {CPU_CASES}; CUDA adds larger ones)")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one case, in a fresh process
    return p.parse_args(argv)


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_case(case: str, device: torch.device, k: int) -> dict:
    """One case in this process: inputs, then both passes, timed; memory over the inputs' own."""
    from ganfp.membership.distances import Euclidean, nearest, soft_count

    q, r, d = (int(v) for v in case.split("x"))
    g = torch.Generator().manual_seed(0)
    queries, refs = torch.randn(q, d, generator=g), torch.randn(r, d, generator=g)
    inputs = rss_mib()
    nearest(queries[:8], refs[:64], k, Euclidean(), device)  # warm-up: CUDA context and cuBLAS handles are not the pass
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    dist, _ = nearest(queries, refs, k, Euclidean(), device)
    nearest_s = time.perf_counter() - started
    radius = float(dist[:, -1].median())
    started = time.perf_counter()
    soft_count(queries, refs, radius, Euclidean(), device)
    count_s = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"case": case, "queries": q, "references": r, "dim": d, "k": k, "device": str(device),
            "nearest_s": round(nearest_s, 3), "soft_count_s": round(count_s, 3),
            "pairs_per_s": round(q * r / nearest_s), "data_mib": round((q + r) * d * 4 / 2**20), "rss_with_inputs_mib": round(inputs),
            "peak_rss_mib": round(peak), "extra_rss_mib": round(max(0.0, peak - inputs)),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated(device) / 2**20) if device.type == "cuda" else None}


def fits(case: str, device: torch.device) -> str | None:
    """Why a case cannot run here (inputs over half the free memory), or None."""
    q, r, d = (int(v) for v in case.split("x"))
    need = (q + r) * d * 4
    with open("/proc/meminfo") as f:
        free = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))
    if need > free / 2:
        return f"inputs need {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"
    if device.type == "cuda" and r * d * 4 > torch.cuda.mem_get_info(device)[0] / 2:
        return "references do not fit in half the GPU's free memory"
    return None


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.child:
        print(json.dumps(run_case(args.child, device, args.k)), flush=True)
        return None
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    cases = args.cases or (CUDA_CASES if device.type == "cuda" else CPU_CASES).split(",")
    results = []
    for case in cases:
        reason = fits(case, device)
        if reason:
            ui.warn(f"{case}: skipped ({reason})")
            results.append({"case": case, "skipped": reason})
            continue
        ui.info(f"{case} on {device}")
        cmd = [sys.executable, __file__, "--child", case, "--device", str(device), "--k", str(args.k)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            ui.warn(f"{case}: failed ({tail})")
            results.append({"case": case, "failed": tail})
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        ui.info(f"  nearest {results[-1]['nearest_s']:.2f} s, soft_count {results[-1]['soft_count_s']:.2f} s")
    rows = []
    for r in results:
        if "nearest_s" not in r:
            rows.append([r["case"], "skipped" if "skipped" in r else "failed", None, None, None, None, None])
            continue
        rows.append([r["case"], f"{r['nearest_s']:.2f}", f"{r['soft_count_s']:.2f}", f"{r['pairs_per_s'] / 1e6:.1f}",
                     r["data_mib"], r["extra_rss_mib"], r["peak_gpu_mib"]])
    ui.print_table(f"membership distances on {device} (k={args.k}, Euclidean)",
                   ["QxRxD", "nearest s", "count s", "Mpairs/s", "data MiB", "+RSS MiB", "GPU MiB"], rows,
                   caption="data: the two input sets; +RSS: peak resident memory beyond the process with its inputs; "
                           "GPU: peak allocated")
    result = {"benchmark": "knn_scale", "device": str(device), "k": args.k, "cases": results, "machine": {**machine(device), "load_at_start": load_at_start}}
    emit(result)
    return result


if __name__ == "__main__":
    main()

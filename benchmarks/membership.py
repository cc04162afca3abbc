"""Membership scorers on the demo data: the numbers and the default method in docs/membership.md.

    python benchmarks/membership.py [--checkpoint RUN_DIR] [--data-root DIR] [--device cpu] [--timing] [--write-docs]

Calibration uses demo:gans-dev (labelled, scored against its own 500 generated images); the report
is on demo:gans-test (100 real images against 2,000 generated; labels in gans-test-labels.csv).
Rows: every scorer in every feature space at the default k, fusion with equal and with dev-fitted
weights, what `ganfp classify --calibrate` would choose, the paper's chain classifier (from
--checkpoint, else "not run"), GAN-Leaks (raw-pixel L2 to the nearest generated image,
uncalibrated) and "all used". Prints a table and one JSON line; --write-docs puts the table in
docs/membership.md with this command line. --timing adds timings at the task's scale.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import emit, machine

from ganfp import ui
from ganfp.classify import DEFAULT_FEATURES, DEFAULT_K, DEFAULT_METHOD, calibrate, generated_manifest, read_real
from ganfp.device import resolve_device
from ganfp.membership import MembershipScorer, ScoringSetup, fit_weights, fuse, parse_features, roc_auc
from ganfp.membership.scorers import K_SCORERS
from ganfp.membership.distances import Euclidean, nearest
from ganfp.metrics import binary_metrics
from ganfp.submission import decide, read_labels

DOCS = Path(__file__).resolve().parents[1] / "docs" / "membership.md"
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
FEATURES = ["pixels32", "pixels64", "ssim32", "ssim64"]
SCORERS = ["knn", "retrieval", "density"]


def demo_sets(data_root):
    dev = read_real("demo:gans-dev", data_root)
    test = read_real("demo:gans-test", data_root)
    truth = read_labels(test.info["labels"])
    by_id = dict(zip(truth.ids, truth.labels.tolist()))
    y_test = np.array([by_id[i] for i in test.ids])
    y_dev = (dev.labels == dev.classes.index("used")).astype(int)
    return (dev, generated_manifest(dev.info["generated"]), y_dev), (test, generated_manifest(test.info["generated"]), y_test)


def row(name: str, features: str, y: np.ndarray, scores: np.ndarray | None, labels: np.ndarray | None = None,
        dev_auc: float | None = None) -> dict:
    """ROC-AUC of the scores; F1 and accuracy of `labels`, by default the top half by score."""
    labels = decide(scores, used_fraction=0.5) if labels is None else labels
    m = binary_metrics(y, labels, scores)
    return {"method": name, "features": features, "dev_roc_auc": dev_auc, "roc_auc": m["roc_auc"], "f1": m["f1"],
            "accuracy": m["accuracy"]}


def timing(device: torch.device) -> dict:
    """Seconds after embedding at the 2023 task's size (200 real x 10,000 generated), and at 100x on a GPU."""
    from ganfp.membership import AutoencoderConfig, SSIMDistance, train_autoencoder
    from ganfp.membership.distances import pairwise_matrix

    g = torch.Generator().manual_seed(0)
    out = {}
    for dim in (512, 4096):
        real, gen = torch.randn(200, dim, generator=g), torch.randn(10_000, dim, generator=g)
        nearest(real[:8], gen[:64], 1, Euclidean(), device)  # warm-up
        start = time.perf_counter()
        nearest(real, gen, DEFAULT_K, Euclidean(), device)
        nearest(gen, real, 1, Euclidean(), device)
        out[f"knn+retrieval passes 10000x200 {dim}-d"] = round(time.perf_counter() - start, 3)
    real, gen = torch.rand(200, 64, 64, generator=g), torch.rand(10_000, 64, 64, generator=g)
    start = time.perf_counter()
    pairwise_matrix(real, gen, SSIMDistance(64), device)
    out["ssim64 matrix 10000x200"] = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    train_autoencoder(gen[:, ::2, ::2].contiguous(), AutoencoderConfig(), 0, device)
    out["autoencoder 1000 steps"] = round(time.perf_counter() - start, 3)
    if device.type == "cuda":
        real, gen = torch.randn(10_000, 512, generator=g), torch.randn(100_000, 512, generator=g)
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        nearest(real, gen, DEFAULT_K, Euclidean(), device)
        torch.cuda.synchronize(device)
        out["knn pass 100000x10000 512-d"] = round(time.perf_counter() - start, 3)
        out["peak GPU MiB"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return out


def markdown(rows: list[dict], command: str, info: dict, calibration: str, timings: dict | None) -> str:
    lines = [f"Produced by `{command}` ({info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, "
             f"{info['device']}, torch {info['torch']}).", "",
             "| method | features | dev ROC-AUC | test ROC-AUC | test F1 @ q=0.5 | test accuracy @ q=0.5 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        missing = "not run" if r["roc_auc"] is None else "-"
        cells = [f"{r[k]:.3f}" if isinstance(r[k], float) else missing for k in ("dev_roc_auc", "roc_auc", "f1", "accuracy")]
        lines.append(f"| {r['method']} | {r['features']} | " + " | ".join(cells) + " |")
    lines += ["", f"Calibration on dev chose: {calibration}."]
    if timings:
        lines += ["", "Timings (s): " + "; ".join(f"{k}: {v}" for k, v in timings.items()) + "."]
    return "\n".join(lines)


def write_docs(table: str) -> None:
    text = DOCS.read_text()
    if START not in text or END not in text:
        sys.exit(f"{DOCS}: no {START} ... {END} markers to write the table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    from ganfp.fileio import write_text

    write_text(DOCS, f"{head}{START}\n{table}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="chain run folder (or stage folder) of the paper's classifier")
    parser.add_argument("--data-root", help="data folder holding the demo (built if absent)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", nargs="+", default=FEATURES)
    parser.add_argument("--timing", action="store_true", help="also time distances and the autoencoder at the task's scale")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 gives steady timings on a shared machine)")
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS.name}")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    (dev, dev_gen, y_dev), (test, test_gen, y_test) = demo_sets(args.data_root)
    features = args.features + (["checkpoint"] if args.checkpoint and "checkpoint" not in args.features else [])
    rows = []
    started = time.perf_counter()

    def setup(spec: str) -> ScoringSetup:
        return ScoringSetup(parse_features(spec), 64, device, data_root=args.data_root, checkpoint=args.checkpoint, seed=args.seed)

    for spec in features:
        on_dev, on_test = MembershipScorer(dev, dev_gen, setup(spec)), MembershipScorer(test, test_gen, setup(spec))
        label = parse_features(spec).label
        for name in SCORERS:
            title = f"{name} (k={DEFAULT_K})" if name in K_SCORERS else name
            rows.append(row(title, label, y_test, on_test.score(name, DEFAULT_K), dev_auc=roc_auc(on_dev.score(name, DEFAULT_K), y_dev)))
        dev_members, members = on_dev.members("fusion", DEFAULT_K), on_test.members("fusion", DEFAULT_K)
        rows.append(row("fusion, equal weights", label, y_test, fuse(members), dev_auc=roc_auc(fuse(dev_members), y_dev)))
        weights = fit_weights(dev_members, y_dev)
        rows.append(row("fusion, dev-fitted weights", label, y_test, fuse(members, weights),
                        dev_auc=roc_auc(fuse(dev_members, weights), y_dev)))
    on_dev, on_test = MembershipScorer(dev, dev_gen, setup(DEFAULT_FEATURES)), MembershipScorer(test, test_gen, setup(DEFAULT_FEATURES))
    rows.append(row("autoencoder", "own (pixels32)", y_test, on_test.score("autoencoder", DEFAULT_K),
                    dev_auc=roc_auc(on_dev.score("autoencoder", DEFAULT_K), y_dev)))

    choice = calibrate("demo:gans-dev", setup(DEFAULT_FEATURES), None, None, None, has_checkpoint=False)
    chosen, _ = on_test.final(choice.method, choice.k or DEFAULT_K, choice.weights)
    rows.append(row(f"--calibrate on dev: {choice.method}" + (f" k={choice.k}" if choice.k else "")
                    + f", q={choice.used_fraction:.2f}", parse_features(DEFAULT_FEATURES).label, y_test, chosen,
                    decide(chosen, used_fraction=choice.used_fraction), dev_auc=choice.dev_auc))
    default, _ = on_test.final(DEFAULT_METHOD, DEFAULT_K)
    rows.append(row(f"**default: {DEFAULT_METHOD}**" + (f" (k={DEFAULT_K})" if DEFAULT_METHOD in (*K_SCORERS, "fusion") else ""),
                    parse_features(DEFAULT_FEATURES).label, y_test, default,
                    dev_auc=roc_auc(on_dev.final(DEFAULT_METHOD, DEFAULT_K)[0], y_dev)))

    if args.checkpoint:  # no dev number: the chain's gans-dev stage was trained on the dev images
        classifier = MembershipScorer(test, None, setup("pixels")).score("classifier", DEFAULT_K)
        rows.append(row("paper's chain classifier, P(used)", "checkpoint", y_test, classifier))
    else:
        rows.append({"method": "paper's chain classifier, P(used)", "features": "-", "dev_roc_auc": None,
                     "roc_auc": None, "f1": None, "accuracy": None})
    leaks = {name: MembershipScorer(s, g, setup("pixels64")).neighbours().real_to_generated(1)[0][:, 0].numpy()
             for name, s, g in (("dev", dev, dev_gen), ("test", test, test_gen))}
    rows.append(row("GAN-Leaks: -(L2 to nearest generated)", "raw pixels (64x64)", y_test, -leaks["test"],
                    dev_auc=roc_auc(-leaks["dev"], y_dev)))
    rows.append(row("all used", "-", y_test, np.ones(len(y_test)), np.ones(len(y_test), dtype=int), dev_auc=0.5))

    info = machine(device)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    ui.print_table("membership on demo:gans-test (calibration on demo:gans-dev)",
                   ["method", "features", "dev ROC-AUC", "ROC-AUC", "F1 @ q=0.5", "accuracy @ q=0.5"],
                   [[r["method"], r["features"], r["dev_roc_auc"], r["roc_auc"], r["f1"], r["accuracy"]] for r in rows],
                   caption=f"calibration: {choice.describe()}")
    result = {"benchmark": "membership", "rows": rows, "calibration": choice.describe(), "machine": info,
              "seconds": round(time.perf_counter() - started, 1)}
    if args.timing:
        result["timing"] = timing(device)
        ui.info(f"timing: {result['timing']}")
    if args.write_docs:
        write_docs(markdown(rows, command, info, choice.describe(), result.get("timing")))
    emit(result)


if __name__ == "__main__":
    main()

"""Attribution and clustering on the demo sets: the results tables in docs/attribution.md.

    python benchmarks/attribution.py [--data-root DIR] [--device cpu] [--write-docs]

demo:attribution-2025: every supervised method in every feature space (the cnn once, it reads
images), then the baselines. demo:attribution-2024: every clustering method in every feature space
with K = the true number of generators, K chosen by silhouette for k-means, then the baselines.
--write-docs puts the tables in docs/attribution.md between the benchmark markers.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from ganfp.attribution.cluster import CLUSTERERS
from ganfp.attribution.methods import METHODS, TrainerSettings
from ganfp.attribution.run import AttributeConfig, ClusterConfig, attribute, cluster
from ganfp.data.adapters import load_manifest
from ganfp.evaluation import evaluate_classes, evaluate_clusters

DOCS = Path(__file__).resolve().parents[1] / "docs" / "attribution.md"
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
FEATURES_2025 = ["pixels32", "spectrum", "residual", "pixels32+spectrum"]
FEATURES_2024 = ["pixels32", "spectrum", "residual", "spectrum+residual", "pixels32+spectrum"]


def row(*cells) -> str:
    return "| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |"


def table_2025(args, work: Path) -> list[str]:
    labels = load_manifest("demo:attribution-2025", args.data_root).info["labels"]
    lines = ["| method | features | accuracy | macro-F1 | seconds |", "| --- | --- | --- | --- | --- |"]
    runs = [(m, f, False) for m in METHODS.names(needs="features") for f in FEATURES_2025]
    runs += [("knn", "pixels32", True), ("cnn", None, False), ("fusion", "pixels32", False)]
    for method, features, use_real in runs:
        trains = METHODS.entry(method).meta["needs"] != "features"  # only a trainer reads runs_dir (and is given it)
        trainer = TrainerSettings(runs_dir=str(work / "runs") if trains else None)
        cfg = AttributeConfig(unknown="demo:attribution-2025", out=str(work / "a.csv"), method=method,
                              features=features, use_real=use_real, device=args.device,
                              data_root=args.data_root, trainer=trainer)
        started = time.perf_counter()
        attribute(cfg)
        report = evaluate_classes(work / "a.csv", labels)
        name = f"{method} (with real/)" if use_real else method
        lines.append(row(name, features or "images", report.metrics["accuracy"], report.metrics["macro_f1"],
                         f"{time.perf_counter() - started:.1f}"))
        print(lines[-1], flush=True)
    for name, base in report.baselines.items():
        lines.append(row(f"baseline: {name}", "-", base["accuracy"], base["macro_f1"], "-"))
    return lines


def table_2024(args, work: Path) -> list[str]:
    manifest = load_manifest("demo:attribution-2024", args.data_root)
    labels = manifest.info["labels"]
    k_true = len(set(r.split(",")[1] for r in Path(labels).read_text().splitlines()[1:]))
    lines = ["| method | features | K | ARI | NMI | accuracy after matching |", "| --- | --- | --- | --- | --- | --- |"]
    runs = [(m, f, k_true) for m in CLUSTERERS.names() for f in FEATURES_2024]
    runs += [("kmeans", f, None) for f in FEATURES_2024]
    baselines = None
    for method, features, k in runs:
        cfg = ClusterConfig(images="demo:attribution-2024", out=str(work / "c.csv"), clusters=k, method=method,
                            features=features, device=args.device, data_root=args.data_root)
        result = cluster(cfg)
        report = evaluate_clusters(work / "c.csv", labels)
        baselines = baselines or report.baselines  # the first run has the true K
        m = report.metrics
        lines.append(row(method, features, f"{result.k}" + (" (auto)" if k is None else ""), m["ari"], m["nmi"],
                         m["matched_accuracy"]))
        print(lines[-1], flush=True)
    for name, base in baselines.items():
        cells = (base["clusters"], base["ari"], base["nmi"], base["matched_accuracy"])
        lines.append(row(f"baseline: {name}", "-", *cells))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        text = ["**demo:attribution-2025** (100 unknown images, 5 classes):", "", *table_2025(args, work), "",
                "**demo:attribution-2024** (240 images, 3 generators):", "", *table_2024(args, work)]
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/attribution.py", *sys.argv[1:]])
    block = "\n".join([START, f"Measured with `{command}`.", "", *text, END])
    print(block)
    if args.write_docs:
        doc = DOCS.read_text()
        DOCS.write_text(doc[: doc.index(START)] + block + doc[doc.index(END) + len(END) :])


if __name__ == "__main__":
    main()

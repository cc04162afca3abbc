"""Attribution and clustering benchmarks: the results tables in docs/attribution.md.

    python benchmarks/attribution.py [--data-root DIR] [--device cpu] [--write-docs]
    python benchmarks/attribution.py --zoo [--zoo-dir DIR] [--seed N] [--threads N] [--device cpu] [--write-docs]

demo:attribution-2025: every supervised method in every feature space (the cnn once, it reads
images), then the baselines. demo:attribution-2024: every clustering method in every feature space
with K = the true number of generators, K chosen by the eigengap for k-means, then the baselines.
--write-docs puts the tables in docs/attribution.md between the benchmark markers.

--zoo builds harder problems from the generator zoo's dev splits (`build_split`, cached under
--zoo-dir/cache with the same keys as benchmarks/membership.py, so its splits are reused):

- 2024 style: PER_FAMILY generated images of every leaking 64 px family, all fitted on the same
  real slices (split seed N), shuffled together; then the VAE variants alone, which differ only in
  training length, latent size or KL weight. Every clusterer in every feature space of `zoo_spaces`,
  at the true K and at K chosen by the eigengap, then the baselines.
- 2025 style: per leaking 64 px family, SUBSETS generators fitted on the used slices of seeds
  N..N+SUBSETS-1 (independent draws of the zoo's real slices: no slice is shared), LABELLED labelled
  and UNKNOWN unknown generated images each. Every feature method in every space of `zoo_spaces`,
  knn with real/ (each subset's used slices), then the baselines. The cnn (and fusion, which trains
  it) is left out: on the pcagmm set (500 labelled images) it took 552 s, 175 s of CPU on one thread.

--write-docs puts the zoo tables between the zoo markers.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganfp.attribution.cluster import CLUSTERERS
from ganfp.attribution.defaults import DEFAULT_FEATURES, DEFAULT_METHOD
from ganfp.attribution.features import FREQUENCY
from ganfp.attribution.files import read_class_table
from ganfp.attribution.methods import METHODS, TrainerSettings
from ganfp.attribution.run import AttributeConfig, ClusterConfig, attribute, cluster
from ganfp.data.adapters import load_manifest
from ganfp.data.zoo import FAMILIES, SHAPES, MembershipSplit, build_split, shape_seed
from ganfp.data.zoo.nets import VAE
from ganfp.evaluation import evaluate_classes, evaluate_clusters
from ganfp.membership.spaces import SPACE_KINDS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "attribution.md"
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
ZOO_START, ZOO_END = "<!-- zoo-benchmark:start -->", "<!-- zoo-benchmark:end -->"
ZOO_SIZE = 64  # the side of every family but pcagmm128; spectra are only comparable at one size
PIXEL_SIDE = 32  # pixel spaces at the side of the supervised default, pixels32
PER_FAMILY = 150  # generated images of each family in a clustering set (of the dev split's 500)
SUBSETS = 5  # training subsets per family, as the 2025 organisers' five classes
LABELLED, UNKNOWN = 100, 100  # generated images per subset: labelled references, images to attribute
FEATURES_2025 = ["pixels32", "spectrum", "residual", "pixels32+spectrum"]
FEATURES_2024 = ["pixels32", "spectrum", "residual", "spectrum+residual", "pixels32+spectrum"]
# the pair spaces knn reads; wstd64 and ssim64 reached 0.81 and 0.74 mean accuracy, at chance on the memorisers
PAIR_KINDS = ("ncc", "white")


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


def zoo_spaces() -> list[str]:
    """Every vector space the registries offer, alone; then the fingerprints joined (ganfp 0.1.0's
    clustering default), and pixels joined to each fingerprint.

    Left out: kinds with a joint transform (`wstd`), which attribution refuses (it reads each image alone);
    deep spaces: ImageNet weights need the network, `checkpoint` a chain run.
    """
    pixel = [f"{e.name}{PIXEL_SIDE}" for e in SPACE_KINDS if e.obj.vectors and e.obj.joint is None]
    joins = ["+".join(FREQUENCY.names()), *(f"pixels{PIXEL_SIDE}+{name}" for name in FREQUENCY.names())]
    return list(dict.fromkeys([*pixel, *FREQUENCY.names(), *joins]))


def leaking_families() -> list[str]:
    return [e.name for e in FAMILIES if e.meta["leaks"] and e.meta["size"] == ZOO_SIZE]


def vae_families() -> list[str]:
    """The near-identical variants: one network, other training length, latent size or KL weight."""
    return [e.name for e in FAMILIES if isinstance(e.obj, VAE) and e.meta["leaks"] and e.meta["size"] == ZOO_SIZE]


def zoo_split(name: str, seed: int, zoo_dir: Path) -> MembershipSplit:
    """Benchmark seed `seed`'s dev split: the one benchmarks/membership.py builds, so its cache entry is reused."""
    return build_split(name, shape_seed(seed, "dev"), **SHAPES["dev"], cache=zoo_dir / "cache")


def save_pngs(folder: Path, ids: list[str], images: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, img in zip(ids, images):
        Image.fromarray(img).save(folder / f"{name}.png")


def write_labels(path: Path, column: str, ids: list[str], labels: list[str]) -> None:
    path.write_text(f"id,{column}\n" + "".join(f"{i},{lab}\n" for i, lab in zip(ids, labels)))


def clustering_set(families: list[str], seed: int, zoo_dir: Path, folder: Path) -> Path:
    """folder/generated: PER_FAMILY images of each family, shuffled (ids do not reveal the family); labels.csv."""
    images = np.concatenate([zoo_split(name, seed, zoo_dir).generated[:PER_FAMILY] for name in families])
    truth = [name for name in families for _ in range(PER_FAMILY)]
    order = np.random.default_rng(seed).permutation(len(truth))
    ids = [f"image{i:05d}" for i in range(len(order))]
    save_pngs(folder / "generated", ids, images[order])
    write_labels(folder / "labels.csv", "generator", ids, [truth[j] for j in order])
    return folder


def subsets_set(family: str, seed: int, zoo_dir: Path, folder: Path) -> Path:
    """The 2025 layout: generated/<class>/, real/<class>/ (the used slices), generated_unknown/ and labels.csv.

    Class `seedS` is the family fitted on the used slices of benchmark seed S's split.
    """
    unknown, truth = [], []
    for s in range(seed, seed + SUBSETS):
        split, cls = zoo_split(family, s, zoo_dir), f"seed{s}"
        save_pngs(folder / "generated" / cls, [f"{cls}_{i:04d}" for i in range(LABELLED)], split.generated[:LABELLED])
        save_pngs(folder / "real" / cls, [f"real_{cls}_{i:04d}" for i in range(len(split.used))], split.used)
        unknown.append(split.generated[LABELLED : LABELLED + UNKNOWN])
        truth += [cls] * UNKNOWN
    order = np.random.default_rng(seed).permutation(len(truth))
    ids = [f"unknown{i:05d}" for i in range(len(order))]
    save_pngs(folder / "generated_unknown", ids, np.concatenate(unknown)[order])
    write_labels(folder / "labels.csv", "label", ids, [truth[j] for j in order])
    return folder


def cluster_results(folder: Path, args, work: Path) -> tuple[int, dict, dict]:
    """(the true K, {(method, features, auto): (K, metrics)} for every clusterer x space at the true K and
    at K chosen by the eigengap, the baselines at the true K)."""
    labels = folder / "labels.csv"
    k_true = len(set(read_class_table(labels).values))
    results, baselines = {}, {}
    for method in CLUSTERERS.names():
        for features in zoo_spaces():
            for k in (k_true, None):
                cfg = ClusterConfig(images=str(folder / "generated"), out=str(work / "c.csv"), clusters=k,
                                    method=method, features=features, device=args.device, data_root=str(work / "data"))
                result = cluster(cfg)
                report = evaluate_clusters(work / "c.csv", labels)
                baselines = baselines or report.baselines  # the first run has the true K
                results[method, features, k is None] = (result.k, report.metrics)
                print(f"{folder.name}: {method} {features} K={result.k}{' (auto)' if k is None else ''} "
                      f"ARI {report.metrics['ari']:.3f} ({result.seconds:.1f} s)", flush=True)
    return k_true, results, baselines


def cluster_table(sets: dict[str, tuple[int, dict, dict]]) -> list[str]:
    """One row per clusterer x space; per set, a column at the true K and one at K chosen by the eigengap."""
    def cell(m: dict, k: int | None = None) -> str:
        return (f"{k}: " if k else "") + f"{m['ari']:.3f} / {m['nmi']:.3f} / {m['matched_accuracy']:.3f}"

    header = ["method", "features"]
    for name, (k_true, _, _) in sets.items():
        header += [f"{name}, K = {k_true}", f"{name}, K auto"]
    lines = [row(*header), row(*["---"] * len(header))]
    first = next(iter(sets.values()))[1]
    for method, features in dict.fromkeys((m, f) for m, f, _ in first):
        cells = []
        for _, results, _ in sets.values():
            (_, exact), (k, auto) = results[method, features, False], results[method, features, True]
            cells += [cell(exact), cell(auto, k)]
        lines.append(row(method, features, *cells))
    baselines = [list(b.values()) for _, _, b in sets.values()]  # one cluster, random K clusters
    for i, name in enumerate(("one cluster", "random K clusters")):
        lines.append(row(f"baseline: {name}", "-", *(c for b in baselines for c in (cell(b[i]), "-"))))
    return lines


def pair_runs() -> list[tuple[str, str, int | None, bool]]:
    """knn in the pair spaces (shifted correlation, plain and whitened) at the default k (1) and at k 5."""
    spaces = [f"{kind}{size}" for kind in PAIR_KINDS for size in (48, 64)]
    return [("knn", f, k, False) for f in spaces for k in (None, 5)]


def subset_results(folder: Path, args, work: Path) -> tuple[dict, dict]:
    """{(method label, features): (accuracy, macro-F1, seconds)} for every feature method x vector space (knn at
    k 5, ganfp 0.1.0's default k), knn in the pair spaces, and the default with real/; and the baselines."""
    labels = folder / "labels.csv"
    runs = [(m, f, 5 if m == "knn" else None, False) for m in METHODS.names(needs="features") for f in zoo_spaces()]
    runs += [*pair_runs(), (DEFAULT_METHOD, DEFAULT_FEATURES, None, True)]
    results = {}
    for method, features, k, use_real in runs:
        cfg = AttributeConfig(unknown=str(folder / "generated_unknown"), out=str(work / "a.csv"), train=str(folder),
                              method=method, features=features, k=k, use_real=use_real, device=args.device,
                              data_root=str(work / "data"))
        result = attribute(cfg)
        report = evaluate_classes(work / "a.csv", labels)
        name = method + (f" k={k}" if k else "") + (" (with real/)" if use_real else "")
        results[name, features] = (report.metrics["accuracy"], report.metrics["macro_f1"], result.seconds)
        print(f"{folder.name}: {name} {features} accuracy {report.metrics['accuracy']:.3f} "
              f"({result.seconds:.1f} s)", flush=True)
    return results, report.baselines


def subset_table(sets: dict[str, tuple[dict, dict]]) -> list[str]:
    """One row per method x space: accuracy / macro-F1 per family, then the mean and worst accuracy."""
    header = ["method", "features", *sets, "mean accuracy", "worst accuracy"]
    lines = [row(*header), row(*["---"] * len(header))]
    for key in next(iter(sets.values()))[0]:
        scores = [results[key] for results, _ in sets.values()]
        accuracy = [acc for acc, _, _ in scores]
        lines.append(row(*key, *(f"{acc:.3f} / {f1:.3f}" for acc, f1, _ in scores), float(np.mean(accuracy)),
                         min(accuracy)))
    for name in next(iter(sets.values()))[1]:
        cells = [f"{b[name]['accuracy']:.3f} / {b[name]['macro_f1']:.3f}" for _, b in sets.values()]
        accuracy = [b[name]["accuracy"] for _, b in sets.values()]
        lines.append(row(f"baseline: {name}", "-", *cells, float(np.mean(accuracy)), min(accuracy)))
    return lines


def zoo_tables(args, work: Path) -> list[str]:
    """The clustering sets, then the training-subset sets, each built into `work` from the zoo."""
    zoo_dir = Path(args.zoo_dir)
    groups = {"all": leaking_families(), "VAEs": vae_families()}
    clusterings = {}
    for name, families in groups.items():
        folder = clustering_set(families, args.seed, zoo_dir, work / f"cluster-{name}")
        clusterings[name] = cluster_results(folder, args, work)
    subsets = {}
    for family in leaking_families():
        folder = subsets_set(family, args.seed, zoo_dir, work / f"subsets-{family}")
        subsets[family] = subset_results(folder, args, work)
    seeds = f"{args.seed}..{args.seed + SUBSETS - 1}"
    return [f"**Clustering** (2024 style): {PER_FAMILY} generated images per family, all families fitted on the "
            f"same 80 real slices (dev split of seed {args.seed}); `all` = {', '.join(groups['all'])} "
            f"({len(groups['all']) * PER_FAMILY} images); `VAEs` = {', '.join(groups['VAEs'])} "
            f"({len(groups['VAEs']) * PER_FAMILY} images). Cells: ARI / NMI / accuracy after matching; "
            "with K auto, the K chosen first.", "", *cluster_table(clusterings), "",
            f"**Training subsets** (2025 style): per family, {SUBSETS} generators fitted on the used slices of "
            f"seeds {seeds} (80 each, no slice shared), {LABELLED} labelled and {UNKNOWN} unknown generated "
            f"images each ({SUBSETS * UNKNOWN} to attribute). Cells: accuracy / macro-F1.", "",
            *subset_table(subsets)]


def write_block(start: str, end: str, block: str) -> None:
    doc = DOCS.read_text()
    DOCS.write_text(doc[: doc.index(start)] + block + doc[doc.index(end) + len(end) :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--zoo", action="store_true", help="the harder problems built from the generator zoo")
    parser.add_argument("--zoo-dir", default=str(Path(tempfile.gettempdir()) / "ganfp-zoo"),
                        help="where the zoo's splits are cached between runs (shared with benchmarks/membership.py)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the zoo's benchmark seed (training subsets: this one and the next)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 gives steady timings on a shared machine)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.zoo:
            text = zoo_tables(args, work)
        else:
            text = ["**demo:attribution-2025** (100 unknown images, 5 classes):", "", *table_2025(args, work), "",
                    "**demo:attribution-2024** (240 images, 3 generators):", "", *table_2024(args, work)]
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/attribution.py", *sys.argv[1:]])
    took = f" in {time.perf_counter() - started:.0f} s" if args.zoo else ""
    start, end = (ZOO_START, ZOO_END) if args.zoo else (START, END)
    block = "\n".join([start, f"Measured with `{command}`{took}.", "", *text, end])
    print(block)
    if args.write_docs:
        write_block(start, end, block)


if __name__ == "__main__":
    main()

"""Commands: attribute."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ganfp import ui
from ganfp.attribution.defaults import (
    DEFAULT_CLUSTER_FEATURES,
    DEFAULT_CLUSTER_METHOD,
    DEFAULT_EPOCHS,
    DEFAULT_FEATURES,
    DEFAULT_K,
    DEFAULT_MAX_CLUSTERS,
    DEFAULT_METHOD,
    DEFAULT_MODEL,
    DEFAULT_REPORT_ROWS,
    VECTOR_FEATURES,
)
from ganfp.cli.app import app
from ganfp.cli.options import (
    FILE_NAME,
    OFFLINE_FEATURES_HINT,
    BatchSizeOpt,
    CheckpointOpt,
    DataRootOpt,
    DeviceOpt,
    HuOffsetOpt,
    IdFromOpt,
    ImageSizeOpt,
    JsonOpt,
    ReportOpt,
    SeedOpt,
    SlicesOpt,
    WindowOpt,
    in_range,
    int_option,
    path_given,
)

METHOD_HELP = (f"Supervised: centroid, knn, linear, cnn or fusion (default {DEFAULT_METHOD}). "
               f"With --clusters: kmeans, agglomerative or spectral (default {DEFAULT_CLUSTER_METHOD}).")
FEATURES_HELP = ("Feature space of every method but cnn: spectrum, residual, pixels[N], std[N], checkpoint or a "
                 "model name, joined with + if you like; knn also reads white[N], ncc[N], wstd[N] and ssim[N] "
                 f"(alone). Default: {DEFAULT_FEATURES} for knn and fusion, {VECTOR_FEATURES} for centroid and "
                 f"linear, {DEFAULT_CLUSTER_FEATURES} with --clusters.")
COLUMNS_HELP = ("Header of the output CSV, two names, or none (default image_path,predicted_class; id,cluster with "
                "--clusters). The first names the id column as ganfp evaluate reads it (id, image_id, image_name, "
                "name, or image_path, image, path, file, filename, file_name, which get file names); with "
                "--clusters the second is cluster, cluster_id or clusters. The official layout is unconfirmed: "
                "see docs/attribution.md.")


def _clusters(value: str | None) -> int | None:
    """`--clusters K|auto` -> K, or None for auto. K in digits 0-9, as every int option (`3_0` was read as 30)."""
    from ganfp.errors import InputError
    from ganfp.numerals import read_whole

    if value is None or value.strip().lower() == "auto":
        return None
    clusters = read_whole(value)
    if clusters is None:
        raise InputError(f"--clusters {value!r}: give a number of clusters (in digits 0-9, such as 3) or auto")
    return clusters


def _print(result, as_json: bool, headerless: bool = False) -> None:
    info = result.to_dict()
    if as_json:
        ui.print_json(info)
        return
    if info["task"] == "attribution":
        counts = ", ".join(f"{c} {n}" for c, n in info["predicted_counts"].items())
        rows = [("images", info["images"]), ("classes", ", ".join(info["classes"])), ("trained on", info["train"]),
                ("method", info["method"]), ("features", info["features"]), ("checkpoint", info["checkpoint"]),
                ("predicted", counts)]
    else:
        sizes = ", ".join(str(n) for n in info["cluster_sizes"])
        rows = [("images", info["images"]), ("clusters", f"{info['k']} (chosen by {info['k_chosen_by']})"),
                ("silhouette", info["silhouette"]), ("method", info["method"]), ("features", info["features"]),
                ("checkpoint", info["checkpoint"]), ("cluster sizes", sizes)]
    rows += [("HU offset (16-bit images)", info["hu_offset"]), ("written to", info["out"]),
             ("class probabilities", info.get("scores")), ("report", info["report"]),
             ("time (s)", f"{info['seconds']:.1f}")]
    ui.print_table(f"attribute ({info['task']})", ["", "value"], [r for r in rows if r[1] is not None])
    if info["labels"]:
        # a clustering without its header reads as classes; with it, evaluate tells it apart
        task = ("--task", "clustering") if info["task"] == "clustering" and headerless else ()
        ui.how_to_score(info["out"], info["labels"], *task)


ImagesArg = Annotated[str, typer.Argument(metavar="IMAGES", callback=path_given("IMAGES", "a folder or dataset spec"),
                                          help="Generated images to attribute: a folder or a dataset spec such as "
                                          "demo:attribution-2025.")]
OutOpt = Annotated[str, typer.Option("--out", callback=path_given("--out", FILE_NAME),
                                     help="CSV to write: one row per image, its class (or cluster).")]
TrainOpt = Annotated[Optional[str], typer.Option("--train", callback=path_given("--train", "a folder or dataset spec"),
                                                 help="Labelled training images: DIR with generated/<class>/ (and "
                                                 "real/<class>/), or a spec (default: the spec's own).")]
ClustersOpt = Annotated[Optional[str], typer.Option("--clusters", metavar="K|auto", help="Cluster instead (no labels): "
                                                    "K groups, or auto to choose K by the eigengap of the images' "
                                                    "neighbour graph.")]
UseRealOpt = Annotated[bool, typer.Option("--use-real", help="Add the real/<class>/ images to the references of "
                                          "centroid, knn and linear.")]
# Options that only some modes read default to None, so that one given where nothing reads it is refused.
KOpt = Annotated[Optional[int], int_option("--k", callback=in_range(1), help="Neighbours of knn (and fusion), at "
                                             f"least 1 (default {DEFAULT_K}).")]
MaxClustersOpt = Annotated[Optional[int], int_option("--max-clusters", callback=in_range(2), help="With --clusters "
                                                       "auto: the largest K tried, at least 2 (default "
                                                       f"{DEFAULT_MAX_CLUSTERS}).")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="Network the cnn and fusion methods train "
                                                 f"(default {DEFAULT_MODEL}).")]
EpochsOpt = Annotated[Optional[int], int_option("--epochs", callback=in_range(1), help="Most epochs of cnn and "
                                                  "fusion, with early stopping after 5 without progress (default "
                                                  f"{DEFAULT_EPOCHS}).")]
ReportNOpt = Annotated[Optional[int], int_option("--report-n", callback=in_range(1), help="Images per class (per "
                                                   "cluster) in the --report: the N most and the N least confident "
                                                   f"(central), at least 1 (default {DEFAULT_REPORT_ROWS}).")]
RunsDirOpt = Annotated[Optional[str], typer.Option("--runs-dir", callback=path_given("--runs-dir"), help="Where cnn "
                                                   "and fusion keep their model, and where --features checkpoint "
                                                   "without --checkpoint finds the newest finished chain run (default: "
                                                   "$GANFP_RUNS, else ./runs); refused where neither reads it.")]

ScoresOpt = Annotated[Optional[str], typer.Option("--scores", callback=path_given("--scores", FILE_NAME),
                                                  help="Also write each image's probability of every class: a CSV "
                                                  "with the id, then a column per class (not with --clusters).")]

@app.command("attribute")
def attribute(
    images: ImagesArg,
    out: OutOpt,
    train: TrainOpt = None,
    clusters: ClustersOpt = None,
    method: Optional[str] = typer.Option(None, "--method", help=METHOD_HELP),
    features: Optional[str] = typer.Option(None, "--features", help=FEATURES_HELP),
    checkpoint: CheckpointOpt = None,
    k: KOpt = None,
    use_real: UseRealOpt = False,
    max_clusters: MaxClustersOpt = None,
    columns: Optional[str] = typer.Option(None, "--columns", help=COLUMNS_HELP),
    model: ModelOpt = None,
    epochs: EpochsOpt = None,
    image_size: ImageSizeOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = 128,
    data_root: DataRootOpt = None,
    runs_dir: RunsDirOpt = None,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
    window: WindowOpt = None,
    id_from: IdFromOpt = None,
    slices: SlicesOpt = None,
    hu_offset: HuOffsetOpt = None,
    report: ReportOpt = None,
    report_n: ReportNOpt = None,
    scores: ScoresOpt = None,
) -> None:
    """Attribute generated images to the training subset or generator that made them, or cluster them."""
    from ganfp.attribution.methods import TrainerSettings
    from ganfp.attribution.run import AttributeConfig, ClusterConfig
    from ganfp.attribution.run import attribute as run_attribute
    from ganfp.attribution.run import cluster as run_cluster
    from ganfp.data.medical import MedicalReading
    from ganfp.data.outputs import check_outputs
    from ganfp.errors import InputError, weights_hint

    reading = MedicalReading.parse(window, id_from, slices, hu_offset)
    check_outputs({"--out": out, "--report": report, "--scores": scores}, (images, train, checkpoint),
                  data_root=data_root)
    common = dict(out=out, image_size=image_size, seed=seed, device=device, batch_size=batch_size, data_root=data_root,
                  reading=reading, report=report, report_n=report_n, checkpoint=checkpoint)
    if clusters is not None:
        given = [opt for opt, on in (("--train", train is not None), ("--use-real", use_real), ("--k", k is not None),
                                      ("--model", model is not None), ("--epochs", epochs is not None)) if on]
        if scores is not None:
            given.append("--scores")  # a clustering has no class probabilities
        if given:
            raise InputError(f"--clusters groups images without labels or training: drop {' / '.join(given)}")
        cfg = ClusterConfig(images=images, clusters=_clusters(clusters), method=method or DEFAULT_CLUSTER_METHOD,
                            features=features or DEFAULT_CLUSTER_FEATURES, max_clusters=max_clusters,
                            columns=columns or "id,cluster", runs_dir=runs_dir, **common)
        run = run_cluster
    else:
        if max_clusters is not None:
            raise InputError(f"--max-clusters {max_clusters}: only --clusters auto reads it")
        trainer = TrainerSettings(model=model, epochs=epochs, runs_dir=runs_dir)
        cfg = AttributeConfig(unknown=images, train=train, method=method or DEFAULT_METHOD, features=features, k=k,
                              use_real=use_real, columns=columns or "image_path,predicted_class", trainer=trainer,
                              scores=scores, **common)
        run = run_attribute
    with weights_hint(OFFLINE_FEATURES_HINT):
        result = run(cfg, message=ui.info)
    _print(result, as_json, headerless=(columns or "").strip().lower() == "none")  # its warnings: logged as it ran

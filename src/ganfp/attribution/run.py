"""`ganfp attribute`: attribute generated images to a known class, or cluster them by generator.

Both entry points take a validated config, resolve the images (a folder or a dataset spec),
compute, write the class table atomically and return a result with `to_dict()`. Nothing in the
package imports this module: it only orchestrates.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganfp.attribution.cluster import CLUSTERERS, GRAPH_NEIGHBOURS, choose_k, silhouette
from ganfp.attribution.defaults import (
    DEFAULT_CLUSTER_FEATURES,
    DEFAULT_CLUSTER_METHOD,
    DEFAULT_FEATURES,
    DEFAULT_K,
    DEFAULT_MAX_CLUSTERS,
    DEFAULT_METHOD,
    VECTOR_FEATURES,
)
from ganfp.attribution.features import (
    BlockScaler,
    FeatureContext,
    beyond_the_images,
    checkpoint_of,
    compute,
    parse_spaces,
    reads_checkpoint,
)
from ganfp.attribution.files import (
    CLUSTER_COLUMNS,
    DEFAULT_COLUMNS,
    parse_columns,
    row_keys,
    write_class_probabilities,
    write_class_table,
)
from ganfp.attribution.methods import METHODS, Job, TrainerSettings
from ganfp.attribution.report import (
    ClusterInputs,
    SupervisedInputs,
    cluster_inputs,
    supervised_inputs,
    write_attribution_report,
)
from ganfp.data.adapters import check_spec
from ganfp.data.decode import Header
from ganfp.data.generated import depths_by_set, high_depth_reading, image_headers, native_image_size
from ganfp.data.manifest import (UNLABELLED, Manifest, announce, folder_warnings_once, image_files, list_folder,
                                 with_logged)
from ganfp.data.names import skipped_name
from ganfp.data.medical import MedicalReading, file_items, window_name, with_window
from ganfp.data.outputs import check_ground_truth, check_outputs
from ganfp.data.split import split_problem
from ganfp.device import resolve_device
from ganfp.errors import (
    InputError,
    count,
    of_option,
    plain_numbers,
    require_callable,
    require_int,
    require_path,
    require_paths,
    require_seed,
    shown,
)
from ganfp.fileio import written_together
from ganfp.pages import require_matplotlib
from ganfp.registry import did_you_mean
from ganfp.submission import unwritable_cell
from ganfp.train import StageConfig


Message = Callable[[str], None]


def default_features(method: str) -> str:
    """knn and fusion compare images in pairs, in the whitened shifted correlation; centroid and linear need vectors."""
    return DEFAULT_FEATURES if METHODS.entry(method).meta.get("pairs") else VECTOR_FEATURES


def _check_common(features: str | None, image_size: int | None, batch_size: int, seed: int, columns: str,
                  clustering: bool, device, pairs: bool = False) -> None:
    """The options both modes share, types included: from Python a `batch_size="8"` or `seed=-1` otherwise
    failed inside numpy or scikit-learn, after the images were read. `pairs`: the method compares images in
    pairs (knn), so a pair space (`white64`) is one it can read."""
    if features is not None:
        parse_spaces(features, pairs)
    if image_size is not None:
        require_int("image_size", image_size, low=8, high=4096)
    require_int("batch_size", batch_size, low=1)
    require_seed("seed", seed)
    resolve_device(device)  # a GPU the machine lacks, or device=0, before the images are read
    parse_columns(columns, clustering)


def _check_report(report: str | None, report_n: int | None) -> None:
    """--report-n without --report is a forgotten --report; without matplotlib the report fails only after
    the work it reports on, so both are refused first."""
    if report_n is not None:
        require_int("report_n", report_n, low=1)
        if not report:
            raise InputError(f"--report-n {report_n} describes the --report: give --report too")
    if report:
        require_matplotlib()


def _check_checkpoint(checkpoint: str | None, read: bool, what: str) -> None:
    """A --checkpoint must be one, and be read (`what`: the mode that would not read it), as classify refuses one its
    scorers do not read: ignored, the user would believe the features came from that model."""
    from ganfp.membership.features import check_checkpoint_given

    if checkpoint is None:
        return
    check_checkpoint_given(checkpoint)
    if not read:
        raise InputError(f"--checkpoint {checkpoint}: {what} does not read it; only --features checkpoint does")


@dataclass(frozen=True)
class AttributeConfig:
    """Supervised attribution (2025 subtask 2): UNKNOWN images, labelled generated/<class> images to learn from."""

    unknown: str  # folder or dataset spec of the images to attribute
    out: str
    train: str | None = None  # DIR with generated/<class>/ (and real/<class>/), or a spec; default: the spec's own
    method: str = DEFAULT_METHOD
    features: str | None = None  # the space of the feature methods; None: the method's default (`default_features`)
    k: int | None = None  # neighbours of knn and fusion; None: DEFAULT_K (see resolved)
    use_real: bool = False  # add real/<class> images to the references of the feature methods
    columns: str = ",".join(DEFAULT_COLUMNS)
    image_size: int | None = None
    seed: int = 0
    device: str | torch.device = "auto"
    batch_size: int = 128
    data_root: str | None = None
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    reading: MedicalReading | None = None  # DICOM/NIfTI: the window of every image, the ids and slices of `unknown`
    report: str | None = None  # the HTML evidence report, written beside `out`
    report_n: int | None = None  # images per class and end in the report; None: DEFAULT_REPORT_ROWS
    checkpoint: str | None = None  # the model of --features checkpoint; None: the newest chain run's under runs_dir
    scores: str | None = None  # each image's probability of every class (CSV), written beside `out`

    def __post_init__(self):
        plain_numbers(self)  # numpy's numbers leaked into to_dict(), which json.dumps refused

    def validate(self) -> None:
        if not isinstance(self.trainer, TrainerSettings):  # else an AttributeError at its first field
            raise InputError(f"trainer={self.trainer!r}: must be a TrainerSettings (ganfp.attribution.methods)")
        if not isinstance(self.use_real, bool):  # `use_real="no"` is true
            raise InputError(f"use_real={self.use_real!r}: must be True or False")
        require_paths({"unknown": self.unknown, "out": self.out}, {"train": self.train, "data_root": self.data_root,
                                                                  "runs_dir": self.trainer.runs_dir,
                                                                  "report": self.report, "checkpoint": self.checkpoint,
                                                                  "scores": self.scores})
        require_reading(self.reading)
        _check_report(self.report, self.report_n)
        if self.method in CLUSTERERS:
            raise InputError(f"--method {self.method}: a clustering method; add --clusters K|auto to cluster, or give "
                             f"a supervised method: {', '.join(METHODS.names())}")
        if self.method not in METHODS:  # the registry's "unknown attribution method 'x'" named no option
            close = did_you_mean(str(self.method), [*METHODS.names(), *CLUSTERERS.names()])
            raise InputError(f"--method {self.method}{close}: choose one of: {', '.join(METHODS.names())} (with "
                             f"--clusters: {', '.join(CLUSTERERS.names())})")
        needs = METHODS.entry(self.method).meta["needs"]
        self._check_read()
        _check_common(self.features, self.image_size, self.batch_size, self.seed, self.columns, clustering=False,
                      device=self.device, pairs=METHODS.entry(self.method).meta.get("pairs", False))
        if self.k is not None:
            require_int("k", self.k, low=1)
        if self.use_real and needs == "images":
            raise InputError(f"--use-real: the {self.method} method trains on generated/<class>/ only; "
                             "use it with centroid, knn, linear or fusion")
        if self.trainer.epochs is not None:  # `epochs="1"` failed its `< 1` with a TypeError
            require_int("epochs", self.trainer.epochs)
        if self.trainer.epochs is not None and self.trainer.epochs < 1:
            raise InputError(f"--epochs {self.trainer.epochs}: must be at least 1")
        if needs != "features":
            self.trainer.resolved().validate()

    def _check_read(self) -> None:
        """An option the method does not read is refused: its default is None, so a given value is a mistake."""
        trainers = [e.name for e in METHODS if e.meta["needs"] != "features"]
        feature_methods = [e.name for e in METHODS if e.meta["needs"] != "images"]
        given = [("--k", self.k, METHODS.names(uses_k=True)), ("--model", self.trainer.model, trainers),
                 ("--epochs", self.trainer.epochs, trainers), ("--features", self.features, feature_methods)]
        for option, value, readers in given:
            if value is not None and self.method not in readers:
                raise InputError(f"{option} {value}: the {self.method} method does not read it; "
                                 f"only --method {' or '.join(readers)} does")
        runs_dir = self.trainer.runs_dir
        features = default_features(self.method) if self.features is None else self.features
        reads = self.method in feature_methods and reads_checkpoint(features)
        what = (f"the {self.method} method with --features {features}" if self.method in feature_methods
                else f"the {self.method} method")
        _check_checkpoint(self.checkpoint, reads, what)
        if runs_dir is not None and self.method not in trainers and not (reads and self.checkpoint is None):
            raise InputError(f"--runs-dir {runs_dir}: {what} does not read it; --method {' or '.join(trainers)} keeps "
                             "its model there, and --features checkpoint without --checkpoint finds its chain run "
                             "there")

    def resolved(self) -> AttributeConfig:
        """The defaults filled in; after `validate`, which must still tell a given option from a default."""
        return replace(self, features=default_features(self.method) if self.features is None else self.features,
                       k=DEFAULT_K if self.k is None else self.k, trainer=self.trainer.resolved())


@dataclass(frozen=True)
class ClusterConfig:
    """Unsupervised attribution (2024 task 2): group IMAGES by their source generator."""

    images: str
    out: str
    clusters: int | None = None  # None: choose K by the eigengap
    method: str = DEFAULT_CLUSTER_METHOD
    features: str = DEFAULT_CLUSTER_FEATURES
    max_clusters: int | None = None  # the largest K of --clusters auto; None: DEFAULT_MAX_CLUSTERS (see resolved)
    columns: str = ",".join(CLUSTER_COLUMNS)
    image_size: int | None = None
    seed: int = 0
    device: str | torch.device = "auto"
    batch_size: int = 128
    data_root: str | None = None
    runs_dir: str | None = None  # where `--features checkpoint` finds the newest finished chain run
    reading: MedicalReading | None = None  # how DICOM/NIfTI images are read: window, ids, slices
    report: str | None = None  # the HTML evidence report, written beside `out`
    report_n: int | None = None  # central and peripheral images per cluster in the report; None: DEFAULT_REPORT_ROWS
    checkpoint: str | None = None  # the model of --features checkpoint; None: the newest chain run's under runs_dir

    def __post_init__(self):
        plain_numbers(self)  # numpy's numbers leaked into to_dict(), which json.dumps refused

    def validate(self) -> None:
        require_paths({"images": self.images, "out": self.out},
                      {"data_root": self.data_root, "runs_dir": self.runs_dir, "report": self.report,
                       "checkpoint": self.checkpoint})
        require_reading(self.reading)
        _check_report(self.report, self.report_n)
        if self.method in METHODS:
            raise InputError(f"--method {self.method}: learns from labelled images; drop --clusters and give --train, "
                             f"or cluster with: {', '.join(CLUSTERERS.names())}")
        if self.method not in CLUSTERERS:  # the registry's "unknown clustering method 'x'" named no option
            close = did_you_mean(str(self.method), [*CLUSTERERS.names(), *METHODS.names()])
            raise InputError(f"--method {self.method}{close}: choose one of (with --clusters): "
                             f"{', '.join(CLUSTERERS.names())}")
        _check_common(self.features, self.image_size, self.batch_size, self.seed, self.columns, clustering=True,
                      device=self.device)
        if self.clusters is not None:
            require_int("clusters", self.clusters)
            if self.clusters < 2:
                raise InputError(f"--clusters {self.clusters}: must be at least 2 (or auto)")
        if self.max_clusters is not None and self.clusters is not None:
            raise InputError(f"--max-clusters {self.max_clusters}: only --clusters auto reads it, "
                             f"not --clusters {self.clusters}")
        if self.max_clusters is not None:
            require_int("max_clusters", self.max_clusters, low=2)
        reads = reads_checkpoint(self.features)
        _check_checkpoint(self.checkpoint, reads, f"--clusters with --features {self.features}")
        if self.runs_dir is not None and not (reads and self.checkpoint is None):
            raise InputError(f"--runs-dir {self.runs_dir}: --clusters with --features {self.features} does not read "
                             "it; only --features checkpoint without --checkpoint does")

    def resolved(self) -> ClusterConfig:
        """The defaults filled in; after `validate`, which must still tell a given option from a default."""
        return replace(self, max_clusters=DEFAULT_MAX_CLUSTERS if self.max_clusters is None else self.max_clusters)


@dataclass
class AttributionResult:
    ids: list[str]
    predicted: list[str]
    probabilities: np.ndarray = field(repr=False)
    classes: list[str] = field(default_factory=list)
    method: str = ""
    features: str | None = None
    train: str = ""
    train_counts: dict[str, int] = field(default_factory=dict)
    out: str = ""
    labels: str | None = None  # where the ground truth of a demo set is, for `ganfp evaluate`
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # one line each: input the user should hear about
    report: str | None = None
    checkpoint: str | None = None  # the model file --features checkpoint read
    hu_offset: int | None = None  # 16-bit grayscale images were read as HU + this
    scores: str | None = None  # the per-class probabilities file, when asked for

    def to_dict(self) -> dict:
        counts = {c: self.predicted.count(c) for c in self.classes}
        summary = {"task": "attribution", "images": len(self.ids), "classes": self.classes, "method": self.method,
                   "features": self.features, "checkpoint": self.checkpoint, "hu_offset": self.hu_offset,
                   "train": self.train, "train_counts": self.train_counts, "predicted_counts": counts, "out": self.out,
                   "labels": self.labels, "seconds": round(self.seconds, 2), "warnings": self.warnings,
                   "report": self.report, "scores": self.scores}
        return copy.deepcopy(summary)  # a copy: appending to its `warnings` changed the result's own


@dataclass
class ClusterResult:
    ids: list[str]
    clusters: np.ndarray
    k: int
    auto: bool
    silhouette: float | None  # of the clustering written
    eigengaps: dict[int, float] | None  # of every K tried (auto); None when K was given
    method: str
    features: str
    out: str
    labels: str | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    report: str | None = None
    checkpoint: str | None = None  # the model file --features checkpoint read
    hu_offset: int | None = None  # 16-bit grayscale images were read as HU + this

    def to_dict(self) -> dict:
        sizes = np.bincount(self.clusters, minlength=self.k).tolist()
        summary = {"task": "clustering", "images": len(self.ids), "k": self.k,
                   "k_chosen_by": "eigengap" if self.auto else "user", "silhouette": self.silhouette,
                   "eigengaps": {str(k): v for k, v in self.eigengaps.items()} if self.eigengaps else None,
                   "cluster_sizes": sizes, "method": self.method, "features": self.features,
                   "checkpoint": self.checkpoint, "hu_offset": self.hu_offset, "out": self.out,
                   "labels": self.labels, "seconds": round(self.seconds, 2), "warnings": self.warnings,
                   "report": self.report}
        return copy.deepcopy(summary)  # a copy, as the attribution's


def require_config(cfg, kind: type, message) -> None:
    """`cfg` is the entry point's own config and `message` a function of one line, before any work: from Python
    `attribute(ClusterConfig(...))` failed with an AttributeError on a field the config lacks, and a `message=3`
    with a TypeError at its first line (the cnn method's, --clusters auto's), after the images were read."""
    if not isinstance(cfg, kind):
        takes = {AttributeConfig: "attribute() takes an AttributeConfig",
                 ClusterConfig: "cluster() takes a ClusterConfig"}
        hint = f" ({takes[type(cfg)]})" if type(cfg) in takes else ""
        raise InputError(f"cfg={shown(cfg)}: {takes[kind]} (ganfp.attribution.run){hint}")
    require_callable("message", message, "(text)", optional=False)


def require_reading(reading) -> None:
    """From Python a `reading="lung"` failed with an AttributeError once the images were listed."""
    if reading is not None and not isinstance(reading, MedicalReading):
        raise InputError(f"reading={reading!r}: must be a MedicalReading, e.g. MedicalReading.parse('lung'), or None")


def read_images(spec: str, data_root=None, reading: MedicalReading | None = None,
                recorded_offset: int | None = None) -> Manifest:
    """Every image under a folder (sub-folders included; each NIfTI slice one image), or a dataset spec; ids must be
    unique. `reading` says how DICOM and NIfTI files become images, and is refused where it would change nothing
    (`recorded_offset`: the HU offset a checkpoint recorded, which the images are read with when `reading` has
    none: a --window over 16-bit slices changes them then)."""
    from ganfp.data.real import spec_manifest

    require_path("spec", spec)

    path = Path(spec).expanduser()
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise InputError(f"{path}: no images (expected PNG, JPEG, TIFF... files)")
        # absolute, not resolved (file_items): a linked image (DVC, git-annex) is named by its link, not its blob
        items = [it for p in files for it in file_items(p, UNLABELLED, source=spec, reading=reading)]
        manifest = Manifest(f"folder:{path}", [], items, str(path))
    else:
        manifest = spec_manifest(spec, data_root, reading)
    if reading is not None:
        reading.check_read([it.path for it in manifest.items], recorded_offset)
    if not len(manifest):
        raise InputError(f"{spec}: no images")
    seen: dict[str, str] = {}
    for item in manifest.items:
        key = item.id.strip()  # as `ganfp evaluate` reads it back (manifest.cell_id): `a .png` is `a`, as `a.png` is
        if key in seen:  # generators' folders often number their images alike (a/0001.png, b/0001.png)
            source = "SOPInstanceUIDs (--id-from uid)" if item.name else "file names without extension"
            raise InputError(f"{item.path}: id {key!r} also belongs to {seen[key]} (ids are {source}, without "
                             "surrounding spaces, one row each in the CSV); give each image its own name, e.g. its "
                             "folder's name as a prefix")
        seen[key] = item.path
    return manifest


def _class_folders(folder: Path, what: str, classes: list[str] | None = None) -> Manifest:
    from ganfp.data.adapters.folder import folder_manifest

    manifest = folder_manifest(folder, classes=classes)
    if not manifest.labelled or len(manifest.classes) < 2:
        raise InputError(f"{folder}: {what} needs one sub-folder of images per class, two classes or more; "
                         f"{_what_it_holds(folder, manifest)}")
    return manifest


def _what_it_holds(folder: Path, manifest: Manifest) -> str:
    """What a folder that is not one of class folders holds: one class folder (most often `gen/<class>/` or another
    name for `generated/`, whose classes became one), or loose images."""
    if not manifest.labelled:
        return f"it holds {count(len(manifest), 'image')} and no class folder"
    (cls,) = manifest.classes
    nested = not image_files(folder / cls, recursive=False)  # the class folder's images are in folders of their own
    hint = (" (its images under sub-folders of their own: pass --train the folder holding the class folders, or "
            "name it generated/)") if nested else ""
    return f"it holds one: {cls}/{hint}"


def _sub_folder(folder: Path, name: str) -> Path | None:
    """`folder`'s sub-folder `name`, in any case: `Generated/` and `Real/` (a copy made on Windows) were read as two
    classes named Generated and Real, and every image was attributed to one of them."""
    return next((p for p in sorted(list_folder(folder)) if p.is_dir() and p.name.lower() == name), None)


def _layout_hint(images: str) -> str:
    """The command a 2025 layout (`generated/<class>/` beside `generated_unknown/`) asks for, when IMAGES is the task
    folder or its `generated_unknown/`: the first things a new user types, which were told to find a --train DIR."""
    path = Path(images).expanduser()
    if not path.is_dir():
        return ""
    unknown = _sub_folder(path, "generated_unknown")
    if _sub_folder(path, "generated") is not None and unknown is not None:
        return f"; {images} holds generated/<class>/ and {unknown.name}/: ganfp attribute {unknown} --train {images}"
    beside = path.resolve().parent
    generated = _sub_folder(beside, "generated")
    return f"; generated/<class>/ lies beside it: --train {beside}" if generated not in (None, path.resolve()) else ""


def training_set(cfg: AttributeConfig, unknown: Manifest) -> tuple[Manifest, str, list[str]]:
    """(labelled references, the spec the trainer loads, warnings): from --train, else from the unknown spec's
    dataset."""
    from ganfp.data.adapters import load_manifest

    source = cfg.train
    if source is None:
        if "generated" not in unknown.info or "classes" not in unknown.info:
            raise InputError(f"{cfg.unknown}: no labelled training images known for it: pass --train DIR "
                             "(generated/<class>/), or --clusters K|auto to cluster instead"
                             + _layout_hint(cfg.unknown))
        source = unknown.info["generated"]
    path = Path(source).expanduser()
    no_real = f"--use-real: no real/<class>/ folder beside the generated images of {source}"
    if path.is_dir():
        generated = _sub_folder(path, "generated")  # DIR/generated/<class>, or DIR/<class> itself
        train, spec = _class_folders(generated or path, "--train"), f"folder:{(generated or path).resolve()}"
        real = _sub_folder(path, "real") if generated else None
        if cfg.train is None and "real" in unknown.info:
            real = Path(unknown.info["real"])
        elif generated is None:
            no_real = (f"--use-real: --train {source} holds the class folders themselves; --use-real reads the "
                       "real/<class>/ folders beside generated/<class>/: pass --train the folder holding both")
    else:
        try:
            train, spec = load_manifest(source, cfg.data_root), source
        except InputError as exc:  # attribute reads two image sets: say which option this one came from
            raise (of_option("--train", source, exc) if cfg.train is not None else exc) from None
        if not train.labelled or len(train.classes) < 2:
            raise InputError(f"--train {source}: not a labelled dataset of two classes or more")
        real = Path(train.info["real"]) if "real" in train.info else None
    where = f"--train {source}" if cfg.train is not None else source
    for cls in train.classes:
        if problem := unwritable_cell(cls):
            raise InputError(f"{where}: class {cls!r} {problem}; rename its folder")
    _check_trainable(cfg.method, train, where)
    if not cfg.use_real:
        return train, spec, []
    if real is None or not real.is_dir():
        raise InputError(no_real)
    extra = _real_references(real, train.classes)
    train = Manifest(train.name, train.classes, train.items + extra.items, train.root, train.info)
    return train, spec, _unused_real(real, train.classes)


def _real_references(real: Path, classes: list[str]) -> Manifest:
    """real/<class>/ of every class of generated/. A class without real images was refused as "class folder missing"
    under real/, which did not say that --use-real reads it, nor that dropping --use-real is the other way on."""
    missing = [c for c in classes if not (real / c).is_dir() or not image_files(real / c)]
    if missing:
        raise InputError(f"--use-real: {real} holds no images of class {', '.join(missing)}; --use-real adds "
                         f"real/<class>/ to the references of every class of generated/ ({', '.join(classes)}): add "
                         f"the images, or drop --use-real")
    return _class_folders(real, "--use-real", classes=classes)


def _check_trainable(method: str, generated: Manifest, where: str) -> None:
    """cnn (and fusion's cnn) hold out a fifth of each class of generated/ to stop early, so a class of one image
    cannot be trained on. The trainer said so only after the line announcing the training and, for fusion, after the
    knn pass (a minute at the 2025 task's scale): refused here, before any image is decoded."""
    if METHODS.entry(method).meta["needs"] == "features":
        return
    if why := split_problem(generated, StageConfig.val_fraction):
        raise InputError(f"--method {method}: {where}: {why} (the trainer holds out a fifth of each class to stop "
                         "early); add images, or use --method knn, linear or centroid")


def _unused_real(real: Path, classes: list[str]) -> list[str]:
    """A warning naming the images under real/ that --use-real leaves out: it reads real/<class>/ for the classes of
    generated/ only, and dropped a real/<class>/ with no generated class (or images loose in real/) without a word.

    A warning, not a refusal: such images cannot be a reference of any class (the classes are generated/'s), the
    matching folders are read as asked, and a fetched dataset's folders should not have to be edited to run. But a
    real class with no generated one may also mean generated/ lacks a class, so the user hears of it.
    """
    unused = [f"{d.name}/ ({count(len(files), 'image')})" for d in sorted(list_folder(real))
              if d.is_dir() and not skipped_name(d.name) and d.name not in classes and (files := image_files(d))]
    if loose := image_files(real, recursive=False):
        unused.append(f"{count(len(loose), 'image')} loose in it")
    if not unused:
        return []
    return [f"--use-real: {real} holds images of no class of generated/ ({', '.join(classes)}), not used as "
            f"references: {', '.join(unused)}"]


def _check_apart(unknown: Manifest, train: Manifest, cfg: AttributeConfig) -> None:
    """No image is both to attribute and a reference: `ganfp attribute task2 --train task2` attributed the training
    images (and real/) to their own classes beside the unknown ones, and wrote them all to the table."""
    references = {os.path.abspath(it.path) for it in train.items}  # as named: a copy elsewhere is a fair test image
    shared = [it.path for it in unknown.items if os.path.abspath(it.path) in references]
    if shared:
        are = "is a training image" if len(shared) == 1 else "are training images"
        raise InputError(f"{cfg.unknown}: {len(shared)} of its {len(unknown)} images {are} too "
                         f"(e.g. {shared[0]}); give the folder of the unknown images alone, such as generated_unknown/")


def mixed_depths(sets: list[str], headers: list[Header], reading: MedicalReading | None = None) -> list[str]:
    """A warning when the images are not all of one bit depth, naming each set's depths: when one class (or the
    unknown set) is 16-bit and another 8-bit, each is read with its own contrast, so a method can tell them apart by
    their file format instead of their generator. `sets[i]` names the set of the image whose header is `headers[i]`;
    `reading` says how the 16-bit ones are read (its HU offset and window).
    """
    listed = depths_by_set(sets, [h.depth for h in headers])
    if not listed:
        return []
    return [f"the images mix bit depths ({listed}): {high_depth_reading(reading)}, 8-bit ones read as they are, so "
            "they may be told apart by their file format instead of their generator; save every set at one bit depth"]


def _k_beyond(cfg: AttributeConfig, labelled: int) -> list[str]:
    """A k above the labelled images votes with them all (the neighbour pass cannot find more): said aloud, as
    classify says it of its neighbour passes, since a user who asked for 100 neighbours would believe k was 100."""
    if not METHODS.entry(cfg.method).meta.get("uses_k") or cfg.k <= labelled:
        return []
    return [f"--k {cfg.k}: more than the {count(labelled, 'labelled image')}; every one of them votes, as with "
            f"--k {labelled}"]


def checkpoint_window(reading: MedicalReading | None,
                      checkpoint: str | None) -> tuple[MedicalReading | None, list[str]]:
    """(the reading, warnings): with --features checkpoint DICOM and NIfTI images are read in the window the checkpoint
    was trained in, as classify reads them (`checkpoint_reading`), so attribute sees what classify scored."""
    from ganfp.membership.features import checkpoint_reading

    return checkpoint_reading(reading, checkpoint, None) if checkpoint is not None else (reading, [])


def _write_outputs(cfg: AttributeConfig | ClusterConfig, keys: list[str], values: list[str],
                   columns: tuple[str, str] | None, result: AttributionResult | ClusterResult,
                   report_inputs: Callable[[dict], SupervisedInputs | ClusterInputs]) -> None:
    """The class table and, with `cfg.report`, its report, put in place together once both are complete: a report
    that fails leaves no new table beside an old report. `report_inputs` (from the result's summary) is only
    called, and its images decoded, when a report is asked for."""
    with written_together() as outputs:
        write_class_table(cfg.out, keys, values, columns, outputs)
        if isinstance(result, AttributionResult) and cfg.scores:
            write_class_probabilities(cfg.scores, keys, result.classes, result.probabilities, columns, outputs)
        if cfg.report:
            result.report = write_attribution_report(cfg.report, report_inputs(result.to_dict()), outputs)


@folder_warnings_once()
def attribute(cfg: AttributeConfig, message: Message = lambda text: None) -> AttributionResult:
    """Attribute every image of `cfg.unknown` to a class of the training images; write `cfg.out`."""
    started = time.perf_counter()
    require_config(cfg, AttributeConfig, message)
    cfg.validate()
    check_spec("IMAGES", cfg.unknown)
    check_outputs({"out": cfg.out, "report": cfg.report, "scores": cfg.scores}, (cfg.unknown, cfg.train),
                  data_root=cfg.data_root)
    asked, cfg = cfg.features, cfg.resolved()  # a default space is the method's choice, at any image size
    checkpoint = checkpoint_of(cfg.features, cfg.checkpoint, cfg.trainer.runs_dir)
    reading, read_warnings = checkpoint_window(cfg.reading, checkpoint)
    unknown = read_images(cfg.unknown, cfg.data_root, cfg.reading, reading.hu_offset if reading is not None else None)
    check_ground_truth({"--out": cfg.out, "--report": cfg.report, "--scores": cfg.scores}, unknown, cfg.unknown)
    columns = parse_columns(cfg.columns)
    keys = row_keys(unknown.items, columns)
    train, train_spec, warnings = training_set(cfg, unknown)
    window, offset = (reading.window, reading.hu_offset) if reading is not None else (None, None)
    if window or offset is not None:  # the references are seen as the unknown images are, both as the checkpoint
        unknown, train = with_window(unknown, window, offset), with_window(train, window, offset)  # was trained
    _check_apart(unknown, train, cfg)
    headers = image_headers(train, unknown)  # one open per file gives the native size and the bit depths
    size = cfg.image_size or native_image_size(train, unknown, headers=headers)
    sets = [f"class {train.classes[it.label]}" for it in train.items] + ["the unknown images"] * len(unknown)
    warnings += read_warnings + mixed_depths(sets, headers, reading) + _k_beyond(cfg, len(train))
    if asked is not None:
        warnings += beyond_the_images(asked, size, METHODS.entry(cfg.method).meta.get("pairs", False))
    ctx = FeatureContext(size, cfg.device, cfg.batch_size, cfg.data_root, cfg.trainer.runs_dir, checkpoint)
    job = Job(train, unknown, train_spec, cfg.features, cfg.k, ctx, cfg.trainer, cfg.seed, message,
              window=window_name(window), hu_offset=offset)
    probs = METHODS.get(cfg.method)(job)
    predicted = [train.classes[i] for i in probs.argmax(1)]
    uses_features = METHODS.entry(cfg.method).meta["needs"] != "images"
    result = AttributionResult(unknown.ids, predicted, probs, train.classes, cfg.method,
                               cfg.features if uses_features else None, train_spec, train.class_counts(),
                               str(cfg.out), unknown.info.get("labels"), warnings=with_logged(warnings),
                               checkpoint=checkpoint, hu_offset=offset, scores=cfg.scores)
    _write_outputs(cfg, keys, predicted, columns, result,
                   lambda summary: supervised_inputs(job, probs, summary, cfg.method, cfg.report_n))
    result.seconds = time.perf_counter() - started
    announce(warnings)
    return result


def _distinct_vectors(x: np.ndarray, cfg: ClusterConfig) -> int:
    """How many different feature vectors the images make. Copies of one image have no boundary between them:
    more clusters than this split copies at random (k-means leaves clusters empty), so K is kept to it."""
    distinct = len(np.unique(x, axis=0))
    if distinct < 2:
        raise InputError(f"{cfg.images}: all {len(x)} images give the same --features {cfg.features} vectors "
                         "(copies of one image, or alike in that space); there is nothing to cluster")
    if cfg.clusters is not None and cfg.clusters > distinct:
        raise InputError(f"--clusters {cfg.clusters}: the {len(x)} images of {cfg.images} make only {distinct} "
                         f"different --features {cfg.features} vectors (the rest are copies); give at most "
                         f"--clusters {distinct}")
    return distinct


def _few_per_group(k: int, n: int) -> list[str]:
    """A warning when one group more than K would hold fewer images, on average, than the neighbours each image is
    linked to in the graph K is read from: such groups merge there (3 groups of 4 images gave K = 2), so K may be
    too few. The K chosen is kept: it is the best the graph says, and the warning says how far to trust it."""
    if n / (k + 1) >= GRAPH_NEIGHBOURS:
        return []
    return [f"--clusters auto: K = {k} on {count(n, 'image')}, read off a graph that links each image to its "
            f"{GRAPH_NEIGHBOURS} nearest: groups of fewer than about {GRAPH_NEIGHBOURS} images are not told apart "
            "there, so K may count too few; give --clusters K if you know it"]


@folder_warnings_once()
def cluster(cfg: ClusterConfig, message: Message = lambda text: None) -> ClusterResult:
    """Cluster every image of `cfg.images` into K groups (K given, or chosen by the eigengap); write `cfg.out`."""
    started = time.perf_counter()
    require_config(cfg, ClusterConfig, message)
    cfg.validate()
    check_spec("IMAGES", cfg.images)
    check_outputs({"out": cfg.out, "report": cfg.report}, (cfg.images,), data_root=cfg.data_root)
    cfg = cfg.resolved()
    checkpoint = checkpoint_of(cfg.features, cfg.checkpoint, cfg.runs_dir)
    reading, warnings = checkpoint_window(cfg.reading, checkpoint)
    images = read_images(cfg.images, cfg.data_root, cfg.reading, reading.hu_offset if reading is not None else None)
    if reading is not None and (reading.window or reading.hu_offset is not None):
        images = with_window(images, reading.window, reading.hu_offset)
    check_ground_truth({"--out": cfg.out, "--report": cfg.report}, images, cfg.images)
    columns = parse_columns(cfg.columns, clustering=True)
    keys = row_keys(images.items, columns)
    if cfg.clusters is not None and cfg.clusters > len(images):
        raise InputError(f"--clusters {cfg.clusters}: more clusters than the {count(len(images), 'image')} of "
                         f"{cfg.images}")
    if cfg.clusters is None and len(images) < 3:
        raise InputError(f"--clusters auto: {cfg.images} has {count(len(images), 'image')}; choosing K needs 3 or more")
    headers = image_headers(images)
    ctx = FeatureContext(cfg.image_size or native_image_size(images, headers=headers), cfg.device, cfg.batch_size,
                         cfg.data_root, cfg.runs_dir, checkpoint)
    raw, widths = compute(cfg.features, images, ctx)
    x = BlockScaler().fit(raw, widths).transform(raw)
    distinct = _distinct_vectors(x, cfg)
    if cfg.clusters is None:
        k, labels, gaps = choose_k(x, cfg.method, min(cfg.max_clusters, distinct), cfg.seed)
        message(f"--clusters auto: K = {k} (the largest eigengap of the {GRAPH_NEIGHBOURS}-nearest-neighbour graph "
                f"among K = 2..{max(gaps)})")
    else:
        k, labels, gaps = cfg.clusters, CLUSTERERS.get(cfg.method)(x, cfg.clusters, cfg.seed), None
    warnings += (mixed_depths(["the images"] * len(images), headers, reading)
                 + beyond_the_images(cfg.features, ctx.image_size))
    if cfg.clusters is None:
        warnings += _few_per_group(k, len(images))
    result = ClusterResult(images.ids, np.asarray(labels), k, cfg.clusters is None, silhouette(x, labels), gaps,
                           cfg.method, cfg.features, str(cfg.out), images.info.get("labels"),
                           warnings=with_logged(warnings),
                           checkpoint=checkpoint, hu_offset=reading.hu_offset if reading is not None else None)
    _write_outputs(cfg, keys, [str(c) for c in labels], columns, result,
                   lambda summary: cluster_inputs(images, ctx, x, result.clusters, summary, cfg.report_n))
    result.seconds = time.perf_counter() - started
    announce(warnings)
    return result

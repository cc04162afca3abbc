"""`ganfp classify`: score every real image, turn scores into 0/1 by rank or threshold, write a valid submission.

Without generated images the score is a trained checkpoint's P(used) (the paper's method). With
them, a membership scorer compares each real image with the generated set (docs/membership.md).
Everything a user gets is checked first (ids, image sizes, unreadable files) and written atomically, its
outputs together (all replaced, or none); the submission is validated against the organisers' rules before
the run counts as a success.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ganfp.data.adapters import check_spec
from ganfp.data.decode import Header
from ganfp.data.generated import (
    MIN_IMAGE_SIZE,
    copied_files,
    depths_by_set,
    generated_manifest,
    high_depth_reading,
    image_headers,
    native_image_size,
    shared_files,
)
from ganfp.data.manifest import Manifest, announce, folder_warnings_once, list_folder, with_logged
from ganfp.data.names import skipped_name
from ganfp.data.medical import MedicalReading, with_window
from ganfp.data.outputs import check_ground_truth, check_outputs
from ganfp.data.real import check_paired, generated_beside, read_real
from ganfp.errors import (InputError, UnreadableImage, count, plain_number, require_int, require_number,
                          require_paths, require_seed)
from ganfp.fileio import written_together
from ganfp.membership import SCORERS, SPACE_KINDS, MembershipScorer, Recipe, ScoringSetup, parse_features
from ganfp.membership.calibrate import K_GRID, NO_LEAK_EVIDENCE, Candidate, Choice, Cut, choose
from ganfp.membership.features import (
    check_checkpoint_given,
    check_checkpoint_read,
    checkpoint_file,
    checkpoint_reading,
)
from ganfp.membership.pipeline import canonical, default_recipe, member_recipes
from ganfp.membership.recipe import DEFAULT_FEATURES, DEFAULT_METHOD
from ganfp.membership.scorers import KS_USED_SETS
from ganfp.membership.spaces import calibration_spaces, check_features_size, space_beyond_the_images
from ganfp.registry import did_you_mean
from ganfp.report import DEFAULT_ROWS, check_report_sets, classify_report, require_matplotlib

log = logging.getLogger(__name__)

DEFAULT_USED_FRACTION = 0.5  # the 2023 test set: 100 used, 100 not used

Progress = Callable[[str, int, int], None]


@dataclass
class ClassifyResult:
    """What `classify` wrote and scored: per real image (in `ids` order) its label and score, and the summary."""

    ids: list[str]
    labels: np.ndarray  # 0/1 as written
    score: np.ndarray  # the decision score, higher = used
    scorers: dict[str, np.ndarray]  # every scorer computed for it
    summary: dict = field(default_factory=dict)  # what `ganfp classify --json` prints
    calibration: Choice | None = None

    def to_dict(self) -> dict:
        """The summary, as `--json` prints it; the other results (`AttributionResult`, ...) have one too. A copy all
        the way down: a notebook adding to its `warnings` list changed the result's own."""
        return copy.deepcopy(self.summary)


def check_writable_ids(manifest: Manifest) -> None:
    """Every image's id can be a row of the submission: refused now, naming the image, not after the scoring as an
    error about the output file."""
    from ganfp.submission import unwritable_cell

    for item in manifest.items:
        if problem := unwritable_cell(item.id):
            raise InputError(f"{item.path}: its id {item.id!r} {problem}; rename the file")


def check_ids(ids: list[str], ids_path) -> list[str]:
    """The listed ids, which must be exactly the images' ids."""
    from ganfp.submission import preview_ids, read_ids

    expected = read_ids(ids_path)
    have, want = set(ids), set(expected)
    missing = [i for i in expected if i not in have]
    extra = [i for i in ids if i not in want]
    if missing:
        raise InputError(f"{ids_path}: {count(len(missing), 'listed id')} without an image ({preview_ids(missing)})")
    if extra:
        raise InputError(f"{ids_path}: {count(len(extra), 'image')} not listed ({preview_ids(extra)})")
    return expected


def dev_sets(spec: str, data_root=None, reading: MedicalReading | None = None) -> tuple[Manifest, Manifest]:
    """(labelled real, generated) of a calibration set: DEV_DIR with used/, not_used/, generated/, or a spec.

    DICOM and NIfTI dev images are read with the same `reading` (window, slices) as the images they
    calibrate for: a recipe chosen on differently windowed images would be chosen for other data.
    """
    from ganfp.data.adapters import load_manifest

    path = Path(spec).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"--calibrate {spec}: is a file; a dev set is a folder with used/, not_used/ and generated/, "
                         "or a labelled dataset spec")
    if path.is_dir():
        return dev_folder_sets(path, spec, reading)
    try:
        real = load_manifest(spec, data_root)
    except InputError as exc:
        raise InputError(f"--calibrate {spec}: {exc}") from None
    if not real.labelled or "generated" not in real.info:
        raise InputError(f"--calibrate {spec}: a calibration set needs labelled used/not_used images and generated "
                         "images")
    if "used" not in real.classes:
        raise InputError(f"--calibrate {spec}: no class named 'used' (classes: {', '.join(real.classes)})")
    return real, generated_manifest(real.info["generated"])


def dev_folder_sets(path: Path, spec: str, reading: MedicalReading | None) -> tuple[Manifest, Manifest]:
    """(labelled real, generated) of a DEV_DIR, its folders' names read as the ImageCLEF adapter reads them
    (`Used/`, `Not_Used/`, `not-used/`, `Generated/`); a missing one is named with the folders DEV_DIR does hold."""
    from ganfp.data.adapters.folder import folder_manifest
    from ganfp.data.adapters.imageclef import MEMBERSHIP_CLASSES, dev_folder

    where = f"--calibrate {spec}"
    not_used, used, generated = (dev_folder(path, role, where) for role in (*MEMBERSHIP_CLASSES, "generated"))
    for folder in (not_used, used, generated):
        if not folder.is_dir():
            held = ", ".join(sorted(f"{d.name}/" for d in list_folder(path)
                                    if d.is_dir() and not skipped_name(d.name)))
            raise InputError(f"--calibrate {folder}: folder missing; a dev set holds used/, not_used/ and generated/ "
                             f"folders of images ({path} holds {held or 'no folders'})")
    try:
        real = folder_manifest(path, classes=[not_used.name, used.name], name=f"folder:{path}", reading=reading)
    except InputError as exc:  # it names the folder; name the option too: classify reads several sets
        raise InputError(f"--calibrate {exc}") from None
    real = replace(real, classes=list(MEMBERSHIP_CLASSES))  # the labels by role, whatever the folders' spelling
    return real, generated_manifest(generated, reading, option="--calibrate")


@dataclass
class DevSet:
    """A labelled calibration set, read and checked before anything is scored."""

    spec: str
    real: Manifest
    generated: Manifest
    size: int  # what its images are compared at: --image-size, else their own size
    headers: list[Header]  # every file's, the real then the generated: their bit depths are warned of as the others'

    @property
    def y(self) -> np.ndarray:
        """1 for a used image, 0 for a not-used one."""
        return (self.real.labels == self.real.classes.index("used")).astype(np.int64)


def read_dev(spec: str, data_root=None, reading: MedicalReading | None = None,
             image_size: int | None = None) -> DevSet:
    """The dev set, refused now, in a line naming --calibrate, when calibration could not use it: its images must
    share one size, and the folds need two images of each label (counted only after every candidate had been
    scored, that cost minutes, and its message named neither the option nor the folder)."""
    real, generated = dev_sets(spec, data_root, reading)
    try:
        headers = image_headers(real, generated)
        dev = DevSet(spec, real, generated, image_size or native_image_size(real, generated, headers=headers), headers)
    except InputError as exc:
        raise InputError(f"--calibrate {spec}: {exc}") from None
    used = int(dev.y.sum())
    if min(used, len(real) - used) < 2:
        raise InputError(f"--calibrate {spec}: calibration needs at least 2 used and 2 not_used images, it has "
                         f"{used} used and {len(real) - used} not_used")
    return dev


def calibration_candidates(scorer: MembershipScorer, method: str | None, k: int | None,
                           with_classifier: bool, with_default: bool = False) -> list[Candidate]:
    """Every (space, method, k) the registries offer, and the classifier when allowed; with_default:
    each but the default itself rank-averaged with the default.

    Simplicity orders candidates within noise of the best: one scorer before a fusion, then a
    coarser space, then fewer neighbours.
    """
    recipes = []
    for entry in SCORERS:
        if (method and entry.name != method) or (entry.name == "classifier" and not with_classifier):
            continue
        spaces = [space.name for space in calibration_spaces() if space.vectors or not entry.meta.get("vectors_only")]
        spaces = spaces if entry.meta["uses_features"] else [None]
        ks = ([k] if k else list(K_GRID)) if entry.meta["uses_k"] else [None]
        recipes += [canonical(Recipe(entry.name, f, kk)) for f in spaces for kk in ks]
    if with_default:
        default = default_recipe()
        recipes = [r if r == default else replace(r, with_default=True) for r in recipes]
    real, generated = len(scorer.real), len(scorer.need_generated())
    candidates = []
    for recipe in distinct_on(recipes, real, generated):
        members = SCORERS.entry(recipe.method).meta["needs"] == "members"
        size = (parse_features(recipe.features).size or 0) if recipe.features else 0
        candidates.append(Candidate(recipe, scorer.score(recipe), 1000 * members + size + (recipe.k or 0),
                                    own_cut(recipe, real, generated)))
    return candidates


def distinct_on(recipes: list[Recipe], real: int, generated: int) -> list[Recipe]:
    """The recipes that score the sets differently, the first of each kept: canonical forms repeat, and a k cut on
    sets this small (`own_ks_used`) is another k's work (local k=10, 20 and 40 all fit with 3 neighbours among
    40 generated images), which was scored again and listed as a candidate of its own."""
    kept: dict[tuple, Recipe] = {}
    for recipe in recipes:
        kept.setdefault((replace(recipe, k=None), own_ks_used(recipe, real, generated)), recipe)
    return list(kept.values())


def own_ks_used(recipe: Recipe, real: int, generated: int) -> tuple:
    """The k that each member of the recipe's own part (not the default it is averaged with) uses in each set (the
    scorer's `ks_used`); () for a recipe that names no k (the ensemble's members' k are its own)."""
    if recipe.k is None:
        return ()
    return tuple(SCORERS.entry(m.method).meta["ks_used"](m.k, generated, real - 1)
                 for m in member_recipes(recipe.own) if m.k is not None)


def own_cut(recipe: Recipe, real: int, generated: int) -> Cut:
    """Where the recipe's own k is cut on these sets (`ks_cut`), each set once: what its calibration label says."""
    if recipe.k is None:
        return ()
    return tuple(dict.fromkeys(c for m in member_recipes(recipe.own) if m.k is not None
                               for c in ks_cut(m, real, generated)))


def ks_cut(member: Recipe, real: int, generated: int) -> Cut:
    """(set, k used, images in it) for each set in which `member`'s neighbour passes use fewer neighbours than its k
    (the scorer's `ks_used`): the whole set, where it holds fewer, or the scorer's own cap. `real`: the real images,
    each compared with the others."""
    used = SCORERS.entry(member.method).meta["ks_used"](member.k, generated, real - 1)
    return tuple((name, n_used, n) for (name, _), n, n_used in zip(KS_USED_SETS, (generated, real - 1), used)
                 if n_used is not None and n_used < member.k)


def calibrate(spec: str, setup: ScoringSetup, method: str | None, k: int | None, image_size: int | None,
              used_fraction: float | None, reading: MedicalReading | None = None, dev: DevSet | None = None) -> Choice:
    """Choose the recipe on a labelled dev set (scored against its own generated images); see calibrate.py.

    Unless --method names one, the candidates are the default and every other recipe rank-averaged
    with it: the dev images are one fit of the generator and the test images another, so a scorer
    the dev set prefers on its own can fall well below the default on test, while half of the
    default in every candidate keeps what the default sees (docs/membership-history.md measures both).
    The classifier is a candidate only when its chain never trained on a dev image: scoring
    images a model was trained on measures its memory, not membership. `dev`: the set `read_dev` read already.
    """
    dev = dev or read_dev(spec, setup.data_root, reading, image_size)
    with_classifier = setup.checkpoint is not None and not trained_on(setup.checkpoint, dev.real, setup)
    if method == "classifier" and not with_classifier:
        raise InputError(f"--calibrate {spec}: the checkpoint's chain trained on these dev images (or no --checkpoint "
                         "was given); a classifier cannot be judged on its own training images")
    scorer = MembershipScorer(dev.real, dev.generated, replace(setup, image_size=dev.size))
    default = default_recipe() if method in (None, DEFAULT_METHOD) else None
    try:  # scoring decodes the dev images: a file whose header read but whose pixels do not is named with the option
        candidates = calibration_candidates(scorer, method, k, with_classifier, with_default=default is not None)
    except UnreadableImage as exc:
        raise InputError(f"--calibrate {spec}: {exc}") from None
    return choose(candidates, dev.y, seed=setup.seed, default=default, used_fraction=used_fraction)


def trained_on(checkpoint, dev: Manifest, setup: ScoringSetup) -> bool:
    """Whether a stage of the checkpoint's chain run trained on one of the dev images (same resolved file)."""
    from ganfp.checkpoint import resolve_checkpoint
    from ganfp.data.adapters import load_manifest
    from ganfp.errors import GanfpError

    given = Path(checkpoint)
    stage = given.parent if given.is_file() else resolve_checkpoint(given, setup.runs_dir)
    dev_files = {Path(item.path).resolve() for item in dev.items}
    for meta_file in sorted(stage.parent.glob("*/meta.json")):
        try:
            dataset = json.loads(meta_file.read_text())["dataset"]
            trained = load_manifest(str(dataset), setup.data_root)
        except (OSError, ValueError, KeyError, GanfpError):
            continue  # not a stage, or its data is gone: nothing to compare
        if any(Path(item.path).resolve() in dev_files for item in trained.items):
            return True
    return False


def runs_recipe(method: str | None, choice: Choice | None, recipe: Recipe) -> str:
    """What chose the recipe, as a warning names it: "--method knn", "the default method, ensemble,"."""
    if choice is not None:
        return "the recipe calibration chose"
    return f"--method {recipe.method}" if method else f"the default method, {recipe.method},"


def decision_rule(used_fraction: float | None, threshold: float | None) -> str:
    if threshold is not None:
        return f"score >= {threshold:g}"
    return f"top {used_fraction:.1%} by rank"


def check_options(method, k, used_fraction, threshold, image_size, batch_size, seed, report_n, report=None) -> None:
    """Every option checked before any image is read, the CLI's ranges included: from Python, nothing
    else stands between a `k="5"` or `batch_size=0` and a TypeError deep inside the scoring."""
    if used_fraction is not None and threshold is not None:
        raise InputError("give --used-fraction or --threshold, not both")
    if method is not None and method not in SCORERS:
        raise InputError(f"--method {method}{did_you_mean(str(method), SCORERS.names())}: choose one of: "
                         f"{', '.join(SCORERS.names())}")
    for name, value in (("threshold", threshold), ("used_fraction", used_fraction)):
        if value is not None:
            require_number(name, value)
    for name, value, low in (("k", k, 1), ("batch_size", batch_size, 1), ("report_n", report_n, 1)):
        if value is not None:
            require_int(name, value, low=low)
    require_seed("seed", seed)  # the calibration folds' scikit-learn random_state takes no more than 2**32 - 1
    if used_fraction is not None and not 0.0 < used_fraction < 1.0:
        raise InputError(f"--used-fraction {used_fraction:g}: must be between 0 and 1 (exclusive)")
    if image_size is not None:
        require_int("image_size", image_size, low=MIN_IMAGE_SIZE, high=4096)
    if report_n is not None and not report:  # ignored, a forgotten --report would pass silently
        raise InputError(f"--report-n {report_n} describes the --report: give --report too")


def check_features(features: str, method: str | None) -> None:
    """A typo in --features, or a space the method cannot fit, fails now, not after the first minute of work."""
    space = parse_features(features)
    if method in SCORERS and SCORERS.entry(method).meta.get("vectors_only") and not space.vectors:
        vectors = ", ".join(f"{n}[N]" for n in SPACE_KINDS.names() if SPACE_KINDS.get(n).vectors)
        raise InputError(f"--method {method} fits feature vectors: choose --features {vectors} or a deep "
                         f"space, not {space.label}")


def depth_warning(real: Manifest, generated: Manifest | None, headers: list[Header],
                  reading: MedicalReading | None = None, dev: DevSet | None = None) -> list[str]:
    """A warning when the images are not all of one bit depth, naming each set's. A 16-bit image is windowed by its
    own 0.5-99.5 percentiles (or, with an HU offset, in a fixed HU window), an 8-bit one read as it is, so one slice
    saved both ways differs in contrast and every distance compares the two windows as much as the images; the
    classifier (`generated` None: the real images alone) scores them with two contrasts. `headers`: every file's, the
    read that finds the size, so a few 16-bit files among thousands of 8-bit ones count, and a set that mixes depths
    is named as one. `dev`: the --calibrate set, whose images chose the recipe read as these are."""
    n_generated = len(generated) if generated is not None else 0
    sets = ["the real images"] * len(real) + ["the generated images"] * n_generated
    if dev is not None:
        sets += ["the dev images"] * len(dev.real) + ["the dev generated images"] * len(dev.generated)
        headers = [*headers, *dev.headers]
    listed = depths_by_set(sets, [h.depth for h in headers])
    if not listed:
        return []
    trained = "the generator's" if generated is not None else "the checkpoint's"
    reads = ("ganfp stretches each 16-bit, 32-bit or float image between its own 0.5 and 99.5 percentiles and reads "
             "8-bit and 1-bit ones as they are" if reading is None or reading.hu_offset is None
             else f"{high_depth_reading(reading)}, 8-bit and 1-bit ones read as they are")
    return [f"the images mix bit depths ({listed}): {reads}, so one slice saved at two depths differs in contrast; "
            f"save every image at one bit depth, windowed as {trained} training images were"]


def k_beyond_the_sets(recipe: Recipe, k: int | None, real: int, generated: int | None, which: str) -> list[str]:
    """Each k that a member's neighbour passes use less of than its recipe names (the scorer's `ks_used`), said
    aloud where it would mislead: a --k the user gave, cut to a whole set (100 neighbours of 50 generated images) or
    by the scorer's own cap (local's, on a few hundred images), and a k the user did not give that is more than a
    whole set (the default ensemble's knn k=10 on 8 generated images). A scorer's cap of its own default k is by
    design (docs/membership.md) and would warn on every run of a few hundred images. `k`: the one the user gave;
    `which`: what runs the recipe, for the k the user did not give ("the default method, ensemble,")."""
    if generated is None:
        return []
    by_cut: dict[tuple, list[str]] = {}
    for member in member_recipes(recipe):
        if member.k is None:
            continue
        # a default k's cap is by design
        cut = tuple((name, n_used, n) for name, n_used, n in ks_cut(member, real, generated)
                    if member.k == k or n_used == n)
        if cut:
            by_cut.setdefault((member.k, cut), []).append(member.label)
    warnings, members = [], sum(member.k is not None for member in member_recipes(recipe))
    for (member_k, cut), labels in by_cut.items():
        named = f"--k {k}" if member_k == k else f"{which} uses k={member_k} ({', '.join(labels)})"
        warnings.append(k_cut_warning(named, labels, cut, some=member_k == k and len(labels) < members))
    return warnings


def k_cut_warning(named: str, labels: list[str], cut: Cut, some: bool = False) -> str:
    """The words for k cut in each (set, k used, set size) of `cut`: to the whole set, or by the scorer's cap.
    `some`: the --k of only some members is cut (fusion's knn, not its density), so they are named."""
    nouns = dict(KS_USED_SETS)
    if all(n_used == n for _, n_used, n in cut):
        who = f" ({', '.join(labels)})" if some else ""
        return (f"{named}{who}: more than the {' and the '.join(count(n, nouns[name]) for name, _, n in cut)}; "
                "those neighbour passes use them all")
    return (f"{named}: {', '.join(labels)} caps k on sets this small; it uses "
            + " and ".join(f"k={n_used} among the {count(n, nouns[name])}" for name, n_used, n in cut))


def check_read(method: str, features: str | None, k: int | None, calibrating: bool, default: bool) -> None:
    """--features and --k that nothing would read are refused: ignoring them would hide a mistake, such as
    `--features std32` given in the belief that it changed the default ensemble's spaces."""
    if calibrating and features is not None:
        raise InputError(f"--features {features}: --calibrate chooses the feature space itself; drop --features, "
                         "or drop --calibrate to score in that space")
    if calibrating and default:
        return  # --k narrows calibration's candidates to that k
    meta = SCORERS.entry(method).meta
    which = f"the default method, {method}," if default else f"--method {method}"
    for option, value, key in (("--features", features, "uses_features"), ("--k", k, "uses_k")):
        if value is not None and not meta[key]:
            readers = ", ".join(SCORERS.names(**{key: True}))
            raise InputError(f"{option} {value}: {which} does not read it; it is read by --method {readers}")


def choose_recipe(dev: DevSet | None, setup: ScoringSetup, asked: Recipe, used_fraction: float | None,
                  threshold: float | None, has_generated: bool) -> tuple[Recipe, float | None, Choice | None]:
    """(recipe, used fraction, calibration): chosen on the dev set with --calibrate, else the options or defaults."""
    choice = None
    if dev is not None:
        choice = calibrate(dev.spec, setup, asked.method, asked.k, dev.size, used_fraction, dev=dev)
        recipe = choice.recipe
        if threshold is None:
            used_fraction = choice.used_fraction
    else:
        default = DEFAULT_METHOD if has_generated else "classifier"
        recipe = canonical(Recipe(asked.method or default, asked.features, asked.k))
    if used_fraction is None and threshold is None:
        used_fraction = DEFAULT_USED_FRACTION
    return recipe, used_fraction, choice


def check_dev_fraction(share: float, n: int, spec: str) -> None:
    """The dev set's share of used images, carried to the real images, must label some of them each way. Checked
    before the dev set is scored (minutes), and named as what it is: the user gave no used fraction."""
    from ganfp.submission import fraction_bound, used_count

    try:
        used_count(share, n)
    except InputError:
        none = share * n < n / 2
        raise InputError(f"--calibrate {spec}: the dev set's share of used images, {share:g}, labels "
                         f"{'none' if none else 'all'} of the {n} real images used; give --used-fraction, the share "
                         f"you expect among them ({fraction_bound(n, none)})") from None


def real_among_generated(real: Manifest, generated: Manifest | None, where: str) -> list[str]:
    """Real images that are generated images too (the same file): `--generated` naming the real folder, or a folder
    above it, puts every real image beside itself, its own nearest generated image, so each scores as used. A
    warning, not a refusal: a quick smoke run may point both at one folder (with --report it is refused, as
    `report.check_apart` says why)."""
    if generated is None:
        return []
    shared = sorted(shared_files(real, generated))
    if not shared:
        return copies_of_every_real_image(real, generated, where)
    return [f"{where}: holds {len(shared)} of the {len(real)} real images too (e.g. {shared[0]}); each is its own "
            "nearest generated image and scores as used: point it at the generator's images only"]


def copies_of_every_real_image(real: Manifest, generated: Manifest, where: str) -> list[str]:
    """A generated folder holding a byte-for-byte copy of every real image (the real folder copied into it): used
    and not-used images alike find their own copy, so the labels say nothing, and nothing said so. Copies of some
    real images are what a copying generator makes, and what membership looks for: not warned."""
    originals = {it.path for it in real.items}
    copies = copied_files(real, generated) if len(originals) > 1 else {}
    if len(copies) < len(originals) or not copies:
        return []
    original, copy = min(copies.items())
    return [f"{where}: holds a copy of every real image ({len(copies)} byte-for-byte copies, e.g. {copy} of "
            f"{original}); used and not-used images alike find their own copy, so the scores cannot tell them "
            "apart: point it at the generator's images only"]


def dev_warnings(dev: DevSet, real: Manifest, size: int | None, image_size: int | None) -> list[str]:
    """What makes a calibrated run less than it seems, said aloud: real images that are dev images too, whose own
    labels chose the recipe (an evaluation of them measures that fit, not how the recipe carries to unseen images),
    and dev images of another size than the real ones, where the recipe runs at another resolution than it was
    judged at (white48 on 32 px real images compares at 32 px)."""
    warnings = []
    if shared := shared_files(real, dev.real):
        warnings.append(f"--calibrate {dev.spec}: holds {len(shared)} of the {len(real)} real images too (e.g. "
                        f"{shared[0]}); the recipe was chosen on their labels, so evaluating these labels overstates "
                        "how well it works: calibrate on a dev set apart from the real images")
    if image_size is None and size is not None and dev.size != size:
        warnings.append(f"--calibrate {dev.spec}: its images are {dev.size} px and the real images {size} px, so the "
                        f"recipe was judged at another resolution than it runs at; pass --image-size "
                        f"{min(dev.size, size)} to compare both at one size")
    return warnings


def check_enough_real(real: str, n: int, method: str | None) -> None:
    """The neighbour scorers judge each real image against the other real ones: one image is refused before
    any work (with --calibrate it was refused only after the whole calibration had run)."""
    name = method or DEFAULT_METHOD
    if n < 2 and name in SCORERS and SCORERS.entry(name).meta["needs"] in ("neighbours", "members"):
        which = f"the default method, {name}," if method is None else f"--method {name}"
        raise InputError(f"{real}: holds {n} real image; {which} compares each real image with the other real "
                         "images too, so it needs at least 2")


def check_checkpoint_used(checkpoint: str, unused: bool, runs_dir) -> None:
    """A --checkpoint must be one, and must be read: a typo in an option nothing reads would pass silently."""
    check_checkpoint_given(checkpoint, runs_dir)
    if unused:
        raise InputError(f"--checkpoint {checkpoint}: the membership scorers do not read it; it is read by "
                         "--method classifier, --features checkpoint and --calibrate")


@dataclass
class RealSets:
    """The real images and what they are compared with, read and checked before anything is scored."""

    real: Manifest
    generated: Manifest | None
    where: str  # how a warning names the generated set: "--generated DIR", or the spec's own folder
    expected_ids: list[str] | None  # --ids, in its order


@dataclass
class ScoredRun:
    """What one run scored and decided: what its warnings, its summary and its outputs are made from."""

    sets: RealSets
    setup: ScoringSetup
    recipe: Recipe
    choice: Choice | None
    scorer: MembershipScorer
    score: np.ndarray
    scorers: dict[str, np.ndarray]
    labels: np.ndarray
    used_fraction: float | None

    @property
    def compared(self) -> Manifest | None:
        """The generated images the recipe compared each real image with: none for the classifier."""
        return self.sets.generated if self.recipe.method != "classifier" else None


def check_objects(reading, progress) -> None:
    """The two arguments that are objects, not options: `reading="lung"` failed with an AttributeError after the
    images were listed, and `progress=5` was refused only once the images' headers had been read."""
    if reading is not None and not isinstance(reading, MedicalReading):
        raise InputError(f"reading={reading!r}: must be a MedicalReading, e.g. MedicalReading.parse('lung', None, "
                         "None), or None")
    if progress is not None and not callable(progress):
        raise InputError(f"progress={progress!r}: must be callable (task, advance, total)")


def check_arguments(method, features, k, used_fraction, threshold, image_size, batch_size, seed, report, report_n,
                    generated, calibrate_on, reading=None, progress=None) -> None:
    """The options alone and together, before any file is read."""
    check_objects(reading, progress)
    check_options(method, k, used_fraction, threshold, image_size, batch_size, seed, report_n, report)
    if features is not None:
        check_features(features, method)
    if report:
        require_matplotlib()
    if generated and method == "classifier" and not calibrate_on and not report:
        raise InputError(f"--generated {generated}: --method classifier does not read it (it scores the real images "
                         "alone); drop --generated, or choose a membership --method")


def read_sets(real: str, generated: str | None, method: str | None, calibrate_on: str | None, ids_path,
              used_fraction: float | None, report: str | None, data_root, reading: MedicalReading | None) -> RealSets:
    """The real images (ids writable, matching --ids, enough for --used-fraction) and the generated set: the
    option's, else a dataset spec's own; a method or --calibrate that needs one and has none is refused."""
    from ganfp.submission import used_count

    manifest = read_real(real, data_root, reading, generated)
    check_writable_ids(manifest)
    if used_fraction is not None:
        used_count(used_fraction, len(manifest), name="--used-fraction")  # known now, not after the scoring
    expected = check_ids(manifest.ids, ids_path) if ids_path else None
    gen_dir = generated or manifest.info.get("generated")
    gen = generated_manifest(gen_dir, reading, option="--generated" if generated else "") if gen_dir else None
    where = f"--generated {generated}" if generated else str(gen_dir)
    if report and gen is not None:
        check_report_sets(manifest, gen, where)  # e.g. each real image shown as its own copy: refused
    if gen is None and method != "classifier":
        check_paired(manifest, "or --method classifier to score the real images alone")
    if gen is None and method not in (None, "classifier"):
        raise InputError(f"--method {method} compares real with generated images: pass --generated GEN_DIR")
    if gen is None and calibrate_on:
        raise InputError("--calibrate chooses among the membership scorers: pass --generated GEN_DIR too")
    return RealSets(manifest, gen, where, expected)


def check_reading_used(given: MedicalReading | None, sets: RealSets, used: MedicalReading | None) -> None:
    """Each reading option given must change something (`MedicalReading.check_read`), judged once the reading used
    is known: the HU offset a checkpoint recorded reads 16-bit slices in HU, so a --window over them changes them."""
    if given is not None:
        paths = [it.path for m in (sets.real, sets.generated) if m is not None for it in m.items]
        given.check_read(paths, used.hu_offset)


def check_scoring(sets: RealSets, real: str, asked: Recipe, checkpoint: str | None, calibrate_on: str | None,
                  runs_dir, image_size: int | None) -> bool:
    """Whether the membership scorers run (else the classifier), with every option they would not read refused
    and what each needs checked: two real images, a checkpoint of the size asked."""
    method, membership = asked.method, sets.generated is not None and asked.method != "classifier"
    check_read(method or (DEFAULT_METHOD if sets.generated is not None else "classifier"), asked.features, asked.k,
               bool(calibrate_on), method is None)
    if checkpoint is not None:
        unused = membership and not calibrate_on and asked.features != "checkpoint"
        check_checkpoint_used(checkpoint, unused, runs_dir)
    if membership:
        check_enough_real(real, len(sets.real), method)
    if not membership or asked.features == "checkpoint":
        implied = sets.generated is None and method is None
        check_checkpoint_read(checkpoint, runs_dir, image_size,
                              no_generated_hint(real) if implied else "or pass --checkpoint")
    return membership


def no_generated_hint(real: str) -> str:
    """How the no-chain message ends when the classifier was only implied, by no generated images: a user who
    forgot --generated, or gave a test set's real_unknown_1/ without the generated_1/ beside it, was told to
    train the paper's chain, when the membership scorers need no chain. A lone generated folder beside REAL is
    named (for `real_unknown_N/`, only its own `generated_N/` or an unnumbered one)."""
    beside = generated_beside(real)
    gen = beside[0] if len(beside) == 1 else "GEN_DIR"
    return (f"or pass --checkpoint; {real} brings no generated images, so classify runs the paper's classifier: "
            f"to compare the real images with the generator's images (no chain needed), pass --generated {gen}")


def classifier_only_implied(real: str, sets: RealSets, asked: Recipe, checkpoint) -> list[str]:
    """A warning when the classifier ran only because REAL brought no generated images while a generated folder
    lies beside it: `classify real_unknown_1/ --out s.csv` (--generated forgotten) wrote the paper's classifier's
    labels, at chance on membership, without a word whenever a chain run existed (without one it is refused, with
    `no_generated_hint`). Asked for by name (`--method classifier`, `--checkpoint`), it is not warned of."""
    if sets.generated is not None or asked.method is not None or checkpoint is not None:
        return []
    beside = generated_beside(real)
    if not beside:
        return []
    return [f"{real} brings no generated images, so classify ran the paper's classifier, which judges each real "
            f"image alone (near chance on membership); {beside[0]} beside it was not read: pass --generated "
            f"{beside[0]} to compare the real images with it, or --method classifier if the classifier is meant"]


def read_in(sets: RealSets, reading: MedicalReading) -> RealSets:
    """The real and generated sets with their DICOM and NIfTI images (and, with an HU offset, their 16-bit ones)
    read in the reading's window."""
    window, offset = reading.window, reading.hu_offset
    generated = with_window(sets.generated, window, offset) if sets.generated is not None else None
    return replace(sets, real=with_window(sets.real, window, offset), generated=generated)


def score_and_decide(sets: RealSets, setup: ScoringSetup, dev: DevSet | None, asked: Recipe,
                     used_fraction: float | None, threshold: float | None) -> ScoredRun:
    """The recipe (calibrated, asked or the default), every real image's score by it, and the 0/1 labels."""
    from ganfp.submission import decide

    recipe, used_fraction, choice = choose_recipe(dev, setup, asked, used_fraction, threshold,
                                                  sets.generated is not None)
    scorer = MembershipScorer(sets.real, sets.generated, setup)
    score, scorers = scorer.final(recipe)
    labels = decide(score, used_fraction=used_fraction, threshold=threshold, ids=sets.real.ids)
    return ScoredRun(sets, setup, recipe, choice, scorer, score, scorers, labels, used_fraction)


def no_leak_evidence(choice: Choice | None) -> list[str]:
    """A calibration whose dev ROC-AUC interval includes 0.5, as a warning of the run: only the terminal said it, so
    from Python and with --json it was in no `warnings`, only in `calibration.leak_evidence`."""
    return [NO_LEAK_EVIDENCE] if choice is not None and not choice.leak_evidence else []


def run_warnings(run: ScoredRun, asked: Recipe, threshold: float | None, headers: list[Header], dev: DevSet | None,
                 image_size: int | None, reading: MedicalReading | None) -> list[str]:
    """Everything that makes the run less than it seems, said aloud (each function says what and why); `reading`:
    how the images were read."""
    from ganfp.submission import constant_labelling, one_image_by_rank, ties_at_the_cut

    real, compared, size = run.sets.real, run.compared, run.setup.image_size
    n_compared = len(compared) if compared is not None else None
    which = runs_recipe(asked.method, run.choice, run.recipe)
    return (real_among_generated(real, compared, run.sets.where)
            + constant_labelling(run.score, run.labels, threshold) + ties_at_the_cut(run.score, run.labels, threshold)
            + one_image_by_rank(run.labels, threshold)
            + k_beyond_the_sets(run.recipe, asked.k, len(real), n_compared, which)
            + space_beyond_the_images(asked.features if compared is not None else None, size)
            + depth_warning(real, compared, headers, reading, dev)
            + (dev_warnings(dev, real, size, image_size) if dev is not None else []))


def checkpoint_read(run: ScoredRun) -> str | None:
    """The checkpoint the run read: the classifier's stage, or the model file of the checkpoint space, which the
    summary (and so --json and the report) left unnamed, though evaluate and attribute may be given another one."""
    meta = run.scorer.checkpoint_meta
    if meta:
        return meta["stage"]
    if run.compared is not None and run.recipe.features == "checkpoint":
        return str(checkpoint_file(run.setup.checkpoint, run.setup.runs_dir))
    return None


def run_summary(run: ScoredRun, threshold: float | None, out, scores_path, warnings: list[str],
                started: float, reading: MedicalReading | None) -> dict:
    """What `--json` prints and the table shows; `reading`: how the images were read (its HU offset is named)."""
    labels, recipe = run.labels, run.recipe
    return {
        "images": len(labels),
        "generated": len(run.compared) if run.compared is not None else None,
        "recipe": recipe.label,
        "method": recipe.method,
        "scorers": list(run.scorers),
        "features": recipe.features,
        "k": recipe.k,
        "with_default": recipe.with_default,
        "checkpoint": checkpoint_read(run),
        "hu_offset": reading.hu_offset if reading is not None else None,  # 16-bit images read as HU + this
        "decision": decision_rule(run.used_fraction, threshold),
        "used_fraction": run.used_fraction,
        "threshold": threshold,
        "labelled_used": int(labels.sum()),
        "labelled_not_used": int(len(labels) - labels.sum()),
        "out": str(out),
        "scores": str(scores_path) if scores_path else None,
        "labels": run.sets.real.info.get("labels"),  # a demo set's ground truth, to score the submission with
        "calibration": run.choice.to_dict() if run.choice else None,
        "device": str(run.setup.device),
        "seconds": round(time.perf_counter() - started, 2),
        "warnings": warnings,
    }


def write_outputs(run: ScoredRun, summary: dict, out, scores_path, report: str | None, report_n: int | None,
                  threshold: float | None) -> None:
    """--out (validated), --scores and --report, replaced together once all are complete (`written_together`); the
    report's path lands in `summary`."""
    from ganfp.submission import write_scores, write_submission

    ids = run.sets.real.ids
    with written_together() as outputs:
        write_submission(out, ids, run.labels, expected_ids=run.sets.expected_ids, batch=outputs)
        if scores_path:
            write_scores(scores_path, ids, run.score, columns=run.scorers, batch=outputs)
        if report:
            space = parse_features(run.recipe.features or DEFAULT_FEATURES)
            summary["report"] = classify_report(report, run.scorer, space, run.score, run.labels, summary,
                                                report_n or DEFAULT_ROWS, cut=threshold, batch=outputs).path


@folder_warnings_once()
def classify(real: str, out, *, generated: str | None = None, method: str | None = None, features: str | None = None,
             checkpoint: str | None = None, used_fraction: float | None = None, threshold: float | None = None,
             scores_path=None, ids_path=None, calibrate_on: str | None = None, k: int | None = None,
             device: str | torch.device = "auto", batch_size: int = 128, data_root=None, runs_dir=None, seed: int = 0,
             image_size: int | None = None, progress: Progress | None = None,
             reading: MedicalReading | None = None, report: str | None = None,
             report_n: int | None = None) -> ClassifyResult:
    """Score, decide, write `out` (validated) and optionally the scores CSV and the report; return what was done.

    Every option and input is checked before the first image is scored. The outputs are replaced together once
    all are complete: an error or a signal while the report is built leaves every one as an earlier run wrote
    it, not a new submission beside its old scores and report.
    """
    from ganfp.device import resolve_device

    started = time.perf_counter()
    require_paths({"real": real, "out": out},
                {"generated": generated, "checkpoint": checkpoint, "scores_path": scores_path, "ids_path": ids_path,
                 "calibrate_on": calibrate_on, "data_root": data_root, "runs_dir": runs_dir, "report": report})
    check_arguments(method, features, k, used_fraction, threshold, image_size, batch_size, seed, report, report_n,
                    generated, calibrate_on, reading, progress)
    check_spec("REAL", real)
    k, used_fraction, threshold, image_size, batch_size, seed, report_n = (  # numpy's leaked into the summary
        plain_number(v) for v in (k, used_fraction, threshold, image_size, batch_size, seed, report_n))
    check_outputs({"out": out, "scores_path": scores_path, "report": report},
                  (real, generated, calibrate_on, ids_path, checkpoint), data_root=data_root)
    device = resolve_device(device)  # a GPU the machine lacks, or device=0, before any image is read
    asked = Recipe(method, features, k)
    sets = read_sets(real, generated, method, calibrate_on, ids_path, used_fraction, report, data_root, reading)
    check_ground_truth({"--out": out, "--scores": scores_path, "--report": report}, sets.real, real)
    membership = check_scoring(sets, real, asked, checkpoint, calibrate_on, runs_dir, image_size)
    given, read_warnings = reading, []
    if not membership or asked.features == "checkpoint" or (calibrate_on and checkpoint):  # a checkpoint is read
        reading, read_warnings = checkpoint_reading(reading, checkpoint, runs_dir)
        sets = read_in(sets, reading) if reading is not given else sets
    check_reading_used(given, sets, reading)
    headers = image_headers(sets.real, *([sets.generated] if membership else []))  # one open per file: size, depths
    size = image_size or (native_image_size(sets.real, sets.generated, headers=headers) if membership else None)
    check_features_size(asked.features if membership else None, size, image_size)
    dev = read_dev(calibrate_on, data_root, reading, image_size) if calibrate_on else None
    if dev is not None and used_fraction is None and threshold is None:
        check_dev_fraction(float(dev.y.mean()), len(sets.real), calibrate_on)
    setup = ScoringSetup(size, device, batch_size=batch_size, data_root=data_root,
                         checkpoint=checkpoint, runs_dir=runs_dir, seed=seed, progress=progress)

    run = score_and_decide(sets, setup, dev, asked, used_fraction, threshold)
    if run.choice is not None:
        log.info("calibration chose: %s", run.choice.describe())
    warnings = (no_leak_evidence(run.choice) + classifier_only_implied(real, sets, asked, checkpoint) + read_warnings
                + run_warnings(run, asked, threshold, headers, dev, image_size, reading))
    summary = run_summary(run, threshold, out, scores_path, with_logged(warnings), started, reading)
    write_outputs(run, summary, out, scores_path, report, report_n, threshold)
    announce(warnings)
    return ClassifyResult(sets.real.ids, run.labels, run.score, run.scorers, summary, run.choice)

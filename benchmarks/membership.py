"""Membership scorers over the generator zoo: the table and the default in docs/membership.md.

    python benchmarks/membership.py --zoo [--families ...] [--zoo-dir DIR] [--write-docs]
    python benchmarks/membership.py --timing [--device cpu]
    python benchmarks/membership.py --agreement --device cuda
    python benchmarks/membership.py --acceptance LOG [LOG ...] [--write-docs]

--zoo builds (or reuses) every family's dev split (80 used, 80 not used, 500 generated) and test
split (100 / 100 / 2,000) and scores them with every recipe the registries offer (feature space x
method x k), the default, what `--calibrate` chooses on dev, GAN-Leaks (raw-pixel L2 to
the nearest generated image) and "all used". The table shows, per family, test ROC-AUC / F1 at
used fraction 0.5 and the dev ROC-AUC, then the worst case over the leaking families. A
leave-one-family-out check picks a default by its worst dev AUC on the other families and
reports it on the held-out one: a default chosen this way must hold on a family it never saw.

--timing measures what a user waits for: classify at 200 real x 10,000 generated 256 px images
(cold and warm decode cache) and --calibrate on the 2023 dev shape.

--agreement scores every recipe the registries offer, and the default, on the CPU and on --device
(two zoo families, dev shape) and reports how far the two sets of scores differ: rank correlation,
ROC-AUC on each, and the time each device took for all of them. The GPU computes distances in
blocks with other summation orders, so scores differ by float rounding; rankings must not.

--acceptance reads the last line of --zoo runs (one per seed, saved with `> LOG`) and checks
issue 9's acceptance on every family and seed: the default's gain over GAN-Leaks, its F1, how
far --calibrate falls below it, the no-leak control near 0.5; and whether the draw leaks as the
zoo means it to (GAN-Leaks test ROC-AUC in 0.65-0.85), since a draw that barely leaks caps what
any method can reach.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine  # noqa: E402

from ganfp import ui  # noqa: E402
from ganfp.classify import calibrate, calibration_candidates, dev_sets  # noqa: E402
from ganfp.data.generated import generated_manifest  # noqa: E402
from ganfp.data.real import read_real  # noqa: E402
from ganfp.data.zoo import FAMILIES, SHAPES, build_split, shape_seed, write_split  # noqa: E402
from ganfp.device import resolve_device  # noqa: E402
from ganfp.membership import MembershipScorer, Recipe, ScoringSetup, fuse, parse_features  # noqa: E402
from ganfp.membership.fusion import add_log_ratios  # noqa: E402
from ganfp.membership.pipeline import default_recipe  # noqa: E402
from ganfp.metrics import binary_metrics  # noqa: E402
from ganfp.submission import decide, read_labels  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "membership.md"
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
ACCEPTANCE_START, ACCEPTANCE_END = "<!-- acceptance:start -->", "<!-- acceptance:end -->"
LEAK_BAND = (0.65, 0.85)  # GAN-Leaks test ROC-AUC of a leaking draw, as in the real 2023 data
DEFAULT = default_recipe()
OLD_DEFAULT = Recipe("knn", "ssim64", 10)  # ganfp 0.1.0's default, chosen on the demo's generator alone
# Earlier defaults, never released, shown for comparison: label -> (how members combine, (recipe, weight)...).
# Their members are scored as they are now (knn and local judged by their fit on the real images).
EARLIER_ENSEMBLES = {
    "first ensemble (2:1 rank average of local std32 k=40, knn ncc32 k=10)":
        (fuse, ((Recipe("local", "std32", 40), 2.0), (Recipe("knn", "ncc32", 10), 1.0))),
    "second ensemble (3:1 mean of the log ratios of local std32 k=40, knn ncc48 k=3)":
        (add_log_ratios, ((Recipe("local", "std32", 40), 3.0), (Recipe("knn", "ncc48", 3), 1.0))),
    "third ensemble (1:1 mean of the log ratios of local std32 k=40, knn white48 k=5)":
        (add_log_ratios, ((Recipe("local", "std32", 40), 1.0), (Recipe("knn", "white48", 5), 1.0))),
    "fourth ensemble (1:1:1 mean of local std32 k=40, knn white48 k=5, knn wstd32 k=5)":
        (add_log_ratios, ((Recipe("local", "std32", 40), 1.0), (Recipe("knn", "white48", 5), 1.0), (Recipe("knn", "wstd32", 5), 1.0))),
}
SHOWN = [Recipe("local", "pixels32", 40), Recipe("knn", "white48", 5), Recipe("knn", "wstd32", 10), Recipe("local", "std32", 40), Recipe("knn", "wstd32", 5), Recipe("knn", "white64", 5), Recipe("retrieval", "white64"),
         Recipe("knn", "ncc48", 3), Recipe("knn", "pixels32", 10),
         Recipe("knn", "ncc32", 10), OLD_DEFAULT, Recipe("knn", "pixels64", 10), Recipe("knn", "std32", 5),
         Recipe("retrieval", "ncc48"), Recipe("density", "std16", 5), Recipe("local", "std16", 40), Recipe("fusion", "std32", 5),
         Recipe("autoencoder")]


def family_sets(name: str, shape: str, seed: int, zoo_dir: Path):
    """(real, generated, y, folder) of a family's split, written as the 2023 task ships it (once per content)."""
    split = build_split(name, shape_seed(seed, shape), **SHAPES[shape], cache=zoo_dir / "cache")
    digest = hashlib.sha256(b"".join(a.tobytes() for a in (split.used, split.not_used, split.generated))).hexdigest()
    folder = zoo_dir / f"{name}-s{seed}-{shape}-{digest[:12]}"
    if not folder.is_dir():
        write_split(split, folder, layout=shape)
    if shape == "dev":
        real, gen = dev_sets(str(folder))
        return real, gen, (real.labels == real.classes.index("used")).astype(int), folder
    real = read_real(str(folder / "real_unknown_1"))
    truth = read_labels(folder / "labels.csv")
    by_id = dict(zip(truth.ids, truth.labels.tolist()))
    return real, generated_manifest(folder / "generated_1"), np.array([by_id[i] for i in real.ids]), folder


def gan_leaks(scorer: MembershipScorer, size: int) -> np.ndarray:
    """Chen et al. 2020: minus the raw-pixel L2 distance to the nearest generated image."""
    return -scorer.neighbours(parse_features(f"pixels{size}")).real_to_generated(1)[0][:, 0].double().numpy()


def evaluate_family(name: str, seed: int, zoo_dir: Path, device: torch.device) -> dict:
    """Dev and test numbers of every recipe, GAN-Leaks, calibration and "all used" on one family."""
    size = FAMILIES.entry(name).meta["size"]
    (dev, dev_gen, y_dev, dev_dir), (test, test_gen, y_test, _) = (family_sets(name, s, seed, zoo_dir) for s in SHAPES)
    setup = ScoringSetup(size, device, data_root=zoo_dir / "data", seed=seed)
    on_dev, on_test = MembershipScorer(dev, dev_gen, setup), MembershipScorer(test, test_gen, setup)
    rows = {}
    for candidate in calibration_candidates(on_dev, None, None, with_classifier=False):
        recipe = candidate.recipe
        rows[recipe.label] = numbers(candidate.scores, y_dev, on_test.score(recipe), y_test)
    rows["GAN-Leaks"] = numbers(gan_leaks(on_dev, size), y_dev, gan_leaks(on_test, size), y_test)
    for label, (combine, members) in EARLIER_ENSEMBLES.items():
        rows[label] = numbers(earlier(on_dev, combine, members), y_dev, earlier(on_test, combine, members), y_test)
    started = time.perf_counter()
    choice = calibrate(str(dev_dir), setup, None, None, None, 0.5)
    chosen = on_test.score(choice.recipe)
    rows["--calibrate"] = {"dev_auc": choice.dev_auc, "test_auc": float(roc_auc_score(y_test, chosen)),
                           "test_f1": float(binary_metrics(y_test, decide(chosen, used_fraction=choice.used_fraction))["f1"]),
                           "chose": choice.recipe.label, "seconds": round(time.perf_counter() - started, 1)}
    rows["all used"] = {"dev_auc": 0.5, "test_auc": 0.5, "test_f1": float(binary_metrics(y_test, np.ones_like(y_test))["f1"])}
    return rows


def earlier(scorer: MembershipScorer, combine, members) -> np.ndarray:
    """An earlier ensemble's scores: its members combined as it combined them."""
    return combine({r.label: scorer.score(r) for r, _ in members}, {r.label: w for r, w in members})


def control_over_seeds(name: str, seeds: range, zoo_dir: Path, device: torch.device) -> dict:
    """Test ROC-AUC of the default and GAN-Leaks on a no-leak family, for several independent draws.

    One draw of 100 + 100 images has a standard error of about 0.04 around 0.5, so a single split
    can sit near the edge of 0.5 +- 0.08 by luck; the mean over draws is the measurement.
    """
    size = FAMILIES.entry(name).meta["size"]
    out = {"default": [], "GAN-Leaks": []}
    for seed in seeds:
        test, test_gen, y, _ = family_sets(name, "test", seed, zoo_dir)
        scorer = MembershipScorer(test, test_gen, ScoringSetup(size, device, data_root=zoo_dir / "data", seed=seed))
        out["default"].append(float(roc_auc_score(y, scorer.score(DEFAULT))))
        out["GAN-Leaks"].append(float(roc_auc_score(y, gan_leaks(scorer, size))))
    return {k: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)), "draws": v} for k, v in out.items()}


def numbers(dev_scores, y_dev, test_scores, y_test) -> dict:
    """Dev ROC-AUC, test ROC-AUC, and test F1 when the top half is labelled used (the 2023 prevalence)."""
    labels = decide(test_scores, used_fraction=0.5)
    return {"dev_auc": float(roc_auc_score(y_dev, dev_scores)), "test_auc": float(roc_auc_score(y_test, test_scores)),
            "test_f1": float(binary_metrics(y_test, labels)["f1"])}


def leave_one_family_out(results: dict, leaking: list[str]) -> list[dict]:
    """Per held-out family: the recipe with the best worst dev AUC on the others, and its test AUC there."""
    recipes = [r for r in results[leaking[0]] if r not in ("GAN-Leaks", "--calibrate", "all used", *EARLIER_ENSEMBLES)]
    out = []
    for held in leaking:
        others = [f for f in leaking if f != held]
        pick = max(recipes, key=lambda r: min(results[f][r]["dev_auc"] for f in others))
        out.append({"held_out": held, "picked": pick, "worst_dev_auc_on_others": min(results[f][pick]["dev_auc"] for f in others),
                    "test_auc_on_held_out": results[held][pick]["test_auc"],
                    "default_test_auc_on_held_out": results[held][DEFAULT.label]["test_auc"]})
    return out


def table_rows(results: dict, leaking: list[str]) -> list[tuple[str, list[str], str]]:
    """(method, one cell per family, worst case over the leaking families) for the rows shown."""
    names = [DEFAULT.label, "--calibrate", *EARLIER_ENSEMBLES] + [r.label for r in SHOWN] + ["GAN-Leaks", "all used"]
    rows = []
    for name in names:
        cells = []
        for family, res in results.items():
            r = res[name]
            dev = f" (dev {r['dev_auc']:.2f})" if r.get("dev_auc") is not None else ""
            chose = f" [{r['chose']}]" if "chose" in r else ""
            cells.append(f"{r['test_auc']:.2f} / {r['test_f1']:.2f}{dev}{chose}")
        worst = f"{min(results[f][name]['test_auc'] for f in leaking):.2f} / {min(results[f][name]['test_f1'] for f in leaking):.2f}"
        rows.append((name, cells, worst))
    return rows


def markdown(results: dict, leaking: list[str], lofo: list[dict], controls: dict, command: str, info: dict,
             seconds: float, timings: dict | None) -> str:
    families = list(results)
    lines = [f"Produced by `{command}` in {seconds:.0f} s ({info['cpu']}, {info['cores']} cores, {info['torch_threads']} "
             f"torch threads, torch {info['torch']}). Cells: test ROC-AUC / test F1 at used fraction 0.5 (dev ROC-AUC); "
             "worst case over the leaking families (all but `noleak`).", "",
             "| method | " + " | ".join(families) + " | worst case |", "| --- |" + " --- |" * (len(families) + 1)]
    for name, cells, worst in table_rows(results, leaking):
        bold = "**" if name == DEFAULT.label else ""
        lines.append(f"| {bold}{name}{bold} | " + " | ".join(cells) + f" | {worst} |")
    lines += ["", "Leave one family out (a default picked by its worst dev ROC-AUC on the other leaking families):", "",
              "| held-out family | picked | its test ROC-AUC there | the default's |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['held_out']} | {r['picked']} | {r['test_auc_on_held_out']:.3f} | {r['default_test_auc_on_held_out']:.3f} |"
              for r in lofo]
    for name, c in controls.items():
        d, g = c["default"], c["GAN-Leaks"]
        lines += ["", f"No-leak control `{name}` over {len(d['draws'])} independent test draws (seeds 0-{len(d['draws']) - 1}): "
                  f"default ROC-AUC mean {d['mean']:.3f} (range {d['min']:.3f}-{d['max']:.3f}); "
                  f"GAN-Leaks mean {g['mean']:.3f} (range {g['min']:.3f}-{g['max']:.3f})."]
    if timings:
        lines += ["", "Timings, end to end through `classify` on the same machine:", ""]
        lines += [f"- {what}: {value}" for what, value in timings.items()]
    return "\n".join(lines)


def write_docs(table: str, start: str = START, end: str = END) -> None:
    from ganfp.fileio import write_text

    text = DOCS.read_text()
    if start not in text or end not in text:
        sys.exit(f"{DOCS}: no {start} ... {end} markers to write the table between")
    head, rest = text.split(start, 1)
    write_text(DOCS, f"{head}{start}\n{table}\n{end}{rest.split(end, 1)[1]}")


class Criterion(NamedTuple):
    """One line of issue 9's acceptance, checked per family and seed on the test split."""

    name: str
    families: bool | None  # the leaking families (True), the no-leak controls (False), or all (None)
    value: Callable[[dict], float]  # from one family's rows
    passes: Callable[[float], bool]
    form: str


ACCEPTANCE = (
    Criterion("gain over GAN-Leaks >= 0.10", True, lambda r: r[DEFAULT.label]["test_auc"] - r["GAN-Leaks"]["test_auc"],
              lambda v: v >= 0.10, "+.3f"),
    Criterion("F1 at used fraction 0.5 >= 0.80", True, lambda r: r[DEFAULT.label]["test_f1"], lambda v: v >= 0.80, ".2f"),
    Criterion("--calibrate at most 0.02 below the default", None,
              lambda r: r["--calibrate"]["test_auc"] - r[DEFAULT.label]["test_auc"], lambda v: v >= -0.02, "+.3f"),
    Criterion("no-leak ROC-AUC within 0.5 +- 0.08", False, lambda r: r[DEFAULT.label]["test_auc"],
              lambda v: abs(v - 0.5) <= 0.08, ".3f"),
)


def read_zoo_runs(paths: list[Path]) -> dict[int, dict]:
    """seed -> that --zoo run's per-family results, from the JSON line each run printed last."""
    runs = {}
    for path in paths:
        lines = [line for line in path.read_text().splitlines() if line.startswith("{")]
        record = json.loads(lines[-1]) if lines else {}
        if "zoo" not in record:
            sys.exit(f"{path}: no --zoo result line (save a run's output with `> LOG`)")
        runs[record["zoo"]["seed"]] = record["zoo"]["results"]
    return dict(sorted(runs.items()))


def in_band(rows: dict) -> bool:
    low, high = LEAK_BAND
    return low <= rows["GAN-Leaks"]["test_auc"] <= high


def acceptance(runs: dict[int, dict]) -> str:
    """Markdown: per criterion a family x seed table (misses in bold, draws outside the band starred) and its count."""
    seeds = list(runs)
    lines = [f"Seeds {', '.join(map(str, seeds))}; test splits. `*`: a leaking draw whose GAN-Leaks test ROC-AUC is "
             f"outside {LEAK_BAND[0]}-{LEAK_BAND[1]} (it leaks less, or more, than the zoo means it to). Misses in bold.", ""]
    for criterion in ACCEPTANCE:
        lines += [f"**{criterion.name}**", ""] + criterion_table(criterion, runs) + [""]
    return "\n".join(lines).rstrip()


def criterion_table(criterion: Criterion, runs: dict[int, dict]) -> list[str]:
    seeds, families = list(runs), list(next(iter(runs.values())))
    applies = [f for f in families if criterion.families is None or FAMILIES.entry(f).meta["leaks"] == criterion.families]
    lines = ["| family | " + " | ".join(f"seed {s}" for s in seeds) + " |", "| --- |" + " --- |" * len(seeds)]
    met = banded = banded_met = 0
    for family in applies:
        cells = []
        for seed in seeds:
            rows = runs[seed][family]
            value = round(criterion.value(rows), 6)  # F1 0.8 may come out as 0.7999999999999999
            ok, band = criterion.passes(value), not FAMILIES.entry(family).meta["leaks"] or in_band(rows)
            met, banded, banded_met = met + ok, banded + band, banded_met + (ok and band)
            bold = "" if ok else "**"
            cells.append(f"{bold}{value:{criterion.form}}{bold}" + ("" if band else " *"))
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    cases = len(applies) * len(seeds)
    in_band_note = f"; on the draws in the band, {banded_met} of {banded}" if banded < cases else ""
    return lines + ["", f"Met on {met} of {cases}{in_band_note}."]


def run_zoo(args, device: torch.device, timings: dict | None) -> dict:
    zoo_dir = Path(args.zoo_dir).expanduser()
    families = args.families or FAMILIES.names()
    results, started = {}, time.perf_counter()
    for name in families:
        t = time.perf_counter()
        results[name] = evaluate_family(name, args.seed, zoo_dir, device)
        ui.info(f"{name}: default test AUC {results[name][DEFAULT.label]['test_auc']:.3f}, GAN-Leaks "
                f"{results[name]['GAN-Leaks']['test_auc']:.3f}, --calibrate chose {results[name]['--calibrate']['chose']} "
                f"({time.perf_counter() - t:.0f} s)")
    leaking = [f for f in families if FAMILIES.entry(f).meta["leaks"]]
    lofo = leave_one_family_out(results, leaking) if len(leaking) > 2 else []
    controls = {f: control_over_seeds(f, range(args.control_seeds), zoo_dir, device)
                for f in families if f not in leaking and args.control_seeds > 0}
    for name, c in controls.items():
        ui.info(f"{name} over {args.control_seeds} draws: default test AUC mean {c['default']['mean']:.3f} "
                f"({c['default']['min']:.3f}-{c['default']['max']:.3f}), GAN-Leaks {c['GAN-Leaks']['mean']:.3f}")
    ui.print_table("membership over the generator zoo: test ROC-AUC / F1 @ 0.5 (dev ROC-AUC)",
                   ["method", *families, "worst case"], [[n, *c, w] for n, c, w in table_rows(results, leaking)])
    if lofo:
        ui.print_table("leave one family out", ["held out", "picked", "test AUC", "default's"],
                       [[r["held_out"], r["picked"], r["test_auc_on_held_out"], r["default_test_auc_on_held_out"]] for r in lofo])
    seconds = time.perf_counter() - started
    if args.write_docs:
        command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
        write_docs(markdown(results, leaking, lofo, controls, command, machine(device), seconds, timings))
    shown = {f: {r: v for r, v in res.items() if r in {n for n, _, _ in table_rows(results, leaking)}} for f, res in results.items()}
    return {"seed": args.seed, "results": shown, "leave_one_family_out": lofo, "controls": controls,
            "seconds": round(seconds, 1)}


def timing(device: torch.device, generated: int = 10_000, size: int = 256) -> dict:
    """What a user waits for, end to end through `classify`, on files written here (the task: 10,000 at 256 px)."""
    from ganfp.classify import classify

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ui.info(f"timing: drawing and writing 200 real + {generated:,} generated PNGs at {size} px (untimed)")
        big = build_split("pcagmm", 0, used=100, not_used=100, generated=generated, size=size, cache=root / "cache")
        write_split(big, root / "big", layout="test")
        for run in ("cold", "warm"):
            ui.info(f"timing: classify, {run} decode cache")
            started = time.perf_counter()
            classify(str(root / "big" / "real_unknown_1"), root / "s.csv", generated=str(root / "big" / "generated_1"),
                     device=str(device), data_root=root / "data")
            out[f"classify 200 x {generated} at {size} px, default, {run} decode cache (s)"] = round(time.perf_counter() - started, 1)
        dev = build_split("pcagmm", 0, **SHAPES["dev"], cache=root / "cache")
        write_split(dev, root / "dev", layout="dev")
        ui.info("timing: classify --calibrate")
        started = time.perf_counter()
        classify(str(root / "dev" / "used"), root / "c.csv", generated=str(root / "dev" / "generated"),
                 calibrate_on=str(root / "dev"), device=str(device), data_root=root / "data")
        out["classify --calibrate on the 2023 dev shape (160 x 500), 64 px (s)"] = round(time.perf_counter() - started, 1)
    return out


AGREEMENT_FAMILIES = ("pcagmm", "memoriser")


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho (ties broken by position: scores here are continuous)."""
    ra, rb = (np.argsort(np.argsort(v, kind="stable")).astype(np.float64) for v in (a, b))
    return float(np.corrcoef(ra, rb)[0, 1])


def agreement(device: torch.device, seed: int, zoo_dir: Path, families=AGREEMENT_FAMILIES) -> dict:
    """Every recipe's scores on the CPU against the same on `device` (a second CPU run checks determinism)."""
    devices = {"cpu": torch.device("cpu"), "device": device}
    rows, seconds = [], dict.fromkeys(devices, 0.0)
    for name in families:
        real, gen, y, _ = family_sets(name, "dev", seed, zoo_dir)
        size = FAMILIES.entry(name).meta["size"]
        scorers = {side: MembershipScorer(real, gen, ScoringSetup(size, d, data_root=zoo_dir / "data", seed=seed))
                   for side, d in devices.items()}
        for side, scorer in scorers.items():
            ui.info(f"agreement: {name}, every recipe on {devices[side]}")
            started = time.perf_counter()
            recipes = [c.recipe for c in calibration_candidates(scorer, None, None, with_classifier=False)] + [DEFAULT]
            scorer.score(DEFAULT)
            seconds[side] += time.perf_counter() - started
        for recipe in dict.fromkeys(recipes):
            on_cpu, on_device = scorers["cpu"].score(recipe), scorers["device"].score(recipe)
            rows.append({"family": name, "recipe": recipe.label, "rho": rank_correlation(on_cpu, on_device),
                         "auc_cpu": float(roc_auc_score(y, on_cpu)), "auc_device": float(roc_auc_score(y, on_device))})
    gaps = [abs(r["auc_cpu"] - r["auc_device"]) for r in rows]
    return {"device": str(device), "pairs": len(rows), "worst_rank_correlation": min(r["rho"] for r in rows),
            "largest_auc_gap": max(gaps), "seconds": {side: round(t, 1) for side, t in seconds.items()},
            "shown": sorted((r for r, gap in zip(rows, gaps) if r["recipe"] == DEFAULT.label or r["rho"] < 0.9999 or gap > 0.001),
                            key=lambda r: r["rho"])}


def print_agreement(result: dict) -> None:
    """The default and every recipe whose ranking or ROC-AUC moved, lowest rank correlation first."""
    ui.print_table(f"scores on the CPU vs {result['device']} (dev shape; the default and every recipe that moved)",
                   ["family", "recipe", "rank correlation", "ROC-AUC cpu", "ROC-AUC device"],
                   [(r["family"], r["recipe"], f"{r['rho']:.5f}", f"{r['auc_cpu']:.4f}", f"{r['auc_device']:.4f}")
                    for r in result["shown"]])
    ui.info(f"{result['pairs']} recipe x family pairs: lowest rank correlation {result['worst_rank_correlation']:.5f}, "
            f"largest ROC-AUC gap {result['largest_auc_gap']:.4f}; seconds for all of them: {result['seconds']}")


def parse_args(argv=None) -> argparse.Namespace:
    """The options; a function so tests can check gpu_all.sh's steps against them without running anything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", action="store_true", help="score every family of the generator zoo")
    parser.add_argument("--families", nargs="+", choices=FAMILIES.names(),
                        help=f"only these families (--agreement: default {' '.join(AGREEMENT_FAMILIES)})")
    parser.add_argument("--zoo-dir", default=str(Path(tempfile.gettempdir()) / "ganfp-zoo"),
                        help="where the zoo's splits and caches are kept between runs")
    parser.add_argument("--control-seeds", type=int, default=5, help="independent draws of each no-leak control (0: none)")
    parser.add_argument("--timing", action="store_true", help="time classify and --calibrate at the task's scale")
    parser.add_argument("--timing-generated", type=int, default=10_000,
                        help="generated images of --timing's classify (smaller: a rehearsal, not the task's scale)")
    parser.add_argument("--timing-size", type=int, default=256, help="side of --timing's PNG files")
    parser.add_argument("--agreement", action="store_true", help="every recipe's scores on the CPU against --device")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 gives steady timings on a shared machine)")
    parser.add_argument("--acceptance", nargs="+", type=Path, metavar="LOG",
                        help="check issue 9's acceptance on saved --zoo runs (one per seed)")
    parser.add_argument("--write-docs", action="store_true", help=f"write the zoo or acceptance tables into {DOCS.name}")
    args = parser.parse_args(argv)
    if not (args.acceptance or args.zoo or args.timing or args.agreement):
        parser.error("choose --zoo, --timing, --agreement, --acceptance or several")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.acceptance:
        table = acceptance(read_zoo_runs(args.acceptance))
        print(table)
        if args.write_docs:
            write_docs(table, ACCEPTANCE_START, ACCEPTANCE_END)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    result = {"benchmark": "membership", "machine": machine(device)}
    if args.timing:
        result["timing"] = timing(device, args.timing_generated, args.timing_size)
        ui.print_table("membership timings", ["what", "seconds"], [(what, f"{s:.1f}") for what, s in result["timing"].items()])
    if args.agreement:
        result["agreement"] = agreement(device, args.seed, Path(args.zoo_dir), args.families or AGREEMENT_FAMILIES)
        print_agreement(result["agreement"])
    if args.zoo:
        result["zoo"] = run_zoo(args, device, result.get("timing"))
    emit(result)


if __name__ == "__main__":
    main()

"""`demo:PART`: the built-in synthetic data, one part per stage of the paper's chain.

Built (seeded, offline, in seconds) the first time it is asked for.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ganfp.data.adapters import register_adapter
from ganfp.data.adapters.folder import folder_manifest
from ganfp.data.manifest import Manifest
from ganfp.errors import InputError
from ganfp.registry import Registry

log = logging.getLogger(__name__)

# Every part, in one registry: the chain's parts are (folder, class order or None for unlabelled,
# sub-folders that are not classes); the attribution parts (meta attribution=True) are (demo folder,
# what to load), built on their own, see ganfp.data.demo_attribution.
DEMO_PARTS: Registry[tuple] = Registry("demo part")
DEMO_PARTS.add("casia", ("casia", ["authentic", "tampered"], ()))
DEMO_PARTS.add("covid", ("covid", ["normal", "covid"], ()))
DEMO_PARTS.add("gans-dev", ("gans-dev", ["not_used", "used"], ("generated",)))
DEMO_PARTS.add("gans-test", ("gans-test/real_unknown_1", None, ()))
DEMO_PARTS.add("attribution-2025", ("attribution-2025", "attribution-unknown"), attribution=True)
DEMO_PARTS.add("attribution-2025-train", ("attribution-2025", "attribution-train"), attribution=True)
DEMO_PARTS.add("attribution-2025-real", ("attribution-2025", "attribution-real"), attribution=True)
DEMO_PARTS.add("attribution-2024", ("attribution-2024", "generated"), attribution=True)
# the parts in demo/, which fetch-data demo rebuilds (the attribution parts have their own folders)
CHAIN_SPECS = {f"demo:{name}" for name in DEMO_PARTS.names(attribution=None)}
GENERATED = {"gans-dev": "gans-dev/generated", "gans-test": "gans-test/generated_1"}
TEST_LABELS = "gans-test-labels.csv"
# the attribution parts whose images labels.csv covers: the training and real parts are labelled by their folders,
# and `attribute` printed an evaluate line for them that failed on the first id
PARTS_WITH_GROUND_TRUTH = ("attribution-unknown", "generated")


def demo_dir(data_root: Path) -> Path:
    return Path(data_root) / "demo"


def demo_ready(data_root: Path, seed: int | None = None) -> bool:
    """Complete, of this ganfp's demo version, and (when given) of this seed."""
    from ganfp.data.demo import DEMO_VERSION

    try:
        meta = json.loads((demo_dir(data_root) / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("status") == "ready" and meta.get("version") == DEMO_VERSION and seed in (None, meta.get("seed"))


def ensure_demo(data_root: Path, seed: int | None = None, force: bool = False) -> Path:
    """The demo folder, built (atomically replacing an old one) if absent, incomplete, outdated or of another seed.

    Without `seed` a rebuild keeps the seed the demo there was built with (else 0): `--force` means the same demo
    again, not the images of seed 0 under the runs trained on another draw.
    """
    from ganfp.data.demo import build_demo

    target = demo_dir(data_root)
    if force or not demo_ready(data_root, seed):
        announce_build(target)
        build_demo(target, seed=_recorded_seed(data_root) if seed is None else seed)
    return target


def _recorded_seed(data_root: Path) -> int:
    """The seed in the demo's meta.json; 0 when there is none (no demo, or its meta.json is unreadable)."""
    try:
        seed = json.loads((demo_dir(data_root) / "meta.json").read_text()).get("seed")
    except (OSError, ValueError, AttributeError):
        return 0
    return seed if type(seed) is int and seed >= 0 else 0  # not a bool, nor a seed numpy refuses


def announce_build(target: Path) -> None:
    """The first use of a demo set waits seconds for the build: say so, where, and that it is not done each time."""
    log.info("building the demo data in %s (a few seconds, done once: later runs reuse it)", target)


def load_attribution(arg: str, data_root: Path) -> Manifest:
    """The 2025 parts read like the 2025 archive; the 2024 part is one folder of mixed generators' images."""
    from ganfp.data.adapters.imageclef import load_part
    from ganfp.data.demo_attribution import LABELS, ensure_attribution_demo

    name, part = DEMO_PARTS.get(arg)
    root = ensure_attribution_demo(name, data_root)
    if part == "generated":
        manifest = folder_manifest(root / "generated", name=f"demo:{arg}")
    else:
        manifest = load_part(root, part, f"demo:{arg}", str(root))
    if part in PARTS_WITH_GROUND_TRUTH:  # the labels name the unknown images (2025) or the mixed ones (2024), no others
        manifest.info["labels"] = str(root / LABELS)
    return manifest


def part_folders(arg: str | None, data_root: Path, **options) -> list[Path]:
    """An attribution part's own `demo-<name>/`, else `demo/` (all the chain's parts), built or not."""
    entry = DEMO_PARTS.entry(arg) if arg in DEMO_PARTS else None
    if entry is not None and entry.meta.get("attribution"):
        return [Path(data_root) / f"demo-{entry.obj[0]}"]
    return [demo_dir(data_root)]


def check_part(arg: str | None) -> None:
    """A part named, and one of the demo's: known when the spec is parsed, before any image is read."""
    if not arg:
        raise InputError(f"demo: name a part, e.g. demo:covid (parts: {', '.join(DEMO_PARTS.names())})")
    DEMO_PARTS.entry(arg)


@register_adapter("demo", f"built-in synthetic data; parts: {', '.join(DEMO_PARTS.names())}", folders=part_folders,
                  check=check_part)
def load(arg: str | None, data_root: Path, **options) -> Manifest:
    entry = DEMO_PARTS.entry(arg)
    if entry.meta.get("attribution"):
        return load_attribution(arg, data_root)
    if options:
        raise InputError(f"demo:{arg}: unknown option(s) {', '.join(sorted(options))} (demo takes none)")
    folder, classes, exclude = entry.obj
    root = ensure_demo(data_root)
    manifest = folder_manifest(root / folder, classes=classes, name=f"demo:{arg}", exclude=exclude)
    if arg in GENERATED:
        manifest.info["generated"] = str(root / GENERATED[arg])
    if arg == "gans-test":
        manifest.info["labels"] = str(root / TEST_LABELS)
    return manifest

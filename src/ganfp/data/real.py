"""The real-image side of a membership set: the images classify scores and an evaluate report shows.

One reader for both, so a report draws each real image as it was scored: the same layout rules
(`generated*/` is never a real class, the ImageCLEF test layout) and the same DICOM/NIfTI reading.
"""

from __future__ import annotations

from pathlib import Path

from ganfp.data.adapters import imageclef, load_manifest
from ganfp.data.adapters.folder import folder_manifest
from ganfp.data.manifest import Manifest, folder_warnings_once, image_files, is_dicom, is_nifti, list_folder
from ganfp.data.names import skipped_name
from ganfp.data.medical import MedicalReading, with_window
from ganfp.errors import InputError, require_path


def _real_folder(path: Path, reading: MedicalReading | None, generated: str | None) -> Manifest:
    """A folder of real images. The ImageCLEF test layout (`real_unknown_N/` beside `generated_N/`) is
    recognised: the real images are `real_unknown_N/`, the generated ones (unless --generated) `generated_N/`;
    so is one `generated/` beside the real images or their class folders (the dev layout). A --generated folder
    inside it (`real/fakes/`) is not a class of real images either: read as one, its images were scored as real
    images (each its own nearest generated image), or refused beside loose real images as a second layout; nor is
    a sub-folder that holds the --generated folder and no other image (`real/out/fakes/`)."""
    subdirs = [p for p in list_folder(path) if p.is_dir() and not skipped_name(p.name)]
    tests = sorted(p.name for p in subdirs if imageclef.REAL_UNKNOWN.match(imageclef._norm(p.name)))
    if len(tests) > 1:
        beside = path / tests[0].replace("real_unknown", "generated")
        raise InputError(f"{path}: holds several ImageCLEF test sets ({', '.join(tests)}); classify one, "
                         f"e.g. ganfp classify {path / tests[0]} --generated {beside}")
    if tests:
        return imageclef.load_part(path, "test", f"folder:{path}", str(path), reading)
    beside = tuple(p.name for p in subdirs if imageclef.names_generated(p.name))
    given = Path(generated).expanduser().resolve() if generated else None
    named = tuple(p.name for p in subdirs if given is not None and _only_generated(p, given))
    manifest = folder_manifest(path, exclude=beside + named, reading=reading)
    if len(beside) == 1:  # a dev layout (used/, not_used/, generated/): its own generated images, as for a test set
        manifest.info["generated"] = str(path / beside[0])
    elif beside:  # which one? `check_paired` asks, rather than the classifier running in silence
        manifest.info["several_generated"] = sorted(beside)
    return manifest


def _only_generated(folder: Path, given: Path) -> bool:
    """Whether `folder` is the --generated folder, or holds it and no image outside it (`real/out/fakes/`): such a
    sub-folder is no class of real images, and was refused beside loose real images as a second layout."""
    resolved = folder.resolve()
    if resolved == given:
        return True
    if resolved not in given.parents:
        return False
    inner = folder / given.relative_to(resolved)
    return all(inner in image.parents for image in image_files(folder))


def check_paired(manifest: Manifest, instead: str) -> None:
    """A test set without its own generated_N/, beside other test sets' generated folders, refused when generated
    images would be read: it was compared with another test set's (maybe another generator's), and without them
    classify ran the classifier, and evaluate drew a report without neighbours, without a word. So is a folder of
    real images beside several generated folders (`generated_1/`, `generated_2/`), none of which was read.
    `instead`: the caller's other way out."""
    several = manifest.info.get("several_generated")
    if several:
        raise InputError(f"{manifest.root}: holds several generated folders ({', '.join(f'{n}/' for n in several)}); "
                         f"pass --generated with the one to compare its real images with, {instead}")
    others = manifest.info.get("unpaired")
    if others:
        own = f"generated_{imageclef.real_unknown_number(Path(manifest.root).name) or 1}/"
        theirs = ", ".join(f"{name}/" for name in others)
        raise InputError(f"{manifest.root}: no {own} beside it ({theirs}: another test set's generated images, never "
                         f"compared with it); pass --generated GEN_DIR with the images of its own generator, {instead}")


def generated_beside(real: str) -> list[Path]:
    """The generated folders beside a REAL folder (for `real_unknown_N/`, only its own `generated_N/` or an
    unnumbered one), by name: where a user who forgot --generated keeps the generator's images. Classify and
    evaluate's report both read none of them unless told, and both name them when they ran without any."""
    path = Path(real).expanduser()
    number = imageclef.real_unknown_number(path.name)  # real_unknown_2/: generated_1/ beside it is another test set's
    try:
        return sorted(p for p in path.parent.iterdir() if p.is_dir() and p.name != path.name
                      and imageclef.names_generated(p.name, number)) if path.is_dir() else []
    except OSError:  # a parent that cannot be listed: none named
        return []


def spec_manifest(spec: str, data_root=None, reading: MedicalReading | None = None) -> Manifest:
    """A dataset spec's images, its DICOM and NIfTI ones (and, with an HU offset, its 16-bit ones) in the reading's
    window: `folder:DIR` of DICOM files ignored --window, and scored lung-window images. Its adapter lists the files,
    so --id-from and --slices, which act while a folder is listed, are refused where they would otherwise pass
    unread."""
    manifest = load_manifest(spec, data_root)
    if reading is None:
        return manifest
    paths = [it.path for it in manifest.items]
    for option, given, reads in (("--id-from", reading.id_from, is_dicom), ("--slices", reading.slices, is_nifti)):
        if given is not None and any(reads(p) for p in paths):
            raise InputError(f"{option}: {spec} is a dataset spec, whose adapter lists its images itself and would "
                             "ignore it; give the folder of images instead")
    if reading.window or reading.hu_offset is not None:
        return with_window(manifest, reading.window, reading.hu_offset)
    return manifest


@folder_warnings_once()
def read_real(spec: str, data_root=None, reading: MedicalReading | None = None,
              generated: str | None = None) -> Manifest:
    """A folder of images (flat; used/ and not_used/; or real_unknown_N/ beside generated_N/; generated*/
    sub-folders, and the `generated` folder (--generated) when it is one of its sub-folders, are never real
    classes) or a dataset spec."""
    require_path("spec", spec)
    require_path("generated", generated, optional=True)
    path = Path(spec).expanduser()
    manifest = _real_folder(path, reading, generated) if path.is_dir() else spec_manifest(spec, data_root, reading)
    seen: dict[str, str] = {}
    for item in manifest.items:
        if item.id in seen:
            source = "SOPInstanceUIDs (--id-from uid)" if item.name else "file names without extension"
            raise InputError(f"{item.path}: id {item.id!r} also belongs to {seen[item.id]} (ids are {source})")
        seen[item.id] = item.path
    return manifest

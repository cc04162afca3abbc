"""`folder:PATH`: class sub-folders give labels; a flat folder of images is unlabelled.

Deeper folders under a class (e.g. `covid/patient7/IM0001.png`) become the item's group,
so a patient's slices never straddle the train/val split.
"""

from __future__ import annotations

from pathlib import Path

from ganfp.data.adapters import register_adapter
from ganfp.data.manifest import (UNLABELLED, Manifest, folder_warnings_once, image_files, list_folder, refuse_loops,
                                 skipped_name, warn_scales_by_class)
from ganfp.data.medical import MedicalReading, file_items
from ganfp.errors import InputError


@folder_warnings_once()
def folder_manifest(path: str | Path, classes: list[str] | None = None, name: str | None = None, exclude: tuple[str, ...] = (),
                    reading: MedicalReading | None = None) -> Manifest:
    """Labelled by sub-folder when the folder has class sub-folders with images, else unlabelled.

    `classes` fixes the label order (index 1 is the positive class); by default it is alphabetical.
    `exclude` names sub-folders that are not classes (e.g. `generated`). `reading` says how DICOM
    and NIfTI files become images (HU window, ids, slices); each NIfTI slice is one item.
    """
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise InputError(f"{root}: is a file, not a folder of images")
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    spec = name or f"folder:{root}"
    subdirs = sorted(p for p in list_folder(root) if p.is_dir() and not skipped_name(p.name) and p.name not in exclude)
    refuse_loops(subdirs)
    flat = image_files(root, recursive=False)
    if classes is None and (flat or not subdirs):
        _refuse_mixed(root, flat, subdirs)
        if not flat:
            raise InputError(f"{root}: no images found (expected image files, or one sub-folder of images per class)")
        items = [it for p in flat for it in file_items(p, UNLABELLED, source=spec, reading=reading)]
        return Manifest(spec, [], items, str(root))
    classes = classes or [d.name for d in subdirs]
    files_by_class = {cls: _class_files(root / cls, classes) for cls in classes}
    warn_scales_by_class(root, files_by_class)
    items = []
    for label, (cls, files) in enumerate(files_by_class.items()):
        cdir = root / cls
        for p in files:
            rel = p.relative_to(cdir).parts
            group = f"{cls}/{rel[0]}" if len(rel) > 1 else None
            items.extend(file_items(p, label, group=group, source=spec, reading=reading))
    return Manifest(spec, list(classes), items, str(root))


def _class_files(cdir: Path, classes: list[str]) -> list[Path]:
    files = image_files(cdir) if cdir.is_dir() else []
    if not files:
        raise InputError(f"{cdir}: class folder missing or without images (classes: {', '.join(classes)})")
    return files


def _refuse_mixed(root: Path, flat: list[Path], subdirs: list[Path]) -> None:
    """Loose images beside sub-folders of images: reading either alone would silently drop the other."""
    with_images = [d.name for d in subdirs if image_files(d)] if flat else []
    if with_images:
        raise InputError(f"{root}: holds both images ({flat[0].name}, ...) and sub-folders of images "
                         f"({', '.join(with_images[:3])}); keep the images of one set in one layout: all loose, "
                         "or one sub-folder per class")


@register_adapter("folder", "a folder: one sub-folder per class, or a flat folder of unlabelled images",
                  folders=lambda arg, data_root, **options: [Path(arg).expanduser()] if arg else [])
def load(arg: str | None, data_root: Path, **options) -> Manifest:
    if not arg:
        raise InputError("folder: needs a path, e.g. folder:./my_images")
    unknown = sorted(set(options) - {"classes", "name", "exclude"})
    if unknown:
        raise InputError(f"folder:{arg}: unknown option(s) {', '.join(unknown)} (folder takes classes, name, exclude)")
    return folder_manifest(arg, **options)

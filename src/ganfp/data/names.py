"""Names of files and folders that never hold a set's images, shared by the folder listers and the fetchers.

It imports nothing: `ganfp fetch-data --list` reads it through `ganfp.fetch`, and must not pay for numpy.
"""

MACOS_FORKS = "__MACOSX"  # the folder of resource forks (`._NAME`) a zip made on a Mac holds: never data


def skipped_name(name: str) -> bool:
    """A file or folder that holds no image of a set: hidden ones (`.DS_Store`, `.ipynb_checkpoints/`, a desktop's
    `.Trash-1000/`) and `__MACOSX/`, which a zip made on a Mac leaves when unzipped elsewhere (read as a class of
    images, its `._NAME` forks hidden, it was refused as an empty class)."""
    return name.startswith(".") or name == MACOS_FORKS

"""Kaggle datasets through the official `kagglehub` client (the optional extra `ganfp[kaggle]`)."""

from __future__ import annotations

from pathlib import Path

from ganfp.errors import InputError, RuntimeFailure

INSTALL_HINT = "pip install 'ganfp[kaggle]'"
TOKEN_HINT = "a Kaggle API token in ~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY in the environment"


def kaggle_download(slug: str, dataset: str) -> Path:
    """The folder kagglehub unpacked the dataset into (its own cache, reused on the next call)."""
    try:
        import kagglehub
    except ImportError as exc:
        raise InputError(
            f"{dataset} comes from Kaggle ({slug}) and needs the kagglehub client: {INSTALL_HINT}, "
            f"plus {TOKEN_HINT}; or download it by hand and use --from"
        ) from exc
    try:
        path = kagglehub.dataset_download(slug)
    except Exception as exc:  # kagglehub raises its own and requests' errors
        if _is_auth_error(exc):
            raise InputError(f"Kaggle refused {slug} ({type(exc).__name__}): it needs {TOKEN_HINT}, and the dataset's terms accepted on kaggle.com") from exc
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RuntimeFailure(f"Kaggle download of {slug} failed: {first}") from exc
    path = Path(path)
    if not path.exists():
        raise RuntimeFailure(f"Kaggle download of {slug} reported {path}, which does not exist")
    return path


def _is_auth_error(exc: Exception) -> bool:
    if type(exc).__name__ in ("UnauthenticatedError", "KaggleApiForbiddenError"):
        return True
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status in (401, 403)

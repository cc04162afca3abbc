"""Getting the chain's datasets: download or import, verify, unpack safely, install atomically.

    from ganfp.fetch import fetch_dataset, dataset_status
    fetch_dataset("covid-ctset", data_root)             # public download (Figshare)
    fetch_dataset("imageclef-gans-2023", root, source="dev.zip")   # a local archive or folder
"""

from __future__ import annotations

from ganfp.fetch.install import fetch_dataset, get_info, verify_layout
from ganfp.fetch.registry import DATASETS, DatasetInfo, Route, Source
from ganfp.fetch.store import ABSENT, PARTIAL, READY, dataset_dir, dataset_status, read_meta, require_ready

__all__ = [
    "ABSENT",
    "DATASETS",
    "DatasetInfo",
    "PARTIAL",
    "READY",
    "Route",
    "Source",
    "dataset_dir",
    "dataset_status",
    "fetch_dataset",
    "get_info",
    "list_datasets",
    "read_meta",
    "require_ready",
    "verify_layout",
]


def list_datasets(data_root, name: str | None = None) -> list[dict]:
    """One row per dataset (or for `name` only): name, what it is, size, access, status on this machine."""
    infos = [get_info(name)] if name else DATASETS.values()
    return [
        {
            "name": info.name,
            "description": info.description,
            "size": info.size,
            "access": info.access,
            "status": dataset_status(info.name, data_root),
            "routes": [{"name": r.name, "access": r.access, "note": r.note} for r in info.routes],
            "specs": list(info.specs),
            "licence": info.licence,
        }
        for info in infos
    ]

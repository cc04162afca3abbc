"""What ganfp knows about each dataset of the chain: what it is, where it comes from, how to get it.

Facts from the datasets' own pages (see docs/datasets.md). A digest is listed only where the
exact bytes are known; Figshare reports an MD5 per file at download time, which is checked too.
"""

from __future__ import annotations

from dataclasses import dataclass

PUBLIC, ACCOUNT, REGISTRATION, BUILTIN = "public", "account", "registration", "built-in"


@dataclass(frozen=True)
class Source:
    """One way to get (part of) a dataset. `kind`: url, figshare, kaggle."""

    kind: str
    ref: str  # URL, Figshare article id, or Kaggle dataset slug
    sha256: str | None = None
    filename: str | None = None  # name to save a URL download as


@dataclass(frozen=True)
class Route:
    """A complete way to get the dataset: every source in it is fetched, then unpacked together."""

    name: str
    access: str
    sources: tuple[Source, ...]
    note: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    size: str
    access: str  # public / account / registration / built-in (of the default route)
    routes: tuple[Route, ...] = ()  # first one is the default; empty: --from only
    specs: tuple[str, ...] = ()  # dataset specs its adapter answers
    manual: str = ""  # how to get it by hand, for the error when no route works
    licence: str = ""
    max_unpacked_bytes: int = 200 * 2**30  # decompression-bomb cap on everything unpacked

    def route(self, name: str | None) -> Route | None:
        """The route called `name` in any case (`--via Kaggle` as typed from the docs' headings), else the default."""
        if name is None:
            return self.routes[0] if self.routes else None
        for r in self.routes:
            if r.name.casefold() == name.casefold():
                return r
        return None


COVID_CSV_COMMIT = "5731e7975c663995fc154cd49c65af238ff112cd"
# The dataset's own label list (12,058 labelled slices), pinned to the commit that added it.
COVID_ALL_CSV = Source(
    "url",
    f"https://raw.githubusercontent.com/mr7495/COVID-CTset/{COVID_CSV_COMMIT}/all.csv",
    sha256="6b4bbe994013e280f3fad35a134246c8cbd471d7d943917bcb4679ec87926203",
    filename="all.csv",
)

IMAGECLEF_MANUAL = (
    "ImageCLEF data needs registration and a signed end-user agreement (https://www.imageclef.org); "
    "download the archive(s) the organisers send, then run: ganfp fetch-data {name} --from ARCHIVE_OR_FOLDER"
)


IMAGECLEF_PARTS = ("dev", "test", "attribution-train", "attribution-real", "attribution-unknown")


def _imageclef(year: int, what: str) -> DatasetInfo:
    name = f"imageclef-gans-{year}"
    return DatasetInfo(
        name=name,
        description=f"{what} (ImageCLEFmedical GANs {year})",
        size="see organisers",
        access=REGISTRATION,
        specs=tuple(f"{name}:{part}" for part in IMAGECLEF_PARTS),
        manual=IMAGECLEF_MANUAL.format(name=name),
        licence="the signed ImageCLEF end-user agreement governs use; do not redistribute",
        max_unpacked_bytes=50 * 2**30,
    )


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            name="casia",
            description="photo tampering (CASIA v1/v2): authentic vs tampered",
            size="v2 2.6 GB, v1 90 MB",
            access=ACCOUNT,
            routes=(Route("kaggle", ACCOUNT, (Source("kaggle", "sophatvathana/casia-dataset"),)),),
            specs=("casia", "casia:v1", "casia:v2"),
            manual=(
                "casia is on Kaggle (sophatvathana/casia-dataset), or via the mirrors linked from "
                "github.com/namtpham/casia2groundtruth; download it, then run: ganfp fetch-data casia --from ARCHIVE_OR_FOLDER"
            ),
            licence="research data set; cite Dong, Wang and Tan, ChinaSIP 2013; see the terms on the source page",
            max_unpacked_bytes=20 * 2**30,
        ),
        DatasetInfo(
            name="covid-ctset",
            description="16-bit CT slices of 377 patients: covid vs normal",
            size="Kaggle part 5.8 GB; full set larger",
            access=PUBLIC,
            routes=(
                Route(
                    "figshare",
                    PUBLIC,
                    (Source("figshare", "13668596"), Source("figshare", "13669969"), Source("figshare", "14174606"), COVID_ALL_CSV),
                    note="the whole dataset in three Figshare parts, plus the labels all.csv from GitHub",
                ),
                Route(
                    "kaggle",
                    ACCOUNT,
                    (Source("kaggle", "mohammadrahimzadeh/covidctset-a-large-covid19-ct-scans-dataset"), COVID_ALL_CSV),
                    note="the labelled training/validation part only (enough for the chain)",
                ),
            ),
            specs=("covid-ctset", "covid-ctset:real-vs-generated"),
            manual=(
                "download COVID-CTset from github.com/mr7495/COVID-CTset (Figshare parts or Kaggle), "
                "then run: ganfp fetch-data covid-ctset --from ARCHIVE_OR_FOLDER"
            ),
            licence="cite Rahimzadeh et al. 2021; see the terms on the Figshare/Kaggle pages",
            max_unpacked_bytes=120 * 2**30,
        ),
        _imageclef(2023, "CT slices used / not used to train a generator"),
        _imageclef(2024, "training-data fingerprints; which generator"),
        _imageclef(2025, "training-data fingerprints; which training subset"),
        DatasetInfo(
            name="demo",
            description="synthetic data for every stage (offline)",
            size="small, built locally",
            access=BUILTIN,
            specs=("demo:casia", "demo:covid", "demo:gans-dev", "demo:gans-test", "demo:attribution-2025",
                   "demo:attribution-2025-train", "demo:attribution-2025-real", "demo:attribution-2024"),
            licence="generated by ganfp (Apache-2.0)",
        ),
    )
}

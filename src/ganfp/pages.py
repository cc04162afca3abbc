"""The pieces every ganfp HTML report is made of: one self-contained page, images as data: URIs.

An auditor opens a report offline, often on another machine, so nothing in it may point elsewhere: thumbnails
are small PNGs and charts are PNGs drawn by matplotlib (`ganfp[plots]`), both embedded. The membership report
(`ganfp.report`) and the attribution report (`ganfp.attribution.report`) build their pages from these, and share
one style sheet (templates/report.css).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import resources
from string import Template

import numpy as np

from ganfp.errors import InputError

MISSING = "--report needs matplotlib: install ganfp[plots] (pip install 'ganfp[plots]')"
THUMB = 96  # px: thumbnails larger than this are shrunk; smaller ones are shown enlarged, pixelated


def require_matplotlib() -> None:
    """Fail before any work when the `plots` extra is absent."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError(MISSING) from None


def png_uri(pixels: np.ndarray) -> str:
    """A data: URI of a small PNG (uint8 gray (h, w) or RGB (h, w, 3)), shrunk to THUMB px when larger."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(pixels))
    if max(img.size) > THUMB:
        img.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def figure_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def esc(value) -> str:
    """HTML-escaped text. A file named in another encoding than UTF-8 (Latin-1 bytes on Linux) reaches Python with
    surrogates, which no UTF-8 page can hold: the report failed on such a generated image; its bytes show as \\xNN."""
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return html.escape(text, quote=True)


def cell_text(value) -> str:
    """A summary value as one line: floats to 4 significant digits, dicts and lists joined."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {cell_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def table_rows(rows: list[tuple[str, object]], warnings: list[str]) -> str:
    """The rows of a summary table: the warnings first, in red, then one (name, value) per row."""
    lines = [f'    <tr class="warning"><th>warning</th><td>{esc(text)}</td></tr>' for text in warnings]
    return "\n".join(lines + [f"    <tr><th>{esc(k)}</th><td>{esc(cell_text(v))}</td></tr>" for k, v in rows])


def figure_html(uri: str, caption: str, css: str = "", title: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    label = esc(title or caption)
    return f'<figure{cls}><img src="{uri}" alt="{label}" title="{label}"><figcaption>{caption}</figcaption></figure>'


def named(name: str, caption: str) -> str:
    """A figure's caption under its image's id: an id only in the tooltip could not be read on a printed page or a
    touch screen, nor found with the browser's find, so a user could not open the file it shows."""
    return f'<span class="name">{esc(name)}</span><br>{caption}'


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def written_at() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Heading:
    """What every report page starts with: its kind (the window title), its heading and its summary table."""

    kind: str  # e.g. "evidence report"
    heading: str
    title: str  # HTML-escaped, as the rest
    subtitle: str
    summary_rows: str


def render(body: str, heading: Heading, **fields: str) -> str:
    """The shared page (templates/page.html: header, summary, footer, style sheet) around templates/`body`
    filled with `fields`: each report writes only what is its own."""
    from ganfp import __version__

    folder = resources.files("ganfp").joinpath("templates")
    inner = Template(folder.joinpath(body).read_text(encoding="utf-8")).substitute(**fields)
    page = Template(folder.joinpath("page.html").read_text(encoding="utf-8"))
    return page.substitute(style=folder.joinpath("report.css").read_text(encoding="utf-8"), version=esc(__version__),
                           body=inner, **asdict(heading))

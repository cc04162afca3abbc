"""The task's submission format: write it, validate it exactly as the organisers do, read it back.

Official format (ImageCLEFmedical GANs 2023, task 1): no header, one `<image_id>,<0|1>` line per
test image, ids without extension. The rules follow the organisers' validator (see
../shared/reference/imageclef2023-submission/RULES.md): rows split on every comma, no quoting,
spaces around tokens stripped, the label parsed as a Python int. A headered CSV from another tool
(`id,label`, `id,score`, `id,label,score`, or the 2025 edition's `image_path,predicted_class`)
is read too, so files from elsewhere can be evaluated. Blank lines at the end (a spreadsheet's or an editor's
extra newline) are dropped from every file but a headerless submission, which the organisers refuse for them.

Turning scores into labels (`decide`) is by rank (the top fraction is "used") or by threshold;
see docs/metrics.md for why a dev-set threshold should not be carried to the test set.
"""

from __future__ import annotations

import csv
import math
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ganfp.data.manifest import cell_id
from ganfp.errors import ArgumentError, InputError, require_number, require_path, shown
from ganfp.fileio import OutputBatch, atomic_path, utf8_writable
from ganfp.metrics import as_binary

OFFICIAL = "official"
# The id column's names, one list for every per-image file: membership predictions and labels here, attribution and
# clustering tables (attribution.files), whose `--columns` writes only these. ID_COLUMNS, the membership reader's
# only names before, stay the id column beside another id word (`id,name,score`).
ID_COLUMNS = ("id", "image_id", "image_path")
ID_WORDS = ID_COLUMNS + ("image_name", "image", "path", "file", "filename", "file_name", "name")
# id columns that hold a file name (attribute writes one there): the id is the name without folder and image
# extension (manifest.cell_id)
FILE_WORDS = ("image_path", "image", "path", "file", "filename", "file_name")
LABEL_COLUMNS = ("label", "predicted_class")
SCORE_COLUMNS = ("score",)
# words that mark a first line as a header, recognised or not (so "name,prob" is not read as data)
HEADER_WORDS = set(ID_WORDS + LABEL_COLUMNS + SCORE_COLUMNS) | {"prob", "probability", "prediction", "pred", "class"}
KNOWN_HEADERS = "id,label | id,score | id,label,score | image_path,predicted_class"
BOM = "\ufeff"
BOM_REASON = ("the file starts with a UTF-8 byte order mark (BOM): the organisers' validator reads it as part of "
              "the first id and rejects the file; save it as UTF-8 without BOM")


@dataclass(frozen=True)
class Problem:
    """One broken rule: `line` is 1-based, 0 when the problem is the file as a whole."""

    line: int
    reason: str
    image_id: str | None = field(default=None, compare=False, repr=False)  # a wrong id, for `near_miss`

    def where(self, path) -> str:
        """The one-line message `<file>:<line>: <reason>`."""
        return f"{path}:{self.line}: {self.reason}" if self.line else f"{path}: {self.reason}"


@dataclass
class Predictions:
    ids: list[str]
    labels: np.ndarray | None  # 0/1 per id; None when the file holds scores only
    scores: np.ndarray | None  # higher = more likely used; None in the official format
    format: str  # "official" or the header as read, e.g. "id,score"
    lines: list[int] = field(default_factory=list)  # source line of each id, for messages
    bom: bool = False  # an official-format file started with a UTF-8 BOM (read anyway; the organisers refuse it)


@dataclass
class Labels:
    ids: list[str]
    labels: np.ndarray


# files a user takes for a CSV, by their first bytes: named, since "binary file" hides the one-step fix
NOT_A_CSV = {
    b"\xff\xfe": "UTF-16 text (a spreadsheet's 'Unicode text'), not UTF-8: save it as CSV UTF-8",
    b"\xfe\xff": "UTF-16 text (a spreadsheet's 'Unicode text'), not UTF-8: save it as CSV UTF-8",
    b"\x1f\x8b": "gzip-compressed: decompress it first (gunzip)",
    b"PK\x03\x04": "a zip archive (an Excel .xlsx workbook?), not a text CSV: save it as CSV UTF-8",
}


def starts_with_bom(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(3) == BOM.encode("utf-8")
    except OSError:
        return False


def read_lines(path, keep_bom: bool = False) -> list[str]:
    """The file's lines without terminators (universal newlines, as the organisers' csv reader).

    A leading UTF-8 BOM is dropped unless `keep_bom` (the submission check keeps it, to report it). `~` is the home
    folder, as for the files ganfp writes: `write_scores("~/s.csv", ...)` wrote a file `evaluate_files` did not find.
    """
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    for magic, what in NOT_A_CSV.items():
        if data.startswith(magic):
            raise InputError(f"{path}: {what}")
    if b"\x00" in data:
        raise InputError(f"{path}: binary file, not a text CSV")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not UTF-8 text (saved as Latin-1 or Windows-1252?): save it as CSV "
                         "UTF-8") from None
    if text.startswith(BOM) and not keep_bom:
        text = text[1:]
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _blank(line: str) -> bool:
    """Nothing but spaces and commas: a spreadsheet's empty row is as blank as an empty line."""
    return not line.replace(",", "").strip()


def without_trailing_blanks(lines: list[str]) -> list[str]:
    """`lines` less the blank lines that end them (Excel's or a hand edit's): no data, safe to drop in any file but
    a headerless submission, which the organisers' validator refuses for them (a row of 0 tokens)."""
    end = len(lines)
    while end and _blank(lines[end - 1]):
        end -= 1
    return lines[:end]


def read_ids(path) -> list[str]:
    """A list of image ids, one per line (like image_ids.txt); blank lines are skipped. A line with a comma is a CSV
    row (a labels or submission file given by mistake): no id holds one (`unwritable_cell`), and the run was refused
    as every listed id lacking an image, which did not say what the file should be."""
    require_path("path", path)
    ids, seen = [], {}
    for n, line in enumerate(read_lines(path), 1):
        image_id = line.strip()
        if not image_id:
            continue
        if "," in image_id:
            raise InputError(f"{path}:{n}: {image_id!r} is a CSV row; a file of ids holds one image id per line "
                             "(like the task's image_ids.txt), no commas")
        if image_id in seen:
            raise InputError(f"{path}:{n}: id {image_id!r} listed twice (first on line {seen[image_id]})")
        seen[image_id] = n
        ids.append(image_id)
    if not ids:
        raise InputError(f"{path}: empty file, no ids")
    return ids


TRAILING_BLANK = (" at the end of the file: the organisers' validator refuses it (one final newline is fine); "
                  "delete it")


def _official_row(line: str, n: int, ids: set[str] | None, seen: dict[str, int],
                  end: int) -> tuple[str, int] | Problem:
    """One line checked in the organisers' order: format, id, duplicate, label. Lines after `end` are blank: said so,
    since a headered file may end in blank lines and this format may not."""
    if not line.strip():
        return Problem(n, "empty line" + (TRAILING_BLANK if n > end else ""))
    tokens = line.split(",")
    if len(tokens) != 2:
        return Problem(n, f"wrong format: {len(tokens)} comma-separated tokens, expected 2 ('<image_id>,<0|1>')"
                       + separator_hint(line))
    image_id = tokens[0].strip()
    if not image_id:
        return Problem(n, "wrong figure id '': the id is empty")
    if ids is not None and image_id not in ids:
        return Problem(n, f"wrong figure id {image_id!r}: not one of the {len(ids)} test ids", image_id)
    if image_id in seen:
        return Problem(n, f"same figure id {image_id!r} more than once (first on line {seen[image_id]})")
    token = tokens[1].strip()
    try:
        label = int(token)
    except ValueError:
        return Problem(n, f"score {token!r} is not an int (must be 0 = not used or 1 = used)")
    if label > 1:
        return Problem(n, f"score {label} is greater than 1 (must be 0 = not used or 1 = used)")
    if label < 0:
        return Problem(n, f"score {label} is smaller than 0 (must be 0 = not used or 1 = used)")
    return image_id, label


def near_miss(image_id: str, truth_ids: list[str]) -> str:
    """`; it has 'x' ...` when a ground-truth id differs from `image_id` only in what two tools write differently:
    a folder, an image extension, the case, leading zeros (`007` vs `7`), the Unicode form of an accented letter
    (macOS's NFD file names beside typed NFC text: the two print alike, so the bare message named an id that
    looked present). Ids still have to match exactly."""
    def loose(i: str) -> str:
        key = unicodedata.normalize("NFC", cell_id(i)).lower()
        return (key.lstrip("0") or "0") if key.isdigit() else key

    key = loose(image_id)
    match = next((t for t in truth_ids if loose(t) == key), None)
    return f"; it has {match!r} (ids are matched exactly)" if match is not None else ""


def unnamed_column(path, header: str, column: int) -> InputError:
    """A header column without a name: most often the index pandas writes unless told `index=False`, which shifts
    every row one column to the right (the ids become numbers, the classes ids)."""
    return InputError(f"{path}:1: column {column} of the header {header.strip()!r} has no name (a spreadsheet's empty "
                      "column, or pandas' index: to_csv(index=False)); delete it")


def separator_hint(line: str) -> str:
    """A line without a comma but with `;` or tabs: a spreadsheet's export (`;` in a European locale), which names
    the actual fix; '1 comma-separated token' alone reads as a complaint about the header or the ids."""
    if "," in line:
        return ""
    for sep, name in ((";", "';'"), ("\t", "tabs")):
        if sep in line:
            return f"; the line is separated by {name}: save the file comma-separated"
    return ""


def preview_ids(items: Sequence[str], limit: int = 3) -> str:
    """The first few ids, for a one-line message."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def require_ids(name: str, ids, optional: bool = False) -> None:
    """`ids` is a collection of ids, not one str: a str is iterable, so `ids="im001"` was read as the ids "i", "m",
    "0", "0", "1" (and `None` failed with a TypeError naming no argument)."""
    if ids is None and optional:
        return
    if isinstance(ids, (str, bytes, os.PathLike)) or not isinstance(ids, Iterable):
        why = " (one str would be read as one id per character)" if isinstance(ids, str) else ""
        raise InputError(f"{name}={shown(ids)}: must be a list of ids, not {type(ids).__name__}{why}; "
                         "read a file of ids with ganfp.submission.read_ids(path)")


def validate_submission(path_or_lines, ids: Iterable[str]) -> list[Problem]:
    """Every broken official rule, in line order; an empty list means the organisers accept it.

    `path_or_lines` is a file path or the file's lines. Each line reports the first rule it
    breaks (as the organisers' validator does); missing ids are reported after the last line.
    A file that cannot be read as text raises InputError.
    """
    require_ids("ids", ids)
    if isinstance(path_or_lines, (str, os.PathLike)):
        lines = read_lines(path_or_lines, keep_bom=True)
    elif isinstance(path_or_lines, bytes) or not isinstance(path_or_lines, Iterable):
        raise InputError(f"path_or_lines={path_or_lines!r}: must be a path or the file's lines (a list of str)")
    else:
        lines = [line.rstrip("\r\n") for line in path_or_lines]
    bom = bool(lines) and lines[0].startswith(BOM)
    if bom:
        lines = [lines[0][len(BOM):], *lines[1:]]
    expected = list(dict.fromkeys(ids))
    expected_set = set(expected)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    end = len(without_trailing_blanks(lines))
    for n, line in enumerate(lines, 1):
        row = _official_row(line, n, expected_set, seen, end)
        if n == 1 and bom:
            problems.append(Problem(1, BOM_REASON))  # the first rule line 1 breaks, as the organisers see it
        elif isinstance(row, Problem):
            problems.append(row)
        if not isinstance(row, Problem):
            seen[row[0]] = n
    missing = [i for i in expected if i not in seen]
    if missing:
        what = "empty file" if not lines else f"{len(missing)} of {len(expected)} missing ({preview_ids(missing)})"
        problems.append(Problem(len(lines), f"not all figure ids specified: {what}"))
    return problems


def _header(path, first_line: str) -> dict[str, int] | None:
    """Column name -> index when the first line is a known header; None for the official format.

    `<id>,<int>` is always an official row, even when the id is a header word (an image named `image`).
    """
    tokens = first_line.split(",")
    if len(tokens) == 2 and tokens[1].strip().lstrip("+-").isdigit():
        return None
    names = [t.strip().strip('"').lower() for t in first_line.split(",")]
    if not HEADER_WORDS.intersection(names):
        return None
    columns = {name: i for i, name in enumerate(names)}
    id_cols = _id_columns(columns)
    if len(id_cols) > 1:
        raise InputError(f"{path}:1: the header {first_line.strip()!r} names {len(id_cols)} id columns "
                         f"({', '.join(id_cols)}); keep one")
    value_cols = [c for c in LABEL_COLUMNS + SCORE_COLUMNS if c in columns]
    known = len(id_cols) == 1 and value_cols and sum(c in LABEL_COLUMNS for c in value_cols) <= 1
    if "" in columns:
        raise unnamed_column(path, first_line, names.index("") + 1)
    if not known or len(columns) != len(names):  # extra named columns (per-scorer scores) are kept aside
        raise InputError(f"{path}:1: unrecognised header {first_line.strip()!r}; expected one of: {KNOWN_HEADERS} "
                         f"(the id column may be named {', '.join(ID_WORDS)})")
    return columns


def _id_columns(columns: dict[str, int]) -> list[str]:
    """The header's id columns: the one of ID_COLUMNS when it has one (`id,file_name,score` is read by `id`, as
    before the other words were id words), else every id word it names; more than one is ambiguous."""
    return [c for c in ID_COLUMNS if c in columns] or [c for c in ID_WORDS if c in columns]


def _read_official(path, lines: list[str]) -> Predictions:
    ids, labels, where, seen = [], [], [], {}
    end = len(without_trailing_blanks(lines))
    for n, line in enumerate(lines, 1):
        row = _official_row(line, n, None, seen, end)
        if isinstance(row, Problem):
            raise InputError(row.where(path))
        seen[row[0]] = n
        ids.append(row[0])
        labels.append(row[1])
        where.append(n)
    return Predictions(ids, np.array(labels, dtype=np.int64), None, OFFICIAL, where)


def _cell_id(value: str, column: str) -> str:
    value = value.strip()
    if column in FILE_WORDS:
        return cell_id(value)
    return value


def _read_headered(path, lines: list[str], columns: dict[str, int]) -> Predictions:
    (id_col,) = _id_columns(columns)
    label_col = next((c for c in LABEL_COLUMNS if c in columns), None)
    score_col = next((c for c in SCORE_COLUMNS if c in columns), None)
    ids, labels, scores, where, seen = [], [], [], [], {}
    for n, row in enumerate(csv.reader(lines[1:]), 2):
        if not any(cell.strip() for cell in row):
            raise InputError(f"{path}:{n}: empty line")
        if len(row) != len(columns):
            raise InputError(f"{path}:{n}: {len(row)} columns, the header has {len(columns)}")
        image_id = _cell_id(row[columns[id_col]], id_col)
        if not image_id:
            raise InputError(f"{path}:{n}: empty id")
        if image_id in seen:
            raise InputError(f"{path}:{n}: id {image_id!r} more than once (first on line {seen[image_id]})")
        seen[image_id] = n
        if label_col:
            token = row[columns[label_col]].strip()
            if token not in ("0", "1"):
                raise InputError(f"{path}:{n}: label {token!r} is not 0 or 1 (0 = not used, 1 = used; classes "
                                 "named by numbers: evaluate --task attribution; generators against clusters "
                                 "without a header: --task clustering)")
            labels.append(int(token))
        if score_col:
            token = row[columns[score_col]].strip()
            try:
                score = float(token)
            except ValueError:
                score = math.nan
            if not math.isfinite(score):
                raise InputError(f"{path}:{n}: score {token!r} is not a finite number")
            scores.append(score)
        ids.append(image_id)
        where.append(n)
    if not ids:
        raise InputError(f"{path}: header only, no rows")
    header = ",".join(sorted(columns, key=columns.get))
    return Predictions(
        ids,
        np.array(labels, dtype=np.int64) if label_col else None,
        np.array(scores, dtype=np.float64) if score_col else None,
        header,
        where,
    )


def read_predictions(path, ids: Iterable[str] | None = None) -> Predictions:
    """Predictions from the official format or a headered CSV (format told by the first line).

    With `ids`, a file in the official format is held to every official rule against those ids
    and the first broken one raises InputError `<file>:<line>: <reason>`. Blank lines that end a
    headered file are dropped; in the official format they are errors, as the organisers' validator says.
    """
    require_path("path", path)
    require_ids("ids", ids, optional=True)
    return _read_table(path, ids, submission=True)


def _read_table(path, ids: Iterable[str] | None, submission: bool) -> Predictions:
    """Either format; blank lines at the end are dropped unless the file is a headerless `submission`."""
    lines = read_lines(path)
    columns = _header(path, lines[0]) if lines else None
    if columns is not None or not submission:
        lines = without_trailing_blanks(lines)
    if not lines:
        raise InputError(f"{path}: empty file")
    if columns is not None:
        preds = _read_headered(path, lines, columns)
    else:
        if ids is not None:
            ids = list(ids)
            problems = validate_submission(lines, ids)
            if problems:
                first = problems[0]
                raise InputError(first.where(path) + (near_miss(first.image_id, ids) if first.image_id else ""))
        preds = _read_official(path, lines)
    preds.bom = columns is None and starts_with_bom(path)
    return preds


def read_labels(path) -> Labels:
    """Ground truth: a headered `id,label` CSV or the headerless official format, 0/1 only.

    Blank lines at the end are dropped in both: ground truth is not a submission, so the organisers' rule
    against them does not apply.
    """
    require_path("path", path)
    preds = _read_table(path, None, submission=False)
    if preds.labels is None or preds.scores is not None:
        swapped = "; a file of scores is predictions: evaluate takes PREDS first, then LABELS" \
            if preds.scores is not None else ""
        raise InputError(f"{path}:1: ground truth needs an id and a label column only, found {preds.format!r}{swapped}")
    return Labels(preds.ids, preds.labels)


CELL_BREAKERS = ((",", "a comma"), ('"', "a double quote (CSV readers take it for quoting)"),
                 ("\n", "a line break"), ("\r", "a line break"))


def unwritable_cell(cell: str) -> str | None:
    """Why `cell` (an image id, a class name) cannot be a cell of a CSV ganfp writes, or None.

    Cells go unquoted, as the organisers' validator reads them. It takes a quote for part of the id, but ganfp's own
    readers of scores, labels and class tables (and pandas, and a spreadsheet) read a cell starting with one as quoted:
    the id read back was another (`"x"` became `x`) or the row broke. So classify and attribute both refuse it.
    """
    if not cell:
        return "cannot be written in a CSV: it is empty"
    if cell != cell.strip():
        return "cannot be written in a CSV: it has spaces around it, which readers strip"
    for char, name in CELL_BREAKERS:
        if char in cell:
            return f"cannot be written in a CSV: it holds {name}"
    if not utf8_writable(cell):
        return "cannot be written in UTF-8 (it was named in another encoding)"
    return None


def _check_writable_ids(path, ids: list[str]) -> None:
    seen = set()
    for image_id in ids:
        if problem := unwritable_cell(image_id):
            raise InputError(f"{path}: id {image_id!r} {problem}")
        if image_id in seen:
            raise InputError(f"{path}: id {image_id!r} appears twice (two images with the same name?)")
        seen.add(image_id)


def write_submission(path, ids: Sequence[str], labels, expected_ids: Iterable[str] | None = None,
                     batch: OutputBatch | None = None) -> None:
    """Write the official format atomically; it is validated before it replaces `path` (or joins `batch`).

    The check runs against `expected_ids` (e.g. the task's image_ids.txt) when given, else against
    `ids`; a broken rule raises InputError and leaves `path` untouched.
    """
    require_path("path", path)
    require_ids("ids", ids)
    require_ids("expected_ids", expected_ids, optional=True)
    ids = [str(i) for i in ids]
    y = as_binary(labels, "labels")
    if len(ids) != len(y):
        raise ArgumentError(f"{len(ids)} ids but {len(y)} labels")
    _check_writable_ids(path, ids)
    text = "".join(f"{image_id},{label}\n" for image_id, label in zip(ids, y.tolist()))
    with atomic_path(path, batch) as tmp:
        tmp.write_text(text, encoding="utf-8")
        problems = validate_submission(tmp, ids if expected_ids is None else expected_ids)
        if problems:
            raise InputError(problems[0].where(path))


def write_scores(path, ids: Sequence[str], scores, labels=None,
                 columns: dict[str, Sequence[float]] | None = None, batch: OutputBatch | None = None) -> None:
    """A headered `id,score` (or `id,label,score`) CSV that `read_predictions` reads back exactly (float32 scores:
    as the same float32 values, `_score_texts`).

    `columns` adds one named column per extra score after `score` (classify: every scorer computed).
    """
    require_path("path", path)
    require_ids("ids", ids)
    ids = [str(i) for i in ids]
    s = _score_texts(_column_values(scores, "scores", len(ids)))
    _check_writable_ids(path, ids)
    extra = {_column_name(name): _score_texts(_column_values(v, f"columns[{name!r}]", len(ids)))
             for name, v in (columns or {}).items()}
    y = None if labels is None else as_binary(labels, "labels").tolist()
    header = ["id", *(["label"] if y is not None else []), "score", *extra]
    rows = [",".join(header)]
    for n, image_id in enumerate(ids):
        label = [str(y[n])] if y is not None else []
        cells = [image_id, *label, s[n], *(v[n] for v in extra.values())]
        rows.append(",".join(cells))
    with atomic_path(path, batch) as tmp:
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")


SCORE_HEADER = ("id", "label", "score")


def _column_name(name) -> str:
    """An extra column's header cell: text that `read_predictions` reads back as that column, not a number
    (`join` failed with a TypeError), a comma or a line break (the header grew columns), or a column of its own."""
    if not isinstance(name, str) or unwritable_cell(name):
        raise ArgumentError(f"column name {name!r}: must be a str without commas, quotes, line breaks or "
                         "surrounding spaces")
    if name.lower() in SCORE_HEADER:
        raise ArgumentError(f"column name {name!r}: is one of the file's own columns ({', '.join(SCORE_HEADER)})")
    return name


def _column_values(values, name: str, n: int) -> np.ndarray:
    """One finite float per id, or ArgumentError naming the column: an (n, 1) array was written as if flat, and NaN or
    inf as `nan`/`inf` cells that `read_predictions` then refused. float32 values stay float32 (`_score_texts`)."""
    try:
        s = np.asarray(values)
        s = s if s.dtype == np.float32 else s.astype(np.float64)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} must be numbers") from None
    if s.ndim != 1:
        raise ArgumentError(f"{name} must be 1-D, one value per id, got shape {s.shape}")
    if len(s) != n:
        raise ArgumentError(f"{n} ids but {len(s)} {name}")
    if not np.isfinite(s).all():
        bad = int(np.flatnonzero(~np.isfinite(s))[0])
        raise ArgumentError(f"{name} must be finite numbers; value {bad} is {s[bad]}")
    return s


def _score_texts(values: np.ndarray) -> list[str]:
    """Each value as the shortest text that reads back as it, at the precision of its dtype: float32 values (a
    network's probabilities) were written as their float64 expansion, 0.30000001192092896 for 0.3, text that claims
    17 digits where 8 were computed. The dtype decides, not the values: a float64 column whose values float32 can
    hold (134217728.0) was written as float32 text (1.3421773e+08), which reads back as another float64 value."""
    if values.dtype == np.float32:  # float32's shortest digits, laid out as Python lays out a float: numpy's own str()
        # changed between releases (123456790.0 in numpy 2.2, 1.2345679e+08 in 2.4), and so did the files
        return [repr(float(np.format_float_scientific(x, unique=True))) for x in values]
    return [repr(x) for x in values.tolist()]


def _scores(scores) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ArgumentError(f"scores must be 1-D, got shape {s.shape}")
    if np.isnan(s).any():
        raise ArgumentError("scores must not contain NaN")
    return s


def _rank_order(s: np.ndarray, ids=None) -> np.ndarray:
    """Indices from the highest score down; equal scores by id (else input order), never by chance."""
    if ids is None:
        return np.argsort(-s, kind="stable")
    return np.lexsort((np.asarray(ids, dtype=str), -s))


def used_count(q: float, n: int, name: str = "used fraction") -> int:
    """How many of n images a used fraction q labels used: round(q * n), halves up.

    0 < q < 1 asks for a decision, so a q that labels none or all of two or more images is refused. `name`: what
    the message calls q (`--used-fraction` from the command line).
    """
    k = int(math.floor(q * n + 0.5))
    if 0 < q < 1 and n >= 2 and k in (0, n):
        raise InputError(f"{name} {q:g} labels {'none' if k == 0 else 'all'} of the {n} images used; "
                         f"with {n} images give {fraction_bound(n, none=k == 0)}")
    return k


def fraction_bound(n: int, none: bool) -> str:
    """The used fractions that label some of n images each way, on the side a fraction labelling none or all missed.

    Rounded to 3 digits away from the refused side: 0.5 / 6 printed as "at least 0.0833" sent the user to a
    fraction that labels none of 6 images too (0.0833 * 6 rounds to 0)."""
    low, high = 0.5 / n, (n - 0.5) / n  # labels one image from `low` on, all of them from `high` on
    return f"at least {_three_digits(low, math.ceil)}" if none else f"below {_three_digits(high, math.floor)}"


def _three_digits(x: float, rounding) -> str:
    """`x` (0 < x < 1) to three significant digits, rounded by `rounding` (math.ceil or math.floor)."""
    scale = 10 ** (2 - math.floor(math.log10(x)))
    return f"{rounding(x * scale) / scale:g}"


def decide(scores, used_fraction: float | None = None, threshold: float | None = None, ids=None) -> np.ndarray:
    """0/1 labels from scores (higher = more likely used): by rank or by threshold, not both.

    `used_fraction` q labels the round(q * n) highest scores as used (halves round up). Scores tied
    at the cut are taken in order of their `ids` (ascending), so the labels do not depend on the
    order the files were listed in; without ids, in input order. `threshold` labels
    score >= threshold as used. With neither, q = 0.5.
    """
    if used_fraction is not None and threshold is not None:
        raise InputError("give either a used fraction or a threshold, not both")
    for name, value in (("threshold", threshold), ("used_fraction", used_fraction)):
        if value is not None:
            require_number(name, value)  # from Python a "0.5" read from a config failed while formatting the rule
    require_ids("ids", ids, optional=True)
    s = _scores(scores)
    if ids is not None and len(ids) != s.size:  # else numpy's "all keys need to be the same shape"
        raise ArgumentError(f"ids has {len(ids)} values but scores has {s.size}")
    if threshold is not None:
        return (s >= threshold).astype(np.int64)
    q = 0.5 if used_fraction is None else float(used_fraction)
    if not 0.0 <= q <= 1.0:
        raise InputError(f"the used fraction must be between 0 and 1, got {q:g}")
    k = used_count(q, s.size)
    labels = np.zeros(s.size, dtype=np.int64)
    labels[_rank_order(s, ids)[:k]] = 1
    return labels


def constant_labelling(score: np.ndarray, labels: np.ndarray, threshold: float | None) -> list[str]:
    """A --threshold outside the scores' range labels every image alike: a constant submission, said aloud
    (a used fraction that would do so is refused before scoring; a threshold's effect is known only now). Its
    metrics are a constant baseline's, F1 0.667 at half used: evaluate notes it as classify warns. One image is
    labelled by its score, as asked: nothing to say."""
    if threshold is None or len(labels) < 2 or 0 < labels.sum() < len(labels):
        return []
    side = "used" if labels.all() else "not used"
    return [f"--threshold {threshold:g} labels all {len(labels)} images {side}: the scores run from "
            f"{score.min():.4g} to {score.max():.4g} (--used-fraction labels by rank instead)"]


def one_image_by_rank(labels: np.ndarray, threshold: float | None) -> list[str]:
    """A used fraction ranks images against each other, so one image is labelled by the fraction alone (used from
    0.5 up): said aloud, as it looks like a verdict on that image (`--method autoencoder` and the classifier score
    a single image; the methods that compare real images with each other refuse one)."""
    if threshold is not None or len(labels) != 1:
        return []
    side = "used" if labels[0] else "not used"
    return [f"1 real image: a used fraction ranks the images against each other, so it labels this one {side} "
            "whatever its score; give --threshold to label it by its score"]


def ties_at_the_cut(score: np.ndarray, labels: np.ndarray, threshold: float | None) -> list[str]:
    """Images of one score on both sides of a used-fraction cut (copies of one image, or a scorer that tells them
    nothing apart) are labelled in the order of their ids: said aloud, since that half is not evidence (classify
    warns; evaluate notes it, as it sets accuracy, F1 and kappa)."""
    if threshold is not None or labels.all() or not labels.any():
        return []
    cut = score[labels == 1].min()
    tied = score == cut
    if not (tied & (labels == 0)).any():
        return []
    used = int((tied & (labels == 1)).sum())
    return [f"{int(tied.sum())} images share the score at the cut, {cut:.4g} (copies of one image?): "
            f"{used} of them {'is' if used == 1 else 'are'} labelled used in the order of their ids, not by evidence"]

"""Per-image class tables: `image_path,predicted_class` (attribution) and `id,cluster` (clustering).

The official 2025 and 2024 column layouts are not published: a participant's script writes
`image_path,predicted_class`, so that is the default, and `--columns` writes another header that
`ganfp evaluate` reads back. Reading is lenient in the same way: a header is recognised by a known
id column name, a cell under a path-like one (`image_path`, `file`...) may be a path or a file name (the
image id is the file name without its image extension), and only the first two columns count, so extra
columns such as scores are kept aside. An id column (`id`, `name`...), and the first of a file without a
header, holds ids as written, as membership's reader has them: the id `img.jpg` (of `img.jpg.png`) is not `img`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Sequence

from ganfp.data.manifest import Item, cell_id
from ganfp.errors import InputError, require_text
from ganfp.fileio import OutputBatch, write_text
from ganfp.submission import (
    FILE_WORDS,
    HEADER_WORDS,
    ID_WORDS,
    read_lines,
    separator_hint,
    unnamed_column,
    unwritable_cell,
    without_trailing_blanks,
)

CLUSTER_WORDS = ("cluster", "cluster_id", "clusters")  # a value column evaluate reads as a clustering
SCORE_WORDS = ("score",)  # a column evaluate reads as membership scores
DEFAULT_COLUMNS = ("image_path", "predicted_class")
CLUSTER_COLUMNS = ("id", "cluster")
# value columns that name what `attribute` predicted: ground truth so named is a predictions file given second
PREDICTION_WORDS = CLUSTER_WORDS + (DEFAULT_COLUMNS[1],)


@dataclass
class ClassTable:
    ids: list[str]
    values: list[str]  # class name or cluster id, as written
    columns: tuple[str, str] | None  # the header's first two names; None when the file has none
    lines: list[int]  # source line of each row, for messages


def parse_columns(text: str, clustering: bool = False) -> tuple[str, str] | None:
    """`--columns`: two comma-separated header names, or `none` for a file without a header."""
    require_text("columns", text)
    if text.strip().lower() == "none":
        return None
    names = tuple(t.strip() for t in text.split(","))
    if len(names) != 2 or not all(names) or any(c in n for n in names for c in "\"\n\r"):
        raise InputError(f"--columns {text!r}: give two header names such as image_path,predicted_class, or none")
    _check_evaluate_reads(text, names[0].lower(), names[1].lower(), clustering)
    return names  # type: ignore[return-value]


def _check_evaluate_reads(text: str, first: str, second: str, clustering: bool) -> None:
    """Refuse a header `ganfp evaluate` would misread: it finds a header by its id column's name, and tells
    a clustering (or membership scores) from an attribution by the value column's name."""
    if first not in ID_WORDS:
        raise InputError(f"--columns {text!r}: ganfp evaluate recognises a header by its first name, the id "
                         f"column; use one of: {', '.join(ID_WORDS)}")
    if clustering and second not in CLUSTER_WORDS:
        raise InputError(f"--columns {text!r}: ganfp evaluate tells a clustering by its second name; use one of: "
                         f"{', '.join(CLUSTER_WORDS)}")
    if not clustering and second in CLUSTER_WORDS + SCORE_WORDS:
        raise InputError(f"--columns {text!r}: ganfp evaluate would read a {second!r} column as "
                         f"{'a clustering' if second in CLUSTER_WORDS else 'membership scores'}; "
                         "name the class column otherwise, e.g. predicted_class")


def row_keys(items: Sequence[Item], columns: tuple[str, str] | None) -> list[str]:
    """What identifies each image in the first column: its file name under a path-like header, else its id.

    A NIfTI slice, or a DICOM file named by its SOPInstanceUID (`--id-from uid`), has no file name of its own: it is
    written by its id under either header. Its file name named every slice of a volume alike (`vol.nii.gz` on each
    row), which `ganfp evaluate` refused as one id more than once.

    Called before any work: a name that cannot be written is refused naming its file, not after the features
    (or a trained network) as a problem of the output file.
    """
    by_file = columns is not None and columns[0].lower() in FILE_WORDS
    own_file = [it.frame is None and not it.name for it in items]  # one image per file, named by it
    keys = [PurePosixPath(it.path.replace("\\", "/")).name if by_file and own else it.id
            for it, own in zip(items, own_file)]
    for item, key in zip(items, keys):
        problem = unwritable_cell(key)
        if problem:
            raise InputError(f"{item.path}: its name {key!r} {problem}; rename the file")
    return keys


def write_class_table(path, names: Sequence[str], values: Sequence[str], columns: tuple[str, str] | None,
                      batch: OutputBatch | None = None) -> None:
    """One row per image, in the given order; written atomically (with `batch`: beside the report). Every cell
    was checked by `row_keys` and, for class names, `unwritable_cell`."""
    header = [",".join(columns)] if columns else []
    write_text(path, "\n".join(header + [f"{n},{v}" for n, v in zip(names, values)]) + "\n", batch)



def write_class_probabilities(path, names: Sequence[str], classes: Sequence[str], probabilities,
                              columns: tuple[str, str] | None, batch: OutputBatch | None = None) -> None:
    """`--scores`: each image's probability of every class, a column per class after the id (under the class table's
    id header, else `id`), to 6 significant digits: the class table keeps only the top class, and an ensemble of
    runs or a threshold of one's own needs them all."""
    header = ",".join([columns[0] if columns else "id", *classes])
    rows = [",".join([name, *(f"{p:.6g}" for p in row)]) for name, row in zip(names, probabilities.tolist())]
    write_text(path, "\n".join([header, *rows]) + "\n", batch)


def _id_column_second(names: list[str]) -> bool:
    """A header such as `predicted_class,image_path` or `generator,id` (a data frame's columns in another order): not
    recognised as a header, it was read as a row, and the class names as ids (`id 'gan' more than once`)."""
    value_words = (HEADER_WORDS | set(CLUSTER_WORDS) | {"generator"}) - set(ID_WORDS)
    return len(names) >= 2 and names[1].lower() in ID_WORDS and names[0].lower() in value_words


def read_class_table(path) -> ClassTable:
    """The (id, value) rows of a two-or-more-column CSV; every problem is an InputError naming the line.

    Blank lines at the end are dropped: the official 2024 and 2025 formats are not published, so no organisers'
    rule refuses them, and a spreadsheet or an editor leaves them."""
    lines = without_trailing_blanks(read_lines(path))
    if not lines:
        raise InputError(f"{path}: empty file")
    first = [t.strip().strip('"') for t in lines[0].lstrip("\ufeff").split(",")]
    if len(first) >= 3 and not first[0] and first[1].lower() in ID_WORDS:  # read as a row, it was "empty id"
        raise unnamed_column(path, lines[0].lstrip("\ufeff"), 1)
    if _id_column_second(first):
        raise InputError(f"{path}:1: the id column {first[1]!r} is second in the header; ganfp reads the id first, "
                         f"then the class: reorder the columns ({first[1]},{first[0]})")
    columns = (first[0], first[1]) if len(first) >= 2 and first[0].lower() in ID_WORDS else None
    start = 2 if columns else 1
    # file names under a path-like header; ids, as written, under an id column and without a header (as membership's
    # reader): the id `img.jpg` of `img.jpg.png` read as a file name was `img`
    by_file = columns is not None and columns[0].lower() in FILE_WORDS
    ids, values, where, seen = [], [], [], {}
    for n, row in enumerate(csv.reader(lines[start - 1 :]), start):
        if not any(cell.strip() for cell in row):
            raise InputError(f"{path}:{n}: empty line")
        if len(row) < 2:
            raise InputError(f"{path}:{n}: one column, expected an id and a class (e.g. image_path,predicted_class)"
                             + separator_hint(row[0]))
        key, value = (cell_id(row[0]) if by_file else row[0].strip()), row[1].strip()
        if not key or not value:
            raise InputError(f"{path}:{n}: empty {'id' if not key else 'class'}")
        if key in seen:
            first_column = "" if columns else "; without a header the first column holds the ids, the class second"
            raise InputError(f"{path}:{n}: id {key!r} more than once (first on line {seen[key]}){first_column}")
        seen[key] = n
        ids.append(key)
        values.append(value)
        where.append(n)
    if not ids:
        raise InputError(f"{path}: header only, no rows")
    return ClassTable(ids, values, columns, where)

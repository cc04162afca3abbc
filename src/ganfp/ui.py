"""The one place that talks to the terminal: tables and JSON to stdout, progress and messages to stderr.

Text that may hold a path or a file name is printed as plain text, never read as rich markup or emoji
codes: a folder named `scans[/old]` would raise MarkupError after the work was done, one named `[b]`
would vanish, and `folder:one: ...` would print as `folder1️⃣ ...`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shlex
import sys
from typing import Any, Iterable, Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

UNBOUNDED_WIDTH = 100_000


def on_screen(console: Console) -> bool:
    """Whether the console writes to a terminal, not only whether rich treats it as one: under FORCE_COLOR (set in
    many CI jobs for coloured logs) a file or a pipe counts as a terminal to rich, and progress bars would redraw
    their frames into the log and tables be cut to the terminal's width."""
    isatty = getattr(console.file, "isatty", None)
    return console.is_terminal and callable(isatty) and isatty()


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader went away (`ganfp ... | head -1`): raised on to the CLI's one handler (`ganfp.cli.main`).

        Rich's own handling sends stdout (only) to os.devnull and exits at once; a closed stderr then failed again in
        Python's flush at exit (status 120)."""
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


out = _Console(soft_wrap=True, emoji=False)
err = _Console(stderr=True, soft_wrap=True, emoji=False)
if not on_screen(out):  # a pipe or a file has no width: a table as wide as its longest value, never cut short
    out.width = UNBOUNDED_WIDTH


def printable(message: str) -> str:
    """A file named in another encoding than UTF-8 (Latin-1 bytes on Linux) reaches Python with surrogates, which a
    UTF-8 stream refuses: the message naming it would end in a UnicodeEncodeError. They are shown as escapes."""
    return message.encode("utf-8", "backslashreplace").decode("utf-8")


def info(message: str) -> None:
    err.print(printable(message), highlight=False, markup=False)


def how_to_score(preds: str, labels: str, *options: str) -> None:
    """Where a demo set's ground truth is, and the `ganfp evaluate` line that scores the output against it, quoted as
    a shell reads it: a path with a space (the per-user data folder on macOS, `Application Support`) broke it in
    two when pasted."""
    info(f"ground truth of this demo set: {labels}")
    info(f"score it with: {shlex.join(['ganfp', 'evaluate', str(preds), str(labels), *options])}")


# Every warning shown while a CLI command runs, in order (`collecting_warnings`); None outside one. Not a ContextVar:
# a warning the library logs from a worker thread is one the command emits too.
_shown: list[str] | None = None


@contextlib.contextmanager
def collecting_warnings() -> Iterator[list[str]]:
    """Within it, each warning shown (`warn`, and so every one the library logs under "ganfp", through
    `_LibraryLines`) is kept too, for `print_json` to put in the --json document's "warnings": a script reading the
    JSON saw the command's own warnings but not the logged ones (files skipped as not images). The screen is as
    without it."""
    global _shown
    outer, _shown = _shown, []
    try:
        yield _shown
    finally:
        _shown = outer


def json_warnings(own: Iterable[str] = ()) -> list[str]:
    """The "warnings" of a --json document: each one shown so far while collecting, then `own` (the command's, which
    it prints after the document), each once, in that order."""
    return list(dict.fromkeys([*(_shown or ()), *own]))


def stage_warnings(stages: list[dict], own: Iterable[str] = ()) -> list[dict]:
    """A --json list of stage objects (train-stage, chain and its dry run) with every warning the command emitted:
    each stage keeps its own "warnings" (the library files what a stage logged while planned or run under it), and
    one in no stage's, shown before any stage (the chain file's, the demo data's) or in `own`, goes to the first
    stage's, so the list keeps its shape."""
    if not stages:
        return stages
    elsewhere = {text for stage in stages[1:] for text in stage.get("warnings") or ()}
    first = [text for text in json_warnings(own) if text not in elsewhere]
    return [{**stages[0], "warnings": list(dict.fromkeys([*first, *(stages[0].get("warnings") or ())]))}, *stages[1:]]


def warn(message: str) -> None:
    if _shown is not None:
        _shown.append(message)
    err.print(f"[yellow]warning:[/] {escape(printable(message))}", highlight=False)


def warn_once(message: str) -> None:
    """A warning not shown yet in this command: a chain stage's summary carries what the stage logged, which the
    terminal showed as it was logged."""
    if message not in (_shown or ()):
        warn(message)


def error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(printable(message))}", highlight=False, markup=True)


class _LibraryLines(logging.Handler):
    """A line the library logs (e.g. that the demo data is being built) printed as every other message line; a
    warning (files skipped as not images) as every other warning."""

    def emit(self, record: logging.LogRecord) -> None:
        (warn if record.levelno >= logging.WARNING else info)(record.getMessage())


def show_library_lines() -> None:
    """Print what the library logs under "ganfp" at INFO: it says so where a command would otherwise sit silent
    (the demo built on first use, deep inside reading a dataset spec, which no progress callback reaches).
    Once per process, however often the CLI runs in it (the tests run it in-process)."""
    logger = logging.getLogger("ganfp")
    if not any(isinstance(h, _LibraryLines) for h in logger.handlers):
        logger.addHandler(_LibraryLines())
        logger.setLevel(logging.INFO)


def plain_json(value: Any) -> Any:
    """`value` in JSON's own types: a numpy number becomes a number (json.dumps would refuse it, or its str() would
    make it a string), and NaN or infinity null (json.dumps would write NaN and Infinity, which JSON has not, and
    jq and JSON.parse refuse). Numpy is not imported: `ganfp --help` stays fast."""
    if isinstance(value, dict):
        return {plain_json(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # a numpy scalar or array
        return plain_json(value.tolist())
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    return value


def print_json(obj: Any) -> None:
    """Machine output: one JSON document on stdout, nothing else (other values, such as paths, as strings).

    While collecting (a CLI command), an object's "warnings" are every warning the command emitted, logged ones
    included (`json_warnings`), the key added where the object had none; a list (train-stage, chain: one object
    per stage) is left to its command."""
    if isinstance(obj, dict) and _shown is not None:
        obj = {**obj, "warnings": json_warnings(obj.get("warnings") or ())}
    sys.stdout.write(json.dumps(plain_json(obj), indent=2, default=str, allow_nan=False) + "\n")
    sys.stdout.flush()


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


NUMBER = re.compile(r"[-+]?\.?\d")  # how a number (or a number with a note, "0.600 (pseudo)") starts


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str | None = None) -> None:
    """Title, caption, headers and cells are plain text (they hold file names). A column of numbers is right-aligned,
    so digits line up; any other column (names, paths, a summary's mixed values) reads from the left."""
    table = Table(title=Text(title, style="table.title"), title_justify="left",
                  caption=Text(caption, style="table.caption") if caption is not None else None)
    cells = [[format_cell(v) for v in row] for row in rows]
    for i, name in enumerate(columns):
        numbers = i > 0 and all(NUMBER.match(row[i]) or row[i] == "-" for row in cells)
        # a cell too long for a terminal folds onto more lines: "…" would cut a path or a recipe's name short
        table.add_column(Text(name), justify="right" if numbers else "left", no_wrap=i == 0, overflow="fold")
    for row in cells:
        table.add_row(*(Text(c) for c in row))
    out.print(table)


def progress(transient: bool = False) -> Progress:
    """A progress display on stderr; silent when stderr is not a terminal (a file, a pipe, a CI log)."""
    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # descriptions name folders
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=transient,
        disable=not on_screen(err),
    )


def val_scores(row: dict) -> str:
    """An epoch's validation scores, named as the trainer names them: on pseudo-labels they are only agreement."""
    if "val_pseudo_agreement" in row:
        return f"val pseudo-agreement {row['val_pseudo_agreement']:.3f}  val pseudo-F1 {row['val_pseudo_f1']:.3f}"
    return f"val acc {row['val_accuracy']:.3f}  val F1 {row['val_f1']:.3f}"


class TrainProgress:
    """Draws the trainer's events: one bar per epoch with loss, and a line per finished epoch."""

    def __init__(self, stage: str, verbose: bool = True):
        self.stage = stage
        self.verbose = verbose
        self._progress = progress(transient=True)
        self._task = None
        self._decode, self._decoded = None, 0  # the decoding bar, and images decoded so far

    def __enter__(self) -> "TrainProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.__exit__(*exc)

    def __call__(self, event: str, data: dict) -> None:
        if event == "epoch_start":
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(
                f"{self.stage} epoch {data['epoch']}/{data['epochs']}", total=data["batches"], status=""
            )
        elif event == "batch" and self._task is not None:
            self._progress.update(self._task, advance=data.get("advance", 1), status=f"loss {data['loss']:.4f}")
        elif event == "epoch_end" and self.verbose:
            row = data["row"]
            mark = " *" if data.get("improved") else ""
            self._progress.console.print(
                f"  {self.stage} epoch {row['epoch']:>3}  train loss {row['train_loss']:.4f}  "
                f"val loss {row['val_loss']:.4f}  {val_scores(row)}  {row['seconds']:.1f}s{mark}",
                highlight=False,
            )
        elif event == "decode":
            if self._decode is None:
                self._decode, self._decoded = self._progress.add_task(data["task"], total=data["total"], status=""), 0
            self._decoded += 1
            self._progress.update(self._decode, advance=1)
            if self._decoded >= data["total"]:
                self._progress.remove_task(self._decode)
                self._decode = None
        elif event == "message":
            self._progress.console.print(f"  {data['text']}", highlight=False, markup=False)

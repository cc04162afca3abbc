"""The organisers' reference for ImageCLEF 2023 submission files (in ../shared), for the submission-file tests."""

from __future__ import annotations

from helpers.layouts import SHARED

REFERENCE = SHARED / "reference" / "imageclef2023-submission"  # the organisers' rules, ids and example files
CASE_FILES = sorted(REFERENCE.glob("cases/*.csv")) if REFERENCE.is_dir() else []
# words of each case file name -> words the first reported reason must contain
CASE_REASONS = {
    "empty_line": "empty line",
    "wrong_format": "wrong format",
    "wrong_figure_id": "wrong figure id",
    "same_fig_id_more_than_once": "more than once",
    "score_no_int": "not an int",
    "score_int_greater_than_1": "greater than 1",
    "score_int_smaller_than_0": "smaller than 0",
    "not_all_fig_ids_specified": "not all figure ids specified",
}

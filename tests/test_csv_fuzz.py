"""Property-based fuzzing of the CSV readers: any bytes give a result or one InputError, never anything else."""

from __future__ import annotations

import string

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test-only dependency (pip install '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ganfp.errors import InputError  # noqa: E402
from ganfp.submission import (  # noqa: E402
    BOM,
    read_ids,
    read_labels,
    read_predictions,
    validate_submission,
    write_scores,
    write_submission,
)

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# text that looks like CSV often enough to reach the deeper checks
CSV_ALPHABET = st.sampled_from(list("ab01,\n\r -.e") + ["id", "label", "score", "nan", "inf", BOM, "\x00", "é", '"'])
csv_text = st.lists(CSV_ALPHABET, max_size=60).map("".join)
ids = st.lists(st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=8), min_size=1, max_size=12,
               unique=True)


@FUZZ
@given(data=st.one_of(csv_text.map(lambda t: t.encode("utf-8")), st.binary(max_size=80)))
def test_readers_return_or_raise_input_error(tmp_path, data):
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    for reader in (read_predictions, read_labels, read_ids):
        try:
            result = reader(path)
        except InputError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)
            continue
        if reader is read_ids:
            assert len(set(result)) == len(result) and all(result)
            continue
        assert len(set(result.ids)) == len(result.ids) and all(result.ids)
        for values in (result.labels, getattr(result, "scores", None)):
            assert values is None or len(values) == len(result.ids)
        if result.labels is not None:
            assert set(np.unique(result.labels).tolist()) <= {0, 1}


@FUZZ
@given(data=csv_text, expected=ids)
def test_validation_never_raises_and_agrees_with_the_reader(tmp_path, data, expected):
    path = tmp_path / "f.csv"
    path.write_text(data, encoding="utf-8")
    try:
        problems = validate_submission(path, expected)
    except InputError as exc:  # documented: a file that is not text at all
        assert "binary" in str(exc) or "UTF-8" in str(exc)
        return
    assert all(p.line >= 0 and p.reason for p in problems)
    if not problems:  # what the organisers accept, evaluate reads, with the same ids
        assert sorted(read_predictions(path, ids=expected).ids) == sorted(expected)


@FUZZ
@given(image_ids=ids, data=st.data())
def test_written_files_read_back_exactly(tmp_path, image_ids, data):
    labels = data.draw(st.lists(st.integers(0, 1), min_size=len(image_ids), max_size=len(image_ids)))
    floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
    scores = data.draw(st.lists(floats, min_size=len(image_ids), max_size=len(image_ids)))
    extra = data.draw(st.lists(floats, min_size=len(image_ids), max_size=len(image_ids)))
    write_submission(tmp_path / "sub.csv", image_ids, labels)
    assert validate_submission(tmp_path / "sub.csv", image_ids) == []
    back = read_predictions(tmp_path / "sub.csv", ids=image_ids)
    assert back.ids == image_ids and back.labels.tolist() == labels
    write_scores(tmp_path / "scores.csv", image_ids, scores, columns={"knn": extra})
    back = read_predictions(tmp_path / "scores.csv")
    assert back.ids == image_ids and back.scores.tolist() == scores


@FUZZ
@given(image_ids=ids, data=st.data())
def test_a_bom_is_read_past_and_reported_by_the_submission_check(tmp_path, image_ids, data):
    labels = data.draw(st.lists(st.integers(0, 1), min_size=len(image_ids), max_size=len(image_ids)))
    text = "".join(f"{i},{y}\n" for i, y in zip(image_ids, labels))
    path = tmp_path / "bom.csv"
    path.write_text(BOM + text, encoding="utf-8")
    back = read_predictions(path, ids=image_ids)
    assert back.ids == image_ids and back.labels.tolist() == labels and back.bom
    problems = validate_submission(path, image_ids)
    assert [p.line for p in problems] == [1] and "byte order mark" in problems[0].reason

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.submission import CASE_FILES, CASE_REASONS, REFERENCE

from ganfp.errors import InputError
from ganfp.submission import (
    ID_WORDS,
    Problem,
    decide,
    read_ids,
    read_labels,
    read_predictions,
    ties_at_the_cut,
    validate_submission,
    write_scores,
    write_submission,
)


needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is absent")

IDS = [f"img_{i}" for i in range(4)]


def expected_reason(case: Path) -> str:
    return next(reason for key, reason in CASE_REASONS.items() if case.stem.endswith(key))


@needs_reference
def test_reference_cases_are_all_present():
    assert len(CASE_FILES) == 10
    assert all(c.name.startswith("00_") or expected_reason(c) for c in CASE_FILES)


@needs_reference
@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.stem)
def test_official_cases(case):
    ids = read_ids(REFERENCE / "image_ids.txt")
    assert len(ids) == 200
    problems = validate_submission(case, ids)
    if case.name.startswith("00_"):
        assert problems == []
    else:
        assert problems, case.name
        assert expected_reason(case) in problems[0].reason
        assert problems[0].line >= 1


def test_each_rule_with_its_line():
    lines = [
        "img_0 , 1",  # spaces around tokens are allowed
        "",
        "img_1,0,",
        "other,1",
        "img_0,0",
        "img_2,1.0",
        "img_3,-1",
    ]
    problems = validate_submission(lines, IDS)
    assert [(p.line, p.reason.split(":")[0].split(" '")[0]) for p in problems] == [
        (2, "empty line"),
        (3, "wrong format"),
        (4, "wrong figure id"),
        (5, "same figure id"),
        (6, "score"),
        (7, "score -1 is smaller than 0 (must be 0 = not used or 1 = used)"),
        (7, "not all figure ids specified"),
    ]
    assert "'1.0' is not an int" in problems[4].reason
    assert "img_1, img_2, img_3" in problems[-1].reason


def test_ids_given_as_a_path_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"ids='.*: must be a list of ids, not str .*read_ids\(path\)"):
        validate_submission(["img_0,1"], str(tmp_path / "ids.txt"))
    with pytest.raises(InputError, match=r"ids=.*: must be a list of ids, not \w*Path; read a file"):
        validate_submission(["img_0,1"], tmp_path / "ids.txt")


def test_quotes_are_part_of_the_token():
    # the organisers read with no quoting: '"img_0"' is not the id img_0
    problems = validate_submission(['"img_0",1', "img_1,0", "img_2,0", "img_3,1"], IDS)
    assert problems[0] == Problem(1, problems[0].reason) and "wrong figure id" in problems[0].reason


def test_empty_file_and_trailing_blank_line(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    (problem,) = validate_submission(empty, IDS)
    assert problem.line == 0 and "empty file" in problem.reason
    assert problem.where(empty) == f"{empty}: {problem.reason}"
    blank_end = tmp_path / "blank_end.csv"
    blank_end.write_text("img_0,1\nimg_1,0\nimg_2,0\nimg_3,1\n\n")
    assert [p.line for p in validate_submission(blank_end, IDS)] == [5]


def test_blank_lines_that_end_a_headered_file_or_labels_are_dropped(tmp_path):
    """Excel or a hand edit leaves blank lines (or rows of empty cells) at the end: no data, so dropped, except in a
    headerless submission, where the organisers' validator refuses them; a blank line inside is still an error."""
    path = tmp_path / "p.csv"
    for end in ("\n", "\n\n", "\r\n\r\n  \r\n", "\n,\n ,, \n"):
        path.write_text("id,score\na,0.1\nb,0.9" + end)
        assert read_predictions(path).ids == ["a", "b"]
        path.write_text("id,label\na,1\nb,0" + end)
        assert read_labels(path).ids == ["a", "b"]
        path.write_text("a,1\nb,0" + end)
        assert read_labels(path).labels.tolist() == [1, 0]  # ground truth is no submission
    path.write_text("a,1\nb,0\n\n")
    with pytest.raises(InputError, match=r"p.csv:3: empty line at the end of the file: the organisers' validator"):
        read_predictions(path)
    with pytest.raises(InputError, match=r"p.csv:3: empty line at the end"):
        read_predictions(path, ids=["a", "b"])
    path.write_text("id,label\n\n\n")
    with pytest.raises(InputError, match="header only, no rows"):
        read_labels(path)
    path.write_text("\n \n")
    with pytest.raises(InputError, match="p.csv: empty file"):
        read_labels(path)
    path.write_text("id,score\na,0.1\n\nb,0.9\n\n")
    with pytest.raises(InputError, match=r"p.csv:3: empty line$"):
        read_predictions(path)


def test_crlf_and_missing_final_newline_are_accepted(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_bytes(b"img_0,1\r\nimg_1,0\r\nimg_2,0\r\nimg_3,1")
    assert validate_submission(path, IDS) == []


def test_write_submission_round_trips_and_is_valid(tmp_path):
    path = tmp_path / "out" / "sub.csv"
    write_submission(path, IDS, np.array([1, 0, 0, 1]))
    assert path.read_text() == "img_0,1\nimg_1,0\nimg_2,0\nimg_3,1\n"
    preds = read_predictions(path, ids=IDS)
    assert preds.format == "official" and preds.ids == IDS and preds.scores is None
    assert preds.labels.tolist() == [1, 0, 0, 1]
    assert list(tmp_path.joinpath("out").iterdir()) == [path]  # no temporary file left


def test_write_submission_against_expected_ids_leaves_nothing(tmp_path):
    path = tmp_path / "sub.csv"
    with pytest.raises(InputError, match=r"sub.csv:3: wrong figure id 'img_9'"):
        write_submission(path, IDS[:2] + ["img_9"], [1, 0, 1], expected_ids=IDS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad_id", ["a,b", " a", "", "a\nb", "\"a\""])
def test_write_submission_refuses_unwritable_ids(tmp_path, bad_id):
    with pytest.raises(InputError, match="cannot be written"):
        write_submission(tmp_path / "s.csv", [bad_id], [1])
    assert not (tmp_path / "s.csv").exists()


def test_write_submission_refuses_duplicates_and_bad_labels(tmp_path):
    with pytest.raises(InputError, match="appears twice"):
        write_submission(tmp_path / "s.csv", ["a", "a"], [1, 0])
    with pytest.raises(ValueError, match="only 0 and 1"):
        write_submission(tmp_path / "s.csv", ["a", "b"], [1, 2])
    assert not (tmp_path / "s.csv").exists()


def test_headered_formats(tmp_path):
    files = {
        "id,label\na,1\nb,0\n": ("id,label", [1, 0], None),
        "id,score\na,0.75\nb,-2e-3\n": ("id,score", None, [0.75, -0.002]),
        "id,label,score\na,1,0.9\nb,0,0.1\n": ("id,label,score", [1, 0], [0.9, 0.1]),
        "ID , Score\n\"a\",0.5\nb,1\n": ("id,score", None, [0.5, 1.0]),
        "image_path,predicted_class\n/x/y/a.png,1\nC:\\data\\b.jpg,0\n": ("image_path,predicted_class", [1, 0], None),
        "\ufeffid,label\na,1\nb,0\n": ("id,label", [1, 0], None),
    }
    for i, (text, (fmt, labels, scores)) in enumerate(files.items()):
        path = tmp_path / f"{i}.csv"
        path.write_text(text, encoding="utf-8")
        preds = read_predictions(path)
        assert preds.format == fmt
        assert preds.ids == ["a", "b"]
        assert preds.lines == [2, 3]
        assert (preds.labels is None) == (labels is None) and (labels is None or preds.labels.tolist() == labels)
        assert (preds.scores is None) == (scores is None) and (scores is None or preds.scores.tolist() == scores)


@pytest.mark.parametrize("word", ID_WORDS)
def test_every_id_word_names_the_id_column_of_a_membership_file(tmp_path, word):
    """The id column's names attribute writes and class tables read; a column of file names gives their stems."""
    path = tmp_path / "p.csv"
    path.write_text(f"{word.upper()},label,score\ndir/a.png,1,0.9\nb.png,0,0.1\n")
    preds = read_predictions(path)
    file_name = word in ("image_path", "image", "path", "file", "filename", "file_name")
    assert preds.ids == (["a", "b"] if file_name else ["dir/a.png", "b.png"])
    assert preds.format == f"{word},label,score" and preds.labels.tolist() == [1, 0]
    path.write_text(f"{word},label\na,1\nb,0\n")
    assert read_labels(path).ids == ["a", "b"]


def test_a_header_read_before_keeps_its_id_column_beside_another_id_word(tmp_path):
    """`id`, `image_id` and `image_path` were the only id columns: beside `name` or `file` they still are."""
    path = tmp_path / "p.csv"
    path.write_text("name,id,score\nfirst,a,0.9\nsecond,b,0.1\n")
    assert read_predictions(path).ids == ["a", "b"]
    path.write_text("file,image_path,label\nx.png,d/a.png,1\ny.png,d/b.png,0\n")
    assert read_predictions(path).ids == ["a", "b"]
    for header in ("filename,name,score", "id,image_id,score"):
        path.write_text(header + "\na,b,0.5\n")
        with pytest.raises(InputError, match=rf"p.csv:1: the header '{header}' names 2 id columns .*keep one"):
            read_predictions(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file"),
        ("id,label\n", "header only, no rows"),
        ("id,label\na,2\n", ":2: label '2' is not 0 or 1"),
        ("id,label\na,1.0\n", ":2: label '1.0' is not 0 or 1"),
        ("id,label\na,1\na,0\n", ":3: id 'a' more than once (first on line 2)"),
        ("id,score\na,nan\n", ":2: score 'nan' is not a finite number"),
        ("id,score\na,high\n", ":2: score 'high' is not a finite number"),
        ("id,label\na,1,3\n", ":2: 3 columns, the header has 2"),
        ("id,label\na,1\n\nb,0\n", ":3: empty line"),
        ("name,prob\na,0.3\n", ":1: unrecognised header 'name,prob'"),
        ("ident,score\na,0.3\n", "the id column may be named id, image_id, image_path, image_name"),
        ("id,label,label\na,1,0\n", ":1: unrecognised header"),
        ("a,1\na,0\n", ":2: same figure id 'a' more than once"),
        ("a,1\nb,2\n", ":2: score 2 is greater than 1"),
    ],
)
def test_bad_prediction_files(tmp_path, text, message):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_predictions(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_binary_and_missing_files(tmp_path):
    binary = tmp_path / "b.csv"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(InputError, match="binary file"):
        read_predictions(binary)
    latin = tmp_path / "l.csv"
    latin.write_bytes(b"id,label\n\xe9t\xe9,1\n")
    with pytest.raises(InputError, match=r"l.csv:2: not UTF-8 text"):
        read_labels(latin)
    with pytest.raises(InputError, match="no such file"):
        read_labels(tmp_path / "absent.csv")
    with pytest.raises(InputError, match="is a folder"):
        read_labels(tmp_path)


def test_read_labels_accepts_both_layouts_and_refuses_scores(tmp_path):
    headered = tmp_path / "h.csv"
    headered.write_text("id,label\nx,1\ny,0\n")
    official = tmp_path / "o.csv"
    official.write_text("x,1\ny ,  0")
    for path in (headered, official):
        truth = read_labels(path)
        assert truth.ids == ["x", "y"] and truth.labels.tolist() == [1, 0]
    scored = tmp_path / "s.csv"
    scored.write_text("id,score\nx,0.5\n")
    with pytest.raises(InputError, match="ground truth needs an id and a label column"):
        read_labels(scored)


def test_read_ids(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("a\n\nb  \n")
    assert read_ids(path) == ["a", "b"]
    path.write_text("a\nb\na")
    with pytest.raises(InputError, match=r"ids.txt:3: id 'a' listed twice"):
        read_ids(path)
    path.write_text("id,label\na,1\n")  # a labels file given as --ids
    with pytest.raises(InputError, match=r"ids.txt:1: 'id,label' is a CSV row; a file of ids holds one image id per "
                                         r"line \(like the task's image_ids.txt\), no commas"):
        read_ids(path)


def test_write_scores_round_trips_exactly(tmp_path):
    scores = np.random.default_rng(1).normal(size=5)
    path = tmp_path / "scores.csv"
    write_scores(path, list("abcde"), scores)
    back = read_predictions(path)
    assert back.format == "id,score" and back.scores.tolist() == scores.tolist()
    write_scores(path, list("abcde"), scores, labels=[1, 0, 1, 0, 1])
    back = read_predictions(path)
    assert back.format == "id,label,score" and back.labels.tolist() == [1, 0, 1, 0, 1]


def test_write_scores_writes_float32_scores_at_their_precision(tmp_path):
    """A network's probabilities are float32: written as 0.3, not as their float64 expansion 0.30000001192092896,
    and read back as the same float32 values; a column holding a float64 value keeps all 17 digits."""
    probs = np.array([0.3, 0.1, 1e-30, 123456789.0, 2.0**-30], dtype=np.float32)
    path = tmp_path / "scores.csv"
    write_scores(path, list("abcde"), probs, columns={"p": probs, "mixed": [0.1, 0.3, 1, 2, 1e300]})
    assert path.read_text().splitlines() == [
        "id,score,p,mixed",
        "a,0.3,0.3,0.1",
        "b,0.1,0.1,0.3",
        "c,1e-30,1e-30,1.0",
        "d,123456790.0,123456790.0,2.0",  # as under every numpy: numpy 2.4's str() gives 1.2345679e+08
        "e,9.313226e-10,9.313226e-10,1e+300",
    ]
    back = read_predictions(path)
    assert back.scores.astype(np.float32).tolist() == probs.tolist()
    assert [float(line.split(",")[3]) for line in path.read_text().splitlines()[1:]] == [0.1, 0.3, 1, 2, 1e300]


def test_write_scores_writes_float64_scores_float32_could_hold_at_float64_precision(tmp_path):
    """The dtype decides the precision, not the values: float64 scores that float32 happens to hold exactly (2**27,
    2**-30) read back as the same float64 values (they were written as float32 text, 1.3421773e+08)."""
    scores = [2.0**27, 2.0**-30, 0.5]
    write_scores(tmp_path / "scores.csv", list("abc"), scores, columns={"as_array": np.array(scores)})
    back = read_predictions(tmp_path / "scores.csv")
    assert back.scores.tolist() == scores
    assert [float(line.split(",")[2]) for line in (tmp_path / "scores.csv").read_text().splitlines()[1:]] == scores


def test_decide_by_rank_and_by_threshold():
    scores = [0.2, 0.9, 0.5, 0.5, 0.1]
    assert decide(scores).tolist() == [0, 1, 1, 1, 0]  # 0.5 * 5 = 2.5 rounds up to 3
    assert decide(scores, used_fraction=0.4).tolist() == [0, 1, 1, 0, 0]  # the tie goes to the first
    assert decide(scores, used_fraction=0.6).tolist() == [0, 1, 1, 1, 0]
    assert decide(scores, used_fraction=0.0).tolist() == [0] * 5
    assert decide(scores, used_fraction=1.0).tolist() == [1] * 5
    assert decide(scores, threshold=0.5).tolist() == [0, 1, 1, 1, 0]
    with pytest.raises(InputError, match="not both"):
        decide(scores, used_fraction=0.5, threshold=0.5)
    with pytest.raises(InputError, match="between 0 and 1"):
        decide(scores, used_fraction=1.5)


def test_decide_labels_the_top_fraction_deterministically():
    rng = np.random.default_rng(2)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        scores = np.round(rng.random(n), 1)
        q = float(rng.random())
        k = int(np.floor(q * n + 0.5))
        if n >= 2 and k in (0, n):  # a constant labelling is refused, not written
            with pytest.raises(InputError, match=f"labels {'none' if k == 0 else 'all'} of the {n} images"):
                decide(scores, used_fraction=q)
            continue
        labels = decide(scores, used_fraction=q)
        assert labels.sum() == k
        if 0 < labels.sum() < n:
            assert scores[labels == 1].min() >= scores[labels == 0].max()
        assert decide(scores, used_fraction=q).tolist() == labels.tolist()


def test_the_used_fraction_a_refusal_suggests_is_accepted():
    """"with 6 images give at least 0.0833" named a fraction that labels none of 6 images too (0.0833 * 6 rounds
    to 0): the bound is rounded away from the refused side, on either side, for every set size."""
    for n in range(2, 2000):
        scores = np.linspace(0, 1, n)
        for q, none in ((0.5 / n - 1e-9, True), ((n - 0.5) / n, False)):
            with pytest.raises(InputError) as refused:
                decide(scores, used_fraction=q)
            suggested = float(str(refused.value).split()[-1])
            fits = suggested if none else suggested - 1e-12  # "at least X" takes X; "below X" takes under X
            assert 0 < decide(scores, used_fraction=fits).sum() < n, str(refused.value)


def test_ties_at_the_cut_are_broken_by_id_not_by_file_order():
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    ids = ["e", "c", "a", "d", "b"]
    labels = decide(scores, used_fraction=0.4, ids=ids)  # 2 used: 0.9, then the tied 0.5 with the smallest id
    assert dict(zip(ids, labels.tolist())) == {"e": 1, "c": 0, "a": 1, "d": 0, "b": 0}
    order = [4, 2, 0, 3, 1]  # the same images listed in another order
    shuffled = decide(scores[order], used_fraction=0.4, ids=[ids[i] for i in order])
    assert dict(zip([ids[i] for i in order], shuffled.tolist())) == dict(zip(ids, labels.tolist()))


def test_ties_at_the_cut_say_one_image_as_one():
    scores = np.array([0.9, 0.5, 0.5, 0.1])  # half used: 0.9 and one of the two tied at 0.5
    (one,) = ties_at_the_cut(scores, decide(scores, used_fraction=0.5), None)
    assert "2 images share the score at the cut, 0.5" in one and "1 of them is labelled used in the order" in one
    scores = np.array([0.5, 0.5, 0.5, 0.1])  # two of three tied
    (two,) = ties_at_the_cut(scores, decide(scores, used_fraction=0.5), None)
    assert "3 images share the score at the cut" in two and "2 of them are labelled used in the order" in two


def test_extra_columns_such_as_classify_per_scorer_scores_are_ignored(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text("id,score,knn,retrieval\na,0.9,0.9,3\nb,0.1,0.1,0\n")
    preds = read_predictions(path)
    assert preds.ids == ["a", "b"] and list(preds.scores) == [0.9, 0.1]


@pytest.mark.parametrize("scores, columns, message", [
    ([0.1, np.nan], None, r"scores must be finite numbers; value 1 is nan"),
    ([0.1, np.inf], None, r"scores must be finite numbers; value 1 is inf"),
    (np.array([[0.1], [0.2]]), None, r"scores must be 1-D, one value per id, got shape \(2, 1\)"),
    ([0.1], None, r"2 ids but 1 scores"),
    ([0.1, 0.2], {1: [0.1, 0.2]}, r"column name 1: must be a str"),
    ([0.1, 0.2], {"a,b": [0.1, 0.2]}, r"column name 'a,b': must be a str without commas"),
    ([0.1, 0.2], {"score": [0.1, 0.2]}, r"column name 'score': is one of the file's own columns"),
    ([0.1, 0.2], {"knn": [0.1, -np.inf]}, r"columns\['knn'\] must be finite numbers; value 1 is -inf"),
    ([0.1, 0.2], {"knn": np.zeros((2, 1))}, r"columns\['knn'\] must be 1-D"),
])
def test_write_scores_refuses_what_it_could_not_read_back(scores, columns, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        write_scores(tmp_path / "s.csv", ["a", "b"], scores, columns=columns)
    assert not (tmp_path / "s.csv").exists()


def test_decide_checks_its_ids_against_the_scores():
    with pytest.raises(ValueError, match=r"ids has 2 values but scores has 3"):
        decide([0.3, 0.2, 0.1], used_fraction=0.5, ids=["a", "b"])


@pytest.mark.parametrize("call", [
    lambda tmp: write_submission(tmp / "s.csv", "ab", [0, 1]),
    lambda tmp: write_submission(tmp / "s.csv", ["a", "b"], [0, 1], expected_ids="ab"),
    lambda tmp: write_scores(tmp / "s.csv", "ab", [0.1, 0.2]),
    lambda tmp: decide([0.1, 0.2], ids="ab"),
    lambda tmp: validate_submission(["a,1", "b,0"], "ab"),
    lambda tmp: read_predictions(REFERENCE, ids="ab"),
], ids=["write_submission", "expected_ids", "write_scores", "decide", "validate_submission", "read_predictions"])
def test_ids_given_as_one_str_are_refused(call, tmp_path):
    """A str is iterable: `ids="ab"` was read as the two ids "a" and "b", and a file of them written."""
    with pytest.raises(InputError, match=r"ids='ab': must be a list of ids, not str \(one str would be read as one id"):
        call(tmp_path)
    assert not (tmp_path / "s.csv").exists()


def test_ids_none_is_refused_where_ids_are_needed(tmp_path):
    with pytest.raises(InputError, match=r"ids=None: must be a list of ids, not NoneType"):
        write_submission(tmp_path / "s.csv", None, [0, 1])

"""The dataset builders of helpers/layouts.py check themselves: paper fixtures, 16-bit slices, real all.csv rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.layouts import COVID_ALL_CSV, build_paper_fixtures, covid_rows, ct_slice
from PIL import Image


def test_paper_fixtures_load_with_every_paper_spec(tmp_path):
    from ganfp.data.adapters import load_manifest

    root = build_paper_fixtures(tmp_path / "data", tmp_path / "work")
    for spec in ("casia", "covid-ctset", "imageclef-gans-2023:dev"):
        manifest = load_manifest(spec, root)
        assert manifest.labelled and len(set(manifest.labels.tolist())) == 2, spec
    test = load_manifest("imageclef-gans-2023:test", root)
    assert not test.labelled and len(test) == 24
    assert Path(test.info["generated"]).name == "generated_1"


def test_16bit_fixture_slices_really_are_16_bit(tmp_path):
    path = ct_slice(tmp_path / "s.tif", 3)
    with Image.open(path) as img:
        assert img.mode == "I;16" and np.asarray(img).max() > 255


@pytest.mark.skipif(not COVID_ALL_CSV.is_file(),
                    reason="../shared/data/covid-ctset/all.csv is not here (a user's clone)")
def test_covid_rows_come_from_the_real_all_csv():
    rows = covid_rows()
    real = set(COVID_ALL_CSV.read_text().splitlines())
    assert rows and all(f"{n},{c}" in real for n, c in rows)
    assert {c for _, c in rows} == {"covid", "normal"}

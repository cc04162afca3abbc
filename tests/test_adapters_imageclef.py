"""The ImageCLEF GANs adapters: dev/test sets found wherever they sit, 2025 attribution layout."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from helpers.layouts import make_gans_attribution, make_gans_dev, make_gans_test, tiny_image

from ganfp.data.adapters import load_manifest
from ganfp.errors import InputError
from ganfp.fetch import fetch_dataset, read_meta


def _zip(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder).as_posix())
    return archive


@pytest.mark.parametrize("top", ["", "ImageCLEFmed_GANs_2023_dev", "a/b/dev"])
def test_dev_set_found_under_any_top_folder(tmp_path, top):
    src = tmp_path / "src"
    make_gans_dev(src / top, n_generated=6, n_real=4)
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2023", root, source=_zip(src, tmp_path / "dev.zip"))
    m = load_manifest("imageclef-gans-2023:dev", root)
    assert m.classes == ["not_used", "used"]
    assert m.class_counts() == {"not_used": 4, "used": 4}
    assert {Path(it.path).parent.name for it in m.items if it.label == 1} == {"used"}
    assert Path(m.info["generated"]).name == "generated"
    assert len(list(Path(m.info["generated"]).iterdir())) == 6
    assert m.ids[0].startswith("not_used_")


def test_dev_with_real_subfolder_finds_generated_one_level_up(tmp_path):
    src = tmp_path / "src"
    make_gans_dev(src / "dev", nested=True)
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2023", root, source=src)
    m = load_manifest("imageclef-gans-2023:dev", root)
    assert m.class_counts() == {"not_used": 4, "used": 4}
    assert Path(m.info["generated"]) == (root / "imageclef-gans-2023" / "dev" / "generated").resolve()


def test_test_set_is_unlabelled_with_its_generated_images(tmp_path):
    src = tmp_path / "src"
    make_gans_dev(src / "dev")
    make_gans_test(src / "test", n_generated=5, n_real=7)
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2023", root, source=src)
    for spec in ("imageclef-gans-2023:test", "imageclef-gans-2023:test-1"):
        m = load_manifest(spec, root)
        assert len(m) == 7 and not m.labelled and m.classes == []
        assert sorted(m.ids)[0] == "real_unknown_0001"
        assert Path(m.info["generated"]).name == "generated_1"
    # the dev set still finds its own generated/ (not generated_1/)
    assert Path(load_manifest("imageclef-gans-2023:dev", root).info["generated"]).name == "generated"
    with pytest.raises(InputError, match="no real_unknown_2"):
        load_manifest("imageclef-gans-2023:test-2", root)


def test_a_second_test_set_without_its_generated_images_gets_none_of_the_firsts(tmp_path):
    """2024 layout, generated_2/ missing: test-2 took generated_1/ (another generator's), then the dev set's
    generated/ further up; now it has none, and `unpaired` names generated_1/ for the reader's message."""
    src = tmp_path / "src"
    make_gans_dev(src / "dev")
    make_gans_test(src / "test")
    for i in range(3):
        tiny_image(src / "test" / "real_unknown_2" / f"real_unknown_{i + 1:04d}.png", 700 + i, mode="L")
    tiny_image(src / "generated" / "gen_top.png", 1, mode="L")  # a generated/ further up, as a dev set's
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2024", root, source=src)
    two = load_manifest("imageclef-gans-2024:test-2", root)
    assert "generated" not in two.info and two.info["unpaired"] == ["generated_1"]
    assert Path(load_manifest("imageclef-gans-2024:test-1", root).info["generated"]).name == "generated_1"


def test_test_set_added_after_the_dev_set(tmp_path):
    root = tmp_path / "data"
    make_gans_dev(tmp_path / "dev")
    make_gans_test(tmp_path / "test")
    fetch_dataset("imageclef-gans-2023", root, source=tmp_path / "dev")
    with pytest.raises(InputError, match="no test set found"):
        load_manifest("imageclef-gans-2023:test", root)
    fetch_dataset("imageclef-gans-2023", root, source=_zip(tmp_path / "test", tmp_path / "test.zip"), add=True)
    assert len(load_manifest("imageclef-gans-2023:test", root)) == 6
    assert load_manifest("imageclef-gans-2023:dev", root).class_counts() == {"not_used": 4, "used": 4}
    meta = read_meta(root / "imageclef-gans-2023")
    assert len(meta["source"]) == 2 and set(meta["layout"]) == {"dev", "test"}


def test_fetch_reports_the_image_counts_of_each_part(tmp_path, run_cli):
    make_gans_dev(tmp_path / "dev")
    root = str(tmp_path / "data")
    code, out, err = run_cli("fetch-data", "imageclef-gans-2023", "--from", tmp_path / "dev", "--data-root", root, "--json")
    assert code == 0, err
    counts = json.loads(out)["counts"]
    assert list(counts) == ["dev ."] and counts["dev ."]["used"] == 4 and counts["dev ."]["not_used"] == 4
    code, _, err = run_cli("fetch-data", "imageclef-gans-2023", "--from", tmp_path / "dev", "--data-root", root,
                           "--force")
    assert code == 0 and "dev .: 4 used, 4 not_used, 6 generated" in err, err


def test_2025_attribution_layout(tmp_path):
    src = tmp_path / "src" / "GAN25_Identify_Training_Data_Subset"
    make_gans_attribution(src, classes=("t1", "t2", "t3"), per_class=3)
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2025", root, source=tmp_path / "src")
    gen = load_manifest("imageclef-gans-2025:attribution", root)
    assert gen.classes == ["t1", "t2", "t3"] and gen.class_counts() == {"t1": 3, "t2": 3, "t3": 3}
    assert all("generated" in Path(it.path).parts for it in gen.items)
    real = load_manifest("imageclef-gans-2025:attribution-real", root)
    assert real.classes == gen.classes and all("real" in Path(it.path).parts for it in real.items)
    unknown = load_manifest("imageclef-gans-2025:attribution-unknown", root)
    assert len(unknown) == 4 and not unknown.labelled and unknown.info["classes"] == ["t1", "t2", "t3"]
    with pytest.raises(InputError, match="no dev set found"):
        load_manifest("imageclef-gans-2025:dev", root)


def test_editions_are_separate_datasets(tmp_path):
    make_gans_dev(tmp_path / "src")
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2024", root, source=tmp_path / "src")
    assert len(load_manifest("imageclef-gans-2024:dev", root)) == 8
    with pytest.raises(InputError, match=r"dataset imageclef-gans-2023 is not in .*fetch-data imageclef-gans-2023 --from"):
        load_manifest("imageclef-gans-2023:dev", root)


def test_two_dev_sets_in_one_dataset_are_refused_at_fetch_time(tmp_path):
    make_gans_dev(tmp_path / "src" / "one")
    make_gans_dev(tmp_path / "src" / "two")
    root = tmp_path / "data"
    with pytest.raises(InputError, match=r"several dev sets found \(one, two\)"):
        fetch_dataset("imageclef-gans-2023", root, source=tmp_path / "src")
    assert not (root / "imageclef-gans-2023").exists()
    make_gans_dev(tmp_path / "first" / "one")
    make_gans_dev(tmp_path / "second" / "two")
    fetch_dataset("imageclef-gans-2023", root, source=tmp_path / "first")
    with pytest.raises(InputError, match="several dev sets found"):  # added later: refused, the ready copy kept
        fetch_dataset("imageclef-gans-2023", root, source=tmp_path / "second", add=True)
    assert len(load_manifest("imageclef-gans-2023:dev", root)) == 8


def test_unknown_layout_and_part_are_input_errors(tmp_path):
    tiny_image(tmp_path / "src" / "images" / "a.png", 1, mode="L")
    with pytest.raises(InputError) as err:
        fetch_dataset("imageclef-gans-2023", tmp_path / "data", source=tmp_path / "src")
    assert "expected used/ + not_used/" in str(err.value) and "found folders: images" in str(err.value)
    make_gans_dev(tmp_path / "ok")
    fetch_dataset("imageclef-gans-2023", tmp_path / "data", source=tmp_path / "ok")
    with pytest.raises(InputError, match="unknown part 'train'"):
        load_manifest("imageclef-gans-2023:train", tmp_path / "data")
    with pytest.raises(InputError, match="name a part"):
        load_manifest("imageclef-gans-2023", tmp_path / "data")


def test_two_test_sets_of_one_number_are_refused_at_fetch_time(tmp_path):
    """Two `real_unknown_1/` (two editions' test sets, or one added again under another top folder) were one: the
    summary counted one and the spec loaded whichever sorted first."""
    make_gans_test(tmp_path / "first" / "test")
    make_gans_test(tmp_path / "second" / "other_test")
    root = tmp_path / "data"
    fetch_dataset("imageclef-gans-2023", root, source=tmp_path / "first")
    with pytest.raises(InputError, match=r"several test-1 sets found \(other_test/real_unknown_1, test/real_un"):
        fetch_dataset("imageclef-gans-2023", root, source=tmp_path / "second", add=True)
    assert Path(load_manifest("imageclef-gans-2023:test", root).root).parent.name == "test"  # the ready copy kept
    make_gans_test(root / "imageclef-gans-2023" / "other_test")  # put there by hand: each load refuses it too
    with pytest.raises(InputError, match="several test-1 sets found"):
        load_manifest("imageclef-gans-2023:test", root)


def test_fetch_reports_the_image_counts_of_an_attribution_set(tmp_path, run_cli):
    make_gans_attribution(tmp_path / "src" / "GAN25", classes=("t1", "t2"), per_class=3)
    code, _, err = run_cli("fetch-data", "imageclef-gans-2025", "--from", tmp_path / "src", "--data-root",
                           tmp_path / "data")
    assert code == 0 and "(attribution GAN25: 6 generated, 6 real, 4 unknown)" in err, err
    layout = read_meta(tmp_path / "data" / "imageclef-gans-2025")["layout"]
    assert layout["attribution"] == [{"folder": "GAN25", "classes": 2, "generated": 6, "real": 6, "unknown": 4}]

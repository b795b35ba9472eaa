"""Loading class-per-folder datasets: label order, ignored files, unreadable images, bad layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.training.builders import face_like, png_bytes, write_class_folders, write_png
from tests.training.conftest import CKPLUS_LABELS
from training.dataset import (
    CKPLUS_SUBJECT_PATTERN,
    Dataset,
    DatasetError,
    group_by_pattern,
    load_dataset,
)


def a_png(seed: int = 0) -> bytes:
    return png_bytes(face_like(16, seed=seed))


# --- labels and ordering ----------------------------------------------------------------------------


def test_labels_are_sorted_folder_names_regardless_of_creation_order(tmp_path: Path) -> None:
    # Created in reverse order, and with mixed case: the labels are sorted by name all the same.
    write_class_folders(tmp_path, {"surprise": 2, "happy": 3, "Zeta": 1, "anger": 2})
    dataset = load_dataset(tmp_path)
    assert dataset.class_names == ["Zeta", "anger", "happy", "surprise"]
    assert dataset.class_counts() == {"Zeta": 1, "anger": 2, "happy": 3, "surprise": 2}
    assert len(dataset) == 8
    assert dataset.labels.dtype == np.int64
    for path, label in zip(dataset.paths, dataset.labels, strict=True):
        assert path.parent.name == dataset.class_names[label]


def test_images_are_decoded_uint8_arrays(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 2, "b": 2}, size=20)
    dataset = load_dataset(tmp_path)
    assert len(dataset.images) == len(dataset.paths) == len(dataset.labels) == 4
    for image in dataset.images:
        assert image.dtype == np.uint8
        assert image.shape == (20, 20)


def test_files_within_a_class_are_in_sorted_order(tmp_path: Path) -> None:
    for name in ("c.png", "a.png", "b.png"):
        write_png(tmp_path / "x" / name, face_like())
        write_png(tmp_path / "y" / name, face_like())
    dataset = load_dataset(tmp_path)
    assert [p.name for p in dataset.paths] == ["a.png", "b.png", "c.png"] * 2


def test_image_suffixes_are_case_insensitive(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "upper.PNG", face_like())
    write_png(tmp_path / "b" / "lower.png", face_like())
    assert len(load_dataset(tmp_path)) == 2


# --- ignored files ----------------------------------------------------------------------------------


def test_hidden_non_image_and_root_files_are_ignored(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"anger": 2, "happy": 2})
    # Stray files at the root, and a hidden folder that must not become a class.
    (tmp_path / "README.md").write_text("# my dataset\n")
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    write_png(tmp_path / ".cache" / "thumb.png", face_like())
    write_png(tmp_path / "stray.png", face_like())
    # Inside a class: macOS metadata, AppleDouble files (not images despite the suffix) and notes.
    (tmp_path / "anger" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "anger" / "._S001_001_00000001.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (tmp_path / "anger" / "notes.txt").write_text("labelled by hand\n")
    (tmp_path / "happy" / "labels.csv").write_text("file,label\n")

    dataset = load_dataset(tmp_path)
    assert dataset.class_names == ["anger", "happy"]
    assert len(dataset) == 4
    assert dataset.skipped == []
    assert all(not p.name.startswith(".") and p.suffix == ".png" for p in dataset.paths)


# --- unreadable images ------------------------------------------------------------------------------


def test_corrupt_images_are_reported_and_skipped(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"anger": 3, "happy": 3})
    truncated = tmp_path / "anger" / "truncated.png"
    truncated.write_bytes(a_png()[:40])
    text = tmp_path / "happy" / "x.png"
    text.write_bytes(b"this is not a picture\n")
    empty = tmp_path / "happy" / "empty.png"
    empty.write_bytes(b"")

    dataset = load_dataset(tmp_path)

    assert len(dataset) == 6
    assert dataset.class_counts() == {"anger": 3, "happy": 3}
    skipped = dict(dataset.skipped)
    assert set(skipped) == {truncated, text, empty}
    assert all(isinstance(reason, str) and reason for reason in skipped.values())
    assert truncated not in dataset.paths
    assert text not in dataset.paths


def test_half_written_png_is_skipped(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 2, "b": 2})
    data = png_bytes(face_like(64))
    cut = tmp_path / "a" / "cut.png"
    cut.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut short
    dataset = load_dataset(tmp_path)
    assert [path for path, _ in dataset.skipped] == [cut]
    assert len(dataset) == 4


# --- unusable layouts ---------------------------------------------------------------------------------


def test_empty_class_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"anger": 2, "happy": 2})
    (tmp_path / "fear").mkdir()
    with pytest.raises(DatasetError, match=r"no readable image: fear"):
        load_dataset(tmp_path)


def test_class_with_only_ignored_files_is_an_error_naming_it(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"anger": 2, "happy": 2})
    (tmp_path / "fear").mkdir()
    (tmp_path / "fear" / ".DS_Store").write_bytes(b"\x00")
    (tmp_path / "fear" / "notes.txt").write_text("todo\n")
    with pytest.raises(DatasetError, match="fear"):
        load_dataset(tmp_path)


def test_class_with_only_unreadable_images_is_an_error_naming_it(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"anger": 2, "happy": 2})
    (tmp_path / "sadness").mkdir()
    (tmp_path / "sadness" / "a.png").write_bytes(b"not a png")
    (tmp_path / "sadness" / "b.png").write_bytes(a_png()[:30])
    with pytest.raises(DatasetError, match="sadness") as info:
        load_dataset(tmp_path)
    assert "anger" not in str(info.value)
    assert "happy" not in str(info.value)


def test_every_empty_class_is_named(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"anger": 2})
    (tmp_path / "fear").mkdir()
    (tmp_path / "happy").mkdir()
    with pytest.raises(DatasetError, match="fear, happy"):
        load_dataset(tmp_path)


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(missing)


def test_a_file_instead_of_a_folder_is_an_error(tmp_path: Path) -> None:
    file = tmp_path / "data.zip"
    file.write_bytes(b"PK\x03\x04")
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(file)


@pytest.mark.parametrize("classes", [0, 1])
def test_fewer_than_two_classes_is_an_error(tmp_path: Path, classes: int) -> None:
    write_class_folders(tmp_path, {f"class{i}": 2 for i in range(classes)})
    write_png(tmp_path / "loose.png", face_like())  # images at the root are not a class
    with pytest.raises(DatasetError, match="at least 2"):
        load_dataset(tmp_path)


def test_dataset_error_is_a_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


# --- groups -------------------------------------------------------------------------------------------


def test_ckplus_pattern_extracts_the_subject() -> None:
    group_of = group_by_pattern(CKPLUS_SUBJECT_PATTERN)
    assert group_of(Path("S010_004_00000017.png")) == "S010"
    assert group_of(Path("/data/CK+48/happy/S506_002_00000009.png")) == "S506"


@pytest.mark.parametrize("name", ["face.png", "s010_004_00000017.png", "xS010_004.png", "S010.png"])
def test_ckplus_pattern_rejects_other_names(name: str) -> None:
    group_of = group_by_pattern(CKPLUS_SUBJECT_PATTERN)
    with pytest.raises(DatasetError, match="does not match"):
        group_of(Path(name))


def test_group_pattern_needs_a_capturing_group() -> None:
    with pytest.raises(ValueError, match="capturing group"):
        group_by_pattern(r"S\d+_")


def test_groups_of_a_dataset(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 3, "b": 3}, subjects=2)
    dataset = load_dataset(tmp_path)
    groups = dataset.groups(group_by_pattern(CKPLUS_SUBJECT_PATTERN))
    # Sorted by file name within each class: S001_..._1, S001_..._3, S002_..._2.
    assert groups.tolist() == ["S001", "S001", "S002"] * 2


def test_fingerprint_is_stable_and_sees_content_changes(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"a": 2, "b": 2})
    first = load_dataset(tmp_path).fingerprint()
    assert first == load_dataset(tmp_path).fingerprint()
    write_png(tmp_path / "a" / "S001_001_00000001.png", face_like(seed=99))
    assert load_dataset(tmp_path).fingerprint() != first


# --- the real data ------------------------------------------------------------------------------------


def test_ckplus48(ckplus: Dataset) -> None:
    assert len(ckplus) == 981
    assert ckplus.class_names == CKPLUS_LABELS
    assert ckplus.skipped == []
    assert ckplus.class_counts() == {
        "anger": 135,
        "contempt": 54,
        "disgust": 177,
        "fear": 75,
        "happy": 207,
        "sadness": 84,
        "surprise": 249,
    }
    assert {image.shape for image in ckplus.images} == {(48, 48)}
    # PROVENANCE.md says 119 subjects; the file names hold 118 distinct S<nnn> prefixes.
    groups = ckplus.groups(group_by_pattern(CKPLUS_SUBJECT_PATTERN))
    assert len(np.unique(groups)) == 118

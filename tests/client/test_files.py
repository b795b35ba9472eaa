"""Which files a command line names: folders walked for images, hidden ones skipped, each file once."""

from __future__ import annotations

from pathlib import Path

import pytest

from client.files import find_images


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_are_walked_for_images_skipping_hidden_files_and_folders(tmp_path: Path) -> None:
    wanted = [
        touch(tmp_path / "b.JPG"),
        touch(tmp_path / "c.png"),
        touch(tmp_path / "a" / "z.webp"),
        touch(tmp_path / "a" / "deeper" / "y.tiff"),
    ]
    for unwanted in (".DS_Store", ".hidden.jpg", ".git/x.png", "a/.cache/y.jpg", "notes.txt", "model.h5"):
        touch(tmp_path / unwanted)
    found = find_images([tmp_path])
    # Sorted within each folder, a folder's own files before its subfolders' (os.walk order).
    assert found == [wanted[0], wanted[1], wanted[2], wanted[3]]


def test_named_files_are_kept_whatever_their_name_in_order_and_once(tmp_path: Path) -> None:
    """The service reads the format from the bytes: a named file is sent even without an image suffix."""
    named = touch(tmp_path / "scan.dat")
    folder_image = touch(tmp_path / "f" / "a.png")
    assert find_images([named, tmp_path / "f", folder_image, named]) == [named, folder_image]


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.jpg"):
        find_images([tmp_path / "nope.jpg"])


def test_an_empty_folder_names_no_image(tmp_path: Path) -> None:
    touch(tmp_path / ".DS_Store")
    assert find_images([tmp_path]) == []

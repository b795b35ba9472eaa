"""``emotion-client video`` against the real service over HTTP: a short MP4 of a face, made here."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from client.cli import main
from tests.client.conftest import API_KEY

FRAMES = 12


@pytest.fixture
def face_video(tmp_path: Path, photos_dir: Path) -> Path:
    """12 frames (10 fps) of the anger photo drifting 4 pixels a frame to the right on a black canvas."""
    face = cv2.imread(str(photos_dir / "anger_01.jpg"))
    scale = 360 / face.shape[0]
    face = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    height, width = 400, face.shape[1] + 80
    path = tmp_path / "face.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    assert writer.isOpened()
    for i in range(FRAMES):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[20 : 20 + face.shape[0], 4 * i : 4 * i + face.shape[1]] = face
        writer.write(frame)
    writer.release()
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as rows:
        return list(csv.DictReader(rows))


def frame_count(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_a_video_gives_a_row_per_processed_frame_and_face_a_plot_and_an_annotated_video(
    service_url: str, face_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, annotated = tmp_path / "out" / "frames.csv", tmp_path / "out" / "annotated.mp4"
    argv = ["video", str(face_video), "--out", str(out), "--annotated", str(annotated), "--every", "2"]
    status = main([*argv, "--url", service_url, "--faces", "largest"])
    assert status == 0, capsys.readouterr().err
    rows = read_rows(out)
    assert [int(row["frame"]) for row in rows] == list(range(0, FRAMES, 2))
    assert {row["track_id"] for row in rows} == {"1"}  # the drifting face keeps its track
    assert [float(row["time_s"]) for row in rows] == pytest.approx([i / 10 for i in range(0, FRAMES, 2)])
    labels = [name[2:] for name in rows[0] if name.startswith("s_")]
    assert len(labels) == 7 and all(f"p_{label}" in rows[0] for label in labels)
    for row in rows:
        smoothed = {label: float(row[f"s_{label}"]) for label in labels}
        assert row["emotion"] == max(smoothed, key=smoothed.__getitem__)
        assert sum(smoothed.values()) == pytest.approx(1.0, abs=1e-4)
    plot = cv2.imread(str(out.with_suffix(".png")))
    assert plot is not None and plot.shape[0] > 100
    assert frame_count(annotated) == FRAMES
    assert f"{FRAMES} frames read, {FRAMES // 2} processed" in capsys.readouterr().err


def test_the_api_key_goes_with_the_stream(
    secured_service_url: str, face_video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "frames.csv"
    argv = ["video", str(face_video), "--out", str(out), "--every", "6", "--url", secured_service_url]
    assert main(argv) == 1
    assert "unauthorized" in capsys.readouterr().err
    assert main([*argv, "--api-key", API_KEY]) == 0
    assert len(read_rows(out)) == 2


def test_usage_errors(face_video: Path, tmp_path: Path) -> None:
    for argv in (
        ["video", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "a.csv")],
        ["video", str(face_video), "--out", str(tmp_path / "a.txt")],
        ["video", str(face_video), "--out", str(tmp_path / "a.csv"), "--every", "0"],
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2


def test_a_file_that_is_not_a_video_fails(tmp_path: Path, service_url: str) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video")
    assert main(["video", str(fake), "--out", str(tmp_path / "a.csv"), "--url", service_url]) == 1

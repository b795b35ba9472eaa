"""One row per face as CSV or JSON Lines, and the summary printed after a run."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from client.results import Outcome, RowWriter, Summary, face_rows, output_format

PROBABILITIES = {"anger": 0.1, "happy": 0.7, "sadness": 0.2}


def face(x: int, emotion: str = "happy", **extra: Any) -> dict[str, Any]:
    box = {"x": x, "y": 5, "width": 40, "height": 42}
    return {"box": box, "emotion": emotion, "confidence": 0.7, "probabilities": PROBABILITIES, **extra}


def body(faces: list[dict[str, Any]], face_found: bool = True) -> dict[str, Any]:
    return {**faces[0], "faces": faces, "face_found": face_found, "model_id": "emotion_cnn@abc"}


def rows_as(fmt: str, outcomes: list[Outcome]) -> str:
    stream = io.StringIO()
    writer = RowWriter(stream, fmt)
    for outcome in outcomes:
        for row in face_rows(outcome):
            writer.write(row)
    return stream.getvalue()


def test_csv_has_one_row_per_face_with_box_face_confidence_and_each_probability() -> None:
    two = Outcome(
        Path("a/two.jpg"), body([face(10, face_confidence=0.98), face(90, "anger", face_confidence=0.8)])
    )
    whole = Outcome(Path("gray.png"), {**face(0), "box": None, "face_found": False, "model_id": "m"})
    rows = list(csv.DictReader(io.StringIO(rows_as(".csv", [two, whole]))))
    assert list(rows[0]) == [
        "file", "face", "x", "y", "width", "height", "face_confidence", "emotion", "confidence",
        "p_anger", "p_happy", "p_sadness", "model_id",
    ]  # fmt: skip
    assert [(r["file"], r["face"], r["x"], r["emotion"]) for r in rows] == [
        ("a/two.jpg", "0", "10", "happy"),
        ("a/two.jpg", "1", "90", "anger"),
        ("gray.png", "0", "", "happy"),  # no face: no box, the whole image's answer
    ]
    assert rows[1]["face_confidence"] == "0.8" and rows[2]["face_confidence"] == ""
    assert float(rows[0]["p_happy"]) == 0.7


def test_jsonl_keeps_box_and_probabilities_nested() -> None:
    lines = rows_as(".jsonl", [Outcome(Path("x.png"), body([face(3)]))]).splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["box"] == {"x": 3, "y": 5, "width": 40, "height": 42}
    assert row["probabilities"] == PROBABILITIES and row["face_confidence"] is None


def test_a_largest_face_answer_without_a_faces_list_is_one_row() -> None:
    answer = {**face(7), "faces": None, "face_found": True, "model_id": "m"}
    assert [row["box"]["x"] for row in face_rows(Outcome(Path("p.jpg"), answer))] == [7]


@pytest.mark.parametrize(("name", "fmt"), [("r.csv", ".csv"), ("R.JSONL", ".jsonl")])
def test_output_format_from_the_suffix(name: str, fmt: str) -> None:
    assert output_format(Path(name)) == fmt


def test_an_unknown_output_suffix_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.jsonl"):
        output_format(Path("results.xlsx"))


def test_the_summary_counts_emotions_and_lists_failures_with_their_code() -> None:
    summary = Summary()
    for outcome in (
        Outcome(Path("two.jpg"), body([face(1), face(2, "anger")])),
        Outcome(Path("one.jpg"), body([face(1)])),
        Outcome(Path("gray.png"), {**face(0), "box": None, "face_found": False, "faces": None}),
        Outcome(Path("bad.jpg"), status=415, code="unsupported_image_type", message="not an image"),
        Outcome(Path("gone.jpg"), code="connection_error", message="refused"),
    ):
        summary.add(outcome, face_rows(outcome) if outcome.ok else [])
    report = summary.report()
    assert report.splitlines()[0] == (
        "5 files: 3 classified, 2 failed; 3 faces found, 1 images with no face (classified whole)"
    )
    assert summary.emotions == {"happy": 3, "anger": 1}
    assert "  bad.jpg  415 unsupported_image_type: not an image" in report
    assert "  gone.jpg  - connection_error: refused" in report

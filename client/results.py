"""What ``emotion-client predict`` writes: one row per face, as CSV or JSON Lines, and the summary."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

FORMATS = (".csv", ".jsonl")
BOX_FIELDS = ("x", "y", "width", "height")


@dataclass(frozen=True)
class Outcome:
    """One file's answer: the /predict JSON, or why it failed."""

    path: Path
    body: dict[str, Any] | None = None
    status: int | None = None  # HTTP status of a failure; None: no answer (connection, local file)
    code: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.body is not None


def face_rows(outcome: Outcome) -> list[dict[str, Any]]:
    """One row per face of a classified file (the whole image when no face was found)."""
    body = outcome.body
    assert body is not None
    faces = body.get("faces") or [body]
    return [
        {
            "file": str(outcome.path),
            "face": index,
            "box": face.get("box"),
            "face_confidence": face.get("face_confidence"),  # when the service's detector gives one
            "emotion": face["emotion"],
            "confidence": face["confidence"],
            "probabilities": face["probabilities"],
            "model_id": body.get("model_id"),
        }
        for index, face in enumerate(faces)
    ]


def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: the output must end in {' or '.join(FORMATS)}")
    return suffix


class RowWriter:
    """Writes face rows as they come. CSV gets one column per box side and per probability (the labels
    of the first row: one model answers a whole run); JSON Lines keeps the box and probabilities nested."""

    def __init__(self, stream: TextIO, fmt: str) -> None:
        self._stream = stream
        self._format = fmt
        self._csv: csv.DictWriter[str] | None = None
        self.rows = 0

    def write(self, row: dict[str, Any]) -> None:
        self.rows += 1
        if self._format == ".jsonl":
            self._stream.write(json.dumps(row) + "\n")
            return
        box = row["box"] or {}
        flat = {
            "file": row["file"],
            "face": row["face"],
            **{side: box.get(side) for side in BOX_FIELDS},
            "face_confidence": row["face_confidence"],
            "emotion": row["emotion"],
            "confidence": row["confidence"],
            **{f"p_{label}": p for label, p in row["probabilities"].items()},
            "model_id": row["model_id"],
        }
        if self._csv is None:
            self._csv = csv.DictWriter(self._stream, fieldnames=list(flat), extrasaction="ignore")
            self._csv.writeheader()
        self._csv.writerow(flat)


@dataclass
class Summary:
    files: int = 0
    failed: list[Outcome] = field(default_factory=list)
    faces: int = 0
    without_face: int = 0
    emotions: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: Outcome, rows: list[dict[str, Any]]) -> None:
        self.files += 1
        if not outcome.ok:
            self.failed.append(outcome)
            return
        assert outcome.body is not None
        if outcome.body.get("face_found"):
            self.faces += len(rows)
        else:
            self.without_face += 1
        self.emotions.update(row["emotion"] for row in rows)

    def report(self) -> str:
        classified = self.files - len(self.failed)
        lines = [
            f"{self.files} files: {classified} classified, {len(self.failed)} failed; "
            f"{self.faces} faces found, {self.without_face} images with no face (classified whole)"
        ]
        if self.emotions:
            lines.append("emotions (one per face or whole image):")
            width = max(map(len, self.emotions))
            lines += [f"  {emotion:<{width}}  {count}" for emotion, count in self.emotions.most_common()]
        if self.failed:
            lines.append("failed:")
            for outcome in self.failed:
                status = outcome.status if outcome.status is not None else "-"
                lines.append(f"  {outcome.path}  {status} {outcome.code}: {outcome.message}")
        return "\n".join(lines)

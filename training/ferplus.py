"""Reading a FER+ style folder: ``labels.csv`` with one vote column per expression, images beside it.

``labels.csv`` has a header ``image,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,
unknown,NF`` and one row per image with the votes of its taggers. FER+ names differ from ours
(``happiness`` is our ``happy``): :data:`FERPLUS_TO_OURS` maps them explicitly, and a model's label
order is always our sorted names, never the CSV's column order.

Targets are made from the votes: the vote distribution over the model's labels (a soft target, the
FER+ paper's best recipe) or the majority label (one-hot; ties dropped). A row whose top vote is
``unknown`` or ``NF`` (not a face) is dropped, as is a row with no vote for any of the model's labels.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from app.core.errors import ImageError
from app.core.imaging import decode_image

log = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
# FER+ column -> this project's label name. `unknown` and `NF` are not expressions.
FERPLUS_TO_OURS = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sadness",
    "anger": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": "contempt",
}
NON_EXPRESSION_COLUMNS = ("unknown", "NF")
MAX_PIXELS = 4_000_000

TargetKind = Literal["soft", "majority"]


class FerPlusError(ValueError):
    """The folder is not a usable FER+ style folder."""


@dataclass
class VoteDataset:
    """Images with their votes over ``labels`` (the model's order) and why rows were dropped."""

    images: list[np.ndarray]
    votes: np.ndarray  # (N, len(labels)) float64 vote counts
    labels: list[str]
    names: list[str]
    # Per row: one expression has more votes than every other column, `unknown` and `NF` included.
    single_top: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def targets(self, kind: TargetKind = "soft") -> np.ndarray:
        """``(N, labels)`` float32 targets: the vote distribution, or one-hot of the majority label."""
        if kind == "soft":
            return (self.votes / self.votes.sum(axis=1, keepdims=True)).astype(np.float32)
        if kind == "majority":
            return np.eye(len(self.labels), dtype=np.float32)[self.votes.argmax(axis=1)]
        raise ValueError(f"unknown target kind {kind!r}; use 'soft' or 'majority'")

    def top_label_mask(self) -> np.ndarray:
        """Rows with one single top label (no tie with any column): the ones with a clear answer."""
        if self.single_top is not None:
            return self.single_top
        top = self.votes.max(axis=1, keepdims=True)
        return (self.votes == top).sum(axis=1) == 1

    def majority(self) -> np.ndarray:
        """Index of the top-voted label per row (first of a tie; mask ties with top_label_mask)."""
        return self.votes.argmax(axis=1)

    def subset(self, index: np.ndarray) -> VoteDataset:
        return VoteDataset(
            images=[self.images[i] for i in index],
            votes=self.votes[index],
            labels=self.labels,
            names=[self.names[i] for i in index],
            single_top=None if self.single_top is None else self.single_top[index],
            dropped=dict(self.dropped),
        )


def _read_rows(csv_path: Path, labels: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    ours_to_column = {ours: column for column, ours in FERPLUS_TO_OURS.items()}
    missing = [label for label in labels if label not in ours_to_column]
    if missing:
        raise FerPlusError(f"labels {missing} have no FER+ column; FER+ knows {sorted(ours_to_column)}")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        needed = ["image", *FERPLUS_TO_OURS, *NON_EXPRESSION_COLUMNS]
        absent = [name for name in needed if name not in header]
        if absent:
            raise FerPlusError(f"{csv_path}: missing column(s) {', '.join(absent)}")
        names, label_votes, other_votes = [], [], []
        for line, row in enumerate(reader, start=2):
            try:
                label_votes.append([float(row[ours_to_column[label]]) for label in labels])
                other_votes.append(
                    [float(row[c]) for c in FERPLUS_TO_OURS if FERPLUS_TO_OURS[c] not in labels]
                    + [float(row[c]) for c in NON_EXPRESSION_COLUMNS]
                )
            except (TypeError, ValueError) as exc:
                raise FerPlusError(f"{csv_path}:{line}: a vote is not a number ({exc})") from exc
            names.append(row["image"])
    return names, np.array(label_votes).reshape(-1, len(labels)), np.array(other_votes)


def load_ferplus(folder: Path, labels: list[str]) -> VoteDataset:
    """The rows of ``folder/labels.csv`` usable for a model with ``labels``, with their images.

    Dropped: the top vote is ``unknown`` or ``NF``; no vote for any of ``labels``; the image is
    missing or unreadable. For a seven-label model (no ``neutral``), neutral votes are simply not a
    target: a row counts only if one of the seven has the top vote among all expressions.
    """
    folder = Path(folder)
    csv_path = folder / LABELS_FILE
    if not csv_path.is_file():
        raise FerPlusError(f"{folder} has no {LABELS_FILE}: not a FER+ style folder")
    names, votes, other = _read_rows(csv_path, labels)
    dropped = {"top_vote_not_a_label": 0, "no_label_votes": 0, "unreadable": 0}
    images: list[np.ndarray] = []
    kept_names: list[str] = []
    kept_votes: list[np.ndarray] = []
    single_top: list[bool] = []
    for name, row, rest in zip(names, votes, other, strict=True):
        if row.sum() <= 0:
            dropped["no_label_votes"] += 1
            continue
        if rest.size and rest.max() > row.max():
            dropped["top_vote_not_a_label"] += 1
            continue
        path = folder / name
        try:
            image = decode_image(path.read_bytes(), max_pixels=MAX_PIXELS)
        except (ImageError, OSError) as exc:
            log.warning("skipping unreadable FER+ image %s: %s", path, exc)
            dropped["unreadable"] += 1
            continue
        images.append(image)
        kept_names.append(name)
        kept_votes.append(row)
        everything = np.concatenate([row, rest])
        single_top.append(bool((everything == row.max()).sum() == 1))
    if not images:
        raise FerPlusError(f"{folder}: no usable row in {LABELS_FILE}")
    return VoteDataset(
        images=images,
        votes=np.array(kept_votes, dtype=np.float64),
        labels=list(labels),
        names=kept_names,
        single_top=np.array(single_top, dtype=bool),
        dropped=dropped,
    )

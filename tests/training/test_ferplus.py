"""Reading FER+ style folders: label mapping, vote targets, dropped rows, the clear-answer mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.training.builders import face_like, write_png
from training.ferplus import FERPLUS_TO_OURS, FerPlusError, load_ferplus

HEADER = "image,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
EIGHT = ["anger", "contempt", "disgust", "fear", "happy", "neutral", "sadness", "surprise"]
SEVEN = [label for label in EIGHT if label != "neutral"]
ROWS = {
    # name: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
    "happy.png": (0, 8, 2, 0, 0, 0, 0, 0, 0, 0),
    "calm.png": (6, 0, 0, 3, 0, 0, 0, 0, 1, 0),
    "tie.png": (0, 0, 0, 0, 5, 5, 0, 0, 0, 0),
    "unknown.png": (1, 2, 0, 0, 0, 0, 0, 0, 7, 0),
    "not_a_face.png": (0, 0, 0, 0, 0, 0, 0, 0, 0, 10),
    "tie_with_unknown.png": (0, 0, 4, 0, 0, 0, 2, 0, 4, 0),
}


def write_ferplus(folder: Path, rows: dict[str, tuple[int, ...]] = ROWS) -> Path:
    lines = [HEADER]
    for i, (name, votes) in enumerate(rows.items()):
        write_png(folder / name, face_like(48, seed=i))
        lines.append(",".join([name, *map(str, votes)]))
    (folder / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_columns_map_explicitly_to_our_names() -> None:
    assert FERPLUS_TO_OURS["happiness"] == "happy"
    assert sorted(FERPLUS_TO_OURS.values()) == EIGHT


def test_votes_follow_the_models_label_order_not_the_csv_order(tmp_path: Path) -> None:
    data = load_ferplus(write_ferplus(tmp_path), EIGHT)
    happy = data.names.index("happy.png")
    assert data.labels == EIGHT
    assert data.votes[happy].tolist() == [0, 0, 0, 0, 8, 0, 0, 2]  # happy 8, surprise 2


def test_soft_targets_are_the_vote_distribution_and_majority_is_one_hot(tmp_path: Path) -> None:
    data = load_ferplus(write_ferplus(tmp_path), EIGHT)
    soft, hard = data.targets("soft"), data.targets("majority")
    happy = data.names.index("happy.png")
    assert soft[happy].tolist() == pytest.approx([0, 0, 0, 0, 0.8, 0, 0, 0.2])
    # calm.png: the unknown vote is not an expression, so the distribution is over the nine others
    calm = data.names.index("calm.png")
    assert soft[calm][EIGHT.index("neutral")] == pytest.approx(6 / 9)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    assert hard[happy].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="target kind"):
        data.targets("median")  # type: ignore[arg-type]


def test_rows_whose_top_vote_is_unknown_or_not_a_face_are_dropped(tmp_path: Path) -> None:
    data = load_ferplus(write_ferplus(tmp_path), EIGHT)
    assert "unknown.png" not in data.names
    assert "not_a_face.png" not in data.names
    assert data.dropped == {"top_vote_not_a_label": 1, "no_label_votes": 1, "unreadable": 0}
    assert len(data) == len(data.images) == 4


def test_clear_answers_exclude_ties_with_any_column(tmp_path: Path) -> None:
    data = load_ferplus(write_ferplus(tmp_path), EIGHT)
    clear = dict(zip(data.names, data.top_label_mask(), strict=True))
    assert clear == {"happy.png": True, "calm.png": True, "tie.png": False, "tie_with_unknown.png": False}
    kept = data.subset(np.flatnonzero(data.top_label_mask()))
    assert kept.names == ["happy.png", "calm.png"]
    assert kept.top_label_mask().all()


def test_a_seven_label_model_drops_faces_whose_top_vote_is_neutral(tmp_path: Path) -> None:
    data = load_ferplus(write_ferplus(tmp_path), SEVEN)
    assert "calm.png" not in data.names
    assert data.votes.shape == (3, 7)


def test_missing_unreadable_and_malformed_inputs(tmp_path: Path) -> None:
    with pytest.raises(FerPlusError, match=r"no labels\.csv"):
        load_ferplus(tmp_path, EIGHT)
    folder = write_ferplus(tmp_path / "a")
    (folder / "happy.png").write_bytes(b"not an image")
    data = load_ferplus(folder, EIGHT)
    assert data.dropped["unreadable"] == 1 and "happy.png" not in data.names
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "labels.csv").write_text("image,neutral\nx.png,1\n", encoding="utf-8")
    with pytest.raises(FerPlusError, match="missing column"):
        load_ferplus(tmp_path / "b", EIGHT)
    with pytest.raises(FerPlusError, match="no FER\\+ column"):
        load_ferplus(folder, ["happy", "bored"])


def test_the_real_valid_split(ferplus_dir: Path) -> None:
    data = load_ferplus(ferplus_dir / "valid", EIGHT)
    assert len(data) == 3509
    clear = data.top_label_mask()
    assert clear.sum() == 3351
    assert (data.majority()[clear] != EIGHT.index("neutral")).sum() == 2118

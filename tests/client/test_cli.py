"""``emotion-client`` end to end: against the real service over HTTP, and against fake answers
(httpx.MockTransport) for retries and the query it sends."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from client.cli import main
from tests.client.conftest import API_KEY

NOT_AN_IMAGE = b"plain text, not a picture\n"


def write_png(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def photo_folder(tmp_path: Path, ckplus_dir: Path) -> Path:
    """Real faces (a happy and a surprise CK+48 crop) in a tree with a gray image, a hidden file and a
    text file that folder walking must skip."""
    folder = tmp_path / "photos"
    for emotion, name in (("happy", "a_happy.png"), ("surprise", "sub/b_surprise.png")):
        source = sorted((ckplus_dir / emotion).glob("*.png"))[0]
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(source.read_bytes())
    write_png(folder / "c_gray.png", np.full((64, 64), 120, np.uint8))
    (folder / ".DS_Store").write_bytes(b"\0\1")
    (folder / "notes.txt").write_text("not an image")
    return folder


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str], **kw: Any) -> tuple[int, str, str]:
    status = main(args, **kw)
    out, err = capsys.readouterr()
    return status, out, err


def test_predict_over_a_folder_writes_a_csv_row_per_image_and_counts_emotions(
    service_url: str, photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.csv"
    status, _, err = run_cli(["predict", str(photo_folder), "--url", service_url, "--out", str(out)], capsys)
    assert status == 0, err
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    labels = httpx.get(f"{service_url}/model").json()["labels"]
    assert [Path(row["file"]).name for row in rows] == ["a_happy.png", "c_gray.png", "b_surprise.png"]
    assert [row["emotion"] for row in rows][::2] == ["happy", "surprise"]  # the crops are clear faces
    assert rows[1]["x"] == "" and rows[0]["x"] != ""  # the gray image: no face, no box
    for row in rows:
        probabilities = [float(row[f"p_{label}"]) for label in labels]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    assert "3 files: 3 classified, 0 failed; 2 faces found, 1 images with no face" in err
    assert "  happy" in err and "  surprise" in err


def test_a_failed_file_is_listed_with_its_code_and_the_exit_status_is_1(
    service_url: str, photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (photo_folder / "broken.jpg").write_bytes(NOT_AN_IMAGE)
    out = tmp_path / "results.jsonl"
    args = ["predict", str(photo_folder), "--url", service_url, "--out", str(out), "--concurrency", "3"]
    status, _, err = run_cli(args, capsys)
    assert status == 1
    assert f"{photo_folder / 'broken.jpg'}  415 unsupported_image_type" in err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3  # the other files are still written, in file order
    assert [Path(row["file"]).name for row in rows] == ["a_happy.png", "c_gray.png", "b_surprise.png"]


def test_faces_all_gives_a_row_per_face(
    service_url: str, photos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    face = Image.open(photos_dir / "anger_01.jpg").convert("RGB")
    both = Image.new("RGB", (face.width * 2, face.height))
    both.paste(face, (0, 0))
    both.paste(face.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (face.width, 0))
    both.save(tmp_path / "two.jpg")
    status, out, _ = run_cli(
        ["predict", str(tmp_path / "two.jpg"), "--url", service_url, "--faces", "all"], capsys
    )
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))  # no --out: CSV on standard output
    assert [row["face"] for row in rows] == ["0", "1"]
    assert int(rows[0]["x"]) < face.width <= int(rows[1]["x"])


def test_the_api_key_comes_from_the_option_or_the_environment(
    secured_service_url: str,
    photo_folder: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = str(photo_folder / "a_happy.png")
    status, _, err = run_cli(["predict", image, "--url", secured_service_url], capsys)
    assert status == 1 and "401 unauthorized" in err
    assert run_cli(["predict", image, "--url", secured_service_url, "--api-key", API_KEY], capsys)[0] == 0
    monkeypatch.setenv("EMOTION_API_KEY", API_KEY)
    assert run_cli(["predict", image, "--url", secured_service_url], capsys)[0] == 0


def test_annotate_saves_the_jpeg_the_service_draws(
    service_url: str, photos_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "annotated.jpg"
    args = ["annotate", str(photos_dir / "anger_01.jpg"), "--url", service_url, "--out", str(out)]
    status, _, err = run_cli(args, capsys)
    assert status == 0, err
    with Image.open(out) as annotated, Image.open(photos_dir / "anger_01.jpg") as original:
        assert annotated.format == "JPEG" and annotated.size == original.size
    assert "1 face(s) drawn by emotion_cnn@" in err


def test_annotate_reports_an_error_and_writes_nothing(
    service_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.jpg").write_bytes(NOT_AN_IMAGE)
    out = tmp_path / "annotated.jpg"
    args = ["annotate", str(tmp_path / "broken.jpg"), "--url", service_url, "--out", str(out)]
    status, _, err = run_cli(args, capsys)
    assert status == 1 and "415 unsupported_image_type" in err and not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "missing.jpg"],
        ["predict", "{folder}", "--out", "results.xlsx"],
        ["predict", "{empty}"],
        ["predict", "{folder}", "--concurrency", "0"],
        ["predict"],
        ["annotate"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_png(tmp_path / "folder" / "a.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "empty").mkdir()
    filled = [arg.format(folder=tmp_path / "folder", empty=tmp_path / "empty") for arg in args]
    with pytest.raises(SystemExit) as exit_info:
        main(filled)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


# --- fake answers --------------------------------------------------------------------------------

PREDICTION = {
    "box": {"x": 1, "y": 2, "width": 30, "height": 30},
    "emotion": "happy",
    "confidence": 0.9,
    "probabilities": {"happy": 0.9, "sadness": 0.1},
    "face_detection": "largest",
    "face_found": True,
    "faces": None,
    "model_id": "fake@1",
    "timing": {"decode_ms": 1.0, "inference_ms": 1.0, "total_ms": 2.0},
}


class FakeService:
    """Answers 503 (Retry-After: 0) ``busy`` times, then the prediction; records every request."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.busy:
            error = {"code": "overloaded", "message": "the queue is full"}
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"error": error})
        return httpx.Response(200, json=PREDICTION)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    return write_png(tmp_path / "face.png", np.zeros((8, 8), np.uint8))


def test_a_503_is_retried_after_retry_after_and_the_file_succeeds(
    image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeService(busy=2)
    status, out, _ = run_cli(["predict", str(image)], capsys, transport=httpx.MockTransport(fake))
    assert status == 0 and len(fake.requests) == 3
    assert next(csv.DictReader(io.StringIO(out)))["emotion"] == "happy"


def test_retries_stop_at_the_limit_and_the_file_fails_with_the_code(
    image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeService(busy=100)
    args = ["predict", str(image), "--retries", "2"]
    status, _, err = run_cli(args, capsys, transport=httpx.MockTransport(fake))
    assert status == 1 and len(fake.requests) == 3
    assert "503 overloaded: the queue is full" in err


def test_the_model_and_faces_options_and_the_key_go_with_every_request(
    image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeService(busy=0)
    common = ["--model", "emotion_cnn_neutral", "--api-key", "k"]
    predict = ["predict", str(image), "--faces", "all", *common]
    annotate = ["annotate", str(image), "--out", str(image.with_suffix(".jpg")), *common]
    for args in (predict, annotate):
        assert run_cli(args, capsys, transport=httpx.MockTransport(fake))[0] == 0
    for request in fake.requests:
        assert request.url.params["model"] == "emotion_cnn_neutral"
        assert request.headers["X-API-Key"] == "k"
        assert b'name="file"; filename="face.png"' in request.read()
    assert [request.url.path for request in fake.requests] == ["/predict", "/annotate"]
    assert fake.requests[0].url.params["faces"] == "all"


def test_an_unreachable_service_fails_every_file(image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    status, _, err = run_cli(["predict", str(image)], capsys, transport=httpx.MockTransport(refuse))
    assert status == 1 and "- connection_error: connection refused" in err


def test_model_picks_one_of_the_models_the_service_serves(
    service_url: str, photo_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against the real service (both shipped models): --model goes as ?model= and that model answers;
    an unknown name is each file's 404 unknown_model."""
    out = tmp_path / "results.jsonl"
    args = ["predict", str(photo_folder), "--url", service_url, "--out", str(out)]
    status, _, err = run_cli([*args, "--model", "emotion_cnn_neutral"], capsys)
    assert status == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(row["model_id"].startswith("emotion_cnn_neutral@") for row in rows)
    status, _, err = run_cli([*args, "--model", "nope"], capsys)
    assert status == 1 and "unknown_model" in err

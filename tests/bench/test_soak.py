"""The soak script's pure parts: the mix of inputs, the request order and the PASS/FAIL verdict."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from bench.soak import (
    Case,
    Outcome,
    Summary,
    build_cases,
    build_schedule,
    png_header_only,
    summarize,
)

EXPECTED_INVALID = {
    "text file named .jpg": (415, "unsupported_image_type"),
    "truncated JPEG (first half)": (400, "image_decode_failed"),
    "zero-byte file": (400, "empty_file"),
    "bomb: header declares 100000 x 100000": (413, "image_too_large"),
    "wrong field name (image)": (422, "missing_file"),
    "JSON body of the wrong shape": (422, "invalid_request"),
}


@pytest.fixture(scope="module")
def cases(ckplus_dir: Path, photos_dir: Path) -> list[Case]:
    return build_cases(ckplus_dir, photos_dir / "anger_01.jpg")


def test_the_invalid_cases_expect_their_matrix_status_and_code(cases: list[Case]) -> None:
    invalid = {case.name: (case.status, case.code) for case in cases if not case.valid}
    assert invalid == EXPECTED_INVALID


def test_the_valid_cases_are_decodable_images_sent_as_file(cases: list[Case]) -> None:
    valid = [case for case in cases if case.valid]
    assert len(valid) == 7 * 2 + 3  # each emotion as PNG and JPEG, the photo, 16-bit, RGBA
    modes = set()
    for case in valid:
        assert case.status == 200 and case.files is not None and list(case.files) == ["file"]
        image = Image.open(io.BytesIO(case.files["file"][1]))
        image.load()
        modes.add(image.mode)
    assert {"L", "RGB", "RGBA"} <= modes and any(mode.startswith("I;16") for mode in modes)


def test_the_bomb_declares_a_huge_image_in_a_few_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own bomb guard would refuse to open it
    data = png_header_only(100_000, 100_000)
    assert len(data) < 100
    assert Image.open(io.BytesIO(data)).size == (100_000, 100_000)


def toy_cases() -> list[Case]:
    return [
        Case("a", 200),
        Case("b", 200),
        Case("bad", 400, "empty_file"),
        Case("worse", 415, "expected_multipart"),
    ]


def test_the_schedule_has_the_exact_mix_in_a_seeded_order() -> None:
    cases = toy_cases()
    schedule = build_schedule(cases, 1000, 0.3, seed=1)
    assert len(schedule) == 1000
    assert Counter(schedule) == {0: 350, 1: 350, 2: 150, 3: 150}
    assert build_schedule(cases, 1000, 0.3, seed=1) == schedule
    assert build_schedule(cases, 1000, 0.3, seed=2) != schedule
    assert set(build_schedule(cases, 10, 0.0, seed=1)) == {0, 1}
    with pytest.raises(ValueError):
        build_schedule(cases, 10, 1.5, seed=1)


def outcomes_all_right() -> list[Outcome]:
    return [
        Outcome(0, 200, None, 10.0),
        Outcome(1, 200, None, 20.0),
        Outcome(2, 400, "empty_file", 1.0),
        Outcome(3, 415, "expected_multipart", 2.0),
    ]


def summary_of(outcomes: list[Outcome], rss_end: float = 102.0) -> Summary:
    return summarize(
        toy_cases(), outcomes, concurrency=2, duration_s=2.0, rss_start_mib=100.0, rss_end_mib=rss_end,
        rss_samples=[101.0, 107.0],
    )  # fmt: skip


def test_a_clean_run_passes_with_its_figures() -> None:
    summary = summary_of(outcomes_all_right())
    assert summary.passed, summary.failures
    assert (summary.requests, summary.requests_per_s) == (4, 2.0)
    assert (summary.valid, summary.valid_200, summary.valid_errors) == (2, 2, 0)
    assert (summary.invalid, summary.invalid_4xx, summary.invalid_expected, summary.invalid_mismatches) == (
        2, 2, 2, 0,
    )  # fmt: skip
    assert (summary.server_errors, summary.transport_errors) == (0, 0)
    assert summary.rss_growth_pct == pytest.approx(2.0)
    assert summary.rss_max_mib == 107.0
    assert [c.as_expected for c in summary.cases] == [1, 1, 1, 1]


def test_a_valid_request_not_answered_200_fails() -> None:
    outcomes = outcomes_all_right()
    outcomes[1] = Outcome(1, 503, "overloaded", 5.0)
    summary = summary_of(outcomes)
    assert not summary.passed
    assert (summary.valid_errors, summary.server_errors) == (1, 1)
    assert summary.cases[1].got == {"503 overloaded": 1}


def test_a_transport_error_or_a_malformed_prediction_is_a_valid_error() -> None:
    outcomes = outcomes_all_right()
    outcomes[0] = Outcome(0, None, None, 5.0, "ConnectError: refused")
    outcomes[1] = Outcome(1, 200, "malformed_prediction", 5.0)
    summary = summary_of(outcomes)
    assert (summary.valid_errors, summary.transport_errors, summary.server_errors) == (2, 1, 0)
    assert summary.cases[0].got == {"transport error (ConnectError: refused)": 1}
    assert not summary.passed


def test_an_invalid_request_with_the_wrong_code_is_a_mismatch_even_if_4xx() -> None:
    outcomes = outcomes_all_right()
    outcomes[2] = Outcome(2, 400, "image_decode_failed", 1.0)
    summary = summary_of(outcomes)
    assert (summary.invalid_4xx, summary.invalid_expected, summary.invalid_mismatches) == (2, 1, 1)
    assert not summary.passed


def test_a_5xx_for_an_invalid_request_fails() -> None:
    outcomes = outcomes_all_right()
    outcomes[3] = Outcome(3, 500, "internal_error", 1.0)
    summary = summary_of(outcomes)
    assert (summary.server_errors, summary.invalid_mismatches) == (1, 1)
    assert not summary.passed


def test_rss_growth_of_five_percent_or_more_fails() -> None:
    assert summary_of(outcomes_all_right(), rss_end=104.9).passed
    summary = summary_of(outcomes_all_right(), rss_end=105.0)
    assert not summary.passed
    assert summary.failures == ["RSS grew 5.0 % (limit 5 %)"]

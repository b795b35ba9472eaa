"""bench.replica_kill's counting and report, on outcomes made up here (the script itself is run by hand)."""

from __future__ import annotations

import httpx
import pytest

from bench.replica_kill import Outcome, lost_kind, prediction_error, render, summarize, upstream_errors

TAIL = ', client: 127.0.0.1, server: , request: "POST /predict HTTP/1.1", host: "127.0.0.1:4000"'
ERROR = "2026/12/02 11:00:10 [error] 51#51:"
ERROR_LOG = "\n".join(
    [
        f"{ERROR} *120 upstream prematurely closed connection while reading response header{TAIL}",
        f"{ERROR} *121 connect() failed (111: Connection refused) while connecting to upstream{TAIL}",
        f"{ERROR} *125 connect() failed (111: Connection refused) while connecting to upstream{TAIL}",
        f"2026/12/02 11:00:11 [warn] 51#51: *126 upstream server temporarily disabled while connecting{TAIL}",
        "2026/12/02 11:00:12 [notice] 50#50: signal process started",
    ]
)


def test_upstream_errors_are_counted_by_reason() -> None:
    assert upstream_errors(ERROR_LOG) == {
        "connect() failed (111: Connection refused)": 2,
        "upstream prematurely closed connection": 1,
    }
    assert upstream_errors("") == {}


def served(at: float, latency: float = 10.0) -> Outcome:
    return Outcome(at, latency, 200)


def test_summary_splits_at_the_kill_and_counts_every_loss() -> None:
    outcomes = [
        served(0.5, 8.0),
        served(1.0, 12.0),
        served(2.0, 30.0),
        Outcome(2.1, 5.0, None, "ReadError"),
        Outcome(2.2, 4.0, 502, "no error code"),
        Outcome(2.3, 3.0, 200, "no probabilities"),
        served(3.0, 2000.0),
    ]
    report = summarize(outcomes, kill_at_s=2.0, error_log=ERROR_LOG, settings={"clients": 4})
    assert (report.requests, report.served, report.lost) == (7, 4, 3)
    assert report.lost_by_kind == {
        "transport: ReadError": 1,
        "502 no error code": 1,
        "200 without a prediction: no probabilities": 1,
    }
    assert (report.before.requests, report.before.served, report.before.lost) == (2, 2, 0)
    assert (report.after.requests, report.after.served, report.after.lost) == (5, 2, 3)
    assert (report.before.p50_ms, report.before.max_ms) == (8.0, 12.0)
    assert report.after.max_ms == 2000.0 == report.after.p99_ms
    assert not report.passed
    text = render(report)
    assert "7 requests: 4 served, 3 lost (1 transport: ReadError, 1 502 no error code" in text
    assert "| kill and after | 5 | 2 | 3 |" in text
    assert "2 x connect() failed (111: Connection refused)" in text
    assert text.endswith("FAIL: requests were lost")


def test_no_loss_passes_and_no_requests_does_not() -> None:
    report = summarize([served(0.1), served(5.0)], kill_at_s=1.0, error_log="")
    assert report.passed and report.lost_by_kind == {}
    assert render(report).endswith("PASS: no request lost")
    assert (
        "nginx upstream errors (a replica failed a request; sent again where the config allows): none"
        in render(report)
    )
    assert not summarize([], kill_at_s=1.0, error_log="").passed


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"probabilities": {"happy": 1.0}}, None),
        (200, {"probabilities": {}}, "no probabilities"),
        (503, {"error": {"code": "overloaded"}}, "overloaded"),
        (502, "<html>bad gateway</html>", "not JSON"),
        (500, {"detail": "x"}, "no error code"),
    ],
)
def test_prediction_error(status: int, body: object, expected: str | None) -> None:
    response = (
        httpx.Response(status, json=body) if not isinstance(body, str) else httpx.Response(status, text=body)
    )
    assert prediction_error(response) == expected


def test_lost_kind_names_the_status_and_code() -> None:
    assert lost_kind(Outcome(0, 1, 503, "overloaded")) == "503 overloaded"
    assert lost_kind(Outcome(0, 1, None, "ConnectError")) == "transport: ConnectError"

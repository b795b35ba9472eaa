"""The load benchmark's Markdown: every measured row in the tables, ratios only where both servers ran."""

from __future__ import annotations

from typing import Any

from bench.load.report import Row, markdown, ratio_table, results_table


def row(server: str, concurrency: int, requests_per_s: float, faces: str = "off", images: int = 1) -> Row:
    return Row(
        model="emotion_cnn",
        faces=faces,
        server=server,
        concurrency=concurrency,
        requests=100,
        answered=100,
        requests_per_s=requests_per_s,
        p50_ms=4.0,
        p95_ms=12.5,
        p99_ms=20.0,
        errors=0,
        not_2xx=0,
        socket_errors=0,
        rss_mib=800.0,
        server_cpu_ms_per_request=2.5,
        server_cores_busy=1.2,
        client_cpu_us_per_request=110.0,
        client_cores_busy=0.05,
        mean_batch=3.5 if server == "ours" else None,
        load_average_before=0.1,
        settings={},
        images_per_request=images,
    )


def report(**extra: Any) -> dict[str, Any]:
    return {
        "command": "python -m bench.load --requests 100",
        "machine": {"date": "D", "cpus": 2, "cpu": "X", "python": "3.11", "commit": "c", "load_average": 0.1},
        "model": "models/emotion_cnn.h5",
        "image_name": "face.png",
        "image_bytes": 1801,
        "requests": 100,
        "warmup": 20,
        "load_average_after": 0.2,
        **extra,
    }


def test_results_table_has_one_line_per_row() -> None:
    table = results_table([row("ours", 1, 100.0), row("naive", 1, 10.0)]).splitlines()
    assert len(table) == 4
    assert table[2].startswith("| ours | 1 | 100 | 100 | 4.00 | 12.5 | 20.0 | 0 | 800 |")
    assert table[3].endswith("|  |")  # no batcher in the naive service


def test_ratio_is_ours_over_naive_at_common_levels_only() -> None:
    table = ratio_table([row("ours", 1, 100.0), row("naive", 1, 10.0), row("ours", 8, 500.0)])
    assert table.splitlines()[0] == "| concurrency | 1 |"
    assert table.splitlines()[2] == "| ours/naive req/s | 10.0x |"
    assert ratio_table([row("ours", 1, 100.0)]) == ""


def test_markdown_holds_conditions_ceiling_and_each_face_mode() -> None:
    rows = [row("ours", 8, 500.0), row("naive", 8, 20.0), row("ours", 8, 80.0, faces="default")]
    text = markdown(report(ceiling={"batch32_images_per_s": 1000.0, "median_ms": 1.5}), rows)
    assert "`python -m bench.load --requests 100`" in text
    assert "batch 32: **1,000 images/s**" in text
    assert "| ours/naive req/s | 25.0x |" in text
    assert "**`?faces=off`" in text and "**default face detection" in text
    assert "(concurrency 8, 500 predictions/s) is 50% of the raw batch-32 model throughput" in text
    assert "wrk) itself used at most 0.05 cores" in text


def test_markdown_without_ceiling_says_nothing_about_it() -> None:
    text = markdown(report(), [row("ours", 1, 100.0)])
    assert "Ceiling" not in text and "batch-32" not in text


def test_batches_add_a_predictions_column_and_are_compared_by_predictions() -> None:
    rows = [row("ours", 8, 62.5, images=16), row("ours", 16, 65.0, images=16)]
    table = results_table(rows).splitlines()
    assert table[0].startswith("| server | concurrency | requests | req/s | predictions/s | p50 ms |")
    assert table[1].count("|") == table[0].count("|")
    assert table[2].startswith("| ours | 8 | 100 | 62 | 1,000 | 4.00 |")
    text = markdown(
        report(images_per_request=16, ceiling={"batch32_images_per_s": 2000.0, "median_ms": 1.0}), rows
    )
    assert "each request is a `/predict/batch` of 16 copies of it" in text
    assert "(concurrency 16, 1,040 predictions/s) is 52% of the raw batch-32 model throughput" in text


def test_single_image_tables_have_no_predictions_column() -> None:
    assert "predictions/s" not in results_table([row("ours", 1, 100.0)])

"""``emotion-client predict PATH...``: every image under PATHs through ``POST /predict``, a row per face.

Files go ``--concurrency`` at a time; rows are written in file order as soon as the files before them
are done, so an interrupted run keeps what it had. Exit status 1 when any file failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO

import httpx
from tqdm import tqdm

from client.files import find_images
from client.results import FORMATS, Outcome, RowWriter, Summary, face_rows, output_format
from client.service import (
    ServiceOptions,
    UsageError,
    add_service_arguments,
    error_of,
    open_client,
    service_options,
    upload,
)

ENDPOINT = "/predict"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify images and folders of images",
        description="Classify every image named or found (recursively, hidden files skipped) in a folder.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files and folders")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"write the rows to this file ({' or '.join(FORMATS)}); default: CSV on standard output",
    )
    parser.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests at once (4)")
    add_service_arguments(parser)
    parser.set_defaults(run=run, command_parser=parser)


def run(args: argparse.Namespace, *, transport: httpx.AsyncBaseTransport | None = None) -> int:
    options = service_options(args)
    if args.concurrency < 1:
        raise UsageError("--concurrency must be 1 or more")
    try:
        fmt = output_format(args.out) if args.out else ".csv"
        images = find_images(args.paths)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from exc
    if not images:
        raise UsageError(f"no images found in {', '.join(map(str, args.paths))}")
    with ExitStack() as stack:
        stream: TextIO = (
            stack.enter_context(args.out.open("w", encoding="utf-8", newline="")) if args.out else sys.stdout
        )
        writer = RowWriter(stream, fmt)
        summary = asyncio.run(classify_all(images, options, writer, args.concurrency, transport))
    print(summary.report(), file=sys.stderr)
    return 1 if summary.failed else 0


async def classify_all(
    images: list[Path],
    options: ServiceOptions,
    writer: RowWriter,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Summary:
    summary = Summary()
    done: dict[int, Outcome] = {}
    next_to_write = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(images)):
        queue.put_nowait(index)

    def flush() -> None:
        """Write the rows of every finished file not preceded by an unfinished one."""
        nonlocal next_to_write
        while next_to_write in done:
            outcome = done.pop(next_to_write)
            rows = face_rows(outcome) if outcome.ok else []
            for row in rows:
                writer.write(row)
            summary.add(outcome, rows)
            next_to_write += 1

    async def worker(client: httpx.AsyncClient, progress: tqdm[Any]) -> None:
        while not queue.empty():
            index = queue.get_nowait()
            done[index] = await classify_one(client, images[index], options)
            flush()
            progress.update()

    with tqdm(total=len(images), unit="file", desc="predict", file=sys.stderr, disable=None) as progress:
        async with open_client(options, transport) as client:
            workers = min(concurrency, len(images))
            await asyncio.gather(*(worker(client, progress) for _ in range(workers)))
    return summary


async def classify_one(client: httpx.AsyncClient, path: Path, options: ServiceOptions) -> Outcome:
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        return Outcome(path, code="unreadable_file", message=exc.strerror or str(exc))
    try:
        response = await upload(client, ENDPOINT, path, data, options)
    except httpx.TimeoutException:
        return Outcome(path, code="timeout", message=f"no answer within {options.timeout_s:g} s")
    except httpx.TransportError as exc:
        return Outcome(path, code="connection_error", message=str(exc) or type(exc).__name__)
    if response.status_code != httpx.codes.OK:
        code, message = error_of(response)
        return Outcome(path, status=response.status_code, code=code, message=message)
    return Outcome(path, body=response.json())

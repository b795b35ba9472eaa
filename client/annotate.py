"""``emotion-client annotate IMAGE --out annotated.jpg``: the image with its faces drawn, by /annotate."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx

from client.service import (
    ServiceOptions,
    add_service_arguments,
    error_of,
    open_client,
    service_options,
    upload,
)

ENDPOINT = "/annotate"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "annotate",
        help="get an image back with a box and label over each face",
        description="Send one image to POST /annotate and save the JPEG it answers.",
    )
    parser.add_argument("image", type=Path, metavar="IMAGE")
    parser.add_argument(
        "--out", type=Path, help="where to write the JPEG (default: IMAGE's name + '.annotated.jpg', here)"
    )
    add_service_arguments(parser)
    parser.set_defaults(run=run, command_parser=parser)


def run(args: argparse.Namespace, *, transport: httpx.AsyncBaseTransport | None = None) -> int:
    options = service_options(args)
    out: Path = args.out or Path(f"{args.image.stem}.annotated.jpg")
    try:
        data = args.image.read_bytes()
    except OSError as exc:
        print(f"{args.image}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        response = asyncio.run(_annotate(args.image, data, options, transport))
    except httpx.TransportError as exc:
        print(f"{args.image}: the service at {options.url} did not answer ({exc})", file=sys.stderr)
        return 1
    if response.status_code != httpx.codes.OK:
        code, message = error_of(response)
        print(f"{args.image}: {response.status_code} {code}: {message}", file=sys.stderr)
        return 1
    out.write_bytes(response.content)
    faces = response.headers.get("X-Face-Count", "?")
    model = response.headers.get("X-Model-Id", "?")
    print(f"{out}: {faces} face(s) drawn by {model}", file=sys.stderr)
    return 0


async def _annotate(
    image: Path, data: bytes, options: ServiceOptions, transport: httpx.AsyncBaseTransport | None
) -> httpx.Response:
    async with open_client(options, transport) as client:
        return await upload(client, ENDPOINT, image, data, options)

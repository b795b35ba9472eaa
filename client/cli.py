"""The ``emotion-client`` command: one subcommand per module of COMMANDS.

A subcommand module has ``register(subparsers)``, which adds its parser and sets ``run``: a function of
the parsed arguments (and an optional httpx transport, for tests) returning the exit status. A new
subcommand (e.g. ``video``) is a new module added to COMMANDS.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import httpx

from client import annotate, predict, video
from client.service import UsageError

COMMANDS = (predict, annotate, video)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emotion-client",
        description="Send images to the facial emotion recognition service.",
    )
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> int:
    """Exit status: 0 all done, 1 some file failed, 2 a usage error (argparse's)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args, transport=transport)
    except UsageError as exc:
        args.command_parser.error(str(exc))  # exits 2, with the subcommand's usage
    return status

"""Graceful shutdown, per process: a termination signal turns /ready 503 at once.

uvicorn handles SIGTERM and SIGINT itself: it stops accepting connections, closes idle keep-alive
connections, gives the requests in flight ``timeout_graceful_shutdown`` seconds to finish, cancels the
rest and only then runs the lifespan's shutdown. Until then nothing in the app would know: /ready would
still say 200. :func:`on_termination`, entered by the lifespan, chains a handler in front of the
server's own: it calls ``callback`` (which only flips a flag; no I/O inside a signal handler), has the
event loop log the signal, and then calls the server's handler, so the shutdown goes on as before.

Signal handlers belong to a process's main thread, where uvicorn runs its event loop, in a single
process and in each of its worker processes alike. Where the lifespan runs in another thread (the
test client), no handler is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _pass_on(previous: Any, sig: int, frame: FrameType | None) -> None:
    """What would have happened without our handler."""
    if callable(previous):
        previous(sig, frame)
    elif previous == signal.SIG_DFL:  # no server handler: restore the default and deliver it again
        signal.signal(sig, signal.SIG_DFL)
        signal.raise_signal(sig)


@contextlib.contextmanager
def on_termination(callback: Callable[[], None]) -> Iterator[None]:
    """While inside: SIGTERM / SIGINT call ``callback`` first, then the handler that was there before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(sig: int, frame: FrameType | None) -> None:
        callback()
        loop.call_soon_threadsafe(
            log.warning, "%s: not ready any more; finishing the requests in flight", signal.Signals(sig).name
        )
        _pass_on(previous[sig], sig, frame)

    for sig in TERMINATION_SIGNALS:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, before in previous.items():
            if signal.getsignal(sig) is handler:  # not replaced meanwhile by someone else
                signal.signal(sig, before)

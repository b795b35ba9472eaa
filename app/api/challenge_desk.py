"""What the challenge routes and /stream share: the open challenges, the token secret, the spent tokens.

One per app (``app.state.challenges``). The challenges and the spent tokens live in this process's memory:
with several workers or replicas a challenge must be taken on the process that made it (sticky sessions),
and ``EMOTION_CHALLENGE_SECRET`` must be the same everywhere for a token to verify anywhere.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastapi import Request
from starlette.requests import HTTPConnection

from app.core.challenge import ChallengeBook, ChallengeRules
from app.core.challenge_tokens import TokenLedger
from app.core.config import Settings
from app.core.errors import ChallengesUnavailableError

log = logging.getLogger(__name__)


@dataclass
class ChallengeDesk:
    settings: Settings
    secret: bytes = field(init=False)
    ledger: TokenLedger = field(init=False)
    _book: ChallengeBook | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        configured = self.settings.challenge_secret
        if configured is None:
            self.secret = secrets.token_bytes(32)
            log.warning(
                "EMOTION_CHALLENGE_SECRET is not set: challenge tokens are signed with a random secret of "
                "this process; they fail after a restart and on other workers or replicas"
            )
        else:
            self.secret = configured.get_secret_value().encode()
        self.ledger = TokenLedger(max_entries=4 * self.settings.challenge_max_open)

    def book(self, labels: Sequence[str]) -> ChallengeBook:
        """The open challenges; built on first use, from the pool's expressions the model has."""
        if self._book is None:
            settings = self.settings
            pool = tuple(dict.fromkeys(label for label in settings.challenge_pool if label in labels))
            try:
                rules = ChallengeRules(
                    pool=pool,
                    min_steps=settings.challenge_min_steps,
                    max_steps=max(settings.challenge_min_steps, settings.challenge_max_steps),
                    hold_frames=settings.challenge_hold_frames,
                    threshold=settings.challenge_threshold,
                    ttl_s=settings.challenge_ttl_s,
                    max_open=settings.challenge_max_open,
                )
            except ValueError as exc:
                raise ChallengesUnavailableError(
                    f"no challenge can be drawn: {exc} (EMOTION_CHALLENGE_POOL against the model's labels "
                    f"{list(labels)})"
                ) from None
            self._book = ChallengeBook(rules)
        return self._book


def get_desk(connection: HTTPConnection) -> ChallengeDesk:
    desk: ChallengeDesk = connection.app.state.challenges
    return desk


def desk_of(request: Request) -> ChallengeDesk:
    return get_desk(request)

"""The expression challenge: a liveness check in which one tracked face shows expressions in a given order.

``ChallengeBook`` hands out challenges (2-4 distinct expressions drawn at random from a pool), keeps a
bounded number open, each for a short time, and lets each be claimed once. ``ChallengeAttempt`` judges
the frames of one claimed challenge: it passes when one face (one track, see ``app.core.tracking``)
shows every step in order, each above ``threshold`` for ``hold_frames`` processed frames in a row,
before the challenge expires. It fails at once when another face takes the place of the first, when a
later step is held before the current one (wrong order) or when it expires.

What a pass proves: a face in front of the camera changed its expression on demand, in an order it
could not know in advance, within seconds. What it does not prove: who the person is; the service
recognises no identity. Tokens: ``app.core.challenge_tokens``.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.core.errors import ChallengeError, ChallengeLimitError
from app.core.tracking import TrackedFace


@dataclass(frozen=True)
class ChallengeRules:
    pool: tuple[str, ...]  # the expressions steps are drawn from (labels of the model)
    min_steps: int = 2
    max_steps: int = 3
    hold_frames: int = 3
    threshold: float = 0.5
    ttl_s: float = 30.0
    max_open: int = 1000

    def __post_init__(self) -> None:
        if len(set(self.pool)) != len(self.pool):
            raise ValueError("the challenge pool holds an expression twice")
        if not 2 <= self.min_steps <= self.max_steps <= 4:
            raise ValueError("steps: 2 <= min_steps <= max_steps <= 4")
        if len(self.pool) < self.min_steps:
            raise ValueError(f"the pool {list(self.pool)} has fewer than {self.min_steps} expressions")


@dataclass(frozen=True)
class Challenge:
    id: str
    steps: tuple[str, ...]
    expires_at: float  # seconds since the epoch


class ChallengeBook:
    """The open challenges of this process (a challenge is neither shared across workers nor kept)."""

    def __init__(self, rules: ChallengeRules, *, rng: secrets.SystemRandom | None = None) -> None:
        self.rules = rules
        self._rng = rng or secrets.SystemRandom()
        self._open: OrderedDict[str, Challenge] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._open)

    def _prune(self, now: float) -> None:
        for key in [key for key, challenge in self._open.items() if challenge.expires_at <= now]:
            del self._open[key]

    def create(self, now: float) -> Challenge:
        self._prune(now)
        rules = self.rules
        if len(self._open) >= rules.max_open:
            raise ChallengeLimitError(
                f"{rules.max_open} challenges are open, the limit; retry shortly",
                headers={"Retry-After": str(max(1, int(rules.ttl_s)))},
            )
        count = min(self._rng.randint(rules.min_steps, rules.max_steps), len(rules.pool))
        steps = tuple(self._rng.sample(list(rules.pool), count))
        challenge = Challenge(secrets.token_urlsafe(16), steps, now + rules.ttl_s)
        self._open[challenge.id] = challenge
        return challenge

    def claim(self, challenge_id: str, now: float) -> Challenge:
        """The open challenge ``challenge_id``, removed: a challenge can be attempted once."""
        self._prune(now)
        challenge = self._open.pop(challenge_id, None)
        if challenge is None:
            raise ChallengeError("no such open challenge: unknown, already used or expired")
        return challenge


Status = Literal["pending", "passed", "failed"]


@dataclass
class ChallengeAttempt:
    """The progress of one claimed challenge over the frames of one stream."""

    challenge: Challenge
    labels: Sequence[str]  # the model's, in its output order
    hold_frames: int
    threshold: float
    status: Status = "pending"
    reason: str | None = None
    step: int = 0  # index of the step being shown
    held: int = 0  # frames in a row the current step has been above the threshold
    track_id: int | None = None  # the face taking the challenge (the first one seen)
    _ahead: dict[int, int] = field(default_factory=dict)  # later step -> frames in a row held

    def __post_init__(self) -> None:
        missing = [step for step in self.challenge.steps if step not in self.labels]
        if missing:
            raise ChallengeError(f"the model has no label {missing}")
        self._index = {label: i for i, label in enumerate(self.labels)}

    def _fail(self, reason: str) -> Status:
        self.status, self.reason = "failed", reason
        return self.status

    def observe(self, faces: Sequence[TrackedFace], now: float) -> Status:
        """Judge one processed frame (its faces, as tracked); returns the status after it."""
        if self.status != "pending":
            return self.status
        if now >= self.challenge.expires_at:
            return self._fail("expired")
        tracked = [face for face in faces if face.track_id != 0]
        if self.track_id is None and tracked:
            self.track_id = tracked[0].track_id  # the largest face
        subject = next((face for face in tracked if face.track_id == self.track_id), None)
        if subject is None:
            if tracked:
                return self._fail("face_changed")  # another face took the place of the first
            self.held, self._ahead = 0, {}  # no face in this frame: a hold must start again
            return self.status
        probabilities = subject.detection.probabilities
        steps = self.challenge.steps

        def shown(label: str) -> bool:
            return bool(probabilities[self._index[label]] >= self.threshold)

        for later in range(self.step + 1, len(steps)):
            self._ahead[later] = self._ahead.get(later, 0) + 1 if shown(steps[later]) else 0
            if self._ahead[later] >= self.hold_frames:
                return self._fail("wrong_order")
        self.held = self.held + 1 if shown(steps[self.step]) else 0
        if self.held >= self.hold_frames:
            self.step, self.held, self._ahead = self.step + 1, 0, {}
            if self.step == len(steps):
                self.status = "passed"
        return self.status

"""The expression challenge: rules, book, judge and signed tokens (no model: probabilities made here)."""

from __future__ import annotations

import random
import time

import jwt
import numpy as np
import pytest

from app.core import challenge_tokens
from app.core.challenge import Challenge, ChallengeAttempt, ChallengeBook, ChallengeRules
from app.core.errors import ChallengeError, ChallengeLimitError
from app.core.faces import Box
from app.core.tracking import Detection, TrackedFace

LABELS = ["anger", "happy", "neutral", "surprise"]
SECRET = b"s" * 32


def face(label: str | None, track_id: int = 1, p: float = 0.9) -> TrackedFace:
    probabilities = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1))
    if label is not None:
        probabilities[LABELS.index(label)] = p
    else:
        probabilities[:] = 1 / len(LABELS)
    return TrackedFace(track_id, Detection(Box(0, 0, 10, 10), probabilities), probabilities)


def attempt(steps: tuple[str, ...] = ("happy", "surprise", "neutral"), hold: int = 3) -> ChallengeAttempt:
    return ChallengeAttempt(Challenge("c1", steps, expires_at=100.0), LABELS, hold, 0.5)


def run(judge: ChallengeAttempt, frames: list[list[TrackedFace]], start: float = 0.0) -> str:
    status = judge.status
    for i, faces in enumerate(frames):
        status = judge.observe(faces, start + i * 0.1)
    return status


def test_the_rules_are_checked() -> None:
    with pytest.raises(ValueError):
        ChallengeRules(pool=("happy",))
    with pytest.raises(ValueError):
        ChallengeRules(pool=("happy", "happy", "sad"))
    with pytest.raises(ValueError):
        ChallengeRules(pool=("a", "b", "c", "d", "e"), min_steps=2, max_steps=5)


def test_challenges_are_distinct_random_steps_single_use_and_expire() -> None:
    book = ChallengeBook(ChallengeRules(pool=tuple(LABELS), min_steps=2, max_steps=4, ttl_s=10))
    drawn = [book.create(now=0.0) for _ in range(50)]
    assert {len(c.steps) for c in drawn} <= {2, 3, 4}
    assert all(len(set(c.steps)) == len(c.steps) and set(c.steps) <= set(LABELS) for c in drawn)
    assert len({c.steps for c in drawn}) > 5 and len({c.id for c in drawn}) == 50
    assert book.claim(drawn[0].id, now=1.0) == drawn[0]
    with pytest.raises(ChallengeError):
        book.claim(drawn[0].id, now=1.0)  # re-use
    with pytest.raises(ChallengeError):
        book.claim(drawn[1].id, now=10.0)  # expired
    assert len(book) == 0  # expired ones are forgotten
    with pytest.raises(ChallengeError):
        book.claim("nope", now=0.0)


def test_the_number_open_is_bounded() -> None:
    book = ChallengeBook(ChallengeRules(pool=tuple(LABELS), max_open=3, ttl_s=5))
    for _ in range(3):
        book.create(now=0.0)
    with pytest.raises(ChallengeLimitError):
        book.create(now=1.0)
    book.create(now=5.0)  # the first three expired


def test_a_genuine_sequence_passes() -> None:
    judge = attempt()
    frames = [[face(None)]] * 2 + [[face("happy")]] * 3 + [[face("anger")]] * 2
    frames += [[face("surprise")]] * 3 + [[face("neutral")]] * 3
    assert run(judge, frames) == "passed"
    assert judge.step == 3 and judge.reason is None


def test_a_step_must_be_held_for_consecutive_frames() -> None:
    judge = attempt(("happy", "surprise"))
    frames = [[face("happy")], [face("happy")], [face("anger")], [face("happy")], [face("happy")]]
    assert run(judge, frames) == "pending" and judge.step == 0
    assert run(judge, [[face("happy")]]) == "pending" and judge.step == 1


def test_low_probability_does_not_count() -> None:
    judge = attempt(("happy", "surprise"))
    assert run(judge, [[face("happy", p=0.45)]] * 10) == "pending"


def test_a_static_photo_fails() -> None:
    judge = attempt(("happy", "surprise"))
    assert run(judge, [[face("happy")]] * 50) == "pending"  # one expression only: never passes
    assert judge.observe([face("happy")], now=100.0) == "failed" and judge.reason == "expired"


def test_wrong_order_fails() -> None:
    judge = attempt(("happy", "surprise", "neutral"))
    assert run(judge, [[face("surprise")]] * 3) == "failed" and judge.reason == "wrong_order"
    judge = attempt(("happy", "surprise", "neutral"))
    assert run(judge, [[face("happy")]] * 3 + [[face("neutral")]] * 3) == "failed"


def test_a_face_that_changes_fails() -> None:
    judge = attempt(("happy", "surprise"))
    frames = [[face("happy", track_id=1)]] * 3 + [[face("surprise", track_id=2)]] * 3
    assert run(judge, frames) == "failed" and judge.reason == "face_changed"


def test_a_second_face_beside_the_first_is_ignored() -> None:
    judge = attempt(("happy", "surprise"))
    frames = [[face("happy", 1), face("anger", 2)]] * 3 + [[face("surprise", 1), face("surprise", 2)]] * 3
    assert run(judge, frames) == "passed"


def test_expiry_fails_even_mid_way() -> None:
    judge = attempt(("happy", "surprise"))
    run(judge, [[face("happy")]] * 3)
    assert judge.observe([face("surprise")], now=100.0) == "failed" and judge.reason == "expired"
    assert judge.observe([face("surprise")], now=1.0) == "failed"  # final


def test_unknown_step_labels_are_refused() -> None:
    with pytest.raises(ChallengeError):
        ChallengeAttempt(Challenge("c", ("joy", "happy"), 1.0), LABELS, 3, 0.5)


# --- tokens -----------------------------------------------------------------------------------------


def test_a_token_round_trips_once() -> None:
    token = challenge_tokens.sign(SECRET, "c1", ("happy", "surprise"), now=1000.0, ttl_s=60)
    proof = challenge_tokens.read(SECRET, token, now=1000.0 + 1)
    assert proof.challenge_id == "c1" and proof.steps == ("happy", "surprise")
    ledger = challenge_tokens.TokenLedger(max_entries=10)
    ledger.spend(proof, now=1001.0)
    with pytest.raises(challenge_tokens.TokenError) as caught:
        ledger.spend(proof, now=1002.0)
    assert caught.value.reason == "already_used"


def tampered(token: str) -> list[str]:
    header, payload, signature = token.split(".")
    rng = random.Random(0)
    flipped_sig = signature[:-3] + ("A" if signature[-3] != "A" else "B") + signature[-2:]
    forged = jwt.encode(
        {**jwt.decode(token, options={"verify_signature": False}), "steps": ["happy"]},
        b"another secret of 32 bytes......",
        algorithm="HS256",
    )
    unsigned = jwt.encode(jwt.decode(token, options={"verify_signature": False}), None, algorithm="none")
    chars = list(payload)
    position = rng.randrange(len(chars))
    chars[position] = "x" if chars[position] != "x" else "y"
    return [
        f"{header}.{''.join(chars)}.{signature}",
        f"{header}.{payload}.{flipped_sig}",
        forged,
        unsigned,
        "x.y",
    ]


def test_tampering_is_detected() -> None:
    token = challenge_tokens.sign(SECRET, "c1", ("happy", "surprise"), now=time.time(), ttl_s=60)
    for bad in tampered(token):
        with pytest.raises(challenge_tokens.TokenError) as caught:
            challenge_tokens.read(SECRET, bad, now=time.time())
        assert caught.value.reason in ("invalid_signature", "invalid_token")


def test_an_expired_token_is_refused() -> None:
    token = challenge_tokens.sign(SECRET, "c1", ("happy", "surprise"), now=time.time() - 100, ttl_s=10)
    with pytest.raises(challenge_tokens.TokenError) as caught:
        challenge_tokens.read(SECRET, token, now=time.time())
    assert caught.value.reason == "expired"

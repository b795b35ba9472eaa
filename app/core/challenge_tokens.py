"""Signed proofs of a passed expression challenge: JSON Web Tokens (HS256, PyJWT) with a server secret.

A relying service posts the token back to ``POST /challenges/verify`` (it needs no secret of its own);
the token names the challenge (``jti``), its steps and when it was passed, and expires after a short
time. Verification checks the signature, the issuer, the audience and the expiry, and then that this
challenge's token has not been verified before (``TokenLedger``): a token is good once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import jwt

ISSUER = "emotion-service"
AUDIENCE = "expression-challenge"
ALGORITHM = "HS256"


@dataclass(frozen=True)
class ChallengeProof:
    challenge_id: str
    steps: tuple[str, ...]
    issued_at: int
    expires_at: int


class TokenError(Exception):
    """Why a token is refused: ``reason`` is a stable word (invalid_signature, expired, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def sign(secret: bytes, challenge_id: str, steps: tuple[str, ...], now: float, ttl_s: float) -> str:
    issued = int(now)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": challenge_id,
        "steps": list(steps),
        "iat": issued,
        "exp": issued + max(1, round(ttl_s)),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read(secret: bytes, token: str, now: float) -> ChallengeProof:
    """The proof in ``token``, or :class:`TokenError` (tampered, other secret, expired, malformed)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # never "none", never another algorithm the token names
            audience=AUDIENCE,
            issuer=ISSUER,
            # The expiry is checked below against ``now`` (the caller's clock).
            options={
                "require": ["exp", "iat", "jti", "iss", "aud"],
                "verify_iat": False,
                "verify_exp": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise TokenError("invalid_signature", "the token's signature does not match") from None
    except jwt.PyJWTError as exc:
        raise TokenError("invalid_token", f"the token is not valid: {exc}") from None
    if not isinstance(claims["exp"], int) or claims["exp"] <= now:
        raise TokenError("expired", "the token has expired")
    steps = claims.get("steps")
    if not isinstance(steps, list) or not all(isinstance(step, str) for step in steps):
        raise TokenError("invalid_token", "the token has no steps")
    return ChallengeProof(str(claims["jti"]), tuple(steps), int(claims["iat"]), int(claims["exp"]))


class TokenLedger:
    """The challenges whose token was verified, until their token expires (bounded: oldest forgotten
    first, so at most ``max_entries``; a forgotten one has usually expired long before)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, int] = OrderedDict()

    def spend(self, proof: ChallengeProof, now: float) -> None:
        for key in [key for key, exp in self._seen.items() if exp <= now]:
            del self._seen[key]
        if proof.challenge_id in self._seen:
            raise TokenError("already_used", "this challenge's token was verified before")
        self._seen[proof.challenge_id] = proof.expires_at
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

"""POST /challenges (draw an expression challenge) and POST /challenges/verify (check its token).

The challenge is taken over ``/stream?challenge=ID`` (``app/api/routes/stream.py``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request

from app.api.challenge_desk import desk_of
from app.api.deps import Service, api_key_dependencies, rate_limit_statuses
from app.api.openapi import error_responses
from app.api.stream_schemas import ChallengeResponse, VerifyRequest, VerifyResponse
from app.core import challenge_tokens
from app.core.config import Settings


async def create_challenge(request: Request, service: Service) -> ChallengeResponse:
    classifier = service.require_classifier()
    book = desk_of(request).book(classifier.labels)
    challenge = book.create(time.time())
    return ChallengeResponse(
        id=challenge.id,
        steps=list(challenge.steps),
        expires_at=datetime.fromtimestamp(challenge.expires_at, UTC),
        hold_frames=book.rules.hold_frames,
        threshold=book.rules.threshold,
    )


async def verify_challenge(request: Request, body: VerifyRequest) -> VerifyResponse:
    """Valid once: a second verification of the same token answers ``already_used``."""
    desk = desk_of(request)
    now = time.time()
    try:
        proof = challenge_tokens.read(desk.secret, body.token, now)
        desk.ledger.spend(proof, now)
    except challenge_tokens.TokenError as exc:
        return VerifyResponse(valid=False, reason=exc.reason)
    return VerifyResponse(
        valid=True,
        challenge_id=proof.challenge_id,
        steps=list(proof.steps),
        passed_at=datetime.fromtimestamp(proof.issued_at, UTC),
    )


def add_routes(router: APIRouter, settings: Settings) -> None:
    common = {
        "methods": ["POST"],
        "tags": ["challenge"],
        "dependencies": api_key_dependencies(settings),
    }
    router.add_api_route(
        "/challenges",
        create_challenge,
        summary="Draw an expression challenge (a liveness check: take it over /stream?challenge=ID)",
        responses=error_responses(401, 503, *rate_limit_statuses(settings)),
        **common,
    )
    router.add_api_route(
        "/challenges/verify",
        verify_challenge,
        summary="Check a passed challenge's token (valid once)",
        responses=error_responses(400, 401, 422, *rate_limit_statuses(settings)),  # 400: not JSON
        **common,
    )

"""Pydantic models of /stream's messages and of the expression challenge's requests and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import ErrorDetail, FaceBox
from app.core.faces import FaceMode


class StreamConfig(BaseModel):
    """The optional first (text) message of a /stream connection."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    faces: FaceMode = Field("all", description="`all` faces (default), the `largest`, or `off`")
    model: str | None = Field(None, description="A served model's name (GET /models); default: the default")
    half_life: float = Field(
        3.0, ge=0, le=1000, description="Smoothing half-life in processed frames (0: no smoothing)"
    )


class StreamReady(BaseModel):
    """Sent once the configuration is taken (after the config message, or at the first frame)."""

    type: Literal["ready"] = "ready"
    model_id: str
    labels: list[str]
    faces: FaceMode
    half_life: float
    max_frame_bytes: int
    max_fps: float


class StreamFace(BaseModel):
    track_id: int = Field(description="Stable while the face stays in view; 0: the whole frame (no face)")
    box: FaceBox | None
    face_confidence: float | None = Field(None, description="The face detector's, when it gives one")
    emotion: str = Field(description="The most probable emotion after smoothing")
    probabilities: dict[str, float] = Field(description="This frame's probabilities")
    smoothed: dict[str, float] = Field(description="Exponentially smoothed over the track's frames")


class ChallengeProgress(BaseModel):
    id: str
    status: Literal["pending", "passed", "failed"]
    steps: list[str]
    step: int = Field(description="Index of the step being shown (len(steps) once passed)")
    held: int = Field(description="Frames in a row the current step has been held")
    reason: str | None = Field(None, description="Why it failed: face_changed, wrong_order, expired")
    token: str | None = Field(None, description="The signed proof, in the message where it passes")


class StreamFrameResult(BaseModel):
    type: Literal["frame"] = "frame"
    frame: int = Field(description="Index of the frame among all the frames received (0 first)")
    dropped: int = Field(description="Frames dropped so far on this connection (newest frame wins)")
    faces: list[StreamFace]
    face_found: bool
    model_id: str
    processing_ms: float
    challenge: ChallengeProgress | None = None


class StreamError(BaseModel):
    type: Literal["error"] = "error"
    frame: int | None = Field(description="The frame it concerns, if any")
    dropped: int
    error: ErrorDetail


class ChallengeResponse(BaseModel):
    id: str = Field(description="Pass it as /stream?challenge=ID")
    steps: list[str] = Field(description="The expressions to show, in this order")
    expires_at: datetime = Field(description="UTC; the challenge must be passed before")
    hold_frames: int = Field(description="Processed frames in a row each step must be held")
    threshold: float = Field(description="Probability each step must reach in those frames")


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=4096)


class VerifyResponse(BaseModel):
    valid: bool
    reason: str | None = Field(
        None, description="When not valid: invalid_signature, invalid_token, expired or already_used"
    )
    challenge_id: str | None = None
    steps: list[str] | None = None
    passed_at: datetime | None = None

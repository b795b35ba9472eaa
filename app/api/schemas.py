"""Pydantic models of every response and of the JSON request bodies (multipart ones are described in the
routes).

The core answers with plain dataclasses; ``from_*`` constructors shape them into these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.faces import Box, FaceMode
from app.core.pipeline import Classification, FaceResult

EXAMPLE_PROBABILITIES = {
    "anger": 0.004,
    "contempt": 0.002,
    "disgust": 0.003,
    "fear": 0.006,
    "happy": 0.975,
    "sadness": 0.004,
    "surprise": 0.006,
}


# A 1x1 gray PNG: a request made from the docs' example gets a real answer.
EXAMPLE_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg=="
)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code", examples=["unsupported_image_type"])
    message: str = Field(
        description="What went wrong, for people", examples=["the file is not a supported image"]
    )
    request_id: str | None = Field(None, description="The X-Request-ID of the request, for support")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class FaceBox(BaseModel):
    x: int = Field(ge=0, description="Left edge, pixels")
    y: int = Field(ge=0, description="Top edge, pixels")
    width: int = Field(ge=1)
    height: int = Field(ge=1)

    @classmethod
    def of(cls, box: Box | None) -> FaceBox | None:
        """The core's box as the response shows it (None: the whole image was classified)."""
        return None if box is None else cls(x=box.x, y=box.y, width=box.width, height=box.height)


class Point(BaseModel):
    x: float
    y: float

    @classmethod
    def of(cls, point: tuple[float, float]) -> Point:
        return cls(x=round(point[0], 1), y=round(point[1], 1))


class Eyes(BaseModel):
    right: Point = Field(description="The subject's right eye (on the image's left)")
    left: Point = Field(description="The subject's left eye")


class FacePrediction(BaseModel):
    box: FaceBox | None = Field(description="The region classified, in image pixels; null: the whole image")
    emotion: str = Field(description="The most probable emotion", examples=["happy"])
    confidence: float = Field(ge=0, le=1, description="Its probability", examples=[0.975])
    probabilities: dict[str, float] = Field(
        description="Softmax probability of each emotion, in the model's label order; they sum to 1",
        examples=[EXAMPLE_PROBABILITIES],
    )
    face_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="How sure the detector is that the box holds a face; null: no face, or the Haar detector",
        examples=[0.93],
    )
    eyes: Eyes | None = Field(None, description="Eye centres, in image pixels, when the detector gives them")

    @classmethod
    def from_face(cls, face: FaceResult) -> FacePrediction:
        eyes = None
        if face.right_eye is not None and face.left_eye is not None:
            eyes = Eyes(right=Point.of(face.right_eye), left=Point.of(face.left_eye))
        return cls(
            box=FaceBox.of(face.box),
            emotion=face.emotion,
            confidence=face.confidence,
            probabilities=face.probabilities,
            face_confidence=face.face_confidence,
            eyes=eyes,
        )


class Timing(BaseModel):
    decode_ms: float = Field(description="Decoding, face detection and preprocessing")
    inference_ms: float = Field(description="Waiting for and running the model")
    total_ms: float


class PredictResponse(FacePrediction):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "box": {"x": 59, "y": 155, "width": 315, "height": 316},
                    "emotion": "happy",
                    "confidence": 0.975,
                    "probabilities": EXAMPLE_PROBABILITIES,
                    "face_confidence": 0.93,
                    "eyes": {"right": {"x": 150.5, "y": 270.0}, "left": {"x": 282.0, "y": 268.5}},
                    "face_detection": "largest",
                    "face_found": True,
                    "faces": None,
                    "model": "emotion_cnn",
                    "model_id": "emotion_cnn@3f2a9c1b0d4e",
                    "timing": {"decode_ms": 4.1, "inference_ms": 1.2, "total_ms": 5.4},
                }
            ]
        }
    )

    face_detection: FaceMode = Field(description="The face handling used")
    face_found: bool = Field(description="False: no face was found (or detection was off): whole image used")
    faces: list[FacePrediction] | None = Field(
        None,
        description="With faces=all: every detected face, largest first (the top-level result is the first)",
    )
    model: str = Field(description="The name of the model that answered (as in ?model=, GET /models)")
    model_id: str = Field(description="Model file stem and the start of its SHA-256")
    timing: Timing

    @classmethod
    def from_classification(cls, result: Classification, model: str) -> PredictResponse:
        faces = [FacePrediction.from_face(face) for face in result.faces]
        return cls(
            **faces[0].model_dump(),
            face_detection=result.mode,
            face_found=result.face_found,
            faces=faces if result.mode == "all" else None,
            model=model,
            model_id=result.model_id,
            timing=Timing(
                decode_ms=result.decode_ms, inference_ms=result.inference_ms, total_ms=result.total_ms
            ),
        )


class BatchItem(BaseModel):
    filename: str | None = Field(description="The uploaded file's name; null for JSON instances")
    ok: bool
    result: PredictResponse | None = None
    error: ErrorDetail | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem] = Field(
        description="One entry per uploaded file (or JSON instance), in the order sent"
    )


class ImageInstance(BaseModel):
    """One image in a JSON body, TensorFlow Serving's way: its file bytes in base64."""

    model_config = ConfigDict(extra="forbid")

    # format "byte": OpenAPI's name for base64 data (fuzzers generate base64 strings for it).
    b64: str = Field(
        description="The image file's bytes (JPEG, PNG, ...), base64 (standard alphabet, padding optional)",
        examples=[EXAMPLE_PNG_BASE64],
        json_schema_extra={"format": "byte"},
    )


class PredictJSONRequest(ImageInstance):
    """``POST /predict`` with ``Content-Type: application/json``."""


class BatchJSONRequest(BaseModel):
    """``POST /predict/batch`` with ``Content-Type: application/json`` (TF Serving's ``instances``)."""

    model_config = ConfigDict(extra="forbid")

    instances: list[ImageInstance] = Field(min_length=1, description="The images; answered in this order")


class ModelSummary(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str = Field(description="What ?model= takes: the model file's stem", examples=["emotion_cnn"])
    model_id: str = Field(description="Model file stem and the start of its SHA-256")
    default: bool = Field(description="Answers requests that name no model")
    labels: list[str] = Field(description="The emotions, in the model's output order")
    metrics: dict[str, Any] = Field(description="Evaluation figures from the model's metadata")


class ModelsResponse(BaseModel):
    models: list[ModelSummary] = Field(description="Every model served, the default first")


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    status: Literal["ready"] = "ready"
    model_id: str


class ModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str = Field(description="What ?model= takes: the model file's stem")
    model_id: str
    path: str
    labels: list[str]
    input_shape: list[int]
    architecture: str
    params: int
    preprocessing: dict[str, Any]
    training: dict[str, Any] = Field(description="Training configuration and protocol (history omitted)")
    metrics: dict[str, Any]
    dataset: dict[str, Any]
    versions: dict[str, str]
    batching: dict[str, Any] = Field(description="Dynamic batching settings and counters")

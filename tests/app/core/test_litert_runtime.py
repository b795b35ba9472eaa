"""The litert runtime (EMOTION_MODEL_RUNTIME=litert): converted once per model SHA-256, answering as
Keras does within 1e-4, refusing a converted model that does not, and never importing TensorFlow in
the serving process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.core import litert_runtime
from app.core.inference import LoadedModel, ModelLoadError, load_model
from app.core.litert_runtime import TOLERANCE, cached_paths
from app.core.model_metadata import file_sha256
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("litert-cache")


@pytest.fixture(scope="module")
def litert_model(model_path: Path, cache_dir: Path) -> LoadedModel:
    return load_model(model_path, runtime="litert", cache_dir=cache_dir, threads=1)


@pytest.mark.parametrize("count", [1, 3, 32, 70])  # padded to 1, 4, 32; past the largest padding
def test_litert_answers_as_keras_does(
    loaded_model: LoadedModel, litert_model: LoadedModel, count: int, ckplus_dir: Path
) -> None:
    from app.core.imaging import decode_image
    from app.core.preprocessing import to_model_input

    faces = sorted(ckplus_dir.glob("*/*.png"))[:count]
    spec = loaded_model.spec
    real = [to_model_input(decode_image(p.read_bytes(), max_pixels=10**6), spec) for p in faces]
    batch = np.stack(real)
    got, expected = litert_model.predict_batch(batch), loaded_model.predict_batch(batch)
    assert got.shape == expected.shape == (count, len(loaded_model.labels))
    assert np.abs(got - expected).max() <= TOLERANCE
    assert np.allclose(got.sum(axis=1), 1.0)
    assert litert_model.runtime == "litert" and litert_model.model_id == loaded_model.model_id


def test_the_converted_model_is_cached_by_sha(
    model_path: Path, cache_dir: Path, litert_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    tflite, check = cached_paths(cache_dir, model_path, file_sha256(model_path))
    assert tflite.is_file() and check.is_file()
    monkeypatch.setattr(litert_runtime, "convert_in_child", lambda *_: pytest.fail("converted again"))
    again = load_model(model_path, runtime="litert", cache_dir=cache_dir, threads=1)
    assert again.model_id == litert_model.model_id


def test_a_converted_model_that_disagrees_with_keras_is_refused(model_path: Path, tmp_path: Path) -> None:
    digest = file_sha256(model_path)
    tflite, check = cached_paths(tmp_path, model_path, digest)
    load_model(model_path, runtime="litert", cache_dir=tmp_path, threads=1)
    np.save(check, np.load(check) + 10 * TOLERANCE)  # Keras's answers, as if the .tflite had drifted
    with pytest.raises(ModelLoadError, match="differs from Keras") as info:
        load_model(model_path, runtime="litert", cache_dir=tmp_path, threads=1)
    assert str(model_path) in str(info.value) and str(tflite) in str(info.value)


def test_a_model_litert_cannot_take_is_a_model_load_error(model_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.h5"
    broken.write_text("not a Keras model\n")
    meta = json.loads(model_path.with_suffix(".json").read_text())
    meta.pop("model_sha256", None)
    broken.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="cannot be served with LiteRT") as info:
        load_model(broken, runtime="litert", cache_dir=tmp_path / "cache", threads=1)
    assert str(broken) in str(info.value)
    assert not any((tmp_path / "cache").glob("*.tflite"))


def test_the_serving_process_does_not_import_tensorflow(
    model_path: Path, cache_dir: Path, litert_model: LoadedModel
) -> None:
    script = (
        "import sys; from pathlib import Path; import app.core.pipeline; "
        "from app.core.inference import load_model; "
        f"m = load_model(Path({str(model_path)!r}), runtime='litert', cache_dir=Path({str(cache_dir)!r})); "
        "print(sorted(n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"

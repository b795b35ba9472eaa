"""The training command end to end, on a tiny registered architecture and a tiny dataset (seconds)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

from app.core.model_metadata import read_metadata
from app.core.preprocessing import InputSpec, batch_to_model_input
from tests.training.builders import write_class_folders
from training.__main__ import main
from training.architectures import ARCHITECTURES, Architecture, Recipe, register
from training.dataset import CKPLUS_SUBJECT_PATTERN, Dataset, group_by_pattern, load_dataset
from training.fit import fit
from training.run import RunConfig, save_model
from training.splits import make_split

CLASSES = {"anger": 10, "happy": 10, "surprise": 10}
SUBJECTS = 10
METADATA_KEYS = {
    "labels",
    "input_shape",
    "architecture",
    "params",
    "metrics",
    "preprocessing",
    "training",
    "dataset",
    "versions",
    "model_sha256",
}


def build_tiny(input_shape: tuple[int, int, int], num_classes: int) -> keras.Model:
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    outputs = layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, outputs, name="tiny")


def register_tiny(recipe: Recipe) -> Iterator[Architecture]:
    arch = register(
        Architecture(f"test-tiny-{uuid.uuid4().hex[:8]}", "test only", (16, 16, 1), build_tiny, recipe)
    )
    try:
        yield arch
    finally:
        ARCHITECTURES.pop(arch.name, None)
        keras.backend.clear_session()


@pytest.fixture
def tiny() -> Iterator[Architecture]:
    """A registered one-conv architecture with a plain recipe (no augmentation, no validation)."""
    yield from register_tiny(Recipe(epochs=1, batch_size=8, learning_rate=1e-2))


@pytest.fixture
def tiny_full_recipe() -> Iterator[Architecture]:
    """The same network with the compact models' recipe: augmentation, validation, class weights."""
    yield from register_tiny(
        Recipe(
            epochs=2,
            batch_size=8,
            learning_rate=1e-2,
            augment=True,
            validation_fraction=0.5,
            early_stopping_patience=1,
            class_weighted=True,
        )
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """3 classes x 10 images named S<subject>_<seq>_<frame>.png over 10 subjects, plus clutter."""
    root = write_class_folders(tmp_path / "tiny-data", CLASSES, size=20, subjects=SUBJECTS)
    (root / "README.md").write_text("tiny test dataset\n")
    (root / "happy" / ".DS_Store").write_bytes(b"\x00")
    (root / "happy" / "S001_099_00000001.png").write_bytes(b"not a png")  # reported, skipped
    return root


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_input(model: keras.Model, dataset: Dataset) -> np.ndarray:
    return batch_to_model_input(dataset.images, InputSpec.from_shape(model.input_shape))


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, verbose=0), dtype=np.float64)


def assert_probabilities(p: np.ndarray, n: int, classes: int) -> None:
    assert p.shape == (n, classes)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


# --- one split ----------------------------------------------------------------------------------------


def test_subject_split_run_writes_model_metadata_and_plots(
    tiny: Architecture, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["--data", str(data_dir), "--arch", tiny.name, "--split", "subject", "--epochs", "1"]
    code = main([*args, "--out", str(out), "--name", "tiny"])
    assert code == 0
    captured = capsys.readouterr()
    assert "skipped unreadable image" in captured.err
    assert "S001_099_00000001.png" in captured.err
    assert "test accuracy" in captured.out

    for suffix in (".h5", ".weights.h5", ".json", ".confusion.png", ".curves.png"):
        assert (out / f"tiny{suffix}").is_file(), suffix
        assert (out / f"tiny{suffix}").stat().st_size > 0

    raw = json.loads((out / "tiny.json").read_text())
    assert set(raw) >= METADATA_KEYS
    metadata = read_metadata(out / "tiny.json")
    assert metadata.model_sha256 == sha256_of(out / "tiny.h5")
    assert metadata.labels == sorted(CLASSES)
    assert metadata.input_shape == [16, 16, 1]
    assert metadata.architecture == tiny.name
    assert metadata.preprocessing["input_shape"] == [16, 16, 1]
    assert {"tensorflow", "keras", "numpy", "opencv", "python"} <= set(metadata.versions)

    assert metadata.metrics["protocol"] == "subject"
    assert metadata.metrics["subjects_in_both_train_and_test"] == 0
    test = metadata.metrics["test"]
    assert 0.0 <= test["accuracy"] <= 1.0
    assert 0.0 <= test["ece"] <= 1.0
    assert np.asarray(test["confusion_matrix"]).shape == (3, 3)
    assert metadata.training["epochs_run"] == 1
    assert metadata.training["train_images"] + metadata.training["test_images"] == 30
    assert metadata.dataset["images"] == 30
    assert metadata.dataset["subjects"] == SUBJECTS
    assert metadata.dataset["class_counts"] == CLASSES
    assert [Path(p).name for p in metadata.dataset["skipped"]] == ["S001_099_00000001.png"]

    dataset = load_dataset(data_dir)
    assert metadata.dataset["fingerprint_sha256"] == dataset.fingerprint()
    loaded = keras.models.load_model(out / "tiny.h5", compile=False)
    assert metadata.params == loaded.count_params()
    x = model_input(loaded, dataset)
    from_h5 = predict(loaded, x)
    assert_probabilities(from_h5, len(dataset), 3)
    # The weights file holds the same model.
    rebuilt = tiny.build(3)
    rebuilt.load_weights(out / "tiny.weights.h5")
    np.testing.assert_allclose(predict(rebuilt, x), from_h5, atol=1e-6)


def test_saved_model_predicts_like_the_model_in_memory(tiny: Architecture, data_dir: Path, tmp_path: Path):
    dataset = load_dataset(data_dir)
    groups = dataset.groups(group_by_pattern(CKPLUS_SUBJECT_PATTERN))
    spec = InputSpec(*tiny.input_shape)
    x = batch_to_model_input(dataset.images, spec)
    result = fit(tiny, x, dataset.labels, num_classes=3, recipe=tiny.recipe, seed=0, verbose=0)
    assert result.epochs_run == 1
    assert set(result.history) >= {"loss", "accuracy"}

    config = RunConfig(tiny, tiny.recipe, "subject", tmp_path / "direct", "direct")
    path = save_model(result.model, config, dataset, groups, metrics={"note": "test"}, training={})
    assert path == tmp_path / "direct" / "direct.h5"
    metadata = read_metadata(path.with_suffix(".json"))
    assert metadata.model_sha256 == sha256_of(path)
    assert metadata.metrics == {"note": "test"}

    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(predict(loaded, x), predict(result.model, x), atol=1e-6)


def test_recipe_overrides_reach_the_training_and_its_record(
    tiny_full_recipe: Architecture, data_dir: Path, tmp_path: Path
) -> None:
    args = ["--data", str(data_dir), "--arch", tiny_full_recipe.name, "--split", "subject"]
    overrides = ["--lr-schedule", "cosine", "--validation-fraction", "0", "--learning-rate", "0.02"]
    assert main([*args, *overrides, "--out", str(tmp_path), "--name", "cos"]) == 0
    training = read_metadata(tmp_path / "cos.json").training
    assert (training["lr_schedule"], training["validation_fraction"]) == ("cosine", 0.0)
    assert training["learning_rate"] == 0.02
    assert training["augment"] is True  # the rest of the recipe stays the architecture's
    assert "val_loss" not in training["history"]  # no validation carve: every training subject trains


def test_members_are_trained_apart_and_saved_as_one_model_of_averaged_logits(
    tiny: Architecture, data_dir: Path, tmp_path: Path
) -> None:
    dataset = load_dataset(data_dir)
    x = model_input(tiny.build(3), dataset)
    recipe = dataclasses.replace(tiny.recipe, members=2)
    result = fit(tiny, x, dataset.labels, num_classes=3, recipe=recipe, seed=0, verbose=0)
    assert set(result.history) >= {"member0_loss", "member1_loss"}
    assert result.model.count_params() == 2 * tiny.count_params(3)

    members = [layer for layer in result.model.layers if layer.name.startswith("member")]
    logits = np.mean([np.asarray(member(x)) for member in members], axis=0)
    assert not np.allclose(np.asarray(members[0](x)), np.asarray(members[1](x)))  # different seeds
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(predict(result.model, x), expected, atol=1e-5)

    config = RunConfig(tiny, recipe, "subject", tmp_path / "ensemble", "ensemble")
    path = save_model(result.model, config, dataset, None, metrics={}, training={})
    loaded = keras.models.load_model(path, compile=False)
    np.testing.assert_allclose(predict(loaded, x), predict(result.model, x), atol=1e-6)
    assert read_metadata(path.with_suffix(".json")).params == 2 * tiny.count_params(3)


def test_members_below_one_are_refused(tiny: Architecture, data_dir: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--data", str(data_dir), "--arch", tiny.name, "--members", "0"])


# --- cross-validation and the final model --------------------------------------------------------


def test_cross_validation_with_final_model(
    tiny_full_recipe: Architecture, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["--data", str(data_dir), "--arch", tiny_full_recipe.name, "--folds", "2", "--final"]
    code = main([*args, "--out", str(out), "--name", "cv"])
    assert code == 0
    assert "2-fold subject CV accuracy" in capsys.readouterr().out

    cv = json.loads((out / "cv.cv.json").read_text())
    assert cv["folds"] == 2
    assert len(cv["per_fold"]) == 2
    assert 0.0 <= cv["mean_accuracy"] <= 1.0
    assert cv["std_accuracy"] >= 0.0
    assert cv["mean_accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in cv["per_fold"]]))
    assert sum(f["test_images"] for f in cv["per_fold"]) == 30
    assert cv["pooled"]["n"] == 30
    assert cv["folds_run"] == 2
    assert 0.0 <= cv["jpeg75_accuracy"] <= 1.0
    temperature = cv["calibration"]["temperature"]
    assert temperature > 0
    assert (out / "cv.cv-confusion.png").is_file()

    for suffix in (".h5", ".weights.h5", ".json", ".curves.png"):
        assert (out / f"cv{suffix}").is_file(), suffix
    metadata = read_metadata(out / "cv.json")
    assert metadata.model_sha256 == sha256_of(out / "cv.h5")
    assert metadata.metrics["subject_cv"]["folds"] == 2
    assert metadata.metrics["subject_cv"]["mean_accuracy"] == cv["mean_accuracy"]
    assert metadata.metrics["calibration"]["temperature"] == temperature
    assert metadata.training["temperature"] == temperature
    assert metadata.training["folds"] == 2
    assert metadata.training["train_images"] == 30

    # The saved model is the final one with its logits divided by the temperature.
    loaded = keras.models.load_model(out / "cv.h5", compile=False)
    x = model_input(loaded, load_dataset(data_dir))
    logits = predict(keras.Model(loaded.inputs, loaded.get_layer("logits").output), x)
    scaled = np.exp(logits / temperature)
    np.testing.assert_allclose(predict(loaded, x), scaled / scaled.sum(axis=1, keepdims=True), atol=1e-5)


def test_max_folds_runs_only_the_first_folds(tiny: Architecture, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--data", str(data_dir), "--arch", tiny.name, "--folds", "3", "--max-folds", "1"]
    assert main([*args, "--out", str(out), "--name", "part"]) == 0
    cv = json.loads((out / "part.cv.json").read_text())
    assert (cv["folds"], cv["folds_run"], len(cv["per_fold"])) == (3, 1, 1)
    assert cv["pooled"]["n"] == cv["per_fold"][0]["test_images"] < 30
    assert cv["calibration"]["ece_after_cross_fitted"] is None  # no other fold to fit a temperature on


# --- command-line errors ---------------------------------------------------------------------------------


def test_missing_data_folder_exits_2(tiny: Architecture, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-data"
    code = main(["--data", str(missing), "--arch", tiny.name, "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert "no-such-data" in err
    assert not (tmp_path / "out").exists()


def test_unknown_architecture_exits_2(data_dir: Path, tmp_path: Path, capsys) -> None:
    code = main(["--data", str(data_dir), "--arch", "no-such-arch", "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown architecture 'no-such-arch'" in err
    assert "compact-s" in err


def test_single_class_dataset_exits_2(tiny: Architecture, tmp_path: Path, capsys) -> None:
    root = write_class_folders(tmp_path / "one", {"happy": 3})
    assert main(["--data", str(root), "--arch", tiny.name, "--out", str(tmp_path / "out")]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_names_without_subjects_exit_2_for_the_subject_split(tiny: Architecture, tmp_path: Path, capsys):
    root = write_class_folders(tmp_path / "data", {"a": 3, "b": 3})
    for path in list(root.rglob("*.png")):
        path.rename(path.with_name(f"img{path.stem[-3:]}.png"))
    code = main(["--data", str(root), "--arch", tiny.name, "--split", "subject", "--out", str(tmp_path)])
    assert code == 2
    assert "does not match the group pattern" in capsys.readouterr().err


def test_data_and_arch_are_required(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "--data and --arch are required" in capsys.readouterr().err


@pytest.mark.parametrize("folds", ["1", "-2"])
def test_bad_folds_count_is_a_usage_error(tiny: Architecture, data_dir: Path, folds: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--data", str(data_dir), "--arch", tiny.name, "--folds", folds])
    assert info.value.code == 2
    assert "--folds must be 0" in capsys.readouterr().err


def test_more_folds_than_subjects_exits_2(tiny: Architecture, data_dir: Path, tmp_path: Path, capsys):
    code = main(["--data", str(data_dir), "--arch", tiny.name, "--folds", "11", "--out", str(tmp_path)])
    assert code == 2
    assert f"more than the {SUBJECTS} subjects" in capsys.readouterr().err


def test_random_split_reports_the_subjects_it_puts_on_both_sides(
    tiny: Architecture, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["--data", str(data_dir), "--arch", tiny.name, "--split", "random", "--out", str(out)]) == 0
    metrics = read_metadata(out / f"{tiny.name}-random.json").metrics
    dataset = load_dataset(data_dir)
    split = make_split("random", dataset.labels, None, test_size=0.33, seed=42)
    groups = dataset.groups(group_by_pattern(CKPLUS_SUBJECT_PATTERN))
    shared = set(groups[split.train]) & set(groups[split.test])
    assert metrics["subjects_in_both_train_and_test"] == len(shared) > 0
    assert f"{len(shared)} of {len(set(groups[split.test]))} test subjects also in training" in (
        capsys.readouterr().out
    )


def test_random_split_needs_no_subject_names(tiny: Architecture, tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "data", {"a": 6, "b": 6})
    for path in list(root.rglob("*.png")):
        path.rename(path.with_name(f"img{path.stem[-3:]}.png"))
    out = tmp_path / "out"
    assert main(["--data", str(root), "--arch", tiny.name, "--split", "random", "--out", str(out)]) == 0
    metadata = read_metadata(out / f"{tiny.name}-random.json")
    assert metadata.metrics["protocol"] == "random"
    assert "subjects_in_both_train_and_test" not in metadata.metrics
    assert metadata.dataset["subjects"] is None
    assert metadata.training["test_images"] == 4  # ceil(0.33 * 12)

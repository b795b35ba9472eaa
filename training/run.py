"""Training runs: one split, or k-fold subject-independent cross-validation (plus a final model)."""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import tensorflow as tf

from app.core import preprocessing
from app.core.model_metadata import ModelMetadata, file_sha256, metadata_path_for, write_metadata
from app.core.preprocessing import InputSpec
from training.architectures import Architecture, Recipe
from training.calibration import (
    ECE_BINS,
    expected_calibration_error,
    fit_temperature,
    logits_from_probabilities,
    softmax_with_temperature,
)
from training.dataset import Dataset
from training.evaluate import classification_metrics, plot_confusion_matrix, plot_history
from training.fit import FitResult, fit, predict_probabilities, with_temperature
from training.robustness import jpeg
from training.splits import make_split, subject_kfold

log = logging.getLogger(__name__)

JPEG_QUALITY = 75  # what a client app sends: CV folds are also scored after a JPEG round trip


@dataclass(frozen=True)
class RunConfig:
    architecture: Architecture
    recipe: Recipe
    protocol: str  # random | subject
    out_dir: Path
    name: str
    seed: int = 42
    test_size: float = 0.33
    folds: int = 0
    max_folds: int | None = None  # run only the first N of the K folds (quick comparisons)
    final: bool = False
    data_name: str = ""


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


def _dataset_info(dataset: Dataset, groups: np.ndarray | None, data_name: str) -> dict[str, Any]:
    return {
        "name": data_name,
        "images": len(dataset),
        "class_counts": dataset.class_counts(),
        "subjects": None if groups is None else len(np.unique(groups)),
        "fingerprint_sha256": dataset.fingerprint(),
        "skipped": [str(path) for path, _ in dataset.skipped],
    }


def _training_info(config: RunConfig, **extra: Any) -> dict[str, Any]:
    return {
        "protocol": config.protocol,
        "test_size": config.test_size if config.folds == 0 else None,
        "folds": config.folds or None,
        "seed": config.seed,
        "optimizer": "adam",
        "loss": "categorical_crossentropy",
        **dataclasses.asdict(config.recipe),
        **extra,
    }


def export_model(
    model: keras.Model,
    model_path: Path,
    *,
    labels: list[str],
    architecture: str,
    training: dict[str, Any],
    dataset: dict[str, Any],
    metrics: dict[str, Any],
) -> Path:
    """Write ``model_path`` (.h5, the full model without optimizer state), the weights beside it and
    the metadata JSON the service reads (labels in output order, preprocessing, checksum)."""
    model_path.parent.mkdir(parents=True, exist_ok=True)
    # An uncompiled view of the same layers: the files hold the weights, not Adam's state (3x the size).
    export = keras.Model(model.input, model.output, name=model.name)
    export.save(model_path)
    export.save_weights(model_path.with_suffix(".weights.h5"))
    spec = InputSpec.from_shape(model.input_shape)
    metadata = ModelMetadata(
        labels=labels,
        input_shape=list(spec.shape),
        architecture=architecture,
        params=int(model.count_params()),
        preprocessing={**preprocessing.DESCRIPTION, "input_shape": list(spec.shape)},
        training=training,
        dataset=dataset,
        metrics=metrics,
        versions=library_versions(),
        model_sha256=file_sha256(model_path),
    )
    write_metadata(metadata, metadata_path_for(model_path))
    log.info("wrote %s and %s", model_path, metadata_path_for(model_path))
    return model_path


def save_model(
    model: keras.Model,
    config: RunConfig,
    dataset: Dataset,
    groups: np.ndarray | None,
    *,
    metrics: dict[str, Any],
    training: dict[str, Any],
) -> Path:
    """Write ``NAME.h5`` (full model), ``NAME.weights.h5`` and the metadata ``NAME.json``."""
    return export_model(
        model,
        config.out_dir / f"{config.name}.h5",
        labels=dataset.class_names,
        architecture=config.architecture.name,
        training=training,
        dataset=_dataset_info(dataset, groups, config.data_name),
        metrics=metrics,
    )


def _fit(
    config: RunConfig, x: np.ndarray, labels: np.ndarray, groups: np.ndarray | None, n: int
) -> FitResult:
    return fit(
        config.architecture, x, labels, num_classes=n, recipe=config.recipe, seed=config.seed, groups=groups
    )


def run_split(config: RunConfig, dataset: Dataset, groups: np.ndarray | None) -> dict[str, Any]:
    """Train on one split, evaluate on its test part, save model, metadata and plots."""
    spec = InputSpec(*config.architecture.input_shape)
    x = preprocessing.batch_to_model_input(dataset.images, spec)
    split = make_split(config.protocol, dataset.labels, groups, test_size=config.test_size, seed=config.seed)
    n = len(dataset.class_names)
    started = time.perf_counter()
    result = _fit(config, x[split.train], dataset.labels[split.train], _take(groups, split.train), n)
    wall = time.perf_counter() - started
    probabilities = predict_probabilities(result.model, x[split.test])
    test = classification_metrics(dataset.labels[split.test], probabilities, dataset.class_names)
    test["ece"] = expected_calibration_error(probabilities, dataset.labels[split.test])
    metrics = {"protocol": config.protocol, "test": test}
    leak = ""
    if groups is not None:
        overlap = set(groups[split.train]) & set(groups[split.test])
        metrics["subjects_in_both_train_and_test"] = len(overlap)
        leak = f"; {len(overlap)} of {len(set(groups[split.test]))} test subjects also in training"
    save_model(
        result.model,
        config,
        dataset,
        groups,
        metrics=metrics,
        training=_training_info(
            config,
            train_images=len(split.train),
            test_images=len(split.test),
            epochs_run=result.epochs_run,
            wall_seconds=round(wall, 1),
            history=result.history,
        ),
    )
    title = f"{config.architecture.name}, {config.protocol} split: accuracy {test['accuracy']:.4f}"
    plot_confusion_matrix(
        test["confusion_matrix"], dataset.class_names, title, config.out_dir / f"{config.name}.confusion.png"
    )
    plot_history(result.history, title, config.out_dir / f"{config.name}.curves.png")
    print(
        f"{config.name}: test accuracy {test['accuracy']:.4f} on {len(split.test)} images "
        f"({config.protocol} split{leak}), trained {result.epochs_run} epochs in {wall:.0f} s"
    )
    return metrics


def _take(values: np.ndarray | None, index: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[index]


def _cross_fitted_ece(logits: np.ndarray, labels: np.ndarray, fold_of: np.ndarray) -> float | None:
    """ECE after temperature scaling, each fold scaled by a temperature fitted on the other folds
    (None with a single fold: there is no other fold to fit on)."""
    if len(np.unique(fold_of)) < 2:
        return None
    calibrated = np.empty_like(logits)
    for fold in np.unique(fold_of):
        held = fold_of == fold
        temperature = fit_temperature(logits[~held], labels[~held])
        calibrated[held] = softmax_with_temperature(logits[held], temperature)
    return expected_calibration_error(calibrated, labels)


def run_cross_validation(config: RunConfig, dataset: Dataset, groups: np.ndarray) -> dict[str, Any]:
    """K-fold subject-independent CV; with ``final``, then train on every subject and save that model."""
    spec = InputSpec(*config.architecture.input_shape)
    x = preprocessing.batch_to_model_input(dataset.images, spec)
    labels, n = dataset.labels, len(dataset.class_names)
    oof = np.zeros((len(x), n))
    fold_of = np.full(len(x), -1)
    per_fold: list[dict[str, Any]] = []
    started = time.perf_counter()
    x_jpeg = preprocessing.batch_to_model_input([jpeg(JPEG_QUALITY)(image) for image in dataset.images], spec)
    oof_jpeg = np.zeros_like(oof)
    splits = list(subject_kfold(labels, groups, folds=config.folds, seed=config.seed))
    for k, split in enumerate(splits[: config.max_folds]):
        result = _fit(config, x[split.train], labels[split.train], groups[split.train], n)
        oof[split.test] = predict_probabilities(result.model, x[split.test])
        oof_jpeg[split.test] = predict_probabilities(result.model, x_jpeg[split.test])
        fold_of[split.test] = k
        accuracy = float((oof[split.test].argmax(1) == labels[split.test]).mean())
        per_fold.append(
            {
                "fold": k,
                "accuracy": accuracy,
                "test_images": len(split.test),
                "test_subjects": len(np.unique(groups[split.test])),
                "epochs_run": result.epochs_run,
            }
        )
        print(
            f"{config.name}: fold {k + 1}/{config.folds} accuracy {accuracy:.4f} "
            f"({len(split.test)} images, {result.epochs_run} epochs)"
        )
        keras.backend.clear_session()
    accuracies = np.array([f["accuracy"] for f in per_fold])
    seen = fold_of >= 0
    oof, oof_jpeg, labels, fold_of = oof[seen], oof_jpeg[seen], labels[seen], fold_of[seen]
    pooled = classification_metrics(labels, oof, dataset.class_names)
    logits = logits_from_probabilities(oof)
    temperature = fit_temperature(logits, labels)
    cv = {
        "protocol": "subject",
        "folds": config.folds,
        "folds_run": len(per_fold),
        "seed": config.seed,
        "mean_accuracy": float(accuracies.mean()),
        "std_accuracy": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0,
        "per_fold": per_fold,
        "pooled": pooled,
        f"jpeg{JPEG_QUALITY}_accuracy": float((oof_jpeg.argmax(1) == labels).mean()),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "calibration": {
            "method": "temperature scaling on out-of-fold predictions",
            "bins": ECE_BINS,
            "temperature": temperature,
            "ece_before": expected_calibration_error(oof, labels),
            "ece_after_cross_fitted": _cross_fitted_ece(logits, labels, fold_of),
        },
    }
    config.out_dir.mkdir(parents=True, exist_ok=True)
    (config.out_dir / f"{config.name}.cv.json").write_text(json.dumps(cv, indent=2) + "\n")
    plot_confusion_matrix(
        pooled["confusion_matrix"],
        dataset.class_names,
        f"{config.architecture.name}, {config.folds}-fold subject CV: {cv['mean_accuracy']:.4f}",
        config.out_dir / f"{config.name}.cv-confusion.png",
    )
    print(f"{config.name}: JPEG q{JPEG_QUALITY} accuracy {cv[f'jpeg{JPEG_QUALITY}_accuracy']:.4f}")
    after = cv["calibration"]["ece_after_cross_fitted"]
    print(
        f"{config.name}: {config.folds}-fold subject CV accuracy {cv['mean_accuracy']:.4f} "
        f"± {cv['std_accuracy']:.4f} over {len(per_fold)} folds; ECE {cv['calibration']['ece_before']:.4f}"
        f" -> {'n/a' if after is None else f'{after:.4f}'} at T={temperature:.3f}"
    )
    if config.final:
        _run_final(config, dataset, groups, x, cv)
    return cv


def _run_final(
    config: RunConfig, dataset: Dataset, groups: np.ndarray, x: np.ndarray, cv: dict[str, Any]
) -> None:
    started = time.perf_counter()
    result = _fit(config, x, dataset.labels, groups, len(dataset.class_names))
    wall = time.perf_counter() - started
    temperature = cv["calibration"]["temperature"]
    model = with_temperature(result.model, temperature)
    keys = (
        "folds",
        "folds_run",
        "seed",
        "mean_accuracy",
        "std_accuracy",
        "per_fold",
        f"jpeg{JPEG_QUALITY}_accuracy",
    )
    subject_cv = {k: cv[k] for k in keys}
    subject_cv["per_class_f1"] = {c: v["f1"] for c, v in cv["pooled"]["per_class"].items()}
    subject_cv["confusion_matrix"] = cv["pooled"]["confusion_matrix"]
    save_model(
        model,
        config,
        dataset,
        groups,
        metrics={"subject_cv": subject_cv, "calibration": cv["calibration"]},
        training=_training_info(
            config,
            train_images=len(x),
            epochs_run=result.epochs_run,
            wall_seconds=round(wall, 1),
            history=result.history,
            temperature=temperature,
        ),
    )
    plot_history(
        result.history,
        f"{config.architecture.name}, final model on all subjects",
        config.out_dir / f"{config.name}.curves.png",
    )

"""The real-faces recipe: one network trained on FER+ web photos, fine-tuned with CK+48, shipped twice.

Stages (``python -m training.real_faces STAGE``; ``make train-real`` runs all three):

1. ``base``: the architecture trained from scratch on FER+ train with eight outputs (the seven
   emotions and ``neutral``), soft vote-distribution targets, class-balancing sample weights, web
   photo augmentation, warm-up + cosine learning rate, the epoch kept by FER+ valid accuracy (early
   stopping). Checkpointed every epoch: rerunning the command resumes.
2. ``cv``: CK+48 10-fold subject-independent cross-validation of the fine-tuning step. FER+ holds
   none of CK+48's people, so the one base model is shared by every fold; each fold fine-tunes it on
   its own CK+48 training subjects mixed with replayed FER+ faces and is scored on its test subjects.
3. ``final``: the same fine-tuning on every CK+48 subject; then the eight-output model is calibrated
   and saved as the neutral model, and the same network without its ``neutral`` output (the
   seven-way softmax over the other logits) is calibrated and saved as the default model.

Mixing: each fine-tuning epoch shows every CK+48 training image ``ck_repeats`` times (one-hot
targets, its peak frames have no neutral) and ``replay`` FER+ training faces drawn at random (soft
targets), so CK+48 is about a third of what the network sees and FER+ keeps it from forgetting
real photos. Class imbalance: FER+ faces are weighted by (largest class / their class)^0.5, capped at
3, and CK+48 adds posed contempt, disgust and fear, the classes FER+ has fewest of.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app.core import preprocessing
from app.core.preprocessing import InputSpec
from training.architectures import Architecture
from training.augment import augment_web_batch, random_jpeg, web_photo_augmenter
from training.calibration import (
    ECE_BINS,
    expected_calibration_error,
    fit_temperature,
    softmax_with_temperature,
)
from training.evaluate import classification_metrics, plot_confusion_matrix, plot_history
from training.ferplus import VoteDataset, load_ferplus
from training.fit import with_temperature
from training.robustness import PERTURBATIONS

log = logging.getLogger(__name__)

NEUTRAL = "neutral"
EMOTIONS = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
LABELS_WITH_NEUTRAL = sorted([*EMOTIONS, NEUTRAL])


@dataclass(frozen=True)
class Arrays:
    """Model-ready inputs with their targets over :data:`LABELS_WITH_NEUTRAL`."""

    x: np.ndarray  # (N, H, W, C) float32
    y: np.ndarray  # (N, labels) float32 targets (rows sum to 1)
    weights: np.ndarray  # (N,) float32 sample weights

    def __len__(self) -> int:
        return len(self.x)


def balance_weights(
    majority: np.ndarray, num_classes: int, power: float = 0.5, cap: float = 3.0
) -> np.ndarray:
    """Per-sample weights (largest class count / own class count) ** power, capped, mean 1."""
    counts = np.bincount(majority, minlength=num_classes).astype(np.float64)
    per_class = np.minimum((counts.max() / np.maximum(counts, 1.0)) ** power, cap)
    weights = per_class[majority]
    return (weights / weights.mean()).astype(np.float32)


def ferplus_arrays(data: VoteDataset, spec: InputSpec, *, balance: bool = True) -> Arrays:
    x = preprocessing.batch_to_model_input(data.images, spec)
    weights = (
        balance_weights(data.majority(), len(data.labels))
        if balance
        else np.ones(len(data), dtype=np.float32)
    )
    return Arrays(x=x, y=data.targets("soft"), weights=weights)


def load_ferplus_cached(folder: Path, spec: InputSpec, cache_dir: Path | None) -> VoteDataset:
    """:func:`load_ferplus` over the eight labels; decoded images are cached as one ``.npz``."""
    if cache_dir is not None:
        cache = cache_dir / f"ferplus-{folder.name}-v2.npz"
        if cache.is_file():
            saved = np.load(cache, allow_pickle=False)
            return VoteDataset(
                images=list(saved["images"]),
                votes=saved["votes"],
                labels=list(saved["labels"]),
                names=list(saved["names"]),
                single_top=saved["single_top"],
                dropped=json.loads(str(saved["dropped"])),
            )
    data = load_ferplus(folder, LABELS_WITH_NEUTRAL)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            images=np.stack(data.images),
            votes=data.votes,
            labels=np.array(data.labels),
            names=np.array(data.names),
            single_top=data.single_top,
            dropped=json.dumps(data.dropped),
        )
    return data


def train_dataset(arrays: Arrays, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled, JPEG-degraded per image, then batch augmentation (geometry, light, blur, occlusion)."""
    augmenter = web_photo_augmenter(seed)
    data = tf.data.Dataset.from_tensor_slices((arrays.x, arrays.y, arrays.weights))
    data = data.shuffle(len(arrays), seed=seed, reshuffle_each_iteration=True)
    data = data.map(
        lambda x, y, w: (random_jpeg(x, rate=0.25, seed=seed + 30), y, w),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    data = data.batch(batch_size, drop_remainder=True)
    data = data.map(
        lambda x, y, w: (augment_web_batch(x, augmenter, seed), y, w), num_parallel_calls=tf.data.AUTOTUNE
    )
    return data.prefetch(tf.data.AUTOTUNE)


def eval_dataset(x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def warmup_cosine(peak: float, total_steps: int, warmup_steps: int) -> keras.optimizers.schedules.CosineDecay:
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, total_steps - warmup_steps),
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )


def compile_model(model: keras.Model, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule):
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=1e-2)
    optimizer.exclude_from_weight_decay(var_names=["bn", "bias", "gamma", "beta"])
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])


def train_base(
    architecture: Architecture,
    train: Arrays,
    valid_x: np.ndarray,
    valid_y: np.ndarray,
    *,
    out_dir: Path,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    patience: int,
    seed: int,
    verbose: int = 2,
) -> tuple[keras.Model, dict[str, list[float]], float]:
    """Train from scratch; resumable (``out_dir/base-backup``); returns the best-epoch model.

    ``valid_y`` holds the vote distributions of FER+ valid faces with a single top label, so the
    monitored ``val_accuracy`` is the 8-way accuracy against their majority label.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = architecture.build(len(LABELS_WITH_NEUTRAL))
    steps = len(train) // batch_size
    compile_model(model, warmup_cosine(learning_rate, epochs * steps, warmup_steps=2 * steps))
    best_path = out_dir / "base-best.weights.h5"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out_dir / "base-backup")),
        keras.callbacks.ModelCheckpoint(
            str(best_path), monitor="val_accuracy", save_best_only=True, save_weights_only=True
        ),
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience, restore_best_weights=False),
        keras.callbacks.CSVLogger(str(out_dir / "base-log.csv"), append=True),
    ]
    started = time.perf_counter()
    history = model.fit(
        train_dataset(train, batch_size, seed),
        validation_data=eval_dataset(valid_x, valid_y),
        epochs=epochs,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=verbose,
    )
    wall = time.perf_counter() - started
    model.load_weights(best_path)
    values = {key: [float(v) for v in vals] for key, vals in history.history.items()}
    return model, values, wall


def valid_top_label(data: VoteDataset, spec: InputSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FER+ valid faces with a single top label: inputs, vote-distribution targets, majority index."""
    keep = np.flatnonzero(data.top_label_mask())
    subset = data.subset(keep)
    return preprocessing.batch_to_model_input(subset.images, spec), subset.targets("soft"), subset.majority()


def run_base(args) -> int:
    from training.architectures import get_architecture

    arch = get_architecture(args.arch)
    spec = InputSpec(*arch.input_shape)
    cache = args.out / "cache"
    train_data = load_ferplus_cached(args.ferplus / "train", spec, cache)
    valid_data = load_ferplus_cached(args.ferplus / "valid", spec, cache)
    print(f"FER+ train: {len(train_data)} faces (dropped {train_data.dropped}); valid: {len(valid_data)}")
    train = ferplus_arrays(train_data, spec)
    valid_x, valid_y, _ = valid_top_label(valid_data, spec)
    model, history, wall = train_base(
        arch,
        train,
        valid_x,
        valid_y,
        out_dir=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        seed=args.seed,
    )
    best = int(np.argmax(history["val_accuracy"]))
    summary = {
        "architecture": arch.name,
        "params": int(model.count_params()),
        "epochs": args.epochs,
        "epochs_run_this_call": len(history["loss"]),
        "best_epoch_this_call": best + 1,
        "best_val_accuracy": history["val_accuracy"][best],
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "wall_seconds_this_call": round(wall, 1),
        "train_faces": len(train_data),
        "train_dropped": train_data.dropped,
        "valid_top_label_faces": len(valid_x),
        "history": history,
    }
    (args.out / "base-summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"base: best FER+ valid 8-way accuracy {summary['best_val_accuracy']:.4f}, {wall:.0f} s")
    return 0


def ck_arrays(dataset, spec: InputSpec) -> Arrays:
    """CK+48 (a class-per-folder :class:`training.dataset.Dataset`) as one-hot targets over the eight."""
    index = [LABELS_WITH_NEUTRAL.index(name) for name in dataset.class_names]
    targets = np.eye(len(LABELS_WITH_NEUTRAL), dtype=np.float32)[np.array(index)[dataset.labels]]
    x = preprocessing.batch_to_model_input(dataset.images, spec)
    return Arrays(x=x, y=targets, weights=balance_weights(targets.argmax(1), len(LABELS_WITH_NEUTRAL)))


def take(arrays: Arrays, index: np.ndarray) -> Arrays:
    return Arrays(x=arrays.x[index], y=arrays.y[index], weights=arrays.weights[index])


def mixed_dataset(ck: Arrays, fer: Arrays, *, ck_share: float, batch_size: int, seed: int) -> tf.data.Dataset:
    """Endless batches drawing each face from CK+48 with probability ``ck_share``, else from FER+."""
    sources = [
        tf.data.Dataset.from_tensor_slices((a.x, a.y, a.weights))
        .shuffle(len(a), seed=seed + i, reshuffle_each_iteration=True)
        .repeat()
        for i, a in enumerate((ck, fer))
    ]
    data = tf.data.Dataset.sample_from_datasets(sources, weights=[ck_share, 1.0 - ck_share], seed=seed)
    augmenter = web_photo_augmenter(seed)
    data = data.map(
        lambda x, y, w: (random_jpeg(x, rate=0.25, seed=seed + 30), y, w), num_parallel_calls=tf.data.AUTOTUNE
    )
    data = data.batch(batch_size, drop_remainder=True)
    data = data.map(
        lambda x, y, w: (augment_web_batch(x, augmenter, seed), y, w), num_parallel_calls=tf.data.AUTOTUNE
    )
    return data.prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class FineTune:
    """How the FER+ base model is adapted with CK+48 (one fold's training subjects, or all)."""

    epochs: int = 3
    ck_share: float = 1 / 3
    # Each epoch shows about this many CK+48 images (with repeats), and twice as many FER+ faces.
    ck_images_per_epoch: int = 1200
    batch_size: int = 64
    learning_rate: float = 3e-4


def fine_tune(
    architecture: Architecture, base_weights: Path, ck: Arrays, fer: Arrays, recipe: FineTune, seed: int
) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = architecture.build(len(LABELS_WITH_NEUTRAL))
    model.load_weights(base_weights)
    steps = max(1, round(recipe.ck_images_per_epoch / recipe.ck_share / recipe.batch_size))
    compile_model(model, warmup_cosine(recipe.learning_rate, recipe.epochs * steps, warmup_steps=steps // 2))
    data = mixed_dataset(ck, fer, ck_share=recipe.ck_share, batch_size=recipe.batch_size, seed=seed)
    model.fit(data, epochs=recipe.epochs, steps_per_epoch=steps, shuffle=False, verbose=0)
    return model


def _fine_tune_recipe(args) -> FineTune:
    return FineTune() if args.fine_tune_epochs is None else FineTune(epochs=args.fine_tune_epochs)


def logits_of(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's pre-softmax outputs (its layer named ``logits``) over the eight labels."""
    head = keras.Model(model.input, model.get_layer("logits").output)
    return np.asarray(head.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)


SEVEN = np.array([LABELS_WITH_NEUTRAL.index(name) for name in EMOTIONS])


def without_neutral(model: keras.Model, architecture: Architecture) -> keras.Model:
    """The same network with seven outputs: the ``neutral`` column of the last layer removed, so its
    softmax is the eight-way softmax renormalised over the seven emotions."""
    seven = architecture.build(len(EMOTIONS))
    for layer in seven.layers:
        source = model.get_layer(layer.name)
        if layer.name == "logits":
            kernel, bias = source.get_weights()
            layer.set_weights([kernel[:, SEVEN], bias[SEVEN]])
        else:
            layer.set_weights(source.get_weights())
    return seven


def _load_sources(args) -> tuple[Architecture, InputSpec, VoteDataset, VoteDataset, object, np.ndarray]:
    from training.architectures import get_architecture
    from training.dataset import CKPLUS_SUBJECT_PATTERN, group_by_pattern, load_dataset

    arch = get_architecture(args.arch)
    spec = InputSpec(*arch.input_shape)
    cache = args.out / "cache"
    fer_train = load_ferplus_cached(args.ferplus / "train", spec, cache)
    fer_valid = load_ferplus_cached(args.ferplus / "valid", spec, cache)
    ck = load_dataset(args.ckplus)
    groups = ck.groups(group_by_pattern(CKPLUS_SUBJECT_PATTERN))
    return arch, spec, fer_train, fer_valid, ck, groups


def seven_way(logits8: np.ndarray) -> np.ndarray:
    """Probabilities over the seven emotions from eight-way logits (neutral dropped)."""
    return softmax_with_temperature(logits8[:, SEVEN], 1.0)


def run_cv(args) -> int:
    """10-fold subject-independent CV on CK+48 of the fine-tuning step, from the shared base model."""
    from training.splits import subject_kfold

    arch, spec, fer_train, _, ck, groups = _load_sources(args)
    base = args.out / "base-best.weights.h5"
    fer = ferplus_arrays(fer_train, spec)
    ck_all = ck_arrays(ck, spec)
    labels7 = np.array([EMOTIONS.index(ck.class_names[i]) for i in ck.labels])
    base_model = arch.build(len(LABELS_WITH_NEUTRAL))
    base_model.load_weights(base)
    zero_shot = seven_way(logits_of(base_model, ck_all.x))
    oof_logits = np.zeros((len(ck_all), len(LABELS_WITH_NEUTRAL)))
    fold_of = np.full(len(ck_all), -1)
    per_fold = []
    started = time.perf_counter()
    splits = list(subject_kfold(ck.labels, groups, folds=args.folds, seed=args.seed))
    for k, split in enumerate(splits[: args.max_folds]):
        model = fine_tune(
            arch, base, take(ck_all, split.train), fer, _fine_tune_recipe(args), seed=args.seed + k
        )
        oof_logits[split.test] = logits_of(model, ck_all.x[split.test])
        fold_of[split.test] = k
        predicted = seven_way(oof_logits[split.test]).argmax(1)
        accuracy = float((predicted == labels7[split.test]).mean())
        before = float((zero_shot[split.test].argmax(1) == labels7[split.test]).mean())
        per_fold.append(
            {
                "fold": k,
                "accuracy": accuracy,
                "accuracy_before_fine_tuning": before,
                "test_images": len(split.test),
                "test_subjects": len(np.unique(groups[split.test])),
                "subjects_in_both": len(set(groups[split.train]) & set(groups[split.test])),
            }
        )
        print(f"cv fold {k + 1}/{args.folds}: {accuracy:.4f} (FER+ base alone {before:.4f})", flush=True)
        keras.backend.clear_session()
    seen = fold_of >= 0
    accuracies = np.array([f["accuracy"] for f in per_fold])
    probabilities = seven_way(oof_logits[seen])
    pooled = classification_metrics(labels7[seen], probabilities, EMOTIONS)
    logits7 = oof_logits[seen][:, SEVEN]
    cv = {
        "protocol": "subject",
        "folds": args.folds,
        "folds_run": len(per_fold),
        "seed": args.seed,
        "base": "FER+ base model shared by all folds (FER+ has none of CK+48's people)",
        "fine_tune": dataclasses.asdict(_fine_tune_recipe(args)),
        "mean_accuracy": float(accuracies.mean()),
        "std_accuracy": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else 0.0,
        "mean_accuracy_before_fine_tuning": float(
            np.mean([f["accuracy_before_fine_tuning"] for f in per_fold])
        ),
        "per_fold": per_fold,
        "pooled": pooled,
        "ece_out_of_fold": expected_calibration_error(probabilities, labels7[seen]),
        "temperature_out_of_fold": fit_temperature(logits7, labels7[seen]),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    (args.out / "cv.json").write_text(json.dumps(cv, indent=2) + "\n", encoding="utf-8")
    plot_confusion_matrix(
        pooled["confusion_matrix"],
        EMOTIONS,
        f"CK+48 {args.folds}-fold subject CV (FER+ base + fine-tune): {cv['mean_accuracy']:.4f}",
        args.out / "cv-confusion.png",
    )
    print(
        f"CK+48 {args.folds}-fold subject CV: {cv['mean_accuracy']:.4f} ± {cv['std_accuracy']:.4f} over "
        f"{len(per_fold)} folds (FER+ base alone {cv['mean_accuracy_before_fine_tuning']:.4f}), "
        f"{cv['wall_seconds']:.0f} s"
    )
    return 0


def base_log(path: Path) -> dict[str, list[float]]:
    """Every epoch of the base training (the CSV log survives resumed runs; one call's history does not)."""
    import csv

    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in rows[0] if key != "epoch"}


def cross_fitted_ece(logits: np.ndarray, labels: np.ndarray, parts: int = 2) -> float:
    """ECE after temperature scaling, each part scaled by a temperature fitted on the other parts."""
    part_of = np.arange(len(labels)) % parts
    calibrated = np.empty_like(logits)
    for part in range(parts):
        held = part_of == part
        temperature = fit_temperature(logits[~held], labels[~held])
        calibrated[held] = softmax_with_temperature(logits[held], temperature)
    return expected_calibration_error(calibrated, labels)


def calibration(logits: np.ndarray, labels: np.ndarray) -> dict[str, float | str | int]:
    temperature = fit_temperature(logits, labels)
    return {
        "method": "temperature scaling fitted on FER+ valid faces with a single top label",
        "bins": ECE_BINS,
        "temperature": temperature,
        "ece_before": expected_calibration_error(softmax_with_temperature(logits, 1.0), labels),
        "ece_after_cross_fitted": cross_fitted_ece(logits, labels),
        "ece_after_in_sample": expected_calibration_error(
            softmax_with_temperature(logits, temperature), labels
        ),
    }


def robustness(model: keras.Model, images: list[np.ndarray], labels8: np.ndarray, spec: InputSpec) -> dict:
    """FER+ valid 8-way and 7-way accuracy after each perturbation of the input photo."""
    emotional = labels8 != LABELS_WITH_NEUTRAL.index(NEUTRAL)
    labels7 = np.array([EMOTIONS.index(LABELS_WITH_NEUTRAL[i]) for i in labels8[emotional]])
    out = {}
    for name, perturb in {"none": lambda image: image, **PERTURBATIONS}.items():
        x = preprocessing.batch_to_model_input([perturb(image) for image in images], spec)
        logits = logits_of(model, x)
        out[name] = {
            "accuracy_8way": float((logits.argmax(1) == labels8).mean()),
            "accuracy_7way": float((logits[emotional][:, SEVEN].argmax(1) == labels7).mean()),
        }
    return out


def evaluate_network(model8: keras.Model, valid: VoteDataset, spec: InputSpec) -> dict:
    """FER+ valid clear faces: 8-way and 7-way metrics after calibration, calibration, robustness."""
    labels8 = valid.majority()
    x = preprocessing.batch_to_model_input(valid.images, spec)
    logits8 = logits_of(model8, x)
    emotional = labels8 != LABELS_WITH_NEUTRAL.index(NEUTRAL)
    labels7 = np.array([EMOTIONS.index(LABELS_WITH_NEUTRAL[i]) for i in labels8[emotional]])
    logits7 = logits8[emotional][:, SEVEN]
    cal8, cal7 = calibration(logits8, labels8), calibration(logits7, labels7)
    robust = robustness(model8, valid.images, labels8, spec)
    # Test-time flip: would averaging the logits of the face and its mirror image pay for twice the compute?
    mean = (logits8 + logits_of(model8, x[:, :, ::-1])) / 2
    robust["test_time_flip_average"] = {
        "accuracy_8way": float((mean.argmax(1) == labels8).mean()),
        "accuracy_7way": float((mean[emotional][:, SEVEN].argmax(1) == labels7).mean()),
    }
    return {
        "ferplus_valid_8way": classification_metrics(
            labels8, softmax_with_temperature(logits8, cal8["temperature"]), LABELS_WITH_NEUTRAL
        ),
        "ferplus_valid_7way": classification_metrics(
            labels7, softmax_with_temperature(logits7, cal7["temperature"]), EMOTIONS
        ),
        "calibration": cal8,
        "calibration_7way": cal7,
        "robustness_ferplus_valid": robust,
    }


def run_final(args) -> int:
    """Fine-tune on every CK+48 subject, calibrate, evaluate on FER+ valid, write both models: the
    neutral model from the FER+ base, the default from the fine-tuned network."""
    from training.run import export_model

    arch, spec, fer_train, fer_valid, ck, groups = _load_sources(args)
    cv_path = args.out / "cv.json"
    if not cv_path.is_file():
        raise SystemExit(f"error: {cv_path} is missing; run the cv stage first")
    cv = json.loads(cv_path.read_text(encoding="utf-8"))
    base_summary = json.loads((args.out / "base-summary.json").read_text(encoding="utf-8"))
    base_history = base_log(args.out / "base-log.csv")
    started = time.perf_counter()
    model8 = fine_tune(
        arch,
        args.out / "base-best.weights.h5",
        ck_arrays(ck, spec),
        ferplus_arrays(fer_train, spec),
        _fine_tune_recipe(args),
        seed=args.seed,
    )
    wall = time.perf_counter() - started

    keep = np.flatnonzero(fer_valid.top_label_mask())
    valid = fer_valid.subset(keep)
    base8 = arch.build(len(LABELS_WITH_NEUTRAL))
    base8.load_weights(args.out / "base-best.weights.h5")
    # The neutral model is the FER+ network itself: fine-tuning on CK+48, which has no neutral face,
    # costs it most of its neutral recall. The default (seven emotions, no neutral to lose) is the
    # fine-tuned network: better on posed faces and on FER+'s rare classes.
    neutral_eval = evaluate_network(base8, valid, spec)
    default_eval = evaluate_network(model8, valid, spec)
    subject_cv = {
        k: cv[k]
        for k in (
            "folds",
            "folds_run",
            "seed",
            "mean_accuracy",
            "std_accuracy",
            "mean_accuracy_before_fine_tuning",
            "per_fold",
            "ece_out_of_fold",
        )
    }
    subject_cv["per_class_f1"] = {c: v["f1"] for c, v in cv["pooled"]["per_class"].items()}
    subject_cv["confusion_matrix"] = cv["pooled"]["confusion_matrix"]
    dataset = {
        "sources": {
            "ferplus_train": {
                "path": str(args.ferplus / "train"),
                "faces": len(fer_train),
                "dropped": fer_train.dropped,
                "majority_counts": dict(
                    zip(
                        LABELS_WITH_NEUTRAL,
                        np.bincount(fer_train.majority(), minlength=8).tolist(),
                        strict=True,
                    )
                ),
                "targets": "vote distribution over the eight labels (soft)",
            },
            "ckplus48": {
                "path": str(args.ckplus),
                "images": len(ck),
                "subjects": len(np.unique(groups)),
                "class_counts": ck.class_counts(),
                "targets": "one-hot (peak frames; no neutral)",
                "fingerprint_sha256": ck.fingerprint(),
            },
        },
        "model_selection_and_calibration": {
            "path": str(args.ferplus / "valid"),
            "faces_with_single_top_label": len(valid),
            "use": "base epoch selection (early stopping) and temperature fitting; never trained on",
        },
    }
    training = {
        "recipe": "python -m training.real_faces base|cv|final (make train-default)",
        "protocol": "FER+ train, epoch and temperature chosen on FER+ valid; CK+48 10-fold subject CV",
        "base": {
            **{k: v for k, v in base_summary.items() if k != "history"},
            "epochs_run": len(base_history["loss"]),
            "best_epoch": int(np.argmax(base_history["val_accuracy"])) + 1,
            "best_val_accuracy": max(base_history["val_accuracy"]),
        },
        "history": base_history,
        "fine_tune": {
            **dataclasses.asdict(_fine_tune_recipe(args)),
            "wall_seconds": round(wall, 1),
            "seed": args.seed,
        },
        "mixing": "each fine-tuning face from CK+48 with probability ck_share, else a FER+ training face",
        "class_balance": "FER+ and CK+48 faces weighted by (largest class / own class)^0.5, capped at 3",
        "augmentation": "flip, rotation ±15°, zoom, shift, brightness, contrast, blur, JPEG 30-95, occlusion",
        "optimizer": "AdamW (weight decay 0.01), warm-up + cosine learning rate",
        "loss": "categorical cross-entropy on soft targets",
    }
    ferplus_8, cal8 = neutral_eval["ferplus_valid_8way"], neutral_eval["calibration"]
    ferplus_7, cal7 = default_eval["ferplus_valid_7way"], default_eval["calibration_7way"]
    neutral_path = export_model(
        with_temperature(base8, cal8["temperature"]),
        args.models / f"{args.name}_neutral.h5",
        labels=LABELS_WITH_NEUTRAL,
        architecture=arch.name,
        training={**training, "network": "the FER+ base model, not fine-tuned on CK+48", "fine_tune": None},
        dataset={**dataset, "sources": {"ferplus_train": dataset["sources"]["ferplus_train"]}},
        metrics={
            **neutral_eval,
            "ckplus48_unseen_accuracy": cv["mean_accuracy_before_fine_tuning"],
        },
    )
    default_path = export_model(
        with_temperature(without_neutral(model8, arch), cal7["temperature"]),
        args.models / f"{args.name}.h5",
        labels=EMOTIONS,
        architecture=arch.name,
        training={**training, "network": "the FER+ base fine-tuned on CK+48, its neutral output removed"},
        dataset=dataset,
        metrics={
            "ferplus_valid_7way": ferplus_7,
            "calibration": cal7,
            "robustness_ferplus_valid": default_eval["robustness_ferplus_valid"],
            "ckplus48_subject_cv": subject_cv,
        },
    )
    for title, metrics, names, stem in (
        ("FER+ valid, 8-way", ferplus_8, LABELS_WITH_NEUTRAL, f"{args.name}_neutral"),
        ("FER+ valid, 7-way", ferplus_7, EMOTIONS, args.name),
    ):
        plot_confusion_matrix(
            metrics["confusion_matrix"],
            names,
            f"{title}: {metrics['accuracy']:.4f}",
            args.models / f"{stem}.ferplus-confusion.png",
        )
    plot_history(
        base_history, f"{arch.name} on FER+ (valid: 8-way accuracy)", args.models / f"{args.name}.curves.png"
    )
    plot_confusion_matrix(
        cv["pooled"]["confusion_matrix"],
        EMOTIONS,
        f"CK+48 {cv['folds']}-fold subject CV: {cv['mean_accuracy']:.4f}",
        args.models / f"{args.name}.cv-confusion.png",
    )
    print(f"wrote {default_path} and {neutral_path}")
    print(
        f"FER+ valid: neutral model 8-way {ferplus_8['accuracy']:.4f} ({ferplus_8['n']} faces), 7-way "
        f"{neutral_eval['ferplus_valid_7way']['accuracy']:.4f}; default 7-way {ferplus_7['accuracy']:.4f} "
        f"({ferplus_7['n']} faces)"
    )
    for ways, cal in (("8-way", cal8), ("7-way", cal7)):
        print(
            f"ECE {ways}: {cal['ece_before']:.4f} -> {cal['ece_after_cross_fitted']:.4f} cross-fitted "
            f"at T={cal['temperature']:.3f}"
        )
    for name, values in default_eval["robustness_ferplus_valid"].items():
        print(
            f"robustness (default) {name}: 8-way {values['accuracy_8way']:.4f}, "
            f"7-way {values['accuracy_7way']:.4f}"
        )
    return 0


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.real_faces", description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("base", "cv", "final"))
    parser.add_argument("--ferplus", type=Path, default=Path("../shared/data/FERPlus"))
    parser.add_argument("--ckplus", type=Path, default=Path("../shared/data/CK+48"))
    parser.add_argument("--arch", default="fer-s2")
    parser.add_argument("--out", type=Path, default=Path("runs/real"), help="work folder (checkpoints, logs)")
    parser.add_argument("--epochs", type=int, default=18)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--patience", type=int, default=8, help="epochs without a better FER+ valid accuracy")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--folds", type=int, default=10, help="cv: CK+48 subject folds")
    parser.add_argument("--max-folds", type=int, help="cv: run only the first N folds")
    parser.add_argument("--fine-tune-epochs", type=int, help="cv, final: fine-tuning epochs (default 3)")
    parser.add_argument("--models", type=Path, default=Path("models"), help="final: where the models go")
    parser.add_argument("--name", default="emotion_cnn", help="final: NAME.h5 (7-way) and NAME_neutral.h5")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stages = {"base": run_base, "cv": run_cv, "final": run_final}
    return stages[args.stage](args)


if __name__ == "__main__":
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

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

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app import preprocessing
from app.preprocessing import InputSpec
from training.architectures import Architecture
from training.augment import augment_web_batch, random_jpeg, web_photo_augmenter
from training.ferplus import VoteDataset, load_ferplus

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
        cache = cache_dir / f"ferplus-{folder.name}.npz"
        if cache.is_file():
            saved = np.load(cache, allow_pickle=False)
            return VoteDataset(
                images=list(saved["images"]),
                votes=saved["votes"],
                labels=list(saved["labels"]),
                names=list(saved["names"]),
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


def _parser():
    import argparse

    parser = argparse.ArgumentParser(prog="python -m training.real_faces", description=__doc__.split("\n")[0])
    parser.add_argument("stage", choices=("base",))
    parser.add_argument("--ferplus", type=Path, default=Path("../shared/data/FERPlus"))
    parser.add_argument("--ckplus", type=Path, default=Path("../shared/data/CK+48"))
    parser.add_argument("--arch", default="fer-s2")
    parser.add_argument("--out", type=Path, default=Path("runs/real"), help="work folder (checkpoints, logs)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--patience", type=int, default=8, help="epochs without a better FER+ valid accuracy")
    parser.add_argument("--seed", type=int, default=42)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stages = {"base": run_base}
    return stages[args.stage](args)


if __name__ == "__main__":
    import os
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())

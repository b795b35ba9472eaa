"""Fitting one model on preprocessed arrays with an architecture's recipe."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from training.architectures import Architecture, Recipe
from training.augment import face_augmenter
from training.splits import random_split, subject_split

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    model: keras.Model
    history: dict[str, list[float]]
    epochs_run: int


def _dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool, augment: bool, seed: int):
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        data = data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if augment:
        augmenter = face_augmenter(seed)
        data = data.map(
            lambda images, targets: (tf.clip_by_value(augmenter(images, training=True), 0.0, 1.0), targets),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return data.prefetch(tf.data.AUTOTUNE)


def _learning_rate(recipe: Recipe, *, steps_per_epoch: int) -> float | keras.optimizers.schedules.CosineDecay:
    """The recipe's rate; with the cosine schedule it decays to zero over all epochs' steps."""
    if recipe.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(recipe.learning_rate, recipe.epochs * steps_per_epoch)
    return recipe.learning_rate


def _class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = len(labels) / (num_classes * np.maximum(counts, 1.0))
    return {i: float(w) for i, w in enumerate(weights)}


def fit(
    architecture: Architecture,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    recipe: Recipe,
    seed: int,
    groups: np.ndarray | None = None,
    verbose: int = 1,
) -> FitResult:
    """Train a fresh model; a validation fraction is carved from the training groups. With
    ``recipe.members`` > 1, that many are trained (seeds ``seed``, ``seed + 1``, ...) and joined into one
    model that averages their logits."""
    if recipe.members < 1:
        raise ValueError(f"members must be at least 1, got {recipe.members}")
    if recipe.members > 1:
        one = dataclasses.replace(recipe, members=1)
        results = [
            fit(
                architecture,
                x,
                labels,
                num_classes=num_classes,
                recipe=one,
                seed=seed + i,
                groups=groups,
                verbose=verbose,
            )
            for i in range(recipe.members)
        ]
        history = {f"member{i}_{key}": v for i, r in enumerate(results) for key, v in r.history.items()}
        return FitResult(
            model=average_logits([r.model for r in results]),
            history=history,
            epochs_run=max(r.epochs_run for r in results),
        )
    keras.utils.set_random_seed(seed)
    model = architecture.build(num_classes)
    train_idx = np.arange(len(x))
    validation = None
    callbacks: list[keras.callbacks.Callback] = []
    if recipe.validation_fraction > 0:
        carve = (
            subject_split(labels, groups, test_size=recipe.validation_fraction, seed=seed)
            if groups is not None
            else random_split(labels, test_size=recipe.validation_fraction, seed=seed)
        )
        train_idx, val_idx = carve.train, carve.test
        validation = _dataset(
            x[val_idx],
            keras.utils.to_categorical(labels[val_idx], num_classes),
            256,
            shuffle=False,
            augment=False,
            seed=seed,
        )
        if recipe.lr_schedule == "plateau":
            callbacks.append(
                keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=5, min_lr=1e-5)
            )
        if recipe.early_stopping_patience:
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=recipe.early_stopping_patience,
                    restore_best_weights=True,
                    start_from_epoch=recipe.early_stopping_patience,
                )
            )
    train = _dataset(
        x[train_idx],
        keras.utils.to_categorical(labels[train_idx], num_classes),
        recipe.batch_size,
        shuffle=True,
        augment=recipe.augment,
        seed=seed,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(_learning_rate(recipe, steps_per_epoch=len(train))),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        train,
        validation_data=validation,
        epochs=recipe.epochs,
        callbacks=callbacks,
        class_weight=_class_weights(labels[train_idx], num_classes) if recipe.class_weighted else None,
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=verbose,
    )
    values = {key: [float(v) for v in vals] for key, vals in history.history.items()}
    return FitResult(model=model, history=values, epochs_run=len(values.get("loss", [])))


def average_logits(models: list[keras.Model]) -> keras.Model:
    """One model whose logits are the mean of the members' logits (their layer named ``logits``)."""
    inputs = keras.Input(shape=models[0].input_shape[1:], name="image")
    member_logits = [
        keras.Model(m.input, m.get_layer("logits").output, name=f"member{i}")(inputs)
        for i, m in enumerate(models)
    ]
    logits = keras.layers.Average(name="logits")(member_logits)
    outputs = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, outputs, name=f"{models[0].name}_x{len(models)}")


def predict_probabilities(model: keras.Model, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """The same model with its logits divided by ``temperature`` before the softmax."""
    logits = model.get_layer("logits").output
    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature")(logits)
    outputs = keras.layers.Softmax(name="calibrated_probabilities")(scaled)
    return keras.Model(model.input, outputs, name=model.name)

"""False accepts and false rejects of the expression challenge, simulated on CK+48 and FER+ faces.

    python -m bench.challenge_eval [--pool a,b,c] [--ckplus DIR] [--ferplus DIR] [--model PATH] [--trials N]

Every image is classified once with the service's own code (``app.core.pipeline.prepare``: decoding,
face detection, preprocessing; the model's ``predict_batch``) and given its appearance signature
(``app.core.tracking.face_signatures``). Attempts are then sequences of those images fed, frame by frame,
to the same ``FaceTracker`` and ``ChallengeAttempt`` that judge a ``/stream?challenge=ID`` connection;
nothing goes over HTTP. Per setting (threshold, hold_frames, min_similarity) and per kind of attempt it
prints the share that passed: for genuine attempts 1 - that is the false reject rate, for attacks it is
the false accept rate.

Attempts (each trial draws a challenge from the pool as the service does, 2-3 steps, and a CK+48
subject who posed every step; a step is shown for hold_frames + 2 frames, the sequence's frames cycled):

- genuine: the subject's own frames, one CK+48 sequence per step, in the challenge's order;
- photo: the first frame of the first step repeated (a replayed photo);
- wrong_order: the subject's genuine frames, steps in another order;
- swapped_ckplus: each step shown by another CK+48 subject (genuine expressions, different people);
- ferplus_photos: each step shown by a FER+ validation photo whose majority label is that step
  (a stack of photos of strangers with the right expressions);
- ferplus_random: a different random FER+ validation photo at every frame.
"""

from __future__ import annotations

import argparse
import csv
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

from app.core.challenge import Challenge, ChallengeAttempt
from app.core.config import DEFAULT_MODEL_PATH, REPO_ROOT
from app.core.faces import Box, make_detector
from app.core.inference import LoadedModel, load_model
from app.core.pipeline import prepare
from app.core.test_time_flip import with_test_time_flip
from app.core.tracking import Detection, FaceTracker, face_signatures

POOL = "happy,surprise,neutral,sadness"  # the default EMOTION_CHALLENGE_POOL
FERPLUS_NAMES = {"happiness": "happy"}  # FER+ column -> this project's label
MAX_PIXELS = 40_000_000
THRESHOLDS = (0.5, 0.7, 0.9)
HOLDS = (2, 3)  # a CK+48 sequence has 3 frames: a longer hold would only repeat them
SIMILARITIES = (0.5, 0.65, 0.75, 0.85)
KINDS = ("genuine", "photo", "wrong_order", "swapped_ckplus", "ferplus_photos", "ferplus_random")


@dataclass(frozen=True)
class Frame:
    box: Box | None
    probabilities: np.ndarray
    signature: np.ndarray


def classify_files(model: LoadedModel, files: list[Path], detector_name: str, flip: bool) -> list[Frame]:
    # The service's defaults: EMOTION_FACE_DETECTOR=auto, EMOTION_MIN_FACE_CONFIDENCE=0.5, no margin or
    # alignment.
    detector = make_detector(detector_name, min_confidence=0.5)  # type: ignore[arg-type]
    regions, boxes, signatures = [], [], []
    for path in files:
        data = path.read_bytes()
        prepared = prepare(
            data,
            spec=model.spec,
            detector=detector,
            mode="largest",
            max_pixels=MAX_PIXELS,
            margin=0,
            align=False,
        )
        face, x = prepared.regions[0]
        box = None if face is None else face.box
        regions.append(x)
        boxes.append(box)
        signatures.append(face_signatures(data, [box], max_pixels=MAX_PIXELS)[0])
    probabilities = []
    for start in range(0, len(regions), 256):
        batch = np.stack(regions[start : start + 256])
        if not flip:
            probabilities.extend(model.predict_batch(batch))
            continue
        # EMOTION_TEST_TIME_FLIP (on by default): each face and its mirror, averaged as the service does.
        probabilities.extend(with_test_time_flip(model.predict_batch)(batch))
    return [Frame(b, p, s) for b, p, s in zip(boxes, probabilities, signatures, strict=True)]


def ckplus_sequences(folder: Path, emotions: set[str]) -> dict[str, dict[str, list[Path]]]:
    """subject -> emotion -> the frames of one sequence (the first of that emotion)."""
    found: dict[str, dict[str, list[Path]]] = defaultdict(dict)
    for emotion in sorted(emotions):
        by_sequence: dict[tuple[str, str], list[Path]] = defaultdict(list)
        for path in sorted((folder / emotion).glob("*.png")):
            subject, sequence, _ = path.stem.split("_")
            by_sequence[(subject, sequence)].append(path)
        for (subject, _), paths in sorted(by_sequence.items()):
            found[subject].setdefault(emotion, paths)
    return found


def ferplus_by_label(folder: Path, labels: set[str], min_votes: int = 6) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = defaultdict(list)
    with (folder / "valid" / "labels.csv").open(newline="") as rows:
        for row in csv.DictReader(rows):
            votes = {FERPLUS_NAMES.get(k, k): int(v) for k, v in row.items() if k != "image"}
            top = max(votes, key=votes.__getitem__)
            if top in labels and votes[top] >= min_votes:
                out[top].append(folder / "valid" / row["image"])
    return out


def judge(frames: list[Frame], steps: tuple[str, ...], labels: list[str], setting: tuple) -> bool:
    threshold, hold, similarity = setting
    tracker = FaceTracker(half_life=0, min_similarity=similarity)
    attempt = ChallengeAttempt(Challenge("sim", steps, expires_at=float("inf")), labels, hold, threshold)
    for i, frame in enumerate(frames):
        tracked = tracker.update([Detection(frame.box, frame.probabilities, frame.signature)])
        if attempt.observe(tracked, now=i * 0.1) != "pending":
            break
    return attempt.status == "passed"


def shown(frames: list[Frame], count: int) -> list[Frame]:
    return [frames[i % len(frames)] for i in range(count)]


def attempts(
    steps: tuple[str, ...],
    subject: str,
    ck: dict[str, dict[str, list[Frame]]],
    fer: dict[str, list[Frame]],
    fer_all: list[Frame],
    hold: int,
    rng: random.Random,
) -> Iterator[tuple[str, list[Frame]]]:
    per_step = hold + 2
    own = ck[subject]
    yield "genuine", [f for step in steps for f in shown(own[step], per_step)]
    yield "photo", [own[steps[0]][0]] * (per_step * len(steps))
    order = list(steps)
    while tuple(order) == steps:
        rng.shuffle(order)
    yield "wrong_order", [f for step in order for f in shown(own[step], per_step)]
    swapped, previous = [], subject
    for step in steps:
        others = [s for s, seqs in ck.items() if step in seqs and s != previous]
        previous = rng.choice(others)
        swapped.extend(shown(ck[previous][step], per_step))
    yield "swapped_ckplus", swapped
    if all(fer.get(step) for step in steps):
        yield "ferplus_photos", [f for step in steps for f in [rng.choice(fer[step])] * per_step]
    yield "ferplus_random", [rng.choice(fer_all) for _ in range(per_step * len(steps))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = REPO_ROOT.parent / "shared" / "data"
    parser.add_argument("--ckplus", type=Path, default=data / "CK+48")
    parser.add_argument("--ferplus", type=Path, default=data / "FERPlus")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", default="auto", choices=("auto", "yunet", "haar"))
    parser.add_argument(
        "--no-flip", action="store_true", help="no test-time flip (EMOTION_TEST_TIME_FLIP=false)"
    )
    parser.add_argument("--pool", default=POOL, help=f"comma-separated expressions (default: {POOL})")
    args = parser.parse_args()

    started = time.perf_counter()
    model = load_model(args.model)
    pool = [label for label in args.pool.split(",") if label in model.labels]
    sequences = ckplus_sequences(args.ckplus, set(pool) & {p.name for p in args.ckplus.iterdir()})
    ck_files = sorted({p for seqs in sequences.values() for paths in seqs.values() for p in paths})
    fer_paths = ferplus_by_label(args.ferplus, set(pool))
    rng = random.Random(args.seed)
    fer_random_paths = rng.sample(sorted(p for ps in fer_paths.values() for p in ps), 400)
    fer_files = sorted({p for ps in fer_paths.values() for p in ps[:200]} | set(fer_random_paths))
    frames = dict(
        zip(
            ck_files + fer_files,
            classify_files(model, ck_files + fer_files, args.detector, not args.no_flip),
            strict=True,
        )
    )
    ck = {s: {e: [frames[p] for p in ps] for e, ps in seqs.items()} for s, seqs in sequences.items()}
    fer = {label: [frames[p] for p in ps[:200]] for label, ps in fer_paths.items()}
    fer_all = [frames[p] for p in fer_random_paths]
    no_face = sum(frame.box is None for frame in frames.values())
    print(
        f"model {model.model_id}; detector {args.detector}; flip {not args.no_flip}; pool {pool}; "
        f"{len(ck_files)} CK+48 frames of {len(ck)} subjects, "
        f"{len(fer_files)} FER+ valid photos; no face found in {no_face} images; "
        f"classified in {time.perf_counter() - started:.0f} s"
    )

    # The trials: a challenge drawn as the service draws it, and a subject who posed each of its steps.
    trials = []
    while len(trials) < args.trials:
        steps = tuple(rng.sample(pool, rng.randint(2, 3)))
        eligible = [s for s, seqs in ck.items() if all(step in seqs for step in steps)]
        if eligible:
            trials.append((steps, rng.choice(eligible), rng.randrange(2**31)))

    print("\n| threshold | hold | min_similarity | " + " | ".join(KINDS) + " |")
    print("|---|---|---|" + "---|" * len(KINDS))
    for setting in product(THRESHOLDS, HOLDS, SIMILARITIES):
        passed: dict[str, list[bool]] = defaultdict(list)
        for steps, subject, seed in trials:
            for kind, sequence in attempts(steps, subject, ck, fer, fer_all, setting[1], random.Random(seed)):
                passed[kind].append(judge(sequence, steps, model.labels, setting))
        cells = []
        for kind in KINDS:
            results = passed[kind]
            share = sum(results) / len(results) if results else float("nan")
            # genuine: false rejects (did not pass); attacks: false accepts (passed)
            cells.append(f"{1 - share:.1%}" if kind == "genuine" else f"{share:.1%}")
        print(f"| {setting[0]} | {setting[1]} | {setting[2]} | " + " | ".join(cells) + " |")
    print(f"\n{len(trials)} trials per setting; genuine column: false rejects, the others: false accepts")


if __name__ == "__main__":
    main()

"""Does detect -> crop -> classify on a photo give the answer the model gives on the face itself?

    python -m bench.face_crops [--detector yunet|haar] [--model models/emotion_cnn.h5]
                               [--ferplus ../shared/data/FERPlus] [--limit N] [--align] [--fit]

Each FER+ valid face with one single top label among the model's labels (48x48 gray, 2,118 for the
seven-emotion model) is placed into a synthetic 640x480 colour photo: enlarged to a side drawn from
80-240 px, at a random position, over a random background (smooth colour gradients, noise, and
textures from scikit-image's sample images without people), a third of the photos turned by 5-25
degrees about the face, and the photo saved as a JPEG (quality 90). The service's own path then runs
on it (``make_detector``, ``face_crop`` with the detector's framing, ``to_model_input``) and the
model's answer is compared with its answer on the original 48x48 face.

A face counts as detected when the largest face found has its centre inside the placed square. The
figures: detection rate, accuracy on the original faces, accuracy through the photo (a missed face is
classified on the whole photo, as the service does), the loss between the two, the loss on the
detected faces only, and the detector's time per photo. Then the 48x48 faces sent as they are, as a
client with face crops would (found in the crop, reframed, classified), against the whole crop. The
two shared real photos are checked too.

``--fit`` measures the detector's framing instead: from the detected upright faces, the medians of
(placed side / box width), (placed side / box height) and (square centre - box centre) / side, which
are the detector's :class:`~app.core.faces.Framing`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.core.faces import Face, FaceDetector, Framing, face_crop, make_detector
from app.core.imaging import decode_image
from app.core.inference import load_model
from app.core.preprocessing import to_model_input
from training.ferplus import load_ferplus

REPO_ROOT = Path(__file__).resolve().parents[1]
PHOTO_W, PHOTO_H = 640, 480
SIDES = (80, 240)
ROTATED_SHARE = 1 / 3
ANGLES = (5.0, 25.0)
JPEG_QUALITY = 90
# scikit-image sample images with no person in them (astronaut and camera have faces).
TEXTURES = ("coffee", "chelsea", "rocket", "hubble_deep_field", "coins", "brick", "grass", "gravel", "moon")


@dataclass(frozen=True)
class Placed:
    photo: np.ndarray  # RGB
    cx: float  # the placed face square's centre and side, in photo pixels
    cy: float
    side: float
    angle: float


def _textures() -> list[np.ndarray]:
    from skimage import data  # a dev dependency: sample images shipped inside the wheel

    out = []
    for name in TEXTURES:
        image = getattr(data, name)()
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image[..., :3]
        out.append(cv2.resize(image, (PHOTO_W, PHOTO_H), interpolation=cv2.INTER_AREA))
    return out


def _background(rng: np.random.Generator, textures: list[np.ndarray]) -> np.ndarray:
    kind = rng.integers(3)
    if kind == 0:  # a texture from a real photo, flipped or not
        image = textures[rng.integers(len(textures))]
        return np.ascontiguousarray(image[:, ::-1] if rng.random() < 0.5 else image).copy()
    ys, xs = np.mgrid[0:PHOTO_H, 0:PHOTO_W].astype(np.float32)
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (xs * rng.uniform(-1, 1) + ys * rng.uniform(-1, 1)) / (PHOTO_W + PHOTO_H) + 0.5
    gradient = start + (end - start) * np.clip(t, 0, 1)[..., None]
    if kind == 2:  # with noise
        gradient += rng.normal(0, rng.uniform(5, 30), gradient.shape)
    return np.clip(gradient, 0, 255).astype(np.uint8)


def place(face: np.ndarray, rng: np.random.Generator, textures: list[np.ndarray]) -> Placed:
    """``face`` (48x48 gray) enlarged into a synthetic photo, maybe turned, through a JPEG."""
    photo = _background(rng, textures)
    side = int(rng.integers(*SIDES))
    patch = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
    x = int(rng.integers(0, PHOTO_W - side))
    y = int(rng.integers(0, PHOTO_H - side))
    photo[y : y + side, x : x + side] = patch
    cx, cy = x + side / 2, y + side / 2
    angle = 0.0
    if rng.random() < ROTATED_SHARE:
        angle = float(rng.uniform(*ANGLES) * rng.choice([-1, 1]))
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        photo = cv2.warpAffine(photo, matrix, (PHOTO_W, PHOTO_H), borderMode=cv2.BORDER_REFLECT)
    ok, jpeg = cv2.imencode(
        ".jpg", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    assert ok
    photo = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return Placed(photo, cx, cy, side, angle)


def _hit(face: Face, placed: Placed) -> bool:
    box = face.box
    bx, by = box.x + box.width / 2, box.y + box.height / 2
    half = placed.side / 2
    return abs(bx - placed.cx) <= half and abs(by - placed.cy) <= half


def fit_framing(rows: list[tuple[Face, Placed]]) -> Framing:
    """The framing that maps the detector's boxes on upright faces to the placed squares (medians)."""
    upright = [(face, placed) for face, placed in rows if placed.angle == 0.0]
    if not upright:
        raise SystemExit("no upright face was detected: nothing to fit")
    scale_w = float(np.median([placed.side / face.box.width for face, placed in upright]))
    scale_h = float(np.median([placed.side / face.box.height for face, placed in upright]))
    shift_y = float(
        np.median(
            [(placed.cy - (face.box.y + face.box.height / 2)) / placed.side for face, placed in upright]
        )
    )
    return Framing(scale_w=round(scale_w, 3), scale_h=round(scale_h, 3), shift_y=round(shift_y, 3))


def _shared_photos(detector: FaceDetector, folder: Path) -> None:
    for path in sorted(folder.glob("*.jpg")):
        faces = detector.detect(decode_image(path.read_bytes(), max_pixels=40_000_000))
        found = ", ".join(f"{f.box} score {f.confidence}" for f in faces) or "NONE"
        print(f"  {path.name}: {len(faces)} face(s): {found}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--detector", choices=("yunet", "haar"), default="yunet")
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "emotion_cnn.h5")
    parser.add_argument("--ferplus", type=Path, default=Path("../shared/data/FERPlus"))
    parser.add_argument("--photos", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--limit", type=int, default=0, help="use the first N faces only (0: all)")
    parser.add_argument("--min-confidence", type=float, default=0.6)
    parser.add_argument("--margin", type=float, default=0.0)
    parser.add_argument("--align", action="store_true", help="turn faces so the eyes are level")
    parser.add_argument("--fit", action="store_true", help="measure the detector's framing")
    parser.add_argument(
        "--framing", type=_framing, default=None, help="SCALE_W,SCALE_H,SHIFT_Y instead of the detector's own"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = load_model(args.model)
    detector = make_detector(args.detector, min_confidence=args.min_confidence)
    framing = args.framing or detector.framing
    data = load_ferplus(args.ferplus / "valid", model.labels)
    keep = np.flatnonzero(data.top_label_mask())
    if args.limit:
        keep = keep[: args.limit]
    truth = data.majority()[keep]
    rng = np.random.default_rng(args.seed)
    textures = _textures()

    direct_inputs, photo_inputs, detected, hits, angles = [], [], 0, [], []
    seconds = 0.0
    for index in keep:
        face = data.images[index]
        face = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY) if face.ndim == 3 else face
        placed = place(face, rng, textures)
        started = time.perf_counter()
        found = detector.detect(placed.photo)
        seconds += time.perf_counter() - started
        direct_inputs.append(to_model_input(face, model.spec))
        angles.append(placed.angle)
        if found and _hit(found[0], placed):
            detected += 1
            hits.append((found[0], placed))
            crop = face_crop(placed.photo, found[0], framing, margin=args.margin, align=args.align)
            photo_inputs.append(to_model_input(crop, model.spec))
        else:
            hits.append(None)
            photo_inputs.append(to_model_input(placed.photo, model.spec))

    count = len(keep)
    print(f"detector {args.detector}, framing {framing}, align {args.align}, margin {args.margin}")
    print(f"faces: {count} FER+ valid faces into {PHOTO_W}x{PHOTO_H} JPEG photos (seed {args.seed})")
    if args.fit:
        print("fitted framing:", fit_framing([hit for hit in hits if hit is not None]))
        return

    def accuracy(inputs: list[np.ndarray], rows: np.ndarray) -> float:
        predicted = np.concatenate(
            [
                model.predict_batch(np.stack([inputs[i] for i in rows[s : s + 256]]))
                for s in range(0, len(rows), 256)
            ]
        ).argmax(axis=1)
        return float((predicted == truth[rows]).mean()) if len(rows) else float("nan")

    everyone = np.arange(count)
    found_rows = np.array([i for i, hit in enumerate(hits) if hit is not None], dtype=int)
    turned = np.array([i for i, a in enumerate(angles) if a != 0.0], dtype=int)
    turned_found = np.intersect1d(turned, found_rows)
    direct, through = accuracy(direct_inputs, everyone), accuracy(photo_inputs, everyone)
    print(
        f"detection rate: {detected / count:.1%} ({detected}/{count}); turned faces: "
        f"{len(turned_found) / max(1, len(turned)):.1%} of {len(turned)}"
    )
    print(
        f"accuracy on the original faces: {direct:.1%}; through the photos: {through:.1%}; "
        f"loss {100 * (direct - through):.1f} points"
    )
    loss_found = accuracy(direct_inputs, found_rows) - accuracy(photo_inputs, found_rows)
    loss_turned = accuracy(direct_inputs, turned_found) - accuracy(photo_inputs, turned_found)
    print(
        f"loss on the detected faces: {100 * loss_found:.1f} points; on the detected turned faces: "
        f"{100 * loss_turned:.1f} points"
    )
    print(f"detector time: {1000 * seconds / count:.1f} ms per photo (this machine, load {_load()})")
    _crops_as_sent(model, detector, framing, [data.images[i] for i in keep], truth, direct)
    print("shared real photos:")
    _shared_photos(detector, args.photos)


def _crops_as_sent(
    model, detector: FaceDetector, framing: Framing, faces: list, truth, direct: float
) -> None:
    """The 48x48 faces sent as they are (a client of a face-crop service): found, reframed, classified."""
    inputs, found = [], 0
    for face in faces:
        hits = detector.detect(face)
        if hits:
            found += 1
            face = face_crop(face, hits[0], framing)
        inputs.append(to_model_input(face, model.spec))
    predicted = np.concatenate(
        [model.predict_batch(np.stack(inputs[s : s + 256])) for s in range(0, len(inputs), 256)]
    ).argmax(axis=1)
    reframed = float((predicted == truth).mean())
    print(
        f"48x48 crops sent as they are: face found in {found / len(faces):.1%}; accuracy {reframed:.1%} "
        f"(whole crop: {direct:.1%}; difference {100 * (reframed - direct):+.1f} points)"
    )


def _framing(text: str) -> Framing:
    scale_w, scale_h, shift_y = (float(part) for part in text.split(","))
    return Framing(scale_w=scale_w, scale_h=scale_h, shift_y=shift_y)


def _load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()

"""``emotion-client video IN.mp4 --out frames.csv [--annotated OUT.mp4] [--every N]`` through /stream.

Every Nth frame is encoded as JPEG and sent over the service's WebSocket ``/stream``, one at a time
(each answered before the next: a file is not live, so no frame is dropped). The service tracks the
faces and smooths their probabilities; this command writes one CSV row per processed frame and face,
a PNG plot of each track's smoothed emotions over time and, optionally, the video with the boxes,
track ids and emotions drawn.

Reading and writing video needs OpenCV (``pip install 'emotion-service[video]'``; the service's own
install has it). It is imported only when this command runs: the rest of the client stays light.
The plot uses matplotlib when it is installed, else OpenCV's drawing.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from client.service import UsageError, add_service_arguments, service_options

PALETTE_BGR = [(83, 200, 0), (0, 179, 255), (255, 121, 41), (249, 0, 213), (0, 61, 255), (255, 229, 0)]
JPEG_QUALITY = 90
MAX_PLOTTED_TRACKS = 6


class VideoError(Exception):
    """The video cannot be read or the service refused the stream."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "video",
        help="a video file through /stream: a CSV row per frame and face, a plot, an annotated video",
        description=(
            "Send the frames of a video to the service's WebSocket /stream and write one CSV row per "
            "processed frame and face (track id, box, raw and smoothed probabilities), a PNG plot of each "
            "track's emotions over time, and optionally the video with the faces drawn."
        ),
    )
    parser.add_argument("video", type=Path, metavar="IN")
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write")
    parser.add_argument("--annotated", type=Path, metavar="OUT.mp4", help="write the video with faces drawn")
    parser.add_argument("--plot", type=Path, help="the PNG plot (default: the CSV's name with .png)")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="send every Nth frame (default 1)")
    parser.add_argument(
        "--half-life", type=float, default=3.0, metavar="F", help="smoothing half-life in processed frames"
    )
    add_service_arguments(parser)  # --url, --api-key, --faces, --model, --timeout (--retries: unused)
    parser.set_defaults(run=run, command_parser=parser)


@dataclass
class Track:
    times: list[float] = field(default_factory=list)
    smoothed: list[list[float]] = field(default_factory=list)


def stream_url(base: str) -> str:
    scheme, _, rest = base.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest + "/stream"


def run(args: argparse.Namespace, *, transport: Any = None) -> int:
    """``transport`` (an httpx transport, for the HTTP commands' tests) does not apply to a WebSocket."""
    options = service_options(args)
    if args.every < 1:
        raise UsageError("--every must be 1 or more")
    if args.out.suffix.lower() != ".csv":
        raise UsageError("--out must be a .csv file")
    if not args.video.is_file():
        raise UsageError(f"{args.video}: no such file")
    try:
        import cv2  # the video extra; loaded only for this command
    except ImportError:
        print("the video command needs OpenCV: pip install 'emotion-service[video]'", file=sys.stderr)
        return 2
    try:
        return _run(args, options, cv2)
    except VideoError as exc:
        print(f"{args.video}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, options: Any, cv2: Any) -> int:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    capture = cv2.VideoCapture(str(args.video))
    if not capture.isOpened():
        raise VideoError("OpenCV cannot read this video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    writer = None
    headers = {"X-API-Key": options.api_key} if options.api_key else {}
    config: dict[str, Any] = {"faces": options.faces or "all", "half_life": args.half_life}
    if options.model:
        config["model"] = options.model
    tracks: dict[int, Track] = defaultdict(Track)
    processed = failed = 0
    last_faces: list[dict[str, Any]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            connect(
                stream_url(options.url), additional_headers=headers, open_timeout=options.timeout_s
            ) as ws,
            args.out.open("w", newline="", encoding="utf-8") as out,
            tqdm(total=total, unit="frame", disable=None, file=sys.stderr) as progress,
        ):
            ws.send(json.dumps(config))
            ready = json.loads(ws.recv(timeout=options.timeout_s))
            if ready.get("type") != "ready":
                error = ready.get("error", {})
                raise VideoError(
                    f"the service refused the stream: {error.get('code')}: {error.get('message')}"
                )
            labels: list[str] = ready["labels"]
            rows = csv.writer(out)
            rows.writerow(
                ["frame", "time_s", "track_id", "x", "y", "width", "height", "face_confidence", "emotion"]
                + [f"p_{label}" for label in labels]
                + [f"s_{label}" for label in labels]
            )
            index = 0
            while True:
                ok, image = capture.read()
                if not ok:
                    break
                if index % args.every == 0:
                    encoded, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                    if not encoded:
                        raise VideoError(f"frame {index} could not be encoded as JPEG")
                    ws.send(jpeg.tobytes())
                    message = json.loads(ws.recv(timeout=options.timeout_s))
                    if message.get("type") == "frame":
                        processed += 1
                        last_faces = message["faces"]
                        time_s = round(index / fps, 4)
                        for face in last_faces:
                            box = face["box"] or {}
                            rows.writerow(
                                [index, time_s, face["track_id"]]
                                + [box.get(k, "") for k in ("x", "y", "width", "height")]
                                + [face.get("face_confidence") or "", face["emotion"]]
                                + [round(face["probabilities"][label], 6) for label in labels]
                                + [round(face["smoothed"][label], 6) for label in labels]
                            )
                            track = tracks[face["track_id"]]
                            track.times.append(time_s)
                            track.smoothed.append([face["smoothed"][label] for label in labels])
                    else:
                        failed += 1
                if args.annotated is not None:
                    if writer is None:
                        writer = open_writer(cv2, args.annotated, fps, image)
                    writer.write(draw_faces(cv2, image, last_faces))
                index += 1
                progress.update(1)
    except ConnectionClosed as exc:
        closing = f"{exc.rcvd.code} {exc.rcvd.reason}".strip() if exc.rcvd else "no close code"
        raise VideoError(f"the service closed the stream ({closing})") from None
    except (OSError, TimeoutError) as exc:
        raise VideoError(f"the service at {options.url} did not answer ({exc})") from None
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    plot_path = args.plot or args.out.with_suffix(".png")
    plot_tracks(tracks, labels, plot_path, cv2)
    print(
        f"{index} frames read, {processed} processed, {failed} failed; {len(tracks)} track(s); "
        f"wrote {args.out}, {plot_path}" + (f", {args.annotated}" if args.annotated else ""),
        file=sys.stderr,
    )
    return 0 if failed == 0 else 1


def open_writer(cv2: Any, path: Path, fps: float, image: Any) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise VideoError(f"OpenCV cannot write {path}")
    return writer


def draw_faces(cv2: Any, image: Any, faces: list[dict[str, Any]]) -> Any:
    out = image.copy()
    for face in faces:
        box = face["box"]
        label = f"#{face['track_id']} {face['emotion']} {face['smoothed'][face['emotion']]:.2f}"
        colour = PALETTE_BGR[(max(face["track_id"], 1) - 1) % len(PALETTE_BGR)]
        if box is None:
            cv2.putText(out, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2, cv2.LINE_AA)
            continue
        x, y, w, h = box["x"], box["y"], box["width"], box["height"]
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
        cv2.putText(out, label, (x, max(18, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    return out


def plot_tracks(tracks: dict[int, Track], labels: list[str], path: Path, cv2: Any) -> None:
    """One panel per track (the longest MAX_PLOTTED_TRACKS): each label's smoothed probability over time."""
    chosen = sorted(tracks.items(), key=lambda item: len(item[1].times), reverse=True)[:MAX_PLOTTED_TRACKS]
    chosen.sort()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _plot_with_opencv(chosen, labels, path, cv2)
    rows = max(1, len(chosen))
    figure, axes = plt.subplots(rows, 1, figsize=(9, 2.6 * rows), sharex=True, squeeze=False)
    for axis, (track_id, track) in zip(axes[:, 0], chosen, strict=False):
        for i, label in enumerate(labels):
            axis.plot(track.times, [p[i] for p in track.smoothed], label=label)
        axis.set_ylim(0, 1)
        axis.set_ylabel("probability")
        axis.set_title("whole frame (no face)" if track_id == 0 else f"track #{track_id}", fontsize=10)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=4)
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_with_opencv(chosen: list[tuple[int, Track]], labels: list[str], path: Path, cv2: Any) -> None:
    import numpy as np

    width, panel, margin = 900, 220, 40
    canvas = np.full((max(1, len(chosen)) * panel, width, 3), 255, np.uint8)
    end = max((t.times[-1] for _, t in chosen if t.times), default=1.0) or 1.0
    for row, (track_id, track) in enumerate(chosen):
        top = row * panel
        cv2.putText(
            canvas, f"track #{track_id}", (margin, top + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1
        )
        for i, label in enumerate(labels):
            colour = PALETTE_BGR[i % len(PALETTE_BGR)] if i < len(PALETTE_BGR) else (90, 90, 90)
            points = np.array(
                [
                    (
                        margin + (width - 2 * margin) * t / end,
                        top + panel - margin - (panel - 2 * margin) * p[i],
                    )
                    for t, p in zip(track.times, track.smoothed, strict=True)
                ],
                np.int32,
            )
            cv2.polylines(canvas, [points], False, colour, 2)
            cv2.putText(
                canvas, label, (width - 110, top + 35 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1
            )
    cv2.imwrite(str(path), canvas)

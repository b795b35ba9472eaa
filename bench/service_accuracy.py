"""Accuracy through the running service on FER+ valid faces (web photos, 48x48), as a client sees it.

    python -m bench.service_accuracy [--model models/emotion_cnn.h5] [--ferplus ../shared/data/FERPlus]
                                     [--faces off|largest] [--limit N]

Starts ``python -m app`` on the model, sends every FER+ valid face whose votes have one single top
label (3,351 faces) as PNG through ``POST /predict/batch`` (16 files a request) and compares the
service's answer with the taggers' majority: 7-way accuracy on the faces whose majority is one of the
seven emotions (argmax over the seven; with a neutral model its neutral probability is ignored), and
8-way accuracy on all of them for a model that knows ``neutral``. Prints per-class recall.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx
import numpy as np

from bench.load.services import OURS, REPO_ROOT, Service
from training.calibration import expected_calibration_error
from training.ferplus import load_ferplus

EIGHT = ["anger", "contempt", "disgust", "fear", "happy", "neutral", "sadness", "surprise"]
SEVEN = [label for label in EIGHT if label != "neutral"]
FILES_PER_REQUEST = 16


def _predictions(service: Service, folder: Path, names: list[str], faces: str) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    with httpx.Client(base_url=service.base_url, timeout=120) as client:
        for start in range(0, len(names), FILES_PER_REQUEST):
            chunk = names[start : start + FILES_PER_REQUEST]
            files = [("file", (name, (folder / name).read_bytes(), "image/png")) for name in chunk]
            response = client.post("/predict/batch", params={"faces": faces}, files=files)
            response.raise_for_status()
            for item in response.json()["results"]:
                if not item["ok"]:
                    raise RuntimeError(f"{item['filename']}: {item['error']}")
                out.append(item["result"]["probabilities"])
    return out


def _report(title: str, truth: list[str], predicted: list[str], labels: list[str]) -> None:
    truth_a, predicted_a = np.array(truth), np.array(predicted)
    accuracy = float((truth_a == predicted_a).mean())
    recalls = ", ".join(
        f"{label} {float((predicted_a[truth_a == label] == label).mean()):.2f}"
        for label in labels
        if (truth_a == label).any()
    )
    print(f"{title}: {accuracy:.4f} on {len(truth)} faces; recall: {recalls}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "emotion_cnn.h5")
    parser.add_argument("--ferplus", type=Path, default=Path("../shared/data/FERPlus"))
    parser.add_argument("--faces", choices=("off", "largest"), default="off")
    parser.add_argument("--limit", type=int, help="only the first N clear faces (a quick look)")
    args = parser.parse_args()
    folder = args.ferplus / "valid"
    data = load_ferplus(folder, EIGHT)
    clear = np.flatnonzero(data.top_label_mask())[: args.limit]
    names = [data.names[i] for i in clear]
    truth = [EIGHT[i] for i in data.majority()[clear]]
    with Service(OURS, args.model.resolve()) as service:
        labels = service.get_json("/model")["labels"]
        print(f"{args.model.name}: labels {labels}; {len(names)} FER+ valid faces, faces={args.faces}")
        probabilities = _predictions(service, folder, names, args.faces)
    emotional = [i for i, label in enumerate(truth) if label != "neutral"]
    seven = [max(SEVEN, key=lambda label, p=probabilities[i]: p.get(label, 0.0)) for i in emotional]
    _report("7-way", [truth[i] for i in emotional], seven, SEVEN)
    if "neutral" in labels:
        eight = [max(labels, key=lambda label, p=p: p[label]) for p in probabilities]
        _report("8-way", truth, eight, EIGHT)
        _calibration("8-way", probabilities, truth, labels)
    else:
        _calibration("7-way", [probabilities[i] for i in emotional], [truth[i] for i in emotional], labels)


def _calibration(
    title: str, probabilities: list[dict[str, float]], truth: list[str], labels: list[str]
) -> None:
    """ECE (15 bins of the top probability) of the answers as served."""
    table = np.array([[p[label] for label in labels] for p in probabilities])
    index = np.array([labels.index(label) for label in truth])
    print(f"{title} ECE: {expected_calibration_error(table, index):.4f}")


if __name__ == "__main__":
    main()

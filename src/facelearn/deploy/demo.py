"""The end of ``facelearn demo``: calibrate, enroll, identify — the trained model used as a user would.

All identities here are unseen in training (the synthetic evaluation range) and disjoint from each
other: calibration people, enrolled people, and people who are never enrolled.

1. Calibrate on every pair of images of ``calibrate_people`` × 3 images (about 180k impostor pairs
   for 200 people: enough for FMR 1e-4) and store the thresholds in ``best.pt``.
2. Enroll one image of each of ``enrolled`` people into ``<run>/gallery.db`` (SQLite).
3. Identify two other images of each enrolled person and two images of each never-enrolled one
   through the :class:`Recognizer`: rank-1 (closed set), and at the calibrated FMR how many mated
   probes are recognised and how many strangers are wrongly taken for someone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..data.synthetic import UNSEEN_IDENTITY_OFFSET, SyntheticFaces
from ..io import write_text_atomic
from .calibration import calibrate
from .recognizer import Recognizer
from .stored_calibration import store_calibration

CALIBRATION_PEOPLE = UNSEEN_IDENTITY_OFFSET + 1_000_000
ENROLLED_PEOPLE = UNSEEN_IDENTITY_OFFSET + 2_000_000
STRANGERS = UNSEEN_IDENTITY_OFFSET + 3_000_000


def recognition_demo(
    run_dir: str | Path,
    image_size: int,
    fmr: float = 1e-3,
    calibrate_people: int = 200,
    enrolled: int = 100,
    strangers: int = 100,
    seed: int = 0,
) -> dict:
    run_dir = Path(run_dir)
    faces = SyntheticFaces(1, 1, image_size, seed)
    recognizer = Recognizer.load(run_dir / "best.pt", detector=None)

    people = [faces.render(CALIBRATION_PEOPLE + p, i) for p in range(calibrate_people) for i in range(3)]
    labels = np.repeat(np.arange(calibrate_people), 3)
    embeddings = recognizer.embed(people, aligned=True)
    first, second = np.triu_indices(len(people), 1)
    scores = np.einsum("ij,ij->i", embeddings[first], embeddings[second])
    source = f"every pair of {len(people)} images of {calibrate_people} unseen synthetic people"
    recognizer.calibration = calibrate(scores, labels[first] == labels[second], source=source)
    store_calibration(run_dir / "best.pt", recognizer.calibration)

    gallery_path = run_dir / "gallery.db"
    for stale in run_dir.glob("gallery.db*"):  # the demo's own gallery, made anew each run
        stale.unlink()
    gallery = recognizer.open_gallery(gallery_path)
    for person in range(enrolled):
        recognizer.enroll(f"person{person}", [faces.render(ENROLLED_PEOPLE + person, 0)], aligned=True)

    mated = [faces.render(ENROLLED_PEOPLE + p, i) for p in range(enrolled) for i in (1, 2)]
    truth = [f"person{p}" for p in range(enrolled) for _ in (1, 2)]
    unknown = [faces.render(STRANGERS + p, i) for p in range(strangers) for i in (0, 1)]
    found = recognizer.identify_faces(mated + unknown, k=1, fmr=fmr)
    mated_found, stranger_found = found[: len(mated)], found[len(mated) :]
    gallery.close()
    result = {
        "gallery": str(gallery_path),
        "calibration": recognizer.calibration.to_dict(),
        "fmr": fmr,
        "threshold": recognizer.threshold(fmr),
        "enrolled": enrolled,
        "mated_probes": len(mated),
        "stranger_probes": len(unknown),
        "rank1": float(np.mean([r["candidates"][0]["subject"] == t for r, t in zip(mated_found, truth, strict=True)])),
        "recognised": float(np.mean([r["subject"] == t for r, t in zip(mated_found, truth, strict=True)])),
        "strangers_accepted": float(np.mean([r["subject"] is not None for r in stranger_found])),
    }
    write_text_atomic(run_dir / "recognition.json", json.dumps(result, indent=2))
    return result


def print_recognition(result: dict) -> None:
    calibration = result["calibration"]
    print(
        f"\nfacelearn: calibrated on {calibration['num_impostor']:,} impostor pairs of unseen people; "
        f"FMR {result['fmr']:g} -> threshold {result['threshold']:.3f} (stored in best.pt)"
    )
    print(
        f"  enrolled {result['enrolled']} unseen people in {result['gallery']}; identified {result['mated_probes']} "
        f"other photos of them and {result['stranger_probes']} of never-enrolled people"
    )
    print(
        f"  rank-1 {100 * result['rank1']:.1f}%   recognised at FMR {result['fmr']:g}: "
        f"{100 * result['recognised']:.1f}%   strangers taken for someone: {100 * result['strangers_accepted']:.1f}%"
    )
    expected = 1 - (1 - result["fmr"]) ** result["enrolled"]
    print(
        f"  (a stranger is compared with all {result['enrolled']} people: at FMR {result['fmr']:g} each, about "
        f"{100 * expected:.1f}% of strangers match someone — choose the FMR for the gallery's size)"
    )

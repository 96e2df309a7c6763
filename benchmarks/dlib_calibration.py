"""dlib's ResNet descriptor through facelearn, on LFW-a: the thresholds shipped with ``Recognizer.load("dlib")``.

    python benchmarks/dlib_calibration.py [--lfw ../shared/data/lfw_a] [--pairs-per-fold 50] [--workers 2] [--ship]

Nothing here is trained, so no split is held out: the sample is a balanced slice of LFW's official
View-2 ``pairs.txt`` — in each of its 10 folds the first K same-person and the first K different-person
pairs (K = ``--pairs-per-fold``, 50: 1,000 pairs over 1,485 photos of 941 people), because dlib's
detector and network run at a few photos a second on a CPU and the whole of View 2 (about 7,700 photos)
would take half an hour. Every photo goes through ``Recognizer.load("dlib").embed``: dlib's HOG detector,
its largest face, dlib's five points and 150×150 chip, the 128-d descriptor scaled to unit length.

* accuracy: :func:`facelearn.eval.verification.evaluate_pairs`, 10 folds over the sampled pairs in
  View-2 order (each fold = K same + K different pairs of one official fold); a pair with a photo
  where dlib finds no face counts as "different" (embeddings v and −v);
* calibration: :func:`facelearn.deploy.calibration.calibrate` on *every* pair of the photos with a face
  (same person iff same LFW name), at FMR 1e-2, 1e-3 and 1e-4 — about a million impostor pairs, enough
  for 1e-4 (100,000 needed); TAR at FMR 1e-3 is 1 − FNMR there.

Embeddings are kept in ``--work`` (a rerun embeds nothing again). Writes benchmarks/results/
dlib_calibration.json; ``--ship`` also writes the package's src/facelearn/deploy/calibrations/dlib.json.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from common import RESULTS, write_result
from dlib_embeddings import embed_photos

from facelearn.data.pairs import read_lfw_pairs
from facelearn.deploy.calibration import calibrate
from facelearn.eval.verification import evaluate_pairs
from facelearn.io import write_text_atomic

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "facelearn" / "deploy" / "calibrations" / "dlib.json"
FMRS = (1e-2, 1e-3, 1e-4)


def sample_pairs(pairs_txt: Path, per_fold: int) -> list[tuple[str, int, str, int]]:
    """The first ``per_fold`` same and different pairs of each of View 2's ten folds of 300 + 300."""
    pairs = read_lfw_pairs(pairs_txt)
    chosen = []
    for fold in range(10):
        start = 600 * fold
        chosen += pairs[start : start + per_fold] + pairs[start + 300 : start + 300 + per_fold]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    shared = Path(os.environ.get("FACELEARN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--lfw", type=Path, default=shared / "data" / "lfw_a")
    parser.add_argument("--pairs-per-fold", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("runs/dlib_calibration"))
    parser.add_argument("--ship", action="store_true", help="also write the package's calibrations/dlib.json")
    args = parser.parse_args()

    import json

    from facelearn.deploy.dlib_model import PREPROCESSING, DlibFaceModel

    model = DlibFaceModel()
    pairs = sample_pairs(args.lfw / "pairs.txt", args.pairs_per_fold)
    photo = {}  # (name, number) → index
    for name1, i, name2, j in pairs:
        photo.setdefault((name1, i), len(photo))
        photo.setdefault((name2, j), len(photo))
    paths = [args.lfw / "lfw" / name / f"{name}_{number:04d}.jpg" for name, number in photo]
    print(f"dlib on {len(paths):,} LFW-a photos of {len({n for n, _ in photo}):,} people ({len(pairs):,} pairs)")
    embeddings, seconds = embed_photos(paths, args.work / f"embeddings_k{args.pairs_per_fold}.npz", args.workers)
    found = ~np.isnan(embeddings).any(1)

    first = np.array([photo[(a, i)] for a, i, _, _ in pairs])
    second = np.array([photo[(b, j)] for _, _, b, j in pairs])
    issame = np.array([a == b for a, _, b, _ in pairs])
    faceless = ~(found[first] & found[second])
    e1, e2 = embeddings[first].copy(), embeddings[second].copy()
    e1[faceless] = np.eye(128, dtype=np.float32)[0]
    e2[faceless] = -np.eye(128, dtype=np.float32)[0]  # distance 4: always "different"
    verification = evaluate_pairs(e1, e2, issame, folds=10)

    kept = np.flatnonzero(found)
    names = np.array([name for name, _ in photo])[kept]
    a, b = np.triu_indices(len(kept), 1)
    unit = embeddings[kept]
    scores = np.einsum("ij,ij->i", unit[a], unit[b])
    source = (
        f"every pair of {len(kept):,} LFW-a photos (those of the first {args.pairs_per_fold} same and "
        f"{args.pairs_per_fold} different pairs of each View-2 fold in which dlib finds a face)"
    )
    calibration = calibrate(scores, names[a] == names[b], FMRS, source)
    at_1e3 = next(p for p in calibration.points if p["fmr"] == 1e-3)

    lfw = {
        "pairs": len(pairs),
        "pairs_without_a_face": int(faceless.sum()),
        "accuracy": verification.accuracy,
        "accuracy_std": verification.accuracy_std,
        "fold_accuracies": verification.fold_accuracies,
        "auc": verification.auc,
    }
    if at_1e3["threshold"] is not None:  # None: too few impostor pairs (a small --pairs-per-fold)
        low, high = at_1e3["fnmr_interval"]
        lfw.update({"tar_at_fmr_1e-3": 1.0 - at_1e3["fnmr"], "tar_at_fmr_1e-3_interval": [1.0 - high, 1.0 - low]})
    measured = {
        "data": f"LFW-a (Wolf et al. 2009), {len(paths):,} photos of {len({n for n, _ in photo}):,} people: the first "
        f"{args.pairs_per_fold} same and {args.pairs_per_fold} different pairs of each of the ten folds of "
        "LFW View-2 pairs.txt",
        "how": "benchmarks/dlib_calibration.py: Recognizer.load('dlib').embed on each photo (dlib's own detector "
        "and chip, largest face), facelearn.deploy.calibration.calibrate on every pair of the photos with a face; "
        "accuracy by facelearn.eval.verification.evaluate_pairs (10 folds, a pair without a face counted "
        "'different'); TAR at FMR 1e-3 = 1 - FNMR at the calibrated threshold",
        "preprocessing": PREPROCESSING,
        "photos": len(paths),
        "photos_without_a_face": int((~found).sum()),
        "seconds_to_embed": round(seconds, 1),
    }
    record = {
        "model": "dlib_face_recognition_resnet_model_v1 (face-recognition-models, CC0)",
        "model_digest": model.model_digest,
        "measured": measured,
        "lfw_a": lfw,
        "recalibrate": "facelearn calibrate dlib --gallery DIR (photos in identity folders) or --pairs pairs.txt "
        "--root PHOTOS: your own thresholds, kept in $FACELEARN_HOME/models/dlib/calibration.json",
        "calibration": calibration.to_dict(),
    }
    write_result(RESULTS / "dlib_calibration.json", record)
    if args.ship:
        write_text_atomic(SHIPPED, json.dumps(record, indent=2) + "\n")
        print(f"wrote {SHIPPED}")
    print(
        f"LFW-a, {len(pairs):,} View-2 pairs (10 folds): accuracy {100 * lfw['accuracy']:.2f} ± "
        f"{100 * lfw['accuracy_std']:.2f} %, {lfw['pairs_without_a_face']} pairs without a face"
    )
    print(f"calibration on {calibration.num_genuine:,} genuine and {calibration.num_impostor:,} impostor pairs:")
    for point in calibration.points:
        if point["threshold"] is not None:
            print(f"  FMR {point['fmr']:g}: threshold {point['threshold']:.4f}, TAR {100 * (1 - point['fnmr']):.2f} %")
    print(f"embedding took {seconds:.0f} s ({len(paths) / max(seconds, 1e-9):.1f} photos/s, {args.workers} workers)")


if __name__ == "__main__":
    main()

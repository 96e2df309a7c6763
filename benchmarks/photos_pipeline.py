"""End to end on unconstrained photos: detect → align → embed → verify deepface's 299 labelled pairs.

    python benchmarks/photos_pipeline.py [--runs runs/lfw/mbf_detect runs/lfw/r18_detect]

The deployed threshold is not tuned here: each model uses the cosine threshold its own LFW evaluation chose
(``metrics.json`` of the run), so the photos test whether that threshold transfers. The largest
face of each photo is used. Every wrong decision is listed with what went wrong.
Writes benchmarks/results/photos_pipeline.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np
from common import RESULTS, needs, write_result

from facelearn.align import choose_face
from facelearn.data.images import read_image
from facelearn.deploy.recognizer import Recognizer
from facelearn.eval.metrics import auc, roc_curve
from facelearn.models.checkpoint import step_checkpoints

SHARED = Path(os.environ.get("FACELEARN_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def evaluate(run: Path, photos: Path, pairs: list[tuple[str, str, bool]], detector: str, weights: Path) -> dict:
    checkpoint = step_checkpoints(run)[-1]
    threshold = json.loads((run / "metrics.json").read_text())["verification"]["lfw_folds_8_10"]["threshold_cosine"]
    recognizer = Recognizer.load(
        checkpoint, detector=detector, weights=str(weights), backend="torch", precision="float32"
    )
    names = sorted({name for a, b, _ in pairs for name in (a, b)})
    embeddings, face_counts = {}, {}
    for name in names:
        image = read_image(photos / name)
        aligned, faces = recognizer.aligned_faces(image)  # the largest face, as the Recognizer chooses it
        chosen = [aligned[choose_face(faces, image.shape)]] if aligned else []
        embeddings[name] = recognizer.embed(chosen, aligned=True)[0] if chosen else None
        face_counts[name] = len(faces)
    rows, errors = [], []
    for a, b, same in pairs:
        if embeddings[a] is None or embeddings[b] is None:
            rows.append((same, None))
            errors.append({"pair": [a, b], "same": same, "cause": "no face detected"})
            continue
        score = float(embeddings[a] @ embeddings[b])
        rows.append((same, score))
        if (score > threshold) != same:
            several = [n for n in (a, b) if face_counts[n] > 1]
            cause = "false match" if not same else "missed match"
            if several:
                cause += f"; several faces in {', '.join(several)} (largest kept)"
            errors.append({"pair": [a, b], "same": same, "cosine": round(score, 3), "cause": cause})
    scored = [(s, c) for s, c in rows if c is not None]
    labels, scores = np.array([s for s, _ in scored]), np.array([c for _, c in scored])
    fpr, tpr, _ = roc_curve(scores, labels)
    correct = sum((c is not None and (c > threshold) == s) for s, c in rows)
    # for context only: the best any threshold could do on these very pairs (chosen on the test set)
    oracle = max(np.mean((scores > t) == labels) for t in np.concatenate([[-1.0], np.sort(scores)]))
    return {
        "run": str(run),
        "checkpoint": str(checkpoint),
        "threshold_cosine_from_lfw": threshold,
        "pairs": len(pairs),
        "same_pairs": int(sum(s for _, _, s in pairs)),
        "accuracy": correct / len(pairs),
        "accuracy_best_threshold_on_these_pairs": float(oracle) * len(scored) / len(pairs),
        "false_matches": sum(e["cause"].startswith("false match") for e in errors),
        "missed_matches": sum(e["cause"].startswith("missed match") for e in errors),
        "true_accepts": int(sum(s and c is not None and c > threshold for s, c in rows)),
        "false_accepts": int(sum(not s and c is not None and c > threshold for s, c in rows)),
        "auc_scored_pairs": auc(fpr, tpr),
        "mean_cosine_same": float(scores[labels].mean()),
        "mean_cosine_different": float(scores[~labels].mean()),
        "photos_without_face": [n for n in names if face_counts[n] == 0],
        "photos_with_several_faces": [n for n in names if face_counts[n] > 1],
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", default=["runs/lfw/mbf_detect", "runs/lfw/r18_detect"])
    parser.add_argument("--photos", default=str(SHARED / "data" / "photos" / "deepface"))
    parser.add_argument("--detector", default="mtcnn", choices=["mtcnn", "retinaface"])
    parser.add_argument("--weights", help="detector weights folder (default: ../shared/weights/<detector>)")
    parser.add_argument("--output", default=str(RESULTS / "photos_pipeline.json"))
    args = parser.parse_args()
    photos = Path(args.photos)
    with open(photos / "master.csv") as handle:
        pairs = [(r["file_x"], r["file_y"], r["Decision"] == "Yes") for r in csv.DictReader(handle)]
    weights = Path(args.weights or SHARED / "weights" / args.detector)
    results = [
        evaluate(needs(run, "benchmarks/lfw_recipe.py"), photos, pairs, args.detector, weights) for run in args.runs
    ]
    print(
        f"{'run':<28}{'accuracy':>10}{'TA':>5}{'FA':>5}{'AUC':>8}{'cos same':>10}{'cos diff':>10}"
        f"{'thr':>7}{'oracle':>8}"
    )
    for r in results:
        print(
            f"{r['run']:<28}{100 * r['accuracy']:>9.1f}%{r['true_accepts']:>3}/{r['same_pairs']}{r['false_accepts']:>5}"
            f"{r['auc_scored_pairs']:>8.3f}{r['mean_cosine_same']:>10.3f}{r['mean_cosine_different']:>10.3f}"
            f"{r['threshold_cosine_from_lfw']:>7.3f}{100 * r['accuracy_best_threshold_on_these_pairs']:>7.1f}%"
        )
    write_result(args.output, {"detector": args.detector, "results": results})


if __name__ == "__main__":
    main()

"""Does a face's quality say which comparisons fail? Error-versus-discard curves, per model and pair set.

    python benchmarks/quality_reject.py [--models recipe_mbf dlib] [--cache /work/cache/q25]
                                        [--model NAME=PATH[:DETECTOR]] [--dlib-pairs-per-fold 150]

Every photo goes through ``Recognizer.embed_with_quality`` (the model's detector and alignment, the
embedding, :mod:`facelearn.deploy.quality`: the norm of a MagFace/AdaFace model, else the estimate). A
pair's quality is the smaller of its two faces' (MagFace's and ISO/IEC 29794-1's convention). The
threshold is the one at FMR = 1e-3 on all pairs, fixed (what a deployed system keeps); the lowest-quality
0 … 50 % of the pairs are discarded in 5 % steps and the FNMR of the genuine pairs kept is measured
(the error-versus-discard characteristic, Grother & Tabassi, IEEE TPAMI 2007) — against discarding
the same fractions at random (200 draws: mean and 95 % band), and against each part of the estimate
alone (stability, sharpness, frontality, eye distance). The area under each curve (0–50 %) is reported.

Pair sets: LFW-a View-2 folds 8–10 (``--pairs``, the recipe's held-out pairs: its identities were never
trained on; dlib, a few photos a second on a shared CPU, gets the first ``--dlib-pairs-per-fold`` same and
different pairs of each fold), and the unconstrained photos (``$FACELEARN_SHARED/data/photos/deepface``,
master.csv's labelled pairs). Pairs with a photo where the model finds no face are left out and counted.
Per-photo results are cached in ``--cache`` (a rerun embeds nothing again). Writes
benchmarks/results/quality_reject.json and quality_reject.png: the rows of the models run now replace
theirs, the other models' rows already in the file are kept (each with the machine, command and load it
was measured with), and the plot shows every row.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, command, machine, write_result

from facelearn.data.images import read_image
from facelearn.data.pairs import read_lfw_pairs
from facelearn.deploy.quality import estimate, frontality, sharpness
from facelearn.deploy.recognizer import Recognizer
from facelearn.eval.quality import area_under, error_versus_discard, random_discard, threshold_at_fmr

SHARED = Path(os.environ.get("FACELEARN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FRACTIONS = np.round(np.arange(0, 0.501, 0.05), 2)
FMR = 1e-3
MODELS = {  # name: (model, detector: the one its training data was prepared with, None: its own; its training people)
    "lfw_mbf": ("/tmp/wt24b_lfw/model.pt", "retinaface", "/tmp/wt24b_lfw/train"),
    "recipe_mbf": ("/work/runs/lfw/mbf_detect/best.pt", "mtcnn", None),  # folds 8-10 are held out by the recipe
    "blackbox_student": (  # benchmarks/blackbox_distill.py's best student, trained again: its test pairs too
        "/work/runs/lfw/distill_dlib_centred_p1_arcface_weight0.1_unlabelled_600_steps_from_embed/best.pt",
        "mtcnn",
        None,
    ),
    "dlib": ("dlib", None, None),
}
FIELDS = ("found", "embedding", "quality", "stability", "blur", "yaw", "eye_distance")


def lfw_pairs(
    pairs_txt: Path, lfw: Path, per_fold: int | None, trained: set[str]
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """(photo paths of each pair, same person) — with ``per_fold``, the first per_fold same and different
    pairs of each fold of 300 + 300; never a pair of a person in ``trained`` (the model's training people)."""
    pairs = read_lfw_pairs(pairs_txt)
    if per_fold:
        pairs = [p for fold in range(0, len(pairs), 600) for p in (*pairs[fold : fold + per_fold],
                 *pairs[fold + 300 : fold + 300 + per_fold])]  # fmt: skip
    pairs = [p for p in pairs if p[0] not in trained and p[2] not in trained]
    paths = [(str(lfw / a / f"{a}_{i:04d}.jpg"), str(lfw / b / f"{b}_{j:04d}.jpg")) for a, i, b, j in pairs]
    return paths, np.array([a == b for a, _, b, _ in pairs])


def photo_pairs(folder: Path) -> tuple[list[tuple[str, str]], np.ndarray]:
    with open(folder / "master.csv") as handle:
        rows = list(csv.DictReader(handle))
    return [(str(folder / r["file_x"]), str(folder / r["file_y"])) for r in rows], np.array(
        [r["Decision"] == "Yes" for r in rows]
    )


def photo_results(recognizer: Recognizer, photos: list[str], choose: str, cache: Path) -> dict[str, np.ndarray]:
    """Per photo: whether a face was found, its embedding, raw norm and quality parts; cached, resumable."""
    done: dict[str, dict] = {}
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        for k, photo in enumerate(stored["photos"]):
            done[str(photo)] = {f: stored[f][k] for f in FIELDS}
    todo = [p for p in photos if p not in done]
    start = time.time()
    for first in range(0, len(todo), 64):
        chunk = todo[first : first + 64]
        embeddings, qualities = recognizer.embed_with_quality([read_image(p) for p in chunk], choose=choose)
        for photo, embedding, q in zip(chunk, embeddings, qualities, strict=True):
            parts = q.to_dict() if q else {}
            done[photo] = {
                "found": q is not None,
                "embedding": np.nan_to_num(embedding),
                **{f: np.nan if parts.get(f) is None else parts[f] for f in FIELDS[2:]},
            }
        save(cache, done)
        print(f"  {cache.name}: {first + len(chunk)}/{len(todo)} photos, {time.time() - start:.0f} s", flush=True)
    return {f: np.array([done[p][f] for p in photos]) for f in FIELDS}


def save(cache: Path, done: dict) -> None:
    names = list(done)
    staging = cache.with_suffix(".partial.npz")
    np.savez(staging, photos=np.array(names), **{f: np.array([done[n][f] for n in names]) for f in FIELDS})
    staging.replace(cache)


def evaluate(results: dict, index: dict, pairs: list[tuple[str, str]], issame: np.ndarray, method: str) -> dict:
    a = np.array([index[x] for x, _ in pairs])
    b = np.array([index[y] for _, y in pairs])
    yaw = [None if np.isnan(v) else v for v in results["yaw"]]
    both = results["found"][a] & results["found"][b]
    a, b, issame = a[both], b[both], issame[both]
    scores = np.sum(results["embedding"][a] * results["embedding"][b], axis=1)
    threshold = threshold_at_fmr(scores, issame, FMR)

    def pair(values: np.ndarray) -> np.ndarray:
        return np.minimum(values[a], values[b])

    quality = results["quality"]
    if method == "estimate":  # from the cached parts, with the library's formula of today
        parts = zip(results["stability"], results["blur"], yaw, strict=True)
        quality = np.array([estimate(*part) for part in parts])
    rankings = {
        "quality": pair(quality),
        "stability": pair(results["stability"]),
        "sharpness": pair(np.array([sharpness(v) for v in results["blur"]])),
        "frontality": pair(np.array([frontality(v) for v in yaw])),
        "eye_distance": pair(results["eye_distance"]),
    }
    curves = {name: error_versus_discard(scores, issame, q, threshold, FRACTIONS) for name, q in rankings.items()}
    draws = random_discard(scores, issame, threshold, FRACTIONS)
    at = {f: int(np.argmin(np.abs(FRACTIONS - f))) for f in (0.1, 0.2)}
    percentiles = np.percentile(quality[results["found"]], [5, 10, 20, 50])
    pair_quality = np.sort(rankings["quality"])
    row = {
        "pairs": int(len(issame)),
        "pairs_without_a_face": int((~both).sum()),
        "genuine": int(issame.sum()),
        "impostor": int((~issame).sum()),
        "threshold_at_fmr_1e-3": threshold,
        "fnmr_all_pairs": float(curves["quality"][0]),
        "fractions": FRACTIONS.tolist(),
        "curves": {name: curve.tolist() for name, curve in curves.items()},
        "random_mean": draws.mean(0).tolist(),
        "random_95": [np.percentile(draws, 2.5, 0).tolist(), np.percentile(draws, 97.5, 0).tolist()],
        "auc": {name: area_under(FRACTIONS, curve) for name, curve in curves.items()},
        "auc_random": area_under(FRACTIONS, draws.mean(0)),
        "quality_percentiles": dict(zip(("p5", "p10", "p20", "p50"), percentiles.tolist(), strict=True)),
    }
    for f, k in at.items():
        row[f"fnmr_quality_{int(100 * f)}%"] = float(curves["quality"][k])
        row[f"fnmr_random_{int(100 * f)}%"] = float(draws.mean(0)[k])
        row[f"quality_beats_random_{int(100 * f)}%"] = bool(curves["quality"][k] < draws.mean(0)[k])
        row[f"quality_discarding_{int(100 * f)}%"] = float(pair_quality[int(round(f * len(pair_quality)))])
    return row


def merged(output: Path, rows: list[dict]) -> list[dict]:
    """``rows`` and the rows already in ``output`` of the models not run now, each of those with the machine,
    command and load average its file recorded (the file's head describes the latest run only)."""
    if not output.is_file():
        return rows
    earlier = json.loads(output.read_text())
    run_now = {row["model"] for row in rows}
    recorded = {key: earlier.get(key) for key in ("machine", "command", "load_average")}
    kept = [{**recorded, **row} for row in earlier["rows"] if row["model"] not in run_now]
    return kept + rows


def plot(rows: list[dict], path: Path) -> None:
    """One panel per row: a model's line of panels, one per pair set."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (the JSON has the curves)")
        return
    models = list(dict.fromkeys(row["model"] for row in rows))
    sets = list(dict.fromkeys(row["set"].split()[0] for row in rows))
    figure, axes = plt.subplots(len(models), len(sets), figsize=(4.4 * len(sets), 3.4 * len(models)), squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for row in rows:
        ax = axes[models.index(row["model"]), sets.index(row["set"].split()[0])]
        ax.set_visible(True)
        x = 100 * np.array(row["fractions"])
        ax.fill_between(x, *row["random_95"], color="0.85", label="random (95 %)")
        ax.plot(x, row["random_mean"], color="0.5", linestyle="--", label="random (mean)")
        ax.plot(x, row["curves"]["quality"], color="C3", linewidth=2, label=f"quality ({row['method']})")
        if row["method"] == "estimate":
            ax.plot(x, row["curves"]["stability"], color="C0", linewidth=1, label="stability alone")
        ax.set_title(f"{row['model']} — {row['set']}", fontsize=9)
        ax.set_xlabel("lowest-quality pairs discarded (%)")
        ax.set_ylabel("FNMR at FMR 1e-3 (fixed threshold)")
        ax.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="NAME=PATH[:DETECTOR[:TRAIN_DIR]] another model (TRAIN_DIR: "
        "its training people's folders, whose pairs are left out)",
    )
    parser.add_argument("--lfw", default=str(SHARED / "data" / "lfw_a"))
    parser.add_argument("--pairs", default="/work/runs/lfw/pairs_folds_8_10.txt", help="LFW pairs (folds 8-10)")
    parser.add_argument("--photos", default=str(SHARED / "data" / "photos" / "deepface"))
    parser.add_argument("--dlib-pairs-per-fold", type=int, default=150)
    parser.add_argument("--cache", default="/work/cache/q25")
    parser.add_argument("--output", default=str(RESULTS / "quality_reject.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # two shared cores: more threads only contend (MTCNN runs 40× slower with two)
    models = {name: MODELS[name] for name in args.models}
    for spec in args.model:
        name, _, rest = spec.partition("=")
        path, detector, trained = (rest.split(":") + ["mtcnn", None])[:3]
        models[name] = (path, detector or "mtcnn", trained)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    lfw = Path(args.lfw) / "lfw"
    rows = []
    for name, (model, detector, trained) in models.items():
        if model != "dlib" and not Path(model).is_file():
            print(f"{name}: {model} does not exist (train it first); its rows are not measured")
            continue
        trained_people = {p.name for p in Path(trained).iterdir()} if trained else set()
        weights = str(SHARED / "weights" / detector) if detector else None
        recognizer = Recognizer.load(model, detector=detector, weights=weights, backend="torch")
        per_fold = args.dlib_pairs_per_fold if model == "dlib" else None
        sets = {
            "LFW-a folds 8-10" + (f" ({per_fold}+{per_fold} per fold)" if per_fold else ""): (
                lfw_pairs(Path(args.pairs), lfw, per_fold, trained_people), "central"),  # LFW's subject: central
            "deepface photos": (photo_pairs(Path(args.photos)), "largest"),
        }  # fmt: skip
        for set_name, ((pairs, issame), choose) in sets.items():
            photos = sorted({p for pair in pairs for p in pair})
            file = cache / f"{recognizer.model_id}_{detector or 'own'}_{set_name.split()[0]}.npz"  # any subset reads it
            began = time.process_time()
            results = photo_results(recognizer, photos, choose, file)
            method = recognizer.quality.method
            row = evaluate(results, {p: k for k, p in enumerate(photos)}, pairs, issame, method)
            rows.append(
                {
                    "model": name,
                    "model_file": model,
                    "model_id": recognizer.model_id,
                    "method": recognizer.quality.method,
                    "detector": detector or "its own",
                    "pairs_of_training_people_left_out": bool(trained_people),
                    "set": set_name,
                    "photos": len(photos),
                    "cpu_s_this_run": round(time.process_time() - began, 1),
                    **row,
                }
            )
    print(
        f"{'model':<12}{'set':<34}{'pairs':>6}{'FNMR':>7}{'10% q':>7}{'10% rnd':>8}{'20% q':>7}{'20% rnd':>8}"
        f"{'AUC q':>7}{'AUC rnd':>8}"
    )
    for r in rows:
        print(
            f"{r['model']:<12}{r['set']:<34}{r['pairs']:>6}{r['fnmr_all_pairs']:>7.3f}{r['fnmr_quality_10%']:>7.3f}"
            f"{r['fnmr_random_10%']:>8.3f}{r['fnmr_quality_20%']:>7.3f}{r['fnmr_random_20%']:>8.3f}"
            f"{r['auc']['quality']:>7.4f}{r['auc_random']:>8.4f}"
        )
    now = {"machine": machine(), "command": command(), "load_average": os.getloadavg()}
    rows = merged(Path(args.output), [{**now, **row} for row in rows])
    plot(rows, Path(args.output).with_suffix(".png"))
    write_result(args.output, {"fmr": FMR, "load_average": now["load_average"], "rows": rows})


if __name__ == "__main__":
    main()

"""Within- and between-person cosines of real embeddings, and the synthetic-face model fitted to them.

    python benchmarks/face_statistics.py [--lfw ../shared/data/lfw_a] [--photos 2000] [--work /work/cache/s27]

Real model: dlib's ResNet descriptor (``Recognizer.load("dlib")``, 128-d, no training). Photos: LFW-a
people with at least 4 photos, at most 8 photos each, in name order, until ``--photos`` photos.
Every same-person pair gives a within-person cosine, every different-person pair a between-person one.
:func:`facelearn.eval.synthetic_faces.fit_face_model` fits the generator to both; a fresh 2,000 × 4 sample
of it gives the fitted histograms. Writes benchmarks/results/face_statistics.json (both histograms,
the fitted parameters) and face_statistics.png.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from common import RESULTS, write_result
from dlib_embeddings import embed_photos

from facelearn.eval.synthetic_faces import cosine_pairs, fit_face_model, generate_faces


def choose_photos(lfw: Path, photos: int, least: int = 4, most: int = 8) -> list[Path]:
    chosen = []
    for person in sorted((lfw / "lfw").iterdir()):
        files = sorted(person.glob("*.jpg"))
        if len(files) >= least:
            chosen += files[:most]
        if len(chosen) >= photos:
            break
    return chosen[:photos]


def histogram(values: np.ndarray, bins: np.ndarray) -> list[float]:
    counts, _ = np.histogram(np.clip(values, bins[0], bins[-1]), bins)
    return (counts / max(1, counts.sum())).round(6).tolist()


def summary(within: np.ndarray, between: np.ndarray, bins: np.ndarray) -> dict:
    return {
        "within_mean": round(float(within.mean()), 4),
        "within_std": round(float(within.std()), 4),
        "between_mean": round(float(between.mean()), 4),
        "between_std": round(float(between.std()), 4),
        "within_histogram": histogram(within, bins),
        "between_histogram": histogram(between, bins),
    }


def plot(record: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    bins = np.array(record["bins"])
    centres = (bins[:-1] + bins[1:]) / 2
    figure, axis = plt.subplots(figsize=(7, 4))
    for kind, colour in (("within", "tab:green"), ("between", "tab:red")):
        axis.plot(centres, record["measured"][f"{kind}_histogram"], color=colour, label=f"{kind}-person, dlib on LFW-a")
        axis.plot(centres, record["fitted"][f"{kind}_histogram"], "--", color=colour, label=f"{kind}-person, fitted")
    axis.set_xlabel("cosine similarity")
    axis.set_ylabel("share of pairs")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shared = Path(os.environ.get("FACELEARN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--lfw", type=Path, default=shared / "data" / "lfw_a")
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("runs/face_statistics"))
    args = parser.parse_args()
    paths = choose_photos(args.lfw, args.photos)
    embeddings, _ = embed_photos(paths, args.work / f"dlib_lfw_{len(paths)}.npz", args.workers)
    found = ~np.isnan(embeddings).any(1)
    names = np.array([p.parent.name for p in paths])[found]
    within, between = cosine_pairs(embeddings[found], names)
    model = fit_face_model(within, between)
    faces, identity = generate_faces(model, identities=2000, faces_per_identity=4, dim=128, seed=1)
    fitted_within, fitted_between = cosine_pairs(faces, identity)
    low = np.floor(20 * np.percentile(between, 0.1)) / 20  # 80 bins from below nearly every impostor to 1
    bins = np.linspace(low, 1.0, 81)
    record = {
        "model": "dlib_face_recognition_resnet_model_v1 (Recognizer.load('dlib'), 128-d)",
        "photos": len(paths),
        "photos_with_a_face": int(found.sum()),
        "people": len(set(names)),
        "within_pairs": len(within),
        "between_pairs": len(between),
        "bins": bins.round(4).tolist(),
        "measured": summary(within, between, bins),
        "fitted": summary(fitted_within, fitted_between, bins),
        "face_model": model.to_dict(),
    }
    write_result(RESULTS / "face_statistics.json", record)
    plot(record, RESULTS / "face_statistics.png")
    for kind in ("measured", "fitted"):
        s = record[kind]
        print(
            f"{kind:<8} within {s['within_mean']:.3f} ± {s['within_std']:.3f}   "
            f"between {s['between_mean']:.3f} ± {s['between_std']:.3f}"
        )
    print(f"face model: {model.to_dict()}")


if __name__ == "__main__":
    main()

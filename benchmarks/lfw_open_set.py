"""Several photos per person, and open-set thresholds for a gallery's size, on LFW-a with dlib's model.

    facelearn embed photos.parquet /work/cache/lfw_dlib/faces --model dlib     # once: see README.txt there
    python benchmarks/lfw_open_set.py --faces /work/cache/lfw_dlib/faces

Every photo's face is the one nearest the centre of the 250×250 frame (LFW-a's subject), from the
bulk pipeline's embeddings (at most 10 photos a person, the first by name). Randomness: --seed.

1. **Enrolled photos** (``fusion``): the people with at least 6 photos with a face are enrolled
   with k = 1…5 of them (a seeded shuffle; the same order for every k) and probed with the photos
   after the fifth (the same probes for every k); everyone else's photos are the non-mated probes.
   Per k: rank-1, and TPIR at FPIR 1e-2 / 1e-1 (threshold on the non-mated probes), for the best
   face, the template with equal weights, and the template weighted by the stored quality (dlib: the
   raw descriptor norm). :func:`facelearn.eval.identification.identify` scores each matrix.
2. **Calibrated FPIR** (``open_set``): a real SQLite gallery through the Recognizer, calibrated with
   ``calibrate_identification_embeddings`` on one set of strangers and tested on another (person-
   disjoint, never enrolled): does the realised FPIR on the held-out strangers fall in the
   95 % interval predicted for it (:func:`facelearn.deploy.open_set.held_out_interval`: the
   calibration's uncertainty and the held-out sample's, beta-binomial)? A stranger is searched with
   one photo (their first): photos of one person are not independent searches, which the interval
   assumes (``--photos-per-stranger`` to use more). Two galleries: the 252 people of benchmarks/lfw_identification.py
   (View-2 folds 8-10, every other person with two or more photos, their first photo; held-out
   strangers: the other people of those folds; calibration: everyone else) when /work/runs/lfw is
   there, and 2,000 people drawn at random (up to 3 photos each, a further photo kept as a mated
   probe; the other people split in halves). FPIR 1e-3 is asked for as well: the error it gives
   (too few searches) is recorded.

Writes benchmarks/results/lfw_open_set.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, write_result

from facelearn.deploy.calibration import wilson_interval
from facelearn.deploy.fusion import fuse
from facelearn.deploy.open_set import UnsupportedFPIR, held_out_interval
from facelearn.deploy.recognizer import Recognizer
from facelearn.eval.identification import identify, mate_columns

CENTRE = 125.0  # LFW-a frames are 250×250, the subject in the middle
MIN_PHOTOS, KS, FPIRS = 6, (1, 2, 3, 4, 5), (1e-2, 1e-1)
MODES = {"best face": ("best", False), "template, equal weights": ("mean", False), "template, quality": ("mean", True)}


def read_faces(folder: str) -> dict[str, list[tuple[str, np.ndarray, float]]]:
    """person → [(photo key, unit embedding, quality)] in photo-key order, one face a photo (the central one)."""
    import pyarrow.dataset as ds

    shards = [str(path) for path in sorted(Path(folder).glob("part-*.parquet"))]
    table = ds.dataset(shards, format="parquet").to_table(
        columns=["photo_key", "subject", "status", "box", "quality", "embedding"]
    )
    rows = table.filter(ds.field("status") == "ok").to_pydict()
    chosen: dict[str, tuple] = {}
    for key, subject, box, quality, embedding in zip(
        rows["photo_key"], rows["subject"], rows["box"], rows["quality"], rows["embedding"], strict=True
    ):
        distance = np.hypot((box[0] + box[2]) / 2 - CENTRE, (box[1] + box[3]) / 2 - CENTRE)
        if key not in chosen or distance < chosen[key][0]:
            chosen[key] = (distance, subject, np.asarray(embedding, np.float32), float(quality))
    people: dict[str, list] = {}
    for key in sorted(chosen):
        _, subject, embedding, quality = chosen[key]
        people.setdefault(subject, []).append((key, embedding, quality))
    return people


def fusion_study(people: dict, rng: np.random.Generator) -> list[dict]:
    enrolled = sorted(name for name, photos in people.items() if len(photos) >= MIN_PHOTOS)
    order = {name: rng.permutation(len(people[name])) for name in enrolled}
    probes, labels = [], []
    for name in enrolled:
        for i in order[name][5:]:
            probes.append(people[name][i][1])
            labels.append(name)
    for name in sorted(set(people) - set(enrolled)):
        for _, embedding, _ in people[name]:
            probes.append(embedding)
            labels.append(None)
    probes = np.stack(probes)
    mates = mate_columns(np.array(labels, object), np.array(enrolled, object))
    rows = []
    for k in KS:
        for mode, (fusion, weighted) in MODES.items():
            columns = []
            for name in enrolled:
                photos = [people[name][i] for i in order[name][:k]]
                faces = np.stack([p[1] for p in photos])
                if fusion == "best":
                    columns.append((probes @ faces.T).max(1))
                else:
                    columns.append(probes @ fuse(faces, [p[2] for p in photos] if weighted else None))
            result = identify(np.stack(columns, 1), mates, ranks=(1,), fpirs=FPIRS)
            rows.append(
                {
                    "k": k,
                    "scores": mode,
                    "rank1": result.cmc["1"],
                    "tpir": dict(zip([f"{f:g}" for f in result.fpir], result.tpir, strict=True)),
                    "realised_fpir": result.realised_fpir,
                }
            )
            print(f"k={k} {mode:<26} rank-1 {100 * result.cmc['1']:6.2f}%  TPIR@1e-2 {100 * result.tpir[0]:6.2f}%")
    return [
        {"enrolled": len(enrolled), "mated_probes": int((mates >= 0).sum()), "nonmated_probes": int((mates < 0).sum())},
        rows,
    ]


def lfw_identification_protocol(people: dict, runs: Path) -> tuple[list[str], list[str]] | None:
    """(the 252 enrolled, the held-out strangers) of benchmarks/lfw_identification.py, where its split is here."""
    test = runs / "source" / "test"
    if not test.is_dir():
        return None
    names = sorted(p.name for p in test.iterdir())
    several = [name for name in names if len(list((test / name).iterdir())) >= 2]  # photos, as that script counts
    enrolled = several[0::2]
    faceless = [name for name in enrolled if name not in people]  # dlib found no face in any of their photos
    if faceless:
        print(f"{len(faceless)} of the {len(enrolled)} enrolled have no photo with a dlib face: left out")
    others = [name for name in names if name not in set(enrolled) and name in people]
    return [name for name in enrolled if name in people], others


def calibrated_gallery(
    per_stranger: int,
    people: dict,
    enrolled: list[str],
    strangers: tuple[list[str], list[str]],
    enroll_photos: int,
    fusion: str,
    what: str,
) -> dict:
    """Enroll, calibrate on the first strangers, test on the others: realised FPIR and TPIR at FPIR 1e-2."""
    calibration_people, test_people = strangers
    recognizer = Recognizer.load("dlib", detector=None)
    mated, mated_names = [], []
    with tempfile.TemporaryDirectory() as folder:
        recognizer.open_gallery(os.path.join(folder, "gallery.db"))
        started = time.perf_counter()
        for name in enrolled:
            photos = people[name][: max(1, min(enroll_photos, len(people[name]) - 1))]  # one kept as a probe
            recognizer.add(name, np.stack([p[1] for p in photos]), [p[2] for p in photos])
            if len(people[name]) > len(photos):
                mated.append(people[name][len(photos)][1])
                mated_names.append(name)
        enroll_seconds = time.perf_counter() - started
        calibration_faces = np.stack([p[1] for name in calibration_people for p in people[name][:per_stranger]])
        test_faces = np.stack([p[1] for name in test_people for p in people[name][:per_stranger]])
        try:
            recognizer.calibrate_identification_embeddings(
                calibration_faces, len(calibration_people), (1e-2, 1e-3), fusion, f"{what}: calibration strangers"
            )
            strict_error = None
        except UnsupportedFPIR as error:
            strict_error = str(error)
        calibration = recognizer.calibrate_identification_embeddings(
            calibration_faces, len(calibration_people), (1e-2,), fusion, f"{what}: calibration strangers"
        )
        point = calibration.points[0]
        answers, size = recognizer.search(test_faces, 1, fpir=1e-2)
        alarms = sum(answer["subject"] is not None for answer in answers)
        mated_answers, _ = recognizer.search(np.stack(mated), 1, fpir=1e-2) if mated else ([], 0)
        hits = sum(a["subject"] == name for a, name in zip(mated_answers, mated_names, strict=True))
        recognizer.gallery.close()
    realised = alarms / len(test_faces)
    calibration_alarms = round(point["realised_fpir"] * calibration.num_searches)
    low, high = held_out_interval(calibration_alarms, calibration.num_searches, len(test_faces))
    row = {
        "gallery": what,
        "fusion": fusion,
        "gallery_size": size,
        "enrolled_photos": enroll_photos,
        "calibration_searches": calibration.num_searches,
        "calibration_people": calibration.num_people,
        "threshold": point["threshold"],
        "calibration_fpir": point["realised_fpir"],
        "calibration_interval": list(point["fpir_interval"]),
        "held_out_interval": [low, high],
        "test_searches": len(test_faces),
        "test_people": len(test_people),
        "test_false_alarms": alarms,
        "test_fpir": realised,
        "test_interval": list(wilson_interval(alarms, len(test_faces))),
        "within_interval": low <= realised <= high,
        "mated_probes": len(mated),
        "tpir": hits / len(mated) if mated else None,
        "fpir_1e-3": strict_error,
        "enroll_seconds": enroll_seconds,
    }
    print(
        f"{what:<34} {fusion:<5} N={size:>5}  threshold {point['threshold']:.4f}  calibration FPIR "
        f"{point['realised_fpir']:.4f}  held-out FPIR {realised:.4f} ({alarms}/{len(test_faces)}), "
        f"predicted [{low:.4f}, {high:.4f}]"
        f"  {'within' if row['within_interval'] else 'OUTSIDE'}  TPIR {100 * (row['tpir'] or 0):.1f}%"
    )
    return row


def open_set_study(people: dict, rng: np.random.Generator, runs: Path, large: int, per_stranger: int) -> list[dict]:
    rows = []
    protocol = lfw_identification_protocol(people, runs)
    if protocol:
        enrolled, test = protocol
        calibration = sorted(set(people) - set(enrolled) - set(test))
        what = "252 (lfw_identification)"  # one photo each: a template is its face, so one fusion
        rows.append(calibrated_gallery(per_stranger, people, enrolled, (calibration, test), 1, "mean", what))
    names = sorted(people)
    shuffled = [names[i] for i in rng.permutation(len(names))]
    enrolled, others = sorted(shuffled[:large]), shuffled[large:]
    halves = (sorted(others[0::2]), sorted(others[1::2]))
    for fusion in ("mean", "best"):
        rows.append(calibrated_gallery(per_stranger, people, enrolled, halves, 3, fusion, f"{large:,} drawn at random"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", default="/work/cache/lfw_dlib/faces", help="facelearn embed's output (dlib)")
    parser.add_argument("--runs", default="/work/runs/lfw", help="benchmarks/lfw_recipe.py's work folder (its split)")
    parser.add_argument("--large", type=int, default=2000, help="people in the large gallery")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos-per-stranger", type=int, default=1, help="non-mated searches per stranger")
    parser.add_argument("--output", default=str(RESULTS / "lfw_open_set.json"))
    args = parser.parse_args()
    people = read_faces(args.faces)
    photos = sum(map(len, people.values()))
    print(f"{len(people):,} people, {photos:,} photos with a face (load average {os.getloadavg()[0]:.1f})")
    fusion_protocol, fusion_rows = fusion_study(people, np.random.default_rng(args.seed))
    rng = np.random.default_rng(args.seed + 1)
    open_set = open_set_study(people, rng, Path(args.runs), args.large, args.photos_per_stranger)
    write_result(
        args.output,
        {
            "model": "dlib (Recognizer.load('dlib'): HOG detector, 5 points, 150x150 chip, ResNet descriptor)",
            "faces": args.faces,
            "people": len(people),
            "photos": photos,
            "seed": args.seed,
            "photos_per_stranger": args.photos_per_stranger,
            "load_average": os.getloadavg(),
            "fusion": {"protocol": fusion_protocol, "rows": fusion_rows},
            "open_set": open_set,
        },
    )


if __name__ == "__main__":
    main()

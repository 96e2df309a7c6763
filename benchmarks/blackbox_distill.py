"""Distillation from a black-box teacher: dlib's ResNet descriptor into LFW MobileFaceNet students.

    python benchmarks/blackbox_distill.py [--work runs/lfw] [--only dlib_angular_p1 self_taught ...]

Needs the split and prepared faces of benchmarks/lfw_recipe.py (runs/lfw/source, detect, pairs).
1. ``facelearn teacher-embed --teacher dlib`` on the original photos of the *training* identities
   (runs/lfw/source/train): the teacher's answers, with its own detector, landmarks and chips.
2. The teacher through its own pipeline on the identity-disjoint test pairs (folds 8-10): dlib
   embeds the original test photos (a file of its own; test photos never reach training), cosine
   per pair, the same 3-fold protocol as the students; a photo dlib finds no face in scores -1.
3. Students: configs/lfw_mbf_distill.yaml (MobileFaceNet, ArcFace, 300 steps of 128 faces at
   64×64, the same seed) — self-taught, and distilled from the dlib answers with the angular loss
   on the final embedding (p = 1 and 2; a learned 256→128 projection), and p = 1 with the 3,240
   people in neither the training split nor the test pairs as unlabelled faces (``data.unlabelled``:
   the teacher's term only; they are the distractors of the 1:N benchmark, so that student's
   distractor numbers would not be clean); and without the ArcFace term (``distill.head_weight=0``:
   the student learns the teacher's directions alone; its embedding is made 128-d like dlib's, so
   the evaluated embedding is the one that matched the teacher, with no projection between them),
   p = 1 and 2, p = 1 with the unlabelled faces. The teacher's term weighs λ = 10 in those runs and
   in ``dlib_centred_p1_weight10`` (with ArcFace): at λ = 1 the angular term's gradient is a small
   fraction of ArcFace's (s = 32), and alone it learns slowly: in a 40-step probe without ArcFace the
   term stood at 0.38 with λ = 1 and at 0.106 with λ = 10. ``centred`` runs subtract the mean of
   dlib's answers (``distill.center_teacher``): raw, they all lie near one direction (random pairs
   at cosine 0.84), and the student without ArcFace learnt that direction and nothing else.
   The best student is also trained 2, 4 and 8 times as long (600, 1,200 and 2,400 steps), and the
   self-taught student at 1,200 and 2,400 steps, for the gap at the same budget; and at 1,200 and 2,400
   steps with the ArcFace term back at a tenth of its weight (``head_weight=0.1``, 128-d), for the low-FAR tail.
Writes benchmarks/results/blackbox_distill.json (accuracy ± std, AUC, TAR@FAR, commands). Rows already
in it are kept; ``--only`` redoes the named ones (``teacher``: the teacher's row, from dlib_test.npz).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from common import RESULTS, machine, needs, shell_command, write_result

from facelearn.cli import main as facelearn
from facelearn.cli import recipe_path
from facelearn.data.pairs import read_lfw_pairs
from facelearn.data.teacher_embeddings import TeacherEmbeddings
from facelearn.eval.verification import evaluate_pairs

NO_ARCFACE = ["distill.head_weight=0", "model.embedding_size=128", "distill.final_weight=10"]
CENTRED = ["distill.center_teacher=true"]
UNLABELLED = ["data.unlabelled={work}/detect/distractors"]
RUNS = {  # in the order they run
    "dlib_angular_p1": ["distill.method=angular", "distill.p=1"],
    "self_taught": ["distill.method=none"],
    "dlib_angular_p1_unlabelled": ["distill.method=angular", "distill.p=1", *UNLABELLED],
    "dlib_angular_p1_no_arcface": ["distill.method=angular", "distill.p=1", *NO_ARCFACE],
    "dlib_centred_p1_no_arcface": ["distill.method=angular", "distill.p=1", *NO_ARCFACE, *CENTRED],
    "dlib_centred_p1_weight10": ["distill.method=angular", "distill.p=1", "distill.final_weight=10", *CENTRED],
    "dlib_centred_p1_no_arcface_unlabelled": [
        "distill.method=angular",
        "distill.p=1",
        *NO_ARCFACE,
        *CENTRED,
        *UNLABELLED,
    ],
    "dlib_centred_p2_no_arcface": ["distill.method=angular", "distill.p=2", *NO_ARCFACE, *CENTRED],
    "dlib_angular_p2": ["distill.method=angular", "distill.p=2"],
    "dlib_centred_p1_no_arcface_unlabelled_600_steps": [
        "distill.method=angular",
        "distill.p=1",
        *NO_ARCFACE,
        *CENTRED,
        *UNLABELLED,
        "train.steps=600",
    ],
    "dlib_centred_p1_no_arcface_unlabelled_1200_steps": [
        "distill.method=angular",
        "distill.p=1",
        *NO_ARCFACE,
        *CENTRED,
        *UNLABELLED,
        "train.steps=1200",
    ],
    "self_taught_1200_steps": ["distill.method=none", "train.steps=1200"],
    "self_taught_2400_steps": ["distill.method=none", "train.steps=2400"],
    "dlib_centred_p1_no_arcface_unlabelled_2400_steps": [
        "distill.method=angular",
        "distill.p=1",
        *NO_ARCFACE,
        *CENTRED,
        *UNLABELLED,
        "train.steps=2400",
    ],
    "dlib_centred_p1_arcface_weight0.1_unlabelled_1200_steps": [
        "distill.method=angular",
        "distill.p=1",
        "distill.head_weight=0.1",
        "model.embedding_size=128",
        "distill.final_weight=10",
        *CENTRED,
        *UNLABELLED,
        "train.steps=1200",
    ],
    "dlib_centred_p1_arcface_weight0.1_unlabelled_2400_steps": [
        "distill.method=angular",
        "distill.p=1",
        "distill.head_weight=0.1",
        "model.embedding_size=128",
        "distill.final_weight=10",
        *CENTRED,
        *UNLABELLED,
        "train.steps=2400",
    ],
}
TEACHER = "teacher dlib (own pipeline)"


def run(command: list[str]) -> None:
    print(shell_command(command), flush=True)
    if facelearn(command) != 0:
        sys.exit(f"failed: {shell_command(command)}")


def teacher_file(work: Path, half: str) -> Path:
    path = work / f"dlib_{half}.npz"
    if not path.exists():
        run(["teacher-embed", str(work / "source" / half), str(path), "--teacher", "dlib", "--workers", "2"])
    return path


def training_teacher_file(work: Path) -> Path:
    """The teacher's answers for the training photos and the unlabelled ones (the people in neither the
    training split nor the test pairs: the distractors of benchmarks/lfw_identification.py), in one file."""
    path = work / "dlib_train_and_unlabelled.npz"
    if not path.exists():
        both = TeacherEmbeddings.load(teacher_file(work, "train"))
        extra = TeacherEmbeddings.load(teacher_file(work, "distractors"))
        for key, row in zip(extra.keys, extra.rows, strict=True):
            both.add(key, row)
        both.missing += extra.missing
        both.meta["photos"] = f"{both.meta['photos']} + {extra.meta['photos']}"
        both.save(path)
    return path


def teacher_on_test_pairs(work: Path) -> dict:
    answers = TeacherEmbeddings.load(teacher_file(work, "test"))
    rows = {k: r / np.linalg.norm(r) for k, r in zip(answers.keys, answers.rows, strict=True)}
    pairs = read_lfw_pairs(work / "pairs_folds_8_10.txt")
    first, second, issame, faceless = [], [], [], 0
    for name1, number1, name2, number2 in pairs:
        same = name1 == name2
        keys = f"{name1}/{name1}_{number1:04d}", f"{name2}/{name2}_{number2:04d}"
        found = [rows.get(k) for k in keys]
        if any(f is None for f in found):  # no face: a vector opposite to anything (cosine -1)
            faceless += 1
            found = [np.eye(128, dtype=np.float32)[0], -np.eye(128, dtype=np.float32)[0]]
        first.append(found[0])
        second.append(found[1])
        issame.append(same)
    result = evaluate_pairs(np.stack(first), np.stack(second), np.array(issame), folds=3)
    return {"run": TEACHER, **summary(vars(result)), "pairs_without_a_face": faceless}


def summary(result: dict) -> dict:
    keep = ("accuracy", "accuracy_std", "fold_accuracies", "auc", "tar_at_far", "val", "far")
    return {k: result[k] for k in keep}


def train(name: str, work: Path, extra: list[str]) -> dict:
    output = work / f"distill_{name}"
    command = [
        "train",
        str(recipe_path("lfw_mbf_distill")),
        f"train.output_dir={output}",
        "distill.teacher=null",
        f"distill.teacher_embeddings={training_teacher_file(work)}",
        f"data.root={work / 'detect' / 'train'}",
        f"eval.sets.0.path={work / 'pairs_folds_8_10.txt'}",
        f"eval.sets.0.root={work / 'detect' / 'test'}",
        *[option.format(work=work) for option in RUNS[name]],
        *extra,
    ]
    if not (output / "metrics.json").is_file():
        run(command)
        trained_on = {"trained_on": machine()}  # a run read back from its metrics.json keeps the recorded one
    else:
        trained_on = {}
    metrics = json.loads((output / "metrics.json").read_text())
    result = summary(next(iter(metrics["verification"].values())))
    how = {k: metrics[k] for k in ("precision", "compiled", "seconds") if k in metrics}
    return {"run": name, **result, **how, "command": shell_command(command), **trained_on}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/lfw")
    parser.add_argument("--only", nargs="+", choices=["teacher", *RUNS], default=["teacher", *RUNS])
    parser.add_argument("overrides", nargs="*", help="extra overrides for every student")
    args = parser.parse_args()
    work = needs(args.work, "benchmarks/lfw_recipe.py")
    output = RESULTS / "blackbox_distill.json"
    # rows recorded by earlier runs of this script are kept (each with its command); those asked for are redone
    rows = {row["run"]: row for row in json.loads(output.read_text())["rows"]} if output.is_file() else {}
    for name in args.only:
        key = name if name != "teacher" else TEACHER
        row = teacher_on_test_pairs(work) if name == "teacher" else train(name, work, args.overrides)
        rows[key] = row = {**rows.get(key, {}), **row}
        print(f"{row['run']}: {100 * row['accuracy']:.2f} ± {100 * row['accuracy_std']:.2f} %", flush=True)
        write_result(output, {"rows": list(rows.values()), "overrides": args.overrides})


if __name__ == "__main__":
    main()

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

``--teacher-from-embed FACES`` builds the training teacher file from the output of ``facelearn embed
--model dlib`` (docs/bulk.md) instead of running teacher-embed (dlib: a few photos a second here). The two
give the same vectors: teacher-embed's answer is dlib's raw descriptor of the largest face, and embed keeps
every face's unit embedding and its raw norm (the ``quality`` column of a dlib embedding), so the largest
face's embedding × quality is that answer (checked on 18 LFW-a photos, 8 with several faces: equal to
3e-8). Photos the output lacks, or where dlib found no face, become the file's ``missing`` rows: the
teacher's term skips them and the ArcFace term still sees them. The count is in the file's meta and the row.
Such a student's run and row are ``<name>_from_embed``, beside the one trained on teacher-embed's file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from common import RESULTS, machine, needs, shell_command, write_result
from lfw_identification import prepare_distractors
from lfw_recipe import lfw_parser

from facelearn.bulk.output import done_keys, face_rows
from facelearn.cli import main as facelearn
from facelearn.cli import recipe_path
from facelearn.data.folder import ImageFolder
from facelearn.data.pairs import read_lfw_pairs
from facelearn.data.teacher_embeddings import TeacherEmbeddings, image_key
from facelearn.deploy.recognizer import Recognizer
from facelearn.deploy.teachers import build_teacher
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
    "dlib_centred_p1_arcface_weight0.1_unlabelled_600_steps": [  # the best student's setting, shorter
        "distill.method=angular",
        "distill.p=1",
        "distill.head_weight=0.1",
        "model.embedding_size=128",
        "distill.final_weight=10",
        *CENTRED,
        *UNLABELLED,
        "train.steps=600",
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


def training_teacher_file(work: Path, from_embed: Path | None = None) -> Path:
    """The teacher's answers for the training photos and the unlabelled ones (the people in neither the
    training split nor the test pairs: the distractors of benchmarks/lfw_identification.py), in one file."""
    if from_embed:
        path = work / "dlib_train_and_unlabelled_from_embed.npz"
        if not path.exists():
            teacher_from_embed(from_embed, [work / "source" / "train", work / "source" / "distractors"]).save(path)
        return path
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


def teacher_from_embed(faces: Path, folders: list[Path]) -> TeacherEmbeddings:
    """dlib's teacher answers for every photo of ``folders`` (identity folders), read from ``facelearn embed
    --model dlib`` output: the largest face's unit embedding × its raw norm; a photo without one is missing."""
    model_id = Recognizer.load("dlib").model_id  # output of another dlib model file is refused
    table = face_rows(str(faces), model_id)
    if not len(table):
        sys.exit(
            f"{faces} holds no faces of dlib's model {model_id}: is it the output of facelearn embed --model dlib?"
        )
    boxes = table.column("box").combine_chunks().flatten().to_numpy().reshape(-1, 4)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keys = [str(k).rsplit(".", 1)[0] for k in table.column("photo_key").to_pylist()]
    raw = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(len(keys), -1)
    raw = raw * pc.cast(table.column("quality"), "float32").to_numpy()[:, None]
    largest: dict[str, int] = {}
    for row, key in enumerate(keys):
        if key not in largest or areas[row] > areas[largest[key]]:
            largest[key] = row
    answers = TeacherEmbeddings(
        {
            **build_teacher("dlib").identity,
            "photos": " + ".join(str(f.resolve()) for f in folders),
            "made_from": f"facelearn embed --model dlib output {faces.resolve()} (largest face, embedding x quality)",
        }
    )
    embedded = {str(k).rsplit(".", 1)[0] for k in done_keys(str(faces), model_id)}  # with a face or without
    not_embedded = 0
    for folder in folders:
        for photo in ImageFolder(folder).paths:
            key = image_key(photo, folder)
            not_embedded += key not in embedded
            answers.add(key, raw[largest[key]] if key in largest else None)
    answers.meta["photos_not_in_the_embed_output"] = not_embedded
    print(f"teacher file from {faces}: {len(answers.keys)} answers, {len(answers.missing)} missing: "
          f"{not_embedded} photos not in the embed output, the rest without a face", flush=True)  # fmt: skip
    return answers


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


def train(name: str, work: Path, extra: list[str], from_embed: Path | None) -> dict:
    """One student; with ``from_embed`` (the teacher file made from embed output) its run and row are
    ``<name>_from_embed``, beside the row trained on teacher-embed's file."""
    run_name = f"{name}_from_embed" if from_embed else name
    output = work / f"distill_{run_name}"
    teacher = training_teacher_file(work, from_embed)
    command = [
        "train",
        str(recipe_path("lfw_mbf_distill")),
        f"train.output_dir={output}",
        "distill.teacher=null",
        f"distill.teacher_embeddings={teacher}",
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
    meta = TeacherEmbeddings.load(teacher).meta
    source = {k: meta[k] for k in ("made_from", "photos_not_in_the_embed_output") if k in meta}
    return {"run": run_name, **result, **how, "command": shell_command(command), **trained_on, **source}


def main() -> None:
    parser = lfw_parser(__doc__)
    parser.add_argument("--only", nargs="+", choices=["teacher", *RUNS], default=["teacher", *RUNS])
    parser.add_argument("--teacher-from-embed", type=Path, help="facelearn embed --model dlib output (see above)")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every student")
    args = parser.parse_args()
    work = needs(args.work, "benchmarks/lfw_recipe.py")
    prepare_distractors(Path(args.lfw), work, Path(args.weights), args.workers)  # the unlabelled faces, once
    output = RESULTS / "blackbox_distill.json"
    # rows recorded by earlier runs of this script are kept (each with its command); those asked for are redone
    rows = {row["run"]: row for row in json.loads(output.read_text())["rows"]} if output.is_file() else {}
    for name in args.only:
        key = TEACHER if name == "teacher" else f"{name}_from_embed" if args.teacher_from_embed else name
        row = (
            teacher_on_test_pairs(work)
            if name == "teacher"
            else train(name, work, args.overrides, args.teacher_from_embed)
        )
        rows[key] = row = {**rows.get(key, {}), **row}
        print(f"{row['run']}: {100 * row['accuracy']:.2f} ± {100 * row['accuracy_std']:.2f} %", flush=True)
        write_result(output, {"rows": list(rows.values()), "overrides": args.overrides})


if __name__ == "__main__":
    main()

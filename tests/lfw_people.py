"""A small model trained on real LFW-a photos in about two minutes, shared by the deployment and service tests.

People with at least 12 photos (127 of them) are trained on up to 20 photos each through the real
pipeline: ``facelearn prepare`` (RetinaFace + five-point alignment) and ``facelearn train``. The
sixth photo of each of the first five people (the "enrolled" people of the tests) is held out of
training; the model is calibrated on 4 photos each of 40 other people it never saw. It is a weak
model (two CPU minutes) and the tests that use it check the mechanics and the error-rate promises,
not the accuracy of a real recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conftest import shared_path

from facelearn.cli import main as facelearn
from facelearn.cli import recipe_path

TRAINING = [
    "data.image_size=48",
    "model.blocks=[1,1,2,1]",
    "model.embedding_size=64",
    "train.steps=300",
    "train.batch_size=64",
    "train.checkpoint_every=300",
    "eval.sets=[]",
]


@dataclass
class LfwPeople:
    model: Path  # calibrated checkpoint (copy it before writing into it)
    weights: Path  # RetinaFace weights
    enrolled: dict[str, list[Path]]  # five people: photos 1-5 to enroll
    probes: dict[str, Path]  # and the sixth photo, never trained on
    strangers: list[Path]  # one photo each of people outside training and calibration
    calibration_photos: Path  # the raw photos (<person>/<photo>) of the 40 calibration people, 4 each


def photos(person: Path) -> list[Path]:
    return sorted(person.iterdir())


def link_photos(people: list[Path], folder: Path, count: int, skip: set[Path] = frozenset()) -> None:
    for person in people:
        (folder / person.name).mkdir(parents=True)
        for photo in photos(person)[:count]:
            if photo not in skip:
                (folder / person.name / photo.name).symlink_to(photo)


def train_lfw_people(work: Path, reuse: bool = False) -> LfwPeople:
    lfw = shared_path("data", "lfw_a", "lfw")
    weights = shared_path("weights", "retinaface")
    people = sorted(p for p in lfw.iterdir() if p.is_dir())
    counts = {p: len(photos(p)) for p in people}
    trained = [p for p in people if counts[p] >= 12]
    others = [p for p in people if 4 <= counts[p] < 12]
    enrolled = trained[:5]
    probes = {p.name: photos(p)[5] for p in enrolled}
    model = work / "model.pt"
    if reuse:
        return people_of(model, weights, enrolled, probes, others)
    link_photos(trained, work / "raw_train", 20, skip=set(probes.values()))
    link_photos(others[:40], work / "raw_calibration", 4)
    detector = ["--detector", "retinaface", "--weights", str(weights), "--workers", "2"]
    for name in ("train", "calibration"):
        assert facelearn(["prepare", str(work / f"raw_{name}"), str(work / name), *detector]) == 0
    run = work / "run"
    overrides = [f"data.root={work / 'train'}", *TRAINING, f"train.output_dir={run}"]
    assert facelearn(["train", str(recipe_path("lfw_mbf_arcface")), *overrides]) == 0
    model.write_bytes((run / "step_0000300.pt").read_bytes())
    assert facelearn(["calibrate", str(model), "--gallery", str(work / "calibration")]) == 0
    return people_of(model, weights, enrolled, probes, others)


def people_of(model: Path, weights: Path, enrolled: list[Path], probes: dict, others: list[Path]) -> LfwPeople:
    return LfwPeople(
        model=model,
        weights=weights,
        enrolled={p.name: photos(p)[:5] for p in enrolled},
        probes=probes,
        strangers=[photos(p)[0] for p in others[40:60]],
        calibration_photos=model.parent / "raw_calibration",
    )

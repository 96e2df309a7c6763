"""The IJB-B / IJB-C release layout as insightface distributes it, read and checked.

``<folder>/meta/``: ``<t>_face_tid_mid.txt`` (image, template, media), ``<t>_name_5pts_score.txt``
(image, five landmarks, detector score), ``<t>_template_pair_label.txt`` (template, template,
label), and for 1:N ``<t>_1N_gallery_{G1,G2}.csv`` (IJB-C; ``S1``/``S2`` for IJB-B) and
``<t>_1N_probe_mixed.csv`` (``TEMPLATE_ID,SUBJECT_ID,FILENAME``), with ``<t>`` = ``ijbc`` or
``ijbb``; ``<folder>/loose_crop/`` holds the images the landmarks refer to. ``<folder>`` may be
the target's folder (``…/IJBC``) or the folder above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .ijb import template_subjects

GALLERIES = {"IJBC": ("G1", "G2"), "IJBB": ("S1", "S2")}


@dataclass
class IJBMeta:
    folder: Path
    target: str
    names: list[str]  # image file names under loose_crop/, in media-list order
    templates: np.ndarray
    medias: np.ndarray
    landmarks: np.ndarray  # (n, 5, 2) float32
    face_scores: np.ndarray  # float32
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray]  # template 1, template 2, label
    galleries: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name → (templates, subjects)
    probes: tuple[np.ndarray, np.ndarray] | None = None

    def image_path(self, index: int) -> Path:
        return self.folder / "loose_crop" / self.names[index]


def target_folder(path: str | Path, target: str) -> Path:
    if target not in GALLERIES:
        raise DataError(f"unknown IJB target {target!r}; valid: {', '.join(GALLERIES)}")
    path = Path(path)
    for folder in (path, path / target):
        if (folder / "meta").is_dir():
            return folder
    raise DataError(f"{path}: no meta/ folder here or in {path / target} (the IJB release layout)")


def read_rows(path: Path, fields: int, header: bool = False, separator: str | None = None) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"{path} is missing (part of the IJB release layout)")
    rows = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        values = line.split(separator)
        if not line.strip():
            continue
        if len(values) != fields:
            raise DataError(f"{path}:{number}: expected {fields} fields, got {len(values)}: {line[:80]!r}")
        rows.append([value.strip() for value in values])
    if not rows:
        raise DataError(f"{path} holds no rows")
    return rows


def numbers(rows: list[list[str]], columns: slice | int, dtype, path: Path) -> np.ndarray:
    try:
        return np.array([row[columns] for row in rows], dtype)
    except ValueError as error:
        raise DataError(f"{path}: a column that should hold numbers does not ({error})") from None


def read_ijb_meta(path: str | Path, target: str = "IJBC") -> IJBMeta:
    folder = target_folder(path, target)
    prefix = folder / "meta" / target.lower()
    media_file = Path(f"{prefix}_face_tid_mid.txt")
    media_rows = read_rows(media_file, 3)
    names = [row[0] for row in media_rows]
    landmark_file = Path(f"{prefix}_name_5pts_score.txt")
    landmark_rows = {row[0]: row for row in read_rows(landmark_file, 12)}
    only_media = [n for n in names if n not in landmark_rows]
    only_landmarks = sorted(set(landmark_rows) - set(names))
    if only_media or only_landmarks or len(set(names)) != len(names):
        raise DataError(
            f"{media_file.name} and {landmark_file.name} disagree on the images: {len(only_media)} only in the "
            f"media list (e.g. {only_media[:3]}), {len(only_landmarks)} only in the landmark file "
            f"(e.g. {only_landmarks[:3]}), {len(names) - len(set(names))} repeated in the media list"
        )
    ordered = [landmark_rows[n] for n in names]
    pair_file = Path(f"{prefix}_template_pair_label.txt")
    pair_rows = read_rows(pair_file, 3)
    meta = IJBMeta(
        folder=folder,
        target=target,
        names=names,
        templates=numbers(media_rows, 1, np.int64, media_file),
        medias=numbers(media_rows, 2, np.int64, media_file),
        landmarks=numbers(ordered, slice(1, 11), np.float32, landmark_file).reshape(-1, 5, 2),
        face_scores=numbers(ordered, 11, np.float32, landmark_file),
        pairs=tuple(numbers(pair_rows, i, np.int64, pair_file) for i in range(3)),
    )
    probe_file = Path(f"{prefix}_1N_probe_mixed.csv")
    if probe_file.is_file():
        for name in GALLERIES[target]:
            gallery_file = Path(f"{prefix}_1N_gallery_{name}.csv")
            rows = read_rows(gallery_file, 3, header=True, separator=",")
            meta.galleries[name] = template_subjects(*(numbers(rows, i, np.int64, gallery_file) for i in (0, 1)))
        rows = read_rows(probe_file, 3, header=True, separator=",")
        meta.probes = template_subjects(*(numbers(rows, i, np.int64, probe_file) for i in (0, 1)))
    return meta

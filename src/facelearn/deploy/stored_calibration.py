"""Where ``facelearn calibrate`` gets its pairs and where it keeps the result.

Pairs: an LFW-style ``pairs.txt`` over aligned faces, an insightface ``.bin``, a folder of
identity folders of aligned faces, or of ordinary photos (``photos``: each detected and aligned
as the model will see them in use; every pair of two images: same person if same folder). The calibration is
stored in the model itself — a ``calibration`` entry of a facelearn checkpoint, or the
``facelearn.calibration`` metadata of an exported ONNX file — rewritten atomically; the weights
are left byte for byte as they were.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .calibration import Calibration

MAX_GALLERY_IMAGES = 20_000  # every pair of 20k images is 200M scores


def pair_scores_for_calibration(recognizer, pairs=None, root=None, bin_path=None, gallery=None, photos=None):
    """(scores, issame, source) of the one pair source given. Photos (``photos``, and every source for a model
    with its own alignment, dlib) are detected and aligned by the recognizer; pairs with a photo where no face
    is found are left out, and said."""
    from ..data.images import fit_size, read_image
    from ..data.pairs import pairs_from_bin, pairs_from_lfw

    sources = (("--photos", photos), ("--pairs", pairs), ("--bin", bin_path), ("--gallery", gallery))
    given = [name for name, value in sources if value]
    if len(given) != 1:
        raise ConfigError(
            f"calibrate on one source: --photos (identity folders of photos), --pairs (with --root), --bin or "
            f"--gallery (identity folders of aligned faces); got {given or 'none'}"
        )
    if bin_path and recognizer.aligns_photos:
        raise ConfigError(
            "this model finds and aligns faces itself: calibrate it on photos (--pairs with --root, or --gallery), "
            "not on a .bin of faces aligned for another model"
        )

    def embed(paths: list) -> np.ndarray:
        if recognizer.aligns_photos or photos:
            return detected_embeddings(recognizer, paths)
        return recognizer.embed([fit_size(read_image(p), recognizer.input_size) for p in paths], aligned=True)

    if gallery or photos:
        from ..eval.recognition import identity_images

        gallery = gallery or photos
        people = identity_images(gallery, "photos" if photos else "gallery")
        paths = [p for images in people.values() for p in images]
        if len(paths) > MAX_GALLERY_IMAGES:
            raise DataError(f"{gallery} holds {len(paths):,} images; calibrate on at most {MAX_GALLERY_IMAGES:,}")
        labels = np.array([i for i, images in enumerate(people.values()) for _ in images])
        embeddings = embed(paths)
        first, second = np.triu_indices(len(paths), 1)
        scores = np.einsum("ij,ij->i", embeddings[first], embeddings[second])
        source = f"every pair of {len(paths):,} images in {gallery}"
        return without_faceless(scores, labels[first] == labels[second], source)
    if pairs and not root:
        raise ConfigError("--pairs needs --root, the folder of the aligned faces")
    if recognizer.aligns_photos:
        from ..data.pairs import read_lfw_pairs

        listed = read_lfw_pairs(pairs)
        paths = [Path(root) / n / f"{n}_{i:04d}.jpg" for n1, i1, n2, i2 in listed for n, i in ((n1, i1), (n2, i2))]
        embeddings = embed(paths)
        scores = np.einsum("ij,ij->i", embeddings[0::2], embeddings[1::2])
        issame = np.array([n1 == n2 for n1, _, n2, _ in listed])
        return without_faceless(scores, issame, f"{pairs} ({len(listed):,} pairs of photos)")
    pair_set = (
        pairs_from_lfw(pairs, root, image_size=recognizer.input_size)
        if pairs
        else pairs_from_bin(bin_path, image_size=recognizer.input_size)
    )
    faces = [pair_set.load(i) for i in range(2 * pair_set.num_pairs)]
    embeddings = recognizer.embed(faces, aligned=True)
    scores = np.einsum("ij,ij->i", embeddings[0::2], embeddings[1::2])
    return scores, pair_set.issame, f"{pairs or bin_path} ({pair_set.num_pairs:,} pairs)"


def detected_embeddings(recognizer, paths: list, chunk: int = 32) -> np.ndarray:
    """The largest face of each photo, detected and aligned (NaN rows where none is found), a chunk of photos
    decoded at a time, with a progress bar on a terminal."""
    from tqdm import tqdm

    from ..data.images import read_image

    if recognizer.detector is None:
        raise ConfigError("calibrating on photos needs a face detector (--detector, --weights)")
    rows = []
    with tqdm(total=len(paths), desc="detect, align, embed", unit="photo", disable=None, leave=False) as bar:
        for start in range(0, len(paths), chunk):
            rows.append(recognizer.embed([read_image(p) for p in paths[start : start + chunk]]))
            bar.update(len(paths[start : start + chunk]))
    return np.concatenate(rows)


def without_faceless(scores: np.ndarray, issame: np.ndarray, source: str):
    """The pairs whose two photos both gave a face (NaN scores: a photo without one), the others counted."""
    faceless = np.isnan(scores)
    if faceless.any():
        source += f"; {int(faceless.sum()):,} pairs with a photo without a face left out"
    return scores[~faceless], issame[~faceless], source


def store_calibration(model: str | Path, calibration: Calibration) -> None:
    """Write ``calibration`` into the model; an error, with the model untouched, when it lacks a threshold it
    was asked for (see :meth:`Calibration.check_storable`)."""
    calibration.check_storable()
    model = Path(model)
    if model.suffix == ".onnx":
        store_in_onnx(model, calibration)
        return
    from ..models.checkpoint import FORMAT, load_checkpoint, save_atomic

    checkpoint = load_checkpoint(model)
    if checkpoint.get("format") != FORMAT:
        raise DataError(
            f"{model} is a plain state_dict, which has no place for a calibration: export it first "
            "(facelearn export MODEL model.onnx --architecture …) and calibrate the .onnx"
        )
    checkpoint["calibration"] = calibration.to_dict()
    save_atomic(checkpoint, model)


def store_in_onnx(path: Path, calibration: Calibration) -> None:
    import hashlib

    import onnx

    from ..io import write_bytes_atomic, write_text_atomic

    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if p.key != "facelearn.calibration"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key="facelearn.calibration", value=json.dumps(calibration.to_dict()))
    data = model.SerializeToString()
    write_bytes_atomic(path, data)
    write_text_atomic(Path(f"{path}.sha256"), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n")

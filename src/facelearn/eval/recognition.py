"""``facelearn eval --ijb`` and ``--gallery/--probes[/--distractors]``: embed, score, plot, report.

Scoring is separate from embedding (:func:`score_ijb`, :func:`score_folders`), so a set of features
from anywhere can be scored the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..align.align import align_face
from ..data.images import IMAGE_EXTENSIONS, fit_size, read_image
from ..errors import DataError
from ..io import write_atomic, write_text_atomic
from .distractors import Method, megaface_identification
from .embed import embed_images, embed_raw
from .identification import ThresholdRule, check_features, identify, mate_columns
from .ijb import TarRule, identify_templates, pair_scores, verification_table
from .ijb_layout import IJBMeta, read_ijb_meta
from .plots import plot_cmc, plot_det, plot_roc
from .templates import ALL_MODES, TemplateOptions, template_features


def evaluate_ijb(
    backbone: torch.nn.Module,
    folder: str | Path,
    target: str,
    image_size: int,
    output_dir: str | Path,
    **options,
) -> dict:
    """Align every listed image with its five landmarks, embed it and its mirror, and score."""
    meta = read_ijb_meta(folder, target)
    missing = [meta.names[i] for i in range(len(meta.names)) if not meta.image_path(i).is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} images of the media list are missing under {meta.folder / 'loose_crop'}, "
            f"e.g. {missing[:3]}"
        )

    def load(index: int) -> np.ndarray:
        return align_face(read_image(meta.image_path(index)), meta.landmarks[index], image_size, image_size)

    embed_options = {k: options.pop(k) for k in ("batch_size", "device") if k in options}
    features, mirrors = embed_raw(backbone, load, len(meta.names), flip=True, **embed_options)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # the raw features, to score other options later without embedding again (load_ijb_features)
    write_atomic(
        output_dir / f"{meta.target.lower()}_features.npz",
        lambda f: np.savez(f, names=np.array(meta.names), features=features, mirrors=mirrors),
    )
    return score_ijb(meta, features, mirrors, output_dir, **options)


def load_ijb_features(path: str | Path, meta: IJBMeta) -> tuple[np.ndarray, np.ndarray]:
    """The raw features :func:`evaluate_ijb` saved, checked against the media list."""
    with np.load(path, allow_pickle=False) as saved:
        if saved["names"].tolist() != meta.names:
            raise DataError(f"{path} was embedded from another media list than {meta.folder}")
        return saved["features"], saved["mirrors"]


def score_ijb(
    meta: IJBMeta,
    features: np.ndarray,
    mirrors: np.ndarray | None,
    output_dir: str | Path | None = None,
    mode: str = "N1D1F1",
    tar_rule: TarRule = "at_most",
    fpir_rule: ThresholdRule = "at_most",
    unknown_template: str = "error",
    zero_template: str = "error",
) -> dict:
    """1:1 for every template mode (the IJB papers' table) under both TAR rules, 1:N for ``mode``."""
    first, second, labels = meta.pairs
    report = {"target": meta.target, "images": len(meta.names), "mode": mode, "tar_rule": tar_rule, "one_to_one": {}}
    curves, chosen = {}, None
    modes = ALL_MODES if mirrors is not None else [m for m in ALL_MODES if m.endswith("F0")]
    for name in modes:
        options = TemplateOptions.from_mode(name, zero_template=zero_template)
        ids, pooled = template_features(features, mirrors, meta.face_scores, meta.templates, meta.medias, options)
        scores = pair_scores(ids, pooled, first, second, unknown_template)
        table = verification_table(scores, labels, rule=tar_rule)
        closest = verification_table(scores, labels, rule="closest")
        report["one_to_one"][name] = {**vars(table), "closest_rule_tars": closest.tars}
        curves[name] = (scores, labels.astype(bool))
        if name == mode:
            chosen = (ids, pooled)
    if chosen is None:
        raise DataError(f"template mode {mode!r} is not available (valid: {', '.join(modes)})")
    if meta.probes is not None:
        report["one_to_n"] = identify_templates(*chosen, meta.galleries, meta.probes, rule=fpir_rule)
    if output_dir is not None:
        write_ijb_report(report, curves, Path(output_dir))
    return report


def write_ijb_report(report: dict, curves: dict, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = report["target"].lower()
    plot_roc(curves, output_dir / f"{stem}_roc.png", f"{report['target']} 1:1 templates", min_far=1e-6)
    if "one_to_n" in report:
        galleries = report["one_to_n"]["galleries"]
        plot_cmc({g: r["curve"]["cmc"] for g, r in galleries.items()}, output_dir / f"{stem}_cmc.png")
        det = {g: (r["curve"]["fpir"], r["curve"]["fnir"]) for g, r in galleries.items() if "fpir" in r["curve"]}
        plot_det(det, output_dir / f"{stem}_det.png")
    write_text_atomic(output_dir / f"{stem}.json", json.dumps(report, indent=2))


def identity_images(folder: str | Path, what: str) -> dict[str, list[Path]]:
    """``folder/<identity>/<image>`` → identity → sorted image paths (identities without images left out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what} folder {folder} does not exist")
    found = {}
    for identity in sorted(p for p in folder.iterdir() if p.is_dir()):
        images = sorted(p for p in identity.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if images:
            found[identity.name] = images
    if not found:
        raise DataError(f"{what} folder {folder} holds no identity folders with images (<{what}>/<identity>/<image>)")
    return found


def evaluate_folders(
    backbone: torch.nn.Module,
    gallery: str | Path,
    probes: str | Path,
    distractors: str | Path | None,
    image_size: int,
    output_dir: str | Path | None = None,
    fpir_rule: ThresholdRule = "at_most",
    method: Method = "auto",
    **embed_options,
) -> dict:
    """1:N on folders of aligned faces: one gallery entry per identity folder (its images' mean),
    every probe image a query; with ``distractors`` (any images below that folder), MegaFace-style
    rank-1 of the enrolled identities' images among them."""
    enrolled = identity_images(gallery, "gallery")
    queries = identity_images(probes, "probes")
    paths = [p for images in enrolled.values() for p in images] + [p for images in queries.values() for p in images]
    if distractors is not None:
        if not Path(distractors).is_dir():
            raise DataError(f"distractors folder {distractors} does not exist")
        extra = sorted(p for p in Path(distractors).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not extra:
            raise DataError(f"distractors folder {distractors} holds no images")
        paths += extra
    embeddings, _, _ = embed_images(
        backbone, lambda i: fit_size(read_image(paths[i]), image_size), len(paths), **embed_options
    )
    check_features(embeddings, "embeddings")
    gallery_count = sum(len(v) for v in enrolled.values())
    probe_count = sum(len(v) for v in queries.values())
    gallery_labels = [name for name, images in enrolled.items() for _ in images]
    probe_labels = np.array([name for name, images in queries.items() for _ in images])
    return score_folders(
        embeddings[:gallery_count],
        np.array(gallery_labels),
        embeddings[gallery_count : gallery_count + probe_count],
        probe_labels,
        embeddings[gallery_count + probe_count :] if distractors is not None else None,
        output_dir,
        fpir_rule,
        method,
    )


def score_folders(
    gallery_features: np.ndarray,
    gallery_labels: np.ndarray,
    probe_features: np.ndarray,
    probe_labels: np.ndarray,
    distractor_features: np.ndarray | None = None,
    output_dir: str | Path | None = None,
    fpir_rule: ThresholdRule = "at_most",
    method: Method = "auto",
) -> dict:
    subjects, inverse = np.unique(gallery_labels, return_inverse=True)
    templates = np.zeros((len(subjects), gallery_features.shape[1]), np.float64)
    np.add.at(templates, inverse, gallery_features)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    mates = mate_columns(probe_labels, subjects)
    result = identify(probe_features @ templates.T, mates, rule=fpir_rule)
    report = {"gallery_identities": len(subjects), "gallery_images": len(gallery_labels), **result.to_dict()}
    if distractor_features is not None:
        mated = mates >= 0
        features = np.concatenate([gallery_features, probe_features[mated]])
        labels = np.concatenate([gallery_labels, probe_labels[mated]])
        report["with_distractors"] = megaface_identification(features, labels, distractor_features, method=method)
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        plot_cmc({"gallery": result.curve["cmc"]}, output_dir / "identification_cmc.png")
        if "fpir" in result.curve:
            plot_det({"gallery": (result.curve["fpir"], result.curve["fnir"])}, output_dir / "identification_det.png")
        write_text_atomic(output_dir / "identification.json", json.dumps(report, indent=2))
    return report

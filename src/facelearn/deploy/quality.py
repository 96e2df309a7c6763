"""A quality score in [0, 1] for every face, and the enroll gate that refuses the poor ones with a reason.

Two sources of the score (:class:`QualityScorer`, ``method``):

* ``norm`` — for a model trained to make its embedding's norm a quality (MagFace, Meng et al. CVPR 2021;
  AdaFace, Kim et al. CVPR 2022): the raw norm mapped to [0, 1] (:class:`NormQuality`, from the head's
  own constants: MagFace's [l_a, u_a], AdaFace's running mean ± std/h of the norms).
* ``estimate`` — for any other model (dlib, an imported ONNX, plain ArcFace): embedding stability under
  small input perturbations, in the spirit of SER-FIQ (Terhörst et al., CVPR 2020: a face whose
  embedding moves under perturbation is hard to recognise; SER-FIQ perturbs with dropout inside the
  network, which a black-box model does not allow, so here the *input* is perturbed: a shift, a zoom,
  and the mirror image for models that do not already add it), multiplied by a sharpness factor (the
  no-reference blur metric of Crété-Roffet et al., SPIE 2007) and a pose factor from the five landmarks.

Size is not in the score (a face's own resolution is unknown once aligned) but in the gate: a face with
fewer than ``min_eye_distance`` pixels between the eyes in the photo is refused as too small.
:class:`QualityGate` refuses a face below ``min_quality`` or too small, with the reasons in words
("blurred", "too small: 38 px between the eyes", "profile", "low quality: 0.21 < 0.30").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..errors import ConfigError, DataError

# The default gate. min_quality: from the error-versus-discard curves (benchmarks/quality_reject.py, docs/deploy.md
# "Face quality"): the pair quality below which 10 % of LFW pairs fall for the weakest model tried (0.27), rounded
# down — FNMR falls there for every model, and a better model (dlib: 0.50) loses almost no face to it.
# min_eye_distance: below it the alignment enlarges the face for a 112-px model (its template has 35 px between
# the eyes), so detail the model needs is not in the photo.
DEFAULT_MIN_QUALITY = 0.25
DEFAULT_MIN_EYE_DISTANCE = 24.0
REFERENCE_EYE_DISTANCE = 35.2  # pixels between the eyes in ArcFace's 112×112 template: the scale blur is measured at
BLURRED = 0.55  # Crété-Roffet blur above which a refused face is called "blurred"
PROFILE = 0.75  # yaw estimate above which a refused face is called "profile"
METHODS = ("auto", "norm", "estimate", "none")


@dataclass(frozen=True)
class NormQuality:
    """The raw embedding norm → [0, 1]: ``(norm − low) / (high − low)``, clipped."""

    head: str
    low: float
    high: float

    def __call__(self, norms: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(norms, np.float64) - self.low) / (self.high - self.low), 0.0, 1.0)

    @staticmethod
    def from_head(config: dict | None, state: dict | None = None) -> NormQuality | None:
        """From a checkpoint's head config (and the head's buffers); None for a head whose norm is no quality."""
        config, state = config or {}, state or {}
        name = config.get("name")
        if name == "magface":  # the magnitude is trained into [l_a, u_a], larger = better
            return NormQuality("magface", float(config.get("l_a", 10.0)), float(config.get("u_a", 110.0)))
        if name == "adaface":  # AdaFace's own proxy: (‖z‖ − μ)/σ·h clipped to [−1, 1]
            mean, std = state.get("head.batch_mean"), state.get("head.batch_std")
            if mean is None or std is None:
                return None
            h = float(config.get("h", 0.333))
            return NormQuality("adaface", float(mean) - float(std) / h, float(mean) + float(std) / h)
        return None


def blur_effect(face: np.ndarray, size: int = 9) -> float:
    """Crété-Roffet et al. 2007: 0 (sharp) … 1 (blurred). How much of the face's gradient a further
    ``size``-pixel blur removes: little when the face is blurred already. Rows and columns; the worse."""
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY).astype(np.float32) if face.ndim == 3 else face.astype(np.float32)
    h, w = gray.shape
    gray = gray[h // 8 : h - h // 8, w // 8 : w - w // 8]  # the face, not the background at the corners
    scores = []
    for axis, kernel in ((0, (1, size)), (1, (size, 1))):  # cv2's kernel is (width, height)
        blurred = cv2.blur(gray, kernel)
        d_face = np.abs(np.diff(gray, axis=axis))
        d_blurred = np.abs(np.diff(blurred, axis=axis))
        total = float(d_face.sum())
        if total == 0:
            return 1.0  # a flat image has no detail at all
        scores.append((total - float(np.maximum(0, d_face - d_blurred).sum())) / total)
    return float(max(scores))


def face_at_reference_scale(photo: np.ndarray, box, eyes: float) -> np.ndarray:
    """The face's box in the photo, resized so that its eyes are :data:`REFERENCE_EYE_DISTANCE` apart: blur
    is then measured at one face scale for every model (a large face's pixel-level softness does not count,
    a small face enlarged to that scale looks as blurred as it is)."""
    h, w = photo.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    crop = photo[y1:y2, x1:x2]
    if crop.shape[0] < 2 or crop.shape[1] < 2 or eyes <= 0:
        return np.zeros((8, 8, 3), np.uint8)  # a degenerate box: no detail at all
    factor = REFERENCE_EYE_DISTANCE / eyes
    size = (max(2, round(crop.shape[1] * factor)), max(2, round(crop.shape[0] * factor)))
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)


def eyes_and_nose(points: np.ndarray, scheme: str = "arcface") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two eye centres and the nose of five landmarks: ArcFace order (eyes, nose tip, mouth corners) or dlib's
    five (two corners of each eye, the base of the nose)."""
    points = np.asarray(points, np.float64)
    if scheme == "dlib":
        return points[0:2].mean(0), points[2:4].mean(0), points[4]
    return points[0], points[1], points[2]


def eye_distance(points: np.ndarray, scheme: str = "arcface") -> float:
    first, second, _ = eyes_and_nose(points, scheme)
    return float(np.linalg.norm(first - second))


def yaw(points: np.ndarray, scheme: str = "arcface") -> float:
    """0 (frontal) … 1 (profile): how far the nose is from the eyes' midpoint, along the eye line, in
    half eye distances (1: the nose is in line with an eye)."""
    first, second, nose = eyes_and_nose(points, scheme)
    axis = second - first
    half = np.linalg.norm(axis) / 2
    if half < 1e-6:
        return 1.0
    offset = float(np.dot(nose - (first + second) / 2, axis / (2 * half)))
    return float(min(1.0, abs(offset) / half))


def perturbations(face: np.ndarray, mirror: bool) -> list[np.ndarray]:
    """Small changes a recognisable face's embedding should not notice: a shift by 4 % of the side, a 10 %
    zoom, and (for a model that does not add the mirrored face itself) the mirror image."""
    h, w = face.shape[:2]
    shift = np.float32([[1, 0, round(0.04 * w)], [0, 1, round(0.04 * h)]])
    zoom = cv2.getRotationMatrix2D((w / 2, h / 2), 0, 1.1)
    views = [
        cv2.warpAffine(face, shift, (w, h), borderMode=cv2.BORDER_REPLICATE),
        cv2.warpAffine(face, zoom, (w, h), borderMode=cv2.BORDER_REPLICATE),
    ]
    if mirror:
        views.append(np.ascontiguousarray(face[:, ::-1]))
    return views


@dataclass
class FaceQuality:
    """One face: ``quality`` in [0, 1] (None: off), and what it is made of."""

    quality: float | None
    blur: float
    yaw: float | None  # None: no landmarks (a face given aligned)
    eye_distance: float | None  # pixels in the photo; None for a face given aligned
    stability: float | None = None  # the estimate's; None for a norm score

    def to_dict(self) -> dict:
        return {k: None if v is None else round(float(v), 4) for k, v in asdict(self).items()}


class QualityScorer:
    """``method``: ``auto`` (the norm where the model makes it a quality, else the estimate), ``norm``
    (refused for a model whose norm is no quality), ``estimate``, or ``none``/None (no score: the enroll
    gate then checks only the size)."""

    def __init__(self, embedder, method: str | None = "auto"):
        if method is not None and method not in METHODS:
            raise ConfigError(f"quality {method!r} is not a quality method; valid: {', '.join(METHODS)}")
        method = None if method == "none" else method
        norm = getattr(embedder, "norm_quality", None)
        if method == "norm" and norm is None:
            raise ConfigError(
                f"{getattr(embedder, 'name', 'this model')}'s embedding norm is not a quality score (only a MagFace or "
                "AdaFace checkpoint's is): use quality 'estimate' (or 'auto')"
            )
        self.embedder, self.norm = embedder, norm
        self.method = None if method is None else ("norm" if norm is not None and method != "estimate" else "estimate")
        self.scheme = getattr(embedder, "landmark_scheme", "arcface")
        self.mirror = not getattr(embedder, "flip", False)

    def score(
        self,
        faces: list[np.ndarray],
        embeddings: np.ndarray,
        norms: np.ndarray,
        landmarks: list | None = None,
        photos: list | None = None,
        boxes: list | None = None,
        moved: np.ndarray | None = None,
    ) -> list[FaceQuality]:
        """Each aligned face's quality, from its embedding and raw norm (the model's answer for it) and, for a
        face found in a photo, its five landmarks, the photo and its box (None for a face given aligned).
        ``moved``: the unit embeddings of :meth:`views` where the caller has embedded them already (the
        service does, in the same model call as the faces); else they are embedded here."""
        landmarks = landmarks if landmarks is not None else [None] * len(faces)
        photos = photos if photos is not None else [None] * len(faces)
        boxes = boxes if boxes is not None else [None] * len(faces)
        poses = [None if p is None else yaw(p, self.scheme) for p in landmarks]
        eyes = [None if p is None else eye_distance(p, self.scheme) for p in landmarks]
        blur = []
        for face, photo, box, eye in zip(faces, photos, boxes, eyes, strict=True):
            if photo is None or box is None or eye is None:  # a face given aligned: at the model's scale
                face = cv2.resize(face, (112, 112), interpolation=cv2.INTER_AREA) if face.shape[0] > 112 else face
                blur.append(blur_effect(face))
            else:
                blur.append(blur_effect(face_at_reference_scale(photo, box, eye)))
        stability: list[float | None] = [None] * len(faces)
        if self.method == "norm":
            scores = self.norm(norms).tolist()
        elif self.method == "estimate":
            stability = self.stability(faces, embeddings, moved)
            scores = [estimate(s, b, p) for s, b, p in zip(stability, blur, poses, strict=True)]
        else:
            scores = [None] * len(faces)
        return [FaceQuality(*row) for row in zip(scores, blur, poses, eyes, stability, strict=True)]

    def views(self, faces: list[np.ndarray]) -> np.ndarray:
        """The perturbed views the estimate embeds, face after face (none unless the method is the estimate)."""
        if self.method != "estimate" or not len(faces):
            return np.empty((0, *np.shape(faces)[1:]), np.uint8)
        return np.stack([view for face in faces for view in perturbations(face, self.mirror)])

    def stability(
        self, faces: list[np.ndarray], embeddings: np.ndarray, moved: np.ndarray | None = None
    ) -> list[float]:
        """1 − the mean distance between the unit embeddings of a face and its perturbed views, over 2
        (SER-FIQ's measure, on [0, 1]). ``moved``: the views' unit embeddings, if already made."""
        if not len(faces):
            return []
        if moved is None:
            moved = self.embedder.embed(self.views(faces))[0]
        moved = np.asarray(moved, np.float32).reshape(len(faces), -1, np.shape(embeddings)[-1])
        count = moved.shape[1]
        together = np.concatenate([np.asarray(embeddings, np.float32)[:, None], moved], axis=1)
        distances = np.linalg.norm(together[:, :, None] - together[:, None, :], axis=-1)
        upper = np.triu_indices(count + 1, 1)
        return (1 - distances[:, upper[0], upper[1]].mean(1) / 2).clip(0, 1).tolist()


def estimate(stability: float, blur: float, pose: float | None) -> float:
    """The model-agnostic quality: stability × sharpness × frontality, each in [0, 1]."""
    return float(stability * sharpness(blur) * frontality(pose))


def sharpness(blur: float) -> float:
    """1 for a face as sharp as a good photo's (blur ≤ 0.3), falling to 0 at blur 0.9."""
    return float(np.clip((0.9 - blur) / 0.6, 0.0, 1.0))


def frontality(pose: float | None) -> float:
    """1 for a frontal face, 0 for a profile (yaw 1); 1 where the pose is unknown (a face given aligned)."""
    return 1.0 if pose is None else float(1.0 - pose**2)


@dataclass(frozen=True)
class QualityGate:
    """Refuses a face below ``min_quality`` or with fewer than ``min_eye_distance`` pixels between its eyes."""

    min_quality: float = DEFAULT_MIN_QUALITY
    min_eye_distance: float = DEFAULT_MIN_EYE_DISTANCE

    def __post_init__(self) -> None:
        if not 0 <= self.min_quality <= 1:
            raise ConfigError(f"min_quality must be in [0, 1], got {self.min_quality}")
        if self.min_eye_distance < 0:
            raise ConfigError(f"min_eye_distance must be ≥ 0 pixels, got {self.min_eye_distance}")

    def reasons(self, face: FaceQuality) -> list[str]:
        """Why a face is refused, in words; empty when it passes."""
        if face.quality is None and self.min_quality > 0:
            raise DataError(
                "the enroll gate needs a quality score, and this Recognizer computes none (quality none): score "
                "quality (auto, estimate) or set the gate's min_quality to 0 (--min-quality 0)"
            )
        reasons = []
        if face.eye_distance is not None and face.eye_distance < self.min_eye_distance:
            reasons.append(f"too small: {face.eye_distance:.0f} px between the eyes")
        if face.quality is not None and face.quality < self.min_quality:
            if face.blur > BLURRED:
                reasons.append("blurred")
            if face.yaw is not None and face.yaw > PROFILE:
                reasons.append("profile")
            if not reasons:
                reasons.append(f"low quality: {face.quality:.2f} < {self.min_quality:.2f}")
        return reasons


class QualityRefused(DataError):
    """Every face of an enroll call was refused (or had no face): nothing enrolled. ``refused`` lists why."""

    def __init__(self, message: str, refused: list[dict], no_face: list):
        super().__init__(message)
        self.refused, self.no_face = refused, no_face


def refusal_message(subject: str, refused: list[dict], no_face: list, label=lambda photo: f"image {photo}") -> str:
    """One line: nothing enrolled for ``subject``, and every photo's reason (``label`` names a photo)."""
    parts = [f"{label(r['photo'])}: {', '.join(r['reasons'])} (quality {r['quality']:.2f})" for r in refused]
    parts += [f"{label(photo)}: no face found" for photo in no_face]
    return f"no face of {subject!r} passes the enroll gate, nothing enrolled — " + "; ".join(parts)

"""Synthetic face identities, rendered on the fly: deterministic, open-set, no download.

An identity is a vector of facial traits (face shape, skin and hair colour, eye spacing and size,
iris colour, brows, nose, mouth, moles, glasses) drawn from ``rng([seed, identity])``; an image
is that identity under a nuisance drawn from ``rng([seed, identity, image])``: head rotation,
scale, shift and yaw, expression, lighting, background, blur and sensor noise. Any identity
number can be rendered, so identities never seen in training (``first_identity`` far above the
training range) give an honest open-set verification test.

Fine traits (iris colour, moles, brow shape) vanish at low resolution while the coarse ones
(face shape, colours) survive, so degraded copies are genuinely harder, as real hard faces are.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

UNSEEN_IDENTITY_OFFSET = 10_000_000  # evaluation identities start here, far from any training range
_CANVAS = 2  # draw at 2× and downscale, for anti-aliased edges
# natural hair colours (RGB): black, dark brown, brown, blond, auburn, grey
HAIR_COLOURS = np.array(
    [[25, 20, 18], [60, 40, 28], [110, 75, 45], [200, 170, 110], [140, 60, 30], [150, 150, 150]], float
)


@dataclass(frozen=True)
class Identity:
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    lips: tuple[float, float, float]
    face_width: float
    face_height: float
    jaw: float
    hairline: float
    eye_y: float
    eye_gap: float
    eye_width: float
    eye_height: float
    brow_lift: float
    brow_tilt: float
    brow_thickness: int
    nose_length: float
    nose_width: float
    mouth_y: float
    mouth_width: float
    lip_thickness: int
    moles: tuple[tuple[float, float, float], ...]
    glasses: bool


def make_identity(seed: int, identity: int) -> Identity:
    rng = np.random.default_rng([seed, 1, identity])
    tone = rng.uniform(0.25, 1.0)
    skin = (90 + 150 * tone, 60 + 130 * tone * rng.uniform(0.8, 1.0), 40 + 120 * tone * rng.uniform(0.6, 1.0))
    moles = tuple(
        (rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.7), rng.uniform(1.0, 2.2)) for _ in range(int(rng.integers(0, 4)))
    )
    return Identity(
        skin=skin,
        hair=tuple(np.clip(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] + rng.normal(0, 12, 3), 0, 255)),
        iris=tuple(rng.uniform(20, 200, 3)),
        lips=tuple(np.array(skin) * rng.uniform(0.5, 0.9, 3)),
        face_width=rng.uniform(29, 39),
        face_height=rng.uniform(37, 47),
        jaw=rng.uniform(0.75, 1.0),
        hairline=rng.uniform(0.35, 0.75),
        eye_y=rng.uniform(44, 52),
        eye_gap=rng.uniform(12, 20),
        eye_width=rng.uniform(4.5, 8.0),
        eye_height=rng.uniform(2.2, 4.0),
        brow_lift=rng.uniform(5, 10),
        brow_tilt=rng.uniform(-0.35, 0.35),
        brow_thickness=int(rng.integers(1, 4)),
        nose_length=rng.uniform(10, 19),
        nose_width=rng.uniform(4, 9),
        mouth_y=rng.uniform(74, 84),
        mouth_width=rng.uniform(8, 15),
        lip_thickness=int(rng.integers(1, 4)),
        moles=moles,
        glasses=bool(rng.random() < 0.2),
    )


def render_face(identity: Identity, rng: np.random.Generator, size: int = 112) -> np.ndarray:
    """One HWC uint8 RGB image of ``identity`` under a random nuisance drawn from ``rng``."""
    s = _CANVAS * size / 112.0  # template coordinates are for 112×112

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x * s * 16)), int(round(y * s * 16))  # 4 bits of sub-pixel precision

    def ln(value: float) -> int:
        return max(1, int(round(value * s)))

    canvas = np.empty((_CANVAS * size, _CANVAS * size, 3), np.uint8)
    canvas[:] = rng.uniform(0, 255, 3)
    for _ in range(3):  # background clutter
        cv2.circle(
            canvas, pt(*rng.uniform(0, 112, 2)), ln(rng.uniform(8, 30)), rng.uniform(0, 255, 3), -1, cv2.LINE_AA, 4
        )

    yaw = rng.uniform(-4, 4)  # features slide sideways and the face narrows a little
    cx, cy = 56 + yaw * 0.3, 58 + rng.uniform(-1.5, 1.5)
    width = identity.face_width * (1 - abs(yaw) / 40)
    height = identity.face_height
    hair = np.clip(np.array(identity.hair) * rng.uniform(0.9, 1.1), 0, 255)
    cv2.ellipse(
        canvas, pt(cx, cy - height * 0.15), pt(width * 1.08, height * 1.0), 0, 180, 360, hair, -1, cv2.LINE_AA, 4
    )
    skin = np.clip(np.array(identity.skin) * rng.uniform(0.92, 1.08), 0, 255)
    cv2.ellipse(canvas, pt(cx, cy), pt(width, height), 0, 0, 360, skin, -1, cv2.LINE_AA, 4)
    jaw_poly = np.array(
        [
            pt(cx - width, cy),
            pt(cx + width, cy),
            pt(cx + width * identity.jaw * 0.6, cy + height),
            pt(cx - width * identity.jaw * 0.6, cy + height),
        ]
    )
    cv2.fillConvexPoly(canvas, jaw_poly, skin, cv2.LINE_AA, 4)
    cv2.ellipse(
        canvas,
        pt(cx, cy - height * 0.55),
        pt(width * 1.02, height * identity.hairline),
        0,
        180,
        360,
        hair,
        -1,
        cv2.LINE_AA,
        4,
    )

    openness = rng.uniform(0.55, 1.1)
    fx = cx + yaw  # features centre
    for side in (-1, 1):
        ex, ey = fx + side * identity.eye_gap, identity.eye_y + (cy - 58)
        cv2.ellipse(
            canvas,
            pt(ex, ey),
            pt(identity.eye_width, identity.eye_height * openness),
            0,
            0,
            360,
            (245, 245, 240),
            -1,
            cv2.LINE_AA,
            4,
        )
        iris_x = ex + rng.uniform(-1.2, 1.2)
        cv2.circle(canvas, pt(iris_x, ey), ln(min(identity.eye_height * 0.9, 3.2)), identity.iris, -1, cv2.LINE_AA, 4)
        cv2.circle(canvas, pt(iris_x, ey), ln(1.0), (10, 10, 10), -1, cv2.LINE_AA, 4)
        by = ey - identity.brow_lift - rng.uniform(-1, 1.5)
        inner, outer = ex - side * identity.eye_width * 0.9, ex + side * identity.eye_width * 1.1
        tilt = identity.brow_tilt * identity.eye_width
        cv2.line(
            canvas, pt(inner, by + tilt), pt(outer, by - tilt), hair * 0.7, ln(identity.brow_thickness), cv2.LINE_AA, 4
        )
        if identity.glasses:
            cv2.circle(canvas, pt(ex, ey), ln(identity.eye_width + 3), (30, 30, 30), ln(1), cv2.LINE_AA, 4)

    nose_top = identity.eye_y + (cy - 58) + 2
    nose_tip = nose_top + identity.nose_length
    shade = skin * 0.75
    cv2.line(canvas, pt(fx + 1, nose_top), pt(fx + 1.5, nose_tip), shade, ln(1.2), cv2.LINE_AA, 4)
    cv2.ellipse(canvas, pt(fx, nose_tip), pt(identity.nose_width, 2.5), 0, 0, 180, shade, ln(1.2), cv2.LINE_AA, 4)

    smile = rng.uniform(-3.5, 4.0)
    my = identity.mouth_y + (cy - 58)
    mw = identity.mouth_width
    mouth = np.array([pt(fx + t * mw, my + smile * (t * t - 0.5)) for t in np.linspace(-1, 1, 9)])
    cv2.polylines(canvas, [mouth], False, identity.lips, ln(identity.lip_thickness), cv2.LINE_AA, 4)

    for mx, my_, radius in identity.moles:
        cv2.circle(canvas, pt(fx + mx * width, cy + my_ * height), ln(radius), skin * 0.45, -1, cv2.LINE_AA, 4)

    image = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    angle, scale = rng.uniform(-12, 12), rng.uniform(0.9, 1.1)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)
    matrix[:, 2] += rng.uniform(-5, 5, 2) * size / 112
    image = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)

    light = image.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.uniform(-30, 30)
    direction = rng.normal(size=2)
    ramp = (np.arange(size) / size - 0.5)[None, :] * direction[0] + (np.arange(size) / size - 0.5)[:, None] * direction[
        1
    ]
    light += (ramp * rng.uniform(0, 60))[:, :, None]
    light += rng.normal(0, rng.uniform(1, 6), light.shape)
    return np.clip(light, 0, 255).astype(np.uint8)


class SyntheticFaces:
    """``num_identities`` × ``images_per_identity`` rendered faces; label = identity index.

    ``image(i)`` and ``label(i)`` index images identity-major. Rendering is a pure function of
    (seed, identity, image), so two instances with the same arguments give identical pixels.
    """

    def __init__(
        self,
        num_identities: int,
        images_per_identity: int,
        image_size: int = 112,
        seed: int = 0,
        first_identity: int = 0,
    ):
        if num_identities < 1 or images_per_identity < 1:
            raise ValueError("a synthetic dataset needs at least one identity and one image each")
        self.num_identities = num_identities
        self.images_per_identity = images_per_identity
        self.image_size = image_size
        self.seed = seed
        self.first_identity = first_identity

    @property
    def num_classes(self) -> int:
        return self.num_identities

    def __len__(self) -> int:
        return self.num_identities * self.images_per_identity

    def label(self, index: int) -> int:
        return index // self.images_per_identity

    def image(self, index: int) -> np.ndarray:
        identity, image = divmod(index, self.images_per_identity)
        return self.render(self.first_identity + identity, image)

    def render(self, identity: int, image: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2, identity, image])
        return render_face(make_identity(self.seed, identity), rng, self.image_size)

"""Synthetic face embeddings that cluster as real ones do: a million-face gallery in seconds.

A face of identity *i* is ``normalise(a·m + c_i + s_f·n_f)`` in a ``k``-dimensional subspace:
``m`` a mean direction every face shares (real embeddings are not centred: impostors score above 0),
``c_i`` the identity's random unit centre, ``n_f`` the face's random unit noise, scaled by
``s_f = s·exp(σ·z)`` (z standard normal: some photos are worse than others). Random unit vectors in
``k`` dimensions meet at cosines of spread ~1/√k, so ``k`` sets how wide the between-person
distribution is, ``a`` where it lies, ``s`` where the within-person one lies and ``σ`` its width.

:func:`fit_face_model` finds ``(k, a, s, σ)`` whose within- and between-person cosine means and
standard deviations match measured ones (from real embeddings of a real model). Generation puts the
``k``-dimensional faces into any embedding size ``dim ≥ k`` through one fixed random orthonormal
basis: a rotation keeps every cosine, so the same fit serves a 128-d or a 512-d gallery.

Everything is a function of the seed: identity *i*'s centre is the same whichever identities are
drawn with it, so held-out probes of enrolled identities come from another ``stream`` of faces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import DataError

BLOCK = 4096  # identities per block of centres: identity i's centre depends on (seed, i // BLOCK) only


@dataclass(frozen=True)
class FaceModel:
    subspace: int  # k: the dimension the faces live in
    mean_weight: float  # a: weight of the shared mean direction
    noise: float  # s: median weight of a face's noise
    noise_spread: float  # σ: spread of log(noise weight) across faces

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FaceModel:
        return cls(int(values["subspace"]), *(float(values[k]) for k in ("mean_weight", "noise", "noise_spread")))


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def _world(model: FaceModel, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The shared mean direction (k,) and the orthonormal basis (k, dim) into the embedding space."""
    if dim < model.subspace:
        raise DataError(f"the face model lives in {model.subspace} dimensions; dim must be at least that, got {dim}")
    rng = np.random.default_rng([seed, 0])
    mean = _unit(rng.standard_normal(model.subspace))
    basis, _ = np.linalg.qr(rng.standard_normal((dim, model.subspace)))
    return mean, basis.T


def _centres(model: FaceModel, identities: np.ndarray, seed: int) -> np.ndarray:
    centres = np.empty((len(identities), model.subspace))
    blocks = identities // BLOCK
    for block in np.unique(blocks):
        drawn = _unit(np.random.default_rng([seed, 1, int(block)]).standard_normal((BLOCK, model.subspace)))
        taken = blocks == block
        centres[taken] = drawn[identities[taken] % BLOCK]
    return centres


def generate_faces(
    model: FaceModel,
    identities: int | np.ndarray,
    faces_per_identity: int,
    dim: int,
    seed: int = 0,
    stream: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(faces, identity)``: (N, dim) float32 unit rows, ``faces_per_identity`` per identity, and each row's
    identity number. ``identities``: how many (numbered 0…n−1) or which; ``stream``: another set of faces
    of the same identities (held-out probes)."""
    ids = np.arange(identities) if np.isscalar(identities) else np.asarray(identities, np.int64)
    mean, basis = _world(model, dim, seed)
    rng = np.random.default_rng([seed, 2, stream])
    identity = np.repeat(ids, faces_per_identity)
    faces = np.empty((len(identity), dim), np.float32)
    step = 65536
    for start in range(0, len(identity), step):
        who = identity[start : start + step]
        noise = _unit(rng.standard_normal((len(who), model.subspace)))
        weight = model.noise * np.exp(model.noise_spread * rng.standard_normal((len(who), 1)))
        local = model.mean_weight * mean + _centres(model, who, seed) + weight * noise
        faces[start : start + len(who)] = _unit(local) @ basis
    return faces, identity


def cosine_pairs(embeddings: np.ndarray, labels: np.ndarray, max_rows: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of every same-label pair and every different-label pair (of the first ``max_rows`` rows)."""
    unit = _unit(np.asarray(embeddings[:max_rows], np.float64)).astype(np.float32)
    labels = np.asarray(labels)[:max_rows]
    first, second = np.triu_indices(len(unit), 1)
    scores = (unit @ unit.T)[first, second]
    same = labels[first] == labels[second]
    return scores[same], scores[~same]


def _moments(within: np.ndarray, between: np.ndarray) -> np.ndarray:
    return np.array([within.mean(), within.std(), between.mean(), between.std()])


def _analytic(target: np.ndarray) -> tuple[float, float, int]:
    """(a, s, k) for target (μ_w, ·, μ_b, σ_b), with |c| = |n| = 1 and the cross terms ~ N(0, 1/k):
    μ_w ≈ (a² + 1)/D, μ_b ≈ a²/D, σ_b² ≈ (1 + s²)(1 + s² + 2a²)/(k D²), D = a² + 1 + s²."""
    within_mean, _, between_mean, between_std = target
    gap = max(within_mean - between_mean, 1e-3)
    total = 1 / gap
    a2 = max(between_mean, 0.0) * total
    s2 = max(total - a2 - 1, 1e-4)
    k = (1 + s2) * (1 + s2 + 2 * a2) / (total**2 * max(between_std, 1e-4) ** 2)
    return float(np.sqrt(a2)), float(np.sqrt(s2)), int(np.clip(round(k), 2, 4096))


def fit_face_model(within: np.ndarray, between: np.ndarray, rounds: int = 8, seed: int = 0) -> FaceModel:
    """The model whose cosine means and standard deviations match ``within`` / ``between`` (same-person and
    different-person cosines of real embeddings): the analytic guess, then ``rounds`` of correction by simulation."""
    if len(within) < 10 or len(between) < 10:
        raise DataError("fitting the face model needs at least 10 same-person and 10 different-person cosines")
    target = _moments(np.asarray(within), np.asarray(between))
    aim, spread, previous = target.copy(), 0.0, None
    for _ in range(rounds):
        a, s, k = _analytic(aim)
        model = FaceModel(k, a, s, spread)
        faces, identity = generate_faces(model, 1500, 4, k, seed=seed)
        simulated = _moments(*cosine_pairs(faces, identity, max_rows=6000))
        aim = aim + (target - simulated)
        # the within-person spread beyond what the noise's direction gives comes from the noise's size:
        # a secant step on σ (slope 0.1 until two rounds give one)
        slope = 0.1
        if previous is not None and abs(spread - previous[0]) > 1e-4:
            slope = max((simulated[1] - previous[1]) / (spread - previous[0]), 0.01)
        previous = (spread, simulated[1])
        spread = float(np.clip(spread + (target[1] - simulated[1]) / slope, 0.0, 2.0))
    return model

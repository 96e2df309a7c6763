"""MegaFace-style identification: each probe's mate competes with N distractors.

Protocol (the MegaFace devkit, as described in ``fixtures/ijb/README.md`` §3.5): for every probe
identity with M images and every ordered pair (i, j), i ≠ j, image i joins the gallery of
distractors and image j is the probe. The pair is a hit at rank k when fewer than k distractors
score at least the mate (ties count against the probe). Rank-k rate = hits / Σ M(M−1).

Only each probe's k best distractor scores matter, so the search never holds the probes × N score
matrix: :func:`top_distractor_scores` streams the distractors in blocks (they may be a NumPy
memmap, read from disk block by block), or uses a faiss flat inner-product index when faiss is
installed and the distractors fit in memory. Both are exact.

Cleaning by noise lists has the effect of insightface's ``remove_noises.py`` without its trick (a
513th dimension of 100 that only a distance-based scorer notices): listed distractors are left
out of the search, and a listed probe image is replaced by its identity's normalised mean of clean
images (the reference adds ±0.001 unseeded noise to a *sum*; here the replacement is deterministic).
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import numpy as np

from ..errors import DataError
from .identification import check_features

log = logging.getLogger(__name__)
Method = Literal["auto", "exact", "faiss"]
BLOCK_BYTES = 256 * 2**20  # scores + one block of distractors, per step of the exact search


def available_memory() -> int:
    """Bytes the system can still hand out (``MemAvailable``), or the physical memory left."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose_method(method: Method, num_distractors: int, dim: int) -> str:
    """faiss when asked for (or, with ``auto``, installed) and its in-memory index fits; else exact."""
    if method == "exact":
        return "exact"
    try:
        import faiss  # noqa: F401
    except ImportError:
        if method == "faiss":
            raise DataError("method 'faiss' needs faiss: pip install faiss-cpu (or use method 'exact')") from None
        return "exact"
    needed, free = num_distractors * dim * 4, available_memory()
    if needed > 0.7 * free:
        log.warning(
            "%d distractors of %d dimensions need %.1f GB in a faiss index but %.1f GB are available: "
            "using the exact blocked search, which streams them block by block",
            num_distractors,
            dim,
            needed / 2**30,
            free / 2**30,
        )
        return "exact"
    return "faiss"


def top_distractor_scores(
    queries: np.ndarray,
    distractors: np.ndarray,
    k: int,
    method: Method = "auto",
    exclude: np.ndarray | None = None,
    block_rows: int | None = None,
) -> np.ndarray:
    """(queries, k) best inner products against the distractors, descending; −inf where N < k."""
    queries = np.ascontiguousarray(queries, np.float32)
    num, dim = distractors.shape
    keep = None if exclude is None else ~np.asarray(exclude, bool)
    if choose_method(method, num, dim) == "faiss":
        import faiss

        index = faiss.IndexFlatIP(dim)
        index.add(np.ascontiguousarray(distractors[keep] if keep is not None else distractors, np.float32))
        scores, found = index.search(queries, k)
        return np.where(found >= 0, scores, -np.inf).astype(np.float32)
    rows = block_rows or max(1024, BLOCK_BYTES // (4 * (len(queries) + dim)))
    best = np.full((len(queries), k), -np.inf, np.float32)
    for start in range(0, num, rows):
        block = np.asarray(distractors[start : start + rows], np.float32)
        if keep is not None:
            block = block[keep[start : start + rows]]
        negated = queries @ block.T
        np.negative(negated, out=negated)  # in place: one score buffer per block, no copies
        if negated.shape[1] > k:
            negated.partition(k - 1, axis=1)
        candidates = np.concatenate([best, -negated[:, :k]], 1)
        best = -np.partition(-candidates, k - 1, axis=1)[:, :k]
    return -np.sort(-best, axis=1)


def clean_probes(features: np.ndarray, identities: np.ndarray, noisy: np.ndarray) -> np.ndarray:
    """Replace each noisy probe image by its identity's normalised mean of clean images."""
    features = np.array(features, np.float32)
    identities, noisy = np.asarray(identities), np.asarray(noisy, bool)
    for identity in np.unique(identities[noisy]):
        members = identities == identity
        clean = members & ~noisy
        if not clean.any():
            raise DataError(
                f"every image of probe identity {identity.item()!r} is on the noise list: drop the identity"
            )
        centre = features[clean].mean(0)
        features[members & noisy] = centre / np.linalg.norm(centre)
    return features


def megaface_identification(
    features: np.ndarray,
    identities: np.ndarray,
    distractors: np.ndarray,
    ranks: tuple[int, ...] = (1, 5, 10),
    noisy_probes: np.ndarray | None = None,
    noisy_distractors: np.ndarray | None = None,
    method: Method = "auto",
    block_rows: int | None = None,
) -> dict:
    """Rank-k identification rates of the probe identities' images among the distractors.

    ``features``: unit rows, one per probe image; ``identities``: their identity labels;
    ``distractors``: unit rows (an array or a memmap). Noise masks as described above.
    """
    features = check_features(features, "probe features")
    identities = np.asarray(identities)
    if len(identities) != len(features):
        raise DataError(f"{len(features)} probe features but {len(identities)} identity labels")
    if noisy_probes is not None:
        features = clean_probes(features, identities, noisy_probes)
    if distractors.shape[1] != features.shape[1]:
        raise DataError(f"probe features have {features.shape[1]} dimensions, distractors {distractors.shape[1]}")
    best = top_distractor_scores(features, distractors, max(ranks), method, noisy_distractors, block_rows)
    hits = np.zeros(len(ranks), np.int64)
    pairs = 0
    for identity in np.unique(identities):
        rows = np.flatnonzero(identities == identity)
        if len(rows) < 2:
            continue
        mate = features[rows] @ features[rows].T  # [probe j, gallery image i]
        off_diagonal = ~np.eye(len(rows), dtype=bool)
        beaten = np.sum(best[rows][:, None, :] >= mate[:, :, None], 2)[off_diagonal]
        hits += np.array([np.sum(beaten < k) for k in ranks])
        pairs += len(rows) * (len(rows) - 1)
    if pairs == 0:
        raise DataError("no probe identity has two images: the protocol needs a gallery image and a probe")
    excluded = 0 if noisy_distractors is None else int(np.sum(noisy_distractors))
    return {
        "pairs": int(pairs),
        "num_distractors": int(distractors.shape[0]) - excluded,
        "excluded_distractors": excluded,
        "rank_hits": {str(k): int(h) for k, h in zip(ranks, hits, strict=True)},
        "rank_rates": {str(k): float(h / pairs) for k, h in zip(ranks, hits, strict=True)},
    }

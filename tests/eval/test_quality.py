"""MagFace quality at evaluation: FNMR at FMR against its definition and the error-versus-reject
curve on pairs whose errors are exactly the low-quality ones."""

from __future__ import annotations

import math

import numpy as np

from facelearn.eval.quality import error_versus_reject, fnmr_at_fmr


def test_fnmr_at_fmr_is_its_definition():
    impostor = np.linspace(-0.5, 0.5, 1000)  # 1000 impostors: FMR 1e-3 allows one false match
    genuine = np.array([0.2, 0.49, 0.4985, 0.499, 0.6, 0.9])
    scores = np.concatenate([genuine, impostor])
    issame = np.arange(len(scores)) < len(genuine)
    threshold = np.sort(impostor)[-2]  # accepting above it lets exactly the highest impostor through
    assert np.sum(impostor > threshold) == 1
    assert fnmr_at_fmr(scores, issame, 1e-3) == np.mean(genuine <= threshold)
    assert math.isnan(fnmr_at_fmr(genuine, np.ones(6, dtype=bool)))


def test_rejecting_low_quality_pairs_removes_the_errors():
    rng = np.random.default_rng(0)
    n = 2000
    issame = np.arange(n) % 2 == 0
    quality = rng.uniform(10, 40, n)
    scores = np.where(issame, 0.6, -0.2) + rng.normal(0, 0.05, n)
    bad = issame & (quality < 16)  # the genuine pairs of the worst 20 % fail
    scores[bad] = -0.3
    curve = error_versus_reject(scores, issame, quality)
    assert [c["rejected"] for c in curve][:3] == [0.0, 0.05, 0.1] and len(curve) == 20
    assert curve[0]["pairs"] == n and curve[-1]["pairs"] == 100
    assert curve[0]["fnmr"] > 0.15 and curve[5]["fnmr"] == 0.0  # 25 % dropped: every failure gone
    assert all(a["fnmr"] >= b["fnmr"] for a, b in zip(curve[:5], curve[1:6], strict=True))


def test_a_curve_without_impostors_left_says_so_in_json_terms():
    issame = np.array([True] * 19 + [False])
    curve = error_versus_reject(np.linspace(0, 1, 20), issame, quality=np.arange(20.0)[::-1])
    assert curve[0]["fnmr"] is not None and curve[1]["fnmr"] is None  # the impostor had the lowest quality

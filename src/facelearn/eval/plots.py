"""Score histogram and ROC plots (PNG), written with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .metrics import roc_curve  # noqa: E402


def plot_score_histogram(
    scores: np.ndarray, issame: np.ndarray, threshold: float, path: str | Path, title: str
) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(-1, 1, 81)
    ax.hist(scores[issame], bins=bins, alpha=0.6, label=f"genuine ({issame.sum()})", color="tab:green")
    ax.hist(scores[~issame], bins=bins, alpha=0.6, label=f"impostor ({(~issame).sum()})", color="tab:red")
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_roc(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "ROC", min_far: float = 1e-4
) -> None:
    """``curves``: name → (scores, issame)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (scores, issame) in curves.items():
        fpr, tpr, _ = roc_curve(scores, issame)
        ax.plot(np.maximum(fpr, min_far / 10), tpr, label=name)
    ax.set_xscale("log")
    ax.set_xlim(min_far, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_group_distributions(groups: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str) -> None:
    """DDL's picture: per group (teacher first), the positive and the mined-negative similarities."""
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.6), sharey=True, squeeze=False)
    bins = np.linspace(-1, 1, 81)
    for ax, (name, (positives, negatives)) in zip(axes[0], groups.items(), strict=True):
        ax.hist(negatives, bins=bins, density=True, alpha=0.6, color="tab:red", label=f"S⁻ mean {negatives.mean():.3f}")
        if len(positives):
            ax.hist(
                positives,
                bins=bins,
                density=True,
                alpha=0.6,
                color="tab:green",
                label=f"S⁺ mean {positives.mean():.3f}",
            )
        ax.set_title(name)
        ax.set_xlabel("cosine similarity")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("density")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_error_versus_reject(curves: dict[str, list[dict]], path: str | Path, fmr: float = 1e-3) -> None:
    """``curves``: name → :func:`facelearn.eval.quality.error_versus_reject` output."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        points = [(100 * c["rejected"], c["fnmr"]) for c in curve if c["fnmr"] is not None]
        ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=name)
    ax.set_xlabel("lowest-quality pairs rejected (%) — quality = the smaller raw embedding norm")
    ax.set_ylabel(f"FNMR at FMR = {fmr:g}")
    ax.set_title("error versus reject")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_cmc(curves: dict[str, list[float]], path: str | Path, title: str = "CMC") -> None:
    """``curves``: name → identification rate at rank 1, 2, …"""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rates in curves.items():
        ax.plot(np.arange(1, len(rates) + 1), rates, marker="o", markersize=3, label=name)
    ax.set_xlabel("rank")
    ax.set_ylabel("identification rate")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_det(curves: dict[str, tuple[list[float], list[float]]], path: str | Path, title: str = "DET") -> None:
    """``curves``: name → (FPIR, FNIR) of open-set identification."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (fpir, fnir) in curves.items():
        fpir = np.asarray(fpir)
        ax.step(np.maximum(fpir, 1e-3), fnir, where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false positive identification rate (FPIR)")
    ax.set_ylabel("false negative identification rate (FNIR)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

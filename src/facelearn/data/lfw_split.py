"""An identity-disjoint train/test split of LFW for training and testing on the same photos.

Test: the View-2 pairs of the chosen folds (600 pairs each). Train: every other identity with at
least ``min_images`` images — no identity that appears in any test pair, so the test measures
faces the model never saw. The split is a pure function of ``pairs.txt`` and the image folder.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .images import IMAGE_EXTENSIONS
from .pairs import read_lfw_pairs

PAIRS_PER_FOLD = 600


def lfw_split(pairs_txt: str | Path, root: str | Path, test_folds: tuple[int, ...] = (8, 9, 10), min_images: int = 2):
    """(train identities, test pairs) with ``test_folds`` numbered 1…10 as in the LFW protocol."""
    pairs = read_lfw_pairs(pairs_txt)
    if len(pairs) % PAIRS_PER_FOLD or not set(test_folds) <= set(range(1, len(pairs) // PAIRS_PER_FOLD + 1)):
        raise DataError(f"{pairs_txt}: expected folds of {PAIRS_PER_FOLD} pairs including folds {test_folds}")
    test_pairs = [p for f in sorted(test_folds) for p in pairs[(f - 1) * PAIRS_PER_FOLD : f * PAIRS_PER_FOLD]]
    test_identities = {name for n1, _, n2, _ in test_pairs for name in (n1, n2)}
    train = []
    for folder in sorted(Path(root).iterdir()):
        if folder.is_dir() and folder.name not in test_identities:
            images = [f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS]
            if len(images) >= min_images:
                train.append(folder.name)
    return train, test_pairs


def write_pairs(path: str | Path, pairs: list[tuple[str, int, str, int]], folds: int) -> None:
    """An LFW-format pairs file ("folds pairs-per-half-fold" header, then one pair a line)."""
    lines = [f"{folds}\t{len(pairs) // (2 * folds)}"]
    for n1, i, n2, j in pairs:
        lines.append(f"{n1}\t{i}\t{j}" if n1 == n2 else f"{n1}\t{i}\t{n2}\t{j}")
    Path(path).write_text("\n".join(lines) + "\n")

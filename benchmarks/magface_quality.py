"""Does the feature norm rank faces by quality? MagFace against ArcFace on LFW folds 8–10.

    python benchmarks/magface_quality.py [--work runs/lfw]

Takes the MagFace and ArcFace runs of benchmarks/head_comparison.py, evaluates both on the
identity-disjoint LFW pairs, and compares MagFace's error-versus-reject curves (FNMR at FMR = 1e-3
as the pairs with the smallest norm are dropped in 5 % steps): a quality score that works makes the
curve fall. Writes benchmarks/results/magface_quality.json and magface_error_versus_reject.png.
"""

from __future__ import annotations

import argparse

from common import RESULTS, needs, write_result

from facelearn.data.pairs import pairs_from_lfw, with_folds
from facelearn.eval.embed import evaluate_pair_set
from facelearn.eval.plots import plot_error_versus_reject
from facelearn.models.checkpoint import backbone_from_checkpoint, step_checkpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/lfw")
    args = parser.parse_args()
    work, curves, rows = needs(args.work, "benchmarks/lfw_recipe.py"), {}, []
    for head in ("magface", "arcface"):
        backbone, size = backbone_from_checkpoint(step_checkpoints(work / f"head_{head}")[-1])
        pairs = pairs_from_lfw(work / "pairs_folds_8_10.txt", work / "detect" / "test", "lfw_folds_8_10", size)
        with_folds(pairs, 3)  # LFW's folds 8-10, contiguous
        result = evaluate_pair_set(backbone, pairs)
        curves[head] = result.error_versus_reject
        fnmr = {c["rejected"]: c["fnmr"] for c in result.error_versus_reject}
        rows.append(
            {
                "head": head,
                "accuracy": result.accuracy,
                "xnorm": result.xnorm,
                "fnmr_at_fmr_1e-3": {f"reject_{int(100 * k)}%": v for k, v in fnmr.items()},
                "relative_drop_at_50%": 1 - fnmr[0.5] / fnmr[0.0] if fnmr[0.0] else float("nan"),
            }
        )
    plot_error_versus_reject(curves, RESULTS / "magface_error_versus_reject.png")
    print(f"{'head':<10}{'accuracy':>10}{'XNorm':>8}{'FNMR 0%':>10}{'FNMR 25%':>10}{'FNMR 50%':>10}{'FNMR 75%':>10}")
    for r in rows:
        f = r["fnmr_at_fmr_1e-3"]
        print(
            f"{r['head']:<10}{100 * r['accuracy']:>9.2f}%{r['xnorm']:>8.1f}"
            + "".join(f"{f[k]:>10.3f}" for k in ("reject_0%", "reject_25%", "reject_50%", "reject_75%"))
        )
    write_result(RESULTS / "magface_quality.json", {"rows": rows, "curves": curves})


if __name__ == "__main__":
    main()

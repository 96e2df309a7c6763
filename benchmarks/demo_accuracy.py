"""Records what `facelearn demo` achieves on this machine: easy and hard verification accuracy on
unseen synthetic identities, and the wall time.

    python benchmarks/demo_accuracy.py [--run runs/demo]

With ``--run`` pointing at a finished demo run directory it records that run (for example the one
the README's first command just made); otherwise it runs the demo into a fresh directory first.
Prints a table and writes benchmarks/results/demo.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml
from common import RESULTS, write_result

from facelearn.cli import main as facelearn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a finished demo run directory to record instead of running the demo")
    parser.add_argument("--output", default=str(RESULTS / "demo.json"))
    args = parser.parse_args()
    run = Path(args.run) if args.run else Path(tempfile.mkdtemp(prefix="facelearn-demo-"))
    if not (run / "metrics.json").is_file() and facelearn(["demo", "--output", str(run)]) != 0:
        sys.exit("the demo failed")
    summary = json.loads((run / "metrics.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    recognition = run / "recognition.json"  # the demo's calibrate → enroll → identify step
    print(f"{'set':<24}{'pairs':>6}{'accuracy':>16}{'AUC':>8}{'EER':>8}{'TAR@FAR=1e-3':>14}")
    rows = []
    for name, result in summary["verification"].items():
        tar = result["tar_at_far"].get("0.001")
        rows.append(
            {
                "set": name,
                "pairs": result["num_pairs"],
                "accuracy": result["accuracy"],
                "accuracy_std": result["accuracy_std"],
                "auc": result["auc"],
                "eer": result["eer"],
                "tar_at_far_1e-3": tar,
                "threshold_cosine": result["threshold_cosine"],
            }
        )
        print(
            f"{name:<24}{result['num_pairs']:>6}{100 * result['accuracy']:>10.2f} ± {100 * result['accuracy_std']:.2f}"
            f"{result['auc']:>8.4f}{100 * result['eer']:>7.2f}%{'' if tar is None else f'{100 * tar:>13.1f}%'}"
        )
    print(f"trained {summary['step']} steps in {summary.get('seconds', float('nan')) / 60:.1f} min")
    write_result(
        args.output,
        {
            "recorded_run": "facelearn demo",
            "steps": summary["step"],
            "train_and_eval_seconds": summary.get("seconds"),
            "rows": rows,
            "recognition": json.loads(recognition.read_text()) if recognition.is_file() else None,
            "config": {k: config[k] for k in ("model", "head", "data", "train")},
        },
    )


if __name__ == "__main__":
    main()

"""Two-process training step time on this CPU: torch's DistributedDataParallel against the
hand-written gradient all-reduce it replaced (or any other facelearn source tree).

    python benchmarks/ddp_step_time.py                       # this checkout
    python benchmarks/ddp_step_time.py --src /tmp/old/src --label "all-reduce after backward"

Runs ``torchrun --nproc_per_node=2 -m facelearn.cli train`` (gloo, one thread per process, fp32:
bf16 autocast on one thread is 10× slower on this CPU) on synthetic faces, reads the images/s
that rank 0 logs every 10 steps, drops the first window (warm-up) and reports the median step time.
Each run appends its row to
``results/ddp_step_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, machine

RECIPE = """
model: {name: mobilefacenet, embedding_size: 512, width: 1, blocks: [1, 4, 6, 2]}
head: {name: arcface, scale: 32, margin: 0.3}
data: {kind: synthetic, num_identities: 500, images_per_identity: 8, image_size: 112, num_workers: 0}
train: {steps: STEPS, batch_size: BATCH, threads: 1, amp: "off", log_every: 10, checkpoint_every: 100000,
        output_dir: RUN}
eval: {sets: [{name: unseen, kind: synthetic, num_pairs: 20, folds: 2}]}
"""


def run(src: str, steps: int, batch: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        recipe = Path(folder) / "recipe.yaml"
        run_dir = Path(folder) / "run"
        text = RECIPE.replace("STEPS", str(steps)).replace("BATCH", str(batch)).replace("RUN", str(run_dir))
        recipe.write_text(text)
        env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
        command = ["torchrun", "--nproc_per_node=2", "-m", "facelearn.cli", "train", str(recipe)]
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        subprocess.run([torchrun, *command[1:]], env=env, check=True, capture_output=True)
        speeds = [float(m) for m in re.findall(r" ([\d.]+) img/s", (run_dir / "train.log").read_text())]
    return [batch / speed for speed in speeds[1:]]  # seconds per step on rank 0's batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", default=str(Path(__file__).resolve().parents[1] / "src"))
    parser.add_argument("--label", default="DistributedDataParallel")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=16, help="per process")
    args = parser.parse_args()
    times = run(args.src, args.steps, args.batch)
    row = {
        "label": args.label,
        "src": args.src,
        "median_step_s": round(statistics.median(times), 4),
        "windows_s": [round(t, 4) for t in times],
        "batch_per_process": args.batch,
        "command": "python " + " ".join(sys.argv),
    }
    path = RESULTS / "ddp_step_time.json"
    record = json.loads(path.read_text()) if path.is_file() else {"machine": machine(), "runs": []}
    record["runs"] = [r for r in record["runs"] if r["label"] != args.label] + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2))
    print(f"| code | median step (2 processes, batch {args.batch} each) |\n|---|---|")
    for r in record["runs"]:
        print(f"| {r['label']} | {1000 * r['median_step_s']:.0f} ms |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

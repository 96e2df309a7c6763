"""1:N on real faces: LFW-a, identity-disjoint from every training split of this project.

    python benchmarks/lfw_identification.py [--runs NAME=CHECKPOINT ...] [--work runs/lfw]

Needs the prepared data of benchmarks/lfw_recipe.py (runs/lfw/source, runs/lfw/detect). The test
identities are the people of View-2 folds 8–10, whom no training split uses:

Each person contributes at most their first 10 images (George W. Bush alone has 530).

* enrolled: every other test identity (sorted by name) among those with two or more images;
  gallery = its first image, mated probes = its other images;
* non-mated probes: every image of the other test identities (never enrolled);
* distractors: every LFW-a image of a person in neither the training split nor the test pairs
  (all of them people with a single photo), prepared the same way (MTCNN + five-point alignment).

Each checkpoint is scored by ``facelearn eval CKPT --gallery … --probes … --distractors …``'s
library call: closed-set rank-1/5/10, open-set TPIR at FPIR 1e-2 and 1e-1 (threshold on the
non-mated probes, FPIR never above the target), and rank-1 of the enrolled identities' images
among the distractors (MegaFace protocol). Writes benchmarks/results/lfw_identification.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from common import RESULTS, needs, write_result
from lfw_recipe import lfw_parser, link_identities

from facelearn.align.prepare import PrepareOptions
from facelearn.bulk.prepare import prepare_dataset
from facelearn.eval.embed import default_device
from facelearn.eval.recognition import evaluate_folders
from facelearn.models.checkpoint import backbone_from_checkpoint

MAX_IMAGES = 10  # of any one person, so that a few people with hundreds of photos do not dominate
DEFAULT_RUNS = {  # name: checkpoint, where the other benchmarks leave them
    "LFW recipe, MobileFaceNet (detect)": "runs/lfw/mbf_detect/best.pt",
    "LFW recipe, iResNet-18 (detect)": "runs/lfw/r18_detect/best.pt",
}


def link_images(images: list[Path], folder: Path) -> None:
    """``folder/<identity>/<image>`` → the aligned face."""
    for image in images:
        link = folder / image.parent.name / image.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(image.resolve())


def prepare_distractors(lfw: Path, work: Path, weights: Path, workers: int) -> tuple[list[str], Path]:
    """Every person in neither the training split nor the test pairs: their photos linked under
    ``work/source/distractors`` and prepared like the test half (MTCNN, the central face) into
    ``work/detect/distractors``, once. Returns (their names, the prepared folder)."""
    split = json.loads((work / "split.json").read_text())
    used = set(split["train_names"]) | {p.name for p in (work / "source" / "test").iterdir()}
    names = sorted(p.name for p in (lfw / "lfw").iterdir() if p.is_dir() and p.name not in used)
    link_identities(names, lfw / "lfw", work / "source" / "distractors")
    prepared = work / "detect" / "distractors"
    if not (prepared / "prepare_report.json").is_file():
        options = PrepareOptions(crop="detect", weights=str(weights), choose="central", no_face="center")
        prepare_dataset(work / "source" / "distractors", prepared, options, workers)
    return names, prepared


def make_protocol(lfw: Path, work: Path, weights: Path, workers: int) -> dict:
    test_names = sorted(p.name for p in (work / "source" / "test").iterdir())
    aligned = work / "detect" / "test"
    images = {name: sorted((aligned / name).glob("*.jpg"))[:MAX_IMAGES] for name in test_names}
    several = [name for name in test_names if len(images[name]) >= 2]
    enrolled = several[0::2]
    others = [name for name in test_names if name not in set(enrolled)]
    folder = work / "identification"
    for old in (folder / "gallery", folder / "probes"):  # links only: rebuilt from the split each time
        if old.is_dir():
            shutil.rmtree(old)
    link_images([images[name][0] for name in enrolled], folder / "gallery")
    link_images(
        [i for name in enrolled for i in images[name][1:]] + [i for n in others for i in images[n]], folder / "probes"
    )
    distractor_names, prepared = prepare_distractors(lfw, work, weights, workers)
    return {
        "enrolled_identities": len(enrolled),
        "mated_probes": sum(len(images[name]) - 1 for name in enrolled),
        "nonmated_probes": sum(len(images[name]) for name in others),
        "nonmated_identities": len(others),
        "distractor_identities": len(distractor_names),
        "folders": {k: str(folder / k) for k in ("gallery", "probes")} | {"distractors": str(prepared)},
    }


def score(name: str, checkpoint: str, protocol: dict, work: Path) -> dict:
    backbone, size = backbone_from_checkpoint(checkpoint)
    device = default_device()
    folders = protocol["folders"]
    output = work / "identification" / "results" / Path(checkpoint).parent.name
    report = evaluate_folders(
        backbone.to(device),
        folders["gallery"],
        folders["probes"],
        folders["distractors"],
        size,
        output,
        batch_size=256,
        device=device,
    )
    command = (
        f"facelearn eval {checkpoint} --gallery {folders['gallery']} --probes {folders['probes']} "
        f"--distractors {folders['distractors']} --output {output}"
    )
    return {
        "run": name,
        "checkpoint": checkpoint,
        "command": command,
        "rank1": report["cmc"]["1"],
        "rank5": report["cmc"]["5"],
        "tpir_at_fpir": dict(zip([f"{f:g}" for f in report["fpir"]], report["tpir"], strict=True)),
        "thresholds": report["thresholds"],
        "realised_fpir": report["realised_fpir"],
        "rank1_with_distractors": report["with_distractors"]["rank_rates"]["1"],
        "distractors": report["with_distractors"]["num_distractors"],
        "distractor_pairs": report["with_distractors"]["pairs"],
    }


def main() -> None:
    parser = lfw_parser(__doc__)
    parser.add_argument("--runs", nargs="+", metavar="NAME=CHECKPOINT", help="default: the LFW recipe's checkpoints")
    parser.add_argument("--output", default=str(RESULTS / "lfw_identification.json"))
    args = parser.parse_args()
    work = needs(args.work, "benchmarks/lfw_recipe.py")
    protocol = make_protocol(Path(args.lfw), work, Path(args.weights), args.workers)
    runs = dict(run.split("=", 1) for run in args.runs) if args.runs else DEFAULT_RUNS
    rows = [score(name, path, protocol, work) for name, path in runs.items() if Path(path).is_file()]
    print(
        f"\n{protocol['enrolled_identities']} enrolled, {protocol['mated_probes']} mated and "
        f"{protocol['nonmated_probes']} non-mated probes, distractors: {rows[0]['distractors'] if rows else '?'}"
    )
    print(f"{'run':<40}{'rank-1':>8}{'rank-5':>8}{'TPIR@1e-2':>11}{'TPIR@1e-1':>11}{'rank-1 +distr.':>16}")
    for r in rows:
        tpir = r["tpir_at_fpir"]
        print(
            f"{r['run']:<40}{100 * r['rank1']:>7.2f}%{100 * r['rank5']:>7.2f}%{100 * tpir['0.01']:>10.2f}%"
            f"{100 * tpir['0.1']:>10.2f}%{100 * r['rank1_with_distractors']:>15.2f}%"
        )
    write_result(args.output, {"protocol": protocol, "rows": rows})


if __name__ == "__main__":
    main()

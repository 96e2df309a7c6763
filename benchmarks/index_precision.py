"""Does a cheaper index change who is found? Rank-1 on real faces: exact float32 vs SQfp16 vs HNSW32 vs hnsw.

    python benchmarks/index_precision.py [--checkpoint runs/lfw/mbf_detect/best.pt] [--work runs/lfw]

Uses the LFW-a 1:N protocol of benchmarks/lfw_identification.py (run it first): the 252 enrolled
people plus every distractor as a subject of its own (3,492 subjects), and the 712 mated probes.
Reports rank-1 with each index and HNSW's recall@1 against the exact search, on real embeddings.
Writes benchmarks/results/index_precision.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import RESULTS, needs, write_result

from facelearn.data.images import IMAGE_EXTENSIONS, fit_size, read_image
from facelearn.deploy.gallery import build_index
from facelearn.eval.embed import embed_images
from facelearn.models.checkpoint import backbone_from_checkpoint


def images_by_person(folder: Path) -> list[tuple[str, Path]]:
    return [(p.parent.name, p) for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/lfw/mbf_detect/best.pt")
    parser.add_argument("--work", default="runs/lfw")
    parser.add_argument("--output", default=str(RESULTS / "index_precision.json"))
    args = parser.parse_args()
    work = needs(args.work, "benchmarks/lfw_recipe.py")
    needs(args.checkpoint, "benchmarks/lfw_recipe.py")
    gallery = images_by_person(work / "identification" / "gallery")
    distractors = images_by_person(work / "detect" / "distractors")
    probes = [(n, p) for n, p in images_by_person(work / "identification" / "probes") if n in {g[0] for g in gallery}]
    backbone, size = backbone_from_checkpoint(args.checkpoint)
    items = gallery + distractors + probes
    embeddings, _, _ = embed_images(backbone, lambda i: fit_size(read_image(items[i][1]), size), len(items))
    enrolled = len(gallery) + len(distractors)
    subjects = [name for name, _ in gallery] + [f"distractor:{p.name}" for _, p in distractors]
    truth = [name for name, _ in probes]
    rows, exact_answers = [], None
    for kind in ("exact", "SQfp16", "HNSW32", "hnsw"):
        index = build_index(embeddings.shape[1], kind)
        index.add(subjects, embeddings[:enrolled])
        answers = [found[0][0] for found in index.search(embeddings[enrolled:], k=1)]
        exact_answers = exact_answers or answers
        row = {
            "index": kind,
            "subjects": len(set(subjects)),
            "probes": len(probes),
            "rank1": float(np.mean([a == t for a, t in zip(answers, truth, strict=True)])),
            "agreement_with_exact": float(np.mean([a == e for a, e in zip(answers, exact_answers, strict=True)])),
        }
        rows.append(row)
        agreement = 100 * row["agreement_with_exact"]
        print(f"{kind:<8} rank-1 {100 * row['rank1']:.2f}%  same answer as exact {agreement:.2f}%")
    write_result(args.output, {"checkpoint": args.checkpoint, "rows": rows})


if __name__ == "__main__":
    main()

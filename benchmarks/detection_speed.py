"""Detection + alignment speed on this CPU, per detector, for a 250×250 LFW image and the
1200×630 group photo (six faces; every face is aligned).

    python benchmarks/detection_speed.py [--repeats 20] [--threads 2]

Prints a table and writes benchmarks/results/detection_speed.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch
from common import RESULTS, write_result

from facelearn.align import align_face, build_detector
from facelearn.data.images import read_image

SHARED = Path(os.environ.get("FACELEARN_SHARED", Path(__file__).resolve().parents[2] / "shared"))
IMAGES = {
    "lfw 250x250": SHARED / "data" / "lfw_a" / "lfw" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg",
    "group 1200x630": SHARED / "data" / "photos" / "facenet_pytorch" / "multiface.jpg",
}


def detect_and_align(detector, image) -> int:
    faces = detector.detect(image)
    for points in faces.landmarks:
        align_face(image, points)
    return len(faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(RESULTS / "detection_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'detector':<12}{'image':<16}{'faces':>6}{'ms/image':>10}{'images/s':>10}")
    for name in ("mtcnn", "retinaface"):
        detector = build_detector(name, str(SHARED / "weights" / name))
        for label, path in IMAGES.items():
            image = read_image(path)
            faces = detect_and_align(detector, image)  # warm-up (and anchor cache for RetinaFace)
            start = time.perf_counter()
            for _ in range(args.repeats):
                detect_and_align(detector, image)
            seconds = (time.perf_counter() - start) / args.repeats
            rows.append({"detector": name, "image": label, "faces": faces, "ms_per_image": round(1000 * seconds, 1)})
            print(f"{name:<12}{label:<16}{faces:>6}{1000 * seconds:>10.1f}{1 / seconds:>10.1f}")
    write_result(args.output, {"threads": args.threads, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()

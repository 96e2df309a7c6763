"""``facelearn prepare``: raw identity folders → aligned faces (folder or RecordIO) with a report,
and an LFW-style pairs list → an insightface ``.bin``.

Interrupting is safe: each aligned image is written to a temporary name and renamed, and every
finished source image is appended to ``prepare_journal.jsonl`` (keyed by its path relative to the
source folder, however that folder is spelt); a second run skips what the journal lists and the
report counts both runs. A folder prepared with other options is refused, so is an output folder
that is the source, lies inside it or holds it (the user's photos are never written over), and a
second ``prepare`` on the same output while one runs. The detector's weights are loaded and checked
once before any worker starts, and a worker that fails stops the whole run with its reason.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..data.images import ImageError, encode_image, read_image
from ..data.pairs import read_lfw_pairs
from ..data.recordio import write_recordio
from ..data.verification_bin import write_verification_bin
from ..errors import ConfigError, DataError, FacelearnError
from ..io import DirectoryLock, write_bytes_atomic, write_text_atomic
from .align import align_face
from .faces import FaceDetector, choose_face

log = logging.getLogger(__name__)

JOURNAL = "prepare_journal.jsonl"
REPORT = "prepare_report.json"
OPTIONS = "prepare_options.json"
CROPS = ("detect", "center", "resize")


@dataclass
class PrepareOptions:
    crop: str = "detect"  # detect + align; center: fixed central square; resize: the whole image
    detector: str = "mtcnn"
    weights: str | None = None  # folder of the detector's weights (default: $FACELEARN_HOME)
    size: int = 112
    choose: str = "largest"  # which face when there are several: largest | central
    min_face_size: int = 20
    max_size: int = 1600  # longer side above which detection runs on a downscaled copy
    center_fraction: float = 0.6  # side of the central square as a fraction of the shorter side
    no_face: str = "skip"  # an image where no face is found: skip it, or keep its central crop ("center")

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ConfigError(f"unknown crop {self.crop!r}; valid: {', '.join(CROPS)}")
        if self.choose not in ("largest", "central"):
            raise ConfigError(f"unknown face choice {self.choose!r}; valid: largest, central")
        if self.no_face not in ("skip", "center"):
            raise ConfigError(f"unknown no_face action {self.no_face!r}; valid: skip, center")
        if not 0 < self.center_fraction <= 1:
            raise ConfigError(f"center_fraction must be in (0, 1], got {self.center_fraction}")

    def build_detector(self) -> FaceDetector | None:
        if self.crop != "detect":
            return None
        from . import build_detector

        options = {"max_size": self.max_size, "min_face_size": self.min_face_size}
        return build_detector(self.detector, self.weights, **options)


def center_crop(image: np.ndarray, fraction: float, size: int) -> np.ndarray:
    """The central square of side ``fraction`` × the shorter side, resized to size×size."""
    height, width = image.shape[:2]
    side = max(1, round(min(height, width) * fraction))
    top, left = (height - side) // 2, (width - side) // 2
    return cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)


def crop_face(
    image: np.ndarray, options: PrepareOptions, detector: FaceDetector | None
) -> tuple[np.ndarray | None, int]:
    """(aligned face, number of faces found); no face gives None, or the central crop with ``no_face="center"``."""
    if options.crop == "resize":
        return cv2.resize(image, (options.size, options.size), interpolation=cv2.INTER_AREA), 1
    if options.crop == "center":
        return center_crop(image, options.center_fraction, options.size), 1
    faces = detector.detect(image)
    if len(faces) == 0:
        return (center_crop(image, options.center_fraction, options.size) if options.no_face == "center" else None), 0
    chosen = choose_face(faces, image.shape, options.choose)
    return align_face(image, faces.landmarks[chosen], options.size, options.size), len(faces)


# One detector per worker process, built once by the pool initializer.
_worker: dict = {}


def _init_worker(options: PrepareOptions, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _worker["options"], _worker["detector"] = options, options.build_detector()


def _align_file(task: tuple[str, str | None]) -> dict:
    """Align one source image; write it to ``destination`` (atomically) or return its JPEG bytes."""
    source, destination = task
    options, detector = _worker["options"], _worker["detector"]
    try:
        face, count = crop_face(read_image(source), options, detector)
    except ImageError as error:
        return {"source": source, "status": "error", "faces": 0, "reason": str(error)}
    except Exception as error:  # a bad file must not stop a run over thousands of images
        return {"source": source, "status": "error", "faces": 0, "reason": f"{type(error).__name__}: {error}"}
    result = {"source": source, "status": "ok" if count else "no_face", "faces": count}
    if face is None:
        return result
    data = encode_image(face, ".jpg", 95)
    if destination is None:
        result["jpeg"] = data
    else:
        write_bytes_atomic(destination, data)
    return result


def _run(tasks: list[tuple[str, str | None]], options: PrepareOptions, workers: int, description: str):
    """Yield the result of every task, in parallel over ``workers`` processes (0 = in this process)."""
    options.build_detector()  # load and verify the weights here, once: a bad file is one clear error
    if workers <= 0:
        _init_worker(options, threads=max(1, os.cpu_count() or 1))
        for task in tqdm(tasks, desc=description, unit="img", mininterval=2):
            yield _align_file(task)
        return
    context = multiprocessing.get_context("spawn")  # no fork after torch has started threads
    # unlike multiprocessing.Pool, the executor does not respawn a worker whose start failed: it
    # breaks, and the run stops with the reason instead of hanging
    with ProcessPoolExecutor(workers, context, initializer=_init_worker, initargs=(options, 1)) as pool:
        futures = [pool.submit(_align_file, task) for task in tasks]
        try:
            for future in tqdm(as_completed(futures), total=len(tasks), desc=description, unit="img", mininterval=2):
                yield future.result()
        except BrokenProcessPool as error:
            raise FacelearnError(f"a prepare worker process failed ({error}); nothing more was done") from None
        finally:
            for future in futures:
                future.cancel()


def _source_images(source: Path) -> list[tuple[str, Path]]:
    """(identity, file) for every file in every identity folder: non-images are reported, not skipped."""
    if not source.is_dir():
        raise DataError(f"{source} is not a folder: expected <source>/<identity>/<image>")
    files = [(d.name, f) for d in sorted(source.iterdir()) if d.is_dir() for f in sorted(d.iterdir()) if f.is_file()]
    if not files:
        raise DataError(f"{source} holds no identity folders with files: expected <source>/<identity>/<image>")
    return files


def check_separate(source: Path, output: Path) -> None:
    """Refuse an output that is the source, lies inside it, or holds it: the photos would be overwritten."""
    src, out = source.resolve(), output.resolve()
    if out == src or src in out.parents or out in src.parents:
        raise DataError(
            f"the output {output} {'is' if out == src else 'lies inside' if src in out.parents else 'holds'} the "
            f"source {source}: prepare writes aligned crops there; choose an output folder outside the source"
        )


def output_names(files: list[tuple[str, Path]]) -> list[str]:
    """``<identity>/<stem>.jpg``; files of one folder that share a stem (face.jpg, face.png) keep their
    extension (``face.jpg.jpg``, ``face.png.jpg``) so that neither replaces the other."""
    stems: dict[tuple[str, str], int] = {}
    for identity, path in files:
        stems[identity, path.stem] = stems.get((identity, path.stem), 0) + 1
    return [f"{identity}/{path.name if stems[identity, path.stem] > 1 else path.stem}.jpg" for identity, path in files]


def _check_options(output: Path, options: PrepareOptions) -> None:
    path, wanted = output / OPTIONS, asdict(options)
    if path.is_file():
        recorded = json.loads(path.read_text())
        if recorded != wanted:
            differing = sorted(k for k in wanted if recorded.get(k) != wanted[k])
            raise DataError(
                f"{output} was prepared with other options ({', '.join(differing)}): "
                "use a new output folder, or the same options to resume"
            )
    else:
        write_text_atomic(path, json.dumps(wanted, indent=2))


def _read_journal(path: Path, source: Path) -> list[dict]:
    """The journal's entries, keyed by paths relative to ``source`` (older journals held full paths)."""
    if not path.is_file():
        return []
    entries, root = {}, source.resolve()
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed run may be cut short
            continue
        if Path(entry["source"]).is_absolute() or not (source / entry["source"]).exists():
            try:
                entry["source"] = str(Path(entry["source"]).resolve().relative_to(root))
            except ValueError:
                continue  # not an image of this source
        entries[entry["source"]] = entry
    return list(entries.values())


def summarise(entries: list[dict], seconds: float, options: PrepareOptions) -> dict:
    statuses = [e["status"] for e in entries]
    return {
        "images_read": sum(s != "error" for s in statuses),
        "faces_found": statuses.count("ok"),
        "no_face": statuses.count("no_face"),
        "multi_face": sum(e["faces"] > 1 for e in entries),
        "failures": [{"source": e["source"], "reason": e["reason"]} for e in entries if e["status"] == "error"],
        "no_face_images": [e["source"] for e in entries if e["status"] == "no_face"],
        "seconds_this_run": round(seconds, 1),
        "options": asdict(options),
    }


def prepare_dataset(
    source: str | Path, output: str | Path, options: PrepareOptions, workers: int = 2, recordio: bool = False
) -> dict:
    """Align every image of ``source/<identity>/`` into ``output/<identity>/<stem>.jpg``.

    Returns (and writes to ``output/prepare_report.json``) the counts: images read, faces found,
    images without a face, images with several (the ``choose`` rule kept one), and each failure
    with its reason. With ``recordio``, ``output/train.rec`` + ``.idx`` are written at the end.
    """
    start = time.perf_counter()
    source, output = Path(source), Path(output)
    check_separate(source, output)
    files = _source_images(source)
    output.mkdir(parents=True, exist_ok=True)
    with DirectoryLock(output, "facelearn prepare"):
        _check_options(output, options)
        journal_path = output / JOURNAL
        entries = _read_journal(journal_path, source)
        done = {e["source"] for e in entries}
        tasks = []
        for (identity, path), name in zip(files, output_names(files), strict=True):
            if str(path.relative_to(source)) not in done:
                (output / identity).mkdir(exist_ok=True)
                tasks.append((str(path), str(output / name)))
        if len(tasks) < len(files):
            log.warning("resuming %s: %d of %d images already prepared", output, len(files) - len(tasks), len(files))
        with open(journal_path, "a") as journal:
            for result in _run(tasks, options, workers, f"prepare {source.name}"):
                result["source"] = str(Path(result["source"]).relative_to(source))
                if result["status"] == "error":
                    log.warning("%s: %s", result["source"], result["reason"])
                journal.write(json.dumps(result) + "\n")
                journal.flush()
                entries.append(result)
        report = summarise(entries, time.perf_counter() - start, options)
        if recordio:
            report["recordio"] = str(pack_recordio(output))
        write_text_atomic(output / REPORT, json.dumps(report, indent=2))
    return report


def pack_recordio(folder: Path) -> Path:
    """Pack ``folder/<identity>/*.jpg`` into ``folder/train.rec``/``.idx`` (labels by sorted identity)."""
    identities = sorted(d for d in folder.iterdir() if d.is_dir() and any(d.glob("*.jpg")))
    samples = ((label, path.read_bytes()) for label, d in enumerate(identities) for path in sorted(d.glob("*.jpg")))
    write_recordio(folder / "train", samples, len(identities))
    return folder / "train.rec"


def prepare_pairs_bin(
    pairs_txt: str | Path, root: str | Path, output: str | Path, options: PrepareOptions, workers: int = 2
) -> dict:
    """An LFW-style pairs list over ``root/<name>/<name>_<####>.<ext>`` → an insightface ``.bin``.

    Every pair must keep both images, so an image where no face is found falls back to the central
    crop (the report lists those, so the evaluation can be judged); an unreadable image is an error.
    """
    root = Path(root)
    pairs = read_lfw_pairs(pairs_txt)
    names = [(n1, i) for n1, i, _, _ in pairs] + [(n2, j) for _, _, n2, j in pairs]
    paths = {}
    for name, number in names:
        matches = sorted((root / name).glob(f"{name}_{number:04d}.*"))
        if not matches:
            raise DataError(f"{pairs_txt}: image {number} of {name} not found under {root / name}")
        paths[(name, number)] = str(matches[0])
    options = replace(options, no_face="center")
    results = {r["source"]: r for r in _run([(p, None) for p in paths.values()], options, workers, "pairs")}
    failed = [r for r in results.values() if r["status"] == "error"]
    if failed:
        raise ImageError(f"{len(failed)} images of the pairs cannot be read, e.g. {failed[0]['reason']}")
    bins = [results[paths[key]]["jpeg"] for n1, i, n2, j in pairs for key in ((n1, i), (n2, j))]
    write_verification_bin(output, bins, [n1 == n2 for n1, _, n2, _ in pairs])
    fallbacks = sorted(r["source"] for r in results.values() if r["status"] == "no_face")
    return {"pairs": len(pairs), "images": len(paths), "center_crop_fallbacks": fallbacks}

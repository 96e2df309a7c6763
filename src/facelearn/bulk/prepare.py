"""``facelearn prepare``: raw identity folders → aligned faces (folder or RecordIO) with a report, and an
LFW-style pairs list → an insightface ``.bin`` — the bulk pipeline with the aligned crop as its end.

    facelearn prepare raw/ aligned/                                   # local process pool (--workers)
    facelearn prepare photos/ faces/                                  # a flat folder: faces/<stem>.jpg
    facelearn prepare raw/ aligned/ --engine ray --recordio           # Ray Data; then torchrun trains on it

Interrupting is safe: each aligned image is written to a temporary name and renamed, and every
finished source image is appended to ``prepare_journal.jsonl`` (keyed by its path relative to the
source folder, however that folder is spelt); a second run skips what the journal lists and the
report counts both runs. A crop written by a worker whose result never reached the journal (a killed
driver) is written again under the same name: the folder never holds a photo twice. A folder
prepared with other options is refused, so is an output folder that is the source, lies inside it
or holds it (the user's photos are never written over), and a second ``prepare`` on the same output
while one runs. The detector's weights are loaded and checked once before any worker starts, and a
worker that fails stops the whole run with its reason. With the Ray engine the output folder must be
one every node writes to (a shared filesystem).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path

from ..align.prepare import PrepareOptions, crop_face
from ..data.images import ImageError, encode_image
from ..data.pairs import read_lfw_pairs
from ..data.recordio import write_recordio
from ..data.verification_bin import write_verification_bin
from ..errors import DataError
from ..io import DirectoryLock, write_bytes_atomic, write_text_atomic
from .engine import EngineOptions, build_engine
from .stages import Decoded, End, Item, Pipeline, Timer, failure

log = logging.getLogger(__name__)

JOURNAL = "prepare_journal.jsonl"
REPORT = "prepare_report.json"
OPTIONS = "prepare_options.json"


class AlignedCrops(End):
    """The face of each photo, aligned (or its centre crop, or the photo resized), as a JPEG: written to the
    item's destination, or returned (the pairs ``.bin``)."""

    def __init__(self, options: PrepareOptions):
        self.options, self.detector = options, None

    def prepare(self) -> dict:
        self.options.build_detector()  # load and verify the weights here, once: a bad file is one clear error
        return {}

    def load(self) -> None:
        self.detector = self.options.build_detector()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "detector": None}

    def __call__(self, photos: list[Decoded], timer: Timer) -> list[dict]:
        return [self.crop(photo, timer) for photo in photos]

    def crop(self, photo: Decoded, timer: Timer) -> dict:
        if photo.status != "ok":
            return photo.result()
        try:
            with timer("detect"):  # detection and alignment: crop_face does both
                face, count = crop_face(photo.image, self.options, self.detector)
        except Exception as error:  # a bad file must not stop a run over thousands of images
            return photo.result(status="unreadable", reason=failure(error))
        result = photo.result(status="ok" if count else "no_face", faces=count)
        if face is not None:
            with timer("write"):
                data = encode_image(face, ".jpg", 95)
                if photo.item.destination is None:
                    result["jpeg"] = data
                else:
                    write_bytes_atomic(photo.item.destination, data)
        return result


def _run(tasks: list[Item], options: PrepareOptions, engine: EngineOptions, description: str):
    """One journal entry per task (``source``: the item's key; status ok, no_face or error), as they finish."""
    end = AlignedCrops(options)
    end.prepare()
    for results, _ in build_engine(engine).run(Pipeline(end), tasks, description):
        for result in results:
            entry = {"source": result.pop("key"), "status": result["status"], "faces": result["faces"]}
            if result["status"] not in ("ok", "no_face"):
                entry |= {"status": "error", "reason": result["reason"]}
            if "jpeg" in result:
                entry["jpeg"] = result["jpeg"]
            yield entry


FLAT = "."  # the identity of a flat folder's photos: written straight into the output folder


def _source_images(source: Path) -> list[tuple[str, Path]]:
    """(identity, file) for every file in every identity folder: non-images are reported, not skipped. A flat
    folder (photos, no identity folders) gives its files with the identity ``FLAT``: output/<stem>.jpg."""
    if not source.is_dir():
        raise DataError(f"{source} is not a folder: expected <source>/<identity>/<image> or <source>/<image>")
    files = [(d.name, f) for d in sorted(source.iterdir()) if d.is_dir() for f in sorted(d.iterdir()) if f.is_file()]
    if not files:
        files = [(FLAT, f) for f in sorted(source.iterdir()) if f.is_file() and not f.name.startswith(".")]
    if not files:
        raise DataError(f"{source} holds no photos: expected <source>/<identity>/<image> or <source>/<image>")
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
    source: str | Path,
    output: str | Path,
    options: PrepareOptions,
    workers: int = 2,
    recordio: bool = False,
    engine: EngineOptions | None = None,
) -> dict:
    """Align every image of ``source/<identity>/`` into ``output/<identity>/<stem>.jpg``.

    Returns (and writes to ``output/prepare_report.json``) the counts: images read, faces found,
    images without a face, images with several (the ``choose`` rule kept one), and each failure
    with its reason. With ``recordio``, ``output/train.rec`` + ``.idx`` are written at the end.
    ``engine``: which engine and its options (default: the local pool of ``workers`` processes).
    """
    start = time.perf_counter()
    runner = engine or EngineOptions(workers=workers)
    source, output = Path(source), Path(output)
    check_separate(source, output)
    files = _source_images(source)
    if recordio and files[0][0] == FLAT:
        raise DataError(f"{source} is a flat folder of photos, without identities: --recordio needs identity folders")
    output.mkdir(parents=True, exist_ok=True)
    with DirectoryLock(output, "facelearn prepare"):
        _check_options(output, options)
        journal_path = output / JOURNAL
        entries = _read_journal(journal_path, source)
        done = {e["source"] for e in entries}
        tasks = []
        for (identity, path), name in zip(files, output_names(files), strict=True):
            key = str(path.relative_to(source))
            if key not in done:
                (output / identity).mkdir(exist_ok=True)
                tasks.append(Item(key, str(path), identity, str(output / name)))
        if len(tasks) < len(files):
            log.warning("resuming %s: %d of %d images already prepared", output, len(files) - len(tasks), len(files))
        with open(journal_path, "a") as journal:
            for result in _run(tasks, options, runner, f"prepare {source.name}"):
                if result["status"] == "error":
                    log.warning("%s: %s", result["source"], result["reason"])
                journal.write(json.dumps(result) + "\n")
                journal.flush()
                entries.append(result)
        report = summarise(entries, time.perf_counter() - start, options)
        report["engine"] = runner.engine
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
    pairs_txt: str | Path,
    root: str | Path,
    output: str | Path,
    options: PrepareOptions,
    workers: int = 2,
    engine: EngineOptions | None = None,
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
    tasks = [Item(path, path) for path in paths.values()]
    results = {r["source"]: r for r in _run(tasks, options, engine or EngineOptions(workers=workers), "pairs")}
    failed = [r for r in results.values() if r["status"] == "error"]
    if failed:
        raise ImageError(f"{len(failed)} images of the pairs cannot be read, e.g. {failed[0]['reason']}")
    bins = [results[paths[key]]["jpeg"] for n1, i, n2, j in pairs for key in ((n1, i), (n2, j))]
    write_verification_bin(output, bins, [n1 == n2 for n1, _, n2, _ in pairs])
    fallbacks = sorted(r["source"] for r in results.values() if r["status"] == "no_face")
    return {"pairs": len(pairs), "images": len(paths), "center_crop_fallbacks": fallbacks}

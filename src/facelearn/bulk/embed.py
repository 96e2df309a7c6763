"""``facelearn embed PHOTOS OUT``: every face of every photo → Parquet (:mod:`facelearn.bulk.output`), on either engine.

    facelearn embed raw/ faces/ --model best.pt                                  # local process pool
    facelearn embed paths.parquet s3://bucket/faces --model best.pt --engine ray --address HEAD:6379

The faces are found, aligned and embedded exactly as the Recognizer does for one photo
(:meth:`Recognizer.detect`, :meth:`Recognizer.align`, :meth:`Recognizer.embed_faces`), so a bulk
embedding and a served one agree. A rerun skips the photos a shard of the same model already holds
(keyed by photo key and model id), so a killed run is finished by running it again, and a finished
one writes nothing. ``OUT/embed_report.json`` counts photos and faces and lists every photo without a
face, missing, unreadable or too large, with the reason.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..align import DEFAULT_DETECTOR, build_detector
from ..errors import DataError
from ..io import DirectoryLock, write_text_atomic
from .engine import EngineOptions, build_engine
from .output import FORMAT, REPORT, done_keys, read_columns, remove_duplicates, remove_temporaries, write_shard
from .sources import filesystem, is_uri, list_photos
from .stages import FAILED, MAX_BYTES, Decoded, End, Item, Pipeline, Timer, failure

log = logging.getLogger(__name__)
EMBED_BATCH = 64  # faces per model call


@dataclass
class EmbedOptions:
    model: str
    architecture: str | None = None  # of a plain state_dict (arcface_torch .pth)
    detector: str = DEFAULT_DETECTOR
    weights: str | None = None  # the detector's weights folder (default: $FACELEARN_HOME)
    backend: str = "torch"
    precision: str = "auto"  # torch backend: auto, float32, bfloat16, float16
    max_bytes: int | None = None  # a larger photo file is reported as too_large (None: MAX_BYTES)

    def recognizer(self, detector: bool = True):
        from ..deploy.loading import is_named_model
        from ..deploy.recognizer import Recognizer

        own = is_named_model(self.model) or str(self.model).endswith(".onnx")  # dlib, ONNX: no torch precision
        torch_backend = self.backend == "torch" and not own
        return Recognizer.load(
            self.model,
            self.architecture,
            detector=self.detector if detector else None,
            weights=self.weights,
            backend=self.backend,
            **({"precision": self.precision} if torch_backend else {}),
        )


class FaceEmbeddings(End):
    """detect → align → embed every face of a batch's photos, then write the batch's shard."""

    def __init__(self, options: EmbedOptions, output: str):
        self.options, self.output = options, output
        self.model_id, self.dim, self.recognizer = None, None, None

    def prepare(self) -> dict:
        recognizer = self.options.recognizer(detector=False)
        build_detector(self.options.detector, self.options.weights)  # a bad weights file: one error, here
        self.model_id, self.dim = recognizer.model_id, recognizer.embedder.embedding_size
        return {"model_id": self.model_id, "embedding_size": self.dim, "model": str(self.options.model)}

    def load(self) -> None:
        self.recognizer = self.options.recognizer()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "recognizer": None}  # workers load their own

    def __call__(self, photos: list[Decoded], timer: Timer) -> list[dict]:
        found = []
        for photo in photos:
            faces, aligned = None, []
            if photo.status == "ok":
                try:
                    with timer("detect"):
                        faces = self.recognizer.detect(photo.image)
                    with timer("align"):
                        aligned = self.recognizer.align(photo.image, faces)
                except Exception as error:  # one bad photo must not stop a run over millions
                    photo.status, photo.reason = "unreadable", failure(error)
                if photo.status == "ok" and not aligned:
                    photo.status = "no_face"
            found.append((photo, faces, aligned))
        crops = [face for _, _, aligned in found for face in aligned]
        with timer("embed"):
            embeddings, qualities = self.recognizer.embed_faces(crops, EMBED_BATCH) if crops else (None, None)
        rows, position = [], 0
        for photo, faces, aligned in found:
            base = {"photo_key": photo.item.key, "subject": photo.item.subject, "model_id": self.model_id}
            base |= {"status": photo.status, "reason": photo.reason, "faces": len(aligned)}
            if not aligned:
                rows.append(base)
            for index in range(len(aligned)):
                rows.append(
                    {
                        **base,
                        "face_index": index,
                        "box": faces.boxes[index].tolist(),
                        "landmarks": faces.landmarks[index].ravel().tolist(),
                        "score": float(faces.scores[index]),
                        "quality": float(qualities[position]),
                        "embedding": embeddings[position].tolist(),
                    }
                )
                position += 1
        with timer("write"):
            write_shard(self.output, self.model_id, [photo.item.key for photo in photos], rows, self.dim)
        return [photo.result(faces=len(aligned)) for photo, _, aligned in found]


def check_output(photos: str, output: str) -> None:
    """Refuse an output that is the photo folder or lies inside it: its shards would become photos."""
    if is_uri(photos) or is_uri(output) or not Path(photos).is_dir():
        return
    source, out = Path(photos).resolve(), Path(output).resolve()
    if out == source or source in out.parents:
        raise DataError(f"the output {output} lies inside the photos {photos}: choose an output folder outside it")


def summarise(output: str, model_id: str, keys: list[str]) -> dict:
    """Counts and problem lists over the listed photos, read back from the shards (every run's work)."""
    table = read_columns(output, model_id, ["photo_key", "status", "reason", "face_index"])
    table = table.filter(pc.is_in(table["photo_key"], pa.array(keys, pa.string())))
    faces = table.filter(pc.is_valid(table["face_index"]))
    statuses = table.filter(pc.is_null(table["face_index"])).to_pylist()
    with_faces = pc.count_distinct(faces["photo_key"]).as_py() if len(faces) else 0
    report = {
        "photos": len(keys),
        "photos_with_faces": with_faces,
        "faces": len(faces),
        "not_done": len(keys) - with_faces - len(statuses),
        "no_face": sorted(row["photo_key"] for row in statuses if row["status"] == "no_face"),
    }
    for status in FAILED:
        report[status] = [
            {"photo": row["photo_key"], "reason": row["reason"]} for row in statuses if row["status"] == status
        ]
    return report


def write_report(output: str, report: dict) -> None:
    text = json.dumps(report, indent=2)
    system, folder = filesystem(output)
    if is_uri(output) and not output.startswith("file://"):
        with system.open_output_stream(f"{folder.rstrip('/')}/{REPORT}") as stream:
            stream.write(text.encode())
    else:
        write_text_atomic(Path(folder) / REPORT, text)


def embed_photos(photos: str | Path, output: str | Path, options: EmbedOptions, engine: EngineOptions) -> dict:
    """Embed every face of PHOTOS into OUT (skipping what OUT holds for this model); returns the report."""
    start = time.perf_counter()
    photos, output = str(photos), str(output)
    check_output(photos, output)
    listed = list_photos(photos)
    runner = build_engine(engine)
    end = FaceEmbeddings(options, output)
    identity = end.prepare()
    local = not is_uri(output) or output.startswith("file://")
    if local:
        os.makedirs(filesystem(output)[1], exist_ok=True)
    with DirectoryLock(filesystem(output)[1], "facelearn embed") if local else nullcontext():
        remove_temporaries(output)
        done = done_keys(output, end.model_id)
        todo = [Item(p.key, p.path, p.subject) for p in listed if p.key not in done]
        if done:
            log.warning("resuming %s: %d of %d photos already embedded", output, len(listed) - len(todo), len(listed))
        seconds: dict[str, float] = defaultdict(float)
        description = f"embed {Path(photos.rstrip('/')).name}"
        for _, stage_seconds in runner.run(Pipeline(end, options.max_bytes or MAX_BYTES), todo, description):
            for stage, value in stage_seconds.items():
                seconds[stage] += value
        removed = remove_duplicates(output, end.model_id) if todo else 0
        report = {
            "format": FORMAT,
            **identity,
            "detector": options.detector,
            **summarise(output, end.model_id, [p.key for p in listed]),
        }
        elapsed = time.perf_counter() - start
        report["this_run"] = {
            "photos": len(todo),
            "seconds": round(elapsed, 2),
            "photos_per_second": round(len(todo) / elapsed, 2) if todo else None,
            "stage_seconds": {stage: round(value, 3) for stage, value in seconds.items() if stage != "cpu"},
            "cpu_seconds": round(seconds["cpu"], 3),
            "duplicates_removed": removed,
            **runner.describe(),
            "options": asdict(options),
        }
        write_report(output, report)
    return report


def faces_of(table: pa.Table) -> np.ndarray:
    """(N, D) float32 embeddings of a table of face rows."""
    column = table["embedding"].combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(len(table), -1).astype(np.float32, copy=False)

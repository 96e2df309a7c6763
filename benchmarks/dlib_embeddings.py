"""dlib's ResNet descriptor of many photos (``Recognizer.load("dlib").embed``) in worker processes, kept in an
.npz so that a rerun embeds nothing again. Shared by dlib_calibration.py and face_statistics.py."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from facelearn.data.images import read_image

_recognizer = None


def _start() -> None:
    global _recognizer
    from facelearn.deploy.recognizer import Recognizer

    _recognizer = Recognizer.load("dlib")


def _embed(paths: list[str]) -> np.ndarray:
    return _recognizer.embed([read_image(path) for path in paths])


def embed_photos(paths: list[Path], cache: Path, workers: int) -> tuple[np.ndarray, float]:
    """(N, 128) unit embeddings (NaN: no face), and the seconds the embedding took (as measured then when read
    from ``cache``; NaN for a cache written before the seconds were kept)."""
    if cache.is_file():
        stored = np.load(cache)
        if list(stored["paths"]) == [str(p) for p in paths]:
            seconds = float(stored["seconds"]) if "seconds" in stored.files else float("nan")
            return stored["embeddings"], seconds
    chunks = [[str(p) for p in paths[i : i + 16]] for i in range(0, len(paths), 16)]
    start, rows = time.perf_counter(), []
    with ProcessPoolExecutor(workers, initializer=_start) as pool:
        for number, block in enumerate(pool.map(_embed, chunks), start=1):
            rows.append(block)
            if number % 10 == 0:
                print(f"  {number * 16:,} of {len(paths):,} photos, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    embeddings = np.concatenate(rows)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, paths=np.array([str(p) for p in paths]), embeddings=embeddings, seconds=seconds)
    return embeddings, seconds

"""Several copies of one face detector, so that threads detect in parallel.

A detector is used by one thread at a time (dlib's keeps buffers between calls; a shared one would
serialise every photo behind a lock). :class:`DetectorPool` hands each caller a free copy and takes
it back after; :meth:`DetectorPool.grow` makes as many copies as there are threads that detect at
once (``facelearn serve --workers``). The copies share nothing but read-only weights on disk.
"""

from __future__ import annotations

import queue

import numpy as np

from .faces import FaceDetector, Faces


class DetectorPool:
    def __init__(self, detector: FaceDetector, size: int = 1):
        self.detector, self.size = detector, 0
        self.free: queue.SimpleQueue[FaceDetector] = queue.SimpleQueue()
        self.grow(size)

    def grow(self, size: int) -> None:
        """At least ``size`` copies (the first is the detector itself)."""
        while self.size < size:
            self.free.put(self.detector if self.size == 0 else self.detector.clone())
            self.size += 1

    def detect(self, image: np.ndarray) -> Faces:
        detector = self.free.get()  # waits while every copy is busy
        try:
            return detector.detect(image)
        finally:
            self.free.put(detector)

"""What the operator chose for ``facelearn serve`` (its options, as one dataclass), and the threads a
model call gets beside the workers."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..deploy.quality import DEFAULT_MIN_EYE_DISTANCE, DEFAULT_MIN_QUALITY
from .uploads import ImageLimits


@dataclass
class ServeSettings:
    model: str
    gallery: str
    store: str | None = None
    index: str = "exact"
    detector: str = "retinaface"
    weights: str | None = None
    backend: str = "auto"
    architecture: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    keys: str | None = None
    max_batch: int = 32
    max_wait_ms: float = 5.0
    workers: int = 2
    model_threads: int | None = None  # threads of each model call; None: the cores not given to the workers
    max_request_bytes: int = 25 * 1024 * 1024
    limits: ImageLimits = field(default_factory=ImageLimits)
    timeout_s: float = 30.0
    fmr: float = 1e-3
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    header_timeout_s: float = 10.0
    max_connections: int = 1000
    audit_log: str | None = None  # default: <gallery>.audit.log
    threshold: float | None = None  # for a model without calibration: answers say "fmr": null, "calibrated": false
    quality: str = "auto"  # deploy/quality.py: auto, norm, estimate or none
    min_quality: float = DEFAULT_MIN_QUALITY  # the enroll gate
    min_eye_distance: float = DEFAULT_MIN_EYE_DISTANCE


def model_threads(settings: ServeSettings) -> int:
    """Threads a model call uses (``facelearn serve`` sets them for its process): ``--model-threads``, else
    the cores left beside the ``--workers`` (at least one). The workers decode, detect (a detector each)
    and score quality while the model runs: a model spread over every core waits at each layer for the
    cores the workers hold (on 2 cores, 51.9 against 29.5 photos/s at concurrency 16: docs/service.md)."""
    return settings.model_threads or max(1, available_cores() - settings.workers)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity: a container's or taskset's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

"""Request counts, latency and batch sizes in the Prometheus text format (``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "facelearn_requests", "Requests answered, by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "facelearn_request_seconds",
            "Time to answer, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_faces = Histogram(
            "facelearn_batch_faces", "Faces per model call", buckets=BATCH_BUCKETS, registry=self.registry
        )

    def batch(self, size: int) -> None:
        self.batch_faces.observe(size)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)

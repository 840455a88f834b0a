"""What ``GET /metrics`` shows (Prometheus text format): requests, latency, batch sizes, queue depth.

Each server has its own registry, so several servers in one process (tests) count apart.
"""

from __future__ import annotations

from typing import Any

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The server's counters, histograms and gauges."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ferry_requests",
            "HTTP requests answered, by endpoint, model and status code",
            ["endpoint", "model", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ferry_request_seconds",
            "Time from a request's arrival to its response, by endpoint and model",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "ferry_batch_size",
            "Requests run together in one call of the runtime, by model",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "ferry_batch_rows", "Rows (axis 0) in one call of the runtime", ["model"], buckets=BATCH_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.queue = Gauge("ferry_queue_depth", "Requests waiting to run, by model", ["model"], registry=self.registry)

    def observe_request(self, endpoint: str, model: str, code: int, seconds: float) -> None:
        self.requests.labels(endpoint, model, str(code)).inc()
        self.latency.labels(endpoint, model).observe(seconds)

    def on_batch(self, model: str) -> Any:
        def observe(requests: int, rows: int) -> None:
            self.batch_size.labels(model).observe(requests)
            self.batch_rows.labels(model).observe(rows)

        return observe

    def on_queue(self, model: str) -> Any:
        return self.queue.labels(model).set

    def text(self) -> tuple[bytes, str]:
        """The exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

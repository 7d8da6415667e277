"""The server's Prometheus metrics, through `prometheus_client` (exact counter values, histograms, exposition).

Each server has its own registry, so several servers in one process (tests, notebooks) keep separate counts. With
`--workers N` the processes share their values through prometheus_client's multiprocess mode (the supervisor sets
PROMETHEUS_MULTIPROC_DIR), so GET /metrics on any worker reports the whole server.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def _multiprocess() -> bool:
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


class ServerMetrics:
    """The server's metrics; `render()` is the body of GET /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rewardkit_requests", "HTTP requests by endpoint and status code.",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("rewardkit_request_duration_seconds", "Time from request to response ready.",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("rewardkit_batch_size", "Sequences per forward pass of the reward model.",
                                    buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.sequences = Counter("rewardkit_sequences_scored", "Sequences scored.", registry=r)
        self.truncated = Counter("rewardkit_sequences_truncated", "Sequences longer than max_length.", registry=r)
        self.batch_failures = Counter("rewardkit_batch_failures", "Forward passes that raised.", registry=r)
        self.queue_depth = Gauge("rewardkit_queue_depth", "Sequences waiting for a forward pass.",
                                 multiprocess_mode="livesum", registry=r)
        self.in_flight = Gauge("rewardkit_requests_in_flight", "Requests being processed.",
                               multiprocess_mode="livesum", registry=r)
        self.connections = Gauge("rewardkit_connections_open", "Open HTTP connections.",
                                 multiprocess_mode="livesum", registry=r)

    def count(self, endpoint: str, status: int, seconds: float | None = None) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        if seconds is not None:
            self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        if _multiprocess():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

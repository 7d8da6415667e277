"""Prometheus metrics in the text exposition format, without the client library.

Everything is updated from the event loop thread only, so plain dicts and ints are enough (no locks).
"""

from __future__ import annotations

import bisect
from collections import defaultdict

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels) + "}"


class Histogram:
    """Cumulative-bucket histogram, one series per label set."""

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]):
        self.name, self.help_text, self.buckets = name, help_text, tuple(buckets)
        self._counts: dict[tuple, list[int]] = defaultdict(lambda: [0] * (len(self.buckets) + 1))
        self._sums: dict[tuple, float] = defaultdict(float)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self._counts[key][bisect.bisect_left(self.buckets, value)] += 1
        self._sums[key] += value

    def count(self, **labels: str) -> int:
        return sum(self._counts.get(tuple(sorted(labels.items())), ()))

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self._counts.items()):
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f"{self.name}_bucket{_labels((*key, ('le', le)))} {cumulative}")
            lines.append(f"{self.name}_sum{_labels(key)} {self._sums[key]:.6g}")
            lines.append(f"{self.name}_count{_labels(key)} {cumulative}")
        return lines


class Counter:
    def __init__(self, name: str, help_text: str):
        self.name, self.help_text = name, help_text
        self._values: dict[tuple, float] = defaultdict(float)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self._values[tuple(sorted(labels.items()))] += amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(key)} {value:g}" for key, value in sorted(self._values.items())]
        if not self._values:
            lines.append(f"{self.name} 0")
        return lines


class Gauge:
    def __init__(self, name: str, help_text: str):
        self.name, self.help_text, self.value = name, help_text, 0.0

    def set(self, value: float) -> None:
        self.value = value

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} gauge", f"{self.name} {self.value:g}"]


class ServerMetrics:
    """The server's metrics; `render()` is the body of GET /metrics."""

    def __init__(self) -> None:
        self.requests = Counter("rewardkit_requests_total", "HTTP requests by endpoint and status code.")
        self.latency = Histogram(
            "rewardkit_request_duration_seconds", "Time from request read to response ready.", LATENCY_BUCKETS
        )
        self.batch_size = Histogram(
            "rewardkit_batch_size", "Sequences per forward pass of the reward model.", BATCH_SIZE_BUCKETS
        )
        self.sequences = Counter("rewardkit_sequences_scored_total", "Sequences scored.")
        self.truncated = Counter("rewardkit_sequences_truncated_total", "Sequences longer than max_length.")
        self.batch_failures = Counter("rewardkit_batch_failures_total", "Forward passes that raised.")
        self.queue_depth = Gauge("rewardkit_queue_depth", "Sequences waiting for a forward pass.")
        self.in_flight = Gauge("rewardkit_requests_in_flight", "Requests being processed.")

    def render(self) -> str:
        parts = (self.requests, self.latency, self.batch_size, self.sequences, self.truncated, self.batch_failures,
                 self.queue_depth, self.in_flight)
        return "\n".join(line for metric in parts for line in metric.render()) + "\n"

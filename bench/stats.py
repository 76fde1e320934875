"""Latency recording and the figures derived from it: counts, rates, percentiles."""

import math
import time
from collections import Counter, defaultdict


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarize(values: list[float]) -> dict:
    """count, p50, p90, p99 and max of a list of seconds, reported in milliseconds."""
    ordered = sorted(values)

    def ms(value):
        return None if value is None else round(value * 1000, 2)

    return {
        "count": len(ordered),
        "p50_ms": ms(percentile(ordered, 0.50)),
        "p90_ms": ms(percentile(ordered, 0.90)),
        "p99_ms": ms(percentile(ordered, 0.99)),
        "max_ms": ms(ordered[-1] if ordered else None),
    }


class Recorder:
    """Per-label latencies and status counts, kept only while `recording` is on (warm-up is left out)."""

    def __init__(self) -> None:
        self.recording = False
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter] = defaultdict(Counter)
        self.errors: Counter = Counter()
        self.completed: Counter = (
            Counter()
        )  # every answer per label, warm-up and tail included (for CPU/request)
        self.started = 0.0
        self.stopped = 0.0
        self.cpu_started = 0.0
        self.cpu_stopped = 0.0

    def add(self, label: str, status: int, seconds: float) -> None:
        self.completed[label] += 1
        if self.recording:
            self.latencies[label].append(seconds)
            self.statuses[label][status] += 1

    def error(self, label: str, what: str) -> None:
        if self.recording:
            self.errors[f"{label}: {what[:120]}"] += 1
            self.statuses[label]["error"] += 1

    def start(self) -> None:
        self.recording = True
        self.started = time.perf_counter()
        self.cpu_started = time.process_time()

    def stop(self) -> None:
        if self.recording:
            self.recording = False
            self.stopped = time.perf_counter()
            self.cpu_stopped = time.process_time()

    @property
    def elapsed(self) -> float:
        end = self.stopped if not self.recording else time.perf_counter()
        return max(1e-9, end - self.started)

    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    def label(self, label: str) -> dict:
        """The figures of one label over the recorded window."""
        values = self.latencies.get(label, [])
        figures = summarize(values)
        figures["rps"] = round(len(values) / self.elapsed, 1)
        figures["statuses"] = {
            str(key): count for key, count in sorted(self.statuses[label].items(), key=str)
        }
        return figures

    def client_cpu_us_per_request(self) -> float | None:
        count = self.requests()
        if not count:
            return None
        return round((self.cpu_stopped - self.cpu_started) / count * 1e6, 1)

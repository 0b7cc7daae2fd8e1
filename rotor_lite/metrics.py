"""Prometheus metrics of one server process (its own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """The counters the hot path updates; queue depth is read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.enqueued = Counter("rotor_jobs_enqueued", "Jobs accepted", ["queue"], registry=self.registry)
        self.deliveries = Counter(
            "rotor_deliveries", "Callback deliveries by outcome", ["queue", "outcome"], registry=self.registry
        )
        self.delivery_seconds = Histogram(
            "rotor_delivery_duration_seconds", "Callback round-trip time", ["queue"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.stalled = Counter("rotor_jobs_stalled", "Jobs whose lease expired", registry=self.registry)
        self.jobs = Gauge("rotor_jobs", "Jobs per queue and state", ["queue", "state"], registry=self.registry)
        self.http_requests = Counter(
            "rotor_http_requests", "API requests by status class", ["status"], registry=self.registry
        )

        self.runs_started = Counter("rotor_runs_started", "Workflow runs started", registry=self.registry)
        self.runs_finished = Counter(
            "rotor_runs_finished", "Workflow runs ended, by status", ["status"], registry=self.registry
        )
        self.run_calls = Counter(
            "rotor_run_calls", "Calls to workflow serve URLs, by outcome", ["outcome"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""Prometheus metrics of one server process (its own registry, so tests can run several).

Every per-queue series is labelled with its `workspace` (id) and `queue`, the workflow series with
their `workspace` and `function`. A scrape shows the series of the live queues it covers (one
workspace's, or every workspace's) and the job counts read for it, and that workspace's run series;
a deleted queue's series are forgotten with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Metric, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "QueueKey"]

QueueKey = tuple[str, str]  # (workspace id, queue name)
HelperFigures = tuple[int, bool, int, int, int]  # a delivery helper's index, alive, in flight, restarts, delivered


class Metrics:
    """The counters the hot path updates; job counts per queue and state are read at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.helpers: Callable[[], list[HelperFigures]] = list  # the delivery helpers, read at scrape time
        self.enqueued = Counter("rotor_jobs_enqueued", "Jobs accepted", ["workspace", "queue"], registry=self.registry)
        self.deliveries = Counter(
            "rotor_deliveries", "Callback deliveries by outcome", ["workspace", "queue", "outcome"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "rotor_delivery_duration_seconds", "Callback round-trip time", ["workspace", "queue"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.stalled = Counter("rotor_jobs_stalled", "Jobs whose lease expired", registry=self.registry)
        self.waiting_leases = Gauge(
            "rotor_waiting_leases", "Lease requests of pull workers waiting for jobs (long polls)", ["workspace", "queue"],
            registry=self.registry,
        )
        self.pruned = Counter(
            "rotor_pruned_rows", "Rows deleted by retention, by kind (jobs, job_attempts, runs, audit_events…)",
            ["kind"], registry=self.registry,
        )
        self.http_requests = Counter(
            "rotor_http_requests", "API requests by status class", ["status"], registry=self.registry
        )

        self.runs_started = Counter(
            "rotor_runs_started", "Workflow runs started", ["workspace", "function"], registry=self.registry
        )
        self.runs_finished = Counter(
            "rotor_runs_finished", "Workflow runs ended, by status", ["workspace", "function", "status"],
            registry=self.registry,
        )
        self.run_calls = Counter(
            "rotor_run_calls", "Calls to workflow serve URLs, by outcome", ["outcome"], registry=self.registry
        )

    def forget_queue(self, workspace_id: str, queue: str) -> None:
        """Drop the series of a deleted queue."""
        for metric in (self.enqueued, self.deliveries, self.delivery_seconds, self.waiting_leases):
            metric.remove_by_labels({"workspace": workspace_id, "queue": queue})

    def render(self, job_counts: Mapping[QueueKey, Mapping[str, int]], workspace_id: str | None = None) -> bytes:
        """The text format for the live queues in `job_counts` (their counts per state).

        With `workspace_id`, only per-queue series are shown (the process-wide ones span workspaces).
        """
        return generate_latest(_Scrape(self.registry, job_counts, workspace_id, self.helpers))


class _Scrape:
    """One scrape's view of the registry, plus the job counts as a gauge."""

    def __init__(
        self, registry: CollectorRegistry, job_counts: Mapping[QueueKey, Mapping[str, int]], workspace_id: str | None,
        helpers: Callable[[], list[HelperFigures]],
    ) -> None:
        self._registry, self._job_counts, self._workspace_id = registry, job_counts, workspace_id
        self._helpers = helpers

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():  # fresh objects on every collect: safe to narrow
            family.samples = [s for s in family.samples if self._shown(s.labels)]
            yield family
        yield self._jobs()
        if self._workspace_id is None:  # process-wide, like the other series without a workspace
            yield from self._delivery_helpers()

    def _shown(self, labels: Mapping[str, str]) -> bool:
        if "queue" in labels:
            return (labels["workspace"], labels["queue"]) in self._job_counts
        if "workspace" in labels:  # a workspace's series that is not a queue's (workflow runs)
            return self._workspace_id in (None, labels["workspace"])
        return self._workspace_id is None

    def _jobs(self) -> GaugeMetricFamily:
        gauge = GaugeMetricFamily("rotor_jobs", "Jobs per queue and state", labels=["workspace", "queue", "state"])
        for (workspace_id, queue), counts in sorted(self._job_counts.items()):
            for state, count in counts.items():
                gauge.add_metric([workspace_id, queue, state], count)
        return gauge

    def _delivery_helpers(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("rotor_delivery_helper_up", "1 while the delivery helper runs", labels=["helper"])
        in_flight = GaugeMetricFamily("rotor_delivery_helper_in_flight", "Requests a delivery helper holds", labels=["helper"])
        restarts = CounterMetricFamily("rotor_delivery_helper_restarts", "Times a delivery helper was started again", labels=["helper"])
        delivered = CounterMetricFamily("rotor_delivery_helper_delivered", "Job callbacks a delivery helper sent", labels=["helper"])
        for index, alive, held, restarted, sent in self._helpers():
            label = [str(index)]
            up.add_metric(label, int(alive))
            in_flight.add_metric(label, held)
            restarts.add_metric(label, restarted)
            delivered.add_metric(label, sent)
        yield from (up, in_flight, restarts, delivered)

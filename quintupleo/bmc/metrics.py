"""The BMC's Prometheus metrics (`GET /metrics` on the Redfish port, with Redfish's
authentication), through the Prometheus client library.

Counted as they happen: requests by protocol, command and outcome, their latency, refresh
duration. Read from the service when scraped: nodes by power state, pending actions, open
sessions, logins refused by a lockout, cloud calls by kind (the backend keeps the count).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# no `_created` series: they would double every counter, for no reader
disable_created_metrics()  # type: ignore[no-untyped-call]
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """One service's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("quintupleo_bmc_requests", "Requests answered, by protocol, "
                                "command and outcome", ["protocol", "command", "outcome"],
                                registry=self.registry)
        self.latency = Histogram("quintupleo_bmc_request_seconds", "Time to answer a request",
                                 ["protocol"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.refresh = Histogram("quintupleo_bmc_refresh_seconds", "Time of one batch read "
                                 "of every node's power from the backend",
                                 buckets=LATENCY_BUCKETS, registry=self.registry)

    def watch(self, state: Callable[[], ServiceState]) -> None:
        """Read the service's own state at every scrape."""
        self.registry.register(_StateCollector(state))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ServiceState:
    """What a scrape reads from the service at that moment."""

    def __init__(self, power: Tally[str], pending: int, sessions: dict[str, int],
                 locked_out: dict[str, int], backend_calls: Tally[str]) -> None:
        self.power, self.pending, self.sessions = power, pending, sessions
        self.locked_out, self.backend_calls = locked_out, backend_calls


class _StateCollector(Collector):
    def __init__(self, state: Callable[[], ServiceState]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        now = self.state()
        nodes = GaugeMetricFamily("quintupleo_bmc_nodes", "Nodes, by the power state the BMC "
                                  "shows", labels=["power_state"])
        for power, count in sorted(now.power.items()):
            nodes.add_metric([power], count)
        yield nodes
        yield GaugeMetricFamily("quintupleo_bmc_pending_actions", "Power actions accepted and "
                                "not yet done", value=now.pending)
        sessions = GaugeMetricFamily("quintupleo_bmc_sessions", "Open sessions",
                                     labels=["protocol"])
        for protocol, count in sorted(now.sessions.items()):
            sessions.add_metric([protocol], count)
        yield sessions
        locked = CounterMetricFamily("quintupleo_bmc_logins_locked_out", "Logins refused "
                                     "because their source or user name was locked out",
                                     labels=["protocol"])
        for protocol, count in sorted(now.locked_out.items()):
            locked.add_metric([protocol], count)
        yield locked
        calls = CounterMetricFamily("quintupleo_bmc_backend_calls", "Calls to the backend "
                                    "(the cloud's API), by kind", labels=["kind"])
        for kind, count in sorted(now.backend_calls.items()):
            calls.add_metric([kind], count)
        yield calls

"""A job's own Prometheus metrics (``--metrics-port``): one board can watch a fleet of jobs.

Every value is read from the run's ``Progress`` when Prometheus scrapes, so the loop pays
nothing between scrapes. Served by ``prometheus_client``'s HTTP server on a daemon thread,
bound to ``--metrics-host`` (127.0.0.1 by default, like the server).

    vlmcap_items_total{outcome="ok"|"failed"}   items finished
    vlmcap_requests_total                       requests finished (a stage-2 item counts two)
    vlmcap_requests_in_flight                   requests inside the engine or server
    vlmcap_output_tokens_total                  output tokens
    vlmcap_stalled_seconds                      seconds without progress with requests inside
    vlmcap_oldest_request_age_seconds           age of the oldest request inside
    vlmcap_request_seconds                      histogram of request latency (in to out)
    vlmcap_hangs_total                          hang reports of the watchdog
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from vlmcap.core.progress import LATENCY_BUCKETS_S, Progress

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

logger = logging.getLogger(__name__)


class ProgressCollector(Collector):
    """Metric families of one run's ``Progress`` (see the module docstring)."""

    def __init__(self, live: Progress, hangs: Callable[[], int] = lambda: 0) -> None:
        self.live = live
        self.hangs = hangs

    def collect(self) -> Iterator[Metric]:
        view = self.live.view()
        items = CounterMetricFamily("vlmcap_items", "Items finished", labels=["outcome"])
        items.add_metric(["ok"], view.items_ok)
        items.add_metric(["failed"], view.items_failed)
        yield items
        yield CounterMetricFamily("vlmcap_requests", "Requests finished", value=view.requests_done)
        yield GaugeMetricFamily(
            "vlmcap_requests_in_flight", "Requests inside the engine or server", view.inflight
        )
        yield CounterMetricFamily("vlmcap_output_tokens", "Output tokens", value=view.output_tokens)
        yield GaugeMetricFamily(
            "vlmcap_stalled_seconds",
            "Seconds without a finished request or new token, with requests inside",
            view.stalled_s,
        )
        yield GaugeMetricFamily(
            "vlmcap_oldest_request_age_seconds",
            "Age of the oldest request inside (0: none)",
            view.oldest_age_s or 0.0,
        )
        counts = view.latency_counts or (0,) * len(LATENCY_BUCKETS_S)
        cumulative, buckets = 0, []
        for bound, count in zip(LATENCY_BUCKETS_S, counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", cumulative))
        yield HistogramMetricFamily(
            "vlmcap_request_seconds",
            "Request latency, from going in to coming out",
            buckets=buckets,
            sum_value=view.latency_sum_s,
        )
        yield CounterMetricFamily(
            "vlmcap_hangs", "Hang reports of the watchdog", value=self.hangs()
        )


@dataclass
class MetricsEndpoint:
    """``/metrics`` of one run on ``host:port`` (``port`` 0: a free one, see ``.port``)."""

    live: Progress
    host: str
    port: int
    hangs: Callable[[], int] = lambda: 0
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    _server: WSGIServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> MetricsEndpoint:
        from prometheus_client import start_http_server

        self.registry.register(ProgressCollector(self.live, self.hangs))
        self._server, self._thread = start_http_server(
            self.port, addr=self.host, registry=self.registry
        )
        self.port = self._server.server_port
        logger.info("job metrics on http://%s:%d/metrics", self.host, self.port)
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

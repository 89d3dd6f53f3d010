"""Snapshots of a running vLLM server: its Prometheus ``/metrics`` and ``/health``.

``ServerSource(url)`` scrapes ``url/metrics`` and asks ``url/health`` with a short timeout.
``snapshot()`` never raises: an unreachable server gives a snapshot whose engine figures are
``None`` with a note saying so (what a background monitor wants);
``snapshot(strict=True)`` raises ``ServerUnreachable`` instead (what a command wants).

GPU readings are this machine's, so they are only taken for a server on a loopback address;
vLLM's processes belong to the server's own process tree and are not looked at.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from urllib.parse import urlsplit, urlunsplit

import httpx

from vlmcap.core.progress import Progress
from vlmcap.monitor.process import process_readings
from vlmcap.monitor.progress import RateMeter, progress_readings
from vlmcap.monitor.prometheus import MetricValues, parse_text
from vlmcap.monitor.snapshot import HealthSnapshot, Readings
from vlmcap.monitor.source import gpu_readings
from vlmcap.monitor.vllm_metrics import ENGINE_FIELDS, engine_readings

logger = logging.getLogger(__name__)

#: Seconds one ``/metrics`` or ``/health`` request may take.
DEFAULT_TIMEOUT_S = 2.0
METRICS_PATH = "/metrics"
HEALTH_PATH = "/health"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
HTTP_OK = 200


class ServerUnreachable(RuntimeError):
    """The server's ``/metrics`` could not be read; ``str(exc)`` says why."""


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _base(url: str) -> str:
    """``http://host:port`` of ``url``, without a trailing ``/v1`` or other path."""
    return _with_path(url, "")


def is_local(url: str) -> bool:
    """True when ``url``'s host is this machine (a loopback address or its own name)."""
    host = (urlsplit(url).hostname or "").strip("[]")
    return host in LOOPBACK_HOSTS or host.startswith("127.") or host == socket.gethostname()


class ServerSource:
    """Snapshots of the vLLM server at ``url`` (``http://host:port``, a ``/v1`` is dropped).

    ``metrics_url`` / ``health_url`` override where the two endpoints are (e.g. behind a
    proxy); with only ``metrics_url`` given, ``/health`` is asked on the same host.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        metrics_url: str | None = None,
        health_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        progress: Progress | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if url is None and metrics_url is None:
            raise ValueError("give the server's URL or its metrics URL")
        base = _base(url if url is not None else str(metrics_url))
        self.metrics_url = metrics_url or base + METRICS_PATH
        self.health_url = health_url or _with_path(self.metrics_url, HEALTH_PATH)
        self.name = base
        self.progress = progress
        self.loop = loop
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)
        self._meter = RateMeter()
        self._local = is_local(self.metrics_url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ServerSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def scrape(self) -> MetricValues:
        """The server's metrics now; raises ``ServerUnreachable``."""
        try:
            response = self._client.get(self.metrics_url)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"cannot read {self.metrics_url}: {_describe(exc)}") from exc
        try:
            return parse_text(response.text)
        except ValueError as exc:
            raise ServerUnreachable(f"{self.metrics_url} is not Prometheus text: {exc}") from exc

    def health(self) -> tuple[bool | None, str]:
        """``(True, "")`` when ``/health`` answers 200; ``False`` / ``None`` with why not."""
        try:
            response = self._client.get(self.health_url)
        except httpx.HTTPError as exc:
            return None, f"cannot reach {self.health_url}: {_describe(exc)}"
        if response.status_code == HTTP_OK:
            return True, ""
        return False, f"{self.health_url} answered {response.status_code}"

    def snapshot(self, strict: bool = False) -> HealthSnapshot:
        """A snapshot now (see the module docstring for ``strict``)."""
        readings = Readings()
        metrics: MetricValues | None = None
        try:
            metrics = self.scrape()
        except ServerUnreachable as exc:
            if strict:
                raise
            readings.absent(ENGINE_FIELDS, str(exc))
        if metrics is not None:
            readings.update(engine_readings(metrics))
        healthy, why = self.health()
        readings.put("healthy", healthy, why)
        readings.update(process_readings(self.loop, engine_children=False))
        readings.update(
            gpu_readings(
                self._local, "the server is on another host: its GPUs are not visible here"
            )
        )
        readings.update(progress_readings(self.progress, metrics, self._meter))
        return HealthSnapshot.from_readings(self.name, readings)


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

"""Watching a running job: the background monitor, request timing logs, the hang watchdog and
the metrics endpoint (``vlmcap caption`` and ``vlmcap qa``; ``vlmcap.monitor`` does the work)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vlmcap.options.base import INTERNAL, OptionGroup, flag
from vlmcap.options.network import DEFAULT_HOST, MAX_PORT, MIN_PORT

#: Seconds without a finished request or a new token, requests inside, before the watchdog
#: reports a hang. Long enough for a slow prefill of a long video on a busy GPU.
DEFAULT_HANG_TIMEOUT_S = 300.0
OnHang = Literal["warn", "abort"]


class HealthLogOptions(OptionGroup):
    """Health snapshots in the log: jobs and ``vlmcap serve`` alike."""

    group = "health"
    panel = "Monitoring"

    monitor_interval: Annotated[float | None, flag(metavar="S")] = Field(
        default=None,
        gt=0,
        description="Log a health snapshot every S seconds (also $VLMCAP_MONITOR_INTERVAL).",
    )


class MonitorOptions(OptionGroup):
    """How a job reports on itself while it runs."""

    group = "monitor"
    panel = "Monitoring"

    health: Annotated[HealthLogOptions, INTERNAL] = Field(default_factory=HealthLogOptions)
    log_requests: bool = Field(
        default=False, description="Log each request's start and timings at INFO (else DEBUG)."
    )
    hang_timeout: Annotated[float, flag(metavar="S")] = Field(
        default=DEFAULT_HANG_TIMEOUT_S,
        ge=0,
        description="Report a hang after S seconds with requests inside and no progress; 0: off.",
    )
    on_hang: OnHang = Field(
        default="warn",
        description="After a hang report: warn (carry on) or abort (exit 124, rerun resumes).",
    )
    metrics_port: Annotated[int | None, flag(metavar="PORT")] = Field(
        default=None,
        ge=MIN_PORT,
        le=MAX_PORT,
        description="Serve this job's Prometheus metrics on this port.",
    )
    metrics_host: str = Field(
        default=DEFAULT_HOST, description="Address of the metrics endpoint (0.0.0.0: all)."
    )

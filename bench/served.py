"""Helpers for benchmarks that drive ``vlmcap serve``: a server on a free loopback port, CPU
seconds per process group, and the server engine's step count from its Prometheus metrics.

server, opts, command = start_server(plugin, config, log_path)
before = cpu_s(tree(server.pid)); ...; used = cpu_s(tree(server.pid)) - before
steps = engine_steps(opts.local_url)  # None when the server does not report it
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger("bench.served")

#: vLLM V1's histogram of tokens per engine step: one observation per step.
STEP_HISTOGRAM = "vllm:iteration_tokens_total"
METRICS_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree(pid: int) -> list[psutil.Process]:
    """Process ``pid`` and all its descendants."""
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def cpu_s(procs: list[psutil.Process]) -> float:
    """CPU seconds ``procs`` have used so far (gone processes count 0)."""
    total = 0.0
    for p in procs:
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def engine_steps(url: str) -> int | None:
    """Engine steps the server at ``url`` has run so far (its step histogram's count)."""
    try:
        text = httpx.get(url + "/metrics", timeout=METRICS_TIMEOUT_S).text
    except httpx.HTTPError as exc:
        logger.warning("no metrics from %s: %s", url, exc)
        return None
    for family in text_string_to_metric_families(text):
        if family.name == STEP_HISTOGRAM:
            counts = [s.value for s in family.samples if s.name == STEP_HISTOGRAM + "_count"]
            return round(sum(counts)) if counts else None
    return None


def start_server(plugin: Any, config: Any, log: Path) -> tuple[Any, Any, list[str]]:
    """(ServerProcess, ServeOptions, command) of a healthy server on a free loopback port."""
    from vlmcap.server.command import ServeOptions, server_command, server_env, vllm_parser
    from vlmcap.server.process import ServerProcess

    opts = ServeOptions(port=free_port())
    command = server_command(plugin, config, opts, parser=vllm_parser())
    server = ServerProcess(command, server_env(opts), log=log.open("w"))
    server.start()
    logger.info("server up in %.0f s", server.wait_healthy(opts.local_url, 600))
    return server, opts, command

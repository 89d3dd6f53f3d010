"""One real local Ray cluster for the Ray tests (head and workers on 127.0.0.1).

It is started from the test process, so its raylet and workers are this session's descendants:
a job's engine actors, their vLLM engines and whatever they leave are found below it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

#: Logical CPUs of the test cluster: an engine actor and the decode tasks beside it.
CLUSTER_CPUS = 4


@pytest.fixture(scope="module")
def ray_cluster(tiny_model_path: Path) -> Iterator[str]:
    """The cluster's address, for ``--ray-address``; joined by this process too."""
    import ray

    from vlmcap.distributed.cluster import forwarded_env
    from vlmcap.runtime.processes import engine_cores, wait_gone

    ray.init(
        num_cpus=CLUSTER_CPUS,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": forwarded_env()},  # VLMCAP_CACHE_DIR: the tiny models
        _node_ip_address="127.0.0.1",
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        wait_gone([p for r in raylets() for p in engine_cores(r)], 60)
        ray.shutdown()


def raylets() -> list[psutil.Process]:
    """The test cluster's raylet (its workers are below it)."""
    return [p for p in psutil.Process().children(recursive=True) if _name(p) == "raylet"]


def engine_actors() -> list[psutil.Process]:
    """The processes of the test cluster's engine actors now."""
    return [
        p for r in raylets() for p in r.children(recursive=True) if "EngineActor" in _cmdline(p)
    ]


def _name(proc: psutil.Process) -> str:
    try:
        return proc.name()
    except psutil.Error:
        return ""


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def cluster_engines() -> list[Any]:
    """vLLM engine cores running on the test cluster now."""
    from vlmcap.runtime.processes import engine_cores

    return [p for r in raylets() for p in engine_cores(r)]

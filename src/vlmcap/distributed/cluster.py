"""Joining (or starting) the Ray cluster a job runs on, and what it must have.

Without ``--ray-address`` a local cluster is started for the job and stopped after it, bound to
127.0.0.1, with enough logical CPUs for the decode tasks beside the engine actors. Variables of
vLLM and vlmcap set where the job is launched (``VLLM_*``, ``VLMCAP_*``, ``HF_*``) reach every
worker, so an engine behaves on the cluster as it does here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from vlmcap.options.base import ConfigError
from vlmcap.options.ray import RayOptions

logger = logging.getLogger(__name__)

#: Prefixes of the environment variables handed to every Ray worker.
FORWARDED_ENV_PREFIXES = ("VLLM_", "VLMCAP_", "HF_", "TRANSFORMERS_", "OMP_")
#: Logical CPUs an engine actor asks for (its engine's own processes come on top).
ENGINE_ACTOR_CPUS = 1.0
#: Address meaning "the cluster this machine already belongs to".
AUTO_ADDRESS = "auto"


@dataclass(frozen=True)
class Cluster:
    """The cluster a job runs on: what it has, and whether this job started it."""

    cpus: float
    gpus: float
    started_here: bool

    def gpus_per_engine(self, options: RayOptions) -> int:
        """``--gpus-per-engine``, else 1 on a cluster with GPUs and 0 (CPU engines) without."""
        if options.gpus_per_engine is not None:
            return options.gpus_per_engine
        return 1 if self.gpus >= 1 else 0

    def check(self, options: RayOptions) -> None:
        """Raise ``ConfigError`` when the engines asked for cannot all be placed."""
        gpus = self.gpus_per_engine(options) * options.engines
        if gpus > self.gpus:
            raise ConfigError(
                f"--engines {options.engines} x --gpus-per-engine "
                f"{self.gpus_per_engine(options)} needs {gpus} GPU(s); the Ray cluster has "
                f"{self.gpus:g}"
            )
        cpus = ENGINE_ACTOR_CPUS * options.engines
        if cpus >= self.cpus:
            raise ConfigError(
                f"--engines {options.engines} needs {cpus:g} CPU(s) for the engine actors and "
                f"more for decoding; the Ray cluster has {self.cpus:g}"
            )


def forwarded_env() -> dict[str, str]:
    """The variables every worker gets (see the module docstring)."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


def connect(options: RayOptions) -> Cluster:
    """Join ``options.ray_address``'s cluster, or start a local one; what it has."""
    import ray

    from vlmcap.runtime import guard_children

    started = False
    if not ray.is_initialized():
        runtime_env = {"env_vars": forwarded_env()}
        if options.ray_address is None:
            guard_children()  # a local cluster ends with this process, however it ends
            ray.init(
                num_cpus=(os.cpu_count() or 1) + int(ENGINE_ACTOR_CPUS * options.engines),
                include_dashboard=False,
                log_to_driver=False,
                runtime_env=runtime_env,
                _node_ip_address="127.0.0.1",
            )
            started = True
        else:
            ray.init(address=options.ray_address, log_to_driver=False, runtime_env=runtime_env)
    resources = ray.cluster_resources()
    cluster = Cluster(
        cpus=float(resources.get("CPU", 0.0)),
        gpus=float(resources.get("GPU", 0.0)),
        started_here=started,
    )
    logger.info(
        "Ray cluster: %g CPU(s), %g GPU(s)%s; worker logs under %s",
        cluster.cpus,
        cluster.gpus,
        " (started for this job)" if started else "",
        _log_dir(),
    )
    return cluster


def disconnect(cluster: Cluster) -> None:
    """Stop a local cluster this job started; leave a shared one running.

    The engine actors shut their engines down as they exit (Ray Data lets them go once the
    dataset is read); a local cluster is stopped only after that, or after the time an engine
    may take to stop, so no engine is killed in the middle of its shutdown.
    """
    import ray

    if not (cluster.started_here and ray.is_initialized()):
        return
    import psutil

    from vlmcap.runtime.engine import engine_shutdown_timeout_s
    from vlmcap.runtime.processes import engine_cores, wait_gone

    left = wait_gone(engine_cores(psutil.Process()), engine_shutdown_timeout_s())
    if left:
        logger.warning("%d engine(s) still running when the local Ray cluster stops", len(left))
    ray.shutdown()


def _log_dir() -> str:
    """Where the workers' logs (vLLM's lines among them) are kept on this node."""
    from ray._private import worker  # the public API does not say where the logs are

    node = getattr(worker, "_global_node", None)
    return node.get_logs_dir_path() if node is not None else "the Ray session's logs folder"

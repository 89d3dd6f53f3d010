"""A job's backend on a Ray cluster: decode on CPU tasks, engines in an actor pool (Ray Data).

Flow trace::

    RayBackend.run_jobs(task, jobs, stats)      # called by vlmcap.pipeline.run for the plan
      start()                                   # join the cluster (or start a local one),
                                                # check it can hold the engines
      from_items(pickled jobs)                  # the inputs the plan left to do (resume)
      .map_batches(decode_jobs)                 # CPU tasks: task.load -> item entries
      .map_batches(EngineActor, pool of N)      # G GPUs each; the one loop driver inside
      .iter_batches()                           # streamed back as they finish
    -> entries: records, the rows of inputs that failed to load, inputs with nothing to do

The driver turns records into rows and writes them through the same store as a job on one
machine, so the output files, their atomic saves and per-item resume are the same whatever the
cluster's size. An actor whose process died is restarted by Ray and its calls retried
(``--actor-retries`` times; their items' records had not come back, so nothing is written
twice); an engine that died inside a live actor is restarted there (``--engine-restarts``,
poison items fail alone, ``vlmcap.core.recovery``).
"""

from __future__ import annotations

import functools
import logging
import math
import pickle
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlmcap.core.stats import LoopStats
from vlmcap.distributed.cluster import ENGINE_ACTOR_CPUS, Cluster, connect, disconnect
from vlmcap.distributed.decode import JOB_COLUMN, decode_jobs
from vlmcap.distributed.entries import Entry, from_batch
from vlmcap.options.base import ConfigError
from vlmcap.options.ray import RayOptions

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

#: Most blocks the input list is cut into: each block is one decode task's share of inputs.
MAX_INPUT_BLOCKS = 10_000


class ClusterLost(RuntimeError):
    """The Ray job cannot go on (an engine actor's loop stopped after its engine restarts, an
    actor's process died more often than ``--actor-retries``, the cluster went away); the rows
    written stay, and the same command resumes."""


@dataclass
class RayBackend:
    """Runs a task's load jobs on Ray (see the module docstring)."""

    plugin: VLMPlugin
    config: VLMConfig
    options: RayOptions
    _cluster: Cluster | None = field(default=None, init=False, repr=False)

    def start(self) -> Cluster:
        """Join (or start) the cluster and check it can hold the engines; raises
        ``ConfigError`` when it cannot. ``run_jobs`` calls it when nobody did before."""
        if self._cluster is None:
            cluster = connect(self.options)
            try:
                cluster.check(self.options)
            except ConfigError:
                disconnect(cluster)
                raise
            self._cluster = cluster
        return self._cluster

    def calls_per_actor(self) -> int:
        """Calls inside one engine actor at once: enough items to fill its engine."""
        return max(1, math.ceil(self.config.max_inflight / self.options.ray_batch)) + 1

    def run_jobs(self, task: Any, jobs: Sequence[Any], stats: LoopStats) -> Iterator[Entry]:
        """The entries of every job (any order), streamed as the actors finish them."""
        import ray.exceptions

        cluster = self.start()
        try:
            if jobs:
                yield from self._run(task, jobs, cluster.gpus_per_engine(self.options))
        except ray.exceptions.RayError as exc:
            raise ClusterLost(_first_line(exc)) from exc
        finally:
            self._cluster = None
            disconnect(cluster)

    def _run(self, task: Any, jobs: Sequence[Any], gpus: int) -> Iterator[Entry]:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the job's own progress bar shows the rows
        context.print_on_execution_start = False
        config = self.config
        if gpus > 1:
            config = config.model_copy(update={"tensor_parallel_size": gpus})
        if not config.inflight_batching:  # a batch would wait for items that never come
            logger.warning("--fixed-batches: not on Ray; the engine actors use the in-flight loop")
            config = config.model_copy(update={"inflight_batching": True})
        calls = self.calls_per_actor()
        rows = [{JOB_COLUMN: pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)} for job in jobs]
        dataset: ray.data.Dataset = ray.data.from_items(
            rows, override_num_blocks=min(len(rows), MAX_INPUT_BLOCKS)
        )
        decode: Callable[[Any], Any] = functools.partial(decode_jobs, task=task)
        dataset = dataset.map_batches(decode, batch_size=1, batch_format="numpy")
        with warnings.catch_warnings():
            # Ray Data has no named parameter for restarts and retries yet (pyproject pins
            # ray below the release that drops the keyword form)
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            dataset = self._engines(dataset, config, gpus, calls)
        logger.info(
            "Ray: %d input(s), %d engine actor(s) of %d GPU(s), %d item(s) per call, "
            "%d call(s) inside each",
            len(jobs),
            self.options.engines,
            gpus,
            self.options.ray_batch,
            calls,
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            yield from from_batch(batch)

    def _engines(self, dataset: Any, config: VLMConfig, gpus: int, calls: int) -> Any:
        """``dataset`` through the pool of engine actors."""
        import ray.data

        from vlmcap.distributed.actor import EngineActor

        return dataset.map_batches(
            EngineActor,
            fn_constructor_args=(self.plugin, config),
            batch_size=self.options.ray_batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(
                size=self.options.engines,
                max_tasks_in_flight_per_actor=calls,
                max_concurrent_calls_per_actor=calls,
            ),
            num_cpus=ENGINE_ACTOR_CPUS,
            num_gpus=gpus,
            max_restarts=-1,
            max_task_retries=self.options.actor_retries,
        )


def _first_line(exc: BaseException) -> str:
    """The gist of a Ray error (its text repeats the remote traceback)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if "engine actor" in line or "Error" in line]
    return (causes or lines or [type(exc).__name__])[-1][:500]

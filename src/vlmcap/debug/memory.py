"""``--memory-report``: memory checkpoints of one job, and a warning when memory grows steadily.

    report = MemoryReport(memory_report_path(output_dir), every=config.memory_every)
    report.checkpoint(START)            # before the engine loads
    llm = plugin.build_llm(config)
    report.checkpoint(LOADED)
    report.follow(progress)             # a daemon thread: a checkpoint every ``every`` items
    ...                                 # the run
    summary = report.finish()           # "end", the JSON written (atomically), a summary

A checkpoint holds this process's RSS, the RSS of each of vLLM's engine processes and their
sum, the system's RAM used and available, and per GPU (where NVML sees one) the memory used,
the total and what this job's processes hold. vLLM runs its engine core and workers in other
processes, so their memory is read from outside (psutil for RSS, NVML's per-process figures
for GPU memory): ``torch.cuda.memory_allocated()`` in this process counts only this process's
own PyTorch allocations and says nothing about the engine's.

A checkpoint's readings are ``vlmcap.debug.memory_readings``'; the leak rule
(``vlmcap.debug.leak.leak_verdict``) is a pure function of the item checkpoints' numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmcap.core.progress import Progress
from vlmcap.debug.leak import LeakVerdict, leak_verdict
from vlmcap.debug.memory_readings import Checkpoint, gib, read_checkpoint
from vlmcap.options.debug import DEFAULT_MEMORY_EVERY
from vlmcap.sinks.files import atomic_write_json

logger = logging.getLogger(__name__)

#: Checkpoint labels.
START, LOADED, ITEMS, END = "start", "loaded", "items", "end"
#: Where the report goes inside OUTPUT_DIR.
MEMORY_REPORT_NAME = "logs/memory.json"
#: Version of the JSON layout.
REPORT_VERSION = 1
MIB = 1024**2
GIB = 1024**3
#: Seconds between two looks of the follower thread at the run's progress.
POLL_S = 0.5
#: Fewest seconds between two saves of the JSON while the run goes on (the last checkpoints
#: then survive a process that is killed, e.g. by the kernel's out-of-memory killer).
SAVE_EVERY_S = 30.0
#: Seconds ``finish`` waits for the follower thread.
JOIN_S = 5.0
#: Checkpoint rows the summary shows at its head and tail (the JSON has all of them).
SUMMARY_HEAD, SUMMARY_TAIL = 3, 6


def memory_report_path(output_dir: Path) -> Path:
    """OUTPUT_DIR/logs/memory.json."""
    return Path(output_dir) / MEMORY_REPORT_NAME


def _items_done(progress: Progress) -> int:
    view = progress.view(oldest=0)
    return view.items_ok + view.items_failed


class MemoryReport:
    """The checkpoints of one job (see the module docstring); thread-safe.

    ``path``: where ``save``/``finish`` write the JSON (``None``: nowhere). ``every``: items
    between two item checkpoints. ``engine_children``: False when vLLM runs in a server (its
    processes are not this job's descendants).
    """

    def __init__(
        self,
        path: Path | None,
        every: int = DEFAULT_MEMORY_EVERY,
        *,
        engine_children: bool = True,
        poll_s: float = POLL_S,
        save_every_s: float = SAVE_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1 item (got {every})")
        self.path = path
        self.every = every
        self.engine_children = engine_children
        self.poll_s = poll_s
        self.save_every_s = save_every_s
        self._clock = clock
        self._born = clock()
        self._lock = threading.Lock()
        self._checkpoints: list[Checkpoint] = []
        self._progress: Progress | None = None
        self._next_at = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed: set[str] = set()  # kinds of reading errors already logged
        self._last_save = clock()
        self._finished = False

    @property
    def checkpoints(self) -> list[Checkpoint]:
        with self._lock:
            return list(self._checkpoints)

    def checkpoint(self, label: str, items_done: int | None = None) -> Checkpoint:
        """Take a checkpoint now; ``items_done`` defaults to the followed run's count (else
        the last checkpoint's, else 0)."""
        if items_done is None:
            if self._progress is not None:
                items_done = _items_done(self._progress)
            else:
                with self._lock:
                    items_done = self._checkpoints[-1].items_done if self._checkpoints else 0
        point = read_checkpoint(
            label,
            items_done,
            engine_children=self.engine_children,
            elapsed_s=self._clock() - self._born,
        )
        with self._lock:
            self._checkpoints.append(point)
        logger.debug("memory checkpoint %s at %d items: %s", label, items_done, point.summary())
        return point

    def follow(self, progress: Progress) -> None:
        """Take an item checkpoint each time another ``every`` items of ``progress`` are done,
        from a daemon thread (the run's loop never waits on it)."""
        if self._thread is not None:
            raise RuntimeError("this report already follows a run")
        self._progress = progress
        self._thread = threading.Thread(target=self._run, name="memory-report", daemon=True)
        self._thread.start()

    def poll(self) -> Checkpoint | None:
        """One look at the followed run: an item checkpoint if another ``every`` items are
        done (one checkpoint however many thresholds were crossed since the last look)."""
        if self._progress is None:
            return None
        done = _items_done(self._progress)
        if done < self._next_at:
            return None
        self._next_at = (done // self.every + 1) * self.every
        point = self.checkpoint(ITEMS, done)
        if self.path is not None and self._clock() - self._last_save >= self.save_every_s:
            self.save()
        return point

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            # Any failure of a reading (psutil, NVML, the file system) must not end the thread
            # nor reach the run; it is logged once per kind.
            except Exception as exc:  # noqa: BLE001
                kind = type(exc).__name__
                if kind not in self._failed:
                    self._failed.add(kind)
                    logger.warning("memory report: a checkpoint failed (%s: %s)", kind, exc)

    def leaks(self) -> list[LeakVerdict]:
        """The leak rule on this process's RSS, the engine's RSS and this job's GPU memory,
        over the item checkpoints."""
        points = [p for p in self.checkpoints if p.label == ITEMS]
        series: dict[str, list[tuple[int, int]]] = {"this process RSS": [], "engine RSS": []}
        for p in points:
            if p.process_rss_bytes is not None:
                series["this process RSS"].append((p.items_done, p.process_rss_bytes))
            if p.engine_rss_bytes is not None:
                series["engine RSS"].append((p.items_done, p.engine_rss_bytes))
            for gpu in p.gpus:
                if gpu.job_bytes is not None:
                    key = f"GPU{gpu.index} memory of this job"
                    series.setdefault(key, []).append((p.items_done, gpu.job_bytes))
        return [
            leak_verdict([x for x, _ in pairs], [y for _, y in pairs], series=name)
            for name, pairs in series.items()
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "memory_every": self.every,
            "checkpoints": [p.to_dict() for p in self.checkpoints],
            "leaks": [dataclasses.asdict(v) for v in self.leaks()],
        }

    def save(self) -> None:
        """Write the JSON to ``path`` atomically (readers see the old file or the new one)."""
        if self.path is None:
            return
        atomic_write_json(self.path, self.to_dict())
        self._last_save = self._clock()

    def finish(self) -> str:
        """Stop following, take the "end" checkpoint, write the JSON; the summary (a possible
        leak is also logged as a warning). Calling it again only returns the summary."""
        if self._finished:
            return self.summary()
        self._finished = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_S)
            self.poll()  # items done since its last look (a run shorter than its poll interval)
        self.checkpoint(END)
        try:
            self.save()
        except OSError as exc:
            logger.warning("memory report: could not write %s: %s", self.path, exc)
        for verdict in self.leaks():
            if verdict.suspected:
                logger.warning("memory report: %s", verdict.summary())
        return self.summary()

    def summary(self) -> str:
        """A few lines: each checkpoint's RSS and engine RSS in GiB, the growth, leak flags."""
        points = self.checkpoints
        where = f" ({self.path})" if self.path is not None else ""
        lines = [
            f"memory report{where}, GiB:",
            f"  {'checkpoint':<10} {'items':>8} {'process':>8} {'engine':>8} {'RAM used':>9}",
        ]
        shown: list[Checkpoint | None] = list(points)
        if len(points) > SUMMARY_HEAD + SUMMARY_TAIL:
            shown = [*points[:SUMMARY_HEAD], None, *points[-SUMMARY_TAIL:]]
        for p in shown:
            if p is None:
                hidden = len(points) - SUMMARY_HEAD - SUMMARY_TAIL
                lines.append(f"  ... {hidden} more checkpoints" + (" in the JSON" if where else ""))
                continue
            lines.append(
                f"  {p.label:<10} {p.items_done:>8} {gib(p.process_rss_bytes):>8} "
                f"{gib(p.engine_rss_bytes):>8} {gib(p.ram_used_bytes):>9}"
            )
        base = next((p for p in points if p.label == LOADED), points[0] if points else None)
        if base is not None and points and points[-1] is not base:
            last = points[-1]
            lines.append(
                f"  growth since {base.label}: this process "
                f"{_deltagib(base.process_rss_bytes, last.process_rss_bytes)} GiB, engine "
                f"{_deltagib(base.engine_rss_bytes, last.engine_rss_bytes)} GiB"
            )
        lines.extend(f"  {v.summary()}" for v in self.leaks() if v.suspected)
        return "\n".join(lines)


def _deltagib(before: int | None, after: int | None) -> str:
    return "n/a" if before is None or after is None else f"{(after - before) / GIB:+.2f}"

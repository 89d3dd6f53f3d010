"""What watching a job costs: the engine loop with every monitoring feature on vs all off.

    python bench/monitor_overhead.py [--items 2000] [--repeats 3] [--split] [--quick]

One process, one ``vllm.LLM`` (the random-weight tiny model, prefix and multimodal caches off),
the in-flight loop (``iter_records``) over small images with fresh pixels in every run:

    off   no watchdog, no monitor, request timing lines disabled (DEBUG, not emitted)
    on    background monitor every 1 s (engine snapshot logged), ``[REQUEST ...]`` lines at
          INFO into a log file, the job's metrics endpoint scraped every second by a thread,
          the hang watchdog at its default timeout

``--split`` adds one contender per feature alone (``monitor``, ``logs``, ``metrics``,
``watchdog``), to see which one costs what. Alternating order (a warm-up each, then the order
changes every repeat). Target: ``on`` at most 2 % slower (ratio of median items/s >= 0.98).
Result: ``bench/results/monitor_overhead.json``.

On a small shared machine the throughput of two runs of the same contender differs by more than
the 2 % to be shown, so the result also carries the **CPU the features spend**, which is not
that noisy: the CPU clocks of the monitor and watchdog threads and of the endpoint's server
thread, read at the end of every ``on`` run, plus the requests' timing lines and the scrapes
counted in that run, each at a unit cost measured on its own after the runs (the same code on
the same engine). All of it runs in this process, where the loop's thread needs the GIL: its
sum over the run's wall time bounds the slowdown from above when the loop's own thread is what
limits throughput (the engine then waits for it), and is the cost on a machine where it is not.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from common import machine_info, ratio, run_alternating, summarize, write_result

logger = logging.getLogger("bench.monitor_overhead")

#: Seconds between two snapshots of the monitor and two scrapes of the metrics endpoint.
WATCH_INTERVAL_S = 1.0
TARGET_RATIO = 0.98


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--items", type=int, default=None, help="images per run [2000; 200 quick]")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats [3; 1 quick]")
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    p.add_argument("--split", action="store_true", help="also time each feature alone")
    p.add_argument("--out", default=None, help="result file [bench/results/monitor_overhead.json]")
    return p.parse_args(argv)


def make_items(n: int, rng: random.Random) -> list[Any]:
    from PIL import Image

    from vlmcap.records import Item

    sides = (56, 84, 112)
    return [
        Item(
            f"img{i}",
            Image.new("RGB", (rng.choice(sides),) * 2, tuple(rng.randrange(256) for _ in "rgb")),
        )
        for i in range(n)
    ]


#: What ``on`` turns on; ``--split`` also times each alone.
FEATURES = ("monitor", "logs", "metrics", "watchdog")


@contextlib.contextmanager
def watching(
    llm: Any, live: Any, log_file: Path, features: frozenset[str], spent: dict[str, float]
) -> Iterator[None]:
    """The monitoring ``features`` on, around one run; ``spent`` gets the CPU seconds of the
    features' threads and the number of scrapes when the run ends."""
    from vlmcap.monitor.background import BackgroundMonitor
    from vlmcap.monitor.engine_source import EngineSource
    from vlmcap.monitor.exporter import MetricsEndpoint
    from vlmcap.monitor.watchdog import HangWatchdog
    from vlmcap.options.monitor import DEFAULT_HANG_TIMEOUT_S

    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.INFO)
    watched = [logging.getLogger("vlmcap.requests"), logging.getLogger("vlmcap.monitor")]
    for log in watched:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    stop = threading.Event()
    scrapes = {"n": 0}
    threads: dict[str, threading.Thread] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(handler.close)
        for log in watched:
            stack.callback(log.removeHandler, handler)
        if "metrics" in features:
            endpoint = MetricsEndpoint(live, "127.0.0.1", 0).start()
            stack.callback(endpoint.stop)

            def scrape() -> None:
                while not stop.wait(WATCH_INTERVAL_S):
                    httpx.get(endpoint.url, timeout=10).raise_for_status()
                    scrapes["n"] += 1

            scraper = threading.Thread(target=scrape, name="bench-scraper", daemon=True)
            scraper.start()
            stack.callback(scraper.join)
            stack.callback(stop.set)
            threads["endpoint"] = endpoint._thread  # type: ignore[assignment]
        if "monitor" in features:
            monitor = BackgroundMonitor(EngineSource(llm, live), WATCH_INTERVAL_S)
            monitor.start()
            stack.callback(monitor.stop)
            threads["monitor"] = monitor._thread  # type: ignore[assignment]
        if "watchdog" in features:
            watchdog = stack.enter_context(HangWatchdog(live, DEFAULT_HANG_TIMEOUT_S))
            threads["watchdog"] = watchdog._thread  # type: ignore[assignment]
        # registered last, so it runs first on the way out: the threads are still alive
        stack.callback(lambda: spent.update(thread_cpu_s(threads), scrapes=scrapes["n"]))
        yield


def thread_cpu_s(threads: dict[str, threading.Thread]) -> dict[str, float]:
    """CPU seconds each live thread has used (its own CPU clock, Linux)."""
    return {
        name: time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        for name, t in threads.items()
        if t is not None and t.ident is not None and t.is_alive()
    }


def scrape_cpu_s(live: Any, scrapes: int = 200) -> float:
    """CPU seconds one scrape costs the job's side (the endpoint's handler threads): this
    process's CPU over ``scrapes`` back-to-back scrapes minus what the scraping thread (the
    stand-in for Prometheus, another machine in a real set-up) spent itself."""
    from vlmcap.monitor.exporter import MetricsEndpoint

    endpoint = MetricsEndpoint(live, "127.0.0.1", 0).start()
    try:
        with httpx.Client() as client:
            client.get(endpoint.url).raise_for_status()  # connection and first render
            process0, own0 = time.process_time(), time.thread_time()
            for _ in range(scrapes):
                client.get(endpoint.url).raise_for_status()
            process1, own1 = time.process_time(), time.thread_time()
    finally:
        endpoint.stop()
    return max((process1 - process0) - (own1 - own0), 0.0) / scrapes


def timing_lines_cpu_s(log_file: Path, requests: int = 5000) -> float:
    """CPU seconds the ``[REQUEST START]``/``[REQUEST COMPLETE]`` pair of one request costs
    written at INFO to a file, over the same pair not emitted (DEBUG)."""
    from vlmcap.core.progress import Progress
    from vlmcap.core.request import Completion

    handler = logging.FileHandler(log_file)
    log = logging.getLogger("vlmcap.requests")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    done = Completion(text="a caption", finish_reason="stop", prompt_tokens=80, output_tokens=16,
                      first_token_at=time.time())  # fmt: skip
    try:
        costs = {}
        for level in (logging.DEBUG, logging.INFO):
            live = Progress(log_level=level)
            start = time.thread_time()
            for i in range(requests):
                live.submitted(f"r{i}", f"images/img{i}.png", "stage1")
                live.finished(f"r{i}", done)
            costs[level] = time.thread_time() - start
    finally:
        log.removeHandler(handler)
        handler.close()
    return max(costs[logging.INFO] - costs[logging.DEBUG], 0.0) / requests


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    n = args.items or (200 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 3)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("vlmcap").propagate = False  # the request lines go to the file only
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per scrape
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    from vlmcap.config import VLMConfig
    from vlmcap.core.progress import Progress
    from vlmcap.core.stats import LoopStats
    from vlmcap.engine import iter_records, load_engine
    from vlmcap.runtime import shutdown_llm
    from vlmcap.tiny.model import ensure_tiny_model

    config = VLMConfig(
        model="tiny-qwen2.5-vl",
        model_path=str(ensure_tiny_model()),
        max_output_tokens=16,
        mm_cache=False,
        prefix_caching=False,
        max_model_len=2048,
        enforce_eager=True,
    )
    work = Path(tempfile.mkdtemp(prefix="vlmcap-bench-monitor-"))
    rng = random.Random(7)
    plugin, llm = load_engine(config)
    try:

        def contender(features: frozenset[str]) -> Callable[[], dict[str, Any]]:
            def go() -> dict[str, Any]:
                items = make_items(n, rng)  # fresh pixels: nothing cached from another run
                level = logging.INFO if "logs" in features else logging.DEBUG
                stats = LoopStats(progress=Progress(log_level=level))
                spent: dict[str, float] = {}
                with watching(llm, stats.progress, work / "on.log", features, spent):
                    records = list(iter_records(items, llm, plugin, config, stats))
                ok = sum(r.status == "ok" for r in records)
                return {"items": len(records), "ok": ok, "requests": len(records), "spent": spent}

            return go

        runs = {"off": contender(frozenset()), "on": contender(frozenset(FEATURES))}
        if args.split:
            runs.update({name: contender(frozenset({name})) for name in FEATURES})
        samples = run_alternating(runs, repeats, pause_s=1.0, on_sample=show)
        unit = {
            "scrape_s": scrape_cpu_s(Progress()),
            "timing_lines_per_request_s": timing_lines_cpu_s(work / "unit.log"),
        }
    finally:
        shutdown_llm(llm)
    rate = {name: [s.value["items"] / s.seconds for s in ss] for name, ss in samples.items()}
    cpu = cpu_share(samples["on"], unit)
    overhead = ratio(rate["on"], rate["off"])
    alone = {name: ratio(rate[name], rate["off"]) for name in FEATURES if name in rate}
    lines = [
        *(f"{name:>4}: {summarize(r)['median']:.2f} items/s (min {min(r):.2f}, max {max(r):.2f})"
          for name, r in rate.items()),
        f"on / off: {overhead['ratio_of_medians']:.3f} (target >= {TARGET_RATIO})",
        f"CPU spent by the features: {100 * cpu['share']['median']:.2f} % of the run's wall time"
        f" (min {100 * cpu['share']['min']:.2f}, max {100 * cpu['share']['max']:.2f};"
        f" target <= {100 * (1 - TARGET_RATIO):.0f} %)",
        *(f"{name} alone / off: {r['ratio_of_medians']:.3f}" for name, r in alone.items()),
    ]  # fmt: skip
    result = {
        "name": "monitor_overhead",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "workload": {"items": n, "images": "56-112 px squares, fresh colours per run"},
        "config": config.model_dump(),
        "repeats": repeats,
        "watch_interval_s": WATCH_INTERVAL_S,
        "items_per_s": {name: summarize(r) for name, r in rate.items()},
        "ratio_on_over_off": overhead,
        "ratio_alone_over_off": alone,
        "cpu_spent_by_features": cpu,
        "target": f"on / off >= {TARGET_RATIO}",
        "summary": lines,
    }
    path = write_result("monitor_overhead", result, args.out)
    logger.info("%s", "\n".join([*lines, f"wrote {path}"]))


def cpu_share(samples: list[Any], unit: dict[str, float]) -> dict[str, Any]:
    """Per ``on`` run: CPU seconds of each feature and their sum over the run's wall time."""
    runs = []
    for s in samples:
        spent = dict(s.value["spent"])
        scrapes = spent.pop("scrapes", 0)
        parts = {
            **{f"{name}_thread_s": v for name, v in spent.items()},
            "scrapes_s": scrapes * unit["scrape_s"],
            "timing_lines_s": s.value["requests"] * unit["timing_lines_per_request_s"],
        }
        runs.append({"wall_s": s.seconds, "scrapes": scrapes, **parts,
                     "share": sum(parts.values()) / s.seconds})  # fmt: skip
    return {"unit_costs_s": unit, "runs": runs, "share": summarize([r["share"] for r in runs])}


def show(name: str, sample: Any) -> None:
    tag = "warm-up" if sample.repeat < 0 else f"repeat {sample.repeat}"
    rate = sample.value["items"] / sample.seconds
    logger.info("%-8s %-4s %6.2f s %7.1f items/s", tag, name, sample.seconds, rate)


if __name__ == "__main__":
    main()

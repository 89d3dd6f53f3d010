"""How well does vlmcap's engine loop keep vLLM busy? Six contenders, one process, same work.

    python bench/engine_loop.py [--quick] [--requests N] [--repeats R]
                                [--model tiny-random-qwen2.5-vl] [--model-path P] [--out PATH]
                                [--engine-arg KEY=VALUE ...] [--image-sides 448,672,896]
                                [--video-frames 8] [--video-side 448] [--max-tokens 8-48]
                                [--warmup each|first] [--deadline EPOCH_S] [--stage2-last]
                                [--lenient]

On a GPU with a real-size model folder and random weights, e.g. (bench/gpu/run_on_gpu.sh):

    python bench/engine_loop.py --model qwen2.5-vl --model-path DIR --requests 128 \
        --engine-arg load_format=dummy --engine-arg enforce_eager=false \
        --engine-arg gpu_memory_utilization=0.4 --image-sides 448,560,672,784,896 \
        --video-frames 8 --video-side 448 --warmup first --pause 0.5 --lenient

Contenders (every one builds its requests inside the timed region with ``plugin.make_request``
/ ``make_stage2_request`` -> ``plugin.engine_inputs`` and ``Sampling``, and decodes/validates
every output):

    a  generate   vLLM's ``LLM.generate`` on all requests at once (stage 2: a second pass)
    b  inflight   ``caption_items`` with ``inflight_batching=True``, ``max_inflight=cap``
    c  fixed      ``caption_items`` with ``inflight_batching=False``, ``batch_size=cap``
    d  one/step   a loop on ``llm.llm_engine`` adding ONE request per ``step()`` (below cap)
    e  asyncllm   vLLM's ``AsyncLLM``, one asyncio task per item behind ``Semaphore(cap)``
    f  inline     as b, with ``prepare_threads=0``: requests built on the loop's own thread
                  (b builds them on the threads ``vlmcap.engine.prepare`` picks)

Scenarios: cap 16 and cap 256 (vlmcap's default ``max_inflight``), each with stage 2 off and
on; ``a`` is never capped. Caches that would let a later contender reuse an earlier one's work
(vLLM's multimodal processor cache, prefix cache) are off. Every contender first runs once
untimed on the full workload (``--warmup first``: only in the first scenario), then
``--repeats`` times in an order that changes per repeat. ``--engine-arg KEY=VALUE`` sets a
``VLMConfig`` field of that name, else an extra ``vllm.LLM`` keyword (both engines get it; two
engines share one GPU, so give each a ``gpu_memory_utilization`` under one half).
Result: JSON (``--out``, default ``bench/results/engine_loop.json``, rewritten after every
scenario, ``"complete": false`` until the last and when one was skipped) and a table on
stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from common import Sample, machine_info, ratio, run_alternating, summarize, write_result
from workload import (
    add_engine_arg,
    add_workload_args,
    bench_config,
    make_items,
    read_args,
    workload_kwargs,
)

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput, SamplingParams
    from vllm.v1.engine.async_llm import AsyncLLM

    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.records import Item

logger = logging.getLogger("bench.engine_loop")

CONTENDERS = {
    "a": "LLM.generate (all at once)",
    "b": "vlmcap in-flight loop",
    "c": "vlmcap fixed batches",
    "d": "one add per engine.step()",
    "e": "AsyncLLM + Semaphore(cap)",
    "f": "vlmcap in-flight loop, requests built on the loop's thread",
}
#: (numerator, denominator, target on items/s or None, only at this cap or None = every cap)
RATIOS: list[tuple[str, str, float | None, int | None]] = [
    ("b", "a", 0.95, None),
    ("b", "d", 1.3, 16),
    ("b", "e", 1.0, None),
    ("c", "a", None, None),
    ("b", "f", None, None),
]
_FINISHED_OK = ("stop", "length")  # as vlmcap.core.lifecycle settles outputs


@dataclass
class RunResult:
    """What one contender produced on the whole workload."""

    items: int
    ok: int
    output_tokens: int
    requests: int  # engine requests (stage 1 + stage 2)


@dataclass
class Bench:
    """Everything the contenders share: engines, plugin, config, prepared items."""

    llm: LLM
    async_llm: AsyncLLM
    loop: asyncio.AbstractEventLoop
    plugin: VLMPlugin
    config: VLMConfig
    items: list[Item]
    prompt: str


# ---- helpers shared by the contenders a, d, e -----------------------------------------------


def classify(bench: Bench, output: RequestOutput | None) -> tuple[str | None, int]:
    """(caption text or None when not ok, output tokens): the lifecycle's rules."""
    completion = output.outputs[0] if output is not None and output.outputs else None
    if completion is None:
        return None, 0
    tokens = len(completion.token_ids or ())
    if completion.finish_reason not in _FINISHED_OK:
        return None, tokens
    decoded = bench.plugin.decode(completion)
    text = decoded if isinstance(decoded, str) else decoded.text  # a Decoded: its answer text
    return (text or None), tokens


def stage1_request(bench: Bench, item: Item) -> tuple[dict[str, Any], SamplingParams]:
    from vlmcap.core import Sampling

    request = bench.plugin.make_request(bench.prompt, item.media, fps=item.fps)
    inputs = bench.plugin.engine_inputs(request, bench.plugin.processor())
    return inputs, Sampling.from_config(bench.config, item.max_tokens).to_vllm()


def refine_request(bench: Bench, item: Item, caption: str) -> dict[str, Any]:
    from vlmcap.records import Record

    record = Record(
        key=item.key, request_id=item.key, item=item, prompt=bench.prompt, stage1_text=caption
    )
    request = bench.plugin.make_stage2_request(record, bench.config.stage2_prompt)
    return bench.plugin.engine_inputs(request, bench.plugin.processor())


# ---- the contenders ---------------------------------------------------------------------------


def run_generate(bench: Bench, stage2: bool) -> RunResult:
    """(a) ``LLM.generate`` over everything; stage 2 is a second pass over the ok ones."""
    built = [stage1_request(bench, item) for item in bench.items]
    outputs = bench.llm.generate(
        [cast(Any, b[0]) for b in built], [b[1] for b in built], use_tqdm=False
    )
    ok = tokens = 0
    refine: list[tuple[Item, SamplingParams, str]] = []
    for item, (_, params), output in zip(bench.items, built, outputs, strict=True):
        text, n = classify(bench, output)
        tokens += n
        if text is not None and stage2:
            refine.append((item, params, text))
        elif text is not None:
            ok += 1
    requests = len(built)
    if refine:
        inputs = [refine_request(bench, item, text) for item, _, text in refine]
        second = bench.llm.generate(cast(Any, inputs), [p for _, p, _ in refine], use_tqdm=False)
        requests += len(inputs)
        for output in second:
            text, n = classify(bench, output)
            tokens += n
            ok += text is not None
    return RunResult(len(bench.items), ok, tokens, requests)


def run_vlmcap(
    bench: Bench, cap: int, stage2: bool, inflight: bool, prepare_threads: int | None = None
) -> RunResult:
    """(b) / (c) / (f): vlmcap's own ``caption_items``; (f) builds requests on the loop's
    thread (``prepare_threads=0``), (b) on the threads vlmcap picks (or the config's)."""
    from vlmcap.engine import caption_items
    from vlmcap.records import Status

    update: dict[str, Any] = {
        "inflight_batching": inflight,
        "max_inflight": cap,
        "batch_size": cap,
        "stage2": stage2,
    }
    if prepare_threads is not None:
        update["prepare_threads"] = prepare_threads
    config = bench.config.model_copy(update=update)
    records = caption_items(bench.items, bench.llm, bench.plugin, config)
    ok = sum(r.status == Status.OK for r in records)
    tokens = sum(r.output_tokens for r in records)
    requests = sum(1 + (r.stage1_text is not None and stage2) for r in records)
    return RunResult(len(records), ok, tokens, requests)


def run_one_per_step(bench: Bench, cap: int, stage2: bool) -> RunResult:
    """(d) the baseline: at most ONE new request per ``engine.step()``, refines first."""
    engine = bench.llm.llm_engine
    source: Iterator[Item] = iter(bench.items)
    refine: deque[tuple[Item, SamplingParams, str]] = deque()
    inflight: dict[str, tuple[Item, SamplingParams, int]] = {}
    run, ids = os.urandom(3).hex(), itertools.count()
    exhausted = False
    ok = tokens = requests = 0
    while True:
        if len(inflight) < cap:
            job: tuple[Item, dict[str, Any], SamplingParams, int] | None = None
            if refine:
                item, params, caption = refine.popleft()
                job = (item, refine_request(bench, item, caption), params, 2)
            elif not exhausted:
                nxt = next(source, None)
                if nxt is None:
                    exhausted = True
                else:
                    job = (nxt, *stage1_request(bench, nxt), 1)
            if job is not None:
                rid = f"{run}-{next(ids)}"
                engine.add_request(rid, job[1], job[2])  # type: ignore[arg-type]
                inflight[rid] = (job[0], job[2], job[3])
                requests += 1
        if not inflight:
            if exhausted and not refine:
                break
            continue
        for output in engine.step():
            if not output.finished:
                continue
            item, params, stage = inflight.pop(output.request_id)
            text, n = classify(bench, cast("RequestOutput", output))
            tokens += n
            if text is not None and stage == 1 and stage2:
                refine.append((item, params, text))
            elif text is not None:
                ok += 1
    return RunResult(len(bench.items), ok, tokens, requests)


async def _final(stream: AsyncIterator[RequestOutput]) -> RequestOutput | None:
    last = None
    async for output in stream:
        last = output
    return last


async def _run_async(bench: Bench, cap: int, stage2: bool) -> RunResult:
    semaphore = asyncio.Semaphore(cap)
    run = os.urandom(3).hex()

    async def one(index: int, item: Item) -> tuple[int, int, int]:
        async with semaphore:
            inputs, params = stage1_request(bench, item)
            output = await _final(
                bench.async_llm.generate(cast(Any, inputs), params, f"{run}-{index}")
            )
            text, tokens = classify(bench, output)
            if text is None or not stage2:
                return int(text is not None), tokens, 1
            inputs = refine_request(bench, item, text)
            output = await _final(
                bench.async_llm.generate(cast(Any, inputs), params, f"{run}-{index}:s2")
            )
            text, more = classify(bench, output)
            return int(text is not None), tokens + more, 2

    results = await asyncio.gather(*(one(i, item) for i, item in enumerate(bench.items)))
    ok, tokens, requests = (sum(col) for col in zip(*results, strict=True))
    return RunResult(len(bench.items), ok, tokens, requests)


def run_asyncllm(bench: Bench, cap: int, stage2: bool) -> RunResult:
    """(e) ``AsyncLLM``: one task per item; the refine request stays in the same task."""
    return bench.loop.run_until_complete(_run_async(bench, cap, stage2))


# ---- driver -------------------------------------------------------------------------------


def contenders(
    bench: Bench, cap: int, stage2: bool, only: str = "".join(CONTENDERS)
) -> dict[str, Callable[[], RunResult]]:
    every: dict[str, Callable[[], RunResult]] = {
        "a": lambda: run_generate(bench, stage2),
        "b": lambda: run_vlmcap(bench, cap, stage2, inflight=True),
        "c": lambda: run_vlmcap(bench, cap, stage2, inflight=False),
        "d": lambda: run_one_per_step(bench, cap, stage2),
        "e": lambda: run_asyncllm(bench, cap, stage2),
        "f": lambda: run_vlmcap(bench, cap, stage2, inflight=True, prepare_threads=0),
    }
    return {key: run for key, run in every.items() if key in only}


def run_scenario(
    bench: Bench,
    cap: int,
    stage2: bool,
    repeats: int,
    pause_s: float,
    *,
    warmup: bool = True,
    lenient: bool = False,
    only: str = "".join(CONTENDERS),
) -> dict[str, Any]:
    name = f"cap{cap}-stage2-{'on' if stage2 else 'off'}"
    warmups: dict[str, RunResult] = {}

    def note(contender: str, sample: Sample[RunResult]) -> None:
        r = sample.value
        tag = "warm-up" if sample.repeat < 0 else f"repeat {sample.repeat}"
        print(
            f"  [{name}] {tag:>8} {contender}: {sample.seconds:7.2f} s  ok {r.ok}/{r.items}  "
            f"{r.output_tokens} tok",
            flush=True,
        )
        if sample.repeat < 0:
            warmups[contender] = r

    print(f"scenario {name}", flush=True)
    samples = run_alternating(
        contenders(bench, cap, stage2, only),
        repeats,
        warmup=warmup,
        pause_s=pause_s,
        on_sample=note,
    )
    everything = [s.value for ss in samples.values() for s in ss] + list(warmups.values())
    ok_counts = {r.ok for r in everything}
    if len(ok_counts) != 1:
        # --lenient: random weights on a GPU may end a request differently from run to run
        assert lenient, f"{name}: contenders disagree on ok results: {ok_counts}"
        print(f"  [{name}] note: ok results differ between runs: {sorted(ok_counts)}")
    assert all(r.items == len(bench.items) for r in everything)

    per: dict[str, Any] = {}
    for key, runs in samples.items():
        seconds = [s.seconds for s in runs]
        per[key] = {
            "label": CONTENDERS[key],
            "capped": key != "a",
            "order_positions": [s.position for s in runs],
            "seconds": summarize(seconds),
            "items_per_s": summarize([s.value.items / s.seconds for s in runs]),
            "output_tok_per_s": summarize([s.value.output_tokens / s.seconds for s in runs]),
            "ok": runs[0].value.ok,
            "output_tokens": [s.value.output_tokens for s in runs],
            "engine_requests": runs[0].value.requests,
            "warmup": {"result": asdict(warmups[key])} if key in warmups else None,
        }
    ratios: dict[str, Any] = {}
    for num, den, goal, only_cap in RATIOS:
        if num not in per or den not in per:
            continue
        r = ratio(per[num]["items_per_s"]["values"], per[den]["items_per_s"]["values"])
        target = None if only_cap is not None and only_cap != cap else goal
        r["target"] = target
        r["met"] = None if target is None else bool(r["ratio_of_medians"] >= target)
        ratios[f"{num}/{den}"] = r
    tokens_equal = len({t for p in per.values() for t in p["output_tokens"]}) == 1
    return {
        "name": name,
        "cap": cap,
        "stage2": stage2,
        "contenders": per,
        "ratios_items_per_s": ratios,
        "output_tokens_identical_across_contenders": tokens_equal,
        "ok_identical_across_contenders": len(ok_counts) == 1,
        "warmup": warmup,
    }


def print_table(scenarios: list[dict[str, Any]]) -> None:
    print()
    print(
        f"{'scenario':<20}{'':3}{'contender':<28}{'s (med)':>9}{'items/s med [min-max]':>24}"
        f"{'tok/s med':>11}{'ok':>6}"
    )
    for sc in scenarios:
        for key, c in sc["contenders"].items():
            ips = c["items_per_s"]
            span = f"{ips['median']:.2f} [{ips['min']:.2f}-{ips['max']:.2f}]"
            print(
                f"{sc['name']:<20}{key:<3}{c['label']:<28}{c['seconds']['median']:>9.2f}"
                f"{span:>24}{c['output_tok_per_s']['median']:>11.1f}{c['ok']:>6}"
            )
        parts = []
        for label, r in sc["ratios_items_per_s"].items():
            mark = "" if r["met"] is None else (" ok" if r["met"] else " MISSED")
            goal = "" if r["target"] is None else f" (>={r['target']}{mark})"
            parts.append(
                f"{label} {r['ratio_of_medians']:.3f} [{r['min']:.3f}-{r['max']:.3f}]{goal}"
            )
        print(f"{'':<23}ratios: " + "; ".join(parts))
        if not sc["output_tokens_identical_across_contenders"]:
            print(f"{'':<23}note: output token totals differ between runs")
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="24 requests, 1 repeat, cap 16 only")
    p.add_argument("--requests", type=int, default=None, help="default 96 (24 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    p.add_argument("--model", default="tiny-random-qwen2.5-vl")
    p.add_argument("--model-path", default=None)
    p.add_argument("--seed", type=int, default=0, help="workload seed")
    p.add_argument("--out", default=None, help="default bench/results/engine_loop.json")
    p.add_argument(
        "--caps", default=None, help="comma-separated caps; default 16,256 (16 with --quick)"
    )
    p.add_argument(
        "--pause",
        type=float,
        default=1.5,
        help="untimed seconds between runs: vLLM workers busy-spin ~1 s after their last step",
    )
    add_engine_arg(p)
    add_workload_args(p)
    p.add_argument(
        "--warmup",
        choices=("each", "first"),
        default="each",
        help="untimed warm-up of every contender in each scenario, or in the first only",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=None,
        help="Unix time: a scenario that would not end before it (judged by the ones done) "
        "is skipped and listed under skipped_scenarios",
    )
    p.add_argument(
        "--stage2-last",
        action="store_true",
        help="every cap with stage 2 off first, then with stage 2 on (with --deadline: the "
        "stage-2 scenarios are the ones that may be skipped)",
    )
    p.add_argument(
        "--lenient",
        action="store_true",
        help="record, instead of failing on, ok counts that differ between runs",
    )
    p.add_argument(
        "--contenders",
        default="".join(CONTENDERS),
        help=f"the contenders to run, as letters (default {''.join(CONTENDERS)})",
    )
    p.add_argument(
        "--stage2", default="off,on", help="comma-separated stage-2 settings to run (off, on)"
    )
    args = p.parse_args(argv)
    unknown = set(args.contenders) - set(CONTENDERS)
    if unknown:
        p.error(f"--contenders: unknown {''.join(sorted(unknown))}")
    read_args(args, p)
    args.stage2 = [{"off": False, "on": True}[v.strip()] for v in args.stage2.split(",")]
    if args.requests is None:
        args.requests = 24 if args.quick else 96
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.caps is None:
        args.caps = "16" if args.quick else "16,256"
    args.caps = [int(c) for c in args.caps.split(",") if c.strip()]
    if not args.quick and args.requests < 64:
        p.error("--requests must be at least 64 (use --quick for a smoke test)")
    if not args.quick and args.repeats < 3:
        p.error("--repeats must be at least 3 (use --quick for a smoke test)")
    return args


def estimate_s(done: list[tuple[bool, float]], stage2: bool) -> float | None:
    """Seconds the next scenario may take, judged by finished (stage2, seconds) ones."""
    same = [s for st, s in done if st == stage2]
    if same:
        return max(same)
    if stage2 and done:
        return 2.2 * max(s for _, s in done)
    return None


def run_scenarios(
    bench: Bench,
    args: argparse.Namespace,
    scenarios: list[dict[str, Any]],
    skipped: list[dict[str, Any]],
    save: Callable[[], object],
) -> None:
    """Every (cap, stage 2 off/on) scenario in turn, into ``scenarios``; ``save`` after each.
    With ``args.deadline``, one that would not end in time goes to ``skipped`` instead."""
    done: list[tuple[bool, float]] = []
    plan = list(itertools.product(args.caps, args.stage2))
    if args.stage2_last:
        plan.sort(key=lambda scenario: scenario[1])  # stable: caps keep their order
    for cap, stage2 in plan:
        estimate = estimate_s(done, stage2)
        if args.deadline is not None and estimate is not None:
            left = args.deadline - time.time()
            if estimate > left:
                name = f"cap{cap}-stage2-{'on' if stage2 else 'off'}"
                print(f"scenario {name} skipped: ~{estimate:.0f} s, {left:.0f} s left")
                skipped.append({"name": name, "estimate_s": estimate, "left_s": left})
                continue
        t0 = time.perf_counter()
        warm = args.warmup == "each" or not scenarios
        scenario = run_scenario(
            bench,
            cap,
            stage2,
            args.repeats,
            args.pause,
            warmup=warm,
            lenient=args.lenient,
            only=args.contenders,
        )
        scenario["wall_s"] = time.perf_counter() - t0
        done.append((stage2, scenario["wall_s"]))
        scenarios.append(scenario)
        save()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    logging.basicConfig(level=logging.WARNING)

    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    from vlmcap.engine import load_engine
    from vlmcap.engine.args import engine_kwargs

    # On a CPU backend engine_kwargs turns chunked prefill off (seeded requests crash it).
    config = bench_config(args.engine_overrides, model=args.model, model_path=args.model_path)
    items, workload = make_items(args.requests, args.seed, **workload_kwargs(args))
    t0 = time.perf_counter()
    plugin, llm = load_engine(config)
    llm_start = time.perf_counter() - t0
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    t0 = time.perf_counter()
    # LLM_CLASS: the same scheduler defaults (max_num_seqs, batched tokens) as ``vllm.LLM``.
    async_llm = AsyncLLM.from_engine_args(
        AsyncEngineArgs(**engine_kwargs(plugin, config)), usage_context=UsageContext.LLM_CLASS
    )
    async_start = time.perf_counter() - t0
    prompt = plugin.prompt(config.prompt_style, config.prompt_text)
    bench = Bench(llm, async_llm, loop, plugin, config, items, prompt)

    def sched(vllm_config: Any) -> dict[str, Any]:
        s = vllm_config.scheduler_config
        return {
            "max_num_seqs": s.max_num_seqs,
            "max_num_batched_tokens": s.max_num_batched_tokens,
            "enable_chunked_prefill": s.enable_chunked_prefill,
            "async_scheduling": getattr(s, "async_scheduling", None),
        }

    common = {
        "name": "engine_loop",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "repeats": args.repeats,
        "pause_between_runs_s": args.pause,
        "order": "untimed warm-up of every contender per scenario, then per repeat the order "
        "of bench/common.py order_for_repeat (mirrored on odd repeats, rotated every two)",
        "machine": machine_info(),
        "config": config.model_dump(),
        "plugin": {"variant": plugin.variant, "model_path": plugin.model_path},
        "engine_kwargs": engine_kwargs(plugin, config),
        "scheduler": {
            "llm": sched(llm.llm_engine.vllm_config),
            "async_llm": sched(async_llm.vllm_config),
        },
        "startup_s": {"llm": llm_start, "async_llm": async_start},
        "contenders": CONTENDERS,
        "workload": workload,
    }
    if args.warmup == "first":
        common["order"] = common["order"].replace("per scenario", "in the first scenario only")

    def result(
        scenarios: list[dict[str, Any]], skipped: list[dict[str, Any]], *, complete: bool
    ) -> dict[str, Any]:
        out = {**common, "scenarios": scenarios, "complete": complete}
        if skipped:
            out["skipped_scenarios"] = skipped
        return out

    scenarios: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    try:
        run_scenarios(
            bench,
            args,
            scenarios,
            skipped,
            lambda: write_result(
                "engine_loop", result(scenarios, skipped, complete=False), args.out
            ),
        )
    finally:
        async_llm.shutdown()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    final = result(scenarios, skipped, complete=not skipped)
    path = write_result("engine_loop", final, args.out)
    print_table(scenarios)
    print(f"wrote {path}")
    # Drop the engines while the interpreter is whole (AsyncLLM.__del__ calls shutdown again).
    del bench, async_llm, llm
    gc.collect()


if __name__ == "__main__":
    main()

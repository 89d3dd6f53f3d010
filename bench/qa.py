"""Visual QA throughput: one question at a time (what QA scripts do) vs ``vlmcap qa``.

    python bench/qa.py [--questions 120] [--repeats 3] [--quick]

One process, one question set (``vlmcap.tiny.qa_set``: one- and two-image questions), the
trained tiny model on both sides, vLLM's prefix and multimodal caches off, same token limit
and seed:

    sequential   a loop over the questions with the official ``openai`` client against
                 ``vlmcap serve``: one request, wait for its answer, next (how the QA scripts
                 this product replaces work); images as PNG data URLs, answers read by
                 ``vlmcap.qa.extract_choice``
    qa-N         ``vlmcap qa``'s pipeline (``answer_questions`` with ``ServerBackend``) at
                 concurrency N against the same server
    offline      ``answer_questions`` with ``OfflineBackend`` on a ``vllm.LLM`` in this process

Both engines stay loaded; contenders alternate (a warm-up each on the whole set, then the order
changes every repeat), each run into a fresh output folder. Every contender must give the same
number of answers. Targets: qa-16 >= 3x sequential; best qa-N >= 0.8x offline.

Where the time went, per contender (medians in the result): CPU milliseconds per question of
this process (the pipeline and HTTP client, or the offline front end with the HF processor),
of the server's processes (API process and engine) and of the offline engine's processes;
and the engine steps the run took (the server's step histogram, or the offline loop's count).
Result: ``bench/results/qa.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from common import machine_info, ratio, run_alternating, summarize, write_result
from served import cpu_s, engine_steps, start_server, tree

logger = logging.getLogger("bench.qa")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--questions", type=int, default=None, help="one-image questions [96; 24 quick]")
    p.add_argument("--pairs", type=int, default=None, help="image pairs, 2 questions each [12]")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats [3; 1 quick]")
    p.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    p.add_argument("--quick", action="store_true", help="a small smoke run")
    p.add_argument("--max-output-tokens", type=int, default=16)
    p.add_argument("--out", default=None, help="result file [bench/results/qa.json]")
    return p.parse_args(argv)


def workload_size(args: argparse.Namespace) -> tuple[int, int, int]:
    """(one-image questions, image pairs, repeats) after the ``--quick`` defaults."""
    n_images = args.questions or (24 if args.quick else 96)
    n_pairs = args.pairs if args.pairs is not None else (4 if args.quick else 12)
    return n_images, n_pairs, args.repeats or (1 if args.quick else 3)


def bench_config() -> Any:
    from vlmcap.config import VLMConfig
    from vlmcap.tiny.model import shipped_model_path

    return VLMConfig(
        model="tiny-qwen2.5-vl",
        model_path=str(shipped_model_path()),
        max_output_tokens=16,
        mm_cache=False,
        prefix_caching=False,
        max_model_len=2048,
        enforce_eager=True,
    )


def sequential(
    url: str, model: str, plugin: Any, questions: list[Any], max_tokens: int
) -> dict[str, Any]:
    """One question at a time with the ``openai`` client: the baseline."""
    from openai import OpenAI

    from vlmcap.client.messages import encode_media
    from vlmcap.media.images import load_image
    from vlmcap.qa.answers import extract_choice

    client = OpenAI(base_url=url + "/v1", api_key="EMPTY", max_retries=0)
    correct = answered = tokens = 0
    try:
        for q in questions:
            images = [load_image(p) for p in q.images]
            media = images[0] if len(images) == 1 else images
            request = plugin.make_request(plugin.qa_prompt(q.question, q.choices), media)
            messages = plugin.chat_messages(request, encode_media(media).groups)
            reply = client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=0.1,
                top_p=0.001,
                seed=0,
                extra_body={"repetition_penalty": 1.05},
            )
            text = reply.choices[0].message.content or ""
            answered += 1
            tokens += reply.usage.completion_tokens if reply.usage else 0
            correct += extract_choice(text, q.choices).letter == q.answer
    finally:
        client.close()
    return {"items": answered, "correct": correct, "output_tokens": tokens}


def quiet_logs() -> None:
    """One line per sample, not per request."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("httpx", "openai", "vlmcap"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    n_images, n_pairs, repeats = workload_size(args)
    quiet_logs()

    from vlmcap.client.connect import connect
    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.engine import load_engine
    from vlmcap.options import RunOptions
    from vlmcap.pipeline.backend import Backend, OfflineBackend, ServerBackend
    from vlmcap.pipeline.qa import answer_questions
    from vlmcap.qa.dataset import load_questions
    from vlmcap.runtime import shutdown_llm
    from vlmcap.tiny.qa_set import write_question_set

    work = Path(tempfile.mkdtemp(prefix="vlmcap-bench-qa-"))
    server = llm = None
    try:
        path = write_question_set(work / "set", n_images=n_images, n_pairs=n_pairs, seed=31)
        questions = load_questions(path, path.parent).questions
        config = bench_config().model_copy(update={"max_output_tokens": args.max_output_tokens})
        plugin, llm = load_engine(config)
        server, opts, command = start_server(plugin, config, work / "server.log")
        run = RunOptions()
        counter = {"n": 0}

        def through(make: Callable[[], Backend]) -> Callable[[], dict[str, Any]]:
            def go() -> dict[str, Any]:
                counter["n"] += 1
                out = work / f"out{counter['n']}"
                summary = answer_questions(questions, make(), plugin, config, out, run=run)
                shutil.rmtree(out)
                value = {"items": summary.rows, "output_tokens": summary.output_tokens}
                if summary.loop.engine_steps is not None:
                    value["engine_steps"] = summary.loop.engine_steps
                return value

            return go

        sides = process_sides(server.pid)

        def client(c: int) -> Callable[[], Backend]:
            settings = connect(ClientConfig(url=opts.local_url, concurrency=c), config)
            return lambda: ServerBackend(settings, plugin, config)

        served = connect(ClientConfig(url=opts.local_url), config).model
        contenders: dict[str, Callable[[], dict[str, Any]]] = {
            "sequential": lambda: sequential(
                opts.local_url, served, plugin, questions, config.max_output_tokens
            )
        }
        contenders.update({f"qa-{c}": through(client(c)) for c in args.concurrency})
        contenders["offline"] = through(lambda: OfflineBackend(llm, plugin, config))
        contenders = {name: measured(go, sides, opts.local_url) for name, go in contenders.items()}
        samples = run_alternating(contenders, repeats, pause_s=2.0, on_sample=show)
        result = report(samples, n=len(questions), repeats=repeats, config=config, args=args)
        result["server_command"] = command
        logger.info(
            "%s", "\n".join([*result["summary"], f"wrote {write_result('qa', result, args.out)}"])
        )
    finally:
        if llm is not None:
            shutdown_llm(llm)
        if server is not None:
            server.stop(60)
        shutil.rmtree(work, ignore_errors=True)


def process_sides(server_pid: int) -> dict[str, list[psutil.Process]]:
    """This process, the server's processes, and the offline engine's (our other children)."""
    server_procs = tree(server_pid)
    theirs = {p.pid for p in server_procs}
    return {
        "here": [psutil.Process()],
        "server": server_procs,
        "engine": [p for p in tree(os.getpid())[1:] if p.pid not in theirs],
    }


def measured(
    go: Callable[[], dict[str, Any]], sides: dict[str, list[psutil.Process]], url: str
) -> Callable[[], dict[str, Any]]:
    """``go`` plus the CPU each side used per question and the engine steps it took."""

    def run_one() -> dict[str, Any]:
        before = {side: cpu_s(procs) for side, procs in sides.items()}
        steps_before = engine_steps(url)
        value = go()
        used = {side: cpu_s(procs) - before[side] for side, procs in sides.items()}
        steps_after = engine_steps(url)
        n = max(value["items"], 1)
        value["cpu_ms_per_question"] = {k: round(1000 * v / n, 2) for k, v in used.items()}
        if "engine_steps" not in value and steps_before is not None and steps_after is not None:
            value["engine_steps"] = steps_after - steps_before
        return value

    return run_one


def show(name: str, sample: Any) -> None:
    tag = "warm-up" if sample.repeat < 0 else f"repeat {sample.repeat}"
    rate = sample.value["items"] / sample.seconds
    logger.info("%-8s %-10s %6.2f s %6.1f q/s  %s", tag, name, sample.seconds, rate, sample.value)


def report(
    samples: dict[str, list[Any]],
    *,
    n: int,
    repeats: int,
    config: Any,
    args: argparse.Namespace,
) -> dict[str, Any]:
    rate = {name: [s.value["items"] / s.seconds for s in ss] for name, ss in samples.items()}
    counts = {name: sorted({s.value["items"] for s in ss}) for name, ss in samples.items()}
    if any(c != [n] for c in counts.values()):
        raise RuntimeError(f"contenders answered different numbers of questions: {counts}")
    pipelines = [name for name in rate if name.startswith("qa-")]
    best = max(pipelines, key=lambda name: summarize(rate[name])["median"])
    vs_sequential = ratio(rate["qa-16"], rate["sequential"]) if "qa-16" in rate else None
    vs_offline = ratio(rate[best], rate["offline"])
    lines = [
        f"{name:>10}: {summarize(r)['median']:.2f} questions/s (min {min(r):.2f}, max {max(r):.2f})"
        for name, r in rate.items()
    ]
    if vs_sequential is not None:
        lines.append(f"qa-16 / sequential: {vs_sequential['ratio_of_medians']:.2f}x (target >= 3)")
    lines.append(f"{best} / offline: {vs_offline['ratio_of_medians']:.2f}x (target >= 0.8)")
    return {
        "name": "qa",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "workload": {
            "questions": n,
            "one_image": args.questions or (24 if args.quick else 96),
            "two_images": n - (args.questions or (24 if args.quick else 96)),
            "image": "224x224 PNG (synthetic shapes)",
            "max_output_tokens": config.max_output_tokens,
        },
        "config": config.model_dump(),
        "repeats": repeats,
        "questions_per_s": {name: summarize(r) for name, r in rate.items()},
        "seconds": {name: summarize([s.seconds for s in ss]) for name, ss in samples.items()},
        "cpu_ms_per_question": {
            name: {
                side: summarize([s.value["cpu_ms_per_question"][side] for s in ss])["median"]
                for side in ("here", "server", "engine")
            }
            for name, ss in samples.items()
        },
        "engine_steps": {
            name: [s.value.get("engine_steps") for s in ss] for name, ss in samples.items()
        },
        "ratio_qa16_over_sequential": vs_sequential,
        "best_pipeline": best,
        "ratio_best_over_offline": vs_offline,
        "targets": {"qa-16 / sequential": ">= 3", "best qa-N / offline": ">= 0.8"},
        "summary": lines,
    }


if __name__ == "__main__":
    _t0 = time.perf_counter()
    main()
    logger.info("total %.0f s", time.perf_counter() - _t0)

"""``Progress``: the live view of a run, and the request timing lines, on the real engine."""

from __future__ import annotations

import logging
import re

from PIL import Image

from tests.conftest import engine_config
from vlmcap.core.progress import InFlight, Progress, timing_line
from vlmcap.core.request import Completion
from vlmcap.core.stats import LoopStats
from vlmcap.engine import iter_records
from vlmcap.records import Item

COMPLETE = re.compile(
    r"\[REQUEST COMPLETE\] (?P<key>\S+) id=\S+ stage=stage1 total=(?P<total>[\d.]+)s "
    r"queue=(?P<queue>[\d.]+)s first_token=(?P<first>[\d.]+)s generation=(?P<gen>[\d.]+)s "
    r"tokens=(?P<tokens>\d+) tokens/s=(?P<rate>[\d.]+)"
)


def test_timing_line_splits_total_into_first_token_and_generation():
    entry = InFlight("r-1", "clip.mp4", "stage1", since=100.0, since_wall=1000.0)
    completion = Completion(text="x", output_tokens=87, first_token_at=1000.24, queue_s=0.02)
    line = timing_line(entry, completion, now=103.45)
    assert line == (
        "[REQUEST COMPLETE] clip.mp4 id=r-1 stage=stage1 total=3.45s queue=0.02s "
        "first_token=0.24s generation=3.21s tokens=87 tokens/s=27.1"
    )
    unknown = timing_line(entry, Completion(error="HTTP 500"), now=101.0)
    assert "queue=- first_token=- generation=- tokens=0 tokens/s=- error='HTTP 500'" in unknown


def test_stall_counts_only_while_requests_are_inside():
    clock = [10.0]
    live = Progress(clock=lambda: clock[0])
    clock[0] = 50.0
    assert live.view().stalled_s == 0.0  # nothing inside: idle, not stalled
    live.submitted("a", "a.png", "stage1")
    clock[0] = 57.0
    view = live.view()
    assert (view.inflight, view.stalled_s, view.oldest_age_s) == (1, 7.0, 7.0)
    live.outputs_seen(3)  # the first count is a baseline, not progress
    assert live.view().stalled_s == 7.0
    live.outputs_seen(5)
    assert live.view().stalled_s == 0.0
    clock[0] = 60.0
    live.finished("a", Completion(text="x", output_tokens=4))
    live.item_done(True)
    view = live.view()
    assert (view.inflight, view.requests_done, view.items_ok, view.output_tokens) == (0, 1, 1, 4)


def test_real_run_logs_start_and_complete_per_request(engine, tiny_model_path, caplog):
    plugin, llm = engine
    config = engine_config(tiny_model_path)
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    items = [Item(f"img{i}", Image.new("RGB", (56, 56), c)) for i, c in enumerate(colours)]
    stats = LoopStats(progress=Progress(log_level=logging.INFO))
    with caplog.at_level(logging.INFO, logger="vlmcap.requests"):
        records = list(iter_records(items, llm, plugin, config, stats))
    starts = [r.message for r in caplog.records if r.message.startswith("[REQUEST START]")]
    done = {m["key"]: m for r in caplog.records if (m := COMPLETE.match(r.message))}
    assert len(starts) == 3
    assert sorted(done) == ["img0", "img1", "img2"]
    for record in records:
        line = done[record.key]
        assert int(line["tokens"]) == record.output_tokens > 0
        assert float(line["first"]) <= float(line["total"])
    view = stats.progress.view()
    assert (view.inflight, view.items_ok, view.requests_done) == (0, 3, 3)
    assert view.output_tokens == sum(r.output_tokens for r in records)

"""``--logprobs K``: the first N requests of a real offline run keep their top-K logprobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import engine_config
from tests.debug.test_request_dump import run
from tests.engine.test_offline import mixed_items
from vlmcap.core import Sampling
from vlmcap.debug.logprobs import LOGPROBS_FILE
from vlmcap.debug.request_dump import DEBUG_DIR
from vlmcap.engine import caption_items
from vlmcap.rows import CaptionRow

K = 3
FIRST = 2


def lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / DEBUG_DIR / LOGPROBS_FILE).read_text().splitlines()]


def test_sampling_asks_for_logprobs_on_both_transports():
    plain = Sampling(0.0, 1.0, 1.0, 8, 0)
    asked = Sampling(0.0, 1.0, 1.0, 8, 0, logprobs=K)
    assert plain.to_vllm().logprobs is None and "logprobs" not in plain.to_openai()
    assert asked.to_vllm().logprobs == K
    assert asked.to_openai()["logprobs"] is True and asked.to_openai()["top_logprobs"] == K
    assert plain != asked and len({plain, asked}) == 2  # distinct engine params


@pytest.mark.parametrize("inflight", [True, False])
def test_first_requests_keep_top_k_logprobs_and_rows_stay_the_same(
    engine, tiny_model_path, tmp_path, inflight
):
    plugin, llm = engine
    items = mixed_items(3, 1)
    loop = {"inflight_batching": inflight, "batch_size": 2, "max_inflight": 2}
    config = engine_config(tiny_model_path, logprobs=K, logprobs_first=FIRST, **loop)
    records = {r.key: r for r in run(engine, config, items, tmp_path)}
    found = lines(tmp_path)
    assert [row["key"] for row in found] == [item.key for item in items[:FIRST]]
    for row in found:
        assert row["stage"] == "stage1" and row["k"] == K and row["tokens"]
        assert len(row["tokens"]) == records[row["key"]].output_tokens
        for token in row["tokens"]:
            top = token["top"]
            assert len(top) == K
            assert all(t["token_id"] is not None for t in top)
            values = [t["logprob"] for t in top if t["logprob"] is not None]
            assert values == sorted(values, reverse=True)
            assert token["token_id"] is not None and token["logprob"] is not None
            if token["rank"] is not None and token["rank"] <= K:  # the chosen token is listed
                assert token["token_id"] in {t["token_id"] for t in top}
    assert not list((tmp_path / DEBUG_DIR).glob("*.json"))  # no dumps were asked for
    # the rows are those of a run without logprobs: same fields, same text
    plain = {r.key: r for r in caption_items(items, llm, plugin, engine_config(tiny_model_path))}
    for key, record in records.items():
        row = CaptionRow.from_record(record, {}).to_json()
        base = CaptionRow.from_record(plain[key], {}).to_json()
        assert set(row) == set(base) and "logprobs" not in json.dumps(row)
        assert (row["caption"], row["output_tokens"]) == (base["caption"], base["output_tokens"])

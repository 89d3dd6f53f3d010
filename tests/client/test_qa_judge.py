"""The judge fallback against a second real server: the session's ``vlmcap serve``.

The answers come from the trained tiny model offline, read by a plugin whose decoding leaves
no option in the text, so no rule can read any of them; the judge (the tiny random-weight model
behind vLLM's OpenAI server, its reply constrained to a letter or ``none``) reads them all, and
every such row says that a judge decided.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.client.conftest import API_KEY, free_port
from vlmcap.client.openai_client import ClientConfig
from vlmcap.pipeline.backend import OfflineBackend
from vlmcap.pipeline.qa import answer_questions
from vlmcap.plugins.tiny import TinyQwen25VLPlugin
from vlmcap.qa.dataset import load_questions
from vlmcap.qa.judge import Judge
from vlmcap.qa.results import metrics_path, results_path
from vlmcap.tiny.qa_set import write_question_set

pytestmark = pytest.mark.engine


class HedgingPlugin(TinyQwen25VLPlugin):
    """The trained tiny model, decoded into an answer that names no option."""

    variant = "tiny-hedging"
    model_id = "test/tiny-hedging"

    def decode(self, completion):
        return f"Hard to say, perhaps what I see: {completion.text.strip()[:0]}it depends."


def test_answers_no_rule_reads_are_judged_and_marked(trained_engine, server, tmp_path):
    llm, _, config = trained_engine
    root = tmp_path / "set"
    questions = load_questions(write_question_set(root, n_images=6, n_pairs=0, seed=3), root)
    plugin = HedgingPlugin(config.model_path)
    judge = Judge(ClientConfig(url=server.url, api_key=API_KEY))
    judge.connect()
    try:
        out = tmp_path / "out"
        backend = OfflineBackend(llm, plugin, config)
        summary = answer_questions(questions.questions, backend, plugin, config, out, judge=judge)
    finally:
        judge.close()
    assert summary.ok == 6 and judge.asked == 6
    results = json.loads(results_path(out, plugin.variant).read_text())
    for entry in results.values():
        assert entry["judged"] is True
        assert entry["judge_output"] in ("A", "B", "C", "D", "none")
        if entry["judge_output"] != "none":
            assert entry["extraction_method"] == "judge"
            assert entry["predicted_letter"] == entry["judge_output"]
        else:
            assert entry["predicted_letter"] is None and entry["outcome"] == "unparsed"
    metrics = json.loads(metrics_path(out, plugin.variant).read_text())
    assert metrics["judged"] == 6
    assert metrics["rule_accuracy"] == 0.0  # the rules read nothing
    assert metrics["overall_accuracy"] == round(metrics["judged_correct"] / 6, 4)


def test_an_unreachable_judge_stops_before_any_engine_starts(tmp_path):
    root = tmp_path / "set"
    path = write_question_set(root, n_images=2, n_pairs=0, seed=3)
    url = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "vlmcap.cli", "qa", "--questions", str(path), "-o", "out"]
    cmd += ["--judge-url", url, "--retries", "0"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "judge" in message and url in message
    assert not (tmp_path / "out").exists()

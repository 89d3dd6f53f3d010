"""The warnings digest on lines as vLLM 0.32, PyTorch and Python really print them here."""

from __future__ import annotations

from pathlib import Path

from vlmcap.debug.log_digest import MAX_NOTICE_CHARS, LogDigest, parse_line

ENGINE_LINE = (
    "(EngineCore pid=3113) WARNING 12-02 03:54:13 [cpu.py:224] Triton is not installed. "
    "triton-cpu is expected on x86 CPUs."
)
MAIN_LINE = (
    "(MainProcess pid=3099) WARNING 12-02 03:54:07 [cpu.py:224] Triton is not installed. "
    "triton-cpu is expected on x86 CPUs."
)
TORCH_LINE = (
    "[W1202 03:54:20.829832233 utils.cpp:68] Warning: NUMA binding: Using MEMBIND policy for "
    "memory allocation on the NUMA nodes (0). (function init_cpu_memory_env)"
)
PY_WARNING = (
    "/venv/lib/python3.11/site-packages/vllm/triton_utils/dispatcher.py:138: FutureWarning: "
    "`torch.distributed.reduce_op` is deprecated, please use `torch.distributed.ReduceOp` instead"
)
INFO_LINE = "(EngineCore pid=3113) INFO 12-02 03:54:13 [core.py:133] Initializing a V1 LLM engine"
OUR_LINE = "2026-12-02 04:04:30,689 WARNING vlmcap.pipeline.run: a.jpg failed: bad file"


def test_each_known_format_is_read_with_its_source_and_level():
    engine = parse_line(ENGINE_LINE)
    assert engine is not None and (engine.source, engine.level) == ("vLLM", "WARNING")
    assert engine.text == "Triton is not installed. triton-cpu is expected on x86 CPUs."
    torch = parse_line(TORCH_LINE)
    assert torch is not None and torch.source == "PyTorch" and torch.text.startswith("NUMA")
    python = parse_line(PY_WARNING)
    assert python is not None and python.source == "Python"
    assert python.text.startswith("FutureWarning: `torch.distributed.reduce_op`")
    coloured = parse_line("\x1b[1;33m" + ENGINE_LINE + "\x1b[0m")
    assert coloured is not None and coloured.text == engine.text


def test_info_lines_and_our_own_records_are_not_notices():
    assert parse_line(INFO_LINE) is None
    assert parse_line(OUR_LINE) is None  # vlmcap's warnings reach the terminal themselves
    assert parse_line("Loading safetensors checkpoint shards: 100% Completed") is None


def test_one_message_from_several_processes_is_one_notice(tmp_path: Path):
    log = tmp_path / "run.log"
    log.write_text("\n".join([ENGINE_LINE, MAIN_LINE, INFO_LINE, TORCH_LINE, ""]))
    digest = LogDigest(log)
    notices = {n.text: n for n in digest.take_new()}
    assert len(notices) == 2
    assert notices["Triton is not installed. triton-cpu is expected on x86 CPUs."].count == 2
    assert digest.take_new() == []  # reported once
    with log.open("a") as fh:  # the log grows: only the new notice comes back, counts go on
        fh.write(ENGINE_LINE + "\n" + PY_WARNING + "\n")
    fresh = digest.take_new()
    assert [n.source for n in fresh] == ["Python"]
    assert max(n.count for n in digest.notices()) == 3


def test_a_line_still_being_written_waits_for_its_end(tmp_path: Path):
    log = tmp_path / "run.log"
    log.write_text(ENGINE_LINE[:40])
    digest = LogDigest(log)
    assert digest.take_new() == []
    with log.open("a") as fh:
        fh.write(ENGINE_LINE[40:] + "\n")
    (notice,) = digest.take_new()
    assert notice.text.startswith("Triton is not installed")


def test_long_messages_are_cut_for_the_terminal():
    notice = parse_line(ENGINE_LINE.replace("Triton", "x" * 400))
    assert notice is not None and len(notice.text) == MAX_NOTICE_CHARS
    assert notice.text.endswith("...")

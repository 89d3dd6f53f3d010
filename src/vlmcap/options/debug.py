"""Logging and debugging switches, the same on every command that runs a model.

``LogOptions`` say where log records go (``vlmcap.debug.logging`` acts on them);
``EngineDebugOptions`` turn on vLLM's own diagnostics in the engine (or server) processes;
``ProfileOptions`` wrap engine steps in the PyTorch profiler (``vlmcap.debug.profiler``);
``DebugOptions`` look at single requests and at memory (``vlmcap.debug.request_dump``,
``vlmcap.debug.memory``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from vlmcap.options.base import OptionGroup, flag

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogPreset = Literal["production", "development"]

#: Engine steps the profiler records, after as many warm-up steps.
DEFAULT_PROFILE_STEPS = 20
#: Items between two memory checkpoints of ``--memory-report``.
DEFAULT_MEMORY_EVERY = 100
#: Requests whose token logprobs ``--logprobs K`` keeps.
DEFAULT_LOGPROBS_FIRST = 16
#: The most top-K logprobs per token vLLM gives by default (its ``max_logprobs``).
MAX_LOGPROBS = 20


class LogOptions(OptionGroup):
    """Where log records go: the terminal, the run's log file, a rotating file, as JSON."""

    group = "logging"
    panel = "Logging"

    verbose: Annotated[bool, flag("--verbose", "-v")] = Field(
        default=False,
        description="Show vLLM's and PyTorch's output on the terminal too (default: it goes "
        "to the log file in OUTPUT_DIR/logs/, its warnings summarised once).",
    )
    log_level: Annotated[LogLevel | None, flag(cli_type=str)] = Field(
        default=None, description="vlmcap's log level (default: $VLMCAP_LOG_LEVEL, else INFO)."
    )
    vllm_log_level: Annotated[LogLevel | None, flag(cli_type=str)] = Field(
        default=None,
        description="vLLM's log level in every process (sets VLLM_LOGGING_LEVEL).",
    )
    log_file: Annotated[Path | None, flag(metavar="PATH")] = Field(
        default=None,
        description="Also write log records here (rotated as it grows; kept beside the run log).",
    )
    log_json: bool = Field(
        default=False,
        description="Log records as one JSON object per line (in --log-file, else on stderr).",
    )
    log_preset: LogPreset | None = Field(
        default=None,
        description="production: INFO, vLLM at WARNING, plain lines on stdout and the log "
        "file; development: DEBUG with file:line, everything on the terminal.",
    )

    @field_validator("log_level", "vllm_log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class EngineDebugOptions(OptionGroup):
    """vLLM's own diagnostics, in the engine (or server) processes."""

    group = "engine_debug"
    panel = "Debugging"
    engine_side = True

    trace_function: bool = Field(
        default=False,
        description="Log every Python function call in vLLM's workers (VLLM_TRACE_FUNCTION; "
        "very slow, for hangs and crashes only).",
    )
    cuda_launch_blocking: bool = Field(
        default=False,
        description="Run CUDA kernels synchronously, so an error names the kernel that "
        "failed (CUDA_LAUNCH_BLOCKING=1; slow).",
    )
    log_stats_interval: Annotated[float | None, flag(metavar="S")] = Field(
        default=None,
        gt=0,
        description="vLLM logs its throughput and KV-cache stats every S seconds.",
    )
    log_steps: bool = Field(
        default=False,
        description="Log every engine step: requests inside, finished, tokens, step time "
        "(offline engine).",
    )


class ProfileOptions(OptionGroup):
    """The PyTorch profiler around a few engine steps."""

    group = "profile"
    panel = "Debugging"

    profile: Annotated[Path | None, flag(metavar="DIR")] = Field(
        default=None,
        description="Profile engine steps with the PyTorch profiler; Chrome/Perfetto traces "
        "go to DIR and the top operators to the terminal.",
    )
    profile_steps: Annotated[int, flag(metavar="N")] = Field(
        default=DEFAULT_PROFILE_STEPS,
        ge=1,
        description="Engine steps (offline) or requests (server) to profile, after as many "
        "to warm up.",
    )


class DebugOptions(OptionGroup):
    """Single requests and memory, looked at closely."""

    group = "debug"
    panel = "Debugging"

    memory_report: bool = Field(
        default=False,
        description="Record process, engine and GPU memory at start, after load, every "
        "--memory-every items and at the end; warn about steady growth.",
    )
    memory_every: Annotated[int, flag(metavar="K")] = Field(
        default=DEFAULT_MEMORY_EVERY, ge=1, description="Items between memory checkpoints."
    )
    logprobs: Annotated[int | None, flag(metavar="K")] = Field(
        default=None,
        ge=1,
        le=MAX_LOGPROBS,
        description="Keep the top-K logprobs of every generated token for the first "
        "--logprobs-first requests (OUTPUT_DIR/debug/logprobs.jsonl).",
    )
    logprobs_first: Annotated[int, flag(metavar="N")] = Field(
        default=DEFAULT_LOGPROBS_FIRST, ge=1, description="Requests that keep logprobs."
    )
    debug_request: Annotated[list[str], flag(metavar="KEY")] = Field(
        default_factory=list,
        description="Dump this item's requests (prompt, media shapes, sampling, raw output) "
        "to OUTPUT_DIR/debug/ (repeatable).",
    )
    debug_first: Annotated[int | None, flag(metavar="N")] = Field(
        default=None, ge=1, description="Dump the first N requests the same way."
    )
    replay: Annotated[Path | None, flag(metavar="FILE")] = Field(
        default=None,
        description="Run the one request dumped in FILE again (offline or with --server-url) "
        "and compare its output with the dump.",
    )

"""``--replay FILE``: run one dumped request again on the backend a job would use, and compare.

    replay_job(path, config, client, output_dir, logs)   # vlmcap caption/qa --replay FILE
    run_replay(path, config, client)        -> 0 reproduced, 1 differs, 2 bad dump or setup
      load_dump(path)                       # checked before anything slow starts
      open_server(config, client)           # None: offline, plugin.build_llm(config)
      replay_dump(dump, backend)            # vlmcap.debug.replay
      report_replay(result, console)        # a table: dumped vs replayed

When the config names no model (no option, no config file), the dump's model and model path
are used, so ``vlmcap caption --replay FILE`` needs nothing else.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlmcap.debug import terminal
from vlmcap.debug.replay import DumpError, ReplayResult, RequestDump, load_dump, replay_dump

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.options import ClientOptions, LogOptions
    from vlmcap.pipeline.backend import OfflineBackend, ServerBackend

logger = logging.getLogger(__name__)

#: Exit statuses of ``run_replay``.
REPRODUCED, DIFFERS, BAD_DUMP = 0, 1, 2
#: Characters of an output text shown in the comparison table.
TEXT_SHOWN = 300
#: Tokens shown on each side of the first differing position.
TOKENS_AROUND = 5


def _short(text: str | None) -> str:
    if text is None:
        return "-"
    shown = repr(text)
    return shown if len(shown) <= TEXT_SHOWN else shown[: TEXT_SHOWN - 3] + "..."


def _tokens(ids: list[int], at: int | None) -> str:
    if not ids:
        return "-"
    if at is None:
        return f"{len(ids)} tokens"
    lo = max(0, at - TOKENS_AROUND)
    return f"{len(ids)} tokens; from {lo}: {ids[lo : at + TOKENS_AROUND]}"


def _yes_no(value: bool | None) -> str:
    return (
        "unknown" if value is None else ("[green]same[/green]" if value else "[red]differs[/red]")
    )


def report_replay(result: ReplayResult, console: Console) -> int:
    """Print ``result`` as a comparison table; the exit status (0 reproduced, 1 differs)."""
    expected = result.dump.expected
    got = result.completion
    diff = result.diff
    title = f"replay of {result.dump.path} ({result.dump.key}, {result.dump.data.get('stage')})"
    table = Table(title=escape(title), show_lines=True)
    table.add_column("")
    table.add_column(f"dumped ({escape(result.dump.transport)})")
    table.add_column(f"replayed ({escape(result.via)})")
    table.add_column("")
    want_ids = [int(t) for t in expected.get("token_ids") or ()]
    table.add_row(
        "text",
        escape(_short(expected.get("text"))),
        escape(_short(got.text)),
        _yes_no(diff.same_text),
    )
    at = diff.first_difference
    table.add_row(
        "token ids",
        _tokens(want_ids, at),
        _tokens(list(got.token_ids), at),
        _yes_no(diff.same_token_ids),
    )
    table.add_row("finish reason", str(expected.get("finish_reason")), str(got.finish_reason), "")
    table.add_row(
        "prompt tokens",
        str(expected.get("prompt_tokens")),
        str(got.prompt_tokens),
        _yes_no(diff.same_prompt_tokens),
    )
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    if result.reproduced:
        console.print("[green]reproduced[/green]: the same output as the dump")
        return REPRODUCED
    where = f" (first differing token at position {at})" if at is not None else ""
    console.print(f"[red]differs[/red] from the dump{where}")
    return DIFFERS


def _adopt_model(dump: RequestDump, config: VLMConfig) -> None:
    """The dump's model (and path) when ``config`` names none."""
    model, path = dump.data.get("model"), dump.data.get("model_path")
    if "model" in config.model_fields_set or not isinstance(model, str):
        return
    config.model = model
    if (
        "model_path" not in config.model_fields_set
        and isinstance(path, str)
        and Path(path).exists()
    ):
        config.model_path = path


def run_replay(
    path: Path, config: VLMConfig, client: ClientOptions, console: Console | None = None
) -> int:
    """Replay the request dumped in ``path`` offline (vLLM here) or through the server
    ``client`` names, print the comparison; 0 reproduced, 1 differs, 2 bad dump or setup."""
    from vlmcap.cli.job import start_engine
    from vlmcap.client.connect import ServerError, open_server
    from vlmcap.pipeline.backend import OfflineBackend, ServerBackend
    from vlmcap.plugins.registry import UnknownModelError, get_plugin
    from vlmcap.runtime import shutdown_llm

    out = console or terminal.console()
    err = terminal.console(stderr=True) if console is None else console
    try:
        dump = load_dump(path)
    except DumpError as exc:
        err.print(f"[red]error:[/red] bad dump file {escape(str(exc))}")
        return BAD_DUMP
    _adopt_model(dump, config)
    llm = None
    try:
        try:
            server = open_server(config, client)
            plugin = get_plugin(config.model, config.model_path)
        except (UnknownModelError, ServerError, ValueError) as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            return BAD_DUMP
        backend: OfflineBackend | ServerBackend
        if server is not None:
            backend = ServerBackend(server, plugin, config)
        else:
            llm = start_engine(plugin, config)
            backend = OfflineBackend(llm, plugin, config)
        try:
            result = replay_dump(dump, backend)
        except (ServerError, ValueError, TypeError) as exc:  # the dump's request is refused
            err.print(f"[red]error:[/red] cannot replay {escape(str(path))}: {escape(str(exc))}")
            return BAD_DUMP
        return report_replay(result, out)
    finally:
        if llm is not None:
            shutdown_llm(llm)


def replay_job(
    path: Path, config: VLMConfig, client: ClientOptions, output_dir: Path, logs: LogOptions
) -> int:
    """``vlmcap caption/qa --replay FILE``: ``run_replay`` with the job's logging (its run log
    in OUTPUT_DIR/logs, named ``replay-<time>.log``)."""
    from vlmcap.debug.logging import LOGS_DIR, job_logging

    with job_logging(logs, output_dir / LOGS_DIR, "replay"):
        return run_replay(path, config, client)

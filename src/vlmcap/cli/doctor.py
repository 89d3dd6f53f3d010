"""``vlmcap doctor``: check the environment (versions, vLLM's platform, GPUs, memory, disk,
models, CPU workarounds, optionally a server) and say how to fix each problem.

Exit status: 0 nothing failed (warnings allowed), 1 some check failed.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlmcap.options.run import DEFAULT_OUTPUT_DIR

if TYPE_CHECKING:
    from vlmcap.doctor import Report

#: How each status looks in the table.
STATUS_STYLE = {
    "ok": "[green]ok[/green]",
    "warn": "[yellow]warn[/yellow]",
    "fail": "[red]FAIL[/red]",
}
#: Exit status when a check failed.
UNHEALTHY_EXIT = 1


def print_report(report: Report, console: Console) -> None:
    table = Table()
    table.add_column("status", no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("detail", overflow="fold", ratio=3)
    table.add_column("fix", overflow="fold", ratio=2)
    section = None
    for check in report.checks:
        if check.section != section:
            if section is not None:
                table.add_section()
            section = check.section
        table.add_row(
            STATUS_STYLE[check.status.value],
            escape(check.name),
            escape(check.detail),
            escape(check.fix or ""),
        )
    console.print(table)
    counts = report.to_dict()["counts"]
    summary = f"{counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failed"
    if report.healthy:
        console.print(f"[green]healthy[/green]: {summary}")
    else:
        console.print(f"[red]not healthy[/red]: {summary}; see the fix column")


def doctor(
    server_url: str | None = typer.Option(
        None,
        "--server-url",
        metavar="URL",
        help="Also check a vLLM server: /health, its vLLM version and the models it serves.",
    ),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        help="The server's API key for /v1/models (default: $OPENAI_API_KEY).",
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        metavar="VARIANT",
        help="Check this plugin variant's model strictly (`vlmcap models` lists variants).",
    ),
    model_path: str | None = typer.Option(
        None,
        "--model-path",
        metavar="PATH",
        help="Check this model folder (or Hugging Face id): it must exist, with config.json "
        "and weights.",
    ),
    output_dir: Path = typer.Option(
        DEFAULT_OUTPUT_DIR,
        "--output-dir",
        "-o",
        help="Where outputs will go: its free disk space is checked (it need not exist yet).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report as JSON on stdout instead of a table."
    ),
) -> None:
    """Check that this environment can run vlmcap, and say how to fix what cannot.

    Reports the versions of vlmcap, vLLM, torch, transformers, PyAV and Pillow; the platform
    vLLM detects; CPU, free RAM and disk; GPUs, driver and CUDA with their free memory; whether
    each registered model is available locally (a folder or the Hugging Face cache; nothing is
    downloaded); the CPU-install workarounds in place; and, with --server-url, whether a server
    answers and what it serves. Every warning and failure comes with a suggested fix.

    Exit status: 0 nothing failed (warnings allowed), 1 some check failed.
    """
    from vlmcap.doctor import DoctorOptions, run_checks

    options = DoctorOptions(
        output_dir=output_dir,
        model=model,
        model_path=model_path,
        server_url=server_url,
        api_key=api_key,
    )
    # Libraries imported by the checks may print; with --json, stdout is the report alone.
    redirect = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    with redirect:
        report = run_checks(options)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, Console())
    if not report.healthy:
        raise typer.Exit(UNHEALTHY_EXIT)

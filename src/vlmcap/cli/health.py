"""``vlmcap health`` and ``vlmcap top``: a running vLLM server's health, once or live.

Both read the server's Prometheus ``/metrics`` and its ``/health`` (``vlmcap.monitor``). Exit
status of ``health``: 0 the server answered and ``/health`` is OK, 1 it is unreachable or
unhealthy, 2 bad usage. ``top`` refreshes until Ctrl-C (exit 0) or ``--iterations``.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vlmcap.cli.errors import usage_error

if TYPE_CHECKING:
    from vlmcap.monitor import HealthSnapshot, ServerSource

#: Seconds between two refreshes of ``vlmcap top`` unless --interval says otherwise.
TOP_INTERVAL_S = 2.0
#: Seconds one request to the server may take unless --timeout says otherwise.
REQUEST_TIMEOUT_S = 2.0

_SERVER_URL = typer.Option(
    None,
    "--server-url",
    metavar="URL",
    help="The vLLM server (http://host:port); /metrics and /health are read there.",
)
_METRICS_URL = typer.Option(
    None,
    "--metrics-url",
    metavar="URL",
    help="Where the Prometheus metrics are, when not at --server-url/metrics (a proxy); "
    "/health is asked on the same host.",
)
_URL_FILE = typer.Option(
    None,
    "--server-url-file",
    metavar="PATH",
    help="Read the server URL from the file `vlmcap serve --url-file` wrote.",
)
_API_KEY = typer.Option(
    None, "--api-key", help="Bearer token, for a proxy that guards /metrics (vLLM does not)."
)
_TIMEOUT = typer.Option(
    REQUEST_TIMEOUT_S, "--timeout", min=0.1, help="Seconds each request to the server may take."
)


def _source(
    server_url: str | None,
    metrics_url: str | None,
    url_file: Path | None,
    api_key: str | None,
    timeout: float,
) -> ServerSource:
    from vlmcap.monitor import ServerSource
    from vlmcap.server.url_file import read_url_file

    if url_file is not None and server_url is None:
        server_url = read_url_file(url_file)
        if server_url is None:
            usage_error(f"no server URL in {url_file} (is `vlmcap serve` running?)")
    if server_url is None and metrics_url is None:
        usage_error("give --server-url URL (or --metrics-url URL, --server-url-file PATH)")
    return ServerSource(server_url, metrics_url=metrics_url, api_key=api_key, timeout_s=timeout)


def snapshot_table(snapshot: HealthSnapshot, caption: str | None = None) -> Table:
    """The snapshot as a three-column table: what, value, why a value is missing."""
    taken = datetime.fromtimestamp(snapshot.timestamp).strftime("%H:%M:%S")
    table = Table(
        "", "value", "note", title=f"{escape(snapshot.source)} at {taken}", caption=caption
    )
    for label, value, note in snapshot.rows():
        shown = f"[red]{value}[/red]" if value == "FAILING" else escape(value)
        table.add_row(label, shown, f"[dim]{escape(note)}[/dim]" if note else "")
    for key, note in snapshot.notes.items():
        if key not in snapshot.field_names():
            table.add_row(key, "", f"[dim]{escape(note)}[/dim]")
    return table


def health(
    server_url: str | None = _SERVER_URL,
    metrics_url: str | None = _METRICS_URL,
    url_file: Path | None = _URL_FILE,
    api_key: str | None = _API_KEY,
    json_output: bool = typer.Option(
        False, "--json", help="Print the snapshot as one JSON object instead of a table."
    ),
    timeout: float = _TIMEOUT,
) -> None:
    """Print a running server's health: requests, KV cache, latencies, memory, GPUs.

    A figure this vLLM does not expose shows as n/a, with the reason beside it.

    Exit status: 0 healthy, 1 unreachable or /health failing, 2 bad usage.

    Example: vlmcap health --server-url http://127.0.0.1:8000 --json
    """
    from vlmcap.monitor import ServerUnreachable

    err = Console(stderr=True)
    with _source(server_url, metrics_url, url_file, api_key, timeout) as source:
        try:
            snapshot = source.snapshot(strict=True)
        except ServerUnreachable as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None
    if json_output:
        typer.echo(json.dumps(snapshot.to_dict(), indent=2))
    else:
        Console().print(snapshot_table(snapshot))
    if snapshot.healthy is not True:
        err.print(f"[red]unhealthy:[/red] {escape(snapshot.notes.get('healthy', ''))}")
        raise typer.Exit(1)


def top(
    server_url: str | None = _SERVER_URL,
    metrics_url: str | None = _METRICS_URL,
    url_file: Path | None = _URL_FILE,
    api_key: str | None = _API_KEY,
    interval: float = typer.Option(
        TOP_INTERVAL_S, "--interval", min=0.1, help="Seconds between two refreshes."
    ),
    iterations: int | None = typer.Option(
        None, "--iterations", min=1, help="Stop after this many refreshes (default: until Ctrl-C)."
    ),
    timeout: float = _TIMEOUT,
) -> None:
    """Watch a running server live: the health table, refreshed every --interval seconds.

    Rates (items/s, output tokens/s) are between two refreshes.

    An unreachable server shows as n/a and is asked again at the next refresh.

    Ctrl-C quits (exit status 0). Example: vlmcap top --server-url http://127.0.0.1:8000
    """
    from rich.live import Live

    console = Console()
    shown = 0
    with _source(server_url, metrics_url, url_file, api_key, timeout) as source:
        try:
            with Live(console=console, auto_refresh=False) as live:
                while iterations is None or shown < iterations:
                    if shown:
                        time.sleep(interval)
                    caption = f"every {interval:g} s; Ctrl-C to quit"
                    live.update(snapshot_table(source.snapshot(), caption), refresh=True)
                    shown += 1
        except KeyboardInterrupt:
            console.print("stopped")

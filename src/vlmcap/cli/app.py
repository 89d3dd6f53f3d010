"""``vlmcap``: one Typer app; each subcommand lives in its own module."""

from __future__ import annotations

import typer

from vlmcap import __version__
from vlmcap.cli import caption, doctor, health, models, qa, qa_report, serve
from vlmcap.debug.logging import setup_logging

app = typer.Typer(
    name="vlmcap",
    help="Caption and visual-QA folders of videos and images with VLMs served by vLLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("models")(models.models)
app.command("caption")(caption.caption)
app.command("qa")(qa.qa)
app.command("qa-report")(qa_report.qa_report)
app.command("serve")(serve.serve)
app.command("doctor")(doctor.doctor)
app.command("health")(health.health)
app.command("top")(health.top)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vlmcap {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    log_level: str = typer.Option(
        None, "--log-level", help="vlmcap log level (default: $VLMCAP_LOG_LEVEL or INFO)."
    ),
    vllm_log_level: str = typer.Option(
        None, "--vllm-log-level", help="vLLM's log level (sets VLLM_LOGGING_LEVEL if unset)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    setup_logging(log_level, vllm_log_level)


def main() -> None:
    app()

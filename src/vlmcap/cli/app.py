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
app.command("download")(models.download)
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
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Log levels and files are options of each command (``--log-level``, ``-v``...)."""
    setup_logging()


def main() -> None:
    app()

"""How commands report bad usage: one red line on stderr and exit status 2."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.markup import escape

from vlmcap.debug import terminal

_err = terminal.console(stderr=True)


def usage_error(message: str) -> NoReturn:
    _err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)

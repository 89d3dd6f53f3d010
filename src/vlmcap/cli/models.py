"""``vlmcap models``: list the model variants the registry knows."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from vlmcap.plugins.registry import available, get_plugin_class


def models() -> None:
    """List model variants (built-in and installed plugins) with their reference weights."""
    table = Table("variant", "model id", "prompts", "description")
    for name in available():
        try:
            cls = get_plugin_class(name)
        except (ImportError, AttributeError) as exc:
            table.add_row(name, "-", "-", f"[red]cannot load: {exc}[/red]")
            continue
        table.add_row(name, cls.model_id, ", ".join(sorted(cls.prompts)), cls.description)
    Console().print(table)

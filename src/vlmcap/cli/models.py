"""``vlmcap models`` (the catalog, the other registered plugins, or what is on disk) and
``vlmcap download`` (fetch a catalog model, or any hub id, from the Hugging Face hub).

Listing stays fast: plugin classes are imported for their class attributes only (never torch
or vLLM), and ``--local`` looks at files without any network call.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from vlmcap.cli.errors import usage_error
from vlmcap.debug import terminal
from vlmcap.hub.catalog import CATALOG, find
from vlmcap.plugins.capabilities import Capabilities
from vlmcap.plugins.registry import UnknownModelError, available, get_plugin_class

if TYPE_CHECKING:
    from vlmcap.hub.local import LocalCopy
    from vlmcap.plugins.base import VLMPlugin

#: Shown where a value is unknown or does not apply.
NONE = "-"
#: Inputs of a plugin that asks vLLM what its model takes (the generic plugin).
ASKED_AT_RUN_TIME = "asked of vLLM"
#: What loading a plugin class may raise (third-party code included), besides an unknown name.
PLUGIN_ERRORS = (ImportError, AttributeError, TypeError, ValueError, OSError, RuntimeError)
#: Exit status of a failed download (bad usage exits 2, see ``cli.errors``).
DOWNLOAD_FAILED = 1


def plugin_class(name: str) -> tuple[type[VLMPlugin] | None, str]:
    """The registered plugin class called ``name`` and a note: empty when it loads, else why
    not (not installed, or it fails to import)."""
    try:
        return get_plugin_class(name), ""
    except UnknownModelError:
        return None, "not installed"
    except PLUGIN_ERRORS as exc:
        return None, f"cannot load: {type(exc).__name__}: {exc}"


def inputs_of(cls: type[VLMPlugin] | None) -> str:
    """The inputs a plugin declares (``capabilities.inputs``), or ``-`` when it declares none."""
    capabilities = getattr(cls, "capabilities", None)
    if isinstance(capabilities, Capabilities):
        return ", ".join(capabilities.inputs)
    if cls is not None and isinstance(capabilities, functools.cached_property):
        return ASKED_AT_RUN_TIME  # the generic plugin: what vLLM says the model takes
    return NONE


def _table(*columns: str) -> Table:
    """Cells wrap (long ids fold) except the first column's names, kept whole and searchable."""
    table = Table()
    for index, column in enumerate(columns):
        table.add_column(column, overflow="fold", no_wrap=index == 0)
    return table


def catalog_table() -> Table:
    table = _table("variant", "plugin", "hub id", "revision", "inputs", "params", "licence")
    table.title = "Known models (vlmcap download VARIANT)"
    for model in CATALOG:
        cls, problem = plugin_class(model.plugin)
        plugin = escape(model.plugin) + (f" [dim]({escape(problem)})[/dim]" if problem else "")
        licence = model.licence + (" (gated)" if model.gated else "")
        if model.note:
            licence += f"\n[dim]{escape(model.note)}[/dim]"
        table.add_row(
            model.variant,
            plugin,
            model.model_id,
            model.revision,
            inputs_of(cls),
            model.params,
            licence,
        )
    return table


def other_plugins() -> list[str]:
    """Registered plugin variants that are not catalog entries."""
    catalogued = {m.variant for m in CATALOG}
    return [name for name in available() if name not in catalogued]


def plugins_table() -> Table | None:
    """Registered plugin variants that are not catalog entries (built-in tiny models, the
    generic plugin, third-party entry points); None when there are none."""
    names = other_plugins()
    if not names:
        return None
    table = _table("variant", "model id", "inputs", "description")
    table.title = "Other registered plugins (--model VARIANT)"
    for name in names:
        cls, problem = plugin_class(name)
        if cls is None:
            table.add_row(name, NONE, NONE, f"[red]{escape(problem)}[/red]")
            continue
        table.add_row(name, cls.model_id or NONE, inputs_of(cls), escape(cls.description))
    return table


def local_copies() -> list[tuple[str, LocalCopy]]:
    """(variant, copy) of every catalog model on disk, then the other ``org/name`` folders of
    ``$VLMCAP_MODEL_DIR`` (variant ``-``)."""
    from vlmcap.hub.local import find_local, local_copy, model_dir_ids

    found = [(m.variant, copy) for m in CATALOG if (copy := local_copy(m)) is not None]
    catalogued = {m.model_id for m in CATALOG}
    for repo_id in model_dir_ids():
        if repo_id not in catalogued and (copy := find_local(repo_id)) is not None:
            found.append((NONE, copy))
    return found


def _state(copy: LocalCopy) -> str:
    if copy.partial:
        return "[yellow]partial (run vlmcap download again)[/yellow]"
    if not copy.weight_files:
        return "[yellow]no weights[/yellow]"
    return "complete"


def local_table(copies: list[tuple[str, LocalCopy]]) -> Table:
    from vlmcap.hub.local import format_size

    table = _table("variant", "hub id", "where", "path", "size", "state")
    table.title = "Models on disk"
    for variant, copy in copies:
        table.add_row(
            variant,
            copy.repo_id,
            copy.where,
            escape(str(copy.path)),
            format_size(copy.size_bytes),
            _state(copy),
        )
    return table


def models(
    local: bool = typer.Option(
        False,
        "--local",
        help="Only the models on disk ($VLMCAP_MODEL_DIR, the Hugging Face cache), with their "
        "path and size; no network.",
    ),
) -> None:
    """List the known models (hub id, revision, inputs, licence) and the registered plugins.

    A known model runs with its plugin: `--model PLUGIN`, plus `--model-path FOLDER` where the
    plugin's own weights are another checkpoint. `vlmcap download VARIANT` fetches one.
    """
    console = terminal.console()
    if local:
        copies = local_copies()
        if not copies:
            console.print(
                "No known model on disk ($VLMCAP_MODEL_DIR, the Hugging Face cache); "
                "`vlmcap download VARIANT` fetches one."
            )
            return
        console.print(local_table(copies))
        return
    console.print(catalog_table())
    if (others := plugins_table()) is not None:
        console.print(others)


def _run_hint(name: str, path: Path) -> str:
    try:
        plugin = find(name).plugin
    except ValueError:
        return f"run it with --model-path {path} and the --model plugin of its family"
    return f"run it with --model {plugin} --model-path {path}"


def download(
    variant: str = typer.Argument(
        ...,
        metavar="VARIANT",
        help="A variant of `vlmcap models`, its hub id, or any Hugging Face id (org/name).",
    ),
    revision: str | None = typer.Option(
        None,
        "--revision",
        metavar="REV",
        help="Branch, tag or commit to fetch (default: the catalog's, else main).",
    ),
    directory: Path | None = typer.Option(
        None,
        "--dir",
        metavar="DIR",
        help="Download into this folder (default: $VLMCAP_MODEL_DIR/<org>/<name> when set, "
        "else the Hugging Face cache).",
    ),
) -> None:
    """Download a model's weights from the Hugging Face hub; run it again to resume.

    Gated models need their licence accepted on the model page and a token (HF_TOKEN, or
    `huggingface-cli login`). Exit status: 0 downloaded (or already complete), 1 the download
    failed (the message says why and what to do), 2 bad usage.
    """
    from vlmcap.hub.download import DownloadError
    from vlmcap.hub.download import download as fetch

    try:
        path = fetch(variant, revision, directory)
    except ValueError as exc:
        usage_error(str(exc))
    except DownloadError as exc:
        terminal.console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(DOWNLOAD_FAILED) from None
    console = terminal.console()
    console.print(f"downloaded {escape(variant)} to {escape(str(path))}")
    console.print(escape(_run_hint(variant, path)))

"""Typer parameters derived from a command's option groups.

Like vLLM's ``EngineArgs.add_cli_args``, nothing here names an option: each field of each group
becomes one parameter, with its flags, help, panel and default from the schema. The defaults
Typer shows are the schema's own; whether the user gave an option comes from the command
context's parameter source (the context is passed in as ``ctx``), so an option left out never
hides a config-file value::

    @with_options(CAPTION)
    def caption(**given: Any) -> None:
        parsed = CAPTION.resolve(command_line_values(CAPTION, given))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import typer

from vlmcap.options.base import OptionSpec
from vlmcap.options.commands import CommandSpec

F = TypeVar("F", bound=Callable[..., Any])

#: Name of the parameter that receives the command's context (not an option).
CONTEXT_PARAMETER = "ctx"
#: Where a value comes from when the user gave it (names of click's ``ParameterSource``, which
#: Typer may vendor).
GIVEN_SOURCES = frozenset({"COMMANDLINE", "ENVIRONMENT", "PROMPT"})


def help_default(spec: OptionSpec, default: Any) -> tuple[Any, bool | str]:
    """(the default Typer is given, its ``show_default``) for one option.

    A default that is not a plain value (``None`` meaning "the plugin's", an empty list) is
    given to Typer as ``None`` and described by ``Flag.default_text``, if at all.
    """
    if spec.flag.default_text is not None:
        return None, spec.flag.default_text
    if default is None or default in ([], {}) or spec.flag.parse is not None:
        return None, False
    return default, True


def typer_parameter(spec: OptionSpec, command_default: Any = None) -> inspect.Parameter:
    """The ``inspect.Parameter`` (with its ``typer.Option``/``Argument``) of one option, whose
    default is ``command_default`` (the command's default of it)."""
    default, show = help_default(spec, command_default)
    info: Any
    if spec.flag.argument:
        info = typer.Argument(
            None,
            help=spec.help,
            metavar=spec.flag.metavar,
            rich_help_panel=spec.panel,
            show_default=False,
        )
    else:
        off = spec.off_flag
        decls = (f"{spec.main_flag}/{off}", *spec.names[1:]) if off else spec.names
        info = typer.Option(
            default,
            *decls,
            help=spec.help,
            metavar=spec.flag.metavar,
            rich_help_panel=spec.panel,
            show_default=show,
        )
    return inspect.Parameter(
        spec.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=spec.cli_type
    )


def typer_signature(command: CommandSpec) -> inspect.Signature:
    """The signature Typer reads for ``command``: one keyword parameter per option.

    Typer shows panels in the order their first option comes, so options are ordered by
    their panel (in the command's group order), an option moved to another group's panel
    after that group's own.
    """
    panels = list(dict.fromkeys(group.panel for group in command.groups))
    panels += [p for p in dict.fromkeys(s.panel for s in command.options()) if p not in panels]
    specs = sorted(
        command.options(),
        key=lambda s: (panels.index(s.panel), s.flag.panel is not None),
    )
    context = inspect.Parameter(
        CONTEXT_PARAMETER, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context
    )
    params = [context, *(typer_parameter(spec, command.default(spec)) for spec in specs)]
    return inspect.Signature(params, return_annotation=None)


def with_options(command: CommandSpec) -> Callable[[F], F]:
    """Decorator: give a ``def f(**given)`` command the parameters of ``command``."""

    def apply(func: F) -> F:
        cast(Any, func).__signature__ = typer_signature(command)
        return func

    return apply


def command_line_values(command: CommandSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The options the user gave (the context in ``values["ctx"]`` says which), each parsed
    into its field's type.

    Without a context (called from Python), every value that is not ``None`` or empty counts
    as given.
    """
    ctx = values.get(CONTEXT_PARAMETER)
    given: dict[str, Any] = {}
    for name, value in values.items():
        if name == CONTEXT_PARAMETER:
            continue
        if ctx is not None:
            source = ctx.get_parameter_source(name)
            if source is None or source.name not in GIVEN_SOURCES:
                continue
        elif value is None or value in ([], ()):
            continue
        spec = command.option(name)
        parsed = list(value) if spec.is_list and isinstance(value, tuple) else value
        given[name] = spec.flag.parse(parsed) if spec.flag.parse is not None else parsed
    return given

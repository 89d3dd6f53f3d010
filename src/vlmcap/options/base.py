"""Building blocks of the option schema: option groups, flag spellings, readable errors.

An option is a field of an ``OptionGroup`` (a pydantic model): the field gives its name, type,
default, validation rules and help (``description``); an ``Annotated`` ``Flag`` gives its
command-line spelling where that is not ``--field-name``. The group gives its help panel and
whether it configures the engine (those options are ignored when captioning through a server).
Commands pick whole groups (``vlmcap.options.commands``), and everything else (Typer
parameters, config-file keys, the options ignored with a server) is derived from them.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message says which field and why."""


@dataclass(frozen=True)
class Flag:
    """How an option is given on the command line, where that differs from ``--field-name``.

    ``names``: the flags (first one long, the one shown in messages; more are aliases or short
    forms). ``off``: a boolean's negative flag (default ``--no-NAME``). ``default_text``: what
    help says about a default that is not a plain value (``None`` meaning "the plugin's").
    ``argument``: a positional (variadic) argument instead of an option. ``parse`` turns the
    command-line value (of type ``cli_type``) into the field's value.
    """

    names: tuple[str, ...] = ()
    off: str | None = None
    default_text: str | None = None
    metavar: str | None = None
    panel: str | None = None
    argument: bool = False
    parse: Callable[[Any], Any] | None = None
    cli_type: Any = None


def flag(
    *names: str,
    off: str | None = None,
    default_text: str | None = None,
    metavar: str | None = None,
    panel: str | None = None,
    argument: bool = False,
    parse: Callable[[Any], Any] | None = None,
    cli_type: Any = None,
) -> Flag:
    """``Annotated[float, flag("--fps")]``: the command-line spelling of one option."""
    return Flag(names, off, default_text, metavar, panel, argument, parse, cli_type)


@dataclass(frozen=True)
class Internal:
    """Marks a field that code sets, not users: no flag and no config-file key."""


INTERNAL = Internal()
_NO_FLAG = Flag()


@dataclass(frozen=True)
class OptionSpec:
    """One option: its field in a group, with the command-line metadata resolved."""

    name: str
    group: type[OptionGroup]
    info: FieldInfo
    flag: Flag

    @property
    def help(self) -> str:
        return self.info.description or ""

    @property
    def default(self) -> Any:
        """The schema default (a ``default_factory`` is called)."""
        value = self.info.get_default(call_default_factory=True)
        return None if value is PydanticUndefined else value

    @property
    def panel(self) -> str:
        return self.flag.panel or self.group.panel

    @property
    def names(self) -> tuple[str, ...]:
        """Every flag of the option, the main one first."""
        return self.flag.names or ("--" + self.name.replace("_", "-"),)

    @property
    def main_flag(self) -> str:
        return self.names[0]

    @property
    def off_flag(self) -> str | None:
        """The negative flag of a boolean option (None for other types)."""
        if self.cli_type is not bool:
            return None
        return self.flag.off or "--no-" + self.main_flag.removeprefix("--")

    @property
    def all_flags(self) -> tuple[str, ...]:
        off = self.off_flag
        return (*self.names, off) if off is not None else self.names

    @property
    def cli_type(self) -> Any:
        """The type the command line parses: the field's, without ``| None``."""
        if self.flag.cli_type is not None:
            return self.flag.cli_type
        return strip_optional(self.info.annotation)

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.cli_type) is list


def strip_optional(annotation: Any) -> Any:
    """``int | None`` -> ``int``; other annotations unchanged."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


class OptionGroup(BaseModel):
    """A group of options: one help panel, one object that code receives (or a part of one).

    ``group``: the group's name (what commands pick); ``panel``: its ``--help`` panel;
    ``engine_side``: its options configure the engine, so they are ignored (with a warning)
    when captioning through a server; ``in_config_file``: its options may be config-file keys.
    """

    model_config = ConfigDict(extra="forbid")

    group: ClassVar[str] = ""
    panel: ClassVar[str] = "Options"
    engine_side: ClassVar[bool] = False
    in_config_file: ClassVar[bool] = True

    @classmethod
    def build(cls, **values: Any) -> Self:
        """Validate ``values`` and raise ``ConfigError`` with readable messages on failure."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, sorted(cls.model_fields))) from None

    @classmethod
    def options(cls) -> tuple[OptionSpec, ...]:
        """The user-facing options of this group, in declaration order."""
        return _options_of(cls)


@cache
def _options_of(group: type[OptionGroup]) -> tuple[OptionSpec, ...]:
    specs = []
    for name, info in group.model_fields.items():
        if any(isinstance(m, Internal) for m in info.metadata):
            continue
        meta = next((m for m in info.metadata if isinstance(m, Flag)), _NO_FLAG)
        specs.append(OptionSpec(name, group, info, meta))
    return tuple(specs)


def format_validation_error(exc: ValidationError, known: Iterable[str] | None = None) -> str:
    """One line per problem: ``field: rule (got value)``; unknown fields list the ``known``."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown option"
            if known is not None:
                msg += f"; known options: {', '.join(known)}"
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")  # our own message names the value already
        elif "input" in err and err["type"] != "missing":
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"{field}: {msg}" if field else msg)
    return "invalid configuration:\n  " + "\n  ".join(lines)

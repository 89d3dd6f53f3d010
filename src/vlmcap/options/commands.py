"""Which option groups each subcommand takes, and how a command's values are put together.

A command is a name and a tuple of groups (``CAPTION``, ``SERVE``; a new subcommand picks its
own and is listed in ``COMMANDS``). From that follow its flags (``vlmcap.options.cli``), the
keys its config file accepts, and ``resolve``: schema defaults < config file < command line. A
config-file key that belongs to another command only (``port`` in a file shared by a server job
and its clients) is ignored with a warning; a key no command knows is an error that lists the
known ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from vlmcap.options.base import ConfigError, OptionGroup, OptionSpec
from vlmcap.options.debug import DebugOptions, EngineDebugOptions, LogOptions, ProfileOptions
from vlmcap.options.files import ConfigFileOptions, load_config_file
from vlmcap.options.media import MediaOptions
from vlmcap.options.monitor import HealthLogOptions, MonitorOptions
from vlmcap.options.network import ClientOptions, ServerOptions
from vlmcap.options.qa import DEFAULT_QA_MAX_OUTPUT_TOKENS, QAOptions
from vlmcap.options.ray import RayOptions
from vlmcap.options.run import InputOptions, OutputOptions, RunOptions
from vlmcap.options.vlm import (
    EngineOptions,
    LoopOptions,
    ModelOptions,
    PromptFileOptions,
    PromptOptions,
    SamplingOptions,
    Stage2Options,
)

logger = logging.getLogger(__name__)

G = TypeVar("G", bound=OptionGroup)


@dataclass(frozen=True)
class CommandSpec:
    """A subcommand's options: the groups it takes, in ``--help`` order.

    ``exclusive``: sets of options of which one may be given; one given on the command line
    drops the others' config-file values (the command line wins). ``defaults``: this command's
    own default for an option of a shared group (``vlmcap qa`` answers in fewer tokens than a
    caption takes), shown in its help and used when the option is not given.
    """

    name: str
    groups: tuple[type[OptionGroup], ...]
    exclusive: tuple[frozenset[str], ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {"ctx": "the command context"}  # see vlmcap.options.cli
        for spec in self.options():
            if spec.name in seen:
                raise TypeError(
                    f"vlmcap {self.name}: option {spec.name} is in groups {seen[spec.name]} "
                    f"and {spec.group.group}"
                )
            seen[spec.name] = spec.group.group
        unknown = sorted(set(self.defaults) - set(seen))
        if unknown:
            raise TypeError(f"vlmcap {self.name}: defaults for options it lacks: {unknown}")

    def default(self, spec: OptionSpec) -> Any:
        """The default of ``spec`` in this command (its own, else the schema's)."""
        return self.defaults.get(spec.name, spec.default)

    def options(self) -> tuple[OptionSpec, ...]:
        return tuple(spec for group in self.groups for spec in group.options())

    def option(self, name: str) -> OptionSpec:
        for spec in self.options():
            if spec.name == name:
                return spec
        raise KeyError(f"vlmcap {self.name} has no option {name}")

    def file_keys(self) -> tuple[str, ...]:
        """The keys this command's config file accepts."""
        return tuple(s.name for s in self.options() if s.group.in_config_file)

    def engine_side(self) -> frozenset[str]:
        """Options of the engine-side groups: those a run through a server ignores."""
        return frozenset(s.name for s in self.options() if s.group.engine_side)

    def resolve(self, command_line: Mapping[str, Any]) -> ParsedOptions:
        """Merge the config file named by ``config_file`` (if any) under ``command_line``.

        ``command_line`` holds only the options the user gave (``vlmcap.options.cli`` drops
        the rest), already parsed (``Flag.parse``). Values are not validated here: ``build``
        validates each group, so errors name the field.
        """
        given = dict(command_line)
        unknown = sorted(set(given) - {s.name for s in self.options()})
        if unknown:
            raise TypeError(f"vlmcap {self.name}: not its options: {', '.join(unknown)}")
        config_file = given.pop("config_file", None)
        values = self._file_values(Path(config_file)) if config_file is not None else {}
        for names in self.exclusive:
            if names & set(given):
                for name in names - set(given):
                    values.pop(name, None)
        for name, value in given.items():
            old = values.get(name)
            if isinstance(old, dict) and isinstance(value, dict):  # e.g. engine_args: merged
                values[name] = {**old, **value}
            else:
                values[name] = value
        for names in self.exclusive:
            present = [s.main_flag for s in self.options() if s.name in names & set(values)]
            if len(present) > 1:
                raise ConfigError(f"give {' or '.join(present)}, not both")
        return ParsedOptions(
            self,
            values,
            from_file=frozenset(values) - set(given),
            from_command_line=frozenset(given),
        )

    def _file_values(self, path: Path) -> dict[str, Any]:
        values = load_config_file(path)
        keys = set(self.file_keys())
        foreign = {
            key: other.name
            for other in COMMANDS.values()
            if other is not self
            for key in other.file_keys()
            if key in values and key not in keys
        }
        unknown = sorted(set(values) - keys - set(foreign))
        if unknown:
            raise ConfigError(
                f"config file {path}: {', '.join(unknown)}: unknown option"
                f"{'s' if len(unknown) > 1 else ''}; known options of vlmcap {self.name}: "
                f"{', '.join(sorted(keys))}"
            )
        if foreign:
            logger.warning(
                "config file %s: ignored by vlmcap %s: %s",
                path,
                self.name,
                ", ".join(f"{key} (vlmcap {cmd})" for key, cmd in sorted(foreign.items())),
            )
        return {k: v for k, v in values.items() if k in keys}


@dataclass
class ParsedOptions:
    """A command's merged values (only those the user gave, in a file or as flags)."""

    command: CommandSpec
    values: dict[str, Any]
    from_file: frozenset[str] = field(default_factory=frozenset)
    from_command_line: frozenset[str] = field(default_factory=frozenset)

    def get(self, name: str) -> Any:
        """The given value of ``name``, else the schema default."""
        if name in self.values:
            return self.values[name]
        return self.command.default(self.command.option(name))

    def build(self, target: type[G], **extra: Any) -> G:
        """``target`` (a group, or a model made of groups such as ``VLMConfig``) from the
        values given for its fields, plus ``extra``; raises ``ConfigError``.

        Only given values are passed, so ``model_fields_set`` says what the user chose.
        """
        fields = target.model_fields
        values = {**self.command.defaults, **self.values}
        return target.build(**{k: v for k, v in values.items() if k in fields}, **extra)


def groups_named(names: Iterable[str]) -> tuple[type[OptionGroup], ...]:
    """The groups called ``names`` (for commands declared by name)."""
    by_name = {g.group: g for g in ALL_GROUPS}
    return tuple(by_name[n] for n in names)


#: Every option group, in ``--help`` order.
ALL_GROUPS: tuple[type[OptionGroup], ...] = (
    InputOptions,
    QAOptions,
    OutputOptions,
    RunOptions,
    ConfigFileOptions,
    ModelOptions,
    PromptOptions,
    PromptFileOptions,
    SamplingOptions,
    Stage2Options,
    MediaOptions,
    EngineOptions,
    LoopOptions,
    ClientOptions,
    ServerOptions,
    RayOptions,
    MonitorOptions,
    HealthLogOptions,
    LogOptions,
    EngineDebugOptions,
    ProfileOptions,
    DebugOptions,
)

CAPTION = CommandSpec(
    "caption",
    groups_named(
        [
            "input",
            "output",
            "run",
            "config",
            "model",
            "prompt",
            "prompt_file",
            "sampling",
            "stage2",
            "media",
            "engine",
            "loop",
            "client",
            "ray",
            "monitor",
            "health",
            "logging",
            "engine_debug",
            "profile",
            "debug",
        ]
    ),
    exclusive=(
        frozenset({"prompt_text", "prompt_file"}),
        frozenset({"server_url", "server_url_file"}),
    ),
)
SERVE = CommandSpec(
    "serve",
    groups_named(
        ["config", "model", "engine", "server", "health", "logging", "engine_debug", "profile"]
    ),
)
QA = CommandSpec(
    "qa",
    groups_named(
        [
            "qa",
            "output",
            "run",
            "config",
            "model",
            "sampling",
            "engine",
            "loop",
            "client",
            "ray",
            "monitor",
            "health",
            "logging",
            "engine_debug",
            "profile",
            "debug",
        ]
    ),
    exclusive=(frozenset({"server_url", "server_url_file"}),),
    defaults={"max_output_tokens": DEFAULT_QA_MAX_OUTPUT_TOKENS},
)
COMMANDS: dict[str, CommandSpec] = {c.name: c for c in (CAPTION, SERVE, QA)}

#: Options a caption run through a server ignores (with a warning): ``vlmcap serve``'s.
SERVER_IGNORED_FIELDS: frozenset[str] = CAPTION.engine_side()

"""vlmcap's option schema: every option of every subcommand, declared once.

This package is the reference for option names, types, defaults, rules and help. Each option
is a field of an option group (a pydantic model; ``vlmcap.options.base``), the groups live in
``vlm`` (the parts of ``VLMConfig``), ``media``, ``run``, ``network``, ``qa``, ``ray``,
``monitor`` and ``debug``, and each subcommand
picks its groups (``commands``). Derived from it, never written out again:

- the Typer parameters of ``vlmcap caption``, ``vlmcap qa`` and ``vlmcap serve`` (``cli``),
  whose help shows the schema's defaults (or a command's own, ``CommandSpec.defaults``);
- the keys of their config files (``commands.CommandSpec.file_keys``);
- validation, with errors that name the field, the value and the rule;
- the options a caption run through a server ignores (``SERVER_IGNORED_FIELDS``: the
  engine-side groups).

``vlmcap.options.cli`` (Typer) is not imported here, so code that only needs a group (the
decode threads, the plugins) does not load the command line.
"""

from vlmcap.options.base import ConfigError, Flag, OptionGroup, OptionSpec, flag
from vlmcap.options.commands import (
    ALL_GROUPS,
    CAPTION,
    COMMANDS,
    QA,
    SERVE,
    SERVER_IGNORED_FIELDS,
    CommandSpec,
    ParsedOptions,
)
from vlmcap.options.debug import DebugOptions, EngineDebugOptions, LogOptions, ProfileOptions
from vlmcap.options.files import ConfigFileOptions, load_config_file
from vlmcap.options.media import MediaOptions
from vlmcap.options.monitor import HealthLogOptions, MonitorOptions
from vlmcap.options.network import ClientOptions, ServerOptions
from vlmcap.options.qa import QAOptions
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

__all__ = [
    "ALL_GROUPS",
    "CAPTION",
    "COMMANDS",
    "QA",
    "SERVE",
    "SERVER_IGNORED_FIELDS",
    "ClientOptions",
    "CommandSpec",
    "ConfigError",
    "ConfigFileOptions",
    "DebugOptions",
    "EngineDebugOptions",
    "EngineOptions",
    "Flag",
    "HealthLogOptions",
    "InputOptions",
    "LogOptions",
    "LoopOptions",
    "MediaOptions",
    "ModelOptions",
    "MonitorOptions",
    "OptionGroup",
    "OptionSpec",
    "OutputOptions",
    "ParsedOptions",
    "ProfileOptions",
    "PromptFileOptions",
    "PromptOptions",
    "QAOptions",
    "RayOptions",
    "RunOptions",
    "SamplingOptions",
    "ServerOptions",
    "Stage2Options",
    "flag",
    "load_config_file",
]

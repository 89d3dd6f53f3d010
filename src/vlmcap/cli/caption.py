"""``vlmcap caption PATH...``: caption a folder, glob or manifest of media with the offline engine
or through a server.

The options are the schema's (``vlmcap.options.CAPTION``): their flags, defaults, help and
config-file keys all come from there. Exit status: 0 every item captioned, 1 some items failed,
2 bad usage (or the output folder is held by another job).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vlmcap.cli.caption_view import CaptionProgress, print_dry_run, print_summary
from vlmcap.cli.job import run_job
from vlmcap.cli.replay import replay_job
from vlmcap.config import ConfigError, VLMConfig
from vlmcap.debug.logging import LOGS_DIR, job_logging
from vlmcap.debug.terminal import say
from vlmcap.media.inputs import MediaFile, discover
from vlmcap.media.manifest import ManifestError
from vlmcap.options import (
    CAPTION,
    ClientOptions,
    HealthLogOptions,
    InputOptions,
    LogOptions,
    MediaOptions,
    MonitorOptions,
    OutputOptions,
    ParsedOptions,
    RayOptions,
    RunOptions,
)
from vlmcap.options.cli import command_line_values, with_options
from vlmcap.prompts import read_prompt_file

if TYPE_CHECKING:
    from vlmcap.core.progress import Progress
    from vlmcap.pipeline.backend import AnyBackend
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.sinks.store import RecordStore


def _read_prompt_file(parsed: ParsedOptions) -> None:
    """``prompt_file`` (a flag or a config-file key) becomes ``prompt_text``."""
    path = parsed.values.pop("prompt_file", None)
    if path is not None:
        parsed.values["prompt_text"] = read_prompt_file(path)


@with_options(CAPTION)
def caption(**given: Any) -> None:
    """Caption images and videos: resumable JSONL records, a caption map, optional parquet.

    Re-running the same command resumes: finished items are skipped (failed ones too, unless
    --retry-failed). Any option can live in a YAML/TOML --config file instead. Exit status: 0 all
    captioned, 1 some items failed, 2 bad usage.
    """
    from vlmcap.cli.errors import usage_error

    try:
        parsed = CAPTION.resolve(command_line_values(CAPTION, given))
        _read_prompt_file(parsed)
        config = parsed.build(VLMConfig)
        inputs = parsed.build(InputOptions)
        output_dir = parsed.build(OutputOptions).output_dir
        run = parsed.build(RunOptions, media=parsed.build(MediaOptions))
        client = parsed.build(ClientOptions)
        ray = parsed.build(RayOptions)
        monitor = parsed.build(MonitorOptions, health=parsed.build(HealthLogOptions))
        logs = parsed.build(LogOptions)
        if config.replay is not None:
            raise typer.Exit(replay_job(config.replay, config, client, output_dir, logs))
        if not inputs.paths and inputs.manifest is None:
            raise ConfigError("give media paths or --manifest")
        found = discover(
            inputs.paths,
            extensions=inputs.ext or None,
            manifest=inputs.manifest,
            path_column=inputs.path_column,
        )
    except (ConfigError, FileNotFoundError, ManifestError, ValueError) as exc:
        usage_error(str(exc))
    for problem in found.problems:
        say(f"warning: skipped {problem}")
    files = found.files[: inputs.limit] if inputs.limit is not None else found.files
    if not files:
        where = ", ".join(inputs.paths) or str(inputs.manifest)
        usage_error(f"no images or videos under {where}")
    if inputs.dry_run:
        print_dry_run(files, output_dir, config, run)
        raise typer.Exit(0)

    with job_logging(logs, output_dir / LOGS_DIR, "caption"):
        status = _run(files, config, client, output_dir, run, monitor, ray)
    raise typer.Exit(status)


def _run(
    files: list[MediaFile],
    config: VLMConfig,
    client: ClientOptions,
    output_dir: Path,
    run: RunOptions,
    monitor: MonitorOptions,
    ray: RayOptions,
) -> int:
    """Caption ``files``; the exit status (``vlmcap.cli.job``: 143 after SIGTERM, 130 after
    SIGINT, both through the same clean-up as an error)."""
    from vlmcap.pipeline.caption import caption_files, open_store

    def open_caption_store(plugin: VLMPlugin) -> RecordStore:
        return open_store(output_dir, plugin, config, run)

    def work(
        backend: AnyBackend,
        plugin: VLMPlugin,
        store: RecordStore,
        server_url: str | None,
        live: Progress,
    ) -> int:
        with CaptionProgress(len(files)) as progress:
            summary = caption_files(
                files,
                backend,
                plugin,
                config,
                output_dir,
                run=run,
                store=store,
                on_row=progress.row,
                on_file_done=progress.file_done,
                on_plan=progress.plan,
                live=live,
            )
        store.close()
        print_summary(summary, progress.shown)  # before the engine's shutdown (seconds)
        return 1 if summary.failed else 0

    return run_job(config, client, open_caption_store, work, monitor, ray)

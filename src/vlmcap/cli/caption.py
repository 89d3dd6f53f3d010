"""``vlmcap caption PATH...``: caption a folder, glob or manifest of media with the offline engine.

Exit status: 0 every item captioned, 1 some items failed, 2 bad usage (or the output folder is
held by another job).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from vlmcap.cli.caption_view import CaptionProgress, print_dry_run, print_summary
from vlmcap.cli.options import build_config
from vlmcap.config import ConfigError
from vlmcap.media.inputs import discover
from vlmcap.media.manifest import ManifestError
from vlmcap.prompts import read_prompt_file
from vlmcap.sinks.lock import LockedError

#: Options that are not ``VLMConfig`` fields.
_RUN_OPTIONS = {
    "paths",
    "output_dir",
    "config_file",
    "manifest",
    "path_column",
    "ext",
    "video_fps",
    "num_frames",
    "max_frames",
    "max_pixels",
    "window",
    "overlap",
    "dump_frames",
    "prompt_file",
    "overwrite",
    "retry_failed",
    "parquet",
    "save_every",
    "save_interval",
    "workers",
    "prefetch",
    "limit",
    "dry_run",
    "server_url",
    "server_url_file",
    "served_model",
    "api_key",
    "concurrency",
    "request_timeout",
    "retries",
}


def caption(  # noqa: PLR0915 - one flat function per command, options first
    paths: list[str] = typer.Argument(
        None, help="Media files, folders (searched recursively) or glob patterns ('d/**/*.mp4')."
    ),
    output_dir: Path = typer.Option(Path("out"), "--output-dir", "-o", help="Where outputs go."),
    config_file: Path = typer.Option(
        None, "--config", "-c", help="YAML/TOML file with any of the model options below."
    ),
    manifest: Path = typer.Option(
        None, help="JSONL/CSV/parquet listing files (paths relative to the manifest's folder)."
    ),
    path_column: str = typer.Option("path", help="Manifest column holding the paths."),
    ext: list[str] = typer.Option(None, "--ext", help="Only these extensions (repeatable)."),
    model: str = typer.Option(None, "--model", "-m", help="Model variant (`vlmcap models`)."),
    model_path: str = typer.Option(None, help="Local weights folder or hub id."),
    prompt_style: str = typer.Option(
        None,
        "--prompt",
        help="Prompt style: default, simple, short, long, video, video-short, video-long, or "
        "one of the model's own.",
    ),
    prompt_text: str = typer.Option(None, "--prompt-text", help="Custom prompt text."),
    prompt_file: Path = typer.Option(None, help="Read the custom prompt from this file."),
    max_output_tokens: int = typer.Option(None, help="Token limit per caption [512]."),
    temperature: float = typer.Option(None, help="Sampling temperature [0.1]."),
    top_p: float = typer.Option(None, help="Nucleus sampling [0.001]."),
    repetition_penalty: float = typer.Option(None, help="[1.05]"),
    seed: int = typer.Option(None, help="Sampling seed [0]."),
    fp8: bool = typer.Option(None, "--fp8/--no-fp8", help="fp8 weights (GPU)."),
    tensor_parallel_size: int = typer.Option(None, help="Tensor-parallel size [1]."),
    preprocess: bool = typer.Option(None, "--preprocess/--no-preprocess"),
    mm_cache: bool = typer.Option(None, "--mm-cache/--no-mm-cache"),
    inflight_batching: bool = typer.Option(
        None, "--inflight/--fixed-batches", help="Loop kind [in-flight]."
    ),
    batch_size: int = typer.Option(None, help="Fixed-batch size [4]."),
    max_inflight: int = typer.Option(None, help="Requests inside the engine at once [256]."),
    stage2: bool = typer.Option(None, "--stage2/--no-stage2", help="Refine captions [off]."),
    stage2_prompt: str = typer.Option(None, help="Refine prompt (the caption is appended)."),
    enforce_eager: bool = typer.Option(None, "--enforce-eager/--no-enforce-eager"),
    video_fps: float = typer.Option(2.0, "--fps", help="Frames per second sampled from videos."),
    num_frames: int = typer.Option(None, help="Fixed frames per window instead of --fps."),
    max_frames: int = typer.Option(16, help="Most frames sent per window."),
    max_pixels: int = typer.Option(448 * 448, help="Pixel budget per video frame."),
    window: float = typer.Option(
        None, help="Split videos into windows of this many seconds [one window per clip]."
    ),
    overlap: float = typer.Option(0.0, help="Seconds two consecutive windows share."),
    dump_frames: Path = typer.Option(None, help="Write the frames sent to the model here."),
    overwrite: bool = typer.Option(False, help="Start over instead of resuming."),
    retry_failed: bool = typer.Option(False, help="On resume, redo items that failed."),
    parquet: bool = typer.Option(False, help="Also write the records as parquet."),
    save_every: int = typer.Option(100, help="Save the caption map every N items..."),
    save_interval: float = typer.Option(30.0, help="...or every this many seconds."),
    workers: int = typer.Option(min(4, os.cpu_count() or 1), help="Decode threads."),
    prefetch: int = typer.Option(16, help="Decoded files waiting for the engine, at most."),
    limit: int = typer.Option(None, help="Only the first N files (in sorted order)."),
    dry_run: bool = typer.Option(False, help="List what would be captioned and stop."),
    server_url: str = typer.Option(
        None, help="Caption through this vLLM server (`vlmcap serve`); no model loaded here."
    ),
    server_url_file: Path = typer.Option(
        None, help="Read the server URL from this file (`vlmcap serve --url-file`); waits for it."
    ),
    served_model: str = typer.Option("auto", help="Model name on the server; auto: its only one."),
    api_key: str = typer.Option(None, help="Server API key [$OPENAI_API_KEY]."),
    concurrency: int = typer.Option(16, help="Server requests in flight."),
    request_timeout: float = typer.Option(600.0, help="Seconds per server request attempt."),
    retries: int = typer.Option(8, help="Retries on connection errors, 429 and 5xx (backoff)."),
) -> None:
    """Caption images and videos: resumable JSONL records, a caption map, optional parquet.

    Re-running the same command resumes: finished items are skipped (failed ones too, unless
    --retry-failed). Exit status: 0 all captioned, 1 some items failed, 2 bad usage.
    """
    options: dict[str, Any] = {k: v for k, v in locals().items() if k not in _RUN_OPTIONS}
    from vlmcap.cli.errors import usage_error
    from vlmcap.pipeline.caption import RunOptions
    from vlmcap.pipeline.load import MediaOptions

    try:
        if prompt_file is not None:
            if prompt_text is not None:
                raise ConfigError("give --prompt-text or --prompt-file, not both")
            options["prompt_text"] = read_prompt_file(prompt_file)
        if limit is not None and limit < 1:
            raise ConfigError("--limit must be at least 1")
        if workers < 1 or prefetch < 1 or save_every < 1 or save_interval <= 0:
            raise ConfigError("--workers, --prefetch and --save-every must be at least 1")
        config = build_config(config_file, options)
        media = MediaOptions(
            video_fps=video_fps,
            num_frames=num_frames,
            max_frames=max_frames,
            max_pixels=max_pixels,
            window_s=window,
            overlap_s=overlap,
            dump_dir=dump_frames,
        )
        run = RunOptions(
            media=media,
            overwrite=overwrite,
            retry_failed=retry_failed,
            parquet=parquet,
            save_every_items=save_every,
            save_every_s=save_interval,
            workers=workers,
            prefetch=prefetch,
        )
        if not paths and manifest is None:
            raise ConfigError("give media paths or --manifest")
        found = discover(
            paths or [], extensions=ext or None, manifest=manifest, path_column=path_column
        )
    except (ConfigError, FileNotFoundError, ManifestError, ValueError) as exc:
        usage_error(str(exc))
    for problem in found.problems:
        typer.echo(f"warning: skipped {problem}", err=True)
    files = found.files[:limit] if limit is not None else found.files
    if not files:
        where = ", ".join(paths or []) or str(manifest)
        usage_error(f"no images or videos under {where}")
    if dry_run:
        print_dry_run(files, output_dir, config, run)
        raise typer.Exit(0)

    from vlmcap.client.backend import ServerBackend
    from vlmcap.client.connect import ServerError, open_server
    from vlmcap.pipeline.backend import CaptionBackend, OfflineBackend
    from vlmcap.pipeline.caption import caption_files, open_store
    from vlmcap.plugins.registry import UnknownModelError, get_plugin

    try:
        server = open_server(  # None without --server-url(-file)
            config,
            url=server_url,
            url_file=server_url_file,
            served_model=served_model,
            api_key=api_key,
            concurrency=concurrency,
            request_timeout=request_timeout,
            retries=retries,
        )
        plugin = get_plugin(config.model, config.model_path)
        store = open_store(output_dir, plugin, config, run)  # lock before the slow engine start
    except (UnknownModelError, LockedError, ServerError, ValueError) as exc:
        usage_error(str(exc))
    try:
        backend: CaptionBackend = (
            ServerBackend(server, plugin, config)
            if server is not None
            else OfflineBackend(plugin.build_llm(config), plugin, config)
        )
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
            )
    except ServerError as exc:
        usage_error(str(exc))
    finally:
        store.close()
    print_summary(summary, progress.shown)
    raise typer.Exit(1 if summary.failed else 0)

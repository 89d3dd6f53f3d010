"""``vlmcap caption PATH...``: caption media files with the offline engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vlmcap.cli.options import build_config
from vlmcap.config import ConfigError
from vlmcap.media.inputs import discover
from vlmcap.plugins.registry import UnknownModelError

console = Console(stderr=True)
out = Console()


def caption(
    paths: list[Path] = typer.Argument(..., help="Media files or folders (searched recursively)."),
    output_dir: Path = typer.Option(Path("out"), "--output-dir", "-o", help="Where outputs go."),
    config_file: Path = typer.Option(
        None, "--config", "-c", help="YAML/TOML file with any of the options below."
    ),
    model: str = typer.Option(None, "--model", "-m", help="Model variant (`vlmcap models`)."),
    model_path: str = typer.Option(None, help="Local weights folder or hub id."),
    prompt_variant: str = typer.Option(None, "--prompt", help="Named prompt of the model."),
    prompt_text: str = typer.Option(None, "--prompt-text", help="Custom prompt text."),
    max_output_tokens: int = typer.Option(None, help="Token limit per caption [512]."),
    temperature: float = typer.Option(None, help="Sampling temperature [0.1]."),
    top_p: float = typer.Option(None, help="Nucleus sampling [0.001]."),
    repetition_penalty: float = typer.Option(None, help="[1.05]"),
    seed: int = typer.Option(None, help="Sampling seed [0]."),
    fp8: bool = typer.Option(None, "--fp8/--no-fp8", help="fp8 weights (GPU)."),
    num_gpus: int = typer.Option(None, help="Tensor-parallel size [1]."),
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
    video_fps: float = typer.Option(2.0, help="Frames per second sampled from videos."),
    max_frames: int = typer.Option(16, help="Most frames sent per video."),
) -> None:
    """Caption images and videos; prints each caption and writes JSONL + a caption map.

    Exit status: 0 all captioned, 1 some items failed, 2 bad usage.
    """
    options: dict[str, Any] = {
        k: v
        for k, v in locals().items()
        if k not in {"paths", "output_dir", "config_file", "video_fps", "max_frames"}
    }
    try:
        if video_fps <= 0 or max_frames < 1:
            raise ConfigError("--video-fps must be > 0 and --max-frames at least 1")
        config = build_config(config_file, options)
        files = discover(paths)
    except (ConfigError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if not files:
        console.print(f"[red]error:[/red] no images or videos under {', '.join(map(str, paths))}")
        raise typer.Exit(2)

    from vlmcap.engine.offline import load_engine
    from vlmcap.pipeline.caption import MediaOptions, caption_files

    try:
        plugin, llm = load_engine(config)
    except UnknownModelError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None

    table = Table("item", "status", "caption / error", show_lines=False)
    with Progress(
        TextColumn("captioning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[failed]} failed"),
        console=console,
    ) as progress:
        task = progress.add_task("caption", total=len(files), failed=0)

        def on_record(record: Any) -> None:
            failed = record.status != "ok"
            progress.update(task, advance=1, failed=progress.tasks[0].fields["failed"] + failed)
            text = record.caption if not failed else f"[red]{record.error}[/red]"
            table.add_row(record.key, str(record.status), text)

        summary = caption_files(
            files,
            llm,
            plugin,
            config,
            output_dir,
            opts=MediaOptions(video_fps=video_fps, max_frames=max_frames),
            on_record=on_record,
        )
    out.print(table)
    out.print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.truncated} truncated; "
        f"{summary.items_per_s:.2f} items/s, {summary.output_tokens} output tokens"
    )
    for name, path in summary.outputs.items():
        out.print(f"{name}: {path}")
    raise typer.Exit(1 if summary.failed else 0)

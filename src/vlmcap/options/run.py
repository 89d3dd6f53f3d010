"""What a caption run reads and writes: inputs, the output folder, ``RunOptions``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator

from vlmcap.options.base import INTERNAL, OptionGroup, flag
from vlmcap.options.media import MediaOptions

DEFAULT_OUTPUT_DIR = Path("out")
DEFAULT_PATH_COLUMN = "path"
#: Decode threads at most by default (fewer on smaller machines): more rarely help the engine.
MAX_DEFAULT_WORKERS = 4
DEFAULT_PREFETCH = 16
DEFAULT_SAVE_EVERY_ITEMS = 100
DEFAULT_SAVE_EVERY_S = 30.0
_DECODE_PANEL = "Media"


def default_workers() -> int:
    """Decode threads: ``MAX_DEFAULT_WORKERS``, or the CPU count when that is smaller."""
    return min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)


class InputOptions(OptionGroup):
    """Which media files a run looks at."""

    group = "input"
    panel = "Inputs"

    paths: Annotated[list[str], flag(argument=True, metavar="PATH")] = Field(
        default_factory=list,
        description="Media files, folders (searched recursively) or glob patterns ('d/**/*.mp4').",
    )
    manifest: Path | None = Field(
        default=None,
        description="JSONL/CSV/parquet listing files (paths relative to the manifest's folder).",
    )
    path_column: str = Field(
        default=DEFAULT_PATH_COLUMN, description="Manifest column holding paths."
    )
    ext: Annotated[list[str], flag(metavar="EXT")] = Field(
        default_factory=list, description="Only these extensions (repeatable)."
    )
    limit: Annotated[int | None, flag(metavar="N")] = Field(
        default=None, ge=1, description="Only the first N files (in sorted order)."
    )
    dry_run: bool = Field(default=False, description="List what would be captioned and stop.")

    @field_validator("paths", "ext", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """A config file may give one string where a list is expected (``ext: .mp4``)."""
        return [value] if isinstance(value, str) else value


class OutputOptions(OptionGroup):
    group = "output"
    panel = "Output and resume"

    output_dir: Annotated[Path, flag("--output-dir", "-o")] = Field(
        default=DEFAULT_OUTPUT_DIR, description="Where records, caption maps and parquet go."
    )


class RunOptions(OptionGroup):
    """Everything about a caption run besides the model config: media, outputs, decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    group = "run"
    panel = "Output and resume"

    media: Annotated[MediaOptions, INTERNAL] = Field(default_factory=MediaOptions)
    overwrite: bool = Field(default=False, description="Start over instead of resuming.")
    retry_failed: bool = Field(default=False, description="On resume, redo items that failed.")
    parquet: bool = Field(default=False, description="Also write the records as parquet.")
    save_every_items: Annotated[int, flag("--save-every", metavar="N")] = Field(
        default=DEFAULT_SAVE_EVERY_ITEMS, ge=1, description="Save the caption map every N rows..."
    )
    save_every_s: Annotated[float, flag("--save-interval", metavar="S")] = Field(
        default=DEFAULT_SAVE_EVERY_S, gt=0, description="...or every S seconds."
    )
    workers: Annotated[int, flag(panel=_DECODE_PANEL)] = Field(
        default_factory=default_workers, ge=1, description="Decode threads."
    )
    prefetch: Annotated[int, flag(panel=_DECODE_PANEL)] = Field(
        default=DEFAULT_PREFETCH, ge=1, description="Decoded files waiting for the engine, at most."
    )

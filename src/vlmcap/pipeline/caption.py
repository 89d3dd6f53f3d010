"""Caption a set of media files: load -> engine -> output files, one record per file."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmcap.engine.offline import iter_captions
from vlmcap.media.images import MediaError, load_image
from vlmcap.media.inputs import MediaFile
from vlmcap.media.video import sample_video
from vlmcap.records import CaptionItem, CaptionRecord, Status
from vlmcap.sinks.files import JsonlWriter, atomic_write_json

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MediaOptions:
    video_fps: float = 2.0
    max_frames: int = 16
    max_pixels: int = 448 * 448


@dataclass
class CaptionSummary:
    total: int = 0
    ok: int = 0
    failed: int = 0
    truncated: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0


def load_item(
    media: MediaFile, plugin: VLMPlugin, config: VLMConfig, opts: MediaOptions
) -> CaptionItem:
    """Decode one file into a ``CaptionItem`` (raises ``MediaError`` naming the file)."""
    prompt = None
    if media.kind == "image" and config.prompt_text is None and config.prompt_variant == "default":
        prompt = plugin.prompts.get("image")  # image wording where the plugin has one
    if media.kind == "image":
        return CaptionItem(
            key=media.key,
            media=load_image(media.path),
            prompt=prompt,
            meta={"path": str(media.path), "kind": "image"},
        )
    clip = sample_video(
        media.path, fps=opts.video_fps, max_frames=opts.max_frames, max_pixels=opts.max_pixels
    )
    return CaptionItem(
        key=media.key,
        media=clip.frames,
        fps=clip.fps,
        meta={
            "path": str(media.path),
            "kind": "video",
            "duration": clip.duration,
            "frames": int(clip.frames.shape[0]),
        },
    )


def caption_files(
    files: Sequence[MediaFile],
    llm: LLM,
    plugin: VLMPlugin,
    config: VLMConfig,
    output_dir: Path,
    *,
    opts: MediaOptions | None = None,
    on_record: Callable[[CaptionRecord], None] | None = None,
) -> CaptionSummary:
    """Caption ``files``; write ``captions.jsonl`` (every record, appended as it finishes) and
    the caption map ``captions/<model>/<model>_<prompt>.json`` (ok records only)."""
    opts = opts or MediaOptions()
    load_failures: deque[CaptionRecord] = deque()

    def items() -> Iterator[CaptionItem]:
        for media in files:
            try:
                yield load_item(media, plugin, config, opts)
            except MediaError as exc:
                record = CaptionRecord(key=media.key, request_id="-", prompt="")
                record.fail(str(exc), time.time())
                load_failures.append(record)

    summary = CaptionSummary()
    captions: dict[str, str] = {}
    style = "custom" if config.prompt_text is not None else config.prompt_variant
    model = plugin.variant
    jsonl_path = output_dir / "captions.jsonl"
    map_path = output_dir / "captions" / model / f"{model}_{style}.json"
    jsonl_path.unlink(missing_ok=True)  # this run's records only (resume comes with sinks)
    start = time.time()

    def emit(record: CaptionRecord, writer: JsonlWriter) -> None:
        row: dict[str, Any] = {"model": model, "prompt_style": style, **record.to_dict()}
        if record.item is not None:
            row.update({k: v for k, v in record.item.meta.items() if k not in row})
        writer.write(row)
        summary.total += 1
        summary.output_tokens += record.output_tokens
        if record.status == Status.OK and record.caption is not None:
            summary.ok += 1
            summary.truncated += int(record.truncated)
            captions[record.key] = record.caption
        else:
            summary.failed += 1
            logger.warning("%s failed: %s", record.key, record.error)
        record.item = None  # release media as soon as the record is written
        if on_record is not None:
            on_record(record)

    with JsonlWriter(jsonl_path) as writer:
        for record in iter_captions(items(), llm, plugin, config):
            while load_failures:
                emit(load_failures.popleft(), writer)
            emit(record, writer)
        while load_failures:
            emit(load_failures.popleft(), writer)
    atomic_write_json(map_path, dict(sorted(captions.items())))
    summary.seconds = time.time() - start
    summary.outputs = {"records": jsonl_path, "captions": map_path}
    return summary

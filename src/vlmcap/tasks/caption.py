"""Captioning as a task: media files in, one caption row per file (or per window of a clip).

plan     skip files done by an earlier run; for a windowed clip, skip its finished windows
         and the whole clip once all of them are done
load     decode the file (``vlmcap.pipeline.load``) into items, each with the prompt of
         its kind (``image`` or ``video``) in the run's prompt style
row      ``CaptionRow``: the record's text is the caption
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vlmcap.media.inputs import MediaFile
from vlmcap.pipeline.load import LoadResult, MediaOptions, load_file
from vlmcap.records import Record
from vlmcap.rows import CaptionRow, Row
from vlmcap.tasks.base import Loaded, Plan, ShouldSkip

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.sinks.resume import ResumeState

#: One load job: the file and the keys of its windows that are done already.
CaptionJob = tuple[MediaFile, frozenset[str]]


def style_name(config: VLMConfig) -> str:
    """The prompt style named in output file names: the style, or ``custom``."""
    return "custom" if config.prompt_text is not None else config.prompt_style


def plan_files(
    files: Sequence[MediaFile], state: ResumeState, should_skip: ShouldSkip, windowed: bool
) -> Plan[CaptionJob]:
    """The files still to do, each with the window keys to leave out."""
    by_path: dict[str, list[Row]] = {}
    if windowed:
        for row in (*state.ok.values(), *state.failed.values()):
            if isinstance(row, CaptionRow) and row.window_count is not None and row.path:
                by_path.setdefault(row.path, []).append(row)
    jobs: list[CaptionJob] = []
    done = 0
    for media in files:
        if should_skip(media.key):
            done += 1
            continue
        rows = by_path.get(media.key, [])
        skip = frozenset(r.key for r in rows if should_skip(r.key))
        count = rows[0].window_count if rows and isinstance(rows[0], CaptionRow) else None
        if count is not None and len(skip) >= count:
            done += 1
            continue
        jobs.append((media, skip))
    return Plan(jobs, done)


@dataclass
class CaptionTask:
    """Caption ``files`` with ``plugin``'s prompts in ``config``'s style."""

    plugin: VLMPlugin
    config: VLMConfig
    media: MediaOptions = field(default_factory=MediaOptions)
    name: str = "caption"
    row_type: type[Row] = CaptionRow

    def __post_init__(self) -> None:
        self.prompts = {
            kind: self.plugin.prompt_for(kind, self.config.prompt_style, self.config.prompt_text)
            for kind in ("image", "video")
        }

    @property
    def style(self) -> str:
        return style_name(self.config)

    def plan(
        self, files: Sequence[MediaFile], state: ResumeState, should_skip: ShouldSkip
    ) -> Plan[CaptionJob]:
        return plan_files(files, state, should_skip, self.media.window_s is not None)

    def job_key(self, job: CaptionJob) -> str:
        return job[0].key

    def load(self, job: CaptionJob) -> LoadResult:
        media, skip = job
        caps = self.plugin.capabilities
        if media.kind == "video" and not caps.takes_video:  # refused before any decoding
            error = f"{media.key}: model {self.plugin.variant!r} takes no video (pictures only)"
            return LoadResult(media, media.key, error=error)
        return load_file(media, self.media, self.prompts, skip, caps)

    def row(self, record: Record) -> CaptionRow:
        meta = record.item.meta if record.item is not None else {}
        return CaptionRow.from_record(record, meta)

    def failed_rows(self, loaded: Loaded[object]) -> list[Row]:
        record = Record(key=loaded.key, request_id="-")
        record.fail(loaded.error or "cannot load", time.time())
        unit = loaded.unit
        kind = unit.kind if isinstance(unit, MediaFile) else None
        return [CaptionRow.from_record(record, {"path": loaded.key, "kind": kind})]

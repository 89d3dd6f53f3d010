"""The rows a task writes: one typed record per item, the same in JSONL, the text map and parquet.

``Row`` holds what every task records of an item (status, error, tokens, timings, model);
a task adds its own fields in a subclass (``CaptionRow``: the caption, its stage-1 draft and
what the media were). The JSONL line, the parquet schema and what resume reads back all derive
from the dataclass fields, so a column is declared once:

    row.to_json()              -> the JSONL object (item fields left out when unknown)
    RowType.from_json(obj)     -> a typed row; unknown keys and values of the wrong type are
                                  kept in ``extra`` (written back as they were)
    parquet_schema(RowType)    -> ``vlmcap.sinks.parquet``

Rows written by earlier versions read back the same way: every field has a default.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, cast

from vlmcap.records import Record

#: Field metadata flag: leave the field out of the JSONL line when it is ``None`` (what an
#: item of another kind does not have, e.g. window times of an image).
OMIT_NONE = "omit_none"
#: Placeholder request id of a row that never had a request (its file could not be loaded).
NO_REQUEST = "-"

_MISMATCH = object()


#: Metadata of a field describing the item (left out of the JSONL line when unknown).
ITEM = {OMIT_NONE: True}


@dataclass
class Row:
    """What every task records about one item; subclasses add the task's own fields."""

    #: The field holding the task's output text (the values of the text map).
    text_field: ClassVar[str] = "text"

    key: str
    status: str
    model: str | None = None
    prompt_style: str | None = None
    request_id: str = NO_REQUEST
    prompt: str = ""
    #: The model's reasoning behind the text (reasoning models only).
    reasoning: str | None = field(default=None, metadata={OMIT_NONE: True})
    error: str | None = None
    finish_reason: str | None = None
    stage1_finish_reason: str | None = None
    truncated: bool = False
    prompt_tokens: int = 0
    output_tokens: int = 0
    #: Requests sent for the item, retries included (0 in rows of older versions).
    attempts: int = 0
    queued_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    #: Fields this version does not know (or whose values had another type), kept as read.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str | None:
        value = getattr(self, self.text_field)
        return value if isinstance(value, str) else None

    @classmethod
    def record_fields(cls, record: Record) -> dict[str, Any]:
        """The common fields of a finished ``record``."""
        t = record.timings
        return {
            "key": record.key,
            "status": str(record.status),
            "request_id": record.request_id,
            "prompt": record.prompt,
            "reasoning": record.reasoning,
            "error": record.error,
            "finish_reason": record.finish_reason,
            "stage1_finish_reason": record.stage1_finish_reason,
            "truncated": record.truncated,
            "prompt_tokens": record.prompt_tokens,
            "output_tokens": record.output_tokens,
            "attempts": record.attempts,
            "queued_at": t.queued,
            "first_token_at": t.first_token,
            "finished_at": t.finished,
            "latency_s": t.latency,
            "ttft_s": t.ttft,
        }

    @classmethod
    def columns(cls) -> tuple[tuple[str, Any], ...]:
        """(name, type) of every field but ``extra``, in declaration order."""
        return _columns(cast(Any, cls))

    def to_json(self) -> dict[str, Any]:
        """The JSONL object of this row."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.metadata.get(OMIT_NONE):
                continue
            out[f.name] = value
        for name, value in self.extra.items():
            out.setdefault(name, value)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Self:
        """A typed row from a JSONL object (see the module docstring)."""
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        known = dict(cls.columns())
        for name, value in obj.items():
            kind = known.get(name)
            if kind is None:
                extra[name] = value
                continue
            coerced = coerce(value, kind)
            if coerced is _MISMATCH:
                extra[name] = value
            elif coerced is not None:
                values[name] = coerced
        if not isinstance(values.get("key"), str):
            raise ValueError(f"row has no key (a string): {obj!r:.200}")
        values.setdefault("status", "failed")
        return cls(**values, extra=extra)


@functools.cache
def _columns(cls: Any) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.name != "extra")


def base_type(kind: Any) -> Any:
    """``int`` for ``int | None``; ``list[float]`` stays ``list[float]``."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return args[0] if len(args) == 1 else kind
    return kind


def coerce(value: Any, kind: Any) -> Any:
    """``value`` as a value of field type ``kind``; ``None`` for null; ``_MISMATCH`` if it does
    not fit (a float that is not whole for an int, a string for a number...)."""
    if value is None:
        return None
    kind = base_type(kind)
    if kind is str:
        return value if isinstance(value, str) else _MISMATCH
    if kind is bool:
        return value if isinstance(value, bool) else _MISMATCH
    if typing.get_origin(kind) is list:
        (inner,) = typing.get_args(kind)
        if not isinstance(value, list):
            return _MISMATCH
        items = [coerce(v, inner) for v in value]
        return _MISMATCH if any(v is _MISMATCH or v is None for v in items) else items
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _MISMATCH
    if kind is float:
        return float(value)
    if kind is int:
        if isinstance(value, float):
            return int(value) if math.isfinite(value) and value.is_integer() else _MISMATCH
        return value
    return _MISMATCH


def is_mismatch(value: Any) -> bool:
    return value is _MISMATCH


@dataclass
class CaptionRow(Row):
    """One caption: the record's text plus what the item was (a file, a window of a clip)."""

    text_field: ClassVar[str] = "caption"

    caption: str | None = None
    stage1_caption: str | None = None
    stage2_prompt: str | None = None
    path: str | None = field(default=None, metadata=ITEM)
    kind: str | None = field(default=None, metadata=ITEM)
    width: int | None = field(default=None, metadata=ITEM)
    height: int | None = field(default=None, metadata=ITEM)
    window_index: int | None = field(default=None, metadata=ITEM)
    window_count: int | None = field(default=None, metadata=ITEM)
    window_start: float | None = field(default=None, metadata=ITEM)
    window_end: float | None = field(default=None, metadata=ITEM)
    frames: int | None = field(default=None, metadata=ITEM)
    frame_times: list[float] | None = field(default=None, metadata=ITEM)
    duration: float | None = field(default=None, metadata=ITEM)

    @classmethod
    def from_record(cls, record: Record, meta: dict[str, Any]) -> CaptionRow:
        """The row of a finished ``record`` whose item carried ``meta`` (the loader's facts
        about the file or window: path, kind, sizes, window times)."""
        values = cls.record_fields(record)
        values.update(
            caption=record.text,
            stage1_caption=record.stage1_text,
            stage2_prompt=record.stage2_prompt,
        )
        known = {name for name, _ in cls.columns()}
        item = {k: v for k, v in meta.items() if k in known and k not in values}
        extra = {k: v for k, v in meta.items() if k not in known}
        return cls(**values, **item, extra=extra)


@dataclass
class QARow(Row):
    """One answer to a multiple-choice question (one pass of it in circular mode).

    The record's text is ``model_output``; ``predicted_letter`` is what extraction read from it
    (``extraction_method`` says which rule decided, ``extraction_evidence`` the words it read)
    in the question's own lettering, so ``is_correct`` compares it with ``gt_letter`` whatever
    rotation the pass showed.
    """

    text_field: ClassVar[str] = "model_output"

    qid: str | None = None
    question: str | None = None
    choices: list[str] | None = None
    gt_answer: str | None = None
    gt_letter: str | None = None
    predicted_letter: str | None = None
    model_output: str | None = None
    is_correct: bool | None = None
    extraction_method: str | None = None
    extraction_evidence: str | None = None
    category: str | None = None
    source: str | None = None
    image_paths: list[str] | None = None
    num_images: int | None = None
    judged: bool = False  # the extraction rules read nothing; a judge model was asked
    judge_output: str | None = field(default=None, metadata=ITEM)
    rotation: int | None = field(default=None, metadata=ITEM)  # circular mode: options shift

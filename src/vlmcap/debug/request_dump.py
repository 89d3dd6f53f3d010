"""``debug_request``: everything about one request in one log entry."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from vlmcap.media.frames import media_shape

if TYPE_CHECKING:
    from vllm import RequestOutput

    from vlmcap.records import CaptionRecord

logger = logging.getLogger(__name__)


def _mm_shapes(engine_inputs: dict[str, Any] | None) -> str:
    if not engine_inputs:
        return "-"
    parts = []
    for kind, data in (engine_inputs.get("multi_modal_data") or {}).items():
        value = data[0] if isinstance(data, tuple) else data
        parts.append(f"{kind}={media_shape(value)}")
    return ", ".join(parts) or "-"


def debug_request(
    record: CaptionRecord, output: RequestOutput | None = None, level: int = logging.INFO
) -> str:
    """Log (and return) a record's prompt, media shapes, sampling params and output.

    Use it from a debugger, a test, or everywhere at once with ``VLMCAP_DEBUG_REQUESTS=1``.
    """
    inputs = record.engine_inputs or {}
    prompt = inputs.get("prompt")
    if prompt is None and "prompt_token_ids" in inputs:
        prompt = f"<{len(inputs['prompt_token_ids'])} token ids>"
    lines = [
        f"request {record.request_id} key={record.key} status={record.status}",
        f"  prompt: {prompt!r}",
        f"  media: {_mm_shapes(inputs)}"
        + (f" (item: {media_shape(record.item.media)})" if record.item is not None else ""),
        f"  sampling: {record.sampling}",
    ]
    if output is not None:
        for comp in output.outputs:
            lines.append(
                f"  output[{comp.index}]: finish={comp.finish_reason} "
                f"tokens={len(comp.token_ids)} text={comp.text!r}"
            )
    lines.append(
        f"  caption={record.caption!r} stage1={record.stage1_caption!r} error={record.error!r}"
    )
    text = "\n".join(lines)
    logger.log(level, "%s", text)
    return text

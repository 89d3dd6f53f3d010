"""``debug_request``: everything about one request in one log entry, on every transport."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vlmcap.media.frames import media_shape

if TYPE_CHECKING:
    from vlmcap.core.request import Completion
    from vlmcap.records import Record

logger = logging.getLogger(__name__)


def debug_request(
    record: Record, completion: Completion | None = None, level: int = logging.INFO
) -> str:
    """Log (and return) a record's prompt, media shape, sampling and output.

    Use it from a debugger, a test, or everywhere at once with ``VLMCAP_DEBUG_REQUESTS=1``
    (then it runs as each request finishes, before the record's request is released).
    """
    request = record.request
    prompt = request.prompt if request is not None else record.prompt
    media = request.media if request is not None else (record.item.media if record.item else None)
    lines = [
        f"request {record.request_id} key={record.key} status={record.status}",
        f"  prompt: {prompt!r}",
        f"  media: {media_shape(media) if media is not None else '-'}",
        f"  sampling: {record.sampling}",
    ]
    if completion is not None:
        lines.append(
            f"  output: finish={completion.finish_reason} tokens={completion.output_tokens} "
            f"error={completion.error!r} text={completion.text!r}"
        )
    lines.append(f"  text={record.text!r} stage1={record.stage1_text!r} error={record.error!r}")
    text = "\n".join(lines)
    logger.log(level, "%s", text)
    return text

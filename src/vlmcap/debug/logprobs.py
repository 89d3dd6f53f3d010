"""Token logprobs (``--logprobs K``): read from either transport, written to ``logprobs.jsonl``.

    from_vllm(completion_output)              vLLM's per-position dicts -> TokenLogprob entries
    from_openai(choice.logprobs, token_ids)   a chat completion's ``logprobs.content`` -> same
    LogprobsWriter(debug_dir).write(...)      one JSON line per request: key, request id, stage,
                                              tokens (chosen token + its top K candidates)

The lines go to ``OUTPUT_DIR/debug/logprobs.jsonl``, never into the run's rows.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from vlmcap.core.request import TokenLogprob, TopLogprob

logger = logging.getLogger(__name__)

#: File of the logprobs lines, inside the run's debug folder.
LOGPROBS_FILE = "logprobs.jsonl"


def _finite(value: float | None) -> float | None:
    """JSON has no -inf: a token with probability 0 gets ``None``."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def from_vllm(first: Any) -> tuple[TokenLogprob, ...] | None:
    """The logprobs of vLLM's ``CompletionOutput`` ``first`` (None when none were asked for).

    Each position of ``first.logprobs`` maps token ids to ``Logprob`` (logprob, rank, decoded
    text): the top K and, when it is not among them, the sampled token.
    """
    positions = getattr(first, "logprobs", None)
    if positions is None:
        return None
    token_ids = list(first.token_ids or ())
    out = []
    for index, position in enumerate(positions):
        entries = dict(position or {})
        chosen_id = token_ids[index] if index < len(token_ids) else None
        ranked = sorted(
            entries.items(),
            key=lambda kv: (kv[1].rank if kv[1].rank is not None else math.inf, -kv[1].logprob),
        )
        top = tuple(
            TopLogprob(
                token=lp.decoded_token or "",
                logprob=lp.logprob,
                token_id=int(token_id),
                rank=lp.rank,
            )
            for token_id, lp in ranked
        )
        chosen = entries.get(chosen_id) if chosen_id is not None else None
        out.append(
            TokenLogprob(
                token=(chosen.decoded_token or "") if chosen is not None else "",
                logprob=chosen.logprob if chosen is not None else None,
                token_id=chosen_id,
                rank=chosen.rank if chosen is not None else None,
                top=top,
            )
        )
    return tuple(out)


def from_openai(
    content: Sequence[Any] | None, token_ids: Sequence[int] | None = None
) -> tuple[TokenLogprob, ...] | None:
    """A chat completion's ``choices[0].logprobs.content`` (``token_ids``: the reply's own,
    when the server was asked for them)."""
    if content is None:
        return None
    ids = list(token_ids or ())
    out = []
    for index, entry in enumerate(content):
        top = tuple(
            TopLogprob(token=str(t.token), logprob=float(t.logprob), rank=rank)
            for rank, t in enumerate(getattr(entry, "top_logprobs", None) or (), start=1)
        )
        out.append(
            TokenLogprob(
                token=str(entry.token),
                logprob=float(entry.logprob),
                token_id=ids[index] if index < len(ids) else None,
                top=top,
            )
        )
    return tuple(out)


def token_rows(logprobs: Iterable[TokenLogprob], k: int) -> list[dict[str, Any]]:
    """JSON rows of ``logprobs``: per position the chosen token and its ``k`` best candidates."""
    rows = []
    for position, token in enumerate(logprobs):
        rows.append(
            {
                "position": position,
                "token": token.token,
                "token_id": token.token_id,
                "logprob": _finite(token.logprob),
                "rank": token.rank,
                "top": [
                    {
                        "token": t.token,
                        "token_id": t.token_id,
                        "logprob": _finite(t.logprob),
                        "rank": t.rank,
                    }
                    for t in token.top[:k]
                ],
            }
        )
    return rows


class LogprobsWriter:
    """Appends one JSON line per request to ``<debug_dir>/logprobs.jsonl``."""

    def __init__(self, debug_dir: Path, k: int) -> None:
        self.path = debug_dir / LOGPROBS_FILE
        self.k = k
        self.lines = 0

    def write(
        self, key: str, request_id: str, stage: str, logprobs: Sequence[TokenLogprob]
    ) -> None:
        row = {
            "key": key,
            "request_id": request_id,
            "stage": stage,
            "k": self.k,
            "tokens": token_rows(logprobs, self.k),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.lines += 1

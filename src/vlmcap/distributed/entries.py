"""What flows between the stages of a Ray job: one entry per item, row or finished input.

Ray Data moves columns of numpy arrays; an entry is one row of them::

    unit      the key of the input (media file, question) it belongs to
    size      how many items that input sends (so the driver knows when it is done)
    kind      ITEM (media and prompt, for an engine actor), RECORD (the item's finished
              record, media dropped), ROW (a finished row: an input that failed to load),
              DONE (an input with nothing left to send: every item done by an earlier run)
    payload   the pickled Item, Record or Row (b"" for DONE)
    not_sent  items the input could not send (too few frames), on its first entry only

Payloads are pickled because items carry arbitrary media (frames, pictures) and records and
rows are our own dataclasses; only vlmcap's own stages read them.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

ITEM = "item"
RECORD = "record"
ROW = "row"
DONE = "done"
COLUMNS = ("unit", "size", "kind", "payload", "not_sent")

#: A batch as Ray Data hands it over (``batch_format="numpy"``).
Batch = dict[str, np.ndarray]


@dataclass
class Entry:
    unit: str
    size: int
    kind: str
    payload: bytes = b""
    not_sent: int = 0

    @classmethod
    def of(cls, unit: str, size: int, kind: str, value: Any = None, not_sent: int = 0) -> Entry:
        payload = b"" if value is None else pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        return cls(unit, size, kind, payload, not_sent)

    def value(self) -> Any:
        return pickle.loads(self.payload)  # written by this job's own stages


def to_batch(entries: list[Entry]) -> Batch:
    """Entries as Ray Data columns."""
    payload = np.empty(len(entries), dtype=object)
    payload[:] = [e.payload for e in entries]
    return {
        "unit": np.array([e.unit for e in entries], dtype=object),
        "size": np.array([e.size for e in entries], dtype=np.int64),
        "kind": np.array([e.kind for e in entries], dtype=object),
        "payload": payload,
        "not_sent": np.array([e.not_sent for e in entries], dtype=np.int64),
    }


def from_batch(batch: Batch) -> Iterator[Entry]:
    """The entries of a batch of Ray Data columns."""
    columns = [batch[name] for name in COLUMNS]
    for unit, size, kind, payload, not_sent in zip(*columns, strict=True):
        yield Entry(str(unit), int(size), str(kind), bytes(payload), int(not_sent))

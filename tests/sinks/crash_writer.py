"""Writes caption rows through RecordStore in a loop (run as a script by the crash test).

    python crash_writer.py OUT N kill    # fails every 7th key, failures not retried
    python crash_writer.py OUT N final   # retries failures; no failures injected

The test kills it with SIGKILL at random moments and checks what is left on disk.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from vlmcap.sinks.store import RecordStore

MODEL = "tiny"
STYLE = "default"
WORDS = ("a", "red", "ball", "rolls", "left", "café", "東京", "quickly", "under", "the", "table")


def key_of(index: int) -> str:
    return f"clips/clip{index // 3:04d}.mp4#{index % 3}"


def caption_of(key: str) -> str:
    rng = random.Random(key)
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 800)))


def main() -> None:
    out, count, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with RecordStore(
        out,
        MODEL,
        STYLE,
        retry_failed=mode == "final",
        parquet=True,
        save_every_items=3,
        save_every_s=0.05,
        fsync_every_s=0.02,
    ) as store:
        for index in range(count):
            key = key_of(index)
            if store.should_skip(key):
                continue
            start = time.time()
            time.sleep(0.001)  # "captioning"
            row = {
                "key": key,
                "path": key.split("#")[0],
                "window_start": 2.0 * (index % 3),
                "window_end": 2.0 * (index % 3) + 2.0,
                "prompt_tokens": 100,
                "queued_at": start,
                "finished_at": time.time(),
            }
            if mode == "kill" and index % 7 == 0:
                store.write({**row, "status": "failed", "caption": None, "error": "injected"})
            else:
                store.write({**row, "status": "ok", "caption": caption_of(key), "error": None})
            if index % 50 == 49:
                store.flush()


if __name__ == "__main__":
    main()

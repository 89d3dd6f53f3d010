"""The key -> caption map: incremental saves by count and by time, always on flush/close."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlmcap.sinks.caption_map import CaptionMapWriter, caption_map_path


class FakeClock:
    """Reads ``now``; each reading then advances by ``step`` (0: time stands still)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.step = 0.0

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        return value


def _on_disk(path: Path) -> dict[str, str] | None:
    if not path.exists():
        return None
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_map_path_follows_the_usual_layout(tmp_path: Path) -> None:
    path = caption_map_path(tmp_path, "qwen2.5-vl-7b", "default")
    assert path == tmp_path / "captions" / "qwen2.5-vl-7b" / "qwen2.5-vl-7b_default.json"


def test_saves_every_n_items(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    clock = FakeClock()
    writer = CaptionMapWriter(path, save_every_items=3, save_every_s=1e9, clock=clock)
    writer.add("b", "B")
    writer.add("a", "A")
    assert _on_disk(path) is None
    assert writer.pending == 2
    writer.add("c", "C")
    assert _on_disk(path) == {"a": "A", "b": "B", "c": "C"}
    assert list(json.loads(path.read_text())) == ["a", "b", "c"]  # sorted
    assert writer.pending == 0
    writer.add("d", "D")
    assert _on_disk(path) == {"a": "A", "b": "B", "c": "C"}
    writer.close()
    assert _on_disk(path) == {"a": "A", "b": "B", "c": "C", "d": "D"}
    assert writer.saves == 2


def test_saves_after_t_seconds(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    clock = FakeClock()
    writer = CaptionMapWriter(
        path, {"old": "O"}, save_every_items=1000, save_every_s=30.0, clock=clock
    )
    writer.add("a", "A")
    clock.now += 29.9
    writer.add("b", "B")
    assert _on_disk(path) is None
    clock.now += 0.2
    writer.add("c", "C")
    assert _on_disk(path) == {"a": "A", "b": "B", "c": "C", "old": "O"}
    writer.add("d", "D")
    clock.now += 31
    assert writer.maybe_save()  # an idle loop can save without adding
    assert _on_disk(path) == {"a": "A", "b": "B", "c": "C", "d": "D", "old": "O"}
    assert not writer.maybe_save()  # nothing pending


def test_flush_and_close_always_save(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    writer = CaptionMapWriter(path, save_every_items=1000, save_every_s=1e9, clock=FakeClock())
    writer.flush()
    assert _on_disk(path) == {}
    writer.add("a", "A")
    writer.flush()
    assert _on_disk(path) == {"a": "A"}
    writer.discard("a")
    writer.close()
    assert _on_disk(path) == {}
    with pytest.raises(ValueError, match="closed"):
        writer.add("b", "B")


def test_slow_saves_are_spaced_out(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    clock = FakeClock()
    writer = CaptionMapWriter(
        path, save_every_items=1, save_every_s=0.0, max_save_fraction=0.1, clock=clock
    )
    clock.step = 0.25  # each clock reading advances 0.25 s: the save "takes" 0.25 s
    writer.add("a", "A")  # so the next save waits until 2.5 s after it (10 %)
    clock.step = 0.0
    assert writer.saves == 1
    saves = writer.saves
    writer.add("b", "B")
    assert writer.saves == saves  # not yet, although one item is the threshold
    clock.now += 2.5
    writer.add("c", "C")
    assert writer.saves == saves + 1
    assert _on_disk(path) == {"a": "A", "b": "B", "c": "C"}


def test_before_save_runs_before_every_save(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    seen: list[dict[str, str] | None] = []
    writer = CaptionMapWriter(
        path, save_every_items=1, before_save=lambda: seen.append(_on_disk(path))
    )
    writer.add("a", "A")
    writer.close()
    assert seen == [None, {"a": "A"}]

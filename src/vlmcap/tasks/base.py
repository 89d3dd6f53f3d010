"""What a task is: the part of a run that differs between captioning, visual QA and the next.

The pipeline (``vlmcap.pipeline.run``) does the rest once for every task: decode threads,
the loop over a backend, resume, the output store, progress and the summary. A task says::

    name, row_type                 # its rows (``vlmcap.rows``): JSONL, text map, parquet
    plan(units, should_skip)       # which inputs still need work (resume), as load jobs
    job_key(job)                   # the key of a load job's input
    load(job)                      # one input -> items with their prompts (decode threads;
                                   # never raises: a bad input comes back with its error)
    row(record)                    # a finished record -> the task's row (e.g. the caption,
                                   # or the extracted answer and whether it is right)
    failed_rows(loaded)            # the rows of an input that could not be loaded

Captioning is ``vlmcap.tasks.caption.CaptionTask``; docs/architecture.md shows how visual QA
plugs in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from vlmcap.records import Item, Record
from vlmcap.rows import Row

#: An input of a task (a media file, a question row).
U = TypeVar("U")
#: What ``plan`` hands to ``load`` for one input (the input, plus what to leave out).
J = TypeVar("J")
J_contra = TypeVar("J_contra", contravariant=True)


@dataclass
class Loaded(Generic[U]):
    """What loading one input gave: its items, or the reason it failed."""

    unit: U
    key: str  # the input's key (items of a windowed clip have keys of their own)
    items: list[Item] = field(default_factory=list)
    error: str | None = None
    not_sent: list[str] = field(default_factory=list)  # reasons for items left out (logged)


@dataclass
class Plan(Generic[J]):
    """The inputs still to do (as load jobs) and how many an earlier run finished."""

    jobs: list[J]
    done_before: int


class Task(Protocol[J_contra]):
    """See the module docstring."""

    name: str
    row_type: type[Row]

    def job_key(self, job: J_contra) -> str: ...

    def load(self, job: J_contra) -> Loaded[object]: ...

    def row(self, record: Record) -> Row: ...

    def failed_rows(self, loaded: Loaded[object]) -> list[Row]: ...


#: ``should_skip(key)``: the store's answer to "is this key done?" (counts the skips).
ShouldSkip = Callable[[str], bool]


def plan_by_key(units: Sequence[U], key: Callable[[U], str], should_skip: ShouldSkip) -> Plan[U]:
    """The plan of a task whose inputs are one item each: skip the keys already done."""
    todo = [u for u in units if not should_skip(key(u))]
    return Plan(todo, len(units) - len(todo))

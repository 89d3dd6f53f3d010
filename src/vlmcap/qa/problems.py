"""What is wrong with a question set, and the one report that says it (``vlmcap.qa.dataset``
raises it as ``QuestionSetError``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vlmcap.media.images import display_name

#: The error report lists at most this many problems, then counts the rest.
REPORT_MAX_LINES = 50


class QuestionSetError(ValueError):
    """A question set that cannot be used; the message is one report of every problem."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``row`` (1-based data row, the header not counted) and ``qid`` are
    ``None`` for a problem of the whole file; ``column`` names the column at fault."""

    row: int | None
    qid: str | None
    column: str | None
    cause: str

    def __str__(self) -> str:
        where = [] if self.row is None else [f"row {self.row}"]
        if self.qid is not None:
            where.append(f"(qid {self.qid!r})")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{' '.join(where)}: {self.cause}" if where else self.cause


def format_problems(problems: Sequence[Problem], limit: int = REPORT_MAX_LINES) -> str:
    """The problems one per indented line, at most ``limit`` of them, then a count of the rest."""
    lines = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more problems")
    return "\n".join(lines)


def file_report(source: Path, problems: Sequence[Problem]) -> str:
    """The report of a file that cannot be used at all."""
    return f"{display_name(source)}: cannot be used as a question set:\n{format_problems(problems)}"


def row_report(
    source: Path, problems: Sequence[Problem], total: int, valid: int, *, suggest: bool = True
) -> str:
    """The report of bad rows: how many, which, and what to do (``suggest``: fix them or
    ``--skip-invalid``; else that nothing is usable)."""
    rows = len({p.row for p in problems})
    head = (
        f"{display_name(source)}: {len(problems)} problem{'s' * (len(problems) != 1)} in "
        f"{rows} of {total} rows:"
    )
    if suggest:
        tail = (
            f"Fix these rows, or pass --skip-invalid to leave them out and go on with the "
            f"{valid} valid question{'s' * (valid != 1)}."
        )
    else:
        tail = "No question is usable; nothing to run."
    return f"{head}\n{format_problems(problems)}\n{tail}"

"""What a check found: ``Check`` (one line of the report) and ``Report`` (all of them).

A check is ``ok``, ``warn`` (works, but worth a look) or ``fail`` (something will not run). Every
``warn`` and ``fail`` carries a fix: ``Check`` refuses to be built without one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One finding: ``name`` (what was looked at), ``status``, ``detail`` (what was seen) and,
    for a problem, ``fix`` (what to do about it). ``section`` groups checks in the report."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
    section: str = ""

    def __post_init__(self) -> None:
        if self.status is not Status.OK and not (self.fix and self.fix.strip()):
            raise ValueError(f"check {self.name!r} is {self.status.value} but has no fix")

    @property
    def problem(self) -> bool:
        return self.status is not Status.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "section": self.section,
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def ok(name: str, detail: str) -> Check:
    return Check(name, Status.OK, detail)


def warn(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.WARN, detail, fix)


def fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def in_section(section: str, checks: list[Check]) -> list[Check]:
    """``checks`` with their ``section`` set."""
    return [
        Check(c.name, c.status, c.detail, c.fix, section) if not c.section else c for c in checks
    ]


@dataclass
class Report:
    """Every check of one ``vlmcap doctor`` run, in order."""

    checks: list[Check] = field(default_factory=list)

    def extend(self, section: str, checks: list[Check]) -> None:
        self.checks.extend(in_section(section, checks))

    @property
    def healthy(self) -> bool:
        """True when no check failed (warnings are allowed)."""
        return not any(c.status is Status.FAIL for c in self.checks)

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status is status)

    def find(self, name: str) -> Check | None:
        """The first check called ``name``, if any."""
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "counts": {s.value: self.count(s) for s in Status},
            "checks": [c.to_dict() for c in self.checks],
        }

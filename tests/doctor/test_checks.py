"""``Check`` and ``Report``: a problem always carries its fix; health is "nothing failed"."""

from __future__ import annotations

import pytest

from vlmcap.doctor.checks import Check, Report, Status, fail, ok, warn


@pytest.mark.parametrize("status", [Status.WARN, Status.FAIL])
@pytest.mark.parametrize("fix", [None, "", "   "])
def test_a_problem_without_a_fix_is_refused(status, fix):
    with pytest.raises(ValueError, match="has no fix"):
        Check("x", status, "broken", fix)


def test_warnings_keep_a_report_healthy_and_a_failure_does_not():
    report = Report()
    report.extend("a", [ok("one", "fine"), warn("two", "meh", "do this")])
    assert report.healthy
    report.extend("b", [fail("three", "broken", "do that")])
    assert not report.healthy
    data = report.to_dict()
    assert data["healthy"] is False
    assert data["counts"] == {"ok": 1, "warn": 1, "fail": 1}
    assert [c["section"] for c in data["checks"]] == ["a", "a", "b"]
    assert data["checks"][2] == {
        "section": "b",
        "name": "three",
        "status": "fail",
        "detail": "broken",
        "fix": "do that",
    }
    assert report.find("two") is not None and report.find("four") is None

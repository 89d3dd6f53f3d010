"""Error text of a failed record: one line, short, the actionable cause first."""

from __future__ import annotations

from vlmcap.core.lifecycle import MAX_ERROR_CHARS, describe_error


def raised_from() -> RuntimeError:
    try:
        try:
            raise ValueError("absolute aspect ratio must be smaller than 200, got 500.0")
        except ValueError as inner:
            raise RuntimeError("Failed to apply Processor on data=" + "x" * 900) from inner
    except RuntimeError as outer:
        return outer


def test_the_cause_leads_and_the_wrapper_follows_within_the_limit():
    text = describe_error(raised_from())
    assert text.startswith("ValueError: absolute aspect ratio must be smaller than 200, got 500.0")
    assert "(in RuntimeError: Failed to apply Processor" in text
    assert len(text) == MAX_ERROR_CHARS and text.endswith("...")


def test_a_plain_error_is_its_type_and_message_on_one_line():
    assert describe_error(OSError("disk\nfull")) == "OSError: disk full"
    assert describe_error(KeyError()) == "KeyError"

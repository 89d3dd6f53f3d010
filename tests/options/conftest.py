"""Helpers for the option-schema tests: no engine, no server, only the option machinery."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def vlmcap_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` for the ``vlmcap`` logger, which stops propagating once the CLI set it up."""
    logger = logging.getLogger("vlmcap")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="vlmcap")
    yield caplog
    logger.removeHandler(caplog.handler)

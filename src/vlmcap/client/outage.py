"""Noticing that a server stopped listening while requests were in flight to it.

A vLLM server that shuts down or restarts can leave accepted requests hanging (its HTTP server
waits for open connections while it stops). ``OutageWatch`` checks that something still listens
on the server's port (after a connection error, and every few seconds while requests are in
flight) and gives up the attempts sent before, which the client then retries like connection
errors. A slow answer never counts: only a refused connection does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: Seconds between checks that the server still listens, while requests are in flight.
WATCH_INTERVAL_S = 5.0


class ServerLost(Exception):
    """An attempt given up because the server it went to stopped listening meanwhile."""


def refused(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """True when a TCP connection to ``host:port`` is refused (nothing listens there)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:  # a slow or unreachable host proves nothing
        return False


class OutageWatch:
    """Runs attempts so that those sent to a server that stopped listening are given up."""

    def __init__(self, url: str, interval_s: float = WATCH_INTERVAL_S) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.interval_s = interval_s
        self._lost = asyncio.Event()  # set when the attempts started before are lost
        self._active = 0
        self._task: asyncio.Task[None] | None = None

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """``await call()``; raises ``ServerLost`` when the server stops listening meanwhile."""
        if self._task is None and self.interval_s > 0:
            self._task = asyncio.create_task(self._watch())
        attempt = asyncio.ensure_future(call())
        lost = asyncio.ensure_future(self._lost.wait())
        self._active += 1
        try:
            await asyncio.wait({attempt, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._active -= 1
            lost.cancel()
            given_up = not attempt.done()
            if given_up:
                attempt.cancel()
        if given_up:
            raise ServerLost("the server stopped listening while the request was in flight")
        return attempt.result()

    async def check(self) -> bool:
        """True, and every attempt in flight given up, when nothing listens any more."""
        gone = await asyncio.to_thread(refused, self.host, self.port)
        if gone:
            self._lost.set()
            self._lost = asyncio.Event()
        return gone

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self._active:
                await self.check()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

"""``--profile`` through a server: the client starts and stops the server's torch profiler.

``vlmcap serve --profile DIR`` starts vLLM's server with its profiler configured
(``vlmcap.debug.profiler.profiler_config``), which gives it ``POST /start_profile`` and
``POST /stop_profile``. A client job with ``--server-url`` and ``--profile`` drives them::

    profiler = ServerProfiler.from_config(config, url, api_key)
    profiler.follow(progress)   # started now, stopped after profile_steps finished requests
    ...                         # the run
    profiler.finish()           # stopped now if still on; the traces seen here

The server writes the traces (its engine worker's and its front end's, named ``prefix...``)
into its own DIR; they are summarised here when the client's ``--profile`` folder shows them
(the same folder, on the same machine or a shared disk), else the log says where they are.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from vlmcap.debug.profile_summary import ProfileSummary, log_summary, summarise
from vlmcap.debug.profiler import new_prefix, profile_dir
from vlmcap.debug.traces import DEFAULT_TOP, find_traces

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.core.progress import Progress

logger = logging.getLogger(__name__)

#: The server's profiler endpoints, and how long a stop (which writes the traces) may take.
START_PATH = "/start_profile"
STOP_PATH = "/stop_profile"
SERVER_TIMEOUT_S = 300.0
#: Seconds between two looks at the run's progress (``ServerProfiler.follow``).
FOLLOW_INTERVAL_S = 0.1
#: Characters of a refusal's body quoted in the error.
ERROR_BODY_CHARS = 200


class ProfilerError(RuntimeError):
    """The server's profiler could not be started or stopped; ``str(exc)`` says why."""


def _base_url(url: str) -> str:
    """``http://host:port`` of a server URL (a ``/v1`` or other path dropped)."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


@dataclass
class ServerProfiler:
    """A vLLM server's profiler, for the first ``steps`` requests of a client run.

    ``trace_dir`` is where this machine sees the server's ``--profile`` folder (None: nowhere);
    the server names this profile's traces ``prefix...``.
    """

    url: str
    api_key: str | None = None
    steps: int = 1
    trace_dir: Path | None = None
    prefix: str = field(default_factory=new_prefix)
    timeout_s: float = SERVER_TIMEOUT_S
    top: int = DEFAULT_TOP
    summary: ProfileSummary | None = None
    stopped_after: int | None = None  # requests finished when the watcher stopped it
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _running: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = _base_url(self.url)
        if self.steps < 1:
            raise ValueError(f"profile at least one request, not {self.steps}")
        if self.trace_dir is not None:
            self.trace_dir = profile_dir(self.trace_dir)

    @classmethod
    def from_config(cls, config: VLMConfig, url: str, api_key: str | None = None) -> ServerProfiler:
        if config.profile is None:
            raise ValueError("config.profile is not set")
        return cls(url, api_key, config.profile_steps, trace_dir=config.profile)

    @property
    def running(self) -> bool:
        return self._running

    def _post(self, path: str, body: dict[str, Any] | None = None) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = httpx.post(
                self.url + path, json=body, headers=headers, timeout=self.timeout_s
            )
        except httpx.HTTPError as exc:
            raise ProfilerError(f"POST {self.url}{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == httpx.codes.NOT_FOUND:
            raise ProfilerError(
                f"{self.url} has no {path}: start the server with `vlmcap serve --profile DIR`"
            )
        if response.is_error:
            said = response.text[:ERROR_BODY_CHARS]
            raise ProfilerError(f"POST {self.url}{path} answered {response.status_code}: {said}")

    def start(self) -> None:
        """Start the server's profiler now; raises ``ProfilerError``."""
        with self._lock:
            if self._running:
                return
            self._post(START_PATH, {"profile_prefix": self.prefix})
            self._running = True
        logger.info(
            "profile: server profiler on at %s for %d requests (traces %s*)",
            self.url,
            self.steps,
            self.prefix,
        )

    def stop(self) -> list[Path]:
        """Stop the server's profiler (it writes its traces), if on; the traces seen here."""
        with self._lock:
            if not self._running:
                return list(self.summary.traces) if self.summary is not None else []
            self._running = False
            try:
                self._post(STOP_PATH)
            except ProfilerError as exc:
                logger.warning("profile: %s", exc)
                return []
        return self._report()

    def _report(self) -> list[Path]:
        where = "its --profile directory" if self.trace_dir is None else str(self.trace_dir)
        if self.trace_dir is not None and find_traces(self.trace_dir, self.prefix):
            self.summary = summarise(self.trace_dir, self.prefix, self.top)
            log_summary(self.summary)
            return list(self.summary.traces)
        logger.info(
            "profile: the server wrote its traces (%s*) into %s on its own machine; not "
            "readable here",
            self.prefix,
            where,
        )
        return []

    def follow(self, progress: Progress) -> bool:
        """Start now, and stop once ``steps`` more requests of ``progress`` have finished
        (a daemon thread watches); False (with a warning) when the server cannot profile."""
        try:
            self.start()
        except ProfilerError as exc:
            logger.warning("profile: not profiling: %s", exc)
            return False
        target = progress.view().requests_done + self.steps
        self._done.clear()
        self._thread = threading.Thread(
            target=self._watch, args=(progress, target), name="vlmcap-profile", daemon=True
        )
        self._thread.start()
        return True

    def _watch(self, progress: Progress, target: int) -> None:
        while not self._done.wait(FOLLOW_INTERVAL_S):
            done = progress.view().requests_done
            if done >= target:
                self.stopped_after = done
                self.stop()
                return

    def finish(self) -> list[Path]:
        """End of the run: stop the profiler if still on (fewer requests than ``steps``); the
        traces seen here."""
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timeout_s)
        return self.stop()

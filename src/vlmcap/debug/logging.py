"""The one place that configures logging (the CLI calls it; as a library vlmcap only has
loggers, and leaves the root logger and vLLM's alone).

A job (``vlmcap caption``, ``vlmcap qa``) runs inside ``job_logging(options, log_dir, name)``:

- by default the terminal shows vlmcap's own lines, progress and summary; everything else that
  any process prints (vLLM in this process and in its engine processes, PyTorch, the
  libraries) goes to ``OUTPUT_DIR/logs/<name>-<time>.log`` (``vlmcap.debug.terminal``), and
  its warnings and errors are summarised on the terminal once: after the engine has loaded
  and at the end, each distinct one once (``vlmcap.debug.log_digest``). The run log also holds
  vlmcap's records, and the end of the run names it;
- ``-v`` / ``--verbose`` (or ``--log-level DEBUG``) leaves everything on the terminal;
- ``--log-file PATH`` adds a rotating file of vlmcap's and vLLM's records (this process),
  ``--log-json`` writes records as one JSON object per line (to that file, else to stderr);
- ``--vllm-log-level`` sets ``VLLM_LOGGING_LEVEL``, which vLLM reads in every process;
- ``--log-preset production``: INFO, vLLM at WARNING, plain lines on stdout and the run log;
  ``development``: DEBUG with file:line, everything on the terminal.

Commands without these options get ``setup_logging()``: vlmcap's records on the terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import logging.handlers
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.logging import RichHandler
from rich.markup import escape

from vlmcap import envs
from vlmcap.debug import terminal
from vlmcap.debug.log_digest import LogDigest, Notice

if TYPE_CHECKING:
    from vlmcap.options.debug import LogOptions

#: Folder of the run logs, inside the output folder.
LOGS_DIR = "logs"
#: ``--log-file`` is rotated at this size, keeping this many older files.
LOG_FILE_MAX_BYTES = 50 * 1024 * 1024
LOG_FILE_BACKUPS = 5
TERMINAL_FORMAT = "%(name)s: %(message)s"  # rich adds the time and level
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOCATION_FORMAT = "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)d: %(message)s"
#: Notices listed on the terminal at once; the log file has them all.
MAX_NOTICES_SHOWN = 6
_OURS = "vlmcap"
_VLLM = "vllm"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LogSettings:
    """What ``LogOptions`` (and a preset) come to."""

    level: str = "INFO"
    vllm_level: str | None = None
    quiet: bool = True  # other processes' output goes to the run log, not the terminal
    stdout: bool = False  # our records on stdout (production), not stderr
    location: bool = False  # file:line in every record
    json: bool = False
    log_file: Path | None = None

    @classmethod
    def from_options(cls, options: LogOptions) -> LogSettings:
        preset = options.log_preset
        preset_level = "DEBUG" if preset == "development" else None
        level: str = options.log_level or preset_level or envs.get("VLMCAP_LOG_LEVEL").upper()
        vllm_level = options.vllm_log_level or ("WARNING" if preset == "production" else None)
        verbose = options.verbose or level == "DEBUG" or preset is not None
        return cls(
            level=level,
            vllm_level=vllm_level,
            quiet=not verbose,
            stdout=preset == "production",
            location=preset == "development",
            json=options.log_json,
            log_file=options.log_file,
        )

    @property
    def record_format(self) -> str:
        return LOCATION_FORMAT if self.location else PLAIN_FORMAT


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, process, place, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
            "process": record.processName,
            "thread": record.threadName,
            "file": record.pathname,
            "line": record.lineno,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _terminal_handler(settings: LogSettings) -> logging.Handler:
    stream = terminal.stdout() if settings.stdout else terminal.stderr()
    if settings.json and settings.log_file is None:
        handler: logging.Handler = logging.StreamHandler(stream)
        handler.setFormatter(JsonFormatter())
    elif stream.isatty() and not settings.stdout:
        handler = RichHandler(
            console=terminal.console(stderr=True),
            show_path=settings.location,
            rich_tracebacks=False,
            markup=False,
        )
        handler.setFormatter(logging.Formatter(TERMINAL_FORMAT))
    else:  # a pipe or a file: whole lines, never wrapped
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(settings.record_format))
    return handler


def _file_handler(path: Path, settings: LogSettings, *, rotating: bool) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler: logging.Handler
    if rotating:
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
        handler.setFormatter(
            JsonFormatter() if settings.json else logging.Formatter(settings.record_format)
        )
    else:
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(settings.record_format))
    return handler


def _install(log: logging.Logger, handlers: list[logging.Handler], level: str) -> None:
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    for handler in handlers:
        log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def setup_logging(level: str | None = None) -> None:
    """vlmcap's records on the terminal (stderr) at ``level`` (default ``$VLMCAP_LOG_LEVEL``)."""
    settings = LogSettings(level=(level or envs.get("VLMCAP_LOG_LEVEL")).upper(), quiet=False)
    _install(logging.getLogger(_OURS), [_terminal_handler(settings)], settings.level)


class LogSession:
    """A job's logging while it runs: the run log, the notices digest, the ``--log-file``."""

    def __init__(self, settings: LogSettings, run_log: Path | None) -> None:
        self.settings = settings
        self.run_log = run_log
        self.digest = LogDigest(run_log if settings.quiet else None)
        self.extra: logging.Handler | None = None  # --log-file, shared with vLLM's logger

    def adopt_vllm_logger(self) -> None:
        """Send this process's vLLM records to ``--log-file`` too (call it once vLLM is
        imported: vLLM configures its logger at import). Its own handler stays: it writes to
        descriptor 1, which is the run log while the terminal is quiet."""
        if self.extra is None:
            return
        vllm_logger = logging.getLogger(_VLLM)
        if self.extra not in vllm_logger.handlers:
            vllm_logger.addHandler(self.extra)

    def report_notices(self) -> None:
        """List on the terminal the warnings and errors logged since the last report."""
        if not self.settings.quiet:
            return
        fresh = self.digest.take_new()
        if fresh:
            print_notices(fresh, self.run_log)

    def close(self) -> None:
        vllm_logger = logging.getLogger(_VLLM)
        if self.extra is not None and self.extra in vllm_logger.handlers:
            vllm_logger.removeHandler(self.extra)


def print_notices(notices: list[Notice], run_log: Path | None) -> None:
    """The digest's notices, most frequent first, as a few lines on the terminal."""
    err = terminal.console(stderr=True, soft_wrap=True, highlight=False)
    where = f" (full text in {escape(str(run_log))})" if run_log is not None else ""
    count = f"{len(notices)} warning{'s' if len(notices) > 1 else ''}"
    err.print(f"[yellow]{count} from vLLM/PyTorch{where}:[/yellow]")
    ordered = sorted(notices, key=lambda n: (n.level != "ERROR", -n.count))
    for notice in ordered[:MAX_NOTICES_SHOWN]:
        times = f" (x{notice.count})" if notice.count > 1 else ""
        err.print(f"  {notice.source} {notice.level.lower()}: {escape(notice.text)}{times}")
    if len(ordered) > MAX_NOTICES_SHOWN:
        err.print(f"  ... and {len(ordered) - MAX_NOTICES_SHOWN} more in the log")


_sessions: list[LogSession] = []  # the running job's, while ``job_logging`` lasts


def current_session() -> LogSession | None:
    """The running job's ``LogSession`` (None outside ``job_logging``)."""
    return _sessions[-1] if _sessions else None


def run_log_path(log_dir: Path, name: str) -> Path:
    """``log_dir/<name>-<YYYYmmdd-HHMMSS>.log``, a new file for every run."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = log_dir / f"{name}-{stamp}.log"
    serial = 1
    while path.exists():
        serial += 1
        path = log_dir / f"{name}-{stamp}-{serial}.log"
    return path


@contextlib.contextmanager
def job_logging(options: LogOptions, log_dir: Path | None, name: str) -> Iterator[LogSession]:
    """Logging for one job (see the module docstring); ``log_dir`` None: no run log."""
    settings = LogSettings.from_options(options)
    if settings.vllm_level is not None:
        os.environ["VLLM_LOGGING_LEVEL"] = settings.vllm_level
    run_log = run_log_path(log_dir, name) if log_dir is not None else None
    quiet = settings.quiet and run_log is not None and terminal.can_redirect()
    session = LogSession(settings if quiet else dataclasses.replace(settings, quiet=False), run_log)
    ours = logging.getLogger(_OURS)
    handlers = [_terminal_handler(settings)]
    if run_log is not None:
        handlers.append(_file_handler(run_log, settings, rotating=False))
    if settings.log_file is not None:
        session.extra = _file_handler(settings.log_file, settings, rotating=True)
        handlers.append(session.extra)
    with contextlib.ExitStack() as stack:
        if quiet and run_log is not None:
            stack.enter_context(terminal.redirect_output(run_log))
        _install(ours, handlers, settings.level)
        _sessions.append(session)
        try:
            yield session
        finally:
            _sessions.remove(session)
            session.report_notices()
            session.close()
            if run_log is not None:
                terminal.say(f"log: {run_log}")
            setup_logging(settings.level)

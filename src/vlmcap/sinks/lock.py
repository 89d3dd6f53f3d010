"""One writer per output folder: ``folder/.vlmcap.lock``.

The lock file appears atomically with its whole content (written to a temporary file, then
hard-linked to the lock name, which fails if the name exists; where hard links are not supported,
``O_CREAT | O_EXCL``). It holds who took it: pid, host, start time, command and the process
creation time, so a second job can tell the user exactly who holds the folder.

A lock is *stale* when its holder is on this host and is no longer running: the pid is gone, is a
zombie, or now belongs to another process (its creation time differs from the one recorded). A
stale lock is logged and taken over. Taking over is serialised by a short-lived
``.vlmcap.lock.takeover`` file, so two jobs that find the same stale lock cannot both win. A lock
taken on another host is never judged stale: only the user can know whether that job is dead.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shlex
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from vlmcap.sinks.disk_full import writing
from vlmcap.sinks.files import fsync_dir, new_file_mode

logger = logging.getLogger(__name__)

LOCK_NAME = ".vlmcap.lock"
TAKEOVER_SUFFIX = ".takeover"
#: Seconds of tolerance when comparing a recorded process creation time with the live one.
CREATE_TIME_TOLERANCE_S = 1.0
#: How long to wait for another job that is itself taking over a stale lock.
TAKEOVER_WAIT_S = 5.0


class LockedError(RuntimeError):
    """The output folder is held by another job (or its lock cannot be read)."""

    def __init__(self, message: str, *, path: Path, holder: LockInfo | None) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder


@dataclass(frozen=True)
class LockInfo:
    """Content of a lock file."""

    pid: int
    host: str
    started: float  # time.time() when the lock was taken
    command: str
    create_time: float | None = None  # creation time of process ``pid`` (psutil), if known
    token: str = ""  # random id of this holder: release removes the lock only if still ours

    @classmethod
    def for_this_process(cls, command: str | None = None) -> LockInfo:
        return cls(
            pid=os.getpid(),
            host=socket.gethostname(),
            started=time.time(),
            command=command if command is not None else shlex.join(sys.argv),
            create_time=_process_create_time(os.getpid()),
            token=uuid.uuid4().hex,
        )

    @classmethod
    def from_json(cls, text: str) -> LockInfo:
        """Parse a lock file; raises ``ValueError`` if it is not one."""
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("lock file is not a JSON object")
        try:
            create_time = data.get("create_time")
            return cls(
                pid=int(data["pid"]),
                host=str(data["host"]),
                started=float(data["started"]),
                command=str(data.get("command", "")),
                create_time=None if create_time is None else float(create_time),
                token=str(data.get("token", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"lock file lacks a valid field: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def describe(self) -> str:
        """``pid 123 on host gpu-7 since 2026-11-22 10:04:05 (3.2 h ago), command: ...``"""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        text = f"pid {self.pid} on host {self.host} since {since} ({_ago(self.started)})"
        if self.command:
            text += f", command: {self.command}"
        return text


def _ago(instant: float) -> str:
    seconds = max(0.0, time.time() - instant)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def _process_create_time(pid: int) -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _process_alive(pid: int) -> bool:
    """True when ``pid`` runs on this host and is not a zombie."""
    try:
        import psutil
    except ImportError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except (psutil.Error, OSError):
        return True  # cannot tell: assume alive


def stale_reason(info: LockInfo) -> str | None:
    """Why ``info``'s holder is certainly gone (``None``: it may be alive, or on another host)."""
    if info.host != socket.gethostname():
        return None
    if not _process_alive(info.pid):
        return f"process {info.pid} is no longer running"
    if info.create_time is not None:
        live = _process_create_time(info.pid)
        if live is not None and abs(live - info.create_time) > CREATE_TIME_TOLERANCE_S:
            return f"pid {info.pid} now belongs to another process (started later)"
    return None


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` atomically; False if it already exists (a full disk:
    ``DiskFullError``)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode())
        with writing(path), os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            return _create_exclusive_no_link(path, text)
    finally:
        Path(tmp).unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def _create_exclusive_no_link(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    try:
        with writing(path), os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # a lock file without its content would block the folder
        raise
    return True


def _read_info(path: Path) -> tuple[LockInfo | None, str | None]:
    """(parsed content, raw text); ``(None, None)`` when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None, None
    try:
        return LockInfo.from_json(text), text
    except ValueError:
        return None, text


class OutputLock:
    """Context manager holding ``folder/.vlmcap.lock`` for the lifetime of a job.

    ``acquire`` raises :class:`LockedError` when another live job (or a job on another host)
    holds the folder; a stale lock of a dead job on this host is taken over with a warning.
    """

    def __init__(self, folder: Path, *, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._command = command
        self.info: LockInfo | None = None

    @property
    def held(self) -> bool:
        return self.info is not None

    def acquire(self) -> LockInfo:
        if self.info is not None:
            raise RuntimeError(f"{self.path} is already held by this OutputLock")
        self.folder.mkdir(parents=True, exist_ok=True)
        info = LockInfo.for_this_process(self._command)
        deadline = time.monotonic() + TAKEOVER_WAIT_S
        while True:
            if _create_exclusive(self.path, info.to_json()):
                self.info = info
                logger.debug("locked %s", self.folder)
                return info
            holder, text = _read_info(self.path)
            if text is None:
                continue  # released between our attempt and the read: try again
            if holder is None:
                if not text.strip() and time.monotonic() < deadline:
                    time.sleep(0.05)  # possibly being written (no-hard-link fallback)
                    continue
                raise LockedError(self._unreadable_message(text), path=self.path, holder=None)
            reason = stale_reason(holder)
            if reason is None:
                raise LockedError(self._held_message(holder), path=self.path, holder=holder)
            if self._take_over(holder, text, reason):
                continue
            if time.monotonic() > deadline:
                raise LockedError(
                    f"{self.folder} is being taken over by another job right now "
                    f"({self.path}{TAKEOVER_SUFFIX} exists). Try again in a moment; if it "
                    f"stays, delete that file.",
                    path=self.path,
                    holder=holder,
                )
            time.sleep(0.05)

    def _take_over(self, holder: LockInfo, text: str | None, reason: str) -> bool:
        """Remove the stale lock ``holder`` unless someone else is doing it; True if removed
        (or gone already), False if another job holds the takeover file."""
        guard = self.path.with_name(self.path.name + TAKEOVER_SUFFIX)
        me = LockInfo.for_this_process(self._command)
        if not _create_exclusive(guard, me.to_json()):
            other, _ = _read_info(guard)
            if other is not None and stale_reason(other) is not None:
                logger.warning("removing abandoned %s (%s)", guard, other.describe())
                guard.unlink(missing_ok=True)
            return False
        try:
            _, current = _read_info(self.path)
            if current != text:
                return True  # changed meanwhile: look again from the start
            logger.warning(
                "taking over stale lock %s: %s (%s)", self.path, holder.describe(), reason
            )
            self.path.unlink(missing_ok=True)
            fsync_dir(self.folder)
            return True
        finally:
            guard.unlink(missing_ok=True)

    def _held_message(self, holder: LockInfo) -> str:
        if holder.host == socket.gethostname() and holder.pid == os.getpid():
            return (
                f"Output folder {self.folder} is already in use by this process "
                f"({holder.describe()}): close the other writer of that folder first."
            )
        head = f"Output folder {self.folder} is in use by another vlmcap job: {holder.describe()}."
        if holder.host != socket.gethostname():
            return (
                f"{head} That job runs on another host ({holder.host}), so it cannot be checked "
                f"from here. Wait for it to finish or choose another output folder; if that job "
                f"is no longer running, delete {self.path} and start again."
            )
        return (
            f"{head} That process is still running: wait for it to finish, stop it "
            f"(kill {holder.pid}), or choose another output folder."
        )

    def _unreadable_message(self, text: str) -> str:
        preview = text[:80].replace("\n", " ")
        return (
            f"Output folder {self.folder} has a lock file that cannot be read ({self.path}: "
            f"{preview!r}). Another job may be using the folder. If no vlmcap job is writing "
            f"there, delete {self.path} and start again."
        )

    def release(self) -> None:
        """Remove the lock file if it is still ours (a takeover by another job leaves it)."""
        info, self.info = self.info, None
        if info is None:
            return
        current, _ = _read_info(self.path)
        if current is None or current.token != info.token:
            logger.warning("lock %s is no longer ours; leaving it in place", self.path)
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fsync_dir(self.folder)

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

"""The URL file: how clients find a server started elsewhere (another node, another job).

``vlmcap serve --url-file PATH`` writes one line, the URL clients can reach, once the server
answers ``/health``, and removes the file when it shuts down. ``vlmcap caption --server-url-file
PATH`` waits for the file to appear. The file is replaced atomically (write a temporary file,
then rename), so a reader never sees half a URL.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from pathlib import Path

from vlmcap.client import ServerUnavailableError

logger = logging.getLogger(__name__)

#: Addresses that mean "every interface": clients must use this machine's name instead.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def client_url(host: str, port: int) -> str:
    """The URL a client uses for a server bound to ``host:port``.

    A wildcard bind is reached through this machine's host name (what other nodes of a cluster
    resolve); any other host is used as given.
    """
    name = socket.gethostname() if host in WILDCARD_HOSTS else host
    if ":" in name and not name.startswith("["):  # a bare IPv6 address
        name = f"[{name}]"
    return f"http://{name}:{port}"


def write_url_file(path: Path, url: str) -> None:
    """Atomically make ``path`` hold ``url`` (one line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(url + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_url_file(path: Path) -> str | None:
    """The URL in ``path``, or None when the file is missing or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return None
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line or None


def remove_url_file(path: Path, url: str) -> bool:
    """Remove ``path`` if it still holds ``url`` (a newer server's file is left alone)."""
    if read_url_file(path) != url:
        return False
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


def wait_for_url_file(path: Path, timeout_s: float, poll_s: float = 1.0) -> str:
    """The URL in ``path``, waiting up to ``timeout_s`` for the file to appear.

    Raises ``ServerUnavailableError`` on timeout.
    """
    deadline = time.monotonic() + timeout_s
    logged = False
    while True:
        url = read_url_file(path)
        if url is not None:
            return url
        if time.monotonic() >= deadline:
            raise ServerUnavailableError(
                f"no server URL in {path} after {timeout_s:.0f} s: start the server with "
                f"`vlmcap serve ... --url-file {path}` (it writes the file once it is ready), "
                "or pass --server-url"
            )
        if not logged:
            logger.info("waiting for the server URL file %s", path)
            logged = True
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

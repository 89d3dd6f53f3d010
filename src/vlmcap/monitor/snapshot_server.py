"""``vlmcap serve --snapshot-port``: the server's health snapshot on a side port.

    GET /snapshot       the snapshot as one JSON object (``HealthSnapshot.to_dict()``)
    GET /snapshot.txt   the same as text, one figure per line (n/a with its reason)

Each request takes a fresh snapshot from ``source`` (the server's ``/metrics`` and ``/health``);
the port is bound to the address the server listens on.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vlmcap.monitor.source import SnapshotSource

logger = logging.getLogger(__name__)

JSON_PATH = "/snapshot"
TEXT_PATH = "/snapshot.txt"
HTTP_OK = 200
HTTP_NOT_FOUND = 404


def snapshot_text(source: SnapshotSource) -> str:
    snapshot = source.snapshot()
    lines = [
        f"{name}: {value}" + (f"  ({why})" if why else "") for name, value, why in snapshot.rows()
    ]
    return "\n".join([snapshot.summary(), *lines]) + "\n"


class SnapshotServer:
    """Serves ``source``'s snapshots on ``host:port`` (``port`` 0: a free one) in a thread."""

    def __init__(self, source: SnapshotSource, host: str, port: int) -> None:
        self.source = source

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == JSON_PATH:
                    body = json.dumps(source.snapshot().to_dict()).encode()
                    kind = "application/json"
                elif self.path == TEXT_PATH:
                    body, kind = snapshot_text(source).encode(), "text/plain; charset=utf-8"
                else:
                    self.send_error(HTTP_NOT_FOUND, f"try {JSON_PATH} or {TEXT_PATH}")
                    return
                self.send_response(HTTP_OK)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("snapshot request: " + format, *args)

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.host, self.port = host, int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="vlmcap-snapshots", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{JSON_PATH}"

    def start(self) -> SnapshotServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

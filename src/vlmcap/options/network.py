"""Server mode's options: how ``vlmcap caption`` reaches a server, and where ``vlmcap serve``
listens. ``ClientConfig`` (``vlmcap.client.openai_client``) and ``ServeOptions``
(``vlmcap.server.command``) take their defaults from the constants here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from vlmcap.options.base import OptionGroup, flag

#: Served model name that means "the server's only model".
AUTO_MODEL = "auto"
DEFAULT_CONCURRENCY = 16
DEFAULT_REQUEST_TIMEOUT_S = 600.0
DEFAULT_RETRIES = 8
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
MIN_PORT = 1
MAX_PORT = 65535
#: Seconds ``vlmcap serve`` waits for the server's ``/health`` (big models load slowly).
DEFAULT_STARTUP_TIMEOUT_S = 900.0


class ClientOptions(OptionGroup):
    """``vlmcap caption``'s side of server mode; without a URL the run is offline."""

    group = "client"
    panel = "Server client (caption through vlmcap serve)"

    server_url: Annotated[str | None, flag(metavar="URL")] = Field(
        default=None, description="Caption through this vLLM server; no model is loaded here."
    )
    server_url_file: Annotated[Path | None, flag(metavar="PATH")] = Field(
        default=None,
        description="Read the server URL from this file (`vlmcap serve --url-file`); waits for it.",
    )
    served_model: str = Field(
        default=AUTO_MODEL, description=f"Model name on the server; {AUTO_MODEL}: its only one."
    )
    api_key: Annotated[str | None, flag(default_text="$OPENAI_API_KEY")] = Field(
        default=None, description="The server's API key."
    )
    concurrency: int = Field(
        default=DEFAULT_CONCURRENCY, ge=1, description="Server requests in flight."
    )
    request_timeout: float = Field(
        default=DEFAULT_REQUEST_TIMEOUT_S, gt=0, description="Seconds per server request attempt."
    )
    retries: int = Field(
        default=DEFAULT_RETRIES,
        ge=0,
        description="Retries on connection errors, timeouts, 429 and 5xx (with backoff).",
    )


class ServerOptions(OptionGroup):
    """``vlmcap serve``'s network side; its engine options are ``EngineOptions``."""

    group = "server"
    panel = "Server"

    host: str = Field(
        default=DEFAULT_HOST,
        description="Address to listen on; 0.0.0.0 for other machines (use --api-key).",
    )
    port: int = Field(
        default=DEFAULT_PORT, ge=MIN_PORT, le=MAX_PORT, description="Port to listen on."
    )
    api_key: Annotated[str | None, flag(default_text="$VLLM_API_KEY")] = Field(
        default=None, description="Clients must send this key."
    )
    url_file: Annotated[Path | None, flag(metavar="PATH")] = Field(
        default=None,
        description="Once ready, write the URL clients can reach here; removed on shutdown.",
    )
    snapshot_port: Annotated[int | None, flag(metavar="PORT")] = Field(
        default=None,
        ge=MIN_PORT,
        le=MAX_PORT,
        description="Serve health snapshots here: /snapshot (JSON), /snapshot.txt.",
    )
    startup_timeout: Annotated[float, flag(metavar="S")] = Field(
        default=DEFAULT_STARTUP_TIMEOUT_S,
        gt=0,
        description="Seconds to wait for the server to be ready.",
    )
    print_command: bool = Field(default=False, description="Print the vLLM command and exit.")
    extra_args: Annotated[list[str], flag(argument=True, metavar="VLLM_ARGS")] = Field(
        default_factory=list,
        description="Extra vLLM server arguments, after `--` (they override ours).",
    )

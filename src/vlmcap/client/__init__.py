"""Server mode: caption through an OpenAI-compatible vLLM server instead of an in-process engine.

    vlmcap serve --model qwen2.5-vl --url-file run/server.url    # one process owns the model
    vlmcap caption media/ --server-url-file run/server.url       # any number of clients

Modules (the server itself is started by ``vlmcap.server``):

    messages       caption media -> OpenAI chat content (data URLs)
    openai_client  async requests: bounded concurrency, timeouts, retries with backoff
    outage         giving up requests in flight to a server that stopped listening
    transport      ``ServerTransport``: chat completions as the loop driver's transport

The error classes live here so that callers can catch them without importing ``openai``.
"""

from __future__ import annotations

__all__ = ["ServedModelError", "ServerAuthError", "ServerError", "ServerUnavailableError"]


class ServerError(RuntimeError):
    """A problem with the server as a whole, not with one item; the message says what to do.

    A run stops on it: items already written stay, the rest are redone when the same command
    is run again (resume).
    """


class ServerUnavailableError(ServerError):
    """The server cannot be reached (after the retries), or its URL file never appeared."""


class ServerAuthError(ServerError):
    """The server refused the API key (HTTP 401/403); never retried."""


class ServedModelError(ServerError):
    """The requested model is not served (or ``auto`` found none or several)."""

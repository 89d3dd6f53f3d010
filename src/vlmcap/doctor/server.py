"""Does a vLLM server answer at ``--server-url``, and what does it serve?

``GET /health`` (no key needed), ``GET /version`` (vLLM's, when it has one) and ``GET /v1/models``
(with the API key, as ``vlmcap caption --server-url`` sends it), each with a short timeout.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from vlmcap.client.openai_client import normalize_url
from vlmcap.doctor.checks import Check, fail, ok, warn

#: Seconds each request may take: a live server answers these in milliseconds.
SERVER_TIMEOUT_S = 3.0
HTTP_OK = 200
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
START_FIX = (
    "start one with `vlmcap serve --model VARIANT` (it prints the URL to use), or check the "
    "host and port of --server-url"
)
KEY_FIX = "pass --api-key KEY (or set $OPENAI_API_KEY) with the key the server was started with"


def _get(client: httpx.Client, url: str, api_key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return client.get(url, headers=headers)


def _request_failure(name: str, url: str, exc: Exception, timeout_s: float) -> Check:
    if isinstance(exc, httpx.TimeoutException):
        return fail(
            name,
            f"no answer from {url} within {timeout_s:g} s",
            "the server may still be loading its model (look at its log) or be overloaded; "
            "otherwise check that the host is reachable from here",
        )
    if isinstance(exc, httpx.ConnectError):
        return fail(name, f"nothing answers at {url} ({exc})", START_FIX)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return fail(name, f"{url} is not a usable URL: {exc}", "pass --server-url http://HOST:PORT")
    return fail(name, f"{url}: {type(exc).__name__}: {exc}", START_FIX)


def health_check(client: httpx.Client, base: str, timeout_s: float) -> Check:
    name = "server health"
    url = f"{base}/health"
    try:
        response = _get(client, url)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return _request_failure(name, url, exc, timeout_s)
    if response.status_code == HTTP_NOT_FOUND:
        return fail(
            name,
            f"{url} answered 404: not a vLLM server?",
            "point --server-url at a vLLM OpenAI server (`vlmcap serve` starts one)",
        )
    if response.status_code != HTTP_OK:
        return fail(
            name,
            f"{url} answered HTTP {response.status_code}: the engine is not ready or has died",
            "look at the server's log, and restart it (`vlmcap serve ...`) if its engine died",
        )
    detail = f"{base} is up"
    version = _server_version(client, base)
    if version:
        detail += f" (vLLM {version})"
    return ok(name, detail)


def _server_version(client: httpx.Client, base: str) -> str | None:
    """vLLM's version from ``GET /version``, when the server has that route."""
    try:
        response = _get(client, f"{base}/version")
        if response.status_code != HTTP_OK:
            return None
        version = response.json().get("version")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return str(version) if version else None


def _describe(entry: dict[str, Any]) -> str:
    extras = [f"{key} {entry[key]}" for key in ("root", "max_model_len") if entry.get(key)]
    return f"{entry.get('id')}" + (f" ({', '.join(extras)})" if extras else "")


def models_check(
    client: httpx.Client, base: str, api_key: str | None, timeout_s: float, model: str | None
) -> Check:
    name = "server models"
    url = f"{base}/v1/models"
    try:
        response = _get(client, url, api_key)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return _request_failure(name, url, exc, timeout_s)
    if response.status_code in {HTTP_UNAUTHORIZED, HTTP_FORBIDDEN}:
        said = "refused the API key" if api_key else "needs an API key"
        return fail(name, f"{url}: HTTP {response.status_code}, the server {said}", KEY_FIX)
    if response.status_code != HTTP_OK:
        return fail(
            name,
            f"{url} answered HTTP {response.status_code}",
            "look at the server's log; `vlmcap serve` serves the OpenAI API under /v1",
        )
    try:
        entries = [e for e in response.json().get("data", []) if isinstance(e, dict)]
    except (ValueError, AttributeError) as exc:
        return fail(
            name,
            f"{url} did not answer a model list: {exc}",
            "point --server-url at a vLLM OpenAI server",
        )
    if not entries:
        return fail(name, f"{url} lists no model", "restart the server with a model")
    served = [str(e.get("id")) for e in entries]
    detail = "serves " + "; ".join(_describe(e) for e in entries)
    if model is not None and model not in served:
        return warn(
            name,
            f"{detail}, not {model!r}",
            f"caption with --served-model {served[0]}, or start a server with --model {model}",
        )
    return ok(name, detail)


def server_checks(
    url: str,
    api_key: str | None = None,
    *,
    model: str | None = None,
    timeout_s: float = SERVER_TIMEOUT_S,
) -> list[Check]:
    """Health, then the served models (skipped when the server does not answer)."""
    try:
        base = normalize_url(url)
    except ValueError as exc:
        return [fail("server health", str(exc), "pass --server-url http://HOST:PORT")]
    key = api_key or os.environ.get("OPENAI_API_KEY") or None
    with httpx.Client(timeout=timeout_s) as client:
        health = health_check(client, base, timeout_s)
        if health.problem:
            return [health]
        return [health, models_check(client, base, key, timeout_s, model)]

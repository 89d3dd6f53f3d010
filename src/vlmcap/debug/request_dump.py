"""Single requests looked at closely, on every transport: ``RequestDebugger`` and ``debug_request``.

``RequestDebugger`` is the one observer of requests the lifecycle (``vlmcap.core.lifecycle``)
consults, on the loop's thread::

    RequestDebugger.from_config(config, plugin, output_dir)   None when every switch is off
    lifecycle._stage -> debugger.prepare(stage_request)       the request's sampling: logprobs=K
                                                              for the first --logprobs-first
    lifecycle.settle -> debugger.settled(record, stage, completion)
        VLMCAP_DEBUG_REQUESTS=1          debug_request: one log entry per request
        --debug-request KEY / --debug-first N
                                         OUTPUT_DIR/debug/<name>.json + <name>.media.npz
        --logprobs K                     one line in OUTPUT_DIR/debug/logprobs.jsonl

A dump holds what ``vlmcap.debug.replay`` needs to run the request again: the chat turns with
their media placeholders, the prompt the model saw (offline: the chat template's output;
through a server: the chat messages with data URLs described, the prompt rendered here and the
one the server reports), the media as exact uint8 arrays (``.media.npz``: ``image_<i>`` of
``(H, W, 3)`` or ``video`` of ``(T, H, W, 3)``) with their fps, the sampling, and the raw
output. A failure to write is logged as a warning and never fails the run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from vlmcap.core.request import STAGE2_SUFFIX
from vlmcap.media.dump import safe_prefix
from vlmcap.media.frames import media_shape
from vlmcap.records import Status

if TYPE_CHECKING:
    import numpy as np

    from vlmcap.client.messages import MediaEncoding, VideoMode
    from vlmcap.config import VLMConfig
    from vlmcap.core.request import Completion, ModelRequest, Sampling, StageRequest
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.records import Record

logger = logging.getLogger(__name__)

TransportKind = Literal["engine", "server"]
#: ``format`` field of every dump file; ``DUMP_VERSION`` changes when its layout does.
DUMP_FORMAT = "vlmcap.request-dump"
DUMP_VERSION = 1
#: Subfolder of the output folder that holds dumps and logprobs.
DEBUG_DIR = "debug"
#: Suffix of a dump's media file, next to its JSON.
MEDIA_SUFFIX = ".media.npz"
#: Hex digits of the key's hash in a dump's name (keeps keys that clean to one name apart).
NAME_HASH_CHARS = 10
#: Characters of a data URL kept in a dump's description of it.
DATA_URL_HEAD = 32


def debug_request(
    record: Record, completion: Completion | None = None, level: int = logging.INFO
) -> str:
    """Log (and return) a record's prompt, media shape, sampling and output.

    Use it from a debugger, a test, or everywhere at once with ``VLMCAP_DEBUG_REQUESTS=1``
    (then ``RequestDebugger`` runs it as each request finishes).
    """
    request = record.request
    prompt = request.prompt if request is not None else record.prompt
    media = request.media if request is not None else (record.item.media if record.item else None)
    lines = [
        f"request {record.request_id} key={record.key} status={record.status}",
        f"  prompt: {prompt!r}",
        f"  media: {media_shape(media) if media is not None else '-'}",
        f"  sampling: {record.sampling}",
    ]
    if completion is not None:
        lines.append(
            f"  output: finish={completion.finish_reason} tokens={completion.output_tokens} "
            f"error={completion.error!r} text={completion.text!r}"
        )
    lines.append(f"  text={record.text!r} stage1={record.stage1_text!r} error={record.error!r}")
    text = "\n".join(lines)
    logger.log(level, "%s", text)
    return text


def dump_name(key: str, stage: str) -> str:
    """A file stem for ``key``'s ``stage`` dump: letters, digits, ``._-`` only, never a path."""
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:NAME_HASH_CHARS]
    return f"{safe_prefix(key)}-{digest}-{safe_prefix(stage)}"


def media_arrays(media: Any) -> tuple[str, list[np.ndarray]]:
    """``("video", [(T, H, W, 3) uint8])`` or ``("image", [(H, W, 3) uint8, ...])``: the
    pixels a request's media turn into, exactly (the engine and the encoders use the same)."""
    import numpy as np

    from vlmcap.media.frames import as_image_list, is_video, video_to_uint8_thwc

    if is_video(media):
        return "video", [video_to_uint8_thwc(media)]
    return "image", [np.asarray(image, dtype=np.uint8) for image in as_image_list(media)]


def array_info(array: Any) -> dict[str, Any]:
    """Shape, dtype and value range of an array or tensor (or a PIL image's mode and size)."""
    import numpy as np
    from PIL import Image

    if isinstance(array, Image.Image):
        return {"type": "PIL.Image", "mode": array.mode, "size": list(array.size)}
    if hasattr(array, "detach"):  # a torch tensor
        tensor = array.detach()
        empty = tensor.numel() == 0
        low = None if empty else float(tensor.min().item())
        high = None if empty else float(tensor.max().item())
        shape, dtype = list(tensor.shape), str(tensor.dtype)
        return {"type": "torch.Tensor", "shape": shape, "dtype": dtype, "min": low, "max": high}
    arr = np.asarray(array)
    low = float(arr.min()) if arr.size else None
    high = float(arr.max()) if arr.size else None
    shape, dtype = list(arr.shape), str(arr.dtype)
    return {"type": "ndarray", "shape": shape, "dtype": dtype, "min": low, "max": high}


def describe_data_url(url: str) -> str:
    """``data:image/png;base64,...`` -> ``<data:image/png;base64, 1 part, 1234 chars>``."""
    if not url.startswith("data:"):
        return url
    head, _, body = url.partition(",")
    parts = body.count(",") + 1 if body else 0
    return f"<{head[:DATA_URL_HEAD]}, {parts} part{'s' if parts != 1 else ''}, {len(url)} chars>"


def describe_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages with every data URL replaced by a short description."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for original in content:
                part = dict(original)
                for field in ("image_url", "video_url"):
                    if isinstance(part.get(field), dict) and "url" in part[field]:
                        part[field] = {**part[field], "url": describe_data_url(part[field]["url"])}
                parts.append(part)
            content = parts
        out.append({**message, "content": content})
    return out


def _jsonable(value: Any) -> Any:
    """A dataclass, pydantic model or other object as JSON-friendly data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    return value


def _write_atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        write(fh)
    os.replace(tmp, path)


@dataclasses.dataclass
class RequestDebugger:
    """Chooses which requests get logprobs and dumps, and writes them as they finish."""

    plugin: VLMPlugin
    debug_dir: Path | None = None  # None: log only (VLMCAP_DEBUG_REQUESTS)
    keys: frozenset[str] = frozenset()
    first: int | None = None
    logprobs: int | None = None
    logprobs_first: int = 0
    log_requests: bool = False
    transport: TransportKind = "engine"
    #: Through a server: how media were encoded (``via_server``), so a replay sends the same.
    server_media: dict[str, Any] | None = None
    #: Dump files written, in order.
    written: list[Path] = dataclasses.field(default_factory=list)
    _requests: int = 0
    _dump_ids: set[str] = dataclasses.field(default_factory=set)

    @classmethod
    def from_config(
        cls, config: VLMConfig, plugin: VLMPlugin, output_dir: Path
    ) -> RequestDebugger | None:
        """The debugger ``config``'s switches ask for; None when every one is off."""
        from vlmcap import envs

        log = envs.debug_requests()
        if not (config.debug_request or config.debug_first or config.logprobs or log):
            return None
        return cls(
            plugin=plugin,
            debug_dir=Path(output_dir) / DEBUG_DIR,
            keys=frozenset(config.debug_request),
            first=config.debug_first,
            logprobs=config.logprobs,
            logprobs_first=config.logprobs_first if config.logprobs else 0,
            log_requests=log,
        )

    @classmethod
    def from_env(cls, plugin: VLMPlugin) -> RequestDebugger | None:
        """Log-only, when ``VLMCAP_DEBUG_REQUESTS=1`` and nobody built a debugger; else None."""
        from vlmcap import envs

        return cls(plugin=plugin, log_requests=True) if envs.debug_requests() else None

    def via_server(self, encoding: MediaEncoding, video: VideoMode, max_images: int | None) -> None:
        """Requests go through a server with this media encoding (called by its backend)."""
        self.transport = "server"
        self.server_media = {
            **dataclasses.asdict(encoding),
            "video": video,
            "max_images": max_images,
        }

    # ---- called by the lifecycle -----------------------------------------------------------

    def prepare(self, request: StageRequest) -> Sampling:
        """The sampling ``request`` runs with (logprobs=K for the run's first N requests);
        also notes whether it is to be dumped."""
        self._requests += 1
        number = self._requests
        sampling = request.sampling
        if self.debug_dir is not None and (
            request.record.key in self.keys or (self.first is not None and number <= self.first)
        ):
            self._dump_ids.add(request.request_id)
        if self.logprobs is not None and number <= self.logprobs_first:
            sampling = dataclasses.replace(sampling, logprobs=self.logprobs)
        return sampling

    def settled(self, record: Record, stage: str, completion: Completion) -> None:
        """One request finished (before the record's outcome is set): log, dump, logprobs."""
        rid = record.request_id + (STAGE2_SUFFIX if stage == Status.STAGE2 else "")
        try:
            if self.log_requests:
                debug_request(record, completion)
            if rid in self._dump_ids:
                self._dump_ids.discard(rid)
                self.dump(record, stage, completion, rid)
            if (
                self.debug_dir is not None
                and self.logprobs is not None
                and completion.logprobs is not None
            ):
                from vlmcap.debug.logprobs import LogprobsWriter

                writer = LogprobsWriter(self.debug_dir, self.logprobs)
                writer.write(record.key, rid, stage, completion.logprobs)
        except Exception as exc:  # noqa: BLE001 - debugging output must never fail the run
            logger.warning("debug output of request %s (%s) failed: %s", rid, record.key, exc)

    # ---- dumps -----------------------------------------------------------------------------

    def dump(self, record: Record, stage: str, completion: Completion, rid: str) -> Path:
        """Write ``record``'s current request and ``completion``; the JSON file's path."""
        import numpy as np

        if self.debug_dir is None or record.request is None:
            raise ValueError("nothing to dump (no debug folder or no request)")
        request = record.request
        folder = self.debug_dir.resolve()
        folder.mkdir(parents=True, exist_ok=True)
        name = dump_name(record.key, stage)
        path = folder / f"{name}.json"
        media_path = folder / f"{name}{MEDIA_SUFFIX}"
        if path.parent != folder or media_path.parent != folder:
            raise ValueError(f"dump name {name!r} leaves {folder}")
        kind, arrays = media_arrays(request.media)
        names = ["video"] if kind == "video" else [f"image_{i}" for i in range(len(arrays))]
        named = dict(zip(names, arrays, strict=True))
        _write_atomic(media_path, lambda fh: cast(Any, np.savez_compressed)(fh, **named))
        dump = {
            "format": DUMP_FORMAT,
            "version": DUMP_VERSION,
            "key": record.key,
            "request_id": rid,
            "stage": stage,
            "transport": self.transport,
            "model": self.plugin.variant,
            "model_path": self.plugin.model_path,
            "written_at": time.time(),
            "messages": request.messages,
            **self._prompt(record, request),
            "media": self._media(request, kind, arrays, names, media_path.name),
            "sampling": dataclasses.asdict(record.sampling) if record.sampling else None,
            "output": self._output(completion),
        }
        text = json.dumps(dump, indent=1, ensure_ascii=False, default=str)
        _write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))
        self.written.append(path)
        logger.info("request %s (%s, %s) dumped to %s", rid, record.key, stage, path)
        return path

    def _prompt(self, record: Record, request: ModelRequest) -> dict[str, Any]:
        """``prompt`` (the text the model sees) and, through a server, the messages sent."""
        out: dict[str, Any] = {"prompt": None, "prompt_error": None}
        try:
            inputs = self.plugin.engine_inputs(request, self.plugin.processor())
            out["prompt"] = inputs.get("prompt")
        except Exception as exc:  # noqa: BLE001 - e.g. no local processor for a server's model
            out["prompt_error"] = f"{type(exc).__name__}: {exc}"
        if self.transport == "server":
            messages, media_io_kwargs = self._chat_messages(record, request)
            out["chat_messages"] = describe_messages(messages)
            out["media_io_kwargs"] = media_io_kwargs
        return out

    def _chat_messages(
        self, record: Record, request: ModelRequest
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The messages the server got (data URLs and all) and the media options sent."""
        from vlmcap.client.messages import MediaEncoding, encode_media
        from vlmcap.client.transport import ENCODED_MEDIA

        cached = record.scratch.get(ENCODED_MEDIA)
        if cached is not None and cached[0] is request.media:
            encoded = cached[1]
        else:  # not kept by the transport: encoded again the same way
            settings = dict(self.server_media or {})
            video, max_images = settings.pop("video", None), settings.pop("max_images", None)
            encoded = encode_media(
                request.media,
                request.fps,
                MediaEncoding(**settings),
                video=video,
                max_images=max_images,
            )
        return self.plugin.chat_messages(request, encoded.groups), encoded.media_io_kwargs

    def _media(
        self,
        request: ModelRequest,
        kind: str,
        arrays: list[np.ndarray],
        names: list[str],
        file: str,
    ) -> dict[str, Any]:
        from vlmcap.media.frames import DEFAULT_VIDEO_FPS, as_image_list, video_metadata

        sources = [request.media] if kind == "video" else as_image_list(request.media)
        items = [
            {"name": n, "kind": kind, "source": array_info(src), "engine": array_info(arr)}
            for n, src, arr in zip(names, sources, arrays, strict=True)
        ]
        media: dict[str, Any] = {"file": file, "kind": kind, "fps": request.fps, "items": items}
        if kind == "video":
            fps = request.fps or DEFAULT_VIDEO_FPS
            media["video_metadata"] = video_metadata(arrays[0].shape[0], fps)
        if self.server_media is not None:
            media["server_encoding"] = self.server_media
        return media

    def _output(self, completion: Completion) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": completion.text,
            "token_ids": list(completion.token_ids),
            "finish_reason": completion.finish_reason,
            "prompt_tokens": completion.prompt_tokens,
            "output_tokens": completion.output_tokens,
            "error": completion.error,
        }
        raw = completion.output
        if raw is None:
            return out
        if self.transport == "engine":
            out["prompt_token_ids"] = list(getattr(raw, "prompt_token_ids", None) or ())
            out["metrics"] = _jsonable(getattr(raw, "metrics", None))
            first = raw.outputs[0] if getattr(raw, "outputs", None) else None
            out["cumulative_logprob"] = getattr(first, "cumulative_logprob", None)
            out["stop_reason"] = getattr(first, "stop_reason", None)
        else:
            reply = _jsonable(raw)
            out["reply"] = reply
            if isinstance(reply, dict):
                out["server_prompt"] = reply.get("prompt_text")
                out["prompt_token_ids"] = reply.get("prompt_token_ids")
        return out

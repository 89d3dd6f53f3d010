"""Run one dumped request (``--debug-request`` / ``--debug-first``) again, alone, and compare.

    dump = load_dump(Path("out/debug/img0.png-1a2b3c4d5e-stage1.json"))   # DumpError if bad
    result = replay_dump(dump, backend)      # OfflineBackend (its vllm.LLM) or ServerBackend
    result.reproduced, result.diff.first_difference

Offline the engine gets the dump's prompt text verbatim and its media rebuilt from the exact
uint8 arrays of the ``.media.npz`` file (through the plugin's ``engine_inputs``, as in a run);
through a server the media are encoded the way the dump says they were (an engine dump: PNG,
lossless) and sent with the same chat turns. Both use the dumped sampling, seed included. The
comparison looks at the text, the output token ids (where both sides have them) and the
prompt's token ids.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmcap.core.request import Completion, ModelRequest, Sampling
from vlmcap.debug.request_dump import DUMP_FORMAT, DUMP_VERSION, MEDIA_SUFFIX

if TYPE_CHECKING:
    from vlmcap.pipeline.backend import OfflineBackend, ServerBackend
    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)

#: Random bytes of a replayed request's id (it must not collide with a run's).
REPLAY_ID_BYTES = 4
#: Fields every dump has.
REQUIRED_FIELDS = ("key", "request_id", "stage", "messages", "media", "sampling", "output")


class DumpError(ValueError):
    """A dump file that cannot be replayed; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass
class RequestDump:
    """One dump file, read and checked; ``media`` rebuilt from its side file."""

    path: Path
    data: dict[str, Any]
    media: Any  # a (T, H, W, 3) uint8 array (video) or a list of RGB PIL images
    sampling: Sampling

    @property
    def key(self) -> str:
        return str(self.data["key"])

    @property
    def transport(self) -> str:
        return str(self.data.get("transport", "engine"))

    @property
    def prompt(self) -> str | None:
        prompt = self.data.get("prompt")
        return prompt if isinstance(prompt, str) else None

    @property
    def expected(self) -> dict[str, Any]:
        return dict(self.data["output"])

    @property
    def fps(self) -> float | None:
        fps = self.data["media"].get("fps")
        return float(fps) if fps is not None else None

    def model_request(self) -> ModelRequest:
        return ModelRequest(messages=list(self.data["messages"]), media=self.media, fps=self.fps)


def _load_media(path: Path, media: dict[str, Any]) -> Any:
    import numpy as np
    from PIL import Image

    name = media.get("file")
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(MEDIA_SUFFIX):
        raise DumpError(path, f"bad media file name {name!r}")
    file = path.parent / name
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DumpError(path, f"cannot read its media file {file}: {exc}") from None
    kind = media.get("kind")
    if kind == "video":
        video = arrays.get("video")
        if video is None or video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise DumpError(path, f"{file} holds no (T, H, W, 3) uint8 'video' array")
        return video
    if kind != "image":
        raise DumpError(path, f"unknown media kind {kind!r}")
    images = []
    for i in range(len(arrays)):
        array = arrays.get(f"image_{i}")
        if array is None or array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
            raise DumpError(path, f"{file}: 'image_{i}' is missing or not (H, W, 3) uint8")
        images.append(Image.fromarray(array))
    if not images:
        raise DumpError(path, f"{file} holds no images")
    return images


def load_dump(path: Path) -> RequestDump:
    """Read and check one dump file (and its media); ``DumpError`` says what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DumpError(path, f"cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DumpError(path, f"not a JSON dump ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != DUMP_FORMAT:
        raise DumpError(path, f"not a request dump (no format {DUMP_FORMAT!r})")
    if data.get("version") != DUMP_VERSION:
        raise DumpError(path, f"dump version {data.get('version')!r}; expected {DUMP_VERSION}")
    missing = [name for name in REQUIRED_FIELDS if name not in data]
    if missing:
        raise DumpError(path, f"missing field(s): {', '.join(missing)}")
    for name, kind in (("messages", list), ("media", dict), ("sampling", dict), ("output", dict)):
        if not isinstance(data[name], kind):
            raise DumpError(path, f"field {name!r} is not a JSON {kind.__name__}")
    try:
        sampling = Sampling(**data["sampling"])
    except TypeError as exc:
        raise DumpError(path, f"bad sampling: {exc}") from None
    return RequestDump(path, data, _load_media(path, data["media"]), sampling)


@dataclass(frozen=True)
class OutputDiff:
    """The dumped output against the replayed one."""

    same_text: bool
    same_token_ids: bool | None  # None: one side has no token ids (a server without them)
    first_difference: int | None  # first differing token position (None: none or unknown)
    same_prompt_tokens: bool | None = None  # None: one side has no prompt token ids

    @property
    def same(self) -> bool:
        return self.same_text and self.same_token_ids is not False


def compare(expected: dict[str, Any], completion: Completion, prompt_ids: Any = None) -> OutputDiff:
    """Compare a dump's ``output`` with a replayed ``completion`` (``prompt_ids``: the
    replayed prompt's token ids, where known)."""
    want = [int(t) for t in expected.get("token_ids") or ()]
    got = list(completion.token_ids)
    same_ids: bool | None = None
    first: int | None = None
    if want and got:
        same_ids = want == got
        if not same_ids:
            first = next(
                (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b), None
            )
            first = min(len(want), len(got)) if first is None else first
    want_prompt = expected.get("prompt_token_ids")
    same_prompt = None
    if want_prompt and prompt_ids:
        same_prompt = [int(t) for t in want_prompt] == [int(t) for t in prompt_ids]
    same_text = completion.error is None and expected.get("text") == completion.text
    return OutputDiff(same_text, same_ids, first, same_prompt)


@dataclass
class ReplayResult:
    """A replayed dump: the new completion, its comparison, and notes worth showing."""

    dump: RequestDump
    completion: Completion
    diff: OutputDiff
    via: str  # "engine" or "server"
    notes: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return self.diff.same


def _replay_engine(dump: RequestDump, backend: OfflineBackend) -> tuple[Completion, list[str]]:
    from typing import cast

    from vlmcap.engine.transport import completion_of

    plugin = backend.plugin
    notes = []
    inputs = plugin.engine_inputs(dump.model_request(), plugin.processor())
    if dump.prompt is not None and "prompt" in inputs:
        if inputs["prompt"] != dump.prompt:
            notes.append("the chat template renders another prompt now; the dumped one is used")
        inputs["prompt"] = dump.prompt
    outputs = backend.llm.generate([cast(Any, inputs)], [dump.sampling.to_vllm()], use_tqdm=False)
    return completion_of(outputs[0]), notes


def _server_encoding(dump: RequestDump) -> Any:
    """The settings' media encoding as the dump says it was sent (an engine dump: PNG)."""
    from vlmcap.client.messages import MediaEncoding

    sent = dict(dump.data["media"].get("server_encoding") or {})
    if not sent:
        return MediaEncoding(image_format="png", frame_format="png")
    sent.pop("max_images", None)
    names = {f.name for f in dataclasses.fields(MediaEncoding)}
    return MediaEncoding(**{k: v for k, v in sent.items() if k in names})


def _replay_server(dump: RequestDump, backend: ServerBackend) -> tuple[Completion, list[str]]:
    from vlmcap.client.transport import ServerTransport
    from vlmcap.core.request import StageRequest
    from vlmcap.records import Record, Status

    settings = dataclasses.replace(backend.settings, encoding=_server_encoding(dump), concurrency=1)
    rid = f"replay-{os.urandom(REPLAY_ID_BYTES).hex()}"
    record = Record(key=dump.key, request_id=rid)
    request = StageRequest(record, Status.STAGE1, dump.model_request(), dump.sampling)
    transport = ServerTransport(settings, backend.plugin, backend.config, detail=True)
    try:
        transport.submit(request)
        finished: list[Any] = []
        while not finished:
            finished = transport.collect(None)
    finally:
        transport.close()
    notes = []
    if dump.transport == "engine":
        notes.append("an offline dump sent to a server: media as PNG, the server's template")
    return finished[0].completion, notes


def replay_dump(dump: RequestDump | Path, backend: OfflineBackend | ServerBackend) -> ReplayResult:
    """Run ``dump``'s request alone on ``backend`` and compare its output with the dump's."""
    from vlmcap.pipeline.backend import OfflineBackend

    if not isinstance(dump, RequestDump):
        dump = load_dump(dump)
    notes = _model_notes(dump, backend.plugin)
    if isinstance(backend, OfflineBackend):
        completion, more = _replay_engine(dump, backend)
        via = "engine"
    else:
        completion, more = _replay_server(dump, backend)
        via = "server"
    notes.extend(more)
    prompt_ids = _prompt_ids(completion)
    result = ReplayResult(dump, completion, compare(dump.expected, completion, prompt_ids), via)
    result.notes.extend(notes)
    if completion.error is not None:
        result.notes.append(f"the replayed request failed: {completion.error}")
    return result


def _model_notes(dump: RequestDump, plugin: VLMPlugin) -> list[str]:
    model = dump.data.get("model")
    if model is not None and model != plugin.variant:
        return [f"dumped with model {model!r}, replayed with {plugin.variant!r}"]
    return []


def _prompt_ids(completion: Completion) -> list[int] | None:
    raw = completion.output
    ids = getattr(raw, "prompt_token_ids", None)
    if ids is None and raw is not None:
        extra = getattr(raw, "model_extra", None) or {}
        ids = extra.get("prompt_token_ids")
    return list(ids) if ids else None

"""What one request is, independent of the transport that runs it.

``ModelRequest`` is what a plugin describes (``VLMPlugin.make_request``): chat turns whose user
content holds one placeholder per picture or clip (``{"type": "image"}`` / ``{"type":
"video"}``, the Hugging Face chat-template convention) and the media for those placeholders.
Both transports derive their input from it through the same plugin:

    vLLM's engine   plugin.engine_inputs(request, processor)   prompt text + multi_modal_data
    a server        plugin.chat_messages(request, parts)       placeholders -> data-URL parts

``Sampling`` is built once per run and turned into ``vllm.SamplingParams`` or chat-completion
fields (``logprobs`` set: the top-K logprobs of every output token are asked for too).
``Completion`` is a finished request as every transport reports it, with those logprobs as
``TokenLogprob`` entries when they were asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlmcap.records import Media, Record, Status

if TYPE_CHECKING:
    from vllm import SamplingParams

    from vlmcap.config import VLMConfig

#: Finish reasons of an output that has its text (``length``: cut at the token limit).
FINISHED_WITH_TEXT = ("stop", "length")
#: Suffix of a record's request id for its stage-2 request.
STAGE2_SUFFIX = ":s2"


@dataclass
class ModelRequest:
    """Chat turns with media placeholders, and the media they stand for (in order)."""

    messages: list[dict[str, Any]]
    media: Media
    fps: float | None = None  # video frame rate, for the model's time encoding

    @property
    def prompt(self) -> str:
        """The text of the last user turn (for logs and debug dumps)."""
        for message in reversed(self.messages):
            if message.get("role") != "user":
                continue
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(
                part.get("text", "") for part in content or () if part.get("type") == "text"
            )
        return ""


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one request; the same numbers for the engine and a server."""

    temperature: float
    top_p: float
    repetition_penalty: float
    max_tokens: int
    seed: int
    logprobs: int | None = None  # top-K logprobs per output token (None: none)

    @classmethod
    def from_config(cls, config: VLMConfig, max_tokens: int | None = None) -> Sampling:
        """The run's sampling; ``max_tokens`` (an item's own limit) overrides the config's."""
        return cls(
            temperature=config.temperature,
            top_p=config.top_p,
            repetition_penalty=config.repetition_penalty,
            max_tokens=max_tokens or config.max_output_tokens,
            seed=config.seed,
        )

    def to_vllm(self) -> SamplingParams:
        from vllm import SamplingParams

        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
            max_tokens=self.max_tokens,
            seed=self.seed,
            logprobs=self.logprobs,
        )

    def to_openai(self) -> dict[str, Any]:
        """Chat-completion fields (vLLM's own ones in ``extra_body``)."""
        fields: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "extra_body": {"repetition_penalty": self.repetition_penalty},
        }
        if self.logprobs is not None:
            fields["logprobs"] = True
            fields["top_logprobs"] = self.logprobs
        return fields


@dataclass
class StageRequest:
    """One stage of one record, handed to a transport: what to send and who it is for."""

    record: Record
    stage: Status  # STAGE1 or STAGE2
    request: ModelRequest
    sampling: Sampling

    @property
    def request_id(self) -> str:
        suffix = STAGE2_SUFFIX if self.stage == Status.STAGE2 else ""
        return self.record.request_id + suffix


@dataclass(frozen=True)
class TopLogprob:
    """One candidate token at one output position."""

    token: str
    logprob: float
    token_id: int | None = None  # None where the transport does not say (a server)
    rank: int | None = None  # 1 for the most likely token, where known


@dataclass(frozen=True)
class TokenLogprob:
    """The chosen token at one output position and the candidates the transport reported.

    ``top`` is ordered most likely first; the engine may add the chosen token to its top K
    (then it holds K + 1 entries), so readers that want K take ``top[:K]``.
    """

    token: str
    logprob: float | None
    token_id: int | None = None
    rank: int | None = None
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True)
class Completion:
    """A finished request as a transport reports it.

    ``error`` set: the transport could not get an answer (the server refused the request, it
    timed out...): the record fails with that reason. Otherwise ``finish_reason`` says whether
    ``text`` is usable (``stop``/``length``). ``logprobs``: one entry per output token when the
    request asked for them (``Sampling.logprobs``), else None. ``output`` keeps the transport's
    own object (vLLM's ``RequestOutput``, the server's ``ChatCompletion``) for debug dumps.
    """

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    token_ids: tuple[int, ...] = ()
    first_token_at: float | None = None  # wall-clock time of the first output token
    queue_s: float | None = None  # waiting in the engine before being scheduled, where known
    error: str | None = None
    #: Tries the transport made for this request (a server's HTTP retries included).
    attempts: int = 1
    logprobs: tuple[TokenLogprob, ...] | None = field(default=None, repr=False)
    output: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def failed(cls, reason: str) -> Completion:
        return cls(error=reason)

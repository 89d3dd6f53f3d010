"""A judge model for answers no rule can read, never a silent fallback.

``vlmcap qa --judge-url URL`` sends each model output that the extraction rules cannot map to
one option (``none``, ``invalid``, ``ambiguous``; refusals stay refusals) to an
OpenAI-compatible server, with the question and the options, and asks which option the output
chooses. The reply is constrained to the valid letters or ``none`` (vLLM's structured outputs,
``choice``), then read by the same rules. A judged row says so (``judged``, the judge's own
reply in ``judge_output``, ``extraction_method`` ``judge``), and the metrics count judged
answers apart from rule-read ones.

When the judge cannot be reached the run stops with that message (rows written so far are
kept; the same command resumes): it never quietly scores those answers another way.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlmcap.client import ServerError, ServerUnavailableError
from vlmcap.client.openai_client import ClientConfig, RequestFailed, ServerClient
from vlmcap.qa.answers import extract_choice

if TYPE_CHECKING:
    from concurrent.futures import Future

logger = logging.getLogger(__name__)

#: What the judge answers when the output picks no option (or several).
NO_OPTION = "none"
#: Tokens of a judge reply (a letter or ``none``).
JUDGE_MAX_TOKENS = 4
#: Seconds one judge request may take (after its retries).
JUDGE_TIMEOUT_S = 120.0
JUDGE_PROMPT = (
    "You grade answers to multiple-choice questions.\n"
    "Question: {question}\n"
    "Options:\n{options}\n"
    "Answer given: {answer}\n"
    "Which option does the answer given choose? Reply with its letter only, or {none} if it "
    "chooses no option or several."
)


class JudgeUnavailable(ServerUnavailableError):
    """The judge server cannot be used; the run stops (it never scores answers another way)."""


@dataclass(frozen=True)
class Verdict:
    """The judge's reading of one output: ``letter`` (None: no option) and its raw reply."""

    letter: str | None
    reply: str


class Judge:
    """A judge server, asked from any thread (its client lives on a loop of its own)."""

    def __init__(self, settings: ClientConfig) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vlmcap-judge")
        self._thread.daemon = True
        self._thread.start()
        self._client: ServerClient = self._call(self._make_client())
        self.asked = 0

    async def _make_client(self) -> ServerClient:
        return ServerClient(self.settings)

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=JUDGE_TIMEOUT_S)

    def connect(self) -> str:
        """Check the judge server; the model it serves (raises ``ServerError`` subclasses)."""
        try:
            model: str = self._call(self._client.resolve_model())
        except ServerError as exc:
            raise JudgeUnavailable(f"the judge (--judge-url): {exc}") from None
        self.settings = ClientConfig(
            url=self.settings.url,
            api_key=self.settings.api_key,
            model=model,
            concurrency=self.settings.concurrency,
            request_timeout=self.settings.request_timeout,
            retries=self.settings.retries,
        )
        return model

    def pick(self, question: str, choices: Mapping[str, str], answer: str) -> Verdict:
        """Which of ``choices`` ``answer`` chooses, in the judge's reading.

        Raises ``vlmcap.client.ServerError`` when the judge is unreachable; a request the
        judge refuses gives ``Verdict(None, "<refused: reason>")``.
        """
        options = "\n".join(f"{letter}. {text}" for letter, text in choices.items())
        prompt = JUDGE_PROMPT.format(
            question=question, options=options, answer=answer, none=NO_OPTION
        )
        sampling = {
            "temperature": 0.0,
            "max_tokens": JUDGE_MAX_TOKENS,
            "seed": 0,
            "extra_body": {"structured_outputs": {"choice": [*choices, NO_OPTION]}},
        }
        messages = [{"role": "user", "content": prompt}]
        self.asked += 1
        try:
            reply = self._call(self._client.chat(messages, sampling, model=self.settings.model))
        except RequestFailed as exc:
            return Verdict(None, f"<refused: {exc}>")
        except ServerError as exc:
            raise JudgeUnavailable(
                f"the judge at {self.settings.url} stopped answering ({exc}); the rows written "
                "so far are kept: rerun to resume, or leave out --judge-url to keep such "
                "answers unparsed"
            ) from None
        text = reply.text.strip()
        return Verdict(extract_choice(text, dict(choices)).letter, text)

    def close(self) -> None:
        try:
            self._call(self._client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=JUDGE_TIMEOUT_S)

"""vLLM's engine in this process as a transport: ``add_request`` in, ``step()`` out.

vLLM's engine core works through its requests in its own process; each ``collect`` runs one
``engine.step()``, which returns the outputs that finished. Engine inputs are derived from the
plugin's ``ModelRequest`` here: ``plugin.engine_inputs`` (the chat template, the media in
vLLM's form), then vLLM's renderer (the model's Hugging Face processor). With
``prepare_threads`` > 0 that runs on a pool of threads while the loop steps the engine
(``vlmcap.engine.prepare``), and ``collect`` hands what is built to ``add_request`` in the
order it was submitted; with 0, ``submit`` builds and adds at once.

A dead engine core process is noticed (``liveness.DeathAlarm``): the waiting step raises, and
``collect`` raises ``InflightLost``; a request submitted to a dead engine is taken and lost
with the rest at the next ``collect``, so the loop's recovery sees it among those inside.

Step hooks (``--log-steps``, the profiler) see every step as a ``StepInfo``: how many requests
were inside, how many finished, how many tokens it produced and how long it took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from vlmcap.core.lifecycle import describe_error
from vlmcap.core.request import Completion, Sampling, StageRequest
from vlmcap.core.transport import Finished, InflightLost, Rejected
from vlmcap.engine.liveness import DeathAlarm, death_reason, engine_dead
from vlmcap.engine.prepare import Preparer, renderer_of

if TYPE_CHECKING:
    from vllm import LLM, RequestOutput, SamplingParams

    from vlmcap.plugins.base import VLMPlugin

logger = logging.getLogger(__name__)


def completion_of(output: RequestOutput) -> Completion:
    """A finished vLLM output as a ``Completion`` (the first of its completions), with its
    token logprobs when the request asked for them."""
    from vlmcap.debug.logprobs import from_vllm

    first = output.outputs[0] if output.outputs else None
    metrics = getattr(output, "metrics", None)
    arrival = getattr(metrics, "arrival_time", 0.0)
    latency = getattr(metrics, "first_token_latency", 0.0)
    queued = getattr(metrics, "queued_ts", 0.0)
    scheduled = getattr(metrics, "scheduled_ts", 0.0)
    return Completion(
        text=first.text if first is not None else "",
        finish_reason=first.finish_reason if first is not None else None,
        prompt_tokens=len(output.prompt_token_ids or ()),
        output_tokens=len(first.token_ids or ()) if first is not None else 0,
        token_ids=tuple(first.token_ids or ()) if first is not None else (),
        first_token_at=arrival + latency if arrival and latency else None,
        queue_s=scheduled - queued if queued and scheduled >= queued else None,
        logprobs=from_vllm(first) if first is not None else None,
        output=output,
    )


@dataclass(frozen=True)
class StepInfo:
    """One engine step, as step hooks see it."""

    index: int  # 1 for the run's first step
    seconds: float
    inside: int  # requests in the engine when the step began
    finished: int
    new_tokens: int  # output tokens the step produced, over every request


StepHook = Callable[[StepInfo], None]


class EngineTransport:
    """Requests into ``llm.llm_engine``; at most ``capacity`` kept inside by the driver.

    ``hooks`` are called after every step, on the loop's thread; without hooks nothing is
    counted per request. ``prepare_threads``: threads that build requests ahead (0: none)."""

    def __init__(
        self,
        llm: LLM,
        plugin: VLMPlugin,
        capacity: int,
        hooks: Sequence[StepHook] = (),
        prepare_threads: int = 0,
    ) -> None:
        self.llm = llm
        self.engine = llm.llm_engine
        self.plugin = plugin
        self._capacity = capacity
        self._processor: Any = None
        self._renderer = renderer_of(self.engine)
        #: Requests added to the engine and not finished (a step with none inside would wait
        #: for outputs that never come).
        self._in_engine: set[str] = set()
        self._preparer: Preparer | None = None
        if prepare_threads > 0:
            _ = self.processor  # made once, before threads share it
            self._preparer = Preparer(prepare_threads, self.build)
        self._steps = 0
        self._outputs_seen = 0
        self._params: dict[Sampling, SamplingParams] = {}
        self._hooks = tuple(hooks)
        self._tokens: dict[str, int] = {}  # tokens so far of each request inside (with hooks)
        lora = plugin.lora_request()  # the model's adapter goes with every request
        self._lora: dict[str, Any] = {} if lora is None else {"lora_request": lora}
        self._alarm = DeathAlarm(self.engine).start()

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def steps(self) -> int:
        return self._steps

    @property
    def outputs_seen(self) -> int:
        return self._outputs_seen

    @property
    def processor(self) -> Any:
        if self._processor is None:
            self._processor = self.plugin.processor()
        return self._processor

    def params(self, request: StageRequest) -> SamplingParams:
        """vLLM's sampling parameters of ``request`` (one object per distinct sampling)."""
        sampling = request.sampling
        if sampling not in self._params:
            self._params[sampling] = sampling.to_vllm()
        return self._params[sampling]

    def build(self, request: StageRequest) -> Any:
        """The engine input of ``request``: the plugin's prompt and media, rendered by vLLM
        (the model's processor) where the engine has a renderer. Raises ``Rejected``."""
        try:
            inputs = self.plugin.engine_inputs(request.request, self.processor)
        except Exception as exc:
            raise Rejected(f"cannot build request: {describe_error(exc)}") from exc
        if self._renderer is None:
            return inputs
        try:
            (rendered,) = self._renderer.render_cmpl([inputs])
        except Exception as exc:
            raise self._refused(request, exc) from exc
        return rendered

    def _refused(self, request: StageRequest, exc: Exception) -> Rejected:
        return Rejected(f"engine rejected {request.stage} request: {describe_error(exc)}")

    def submit(self, request: StageRequest) -> None:
        if engine_dead(self.engine):
            return  # taken, and lost with the rest at the next collect
        if self._preparer is not None:
            self._preparer.submit(request)  # built on the pool, added by collect
            return
        self._add(request, self.build(request))

    def _add(self, request: StageRequest, inputs: Any) -> None:
        """Hand a built input to the engine (raises ``Rejected``)."""
        try:
            self.engine.add_request(
                request.request_id, cast(Any, inputs), self.params(request), **self._lora
            )
        except Exception as exc:
            if engine_dead(self.engine):
                return  # the engine died, not the request's fault: lost at the next collect
            raise self._refused(request, exc) from exc
        self._in_engine.add(request.request_id)
        if self._hooks:
            self._tokens[request.request_id] = 0

    def _admit(self) -> list[Finished]:
        """Add every built request to the engine, oldest first; those that could not be
        built or were refused come back as failures."""
        failed: list[Finished] = []
        if self._preparer is None:
            return failed
        for prepared in self._preparer.ready():
            rid = prepared.request.request_id
            try:
                self._add(prepared.request, prepared.future.result())
            except Rejected as exc:
                failed.append(Finished(rid, Completion.failed(str(exc))))
        return failed

    def collect(self, timeout: float | None) -> list[Finished]:
        """One engine step (it never waits longer than a step, whatever ``timeout`` says).

        Built requests are added first; while none is in the engine yet, this waits (up to
        ``timeout``) for the oldest one being built instead of stepping."""
        finished = self._admit()
        if not self._in_engine and self._preparer is not None and len(self._preparer):
            self._preparer.wait(timeout)
            finished += self._admit()
        if not self._in_engine:
            self._check_alive()
            return finished
        inside = len(self._tokens)
        started = time.perf_counter()
        try:
            self._check_alive()
            outputs = self.engine.step()
        except InflightLost:
            raise
        except Exception as exc:
            why = death_reason(self.engine) if engine_dead(self.engine) else describe_error(exc)
            raise InflightLost(f"engine failed: {why}") from exc
        self._steps += 1
        self._outputs_seen += len(outputs)
        if self._hooks:
            self._step_done(outputs, inside, time.perf_counter() - started)
        for output in outputs:
            if output.finished:
                self._in_engine.discard(output.request_id)
                finished.append(
                    Finished(output.request_id, completion_of(cast("RequestOutput", output)))
                )
        return finished

    def _check_alive(self) -> None:
        """Raise ``InflightLost`` when the engine core has died."""
        if engine_dead(self.engine):
            from vllm.v1.engine.exceptions import EngineDeadError

            dead = EngineDeadError(suppress_context=True)
            raise InflightLost(f"engine failed: {death_reason(self.engine)}") from dead

    def _step_done(self, outputs: Sequence[Any], inside: int, seconds: float) -> None:
        new_tokens = finished = 0
        for output in outputs:
            first = output.outputs[0] if output.outputs else None
            now = len(first.token_ids or ()) if first is not None else 0
            new_tokens += max(0, now - self._tokens.get(output.request_id, 0))
            if output.finished:
                finished += 1
                self._tokens.pop(output.request_id, None)
            else:
                self._tokens[output.request_id] = now
        info = StepInfo(self._steps, seconds, inside, finished, new_tokens)
        for hook in self._hooks:
            hook(info)

    def close(self) -> None:
        """Stop building and watching; the engine outlives the run (its owner shuts it down)."""
        if self._preparer is not None:
            self._preparer.close()
        self._alarm.stop()

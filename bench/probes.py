"""What ``bench/gpu_breakdown.py`` puts around a running vLLM engine: timers on its methods
(``Clock``, ``instrument``), the loop's marks (``TracedStats``), what each engine-core
iteration returned (``CoreOutputs``) and an NVML sampler (``NvmlSampler``). Nothing in
``src/`` changes: the timers wrap the instances one run uses and are taken off afterwards."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vlmcap.core.stats import LoopStats
from vlmcap.engine.prepare import renderer_of

if TYPE_CHECKING:
    from vllm import LLM

    from vlmcap.plugins.base import VLMPlugin


def dist_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---- timers -----------------------------------------------------------------------------------


class Clock:
    """Seconds and calls per name; ``wrap`` times a method of one object (or a class).

    Calls on threads other than the one that made the clock (vlmcap's request-building pool)
    are counted under ``prep.NAME``: they overlap the loop's own time. A call made inside
    another timed call is also counted under ``NAME@OUTER``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.events: dict[str, list[tuple[float, float]]] = {}  # name -> (start, seconds)
        self.keep_events: set[str] = set()
        self._undo: list[Callable[[], None]] = []
        self.missing: list[str] = []
        self.loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._local = threading.local()

    def reset(self) -> None:
        with self._lock:
            self.seconds = dict.fromkeys(self.seconds, 0.0)
            self.calls = dict.fromkeys(self.calls, 0)
            self.events = {k: [] for k in self.events}

    def _outer(self) -> list[str]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack  # type: ignore[no-any-return]

    def add(self, name: str, start: float, seconds: float) -> None:
        if threading.get_ident() != self.loop_thread:
            name = f"prep.{name}"
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1
            if name in self.keep_events:
                self.events.setdefault(name, []).append((start, seconds))

    def wrap(
        self,
        owner: Any,
        attr: str,
        name: str,
        *,
        events: bool = False,
        after: Callable[[float, float, Any], None] | None = None,
        kind: Callable[..., str] | None = None,
    ) -> bool:
        """Time every call of ``owner.attr`` under ``name``; False when it is not there.
        ``after(start, seconds, result)`` sees each call's result; with ``kind(*args,
        **kwargs)`` each call is also counted under ``name[kind]``."""
        original = getattr(owner, attr, None) if owner is not None else None
        if original is None or not callable(original):
            self.missing.append(name)
            return False
        self.seconds.setdefault(name, 0.0)
        self.calls.setdefault(name, 0)
        if events:
            self.keep_events.add(name)
            self.events.setdefault(name, [])
        # on a class, ``original`` is the plain function (called with ``self`` first)
        had = attr in vars(owner)
        saved = vars(owner).get(attr)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            outer = self._outer()
            start = time.perf_counter()
            outer.append(name)
            try:
                result = original(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - start
                outer.pop()
                self.add(name, start, seconds)
                if outer:
                    self.add(f"{name}@{outer[-1]}", start, seconds)
                if kind is not None:
                    self.add(f"{name}[{_kind_of(kind, args, kwargs)}]", start, seconds)
            if after is not None:
                after(start, seconds, result)
            return result

        setattr(owner, attr, timed)

        def undo() -> None:
            if had:
                setattr(owner, attr, saved)
            else:
                delattr(owner, attr)

        self._undo.append(undo)
        return True

    def unwrap(self) -> None:
        while self._undo:
            self._undo.pop()()


def _kind_of(kind: Callable[..., str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    try:
        return kind(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a label must never break the call timed
        return "unknown"


def _request_kind(request: Any, *_: Any, **__: Any) -> str:
    """'video' or 'image' for a plugin ``ModelRequest`` (a video is a 4-D frame array)."""
    shape = getattr(getattr(request, "media", None), "shape", None)
    return "video" if shape is not None and len(shape) == 4 else "image"


def _hf_kind(_context: Any, _processor: Any, data: Any = None, *_: Any, **kwargs: Any) -> str:
    """'video', 'image' or 'text' for one ``call_hf_processor(hf_processor, data, ...)``."""
    data = kwargs.get("data", data) or {}
    if data.get("videos") is not None:
        return "video"
    if data.get("images") is not None:
        return "image"
    return "text"


@dataclass
class TracedStats(LoopStats):
    """``LoopStats`` that also keeps every mark: (perf_counter, inside, submitted, finished)."""

    trace: list[tuple[float, int, int, int]] = field(default_factory=list, repr=False)

    def mark(self, inside: int) -> None:
        super().mark(inside)
        self.trace.append((time.perf_counter(), inside, self.requests, self.replies))


@dataclass
class CoreOutputs:
    """What each ``engine_core.get_output`` returned: one entry per engine-core iteration."""

    returned_at: list[float] = field(default_factory=list)  # perf_counter
    waited_s: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)  # requests with output that iteration
    produced_at: list[float] = field(default_factory=list)  # engine core's time.monotonic()
    consumed_at: list[float] = field(default_factory=list)  # the loop's time.monotonic()
    queued_before: list[int] = field(default_factory=list)

    def clear(self) -> None:
        for value in vars(self).values():
            value.clear()


def instrument(plugin: VLMPlugin, llm: LLM, clock: Clock, core: CoreOutputs) -> None:
    """Put the timers in place (see the module's docstring)."""
    engine = llm.llm_engine
    clock.wrap(plugin, "make_request", "make_request")
    clock.wrap(plugin, "engine_inputs", "engine_inputs", kind=_request_kind)
    clock.wrap(engine, "add_request", "add_request", events=True)
    clock.wrap(
        engine,
        "step",
        "step",
        events=True,
        after=lambda _s, _d, outputs: (
            clock.add("step.returned_nothing", 0.0, 0.0) if not outputs else None
        ),
    )
    processor = getattr(engine, "input_processor", None) or getattr(engine, "processor", None)
    clock.wrap(processor, "process_inputs", "add_request.process_inputs")
    clock.wrap(renderer_of(engine), "render_cmpl", "render")
    clock.wrap(engine.output_processor, "add_request", "add_request.output_processor")
    client = engine.engine_core
    clock.wrap(client, "add_request", "add_request.core_send")
    context = None
    for module_name in ("vllm.multimodal.processing.context", "vllm.inputs.registry"):
        try:
            module = __import__(module_name, fromlist=["InputProcessingContext"])
            context = getattr(module, "InputProcessingContext", None)
        except ImportError:
            continue
        if context is not None:
            break
    clock.wrap(context, "call_hf_processor", "hf_processor", kind=_hf_kind)
    out_queue = getattr(client, "outputs_queue", None)
    waiting: list[int] = []

    def before_get() -> None:
        waiting.append(out_queue.qsize() if out_queue is not None else -1)

    def got(start: float, seconds: float, result: Any) -> None:
        core.returned_at.append(start + seconds)
        core.waited_s.append(seconds)
        core.requests.append(len(getattr(result, "outputs", None) or ()))
        core.consumed_at.append(time.monotonic())
        core.produced_at.append(float(getattr(result, "timestamp", 0.0) or float("nan")))
        core.queued_before.append(waiting.pop() if waiting else -1)

    original_get = getattr(client, "get_output", None)
    if original_get is not None:

        def get_output(*args: Any, **kwargs: Any) -> Any:
            before_get()
            return original_get(*args, **kwargs)

        client.get_output = get_output
        clock._undo.append(lambda: vars(client).pop("get_output", None))
    clock.wrap(client, "get_output", "step.get_output", after=got)
    clock.wrap(engine.output_processor, "process_outputs", "step.process_outputs")
    clock.wrap(client, "abort_requests", "step.abort_requests")


# ---- NVML -------------------------------------------------------------------------------------


class NvmlSampler:
    """GPU utilisation and memory every ``period`` s from NVML, on a thread of its own; also
    the driver's own utilisation samples (``nvmlDeviceGetSamples``) where it gives them."""

    def __init__(self, period: float, index: int = 0) -> None:
        self.period = period
        self.samples: list[tuple[float, int, int, int]] = []  # (t, gpu %, mem-bw %, used B)
        self.driver_samples: dict[int, int] = {}  # driver timestamp (us) -> gpu %
        self.error: str | None = None
        self.info: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(self.handle)
            name = pynvml.nvmlDeviceGetName(self.handle)
            driver = pynvml.nvmlSystemGetDriverVersion()
            self.info = {
                "name": name.decode() if isinstance(name, bytes) else name,
                "driver": driver.decode() if isinstance(driver, bytes) else driver,
                "memory_total_mib": memory.total / 2**20,
                "nvml_version": dist_version("nvidia-ml-py"),
            }
        except Exception as exc:  # noqa: BLE001 - no NVML (a CPU machine): record why
            self.nvml = None
            self.error = repr(exc)

    @property
    def available(self) -> bool:
        return self.nvml is not None

    def start(self) -> None:
        if not self.available:
            return
        self.samples, self.driver_samples = [], {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        nvml, handle = self.nvml, self.handle
        assert nvml is not None
        driver_ok = hasattr(nvml, "nvmlDeviceGetSamples")
        last_stamp = 0
        while not self._stop.is_set():
            t = time.perf_counter()
            try:
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
                used = nvml.nvmlDeviceGetMemoryInfo(handle).used
                self.samples.append((t, int(rates.gpu), int(rates.memory), int(used)))
            except Exception as exc:  # noqa: BLE001 - keep sampling what still answers
                self.error = repr(exc)
            if driver_ok:
                try:
                    _, got = nvml.nvmlDeviceGetSamples(
                        handle, nvml.NVML_GPU_UTILIZATION_SAMPLES, last_stamp
                    )
                    for s in got:
                        self.driver_samples[int(s.timeStamp)] = int(s.sampleValue.uiVal)
                        last_stamp = max(last_stamp, int(s.timeStamp))
                except Exception:  # noqa: BLE001 - not every driver gives them
                    driver_ok = False
            self._stop.wait(max(0.0, self.period - (time.perf_counter() - t)))

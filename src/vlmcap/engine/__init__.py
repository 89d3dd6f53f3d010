"""The offline engine: vLLM driven by our own loop (in-flight or fixed batches)."""

from vlmcap.engine.offline import caption_items, iter_captions, load_engine
from vlmcap.engine.source import PollingSource
from vlmcap.engine.stats import LoopStats

__all__ = ["LoopStats", "PollingSource", "caption_items", "iter_captions", "load_engine"]

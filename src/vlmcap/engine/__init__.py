"""The offline engine: vLLM driven by our own loop (in-flight or fixed batches)."""

from vlmcap.engine.offline import caption_items, iter_captions, load_engine

__all__ = ["caption_items", "iter_captions", "load_engine"]

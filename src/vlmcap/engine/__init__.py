"""The offline engine: vLLM in this process, driven by the shared loop or by fixed batches."""

from vlmcap.engine.offline import caption_items, iter_records, load_engine
from vlmcap.engine.transport import EngineTransport

__all__ = ["EngineTransport", "caption_items", "iter_records", "load_engine"]

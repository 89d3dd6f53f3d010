"""The one core every backend shares: the request lifecycle, the loop driver and their stats.

request     ModelRequest (what a plugin describes), Sampling, StageRequest, Completion
lifecycle   stage 1 -> optional stage 2 -> ok / failed, settled in one place
transport   the interface a backend implements (engine, server, Ray actor)
loop        drive(): in-flight top-up, polling item source, failure isolation
source      PollingSource: item sources the driver can poll without blocking
stats       LoopStats: busy time, requests inside on average, input wait
"""

from vlmcap.core.lifecycle import Lifecycle, describe_error
from vlmcap.core.loop import drive
from vlmcap.core.request import Completion, ModelRequest, Sampling, StageRequest
from vlmcap.core.source import PollingSource
from vlmcap.core.stats import LoopStats
from vlmcap.core.transport import Finished, InflightLost, Rejected, Transport

__all__ = [
    "Completion",
    "Finished",
    "InflightLost",
    "Lifecycle",
    "LoopStats",
    "ModelRequest",
    "PollingSource",
    "Rejected",
    "Sampling",
    "StageRequest",
    "Transport",
    "describe_error",
    "drive",
]

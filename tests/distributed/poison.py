"""A plugin whose poison item kills the engine of the Ray actor it runs in, every time it is sent.

Sent to the engine actors by value (``register_pickle_by_value``): the workers need not import
the test suite.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any

import psutil
from PIL import Image

from vlmcap.plugins.tiny import TinyRandomQwen25VLPlugin

#: The colour of the poison picture (every pixel of it): resizing keeps it.
POISON_COLOUR = (1, 2, 3)
#: Seconds after the poison request goes in before its engine is killed.
POISON_DELAY_S = 0.05


class RayPoisonPlugin(TinyRandomQwen25VLPlugin):
    """The random tiny model; a request for a picture all of ``POISON_COLOUR`` kills the engine
    core of the process that sends it (the actor's own engine, never another) shortly after."""

    variant = "tiny-random-ray-poison"

    def engine_inputs(self, request: Any, processor: Any) -> Any:
        from vlmcap.runtime.processes import engine_cores

        inputs = super().engine_inputs(request, processor)
        if is_poison(request.media):
            cores = engine_cores(psutil.Process())
            threading.Timer(POISON_DELAY_S, _kill, args=(cores,)).start()
        return inputs


def is_poison(media: Any) -> bool:
    if not isinstance(media, Image.Image):
        return False
    bands = media.convert("RGB").getextrema()
    return all(low == high == c for (low, high), c in zip(bands, POISON_COLOUR, strict=True))


def _kill(cores: list[psutil.Process]) -> None:
    for core in cores:
        with contextlib.suppress(psutil.Error):
            core.send_signal(signal.SIGKILL)

"""Helpers for tests of pipelines built on vlmcap: synthetic media whose content is known,
and inputs that are known to be bad.

    from vlmcap.testing import SceneSpec, make_dataset, write_image, write_video
    from vlmcap.testing.corpus import write_corpus   # broken and hostile inputs + outcomes

The synthetic scenes are the tiny model's (``vlmcap.tiny.synthetic``); the tiny models
themselves are the plugins ``tiny-qwen2.5-vl`` (trained, shipped) and
``tiny-random-qwen2.5-vl`` (random weights). No product module imports from here.
"""

from vlmcap.tiny.synthetic import SceneSpec, make_dataset, write_image, write_video

__all__ = ["SceneSpec", "make_dataset", "write_image", "write_video"]

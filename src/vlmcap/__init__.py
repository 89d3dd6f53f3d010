"""vlmcap: caption and visual-QA folders of videos and images with VLMs served by vLLM."""

from __future__ import annotations

__version__ = "0.1.0"

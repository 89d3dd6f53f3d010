"""Visual question answering: reading a model's answer to a multiple-choice question."""

from vlmcap.qa.answers import Extraction, Method, extract_choice

__all__ = ["Extraction", "Method", "extract_choice"]

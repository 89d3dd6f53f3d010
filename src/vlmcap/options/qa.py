"""What a visual-QA run reads: the question set, its image folder, how to ask.

``vlmcap qa`` also takes the model, sampling, engine, loop, client, output and run groups of
``vlmcap caption``; only these are its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from vlmcap.options.base import OptionGroup, flag

#: Output tokens of one answer when the command line sets none (a letter, or a short sentence).
DEFAULT_QA_MAX_OUTPUT_TOKENS = 128


class QAOptions(OptionGroup):
    """The question set and how it is asked."""

    group = "qa"
    panel = "Questions"

    questions: Annotated[Path | None, flag("--questions", "-q", metavar="FILE")] = Field(
        default=None,
        description="Question set: parquet (qid, question, answer, image, category, source) "
        "or a VLMEvalKit multiple-choice TSV.",
    )
    dataset_root: Annotated[Path | None, flag(metavar="DIR", default_text="the set's folder")] = (
        Field(default=None, description="Folder the image paths are relative to.")
    )
    skip_invalid: bool = Field(
        default=False,
        description="Leave out (and report) questions that fail validation instead of stopping.",
    )
    circular: bool = Field(
        default=False,
        description="Ask each N-option question N times with the options rotated; correct "
        "only if every pass is.",
    )
    question_limit: Annotated[int | None, flag("--limit", metavar="N")] = Field(
        default=None, ge=1, description="Only the first N questions."
    )
    judge_url: Annotated[str | None, flag(metavar="URL")] = Field(
        default=None,
        description="OpenAI-compatible server whose model reads the answers no rule can "
        "(e.g. a second `vlmcap serve`); judged answers are marked and counted apart.",
    )
    judge_model: str = Field(default="auto", description="Model name on the judge server.")
    judge_api_key: str | None = Field(
        default=None, description="API key of the judge server [$OPENAI_API_KEY]."
    )

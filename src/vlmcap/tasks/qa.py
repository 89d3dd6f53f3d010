"""Visual QA as a task: multiple-choice questions in, one scored answer per question (per pass).

    plan     skip questions answered by an earlier run (circular mode: the passes answered)
    load     open the question's images (decode threads) into one item per pass; the prompt
             is the plugin's ``qa_prompt`` over the stem and the (rotated) choices
    row      ``QARow``: the record's text is the model's output; ``vlmcap.qa.extract_choice``
             reads the letter, mapped back to the question's own lettering, and scores it

Circular evaluation (``circular=True``): an N-option question is asked N times, the options
rotated by one place each pass (pass ``k`` shows option ``(i + k) mod N`` at place ``i``); it
counts as correct only when every pass is (``vlmcap.qa.results``). Each pass is a row of its
own (key ``qid#k``), so a rerun reuses the passes already answered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vlmcap.media.images import MediaError, load_image
from vlmcap.qa.answers import Method, extract_choice
from vlmcap.qa.dataset import Question
from vlmcap.records import Item, Record
from vlmcap.rows import QARow, Row
from vlmcap.tasks.base import Loaded, Plan, ShouldSkip

if TYPE_CHECKING:
    from vlmcap.config import VLMConfig
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.qa.judge import Judge
    from vlmcap.sinks.resume import ResumeState

#: Separator of a question id and its pass number in circular mode (``q17#2``).
PASS_SEPARATOR = "#"
#: The "prompt style" QA rows record (circular passes are a style of their own, so the two
#: kinds of run never resume from each other).
QA_STYLE = "qa"
CIRCULAR_STYLE = "qa-circular"
#: Extraction outcomes a judge is asked about (a refusal is an answer, not a parsing gap).
JUDGED_METHODS = frozenset({Method.NONE, Method.INVALID, Method.AMBIGUOUS})
#: ``extraction_method`` of an answer the judge read.
JUDGE_METHOD = "judge"
#: Keys of an item's ``meta``: the question it asks and its pass (the row reads them back, in
#: whatever process the record is finished).
QUESTION_META = "question"
PASS_META = "pass"
#: One load job: the question and the keys of its passes answered already.
QAJob = tuple[Question, frozenset[str]]


def qa_style(circular: bool) -> str:
    """The style QA rows record: circular runs and plain runs never resume from each other."""
    return CIRCULAR_STYLE if circular else QA_STYLE


def pass_key(qid: str, k: int) -> str:
    return f"{qid}{PASS_SEPARATOR}{k}"


def rotated(question: Question, k: int) -> dict[str, str]:
    """The choices shown in pass ``k``: same letters, texts shifted by ``k`` places."""
    letters = list(question.choices)
    texts = list(question.choices.values())
    n = len(letters)
    return {letters[i]: texts[(i + k) % n] for i in range(n)}


def original_letter(question: Question, shown: str, k: int) -> str:
    """The question's own letter of the option shown under ``shown`` in pass ``k``."""
    letters = list(question.choices)
    return letters[(letters.index(shown) + k) % len(letters)]


@dataclass
class QATask:
    """Answer ``questions`` with ``plugin``'s QA prompt; ``circular``: every rotation."""

    plugin: VLMPlugin
    config: VLMConfig
    circular: bool = False
    judge: Judge | None = None
    name: str = "qa"
    row_type: type[Row] = QARow

    @property
    def style(self) -> str:
        return qa_style(self.circular)

    def __getstate__(self) -> dict[str, Any]:
        """A pickled copy (a Ray worker's) loads questions only: the judge is a connection of
        this process, and rows are made here."""
        return {**self.__dict__, "judge": None}

    def passes(self, question: Question) -> list[str]:
        """The item keys of ``question``: its qid, or one per rotation."""
        if not self.circular:
            return [question.qid]
        return [pass_key(question.qid, k) for k in range(len(question.choices))]

    def plan(
        self, questions: Sequence[Question], state: ResumeState, should_skip: ShouldSkip
    ) -> Plan[QAJob]:
        jobs: list[QAJob] = []
        done = 0
        for question in questions:
            keys = self.passes(question)
            skip = frozenset(k for k in keys if should_skip(k))
            if len(skip) == len(keys):
                done += 1
            else:
                jobs.append((question, skip))
        return Plan(jobs, done)

    def job_key(self, job: QAJob) -> str:
        return job[0].qid

    def load(self, job: QAJob) -> Loaded[Question]:
        question, skip = job
        try:
            images = [load_image(path) for path in question.images]
        except (MediaError, OSError, ValueError) as exc:
            return Loaded(question, question.qid, error=f"question {question.qid}: {exc}")
        media: Any = images[0] if len(images) == 1 else images
        items = []
        for k, key in enumerate(self.passes(question)):
            if key in skip:
                continue
            prompt = self.plugin.qa_prompt(question.question, rotated(question, k), question.hint)
            meta = {"qid": question.qid, QUESTION_META: question, PASS_META: k}
            items.append(Item(key=key, media=media, prompt=prompt, meta=meta))
        return Loaded(question, question.qid, items)

    def row(self, record: Record) -> QARow:
        assert record.item is not None, "a QA record keeps its item's meta until its row is made"
        question, k = record.item.meta[QUESTION_META], record.item.meta[PASS_META]
        row = self._base_row(question, record, k)
        if record.text is None:
            return row
        shown = rotated(question, k)
        extraction = extract_choice(record.text, shown)
        row.extraction_method = str(extraction.method)
        row.extraction_evidence = extraction.evidence or None
        letter = extraction.letter
        if letter is None and self.judge is not None and extraction.method in JUDGED_METHODS:
            verdict = self.judge.pick(question.question, shown, record.text)
            row.judged, row.judge_output = True, verdict.reply
            if verdict.letter is not None:
                letter = verdict.letter
                row.extraction_method = JUDGE_METHOD
        if letter is not None:
            row.predicted_letter = original_letter(question, letter, k)
        row.is_correct = row.predicted_letter == question.answer
        return row

    def failed_rows(self, loaded: Loaded[object]) -> list[Row]:
        """A question whose images cannot be loaded fails every one of its passes."""
        question = loaded.unit
        assert isinstance(question, Question)
        rows: list[Row] = []
        for k, key in enumerate(self.passes(question)):
            record = Record(key=key, request_id="-")
            record.fail(loaded.error or "cannot load", time.time())
            rows.append(self._base_row(question, record, k))
        return rows

    def _base_row(self, question: Question, record: Record, k: int) -> QARow:
        values = QARow.record_fields(record)
        return QARow(
            **values,
            qid=question.qid,
            question=question.question,
            choices=list(question.choices.values()),
            gt_answer=question.raw_answer,
            gt_letter=question.answer,
            model_output=record.text,
            category=question.category,
            source=question.source,
            image_paths=list(question.image_keys),
            num_images=len(question.images),
            rotation=k if self.circular else None,
        )

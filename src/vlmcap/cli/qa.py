"""``vlmcap qa --questions Q.parquet``: score a model on a multiple-choice visual-QA set.

The options are the schema's (``vlmcap.options.QA``). The set is validated before anything
loads (one report of every problem, or ``--skip-invalid``); then the questions run through the
same pipeline as captioning, offline or against ``vlmcap serve``, resumable.

Exit status: 0 every question was asked (right or wrong), 1 some requests failed, 2 bad usage
or an invalid question set.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from vlmcap.cli.errors import usage_error
from vlmcap.cli.job import run_job
from vlmcap.cli.qa_view import print_qa_summary
from vlmcap.cli.replay import replay_job
from vlmcap.config import ConfigError, VLMConfig
from vlmcap.debug.logging import LOGS_DIR, job_logging
from vlmcap.debug.terminal import say
from vlmcap.options import (
    QA,
    ClientOptions,
    HealthLogOptions,
    LogOptions,
    MonitorOptions,
    OutputOptions,
    QAOptions,
    RayOptions,
    RunOptions,
)
from vlmcap.options.cli import command_line_values, with_options

if TYPE_CHECKING:
    from vlmcap.core.progress import Progress
    from vlmcap.pipeline.backend import AnyBackend
    from vlmcap.plugins.base import VLMPlugin
    from vlmcap.qa.dataset import QuestionSet
    from vlmcap.qa.judge import Judge
    from vlmcap.sinks.store import RecordStore


@with_options(QA)
def qa(**given: Any) -> None:
    """Score a VLM on multiple-choice visual questions: answers read back with the rule that
    decided each, accuracy per category and source, resumable outputs under OUT/qa/<model>/.

    Re-running the same command resumes. Exit status: 0 every question asked, 1 some requests
    failed, 2 bad usage or an invalid question set.
    """
    from vlmcap.qa.dataset import load_questions
    from vlmcap.qa.problems import QuestionSetError

    try:
        parsed = QA.resolve(command_line_values(QA, given))
        config = parsed.build(VLMConfig)
        options = parsed.build(QAOptions)
        output_dir = parsed.build(OutputOptions).output_dir
        run = parsed.build(RunOptions)
        client = parsed.build(ClientOptions)
        ray = parsed.build(RayOptions)
        monitor = parsed.build(MonitorOptions, health=parsed.build(HealthLogOptions))
        logs = parsed.build(LogOptions)
        if config.replay is not None:
            raise typer.Exit(replay_job(config.replay, config, client, output_dir, logs))
        if options.questions is None:
            raise ConfigError("give the question set with --questions FILE")
        root = options.dataset_root or options.questions.parent
        questions = load_questions(
            options.questions, root, skip_invalid=options.skip_invalid, work_dir=output_dir
        )
    except (ConfigError, FileNotFoundError, QuestionSetError, ValueError) as exc:
        usage_error(str(exc))
    for problem in questions.problems:
        say(f"warning: skipped {problem}")
    if options.question_limit is not None:
        questions.questions = questions.questions[: options.question_limit]
    meta = {"questions_path": str(options.questions), "dataset_path": str(root)}
    judge = _judge(options, client.retries)
    try:
        with job_logging(logs, output_dir / LOGS_DIR, "qa"):
            status = _run(
                questions,
                config,
                client,
                output_dir,
                run,
                options,
                meta,
                judge,
                monitor=monitor,
                ray=ray,
            )
        raise typer.Exit(status)
    finally:
        if judge is not None:
            judge.close()


def _judge(options: QAOptions, retries: int) -> Judge | None:
    """The judge of ``--judge-url``, checked before any engine starts (None without one); it
    retries as the client does (``--retries``)."""
    if options.judge_url is None:
        return None
    from vlmcap.client import ServerError
    from vlmcap.client.openai_client import ClientConfig
    from vlmcap.qa.judge import Judge

    try:
        judge = Judge(
            ClientConfig(
                url=options.judge_url,
                api_key=options.judge_api_key,
                model=options.judge_model,
                retries=retries,
            )
        )
    except ValueError as exc:
        usage_error(f"--judge-url: {exc}")
    try:
        judge.connect()
    except ServerError as exc:
        judge.close()
        usage_error(str(exc))
    return judge


def _run(
    questions: QuestionSet,
    config: VLMConfig,
    client: ClientOptions,
    output_dir: Path,
    run: RunOptions,
    options: QAOptions,
    meta: dict[str, Any],
    judge: Judge | None,
    *,
    monitor: MonitorOptions,
    ray: RayOptions,
) -> int:
    from vlmcap.cli.caption_view import CaptionProgress
    from vlmcap.pipeline.qa import answer_questions, open_qa_store

    def open_store(plugin: VLMPlugin) -> RecordStore:
        return open_qa_store(output_dir, plugin, run, circular=options.circular)

    def work(
        backend: AnyBackend,
        plugin: VLMPlugin,
        store: RecordStore,
        server_url: str | None,
        live: Progress,
    ) -> int:
        with CaptionProgress(len(questions), verb="answering", unit="questions") as progress:
            summary = answer_questions(
                questions.questions,
                backend,
                plugin,
                config,
                output_dir,
                run=run,
                store=store,
                circular=options.circular,
                judge=judge,
                meta={**meta, "server_url": server_url},
                on_row=progress.row,
                on_plan=progress.plan,
                on_question_done=progress.file_done,
                live=live,
            )
        store.close()
        print_qa_summary(summary, output_dir, plugin.variant)
        return 1 if summary.failed else 0

    return run_job(config, client, open_store, work, monitor, ray)

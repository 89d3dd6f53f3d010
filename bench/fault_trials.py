"""Fault trials on real ``vlmcap`` jobs (subprocesses), for ``bench/reliability.py``.

A ``Job`` is a command that writes one row per key into a JSONL file and resumes when run
again. Each trial kind starts the job, waits until a seeded number of new rows are written,
then does its fault at a seeded instant:

    kill_trials      SIGKILL to the job's whole process group (a batch scheduler, the OOM
                     killer): after it, every complete line parses, no key is written twice,
                     no process of the group is left, and a last run finishes the job
    signal_trials    SIGINT or SIGTERM to the job's main process (Ctrl-C, ``kill``): the job
                     must exit by itself with 130 / 143, its lock released, its rows whole
    engine_deaths    SIGKILL to the offline job's vLLM engine process only, several times in
                     one run: the job restarts its engine and finishes every item once (exit 0)
    engine_lost      the same with no restart allowed: the job stops by itself with exit
                     status 75, and a rerun finishes the rest

Lost and duplicated keys are counted over the whole job after the last run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from vlmcap.runtime.processes import engine_cores

#: Seconds one run may take before the trial counts as hung.
RUN_TIMEOUT_S = 600
#: Seconds the killed job's processes get to be gone.
GONE_S = 10.0
#: New rows a trial waits for before its fault, at most (at least one).
MAX_ROWS_PER_TRIAL = 3
#: Seconds of random delay after those rows, at most.
MAX_FAULT_DELAY_S = 0.2
#: Seconds a job gets to stop by itself after SIGINT / SIGTERM.
STOP_S = 120.0
#: Exit status of a job whose engine died more often than ``--engine-restarts`` allows.
ENGINE_LOST_STATUS = 75
#: What the job logs when it restarts its engine.
RESTART_LINE = "restarting the engine (restart "


@dataclass
class Job:
    """A resumable ``vlmcap`` command and where it writes its rows."""

    name: str
    cmd: list[str]
    rows: Path
    keys: list[str]  # every key the finished job has, once
    lock: Path
    log: Path  # each run's stderr, appended (a pipe could fill up and stall the job)

    def written(self) -> list[str]:
        """Keys of the complete lines written so far (a torn last line is left out)."""
        if not self.rows.exists():
            return []
        lines = self.rows.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]
        return [json.loads(line)["key"] for line in lines]

    def start(self, env: dict[str, str], extra: list[str] | None = None) -> subprocess.Popen:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [*self.cmd, *(extra or [])],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )

    def said(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def finish(self, env: dict[str, str]) -> int:
        """Run the job to its end (resuming); its exit status."""
        done = subprocess.run(
            self.cmd, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False
        )
        return done.returncode

    def totals(self) -> dict[str, int]:
        written = self.written()
        return {
            "items": len(self.keys),
            "lost": len(set(self.keys) - set(written)),
            "duplicated": len(written) - len(set(written)),
        }


def left_behind(pgid: int) -> list[str]:
    """Live processes still in the job's process group."""
    out = []
    for proc in psutil.process_iter(["pid", "name"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{proc.pid} {proc.name()}")
        except (ProcessLookupError, psutil.Error, PermissionError):
            continue
    return out


def wait_gone(pgid: int) -> list[str]:
    """What is left of the process group after ``GONE_S``."""
    deadline = time.monotonic() + GONE_S
    while left_behind(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left_behind(pgid)


def wait_rows(job: Job, proc: subprocess.Popen, target: int) -> bool:
    """Wait until ``target`` rows are written or the job exits; False if it hung."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while proc.poll() is None and len(job.written()) < target:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole process group (the job may have exited, its children not)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class Trials:
    """Counts of one trial kind."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.runs = self.faults = self.hung = self.dup_seen = self.bad_lines = 0
        self.left: list[str] = []
        self.statuses: list[int] = []

    def after(self, proc: subprocess.Popen) -> None:
        """Checks after one run: processes gone, lines parse, nothing written twice."""
        self.left += wait_gone(proc.pid)
        kill_group(proc)  # whatever was left: counted above, not left to the next trial
        try:
            written = self.job.written()
        except json.JSONDecodeError:
            self.bad_lines += 1
            return
        self.dup_seen += len(written) - len(set(written))

    def result(self, env: dict[str, str], **extra: Any) -> dict[str, Any]:
        final = self.job.finish(env)
        return {
            "runs_started": self.runs,
            "faults": self.faults,  # runs the fault reached mid-job (others finished first)
            **self.job.totals(),
            "duplicates_seen_after_a_fault": self.dup_seen,
            "unparsable_lines": self.bad_lines,
            "processes_left_behind": len(self.left),
            "left_behind": self.left,
            "hung_runs": self.hung,
            "final_exit_code": final,
            "lock_left": self.job.lock.exists(),
            **extra,
        }


def kill_trials(job: Job, env: dict[str, str], trials: int, seed: int) -> dict[str, Any]:
    """``trials`` SIGKILLs of the whole job at seeded moments, then a last run."""
    rng = random.Random(seed)
    counts = Trials(job)
    for _ in range(trials):
        before = len(job.written())
        if before >= len(job.keys):
            break  # the job is done: nothing left to kill
        counts.runs += 1
        proc = job.start(env)
        if not wait_rows(job, proc, before + rng.randint(1, MAX_ROWS_PER_TRIAL)):
            counts.hung += 1
        time.sleep(rng.uniform(0, MAX_FAULT_DELAY_S))
        if proc.poll() is None:
            kill_group(proc)
            counts.faults += 1
        proc.wait(timeout=60)
        counts.after(proc)
    return counts.result(env, trials_asked=trials)


def signal_trials(
    job: Job, env: dict[str, str], sig: signal.Signals, trials: int, seed: int
) -> dict[str, Any]:
    """``trials`` runs each stopped by ``sig`` to the main process; each must exit by itself
    with ``128 + sig`` within ``STOP_S``, its lock released."""
    rng = random.Random(seed)
    counts = Trials(job)
    expected = 128 + int(sig)
    wrong_status, lock_kept, slow = 0, 0, 0
    stop_s: list[float] = []
    for _ in range(trials):
        before = len(job.written())
        if before >= len(job.keys):
            break
        counts.runs += 1
        proc = job.start(env)
        if not wait_rows(job, proc, before + rng.randint(1, MAX_ROWS_PER_TRIAL)):
            counts.hung += 1
        time.sleep(rng.uniform(0, MAX_FAULT_DELAY_S))
        if proc.poll() is None:
            sent = time.monotonic()
            proc.send_signal(sig)
            counts.faults += 1
            try:
                status = proc.wait(timeout=STOP_S)
                stop_s.append(time.monotonic() - sent)
                wrong_status += status != expected
                counts.statuses.append(status)
            except subprocess.TimeoutExpired:
                slow += 1
                kill_group(proc)
                proc.wait(timeout=60)
            lock_kept += job.lock.exists()
        counts.after(proc)
    return counts.result(
        env,
        signal=sig.name,
        trials_asked=trials,
        expected_exit_status=expected,
        exit_statuses=sorted(set(counts.statuses)),
        wrong_exit_status=wrong_status,
        not_stopped_in_time=slow,
        lock_left_after_stop=lock_kept,
        stop_seconds_max=round(max(stop_s), 2) if stop_s else None,
    )


def engine_deaths(job: Job, env: dict[str, str], kills: int, seed: int) -> dict[str, Any]:
    """One run with ``--engine-restarts kills`` whose engine process is SIGKILLed ``kills``
    times, each after new rows: it must restart its engine each time and end with exit 0."""
    rng = random.Random(seed)
    counts = Trials(job)
    counts.runs += 1
    said_before = job.said().count(RESTART_LINE)
    proc = job.start(env, ["--engine-restarts", str(kills)])
    job_proc = psutil.Process(proc.pid)
    while counts.faults < kills and proc.poll() is None:
        target = len(job.written()) + rng.randint(1, MAX_ROWS_PER_TRIAL)
        if not wait_rows(job, proc, target):
            counts.hung += 1
            break
        time.sleep(rng.uniform(0, MAX_FAULT_DELAY_S))
        engines = engine_cores(job_proc) if proc.poll() is None else []
        if len(engines) != 1:
            continue  # between two engines: the next rows come from the new one
        engines[0].send_signal(signal.SIGKILL)
        counts.faults += 1
    status = _wait(proc, counts)
    counts.after(proc)
    return counts.result(
        env,
        kills_asked=kills,
        exit_status=status,
        restarts_logged=job.said().count(RESTART_LINE) - said_before,
    )


def engine_lost(job: Job, env: dict[str, str], seed: int) -> dict[str, Any]:
    """A run with ``--engine-restarts 0`` whose engine is killed once, after a few rows: it
    must stop by itself with exit status 75, and a rerun finishes the rest."""
    rng = random.Random(seed)
    counts = Trials(job)
    counts.runs += 1
    proc = job.start(env, ["--engine-restarts", "0"])
    if wait_rows(job, proc, rng.randint(1, MAX_ROWS_PER_TRIAL)):
        engines = engine_cores(psutil.Process(proc.pid)) if proc.poll() is None else []
        for engine in engines:
            engine.send_signal(signal.SIGKILL)
        counts.faults += bool(engines)
    status = _wait(proc, counts)
    written_at_stop = len(job.written())
    counts.after(proc)
    return counts.result(
        env,
        exit_status=status,
        expected_exit_status=ENGINE_LOST_STATUS,
        rows_kept_at_stop=written_at_stop,
    )


def _wait(proc: subprocess.Popen, counts: Trials) -> int | None:
    """The run's exit status; None (and counted as hung) if it did not end in time."""
    try:
        return proc.wait(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        counts.hung += 1
        kill_group(proc)
        proc.wait(timeout=60)
        return None

"""The short version of ``bench/reliability.py``, run in CI: the part no other test covers.

SIGINT to a running ``vlmcap caption``: exit 130 by itself, lock released, rows whole, and the
rerun resumes to every item exactly once with no process left. The other faults have their
own tests: SIGTERM and SIGKILL of the offline job (``tests/runtime/test_offline_end.py``,
``tests/pipeline/test_kill_resume.py``), an engine death with and without a restart left
(``tests/pipeline/test_engine_restart.py``), SIGKILL of ``vlmcap qa`` on Ray and of an engine
actor (``tests/distributed/test_ray.py``), a SIGKILLed client of a server
(``tests/client/test_server_mode.py``), the load on one server
(``tests/client/test_server_load.py``) and the corpus (``tests/testing/test_corpus.py``). The
full bench runs 20 SIGKILL trials of each job kind, offline ``vlmcap qa`` among them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("sigint",)
#: Seconds the short suite may take (about 2 minutes on 2 cores).
SUITE_TIMEOUT_S = 900
#: Pictures of each fault trial's dataset: enough for a few rows before each fault.
IMAGES = 60


def test_short_reliability_suite_loses_and_duplicates_nothing(tmp_path, cache_dir):
    out = tmp_path / "reliability.json"
    cmd = [sys.executable, "reliability.py", "--parts", ",".join(PARTS), "--signal-trials", "1",
           "--images", str(IMAGES), "--out", str(out)]  # fmt: skip
    env = {**os.environ, "VLMCAP_CACHE_DIR": str(cache_dir), "VLLM_LOGGING_LEVEL": "WARNING"}
    env.pop("OPENAI_API_KEY", None)
    proc = subprocess.run(
        cmd,
        cwd=ROOT / "bench",
        env=env,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    part = result["sigint"]
    assert part["lost"] == 0 and part["duplicated"] == 0, part
    assert part.get("failed", 0) == 0, part
    assert part["faults"] >= 1, part  # the signal did reach a running job
    assert part["processes_left_behind"] == 0, part
    assert part["unparsable_lines"] == 0 and part["duplicates_seen_after_a_fault"] == 0
    assert part["hung_runs"] == 0 and not part["lock_left"], part
    assert part["final_exit_code"] == 0, part
    assert part["exit_statuses"] == [130] and part["lock_left_after_stop"] == 0

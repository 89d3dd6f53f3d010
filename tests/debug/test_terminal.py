"""``redirect_output`` on real file descriptors, in a child interpreter (so that pytest's own
capture of descriptors 1 and 2 stays out of it)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import os, subprocess, sys
    from pathlib import Path
    from vlmcap.debug import terminal

    log = Path(sys.argv[1])
    print("before")
    with terminal.redirect_output(log):
        assert terminal.redirected()
        print("library print")
        os.write(2, b"C-level stderr\\n")
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child says hi\\\\n')"])
        terminal.say("progress for the user")
        terminal.console().print("summary table")
    print("after")
    assert not terminal.redirected()
    raise SystemExit(3)
    """
)


def test_other_output_goes_to_the_file_and_ours_to_the_terminal(tmp_path: Path):
    log = tmp_path / "logs" / "run.log"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(log)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["before", "summary", "table", "after"]
    assert proc.stderr.strip() == "progress for the user"
    text = log.read_text()
    assert "library print" in text and "C-level stderr" in text and "child says hi" in text
    assert "progress for the user" not in text and "summary table" not in text


def test_a_block_that_raises_gives_the_terminal_back(tmp_path: Path):
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from vlmcap.debug import terminal
        with terminal.redirect_output(Path(sys.argv[1])):
            raise RuntimeError("boom inside")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.log")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "RuntimeError: boom inside" in proc.stderr  # the traceback reached the terminal

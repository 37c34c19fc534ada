"""The CLI process exits promptly once a command has printed its result."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import REPO


def test_the_imports_are_kept_out_of_the_collector() -> None:
    """Frozen (gc.freeze), so interpreter teardown does not run full collections over them: that was
    1.1-1.5 s of exit at load 12, 3.6-8.9 s at load 15-18, after ``task run`` had printed."""
    code = "import gc, cli.main; print(gc.get_freeze_count())"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10_000, done.stdout  # everything imported (about 70,000 objects)

"""The beanstalk driver needs no client library: jobs pushed and run by processes in which
``import greenstalk`` fails."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from queue_core import create_queue
from tests.support.jobs import read_lines
from tests.support.procs import ROOT, queue_core, worker_env
from tests.support.specs.beanstalk import available, port

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))

PUSH = """
import json, os, sys
try:
    import greenstalk
except ImportError:
    pass
else:
    sys.exit("greenstalk is importable: the test proves nothing")
from queue_core import create_queue
from tests.support.jobs import Record
queue = create_queue(json.loads(os.environ["QUEUE_TEST_SETTINGS"]))
for tag in ("a", "b", "c"):
    queue.push(Record(sys.argv[1], tag))
queue.close()
assert "greenstalk" not in sys.modules
"""


def test_push_and_run_work_where_greenstalk_cannot_be_imported(tmp_path: Path,
                                                               journal: str,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    blocker = tmp_path / "blocked"
    (blocker / "greenstalk").mkdir(parents=True)
    (blocker / "greenstalk" / "__init__.py").write_text(
        "raise ImportError('greenstalk is not installed in this test')\n")
    monkeypatch.setenv("PYTHONPATH", str(blocker))
    settings: dict[str, Any] = {"driver": f"beanstalk://127.0.0.1:{port()}",
                                "channel": f"t{uuid.uuid4().hex[:10]}",
                                "imports": ["tests.support.jobs"]}
    try:
        pushed = subprocess.run([sys.executable, "-c", PUSH, journal], cwd=ROOT,
                                env=worker_env(settings), capture_output=True, text=True,
                                timeout=60)
        assert pushed.returncode == 0, pushed.stderr
        worker = queue_core(settings, "run")
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        assert "greenstalk" not in err
        assert sorted(read_lines(journal)) == ["a", "b", "c"]
        assert sum(create_queue(settings).info().values()) == 0
    finally:
        create_queue(settings).clear()

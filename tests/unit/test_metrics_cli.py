"""``listen --metrics-port`` / ``--metrics-host``: argument checks and a missing extra."""

from __future__ import annotations

import builtins
import socket
import subprocess
import sys
from typing import Any

import pytest

from queue_core.cli import EXIT_USAGE, main
from tests.support.procs import ROOT


@pytest.mark.parametrize("args, message", [
    (["--metrics-host", "0.0.0.0"], "--metrics-host needs --metrics-port"),
    (["--metrics-port", "70000"], "is not a port"),
    (["--metrics-port", "0"], "must be >= 1"),
    (["--metrics-port", "http"], "is not a whole number"),
])
def test_bad_metrics_options_exit_2(args: list[str], message: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--app", "memory://", "listen", "--max-jobs", "1", *args])
    assert code == EXIT_USAGE
    assert message in capsys.readouterr().err


def test_metrics_without_prometheus_client_names_the_extra(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    real_import = builtins.__import__

    def no_prometheus(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("prometheus_client"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_prometheus)
    for name in [module for module in sys.modules if module.startswith("prometheus_client")]:
        monkeypatch.delitem(sys.modules, name)
    code = main(["--app", "memory://", "listen", "--metrics-port", "9999"])
    assert code == EXIT_USAGE
    assert "pip install 'queue-core[metrics]'" in capsys.readouterr().err


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_a_port_in_use_exits_2_and_leaves_no_directory(
        workers: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    pytest.importorskip("prometheus_client")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["--app", f"file://{tmp_path}/q", "listen", "--metrics-port", str(port),
                     *workers])
    assert code == EXIT_USAGE
    assert f"cannot serve metrics on 127.0.0.1:{port}" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("queue-core-metrics")] == []


def test_the_core_imports_neither_client_until_asked() -> None:
    code = ("import sys, queue_core, queue_core.cli, queue_core.metrics, "
            "queue_core.metrics_serving, queue_core.tracing\n"
            "queue_core.create_queue('memory://').push\n"
            "print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('prometheus_client', 'opentelemetry')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

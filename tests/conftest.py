"""Shared test helpers: write a spec file into ``tmp_path``; run the archc CLI in-process."""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one thread per worker, one worker per core
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(_var, "1")


@dataclass(frozen=True)
class CliResult:
    """What one ``archc`` invocation did: exit status and captured output."""

    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def run_cli(*argv) -> CliResult:
    """Run ``archc.cli.main(argv)`` in this process, capturing stdout, stderr and the exit status."""
    from archc.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors exit instead of returning
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    """``cli("summary", path, "--json")`` -> :class:`CliResult`."""
    return run_cli


@pytest.fixture
def write_yaml(tmp_path):
    """``write_yaml(text, name="spec.yaml")`` writes ``text`` under ``tmp_path`` and returns the path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def torchvision():
    """The ``torchvision`` module (skips the test if it is not installed); see tests/torchvision_fixture.py for
    the test-environment workaround that lets it import on CPU torch."""
    pytest.importorskip("torch")
    from tests.torchvision_fixture import import_torchvision

    tv = import_torchvision()
    if tv is None:
        pytest.skip("torchvision is not installed (pip install --no-deps torchvision==0.28.0 pillow)")
    return tv


def keep_report(name: str, lines: list[str]) -> None:
    """Also write a test's measured figures to <tmp>/archc-<name>.txt (pytest captures prints): the numbers of
    the last run, for a closing note or a benchmark table, without rerunning with -s."""
    import tempfile
    from pathlib import Path

    Path(tempfile.gettempdir(), f"archc-{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

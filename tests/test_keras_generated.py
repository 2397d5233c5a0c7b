"""Keras backend: the generated modules build the network the analysis describes.

Parametrized over every spec in specs/, so a new spec is tested with no new test code.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from archc.analysis import analyze  # noqa: E402
from archc.cli import main as archc_main  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402
from tests.sizes import check_report, heavy, second_sets  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))


def load_module(path: Path, name: str):
    s = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


def check_model(module, report):
    model = module.build_model(input_shape=report.input_shape)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert (trainable, non_trainable) == (report.trainable, report.non_trainable)
    x = np.zeros((1, *report.input_shape), np.float32)
    outs = model(x, training=False)
    if isinstance(outs, dict):  # several outputs (and the heads'), by name
        assert {n: tuple(o.shape) for n, o in outs.items()} == {n: (1, *s) for n, s in report.outputs.items()}
    else:
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        assert [tuple(o.shape) for o in outs] == [(1, *s) for s in report.outputs.values()]
    assert module.LOSS_WEIGHTS == report.loss_weights
    main_only = module.inference_model(model)(x, training=False)
    if isinstance(main_only, dict):  # the named outputs, the heads' left out
        heads = set(report.outputs) - set(main_only)
        assert {n: tuple(o.shape) for n, o in main_only.items()} == {
            n: (1, *s) for n, s in report.outputs.items() if n not in heads
        }
    else:
        assert tuple(main_only.shape) == (1, *report.outputs["main"])
    keras.utils.clear_session()


@pytest.mark.parametrize("spec", SPECS)
def test_generated_module_matches_analysis(spec):
    report = check_report(spec)  # the spec's size, or a small one for a heavy model (tests/sizes.py)
    check_model(load_module(ROOT / "generated" / "keras" / (Path(spec).stem + ".py"), f"k_{Path(spec).stem}"), report)


@pytest.mark.parametrize("spec", [s for s in SPECS if not heavy(s)])  # a heavy one: at a small size above
def test_second_input_size_and_channels(spec, tmp_path):
    sets = second_sets(spec)
    report = analyze(compile_spec(spec, sets))
    out = tmp_path / "m.py"
    argv = ["build", spec, "--backend", "keras", "-o", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert archc_main(argv) == 0
    check_model(load_module(out, f"k2_{Path(spec).stem}"), report)


def test_generated_keras_is_lint_clean():
    pytest.importorskip("ruff")
    for args in (["check"], ["format", "--check"]):
        r = subprocess.run([sys.executable, "-m", "ruff", *args, "generated/keras"], cwd=ROOT, capture_output=True)
        assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def test_generated_imports_only_keras():
    for path in (ROOT / "generated" / "keras").glob("*.py"):
        imports = {
            line.split()[1].split(".")[0]
            for line in path.read_text().splitlines()
            if line.startswith(("import ", "from "))
        }
        assert imports == {"keras"}, (path, imports)


@pytest.mark.parametrize("spec", ["specs/googlenet_torchvision.yaml", "specs/densenet121.yaml"])
def test_deterministic_across_processes(spec):
    code = (
        "import sys; from archc.pipeline import compile_spec; from archc.backends import get_backend; "
        "sys.stdout.write(get_backend('keras').emit(compile_spec(sys.argv[1])))"
    )
    outs = []
    for seed in ("0", "999"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", code, spec], cwd=ROOT, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1] == (ROOT / "generated" / "keras" / (Path(spec).stem + ".py")).read_text()


LOWERING = """\
name: lowering
input: {{height: {h}, width: {w}, channels: 2}}
network:
  - conv: {{name: conv, out: 3, kernel: 1, bias: false}}
  - maxpool: {{name: pool, kernel: 3, stride: 2, padding: {p}, ceil: {ceil}}}
"""


@pytest.mark.parametrize("h,w,p,ceil", [(7, 8, 0, "true"), (9, 9, 1, "false"), (10, 7, 1, "true")])
def test_max_pool_padding_and_ceil_numbers(tmp_path, h, w, p, ceil):
    """Max-pool padding must never win (inputs here are negative), ceil rounding adds the last window:
    compared with a numpy reference written from the IR's pooling semantics."""
    from archc.analysis import pool_out

    spec = tmp_path / "lowering.yaml"
    spec.write_text(LOWERING.format(h=h, w=w, p=p, ceil=ceil))
    out = tmp_path / "lowering.py"
    assert archc_main(["build", str(spec), "--backend", "keras", "-o", str(out)]) == 0
    model = load_module(out, f"low_{h}_{w}_{p}_{ceil}").build_model()
    kernel = -np.abs(np.random.default_rng(0).normal(size=(1, 1, 2, 3))).astype(np.float32)
    model.get_layer("conv").set_weights([kernel])
    x = np.abs(np.random.default_rng(1).normal(size=(1, h, w, 2))).astype(np.float32)
    y = np.asarray(model(x, training=False))
    feat = np.einsum("nhwc,cd->nhwd", x, kernel[0, 0])  # all values < 0: zero padding would win
    padded = np.full((h + 2 * p + 3, w + 2 * p + 3, 3), -np.inf, np.float32)
    padded[p : p + h, p : p + w] = feat[0]
    ho, wo = pool_out(h, 3, 2, p, p, ceil == "true"), pool_out(w, 3, 2, p, p, ceil == "true")
    windows = [[padded[2 * i : 2 * i + 3, 2 * j : 2 * j + 3] for j in range(wo)] for i in range(ho)]
    ref = np.array([[win.max(axis=(0, 1)) for win in row] for row in windows])
    assert y.shape == (1, ho, wo, 3)
    assert np.allclose(y[0], ref, atol=1e-6)


@pytest.mark.parametrize("stem", ["mobilenet_v1_025_160", "googlenet_torchvision"])
def test_jit_compile_gives_the_same_numbers(stem):
    """The generated Keras model compiles with XLA (jit_compile=True) and predicts what eager mode predicts."""
    module = load_module(ROOT / "generated" / "keras" / f"{stem}.py", f"jit_{stem}")
    model = module.inference_model(module.build_model())
    x = np.random.default_rng(0).normal(size=(2, *model.input_shape[1:])).astype(np.float32)
    eager = np.asarray(model(x, training=False))
    model.compile(jit_compile=True)
    jitted = model.predict(x, batch_size=2, verbose=0)
    assert np.abs(eager - jitted).max() <= 1e-4 * np.abs(eager).max()
    keras.utils.clear_session()

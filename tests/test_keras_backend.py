"""Keras backend: the generated modules are the network the IR describes, in counts, names, shapes and numbers.

Parametrized over every spec in specs/ (a new spec needs no new test code). The numbers are checked
against a numpy interpreter of the IR written here from the IR's own definitions (archc/ir.py), so
no other framework is needed: -inf max-pool padding, PyTorch's ceil rounding, TensorFlow 'same',
explicit asymmetric padding, dilation, groups, depthwise multipliers, nested concats, dense
connectivity, BN in inference mode, auxiliary heads.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from archc.backends import get_backend, list_backends  # noqa: E402
from archc.backends.common import Unsupported  # noqa: E402

from archc import ir  # noqa: E402
from archc.analysis import analyze  # noqa: E402
from archc.cli import main as archc_main  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402
from tests.sizes import check_sets, heavy  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# the layer-by-layer checks run on the specs of moderate size: a heavy one (VGG, ResNet-152, EfficientNet-B4..B7,
# tests/sizes.py) is its family's blocks scaled up, built and counted in tests/test_keras_generated.py
SPECS = [s for s in sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml")) if not heavy(s)]
TOLERANCE = 1e-4

# other input sizes / channel counts: (spec, --set overrides)
OTHER_INPUTS = [
    ("specs/googlenet.yaml", ["size=96", "channels=1"]),
    ("specs/googlenet_torchvision.yaml", ["input.height=161", "input.width=192", "input.channels=1"]),
    ("specs/densenet121.yaml", ["size=161"]),
    ("specs/mobilenet_v1.yaml", ["size=225"]),
    ("specs/mobilenet_v1_025_160.yaml", ["input.height=129", "input.width=97", "input.channels=2"]),
]
# real specs run through numpy at a small (odd) size
SMALL = {
    "specs/googlenet_torchvision.yaml": ["size=83"],
    "specs/googlenet.yaml": ["size=81", "channels=1"],
    "specs/densenet121.yaml": ["size=33"],
    "specs/mobilenet_v1_025_160.yaml": ["size=35"],
}


# ---------------------------------------------------------------------------------------------- helpers
def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def emit(spec, out: Path, sets=()) -> Path:
    argv = ["build", str(spec), "--backend", "keras", "-o", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert archc_main(argv) == 0
    return out


def build(spec, tmp_path: Path, sets=(), tag="m"):
    """(IR model, generated module) for ``spec`` with ``sets``, emitted into ``tmp_path``."""
    path = emit(spec, tmp_path / f"{tag}.py", sets)
    return compile_spec(str(spec), sets), load_module(path, f"kb_{tag}_{abs(hash((str(spec), tuple(sets))))}")


def layer_name(path: str) -> str:
    return path.replace(".", "_")


def leaves(model: ir.Model):
    for root in [model.body] + [h.body for h in model.heads]:
        yield from (n for n in ir.walk(root) if ir.is_leaf(n))


def counts(kmodel) -> tuple[int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in kmodel.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in kmodel.non_trainable_weights)
    return trainable, frozen


def output_shapes(kmodel) -> list[tuple]:
    return [tuple(t.shape[1:]) for t in kmodel.outputs]


def randomize(kmodel, seed: int) -> None:
    """Random weights everywhere, BN statistics included (so inference-mode BN is really tested)."""
    rng = np.random.default_rng(seed)
    for layer in kmodel.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            c = ws[0].shape
            new = [rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c), rng.uniform(0.5, 1.5, c)]
        else:
            new = [rng.normal(0, 1.0 / np.sqrt(max(1, np.prod(w.shape[:-1]))), w.shape) for w in ws]
        layer.set_weights([w.astype(np.float32) for w in new])


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


# ---------------------------------------------------------------------------------------------- numpy IR interpreter
class Reference:
    """Runs one sample (H, W, C) through the IR with the Keras model's weights, found by the naming rule."""

    def __init__(self, kmodel):
        self.weights = {layer.name: [np.asarray(w, np.float64) for w in layer.get_weights()] for layer in kmodel.layers}

    def __call__(self, node: ir.Node, x: np.ndarray) -> np.ndarray:
        if isinstance(node, ir.Seq):
            for c in node.children:
                x = self(c, x)
            return x
        if isinstance(node, ir.Call):
            return self(node.body, x)
        if isinstance(node, ir.Repeat):
            for it in node.iterations:
                x = self(it, x)
            return x
        if isinstance(node, ir.DenseConnect):
            feats = [x]
            for layer in node.layers:
                feats.append(self(layer, np.concatenate(feats, -1)))
            return np.concatenate(feats, -1)
        if isinstance(node, ir.Merge):
            outs = [self(b, x) for b in node.branches]
            return np.concatenate(outs, -1) if node.mode == "concat" else sum(outs)
        assert tuple(x.shape) == tuple(node.in_shape), (node.path, x.shape, node.in_shape)
        y = getattr(self, node.kind.replace("dense_connect", "dc"))(node, x)
        assert tuple(y.shape) == tuple(node.out_shape), (node.path, y.shape, node.out_shape)
        return y

    def w(self, node):
        return self.weights[layer_name(node.path)]

    def conv(self, n: ir.Conv, x):
        ws = self.w(n)
        kernel = ws[0]
        if n.depthwise:  # (kh, kw, C, m) -> grouped (kh, kw, 1, C*m), output channel c*m + j
            kh, kw, c, m = kernel.shape
            kernel = kernel.reshape(kh, kw, 1, c * m)
        t, b, left, r = n.padding
        xp = np.pad(x, ((t, b), (left, r), (0, 0)))
        (kh, kw), (sh, sw), (dh, dw) = n.kernel, n.stride, n.dilation
        ho, wo, co = n.out_shape
        g = n.groups
        ci_g, co_g = n.in_channels // g, co // g
        out = np.zeros((ho, wo, co))
        for i in range(kh):
            for j in range(kw):
                patch = xp[i * dh : i * dh + (ho - 1) * sh + 1 : sh, j * dw : j * dw + (wo - 1) * sw + 1 : sw]
                for gi in range(g):
                    k = kernel[i, j, :, gi * co_g : (gi + 1) * co_g]
                    out[..., gi * co_g : (gi + 1) * co_g] += patch[..., gi * ci_g : (gi + 1) * ci_g] @ k
        return out + ws[1] if n.bias else out

    def bn(self, n: ir.BatchNorm, x):
        gamma, beta, mean, var = self.w(n)
        return (x - mean) / np.sqrt(var + n.eps) * gamma + beta

    def act(self, n: ir.Act, x):
        return {
            "relu": lambda v: np.maximum(v, 0),
            "relu6": lambda v: np.clip(v, 0, 6),
            "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
            "tanh": np.tanh,
            "silu": lambda v: v / (1 + np.exp(-v)),
        }[n.fn](x)

    def pool(self, n: ir.Pool, x):
        """ir.Pool's definition: pad (-inf for max, zeros for avg); a window that overhangs the padded input
        covers only its in-bounds part; the average divides by the padded-input elements covered
        (count_include_pad) or by the input elements covered."""
        h, w, c = x.shape
        t, b, left, r = n.padding
        xp = np.full((h + t + b, w + left + r, c), -np.inf if n.op == "max" else 0.0)
        xp[t : t + h, left : left + w] = x
        ho, wo, _ = n.out_shape
        (kh, kw), (sh, sw) = n.kernel, n.stride
        out = np.zeros((ho, wo, c))
        for i in range(ho):
            r0, r1 = i * sh, min(i * sh + kh, h + t + b)
            for j in range(wo):
                c0, c1 = j * sw, min(j * sw + kw, w + left + r)
                win = xp[r0:r1, c0:c1]
                if n.op == "max":
                    out[i, j] = win.max(axis=(0, 1))
                else:
                    if n.count_include_pad:
                        count = (r1 - r0) * (c1 - c0)
                    else:
                        count = max(0, min(r1, t + h) - max(r0, t)) * max(0, min(c1, left + w) - max(c0, left))
                    out[i, j] = win.sum(axis=(0, 1)) / count
        return out

    def gap(self, n, x):
        return x.mean(axis=(0, 1))

    def dropout(self, n, x):
        return x

    def flatten(self, n, x):
        return x.reshape(-1)  # NHWC order, as Keras flattens

    def dense(self, n: ir.Dense, x):
        ws = self.w(n)
        return x @ ws[0] + (ws[1] if n.bias else 0)

    def zeropad(self, n: ir.ZeroPad, x):
        t, b, left, r = n.padding
        return np.pad(x, ((t, b), (left, r), (0, 0)))


def reference_outputs(model: ir.Model, kmodel, x: np.ndarray) -> list[np.ndarray]:
    """[main, heads...] for one sample, computed from the IR alone (heads tap the output of their ``at`` item)."""
    ref = Reference(kmodel)
    taps = {}
    y = x
    for child in model.body.children:
        y = ref(child, y)
        taps[child.name] = y
    return [y] + [ref(h.body, taps[h.at]) for h in model.heads]


def check_numbers(model: ir.Model, kmodel, seed: int, x=None) -> float:
    h, w, c = model.input_shape
    if x is None:
        x = np.random.default_rng(seed).normal(size=(1, h, w, c)).astype(np.float32)
    got = kmodel(x, training=False)
    got = [np.asarray(g) for g in (got if isinstance(got, (list, tuple)) else [got])]
    want = reference_outputs(model, kmodel, x[0].astype(np.float64))
    assert [g.shape[1:] for g in got] == [wv.shape for wv in want]
    err = max(rel_err(g[0], wv) for g, wv in zip(got, want))
    assert err < TOLERANCE, err
    return err


# ---------------------------------------------------------------------------------------------- every spec
def test_registered():
    assert "keras" in list_backends()
    emitter = get_backend("keras")
    assert (emitter.name, emitter.suffix) == ("keras", ".py")


@pytest.fixture(scope="module")
def spec_models():
    """(IR, report, module, keras model) per spec, built once; the generated files are imported as they are."""
    out = {}
    for spec in SPECS:
        model = compile_spec(spec, check_sets(spec))  # the spec's size, or a small one for a heavy model
        module = load_module(ROOT / "generated" / "keras" / f"{Path(spec).stem}.py", f"kb_gen_{Path(spec).stem}")
        out[spec] = (model, analyze(model), module, module.build_model(input_shape=model.input_shape))
    yield out
    keras.utils.clear_session()


@pytest.mark.parametrize("spec", SPECS)
def test_generated_file_is_fresh(spec):
    text = get_backend("keras").emit(compile_spec(spec))
    assert (ROOT / "generated" / "keras" / f"{Path(spec).stem}.py").read_text(encoding="utf-8") == text


@pytest.mark.parametrize("spec", SPECS)
def test_counts_shapes_and_outputs(spec, spec_models):
    model, report, module, kmodel = spec_models[spec]
    assert counts(kmodel) == (report.trainable, report.non_trainable)
    assert output_shapes(kmodel) == list(report.outputs.values())
    assert module.LOSS_WEIGHTS == report.loss_weights
    if model.heads:  # outputs are named so that compile(loss={...}, loss_weights=LOSS_WEIGHTS) works
        assert list(kmodel.output_names) == list(report.outputs)
    main = module.inference_model(kmodel)
    assert output_shapes(main) == [report.outputs["main"]]
    assert counts(main)[0] == report.trainable - sum(
        r.trainable for r in report.rows if r.path.split(".")[0] in {h.name for h in model.heads}
    )


@pytest.mark.parametrize("spec", SPECS)
def test_layer_names_and_configs_follow_the_ir(spec, spec_models):
    """Every IR leaf is one Keras layer named ir_path.replace('.', '_'), with the IR's weights and settings."""
    model, _, _, kmodel = spec_models[spec]
    by_name = {layer.name: layer for layer in kmodel.layers}
    for n in leaves(model):
        layer = by_name.get(layer_name(n.path))
        assert layer is not None, f"no Keras layer for IR leaf {n.path}"
        shapes = [tuple(w.shape) for w in layer.weights]
        cfg = layer.get_config()
        if isinstance(n, ir.Conv):
            if n.depthwise:
                expected = [(*n.kernel, n.in_channels, n.out_channels // n.in_channels)]
            else:
                expected = [(*n.kernel, n.in_channels // n.groups, n.out_channels)]
            assert shapes == expected + ([(n.out_channels,)] if n.bias else []), n.path
            assert tuple(cfg["strides"]) == n.stride and tuple(cfg["dilation_rate"]) == n.dilation, n.path
        elif isinstance(n, ir.BatchNorm):
            assert shapes == [(n.channels,)] * 4, n.path
            assert cfg["epsilon"] == pytest.approx(n.eps, rel=1e-12)
            assert cfg["momentum"] == pytest.approx(1 - n.momentum, abs=1e-12)  # Keras' convention
        elif isinstance(n, ir.Dense):
            assert shapes == [(n.in_features, n.out_features)] + ([(n.out_features,)] if n.bias else []), n.path
        elif isinstance(n, ir.Dropout):
            assert cfg["rate"] == n.rate
        elif isinstance(n, ir.Op) and n.op in ("layernorm", "groupnorm"):  # gamma, beta
            assert shapes == [(n.in_shape[-1],)] * 2, n.path
            assert cfg["epsilon"] == pytest.approx(n.attr("eps"), rel=1e-12)
        elif isinstance(n, ir.Op) and n.op == "layer_scale":
            assert shapes == [(n.in_shape[-1],)], n.path
        elif isinstance(n, ir.Op) and n.op == "conv_transpose":  # Conv2DTranspose: kernel (*k, out, in), bias
            out = n.attr("out")
            assert shapes == [(*n.attr("kernel"), out, n.in_shape[-1])] + ([(out,)] if n.attr("bias") else []), n.path
            assert tuple(cfg["strides"]) == n.attr("stride"), n.path
        else:
            assert shapes == [], n.path


def test_deterministic_across_processes(tmp_path):
    """Two fresh interpreters with different hash seeds emit byte-identical code for every spec."""
    code = (
        "import json, sys; from archc.pipeline import compile_spec; from archc.backends import get_backend; "
        "print(json.dumps({s: get_backend('keras').emit(compile_spec(s)) for s in sys.argv[1:]}))"
    )
    specs = SPECS + [str(p) for p in write_tricky_specs(tmp_path).values()]
    outs = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", code, *specs], cwd=ROOT, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1]
    for spec in SPECS:
        assert outs[0][spec] == (ROOT / "generated" / "keras" / f"{Path(spec).stem}.py").read_text(encoding="utf-8")


def test_generated_code_is_ruff_clean(tmp_path):
    """generated/keras, and the code of the tricky specs below (every lowering path), pass ruff check + format."""
    try:
        subprocess.run([sys.executable, "-m", "ruff", "--version"], check=True, capture_output=True)
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("ruff is not installed")
    out = tmp_path / "tricky"
    for stem, spec in write_tricky_specs(tmp_path).items():
        emit(spec, out / f"{stem}.py")
    for target in ("generated/keras", str(out)):
        for args in (["check"], ["format", "--check", "--diff"]):
            r = subprocess.run([sys.executable, "-m", "ruff", *args, target], cwd=ROOT, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr


def test_generated_code_imports_only_keras():
    for path in sorted((ROOT / "generated" / "keras").glob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        modules = {ln.split()[1].split(".")[0] for ln in lines if ln.startswith(("import ", "from "))}
        assert modules == {"keras"}, (path.name, modules)


# ---------------------------------------------------------------------------------------------- other sizes
@pytest.mark.parametrize("spec,sets", OTHER_INPUTS, ids=[f"{Path(s).stem}-{'-'.join(v)}" for s, v in OTHER_INPUTS])
def test_other_input_sizes(spec, sets, tmp_path, spec_models):
    """Emitted with --set, and the spec-size module's build_model(input_shape=...): both are the analysis."""
    model, module = build(spec, tmp_path, sets)
    report = analyze(model)
    for kmodel in (module.build_model(), spec_models[spec][2].build_model(input_shape=report.input_shape)):
        assert counts(kmodel) == (report.trainable, report.non_trainable)
        assert output_shapes(kmodel) == list(report.outputs.values())
    keras.utils.clear_session()


@pytest.mark.parametrize("spec", sorted(SMALL))
def test_real_specs_compute_the_ir(spec, tmp_path):
    """Real specs at a small odd size: random weights and BN statistics, every output equals numpy's IR."""
    model, module = build(spec, tmp_path, SMALL[spec])
    kmodel = module.build_model()
    randomize(kmodel, seed=1)
    check_numbers(model, kmodel, seed=2)
    keras.utils.clear_session()


# ---------------------------------------------------------------------------------------------- tricky lowerings
POOL = """\
name: pool_{tag}
input: {{height: {h}, width: {w}, channels: 3}}
network:
  - conv: {{name: conv, out: 4, kernel: 1, bias: false}}
  - {op}: {{name: pool, kernel: {k}, stride: {s}, padding: {p}, ceil: {ceil}{extra}}}
"""
POOL_CASES = [
    # h, w, op, kernel, stride, padding, ceil, extra
    (9, 7, "maxpool", 3, 2, 0, "true", ""),  # ceil on odd input: the last window overhangs
    (10, 7, "maxpool", 3, 2, 1, "true", ""),
    (9, 9, "maxpool", 3, 2, 1, "false", ""),  # padding on a negative input: -inf, not zeros
    (8, 7, "maxpool", 3, 1, 1, "false", ""),  # stride 1: TensorFlow 'same' is the same thing
    (8, 8, "maxpool", 2, 1, "[0, 1, 0, 1]", "false", ""),
    (9, 8, "maxpool", 3, 2, "[1, 0, 2, 1]", "false", ""),
    (7, 9, "maxpool", 3, 2, "same", "false", ""),
    (9, 9, "avgpool", 3, 2, 1, "false", ""),  # count_include_pad: zeros count
    (8, 7, "avgpool", 3, 1, 1, "false", ", count_include_pad: false"),
    (9, 8, "avgpool", 3, 2, "same", "false", ""),
    (11, 10, "avgpool", 5, 3, 0, "false", ""),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=["-".join(map(str, c[:7])) for c in POOL_CASES])
def test_pool_numbers(case, tmp_path):
    """A conv with negative weights on a positive input feeds the pool: any zero padding of a max-pool shows."""
    h, w, op, k, s, p, ceil, extra = case
    spec = tmp_path / "pool.yaml"
    spec.write_text(POOL.format(tag=op, h=h, w=w, op=op, k=k, s=s, p=p, ceil=ceil, extra=extra))
    model, module = build(spec, tmp_path)
    kmodel = module.build_model()
    rng = np.random.default_rng(3)
    kmodel.get_layer("conv").set_weights([-np.abs(rng.normal(size=(1, 1, 3, 4))).astype(np.float32)])
    x = np.abs(rng.normal(size=(1, h, w, 3))).astype(np.float32) + 0.1
    check_numbers(model, kmodel, seed=0, x=x)
    # the same module at other sizes (ceil and 'same' are recomputed from the input shape)
    for hh, ww in [(h + 1, w), (h, w + 2)]:
        other = compile_spec(str(spec), [f"input.height={hh}", f"input.width={ww}"])
        km = module.build_model(input_shape=(hh, ww, 3))
        km.get_layer("conv").set_weights(kmodel.get_layer("conv").get_weights())
        check_numbers(other, km, seed=0, x=np.abs(rng.normal(size=(1, hh, ww, 3))).astype(np.float32) + 0.1)


SAME_CONV = """\
name: same_conv
input: {{height: {h}, width: {w}, channels: 2}}
network:
  - conv: {{name: conv, out: 3, kernel: {k}, stride: 2, padding: same}}
  - dwconv: {{name: dw, kernel: 3, stride: 2, padding: same, multiplier: 2, bias: false}}
"""


@pytest.mark.parametrize("h,w,k", [(7, 8, 3), (8, 7, 3), (9, 9, 4), (10, 10, 5)])
def test_same_conv_stride2(h, w, k, tmp_path):
    """TensorFlow 'same' at stride 2 pads asymmetrically (one more at the bottom/right), at every input size."""
    spec = tmp_path / "same.yaml"
    spec.write_text(SAME_CONV.format(h=h, w=w, k=k))
    model, module = build(spec, tmp_path)
    kmodel = module.build_model()
    randomize(kmodel, seed=5)
    check_numbers(model, kmodel, seed=6)
    for hh, ww in [(h + 1, w + 1), (h + 3, w)]:
        km = module.build_model(input_shape=(hh, ww, 2))
        km.set_weights(kmodel.get_weights())
        check_numbers(compile_spec(str(spec), [f"input.height={hh}", f"input.width={ww}"]), km, seed=7)


SINK = """\
name: sink
input: {height: 23, width: 19, channels: 3}
params: {act: false, pad: 1, k: 3}
blocks:
  incv3:
    doc: Nested concat (Inception-v3 style); both inner branches read the outer branch's value.
    params: {}
    body:
      - concat:
          - - conv: {name: reduce, out: 4, kernel: 1}
            - concat:
                - - conv: {name: a, out: 2, kernel: [1, 3], padding: [0, 1]}
                - - conv: {name: b, out: 2, kernel: [3, 1], padding: [1, 0]}
          - - conv: {name: c, out: 3, kernel: 1}
  two:
    doc: One symbolic padding param used by two convs.
    params: {padding: 0}
    body:
      - conv: {name: c1, out: 6, kernel: 3, padding: $padding}
      - relu6
      - conv: {name: c2, out: 6, kernel: 3, padding: $padding, groups: 2}
  cbp:
    doc: A ReLU that may be switched off, then a padded max-pool.
    params: {act: true}
    body:
      - conv: {out: 8, kernel: 1}
      - relu: {if: $act}
      - maxpool: {kernel: 3, stride: 2, padding: 1}
  grow:
    params: {k: 3, out: 4}
    body:
      - bn
      - silu
      - conv: {out: $out, kernel: $k, padding: "${k // 2}", bias: false}
  shrink:
    params: {}
    body:
      - conv: {out: "${in_channels // 2}", kernel: 1}
network:
  - conv: {name: stem, out: 8, kernel: 3, stride: 2, padding: [0, 1, 1, 2]}
  - bn: {name: stem_bn, eps: 1.0e-3, momentum: 0.3}
  - tanh
  - cbp: {name: p1, act: $act}
  - two: {name: t, padding: $pad}
  - incv3: {name: inc}
  - dwconv: {name: dw, kernel: 3, stride: 2, padding: same, multiplier: 2}
  - conv: {name: dil, out: 10, kernel: 3, dilation: 2, padding: [2, 1, 2, 2]}
  - add:
      - - conv: {name: r, out: 10, kernel: 3, padding: 1}
      - - sigmoid
  - dense_connect:
      name: dc
      layers: 2
      body:
        - grow: {name: g, k: $k}
  - repeat:
      name: rep
      times: 2
      body:
        - grow: {name: g, k: 1, out: 6}
  - shrink: {name: sh}
  - zeropad: {name: zp, padding: [1, 0, 0, 2]}
  - avgpool: {name: ap, kernel: 3, stride: 1, padding: 1}
  - maxpool: {name: mp, kernel: 2, stride: 2, padding: same}
  - avgpool: {name: aps, kernel: 2, stride: 1, padding: same}
  - gap: {name: gap}
  - dropout: {rate: 0.5}
  - dense: {name: fc, out: 5}
heads:
  aux:
    at: inc
    loss_weight: 0.25
    body:
      - avgpool: {kernel: 3, stride: 2}
      - flatten
      - dense: {name: fc, out: 4, bias: false}
"""


def write_tricky_specs(tmp_path: Path) -> dict[str, Path]:
    specs = {"sink": SINK}
    for i, case in enumerate(POOL_CASES):
        h, w, op, k, s, p, ceil, extra = case
        specs[f"pool{i}"] = POOL.format(tag=i, h=h, w=w, op=op, k=k, s=s, p=p, ceil=ceil, extra=extra)
    specs["same_conv"] = SAME_CONV.format(h=9, w=8, k=4)
    out = {}
    for stem, text in specs.items():
        path = tmp_path / "specs" / f"{stem}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out[stem] = path
    return out


SINK_SETS = [
    [],
    ["act=true", "pad=0", "k=1", "input.height=41", "input.width=37"],
    ["input.height=30", "input.width=27"],
]


@pytest.mark.parametrize("sets", SINK_SETS)
def test_every_construct_computes_the_ir(sets, tmp_path):
    """Nested concats, a symbolic padding used twice, a switched-off ReLU before a padded max-pool, groups,
    dilation, asymmetric padding, depthwise multiplier, add, dense_connect, repeat, zero padding, 'same' and
    count_include_pad average pools, flatten, dense, an auxiliary head: outputs equal numpy's IR."""
    spec = write_tricky_specs(tmp_path)["sink"]
    model, module = build(spec, tmp_path, sets)
    report = analyze(model)
    kmodel = module.build_model()
    assert counts(kmodel) == (report.trainable, report.non_trainable)
    assert output_shapes(kmodel) == list(report.outputs.values())
    for n in leaves(model):
        assert kmodel.get_layer(layer_name(n.path)) is not None
    for seed in (11, 12):
        randomize(kmodel, seed)
        check_numbers(model, kmodel, seed)


def test_loss_weights_compile_by_output_name(tmp_path):
    """model.compile(loss={name: ...}, loss_weights=LOSS_WEIGHTS) weights each output as the spec says."""
    spec = write_tricky_specs(tmp_path)["sink"]
    model, module = build(spec, tmp_path)
    kmodel = module.build_model()
    assert list(kmodel.output_names) == list(module.LOSS_WEIGHTS) == ["main", "aux"]
    kmodel.compile(optimizer="sgd", loss={k: "mse" for k in module.LOSS_WEIGHTS}, loss_weights=module.LOSS_WEIGHTS)
    x = np.random.default_rng(0).normal(size=(2, *model.input_shape)).astype(np.float32)
    ys = [np.ones((2, 5), np.float32), np.ones((2, 4), np.float32)]
    total, main_loss, aux_loss = kmodel.test_on_batch(x, ys)
    assert total == pytest.approx(main_loss + 0.25 * aux_loss, rel=1e-5)
    main = module.inference_model(kmodel)
    assert np.allclose(np.asarray(main(x, training=False)), np.asarray(kmodel(x, training=False)[0]))


COLLIDE = """\
name: collide
input: {height: 8, width: 8, channels: 3}
network:
  - conv: {name: a_b, out: 4, kernel: 1}
  - seq: {name: a, body: [{conv: {name: b, out: 4, kernel: 1}}]}
"""


def test_colliding_layer_names_are_refused(tmp_path):
    spec = tmp_path / "collide.yaml"
    spec.write_text(COLLIDE)
    with pytest.raises(Unsupported, match="a_b") as exc:
        get_backend("keras").emit(compile_spec(str(spec)))
    assert "a.b" in str(exc.value)


def test_stride_with_dilation_runs_at_stride_one_and_subsamples(tmp_path):
    """TensorFlow has no kernel for strides > 1 with dilation_rate > 1: the Keras code runs the convolution at
    stride 1 and keeps every stride-th output (the numbers: tests/test_ranks.py)."""
    spec = tmp_path / "strided_dilated.yaml"
    spec.write_text(
        POOL.format(tag=0, h=9, w=9, op="maxpool", k=3, s=2, p=0, ceil="false", extra="").replace(
            "kernel: 1, bias: false", "kernel: 3, stride: 2, dilation: 2, bias: false"
        )
    )
    src = get_backend("keras").emit(compile_spec(str(spec)))
    assert "dilation_rate=2" in src and "Subsample2D(2" in src and "strides=2" not in src.split("Subsample2D")[1]

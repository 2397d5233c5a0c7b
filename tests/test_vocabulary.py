"""The vocabulary beyond the first families: each registry primitive (archc/ops.py) and the mul merge.

For each: the analysis' shapes and counts against the definition (independent arithmetic), both backends
build and compile, the generated PyTorch and Keras models compute the same numbers with the same weights
(random weights moved through archc.convert), and the Keras layers archc emits compute PyTorch's
definitions (hardsigmoid is relu6(x + 3) / 6 in PyTorch; Keras 2's was 0.2 x + 0.5).
"""

from __future__ import annotations

import importlib.util
import textwrap

import numpy as np
import pytest
from archc.backends import get_backend

from archc import ops
from archc.analysis import analyze
from archc.errors import ArchcError
from archc.pipeline import compile_spec
from archc.spec import KINDS

HEAD = """\
name: vocab
input: {height: $size, width: $size, channels: 8}
params: {size: 12}
network:
  - conv: {name: stem, out: 16, kernel: 3, padding: 1}
"""

# kind -> items after the stem conv (16 channels, 12 x 12), and the (trainable, non-trainable) params they add
CASES = {
    "hardswish": ("- hardswish", 0),
    "hardsigmoid": ("- hardsigmoid", 0),
    "gelu": ("- gelu", 0),
    "gelu_tanh": ("- gelu: {approximate: tanh}", 0),
    "leaky_relu": ("- leaky_relu: {slope: 0.2}", 0),
    "softmax": ("- softmax", 0),
    "layernorm": ("- layernorm: {eps: 1.0e-6}", 2 * 16),
    "groupnorm": ("- groupnorm: {groups: 4}", 2 * 16),
    "layer_scale": ("- layer_scale: {init: 0.5}", 16),
    "stochastic_depth": ("- stochastic_depth: {p: 0.3}", 0),
    "channel_shuffle": ("- channel_shuffle: {groups: 4}", 0),
    "slice": ("- concat: [[{slice: {stop: 5}}], [{slice: {start: 5}}, relu]]", 0),
    "adaptive_avgpool": ("- adaptive_avgpool: {size: [5, 7]}", 0),
    "global_maxpool": ("- global_maxpool", 0),
    "mul_se": (
        "- mul: {name: se, branches: [[], [{adaptive_avgpool: {size: 1}}, {conv: {out: 4, kernel: 1}}, relu,"
        " {conv: {out: 16, kernel: 1}}, sigmoid]]}",
        (16 * 4 + 4) + (4 * 16 + 16),
    ),
    "pointwise_dense": ("- dense: {out: 24}\n- gelu\n- dense: {out: 16}", (16 * 24 + 24) + (24 * 16 + 16)),
    "flat_layernorm": ("- gap\n- layernorm\n- layer_scale: {init: 2.0}\n- dense: {out: 10}", 32 + 16 + 170),
    "scale": ("- scale: {factor: 0.17}", 0),
    # a 3 x 3 kernel from each of 16 inputs to each of 6 outputs, and 6 biases
    "conv_transpose": (
        "- conv_transpose: {out: 6, kernel: 3, stride: 2, padding: 1, output_padding: 1}",
        16 * 6 * 9 + 6,
    ),
    "upsample": ("- upsample: {scale: 2, mode: bilinear}", 0),
}
# the first families' kinds: every spec in specs/ uses them (tests/test_parity.py, tests/test_ranks.py)
FIRST_FAMILIES = {"conv", "dwconv", "bn", "relu", "relu6", "sigmoid", "tanh", "silu", "maxpool", "avgpool", "gap"}
FIRST_FAMILIES |= {"dropout", "flatten", "dense", "zeropad"}
STEM = 8 * 16 * 9 + 16


def spec_text(items: str, tail: str = "") -> str:
    return HEAD + textwrap.indent(items, "  ") + "\n" + tail


@pytest.fixture
def spec_file(tmp_path):
    def make(name, items):
        p = tmp_path / f"vocab_{name}.yaml"
        p.write_text(spec_text(items).replace("name: vocab", f"name: vocab_{name}"))
        return str(p)

    return make


def test_every_registry_primitive_is_in_the_spec_language_and_both_emitters():
    from archc.backends.keras.ops import EMIT as KERAS
    from archc.backends.torch.ops import EMIT as TORCH

    for kind in ops.PRIMITIVES:
        assert kind in KINDS
        assert kind in TORCH, f"torch backend cannot emit {kind}"
        assert kind in KERAS, f"keras backend cannot emit {kind}"
    covered = {k.split("_tanh")[0] for k in CASES} | {"slice", "adaptive_avgpool"} | FIRST_FAMILIES
    assert set(ops.PRIMITIVES) <= covered | {"gelu"}


@pytest.mark.parametrize("name", list(CASES))
def test_counts(name, spec_file):
    items, added = CASES[name]
    model = compile_spec(spec_file(name, items))
    r = analyze(model)
    assert r.trainable == STEM + added
    assert r.non_trainable == 0


def test_shapes(spec_file):
    out = lambda items: analyze(compile_spec(spec_file("s", items))).outputs["main"]  # noqa: E731
    assert out("- adaptive_avgpool: {size: [5, 7]}") == (5, 7, 16)
    assert out("- adaptive_avgpool: {size: 30}") == (30, 30, 16)  # upsampling windows, as PyTorch
    assert out("- slice: {start: 3, stop: 11}") == (12, 12, 8)
    assert out("- dense: {out: 5}") == (12, 12, 5)
    assert out(CASES["mul_se"][0]) == (12, 12, 16)


@pytest.mark.parametrize(
    "items,message",
    [
        ("- groupnorm: {groups: 5}", "groupnorm 'groupnorm': groups=5 must divide the input's 16 channels"),
        ("- channel_shuffle: {groups: 3}", "groups=3 must divide the input's 16 channels"),
        ("- slice: {start: 4, stop: 20}", "stop=20 is past the input's 16 channels"),
        ("- slice: {start: 9, stop: 9}", "slice [9, 9) of 16 channels is empty"),
        ("- stochastic_depth: {p: 1.0}", "p must be in [0, 1), got 1.0"),
        ("- gelu: {approximate: fast}", "approximate"),
        ("- layernorm: {eps: 0}", "eps must be in (0, 1), got 0"),
        ("- adaptive_avgpool: {size: 0}", "size must be a positive integer, got 0"),
        ("- gap\n- adaptive_avgpool: {size: 2}", "adaptive_avgpool needs a feature map"),
        (
            "- mul: [[], [{conv: {out: 8, kernel: 1}}]]",
            "mul 'mul': branch 'branch1' gives 12x12x16 but branch 'branch2' gives 12x12x8",
        ),
    ],
)
def test_bad_values_are_located_errors(items, message, spec_file):
    path = spec_file("bad", items)
    with pytest.raises(ArchcError) as e:
        compile_spec(path)
    text = str(e.value)
    assert message in text
    assert text.startswith(f"{path}:"), text


def test_stochastic_depth_p_range_is_in_the_message(spec_file):
    with pytest.raises(ArchcError, match="p must be in"):
        compile_spec(spec_file("sd", "- stochastic_depth: {p: -0.1}"))


# ------------------------------------------------------------------------------------ numbers


def _load(text: str, name: str, tmp_path):
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    s = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


@pytest.mark.parametrize("name", list(CASES))
def test_torch_equals_keras(name, spec_file, tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("keras")
    from archc.convert import set_keras_weights, torch_to_keras

    model = compile_spec(spec_file(name, CASES[name][0]), ["size=13"])
    tnet = _load(get_backend("torch").emit(model), f"t_{name}", tmp_path).build_model()
    kmodel = _load(get_backend("keras").emit(model), f"k_{name}", tmp_path).build_model()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in tnet.parameters():  # far from the initial values: a scale of 1 or a shift of 0 hides a swap
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + 0.3)
    tnet.eval()
    set_keras_weights(kmodel, torch_to_keras(model, tnet.state_dict()))
    x = np.random.default_rng(0).normal(size=(2, 8, 13, 13)).astype(np.float32)
    with torch.no_grad():
        ref = tnet(torch.from_numpy(x)).numpy()
    y = np.asarray(kmodel(x.transpose(0, 2, 3, 1), training=False))
    if y.ndim == 4:
        y = y.transpose(0, 3, 1, 2)
    assert ref.shape == y.shape
    err = np.abs(ref - y).max() / np.abs(ref).max()
    assert err < 1e-5, err


def test_keras_activations_compute_pytorch_definitions():
    torch = pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    x = np.linspace(-6, 6, 4801).astype(np.float32)  # includes +-2.5 .. 3, where Keras 2's hard_sigmoid differs
    relu6 = np.clip(x + 3, 0, 6)
    hs = np.asarray(keras.layers.Activation("hard_sigmoid")(x))
    np.testing.assert_allclose(hs, relu6 / 6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(keras.layers.Activation("hard_swish")(x)), x * relu6 / 6, atol=1e-6)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(torch.nn.Hardsigmoid()(t).numpy(), relu6 / 6, atol=1e-7)
    np.testing.assert_allclose(torch.nn.Hardswish()(t).numpy(), x * relu6 / 6, atol=1e-6)


@pytest.mark.parametrize("n,m", [(13, 7), (7, 13), (224, 7), (5, 6), (9, 4), (1, 3), (4, 1), (6, 3), (2, 7)])
def test_adaptive_pooling_windows_are_pytorchs(n, m, tmp_path):
    """ops.adaptive_bins, written from the definition, against PyTorch and the generated Keras code, in graph
    mode too (model.predict: Keras 3.15's own AdaptiveAveragePooling2D fails there where an axis goes to 1)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("keras")
    p = tmp_path / "ap.yaml"
    p.write_text(f"name: ap\ninput: {{height: {n}, width: {n + 1}, channels: 2}}\nnetwork:\n"
                 f"  - adaptive_avgpool: {{size: {m}}}\n")  # fmt: skip
    model = compile_spec(str(p))
    kmodel = _load(get_backend("keras").emit(model), f"ap_{n}_{m}", tmp_path).build_model()
    a = np.random.default_rng(1).normal(size=(2, n, n + 1, 2)).astype(np.float32)
    rows, cols = ops.adaptive_bins(n, m), ops.adaptive_bins(n + 1, m)
    cell = lambda b, r, c: a[b, r[0] : r[1], c[0] : c[1]].mean(axis=(0, 1))  # noqa: E731
    want = np.array([[[cell(b, r, c) for c in cols] for r in rows] for b in range(2)])
    t = torch.nn.AdaptiveAvgPool2d(m)(torch.from_numpy(a).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(t, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(kmodel(a, training=False)), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kmodel.predict(a, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_stochastic_depth_trains_like_torchvision():
    """In training each sample is kept with probability 1 - p and scaled by 1 / (1 - p); in eval the identity."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("keras")
    model = compile_spec_text("- stochastic_depth: {p: 0.25}")
    tnet = _exec(get_backend("torch").emit(model)).build_model()
    kmodel = _exec(get_backend("keras").emit(model)).build_model()
    x = np.ones((4000, 8, 3, 3), np.float32)
    tnet.train()
    with torch.no_grad():
        stem = tnet.stem(torch.from_numpy(x))
        y = tnet.stochastic_depth(stem).numpy()
    kept = np.isclose(y, stem.numpy() / 0.75).all(axis=(1, 2, 3))
    dropped = (y == 0).all(axis=(1, 2, 3))
    assert (kept | dropped).all()  # whole samples, rescaled
    assert abs(kept.mean() - 0.75) < 0.03
    layer = kmodel.get_layer("stochastic_depth")
    ky = np.asarray(layer(np.ones((4000, 3, 3, 16), np.float32), training=True))
    kk = np.isclose(ky, 1 / 0.75).all(axis=(1, 2, 3))
    assert (kk | (ky == 0).all(axis=(1, 2, 3))).all()
    assert abs(kk.mean() - 0.75) < 0.03
    tnet.eval()
    with torch.no_grad():
        assert torch.equal(tnet.stochastic_depth(stem), stem)
    assert np.array_equal(np.asarray(layer(np.ones((2, 3, 3, 16), np.float32), training=False)), np.ones((2, 3, 3, 16)))


def compile_spec_text(items: str):
    import tempfile
    from pathlib import Path

    d = tempfile.mkdtemp()
    p = Path(d) / "sd.yaml"
    p.write_text(spec_text(items).replace("name: vocab", "name: sd"))
    return compile_spec(str(p))


def _exec(text: str):
    import tempfile
    from pathlib import Path

    return _load(text, "sd_mod", Path(tempfile.mkdtemp()))


def test_a_block_defined_by_two_stdlib_families_is_refused(tmp_path, monkeypatch, spec_file):
    """Families share one namespace of block names: a second definition must not silently replace the first."""
    from archc import lower

    (tmp_path / "a.yaml").write_text("blocks:\n  unit:\n    body: [relu]\n")
    (tmp_path / "b.yaml").write_text("blocks:\n  unit:\n    body: [sigmoid]\n")
    monkeypatch.setattr(lower, "STDLIB_DIR", tmp_path)
    with pytest.raises(ArchcError, match="stdlib block 'unit' is also defined at .*a.yaml:3"):
        compile_spec(spec_file("dup", "- relu"))


def test_the_stdlib_compiles_with_unique_block_names(spec_file):
    compile_spec(spec_file("plain", "- relu"))  # every stdlib file loads: no name is defined twice


BN_NO_SCALE = """\
name: vocab_bn_scale
input: {height: 9, width: 9, channels: 3}
params: {last_scale: false}
blocks:
  vocab_conv_bn:
    params: {scale: true}
    body:
      - conv: {name: conv, out: 6, kernel: 3, padding: 1, bias: false}
      - bn: {name: bn, eps: 1.0e-3, scale: $scale}
      - relu
network:
  - vocab_conv_bn: {name: a, scale: false}
  - vocab_conv_bn: {name: b}
  - bn: {name: c, scale: false}
  - gap
  - dense: {out: 5}
  - bn: {name: d, scale: $last_scale}
"""


def test_bn_without_scale_has_no_gamma_in_counts_and_both_backends(tmp_path):
    """``bn: {scale: false}`` (Keras' scale=False): beta and the statistics, no gamma; PyTorch and Keras compute
    the same from weights moved through archc.convert both ways; a non-boolean scale is a located error."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("keras")
    from archc.convert import convert, set_keras_weights

    path = tmp_path / "vocab_bn_scale.yaml"
    path.write_text(BN_NO_SCALE)
    model = compile_spec(str(path))
    # conv 3->6 3x3, BN beta 6; conv 6->6 3x3, BN gamma + beta 12; BN beta 6; dense 6->5 + bias; BN (5) beta 5
    trainable = 3 * 6 * 9 + 6 + 6 * 6 * 9 + 12 + 6 + (6 * 5 + 5) + 5
    stats = 2 * (6 + 6 + 6 + 5)
    r = analyze(model)
    assert (r.trainable, r.non_trainable) == (trainable, stats)

    tnet = _load(get_backend("torch").emit(model), "t_bn_scale", tmp_path).build_model()
    kmodel = _load(get_backend("keras").emit(model), "k_bn_scale", tmp_path).build_model()
    assert sum(p.numel() for p in tnet.parameters()) == trainable
    state = tnet.state_dict()
    assert {"a.bn.weight", "c.weight", "d.weight"}.isdisjoint(state) and "b.bn.weight" in state
    assert sum(int(np.prod(w.shape)) for w in kmodel.trainable_weights) == trainable
    assert sum(int(np.prod(w.shape)) for w in kmodel.non_trainable_weights) == stats

    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for k, v in state.items():
            if v.is_floating_point():  # variances positive; every value far from 0 and 1
                v.copy_(torch.rand(v.shape, generator=g) + 0.5 if k.endswith("running_var") else torch.randn(v.shape))
    tnet.eval()
    set_keras_weights(kmodel, convert(model, state, "torch", "keras"))
    x = np.random.default_rng(1).normal(size=(2, 3, 9, 9)).astype(np.float32)
    with torch.no_grad():
        ref = tnet(torch.from_numpy(x)).numpy()
    y = np.asarray(kmodel(x.transpose(0, 2, 3, 1), training=False))
    assert np.abs(ref - y).max() / np.abs(ref).max() < 1e-5

    back = _load(get_backend("torch").emit(model), "t_bn_scale2", tmp_path).build_model()
    kweights = {layer.name: layer.get_weights() for layer in kmodel.layers}
    back.load_state_dict(
        {k: torch.from_numpy(np.asarray(v)) for k, v in convert(model, kweights, "keras", "torch").items()}
    )
    back.eval()
    with torch.no_grad():
        assert np.abs(back(torch.from_numpy(x)).numpy() - ref).max() <= 1e-6 * np.abs(ref).max()

    path.write_text(BN_NO_SCALE.replace("last_scale: false", "last_scale: 2"))
    with pytest.raises(ArchcError) as e:
        compile_spec(str(path))
    assert str(e.value).startswith(f"{path}:3:") and "scale must be true or false, got 2" in str(e.value)

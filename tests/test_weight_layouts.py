"""The backends' weight declarations (archc/backends/<name>/weights.py) against the real generated models, and
conversions composed from them: source -> canonical (archc/weights.py) -> destination.

* every spec in specs/: the generated PyTorch model's state_dict (keys, shapes) is exactly the torch
  declaration, the generated Keras model's layers (names, weight names, shapes) exactly the keras one;
* round trips torch -> keras -> torch and keras -> torch -> keras give the same tensors back, for every spec;
* the registry ops with weights (layernorm, groupnorm, layer_scale) and dense on a feature map, on hand-built IR:
  a real torch module with the converted weights computes what the real Keras layer (or the channels-last
  formula) computes.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest
from archc.backends import weight_layout

from archc import ir
from archc import weights as W
from archc.convert import convert, keras_to_torch, load_generated, torch_shapes, torch_to_keras
from archc.errors import ArchcError
from archc.pipeline import compile_spec
from tests.sizes import heavy

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
# every weighted kind of the vocabulary once, on maps and on flat features, until specs/ has them all
VOCABULARY = """\
name: weights_vocabulary
input: {height: $size, width: $size, channels: 3}
params: {size: 16}
network:
  - conv: {name: stem, out: 16, kernel: 3, stride: 2, padding: 1}
  - layernorm: {name: ln, eps: 1.0e-6}
  - groupnorm: {name: gn, groups: 4}
  - mul: {name: se, branches: [[], [{adaptive_avgpool: {size: 1}}, {conv: {out: 4, kernel: 1}}, relu,
      {conv: {out: 16, kernel: 1}}, sigmoid]]}
  - dense: {name: pw1, out: 24}
  - gelu
  - dense: {name: pw2, out: 16}
  - layer_scale: {name: ls, init: 1.0e-6}
  - dwconv: {name: dw, kernel: 3, padding: 1, multiplier: 2}
  - bn: {name: bn}
  - hardswish
  - flatten
  - dense: {name: fc1, out: 10}
  - relu
  - layernorm: {name: fln}
  - layer_scale: {name: fls, init: 0.5}
  - dense: {name: fc2, out: 5}
"""
VOCABULARY_FILE = "<vocabulary>"
# every spec but the heavy ones (tests/sizes.py: VGG, ResNet-152, ... their families' blocks scaled up, whose
# state_dicts tests/test_torchvision.py loads strictly through these declarations)
# state_dicts tests/test_torchvision.py loads strictly through these declarations), and of the keras.applications
# twins (also "heavy") the one with a BN without scale (its gamma-less layers, declared by both backends)
CASES = [s for s in SPECS if not heavy(s)] + ["specs/inception_v3_keras.yaml", VOCABULARY_FILE]


@functools.cache
def small(spec: str) -> ir.Model:
    """The spec at 64 px where it compiles there (weight shapes barely depend on the size), else as written
    (GoogLeNet's aux heads need ~200 px: its flatten -> dense heads are kept)."""
    if spec == VOCABULARY_FILE:
        path = Path(tempfile.mkdtemp(prefix="archc-weights-")) / "weights_vocabulary.yaml"
        path.write_text(VOCABULARY)
        return compile_spec(str(path))
    try:
        return compile_spec(spec, ["size=64"])
    except ArchcError:
        return compile_spec(spec)


def keras_declared(model: ir.Model) -> dict[str, list]:
    return {
        layer.name: [(t.name, t.shape) for t in layer.tensors] for _, layer in W.layers(weight_layout("keras"), model)
    }


@pytest.mark.parametrize("spec", CASES)
def test_torch_declaration_is_the_generated_state_dict(spec):
    torch = pytest.importorskip("torch")
    model = small(spec)
    torch.manual_seed(0)
    net = load_generated(model, "torch").build_model()
    real = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert real == torch_shapes(model)
    assert W.counters(weight_layout("torch"), model) == {k for k in real if k.endswith(".num_batches_tracked")}


@pytest.mark.parametrize("spec", CASES)
def test_keras_declaration_is_the_generated_layers(spec):
    pytest.importorskip("keras")
    model = small(spec)
    kmodel = load_generated(model, "keras").build_model()
    real = {
        layer.name: [(w.name.split("/")[-1], tuple(w.shape)) for w in layer.weights]
        for layer in kmodel.layers
        if layer.weights
    }
    assert real == keras_declared(model)
    for layer in kmodel.layers:  # get_weights() (what conversion reads and sets) is in the weights' order
        assert [tuple(a.shape) for a in layer.get_weights()] == [tuple(w.shape) for w in layer.weights]


def random_state(model: ir.Model, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    counted = W.counters(weight_layout("torch"), model)
    return {
        k: np.array(rng.integers(1, 1000), dtype=np.int64) if k in counted else rng.normal(size=s).astype(np.float32)
        for k, s in torch_shapes(model).items()
    }


@pytest.mark.parametrize("spec", CASES)
def test_round_trip_torch_keras_torch(spec):
    model = small(spec)
    state = random_state(model, 1)
    layers = torch_to_keras(model, state)
    assert {k: [a.shape for a in v] for k, v in layers.items()} == {
        k: [s for _, s in v] for k, v in keras_declared(model).items()
    }
    back = keras_to_torch(model, layers)
    assert list(back) == list(state)
    for k, v in state.items():
        if k.endswith(".num_batches_tracked"):  # a counter: not converted, fresh when made
            assert back[k].shape == () and back[k].dtype == np.int64 and back[k] == 0, k
        else:
            assert back[k].dtype == np.float32 and np.array_equal(back[k], v), k
    again = torch_to_keras(model, back)
    assert all(all(np.array_equal(a, b) for a, b in zip(layers[k], again[k])) for k in layers)


def test_conversion_changes_the_layouts():
    """The round trip is not the identity twice: a conv kernel arrives in Keras as HWIO, a depthwise one as
    (kh, kw, C, m) with torch's output channel c * m + j at [.., c, j], a dense one transposed."""
    model = compile_spec("specs/mobilenet_v1.yaml", ["size=64"])
    state = random_state(model, 2)
    layers = torch_to_keras(model, state)
    conv = next(n for n in W.weighted_leaves(model) if W.weight_kind(n) == "conv")
    dw = next(n for n in W.weighted_leaves(model) if W.weight_kind(n) == "dwconv")
    fc = next(n for n in W.weighted_leaves(model) if W.weight_kind(n) == "dense")
    w = state[f"{conv.path}.weight"]
    k = layers[conv.path.replace(".", "_")][0]
    assert k[1, 2, 0, 3] == w[3, 0, 1, 2]
    w, k = state[f"{dw.path}.weight"], layers[dw.path.replace(".", "_")][0]
    m = dw.out_channels // dw.in_channels
    assert m == 1 and k[2, 1, 5, 0] == w[5, 0, 2, 1]
    w, k = state[f"{fc.path}.weight"], layers[fc.path.replace(".", "_")][0]
    assert np.array_equal(k, w.T)


def test_round_trip_keras_torch_keras():
    model = small("specs/googlenet.yaml")  # aux heads: dense layers after a flatten
    rng = np.random.default_rng(3)
    layers = {k: [rng.normal(size=s).astype(np.float32) for _, s in v] for k, v in keras_declared(model).items()}
    back = torch_to_keras(model, keras_to_torch(model, layers))
    assert list(back) == list(layers)
    assert all(all(np.array_equal(a, b) for a, b in zip(layers[k], back[k])) for k in layers)


def test_flattened_dense_is_permuted_chw_to_hwc():
    """GoogLeNet's aux fc1 sees a flatten of (4, 4, 128): torch's input index c*16 + h*4 + w is the canonical
    (Keras) index (h*4 + w)*128 + c."""
    model = small("specs/googlenet.yaml")
    flat, problems = W.flatten_sources(model)
    assert problems == [] and set(flat.values()) == {(4, 4, 128)}
    path = sorted(flat)[0]
    state = random_state(model, 4)
    k = torch_to_keras(model, state)[path.replace(".", "_")][0]
    w = state[f"{path}.weight"]
    h, x, c, o = 2, 3, 77, 5
    assert k[(h * 4 + x) * 128 + c, o] == w[o, c * 16 + h * 4 + x]


def test_misfits_are_refused_naming_the_tensors():
    model = small("specs/resnet18.yaml")
    state = random_state(model, 5)
    del state["conv1.weight"]
    state["fc.weight"] = state["fc.weight"][:, :3]
    state["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ArchcError) as e:
        torch_to_keras(model, state)
    assert str(e.value).startswith("<state_dict>:1:1: checkpoint does not fit spec 'resnet18'")
    assert (
        "missing: conv1.weight; unexpected: extra.weight; mis-shaped: fc.weight (1000, 3) (spec needs (1000, 512))"
        in str(e.value)
    )
    layers = torch_to_keras(model, random_state(model, 5))
    del layers["conv1"]
    layers["fc"] = layers["fc"][:1]
    with pytest.raises(ArchcError) as e:
        keras_to_torch(model, layers)
    assert "Keras weight set does not fit spec 'resnet18'" in str(e.value)
    assert "missing: conv1.kernel, fc.bias" in str(e.value)


# ---------------------------------------------------------------- registry ops and dense on maps, hand-built IR


def model_of(*nodes: ir.Node) -> ir.Model:
    body = ir.Seq(name="", path="", in_shape=nodes[0].in_shape, out_shape=nodes[-1].out_shape, children=nodes)
    return ir.Model(
        name="hand",
        class_name="Hand",
        doc=None,
        spec_file="<hand>",
        spec_sha256="",
        input_shape=nodes[0].in_shape,
        body=body,
        heads=(),
        loss_weight=1.0,
        blocks=(),
        params=(),
        network=None,
    )


def op(kind: str, path: str, shape: tuple, **attrs) -> ir.Op:
    return ir.Op(name=path, path=path, in_shape=shape, out_shape=shape, op=kind, attrs=tuple(attrs.items()))


def test_weight_kinds():
    assert W.weight_kind(op("layernorm", "ln", (4, 4, 8))) == "layernorm"
    assert W.weight_kind(op("hardswish", "a", (4, 4, 8))) is None
    assert set(weight_layout("torch").tables) == set(W.KINDS) == set(weight_layout("keras").tables)
    with pytest.raises(KeyError, match="unknown backend 'onnx'"):
        weight_layout("onnx")
    bare = W.Declaration(backend="bare", tables={})
    with pytest.raises(ArchcError, match="the bare backend declares no weights for 'layernorm' \\(node 'ln'\\)"):
        bare.layer(op("layernorm", "ln", (4, 4, 8)))


def test_torch_shapes_of_registry_ops():
    model = model_of(
        op("layernorm", "ln", (5, 5, 8), eps=1e-6),
        op("groupnorm", "gn", (5, 5, 8), groups=4, eps=1e-5),
        op("layer_scale", "ls", (5, 5, 8), init=1e-6),
        ir.Flatten(name="flat", path="flat", in_shape=(5, 5, 8), out_shape=(200,)),
        ir.Dense(name="fc", path="fc", in_shape=(200,), out_shape=(10,), in_features=200, out_features=10, bias=True),
        op("layer_scale", "ls2", (10,), init=1.0),
    )
    assert torch_shapes(model) == {
        "ln.weight": (8,),
        "ln.bias": (8,),
        "gn.weight": (8,),
        "gn.bias": (8,),
        "ls.scale": (8, 1, 1),
        "fc.weight": (10, 200),
        "fc.bias": (10,),
        "ls2.scale": (10,),
    }
    assert keras_declared(model) == {
        "ln": [("gamma", (8,)), ("beta", (8,))],
        "gn": [("gamma", (8,)), ("beta", (8,))],
        "ls": [("scale", (8,))],
        "fc": [("kernel", (200, 10)), ("bias", (10,))],
        "ls2": [("scale", (10,))],
    }


def test_order_dependent_ops_after_a_flatten_are_refused():
    model = model_of(
        ir.Flatten(name="flat", path="flat", in_shape=(2, 2, 3), out_shape=(12,)),
        op("gelu", "act", (12,), approximate="none"),
        op("layer_scale", "ls", (12,), init=1.0),
        ir.Dense(name="fc", path="fc", in_shape=(12,), out_shape=(4,), in_features=12, out_features=4, bias=False),
    )
    assert torch_shapes(model)["ls.scale"] == (12,)  # the shapes are known ...
    with pytest.raises(ArchcError, match="'layer_scale' 'ls' on flattened features is not supported"):
        torch_to_keras(model, random_state(model, 0))  # ... the order of its 12 scales is not


def maps_model(c: int, o: int):
    shape = (3, 5, c)
    return model_of(
        op("layernorm", "ln", shape, eps=1e-6),
        op("groupnorm", "gn", shape, groups=2, eps=1e-5),
        op("layer_scale", "ls", shape, init=1e-6),
        ir.Dense(name="pw", path="pw", in_shape=shape, out_shape=(3, 5, o), in_features=c, out_features=o, bias=True),
    )


def test_registry_ops_and_pointwise_dense_compute_the_same_in_both_frameworks():
    """torch modules with random weights on NCHW vs the Keras layers (and x * scale for layer_scale) on NHWC
    with the converted weights."""
    torch = pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    c, o = 6, 4
    model = maps_model(c, o)
    torch.manual_seed(0)
    ln, gn, pw = torch.nn.LayerNorm(c, eps=1e-6), torch.nn.GroupNorm(2, c, eps=1e-5), torch.nn.Linear(c, o)
    scale = torch.nn.Parameter(torch.rand(c, 1, 1) + 0.5)
    with torch.no_grad():
        for m in (ln, gn):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_()
    state = {f"{p}.{k}": v for p, m in (("ln", ln), ("gn", gn), ("pw", pw)) for k, v in m.state_dict().items()}
    state["ls.scale"] = scale.detach()
    layers = convert(model, state, "torch", "keras")
    x = np.random.default_rng(0).normal(size=(2, 3, 5, c)).astype(np.float32)  # NHWC
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())  # NCHW
    with torch.no_grad():
        yt = {
            "ln": ln(xt.permute(0, 2, 3, 1)).numpy(),  # ConvNeXt's LayerNorm2d: over channels, channels last
            "gn": gn(xt).permute(0, 2, 3, 1).numpy(),
            "ls": (xt * scale).permute(0, 2, 3, 1).numpy(),
            "pw": pw(xt.permute(0, 2, 3, 1)).numpy(),
        }
    kl = {
        "ln": keras.layers.LayerNormalization(axis=-1, epsilon=1e-6),
        "gn": keras.layers.GroupNormalization(groups=2, axis=-1, epsilon=1e-5),
        "pw": keras.layers.Dense(o),
    }
    for name, layer in kl.items():
        layer.build(x.shape)
        layer.set_weights(layers[name])
        assert np.abs(np.asarray(layer(x)) - yt[name]).max() < 1e-5, name
    assert np.abs(x * layers["ls"][0] - yt["ls"]).max() < 1e-6
    back = keras_to_torch(model, layers)
    assert all(np.array_equal(back[k], np.asarray(v)) for k, v in state.items())


def test_every_registry_primitive_with_weights_has_a_canonical_layout():
    from archc import ops

    weighted = {k for k, p in ops.PRIMITIVES.items() if p.params is not ops._no_params}
    assert weighted == set(W.KINDS)


@pytest.mark.parametrize("direction", ["torch_to_keras", "keras_to_torch"])
def test_vocabulary_spec_computes_the_same_after_conversion(direction):
    """The vocabulary spec (layer norms, group norm, layer scales on maps and on flat features, pointwise dense,
    depthwise multiplier 2, a flatten -> dense) with random weights in one framework, converted to the other."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("keras")
    from archc.convert import keras_model_weights, set_keras_weights

    model = small(VOCABULARY_FILE)
    tnet = load_generated(model, "torch").build_model()
    kmodel = load_generated(model, "keras").build_model()
    rng = np.random.default_rng(7)
    if direction == "torch_to_keras":
        state = {
            k: torch.from_numpy(np.asarray(v) if v.ndim == 0 else (v * 0.5 + 0.3).astype(np.float32))
            for k, v in random_state(model, 7).items()
        }
        state = {k: v.abs() + 0.5 if k.endswith("running_var") else v for k, v in state.items()}
        tnet.load_state_dict(state)
        set_keras_weights(kmodel, torch_to_keras(model, tnet.state_dict()))
    else:
        layers = {
            k: [(rng.normal(size=s) * 0.5 + 0.3).astype(np.float32) for _, s in v]
            for k, v in keras_declared(model).items()
        }
        layers["bn"][3] = np.abs(layers["bn"][3]) + 0.5
        set_keras_weights(kmodel, layers)
        tnet.load_state_dict(
            {k: torch.from_numpy(v) for k, v in keras_to_torch(model, keras_model_weights(kmodel)).items()}
        )
    tnet.eval()
    x = rng.normal(size=(2, 16, 16, 3)).astype(np.float32)
    with torch.no_grad():
        ref = tnet(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    y = np.asarray(kmodel(x, training=False))
    assert ref.shape == y.shape == (2, 5)
    assert np.abs(ref - y).max() / np.abs(ref).max() < 1e-4

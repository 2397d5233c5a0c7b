"""The generated network takes the spec's params as keyword arguments (issue 22): ``build_model(**params)`` of a
module generated once is the model ``archc build --set`` builds for those params: the same state_dict names and
shapes and, with the same weights, the same outputs. Params the build resolves where an argument cannot reach are
not arguments (fixed at the spec's values)."""

from __future__ import annotations

import contextlib
import inspect

import pytest

import archc

torch = pytest.importorskip("torch")

# (spec, params the module is generated with (its input size), the keyword arguments, input shape (N, C, *spatial))
CASES = [
    ("resnet18", {"size": 32}, {"classes": 10, "layers": (1, 2, 1, 1)}, (2, 3, 32, 32)),
    ("densenet169", {"size": 32}, {"growth_rate": 12, "block_config": (6, 12, 24, 16), "classes": 5}, (2, 3, 32, 32)),
    ("mobilenet_v2", {"size": 32}, {"classes": 7, "channels": 1}, (2, 1, 32, 32)),
    ("googlenet", {"size": 96}, {"classes": 10, "dropout": 0.1, "aux_dropout": 0.5}, (2, 3, 96, 96)),
    ("vgg11", {"size": 32}, {"classes": 10, "widths": (8, 8, 16, 16, 16), "convs": (1, 2, 1, 2, 1)}, (2, 3, 32, 32)),
    ("efficientnet_b0", {"size": 32}, {"width_mult": 0.5, "depth_mult": 0.5, "classes": 4}, (2, 3, 32, 32)),
    ("unet", {"size": 32}, {"width": 8, "classes": 3}, (2, 3, 32, 32)),
    ("m5", {"length": 1600}, {"classes": 5, "widths": (8, 8, 16, 16)}, (2, 1, 1600)),
    ("r3d_18", {"size": 32, "clip": 4}, {"classes": 5, "layers": (1, 1, 1, 1)}, (2, 3, 4, 32, 32)),
    ("fcn_resnet50", {"size": 64}, {"classes": 4, "layers": (1, 1, 1, 1)}, (1, 3, 64, 64)),
]


def _outputs(out):
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("name, base, kwargs, shape", CASES, ids=[c[0] for c in CASES])
def test_build_model_with_params_is_the_model_set_builds(name, base, kwargs, shape):
    module = archc.load(name, **base).module("torch")  # generated once, at the spec's values
    got = module.build_model(**kwargs)
    want = archc.load(name, **base, **kwargs).create_model("torch")  # regenerated with --set
    got_sd, want_sd = got.state_dict(), want.state_dict()
    assert [(k, tuple(v.shape)) for k, v in got_sd.items()] == [(k, tuple(v.shape)) for k, v in want_sd.items()]
    got.load_state_dict(want_sd)
    got.double().eval()
    want.double().eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        outs, refs = _outputs(got(x)), _outputs(want(x))
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-9, atol=1e-9)


def test_the_defaults_are_the_specs_values_and_build_model_passes_them_on():
    module = archc.load("densenet121", size=32).module("torch")
    sig = inspect.signature(module.DenseNet121)
    assert {n: p.default for n, p in sig.parameters.items()} == {
        "channels": 3,
        "classes": 1000,
        "growth_rate": 32,
        "block_config": (6, 12, 24, 16),
        "stem_channels": 64,
        "bn_size": 4,
        "reduction": 0.5,
        "drop_rate": 0.0,
    }
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in sig.parameters.values())
    assert "size" not in sig.parameters  # only shapes the input: PyTorch takes any size
    assert module.build_model(classes=3).classifier.out_features == 3
    assert module.build_model().classifier.out_features == 1000
    with pytest.raises(TypeError):
        module.build_model(size=64)


def test_params_the_build_resolves_are_fixed_and_said_so():
    """googlenet: aux (which heads exist), bn_eps (a BN default inside blocks) and the params that change spatial
    sizes (the aux heads' linear layers take a flattened map) are not arguments; the docstring names them."""
    module = archc.load("googlenet", size=96).module("torch")
    params = inspect.signature(module.GoogLeNet).parameters
    assert list(params) == ["channels", "classes", "dropout", "aux_dropout"]
    doc = " ".join(inspect.getdoc(module.GoogLeNet).split())
    for fixed in ("aux", "bn_eps", "kernel5", "pool_padding", "pool_ceil", "pool4_kernel"):
        assert fixed in doc.split("Fixed at the spec's values")[1]
    # heads' outputs are forward locals named as the spec's heads
    src = inspect.getsource(module.GoogLeNet.forward)
    assert "aux1 = self.aux1(x) if self.training else None" in src
    assert "GoogLeNetOutputs(x, aux1, aux2)" in src


def test_params_that_change_a_spatial_size_are_fixed_without_a_flatten_too():
    """fcn_resnet50's dilate (replace_stride_with_dilation: strides and dilations) decides how its convolutions
    are written; a value given to the constructor could need another form than --set builds: not an argument."""
    module = archc.load("fcn_resnet50", size=64).module("torch")
    params = inspect.signature(module.FCNResNet50).parameters
    assert "dilate" not in params and {"classes", "layers"} <= set(params)
    doc = " ".join(inspect.getdoc(module.FCNResNet50).split())
    assert "dilate" in doc.split("Fixed at the spec's values")[1]


def test_a_derived_param_defaults_to_none_and_is_worked_out():
    module = archc.load("efficientnet_b0", size=32).module("torch")
    params = inspect.signature(module.EfficientNetB0).parameters
    assert params["stem_width"].default is None and params["width_mult"].default == 1.0
    assert module.build_model(width_mult=2.0).stem.conv.out_channels == 64
    assert module.build_model(width_mult=2.0, stem_width=48).stem.conv.out_channels == 48


# ------------------------------------------------------------------ Keras: build_model(input_shape, *, **params)
KERAS_INPUT_PARAMS = {"channels"}  # set by input_shape in Keras (not arguments)


@contextlib.contextmanager
def _keras_float64():
    import keras

    old, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    try:
        yield keras
    finally:
        keras.config.set_floatx(old)
        keras.config.set_dtype_policy(policy)


def _keras_concrete(compiled, monkeypatch):
    """The module as it was before build_model took the params: the network at the spec's values."""
    from archc.backends.keras.emitter import KerasEmitter

    with monkeypatch.context() as mp:
        mp.setattr(KerasEmitter, "model_function", lambda self: self._model_function(symbolic=False))
        module = compiled.module("keras")
    assert not inspect.signature(module.build_model).parameters.keys() - {"input_shape"}
    return module


def _keras_outputs(out):
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.mark.parametrize("name, base, kwargs, shape", CASES, ids=[c[0] for c in CASES])
def test_keras_build_model_with_params_is_the_model_set_builds(name, base, kwargs, shape, monkeypatch):
    """The Keras module generated once at the spec's values, ``build_model(**params)``, is the model the spec
    builds with ``--set`` in today's form (the network at its values): the same layer names, weight shapes in
    order and, with the same weights, the same outputs."""
    np = pytest.importorskip("numpy")
    pytest.importorskip("keras")
    module = archc.load(name, **base).module("keras")
    sig = inspect.signature(module.build_model).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in sig.items() if n != "input_shape")
    given = {k: v for k, v in kwargs.items() if k not in KERAS_INPUT_PARAMS}
    assert set(given) <= set(sig), f"not arguments: {set(given) - set(sig)}"
    input_shape = (*shape[2:], shape[1])  # NHWC
    with _keras_float64():
        got = module.build_model(input_shape, **given)
        want = _keras_concrete(archc.load(name, **base, **kwargs), monkeypatch).build_model()
        assert tuple(want.inputs[0].shape[1:]) == input_shape
        assert [layer.name for layer in got.layers] == [layer.name for layer in want.layers]
        assert [(w.path, tuple(w.shape)) for w in got.weights] == [(w.path, tuple(w.shape)) for w in want.weights]
        got.set_weights(want.get_weights())  # (want's, as its initializers made them)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((shape[0], *input_shape))
        outs, refs = _keras_outputs(got(x, training=False)), _keras_outputs(want(x, training=False))
    assert len(outs) == len(refs)
    for o, r in zip(outs, refs):
        np.testing.assert_allclose(np.asarray(o), np.asarray(r), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name, base", [("densenet121", {"size": 32}), ("googlenet", {"size": 96})])
def test_keras_default_build_model_is_todays(name, base, monkeypatch):
    """build_model() with no arguments: the layers, names and weights of the network written at its values."""
    pytest.importorskip("keras")
    compiled = archc.load(name, **base)
    got = compiled.module("keras").build_model()
    want = _keras_concrete(compiled, monkeypatch).build_model()
    assert [(la.name, type(la).__name__) for la in got.layers] == [(la.name, type(la).__name__) for la in want.layers]
    assert [(w.path, tuple(w.shape)) for w in got.weights] == [(w.path, tuple(w.shape)) for w in want.weights]
    assert got.output_names == want.output_names


def test_keras_signature_input_shape_then_the_params():
    module = archc.load("densenet121", size=32).module("keras")
    sig = inspect.signature(module.build_model)
    assert {n: p.default for n, p in sig.parameters.items()} == {
        "input_shape": (32, 32, 3),
        "classes": 1000,
        "growth_rate": 32,
        "block_config": (6, 12, 24, 16),
        "stem_channels": 64,
        "bn_size": 4,
        "reduction": 0.5,
        "drop_rate": 0.0,
    }
    assert sig.parameters["input_shape"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert "input_shape sets size, channels" in " ".join(inspect.getdoc(module.build_model).split())
    with pytest.raises(TypeError):
        module.build_model(channels=1)  # the input's shape is input_shape's
    assert module.build_model(classes=3).get_layer("classifier").units == 3
    assert module.build_model((32, 32, 1)).get_layer("conv0").kernel.shape == (7, 7, 1, 64)


def test_keras_fixed_params_are_said_so():
    """googlenet in Keras: aux, bn_eps (as in PyTorch) and the params that decide which layers the network's
    pools are (a ZeroPadding before a 'valid' pool, or not) stay fixed; kernel5 (inside blocks) is an argument."""
    module = archc.load("googlenet", size=96).module("keras")
    assert list(inspect.signature(module.build_model).parameters) == [
        "input_shape",
        "classes",
        "dropout",
        "aux_dropout",
        "kernel5",
    ]
    doc = " ".join(inspect.getdoc(module.build_model).split())
    for fixed in ("aux", "bn_eps", "pool_padding", "pool_ceil", "pool4_kernel"):
        assert fixed in doc.split("Fixed at the spec's values")[1]
    assert "LOSS_WEIGHTS" in doc  # the heads' outputs as before


def test_keras_a_derived_param_defaults_to_none_and_is_worked_out():
    pytest.importorskip("keras")
    module = archc.load("efficientnet_b0", size=32).module("keras")
    params = inspect.signature(module.build_model).parameters
    assert params["stem_width"].default is None and params["width_mult"].default == 1.0
    assert module.build_model(width_mult=2.0).get_layer("stem_conv").filters == 64
    assert module.build_model(width_mult=2.0, stem_width=48).get_layer("stem_conv").filters == 48


def test_create_model_keras_with_params():
    pytest.importorskip("keras")
    model = archc.create_model("mobilenet_v2", backend="keras", classes=7, size=32)
    assert model.outputs[0].shape[-1] == 7
    assert archc.create_model("mobilenet_v2", backend="keras", size=32).outputs[0].shape[-1] == 1000


SKIPPED_CALL = """
name: skipped_call
input: {height: 8, width: 8, channels: 1}
params: {classes: 3, k: 3}
blocks:
  never:
    params: {out: null, stride: 1}
    body:
      - conv: {out: $out, kernel: 3, stride: $stride, padding: 1}
network:
  - conv: {out: 4, kernel: $k, padding: 1}
  - never: {out: 4, if: false}
  - gap
  - dense: {out: $classes}
"""


def test_a_call_never_built_does_not_stop_the_arguments(tmp_path):
    """A block call whose if: is false here builds no block (the model has none of that name): deciding which
    params are arguments skips it (both backends raised KeyError: 'never', found by the block property tests)."""
    path = tmp_path / "skipped_call.yaml"
    path.write_text(SKIPPED_CALL)
    for backend in ("torch", "keras"):
        module = archc.load(str(path)).module(backend)
        params = inspect.signature(module.build_model if backend == "keras" else module.SkippedCall).parameters
        assert "classes" in params and "k" not in params, backend


OPENED_STRIDE = """
name: opened_stride
input: {height: 16, width: 16, channels: 3}
params: {s: 2, classes: 3}
blocks:
  stage:
    params: {out: null, stride: 1}
    body:
      - conv: {name: down, out: $out, kernel: 3, stride: $stride, padding: 1}
      - relu: {name: act}
network:
  - stage: {name: layer1, out: 4, stride: $s}
  - concat: {from: [layer1.down, layer1]}
  - gap
  - dense: {out: $classes}
"""


def test_a_stride_through_an_opened_call_is_fixed(tmp_path):
    """s is a conv's stride inside layer1, a block call a reference opens (built as a named seq binding the block's
    params to the call's arguments): a geometry param like any other, fixed and named in both backends."""
    path = tmp_path / "opened_stride.yaml"
    path.write_text(OPENED_STRIDE)
    for backend in ("torch", "keras"):
        module = archc.load(str(path)).module(backend)
        fn = module.OpenedStride if backend == "torch" else module.build_model
        assert "s" not in inspect.signature(fn).parameters and "classes" in inspect.signature(fn).parameters
        assert "resolved them: s." in " ".join(inspect.getdoc(fn).split()), backend

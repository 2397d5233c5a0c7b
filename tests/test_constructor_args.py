"""The generated network takes the spec's params as keyword arguments (issue 22): ``build_model(**params)`` of a
module generated once is the model ``archc build --set`` builds for those params: the same state_dict names and
shapes and, with the same weights, the same outputs. Params the build resolves where an argument cannot reach are
not arguments (fixed at the spec's values)."""

from __future__ import annotations

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

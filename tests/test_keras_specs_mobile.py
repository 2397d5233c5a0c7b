"""keras.applications' MobileNetV2, MobileNetV3Large/Small, EfficientNetB0, VGG16/19 and ConvNeXtTiny as archc specs.

For each: the parameter counts are keras.applications' (built live, ``weights=None``, at 224); the mapping
``archc/stdlib/keras_applications/<family>.yaml`` names every weighted layer of the generated Keras model
after a distinct weighted layer of keras.applications' (all of them, but the ignored preprocessing), with the
same weight shapes (up to the 1 x 1 conv <-> dense and grouped <-> depthwise conv reshapes); keras.applications'
random weights (BN statistics and EfficientNet's Normalization too), copied BY THE MAPPING into the generated
Keras model, give keras.applications' logits (<= 1e-4 relative), and the generated PyTorch model, given those
weights through ``archc.convert.convert(..., "keras", "torch")``, the same logits. Small inputs (32 px, an odd
33 px: TF 'same' padding is asymmetric at the even sizes on the way; VGG-16 at 64 px with its adaptive pool at
2 x 2, the identity there as the 7 x 7 pool is at 224, so that the first dense layer sees keras.applications'
Flatten of 2 x 2 x 512 in its order; VGG-19's mapping is checked at 224 without running it).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from archc.analysis import analyze  # noqa: E402
from archc.convert import (  # noqa: E402
    convert,
    keras_layer_name,
    keras_model_weights,
    load_generated,
    torch_shapes,
    weighted_leaves,
)
from archc.mapping import families, load_mapping  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "archc" / "stdlib" / "keras_applications"
TOLERANCE = 1e-4
A = keras.applications


def _quiet(build):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sizes without ImageNet weights
        return build()


# spec stem -> keras.applications builder at input size s
REFERENCES = {
    "mobilenet_v2_keras": lambda s, **kw: A.MobileNetV2(input_shape=(s, s, 3), **kw),
    "mobilenet_v3_large_keras": lambda s, **kw: A.MobileNetV3Large(
        input_shape=(s, s, 3), include_preprocessing=False, **kw
    ),
    "mobilenet_v3_small_keras": lambda s, **kw: A.MobileNetV3Small(
        input_shape=(s, s, 3), include_preprocessing=False, **kw
    ),
    "efficientnet_b0_keras": lambda s, **kw: A.EfficientNetB0(input_shape=(s, s, 3), **kw),
    "vgg16": lambda s, **kw: A.VGG16(input_shape=(s, s, 3), **kw),
    "vgg19": lambda s, **kw: A.VGG19(input_shape=(s, s, 3), **kw),
    "convnext_tiny": lambda s, **kw: A.ConvNeXtTiny(input_shape=(s, s, 3), include_preprocessing=False, **kw),
}

# case -> (spec stem, --set overrides, input size, keras.applications keyword arguments)
CASES = {
    "mobilenet_v2_keras": ("mobilenet_v2_keras", [], 32, {}),
    "mobilenet_v2_keras_alpha14_10classes_odd33": (
        "mobilenet_v2_keras",
        ["alpha=1.4", "classes=10"],
        33,
        {"alpha": 1.4, "classes": 10},
    ),
    "mobilenet_v3_large_keras": ("mobilenet_v3_large_keras", [], 32, {}),
    "mobilenet_v3_small_keras_odd33": ("mobilenet_v3_small_keras", [], 33, {}),
    "efficientnet_b0_keras": ("efficientnet_b0_keras", [], 32, {}),
    # the adaptive pool to 2 x 2: the identity at 64 px as the 7 x 7 one is at 224 (VGG-19: names at 224 above)
    "vgg16": ("vgg16", ["network.5.adaptive_avgpool.size=2"], 64, {}),
    "convnext_tiny": ("convnext_tiny", [], 32, {}),
}


def flat_layers(model):
    """The model's layers, a Sequential sub-model (ConvNeXt's stem and down-sampling) replaced by its own."""
    out = []
    for layer in model.layers:
        out.extend(flat_layers(layer) if hasattr(layer, "layers") else [layer])
    return out


def weighted(model):
    return [layer for layer in flat_layers(model) if layer.get_weights()]


def randomize(model, seed):
    """Random weights, BN statistics and (EfficientNet) the input Normalization's mean and variance included."""
    rng = np.random.default_rng(seed)
    for layer in weighted(model):
        ws, kind = layer.get_weights(), type(layer).__name__
        if kind == "BatchNormalization":
            gamma, beta, mean, var = ws
            new = [rng.uniform(0.75, 1.25, gamma.shape), rng.normal(0, 0.1, beta.shape),
                   rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.0, var.shape)]  # fmt: skip
        elif kind == "Normalization":
            mean, var, count = ws
            new = [rng.uniform(0.3, 0.6, mean.shape), rng.uniform(0.04, 0.09, var.shape), count]
        elif kind == "LayerNormalization":
            gamma, beta = ws
            new = [rng.uniform(0.75, 1.25, gamma.shape), rng.normal(0, 0.1, beta.shape)]
        else:
            new = []
            for w in ws:
                fan_in = int(np.prod(w.shape[:-1])) if w.ndim > 1 else 1
                new.append(rng.normal(0, (2.0 / fan_in) ** 0.5 if w.ndim > 1 else 0.1, w.shape))
        layer.set_weights([np.asarray(x, dtype=np.float32) for x in new])


def mapping_of(model):
    (family,) = [f for f in families(model) if (MAPPINGS / f"{f}.yaml").exists()]
    return load_mapping(MAPPINGS / f"{family}.yaml", "keras.applications")


def ignore_patterns(mapping_file: Path) -> list[re.Pattern]:
    """The mapping's `ignore` names (`name#`: name, name_1, name_2, ...) as patterns."""
    names = yaml.safe_load(mapping_file.read_text(encoding="utf-8"))["keras.applications"].get("ignore") or []
    return [re.compile(re.escape(p[:-1]) + r"(_\d+)?" if p.endswith("#") else re.escape(p)) for p in names]


def squeezed(shape):
    return tuple(d for d in shape if d != 1)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(a).max())


def counts(ref) -> tuple[int, int]:
    """(trainable, non-trainable) parameters of a keras.applications model, its preprocessing Normalization's
    (EfficientNet's mean, variance and count) left out."""
    pre = sum(lay.count_params() for lay in flat_layers(ref) if type(lay).__name__ == "Normalization")
    trainable = sum(int(np.prod(w.shape)) for w in ref.trainable_weights)
    return trainable, sum(int(np.prod(w.shape)) for w in ref.non_trainable_weights) - pre


@pytest.mark.parametrize("stem", ["vgg16", "vgg19"])
def test_vgg_at_224_counts_and_names_are_keras_applications(stem):
    """VGG's first dense layer depends on the input size: counted at 224, keras.applications' only size with
    ImageNet weights (built, not run), and the mapping checked there on the spec's layers (names from the IR,
    each layer's parameter count from the generated PyTorch model's tensor shapes). The other specs' counts
    do not depend on the size: checked below at a small one."""
    ref = REFERENCES[stem](224, weights=None, classifier_activation=None)
    model = compile_spec(ROOT / "specs" / f"{stem}.yaml")
    a = analyze(model)
    assert (a.trainable, a.non_trainable) == counts(ref)
    src = {lay.name: lay for lay in weighted(ref)}
    shapes = torch_shapes(model)
    paths = [leaf.path for leaf in weighted_leaves(model)]
    names = mapping_of(model).names([keras_layer_name(p) for p in paths])
    assert sorted(names.values()) == sorted(src)
    for p in paths:
        n = sum(int(np.prod(v)) for k, v in shapes.items() if k.startswith(p + "."))
        assert n == src[names[keras_layer_name(p)]].count_params(), p
    keras.utils.clear_session()


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_applications_weights_by_the_mapping(case):
    stem, sets, size, kw = CASES[case]
    spec = ROOT / "specs" / f"{stem}.yaml"
    model = compile_spec(spec, [*sets, f"input.height={size}", f"input.width={size}"])
    mapping = mapping_of(model)
    ref = _quiet(lambda: REFERENCES[stem](size, weights=None, classifier_activation=None, **kw))
    ours = load_generated(model, "keras").build_model(input_shape=(size, size, 3))
    a = analyze(model)
    assert (a.trainable, a.non_trainable) == counts(ref)
    if not sets:  # the spec as written: its counts at 224 are the same (no layer's weights depend on the size)
        assert analyze(compile_spec(spec)).total == a.total
    assert sum(lay.count_params() for lay in ours.layers) == a.total

    # names: every weighted generated layer -> a distinct keras.applications layer; all of those are hit
    src = {lay.name: lay for lay in weighted(ref)}
    dst = weighted(ours)
    names = mapping.names([lay.name for lay in dst])
    skip = ignore_patterns(MAPPINGS / f"{mapping.family}.yaml")
    assert sorted(names.values()) == sorted(n for n in src if not any(p.fullmatch(n) for p in skip))

    randomize(ref, seed=11)
    x = np.random.default_rng(12).uniform(0, 255 if stem.startswith("efficientnet") else 1,
                                          size=(2, size, size, 3)).astype(np.float32)  # fmt: skip
    y_ref = np.asarray(ref(x, training=False))
    assert y_ref.std() > 0
    if stem.startswith("efficientnet"):  # keras.applications' Rescaling(1 / 255) + Normalization, outside the spec
        (norm,) = [lay for lay in weighted(ref) if type(lay).__name__ == "Normalization"]
        mean, var, _ = norm.get_weights()
        x = ((x / 255.0 - mean) / np.maximum(np.sqrt(var), keras.config.epsilon())).astype(np.float32)
    assert rel(y_ref, np.asarray(ours(x, training=False))) > TOLERANCE  # the check can fail
    for layer in dst:
        theirs = src[names[layer.name]].get_weights()
        mine = layer.get_weights()
        assert len(theirs) == len(mine), layer.name
        for a, b in zip(theirs, mine):
            assert a.shape == b.shape or squeezed(a.shape) == squeezed(b.shape), (layer.name, a.shape, b.shape)
        layer.set_weights([a.reshape(b.shape) for a, b in zip(theirs, mine)])
    y_ours = np.asarray(ours(x, training=False))
    err = rel(y_ref, y_ours)
    print(f"keras.applications {case}: relative error {err:.2e}")
    assert err < TOLERANCE

    # the generated PyTorch model, given these weights through archc's converter
    state = convert(model, keras_model_weights(ours), "keras", "torch")
    tmodel = load_generated(model, "torch").build_model().eval()
    tmodel.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}, strict=True)
    with torch.no_grad():
        y_torch = tmodel(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    err_t = rel(y_ours, y_torch)
    print(f"generated torch vs keras {case}: relative error {err_t:.2e}")
    assert err_t < TOLERANCE
    keras.utils.clear_session()

"""Equivalence with keras.applications, an implementation nobody here wrote.

The generated Keras DenseNet-121/169/201 and MobileNet (alpha 1.0 and 0.5) are given the
(random, including BN statistics) weights of the corresponding keras.applications model and
must compute the same logits within 1e-4 relative.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4

REFERENCES = {
    "densenet121": lambda: keras.applications.DenseNet121(weights=None, classifier_activation=None),
    "densenet169": lambda: keras.applications.DenseNet169(weights=None, classifier_activation=None),
    "densenet201": lambda: keras.applications.DenseNet201(weights=None, classifier_activation=None),
    "mobilenet_v1": lambda: keras.applications.MobileNet(weights=None, classifier_activation=None),
    "mobilenet_v1_050": lambda: keras.applications.MobileNet(alpha=0.5, weights=None, classifier_activation=None),
}


def generated(stem: str):
    s = importlib.util.spec_from_file_location(f"kapp_{stem}", ROOT / "generated" / "keras" / f"{stem}.py")
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m.build_model()


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = ws
            new = [rng.uniform(0.75, 1.25, gamma.shape), rng.normal(0, 0.1, beta.shape),
                   rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.0, var.shape)]  # fmt: skip
        else:
            new = []
            for w in ws:
                fan_in = int(np.prod(w.shape[:-1])) if w.ndim > 1 else 1
                new.append(rng.normal(0, (2.0 / fan_in) ** 0.5 if w.ndim > 1 else 0.1, w.shape))
        layer.set_weights([x.astype(np.float32) for x in new])


def weighted(model):
    return [layer for layer in model.layers if layer.get_weights()]


def emitted(stem: str, sets: list[str], tmp_path: Path):
    """The Keras model archc builds from specs/<stem>.yaml with these --set overrides."""
    from archc.cli import main as archc_main

    out = tmp_path / f"{stem}_variant.py"
    argv = ["build", str(ROOT / "specs" / f"{stem}.yaml"), "--backend", "keras", "-o", str(out)]
    assert archc_main(argv + [a for kv in sets for a in ("--set", kv)]) == 0
    s = importlib.util.spec_from_file_location(f"kapp_variant_{stem}", out)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m.build_model()


# variants a user makes with --set, against keras.applications built with the same options
VARIANTS = {
    "mobilenet_alpha075_192_dm2_10classes": (
        "mobilenet_v1",
        ["alpha=0.75", "size=192", "depth_multiplier=2", "classes=10"],
        lambda: keras.applications.MobileNet(
            input_shape=(192, 192, 3),
            alpha=0.75,
            depth_multiplier=2,
            classes=10,
            weights=None,
            classifier_activation=None,
        ),  # fmt: skip
    ),
    "mobilenet_025_odd_161": (
        "mobilenet_v1_025_160",
        ["size=161"],
        lambda: keras.applications.MobileNet(
            input_shape=(161, 161, 3), alpha=0.25, weights=None, classifier_activation=None
        ),
    ),
    "densenet_blocks_4_8_16_12_160_10classes": (
        "densenet121",
        ["block_config=[4, 8, 16, 12]", "size=160", "classes=10"],
        # keras.applications' generic DenseNet(blocks, ...) (not exported; DenseNet121/169/201 call it)
        lambda: importlib.import_module("keras.src.applications.densenet").DenseNet(
            [4, 8, 16, 12], input_shape=(160, 160, 3), classes=10, weights=None, classifier_activation=None
        ),
    ),
    "densenet169_odd_225": (
        "densenet169",
        ["size=225"],
        lambda: keras.applications.DenseNet169(input_shape=(225, 225, 3), weights=None, classifier_activation=None),
    ),
}


@pytest.mark.parametrize("stem", sorted(REFERENCES))
def test_same_function_as_keras_applications(stem):
    compare(stem, REFERENCES[stem](), generated(stem))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variants_same_function_as_keras_applications(variant, tmp_path):
    stem, sets, reference = VARIANTS[variant]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keras.applications warns about sizes without ImageNet weights
        ref = reference()
    compare(variant, ref, emitted(stem, sets, tmp_path))


def compare(stem, ref, ours):
    assert ref.count_params() == ours.count_params()
    randomize(ref, seed=5)
    x = np.random.default_rng(6).normal(size=(2, *ref.input_shape[1:])).astype(np.float32)
    y_ref = np.asarray(ref(x, training=False))
    assert y_ref.std() > 0
    before = np.asarray(ours(x, training=False))
    assert np.abs(y_ref - before).max() / np.abs(y_ref).max() > TOLERANCE  # the check can fail
    src, dst = weighted(ref), weighted(ours)
    assert len(src) == len(dst)
    for a, b in zip(src, dst):  # both build their layers in the network's order
        wa, wb = a.get_weights(), b.get_weights()
        assert len(wa) == len(wb), (a.name, b.name)
        # keras.applications' MobileNet classifier is a 1x1 conv; ours the equivalent dense layer
        b.set_weights([x.reshape(y.shape) for x, y in zip(wa, wb)])
    y_ours = np.asarray(ours(x, training=False))
    assert y_ref.shape == y_ours.shape
    err = float(np.abs(y_ref - y_ours).max() / np.abs(y_ref).max())
    print(f"keras.applications {stem}: relative error {err:.2e}")
    assert err < TOLERANCE
    keras.utils.clear_session()

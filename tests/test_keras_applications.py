"""Equivalence with keras.applications, an implementation nobody here wrote.

The generated Keras DenseNet-121/169/201 and MobileNet (alpha 1.0 and 0.5) are given the
(random, including BN statistics) weights of the corresponding keras.applications model and
must compute the same logits within 1e-4 relative.
"""

from __future__ import annotations

import importlib.util
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


@pytest.mark.parametrize("stem", sorted(REFERENCES))
def test_same_function_as_keras_applications(stem):
    ref = REFERENCES[stem]()
    ours = generated(stem)
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

"""keras.applications' VGG16 / VGG19 at 224 (the only size with ImageNet weights; its first dense layer depends on
the size): parameter counts are keras.applications' (built live, ``weights=None``, not run), and the mapping
``archc/stdlib/keras_applications/vgg.yaml`` names every weighted layer of the spec after a distinct weighted
layer of keras.applications' with the same parameter count. The other keras.applications specs (and VGG's
weights at a small size) are checked through ``convert-weights`` in tests/test_keras_applications.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from archc.analysis import analyze  # noqa: E402
from archc.convert import (  # noqa: E402
    keras_layer_name,
    torch_shapes,
    weighted_leaves,
)
from archc.keras_applications import leaf_layers  # noqa: E402
from archc.mapping import families, load_mapping  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "archc" / "stdlib" / "keras_applications"
A = keras.applications


# spec stem -> keras.applications builder at input size s
REFERENCES = {
    "vgg16": lambda s, **kw: A.VGG16(input_shape=(s, s, 3), **kw),
    "vgg19": lambda s, **kw: A.VGG19(input_shape=(s, s, 3), **kw),
}


def weighted(model):
    return [layer for layer in leaf_layers(model) if layer.get_weights()]


def mapping_of(model):
    (family,) = [f for f in families(model) if (MAPPINGS / f"{f}.yaml").exists()]
    return load_mapping(MAPPINGS / f"{family}.yaml", "keras.applications")


def counts(ref) -> tuple[int, int]:
    """(trainable, non-trainable) parameters of a keras.applications model, its preprocessing Normalization's
    (EfficientNet's mean, variance and count) left out."""
    pre = sum(lay.count_params() for lay in leaf_layers(ref) if type(lay).__name__ == "Normalization")
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

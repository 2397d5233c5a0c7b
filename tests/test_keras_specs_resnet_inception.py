"""specs/resnet50_keras.yaml and specs/inception_v3_keras.yaml against keras.applications' ResNet50 and InceptionV3,
built live (``weights=None``, logits): the same counts; the layer-name mappings of
``archc/stdlib/keras_applications/`` pair every weighted layer of the generated Keras model with one of
keras.applications' of the same class and weight shapes; keras.applications' (random, BN statistics included)
weights, saved to a file and read through the mapping as ``archc convert-weights --from keras.applications``
reads them (:mod:`archc.keras_applications`), give the same logits in the generated Keras model and, through
``archc.convert.convert``, the generated PyTorch model. Small inputs (ResNet50: 64 px, InceptionV3: 75, keras'
minimum): the counts do not depend on the size (global pools before the classifiers).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
MAPPINGS = ROOT / "archc" / "stdlib" / "keras_applications"

# spec stem -> (small input size, keras.applications builder, mapping family)
CASES = {
    "resnet50_keras": (64, "ResNet50", "resnet_keras"),
    "inception_v3_keras": (75, "InceptionV3", "inception_v3"),
}


class Case:
    def __init__(self, stem: str):
        from archc import weights as W
        from archc.convert import layout, load_generated
        from archc.mapping import families, load_mapping
        from archc.pipeline import compile_spec

        size, builder, family = CASES[stem]
        self.stem, self.size, self.builder = stem, size, builder
        self.full = compile_spec(str(ROOT / "specs" / f"{stem}.yaml"))
        self.model = compile_spec(str(ROOT / "specs" / f"{stem}.yaml"), [f"size={size}"])
        assert families(self.model) == [family]
        self.mapping = load_mapping(MAPPINGS / f"{family}.yaml", "keras.applications")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # keras.applications warns about sizes without ImageNet weights
            self.ref = getattr(keras.applications, builder)(
                input_shape=(size, size, 3), weights=None, classifier_activation=None
            )
        self.ours = load_generated(self.model, "keras").build_model()
        # the generated layers with weights in the order the generated code creates them: the IR's order
        self.order = [layer.name for _, layer in W.layers(layout("keras"), self.model)]


@pytest.fixture(scope="module")
def case():
    made = {}

    def get(stem):
        if stem not in made:
            made[stem] = Case(stem)
        return made[stem]

    return get


def resolve(mapping, names: list[str], ref_names: list[str]) -> dict[str, str]:
    """Generated layer name -> keras.applications layer name by the mapping's rules (mapping_format.md). A result
    ending in '#' is matched by order: the generated layers mapped to ``base#``, in ``names``' order, with the
    reference's ``base``, ``base_1``, ``base_2``, ... in the order of their numeric suffix."""
    if not any(r.to.endswith("#") for r in mapping.rules):
        return mapping.names(names)
    raw = {}
    for n in names:
        cur, hit = n, False
        for r in mapping.rules:
            new = r.apply(cur)
            if new is not None:
                cur, hit = new, True
        assert hit, f"no rule for {n}"
        raw[n] = cur
    out = {n: v for n, v in raw.items() if not v.endswith("#")}
    for base in sorted({v[:-1] for v in raw.values() if v.endswith("#")}):
        pattern = re.compile(re.escape(base) + r"(?:_(\d+))?")
        suffix = {n: int(m.group(1) or -1) for n in ref_names if (m := pattern.fullmatch(n))}
        ours = [n for n in names if raw[n] == f"{base}#"]
        theirs = sorted(suffix, key=suffix.get)
        assert len(ours) == len(theirs), (base, len(ours), len(theirs))
        out.update(zip(ours, theirs))
    assert len(set(out.values())) == len(out), "two generated layers map to one name"
    return out


def weights_of(model) -> dict:
    return {layer.name: layer for layer in model.layers if layer.get_weights()}


def randomize(model, seed: int) -> None:
    """Random weights far from initial values; BN variances positive (a BN without scale has no gamma)."""
    rng = np.random.default_rng(seed)
    for layer in weights_of(model).values():
        new = []
        for v in layer.weights:
            kind = v.path.rsplit("/", 1)[-1]
            shape = tuple(v.shape)
            if kind == "gamma":
                a = rng.uniform(0.75, 1.25, shape)
            elif kind == "moving_variance":
                a = rng.uniform(0.5, 1.0, shape)
            elif kind in ("beta", "moving_mean", "bias"):
                a = rng.normal(0, 0.1, shape)
            else:  # kernels
                a = rng.normal(0, (2.0 / int(np.prod(shape[:-1]))) ** 0.5, shape)
            new.append(a.astype(np.float32))
        layer.set_weights(new)


@pytest.mark.parametrize("stem", sorted(CASES))
def test_counts_are_keras_applications(stem, case):
    from archc.analysis import analyze

    c = case(stem)
    trainable = sum(int(np.prod(w.shape)) for w in c.ref.trainable_weights)
    stats = sum(int(np.prod(w.shape)) for w in c.ref.non_trainable_weights)
    for model in (c.full, c.model):
        r = analyze(model)
        assert (r.trainable, r.non_trainable) == (trainable, stats)
    assert c.ours.count_params() == c.ref.count_params()


@pytest.mark.parametrize("stem", sorted(CASES))
def test_the_mapping_pairs_every_weighted_layer(stem, case):
    c = case(stem)
    assert c.builder in c.mapping.models
    ours, theirs = weights_of(c.ours), weights_of(c.ref)
    assert sorted(c.order) == sorted(ours)
    pairs = resolve(c.mapping, c.order, list(theirs))
    assert sorted(pairs.values()) == sorted(theirs)  # onto: nothing of keras.applications is left unmapped
    for a, b in pairs.items():
        la, lb = ours[a], theirs[b]
        assert type(la) is type(lb), (a, b)
        assert [tuple(w.shape) for w in la.weights] == [tuple(w.shape) for w in lb.weights], (a, b)
        assert [w.path.rsplit("/", 1)[-1] for w in la.weights] == [w.path.rsplit("/", 1)[-1] for w in lb.weights]
    # the same graph: Keras orders both models' layers alike (by depth, not by creation: InceptionV3's
    # model.layers is not conv2d, conv2d_1, ..., so '#' pairs in the order the generated code creates layers)
    assert [pairs[n] for n in ours] == list(theirs)


@pytest.mark.parametrize("stem", sorted(CASES))
def test_same_logits_from_a_keras_applications_file_in_keras_and_torch(stem, case, tmp_path):
    """keras.applications' weights saved as Keras 3 does (and, for InceptionV3, whose layers are matched by order,
    in the legacy Keras 2 .h5 layout of the published files), read by the converter through the mapping."""
    import torch

    from archc.convert import convert, keras_model_weights, load_generated, set_keras_weights
    from archc.keras_applications import from_keras_applications
    from tests.test_keras_applications import save_legacy_h5

    c = case(stem)
    randomize(c.ref, seed=7)
    x = np.random.default_rng(8).normal(size=(2, c.size, c.size, 3)).astype(np.float32)
    y_ref = np.asarray(c.ref(x, training=False))
    assert y_ref.std() > 0
    assert np.abs(np.asarray(c.ours(x, training=False)) - y_ref).max() / np.abs(y_ref).max() > TOLERANCE  # can fail
    sources = [tmp_path / "ref.weights.h5"]
    c.ref.save_weights(sources[0])
    if any(r.to.endswith("#") for r in c.mapping.rules):
        sources.append(tmp_path / "ref_legacy.h5")
        save_legacy_h5(c.ref, sources[1])
    for src in sources:
        layers, _ = from_keras_applications(c.model, str(src))
        set_keras_weights(c.ours, layers)
        err = np.abs(np.asarray(c.ours(x, training=False)) - y_ref).max() / np.abs(y_ref).max()
        assert err <= TOLERANCE, (src.name, err)

    net = load_generated(c.model, "torch").build_model()
    state = convert(c.model, keras_model_weights(c.ours), "keras", "torch")
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    net.eval()
    with torch.no_grad():
        y_torch = net(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    err = np.abs(y_torch - y_ref).max() / np.abs(y_ref).max()
    assert err <= TOLERANCE, err

"""keras.applications checkpoints in, and equivalence with keras.applications, an implementation nobody here wrote.

For every case: keras.applications' own model (``weights=None``, then random weights and random BN statistics)
is saved with ``save_weights`` (Keras 3's ``.weights.h5``; one case per family also in the legacy Keras 2
``.h5`` layout the published ImageNet files use), ``archc convert-weights --from keras.applications`` maps it
onto the generated Keras model (``.weights.h5``) and, through the IR, the generated PyTorch model (``.pt``);
both must compute keras.applications' logits (``classifier_activation=None``) within 1e-4 relative. The worst
errors are written to ``<tmp>/archc-keras-applications.txt``. Small input sizes: counts and weights do not
depend on them (VGG's flatten excepted: its dense kernel is tied to the size, and converts at that size).
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from archc.convert import (  # noqa: E402
    convert,
    convert_weights,
    keras_model_weights,
    load_generated,
    set_keras_weights,
)
from archc.errors import ArchcError  # noqa: E402
from archc.keras_applications import from_keras_applications  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402

from .conftest import keep_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4
REPORT: list[str] = []


def _app(name, **kw):
    def build(size):
        return getattr(keras.applications, name)(
            weights=None, input_shape=(size, size, 3), classifier_activation=None, **kw
        )

    return build


def _densenet(blocks, **kw):
    def build(size):
        return importlib.import_module("keras.src.applications.densenet").DenseNet(
            blocks, weights=None, input_shape=(size, size, 3), classifier_activation=None, **kw
        )

    return build


# case -> (spec, --set overrides besides size, keras.applications builder, input size, legacy .h5 too)
CASES = {
    "densenet121": ("densenet121", [], _app("DenseNet121"), 32, True),
    "densenet169": ("densenet169", [], _app("DenseNet169"), 32, False),
    "densenet201": ("densenet201", [], _app("DenseNet201"), 32, False),
    "mobilenet_v1": ("mobilenet_v1", [], _app("MobileNet"), 32, True),
    "mobilenet_v1_050": ("mobilenet_v1_050", [], _app("MobileNet", alpha=0.5), 32, False),
    # variants a user makes with --set, against keras.applications built with the same options
    "mobilenet_alpha075_dm2_10classes": (
        "mobilenet_v1",
        ["alpha=0.75", "depth_multiplier=2", "classes=10"],
        _app("MobileNet", alpha=0.75, depth_multiplier=2, classes=10),
        96,
        False,
    ),
    "mobilenet_025_odd_65": ("mobilenet_v1_025_160", [], _app("MobileNet", alpha=0.25), 65, False),
    "mobilenet_v2_keras": ("mobilenet_v2_keras", [], _app("MobileNetV2"), 32, True),
    "mobilenet_v2_keras_alpha14_10classes_odd33": (
        "mobilenet_v2_keras",
        ["alpha=1.4", "classes=10"],
        _app("MobileNetV2", alpha=1.4, classes=10),
        33,
        False,
    ),
    "mobilenet_v3_large_keras": (
        "mobilenet_v3_large_keras",
        [],
        _app("MobileNetV3Large", include_preprocessing=False),
        32,
        True,
    ),
    "mobilenet_v3_small_keras_odd33": (
        "mobilenet_v3_small_keras",
        [],
        _app("MobileNetV3Small", include_preprocessing=False),
        33,
        False,
    ),
    "efficientnet_b0_keras": ("efficientnet_b0_keras", [], _app("EfficientNetB0"), 32, True),
    # the adaptive pool to 2 x 2: the identity at 64 px as the 7 x 7 one is at 224, and the flatten's order
    # (2 x 2 x 512) is still checked (VGG's counts and names at 224: tests/test_keras_specs_mobile.py)
    "vgg16": ("vgg16", ["top.0.adaptive_avgpool.size=2"], _app("VGG16"), 64, True),
    "vgg19": ("vgg19", ["top.0.adaptive_avgpool.size=1"], _app("VGG19"), 32, False),
    "convnext_tiny": ("convnext_tiny", [], _app("ConvNeXtTiny", include_preprocessing=False), 32, True),
    "resnet50_keras": ("resnet50_keras", [], _app("ResNet50"), 64, True),
    "inception_v3_keras": ("inception_v3_keras", [], _app("InceptionV3"), 75, True),
    # its residuals scaled by constants (scale: {factor: 0.17 / 0.1 / 0.2}), at keras.applications' least size
    "inception_resnet_v2": ("inception_resnet_v2", [], _app("InceptionResNetV2"), 75, False),
    "densenet_blocks_4_8_16_12_10classes": (
        "densenet121",
        ["block_config=[4, 8, 16, 12]", "classes=10"],
        _densenet([4, 8, 16, 12], classes=10),
        48,
        False,
    ),
}


FILE_CASES = {"mobilenet_025_odd_65", "densenet121"}


def randomize(model, seed):
    """Random weights of every layer (nested ones too); BN: gamma near 1, beta and moving mean small, variance in
    [0.5, 1] (scale=False: no gamma); LayerNormalization: gamma near 1; EfficientNet's input Normalization: a
    plausible mean and variance."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for sub in getattr(layer, "layers", None) or [layer]:
            ws, kind = sub.get_weights(), type(sub).__name__
            if not ws:
                continue
            if kind.startswith("BatchNormalization") or kind == "LayerNormalization":  # (or archc's BN helper)
                new = [
                    rng.uniform(0.75, 1.25, v.shape)
                    if w.name == "gamma"
                    else rng.uniform(0.5, 1.0, v.shape)
                    if "variance" in w.name
                    else rng.normal(0, 0.1, v.shape)
                    for w, v in zip(sub.weights, ws)
                ]
            elif kind == "Normalization":
                mean, var, count = ws
                new = [rng.uniform(0.3, 0.6, mean.shape), rng.uniform(0.04, 0.09, var.shape), count]
            else:
                new = []
                for w in ws:
                    fan_in = int(np.prod(w.shape[:-1])) if w.ndim > 1 else 1
                    new.append(rng.normal(0, (2.0 / fan_in) ** 0.5 if w.ndim > 1 else 0.1, w.shape))
            sub.set_weights([np.asarray(x, dtype=np.float32) for x in new])


def preprocessed(ref, x):
    """What keras.applications' own input layers do before the network (EfficientNet's Rescaling(1 / 255) and
    Normalization, outside the spec: the generated model takes their output); the identity for the others."""
    norms = [layer for layer in ref.layers if type(layer).__name__ == "Normalization"]
    if not norms:
        return x
    mean, var, _ = norms[0].get_weights()
    return ((x / 255.0 - mean) / np.maximum(np.sqrt(var), keras.config.epsilon())).astype(np.float32)


def save_legacy_h5(model, path):
    """The Keras 2 ``.h5`` weights layout (``layer_names`` / ``weight_names``), as the published files have."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def rel(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(a)).max())


def reference(build, size):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keras.applications warns about sizes without ImageNet weights
        return build(size)


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_applications_checkpoint_in(case, tmp_path):
    spec, sets, build, size, legacy = CASES[case]
    sets = [*sets, f"size={size}"]
    path = str(ROOT / "specs" / f"{spec}.yaml")
    model = compile_spec(path, sets)
    ref = reference(build, size)
    ours = load_generated(model, "keras").build_model()
    pre = sum(layer.count_params() for layer in ref.layers if type(layer).__name__ == "Normalization")
    assert ours.count_params() == ref.count_params() - pre  # keras.applications' own (weights=None) counts
    randomize(ref, seed=5)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
    if preprocessed(ref, x) is not x:  # raw pixels in, as keras.applications' EfficientNet takes them
        x = rng.uniform(0, 255, size=(2, size, size, 3)).astype(np.float32)
    y_ref = np.asarray(ref(x, training=False))
    x = preprocessed(ref, x)
    assert y_ref.std() > 0
    assert rel(y_ref, ours(x, training=False)) > TOLERANCE  # the check can fail
    sources = [tmp_path / "ref.weights.h5"]
    ref.save_weights(sources[0])
    if legacy:
        sources.append(tmp_path / "ref_legacy.h5")
        save_legacy_h5(ref, sources[1])
    errors = []
    for src in sources:
        label = "legacy .h5" if src.suffix == ".h5" and not src.name.endswith(".weights.h5") else ".weights.h5"
        if case in FILE_CASES:  # the command's whole path: the .weights.h5 it writes, loaded by Keras
            dst = tmp_path / f"{src.stem}_out.weights.h5"
            msg = convert_weights(path, str(src), str(dst), sets, "keras.applications")
            assert msg.startswith(f"wrote {dst}")
            ours.load_weights(dst)
        else:  # the same mapping, in-process (writing and reading the file costs Keras seconds per model)
            layers, _ = from_keras_applications(model, str(src))
            set_keras_weights(ours, layers)
        errors.append(("keras", label, rel(y_ref, ours(x, training=False))))
    import torch

    if case in FILE_CASES:  # the .pt output itself (the others: the same IR conversion, in-process)
        pt = tmp_path / "out.pt"
        convert_weights(path, str(sources[0]), str(pt), sets, "keras.applications")
        state = torch.load(pt, weights_only=True)
    else:
        state = {k: torch.from_numpy(v) for k, v in convert(model, keras_model_weights(ours), "keras", "torch").items()}
    tmodel = load_generated(model, "torch").build_model()
    tmodel.load_state_dict(state)
    with torch.no_grad():
        y_torch = tmodel.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    errors.append(("torch", ".weights.h5", rel(y_ref, y_torch)))
    line = f"{case} ({spec}, {size} px): " + ", ".join(f"{b} from {s}: {e:.1e}" for b, s, e in errors)
    print(line)
    REPORT.append(line)
    keep_report("keras-applications", sorted(REPORT))
    assert all(e < TOLERANCE for _, _, e in errors), line
    keras.utils.clear_session()


def test_another_models_file_is_refused_with_keras_reason(tmp_path):
    """A DenseNet-169 file for the DenseNet-121 spec: keras.applications' model does not load it."""
    src = tmp_path / "d169.weights.h5"
    reference(_app("DenseNet169"), 32).save_weights(src)
    dst = tmp_path / "out.weights.h5"
    dst.write_text("keep me")
    with pytest.raises(ArchcError) as exc:
        convert_weights(str(ROOT / "specs/densenet121.yaml"), str(src), str(dst), ["size=32"], "keras.applications")
    assert "not a keras.applications checkpoint of spec 'densenet121'" in str(exc.value)
    assert str(exc.value).startswith(f"{src}:1:1")
    assert dst.read_text() == "keep me"  # nothing written


def test_spec_without_keras_names_is_refused(tmp_path):
    src = tmp_path / "m.weights.h5"
    reference(_app("MobileNet"), 32).save_weights(src)
    with pytest.raises(ArchcError, match="uses no archc family with keras.applications names"):
        convert_weights(
            str(ROOT / "specs/shufflenet_v2_x1_0.yaml"), str(src), str(tmp_path / "o.pt"), [], "keras.applications"
        )


def test_a_file_that_is_not_a_weights_file_is_refused_by_the_command(cli, tmp_path):
    src = tmp_path / "garbage.h5"
    src.write_bytes(b"not hdf5 at all")
    dst = tmp_path / "out.pt"
    r = cli(
        "convert-weights",
        "specs/mobilenet_v1_025_160.yaml",
        src,
        dst,
        "--from",
        "keras.applications",
        "--set",
        "size=32",
    )
    assert r.code == 2, r.err
    assert r.err.startswith(f"{src}:1:1: not a keras.applications checkpoint of spec 'mobilenet_v1_025_160'")
    assert "Traceback" not in r.err
    assert not dst.exists()
    r = cli(
        "convert-weights", "specs/mobilenet_v1_025_160.yaml", tmp_path / "w.pt", dst, "--from", "keras.applications"
    )
    assert r.code == 2 and "no such file" in r.err


def test_a_full_checkpoint_into_the_headless_model_skips_the_classifier(tmp_path):
    """Full MobileNet 0.25 weights -> the spec built with include_top=false, pooling=avg: the classifier is
    reported as skipped, and the features are keras.applications' own include_top=False, pooling="avg"
    model's given the same weights."""
    full = reference(_app("MobileNet", alpha=0.25), 32)
    randomize(full, seed=3)
    src = tmp_path / "full.weights.h5"
    full.save_weights(src)
    sets = ["size=32", "include_top=false", "pooling=avg"]
    path = str(ROOT / "specs/mobilenet_v1_025_160.yaml")
    dst = tmp_path / "features.weights.h5"
    msg = convert_weights(path, str(src), str(dst), sets, "keras.applications")
    assert "skipped, the classifier this headless model leaves out: conv_preds" in msg
    ours = load_generated(compile_spec(path, sets), "keras").build_model()
    ours.load_weights(dst)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        headless = keras.applications.MobileNet(
            weights=None, input_shape=(32, 32, 3), alpha=0.25, include_top=False, pooling="avg"
        )
    by_name = {layer.name: layer for layer in full.layers}
    for layer in headless.layers:
        if layer.get_weights():
            layer.set_weights(by_name[layer.name].get_weights())
    x = np.random.default_rng(4).normal(size=(2, 32, 32, 3)).astype(np.float32)
    y_ref = np.asarray(headless(x, training=False))
    assert y_ref.shape == (2, 256)
    assert rel(y_ref, ours(x, training=False)) < TOLERANCE


def test_a_headless_file_into_the_full_model_says_to_cut_the_top(tmp_path):
    src = tmp_path / "notop.weights.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras.applications.MobileNet(weights=None, input_shape=(32, 32, 3), alpha=0.25, include_top=False).save_weights(
            src
        )
    path = str(ROOT / "specs/mobilenet_v1_025_160.yaml")
    with pytest.raises(ArchcError) as exc:
        convert_weights(path, str(src), str(tmp_path / "o.pt"), ["size=32"], "keras.applications")
    assert "missing: conv_preds" in str(exc.value) and "--set include_top=false" in str(exc.value)
    msg = convert_weights(
        path, str(src), str(tmp_path / "o.pt"), ["size=32", "include_top=false"], "keras.applications"
    )
    assert msg.startswith(f"wrote {tmp_path / 'o.pt'}")


def test_the_torchvision_layout_inception_refuses_a_keras_inception_file(tmp_path):
    """inception_v3.yaml shares its family with inception_v3_keras.yaml but is torchvision's layout (BN with
    scale, pools counting the padding): keras.applications' InceptionV3 weights are refused for it."""
    src = tmp_path / "iv3.weights.h5"
    reference(_app("InceptionV3"), 75).save_weights(src)
    with pytest.raises(
        ArchcError, match=r"no rule for 'fc' \(its keras.applications names are for specs inception_v3_keras\)"
    ):
        convert_weights(
            str(ROOT / "specs/inception_v3.yaml"), str(src), str(tmp_path / "o.pt"), ["size=75"], "keras.applications"
        )
    assert not (tmp_path / "o.pt").exists()

"""Every spec without its classifier: ``top:`` and the built-in params ``include_top`` / ``pooling``.

``--set include_top=false`` leaves a spec's ``top:`` (and its aux heads) out; ``--set pooling=avg|max`` then
ends the features with a global pool, as keras.applications' arguments of those names do. Checked here:

* every spec in specs/ has a ``top:`` and builds headless, unpooled (a feature map) and pooled (a vector), the
  code of both backends compiling;
* counts and shapes against independent references built live: keras.applications(include_top=False,
  weights=None), and torchvision's models minus their classifier modules;
* a full model's weights load into the headless one (the layer names do not move when the top goes);
* the errors (a bad value, pooling with the top, include_top=false without a top, a param of a built-in name)
  are located.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from archc.backends import get_backend

from archc.analysis import analyze
from archc.pipeline import compile_spec
from archc.spec import FEATURES_POOL

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
SIZE = {
    "inception_v3": 96,
    "inception_v3_keras": 96,
    "inception_resnet_v2": 75,
}  # the smallest inputs each spec takes (64 px, or more where the spec needs it)
# the input of the specs that are not 2-D images: small clips for the video ResNets, a short waveform for M5
INPUT_SETS = {"m5": ["length=4000"], **{v: ["clip=4", "size=32"] for v in ("r3d_18", "mc3_18", "r2plus1d_18")}}
# models without a classifier to leave out: a generator and an autoencoder end in their image
# generators and dense-prediction models: no classifier to leave out (segmentation, the FPN and the U-Net end per
# pixel or in several outputs)
NO_TOP = {"dcgan_generator", "conv_autoencoder", "unet", "resnet50_fpn"}
NO_TOP |= {"fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"}
HEADLESS = ["include_top=false"]


def spec(stem: str) -> str:
    return str(ROOT / "specs" / f"{stem}.yaml")


def headless(stem: str, pooling: str = "none", size: int | None = None):
    sets = INPUT_SETS.get(stem) or [f"size={size or SIZE.get(stem, 64)}"]
    return compile_spec(spec(stem), [*sets, *HEADLESS, f"pooling={pooling}"])


@pytest.mark.parametrize("stem", [s for s in SPECS if s not in NO_TOP])
def test_every_spec_has_a_top_and_builds_headless(stem):
    from archc.pipeline import load_spec

    _, full = load_spec(spec(stem))
    assert full.top, f"specs/{stem}.yaml has no top: (its classifier)"
    maps = headless(stem)
    vec = headless(stem, "avg")
    assert maps.top_removed and vec.top_removed and not maps.heads and not vec.heads
    out_map, out_vec = analyze(maps).outputs, analyze(vec).outputs
    assert list(out_map) == ["main"] and len(out_map["main"]) == len(maps.input_shape)  # a feature map
    assert out_vec == {"main": (out_map["main"][-1],)}
    assert vec.body.children[-1].name == FEATURES_POOL
    for model, backend in ((maps, "keras"), (vec, "torch")):  # each backend's code, one of the two each (time)
        compile(get_backend(backend).emit(model), f"{stem}_{backend}.py", "exec")


@pytest.mark.parametrize("stem", sorted(NO_TOP))
def test_a_model_without_a_classifier_is_refused_headless(stem, cli):
    r = cli("check", spec(stem), "--set", "include_top=false")
    assert r.code == 2 and f"spec '{stem}' has no 'top:' (its classifier) to leave out" in r.err, r.err


def test_with_the_top_nothing_changes_and_max_pooling_is_a_global_max():
    full = compile_spec(spec("resnet18"), ["size=64"])
    maps, mx = headless("resnet18"), headless("resnet18", "max")
    assert not full.top_removed
    n = len(maps.body.children)
    assert [c.name for c in full.body.children[:n]] == [c.name for c in maps.body.children]
    assert [c.name for c in full.body.children[n:]] == ["avgpool", "fc"]  # resnet18.yaml's top: as written
    assert mx.body.children[-1].kind == "op" and mx.body.children[-1].op == "global_maxpool"
    assert analyze(mx).outputs["main"] == (512,)


def test_the_full_model_of_a_headless_one_compiles_from_its_sets_minus_the_built_in_ones():
    from archc.loader import without_builtin_sets

    sets = ["size=64", "include_top=false", "params.pooling=avg", "classes=7"]
    assert without_builtin_sets(sets) == ["size=64", "classes=7"]
    full, head = compile_spec(spec("resnet18"), without_builtin_sets(sets)), compile_spec(spec("resnet18"), sets)
    assert not full.top_removed and head.top_removed and analyze(full).outputs["main"] == (7,)
    assert head.body.children[-1].name == FEATURES_POOL


def _keras_counts(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)


KERAS_REFERENCES = {  # spec -> keras.applications builder (and its options)
    "densenet121": ("DenseNet121", {}),
    "mobilenet_v1": ("MobileNet", {}),
    "vgg16": ("VGG16", {}),
    "mobilenet_v2": ("MobileNetV2", {}),
    # keras' headless ConvNeXt ends in a LayerNormalization after its pooling (on the map with pooling=None):
    # convnext_tiny.yaml cuts where torchvision's `features` ends, before it (its top: gap, head_norm, fc), so
    # the reference is keras' model up to that last LayerNormalization
    "convnext_tiny": ("ConvNeXtTiny", {"include_preprocessing": False}),
}


@pytest.mark.parametrize("stem", list(KERAS_REFERENCES))
def test_headless_counts_and_shapes_equal_keras_applications(stem):
    keras = pytest.importorskip("keras")
    builder, kw = KERAS_REFERENCES[stem]
    # one build gives both: pooling="avg" ends with GlobalAveragePooling2D, whose input is the unpooled map
    ref = getattr(keras.applications, builder)(
        include_top=False, weights=None, input_shape=(64, 64, 3), pooling="avg", **kw
    )
    trainable, non_trainable = _keras_counts(ref)
    if stem == "convnext_tiny":
        last = ref.layers[-1]
        assert type(last).__name__ == "LayerNormalization"
        trainable -= sum(int(np.prod(w.shape)) for w in last.trainable_weights)
        ref = keras.Model(ref.input, last.input)
    gap = ref.layers[-1]
    assert type(gap).__name__ == "GlobalAveragePooling2D"
    ref_map, ref_vec = tuple(gap.input.shape[1:]), tuple(gap.output.shape[1:])
    for pooling, ref_shape in (("none", ref_map), ("avg", ref_vec)):
        r = analyze(headless(stem, pooling))
        assert r.outputs["main"] == ref_shape, pooling
        assert (r.trainable, r.non_trainable) == (trainable, non_trainable), pooling


TORCHVISION_REFERENCES = {  # spec -> (torchvision builder, its kwargs, the classifier modules the top is)
    "resnet50": ("resnet50", {}, ("fc",)),
    "mobilenet_v3_large": ("mobilenet_v3_large", {}, ("classifier",)),
    "squeezenet1_1": ("squeezenet1_1", {}, ("classifier",)),
    "efficientnet_b0": ("efficientnet_b0", {}, ("classifier",)),
    # aux heads: archc leaves them out with the top, as their torchvision modules go here
    "googlenet_torchvision": ("googlenet", {"aux_logits": True, "init_weights": False}, ("fc", "aux1", "aux2")),
}


@pytest.mark.parametrize("stem", list(TORCHVISION_REFERENCES))
def test_headless_counts_equal_torchvision_without_its_classifier(stem, torchvision):
    builder, kw, cut = TORCHVISION_REFERENCES[stem]
    tv = getattr(torchvision.models, builder)(weights=None, **kw)
    keep = lambda name: name.split(".")[0] not in cut  # noqa: E731
    trainable = sum(p.numel() for n, p in tv.named_parameters() if keep(n))
    stats = sum(b.numel() for n, b in tv.named_buffers() if keep(n) and n.endswith(("running_mean", "running_var")))
    assert sum(p.numel() for n, p in tv.named_parameters() if not keep(n)) > 0  # the cut removes something
    r = analyze(headless(stem, "avg"))
    assert (r.trainable, r.non_trainable) == (trainable, stats)


def _load(path: Path, name: str):
    s = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


def _emit(model, backend: str, path: Path):
    path.write_text(get_backend(backend).emit(model), encoding="utf-8")
    return _load(path, path.stem)


def test_a_full_torch_state_dict_loads_into_the_headless_model_but_for_the_top(tmp_path):
    torch = pytest.importorskip("torch")
    full = _emit(compile_spec(spec("squeezenet1_1"), ["size=64"]), "torch", tmp_path / "hl_sq_full.py").build_model()
    head = _emit(headless("squeezenet1_1", "avg"), "torch", tmp_path / "hl_sq_head.py").build_model()
    result = head.load_state_dict(full.state_dict(), strict=False)
    assert result.missing_keys == []
    assert sorted(result.unexpected_keys) == ["conv10.bias", "conv10.weight"]  # squeezenet1_1.yaml's top: conv
    x = torch.randn(2, 3, 64, 64)
    full.eval(), head.eval()
    seen = []
    full.fire9.register_forward_hook(lambda module, args, out: seen.append(out))  # the trunk's last module
    with torch.no_grad():
        pooled = head(x)
        full(x)
    assert pooled.shape == (2, 512)  # the pooled features, and the trunk computes the full model's numbers
    torch.testing.assert_close(pooled, seen[0].mean((2, 3)))


def test_a_full_keras_model_s_weights_load_into_the_headless_one_by_name(tmp_path):
    pytest.importorskip("keras")
    stem = "mobilenet_v1_025_160"
    full = _emit(compile_spec(spec(stem), ["size=64"]), "keras", tmp_path / "hl_mb_full.py").build_model()
    head = _emit(headless(stem, "max"), "keras", tmp_path / "hl_mb_head.py").build_model()
    weighted = {layer.name for layer in full.layers if layer.weights}
    mine = {layer.name for layer in head.layers if layer.weights}
    assert mine < weighted and weighted - mine == {"classifier"}
    for layer in head.layers:
        if layer.weights:
            layer.set_weights(full.get_layer(layer.name).get_weights())
    assert type(head.layers[-1]).__name__ == "GlobalMaxPooling2D" and head.output.shape[1:] == (256,)


SPEC_WITHOUT_TOP = """\
name: plain
input: {height: 16, width: 16, channels: 3}
network:
  - conv: {out: 4, kernel: 3}
"""


@pytest.mark.parametrize(
    "text, sets, where, message",
    [
        (None, ["include_top=maybe"], "--set include_top=maybe:1:13", "include_top must be true or false"),
        (None, ["include_top=false", "pooling=mean"], "--set pooling=mean:1:9", "pooling must be one of none, avg"),
        (None, ["pooling=avg"], "--set pooling=avg:1:9", "pooling=avg applies to a model without its top"),
        (SPEC_WITHOUT_TOP, ["include_top=false"], "--set include_top=false:1:13", "has no 'top:'"),
        (SPEC_WITHOUT_TOP.replace("network:", "params: {pooling: avg}\nnetwork:"), [], "spec.yaml:3:10",
         "param 'pooling' is built in"),
        (SPEC_WITHOUT_TOP.replace("network:", "params: {include_top: true}\nnetwork:"), ["include_top=false"],
         "spec.yaml:3:10", "param 'include_top' is built in"),
        (SPEC_WITHOUT_TOP.replace("kernel: 3}", f"kernel: 3, name: {FEATURES_POOL}}}\ntop: [gap]"),
         ["include_top=false", "pooling=avg"], "--set pooling=avg:1:9", f"duplicate name '{FEATURES_POOL}'"),
    ],
)  # fmt: skip
def test_errors_are_located(text, sets, where, message, cli, write_yaml):
    path = write_yaml(text) if text is not None else spec("resnet18")
    r = cli("check", path, *[a for s in sets for a in ("--set", s)])
    assert r.code == 2
    first = r.err.splitlines()[0]
    assert first.startswith(f"{where}: ") or first.startswith(f"{Path(path).parent}/{where}: "), first
    assert message in first

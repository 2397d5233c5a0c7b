"""`archc convert-weights SPEC SRC DST --from torchvision`: torchvision's checkpoints in.

For each spec that mirrors a torchvision model (and the ``--set`` variants that mirror its siblings):
torchvision's own model with random weights *and random BN statistics* -> ``torch.save(state_dict)`` ->
``archc convert-weights ... --from torchvision`` -> the generated PyTorch model (``.pt``) and the generated
Keras model (``.weights.h5``) -> the same logits as torchvision's model, at a small size and an odd one
(the full 224x224 size in the ``slow`` tier). Relative error = max |difference| / max |torchvision's logits|.
Without torchvision installed (``pip install --no-deps torchvision==0.28.0 pillow``) these tests skip, except
the ones on the mapping data alone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

from archc.convert import torch_shapes
from archc.errors import ArchcError
from archc.mapping import Mapping, Rule, load_mapping, mapping_for
from archc.pipeline import compile_spec
from tests.bn_stats import measured_bn_stats
from tests.conftest import keep_report

ROOT = Path(__file__).resolve().parents[1]
TORCH_TOL = 1e-5
KERAS_TOL = 1e-4
FLOAT64_TOL = 1e-9  # where both models run in float64: see test_torchvision_to_generated_keras
SMALL, ODD, FULL = 64, 97, 224
WORST: dict = {}  # (case, size, backend) -> relative error, printed at the end

# id: (spec, --set overrides, torchvision builder, builder kwargs)
CASES = {
    "resnet18": ("specs/resnet18.yaml", [], "resnet18", {}),
    "resnet34": ("specs/resnet34.yaml", [], "resnet34", {}),
    "resnet50": ("specs/resnet50.yaml", [], "resnet50", {}),
    "resnet101": ("specs/resnet101.yaml", [], "resnet101", {}),
    "resnet152": ("specs/resnet152.yaml", [], "resnet152", {}),
    "resnext50_32x4d": ("specs/resnext50_32x4d.yaml", [], "resnext50_32x4d", {}),
    "wide_resnet50_2": ("specs/wide_resnet50_2.yaml", [], "wide_resnet50_2", {}),
    # torchvision's DenseNets use BN epsilon 1e-5, the specs keras.applications' 1.001e-5
    "densenet121": ("specs/densenet121.yaml", ["defaults.bn.eps=1.0e-5"], "densenet121", {}),
    "densenet161": ("specs/densenet161.yaml", ["defaults.bn.eps=1.0e-5"], "densenet161", {}),
    "densenet169": ("specs/densenet169.yaml", ["defaults.bn.eps=1.0e-5"], "densenet169", {}),
    "densenet201": ("specs/densenet201.yaml", ["defaults.bn.eps=1.0e-5"], "densenet201", {}),
    "densenet121_spec_eps": ("specs/densenet121.yaml", [], "densenet121", {}),
    # the aux heads need >= ~200 pixels (and torchvision's pool adaptively): at small sizes they are off on
    # both sides; with them on at full size below
    "googlenet": (
        "specs/googlenet_torchvision.yaml",
        ["aux=false"],
        "googlenet",
        {"aux_logits": False, "transform_input": False, "init_weights": True},
    ),
    "googlenet_aux": (
        "specs/googlenet_torchvision.yaml",
        [],
        "googlenet",
        {"aux_logits": True, "transform_input": False, "init_weights": True},
    ),
    "mobilenet_v2": ("specs/mobilenet_v2.yaml", [], "mobilenet_v2", {}),
    "mobilenet_v3_large": ("specs/mobilenet_v3_large.yaml", [], "mobilenet_v3_large", {}),
    "mobilenet_v3_small": ("specs/mobilenet_v3_small.yaml", [], "mobilenet_v3_small", {}),
    **{f"efficientnet_b{i}": (f"specs/efficientnet_b{i}.yaml", [], f"efficientnet_b{i}", {}) for i in range(8)},
    "shufflenet_v2_x1_0": ("specs/shufflenet_v2_x1_0.yaml", [], "shufflenet_v2_x1_0", {}),
    "shufflenet_v2_x0_5": (
        "specs/shufflenet_v2_x1_0.yaml",
        ["stages_out_channels=[24, 48, 96, 192, 1024]"],
        "shufflenet_v2_x0_5",
        {},
    ),
    "regnet_y_400mf": ("specs/regnet_y_400mf.yaml", [], "regnet_y_400mf", {}),
    "regnet_x_400mf": ("specs/regnet_x_400mf.yaml", [], "regnet_x_400mf", {}),
    "convnext_tiny": ("specs/convnext_tiny.yaml", [], "convnext_tiny", {}),
    # Inception v3 takes inputs >= 75 pixels, its aux head >= 299 (Mixed_6e's grid >= 17): off at the small
    # sizes (the spec's default), on at full size (torchvision's eval forward returns the logits alone either way;
    # the aux head's own numbers are checked below, in training mode)
    "inception_v3": (
        "specs/inception_v3.yaml",
        [],
        "inception_v3",
        {"aux_logits": False, "transform_input": False, "init_weights": True},
    ),
    "inception_v3_aux": (
        "specs/inception_v3.yaml",
        ["aux=true"],
        "inception_v3",
        {"aux_logits": True, "transform_input": False, "init_weights": True},
    ),
    "squeezenet1_1": ("specs/squeezenet1_1.yaml", [], "squeezenet1_1", {}),
    # VGG and AlexNet pool adaptively before the classifier (to 7x7, 6x6): exact at any size (VGG >= 32, AlexNet
    # >= 63 pixels); their sizes below give the pool 2x2 and 3x3 maps (VGG at 64, 97; AlexNet at 97, 127)
    "vgg11": ("specs/vgg11.yaml", [], "vgg11", {}),
    "vgg16": ("specs/vgg16.yaml", [], "vgg16", {}),
    "vgg19": ("specs/vgg19.yaml", [], "vgg19", {}),
    "vgg16_bn": ("specs/vgg16_bn.yaml", [], "vgg16_bn", {}),
    "alexnet": ("specs/alexnet.yaml", [], "alexnet", {}),
}
HEAVY = {"resnet101", "resnet152", "resnext50_32x4d", "wide_resnet50_2", "densenet161", "densenet169", "densenet201"}
HEAVY |= {"efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7"}
# Each case is checked at a small size (the fast tier) and at the model's own size (the slow tier, which CI runs):
# the small size where a case needs another than SMALL
SIZES = {"inception_v3": 107, "alexnet": 97}
FULL_ONLY = {"googlenet_aux", "inception_v3_aux"}  # aux heads that exist at full size only


def full_size(name: str) -> int:
    """The model's own size: the spec's input (224, EfficientNet-B1..B7 240..600, Inception-v3 299)."""
    spec, sets, _, _ = CASES[name]
    return compile_spec(spec, sets).input_shape[0]


def rel_err(ref, other) -> float:
    ref, other = np.asarray(ref, np.float64), np.asarray(other, np.float64)
    return float(np.abs(ref - other).max() / max(np.abs(ref).max(), 1e-12))


def randomize(model, seed: int):
    """Random weights with the variance that keeps activations O(1) (He), random BN affine parameters,
    running statistics and counters, random biases."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / p[0].numel()) ** 0.5)
            elif name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.75)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) * 0.5 + 0.5)
            elif name.endswith("num_batches_tracked"):
                b.fill_(int(torch.randint(1, 10_000, (), generator=g)))
    return model.eval()


# Squeeze-and-excitation networks with random BN statistics are chaotic in float32: float64 and float32 logits
# of the same torch model differ by 4e-4 (efficientnet_b0) and 7.5e-3 (mobilenet_v3_large) at 64x64 (activations
# grow to ~1e3), so two frameworks cannot agree to KERAS_TOL. For these cases the statistics are measured on a
# random batch first (as training leaves them), then perturbed at random: float32 vs float64 6.5e-6 / 6.5e-6.
CONDITIONED = {"mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0"}


class Case:
    """torchvision's model for a case, its checkpoint on disk, and its logits per input size (cached)."""

    def __init__(self, name: str, tv, folder: Path):
        import torch

        self.name = name
        self.spec, self.sets, builder, kwargs = CASES[name]
        torch.manual_seed(0)
        self.model = randomize(getattr(tv.models, builder)(weights=None, **kwargs), seed=1)
        if name in CONDITIONED:
            measured_bn_stats(self.model, (3, SMALL, SMALL), seed=2)
        self.ckpt = folder / f"{name}_torchvision.pt"
        torch.save(self.model.state_dict(), self.ckpt)
        self.folder = folder
        self.inputs: dict = {}
        self.logits: dict = {}

    def reference(self, size: int):
        import torch

        if size not in self.logits:
            x = np.random.default_rng(size).normal(size=(2, 3, size, size)).astype(np.float32)
            with torch.no_grad():
                y = self.model(torch.from_numpy(x))
            self.inputs[size], self.logits[size] = x, y.numpy()
            # the check is only as good as the logits' dependence on the input: two inputs' logits must differ
            # by far more than the tolerances (random BN statistics make a large input-independent part; at
            # 224 the DenseNets' two rows differ by ~1 %)
            assert rel_err(self.logits[size][0], self.logits[size][1]) > 1e-3
        return self.inputs[size], self.logits[size]

    def reference64(self, size: int):
        """torchvision's logits in float64 (a float64 copy of the model, the same input)."""
        import copy

        import torch

        x, _ = self.reference(size)
        with torch.no_grad():
            return copy.deepcopy(self.model).double()(torch.from_numpy(x).double()).numpy()

    def sets_at(self, size: int) -> list[str]:
        return [*self.sets, f"size={size}"]


@pytest.fixture(scope="module")
def case(torchvision, tmp_path_factory):
    folder = tmp_path_factory.mktemp("torchvision")
    made: dict = {}

    def get(name: str) -> Case:
        if name not in made:
            made.clear()  # one torchvision model in memory at a time
            made[name] = Case(name, torchvision, folder)
        return made[name]

    return get


@contextlib.contextmanager
def keras_floatx(floatx: str | None):
    """Keras layers made inside are of ``floatx`` (None: unchanged); the policy, once made, outlives floatx."""
    import keras

    if floatx is None:
        yield
        return
    old, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(floatx)
    try:
        yield
    finally:
        keras.config.set_floatx(old)
        keras.config.set_dtype_policy(policy)


def convert(cli, c: Case, dst: Path, size: int):
    argv = ["convert-weights", c.spec, c.ckpt, dst, "--from", "torchvision"]
    for s in c.sets_at(size):
        argv += ["--set", s]
    r = cli(*argv)
    assert r.code == 0, r.err
    return r


def torch_logits(c: Case, size: int, state_path: Path):
    import torch

    from archc.convert import load_generated

    model = compile_spec(c.spec, c.sets_at(size))
    net = load_generated(model, "torch").build_model()
    net.load_state_dict(torch.load(state_path, weights_only=True), strict=True)
    net.eval()
    x, _ = c.reference(size)
    with torch.no_grad():
        return net(torch.from_numpy(x)).numpy()


def torch_params(names):
    out = []
    for n in names:
        for size in (SIZES.get(n, SMALL),):
            marks = [pytest.mark.slow] if n in HEAVY else []
            out.append(pytest.param(n, size, marks=marks, id=f"{n}-{size}"))
    return out


FAST_TORCH = [n for n in CASES if n not in FULL_ONLY]


@pytest.mark.parametrize("name,size", torch_params(FAST_TORCH))
def test_torchvision_to_generated_torch(name, size, case, cli, tmp_path):
    c = case(name)
    out = tmp_path / "generated.pt"
    convert(cli, c, out, size)
    _, ref = c.reference(size)
    err = rel_err(ref, torch_logits(c, size, out))
    WORST[(name, size, "torch")] = err
    assert err <= TORCH_TOL


# the same at each model's own size: tests/test_torchvision_full.py (a file of its own: `pytest -n 2 --dist loadfile`
# runs it beside this one)


# torchvision's checkpoints into the generated Keras model: one or more members of each family (the others are its
# blocks at other depths and widths, whose torch <-> keras equality tests/test_parity.py checks for every spec)
KERAS = ["resnet18", "resnet50", "densenet121", "googlenet", "mobilenet_v2"]
KERAS += ["mobilenet_v3_large", "mobilenet_v3_small", "efficientnet_b0"]
KERAS += ["shufflenet_v2_x1_0", "regnet_y_400mf", "convnext_tiny"]
KERAS_SLOW = ["regnet_x_400mf"]  # RegNetY's blocks without SE
KERAS_MORE = [pytest.param("inception_v3_aux", marks=pytest.mark.slow), "squeezenet1_1", "alexnet"]


@pytest.mark.parametrize(
    "name", KERAS + [pytest.param(n, marks=pytest.mark.slow) for n in KERAS_SLOW] + ["googlenet_aux"] + KERAS_MORE
)
def test_torchvision_to_generated_keras(name, case, cli, tmp_path):
    pytest.importorskip("keras")
    from archc.convert import load_generated

    c = case(name)
    # the aux heads exist at full size only
    size = full_size(name) if name in FULL_ONLY else SIZES.get(name, SMALL)
    h5 = tmp_path / "generated.weights.h5"
    convert(cli, c, h5, size)
    x, ref = c.reference(size)
    ref64 = c.reference64(size)
    # Two float32 implementations of one function each differ from it by about this model's own float32
    # rounding, measured here against torchvision's float64 logits (2.9e-5 for regnet_y_400mf, 3.5e-5 for
    # mobilenet_v2 at 64 px; <= 4e-6 for the others). Where that is within a factor 10 of KERAS_TOL the float32
    # comparison says nothing more than the CPU's summation order (regnet_y_400mf has given 1.8e-4 on one
    # machine), so both models run in float64 (the same float32 weights, exactly representable), where a right
    # mapping agrees to the float64 rounding: that rounding amplified as this model amplifies float32's
    # (float32 error / 2^-24 <= ~1e3) is <= 1e-12, and FLOAT64_TOL = 1e-9 is far above it and far below any
    # mapping error (>= 1e-3: see the swapped-weights test).
    float64 = 10 * rel_err(ref64, ref) > KERAS_TOL
    with keras_floatx("float64" if float64 else None):
        kmodel = load_generated(compile_spec(c.spec, c.sets_at(size)), "keras").build_model()
        kmodel.load_weights(h5)
        xk = x.astype(np.float64) if float64 else x
        y = kmodel(xk.transpose(0, 2, 3, 1), training=False)
    y = (y[0] if isinstance(y, (list, tuple)) else y).numpy()
    err = rel_err(ref64 if float64 else ref, y)
    WORST[(name, size, "keras float64" if float64 else "keras")] = err
    assert err <= (FLOAT64_TOL if float64 else KERAS_TOL)


@pytest.mark.slow
def test_inception_v3_aux_head_matches_torchvision_in_training_mode(case, cli, tmp_path):
    """torchvision's eval forward never runs AuxLogits; in training mode (BN and dropout modules in eval: running
    statistics, no dropout) both models return (logits, aux logits): the aux head's numbers, at 299."""
    import torch

    from archc.convert import load_generated

    c = case("inception_v3_aux")
    size = full_size("inception_v3_aux")
    out = tmp_path / "generated.pt"
    convert(cli, c, out, size)
    net = load_generated(compile_spec(c.spec, c.sets_at(size)), "torch").build_model()
    net.load_state_dict(torch.load(out, weights_only=True), strict=True)
    x, _ = c.reference(size)
    results = []
    for model in (c.model, net):
        model.train()
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Dropout)):
                m.eval()
        with torch.no_grad():
            main, aux = model(torch.from_numpy(x))
        model.eval()
        results.append((main.numpy(), aux.numpy()))
    (ref_main, ref_aux), (main, aux) = results
    assert rel_err(ref_aux[0], ref_aux[1]) > 1e-3  # the aux logits depend on the input
    WORST[("inception_v3_aux", size, "torch aux")] = err = rel_err(ref_aux, aux)
    assert err <= TORCH_TOL
    assert rel_err(ref_main, main) <= TORCH_TOL


# ---------------------------------------------------------------- refusals and edge cases


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def test_a_resnet18_checkpoint_is_refused_for_resnet50(case, cli, tmp_path):
    c = case("resnet18")
    before = listing(tmp_path)
    for dst in (tmp_path / "out.pt", tmp_path / "out.weights.h5"):
        r = cli("convert-weights", "specs/resnet50.yaml", c.ckpt, dst, "--from", "torchvision", "--set", "size=64")
        assert r.code == 2
        assert r.err.startswith(f"{c.ckpt}:1:1: torchvision checkpoint does not fit spec 'resnet50'")
        assert "missing: layer1.0.conv3.weight, layer1.0.bn3.weight," in r.err  # torchvision's names, model order
        assert "layer1.0.downsample.0.weight" in r.err  # resnet18's layer1 has no projection
        assert "mis-shaped: layer1.0.conv1.weight (64, 64, 3, 3) (spec needs (64, 64, 1, 1))" in r.err
        assert "unexpected:" not in r.err
        assert "Traceback" not in r.err
        assert listing(tmp_path) == before  # nothing written, no temporary left


def test_a_resnet50_checkpoint_is_refused_for_resnet18_naming_unexpected_tensors(case, cli, tmp_path):
    c = case("resnet50")
    r = cli("convert-weights", "specs/resnet18.yaml", c.ckpt, tmp_path / "o.pt", "--from", "torchvision")
    assert r.code == 2
    assert "unexpected: layer1.0.conv3.weight, layer1.0.bn3.weight," in r.err
    assert "mis-shaped: layer1.0.conv2.weight" not in r.err  # same shape (64, 64, 3, 3) in both
    assert "mis-shaped: layer1.0.conv1.weight (64, 64, 1, 1) (spec needs (64, 64, 3, 3))" in r.err
    assert listing(tmp_path) == []


def test_googlenet_with_5x5_branches_refuses_torchvision_weights(case, cli, tmp_path):
    """specs/googlenet.yaml has torchvision's names but the paper's 5x5 kernels."""
    c = case("googlenet_aux")
    r = cli("convert-weights", "specs/googlenet.yaml", c.ckpt, tmp_path / "o.pt", "--from", "torchvision")
    assert r.code == 2
    assert "mis-shaped: inception3a.branch3.1.conv.weight (32, 16, 3, 3) (spec needs (32, 16, 5, 5))" in r.err


def test_missing_num_batches_tracked_is_filled_and_present_ones_are_kept(case, cli, tmp_path):
    import torch

    c = case("resnet18")
    state = torch.load(c.ckpt, weights_only=True)
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pt")
    convert(cli, c, tmp_path / "kept.pt", SMALL)
    r = cli("convert-weights", c.spec, tmp_path / "old.pt", tmp_path / "filled.pt", "--from", "torchvision")
    assert r.code == 0, r.err
    kept = torch.load(tmp_path / "kept.pt", weights_only=True)
    filled = torch.load(tmp_path / "filled.pt", weights_only=True)
    assert kept["bn1.num_batches_tracked"] == state["bn1.num_batches_tracked"] != 0
    assert filled["bn1.num_batches_tracked"] == 0 and filled["bn1.num_batches_tracked"].dtype == torch.int64
    assert all(torch.equal(kept[k], filled[k]) for k in kept if not k.endswith("num_batches_tracked"))


def test_densenet_checkpoints_with_torchvisions_old_names_convert(case, cli, tmp_path):
    """torchvision's published DenseNet files say denselayer1.norm.1 for norm1 (checkpoint_rules)."""
    import re

    import torch

    c = case("densenet121")
    state = torch.load(c.ckpt, weights_only=True)
    legacy = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    torch.save(legacy, tmp_path / "legacy.pth")
    convert(cli, c, tmp_path / "new.pt", SMALL)
    r = cli("convert-weights", c.spec, tmp_path / "legacy.pth", tmp_path / "old.pt", "--from", "torchvision")
    assert r.code == 0, r.err
    new, old = (torch.load(tmp_path / f, weights_only=True) for f in ("new.pt", "old.pt"))
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in new)


def test_a_training_checkpoint_and_dataparallel_prefix_are_read(case, cli, tmp_path):
    import torch

    c = case("mobilenet_v2")
    state = torch.load(c.ckpt, weights_only=True)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "ckpt.pth")
    r = cli("convert-weights", c.spec, tmp_path / "ckpt.pth", tmp_path / "o.pt", "--from", "torchvision")
    assert r.code == 0, r.err
    assert torch.equal(
        torch.load(tmp_path / "o.pt", weights_only=True)["classifier.weight"], state["classifier.1.weight"]
    )


def test_logit_check_catches_two_swapped_layers_of_equal_shape(case, monkeypatch, tmp_path):
    """Negative control: a mapping that swaps each basic block's two BNs (same shapes: every tensor fits)
    gives logits far from torchvision's."""
    import torch

    import archc.mapping as mapping_mod
    from archc.convert import from_torchvision

    c = case("resnet18")
    model = compile_spec(c.spec, c.sets_at(SMALL))
    good = mapping_for(model)
    swap = [("^(layer.*)\\.bn1\\.", "\\1.SWAP."), ("^(layer.*)\\.bn2\\.", "\\1.bn1."), ("\\.SWAP\\.", ".bn2.")]
    import re

    bad = Mapping(
        good.source,
        good.family,
        good.file,
        good.models,
        good.rules + tuple(Rule(re.compile(a), b, "test") for a, b in swap),
        (),
    )
    monkeypatch.setattr(mapping_mod, "mapping_for", lambda m, source="torchvision": bad)
    state = from_torchvision(model, torch.load(c.ckpt, weights_only=True), str(c.ckpt))
    torch.save(state, tmp_path / "swapped.pt")
    _, ref = c.reference(SMALL)
    assert rel_err(ref, torch_logits(c, SMALL, tmp_path / "swapped.pt")) > 100 * TORCH_TOL


# ---------------------------------------------------------------- the mapping data (no torchvision needed)

NAMES = [
    ("specs/resnet50.yaml", "layer1.first.downsample.conv.weight", "layer1.0.downsample.0.weight"),
    ("specs/resnet50.yaml", "layer1.first.downsample.bn.running_var", "layer1.0.downsample.1.running_var"),
    ("specs/resnet50.yaml", "layer3.rest.4.conv2.weight", "layer3.5.conv2.weight"),
    ("specs/resnet18.yaml", "fc.bias", "fc.bias"),
    (
        "specs/densenet121.yaml",
        "denseblock1.stack.0.norm1.weight",
        "features.denseblock1.denselayer1.norm1.weight",
    ),
    (
        "specs/densenet201.yaml",
        "denseblock3.stack.47.conv2.weight",
        "features.denseblock3.denselayer48.conv2.weight",
    ),
    ("specs/densenet121.yaml", "transition3.norm.running_mean", "features.transition3.norm.running_mean"),
    ("specs/googlenet_torchvision.yaml", "inception4e.branch3.conv_bn_act2.bn.bias", "inception4e.branch3.1.bn.bias"),
    (
        "specs/googlenet_torchvision.yaml",
        "inception5b.branch4.conv_bn_act.conv.weight",
        "inception5b.branch4.1.conv.weight",
    ),
    ("specs/googlenet_torchvision.yaml", "aux2.fc1.weight", "aux2.fc1.weight"),
    ("specs/mobilenet_v2.yaml", "stage1.first.project_bn.weight", "features.1.conv.2.weight"),
    ("specs/mobilenet_v2.yaml", "stage2.rest.0.dw_bn.weight", "features.3.conv.1.1.weight"),
    ("specs/mobilenet_v2.yaml", "stage6.rest.1.project_conv.weight", "features.16.conv.2.weight"),
    ("specs/mobilenet_v2.yaml", "stage7.first.expand_conv.weight", "features.17.conv.0.0.weight"),
    ("specs/mobilenet_v2.yaml", "head_bn.num_batches_tracked", "features.18.1.num_batches_tracked"),
    ("specs/mobilenet_v2.yaml", "classifier.weight", "classifier.1.weight"),
    ("specs/efficientnet_b0.yaml", "stem.conv.weight", "features.0.0.weight"),
    ("specs/efficientnet_b0.yaml", "stage1.first.dw_conv.weight", "features.1.0.block.0.0.weight"),
    ("specs/efficientnet_b0.yaml", "stage1.first.se.branch2.fc1.weight", "features.1.0.block.1.fc1.weight"),
    ("specs/efficientnet_b0.yaml", "stage1.first.project.bn.bias", "features.1.0.block.2.1.bias"),
    ("specs/efficientnet_b0.yaml", "stage2.first.expand.bn.running_mean", "features.2.0.block.0.1.running_mean"),
    ("specs/efficientnet_b0.yaml", "stage6.rest.2.se.branch2.fc2.bias", "features.6.3.block.2.fc2.bias"),
    ("specs/efficientnet_b0.yaml", "stage7.first.project.conv.weight", "features.7.0.block.3.0.weight"),
    ("specs/efficientnet_b1.yaml", "stage1.rest.0.dw_bn.weight", "features.1.1.block.0.1.weight"),
    ("specs/efficientnet_b7.yaml", "stage6.rest.11.dw_conv.weight", "features.6.12.block.1.0.weight"),
    ("specs/efficientnet_b0.yaml", "lastconv.bn.weight", "features.8.1.weight"),
    ("specs/efficientnet_b0.yaml", "classifier.weight", "classifier.1.weight"),
    ("specs/shufflenet_v2_x1_0.yaml", "stem_bn.running_var", "conv1.1.running_var"),
    ("specs/shufflenet_v2_x1_0.yaml", "stage2.first.branch1.pw.weight", "stage2.0.branch1.2.weight"),
    ("specs/shufflenet_v2_x1_0.yaml", "stage2.first.branch2.dw_bn.bias", "stage2.0.branch2.4.bias"),
    ("specs/shufflenet_v2_x1_0.yaml", "stage3.rest.6.branch2.pw2.weight", "stage3.7.branch2.5.weight"),
    ("specs/shufflenet_v2_x1_0.yaml", "head_conv.weight", "conv5.0.weight"),
    ("specs/regnet_y_400mf.yaml", "stem_conv.weight", "stem.0.weight"),
    (
        "specs/regnet_y_400mf.yaml",
        "stage1.first.proj.bn.running_mean",
        "trunk_output.block1.block1-0.proj.1.running_mean",
    ),
    ("specs/regnet_y_400mf.yaml", "stage3.rest.4.b.weight", "trunk_output.block3.block3-5.f.b.0.weight"),
    ("specs/regnet_y_400mf.yaml", "stage2.first.se.branch2.fc1.bias", "trunk_output.block2.block2-0.f.se.fc1.bias"),
    ("specs/regnet_x_400mf.yaml", "stage4.rest.10.c_bn.weight", "trunk_output.block4.block4-11.f.c.1.weight"),
    ("specs/convnext_tiny.yaml", "stem_norm.weight", "features.0.1.weight"),
    ("specs/convnext_tiny.yaml", "stage1.first.dw.weight", "features.1.0.block.0.weight"),
    ("specs/convnext_tiny.yaml", "stage3.rest.7.pw2.bias", "features.5.8.block.5.bias"),
    ("specs/convnext_tiny.yaml", "stage2.first.layer_scale.scale", "features.3.0.layer_scale"),
    ("specs/convnext_tiny.yaml", "down3.norm.weight", "features.6.0.weight"),
    ("specs/convnext_tiny.yaml", "head_norm.bias", "classifier.0.bias"),
    ("specs/convnext_tiny.yaml", "fc.weight", "classifier.2.weight"),
    ("specs/inception_v3.yaml", "Mixed_5b.branch2.branch5x5_2.bn.running_var", "Mixed_5b.branch5x5_2.bn.running_var"),
    ("specs/inception_v3.yaml", "Mixed_5b.branch1x1.conv.weight", "Mixed_5b.branch1x1.conv.weight"),
    (
        "specs/inception_v3.yaml",
        "Mixed_7c.branch3.concat.branch3x3dbl_3b.conv.weight",
        "Mixed_7c.branch3x3dbl_3b.conv.weight",
    ),
    ("specs/squeezenet1_1.yaml", "fire5.branch2.expand3x3.bias", "features.7.expand3x3.bias"),
    ("specs/squeezenet1_1.yaml", "conv10.weight", "classifier.1.weight"),
    ("specs/vgg16.yaml", "features17.conv_relu.1.conv.bias", "features.21.bias"),
    ("specs/vgg19.yaml", "features28.conv_relu.2.conv.weight", "features.34.weight"),
    ("specs/vgg16_bn.yaml", "features24.bn.running_mean", "features.25.running_mean"),
    ("specs/vgg16_bn.yaml", "features34.conv_bn_relu.1.bn.weight", "features.41.weight"),
    ("specs/vgg11.yaml", "classifier.fc3.weight", "classifier.6.weight"),
    ("specs/alexnet.yaml", "conv5.bias", "features.10.bias"),
    ("specs/alexnet.yaml", "classifier.fc1.weight", "classifier.1.weight"),
]


@pytest.mark.parametrize("spec,ours,theirs", NAMES, ids=[n[1] for n in NAMES])
def test_torchvision_names(spec, ours, theirs):
    model = compile_spec(spec)
    assert mapping_for(model).names(torch_shapes(model))[ours] == theirs


# MobileNetV3: torchvision's positional names are renamed to archc's by checkpoint_rules (see the mapping file)
CHECKPOINT_NAMES = [
    ("specs/mobilenet_v3_large.yaml", "features.0.0.weight", "stem.conv.weight"),
    ("specs/mobilenet_v3_large.yaml", "features.1.block.0.0.weight", "bneck1.dw.conv.weight"),
    ("specs/mobilenet_v3_large.yaml", "features.1.block.1.1.bias", "bneck1.project.bn.bias"),
    ("specs/mobilenet_v3_small.yaml", "features.1.block.1.fc1.weight", "bneck1.se.branch2.fc1.weight"),
    ("specs/mobilenet_v3_small.yaml", "features.1.block.2.1.bias", "bneck1.project.bn.bias"),
    ("specs/mobilenet_v3_large.yaml", "features.4.block.0.0.weight", "bneck4.expand.conv.weight"),
    ("specs/mobilenet_v3_large.yaml", "features.4.block.1.1.running_mean", "bneck4.dw.bn.running_mean"),
    ("specs/mobilenet_v3_large.yaml", "features.4.block.2.fc2.bias", "bneck4.se.branch2.fc2.bias"),
    ("specs/mobilenet_v3_large.yaml", "features.4.block.3.0.weight", "bneck4.project.conv.weight"),
    ("specs/mobilenet_v3_large.yaml", "features.7.block.2.1.running_var", "bneck7.project.bn.running_var"),
    ("specs/mobilenet_v3_large.yaml", "features.12.block.3.1.weight", "bneck12.project.bn.weight"),
    ("specs/mobilenet_v3_large.yaml", "features.16.1.weight", "lastconv.bn.weight"),
    ("specs/mobilenet_v3_small.yaml", "features.12.0.weight", "lastconv.conv.weight"),
    ("specs/mobilenet_v3_small.yaml", "classifier.0.weight", "classifier.fc1.weight"),
    ("specs/mobilenet_v3_small.yaml", "classifier.3.bias", "classifier.fc2.bias"),
]


@pytest.mark.parametrize("spec,theirs,ours", CHECKPOINT_NAMES, ids=[f"{n[0][6:-5]}:{n[1]}" for n in CHECKPOINT_NAMES])
def test_torchvision_checkpoint_names(spec, theirs, ours):
    model = compile_spec(spec)
    mapping = mapping_for(model)
    assert mapping.checkpoint_names([theirs])[theirs] == ours
    assert mapping.names(torch_shapes(model))[ours] == ours


def test_every_mapping_file_loads_and_names_its_models():
    folder = ROOT / "archc" / "stdlib" / "torchvision"
    files = sorted(folder.glob("*.yaml"))
    assert [f.stem for f in files] == [
        "alexnet",
        "convnext",
        "densenet",
        "efficientnet",
        "fpn",
        "inception",
        "inception_v3",
        "mobilenetv2",
        "mobilenetv3",
        "regnet",
        "resnet",
        "segmentation",
        "shufflenetv2",
        "squeezenet",
        "vgg",
        "video_resnet",
    ]
    for f in files:
        assert (ROOT / "archc" / "stdlib" / f.name).is_file()  # next to a family of the same name
        m = load_mapping(f)
        assert m.models and m.rules


def test_every_model_a_mapping_names_is_checked_here():
    from tests.test_segmentation import MODELS  # segmentation models: their dicts are checked there
    from tests.test_zoo_ranks import VIDEO  # the video ResNets: their clips are checked there

    builders = {b for _, _, b, _ in CASES.values()} | set(VIDEO) | set(MODELS.values())
    for f in sorted((ROOT / "archc" / "stdlib" / "torchvision").glob("*.yaml")):
        assert set(load_mapping(f).models) <= builders, f.name


def test_a_spec_without_a_torchvision_family_is_refused(cli, tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(1)}, tmp_path / "x.pt")
    r = cli("convert-weights", "specs/mobilenet_v1.yaml", tmp_path / "x.pt", tmp_path / "o.pt", "--from", "torchvision")
    assert r.code == 2
    assert "spec 'mobilenet_v1' uses no archc family with torchvision names (families used: mobilenet;" in r.err
    assert not (tmp_path / "o.pt").exists()


def test_a_key_no_rule_matches_is_a_mapping_error(write_yaml):
    spec = write_yaml(
        "extends: " + str(ROOT / "specs" / "resnet18.yaml") + "\n"
        "network:\n"
        "  - conv: {name: conv1, out: 64, kernel: 7, stride: 2, padding: 3, bias: false}\n"
        "  - bn: {name: stem_extra_bn}\n"
        "  - basic_stage: {name: layer1, planes: 64, blocks: 2}\n"
        "top:\n"
        "  - gap: {name: avgpool}\n"
        "  - dense: {name: fc, out: 10}\n"
    )
    model = compile_spec(str(spec))
    with pytest.raises(ArchcError, match="torchvision mapping has no rule for 'stem_extra_bn.weight'"):
        mapping_for(model).names(torch_shapes(model))


def test_rule_templates_are_integer_arithmetic_only():
    import re

    ok = Rule(re.compile(r"^a\.(\d+)\.(\d+)"), r"b.{\1 * 10 + \2 - 1}", "t")
    assert ok.apply("a.3.4.weight") == "b.33.weight"
    for bad in (r"{__import__('os')}", r"{\1 / 2}", r"{\1 + 1.5}"):
        with pytest.raises(ArchcError, match="is not integer arithmetic"):
            Rule(re.compile(r"^a\.(\d+)"), bad, "t").apply("a.3.w")
    clash = Mapping("torchvision", "x", "f", ("m",), (Rule(re.compile(r"\.\w+$"), ".w", "t"),), ())
    with pytest.raises(ArchcError, match="sends both 'a.x' and 'a.y' to 'a.w'"):
        clash.names(["a.x", "a.y"])


def test_convnext_stochastic_depth_follows_torchvisions_ramp(torchvision):
    """torchvision raises the drop probability linearly over ConvNeXt's 18 blocks; archc's repeat has no loop
    index, so each stage's first block has torchvision's probability and the others share their mean (the
    deviation specs/convnext_tiny.yaml states; the expected sum over the network is kept)."""
    from archc import ir

    stages = [
        m for m in torchvision.models.convnext_tiny(weights=None).features if len(m) and hasattr(m[0], "layer_scale")
    ]
    theirs = [[b.stochastic_depth.p for b in stage] for stage in stages]
    model = compile_spec("specs/convnext_tiny.yaml", ["size=32"])
    ours = [n for n in ir.walk(model.body) if isinstance(n, ir.Op) and n.op == "stochastic_depth"]
    assert [len(t) for t in theirs] == [3, 3, 9, 3] and len(ours) == 18
    for k, t in enumerate(theirs, start=1):
        mine = [n.attr("p") for n in ours if n.path.startswith(f"stage{k}.")]
        assert mine[0] == pytest.approx(t[0], abs=1e-12)
        assert mine[1:] == pytest.approx([sum(t[1:]) / len(t[1:])] * len(t[1:]), abs=1e-12)
    assert theirs[3][2] == pytest.approx(0.1) and sum(n.attr("p") for n in ours) == pytest.approx(sum(map(sum, theirs)))


def test_report_worst_errors():
    """Runs last in this file: the worst relative error per case, size and backend."""
    lines = [f"torchvision {k[0]:<22} {k[1]:>4}  {k[2]:<6} {WORST[k]:.2e}" for k in sorted(WORST, key=str)]
    print("\n".join(lines))
    keep_report("torchvision", lines)

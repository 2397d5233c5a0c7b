"""Models with several or dict outputs against torchvision: torchvision.models.segmentation's (weights=None,
weights_backbone=None, aux_loss=False) and the ResNet-50-FPN backbone of its detectors
(detection.backbone_utils.resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=BatchNorm2d,
trainable_layers=5)).

For each spec: the counts equal torchvision's model's; torchvision's model with random weights and random BN
statistics -> ``torch.save(state_dict)`` -> ``archc convert-weights ... --from torchvision`` -> the generated PyTorch
model (.pt) and Keras model (.weights.h5) -> the same outputs (a dict, as torchvision's, its keys in its order) at
the spec's size and at another (a segmentation model's final resize follows the size it is called with). PyTorch
in float32 against torchvision's float32 (the same operations: <= 1e-5 relative); Keras in float64 against
torchvision's float64 copy (the same float32 weights, exactly representable: a right mapping agrees to float64
rounding, <= 1e-9).
"""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest

from archc.convert import load_generated
from archc.pipeline import compile_spec
from tests.test_torchvision import keras_floatx, randomize, rel_err

TORCH_TOL = 1e-5
FLOAT64_TOL = 1e-9
SIZE, OTHER = 64, 97  # the spec built at SIZE; called at SIZE and OTHER (PyTorch), built at OTHER too (Keras)

# stem -> torchvision builder (torchvision.models.segmentation, or the FPN backbone's)
MODELS = {
    "fcn_resnet50": "fcn_resnet50",
    "deeplabv3_resnet50": "deeplabv3_resnet50",
    "deeplabv3_mobilenet_v3_large": "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large": "lraspp_mobilenet_v3_large",  # (it has no aux_loss argument)
    "resnet50_fpn": "resnet_fpn_backbone",
}
KEYS = {"resnet50_fpn": ["0", "1", "2", "3", "pool"]}  # the outputs' names (segmentation: "out")


def build_reference(torchvision, stem: str):
    import torch

    if stem == "resnet50_fpn":
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

        return resnet_fpn_backbone(
            backbone_name="resnet50", weights=None, norm_layer=torch.nn.BatchNorm2d, trainable_layers=5
        )
    builder = getattr(torchvision.models.segmentation, MODELS[stem])
    aux = {} if stem.startswith("lraspp") else {"aux_loss": False}
    return builder(weights=None, weights_backbone=None, **aux)


@pytest.fixture(scope="module")
def reference(torchvision, tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("segmentation")
    made: dict = {}

    def get(stem: str):
        if stem not in made:
            made.clear()  # one model in memory at a time
            torch.manual_seed(0)
            net = randomize(build_reference(torchvision, stem), seed=1)
            ckpt = folder / f"{stem}.pt"
            torch.save(net.state_dict(), ckpt)
            made[stem] = (net, ckpt)
        return made[stem]

    return get


def _outputs(net, x, stem):
    """The outputs, concatenated flat in their order (their names checked)."""
    import torch

    with torch.no_grad():
        y = net(torch.from_numpy(x))
    assert list(y) == KEYS.get(stem, ["out"])
    return np.concatenate([v.numpy().reshape(len(x), -1) for v in y.values()], axis=1)


def _input(size: int, dtype=np.float32):
    return np.random.default_rng(size).normal(size=(2, 3, size, size)).astype(dtype)


@pytest.mark.parametrize("stem", sorted(MODELS))
def test_counts_are_torchvisions(stem, reference):
    from archc.analysis import analyze

    net, _ = reference(stem)
    report = analyze(compile_spec(f"specs/{stem}.yaml"))
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert (report.trainable, report.non_trainable) == (params, stats)


@pytest.mark.parametrize("stem", sorted(MODELS))
def test_from_torchvision_to_generated_torch_at_two_sizes(stem, reference, cli, tmp_path):
    import torch

    net, ckpt = reference(stem)
    dst = tmp_path / "generated.pt"
    r = cli("convert-weights", f"specs/{stem}.yaml", ckpt, dst, "--from", "torchvision", "--set", f"size={SIZE}")
    assert r.code == 0, r.err
    model = compile_spec(f"specs/{stem}.yaml", [f"size={SIZE}"])
    ours = load_generated(model, "torch").build_model()
    ours.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    ours.eval()
    for size in (SIZE, OTHER):  # built for SIZE; the resize to the input follows the size it is called with
        x = _input(size)
        ref, y = _outputs(net, x, stem), _outputs(ours, x, stem)
        assert y.shape == ref.shape
        assert rel_err(ref[0], ref[1]) > 1e-3  # two inputs give two outputs: the comparison can fail
        assert rel_err(ref, y) <= TORCH_TOL


@pytest.mark.parametrize("stem", sorted(MODELS))
def test_from_torchvision_to_generated_keras_at_two_sizes(stem, reference, cli, tmp_path):
    pytest.importorskip("keras")

    net, ckpt = reference(stem)
    net64 = copy.deepcopy(net).double()
    for size in (SIZE, OTHER):
        h5 = tmp_path / f"generated_{size}.weights.h5"
        argv = ["convert-weights", f"specs/{stem}.yaml", ckpt, h5, "--from", "torchvision", "--set", f"size={size}"]
        r = cli(*argv)
        assert r.code == 0, r.err
        x = _input(size, np.float64)
        ref = _outputs(net64, x, stem)
        with keras_floatx("float64"):
            kmodel = load_generated(compile_spec(f"specs/{stem}.yaml", [f"size={size}"]), "keras").build_model()
            kmodel.load_weights(h5)
            y = kmodel(x.transpose(0, 2, 3, 1), training=False)
        keys = KEYS.get(stem, ["out"])
        assert sorted(y) == sorted(keys)
        y = np.concatenate([np.moveaxis(np.asarray(y[k]), -1, 1).reshape(len(x), -1) for k in keys], axis=1)
        assert y.shape == ref.shape
        assert rel_err(ref, y) <= FLOAT64_TOL


# aux=true: the auxiliary FCN head, equal to torchvision's with aux_loss=True (a training output here, as every
# archc head: compared in training mode with BN and dropout modules in eval, their running statistics and no drop)
AUX = ["fcn_resnet50", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large"]


@pytest.mark.parametrize("stem", AUX)
def test_aux_head_equals_torchvisions_aux_loss(stem, torchvision, cli, tmp_path):
    import torch

    torch.manual_seed(0)
    builder = getattr(torchvision.models.segmentation, MODELS[stem])
    net = randomize(builder(weights=None, weights_backbone=None, aux_loss=True), seed=1)
    ckpt, dst = tmp_path / "tv.pt", tmp_path / "generated.pt"
    torch.save(net.state_dict(), ckpt)
    sets = [f"size={SIZE}", "aux=true"]
    argv = ["convert-weights", f"specs/{stem}.yaml", ckpt, dst, "--from", "torchvision"]
    r = cli(*argv, *(a for s in sets for a in ("--set", s)))
    assert r.code == 0, r.err
    model = compile_spec(f"specs/{stem}.yaml", sets)
    ours = load_generated(model, "torch").build_model()
    ours.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    ours.train()
    for m in ours.modules():  # training mode's outputs, with running statistics and no dropout
        if isinstance(m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.Dropout)):
            m.eval()
    x = _input(OTHER)
    with torch.no_grad():
        ref, y = net(torch.from_numpy(x)), ours(torch.from_numpy(x))
    assert list(ref) == list(y) == ["out", "aux"]
    for key in ("out", "aux"):
        assert rel_err(ref[key].numpy(), y[key].numpy()) <= TORCH_TOL, key
    if importlib.util.find_spec("keras") is None:
        return
    # the Keras twin: a functional model returns every output (the aux head too) whatever the mode; in inference
    # mode (BN on its statistics, dropout off) against torchvision's float64 copy
    h5 = tmp_path / "generated.weights.h5"
    r = cli(*argv[:3], h5, *argv[4:], *(a for s in sets[1:] for a in ("--set", s)), "--set", f"size={OTHER}")
    assert r.code == 0, r.err
    net64 = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        ref = net64(torch.from_numpy(x.astype(np.float64)))
    with keras_floatx("float64"):
        kmodel = load_generated(compile_spec(f"specs/{stem}.yaml", [f"size={OTHER}", "aux=true"]), "keras")
        kmodel = kmodel.build_model()
        kmodel.load_weights(h5)
        yk = kmodel(x.astype(np.float64).transpose(0, 2, 3, 1), training=False)
    assert sorted(yk) == ["aux", "out"]
    for key in ("out", "aux"):
        assert rel_err(ref[key].numpy(), np.moveaxis(np.asarray(yk[key]), -1, 1)) <= FLOAT64_TOL, key

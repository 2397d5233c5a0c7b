"""The zoo beyond 2-D classifiers, each against an independent reference.

* r3d_18, mc3_18, r2plus1d_18: torchvision's video ResNets (counts and MACs against torchvision's own, read live;
  torchvision's model with random weights and BN statistics -> ``torch.save`` -> ``archc convert-weights
  --from torchvision`` -> the generated PyTorch and Keras models compute torchvision's logits, at two clip sizes).
* m5, dcgan_generator, conv_autoencoder: PyTorch modules written by hand from their papers (tests/references/):
  counts equal, and given the reference's weights (by name, or in order where the reference keeps its source's
  names) the generated PyTorch model computes the reference's outputs, float64; the generated Keras model computes
  the generated PyTorch model's (tests/rank_parity.py).
* Inception-ResNet-v2 (keras.applications): tests/test_keras_applications.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("keras")

from archc.analysis import analyze  # noqa: E402
from archc.convert import load_generated  # noqa: E402
from archc.pipeline import compile_spec  # noqa: E402
from tests.rank_parity import parity, randomize_torch  # noqa: E402
from tests.references.autoencoder import ConvAutoencoder  # noqa: E402
from tests.references.dcgan import DCGANGenerator  # noqa: E402
from tests.references.m5 import M5  # noqa: E402
from tests.references.unet import UNet  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ("r3d_18", "mc3_18", "r2plus1d_18")
CLIPS = ((4, 32), (3, 40))  # (frames, height = width): small clips, and another size (the nets pool adaptively)
TORCH_TOL = 1e-5  # float32 torchvision vs float32 generated PyTorch: the same ops in the same order
KERAS_TOL = 1e-4  # float32 TensorFlow kernels vs PyTorch's, 18 layers with random BN statistics (seen: < 1e-6)


def spec(stem: str) -> str:
    return str(ROOT / "specs" / f"{stem}.yaml")


def rel_err(ref, other) -> float:
    ref, other = np.asarray(ref, np.float64), np.asarray(other, np.float64)
    return float(np.abs(ref - other).max() / max(np.abs(ref).max(), 1e-300))


@pytest.mark.parametrize("stem", VIDEO)
def test_video_resnet_counts_and_macs_are_torchvisions(stem, torchvision):
    net = torchvision.models.get_model_builder(stem)(weights=None)
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    report = analyze(compile_spec(spec(stem)))  # 16 x 112 x 112, torchvision's clips
    assert (report.trainable, report.non_trainable) == (params, stats)
    ops = torchvision.models.get_model_weights(stem).DEFAULT.meta["_ops"]  # GFLOPS as torchvision counts MACs
    assert round(report.macs / 1e9, 3) == pytest.approx(ops, abs=1.5e-3), (report.macs, ops)


@pytest.mark.parametrize("stem", VIDEO)
def test_video_resnet_from_torchvision(stem, torchvision, cli, tmp_path):
    """torchvision's checkpoint in, through the command line, into both generated models."""
    from archc.convert import set_keras_weights, torch_to_keras

    torch.manual_seed(0)
    ref = torchvision.models.get_model_builder(stem)(weights=None).eval()
    randomize_torch(ref, seed=1)
    ckpt = tmp_path / f"{stem}.pth"
    torch.save(ref.state_dict(), ckpt)
    for clip, size in CLIPS:
        sets = [f"clip={clip}", f"size={size}"]
        out = tmp_path / f"{stem}_{clip}_{size}.pt"
        argv = ["convert-weights", spec(stem), ckpt, out, "--from", "torchvision"]
        r = cli(*argv, *[a for s in sets for a in ("--set", s)])
        assert r.code == 0, r.err
        model = compile_spec(spec(stem), sets)
        net = load_generated(model, "torch").build_model().eval()
        net.load_state_dict(torch.load(out, weights_only=True), strict=True)
        x = np.random.default_rng(clip).normal(size=(2, 3, clip, size, size)).astype(np.float32)
        with torch.no_grad():
            y_ref = ref(torch.from_numpy(x)).numpy()
            y = net(torch.from_numpy(x)).numpy()
        assert rel_err(y_ref[0], y_ref[1]) > 1e-3  # the logits depend on the input: the check can fail
        assert rel_err(y_ref, y) <= TORCH_TOL
        kmodel = load_generated(model, "keras").build_model()
        set_keras_weights(kmodel, torch_to_keras(model, net.state_dict()))
        y_keras = np.asarray(kmodel(np.moveaxis(x, 1, -1), training=False))
        assert rel_err(y_ref, y_keras) <= KERAS_TOL


def _load_in_order(net, ref) -> None:
    """The reference's tensors into the generated model, in order (the reference keeps its source's names)."""
    ours, theirs = net.state_dict(), ref.state_dict()
    assert [tuple(t.shape) for t in ours.values()] == [tuple(t.shape) for t in theirs.values()]
    net.load_state_dict(dict(zip(ours, theirs.values())), strict=True)


# stem -> (the reference, --set overrides, input (N, C, *spatial), tensors by name or in order)
REFERENCES = {
    "m5": (lambda: M5(classes=10), ["length=8000"], (2, 1, 8000), "name"),
    "dcgan_generator": (lambda: DCGANGenerator(nz=100, ngf=64, nc=3), [], (2, 100, 1, 1), "order"),
    "conv_autoencoder": (lambda: ConvAutoencoder(channels=1), [], (2, 1, 28, 28), "order"),
    # references by name (each skip a `from:`); built at 32 x 32, called at 48 x 32 too (any multiple of 16)
    "unet": (lambda: UNet(channels=3, classes=2, width=8), ["width=8", "size=32"], (2, 3, 48, 32), "name"),
}


@pytest.mark.parametrize("stem", sorted(REFERENCES))
def test_generated_torch_equals_the_hand_written_reference(stem):
    make, sets, shape, pairing = REFERENCES[stem]
    ref = make().double().eval()
    randomize_torch(ref, seed=2)
    model = compile_spec(spec(stem), sets)
    report = analyze(model)
    params = sum(p.numel() for p in ref.parameters())
    stats = sum(b.numel() for n, b in ref.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert (report.trainable, report.non_trainable) == (params, stats)
    net = load_generated(model, "torch").build_model().double().eval()
    if pairing == "name":
        net.load_state_dict(ref.state_dict(), strict=True)
    else:
        _load_in_order(net, ref)
    x = torch.from_numpy(np.random.default_rng(3).normal(size=shape))
    with torch.no_grad():
        y_ref, y = ref(x).numpy(), net(x).numpy()
    assert y.shape == y_ref.shape
    assert rel_err(y_ref[0], y_ref[1]) > 1e-6  # two inputs give two outputs: the comparison can fail
    assert rel_err(y_ref, y) <= 1e-12  # float64, the same operations


@pytest.mark.parametrize("stem", sorted(REFERENCES))
def test_generated_keras_equals_generated_torch(stem, tmp_path):
    _, sets, _, _ = REFERENCES[stem]
    _, _, err = parity(spec(stem), sets)
    assert err <= 1e-12  # float64 (tests/rank_parity.py)

"""A dotted path that reaches inside a block call (``outputs: {c2: layer1.first}``, ``from: backbone.layer3``).

The call is built as a named seq of its block's body (``archc.lower.Lowerer.open_call``): the weights keep their
names, the forward calls the body's items in turn and keeps what references read. Checked against torchvision's
ResNet-18 (its ``layer1[0]``, ``layer2[0]``, ``layer4`` outputs, from a torchvision checkpoint converted by
``convert-weights``), against the same network built without the reference (the same state_dict names), and
PyTorch against Keras in float64 for a small network whose blocks are opened at two depths.
"""

from __future__ import annotations

import numpy as np
import pytest

from archc.convert import load_generated
from archc.pipeline import compile_spec
from tests.test_torchvision import keras_floatx, randomize, rel_err

torch = pytest.importorskip("torch")

TORCH_TOL = 1e-5  # the same float32 operations in the same order as torchvision's (seen: 0)
FLOAT64_TOL = 1e-9  # Keras float64 against torchvision's float64 copy (seen: 1e-15)
SIZE = 64
TAPS = ["include_top=false", "outputs={s1: layer1.first, s2: layer2.first, s4: layer4}"]


def _torchvision_taps(net, x):
    """torchvision's ResNet-18, run by hand to the outputs the spec taps: layer1[0], layer2[0], layer4."""
    with torch.no_grad():
        y = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        s1 = net.layer1[0](y)
        s2 = net.layer2[0](net.layer1[1](s1))
        s4 = net.layer4(net.layer3(net.layer2[1](s2)))
    return {"s1": s1, "s2": s2, "s4": s4}


@pytest.fixture(scope="module")
def resnet18(torchvision, tmp_path_factory):
    torch.manual_seed(0)
    net = randomize(torchvision.models.resnet18(), seed=1).eval()
    ckpt = tmp_path_factory.mktemp("open_calls") / "resnet18.pt"
    torch.save(net.state_dict(), ckpt)
    return net, ckpt


def test_taps_inside_block_calls_equal_torchvisions(resnet18, cli, tmp_path):
    net, ckpt = resnet18
    sets = [*TAPS, f"size={SIZE}"]
    dst = tmp_path / "generated.pt"
    r = cli("convert-weights", "specs/resnet18.yaml", ckpt, dst, "--from", "torchvision", *_sets(sets))
    assert r.code == 0, r.err
    ours = load_generated(compile_spec("specs/resnet18.yaml", sets), "torch").build_model()
    ours.load_state_dict(torch.load(dst, weights_only=True), strict=True)
    ours.eval()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 3, SIZE, SIZE)).astype(np.float32))
    ref = _torchvision_taps(net, x)
    with torch.no_grad():
        y = ours(x)
    assert list(y) == ["s1", "s2", "s4"]
    for k in ref:
        assert rel_err(ref[k][0].numpy(), ref[k][1].numpy()) > 1e-3  # two inputs, two outputs: it can fail
        assert rel_err(ref[k].numpy(), y[k].numpy()) <= TORCH_TOL, k

    pytest.importorskip("keras")
    h5 = tmp_path / "generated.weights.h5"
    r = cli("convert-weights", "specs/resnet18.yaml", ckpt, h5, "--from", "torchvision", *_sets(sets))
    assert r.code == 0, r.err
    import copy

    ref64 = _torchvision_taps(copy.deepcopy(net).double(), x.double())
    with keras_floatx("float64"):
        kmodel = load_generated(compile_spec("specs/resnet18.yaml", sets), "keras").build_model()
        kmodel.load_weights(h5)
        yk = kmodel(x.double().numpy().transpose(0, 2, 3, 1), training=False)
    for k in ref64:
        assert rel_err(ref64[k].numpy(), np.moveaxis(np.asarray(yk[k]), -1, 1)) <= FLOAT64_TOL, k


def test_an_opened_call_keeps_its_weights_names():
    plain = load_generated(compile_spec("specs/resnet18.yaml", ["include_top=false", "size=32"]), "torch")
    tapped = load_generated(compile_spec("specs/resnet18.yaml", [*TAPS, "size=32"]), "torch")
    a, b = plain.build_model().state_dict(), tapped.build_model().state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)


NESTED = """
name: nested_taps
input: {name: image, height: 16, width: 16, channels: 3}
params: {width: 4}
blocks:
  stage:
    params: {out: null, n: 2}
    body:
      - conv: {name: down, out: $out, kernel: 3, stride: 2, padding: 1, bias: false}
      - bn: {name: norm}
      - relu: {name: act}
      - repeat: {name: rest, times: $n, body: [conv: {out: $out, kernel: 3, padding: 1}, relu]}
  backbone:
    params: {w: null}
    body:
      - conv: {name: stem, out: $w, kernel: 3, padding: 1}
      - stage: {name: layer1, out: "${w * 2}"}
      - stage: {name: layer2, out: "${w * 4}", n: 1}
network:
  - backbone: {name: body, w: $width}
  - conv: {name: head, from: body.layer1.act, out: 3, kernel: 1}
  - upsample: {name: up, like: image, mode: bilinear}
outputs: {mask: up, c3: body.layer2, c2: body.layer2.down}
"""


def test_nested_opened_calls_agree_in_both_backends(tmp_path):
    from tests.rank_parity import parity

    path = tmp_path / "nested_taps.yaml"
    path.write_text(NESTED)
    _, _, err = parity(path, [])
    assert err <= 1e-12
    model = compile_spec(str(path))
    assert [n for n, _ in model.outputs] == ["mask", "c3", "c2"]
    from archc.backends import get_backend

    text = get_backend("torch").emit(model)
    assert "self.body.layer1.act(" in text  # the opened calls' items, called in turn


def test_a_call_that_cannot_be_opened_says_why(tmp_path, cli):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ninput: {height: 8, width: 8, channels: 3}\n"
        "blocks:\n  b:\n    body:\n      - residual:\n          body: [conv: {name: c, out: 3, kernel: 1}]\n"
        "network:\n  - b: {name: blk}\n  - relu: {from: blk.c}\n"
    )
    r = cli("check", path)
    assert r.code == 2
    first = r.err.splitlines()[0]
    assert first.startswith(f"{path}:10:"), r.err
    assert "'blk.c' reaches inside item 'blk', a block call" in first and "unnamed residual" in first


def _sets(sets):
    return [a for s in sets for a in ("--set", s)]

"""`archc convert-weights`: train in PyTorch, deploy with Keras (and back), from the command line."""

from __future__ import annotations

import importlib.util
import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from archc.cli import main as archc_main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load(backend: str, stem: str):
    s = importlib.util.spec_from_file_location(f"cw_{backend}_{stem}", ROOT / "generated" / backend / f"{stem}.py")
    m = importlib.util.module_from_spec(s)
    s.loader.exec_module(m)
    return m


def cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = archc_main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def random_torch(stem: str, seed: int):
    torch.manual_seed(seed)
    model = load("torch", stem).build_model()
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.normal_(0, 0.1)
            elif name.endswith("running_var"):
                b.uniform_(0.5, 1.5)
    return model.eval()


def test_round_trip_googlenet(tmp_path):
    """GoogLeNet covers aux heads and a dense layer after a flatten (NCHW vs NHWC order)."""
    stem = "googlenet"
    tmodel = random_torch(stem, 0)
    pt = tmp_path / "googlenet.pt"
    torch.save(tmodel.state_dict(), pt)
    h5 = tmp_path / "googlenet.weights.h5"
    code, out, err = cli("convert-weights", f"specs/{stem}.yaml", pt, h5)
    assert code == 0, err
    kmodel = load("keras", stem).build_model()
    kmodel.load_weights(h5)
    x = np.random.default_rng(0).normal(size=(1, 224, 224, 3)).astype(np.float32)
    taps = {}
    for head, at in (("aux1", "inception4a"), ("aux2", "inception4d")):
        getattr(tmodel, at).register_forward_hook(lambda mod, inp, out, head=head: taps.__setitem__(head, out))
    with torch.no_grad():
        yt = tmodel(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
        aux_t = [tmodel.aux1(taps["aux1"]).numpy(), tmodel.aux2(taps["aux2"]).numpy()]  # heads, eval mode
    yk, *aux_k = (np.asarray(y) for y in kmodel(x, training=False))
    for a, b in zip([yt, *aux_t], [yk, *aux_k]):
        assert np.abs(a - b).max() / np.abs(a).max() < 1e-4
    back = tmp_path / "back.pth"
    code, out, err = cli("convert-weights", f"specs/{stem}.yaml", h5, back)
    assert code == 0, err
    state = torch.load(back, weights_only=True)
    original = tmodel.state_dict()
    assert set(state) == set(original)
    for k, v in original.items():
        assert (state[k].shape, state[k].dtype) == (v.shape, v.dtype), k
        if k.endswith("num_batches_tracked"):  # Keras keeps no batch counter: a fresh one, a scalar as torch saves it
            assert state[k].item() == 0, k
        else:
            assert torch.equal(state[k], v), k
    load("torch", stem).build_model().load_state_dict(state)  # strict


def test_refuses_checkpoint_of_another_spec(tmp_path):
    pt = tmp_path / "mobilenet.pt"
    torch.save(random_torch("mobilenet_v1_025_160", 1).state_dict(), pt)
    code, out, err = cli("convert-weights", "specs/densenet121.yaml", pt, tmp_path / "x.weights.h5")
    assert code == 2
    assert err.startswith(f"{pt}:1:1: checkpoint does not fit spec 'densenet121'")
    assert "missing: " in err and "unexpected: " in err
    assert not (tmp_path / "x.weights.h5").exists()
    # same architecture, other width: names match but shapes do not
    code, out, err = cli("convert-weights", "specs/mobilenet_v1.yaml", pt, tmp_path / "y.weights.h5")
    assert code == 2 and "mis-shaped: " in err and "spec needs" in err


def test_refuses_garbage_and_wrong_directions(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    code, out, err = cli("convert-weights", "specs/mobilenet_v1.yaml", junk, tmp_path / "z.weights.h5")
    assert code == 2 and err.startswith(f"{junk}:1:1: cannot read PyTorch checkpoint")
    code, out, err = cli("convert-weights", "specs/mobilenet_v1.yaml", junk, tmp_path / "z.onnx")
    assert code == 2 and "convert one framework's checkpoint into another's: " in err
    assert ".pt/.pth (torch)" in err and ".weights.h5 (keras)" in err  # each backend's checkpoint files
    code, out, err = cli("convert-weights", "specs/mobilenet_v1.yaml", tmp_path / "none.pt", tmp_path / "z.weights.h5")
    assert code == 2 and "no such file" in err


@pytest.mark.parametrize("stem", ["resnet18", "inception_v3"])
def test_a_checkpoint_of_archc_0_1_names_is_renamed(tmp_path, stem):
    """archc 0.1 gave a level of one item a level of its own (``layer1.rest.0.block.conv1.weight``,
    ``Mixed_5b.branch1.branch1x1.conv.weight``, ``AuxLogits.head.conv0.conv.weight``). A state_dict saved from the
    model 0.1 generated is renamed into today's (.pt -> .pt), and converts to Keras directly; the model 0.1 emitted
    is built here from the spec the 0.1 way (archc.lower.ONE_ITEM_LEVELS), not from names written in this test."""
    from archc.backends import get_backend

    from archc.lower import ONE_ITEM_LEVELS
    from archc.pipeline import compile_spec

    spec = f"specs/{stem}.yaml"
    token = ONE_ITEM_LEVELS.set(False)
    try:
        source = get_backend("torch").emit(compile_spec(spec))
    finally:
        ONE_ITEM_LEVELS.reset(token)
    path = tmp_path / f"old_{stem}.py"
    path.write_text(source)
    s = importlib.util.spec_from_file_location(f"cw_old_{stem}", path)
    old_module = importlib.util.module_from_spec(s)
    s.loader.exec_module(old_module)
    torch.manual_seed(3)
    old = old_module.build_model().eval()
    old_state = old.state_dict()
    new = load("torch", stem).build_model().eval()
    new_keys = list(new.state_dict())
    moved = set(old_state) - set(new_keys)
    assert moved and len(old_state) == len(new_keys)  # the names did change, not the tensors
    assert any(".block." in k or ".branch1.branch1x1." in k for k in moved)
    pt = tmp_path / "old.pt"
    torch.save(old_state, pt)
    code, out, err = cli("convert-weights", spec, pt, tmp_path / "new.pt")
    assert code == 0, err
    assert "renamed" in out and "earlier archc" in out
    new.load_state_dict(torch.load(tmp_path / "new.pt"), strict=True)
    size = 75 if stem == "inception_v3" else 64
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(old(x), new(x))  # the same tensors in the same places: bit for bit
    code, out, err = cli("convert-weights", spec, pt, tmp_path / "new.weights.h5")
    assert code == 0, err
    kmodel = load("keras", stem).build_model(input_shape=(size, size, 3))
    kmodel.load_weights(tmp_path / "new.weights.h5")
    # a checkpoint with today's names is not renamed, and .pt -> .pt is then refused
    code, out, err = cli("convert-weights", spec, tmp_path / "new.pt", tmp_path / "again.pt")
    assert code == 2 and "SRC has this model's" in err
    assert not (tmp_path / "again.pt").exists()

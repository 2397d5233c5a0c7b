"""The transfer-learning tutorial's examples (docs/tutorials/transfer-learning.md), run as written: one per framework.

In a temporary folder (with ``specs`` linked to the repository's): the source checkpoint is made with random
weights (torchvision's resnet50() state_dict; keras.applications.DenseNet169(weights=None)'s weights), then the
the page's `archc` commands run (in this process) and its Python block is executed. One optimizer step must
change the new head and leave the trunk exactly as loaded (its weights and its BN statistics).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
PAGE = "docs/tutorials/transfer-learning.md"


def blocks() -> dict[str, tuple[list[str], str]]:
    """framework -> (its `archc` command lines, its Python block), from the transfer-learning tutorial."""
    section = (ROOT / PAGE).read_text(encoding="utf-8")
    found = re.findall(r"```(sh|python)\n(.*?)```", section, re.S)
    assert [lang for lang, _ in found] == ["sh", "python", "sh", "python"], "two examples: commands, then Python"
    out = {}
    for (_, sh), (_, py) in zip(found[::2], found[1::2], strict=True):
        framework = "torch" if "--backend torch" in sh else "keras"
        out[framework] = ([line for line in sh.splitlines() if line.strip()], py)
    assert sorted(out) == ["keras", "torch"]
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("resnet50_features", "densenet169_features"):
        sys.modules.pop(name, None)


def run_commands(lines: list[str]) -> None:
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "archc", line
        r = run_cli(*argv[1:])
        assert r.code == 0, f"{line}\n{r.err}"


def test_pytorch_example(workdir, torchvision):
    import torch
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), "resnet50.pth")  # random weights, torchvision's names
    commands, code = blocks()["torch"]
    run_commands(commands)
    before = {}

    def snapshot(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            for p in group["params"]:
                before[id(p)] = p.detach().clone()

    hook = register_optimizer_step_pre_hook(snapshot)
    try:
        ns: dict = {}
        exec(compile(code, f"{PAGE} (PyTorch)", "exec"), ns)
    finally:
        hook.remove()
    base, head = ns["base"], ns["head"]
    loaded = torch.load("features.pt")
    state = base.state_dict()
    assert sorted(state) == sorted(loaded) and not any(k.startswith("fc.") for k in state)
    for k, v in loaded.items():  # the trunk: as loaded, BN statistics too
        assert torch.equal(state[k], v), k
    assert all(p.grad is None for p in base.parameters())
    assert set(before) == {id(head.weight), id(head.bias)}
    assert not torch.equal(before[id(head.weight)], head.weight.detach())  # the head: one step taken
    assert ns["model"](torch.randn(2, 3, 224, 224)).shape == (2, 10)


def test_keras_example(workdir, monkeypatch):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    keras.applications.DenseNet169(weights=None).save_weights("densenet169.weights.h5")
    commands, code = blocks()["keras"]
    run_commands(commands)
    seen = {}
    train_on_batch = keras.Model.train_on_batch

    def spy(self, *args, **kwargs):
        seen["before"] = {id(v): np.array(v.numpy()) for v in self.weights}
        return train_on_batch(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "train_on_batch", spy)
    ns: dict = {}
    exec(compile(code, f"{PAGE} (Keras)", "exec"), ns)
    base, model = ns["base"], ns["model"]
    before = seen["before"]
    trunk = {id(v) for v in base.weights}
    head = [v for v in model.weights if id(v) not in trunk]
    assert len(head) == 2 and base.trainable_weights == []
    for v in base.weights:  # the trunk: as loaded (moving statistics too)
        np.testing.assert_array_equal(v.numpy(), before[id(v)], err_msg=v.path)
    assert any(not np.array_equal(v.numpy(), before[id(v)]) for v in head)  # the head: one step taken
    assert base.output.shape[1:] == (1664,) and model.output.shape[1:] == (10,)

"""README's table of the specs is the analysis' (tests/zoo_table.py), and its torchvision rows are torchvision's.

The live checks build each torchvision model on the meta device (no memory, no weights) for its parameter and
BN-statistics counts, and read its weights' metadata for the MACs (``_ops``: GFLOPS = multiply-accumulates of
convolutions and linear layers at the model's size, three decimals).
"""

from __future__ import annotations

import pytest

from archc.analysis import analyze
from archc.pipeline import compile_spec
from tests.zoo_table import ROOT, ROWS, main_macs, table, torchvision_builder

SPECS = sorted(p.stem for p in (ROOT / "specs").glob("*.yaml"))
TV_ROWS = [s for s in SPECS if torchvision_builder(s)]
# torchvision builder arguments where the spec's defaults are another configuration of the builder
BUILDER_KWARGS = {
    "googlenet_torchvision": {"aux_logits": True, "init_weights": False},
    "inception_v3": {"aux_logits": False},
}


def test_readme_holds_the_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert table() in readme, "README's table of the specs is stale: python -m tests.zoo_table"


def test_every_spec_has_a_row():
    assert sorted(ROWS) == SPECS


@pytest.mark.parametrize("stem", TV_ROWS)
def test_torchvision_rows_are_torchvisions(stem, torchvision):
    import torch

    builder = torchvision_builder(stem)
    build = torchvision.models.get_model_builder(builder)  # torchvision.models.video's too
    try:
        with torch.device("meta"):
            net = build(weights=None, **BUILDER_KWARGS.get(stem, {}))
    except NotImplementedError:  # RegNet's initialization reads its tensors: on the CPU (small models)
        net = build(weights=None, **BUILDER_KWARGS.get(stem, {}))
    params = sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    model = compile_spec(str(ROOT / "specs" / f"{stem}.yaml"))
    r = analyze(model)
    assert (r.trainable, r.non_trainable) == (params, stats)
    main = main_macs(model, r)
    weights = torchvision.models.get_model_weights(builder)
    ops = next(iter(weights)).meta["_ops"]
    assert round(main / 1e9, 3) == pytest.approx(ops, abs=1.5e-3), (main, ops)

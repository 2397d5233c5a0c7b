"""The zoo's table of the specs (docs/zoo/index.md, written by archc.docgen) is the analysis' (tests/zoo_table.py),
and the torchvision rows are torchvision's.

The live checks build each torchvision model on the meta device (no memory, no weights) for its parameter and
BN-statistics counts, and read its weights' metadata for the MACs (``_ops``: GFLOPS = multiply-accumulates of
convolutions and linear layers at the model's size, three decimals).
"""

from __future__ import annotations

import re

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
    "fcn_resnet50": {"weights_backbone": None, "aux_loss": False},
    "deeplabv3_resnet50": {"weights_backbone": None, "aux_loss": False},
    "deeplabv3_mobilenet_v3_large": {"weights_backbone": None, "aux_loss": False},
    "lraspp_mobilenet_v3_large": {"weights_backbone": None},
}
# torchvision's `_ops` of its segmentation weights count the auxiliary FCNHead(1024, 21) those weights were trained
# with (aux_loss=True), which the specs (aux_loss=False) do not have: at 520 px on layer3's 65 x 65 map, a 3x3 conv
# 1024 -> 256 and a 1x1 conv 256 -> 21 (torchvision.models.segmentation.fcn.FCNHead); on MobileNetV3's stride-8 tap
# (40 channels), 40 -> 10 -> 21
AUX_MACS = {stem: (3 * 3 * 1024 * 256 + 256 * 21) * 65 * 65 for stem in ("fcn_resnet50", "deeplabv3_resnet50")}
AUX_MACS["deeplabv3_mobilenet_v3_large"] = (3 * 3 * 40 * 10 + 10 * 21) * 65 * 65


def test_docs_hold_the_table():
    """Every spec has its row in the zoo's table, with the analysis' counts and MACs (as tests.zoo_table computes
    them), and no other row."""
    page = (ROOT / "docs" / "zoo" / "index.md").read_text(encoding="utf-8")
    shown = {}
    for line in page.splitlines():
        m = re.match(r"\| \[`(\w+)\.yaml`\]\(\1\.md\) \| .* \| ([\d,]+) \| ([\d,]+) \| ([\d.]+ G) \|$", line)
        if m:
            shown[m.group(1)] = " | ".join(m.groups()[1:])
    computed = {}
    for row in table().splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        computed[cells[0].strip("`").removesuffix(".yaml")] = " | ".join(cells[2:5])
    assert shown == computed, "docs/zoo/index.md is stale: python -m archc.docgen"


def test_every_row_is_a_spec():
    """What each spec is checked against (ROWS) names only specs there are; a new spec needs no row to be in the zoo
    (the docs' table is generated), only to be checked against a reference model here."""
    assert set(ROWS) <= set(SPECS)


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
    main = main_macs(model, r) + AUX_MACS.get(stem, 0)
    weights = torchvision.models.get_model_weights(builder)
    ops = next(iter(weights)).meta["_ops"]
    assert round(main / 1e9, 3) == pytest.approx(ops, abs=1.5e-3), (main, ops)

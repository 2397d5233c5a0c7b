"""torchvision's models and the generated PyTorch models at each model's own size (224; EfficientNet-B1 240;
Inception-v3 299; the aux heads of GoogLeNet and Inception-v3), one representative per family: the slow tier of
tests/test_torchvision.py, whose cases, checkpoints and helpers it uses, in a file of its own so that
`pytest -n 2 --dist loadfile` runs it beside that one. Without torchvision these tests skip.
"""

from __future__ import annotations

import pytest

from tests.conftest import keep_report
from tests.test_torchvision import CASES, TORCH_TOL, case, convert, full_size, rel_err, torch_logits  # noqa: F401

WORST: dict = {}  # (case, size, backend) -> relative error, printed at the end


# one representative per family at its own size (the guide's rule: full sizes for one per family; every case is
# checked at a small and an odd size in tests/test_torchvision.py): the deepest and largest sizes of a family add
# minutes (EfficientNet-B7 at 600 px) and no new code path
REPRESENTATIVES = [
    "resnet50",
    "densenet121",
    "googlenet_aux",
    "inception_v3_aux",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b1",
    "shufflenet_v2_x1_0",
    "regnet_y_400mf",
    "convnext_tiny",
    "squeezenet1_1",
    "vgg16_bn",
    "alexnet",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_torchvision_to_generated_torch_full_size(name, case, cli, tmp_path):  # noqa: F811 (the fixture)
    c = case(name)
    out = tmp_path / "generated.pt"
    full = full_size(name)
    convert(cli, c, out, full)
    _, ref = c.reference(full)
    err = rel_err(ref, torch_logits(c, full, out))
    WORST[(name, full, "torch")] = err
    assert err <= TORCH_TOL


def test_report_worst_errors():
    """Runs last in this file: the worst relative error per case at its full size."""
    lines = [f"torchvision {k[0]:<22} {k[1]:>4}  {k[2]:<6} {WORST[k]:.2e}" for k in sorted(WORST, key=str)]
    print("\n".join(lines))
    keep_report("torchvision-full", lines)

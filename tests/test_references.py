"""The hand-written reference modules (tests/references/) against figures independent of archc.

Each expected count is derived here, layer by layer, from the paper's (or source's) layer table, with the
arithmetic written out: a conv with a kernel of k elements has k * c_in * c_out weights (+ c_out biases), a
transposed conv as many (its weight is c_in x c_out x kernel), a BN 2 * c parameters and 2 * c running statistics,
a linear layer c_in * c_out + c_out. Output shapes are those the papers' tables give.
tests/test_zoo_ranks.py compares the specs (specs/m5.yaml, specs/unet.yaml, ...) with these modules.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tests.references.autoencoder import ConvAutoencoder  # noqa: E402
from tests.references.dcgan import DCGANGenerator  # noqa: E402
from tests.references.m5 import M5  # noqa: E402
from tests.references.unet import UNet  # noqa: E402


def params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def bn_stats(m) -> int:
    return sum(b.numel() for n, b in m.named_buffers() if n.endswith(("running_mean", "running_var")))


def test_m5_counts_from_table_1():
    # Dai et al. 2017, Table 1, M5: [80/4, 128], [3, 128], [3, 256], [3, 512], GAP, linear to the classes
    # (10 for UrbanSound8k); convs without bias, each followed by BN (2 params, 2 stats per channel).
    convs = (80 * 1 * 128) + (3 * 128 * 128) + (3 * 128 * 256) + (3 * 256 * 512)
    assert convs == 10_240 + 49_152 + 98_304 + 393_216 == 550_912
    bns = 2 * (128 + 128 + 256 + 512)
    assert bns == 2_048
    fc = 512 * 10 + 10
    m = M5(classes=10)
    assert params(m) == convs + bns + fc == 558_090  # the paper's "0.5M"
    assert bn_stats(m) == 2 * (128 + 128 + 256 + 512) == 2_048
    assert params(M5(classes=35)) == convs + bns + 512 * 35 + 35


def test_m5_lengths_from_table_1():
    # Table 1's lengths at 32000 samples: 8000 after the 80/4 conv, then 2000, 500, 125, 32 after the pools.
    m = M5(classes=10).eval()
    x = torch.randn(2, 1, 32000)
    with torch.no_grad():
        y = m.bn1(m.conv1(x))
        assert y.shape == (2, 128, 8000)
        assert m.features(x).shape == (2, 512, 32)
        assert m(x).shape == (2, 10)
    # padding 38 is TensorFlow's 'same' for the 80/4 conv at any length divisible by 4: total (L/4 - 1) * 4 + 80 - L
    for length in (32000, 16000, 8004):
        assert (length // 4 - 1) * 4 + 80 - length == 2 * 38


def test_dcgan_generator_counts_from_figure_1():
    # PyTorch DCGAN example (ngf 64): ConvTranspose2d 4x4 100->512, 512->256, 256->128, 128->64, 64->3, no bias;
    # BN after all but the last.
    convs = 100 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 64 * 16 + 64 * 3 * 16
    assert convs == 819_200 + 2_097_152 + 524_288 + 131_072 + 3_072 == 3_574_784
    bns = 2 * (512 + 256 + 128 + 64)
    g = DCGANGenerator()
    assert params(g) == convs + bns == 3_576_704
    assert bn_stats(g) == 1_920
    # Figure 1's widths (4x4x1024, 8x8x512, 16x16x256, 32x32x128, 64x64x3) are ngf = 128.
    fig1 = 100 * 1024 * 16 + 1024 * 512 * 16 + 512 * 256 * 16 + 256 * 128 * 16 + 128 * 3 * 16
    assert params(DCGANGenerator(ngf=128)) == fig1 + 2 * (1024 + 512 + 256 + 128) == 12_658_432


def test_dcgan_generator_shapes():
    g = DCGANGenerator(ngf=8).eval()
    z = torch.randn(2, 100, 1, 1)
    sizes = []
    with torch.no_grad():
        x = z
        for layer in g.main:
            x = layer(x)
            if isinstance(layer, torch.nn.ConvTranspose2d):
                sizes.append(tuple(x.shape[1:]))
    assert sizes == [(64, 4, 4), (32, 8, 8), (16, 16, 16), (8, 32, 32), (3, 64, 64)]
    assert x.min() >= -1 and x.max() <= 1  # tanh


def test_conv_autoencoder_counts_and_shapes():
    # encoder: 3x3/2 1->16, 3x3/2 16->32, 7x7 32->64; decoder: 7x7 64->32, 3x3/2 32->16, 3x3/2 16->1; all biased.
    encoder = (9 * 1 * 16 + 16) + (9 * 16 * 32 + 32) + (49 * 32 * 64 + 64)
    decoder = (49 * 64 * 32 + 32) + (9 * 32 * 16 + 16) + (9 * 16 * 1 + 1)
    assert encoder == 160 + 4_640 + 100_416 and decoder == 100_384 + 4_624 + 145
    ae = ConvAutoencoder().eval()
    assert params(ae) == encoder + decoder == 210_369
    assert bn_stats(ae) == 0
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        code = ae.encoder(x)
        y = ae(x)
    assert code.shape == (3, 64, 1, 1)
    assert y.shape == (3, 1, 28, 28)
    assert y.min() >= 0 and y.max() <= 1  # sigmoid
    assert params(ConvAutoencoder(channels=3)) == 210_369 + 9 * 2 * 16 + 9 * 16 * 2 + 2
    # any size divisible by 4 and >= 28 comes back: 32 -> 16 -> 8 -> a 2x2 code -> 8 -> 16 -> 32
    with torch.no_grad():
        assert ae.encoder(torch.rand(1, 1, 32, 32)).shape == (1, 64, 2, 2)
        assert ae(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)


def _unet_count(channels: int, classes: int, w: int) -> tuple[int, int]:
    """Parameters and BN statistics of the U-Net from the paper's Figure 1, 'same' variant with BN."""

    def double(cin, cout):  # two 3x3 convs without bias, each + BN (2 params per channel)
        return 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout

    def up(cin):  # 2x2 transposed conv cin -> cin / 2 with bias
        return 4 * cin * (cin // 2) + cin // 2

    enc = double(channels, w) + double(w, 2 * w) + double(2 * w, 4 * w) + double(4 * w, 8 * w) + double(8 * w, 16 * w)
    dec = (
        up(16 * w) + double(16 * w, 8 * w) + up(8 * w) + double(8 * w, 4 * w)
        + up(4 * w) + double(4 * w, 2 * w) + up(2 * w) + double(2 * w, w)
    )  # fmt: skip
    out = w * classes + classes
    stats = 4 * (w + 2 * w + 4 * w + 8 * w + 16 * w + 8 * w + 4 * w + 2 * w + w)  # 2 BNs per double conv
    return enc + dec + out, stats


def test_unet_counts_from_figure_1():
    # Written out for the paper's widths (64 .. 1024), 3 input channels and 2 classes:
    enc = 38_848 + 221_696 + 885_760 + 3_540_992 + 14_159_872  # inc, down1..down4
    assert 9 * 3 * 64 + 2 * 64 + 9 * 64 * 64 + 2 * 64 == 38_848
    assert 9 * 512 * 1024 + 2 * 1024 + 9 * 1024 * 1024 + 2 * 1024 == 14_159_872
    dec = (2_097_664 + 7_079_936) + (524_544 + 1_770_496) + (131_200 + 442_880) + (32_832 + 110_848)  # up1..up4
    assert 4 * 1024 * 512 + 512 == 2_097_664 and 9 * 1024 * 512 + 2 * 512 + 9 * 512 * 512 + 2 * 512 == 7_079_936
    expected = enc + dec + (64 * 2 + 2)
    assert expected == 31_037_698
    assert _unet_count(3, 2, 64) == (expected, 11_776)
    u = UNet(channels=3, classes=2, width=64)
    assert (params(u), bn_stats(u)) == (31_037_698, 11_776)
    u = UNet(channels=1, classes=3, width=8)
    assert (params(u), bn_stats(u)) == _unet_count(1, 3, 8)
    # the names specs/unet.yaml gives its items (its state_dict loads into this module by name)
    keys = set(u.state_dict())
    assert {"inc.conv1.weight", "down1.conv.bn2.running_var", "up1.up.weight", "up1.up.bias"} <= keys
    assert {"up4.conv.conv2.weight", "outc.weight", "outc.bias"} <= keys


def test_unet_shapes():
    u = UNet(channels=1, classes=3, width=4).eval()
    with torch.no_grad():
        assert u(torch.randn(2, 1, 32, 48)).shape == (2, 3, 32, 48)
        with pytest.raises(ValueError, match="divisible by 16"):
            u(torch.randn(1, 1, 40, 40))

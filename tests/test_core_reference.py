"""Parameter counts and MACs against published reference figures (independent evidence).

Counts: torchvision (num_params) and keras.applications (model.summary(), weights=None), as listed in
ARCHITECTURES.md. MACs: the "GFLOPS" column of torchvision's model docs (conv + linear multiply-accumulates
at 224x224) and the mult-adds of the MobileNet paper (Howard et al. 2017, tables 6 and 7).

The closed-form counters below are written from the papers' layer tables, not from archc's code; they are
first checked against the published figures, then used to predict the counts of variants (``--set``) that
have no published figure.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from archc.analysis import analyze
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@functools.cache
def report(stem: str, sets: tuple = ()):
    return analyze(compile_spec(str(SPECS / f"{stem}.yaml"), list(sets)))


# ------------------------------------------------------------------ published parameter counts
# (spec, --set overrides, trainable, non-trainable); non-trainable = BN running mean/variance.
REFERENCE = [
    ("densenet121", (), 7_978_856, 83_648),
    ("densenet161", (), 28_681_000, 219_936),
    ("densenet169", (), 14_149_480, 158_400),
    ("densenet201", (), 20_013_928, 229_056),
    ("mobilenet_v1", (), 4_231_976, 21_888),
    ("mobilenet_v1_050", (), 1_331_592, 10_944),
    ("mobilenet_v1_025_160", (), 470_072, 5_472),
    # torchvision 0.28 (ARCHITECTURES.md, "The zoo"): resnet18, resnet50 (v1.5), mobilenet_v2
    ("resnet18", (), 11_689_512, 9_600),
    ("resnet50", (), 25_557_032, 53_120),
    ("mobilenet_v2", (), 3_504_872, 34_112),
    # the same stdlib blocks give torchvision's other ResNets by their stage tables alone
    ("resnet18", ("layers=[3, 4, 6, 3]",), 21_797_672, 17_024),  # resnet34
    ("resnet50", ("layers=[3, 4, 23, 3]",), 44_549_160, 105_344),  # resnet101
    ("resnet50", ("groups=32", "base_width=4"), 25_028_904, 68_224),  # resnext50_32x4d
    ("resnet50", ("base_width=128",), 68_883_240, 68_224),  # wide_resnet50_2
    ("mobilenet_v1", ("alpha=0.75",), 2_585_560, 16_416),  # keras.applications MobileNet(alpha=0.75)
    # torchvision 0.28 (ARCHITECTURES.md, "The zoo"), their own spec files
    ("resnet34", (), 21_797_672, 17_024),
    ("resnet101", (), 44_549_160, 105_344),
    ("resnet152", (), 60_192_808, 151_424),
    ("resnext50_32x4d", (), 25_028_904, 68_224),
    ("wide_resnet50_2", (), 68_883_240, 68_224),
    ("inception_v3", ("aux=true",), 27_161_264, 36_224),
    # without the aux head (the spec's default): ARCHITECTURES.md's parameters; BN stats 36,224 less the aux head's
    # two BNs (128 + 768 channels, 2 statistics each) = keras.applications InceptionV3's non-trainable 34,432
    ("inception_v3", (), 23_834_568, 34_432),
    ("squeezenet1_1", (), 1_235_496, 0),
    ("vgg11", (), 132_863_336, 0),
    ("vgg16", (), 138_357_544, 0),
    ("vgg19", (), 143_667_240, 0),
    ("vgg16_bn", (), 138_365_992, 8_448),
    ("alexnet", (), 61_100_840, 0),
    # torchvision 0.28 (ARCHITECTURES.md, "The zoo"): ShuffleNetV2, RegNet, ConvNeXt
    ("shufflenet_v2_x1_0", (), 2_278_604, 16_180),
    ("shufflenet_v2_x1_0", ("stages_out_channels=[24, 48, 96, 192, 1024]",), 1_366_792, 7_952),  # x0_5
    ("regnet_y_400mf", (), 4_344_144, 27_152),
    ("regnet_x_400mf", (), 5_495_976, 37_856),
    ("convnext_tiny", (), 28_589_128, 0),
]
# GoogLeNet: trainable counts only (torchvision has no Keras twin to give non-trainable weights).
REFERENCE_TRAINABLE = [
    ("googlenet", (), 13_385_816),
    ("googlenet", ("aux=false",), 7_005_832),
    ("googlenet_torchvision", (), 13_004_888),
    ("googlenet_torchvision", ("aux=false",), 6_624_904),
]
# keras.applications model.summary() "Total params"
KERAS_TOTAL = [
    ("densenet121", 8_062_504),
    ("densenet169", 14_307_880),
    ("densenet201", 20_242_984),
    ("mobilenet_v1", 4_253_864),
    ("mobilenet_v1_050", 1_342_536),
    ("mobilenet_v1_025_160", 475_544),
]


def _id(stem, sets):
    return stem + "".join(f"[{s}]" for s in sets)


@pytest.mark.parametrize(
    ("stem", "sets", "trainable", "non_trainable"), REFERENCE, ids=[_id(*r[:2]) for r in REFERENCE]
)
def test_reference_counts_api(stem, sets, trainable, non_trainable):
    r = analyze(compile_spec(str(SPECS / f"{stem}.yaml"), list(sets)))
    assert (r.trainable, r.non_trainable) == (trainable, non_trainable)


@pytest.mark.parametrize(
    ("stem", "sets", "trainable", "non_trainable"), REFERENCE, ids=[_id(*r[:2]) for r in REFERENCE]
)
def test_reference_counts_cli(cli, stem, sets, trainable, non_trainable):
    argv = ["summary", SPECS / f"{stem}.yaml", "--json"]
    for s in sets:
        argv += ["--set", s]
    res = cli(*argv)
    assert res.code == 0, res.err
    j = res.json()
    assert j["trainable_params"] == trainable
    assert j["non_trainable_params"] == non_trainable
    assert j["total_params"] == trainable + non_trainable
    assert j["input"][2] == 3 and j["outputs"]["main"] == [1000]


@pytest.mark.parametrize(
    ("stem", "sets", "trainable"), REFERENCE_TRAINABLE, ids=[_id(*r[:2]) for r in REFERENCE_TRAINABLE]
)
def test_googlenet_trainable_with_and_without_aux(cli, stem, sets, trainable):
    assert report(stem, sets).trainable == trainable
    argv = ["summary", SPECS / f"{stem}.yaml", "--json"]
    for s in sets:
        argv += ["--set", s]
    j = cli(*argv).json()
    assert j["trainable_params"] == trainable
    heads = {"aux1", "aux2"} if not sets else set()
    assert set(j["outputs"]) == {"main"} | heads
    assert all(shape == [1000] for shape in j["outputs"].values())


@pytest.mark.parametrize(("stem", "total"), KERAS_TOTAL, ids=[r[0] for r in KERAS_TOTAL])
def test_keras_total_params(cli, stem, total):
    assert report(stem).total == total
    assert cli("summary", SPECS / f"{stem}.yaml", "--json").json()["total_params"] == total


# ------------------------------------------------------------------ published MACs
def test_densenet169_macs_published_range(cli):
    # torchvision documents DenseNet-169 at 3.36 GFLOPS (multiply-accumulates of conv + linear at 224x224)
    assert 3.3e9 <= report("densenet169").macs <= 3.45e9
    assert 3.3e9 <= cli("summary", SPECS / "densenet169.yaml", "--json").json()["macs"] <= 3.45e9


# torchvision "GFLOPS", given to two decimals (so +-0.005e9); aux heads are not run at inference
TORCHVISION_GMACS = [
    ("densenet121", (), 2.83),
    ("densenet161", (), 7.73),
    ("densenet169", (), 3.36),
    ("densenet201", (), 4.29),
    ("googlenet_torchvision", ("aux=false",), 1.50),
]


@pytest.mark.parametrize(("stem", "sets", "gmacs"), TORCHVISION_GMACS, ids=[_id(*r[:2]) for r in TORCHVISION_GMACS])
def test_macs_match_torchvision_docs(stem, sets, gmacs):
    assert abs(report(stem, sets).macs / 1e9 - gmacs) <= 0.005 + 1e-9


# MobileNet paper, mult-adds in millions (given to the million, so +-1e6)
MOBILENET_PAPER_MMACS = [
    ((), 569),
    (("alpha=0.75",), 325),
    (("alpha=0.5",), 149),
    (("alpha=0.25",), 41),
    (("size=192",), 418),
    (("size=160",), 290),
    (("size=128",), 186),
]


@pytest.mark.parametrize(
    ("sets", "mmacs"), MOBILENET_PAPER_MMACS, ids=[_id("mobilenet", r[0]) for r in MOBILENET_PAPER_MMACS]
)
def test_macs_match_mobilenet_paper(sets, mmacs):
    assert abs(report("mobilenet_v1", sets).macs / 1e6 - mmacs) <= 1.0


def test_macs_scale_with_resolution_but_params_do_not():
    a, b = report("mobilenet_v1"), report("mobilenet_v1", ("size=192",))
    assert a.trainable == b.trainable and a.non_trainable == b.non_trainable
    assert b.macs < a.macs


# ------------------------------------------------------------------ closed-form counters
class Count:
    def __init__(self):
        self.trainable = 0
        self.non_trainable = 0

    def conv(self, cin, cout, k, groups=1, bias=False):
        self.trainable += k * k * (cin // groups) * cout + (cout if bias else 0)

    def bn(self, c):
        self.trainable += 2 * c  # gamma, beta
        self.non_trainable += 2 * c  # running mean, variance

    def dense(self, fin, fout):
        self.trainable += fin * fout + fout

    @property
    def pair(self):
        return self.trainable, self.non_trainable


def densenet_counts(k, blocks, stem=64, bn_size=4, theta=0.5, classes=1000, in_ch=3):
    """DenseNet-BC (Huang et al.): 7x7 stem conv, BN; per layer BN-1x1(bn_size*k)-BN-3x3(k); transitions."""
    n = Count()
    n.conv(in_ch, stem, 7)
    n.bn(stem)
    c = stem
    for i, layers in enumerate(blocks):
        for _ in range(layers):
            n.bn(c)
            n.conv(c, bn_size * k, 1)
            n.bn(bn_size * k)
            n.conv(bn_size * k, k, 3)
            c += k
        if i < len(blocks) - 1:
            n.bn(c)
            out = int(c * theta)
            n.conv(c, out, 1)
            c = out
    n.bn(c)
    n.dense(c, classes)
    return n.pair


MOBILENET_BODY = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def mobilenet_counts(alpha=1.0, classes=1000, in_ch=3):
    """MobileNet V1 (Howard et al., table 1): 3x3/2 conv 32, 13 depthwise-separable convs, linear."""
    n = Count()
    c = int(32 * alpha)
    n.conv(in_ch, c, 3)
    n.bn(c)
    for filters, _stride in MOBILENET_BODY:
        n.conv(c, c, 3, groups=c)
        n.bn(c)
        out = int(filters * alpha)
        n.conv(c, out, 1)
        n.bn(out)
        c = out
    n.dense(c, classes)
    return n.pair


# (in, #1x1, #3x3reduce, #3x3, #5x5reduce, #5x5, pool_proj) from the paper's table 1
INCEPTION = [
    (192, 64, 96, 128, 16, 32, 32),
    (256, 128, 128, 192, 32, 96, 64),
    (480, 192, 96, 208, 16, 48, 64),
    (512, 160, 112, 224, 24, 64, 64),
    (512, 128, 128, 256, 24, 64, 64),
    (512, 112, 144, 288, 32, 64, 64),
    (528, 256, 160, 320, 32, 128, 128),
    (832, 256, 160, 320, 32, 128, 128),
    (832, 384, 192, 384, 48, 128, 128),
]


def googlenet_counts(k5=5, in_ch=3, classes=1000, aux=True, aux_hw=(4, 4)):
    """GoogLeNet with conv-BN-ReLU; aux heads: 1x1 conv 128, FC 1024 on the flattened map, FC classes."""
    n = Count()

    def cbr(cin, cout, k):
        n.conv(cin, cout, k)
        n.bn(cout)

    cbr(in_ch, 64, 7)
    cbr(64, 64, 1)
    cbr(64, 192, 3)
    for cin, a, b_red, b, d_red, d, p in INCEPTION:
        cbr(cin, a, 1)
        cbr(cin, b_red, 1)
        cbr(b_red, b, 3)
        cbr(cin, d_red, 1)
        cbr(d_red, d, k5)
        cbr(cin, p, 1)
    n.dense(1024, classes)
    if aux:
        for cin in (512, 528):  # outputs of 4a and 4d
            cbr(cin, 128, 1)
            n.dense(128 * aux_hw[0] * aux_hw[1], 1024)
            n.dense(1024, classes)
    return n.pair


def test_closed_form_counters_reproduce_the_published_figures():
    # the counters are only trusted for predictions because they reproduce every published figure
    assert densenet_counts(32, (6, 12, 24, 16)) == (7_978_856, 83_648)
    assert densenet_counts(32, (6, 12, 32, 32)) == (14_149_480, 158_400)
    assert densenet_counts(32, (6, 12, 48, 32)) == (20_013_928, 229_056)
    assert densenet_counts(48, (6, 12, 36, 24), stem=96) == (28_681_000, 219_936)
    assert sum(mobilenet_counts(1.0)) == 4_253_864 and mobilenet_counts(1.0)[0] == 4_231_976
    assert sum(mobilenet_counts(0.75)) == 2_601_976 and mobilenet_counts(0.75)[0] == 2_585_560
    assert sum(mobilenet_counts(0.5)) == 1_342_536 and mobilenet_counts(0.5)[0] == 1_331_592
    assert sum(mobilenet_counts(0.25)) == 475_544 and mobilenet_counts(0.25)[0] == 470_072
    assert googlenet_counts(k5=3)[0] == 13_004_888
    assert googlenet_counts(k5=3, aux=False)[0] == 6_624_904
    for (cin, *_), (_, a, _r, b, _r5, d, p) in zip(INCEPTION[1:], INCEPTION):
        assert cin == a + b + d + p  # the table chains


PREDICTED = [
    ("densenet121", ("growth_rate=48",), densenet_counts(48, (6, 12, 24, 16))),
    ("densenet121", ("bn_size=2",), densenet_counts(32, (6, 12, 24, 16), bn_size=2)),
    ("densenet121", ("classes=10", "channels=1"), densenet_counts(32, (6, 12, 24, 16), classes=10, in_ch=1)),
    ("densenet121", ("block_config=[6, 12, 32, 32]",), densenet_counts(32, (6, 12, 32, 32))),
    ("densenet169", ("reduction=0.75",), densenet_counts(32, (6, 12, 32, 32), theta=0.75)),
    ("densenet161", ("stem_channels=64", "growth_rate=40"), densenet_counts(40, (6, 12, 36, 24), stem=64)),
    ("mobilenet_v1", ("classes=10", "channels=1"), mobilenet_counts(classes=10, in_ch=1)),
    ("mobilenet_v1_050", ("alpha=0.75", "size=128"), mobilenet_counts(0.75)),
    ("googlenet", (), googlenet_counts()),
    ("googlenet", ("aux=false",), googlenet_counts(aux=False)),
    # 96x96: 4a/4d give 6x6 maps, the 5x5/3 aux pool gives 1x1 (floor((6-5)/3)+1), so FC 1024 sees 128 values
    ("googlenet", ("size=96", "channels=1"), googlenet_counts(in_ch=1, aux_hw=(1, 1))),
    # 96x224: 6x14 maps -> aux pool 1x4 (floor((14-5)/3)+1 = 4)
    ("googlenet", ("input.height=96",), googlenet_counts(aux_hw=(1, 4))),
    ("googlenet", ("kernel5=3", "classes=10"), googlenet_counts(k5=3, classes=10)),
    ("googlenet_torchvision", ("kernel5=5",), googlenet_counts()),
]


@pytest.mark.parametrize(("stem", "sets", "expected"), PREDICTED, ids=[_id(*r[:2]) for r in PREDICTED])
def test_variant_counts_match_closed_form(stem, sets, expected):
    r = report(stem, sets)
    assert (r.trainable, r.non_trainable) == expected


# ------------------------------------------------------------------ the zoo: MobileNetV3, EfficientNet
# torchvision 0.28's counts (ARCHITECTURES.md, "The zoo": mobilenet_v3_large / _small, efficientnet_b0 / b1 / b7;
# b2-b6 measured from torchvision 0.28's builders, weights=None, as test_zoo_counts_equal_live_torchvision does)
ZOO_REFERENCE = [
    ("mobilenet_v3_large", 5_483_032, 24_400),
    ("mobilenet_v3_small", 2_542_856, 12_112),
    ("efficientnet_b0", 5_288_548, 42_016),
    ("efficientnet_b1", 7_794_184, 62_048),
    ("efficientnet_b2", 9_109_994, 67_568),
    ("efficientnet_b3", 12_233_232, 87_296),
    ("efficientnet_b4", 19_341_616, 125_200),
    ("efficientnet_b5", 30_389_784, 172_736),
    ("efficientnet_b6", 43_040_704, 224_432),
    ("efficientnet_b7", 66_347_960, 310_720),
]


@pytest.mark.parametrize(("stem", "trainable", "non_trainable"), ZOO_REFERENCE, ids=[r[0] for r in ZOO_REFERENCE])
def test_zoo_counts(cli, stem, trainable, non_trainable):
    assert (report(stem).trainable, report(stem).non_trainable) == (trainable, non_trainable)
    j = cli("summary", SPECS / f"{stem}.yaml", "--json").json()
    assert (j["trainable_params"], j["non_trainable_params"]) == (trainable, non_trainable)
    assert j["outputs"]["main"] == [1000]


@pytest.mark.parametrize("stem", [r[0] for r in ZOO_REFERENCE])
def test_zoo_counts_equal_live_torchvision(torchvision, stem):
    """The installed torchvision's own builder (the spec's name), counted: parameters and BN running statistics."""
    model = getattr(torchvision.models, stem)(weights=None)
    params = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert (report(stem).trainable, report(stem).non_trainable) == (params, stats)


# torchvision's weights metadata (torchvision/models/mobilenetv3.py, efficientnet.py: "_ops", GFLOPS = conv and
# linear multiply-accumulates at the weights' crop size, which is each spec's input size), to three decimals
TORCHVISION_META_GMACS = [
    ("mobilenet_v3_large", 0.217),
    ("mobilenet_v3_small", 0.057),
    ("efficientnet_b0", 0.386),
    ("efficientnet_b1", 0.687),
    ("efficientnet_b2", 1.088),
    ("efficientnet_b3", 1.827),
    ("efficientnet_b4", 4.394),
    ("efficientnet_b5", 10.266),
    ("efficientnet_b6", 19.068),
    ("efficientnet_b7", 37.746),
]


@pytest.mark.parametrize(("stem", "gmacs"), TORCHVISION_META_GMACS, ids=[r[0] for r in TORCHVISION_META_GMACS])
def test_zoo_macs_match_torchvision_metadata(stem, gmacs):
    assert abs(report(stem).macs / 1e9 - gmacs) <= 0.0005 + 1e-9


# torchvision 0.28's own "_ops" metadata (GFLOPS = multiply-accumulates of conv + linear at 224x224), given to as
# many decimals as written there: (spec, --set overrides, GMACs, decimals)
TORCHVISION_OPS_META = [
    ("shufflenet_v2_x1_0", (), 0.145, 3),
    ("shufflenet_v2_x1_0", ("stages_out_channels=[24, 48, 96, 192, 1024]",), 0.04, 2),  # x0_5
    ("regnet_y_400mf", (), 0.402, 3),
    ("regnet_x_400mf", (), 0.414, 3),
    ("convnext_tiny", (), 4.456, 3),
    ("resnet34", (), 3.664, 3),
    ("resnet101", (), 7.801, 3),
    ("resnet152", (), 11.514, 3),
    ("resnext50_32x4d", (), 4.23, 2),
    ("wide_resnet50_2", (), 11.398, 3),
    ("inception_v3", (), 5.713, 3),  # at its 299 x 299
    ("squeezenet1_1", (), 0.349, 3),
    ("vgg11", (), 7.609, 3),
    ("vgg16", (), 15.47, 2),
    ("vgg19", (), 19.632, 3),
    ("vgg16_bn", (), 15.47, 2),  # torchvision's figure counts no BN; archc's BN MACs fall below the decimals
    ("alexnet", (), 0.714, 3),
]


@pytest.mark.parametrize(
    ("stem", "sets", "gmacs", "decimals"), TORCHVISION_OPS_META, ids=[_id(*r[:2]) for r in TORCHVISION_OPS_META]
)
def test_macs_match_torchvision_ops_metadata(stem, sets, gmacs, decimals):
    assert round(report(stem, sets).macs / 1e9, decimals) == gmacs


# ------------------------------------------------------------------ live torchvision (where installed)
# (spec, --set overrides, torchvision builder, builder kwargs): the zoo's counts read from torchvision itself
TORCHVISION_LIVE = [
    ("resnet34", (), "resnet34", {}),
    ("resnet101", (), "resnet101", {}),
    ("resnet152", (), "resnet152", {}),
    ("resnext50_32x4d", (), "resnext50_32x4d", {}),
    ("wide_resnet50_2", (), "wide_resnet50_2", {}),
    ("inception_v3", ("aux=true",), "inception_v3", {"aux_logits": True, "init_weights": False}),
    ("inception_v3", (), "inception_v3", {"aux_logits": False, "init_weights": False}),
    ("squeezenet1_1", (), "squeezenet1_1", {}),
    ("vgg11", (), "vgg11", {}),
    ("vgg16", (), "vgg16", {}),
    ("vgg19", (), "vgg19", {}),
    ("vgg16_bn", (), "vgg16_bn", {}),
    ("alexnet", (), "alexnet", {}),
    # variants: the adaptive pool keeps the classifier at 512 * 7 * 7 inputs at 64 pixels; 1 channel: torchvision's
    # first conv replaced by a 1-channel one below
    ("vgg16", ("classes=10", "channels=1", "size=64"), "vgg16", {"num_classes": 10}),
    ("squeezenet1_1", ("classes=10",), "squeezenet1_1", {"num_classes": 10}),
]


@pytest.mark.parametrize(
    ("stem", "sets", "builder", "kwargs"), TORCHVISION_LIVE, ids=[_id(*r[:2]) for r in TORCHVISION_LIVE]
)
def test_counts_match_live_torchvision(torchvision, stem, sets, builder, kwargs):
    """Parameters and BN running statistics of torchvision's own model (built on the meta device: no memory, no
    init cost) equal the analysis of the spec."""
    import torch

    with torch.device("meta"):
        model = getattr(torchvision.models, builder)(weights=None, **kwargs)
        if "channels=1" in sets:  # torchvision's builders take 3 channels; its first conv made 1-channel
            first = model.features[0]
            model.features[0] = torch.nn.Conv2d(1, first.out_channels, first.kernel_size, padding=first.padding)
    params = sum(p.numel() for p in model.parameters())
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    r = report(stem, sets)
    assert (r.trainable, r.non_trainable) == (params, stats)

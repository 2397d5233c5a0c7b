"""Output shapes (H, W, C) at known points, derived by hand from the layer formulas.

conv / pool (floor):  out = floor((n + p_before + p_after - k) / s) + 1
pool (ceil, PyTorch): out = ceil((n + p_before + p_after - k) / s) + 1 (minus 1 if the last window starts past n + p)
TensorFlow 'same':    out = ceil(n / s)
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from archc import ir
from archc.analysis import analyze
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


@functools.cache
def model(stem: str, sets: tuple = ()):
    return compile_spec(str(SPECS / f"{stem}.yaml"), list(sets))


def top(m) -> dict:
    """Top-level items of the network: name -> output shape."""
    return {n.name: n.out_shape for n in m.body.children}


def leaves(m) -> dict:
    """Every leaf node of the network and its heads, by dotted path."""
    return {n.path: n for root in [m.body, *(h.body for h in m.heads)] for n in ir.walk(root) if ir.is_leaf(n)}


def rows(m) -> dict:
    return {r.path: r for r in analyze(m).rows}


# ------------------------------------------------------------------ GoogLeNet at 224
# conv1 7x7/2 p3: (224+6-7)//2+1 = 112; maxpool 3x3/2 p1: (112+2-3)//2+1 = 56 -> 28 -> 14 -> 7.
# Widths: 3a 64+128+32+32 = 256, 3b 128+192+96+64 = 480, 4a 512, 4d 528, 4e 832, 5b 384+384+128+128 = 1024.
GOOGLENET_224 = {
    "conv1": (112, 112, 64),
    "maxpool1": (56, 56, 64),
    "conv2": (56, 56, 64),
    "conv3": (56, 56, 192),
    "maxpool2": (28, 28, 192),
    "inception3a": (28, 28, 256),
    "inception3b": (28, 28, 480),
    "maxpool3": (14, 14, 480),
    "inception4a": (14, 14, 512),
    "inception4b": (14, 14, 512),
    "inception4c": (14, 14, 512),
    "inception4d": (14, 14, 528),
    "inception4e": (14, 14, 832),
    "maxpool4": (7, 7, 832),
    "inception5a": (7, 7, 832),
    "inception5b": (7, 7, 1024),
    "avgpool": (1024,),
    "dropout": (1024,),
    "fc": (1000,),
}


def test_googlenet_224_top_level_shapes():
    assert top(model("googlenet")) == GOOGLENET_224


def test_googlenet_torchvision_224_same_shapes():
    # ceil pooling without padding: ceil((112-3)/2)+1 = 56, ceil((14-2)/2)+1 = 7 for the 2x2 maxpool4
    assert top(model("googlenet_torchvision")) == GOOGLENET_224


def test_googlenet_224_layer_rows_via_cli(cli):
    res = cli("summary", SPECS / "googlenet.yaml", "--json")
    assert res.code == 0
    shapes = {row["name"]: row["output_shape"] for row in res.json()["layers"]}
    expected = {
        "conv1.conv": [112, 112, 64],
        "conv1.bn": [112, 112, 64],
        "maxpool1": [56, 56, 64],
        "inception3a.branch1.conv": [28, 28, 64],
        "inception3a.branch2.conv_bn_act2.conv": [28, 28, 128],
        "inception3a.branch3.conv_bn_act2.conv": [28, 28, 32],
        "inception3a.branch4.maxpool": [28, 28, 192],
        "inception3a.branch4.conv_bn_act.conv": [28, 28, 32],
        "inception4e.branch1.conv": [14, 14, 256],
        "inception5b.branch4.conv_bn_act.conv": [7, 7, 128],
        "avgpool": [1024],
        "fc": [1000],
        # aux heads: 5x5/3 average pool on 14x14: (14-5)//3+1 = 4; flatten 128*4*4 = 2048
        "aux1.avgpool": [4, 4, 512],
        "aux1.conv.conv": [4, 4, 128],
        "aux1.flatten": [2048],
        "aux1.fc1": [1024],
        "aux1.fc2": [1000],
        "aux2.avgpool": [4, 4, 528],
        "aux2.flatten": [2048],
    }
    assert {k: shapes.get(k) for k in expected} == expected


def test_layer_rows_are_the_ir_leaves_in_order(cli):
    m = model("googlenet")
    names = [row["name"] for row in cli("summary", SPECS / "googlenet.yaml", "--json").json()["layers"]]
    assert names == list(leaves(m))
    assert len(names) == len(set(names))


def test_googlenet_5x5_branch_kernel():
    five = "inception3a.branch3.conv_bn_act2.conv"
    paper, tv = leaves(model("googlenet"))[five], leaves(model("googlenet_torchvision"))[five]
    assert (paper.kernel, paper.padding) == ((5, 5), (2, 2, 2, 2))
    assert (tv.kernel, tv.padding) == ((3, 3), (1, 1, 1, 1))  # torchvision's known "5x5" bug


# ------------------------------------------------------------------ GoogLeNet, 1 channel at 96x96 (seed 003)
def test_googlenet_96_one_channel_shapes():
    m = model("googlenet", ("size=96", "channels=1"))
    assert m.input_shape == (96, 96, 1)
    t = top(m)
    # conv1: (96+6-7)//2+1 = 48; maxpool1: (48+2-3)//2+1 = 24; maxpool2: (24-1)//2+1 = 12;
    # maxpool3: (12-1)//2+1 = 6; maxpool4: (6-1)//2+1 = 3.
    assert t["conv1"] == (48, 48, 64)
    assert t["maxpool1"] == (24, 24, 64)
    assert t["maxpool2"] == (12, 12, 192)
    assert t["inception3b"] == (12, 12, 480)
    assert t["inception4a"] == (6, 6, 512)
    assert t["inception4d"] == (6, 6, 528)
    assert t["inception4e"] == (6, 6, 832)
    assert t["inception5b"] == (3, 3, 1024)
    assert t["fc"] == (1000,)
    lv = leaves(m)
    # aux: 5x5/3 average pool on 6x6: (6-5)//3+1 = 1, so the flatten gives 128 values, not 2048
    assert lv["aux1.avgpool"].out_shape == (1, 1, 512)
    assert lv["aux2.avgpool"].out_shape == (1, 1, 528)
    assert lv["aux1.flatten"].out_shape == (128,)
    assert lv["aux1.fc1"].in_features == 128 and lv["aux2.fc1"].in_features == 128
    assert lv["conv1.conv"].in_channels == 1
    assert analyze(m).outputs == {"main": (1000,), "aux1": (1000,), "aux2": (1000,)}


def test_googlenet_input_size_changes_only_the_aux_fc_params():
    big, small = rows(model("googlenet")), rows(model("googlenet", ("size=96",)))
    assert big.keys() == small.keys()
    changed = {p for p in big if big[p].trainable != small[p].trainable}
    assert changed == {"aux1.fc1", "aux2.fc1"}
    for p in changed:  # FC 1024 on 2048 vs 128 inputs
        assert big[p].trainable - small[p].trainable == (2048 - 128) * 1024
    assert all(big[p].non_trainable == small[p].non_trainable for p in big)


def test_googlenet_input_channels_change_only_the_first_conv():
    three, one = rows(model("googlenet", ("size=96",))), rows(model("googlenet", ("size=96", "channels=1")))
    changed = {p for p in three if three[p].trainable != one[p].trainable}
    assert changed == {"conv1.conv"}
    assert three["conv1.conv"].trainable - one["conv1.conv"].trainable == 7 * 7 * (3 - 1) * 64


def test_googlenet_dotted_set_of_input_height():
    m = model("googlenet", ("input.height=96",))
    assert m.input_shape == (96, 224, 3)
    # height as above (48, 24, 12, 6, 3); width 112, 56, 28, 14, 7
    assert top(m)["inception4a"] == (6, 14, 512)
    assert top(m)["inception5b"] == (3, 7, 1024)
    # aux pool: height (6-5)//3+1 = 1, width (14-5)//3+1 = 4
    assert leaves(m)["aux1.flatten"].out_shape == (1 * 4 * 128,)


# ------------------------------------------------------------------ DenseNet
# channels: 64 + 6*32 = 256 -> 128; 128 + 12*32 = 512 -> 256; 256 + 24*32 = 1024 -> 512; 512 + 16*32 = 1024
DENSENET121_CHANNELS = {
    "denseblock1": 256,
    "transition1": 128,
    "denseblock2": 512,
    "transition2": 256,
    "denseblock3": 1024,
    "transition3": 512,
    "denseblock4": 1024,
}


@pytest.mark.parametrize(
    ("size", "spatial"),
    [
        # 224: conv0 (224+6-7)//2+1 = 112; pool0 (112+2-3)//2+1 = 56; avg 2x2/2: 28, 14, 7
        (224, {"denseblock1": 56, "transition1": 28, "denseblock2": 28, "transition2": 14, "transition3": 7}),
        # 160: conv0 (160+6-7)//2+1 = 80; pool0 (80+2-3)//2+1 = 40; avg: 20, 10, 5
        (160, {"denseblock1": 40, "transition1": 20, "denseblock2": 20, "transition2": 10, "transition3": 5}),
        # 225 (odd): conv0 (225+6-7)//2+1 = 113; pool0 (113+2-3)//2+1 = 57; avg (57-2)//2+1 = 28, then 14, 7
        (225, {"denseblock1": 57, "transition1": 28, "denseblock2": 28, "transition2": 14, "transition3": 7}),
    ],
)
def test_densenet121_shapes(size, spatial):
    m = model("densenet121", (f"size={size}",))
    t = top(m)
    for name, hw in spatial.items():
        assert t[name] == (hw, hw, DENSENET121_CHANNELS[name]), name
    last = spatial["transition3"]
    assert t["denseblock4"] == (last, last, 1024)
    assert t["avgpool"] == (1024,) and t["classifier"] == (1000,)
    conv0 = {224: 112, 160: 80, 225: 113}[size]
    assert t["conv0"] == (conv0, conv0, 64)


@pytest.mark.parametrize(
    ("stem", "features"),
    # final widths as in torchvision (DenseNet.classifier.in_features): 1664, 1920, 2208
    [("densenet169", 1664), ("densenet201", 1920), ("densenet161", 2208)],
)
def test_densenet_final_feature_map(stem, features):
    t = top(model(stem))
    assert t["denseblock4"] == (7, 7, features)
    assert leaves(model(stem))["classifier"].in_features == features


def test_densenet_ir_details():
    lv = leaves(model("densenet121"))
    conv0, pool0 = lv["conv0"], lv["pool0"]
    assert (conv0.kernel, conv0.stride, conv0.padding, conv0.bias) == ((7, 7), (2, 2), (3, 3, 3, 3), False)
    assert (pool0.op, pool0.kernel, pool0.stride, pool0.padding, pool0.ceil) == ("max", (3, 3), (2, 2), (1,) * 4, False)
    norms = [n for n in lv.values() if isinstance(n, ir.BatchNorm)]
    assert norms and all(n.eps == 1.001e-5 and n.momentum == 0.1 for n in norms)
    tpool = lv["transition1.pool"]
    assert (tpool.op, tpool.kernel, tpool.stride) == ("avg", (2, 2), (2, 2))
    assert lv["transition1.conv"].out_channels == 128  # floor(0.5 * 256)


# ------------------------------------------------------------------ MobileNet
def test_mobilenet_224_shapes():
    t = top(model("mobilenet_v1"))
    assert t["conv1"] == (112, 112, 32)  # 'same', stride 2: ceil(224/2)
    assert t["ds1"] == (112, 112, 64)
    assert t["ds2"] == (56, 56, 128)
    assert t["ds6"] == (14, 14, 512)
    assert t["ds7_11"] == (14, 14, 512)
    assert t["ds13"] == (7, 7, 1024)
    assert t["global_pool"] == (1024,) and t["classifier"] == (1000,)


def test_mobilenet_025_160_shapes():
    t = top(model("mobilenet_v1_025_160"))
    # 160 -> 80 (same) -> 40 -> 20 -> 10 -> 5 (each stride-2 ds: pad to n+1, then (n+1-3)//2+1)
    assert t["conv1"] == (80, 80, 8)
    assert t["ds13"] == (5, 5, 256)  # int(1024 * 0.25)


@pytest.mark.parametrize(
    ("size", "chain"),
    [
        # 192: conv1 ceil(192/2) = 96; stride-2 ds: 96 -> pad 97 -> (97-3)//2+1 = 48 -> 24 -> 12 -> 6
        (192, {"conv1": 96, "ds1": 96, "ds2": 48, "ds4": 24, "ds6": 12, "ds12": 6, "ds13": 6}),
        # 161 (odd): conv1 ceil(161/2) = 81; 81 -> pad 82 -> (82-3)//2+1 = 40; 40 -> 41 -> 20; 20 -> 21 -> 10;
        # 10 -> 11 -> 5
        (161, {"conv1": 81, "ds1": 81, "ds2": 40, "ds4": 20, "ds6": 10, "ds12": 5, "ds13": 5}),
    ],
)
def test_mobilenet_other_sizes(size, chain):
    t = top(model("mobilenet_v1", (f"size={size}",)))
    widths = {"conv1": 32, "ds1": 64, "ds2": 128, "ds4": 256, "ds6": 512, "ds12": 1024, "ds13": 1024}
    for name, hw in chain.items():
        assert t[name] == (hw, hw, widths[name]), name


@pytest.mark.parametrize(
    ("size", "pad"),
    [
        # TF 'same', k=3, s=2: total = max((ceil(n/2)-1)*2 + 3 - n, 0); smaller half on top/left
        (224, (0, 1, 0, 1)),  # (112-1)*2+3-224 = 1
        (161, (1, 1, 1, 1)),  # (81-1)*2+3-161 = 2
    ],
)
def test_mobilenet_same_padding_is_explicit_in_the_ir(size, pad):
    lv = leaves(model("mobilenet_v1", (f"size={size}",)))
    conv1 = lv["conv1"]
    assert conv1.same is True and conv1.padding == pad and conv1.bias is False
    dw = lv["ds2.dw"]
    assert lv["ds2.pad"].padding == (0, 1, 0, 1)
    assert (dw.depthwise, dw.groups, dw.in_channels, dw.stride, dw.padding) == (True, 64, 64, (2, 2), (0, 0, 0, 0))
    assert "ds1.pad" not in lv  # stride-1 blocks have no explicit zero padding
    assert lv["ds1.dw"].padding == (1, 1, 1, 1)
    norms = [n for n in lv.values() if isinstance(n, ir.BatchNorm)]
    assert all(n.eps == 1e-3 and n.momentum == 0.01 for n in norms)
    assert all(n.fn == "relu6" for n in lv.values() if isinstance(n, ir.Act))


def test_googlenet_torchvision_pooling_and_eps_are_explicit():
    tv, paper = leaves(model("googlenet_torchvision")), leaves(model("googlenet"))
    assert (tv["maxpool1"].ceil, tv["maxpool1"].padding) == (True, (0, 0, 0, 0))
    assert (paper["maxpool1"].ceil, paper["maxpool1"].padding) == (False, (1, 1, 1, 1))
    assert tv["maxpool4"].kernel == (2, 2) and paper["maxpool4"].kernel == (3, 3)
    assert tv["conv1.bn"].eps == 1e-3 and paper["conv1.bn"].eps == 1e-5
    assert tv["dropout"].rate == 0.2 and paper["dropout"].rate == 0.4
    assert tv["aux1.dropout"].rate == 0.7

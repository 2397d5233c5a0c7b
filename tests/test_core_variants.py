"""Variants: ``extends:`` (deep merge) and ``--set`` overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archc.analysis import analyze
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"

BASE = """\
name: base
input: {height: 8, width: 8, channels: 3}
params:
  classes: 10
  stem: 6
  widths: [4, 5]
defaults:
  conv: {bias: false}
network:
  - conv: {name: stem, out: $stem, kernel: 3, padding: 1}
  - conv: {name: last, out: "${widths[-1]}", kernel: 1}
  - gap
  - dense: {name: fc, out: $classes}
"""


def summary(cli, path, *sets) -> dict:
    argv = ["summary", path, "--json"]
    for s in sets:
        argv += ["--set", s]
    res = cli(*argv)
    assert res.code == 0, res.err
    return res.json()


def without_name(j: dict) -> dict:
    return {k: v for k, v in j.items() if k != "name"}


# ------------------------------------------------------------------ extends
def test_extends_deep_merges_mappings_and_replaces_lists(write_yaml):
    write_yaml(BASE, "base.yaml")
    text = "extends: ../base.yaml\nname: variant\ninput: {height: 16}\nparams: {widths: [12]}\n"
    variant = write_yaml(text, "sub/v.yaml")
    m = compile_spec(str(variant))
    params = dict(m.params)
    assert m.name == "variant"
    assert params["classes"] == 10 and params["stem"] == 6  # untouched params are kept
    assert params["widths"] == (12,)  # a list is replaced, not merged item by item (that would give [12, 5])
    assert m.input_shape == (16, 8, 3)  # input.height overridden, width and channels kept
    last = next(n for n in m.body.children if n.name == "last")
    assert last.out_channels == 12 and last.bias is False  # defaults inherited
    assert analyze(m).outputs["main"] == (10,)


def test_extends_chain_of_three(write_yaml):
    write_yaml(BASE, "base.yaml")
    write_yaml("extends: base.yaml\nname: mid\nparams: {classes: 7}\n", "mid.yaml")
    leaf = write_yaml("extends: mid.yaml\nname: leaf\nparams: {stem: 9}\n", "leaf.yaml")
    params = dict(compile_spec(str(leaf)).params)
    assert (params["classes"], params["stem"], params["widths"]) == (7, 9, (4, 5))


def test_extends_replaces_the_network_list(write_yaml):
    write_yaml(BASE, "base.yaml")
    v = write_yaml("extends: base.yaml\nname: v\nnetwork:\n  - gap\n  - dense: {out: $classes}\n", "v.yaml")
    m = compile_spec(str(v))
    assert [n.name for n in m.body.children] == ["gap", "dense"]


def test_variant_file_equals_set_overrides(cli, write_yaml):
    write_yaml(BASE, "base.yaml")
    v = write_yaml("extends: base.yaml\nname: base\nparams: {classes: 3, widths: [7]}\n", "v.yaml")
    by_file = summary(cli, v)
    by_set = summary(cli, write_yaml(BASE, "copy.yaml"), "classes=3", "widths=[7]")
    assert by_file == by_set


@pytest.mark.parametrize(
    ("variant", "base", "sets"),
    [
        ("mobilenet_v1_050", "mobilenet_v1", ["alpha=0.5"]),
        ("mobilenet_v1_025_160", "mobilenet_v1", ["alpha=0.25", "size=160"]),
        (
            "googlenet_torchvision",
            "googlenet",
            ["kernel5=3", "bn_eps=1.0e-3", "pool_padding=0", "pool_ceil=true", "pool4_kernel=2", "dropout=0.2"],
        ),
    ],
)
def test_shipped_variants_equal_their_base_with_overrides(cli, variant, base, sets):
    by_file = summary(cli, SPECS / f"{variant}.yaml")
    by_set = summary(cli, SPECS / f"{base}.yaml", *sets)
    assert without_name(by_file) == without_name(by_set)


# ------------------------------------------------------------------ --set
def densenet_final_channels(k, blocks, stem=64, theta=0.5):
    c = stem
    for i, n in enumerate(blocks):
        c += n * k
        if i < len(blocks) - 1:
            c = int(c * theta)
    return c


def test_set_growth_rate_changes_the_counts(cli):
    base = summary(cli, SPECS / "densenet121.yaml")
    k48 = summary(cli, SPECS / "densenet121.yaml", "growth_rate=48")
    assert k48["trainable_params"] > base["trainable_params"]
    final = densenet_final_channels(48, (6, 12, 24, 16))
    assert final == 1532  # 64+6*48=352 -> 176; 176+12*48=752 -> 376; 376+24*48=1528 -> 764; 764+16*48=1532
    layers = {row["name"]: row for row in k48["layers"]}
    assert layers["avgpool"]["output_shape"] == [final]
    assert layers["classifier"]["trainable_params"] == final * 1000 + 1000
    assert layers["norm5"]["non_trainable_params"] == 2 * final
    assert layers["denseblock1.stack.0.conv2"]["output_shape"] == [56, 56, 48]
    assert layers["denseblock1.stack.0.conv1"]["output_shape"] == [56, 56, 4 * 48]


def test_set_growth_rate_equals_a_hand_written_spec(cli, write_yaml):
    text = (SPECS / "densenet121.yaml").read_text()
    edited, n = re.subn(r"(?m)^  growth_rate: 32\b", "  growth_rate: 48", text)
    assert n == 1
    by_hand = summary(cli, write_yaml(edited, "densenet121_k48.yaml"))
    by_set = summary(cli, SPECS / "densenet121.yaml", "growth_rate=48")
    assert by_hand == by_set
    assert by_set != summary(cli, SPECS / "densenet121.yaml")


def test_set_list_param_and_list_index(cli):
    whole = summary(cli, SPECS / "densenet121.yaml", "block_config=[6, 12, 32, 32]")
    items = summary(cli, SPECS / "densenet121.yaml", "block_config.2=32", "block_config.3=32")
    d169 = summary(cli, SPECS / "densenet169.yaml")
    assert without_name(whole) == without_name(items) == without_name(d169)
    assert whole["trainable_params"] == 14_149_480


def test_set_dotted_input_path(cli):
    j = summary(cli, SPECS / "googlenet.yaml", "input.height=96")
    assert j["input"] == [96, 224, 3]
    shapes = {row["name"]: row["output_shape"] for row in j["layers"]}
    assert shapes["conv1.conv"] == [48, 112, 64]  # (96+6-7)//2+1, (224+6-7)//2+1
    assert j["outputs"]["main"] == [1000]


def test_set_aux_false_drops_the_heads(cli):
    j = summary(cli, SPECS / "googlenet.yaml", "aux=false")
    assert list(j["outputs"]) == ["main"]
    assert not any(row["name"].startswith("aux") for row in j["layers"])
    assert j["loss_weights"] == {"main": 1.0}
    full = summary(cli, SPECS / "googlenet.yaml")
    assert full["loss_weights"] == {"main": 1.0, "aux1": 0.3, "aux2": 0.3}


def test_set_classes_changes_only_the_classifiers(cli):
    a, b = summary(cli, SPECS / "densenet121.yaml"), summary(cli, SPECS / "densenet121.yaml", "classes=10")
    assert a["trainable_params"] - b["trainable_params"] == (1024 * 1000 + 1000) - (1024 * 10 + 10)
    assert a["non_trainable_params"] == b["non_trainable_params"]
    assert b["outputs"]["main"] == [10]


def test_set_applies_after_extends(cli):
    j = summary(cli, SPECS / "mobilenet_v1_025_160.yaml", "alpha=1.0", "size=224")
    assert j["trainable_params"] == 4_231_976 and j["input"] == [224, 224, 3]


def test_set_does_not_leak_between_compiles():
    a = compile_spec(str(SPECS / "densenet121.yaml"), ["growth_rate=48"])
    b = compile_spec(str(SPECS / "densenet121.yaml"))
    assert dict(a.params)["growth_rate"] == 48 and dict(b.params)["growth_rate"] == 32


def test_set_unknown_param_exit_2_with_suggestion(cli):
    for command in ("check", "summary"):
        res = cli(command, SPECS / "densenet121.yaml", "--set", "growth_rat=48")
        assert res.code == 2 and "Traceback" not in res.err
        assert "unknown param 'growth_rat'" in res.err and "did you mean 'growth_rate'?" in res.err

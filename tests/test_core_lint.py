"""Lints (issue 13, item 4): warnings as ``file:line:col: warning: ...``, exit 0; ``check --strict``: exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_core_errors import HEAD, where

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SPEC_FILES = sorted(SPECS.glob("*.yaml"))


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if ": warning: " in line]


def lint(cli, path, *argv):
    res = cli("check", path, *argv)
    assert res.code == 0 and "Traceback" not in res.err, res
    strict = cli("check", path, "--strict", *argv)
    if warnings(res.err):
        assert strict.code == 2 and "errors with --strict" in strict.err and ": ok (" not in strict.out, strict
    else:
        assert strict.code == 0, strict
    return warnings(res.err), res.err


def at(path, text, needle, nth=1, shift=0) -> str:
    line, col = where(text, needle, nth, shift)
    return f"{path}:{line}:{col}"


# warnings a spec keeps on purpose: vgg16_bn is torchvision's layout, whose convs keep their biases before BN (its
# checkpoints have them; 138,365,992 parameters); one warning for the first conv of a stage, one for the repeat
# resnet50_keras is keras.applications' ResNet50, whose convs keep their biases before BN too (its checkpoints have
# them): the stem's conv and, in archc/stdlib/resnet_keras.yaml, the 4 convs of the projection block and the 3 of the
# identity block
BIAS_BN = "has a bias and is directly followed by batch norm, which cancels it"
EXPECTED_WARNINGS = {"vgg16_bn": [BIAS_BN] * 2, "resnet50_keras": [BIAS_BN] * 8}


@pytest.mark.parametrize("path", SPEC_FILES, ids=[p.stem for p in SPEC_FILES])
def test_the_specs_have_no_warnings(cli, path):
    ws = lint(cli, path)[0]
    expected = EXPECTED_WARNINGS.get(path.stem, [])
    assert len(ws) == len(expected) and all(e in w for w, e in zip(ws, expected)), ws


@pytest.mark.parametrize(
    ("spec", "sets"),
    [("densenet121.yaml", ["drop_rate=0.2"]), ("googlenet.yaml", ["aux=false"]), ("mobilenet_v1.yaml", ["alpha=0.5"])],
)
def test_variants_have_no_warnings(cli, spec, sets):
    assert lint(cli, SPECS / spec, "--set", *sets)[0] == []


def test_conv_bias_followed_by_bn(cli, write_yaml):
    text = HEAD + "network:\n  - conv: {out: 8, kernel: 3}\n  - bn\n  - conv: {out: 8, kernel: 1}\n  - relu\n"
    path = write_yaml(text)
    ws, _ = lint(cli, path)
    assert ws == [
        f"{at(path, text, 'conv: {out: 8, kernel: 3')}: warning: conv 'conv1' has a bias and is directly followed by "
        "batch norm, which cancels it: 8 redundant parameters; write bias: false"
    ]
    # bias: false, or a bias not followed by BN: nothing
    assert lint(cli, write_yaml(text.replace("kernel: 3}", "kernel: 3, bias: false}")))[0] == []


def test_conv_bias_followed_by_bn_across_a_block_boundary_is_one_warning_per_place(cli, write_yaml):
    text = (
        HEAD + "blocks:\n  unit:\n    params: {c: null}\n    body:\n      - relu\n      - conv: {out: $c, kernel: 1}\n"
        "network:\n  - unit: {c: 4}\n  - bn\n  - unit: {name: again, c: 4}\n  - bn: {name: bn2}\n"
    )
    path = write_yaml(text)
    ws, _ = lint(cli, path)
    assert len(ws) == 1, ws
    assert ws[0].startswith(f"{at(path, text, 'conv: {out: $c')}: warning: conv 'unit1.conv' has a bias")
    assert "8 redundant parameters (in 2 places)" in ws[0]


def test_defaults_for_a_kind_no_item_has(cli, write_yaml):
    text = HEAD + "defaults:\n  maxpool: {ceil: true}\n  transition: {reduction: 0.5}\nnetwork:\n  - relu\n"
    path = write_yaml(text)
    ws, _ = lint(cli, path)
    assert ws == [
        f"{at(path, text, 'maxpool')}: warning: defaults for 'maxpool' apply to no item: the network has no 'maxpool'",
        f"{at(path, text, 'transition')}: warning: defaults for 'transition' apply to no item: the network has no "
        "'transition'",
    ]


def test_conv_defaults_do_not_reach_depthwise_convs(cli, write_yaml):
    # MobileNetV2 written this way kept every depthwise bias
    text = (
        HEAD + "defaults:\n  conv: {bias: false}\nnetwork:\n  - conv: {out: 16, kernel: 1}\n  - bn\n"
        "  - dwconv: {kernel: 3, padding: 1}\n  - bn: {name: bn2}\n"
    )
    path = write_yaml(text)
    ws, err = lint(cli, path)
    assert (
        f"{at(path, text, 'bias: false')}: warning: defaults for 'conv' set bias: false, but 1 dwconv item "
        "keeps archc's default bias: true, 16 parameters ('conv' defaults do not apply to 'dwconv'; add dwconv: "
        "{bias: false})"
    ) in ws
    assert f"{at(path, text, 'dwconv: {kernel')}: note: a dwconv with the built-in value" in err
    fixed = text.replace("conv: {bias: false}", "conv: {bias: false}\n  dwconv: {bias: false}")
    assert lint(cli, write_yaml(fixed))[0] == []


def test_defaults_every_item_overrides(cli, write_yaml):
    text = HEAD + "defaults:\n  bn: {eps: 0.001}\nnetwork:\n  - bn: {eps: 0.01}\n  - bn: {name: b2, eps: 0.1}\n"
    path = write_yaml(text)
    ws, _ = lint(cli, path)
    assert ws == [
        f"{at(path, text, 'eps: 0.001')}: warning: defaults for 'bn': eps applies to no item: every 'bn' writes its "
        "own eps"
    ]


def test_unused_params(cli, write_yaml):
    text = (
        HEAD.replace("height: 8", "height: $size")
        + "params:\n  size: 8\n  width: 4\n  base: 2\n  twice: '${base * 2}'\n  spare: 3\n  classes: 10\n"
        "defaults:\n  conv_bn_act: {out: $width}\n"
        "network:\n  - conv_bn_act: {kernel: 1}\n  - gap\n  - dense: {out: $classes}\n"
    )
    path = write_yaml(text)
    ws, _ = lint(cli, path)
    # size (input), width (defaults), classes (network) and base (another param) are read
    assert ws == [
        f"{at(path, text, 'twice')}: warning: param 'twice' is never used",
        f"{at(path, text, 'spare')}: warning: param 'spare' is never used",
    ]


def test_dropout_of_rate_zero(cli, write_yaml):
    text = HEAD + "params: {p: 0.0}\nnetwork:\n  - gap\n  - dropout: {rate: $p}\n  - dense: {out: 2}\n"
    path = write_yaml(text)
    ws, _ = lint(cli, path)
    assert ws == [
        f"{at(path, text, 'dropout')}: warning: dropout 'dropout' has rate 0 and does nothing; remove it, or give it "
        "'if: ${rate > 0}'"
    ]
    # switched off by its if: no warning
    assert lint(cli, write_yaml(text.replace("rate: $p}", "rate: $p, if: '${p > 0}'}")))[0] == []


def test_dropout_of_rate_zero_inside_a_stdlib_block_is_reported_at_the_call(cli):
    ws, err = lint(cli, SPECS / "googlenet.yaml", "--set", "aux_dropout=0")
    text = (SPECS / "googlenet.yaml").read_text()
    assert len(ws) == 1 and ws[0].startswith(f"{SPECS / 'googlenet.yaml'}:"), ws
    assert "dropout 'aux1.dropout' has rate 0" in ws[0]
    assert "<archc stdlib>/inception.yaml:" in err and "note: the dropout is here" in err
    assert "inception_aux" in text.splitlines()[int(ws[0].split(":")[1]) - 1]


def test_densenet_dropout_switched_off_at_rate_zero_is_not_a_warning(cli):
    assert lint(cli, SPECS / "densenet121.yaml", "--set", "drop_rate=0")[0] == []


@pytest.mark.parametrize(
    ("cond", "always"),
    [
        ("true", "always true"),
        ("false", "always false"),
        ("'${1 > 2}'", "always false"),
        ("'${2 >= 2}'", "always true"),
    ],
)
def test_constant_if(cli, write_yaml, cond, always):
    text = HEAD + f"network:\n  - relu\n  - conv: {{out: 4, kernel: 1, bias: false, if: {cond}}}\n"
    path = write_yaml(text)
    ws, _ = lint(cli, path)
    assert len(ws) == 1, ws
    assert ws[0].startswith(f"{at(path, text, 'if: ', shift=4)}: warning: 'if' is constant, {always}"), ws


def test_if_reading_a_param_is_not_constant(cli, write_yaml):
    text = HEAD + "params: {use: true}\nnetwork:\n  - relu\n  - conv: {out: 4, kernel: 1, bias: false, if: $use}\n"
    assert lint(cli, write_yaml(text))[0] == []


def test_check_strict_fails_on_a_warning(cli, write_yaml):
    path = write_yaml(HEAD + "params: {spare: 1}\nnetwork:\n  - relu\n")
    res = cli("check", path, "--strict")
    assert res.code == 2 and f"{path}: 1 warning, errors with --strict" in res.err and res.out == ""


MOBILENET_V2 = """\
name: mobilenet_v2_sketch
input: {height: 224, width: 224, channels: 3}
defaults:
  conv: {bias: false}
blocks:
  inverted_residual:
    params: {expand: 6, out: null, stride: 1}
    body:
      - conv: {name: expand, out: "${in_channels * expand}", kernel: 1, if: "${expand != 1}"}
      - bn: {name: expand_bn, if: "${expand != 1}"}
      - relu6: {name: expand_relu, if: "${expand != 1}"}
      - dwconv: {name: dw, kernel: 3, stride: $stride, padding: 1}
      - bn: {name: dw_bn}
      - relu6: {name: dw_relu}
      - conv: {name: project, out: $out, kernel: 1}
      - bn: {name: project_bn}
network:
  - conv: {name: stem, out: 32, kernel: 3, stride: 2, padding: 1}
  - bn
  - relu6
"""


def test_mobilenet_v2_written_with_conv_defaults_only_keeps_7136_depthwise_biases(cli, write_yaml):
    # the case: (expansion t, channels c, blocks n, stride s) as in the paper; residuals left out
    text = MOBILENET_V2
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2)] + [
        (6, 320, 1, 1)
    ]:
        for i in range(n):
            text += f"  - inverted_residual: {{expand: {t}, out: {c}, stride: {s if i == 0 else 1}}}\n"
    text += "  - conv: {name: head, out: 1280, kernel: 1}\n  - bn: {name: head_bn}\n  - relu6: {name: head_relu}\n"
    text += "  - gap\n  - dense: {out: 1000}\n"
    path = write_yaml(text)
    ws, _ = lint(cli, path)
    assert (
        f"{at(path, text, 'bias: false')}: warning: defaults for 'conv' set bias: false, but 1 dwconv item keeps "
        "archc's default bias: true, 7,136 parameters"
    ) in ws[0], ws
    assert "depthwise conv 'inverted_residual1.dw' has a bias and is directly followed by batch norm" in ws[1], ws
    assert "7,136 redundant parameters (in 17 places)" in ws[1]

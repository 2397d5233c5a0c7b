"""Errors point at the cause, not only the use (issue 13, item 1).

A bad value is reported where it was written (a param definition, a ``--set``, a base file of ``extends``,
a block argument at the call site, a ``defaults:`` entry); the use is a note. The first line stays
``file:line:col: message`` and the exit status stays 2.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_core_errors import HEAD, assert_error, where

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
STDLIB = "<archc stdlib>"


# the line densenet169.yaml calls its first dense block on (the notes name the call site)
DENSEBLOCK1 = 1 + next(
    i for i, t in enumerate((SPECS / "densenet169.yaml").read_text().splitlines()) if "- dense_block:" in t
)


def at(path, text: str, needle: str, nth: int = 1, shift: int = 0) -> str:
    line, col = where(text, needle, nth, shift)
    return f"{path}:{line}:{col}"


def notes(err: str) -> list[str]:
    return [line for line in err.splitlines()[1:]]


def has_note(err: str, loc: str, *fragments: str) -> bool:
    return any(n.startswith(f"{loc}: note: ") and all(f in n for f in fragments) for n in notes(err))


def test_param_definition_is_the_primary_location_and_the_use_a_note(cli, write_yaml):
    text = HEAD + "params:\n  width: -3\nnetwork:\n  - conv: {out: $width, kernel: 1}\n"
    path = write_yaml(text)
    res = cli("check", path)
    assert_error(res, at(path, text, "-3"), "out must be a positive integer, got -3", "param 'width' = -3")
    assert has_note(res.err, at(path, text, "$width"), "used here", "out = $width"), res.err


def test_densenet_input_size_points_at_the_param(cli, write_yaml):
    text = (SPECS / "densenet169.yaml").read_text().replace("  size: 224", "  size: -3")
    path = write_yaml(text, "densenet169.yaml")
    res = cli("check", path)
    # before: densenet169.yaml:11:17: input height must be a positive integer, got -3  (the use only)
    assert_error(res, f"{path}:13:9", "input height must be a positive integer, got -3", "param 'size'")
    assert at(path, text, "size: -3", shift=6) == f"{path}:13:9"
    assert has_note(res.err, f"{path}:11:17", "used here", "height = $size"), res.err


def test_densenet_growth_rate_names_the_param_and_the_expression(cli, write_yaml):
    text = (SPECS / "densenet169.yaml").read_text().replace("growth_rate: 32 ", "growth_rate: -3 ")
    path = write_yaml(text, "densenet169.yaml")
    res = cli("check", path)
    # before: densenet169.yaml:32:5: out must be a positive integer, got -12 (in block 'dense_block', ...)
    assert_error(res, f"{path}:16:16", "out must be a positive integer, got -12", "param 'growth_rate' = -3")
    use = f"{STDLIB}/densenet.yaml:10:34"
    assert has_note(res.err, use, "out = ${bn_size * growth_rate} = -12", f"growth_rate = -3 ({path}:16:16)"), res.err
    assert has_note(res.err, f"{path}:{DENSEBLOCK1}:5", "in block 'dense_block', called here"), res.err
    # the defaults entry passing growth_rate to every dense_block is a step on the way
    assert has_note(res.err, at(path, text, "$growth_rate", 1), "via defaults for 'dense_block'"), res.err


def test_set_is_the_primary_location(cli):
    res = cli("check", SPECS / "densenet169.yaml", "--set", "growth_rate=-3")
    assert_error(res, "--set growth_rate=-3:1:13", "out must be a positive integer, got -12", "param 'growth_rate'")
    assert has_note(res.err, f"{STDLIB}/densenet.yaml:10:34", "growth_rate = -3 (--set growth_rate=-3:1:13)")
    assert has_note(res.err, f"{SPECS / 'densenet169.yaml'}:{DENSEBLOCK1}:5", "in block 'dense_block', called here")


def test_set_of_a_param_read_at_network_level(cli):
    res = cli("check", SPECS / "googlenet.yaml", "--set", "bn_eps=2")
    # before: googlenet.yaml:32:5: eps must be in (0, 1), got 2.0 (in block 'conv_bn_act', ...)
    assert_error(res, "--set bn_eps=2:1:8", "eps must be in (0, 1), got 2.0", "param 'bn_eps' = 2")
    text = (SPECS / "googlenet.yaml").read_text()
    assert has_note(res.err, at(SPECS / "googlenet.yaml", text, "$bn_eps"), "via defaults for 'bn'"), res.err
    assert has_note(res.err, f"{STDLIB}/inception.yaml:9:9", "used here"), res.err


def test_value_inherited_through_extends_points_at_the_base_file(cli, write_yaml):
    base_text = HEAD + "params:\n  c: 4\n  k: 0\nnetwork:\n  - conv: {out: $c, kernel: $k}\n"
    base = write_yaml(base_text, "base.yaml")
    variant = write_yaml("extends: base.yaml\nname: v\nparams: {c: 8}\n", "variant.yaml")
    res = cli("check", variant)
    assert_error(res, at(base, base_text, "k: 0", shift=3), "kernel must be a positive integer, got 0", "param 'k'")
    assert has_note(res.err, at(base, base_text, "$k"), "used here"), res.err


def test_value_overridden_by_a_variant_points_at_the_variant(cli, write_yaml):
    base_text = HEAD + "params:\n  c: 4\nnetwork:\n  - conv: {out: '${c - 6}', kernel: 1}\n"
    base = write_yaml(base_text, "base.yaml")
    variant_text = "extends: base.yaml\nname: v\nparams: {c: 2}\n"
    variant = write_yaml(variant_text, "variant.yaml")
    res = cli("check", variant)
    # c = 2 is a good value by itself: the expression at the use is the cause
    assert_error(res, at(base, base_text, "'${c - 6}'"), "out must be a positive integer, got -4")
    assert f"c = 2 ({at(variant, variant_text, 'c: 2', shift=3)})" in res.err, res.err
    variant_text = "extends: base.yaml\nname: v\nparams: {c: -2}\n"
    variant = write_yaml(variant_text, "variant.yaml")
    res = cli("check", variant)
    assert_error(res, at(variant, variant_text, "-2"), "out must be a positive integer, got -8", "param 'c' = -2")
    assert has_note(res.err, at(base, base_text, "'${c - 6}'"), "out = ${c - 6} = -8 with c = -2"), res.err


def test_block_argument_at_the_call_site_is_the_primary_location(cli, write_yaml):
    text = (
        HEAD
        + "params: {c: 4}\nblocks:\n  unit:\n    params: {w: null}\n    body:\n      - conv: {out: $w, kernel: 1}\n"
        + "network:\n  - unit: {w: '${c - 10}'}\n"
    )
    path = write_yaml(text)
    res = cli("check", path)
    assert_error(res, at(path, text, "'${c - 10}'"), "out must be a positive integer, got -6", "argument 'w'")
    assert has_note(res.err, at(path, text, "$w"), "used here"), res.err
    assert has_note(res.err, at(path, text, "unit: {w"), "in block 'unit', called here"), res.err


def test_stdlib_block_argument_forwarding_a_param(cli, write_yaml):
    text = HEAD + "params:\n  c: 0\nnetwork:\n  - conv_bn_act: {out: $c, kernel: 1}\n"
    path = write_yaml(text)
    res = cli("check", path)
    assert_error(res, at(path, text, "0\n"), "out must be a positive integer, got 0", "param 'c' = 0")
    assert has_note(res.err, at(path, text, "$c"), "via argument 'out' of block 'conv_bn_act'"), res.err
    assert has_note(res.err, f"{STDLIB}/inception.yaml:8:21", "used here: out = $out"), res.err
    assert has_note(res.err, at(path, text, "conv_bn_act"), "in block 'conv_bn_act', called here"), res.err


def test_literal_block_argument_is_located_at_the_argument(cli, write_yaml):
    text = HEAD + "network:\n  - conv_bn_act: {out: 0, kernel: 1}\n"
    path = write_yaml(text)
    res = cli("check", path)
    # before: the start of the call, with "(in block 'conv_bn_act', <archc stdlib>/...)"
    assert_error(res, at(path, text, "0,"), "out must be a positive integer, got 0", "argument 'out'")


def test_derived_param_points_at_the_param_it_read(cli, write_yaml):
    text = HEAD + "params:\n  base: -3\n  width: '${base * 2}'\nnetwork:\n  - conv: {out: $width, kernel: 1}\n"
    path = write_yaml(text)
    res = cli("check", path)
    assert_error(res, at(path, text, "-3"), "got -6", "param 'base' = -3")
    assert has_note(res.err, at(path, text, "'${base"), "via param 'width' = ${base * 2}"), res.err


def test_network_default_points_at_the_defaults_entry(cli, write_yaml):
    text = HEAD + "defaults:\n  bn: {eps: 2.0}\nnetwork:\n  - conv: {out: 4, kernel: 1}\n  - bn: {name: norm}\n"
    path = write_yaml(text)
    res = cli("check", path)
    assert_error(res, at(path, text, "2.0"), "eps must be in (0, 1), got 2.0", "defaults for 'bn'")
    assert has_note(res.err, at(path, text, "bn: {name"), "used here"), res.err


def test_if_given_a_string_param_points_at_the_param(cli, write_yaml):
    text = HEAD + "params: {use: 'false'}\nnetwork:\n  - relu\n  - conv: {out: 4, kernel: 1, if: $use}\n"
    path = write_yaml(text)
    res = cli("check", path)
    assert_error(res, at(path, text, "'false'"), "'if' must be true or false, got 'false'", "param 'use'")


def test_literal_at_the_use_stays_at_the_use_and_names_what_it_read(cli, write_yaml):
    text = HEAD + "params: {a: 3, b: 5}\nnetwork:\n  - conv: {out: '${a - b}', kernel: 1}\n"
    path = write_yaml(text)
    res = cli("check", path)
    # a and b are fine by themselves: the expression is the cause
    assert_error(res, at(path, text, "'${a - b}'"), "out must be a positive integer, got -2")
    assert f"a = 3 ({at(path, text, 'a: 3', shift=3)})" in res.err, res.err
    assert f"b = 5 ({at(path, text, 'b: 5', shift=3)})" in res.err, res.err


def test_summary_and_build_report_the_same_error(cli):
    check = cli("check", SPECS / "densenet169.yaml", "--set", "growth_rate=-3")
    summary = cli("summary", SPECS / "densenet169.yaml", "--set", "growth_rate=-3")
    assert summary.code == 2 and summary.err == check.err


def test_a_long_chain_of_params_is_followed_quickly_and_shortly(cli, write_yaml):
    # every param reads the two before it twice: without sharing, following origins would take 2**200 steps
    lines = ["params:", "  a0: -1", "  b0: -1"]
    for k in range(1, 200):
        lines += [f"  a{k}: '${{min(a{k - 1}, b{k - 1})}}'", f"  b{k}: '${{max(a{k - 1}, b{k - 1})}}'"]
    text = HEAD + "\n".join(lines) + "\nnetwork:\n  - conv: {out: '${min(a199, b199)}', kernel: 1}\n"
    path = write_yaml(text)
    res = cli("check", path)
    assert res.code == 2 and "Traceback" not in res.err
    assert res.err.startswith(f"{path}:") and "out must be a positive integer, got -1 (from param" in res.err
    assert len(res.err.splitlines()) <= 10, res.err


def test_an_element_of_a_list_param_points_at_the_list(cli):
    spec = SPECS / "densenet169.yaml"
    res = cli("check", spec, "--set", "block_config=[6, -12, 32, 32]")
    # before: densenet169.yaml:34:5: layers must be a positive integer, got -12 (in block 'dense_block', ...)
    assert_error(res, "--set block_config=[6, -12, 32, 32]:1:14", "layers must be a positive integer, got -12")
    text = spec.read_text()
    arg = at(spec, text, '"${block_config[1]}"')
    assert has_note(res.err, arg, "via argument 'num_layers' of block 'dense_block' = ${block_config[1]}"), res.err
    assert has_note(res.err, f"{STDLIB}/densenet.yaml:22:19", "used here: layers = $num_layers"), res.err

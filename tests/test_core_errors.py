"""One test per class of user error: exit status 2, ``file:line:col: message`` at the exact place, no traceback.

Lines and columns are computed from the YAML text written by each test (1-based, as editors show them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
HEAD = "name: t\ninput: {height: 8, width: 8, channels: 3}\n"


def where(text: str, needle: str, nth: int = 1, shift: int = 0) -> tuple[int, int]:
    """(line, col) of the ``nth`` occurrence of ``needle`` in ``text``, moved right by ``shift`` characters."""
    i = -1
    for _ in range(nth):
        i = text.index(needle, i + 1)
    i += shift
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


def assert_error(res, prefix: str, *fragments: str) -> None:
    assert res.code == 2, (res.code, res.out, res.err)
    assert "Traceback" not in res.err and "Traceback" not in res.out
    assert res.err.startswith(prefix + ": "), f"expected {prefix!r}, got {res.err!r}"
    for fragment in fragments:
        assert fragment in res.err, (fragment, res.err)


# (id, YAML text, (needle, nth, shift) locating the error, message fragments)
CASES = [
    (
        "yaml_syntax",
        HEAD + "network:\n  - conv: {out: 3, kernel: 1}}\n",
        ("}}", 1, 1),
        ["YAML syntax error"],
    ),
    (
        "unknown_key",
        HEAD + "network:\n  - conv: {out: 3, kernal: 1}\n",
        ("kernal", 1, 0),
        ["unknown key 'kernal'", "did you mean 'kernel'?"],
    ),
    (
        "wrong_type",
        HEAD + 'network:\n  - conv: {out: 3, kernel: "abc"}\n',
        ('"abc"', 1, 0),
        ["'kernel'", "'abc'"],
    ),
    (
        "out_zero",
        HEAD + "network:\n  - conv: {out: 0, kernel: 1}\n",
        ("out: 0", 1, 5),
        ["out must be a positive integer, got 0"],
    ),
    (
        "kernel_negative",
        HEAD + "network:\n  - conv: {out: 4, kernel: -1}\n",
        ("-1", 1, 0),
        ["kernel must be a positive integer, got -1"],
    ),
    (
        "input_height_zero",
        "name: t\ninput: {height: 0, width: 8, channels: 3}\nnetwork:\n  - relu\n",
        ("height: 0", 1, 8),
        ["input height must be a positive integer, got 0"],
    ),
    (
        # 8 -> conv 3x3/2 p1: (8+2-3)//2+1 = 4 -> maxpool 2x2/2: 2 -> a 3x3 conv no longer fits
        "kernel_larger_than_input",
        HEAD
        + "network:\n  - conv: {out: 4, kernel: 3, stride: 2, padding: 1}\n  - maxpool: {kernel: 2}\n"
        + "  - conv: {name: late, out: 4, kernel: 3}\n",
        ("conv: {name: late", 1, 0),
        ["conv 'late'", "kernel 3x3 is larger than its input 2x2"],
    ),
    (
        "add_channel_mismatch",
        HEAD + "network:\n  - add:\n      - [conv: {out: 4, kernel: 1}]\n      - [conv: {out: 5, kernel: 1}]\n",
        ("add:", 1, 0),
        ["add 'add'", "8x8x4", "8x8x5", "shapes must match"],
    ),
    (
        "unknown_block",
        HEAD + "network:\n  - conv_bn_actt: {out: 4, kernel: 1}\n",
        ("conv_bn_actt", 1, 0),
        ["unknown block or kind 'conv_bn_actt'", "did you mean 'conv_bn_act'?"],
    ),
    (
        "unknown_expression_param",
        HEAD + "params: {width: 4}\nnetwork:\n  - conv: {out: $nope, kernel: 1}\n",
        ("$nope", 1, 0),
        ["unknown param 'nope'", "width"],
    ),
    (
        "misspelt_expression_param",
        HEAD + "params: {classes: 4}\nnetwork:\n  - gap\n  - dense: {out: '${clases * 2}'}\n",
        ("'${clases", 1, 0),
        ["unknown param 'clases'", "did you mean 'classes'?"],
    ),
    (
        "unknown_block_param",
        HEAD + "network:\n  - conv_bn_act: {out: 4, kernel: 1, strid: 2}\n",
        ("strid", 1, 0),
        ["block 'conv_bn_act' has no param 'strid'", "did you mean 'stride'?"],
    ),
    (
        "empty_file",
        "",
        None,
        ["empty spec file"],
    ),
    (
        "only_comments",
        "# a spec to come\n",
        None,
        ["empty spec file"],
    ),
    (
        "spec_is_a_list",
        "- conv: {out: 3, kernel: 1}\n- relu\n",
        None,
        ["must be a mapping", "not a list"],
    ),
    (
        "duplicate_key",
        HEAD + "network:\n  - relu\nnetwork:\n  - relu\n",
        ("network:", 2, 0),
        ["duplicate key 'network'"],
    ),
    (
        "duplicate_layer_name",
        HEAD + "network:\n  - relu: {name: a}\n  - conv: {name: a, out: 3, kernel: 1}\n",
        ("conv: {name: a", 1, 0),
        ["duplicate name 'a'", "(also used at {path}:4:5)"],
    ),
    (
        "missing_network",
        HEAD,
        None,
        ["missing key 'network'"],
    ),
]


@pytest.mark.parametrize(("text", "at", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_is_located(cli, write_yaml, text, at, fragments):
    path = write_yaml(text)
    line, col = where(text, *at) if at else (1, 1)
    res = cli("check", path)
    assert_error(res, f"{path}:{line}:{col}", *[f.format(path=path) for f in fragments])
    # summary reports the same error the same way
    assert cli("summary", path).err == res.err


@pytest.mark.parametrize("nested", [False, True], ids=["document", "item"])
def test_python_yaml_tags_are_refused(cli, write_yaml, tmp_path, nested):
    marker = tmp_path / "PWNED"
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    text = HEAD + f"network:\n  - {tag}\n" if nested else tag + "\n"
    path = write_yaml(text)
    line, col = where(text, "!!python")
    assert_error(cli("check", path), f"{path}:{line}:{col}", "YAML tag", "is not allowed")
    assert not marker.exists()


def test_directory_as_spec(cli, tmp_path):
    d = tmp_path / "specdir"
    d.mkdir()
    assert_error(cli("check", d), f"{d}:1:1", "is a directory")


def test_missing_file(cli, tmp_path):
    p = tmp_path / "nothere.yaml"
    assert_error(cli("check", p), f"{p}:1:1", "cannot read")


def test_extends_cycle_between_two_files(cli, write_yaml):
    a_text = "extends: b.yaml\nname: a\n"
    b_text = "# b\nname: b\nextends: a.yaml\n"
    a, b = write_yaml(a_text, "a.yaml"), write_yaml(b_text, "b.yaml")
    # loading a -> b; b's 'extends: a.yaml' closes the cycle, so that value is the place to fix
    line, col = where(b_text, "a.yaml")
    assert_error(cli("check", a), f"{b}:{line}:{col}", "'extends' cycle", "a.yaml -> b.yaml -> a.yaml")
    line, col = where(a_text, "b.yaml")
    assert_error(cli("check", b), f"{a}:{line}:{col}", "'extends' cycle", "b.yaml -> a.yaml -> b.yaml")


def test_extends_missing_file(cli, write_yaml):
    text = "# variant\nextends: nothere.yaml\nname: v\n"
    path = write_yaml(text)
    line, col = where(text, "nothere.yaml")
    assert_error(cli("check", path), f"{path}:{line}:{col}", "'extends' names 'nothere.yaml', which does not exist")


def test_error_in_an_inherited_part_points_at_the_base_file(cli, write_yaml):
    base_text = HEAD + "params: {c: 4}\nnetwork:\n  - conv: {out: $c, kernal: 3}\n"
    base = write_yaml(base_text, "base.yaml")
    variant = write_yaml("extends: base.yaml\nname: v\nparams: {c: 8}\n", "variant.yaml")
    line, col = where(base_text, "kernal")
    assert_error(cli("check", variant), f"{base}:{line}:{col}", "unknown key 'kernal'")


def test_check_reports_every_bad_spec_and_still_checks_the_good_ones(cli, write_yaml):
    bad1 = write_yaml(HEAD + "network:\n  - conv: {out: 0, kernel: 1}\n", "bad1.yaml")
    bad2 = write_yaml("", "bad2.yaml")
    res = cli("check", bad1, SPECS / "mobilenet_v1.yaml", bad2)
    assert res.code == 2
    lines = res.err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{bad1}:4:") and lines[1].startswith(f"{bad2}:1:1: ")
    assert "mobilenet_v1.yaml: ok" in res.out


# ------------------------------------------------------------------ --set errors
def test_set_unknown_param_suggests(cli):
    res = cli("summary", SPECS / "densenet121.yaml", "--set", "growth_rat=48")
    assert_error(res, "--set growth_rat=48:1:1", "unknown param 'growth_rat'", "did you mean 'growth_rate'?")
    assert res.out == ""


def test_set_without_value(cli):
    assert_error(cli("check", SPECS / "densenet121.yaml", "--set", "growth_rate"), "--set growth_rate:1:1", "key=value")


def test_set_of_a_bad_input_size_points_at_the_override(cli):
    res = cli("check", SPECS / "googlenet.yaml", "--set", "input.height=0")
    assert_error(res, "--set input.height=0:1:14", "input height must be a positive integer, got 0")


def test_set_of_a_misspelt_input_key(cli):
    res = cli("check", SPECS / "googlenet.yaml", "--set", "input.heigth=96")
    assert_error(res, "--set input.heigth=96:1:1", "unknown key 'heigth'")


def test_argparse_usage_error_is_not_a_traceback(cli):
    res = cli("summary")
    assert res.code == 2 and "Traceback" not in res.err and "usage:" in res.err


# ------------------------------------------------------------------ known bugs (xfail, strict)
def test_unknown_top_level_key_suggests(cli, write_yaml):
    text = HEAD + "netwrk:\n  - relu\n"
    path = write_yaml(text)
    line, col = where(text, "netwrk")
    assert_error(cli("check", path), f"{path}:{line}:{col}", "unknown key 'netwrk'", "did you mean 'network'?")


def test_unknown_input_key_suggests_an_input_key(cli, write_yaml):
    text = "name: t\ninput: {height: 8, widht: 8, channels: 3}\nnetwork:\n  - relu\n"
    path = write_yaml(text)
    line, col = where(text, "widht")
    assert_error(cli("check", path), f"{path}:{line}:{col}", "unknown key 'widht'", "did you mean 'width'?")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (HEAD + "network:\n  - conv: {name: bad-name, out: 3, kernel: 1}\n", "bad-name"),
        ("name: bad-name\ninput: {height: 8, width: 8, channels: 3}\nnetwork:\n  - relu\n", "bad-name"),
        (HEAD + "params: {bad-p: 1}\nnetwork:\n  - relu\n", "bad-p"),
        (HEAD + "class_name: Bad-Name\nnetwork:\n  - relu\n", "Bad-Name"),
        (HEAD + "class_name: def\nnetwork:\n  - relu\n", "def"),
        (HEAD + "class_name: list\nnetwork:\n  - relu\n", "list"),
    ],
    ids=["layer_name", "model_name", "param_name", "class_name", "class_name_keyword", "class_name_builtin"],
)
def test_invalid_identifier_message(cli, write_yaml, text, needle):
    path = write_yaml(text)
    line, col = where(text, needle)
    res = cli("check", path)
    assert_error(res, f"{path}:{line}:{col}", needle)
    assert "$param" not in res.err  # a name can never be an expression


@pytest.mark.parametrize(
    ("spec", "sets"),
    [
        ("googlenet.yaml", ["size=16"]),  # aux 5x5 average pool on a 1x1 map
        ("googlenet.yaml", ["bn_eps=2"]),  # BN epsilon out of range, inside the stdlib's conv_bn_act
        ("densenet121.yaml", ["reduction=0"]),  # transition conv to int(c * 0) channels
    ],
)
def test_errors_caused_by_user_values_are_located_in_user_input(cli, spec, sets):
    argv = ["check", SPECS / spec]
    for s in sets:
        argv += ["--set", s]
    res = cli(*argv)
    assert res.code == 2 and "Traceback" not in res.err
    assert res.err.startswith((f"{SPECS / spec}:", "--set ")), res.err


def test_bad_argument_to_a_stdlib_block_is_located_at_the_call(cli, write_yaml):
    text = HEAD + "network:\n  - conv_bn_act: {out: 0, kernel: 1}\n"
    path = write_yaml(text)
    line, _ = where(text, "conv_bn_act")
    res = cli("check", path)
    assert res.code == 2
    assert res.err.startswith(f"{path}:{line}:"), res.err


def test_if_condition_must_be_a_bool(cli, write_yaml):
    # a literal `if: 'false'` is refused; the same string through a param silently means "true"
    text = HEAD + "params: {use: 'false'}\nnetwork:\n  - relu\n  - conv: {out: 4, kernel: 1, if: $use}\n"
    res = cli("check", write_yaml(text))
    assert res.code == 2 and "Traceback" not in res.err


def concat(name: str, of: str, times: int) -> str:
    """A param line ``name: '${of+of+...}'``."""
    return f"  {name}: '${{{'+'.join([of] * times)}}}'\n"


@pytest.mark.parametrize(
    "params",
    [
        # 10 -> 1,000 -> 100,000 -> 2,000,000 list elements; one more such param needs gigabytes
        "  a: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n" + concat("b", "a", 100) + concat("c", "b", 100) + concat("d", "c", 20),
        # 1,000 -> 100,000 -> 10,000,000 characters
        f"  s: '{'x' * 1000}'\n" + concat("t", "s", 100) + concat("u", "t", 100),
    ],
    ids=["list", "string"],
)
def test_expression_results_are_bounded(cli, write_yaml, params):
    res = cli("check", write_yaml(HEAD + "params:\n" + params + "network:\n  - relu\n"))
    assert res.code == 2 and "Traceback" not in res.err


def test_set_reads_scientific_notation_as_a_number():
    # YAML 1.1 reads 1e-3 as a string; on the command line it can only mean the number
    from archc import ir
    from archc.pipeline import compile_spec

    model = compile_spec(str(SPECS / "googlenet.yaml"), ["bn_eps=1e-3"])
    eps = {n.eps for n in ir.walk(model.body) if isinstance(n, ir.BatchNorm)}
    assert eps == {0.001}

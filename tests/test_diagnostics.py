"""Every independent error of a spec in one run (issue 24, item 3), as a modern compiler reports them: each at its
place (``file:line:col: message``, its notes after it), in the order of their places, at most 20 shown and the rest
counted, exit status 2; the first line stays the first error's. An error that follows only from another (a cascade)
is not reported: one mistake gives one error.

Lines and columns are computed from the YAML text written by each test (tests/test_core_errors.py's ``where``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from archc.errors import MAX_ERRORS, ArchcError, ErrorList
from tests import test_core_errors, test_reliability
from tests.test_core_errors import HEAD, where

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
LOCATED = re.compile(r"^[^\n]+?:\d+:\d+: ")


def errors_of(res) -> list[str]:
    """The first lines of the errors a run printed (their notes and the closing count left out)."""
    return [line for line in res.err.splitlines() if LOCATED.match(line) and ": note: " not in line]


def at(path, text: str, needle: str, nth: int = 1, shift: int = 0) -> str:
    """``path:line:col: `` of the ``nth`` ``needle`` in ``text``."""
    line, col = where(text, needle, nth, shift)
    return f"{path}:{line}:{col}: "


def assert_errors(res, path, expected: list[tuple[str, str]]) -> list[str]:
    """Exit status 2, no traceback, and exactly the ``expected`` errors, in this order: (``path:line:col: ``,
    a fragment of the message) each; then the count (none for one error)."""
    assert res.code == 2, (res.code, res.err)
    assert "Traceback" not in res.err
    errors = errors_of(res)
    assert len(errors) == len(expected), res.err
    for line, (place, fragment) in zip(errors, expected):
        assert line.startswith(place) and fragment in line, (place, fragment, res.err)
    assert res.err.startswith(expected[0][0])  # tools read the first line only: the first error, located
    last = res.err.splitlines()[-1]
    if len(expected) > 1:
        assert last == f"{path}: {len(expected)} errors", res.err
    else:
        assert not re.search(r": \d+ errors", res.err), res.err
    return errors


# ------------------------------------------------------------------ several mistakes, each reported
def test_three_mistakes_of_different_classes_give_three_located_errors(cli, write_yaml, tmp_path):
    """The acceptance test: an unknown key (the validation's), a negative width (the lowering's value check), an
    unknown kind (the lowering's template) in three items, the items between them correct."""
    text = (
        HEAD + "network:\n"
        "  - conv: {out: 8, kernal: 3}\n"
        "  - relu\n"
        "  - conv: {out: -8, kernel: 1}\n"
        "  - reshape\n"
        "  - gap\n"
        "  - dense: {out: 10}\n"
    )
    path = write_yaml(text)
    expected = [
        (at(path, text, "kernal"), "unknown key 'kernal' in 'conv' (did you mean 'kernel'?)"),
        (at(path, text, "-8"), "out must be a positive integer, got -8"),
        (at(path, text, "reshape"), "unknown block or kind 'reshape' (primitives: "),
    ]
    res = cli("check", path)
    assert_errors(res, path, expected)
    # every command that compiles the spec reports the same; a build writes nothing
    assert cli("summary", path).err == res.err
    out = tmp_path / "t.py"
    assert cli("build", path, "--backend", "torch", "-o", out).err == res.err
    assert not out.exists()


def test_mistakes_in_block_definitions_and_the_network(cli, write_yaml):
    """A block's mistakes are reported once however often it is called (with the first call as a note), a mistake
    after one in the same block body too, and the other block's and the network's."""
    text = (
        HEAD + "blocks:\n"
        "  unit:\n"
        "    params: {width: 8}\n"
        "    body:\n"
        "      - conv: {out: $width, kernel: 3, padding: 1, stride: 0}\n"
        "      - bn: {eps: -1}\n"
        "      - relu\n"
        "  other:\n"
        "    body:\n"
        "      - conv: {out: $widht, kernel: 1}\n"
        "network:\n"
        "  - unit\n"
        "  - unit: {width: 16}\n"
        "  - other\n"
        "  - maxpool: {kernel: 2, strid: 2}\n"
        "  - conv: {out: 4, kernel: 1, groups: 0}\n"
    )
    path = write_yaml(text)
    res = cli("check", path)
    assert_errors(
        res,
        path,
        [
            (at(path, text, "stride: 0", shift=8), "stride must be a positive integer, got 0"),
            (at(path, text, "-1"), "eps must be in (0, 1), got -1"),
            (at(path, text, "$widht"), "unknown param 'widht' in $widht (block 'other' has: no params)"),
            (at(path, text, "strid:"), "unknown key 'strid' in 'maxpool' (did you mean 'stride'?)"),
            (at(path, text, "groups: 0", shift=8), "groups must be a positive integer, got 0"),
        ],
    )
    lines = res.err.splitlines()
    assert lines[1] == at(path, text, "- unit\n", shift=2) + "note: in block 'unit', called here", res.err


def test_mistakes_in_each_part_of_a_spec(cli, write_yaml):
    """A param, a default, the input, a residual's body and its shortcut, both branches of a concat, a head: each
    mistake its own error, each part of the spec checked past the others."""
    text = (
        "name: t\ninput: {height: 0, width: 8, channels: 3}\n"
        "params: {w: 8, bad: '${1 // 0}'}\n"
        "defaults:\n  bn: {eps: 2}\n"
        "network:\n"
        "  - residual:\n"
        "      body: [conv: {out: $w, kernel: 1, dilation: 0}]\n"
        "      shortcut: [conv: {out: $w, kernel: 1, stride: -2}]\n"
        "  - concat:\n"
        "      - [conv: {out: 4, kernel: 0}]\n"
        "      - [dropout: {rate: 1.5}]\n"
        "  - bn\n"
        "  - conv: {name: stem, out: 4, kernel: 1}\n"
        "heads:\n"
        "  aux:\n"
        "    at: stem\n"
        "    body: [gap, dense: {out: -1}]\n"
    )
    path = write_yaml(text)
    assert_errors(
        cli("check", path),
        path,
        [
            (at(path, text, "height: 0", shift=8), "input height must be a positive integer, got 0"),
            (at(path, text, "'${1 // 0}'"), "cannot evaluate ${1 // 0}"),
            (at(path, text, "eps: 2", shift=5), "eps must be in (0, 1), got 2"),
            (at(path, text, "dilation: 0", shift=10), "dilation must be a positive integer, got 0"),
            (at(path, text, "-2"), "stride must be a positive integer, got -2"),
            (at(path, text, "kernel: 0", shift=8), "kernel must be a positive integer, got 0"),
            (at(path, text, "1.5"), "rate must be in [0, 1), got 1.5"),
            (at(path, text, "-1"), "out must be a positive integer, got -1"),
        ],
    )


def test_the_other_branches_of_a_failing_branch_are_checked(cli, write_yaml):
    """A residual whose body fails (its shape) has its shortcut checked, and a concat whose first branch fails its
    second; what follows them (their widths unknown) says nothing."""
    text = (
        HEAD + "network:\n"
        "  - residual:\n"
        "      body: [conv: {out: 3, kernel: 9}]\n"
        "      shortcut: [conv: {out: 3, kernel: 1, stride: 0}]\n"
        "  - concat:\n"
        "      - [conv: {out: 4, kernel: 1, dilation: 0}]\n"
        "      - [conv: {out: 4, kernel: 1, groups: 0}]\n"
        "  - conv: {out: '${in_channels // 3}', kernel: 1}\n"
    )
    path = write_yaml(text)
    assert_errors(
        cli("check", path),
        path,
        [
            (at(path, text, "conv: {out: 3, kernel: 9}"), "kernel 9x9 is larger than its input 8x8"),
            (at(path, text, "stride: 0", shift=8), "stride must be a positive integer, got 0"),
            (at(path, text, "dilation: 0", shift=10), "dilation must be a positive integer, got 0"),
            (at(path, text, "groups: 0", shift=8), "groups must be a positive integer, got 0"),
        ],
    )


@pytest.mark.parametrize(
    "input_, needle, said",
    [
        ("{height: 16, width: 16, depht: 3}", "depht", "unknown key 'depht' (did you mean 'depth'?)"),  # no repair
        ("{height: abc, width: 16, channels: 3}", "abc", "'height' must be"),
        ("{height: 16, width: 16}", "{", "missing key 'channels'"),
    ],
)
def test_a_problem_in_the_input_leaves_the_network_checked(cli, write_yaml, input_, needle, said):
    """The network's own mistakes are reported past an input that does not validate, its shape taken as unknown
    (as after an input error the lowering finds), and nothing that follows from the unknown shape."""
    text = (
        f"name: t\ninput: {input_}\nnetwork:\n"
        "  - conv: {out: 8, kernal: 3}\n"
        "  - maxpol: {kernel: 2}\n"
        "  - conv: {out: 16, kernel: 3, stride: 0}\n"
    )
    path = write_yaml(text)
    assert_errors(
        cli("check", path),
        path,
        [
            (at(path, text, needle), said),
            (at(path, text, "kernal"), "unknown key 'kernal' in 'conv' (did you mean 'kernel'?)"),
            (at(path, text, "maxpol"), "unknown block or kind 'maxpol' (did you mean 'maxpool'?)"),
            (at(path, text, "0", nth=1, shift=0), "stride must be a positive integer"),
        ],
    )


def test_validation_errors_and_lowering_errors_come_in_the_order_of_their_places(cli, write_yaml):
    text = (
        HEAD + "network:\n"
        "  - conv: {out: 0, kernel: 1}\n"  # lowering
        "  - conv: {out: 4, kernel: abc}\n"  # validation
        "  - maxpol: {kernel: 2}\n"  # lowering (template)
        "  - relu: {inplace: true}\n"  # validation
        "dco: a net\n"  # validation, outside the items
    )
    path = write_yaml(text)
    assert_errors(
        cli("check", path),
        path,
        [
            (at(path, text, "out: 0", shift=5), "out must be a positive integer"),
            (at(path, text, "abc"), "'kernel' in 'conv' must be"),
            (at(path, text, "maxpol"), "did you mean 'maxpool'?"),
            (at(path, text, "inplace"), "unknown key 'inplace' in 'relu'"),
            (at(path, text, "dco"), "unknown key 'dco' (did you mean 'doc'?)"),
        ],
    )


def test_an_independent_mistake_in_the_same_item_is_its_own_error(cli, write_yaml):
    text = HEAD + "network:\n  - conv: {out: 4, kernal: 3, stride: abc}\n"
    path = write_yaml(text)
    assert_errors(
        cli("check", path),
        path,
        [(at(path, text, "kernal"), "unknown key 'kernal'"), (at(path, text, "abc"), "'stride' in 'conv' must be")],
    )


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("conv: {out: 4, kernal: 3, strdie: 2}", "unknown keys 'kernal' (did you mean 'kernel'?), 'strdie' (did you "
         "mean 'stride'?) in 'conv'"),
        ("relu: {out: 4, kernel: 3}", "unknown keys 'out', 'kernel' in 'relu' (valid keys: from, if, name)"),
    ],
)  # fmt: skip
def test_the_unknown_keys_of_one_item_are_one_error(cli, write_yaml, item, said):
    """One item's unknown keys are one error naming them all (a wrong kind makes all its attributes unknown)."""
    text = f"{HEAD}network:\n  - {item}\n  - conv: {{out: 4, kernel: 0}}\n"
    path = write_yaml(text)
    key = item.split("{")[1].split(":")[0] if item.startswith("relu") else "kernal"
    assert_errors(
        cli("check", path),
        path,
        [(at(path, text, key), said), (at(path, text, "kernel: 0", shift=8), "kernel must be a positive integer")],
    )


def test_each_spec_of_a_check_has_its_own_errors_and_count(cli, write_yaml):
    a_text = HEAD + "network:\n  - conv: {out: 0, kernel: 1}\n  - conv: {out: 4, kernel: 0}\n"
    b_text = HEAD + "network:\n  - dense: {out: 0}\n"
    a, b = write_yaml(a_text, "a.yaml"), write_yaml(b_text, "b.yaml")
    res = cli("check", a, SPECS / "mobilenet_v1.yaml", b)
    assert res.code == 2 and "mobilenet_v1.yaml: ok" in res.out
    assert res.err.splitlines() == [
        at(a, a_text, "out: 0", shift=5) + "out must be a positive integer, got 0",
        at(a, a_text, "kernel: 0", shift=8) + "kernel must be a positive integer, got 0",
        f"{a}: 2 errors",
        at(b, b_text, "out: 0", shift=5) + "out must be a positive integer, got 0",
    ]


def test_the_api_raises_every_error_as_one_archc_error(write_yaml):
    from archc.pipeline import compile_spec

    text = HEAD + "network:\n  - conv: {out: 0, kernel: 1}\n  - conv: {out: 4, kernel: 0}\n"
    path = write_yaml(text)
    with pytest.raises(ArchcError) as info:
        compile_spec(str(path))
    exc = info.value
    assert isinstance(exc, ErrorList) and len(exc.errors) == 2
    assert (exc.message, exc.loc) == (exc.errors[0].message, exc.errors[0].loc)  # the first error, for a caller
    assert str(exc).splitlines()[0] == exc.errors[0].first_line


# ------------------------------------------------------------------ no cascades
CASCADES = [
    (
        # the width after the bad conv is unknown: the conv reading it, and the dense after it, say nothing
        "bad_width_read_later",
        "network:\n  - conv: {out: -4, kernel: 1}\n  - conv: {out: '${in_channels * 2}', kernel: 1}\n"
        "  - dwconv: {kernel: 3, multiplier: 1}\n  - gap\n  - dense: {out: '${in_channels // 2}'}\n",
        ("-4", 1, 0),
    ),
    (
        # 8x8 -> a 9x9 kernel does not fit: the shapes after it are unknown, so the next kernels say nothing
        "shape_error_then_shape_dependent_items",
        "network:\n  - conv: {out: 4, kernel: 9}\n  - conv: {out: 4, kernel: 7}\n  - maxpool: {kernel: 8}\n"
        "  - flatten\n  - dense: {out: 10}\n",
        ("conv: {out: 4, kernel: 9}", 1, 0),
    ),
    (
        # one bad param, read by three items (two through expressions): one error, at the param
        "bad_param_read_three_times",
        "params: {w: -2}\nnetwork:\n  - conv: {out: $w, kernel: 1}\n  - conv: {out: '${w * 4}', kernel: 1}\n"
        "  - conv: {out: $w, kernel: 1}\n",
        ("-2", 1, 0),
    ),
    (
        # a param that cannot be evaluated: what reads it is unknown
        "param_that_fails",
        "params: {w: '${2 // 0}'}\nnetwork:\n  - conv: {out: $w, kernel: 1}\n  - conv: {out: '${w + 1}', kernel: 1}\n",
        ("'${2", 1, 0),
    ),
    (
        # an item the validation refused: its width, and a head attached at it, are unknown
        "refused_item_with_a_head_at_it",
        "network:\n  - conv: {name: stem, out: 8, kernal: 3}\n  - conv: {out: '${in_channels // 2}', kernel: 1}\n"
        "heads:\n  aux:\n    at: stem\n    body: [gap, dense: {out: '${in_channels}'}]\n",
        ("kernal", 1, 0),
    ),
    (
        # an unknown block: the width after it is unknown
        "unknown_block_then_width_readers",
        "network:\n  - conv: {out: 4, kernel: 1}\n  - no_such_block: {w: 4}\n"
        "  - conv: {out: '${in_channels}', kernel: 1}\n",
        ("no_such_block", 1, 0),
    ),
    (
        # an item the validation refused keeps its place in the automatic names (conv1, conv2): no clash with 'conv'
        "refused_item_keeps_the_automatic_names",
        "network:\n  - conv: {out: 4, kernal: 1}\n  - conv: {out: 4, kernel: 1}\n  - relu: {name: conv}\n",
        ("kernal", 1, 0),
    ),
    (
        # a misspelt default of a block's required param: no 'needs param' at each call
        "misspelt_block_default",
        "defaults:\n  b: {widht: 4}\n"
        "blocks:\n  b:\n    params: {width: null}\n    body: [conv: {out: $width, kernel: 1}]\n"
        "network:\n  - b\n  - b\n",
        ("widht", 1, 0),
    ),
    (
        # an item copied: its name clashes, and its shapes (8x8 -> 4x4: the copy's 5x5 kernel does not fit) say nothing
        "copied_item",
        "network:\n  - conv: {name: a, out: 4, kernel: 5}\n  - conv: {name: a, out: 4, kernel: 5}\n  - gap\n",
        ("conv: {name: a", 2, 0),
    ),
    (
        # a param of the wrong type: an expression reading it cannot be evaluated, and neither is the value check of
        # a later use reported (the same bad value)
        "param_of_the_wrong_type_evaluated_first",
        "params: {w: abc}\nnetwork:\n  - conv: {out: '${w * 2}', kernel: 1}\n  - conv: {out: $w, kernel: 1}\n",
        ("'${w", 1, 0),
    ),
    (
        "param_of_the_wrong_type_checked_first",
        "params: {w: abc}\nnetwork:\n  - conv: {out: $w, kernel: 1}\n  - conv: {out: '${w * 2}', kernel: 1}\n",
        ("abc", 1, 0),
    ),
    (
        # a param of the wrong type read by two params: the second's failure is the first's
        "params_reading_a_param_of_the_wrong_type",
        "params: {m: abc, a: '${m * 2.5}', b: '${m * 3.5}'}\nnetwork:\n  - conv: {out: $b, kernel: 1}\n",
        ("'${m * 2.5}'", 1, 0),
    ),
    (
        # a param misspelt where it is defined: one error at its first use, the other uses as notes
        "misspelt_param_used_three_times",
        "params: {widht: 8}\nnetwork:\n  - conv: {out: $width, kernel: 1}\n  - conv: {out: $width, kernel: 1}\n"
        "  - dense: {out: '${width * 2}'}\n",
        ("$width", 1, 0),
    ),
    (
        # a refused item without a name: the automatic name it would get (relu2) is not claimed against relu2
        "refused_unnamed_item_among_named_ones",
        "network:\n  - relu: {name: relu2}\n  - relu: 5\n  - relu\n",
        ("5", 1, 0),
    ),
    (
        # a default for a block's param of another name: no 'needs param' at each call
        "block_default_for_no_param",
        "defaults:\n  b: {size: 4}\n"
        "blocks:\n  b:\n    params: {width: null}\n    body: [conv: {out: $width, kernel: 1}]\n"
        "network:\n  - b\n  - b\n",
        ("size", 1, 0),
    ),
    (
        # a misspelt input key is taken for the key it is a typo of: no 'input needs height and width'
        "misspelt_input_key",
        "network:\n  - conv: {out: 4, kernel: 3}\n",
        None,
    ),
    (
        # a mistake inside a block called twice, and a block whose mistake is in a branch of an add
        "block_called_twice",
        "blocks:\n  b:\n    body:\n"
        "      - add:\n          - [conv: {out: 4, kernel: 1, stride: 0}]\n          - [relu]\n"
        "network:\n  - b\n  - b\n  - conv: {out: '${in_channels}', kernel: 1}\n",
        ("stride: 0", 1, 8),
    ),
]


@pytest.mark.parametrize(("body", "at_"), [c[1:] for c in CASCADES], ids=[c[0] for c in CASCADES])
def test_a_mistake_is_reported_once_not_what_follows_from_it(cli, write_yaml, body, at_):
    head = "name: t\ninput: {height: 8, widht: 8, channels: 3}\n" if at_ is None else HEAD
    text = head + body
    path = write_yaml(text)
    res = cli("check", path)
    place = at(path, text, "widht") if at_ is None else at(path, text, *at_)
    assert_errors(res, path, [(place, "")])


def test_the_other_uses_of_a_missing_param_are_notes(cli, write_yaml):
    text = HEAD + dict((c[0], c[1]) for c in CASCADES)["misspelt_param_used_three_times"]
    path = write_yaml(text)
    res = cli("check", path)
    assert res.err.splitlines() == [
        at(path, text, "$width") + "unknown param 'width' in $width (the network has: widht) (did you mean 'widht'?)",
        at(path, text, "$width", 2) + "note: 'width' is used here too",
        at(path, text, "'${width") + "note: 'width' is used here too",
    ]


# ------------------------------------------------------------------ the limit
def test_at_most_twenty_errors_are_shown_and_the_rest_counted(cli, write_yaml):
    n = MAX_ERRORS + 5
    text = HEAD + "network:\n" + "".join(f"  - conv: {{name: c{i}, out: 0, kernel: 1}}\n" for i in range(n))
    path = write_yaml(text)
    res = cli("check", path)
    assert res.code == 2
    errors = errors_of(res)
    assert errors == [at(path, text, f"c{i}, out: 0", shift=len(f"c{i}, out: ")) + "out must be a positive integer, "
                      "got 0" for i in range(MAX_ERRORS)]  # fmt: skip
    assert res.err.splitlines()[-1] == f"{path}: {n} errors; the first {MAX_ERRORS} shown, 5 more not shown"
    assert len(res.err.splitlines()) == MAX_ERRORS + 1


# ------------------------------------------------------------------ one mistake, one error
def _params(test) -> list:
    """The parameter sets of a parametrized test (one source for the cases)."""
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
    return list(mark.args[1])


def _single_mistakes() -> list:
    """(id, YAML text or a spec of the zoo, --set arguments) of every one-mistake spec of tests/test_core_errors.py and
    tests/test_reliability.py that check refuses."""
    cases = [(f"core_errors-{c[0]}", c[1], ()) for c in test_core_errors.CASES]
    for text, needle in _params(test_core_errors.test_invalid_identifier_message):
        cases.append((f"identifier-{needle}", text, ()))
    cases.append(
        (
            "if_not_bool",
            HEAD + "params: {use: 'false'}\nnetwork:\n  - relu\n  - conv: {out: 4, kernel: 1, if: $use}\n",
            (),
        )
    )
    for expr, _ in _params(test_reliability.test_expressions_bounded_in_time_and_size):
        cases.append((f"expression-{expr}", f"{HEAD}network:\n  - conv: {{out: '{expr}', kernel: 1}}\n", ()))
    for value, tag in _params(test_reliability.test_every_tagged_scalar_error_is_located):
        if tag is not None:
            cases.append((f"tag-{value}", f"{HEAD}network:\n  - conv: {{out: 3, kernel: 1, bias: {value}}}\n", ()))
    for item, _ in _params(test_reliability.test_suggestions_only_when_close):
        cases.append((f"suggestion-{item}", f"{HEAD}network:\n  - {item}\n", ()))
    for spec, sets in _params(test_core_errors.test_errors_caused_by_user_values_are_located_in_user_input):
        cases.append((f"zoo-{spec}-{sets[0]}", SPECS / spec, tuple(f"--set={s}" for s in sets)))
    cases.append(("zoo-densenet169.yaml-growth_rate=-3", SPECS / "densenet169.yaml", ("--set=growth_rate=-3",)))
    # found by tests/fuzz.py's one-mutation cases: a value the stdlib's blocks compute from a bad param (the stage
    # depths from depth_mult), a param of the wrong type that every width reads
    for s in ("depth_mult=-2", "width_mult=abc"):
        cases.append((f"zoo-efficientnet_b0.yaml-{s}", SPECS / "efficientnet_b0.yaml", (f"--set={s}",)))
    # a param that every block call receives through defaults: (its value checked at the first call only)
    cases.append(("zoo-mobilenet_v1.yaml-alpha=.nan", SPECS / "mobilenet_v1.yaml", ("--set=alpha=.nan",)))
    return cases


# one spec of those gives two errors, each true on its own: googlenet at 16x16 has two aux heads whose 5x5
# average pools each meet a 1x1 map (two places to change, found independently: the heads do not depend on each
# other)
TWO_PLACES = {"zoo-googlenet.yaml-size=16": 2}


@pytest.mark.parametrize(("text", "sets"), [c[1:] for c in _single_mistakes()], ids=[c[0] for c in _single_mistakes()])
def test_one_mistake_gives_one_error(cli, write_yaml, request, text, sets):
    path = text if isinstance(text, Path) else write_yaml(text)
    res = cli("check", path, *sets)
    assert res.code == 2 and "Traceback" not in res.err, res.err
    want = TWO_PLACES.get(request.node.callspec.id, 1)
    assert len(errors_of(res)) == want, res.err
    assert bool(re.search(rf"^{re.escape(str(path))}: \d+ errors$", res.err, re.M)) == (want > 1), res.err


def test_a_mistake_in_an_extends_base_is_one_error(cli, write_yaml):
    base = write_yaml(HEAD + "params: {c: 4}\nnetwork:\n  - conv: {out: $c, kernal: 3}\n  - relu\n", "base.yaml")
    variant = write_yaml("extends: base.yaml\nname: v\nparams: {c: 8}\n", "variant.yaml")
    res = cli("check", variant)
    assert len(errors_of(res)) == 1 and res.err.startswith(f"{base}:"), res.err


# ------------------------------------------------------------------ item 3's other points
@pytest.mark.parametrize(
    ("item", "said"),
    [("upsample: {scale: x}", "'scale' in 'upsample' must be"), ("scale: {factor: x}", "'factor' in 'scale' must be")],
)
def test_a_bad_value_names_its_item_kind_not_an_attribute_named_as_a_kind(cli, write_yaml, item, said):
    """upsample's attribute `scale` is also a kind's name: the message names the item's kind, upsample."""
    res = cli("check", write_yaml(f"{HEAD}network:\n  - {item}\n"))
    assert res.code == 2 and said in res.err, res.err


def test_a_layer_may_be_called_input_and_both_models_run(cli, write_yaml, tmp_path):
    """Items named input (and inputs), in the network and in a block, in both backends: the models build and run
    (tests/test_reliability.py builds both and runs the Keras one, whose own input layer yields the name)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("keras")
    import importlib.util

    import numpy as np

    text = (
        f"{HEAD}blocks:\n  b:\n    body: [conv: {{name: input, out: 4, kernel: 1}}, relu: {{name: inputs}}]\n"
        "network:\n  - b: {name: input}\n  - conv: {name: inputs, out: 4, kernel: 3}\n  - gap\n"
    )
    path = write_yaml(text)
    outputs = {}
    for backend in ("torch", "keras"):
        out = tmp_path / f"input_{backend}.py"
        assert cli("build", path, "--backend", backend, "-o", out).code == 0
        spec = importlib.util.spec_from_file_location(f"input_{backend}", out)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.build_model()
        if backend == "torch":
            outputs[backend] = tuple(model.eval()(torch.zeros(2, 3, 8, 8)).shape)
        else:
            outputs[backend] = tuple(model(np.zeros((2, 8, 8, 3), "float32")).shape)
    assert outputs == {"torch": (2, 4), "keras": (2, 4)}


def test_the_api_names_the_backend_of_a_refusal_once(write_yaml, monkeypatch):
    """archc.source adds the backend's name to a refusal as `archc build` does: once (a refusal that names it
    already; was: 'torch backend: torch backend: ...'). No valid spec is refused by a backend any more: the refusal
    is made up here."""
    from archc.backends.common import Unsupported
    from archc.backends.torch import emitter

    import archc

    def refuse(self, model):
        raise Unsupported("torch backend: a refusal this test makes up", None)

    monkeypatch.setattr(emitter.TorchEmitter, "emit", refuse, raising=False)
    spec = write_yaml("name: t\ninput: {height: 8, width: 8, channels: 3}\nnetwork: [relu]\n")
    with pytest.raises(ArchcError) as info:
        archc.source(str(spec), "torch")
    assert str(info.value).count("torch backend:") == 1, str(info.value)


# ------------------------------------------------------------------ valid specs are not changed by any of this
def test_valid_specs_check_as_before(cli):
    specs = sorted(SPECS.glob("*.yaml"))
    res = cli("check", *specs)
    assert res.code == 0, res.err
    assert len([line for line in res.out.splitlines() if ": ok (" in line]) == len(specs)
    assert "error" not in res.err  # (the zoo's lint warnings stay as they were)

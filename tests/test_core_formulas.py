"""The analysis formulas and the expression language, against values worked out by hand.

Shape references: PyTorch's documented Conv2d / MaxPool2d output sizes (ceil_mode: the last window must start
inside the input or its left padding) and TensorFlow's 'same' padding (out = ceil(n / s), smaller half first).
"""

from __future__ import annotations

import pytest

from archc import analysis
from archc.errors import ArchcError
from archc.expr import Expr, evaluate, parse, substitute, sym_add, sym_mul, value


@pytest.mark.parametrize(
    ("n", "k", "s", "d", "expected"),
    [
        (224, 3, 2, 1, (0, 1)),  # out 112: (112-1)*2 + 3 - 224 = 1
        (225, 3, 2, 1, (1, 1)),  # out 113: 112*2 + 3 - 225 = 2
        (224, 7, 2, 1, (2, 3)),  # 111*2 + 7 - 224 = 5
        (5, 3, 1, 1, (1, 1)),
        (4, 1, 2, 1, (0, 0)),  # 1x1 kernels never pad
        (7, 3, 1, 2, (2, 2)),  # dilated: effective kernel 5
        (3, 5, 2, 1, (2, 2)),  # out 2: 1*2 + 5 - 3 = 4
    ],
)
def test_tf_same_padding(n, k, s, d, expected):
    assert analysis.same_padding(n, k, s, d) == expected
    before, after = expected
    assert analysis.conv_out(n, k, s, d, before, after) == -(-n // s)  # 'same' gives ceil(n / s)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((224, 7, 2, 1, 3, 3), 112),
        ((112, 3, 2, 1, 1, 1), 56),
        ((57, 2, 2, 1, 0, 0), 28),
        ((7, 3, 1, 2, 2, 2), 7),  # dilation 2, padding 2 keeps the size
        ((97, 3, 2, 1, 0, 0), 48),
        ((8, 3, 1, 1, 0, 1), 7),  # asymmetric padding
    ],
)
def test_conv_out(args, expected):
    assert analysis.conv_out(*args) == expected


@pytest.mark.parametrize(
    ("n", "k", "s", "p0", "p1", "ceil", "expected"),
    [
        (112, 3, 2, 0, 0, True, 56),  # torchvision GoogLeNet: ceil(109/2)+1
        (112, 3, 2, 0, 0, False, 55),
        (112, 3, 2, 1, 1, False, 56),
        (14, 2, 2, 0, 0, True, 7),
        (5, 2, 2, 0, 0, True, 3),  # the last window hangs over the end but starts inside
        (3, 2, 2, 1, 1, True, 2),  # ceil(3/2)+1 = 3, but window 3 would start at 4 >= 3+1: dropped
        (14, 5, 3, 0, 0, False, 4),  # aux head pool
        (6, 5, 3, 0, 0, False, 1),
    ],
)
def test_pool_out(n, k, s, p0, p1, ceil, expected):
    assert analysis.pool_out(n, k, s, p0, p1, ceil) == expected


def test_params_and_macs_of_leaves():
    from archc import ir

    conv = ir.Conv(
        name="c", path="c", in_shape=(8, 8, 6), out_shape=(4, 4, 9), in_channels=6, out_channels=9, kernel=(3, 3),
        stride=(2, 2), dilation=(1, 1), groups=3, depthwise=False, bias=True, padding=(1, 1, 1, 1), same=False,
    )  # fmt: skip
    assert analysis.params_of(conv) == (3 * 3 * 2 * 9 + 9, 0)
    assert analysis.macs_of(conv) == 4 * 4 * 9 * 3 * 3 * 2
    bn = ir.BatchNorm(name="b", path="b", in_shape=(4, 4, 9), out_shape=(4, 4, 9), channels=9, eps=1e-5, momentum=0.1)
    assert analysis.params_of(bn) == (18, 18) and analysis.macs_of(bn) == 0
    dense = ir.Dense(name="d", path="d", in_shape=(10,), out_shape=(3,), in_features=10, out_features=3, bias=False)
    assert analysis.params_of(dense) == (30, 0) and analysis.macs_of(dense) == 30


# ------------------------------------------------------------------ expressions
SCOPE = {"growth_rate": 32, "bn_size": 4, "reduction": 0.5, "block_config": (6, 12, 24, 16), "alpha": 0.25, "s": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$growth_rate", 32),
        ("${bn_size * growth_rate}", 128),
        ("${int(255 * reduction)}", 127),
        ("${block_config[2]}", 24),
        ("${block_config[-1] + 1}", 17),
        ("${int(1024 * alpha)}", 256),
        ("${'same' if s == 1 else 'valid'}", "valid"),
        ("${s != 1}", True),
        ("${max(1, growth_rate // 5)}", 6),
        ("${len(block_config)}", 4),
        ("${2 ** 10}", 1024),
        ("${-s}", -2),
    ],
)
def test_expression_values(text, expected):
    assert evaluate(parse(text), SCOPE) == expected
    assert value(text, SCOPE) == expected


def test_value_leaves_literals_and_walks_lists():
    assert value(3, SCOPE) == 3
    assert value([1, "$s", "${s * 2}"], SCOPE) == [1, 2, 4]
    assert value("same", SCOPE) == "same"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${growht_rate * 2}", "did you mean 'growth_rate'?"),
        ("${1 / 0}", "cannot evaluate"),
        ("${block_config[9]}", "cannot evaluate"),
        ("${2 ** 100}", "too large"),
        ("${10 ** 13 * 10 ** 13}", "out of range"),
        ("${[1] * 3}", "cannot repeat"),
        ("${int}", "is a function"),
    ],
)
def test_expression_evaluation_errors(text, fragment):
    with pytest.raises(ArchcError) as exc:
        evaluate(parse(text), SCOPE)
    assert fragment in str(exc.value)


@pytest.mark.parametrize(
    "text",
    [
        "${__import__('os')}",
        "${s.real}",
        "${open('x')}",
        "${(lambda: 1)()}",
        "${[x for x in block_config]}",
        "${s",
        "$",
    ],
)
def test_expression_whitelist(text):
    with pytest.raises(ArchcError):
        parse(text)


def test_symbolic_channel_arithmetic():
    e = substitute(Expr("bn_size * growth_rate + in_channels"), {"bn_size": 4, "growth_rate": 32})
    assert evaluate(e, {"in_channels": 64}) == 192
    assert str(sym_add(Expr("in_channels"), 0)) == "in_channels"
    assert str(sym_mul(Expr("in_channels"), 1)) == "in_channels"
    assert evaluate(sym_add(Expr("in_channels"), sym_mul(6, 32)), {"in_channels": 64}) == 256
    assert str(sym_add(2, 3)) == "5"

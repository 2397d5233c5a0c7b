"""Networks of every rank (1-D, 2-D, 3-D), transposed convolutions, resampling and constant scaling.

Each case is a small spec; for each: the analysis' shapes and counts equal the PyTorch model's own, and the
generated PyTorch and Keras models compute the same numbers (tests/rank_parity.py: weights converted through the
IR, float64 where TensorFlow has the kernels, so the bound is a float64 one: both backends run the same algorithm).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from archc.analysis import analyze
from archc.pipeline import compile_spec

torch = pytest.importorskip("torch")
pytest.importorskip("keras")

from tests.rank_parity import load, parity  # noqa: E402

# float64 runs: both backends compute one algorithm, so they agree to rounding (seen: 4e-16)
FLOAT64_BOUND = 1e-12
# float32 (TensorFlow has no float64 3-D pooling): unit-roundoff 6e-8 times a few dozen accumulations per output at
# these depths and widths gives ~1e-6; seen 2.5e-7
FLOAT32_BOUND = 1e-5

ONE_D = "input: {length: $size, channels: 2}\nparams: {size: 50}\n"
TWO_D = "input: {height: $size, width: $size, channels: 3}\nparams: {size: 11}\n"
THREE_D = "input: {depth: 6, height: $size, width: $size, channels: 3}\nparams: {size: 9}\n"

CASES = {
    # 1-D: audio-style stems, every padding form, pools with ceil and count_include_pad, flatten + dense
    "conv1d_same_stride": (
        ONE_D,
        "[conv: {out: 4, kernel: 7, stride: 3, padding: same}, bn, relu, gap, dense: {out: 3}]",
    ),
    "conv1d_pair_padding": (
        ONE_D,
        "[conv: {out: 4, kernel: [5], padding: [[1, 3]], dilation: 2}, flatten, dense: {out: 3}]",
    ),
    "dwconv1d": (ONE_D, "[dwconv: {kernel: 3, multiplier: 2, stride: 2, padding: 1}, bn, relu6]"),
    "maxpool1d_ceil": (ONE_D, "[maxpool: {kernel: 3, stride: 2, ceil: true}, maxpool: {kernel: 4, padding: [[0, 2]]}]"),
    "avgpool1d_all": (
        ONE_D,
        "[avgpool: {kernel: 3, stride: 2, padding: 1, ceil: true, count_include_pad: false},"
        " avgpool: {kernel: 3, padding: same}, avgpool: {kernel: 2, stride: 2, padding: [[0, 1]]}]",
    ),
    "zeropad1d_global": (ONE_D, "[zeropad: {padding: [[2, 1]]}, conv: {out: 3, kernel: 3}, global_maxpool]"),
    "adaptive1d": (ONE_D, "[conv: {out: 3, kernel: 3}, adaptive_avgpool: {size: 7}, flatten, dense: {out: 2}]"),
    # 2-D pools the backends could not build before: 'same' averages, explicit asymmetric padding, ceil with
    # count_include_pad false, 'same' with count_include_pad true (TensorFlow would leave the padding out)
    "avgpool2d_same_counting_padding": (
        TWO_D,
        "[avgpool: {kernel: 3, stride: 2, padding: same, count_include_pad: true}]",
    ),
    "avgpool2d_same": (TWO_D, "[avgpool: {kernel: 3, stride: 2, padding: same}]"),
    "avgpool2d_asymmetric": (
        TWO_D,
        "[avgpool: {kernel: 3, stride: 2, padding: [0, 2, 1, 0], count_include_pad: false}]",
    ),
    "avgpool2d_ceil_exclude": (
        TWO_D,
        "[avgpool: {kernel: 3, stride: 2, padding: 1, ceil: true, count_include_pad: false}]",
    ),
    "maxpool2d_asymmetric_ceil": (
        TWO_D,
        "[relu, maxpool: {kernel: 2, stride: 3, padding: [[0, 1], [1, 0]], ceil: true}]",
    ),
    # 3-D: the video stem, per-axis everything, depthwise with a multiplier
    "conv3d_stem": (
        THREE_D,
        "[conv: {out: 4, kernel: [3, 7, 7], stride: [1, 2, 2], padding: [1, 3, 3], bias: false}, bn, relu,"
        " maxpool: {kernel: 3, stride: 2, padding: 1}, gap, dense: {out: 5}]",
    ),
    "dwconv3d": (
        THREE_D,
        "[dwconv: {kernel: 3, padding: same, multiplier: 2}, conv: {out: 3, kernel: 1}, flatten, dense: {out: 2}]",
    ),
    "pools3d": (
        THREE_D,
        "[avgpool: {kernel: [1, 3, 3], stride: 2, padding: same}, zeropad: {padding: [0, [1, 0], 1]},"
        " avgpool: {kernel: 2, ceil: true}]",
    ),
    "adaptive3d": (THREE_D, "[adaptive_avgpool: {size: [2, 3, 2]}, global_maxpool]"),
    # transposed convolutions: output_padding past the padding, kernel shorter than the stride, dilation
    "conv_transpose2d": (
        TWO_D,
        "[conv_transpose: {out: 4, kernel: 3, stride: 2, padding: 1, output_padding: 1}, bn, relu,"
        " conv_transpose: {out: 3, kernel: 2, stride: 3, output_padding: [2, 0]},"
        " conv_transpose: {out: 2, kernel: 3, padding: [0, 2], bias: false}]",
    ),
    "conv_transpose1d": (ONE_D, "[conv_transpose: {out: 3, kernel: 4, stride: 2, padding: 1}]"),
    # a block param where the emitters wrote literals: a zeropad's padding in each of its forms
    "zeropad_param": (
        TWO_D + "blocks: {b: {params: {p: 1}, body: [zeropad: {padding: $p}, conv: {out: 3, kernel: 3}]}}\n",
        "[b, b: {p: [1, 2]}, b: {p: [[0, 1], [2, 0]]}, b: {p: [1, 0, 0, 2]}]",
    ),
    # a block's conv padding param that is asymmetric at some call ('same' at stride 2, explicit pairs): PyTorch pads
    # at run time (Conv2dPadding), where its own padding is symmetric
    "conv_padding_param": (
        TWO_D + "blocks: {b: {params: {p: 1, s: 2}, body: [conv: {out: 3, kernel: 3, stride: $s, padding: $p}]}}\n",
        "[b: {p: same}, b: {p: [[0, 1], [1, 0]], s: 1}, b, b: {p: valid, s: 1}, b: {p: same, s: 1}]",
    ),
    "conv_padding_param1d": (
        ONE_D + "blocks: {b: {params: {p: 1}, body: [conv: {out: 2, kernel: 4, stride: 3, padding: $p}]}}\n",
        "[b: {p: same}, b: {p: [[2, 0]]}, b]",
    ),
    "zeropad_param1d": (
        ONE_D + "blocks: {b: {params: {p: 1}, body: [zeropad: {padding: $p}, conv: {out: 2, kernel: 3}]}}\n",
        "[b, b: {p: [[2, 0]]}, b: {p: [3]}]",
    ),
    # a block's transposed conv whose padding and output padding differ between its calls (Keras works out its
    # output padding and cropping when the function runs), a kernel shorter than the stride among them
    "conv_transpose_per_call": (
        TWO_D + "blocks: {up: {params: {p: 0, op: 0, k: 3}, body: [conv_transpose: {out: 3, kernel: $k, stride: 2,"
        " padding: $p, output_padding: $op}]}}\n",
        "[up, up: {p: 1, op: 1}, up: {p: [2, 0], op: [0, 1]}, up: {k: 1, p: 0, op: 1}]",
    ),
    "conv_transpose3d": (
        THREE_D,
        "[conv_transpose: {out: 2, kernel: [1, 4, 4], stride: [1, 2, 2], padding: [0, 1, 1]}]",
    ),
    # resampling: integer and fractional scales, sizes, the input's size, every mode, align_corners both ways
    "upsample2d": (
        TWO_D,
        "[upsample: {scale: 2}, upsample: {scale: 1.5, mode: bilinear}, upsample: {size: [7, 9], mode: bilinear,"
        " align_corners: true}, upsample: {scale: [2, 3], mode: bilinear}, upsample: {size: 5},"
        " upsample: {size: input, mode: bilinear}]",
    ),
    "upsample1d": (
        ONE_D,
        "[upsample: {scale: 3, mode: linear}, upsample: {size: 31, mode: linear, align_corners: true}]",
    ),
    "upsample3d": (
        THREE_D,
        "[upsample: {scale: [1, 2, 2], mode: trilinear}, upsample: {scale: 2}, upsample: {size: input}]",
    ),
    "scale": (TWO_D, "[conv: {out: 4, kernel: 1}, scale: {factor: 0.17}, relu]"),
    # strides TensorFlow's kernels cannot take (with dilation; a 2-D depthwise conv's unequal strides): Keras runs
    # them at stride 1 and keeps every stride-th output
    "strided_dilated2d": (
        TWO_D,
        "[conv: {out: 4, kernel: 3, stride: 2, dilation: 2, padding: same}, dwconv: {kernel: 3, stride: [1, 2],"
        " padding: 1}, conv: {out: 5, kernel: [3, 2], stride: [2, 1], dilation: [1, 2], padding: [[1, 0], [0, 2]]}]",
    ),
    "strided_dilated3d": (
        THREE_D,
        "[conv: {out: 4, kernel: 3, stride: 2, dilation: 2, padding: same},"
        " dwconv: {kernel: 3, stride: [1, 2, 1], padding: 1, dilation: [2, 1, 1], multiplier: 2}]",
    ),
}
FLOAT32 = {name for name, (head, _) in CASES.items() if head is THREE_D}


def spec_text(name: str) -> str:
    head, items = CASES[name]
    return f"name: {name}\n{head}network: {items}\n"


@pytest.fixture
def spec(tmp_path):
    def write(name: str):
        path = tmp_path / f"{name}.yaml"
        path.write_text(spec_text(name), encoding="utf-8")
        return path

    return write


@pytest.mark.parametrize("name", list(CASES))
def test_torch_equals_keras(name, spec):
    dtype = "float32" if name in FLOAT32 else "float64"
    yt, yk, err = parity(spec(name), dtype=dtype)
    assert np.isfinite(yt).all()
    assert err <= (FLOAT32_BOUND if dtype == "float32" else FLOAT64_BOUND), err


def test_gelu_approximation_as_a_block_param(tmp_path):
    """gelu's ``approximate`` given by a block's param (exact in one call, tanh in the other): built by both backends,
    the same numbers. TensorFlow's float64 GELU is not PyTorch's to rounding (a literal gelu, exact or tanh, differs
    by 3e-9 / 6e-10 relative here): the bound is 1e-7."""
    path = tmp_path / "gelu.yaml"
    path.write_text(
        "name: gelu_param\n" + TWO_D + "blocks: {b: {params: {a: none}, body: [gelu: {approximate: $a},"
        " conv: {out: 3, kernel: 3, padding: 1}]}}\nnetwork: [b, b: {a: tanh}]\n",
        encoding="utf-8",
    )
    _, _, err = parity(path)
    assert err <= 1e-7, err


@pytest.mark.parametrize("name", list(CASES))
def test_analysis_equals_pytorch(name, spec):
    """Output shapes of every layer and parameter counts: the analysis (no framework) against the PyTorch model."""
    from archc.backends import get_backend

    model = compile_spec(str(spec(name)), [])
    net = load(get_backend("torch").emit(model), f"ranks_shapes_{name}").build_model().eval()
    report = analyze(model)
    assert report.trainable == sum(p.numel() for p in net.parameters())
    stats = sum(b.numel() for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert report.non_trainable == stats
    *spatial, c = model.input_shape
    with torch.no_grad():
        y = net(torch.zeros(1, c, *spatial))
    out = model.body.out_shape
    assert tuple(y.shape[1:]) == ((out[-1], *out[:-1]) if len(out) > 1 else out)


def test_conv_transpose_and_upsample_follow_pytorchs_size_rules(tmp_path):
    """The analysis' sizes from PyTorch's documented formulas, independently of archc's: ConvTranspose
    (n - 1) s - 2 p + d (k - 1) + op + 1, Upsample floor(n * scale)."""
    path = tmp_path / "s.yaml"
    path.write_text(spec_text("conv_transpose2d"), encoding="utf-8")
    rows = analyze(compile_spec(str(path), [])).rows
    n = 11
    n = (n - 1) * 2 - 2 * 1 + 1 * (3 - 1) + 1 + 1  # 22
    assert rows[0].out_shape == (n, n, 4)
    h, w = (n - 1) * 3 + (2 - 1) + 2 + 1, (n - 1) * 3 + (2 - 1) + 0 + 1  # output_padding [2, 0]
    assert rows[3].out_shape == (h, w, 3)
    assert rows[4].out_shape == ((h - 1) - 0 + (3 - 1) + 1, (w - 1) - 2 * 2 + (3 - 1) + 1, 2)
    path.write_text(spec_text("upsample2d"), encoding="utf-8")
    rows = analyze(compile_spec(str(path), [])).rows
    assert [r.out_shape[:2] for r in rows] == [
        (22, 22), (math.floor(22 * 1.5), math.floor(22 * 1.5)), (7, 9), (14, 27), (5, 5), (11, 11),
    ]  # fmt: skip


def test_size_input_follows_the_size_the_model_is_called_with(tmp_path):
    """`upsample: {size: input}` resizes to whatever size the generated model is called with, in both backends."""
    from archc.backends import get_backend

    path = tmp_path / "seg.yaml"
    path.write_text(
        "name: seg\ninput: {height: 16, width: 16, channels: 3}\nnetwork:\n"
        "  - conv: {out: 4, kernel: 3, stride: 4, padding: 1}\n  - upsample: {size: input, mode: bilinear}\n",
        encoding="utf-8",
    )
    model = compile_spec(str(path), [])
    net = load(get_backend("torch").emit(model), "ranks_seg_t").build_model().eval()
    with torch.no_grad():
        assert tuple(net(torch.zeros(1, 3, 24, 20)).shape) == (1, 4, 24, 20)
    kmod = load(get_backend("keras").emit(model), "ranks_seg_k")
    assert tuple(kmod.build_model(input_shape=(24, 20, 3)).output.shape) == (None, 24, 20, 4)


def test_same_average_pool_counts_padding_only_when_asked(tmp_path):
    """TensorFlow's 'same' average leaves the padding out of the divisor; an explicit count_include_pad: true
    counts it (the divisor is the window's size), in both backends: checked against numpy by hand."""
    x = np.random.default_rng(0).normal(size=(1, 3, 5, 5))
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))  # 'same' for k=2, s=2 on 5: total 1, after
    window_sums = padded.reshape(1, 3, 3, 2, 3, 2).sum(axis=(3, 5))
    counts = np.pad(np.ones((5, 5)), ((0, 1), (0, 1))).reshape(3, 2, 3, 2).sum(axis=(1, 3))
    expected = {True: window_sums / 4, False: window_sums / counts}
    from archc.backends import get_backend

    for include in (True, False):
        path = tmp_path / f"p{include}.yaml"
        path.write_text(
            "name: p\ninput: {height: 5, width: 5, channels: 3}\nnetwork:\n"
            f"  - avgpool: {{kernel: 2, stride: 2, padding: same, count_include_pad: {str(include).lower()}}}\n",
            encoding="utf-8",
        )
        model = compile_spec(str(path), [])
        net = load(get_backend("torch").emit(model), f"ranks_cip_t{include}").build_model().double()
        with torch.no_grad():
            yt = net(torch.from_numpy(x)).numpy()
        kmodel = load(get_backend("keras").emit(model), f"ranks_cip_k{include}").build_model()
        yk = np.moveaxis(np.asarray(kmodel(np.moveaxis(x, 1, -1).astype(np.float32))), -1, 1)
        assert np.abs(yt - expected[include]).max() < 1e-12
        assert np.abs(yk - expected[include]).max() < 1e-5  # float32 Keras (the model's own dtype)


@pytest.mark.parametrize(
    "head,items,message",
    [
        (
            ONE_D,
            "[conv: {out: 4, kernel: [3, 3]}]",
            "kernel must be an integer or a list of 1 (one per spatial axis: length)",
        ),
        (THREE_D, "[maxpool: {kernel: [2, 2]}]", "a list of 3 (one per spatial axis: depth, height, width)"),
        (
            TWO_D,
            "[upsample: {scale: 2, mode: trilinear}]",
            "mode trilinear is for 3-D inputs; this input is 2-D (use bilinear)",
        ),
        (TWO_D, "[upsample: {scale: 2, size: 4}]", "upsample takes one of scale, size or like, not several"),
        (TWO_D, "[upsample: {scale: 2, align_corners: true}]", "align_corners applies to the linear modes only"),
        (
            TWO_D,
            "[conv_transpose: {out: 3, kernel: 3, stride: 2, output_padding: 2}]",
            "output_padding=2 must be smaller",
        ),
        (TWO_D, "[seq: {name: s, body: [upsample: {size: input}]}]", "size: input is for a top-level item"),
        (
            TWO_D,
            "[conv_transpose: {out: 3, kernel: 3, dilation: 2}]",
            "dilation > 1 is not supported for conv_transpose",
        ),
        (
            "input: {depth: 4, width: 4, channels: 3}\n",
            "[relu]",
            "input needs 'length' (1-D), 'height' and 'width' (2-D)",
        ),
        (
            ONE_D,
            "[zeropad: {padding: [1, 2]}]",
            "padding must be 'same', 'valid', an integer, [length] or [[before, after]]",
        ),
    ],
)
def test_rank_errors_are_located(head, items, message, tmp_path, cli):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\n{head}network: {items}\n", encoding="utf-8")
    r = cli("check", path)
    assert r.code == 2, r.out + r.err
    first = r.err.splitlines()[0]
    assert first.startswith(f"{path}:") and message in first, r.err

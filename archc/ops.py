"""The vocabulary's registry: each primitive defined once, for every part of the core.

A :class:`Primitive` says everything the core needs to know about one spec kind:

* its attributes (:class:`Attr`: type, default, range), from which the spec's pydantic model and the
  JSON Schema are made (:mod:`archc.spec`), defaults are applied and values checked (:mod:`archc.lower`);
* its output width as an expression of the input width and its attributes (the templates);
* its shape rule at an input shape, with the checks that make a bad value a located error;
* its parameter counts (trainable, non-trainable, as Keras counts them) and MACs (:mod:`archc.analysis`).

The instance node is :class:`archc.ir.Op` (``op`` = the kind). A backend adds one emit function and one
weight-layout entry per kind (``backends/<framework>/ops.py``, ``backends/<framework>/weights.py``).

MAC convention (torchvision's ``_ops`` figures, fvcore's): multiply-accumulates of convolutions and
linear layers only; normalization, activations, pooling, scaling and elementwise merges count 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ir, values
from .errors import ArchcError
from .expr import Expr, parse, sym


class OpError(Exception):
    """A shape rule's refusal: ``message``, about attribute ``attr`` (None: the item as a whole)."""

    def __init__(self, message: str, attr: str | None = None):
        super().__init__(message)
        self.message = message
        self.attr = attr


@dataclass(frozen=True)
class Attr:
    """One attribute of a primitive.

    ``type``: ``"int"`` (a positive integer), ``"index"`` (an integer >= 0, or None where ``default`` is
    None and optional), ``"pair"`` (an integer or one per spatial axis, positive: a tuple of the input's rank),
    ``"axes0"`` (the same, >= 0), ``"scales"`` (a positive number or one per spatial axis: a tuple of floats),
    ``"size"`` (``input``: the network input's spatial size, or as ``pair``), ``"float"`` (finite, in
    ``range`` = (lo, hi, brackets)), ``"bool"``, ``"choice"`` (one of ``choices``). An optional attribute
    (``default`` None, not ``required``) may be absent: its value is then None."""

    name: str
    type: str
    default: Any = None
    doc: str = ""
    range: tuple[float, float, str] | None = None  # (lo, hi, "[)"): bounds, and which are included
    choices: tuple[str, ...] = ()
    required: bool = False

    def check(self, v, loc, rank: int = 2):
        """The value ``v`` (evaluated) checked and normalized, or a located error (the lowering's own checks, so
        a bad value is explained as any other: which param it came from). ``rank``: the input's spatial axes."""
        if v is None and not self.required and self.default is None and self.type != "index":
            return None
        if self.type == "int":
            return values.pos(v, self.name, loc)
        if self.type == "pair":
            return values.axes(v, self.name, loc, max(rank, 1))
        if self.type == "axes0":
            return values.axes(v, self.name, loc, max(rank, 1), least=0)
        if self.type == "scales":
            return values.scales(v, self.name, loc, max(rank, 1))
        if self.type == "size":
            return "input" if v == "input" else values.axes(v, self.name, loc, max(rank, 1))
        if self.type == "bool":
            return values.boolean(v, self.name, loc)
        if self.type == "index":
            if v is None and not self.required:
                return None
            if not _is_int(v) or v < 0:
                raise ArchcError(
                    f"{self.name} must be a non-negative integer, got {v!r}", loc, attr=self.name,
                    check=lambda x: _is_int(x) and x >= 0,
                )  # fmt: skip
            return v
        if self.type == "float":
            v = values.number(v, self.name, loc)
            if self.range is not None and not self._in_range(v):
                lo, hi, b = self.range
                raise ArchcError(
                    f"{self.name} must be in {b[0]}{lo:g}, {hi:g}{b[1]}, got {v}", loc, attr=self.name,
                    check=lambda x: _is_number(x) and self._in_range(x),
                )  # fmt: skip
            return v
        if self.type == "choice":
            if v not in self.choices:
                raise ArchcError(
                    f"{self.name} must be one of {', '.join(self.choices)}, got {v!r}", loc, attr=self.name
                )
            return v
        raise AssertionError(self.type)  # pragma: no cover

    def _in_range(self, v) -> bool:
        lo, hi, b = self.range
        return (lo <= v if b[0] == "[" else lo < v) and (v <= hi if b[1] == "]" else v < hi)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _same(shape, a):
    return shape


def _no_params(node) -> tuple[int, int]:
    return 0, 0


def _no_macs(node) -> int:
    return 0


def _keep_width(in_ch: Expr, a: dict) -> Expr:
    return in_ch


@dataclass(frozen=True)
class Primitive:
    kind: str
    doc: str
    attrs: tuple[Attr, ...] = ()
    width: Callable[[Expr, dict], Expr] = _keep_width  # template: output width from input width and attributes
    shape: Callable[[tuple, dict], tuple] = _same  # instance: output shape (raise OpError to refuse)
    params: Callable[[ir.Op], tuple[int, int]] = _no_params
    macs: Callable[[ir.Op], int] = _no_macs
    # the canonical tensors of a primitive with weights (archc/weights.py: framework-neutral layouts), name -> shape;
    # each backend's weights.py declares how it stores them
    weights: Callable[[ir.Op], dict[str, tuple]] | None = None
    # keeps the order of flattened features (acts on each alone, or on all alike, as softmax): a dense layer
    # after it still sees a flatten's order (weight conversion permutes CHW <-> HWC through it)
    elementwise: bool = True
    activation: bool = False
    group: str = "layer"  # for documentation: activation, normalization, pooling, regularization, channels
    defaults: dict = field(default_factory=dict, init=False)

    def __post_init__(self):
        object.__setattr__(self, "defaults", {a.name: a.default for a in self.attrs if a.default is not None})

    def attr(self, name: str) -> Attr:
        return next(a for a in self.attrs if a.name == name)


# ---------------------------------------------------------------------------------------------- rules


def _map(shape, kind):
    if len(shape) < 2:
        raise OpError(f"{kind} needs a feature map but gets flat features of size {shape[0]}")
    return shape


def _per_channel(shape, a):
    return shape


def _norm_params(node: ir.Op) -> tuple[int, int]:
    return 2 * node.in_shape[-1], 0


def _norm_weights(node: ir.Op) -> dict[str, tuple]:
    return {"gamma": (node.in_shape[-1],), "beta": (node.in_shape[-1],)}


def _scale_weights(node: ir.Op) -> dict[str, tuple]:
    return {"scale": (node.in_shape[-1],)}


def _groupnorm_shape(shape, a):
    _map(shape, "groupnorm")
    if shape[-1] % a["groups"]:
        raise OpError(f"groups={a['groups']} must divide the input's {shape[-1]} channels", "groups")
    return shape


def _shuffle_shape(shape, a):
    _map(shape, "channel_shuffle")
    if shape[-1] % a["groups"]:
        raise OpError(f"groups={a['groups']} must divide the input's {shape[-1]} channels", "groups")
    return shape


def _slice_bounds(c: int, a) -> tuple[int, int]:
    start = a["start"]
    stop = c if a["stop"] is None else a["stop"]
    if stop > c:
        raise OpError(f"stop={stop} is past the input's {c} channels", "stop")
    if start >= stop:
        raise OpError(f"slice [{start}, {stop}) of {c} channels is empty", "start")
    return start, stop


def _slice_shape(shape, a):
    start, stop = _slice_bounds(shape[-1], a)
    return (*shape[:-1], stop - start)


def _slice_width(in_ch: Expr, a: dict) -> Expr:
    start, stop = a["start"], a["stop"]
    stop_src = f"({stop.src})" if isinstance(stop, Expr) else ("in_channels" if stop is None else str(stop))
    start_src = f"({start.src})" if isinstance(start, Expr) else str(start)
    e = parse(f"${{{stop_src} - {start_src}}}", None)
    if start_src == "0":
        e = parse(f"${{{stop_src}}}", None)
    from .expr import substitute

    return substitute(e, {"in_channels": in_ch}) if "in_channels" in e.names() else e


def _adaptive_shape(shape, a):
    _map(shape, "adaptive_avgpool")
    return (*a["size"], shape[-1])


def _global_pool_shape(shape, a):
    return (_map(shape, "global_maxpool")[-1],)


def _scale_params(node: ir.Op) -> tuple[int, int]:
    return node.in_shape[-1], 0


_ACT = dict(activation=True, group="activation")

PRIMITIVES: dict[str, Primitive] = {}


def register(p: Primitive) -> Primitive:
    if p.kind in PRIMITIVES:
        raise ValueError(f"primitive '{p.kind}' is already registered")
    PRIMITIVES[p.kind] = p
    return p


register(Primitive("hardswish", "x * relu6(x + 3) / 6 (PyTorch's Hardswish; MobileNetV3)", **_ACT))
register(Primitive("hardsigmoid", "relu6(x + 3) / 6 (PyTorch's Hardsigmoid; MobileNetV3's SE gate)", **_ACT))
register(
    Primitive(
        "gelu",
        "Gaussian error linear unit: x * Phi(x), exact or with the tanh approximation",
        (
            Attr(
                "approximate",
                "choice",
                "none",
                "none: exact (erf); tanh: the tanh approximation",
                choices=("none", "tanh"),
            ),
        ),
        **_ACT,
    )
)
register(
    Primitive(
        "leaky_relu",
        "max(x, 0) + slope * min(x, 0)",
        (Attr("slope", "float", 0.01, "negative slope", range=(0.0, 1.0, "[]")),),
        **_ACT,
    )
)
register(
    Primitive(
        "softmax",
        "softmax over the channels (the last axis of (H, W, C), or of flat features)",
        **_ACT,
    )
)
register(
    Primitive(
        "layernorm",
        "layer normalization over the channels at each position (ConvNeXt's LayerNorm2d; nn.LayerNorm on flat "
        "features), with a learned per-channel scale and shift",
        (Attr("eps", "float", 1e-5, "added to the variance", range=(0.0, 1.0, "()")),),
        shape=_per_channel,
        params=_norm_params,
        weights=_norm_weights,
        elementwise=False,
        group="normalization",
    )
)
register(
    Primitive(
        "groupnorm",
        "group normalization: channels in `groups` groups, each normalized over its channels and positions, "
        "with a learned per-channel scale and shift",
        (
            Attr("groups", "int", None, "number of groups (divides the channels)", required=True),
            Attr("eps", "float", 1e-5, "added to the variance", range=(0.0, 1.0, "()")),
        ),
        shape=_groupnorm_shape,
        params=_norm_params,
        weights=_norm_weights,
        elementwise=False,
        group="normalization",
    )
)
register(
    Primitive(
        "layer_scale",
        "a learned per-channel scale, initialized to `init` (ConvNeXt's layer scale, CaiT's LayerScale)",
        (Attr("init", "float", 1e-6, "initial value of every scale", range=(-1e6, 1e6, "[]")),),
        shape=_per_channel,
        params=_scale_params,
        weights=_scale_weights,
        group="scaling",
    )
)
register(
    Primitive(
        "stochastic_depth",
        "stochastic depth, row mode (torchvision's StochasticDepth): the identity in evaluation; in training each "
        "sample's input is dropped with probability p, the kept ones scaled by 1 / (1 - p)",
        (Attr("p", "float", None, "drop probability", range=(0.0, 1.0, "[)"), required=True),),
        group="regularization",
    )
)
register(
    Primitive(
        "channel_shuffle",
        "channel shuffle (ShuffleNet): channels as (groups, C / groups), transposed, flattened",
        (Attr("groups", "int", None, "number of groups (divides the channels)", required=True),),
        shape=_shuffle_shape,
        elementwise=False,
        group="channels",
    )
)
register(
    Primitive(
        "slice",
        "channels [start, stop) of the input (ShuffleNetV2's channel split)",
        (
            Attr("start", "index", 0, "first channel", required=True),
            Attr("stop", "index", None, "one past the last channel (default: the input's width)"),
        ),
        width=_slice_width,
        shape=_slice_shape,
        elementwise=False,
        group="channels",
    )
)
register(
    Primitive(
        "adaptive_avgpool",
        "average pooling to a fixed output size (PyTorch's AdaptiveAvgPool2d: window i of n inputs and m outputs "
        "spans [floor(i n / m), ceil((i + 1) n / m))), exact at any input size",
        (Attr("size", "pair", None, "output size: an integer or [height, width]", required=True),),
        shape=_adaptive_shape,
        elementwise=False,
        group="pooling",
    )
)

register(
    Primitive(
        "global_maxpool",
        "the maximum over all positions of each channel: (H, W, C) -> flat (C,) (Keras GlobalMaxPooling2D; "
        "PyTorch's AdaptiveMaxPool2d(1) + flatten); --set pooling=max ends a headless model with one",
        shape=_global_pool_shape,
        elementwise=False,
        group="pooling",
    )
)

register(
    Primitive(
        "scale",
        "multiplies by a constant factor, without parameters (Inception-ResNet scales each residual branch by 0.1 "
        "to 0.2 before the add)",
        (Attr("factor", "float", None, "the constant", range=(-1e6, 1e6, "[]"), required=True),),
        group="scaling",
    )
)


def _conv_transpose_out(n: int, k: int, s: int, d: int, p: int, op: int) -> int:
    """PyTorch's ConvTranspose output size on one axis: ``(n - 1) s - 2 p + d (k - 1) + op + 1``."""
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def _conv_transpose_shape(shape, a):
    _map(shape, "conv_transpose")
    c, g = shape[-1], a["groups"]
    if c % g or a["out"] % g:
        raise OpError(f"groups={g} must divide input channels ({c}) and output channels ({a['out']})", "groups")
    if g > 1:
        raise OpError(
            "groups > 1 is not supported for conv_transpose yet (Keras has no grouped transposed convolution)", "groups"
        )
    if max(a["dilation"]) > 1:
        raise OpError(
            "dilation > 1 is not supported for conv_transpose (TensorFlow's CPU kernels for Keras' Conv2DTranspose "
            "have no dilation)",
            "dilation",
        )
    out = []
    axes = zip(shape[:-1], a["kernel"], a["stride"], a["dilation"], a["padding"], a["output_padding"])
    for n, k, st, d, p, op in axes:
        if op >= max(st, d):
            raise OpError(
                f"output_padding={op} must be smaller than the stride ({st}) or the dilation ({d}) (PyTorch's rule)",
                "output_padding",
            )
        o = _conv_transpose_out(n, k, st, d, p, op)
        if o < 1:
            raise OpError(
                f"padding={p} removes the whole output ({(n - 1) * st + d * (k - 1) + 1} positions)", "padding"
            )
        out.append(o)
    return (*out, a["out"])


def _attrs(node: ir.Op) -> dict:
    return dict(node.attrs)


def _conv_transpose_params(node: ir.Op) -> tuple[int, int]:
    a = _attrs(node)
    w = math.prod(a["kernel"]) * node.in_shape[-1] * a["out"] // a["groups"]
    return w + (a["out"] if a["bias"] else 0), 0


def _conv_transpose_macs(node: ir.Op) -> int:
    """Every input element meets kernel-size x out / groups weights (fvcore's count for transposed convolutions)."""
    a = _attrs(node)
    return math.prod(node.in_shape) * math.prod(a["kernel"]) * a["out"] // a["groups"]


def _conv_transpose_weights(node: ir.Op) -> dict[str, tuple]:
    """kernel (*k, out / groups, in) (Keras' layout of a transposed convolution's kernel), bias (out,)."""
    a = _attrs(node)
    out = {"kernel": (*a["kernel"], a["out"] // a["groups"], node.in_shape[-1])}
    return out | ({"bias": (a["out"],)} if a["bias"] else {})


register(
    Primitive(
        "conv_transpose",
        "transposed convolution (PyTorch's ConvTranspose1d/2d/3d, the gradient of a convolution with respect to its "
        "input): each axis grows to (n - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1",
        (
            Attr("out", "int", None, "output channels", required=True),
            Attr("kernel", "pair", None, "kernel size: an integer or one per spatial axis", required=True),
            Attr("stride", "pair", 1, "stride: an integer or one per spatial axis"),
            Attr("padding", "axes0", 0, "removed from both ends of each axis of the output (PyTorch's padding)"),
            Attr("output_padding", "axes0", 0, "added to the end of each axis of the output (< stride or dilation)"),
            Attr("dilation", "pair", 1, "spacing of the kernel's taps"),
            Attr("groups", "int", 1, "channel groups (1 for now)"),
            Attr("bias", "bool", True, "a learned bias per output channel"),
        ),
        width=lambda in_ch, a: sym(a["out"]),
        shape=_conv_transpose_shape,
        params=_conv_transpose_params,
        macs=_conv_transpose_macs,
        weights=_conv_transpose_weights,
        elementwise=False,
        group="convolution",
    )
)

UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "trilinear")


def _upsample_shape(shape, a):
    """Output size: ``size``, or floor(n * scale) on each axis (PyTorch's). ``size: input`` arrives here as the
    network input's spatial size (the lowering's)."""
    _map(shape, "upsample")
    scale, size, mode, rank = a["scale"], a["size"], a["mode"], len(shape) - 1
    if (scale is None) == (size is None):
        raise OpError("upsample takes either scale or size" + (", not both" if scale is not None else ""), "scale")
    need = {"linear": 1, "bilinear": 2, "trilinear": 3}.get(mode)
    if need is not None and need != rank:
        names = {1: "linear", 2: "bilinear", 3: "trilinear"}
        raise OpError(f"mode {mode} is for {need}-D inputs; this input is {rank}-D (use {names[rank]})", "mode")
    if mode == "nearest" and a["align_corners"] is not None:
        raise OpError("align_corners applies to the linear modes only, not to nearest", "align_corners")
    out = size if size is not None else tuple(math.floor(n * f) for n, f in zip(shape[:-1], scale))
    if min(out) < 1:
        raise OpError(f"scale {scale} leaves no output position", "scale")
    return (*out, shape[-1])


register(
    Primitive(
        "upsample",
        "resampling to a larger (or smaller) spatial size, as PyTorch's Upsample / interpolate computes it: by a "
        "scale factor per axis, to a size, or to the network input's size (`size: input`, at any size the model is "
        "called with); nearest or (bi/tri)linear interpolation",
        (
            Attr("scale", "scales", None, "scale factor: a number or one per spatial axis (output: floor(n * scale))"),
            Attr("size", "size", None, "output size: an integer, one per spatial axis, or `input`"),
            Attr("mode", "choice", "nearest", "interpolation", choices=UPSAMPLE_MODES),
            Attr("align_corners", "bool", None, "linear modes: align the corner pixels' centers (default false)"),
        ),
        shape=_upsample_shape,
        group="resampling",
    )
)

ACTIVATION_KINDS = tuple(k for k, p in PRIMITIVES.items() if p.activation)


def get(kind: str) -> Primitive:
    return PRIMITIVES[kind]


def adaptive_bins(n: int, m: int) -> list[tuple[int, int]]:
    """PyTorch's AdaptiveAvgPool windows: output ``i`` of ``m`` averages inputs [floor(i n/m), ceil((i+1) n/m))."""
    return [((i * n) // m, -(-((i + 1) * n) // m)) for i in range(m)]

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

from . import geometry, ir, values
from .errors import ArchcError
from .expr import Expr, parse, sym, sym_mul


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
    ``"size"`` (``input``: the network input's spatial size, or as ``pair``), ``"padding"`` (``same``, ``valid``,
    or flat per-axis padding from any of its written forms), ``"float"`` (finite, in
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
        if self.type == "ref":  # resolved by the lowering (archc.refs): the key of an earlier output
            return v
        if self.type == "padding":
            return v if v in ("same", "valid") else values.pads(v, loc, max(rank, 1))
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
    # the instance node, where the kind has an IR node class of its own (ir.Conv, ir.Pool, ...): (input shape,
    # checked attributes, the node's common fields) -> node; None: an ir.Op whose shape is ``shape``'s
    build: Callable[[tuple, dict, dict], ir.Node] | None = None
    # template attributes whose defaults depend on others (a pool's stride is its kernel): attrs -> attrs
    fill: Callable[[dict], dict] | None = None
    # a node in a few words, for diagrams and reports: "conv 3x3/2, 64"; None: the kind
    describe: Callable[[ir.Node], str] | None = None
    # the input must be a feature map (not flat features): refused with the lowering's own message
    needs_map: bool = False
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


# ---------------------------------------------------------------------------------------------- the layers
# Convolution, normalization, activation, pooling, regularization, dense and padding: kinds with an IR node class of
# their own (``build``), which the backends, the weight layouts and the analysis read by its fields.


def _padding_of(a: dict, spatial, kernel, stride, dilation) -> tuple[tuple, bool]:
    """(flat per-axis padding, whether it is TensorFlow's 'same') of a checked ``padding`` value."""
    p = a["padding"]
    if p == "same":
        return geometry.same_pads(spatial, kernel, stride, dilation), True
    if p == "valid":
        return (0,) * (2 * len(spatial)), False
    return p, False


def _fits(shape, kernel, dilation, pads, out_spatial) -> None:
    """The dilated kernel fits the padded input on every axis, and every output axis is non-empty."""
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(shape[:-1], ir.axis_pairs(pads)))
    if any(e > p for e, p in zip(eff, padded)) or min(out_spatial) < 1:
        x = "x".join
        raise OpError(
            f"kernel {x(map(str, eff))} is larger than its input {x(map(str, shape[:-1]))} (padded "
            f"{x(map(str, padded))}; input shape {x(map(str, shape))})"
        )


def _conv_build(shape, a, base):
    c = shape[-1]
    if a.get("multiplier") is None:  # conv
        out, groups = a["out"], a["groups"]
        if c % groups or out % groups:
            raise OpError(f"groups={groups} must divide input channels ({c}) and output channels ({out})", "groups")
    else:  # dwconv: one filter (times the multiplier) per input channel
        out, groups = c * a["multiplier"], c
    pads, same = _padding_of(a, shape[:-1], a["kernel"], a["stride"], a["dilation"])
    spatial = geometry.conv_spatial(shape[:-1], a["kernel"], a["stride"], a["dilation"], pads)
    _fits(shape, a["kernel"], a["dilation"], pads, spatial)
    if out > values.MAX_CHANNELS:
        raise OpError(f"{out} channels is more than archc accepts ({values.MAX_CHANNELS})", "out")
    return ir.Conv(
        **base, out_shape=(*spatial, out), in_channels=c, out_channels=out, kernel=a["kernel"], stride=a["stride"],
        dilation=a["dilation"], groups=groups, depthwise=a.get("multiplier") is not None, bias=a["bias"],
        padding=pads, same=same,
    )  # fmt: skip


def _conv_params(node: ir.Conv) -> tuple[int, int]:
    w = math.prod(node.kernel) * (node.in_channels // node.groups) * node.out_channels
    return w + (node.out_channels if node.bias else 0), 0


def _conv_macs(node: ir.Conv) -> int:
    return math.prod(node.out_shape) * math.prod(node.kernel) * (node.in_channels // node.groups)


def _conv_weights(node: ir.Conv) -> dict[str, tuple]:
    """conv: kernel (*k, in / groups, out); dwconv: kernel (*k, C, multiplier); bias (out,)."""
    if node.depthwise:
        out = {"kernel": (*node.kernel, node.in_channels, node.out_channels // node.in_channels)}
    else:
        out = {"kernel": (*node.kernel, node.in_channels // node.groups, node.out_channels)}
    return out | ({"bias": (node.out_channels,)} if node.bias else {})


def _kxs(kernel, stride) -> str:
    """``3x3/2``: the kernel, then the stride where it is not 1."""
    k = "x".join(str(x) for x in kernel)
    if any(s != 1 for s in stride):
        k += f"/{stride[0]}" if len(set(stride)) == 1 else "/" + "x".join(str(s) for s in stride)
    return k


def _conv_describe(node: ir.Conv) -> str:
    if node.depthwise:
        mult = node.out_channels // max(node.in_channels, 1)
        s = f"dwconv {_kxs(node.kernel, node.stride)}" + (f", x{mult}" if mult != 1 else "")
    else:
        s = f"conv {_kxs(node.kernel, node.stride)}, {node.out_channels}"
        if node.groups != 1:
            s += f", groups {node.groups}"
    if any(d != 1 for d in node.dilation):
        s += f", dilation {node.dilation[0]}"
    return s + (" same" if node.same else "")


_CONV_GEOMETRY = (
    Attr("kernel", "pair", None, "kernel size: an integer or one per spatial axis", required=True),
    Attr("stride", "pair", 1, "stride: an integer or one per spatial axis"),
    Attr("dilation", "pair", 1, "spacing of the kernel's taps: an integer or one per spatial axis"),
)
_CONV_TAIL = (
    Attr("bias", "bool", True, "a learned bias per output channel"),
    Attr(
        "padding", "padding", 0,
        "an integer, one per spatial axis (an integer or [before, after]), [top, bottom, left, right] in 2-D, "
        "'valid', or 'same' (TensorFlow's: asymmetric for stride 2, recomputed for every input size)",
    ),
)  # fmt: skip
_CONV = dict(
    build=_conv_build, params=_conv_params, macs=_conv_macs, weights=_conv_weights, describe=_conv_describe,
    elementwise=False, needs_map=True, group="convolution",
)  # fmt: skip
register(
    Primitive(
        "conv",
        "convolution (PyTorch's Conv1d/2d/3d, Keras' Conv1D/2D/3D), in `groups` channel groups",
        (
            Attr("out", "int", None, "output channels", required=True),
            *_CONV_GEOMETRY,
            Attr("groups", "int", 1, "channel groups (divides input and output channels)"),
            *_CONV_TAIL,
        ),
        width=lambda in_ch, a: sym(a["out"]),
        **_CONV,
    )
)
register(
    Primitive(
        "dwconv",
        "depthwise convolution: `multiplier` filters per input channel (Keras' DepthwiseConv2D; PyTorch's Conv2d "
        "with groups = channels)",
        (
            *_CONV_GEOMETRY,
            Attr("multiplier", "int", 1, "depth multiplier: output channels = input channels * multiplier"),
            *_CONV_TAIL,
        ),
        width=lambda in_ch, a: sym_mul(in_ch, a["multiplier"]),
        **_CONV,
    )
)


def _bn_build(shape, a, base):
    return ir.BatchNorm(
        **base, out_shape=shape, channels=shape[-1], eps=a["eps"], momentum=a["momentum"], scale=a["scale"],
        running_var=a["running_var"],
    )  # fmt: skip


def _bn_params(node: ir.BatchNorm) -> tuple[int, int]:
    return (2 if node.scale else 1) * node.channels, 2 * node.channels  # gamma (if scale), beta; mean, var


def _bn_weights(node: ir.BatchNorm) -> dict[str, tuple]:
    return {k: (node.channels,) for k in ("gamma", "beta", "mean", "var") if k != "gamma" or node.scale}


register(
    Primitive(
        "bn",
        "batch normalization over the channels (PyTorch's BatchNorm1d/2d/3d, Keras' BatchNormalization), with "
        "running statistics",
        (
            Attr("eps", "float", 1e-5, "added to the variance", range=(0.0, 1.0, "()")),
            Attr(
                "momentum", "float", 0.1,
                "PyTorch's convention (new = (1 - m) old + m batch); Keras' momentum is 1 - m",
                range=(0.0, 1.0, "[]"),
            ),
            Attr("scale", "bool", True, "a learned scale (gamma); false: none (Keras' scale=False)"),
            Attr(
                "running_var", "choice", "unbiased",
                "the batch variance training adds to the running variance: unbiased (n / (n - 1) times the biased "
                "one that normalizes the batch; PyTorch's BatchNorm) or biased (Keras' BatchNormalization); the "
                "backend whose own layer differs gets a helper",
                choices=("unbiased", "biased"),
            ),
        ),
        build=_bn_build,
        params=_bn_params,
        weights=_bn_weights,
        describe=lambda node: "bn",
        elementwise=False,
        group="normalization",
    )
)  # fmt: skip

ACTIVATION_DOCS = {
    "relu": "max(x, 0)",
    "relu6": "min(max(x, 0), 6)",
    "sigmoid": "1 / (1 + exp(-x))",
    "tanh": "the hyperbolic tangent",
    "silu": "x * sigmoid(x) (swish)",
}
for _fn, _doc in ACTIVATION_DOCS.items():
    register(
        Primitive(
            _fn,
            _doc,
            build=lambda shape, a, base, fn=_fn: ir.Act(**base, out_shape=shape, fn=fn),
            describe=lambda node: node.fn,
            activation=True,
            group="activation",
        )
    )


def _pool_fill(a: dict) -> dict:
    """A pool's stride defaults to its kernel; an average's count_include_pad to true, except with TensorFlow's
    'same' padding, whose average leaves the padding out."""
    a = dict(a)
    if a.get("stride") is None:
        a["stride"] = a["kernel"]
    if "count_include_pad" in a and a["count_include_pad"] is None:
        pad = a["padding"]
        a["count_include_pad"] = parse(f"${{({pad.src}) != 'same'}}", None) if isinstance(pad, Expr) else pad != "same"
    return a


def _pool_build(shape, a, base, op):
    n = len(shape) - 1
    pads, same = _padding_of(a, shape[:-1], a["kernel"], a["stride"], (1,) * n)
    if same and a["ceil"]:
        raise OpError("'same' padding and ceil rounding cannot be combined", "ceil")
    spatial = geometry.pool_spatial(shape[:-1], a["kernel"], a["stride"], pads, a["ceil"])
    _fits(shape, a["kernel"], (1,) * n, pads, spatial)
    axes = zip(shape[:-1], a["kernel"], a["stride"], ir.axis_pairs(pads), spatial)
    for axis, (size, k, st, (lo, hi), out) in enumerate(axes):
        if k <= lo or (out - 1) * st >= lo + size:  # the first window ends before the input, or the last starts after
            raise OpError(
                f"a window covers only padding on axis {axis} (padding {lo}, {hi} around {size} positions, kernel {k}, "
                f"stride {st}): a max would be -inf, an average without the padding 0 / 0; PyTorch allows padding up "
                "to half the kernel",
                "padding",
            )
    return ir.Pool(
        **base, out_shape=(*spatial, shape[-1]), op=op, kernel=a["kernel"], stride=a["stride"], padding=pads,
        ceil=a["ceil"], count_include_pad=a.get("count_include_pad", True), same=same,
    )  # fmt: skip


def _pool_describe(node: ir.Pool) -> str:
    s = f"{node.op}pool {_kxs(node.kernel, node.stride)}"
    return s + (" same" if node.same else "") + (" ceil" if node.ceil else "")


_POOL_ATTRS = (
    Attr("kernel", "pair", None, "window size: an integer or one per spatial axis", required=True),
    Attr("stride", "pair", None, "stride (default: the kernel size)"),
    Attr("padding", "padding", 0, "as a conv's; 'same' is TensorFlow's"),
    Attr("ceil", "bool", False, "ceil rounding of the output size (PyTorch's ceil_mode)"),
)
register(
    Primitive(
        "maxpool",
        "max pooling (padded values never win)",
        _POOL_ATTRS,
        build=lambda shape, a, base: _pool_build(shape, a, base, "max"),
        fill=_pool_fill,
        describe=_pool_describe,
        elementwise=False,
        needs_map=True,
        group="pooling",
    )
)
register(
    Primitive(
        "avgpool",
        "average pooling; the divisor counts the padding with count_include_pad (PyTorch's default), never what ceil "
        "rounding adds past it",
        (
            *_POOL_ATTRS,
            Attr(
                "count_include_pad", "bool", None,
                "count the padding in each window's divisor (default: true; false with 'same' padding, as "
                "TensorFlow's average pooling)",
            ),
        ),
        build=lambda shape, a, base: _pool_build(shape, a, base, "avg"),
        fill=_pool_fill,
        describe=_pool_describe,
        elementwise=False,
        needs_map=True,
        group="pooling",
    )
)  # fmt: skip
register(
    Primitive(
        "gap",
        "global average pooling: the mean over all positions of each channel, (*spatial, C) -> flat (C,)",
        build=lambda shape, a, base: ir.GlobalPool(**base, out_shape=(shape[-1],), op="avg"),
        describe=lambda node: f"global {node.op}pool",
        elementwise=False,
        needs_map=True,
        group="pooling",
    )
)
register(
    Primitive(
        "dropout",
        "dropout: in training each element is zeroed with probability `rate`, the others scaled by 1 / (1 - rate)",
        (Attr("rate", "float", None, "drop probability", range=(0.0, 1.0, "[)"), required=True),),
        build=lambda shape, a, base: ir.Dropout(**base, out_shape=shape, rate=a["rate"]),
        describe=lambda node: f"dropout {node.rate:g}",
        group="regularization",
    )
)
register(
    Primitive(
        "flatten",
        "a feature map (*spatial, C) as flat features (prod(spatial) * C,), in each framework's element order "
        "(weight conversion permutes a dense layer after it)",
        build=lambda shape, a, base: ir.Flatten(**base, out_shape=(math.prod(shape),)),
        elementwise=False,
        needs_map=True,
        group="layer",
    )
)


def _dense_build(shape, a, base):
    if a["out"] > values.MAX_CHANNELS:
        raise OpError(f"{a['out']} channels is more than archc accepts ({values.MAX_CHANNELS})", "out")
    return ir.Dense(  # on a feature map: pointwise over the channels (Keras Dense, a Linear on channels last)
        **base, out_shape=(*shape[:-1], a["out"]), in_features=shape[-1], out_features=a["out"], bias=a["bias"]
    )


def _dense_params(node: ir.Dense) -> tuple[int, int]:
    return node.in_features * node.out_features + (node.out_features if node.bias else 0), 0


def _dense_macs(node: ir.Dense) -> int:  # on a feature map: once per position
    return math.prod(node.out_shape[:-1]) * node.in_features * node.out_features


register(
    Primitive(
        "dense",
        "a fully connected layer (PyTorch's Linear, Keras' Dense); on a feature map, pointwise over the channels",
        (
            Attr("out", "int", None, "output features", required=True),
            Attr("bias", "bool", True, "a learned bias per output"),
        ),
        width=lambda in_ch, a: sym(a["out"]),
        build=_dense_build,
        params=_dense_params,
        macs=_dense_macs,
        weights=lambda node: (
            {"kernel": (node.in_features, node.out_features)} | ({"bias": (node.out_features,)} if node.bias else {})
        ),
        describe=lambda node: f"dense {node.out_features}",
        elementwise=False,
        group="layer",
    )
)


def _zeropad_build(shape, a, base):
    spatial = tuple(n + lo + hi for n, (lo, hi) in zip(shape[:-1], ir.axis_pairs(a["padding"])))
    return ir.ZeroPad(**base, out_shape=(*spatial, shape[-1]), padding=a["padding"])


register(
    Primitive(
        "zeropad",
        "zero padding of the spatial axes",
        (
            Attr(
                "padding", "padding", None,
                "an integer, one per spatial axis (an integer or [before, after]), or [top, bottom, left, right] "
                "in 2-D",
                required=True,
            ),
        ),
        build=_zeropad_build,
        describe=lambda node: "zeropad " + ",".join(str(p) for p in node.padding),
        elementwise=False,
        needs_map=True,
        group="layer",
    )
)  # fmt: skip


def leaf_kind(node: ir.Node) -> str:
    """The spec kind a leaf instance node was built from (its registry entry)."""
    if isinstance(node, ir.Op):
        return node.op
    if isinstance(node, ir.Conv):
        return "dwconv" if node.depthwise else "conv"
    if isinstance(node, ir.Act):
        return node.fn
    if isinstance(node, ir.Pool):
        return f"{node.op}pool"
    if isinstance(node, ir.GlobalPool):
        return "gap"
    return node.kind


def of(node: ir.Node) -> Primitive:
    """The registry entry of a leaf instance node."""
    return PRIMITIVES[leaf_kind(node)]


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
        describe=lambda node: f"scale {node.attr('factor'):g}",
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
        describe=lambda node: f"conv_transpose {_kxs(node.attr('kernel'), node.attr('stride'))}, {node.attr('out')}",
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
    """Output size: ``size``, or n * scale on each axis (a whole number). ``size: input`` and ``like: NAME``
    arrive here as ``size``: the network input's or that output's spatial size (the lowering's)."""
    _map(shape, "upsample")
    scale, size, mode, rank = a["scale"], a["size"], a["mode"], len(shape) - 1
    if (scale is None) == (size is None):
        raise OpError(
            "upsample takes one of scale, size or like" + (", not several" if scale is not None else ""), "scale"
        )
    need = {"linear": 1, "bilinear": 2, "trilinear": 3}.get(mode)
    if need is not None and need != rank:
        names = {1: "linear", 2: "bilinear", 3: "trilinear"}
        raise OpError(f"mode {mode} is for {need}-D inputs; this input is {rank}-D (use {names[rank]})", "mode")
    if mode == "nearest" and a["align_corners"] is not None:
        raise OpError("align_corners applies to the linear modes only, not to nearest", "align_corners")
    if scale is not None:
        for n, f in zip(shape[:-1], scale):
            if abs(n * f - round(n * f)) > 1e-9 * max(1.0, n * f):
                raise OpError(
                    f"scale {f:g} makes {n * f:g} positions of {n}: PyTorch's resampling then depends on its kernel "
                    "(a copy where the size stays, the scale elsewhere); write the output's `size:`, or a scale "
                    "that gives whole positions",
                    "scale",
                )
    out = size if size is not None else tuple(round(n * f) for n, f in zip(shape[:-1], scale))
    if min(out) < 1:
        raise OpError(f"scale {scale} leaves no output position", "scale")
    return (*out, shape[-1])


def _upsample_describe(node: ir.Op) -> str:
    scale, size = node.attr("scale"), node.attr("size")
    to = f"to {'input' if size == 'input' else 'x'.join(map(str, size))}" if size is not None else ""
    if node.attr("like") is not None:
        to = f"like {node.attr('like')}"
    if scale is not None:
        to = "x" + ("x".join(f"{f:g}" for f in scale) if len(set(scale)) > 1 else f"{scale[0]:g}")
    return f"upsample {to} {node.attr('mode')}"


register(
    Primitive(
        "upsample",
        "resampling to a larger (or smaller) spatial size, as PyTorch's Upsample / interpolate computes it: by a "
        "scale factor per axis, to a size, or to the network input's size (`size: input`, at any size the model is "
        "called with); nearest or (bi/tri)linear interpolation",
        (
            Attr(
                "scale",
                "scales",
                None,
                "scale factor: a number or one per spatial axis (output: n * scale, a whole number)",
            ),
            Attr("size", "size", None, "output size: an integer, one per spatial axis, or `input`"),
            Attr(
                "like",
                "ref",
                None,
                "resize to the spatial size of this earlier named output (at run time: it follows the size the "
                "model is called with)",
            ),
            Attr("mode", "choice", "nearest", "interpolation", choices=UPSAMPLE_MODES),
            Attr("align_corners", "bool", None, "linear modes: align the corner pixels' centers (default false)"),
        ),
        shape=_upsample_shape,
        describe=_upsample_describe,
        group="resampling",
    )
)

ACTIVATION_KINDS = tuple(k for k, p in PRIMITIVES.items() if p.activation)


def get(kind: str) -> Primitive:
    return PRIMITIVES[kind]


def adaptive_bins(n: int, m: int) -> list[tuple[int, int]]:
    """PyTorch's AdaptiveAvgPool windows: output ``i`` of ``m`` averages inputs [floor(i n/m), ceil((i+1) n/m))."""
    return [((i * n) // m, -(-((i + 1) * n) // m)) for i in range(m)]

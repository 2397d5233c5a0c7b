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

from . import ir
from .errors import ArchcError
from .expr import Expr, parse


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
    ``"float"`` (finite, in
    ``range`` = (lo, hi, brackets)), ``"choice"`` (one of ``choices``)."""

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
        from .lower import _axes, _float, _pos

        if self.type == "int":
            return _pos(v, self.name, loc)
        if self.type == "pair":
            return _axes(v, self.name, loc, max(rank, 1))
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
            v = _float(v, self.name, loc)
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

ACTIVATION_KINDS = tuple(k for k, p in PRIMITIVES.items() if p.activation)


def get(kind: str) -> Primitive:
    return PRIMITIVES[kind]


def adaptive_bins(n: int, m: int) -> list[tuple[int, int]]:
    """PyTorch's AdaptiveAvgPool windows: output ``i`` of ``m`` averages inputs [floor(i n/m), ceil((i+1) n/m))."""
    return [((i * n) // m, -(-((i + 1) * n) // m)) for i in range(m)]

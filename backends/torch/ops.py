"""PyTorch modules for the registry's primitives (:mod:`archc.ops`): one emit function per kind.

Each function gets the emitter, the template node, the scope and the class being emitted, and returns
the module's constructor as an ``ast`` expression (``nn.Hardswish()``); forward calls it on the input.
Helpers (``LayerNorm2d``, ...) come from ``templates/helpers.py`` through ``e.ref``.
"""

from __future__ import annotations

from .. import code as c


def _hardswish(e, t, scope, k, inplace):
    return e.nn("Hardswish", inplace=True) if inplace else e.nn("Hardswish")


def _hardsigmoid(e, t, scope, k, inplace):
    return e.nn("Hardsigmoid")


def _gelu(e, t, scope, k, inplace):
    approx = scope.value(t.attr("approximate"))
    return e.nn("GELU") if approx == "none" else e.nn("GELU", approximate=scope.node(t.attr("approximate")))


def _leaky_relu(e, t, scope, k, inplace):
    kw = {"inplace": True} if inplace else {}
    if scope.value(t.attr("slope")) == 0.01:
        return e.nn("LeakyReLU", **kw)
    return e.nn("LeakyReLU", negative_slope=scope.node(t.attr("slope")), **kw)


def _softmax(e, t, scope, k, inplace):
    return e.nn("Softmax", dim=1)


def _layernorm(e, t, scope, k, inplace):
    cls = e.ref("LayerNorm2d") if e.is_map(t) else c.attr(e.ref("nn"), "LayerNorm")
    return c.call(cls, e.width(t.in_ch, scope, k), eps=scope.node(t.attr("eps")))


def _groupnorm(e, t, scope, k, inplace):
    return e.nn("GroupNorm", scope.node(t.attr("groups")), e.width(t.in_ch, scope, k), eps=scope.node(t.attr("eps")))


def _layer_scale(e, t, scope, k, inplace):
    rank = e.rank if e.is_map(t) else 0
    kw = {} if rank == 2 else {"spatial": rank}
    return c.call(e.ref("LayerScale"), e.width(t.in_ch, scope, k), scope.node(t.attr("init")), **kw)


def _stochastic_depth(e, t, scope, k, inplace):
    return c.call(e.ref("StochasticDepth"), scope.node(t.attr("p")))


def _channel_shuffle(e, t, scope, k, inplace):
    return e.nn("ChannelShuffle", scope.node(t.attr("groups")))


def _slice(e, t, scope, k, inplace):
    stop = t.attr("stop")
    stop = e.width(t.in_ch, scope, k) if stop is None else scope.node(stop)
    return c.call(e.ref("ChannelSlice"), scope.node(t.attr("start")), stop)


def _adaptive_avgpool(e, t, scope, k, inplace):
    size = t.attr("size")
    known = scope.value(size)
    if isinstance(known, (list, tuple)) and len(set(known)) == 1:
        known = known[0]
    if isinstance(known, (list, tuple)):
        return e.nd("AdaptiveAvgPool", c.lit(tuple(known)))
    return e.nd("AdaptiveAvgPool", c.lit(known) if known is not None else scope.node(size))


def _global_maxpool(e, t, scope, k, inplace):
    return e.nn("Sequential", e.nd("AdaptiveMaxPool", 1), e.nn("Flatten"))


def _scale(e, t, scope, k, inplace):
    return c.call(e.ref("Scale"), scope.node(t.attr("factor")))


def _conv_transpose(e, t, scope, k, inplace):
    """``nn.ConvTranspose2d`` (1d, 3d): PyTorch's own semantics; arguments at their defaults left out."""
    defaults = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "bias": True, "dilation": 1}
    kw = [("kernel_size", scope.node(t.attr("kernel")))]
    for name, default in defaults.items():
        v = scope.value(t.attr(name))
        if v != default and not (isinstance(v, (list, tuple)) and set(v) == {default}):
            kw.append((name, scope.node(t.attr(name))))
    return c.kwcall(e.nd_class("ConvTranspose"), [e.width(t.in_ch, scope, k), scope.node(t.attr("out"))], kw)


def upsample_kwargs(e, t, scope) -> list:
    """The keyword arguments of ``nn.Upsample`` / ``F.interpolate`` for an upsample item (``size`` left to the
    caller when it is the network input's)."""
    kw = []
    size, scale = t.attr("size"), t.attr("scale")
    if size is not None and scope.value(size) != "input":
        kw.append(("size", scope.node(size)))
    if scale is not None:
        known = scope.value(scale)
        factor = known if not isinstance(known, (list, tuple)) or len(set(known)) > 1 else known[0]
        kw.append(("scale_factor", c.lit(factor) if known is not None else scope.node(scale)))
    if scope.value(t.attr("mode")) != "nearest":
        kw.append(("mode", scope.node(t.attr("mode"))))
    if t.attr("align_corners") is not None:
        kw.append(("align_corners", scope.node(t.attr("align_corners"))))
    return kw


def _upsample(e, t, scope, k, inplace):
    return c.kwcall(c.attr(e.ref("nn"), "Upsample"), [], upsample_kwargs(e, t, scope))


EMIT = {
    "hardswish": _hardswish,
    "hardsigmoid": _hardsigmoid,
    "gelu": _gelu,
    "leaky_relu": _leaky_relu,
    "softmax": _softmax,
    "layernorm": _layernorm,
    "groupnorm": _groupnorm,
    "layer_scale": _layer_scale,
    "stochastic_depth": _stochastic_depth,
    "channel_shuffle": _channel_shuffle,
    "slice": _slice,
    "adaptive_avgpool": _adaptive_avgpool,
    "global_maxpool": _global_maxpool,
    "scale": _scale,
    "conv_transpose": _conv_transpose,
    "upsample": _upsample,
}
INPLACE_OPS = ("hardswish", "leaky_relu")  # take inplace=True where their input is a fresh tensor
FRESH_OPS = (
    "layernorm", "groupnorm", "layer_scale", "adaptive_avgpool", "softmax", "gelu", "hardsigmoid", "scale",
    "conv_transpose", "upsample",
)  # fmt: skip

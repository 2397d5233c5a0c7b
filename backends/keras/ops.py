"""Keras layers for the registry's primitives (:mod:`archc.ops`): one emit function per kind.

Each function gets the emitter, the template node and the scope, and returns ``(layer class, args,
kwargs)``: the class as an ``ast`` expression (``layers.Activation``, or a helper from
``templates/helpers.py`` through ``e.helper``) called with the args and kwargs, then on the input.
Keras' own layers are used where they compute PyTorch's numbers (checked by tests/test_vocabulary.py).
"""

from __future__ import annotations

import ast

from .. import code as c
from ..common import axes


def _activation(name):
    def emit(e, t, scope):
        return e.L("Activation"), [c.lit(name)], []

    return emit


def _gelu(e, t, scope):
    approx = scope.value(t.attr("approximate"))
    if approx == "none":
        return e.L("Activation"), [c.lit("gelu")], []
    if approx == "tanh":
        return e.helper("GeluTanh"), [], []
    raise_unknown(t)


def raise_unknown(t):
    from ..common import Unsupported

    raise Unsupported("keras backend: gelu's approximate must be known when emitting", t.loc)


def _leaky_relu(e, t, scope):
    return e.L("LeakyReLU"), [], [("negative_slope", scope.node(t.attr("slope")))]


def _softmax(e, t, scope):
    return e.L("Softmax"), [], []


def _layernorm(e, t, scope):
    return e.L("LayerNormalization"), [], [("epsilon", scope.node(t.attr("eps")))]


def _groupnorm(e, t, scope):
    return (
        e.L("GroupNormalization"),
        [],
        [("groups", scope.node(t.attr("groups"))), ("epsilon", scope.node(t.attr("eps")))],
    )


def _layer_scale(e, t, scope):
    return e.helper("LayerScale"), [scope.node(t.attr("init"))], []


def _stochastic_depth(e, t, scope):
    return e.helper("StochasticDepth"), [scope.node(t.attr("p"))], []


def _channel_shuffle(e, t, scope):
    return e.helper("ChannelShuffle"), [scope.node(t.attr("groups"))], []


def _slice(e, t, scope):
    stop = t.attr("stop")
    return (
        e.helper("ChannelSlice"),
        [scope.node(t.attr("start")), c.lit(None) if stop is None else scope.node(stop)],
        [],
    )


def _adaptive_avgpool(e, t, scope):
    size = t.attr("size")
    known = scope.value(size)
    if known == 1 or (isinstance(known, (list, tuple)) and set(known) == {1}):
        return e.L(e.ranked("GlobalAveragePooling2D")), [], [("keepdims", c.lit(True))]  # the same mean
    # a helper, not Keras 3.15's AdaptiveAveragePooling2D: that one pools with a window of the input's size + 1
    # where an axis goes to 1, which TensorFlow's graph mode refuses (predict, fit: "Negative dimension size")
    node = c.lit(tuple(known) if isinstance(known, (list, tuple)) else known) if known is not None else scope.node(size)
    return e.helper("AdaptiveAvgPool2D"), [node], []


def _global_maxpool(e, t, scope):
    return e.L(e.ranked("GlobalMaxPooling2D")), [], []


def _scale(e, t, scope):
    return e.helper("Scale"), [scope.node(t.attr("factor"))], []


def _conv_transpose(e, t, scope):
    """``Conv2DTranspose`` with 'valid' padding (the full transposed convolution), then ``Cropping2D`` removing
    PyTorch's padding; ``output_padding`` only where PyTorch's output reaches past the full one (Keras then adds
    those positions at the end, bias only, as PyTorch does)."""
    node, value = scope.node, scope.value
    plans = set()  # (output_padding or None, (crop before, crop after) per axis) of each use
    for inst in e.instances.get(id(t), []):
        a = dict(inst.attrs)
        axes = list(zip(a["kernel"], a["stride"], a["dilation"], a["padding"], a["output_padding"]))
        extra = tuple(max(op - p, 0) for _, _, _, p, op in axes)
        # without output_padding Keras' 'valid' output is n * stride long where the kernel is shorter than the stride
        needed = any(extra) or any(d * (k - 1) + 1 < s for k, s, d, _, _ in axes)
        plans.add((extra if needed else None, tuple((p, p - op + q) for (_, _, _, p, op), q in zip(axes, extra))))
    if len(plans) != 1:
        from ..common import Unsupported

        raise Unsupported("keras backend: this conv_transpose's padding differs between its uses", t.loc)
    ((extra, crop),) = plans
    kw = [("strides", node(t.attr("stride")))] if value(t.attr("stride")) not in (1, (1,) * e.rank) else []
    if extra is not None:
        kw.append(("output_padding", c.lit(extra if len(set(extra)) > 1 else extra[0])))
    if value(t.attr("dilation")) not in (1, (1,) * e.rank):
        kw.append(("dilation_rate", node(t.attr("dilation"))))
    if value(t.attr("bias")) is not True:
        kw.append(("use_bias", node(t.attr("bias"))))
    layer = (e.L(e.ranked("Conv2DTranspose")), [node(t.attr("out")), node(t.attr("kernel"))], kw)
    if not any(x for pair in crop for x in pair):
        return layer
    arg = crop[0] if e.rank == 1 else crop
    return [layer, (e.L(e.ranked("Cropping2D")), [c.lit(arg)], [], "crop")]


def _upsample(e, t, scope):
    value = scope.value
    scale, size = value(t.attr("scale")), value(t.attr("size"))
    mode, align = value(t.attr("mode")), value(t.attr("align_corners"))
    scale = axes(scale, e.rank) if scale is not None else None
    integral = scale is not None and all(float(f).is_integer() for f in scale)
    if integral and mode == "nearest":  # (UpSampling2D's bilinear resizes in float32 whatever the model's dtype)
        factors = tuple(int(f) for f in scale)
        return e.L(e.ranked("UpSampling2D")), [c.lit(factors[0] if len(set(factors)) == 1 else factors)], []
    kw = []
    if size == "input":
        kw.append(("size", c.subscript(c.name("input_shape"), ast.Slice(lower=None, upper=c.lit(-1), step=None))))
    elif t.attr("size") is not None:
        kw.append(("size", scope.node(t.attr("size"))))
    if t.attr("scale") is not None:
        kw.append(("scale", scope.node(t.attr("scale"))))
    if mode != "nearest":
        kw.append(("mode", c.lit("linear")))
        if align:
            kw.append(("align_corners", c.lit(True)))
    return e.helper("Resize"), [], kw


EMIT = {
    "hardswish": _activation("hard_swish"),
    "hardsigmoid": _activation("hard_sigmoid"),
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
HELPERS = (
    "GeluTanh", "LayerScale", "StochasticDepth", "ChannelShuffle", "ChannelSlice", "AdaptiveAvgPool2D", "Scale",
    "Resize",
)  # fmt: skip

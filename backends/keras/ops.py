"""Keras layers for the registry's primitives (:mod:`archc.ops`): one emit function per kind.

Each function gets the emitter, the template node and the scope, and returns ``(layer class, args,
kwargs)``: the class as an ``ast`` expression (``layers.Activation``, or a helper from
``templates/helpers.py`` through ``e.helper``) called with the args and kwargs, then on the input.
Keras' own layers are used where they compute PyTorch's numbers (checked by tests/test_vocabulary.py).
"""

from __future__ import annotations

from .. import code as c


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
}
HELPERS = ("GeluTanh", "LayerScale", "StochasticDepth", "ChannelShuffle", "ChannelSlice", "AdaptiveAvgPool2D")

"""PyTorch modules for the registry's kinds (:mod:`archc.ops`): one emit function per kind, in :data:`EMIT`.

Each function gets the emitter, the template node, the scope and the class being emitted, and returns
the module's constructor as an ``ast`` expression (``nn.Hardswish()``); forward calls it on the input.
Helpers (``LayerNorm2d``, ...) come from ``templates/helpers.py`` through ``e.ref``.
"""

from __future__ import annotations

import ast

from archc.expr import sym_mul

from .. import code as c
from ..common import axes, compact, ones, pad_last_axis_first, pads, symmetric

ACT_MODULES = {"relu": "ReLU", "relu6": "ReLU6", "silu": "SiLU", "sigmoid": "Sigmoid", "tanh": "Tanh"}

# PyTorch's defaults of the keyword arguments written below (torch 2.13's signatures; tests/test_emitters_general.py
# compares them with inspect.signature): an argument whose literal value is its default is left out, as a person
# would write the call. A symbolic value (a block's param, an expression) is always written.
DEFAULTS = {
    "BatchNorm": {"eps": 1e-5, "momentum": 0.1},
    "Conv": {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
    "ConvTranspose": {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "bias": True, "dilation": 1},
    "Linear": {"bias": True},
    "Dropout": {"p": 0.5},
    "LayerNorm": {"eps": 1e-5},
    "GroupNorm": {"eps": 1e-5},
    "LeakyReLU": {"negative_slope": 0.01},
    "GELU": {"approximate": "none"},
    "Upsample": {"mode": "nearest"},
}


def is_default(cls: str, arg: str, value) -> bool:
    """Whether ``value`` (a literal, or None where it is symbolic) is PyTorch's default of ``cls``'s ``arg``: the
    same on every axis where it is given per axis."""
    if value is None or isinstance(value, bool) != isinstance(DEFAULTS[cls][arg], bool):
        return False
    values = set(value) if isinstance(value, (list, tuple)) else {value}
    return values == {DEFAULTS[cls][arg]}


def keywords(cls: str, scope, t, args: dict[str, str]) -> list[tuple[str, ast.expr]]:
    """The keyword arguments ``{PyTorch's name: the item's attribute}`` of ``t`` not at ``cls``'s defaults."""
    return [
        (arg, scope.node(t.attr(attr)))
        for arg, attr in args.items()
        if not is_default(cls, arg, scope.value(t.attr(attr)))
    ]


def _activation(e, t, scope, k, inplace):
    cls = ACT_MODULES[t.kind]
    return e.nn(cls, inplace=True) if inplace and t.kind in INPLACE_OPS else e.nn(cls)


def _bn(e, t, scope, k, inplace):
    """``nn.BatchNorm2d`` (1d, 3d; 1d on flat features); without a learned scale the ``BatchNorm2dNoScale`` helper."""
    a, node = dict(t.attrs), scope.node
    key = "BatchNorm2d" if e.is_map(t) else "BatchNorm1d"  # helpers' keys are 2-D (written for the model's rank)
    scale = scope.value(a["scale"])
    biased = _biased(e, t, scope)
    if scale is True:
        func = _bn_class(e, key, biased)
    elif scale is False:  # no learned scale: a helper whose weight is a buffer of ones
        func = _bn_class(e, f"{key}NoScale", biased)
    else:  # decided when the block is built
        func = c.ifexp(node(a["scale"]), _bn_class(e, key, biased), _bn_class(e, f"{key}NoScale", biased))
    return c.kwcall(
        func, [e.width(t.in_ch, scope, k)], keywords("BatchNorm", scope, t, {"eps": "eps", "momentum": "momentum"})
    )


def _biased(e, t, scope):
    """Whether the running variance averages in the biased batch variance (``running_var: biased``, Keras'
    convention): True, False, or the test deciding it when the block is built."""
    running_var = scope.value(t.attr("running_var"))
    if running_var is not None:
        return running_var == "biased"
    return c.compare(scope.node(t.attr("running_var")), "==", c.lit("biased"))


def _bn_class(e, key: str, biased) -> ast.expr:
    """PyTorch's BatchNorm (``key``: ``BatchNorm2d``, or the ``BatchNorm2dNoScale`` helper; ``BatchNorm1d`` on flat
    features) or, for Keras' running variance, the helper whose running variance averages in the biased batch
    variance (``BatchNorm2dBiased``, ``BatchNorm2dNoScaleBiased``)."""
    own = c.attr(e.ref("nn"), e.ranked(key)) if "NoScale" not in key else e.ref(key)
    if biased is False:
        return own
    if biased is True:
        return e.ref(f"{key}Biased")
    return c.ifexp(biased, e.ref(f"{key}Biased"), own)


def _gap(e, t, scope, k, inplace):
    return e.nn("Sequential", e.nd("AdaptiveAvgPool", 1), e.nn("Flatten"))


def _flatten(e, t, scope, k, inplace):
    return e.nn("Flatten")


def _dropout(e, t, scope, k, inplace):
    return c.kwcall(c.attr(e.ref("nn"), "Dropout"), [], keywords("Dropout", scope, t, {"p": "rate"}))


def _dense(e, t, scope, k, inplace):
    """``nn.Linear``; on a feature map the ``PointwiseLinear`` helper (a Linear over the channels)."""
    cls = e.ref("PointwiseLinear") if e.is_map(t) else c.attr(e.ref("nn"), "Linear")
    return c.kwcall(
        cls, [e.width(t.in_ch, scope, k), scope.node(t.attr("out"))], keywords("Linear", scope, t, {"bias": "bias"})
    )


def _zeropad(e, t, scope, k, inplace):
    pad = scope.value(t.attr("padding"))
    if pad is None:  # a block's param: PyTorch's form of it computed when the block is built
        return e.nd("ZeroPad", c.call(e.ref("zeropad_padding"), scope.node(t.attr("padding")), c.lit(e.rank)))
    return e.nd("ZeroPad", c.lit(pad_last_axis_first(pads(pad, e.rank))))


def _conv(e, t, scope, k, inplace):
    a = dict(t.attrs)
    node = scope.node
    cin = e.width(t.in_ch, scope, k)
    if t.kind == "dwconv":
        mult = scope.value(a["multiplier"])
        cout = cin if mult == 1 else e.width(sym_mul(t.in_ch, a["multiplier"]), scope, k)
    else:
        cout = e.width(a["out"], scope, k)
    kw: list[tuple[str, ast.expr]] = [("kernel_size", node(a["kernel"]))]
    stride = scope.value(a["stride"])
    kw += keywords("Conv", scope, t, {"stride": "stride"})
    pad_kw, cls, extra = _conv_padding(e, t, scope, stride)
    kw += pad_kw
    kw += keywords("Conv", scope, t, {"dilation": "dilation"})
    kw += [("groups", cin)] if t.kind == "dwconv" else keywords("Conv", scope, t, {"groups": "groups"})
    kw += keywords("Conv", scope, t, {"bias": "bias"})
    kw += extra
    func = c.attr(e.ref("nn"), e.ranked("Conv2d")) if cls == "nn.Conv2d" else e.ref(cls)
    return c.kwcall(func, [cin, cout], kw)


def _conv_padding(e, t, scope, stride):
    """(padding kwargs, conv class, extra kwargs) reproducing the IR's padding exactly."""
    p = t.attr("padding")
    known = scope.value(p)
    if known is None:
        # symbolic: PyTorch takes it as written if every use is symmetric or stride-1 'same'; else padded at run time
        for n in e.instances.get(id(t), []):
            if not ((n.same and ones(n.stride)) or (not n.same and symmetric(n.padding))):
                return [], "Conv2dPadding", [("padding_spec", scope.node(p))]
        return [("padding", scope.node(p))], "nn.Conv2d", []
    if known == "valid" or known == 0:
        return [], "nn.Conv2d", []
    if known == "same":
        dil = scope.value(t.attr("dilation"))
        if ones(stride) and dil is not None:
            return [("padding", c.lit("same"))], "nn.Conv2d", []
        return [], "Conv2dSame", []
    p = pads(known, e.rank)
    if symmetric(p):
        return [("padding", c.lit(compact(p[::2])))], "nn.Conv2d", []
    return [], "Conv2dPadded", [("pad", c.lit(pad_last_axis_first(p)))]


def _pool(e, t, scope, k, inplace):
    """``nn.MaxPool2d`` / ``nn.AvgPool2d`` where they compute the IR's pool; else a helper that pads explicitly
    (max: -inf; average: zeros, dividing by the count of what it includes), at run time where a value is a
    block's param."""
    a = dict(t.attrs)
    node = scope.node
    is_max = t.kind == "maxpool"
    cls = "MaxPool" if is_max else "AvgPool"
    kernel, stride = scope.value(a["kernel"]), scope.value(a["stride"])
    known, ceil = scope.value(a["padding"]), scope.value(a["ceil"])
    cip = True if is_max else scope.value(a["count_include_pad"])
    kw: list[tuple[str, ast.expr]] = [("kernel_size", node(a["kernel"]))]
    if stride != kernel or stride is None:
        kw.append(("stride", node(a["stride"])))
    if known == "same" and is_max and kernel is not None and stride is not None:
        return c.call(
            e.ref("MaxPool2dSame"),
            kernel_size=c.lit(axes(kernel, e.rank)),
            stride=c.lit(axes(stride, e.rank)),
        )
    if _native_pool(e, t, known, kernel):
        if known is None:
            kw.append(("padding", node(a["padding"])))
        elif known not in ("valid", 0):
            kw.append(("padding", c.lit(compact(pads(known, e.rank)[::2]))))
        if ceil is None:
            kw.append(("ceil_mode", node(a["ceil"])))
        elif ceil:
            kw.append(("ceil_mode", c.lit(True)))
        if cip is None:
            kw.append(("count_include_pad", node(a["count_include_pad"])))
        elif not cip:
            kw.append(("count_include_pad", c.lit(False)))
        return c.kwcall(c.attr(e.ref("nn"), e.ranked(f"{cls}2d")), [], kw)
    kw = [("kernel_size", node(a["kernel"])), ("stride", node(a["stride"])), ("padding", node(a["padding"]))]
    if ceil is not False:
        kw.append(("ceil_mode", node(a["ceil"])))
    if not is_max and cip is not True:
        kw.append(("count_include_pad", node(a["count_include_pad"])))
    return c.kwcall(e.ref(f"{cls}2dPadded"), [], kw)


def _native_pool(e, t, known, kernel) -> bool:
    """Whether PyTorch's own pool computes every instance of ``t``: its padding symmetric and at most half the
    window on every axis (not TensorFlow's 'same', whose average leaves the padding out), and for a 3-D average
    every input axis as long as the window (AvgPool3d refuses a shorter one even where the padding fills it)."""
    if t.kind == "avgpool" and e.rank == 3:
        short = any(n < k for inst in e.instances.get(id(t), []) for n, k in zip(inst.in_shape[:-1], inst.kernel))
        if short or not e.instances.get(id(t)):
            return False
    if known is not None and kernel is not None:
        if known in ("valid", 0):
            return True
        if known == "same":
            return False
        p = pads(known, e.rank)
        return symmetric(p) and all(lo <= k // 2 for lo, k in zip(p[::2], axes(kernel, e.rank)))
    insts = e.instances.get(id(t), [])
    return bool(insts) and all(
        not n.same and symmetric(n.padding) and all(lo <= k // 2 for lo, k in zip(n.padding[::2], n.kernel))
        for n in insts
    )


def _hardswish(e, t, scope, k, inplace):
    return e.nn("Hardswish", inplace=True) if inplace else e.nn("Hardswish")


def _hardsigmoid(e, t, scope, k, inplace):
    return e.nn("Hardsigmoid")


def _gelu(e, t, scope, k, inplace):
    return c.kwcall(c.attr(e.ref("nn"), "GELU"), [], keywords("GELU", scope, t, {"approximate": "approximate"}))


def _leaky_relu(e, t, scope, k, inplace):
    kw = keywords("LeakyReLU", scope, t, {"negative_slope": "slope"})
    return c.kwcall(c.attr(e.ref("nn"), "LeakyReLU"), [], kw + ([("inplace", c.lit(True))] if inplace else []))


def _softmax(e, t, scope, k, inplace):
    return e.nn("Softmax", dim=1)


def _layernorm(e, t, scope, k, inplace):
    cls = e.ref("LayerNorm2d") if e.is_map(t) else c.attr(e.ref("nn"), "LayerNorm")
    return c.kwcall(cls, [e.width(t.in_ch, scope, k)], keywords("LayerNorm", scope, t, {"eps": "eps"}))


def _groupnorm(e, t, scope, k, inplace):
    args = [scope.node(t.attr("groups")), e.width(t.in_ch, scope, k)]
    return c.kwcall(c.attr(e.ref("nn"), "GroupNorm"), args, keywords("GroupNorm", scope, t, {"eps": "eps"}))


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
    kw = [("kernel_size", scope.node(t.attr("kernel")))]
    kw += keywords("ConvTranspose", scope, t, {name: name for name in DEFAULTS["ConvTranspose"]})
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
    kw += keywords("Upsample", scope, t, {"mode": "mode"})
    if t.attr("align_corners") is not None:
        kw.append(("align_corners", scope.node(t.attr("align_corners"))))
    return kw


def _upsample(e, t, scope, k, inplace):
    return c.kwcall(c.attr(e.ref("nn"), "Upsample"), [], upsample_kwargs(e, t, scope))


EMIT = {
    "conv": _conv,
    "dwconv": _conv,
    "bn": _bn,
    **{fn: _activation for fn in ACT_MODULES},
    "maxpool": _pool,
    "avgpool": _pool,
    "gap": _gap,
    "dropout": _dropout,
    "flatten": _flatten,
    "dense": _dense,
    "zeropad": _zeropad,
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
INPLACE_OPS = ("relu", "relu6", "silu", "hardswish", "leaky_relu")  # inplace=True where the input is a fresh tensor
FRESH_OPS = (
    "layernorm", "groupnorm", "layer_scale", "adaptive_avgpool", "softmax", "gelu", "hardsigmoid", "scale",
    "conv_transpose", "upsample",
)  # fmt: skip

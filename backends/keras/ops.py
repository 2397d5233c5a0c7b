"""Keras layers for the registry's kinds (:mod:`archc.ops`): one emit function per kind, in :data:`EMIT`.

Each function gets the emitter, the template node, the scope, the variable it transforms, the layer's name, the
statements being written and the previous item, and appends ``x = Layer(...)(x)`` statements. Most kinds are one
layer: ``@layer`` functions return ``(layer class, args, kwargs)`` (or a list of them, each with a name suffix
after the first): the class as an ``ast`` expression (``layers.Activation``, or a helper from
``templates/helpers.py`` through ``e.helper``). Keras' own layers are used where they compute PyTorch's numbers
(checked by tests/test_vocabulary.py and tests/test_ranks.py).
"""

from __future__ import annotations

import ast

from archc import ir
from archc.expr import Expr

from .. import code as c
from ..common import Unsupported, axes, ones, pads
from .init import kwargs as init_kwargs

NONNEGATIVE = ("relu", "relu6", "sigmoid")  # activations whose output is >= 0: zero padding before a max pool is safe

# Keras' defaults of the keyword arguments written below (Keras 3.15's signatures; tests/test_emitters_general.py
# compares them with inspect.signature): an argument whose literal value is its default is left out, as a person
# would write the call. A symbolic value (a block's param, an expression) is always written.
DEFAULTS = {
    "BatchNormalization": {"epsilon": 1e-3, "momentum": 0.99, "scale": True},
    "Dense": {"use_bias": True},
    "LayerNormalization": {"epsilon": 1e-3},
    "GroupNormalization": {"groups": 32, "epsilon": 1e-3},
    "LeakyReLU": {"negative_slope": 0.3},
}


def is_default(cls: str, arg: str, value) -> bool:
    """Whether ``value`` (a literal, or None where it is symbolic) is Keras' default of ``cls``'s ``arg``."""
    default = DEFAULTS[cls][arg]
    return value is not None and isinstance(value, bool) == isinstance(default, bool) and value == default


def keywords(cls: str, scope, t, args: dict[str, str]) -> list[tuple[str, ast.expr]]:
    """The keyword arguments ``{Keras' name: the item's attribute}`` of ``t`` not at ``cls``'s defaults."""
    return [
        (arg, scope.node(t.attr(attr)))
        for arg, attr in args.items()
        if not is_default(cls, arg, scope.value(t.attr(attr)))
    ]


def layer(fn):
    """An emit function from one that returns the layer(s): ``(class, args, kwargs)`` or a list of
    ``(class, args, kwargs, suffix)`` after the first (a second layer named ``<name>_<suffix>``)."""

    def emit(e, t, scope, x, name, out, prev):
        e.current_x = x  # the layer's input (initializers that need its channels read them)
        made = fn(e, t, scope)
        for cls, args, kwargs, *suffix in made if isinstance(made, list) else [made]:
            e.layer(out, x, cls, args, [*kwargs, ("name", name.child(*suffix).node())])

    emit.__doc__ = fn.__doc__
    return emit


ACTIVATIONS = {
    "relu": ("ReLU", []),
    "relu6": ("ReLU", [6.0]),
    "sigmoid": ("Activation", ["sigmoid"]),
    "tanh": ("Activation", ["tanh"]),
    "silu": ("Activation", ["silu"]),
}


@layer
def _builtin_activation(e, t, scope):
    cls, args = ACTIVATIONS[t.kind]
    return e.L(cls), [c.lit(a) for a in args], []


@layer
def _bn(e, t, scope):
    """BatchNormalization, momentum in Keras' convention (1 - PyTorch's)."""
    node = scope.node
    momentum = scope.value(t.attr("momentum"))
    mom = c.lit(round(1 - momentum, 12)) if momentum is not None else c.binop(c.lit(1), "-", node(t.attr("momentum")))
    kw = keywords("BatchNormalization", scope, t, {"epsilon": "eps"})
    if momentum is None or not is_default("BatchNormalization", "momentum", round(1 - momentum, 12)):
        kw.append(("momentum", mom))
    kw += keywords("BatchNormalization", scope, t, {"scale": "scale"})  # Keras' scale=False: no gamma
    return _bn_class(e, t, scope), [], [*kw, *init_kwargs(e, t, scope, e.current_x, "norm")]


def _bn_class(e, t, scope) -> ast.expr:
    """Keras' BatchNormalization averages the biased batch variance into its moving variance: PyTorch's convention
    (``running_var: unbiased``, the default) takes the ``BatchNormalizationUnbiased`` helper."""
    running_var = scope.value(t.attr("running_var"))
    if running_var == "biased":
        return e.L("BatchNormalization")
    if running_var == "unbiased":
        return e.helper("BatchNormalizationUnbiased")
    is_biased = c.compare(scope.node(t.attr("running_var")), "==", c.lit("biased"))  # decided when the block runs
    return c.ifexp(is_biased, e.L("BatchNormalization"), e.helper("BatchNormalizationUnbiased"))


@layer
def _gap(e, t, scope):
    return e.L(e.ranked("GlobalAveragePooling2D")), [], []


@layer
def _flatten(e, t, scope):
    return e.L("Flatten"), [], []


@layer
def _dropout(e, t, scope):
    return e.L("Dropout"), [scope.node(t.attr("rate"))], []


@layer
def _dense(e, t, scope):
    bias = keywords("Dense", scope, t, {"use_bias": "bias"})
    return e.L("Dense"), [scope.node(t.attr("out"))], [*bias, *init_kwargs(e, t, scope, e.current_x, "dense")]


@layer
def _zeropad(e, t, scope):
    pad = scope.value(t.attr("padding"))
    if pad is None:  # a block's param: Keras' form of it computed when the function runs
        return e.L(e.ranked("ZeroPadding2D")), [c.call(e.helper("zeropad_padding"), *_pad_args(e, t, scope))], []
    return e.L(e.ranked("ZeroPadding2D")), [c.lit(e.pad_arg(pads(pad, e.rank)))], []


def _pad_args(e, t, scope) -> list:
    return [scope.node(t.attr("padding")), c.lit(e.rank)]


def _strided_by_subsampling(e, t) -> bool:
    """Whether TensorFlow's kernels cannot stride this convolution: strides > 1 with dilation > 1 (any conv), or a
    2-D depthwise convolution with unequal strides. It then runs at stride 1 and every stride-th output is kept,
    which is the same convolution."""
    for inst in e.instances.get(id(t), []):
        if max(inst.stride) > 1 and max(inst.dilation) > 1:
            return True
        if inst.depthwise and e.rank == 2 and len(set(inst.stride)) > 1:
            return True
    return False


def _conv(e, t, scope, x, name, out, prev):
    node = scope.node
    a = dict(t.attrs)
    if _strided_by_subsampling(e, t):
        return _subsampled_conv(e, t, scope, x, name, out)
    grouped_dw = t.kind == "dwconv" and e.rank == 3  # no DepthwiseConv3D: a Conv3D with a group per channel
    if grouped_dw:
        channels = c.subscript(c.attr(x, "shape"), -1)
        mult = scope.value(a["multiplier"])
        filters = channels if mult == 1 else c.binop(channels, "*", node(a["multiplier"]))
        cls, args = "Conv3D", [filters, node(a["kernel"])]
    elif t.kind == "dwconv":
        cls, args = e.ranked("DepthwiseConv2D"), [node(a["kernel"])]
    else:
        cls, args = e.ranked("Conv2D"), [node(a["out"]), node(a["kernel"])]
    kw: list[tuple[str, ast.expr]] = []
    stride = scope.value(a["stride"])
    if not ones(stride):
        kw.append(("strides", node(a["stride"])))
    padding = scope.value(a["padding"])
    if padding is None and _string_valued(a["padding"]):  # 'same' or 'valid', decided when the function runs
        kw.append(("padding", node(a["padding"])))
    elif padding is None:  # symbolic: decided when the function runs
        e.pad_layers[id(t)] = "if_padded"
        keras_padding = e.ns.fresh("keras_padding")
        out.append(
            c.assign(
                (x, keras_padding),
                c.call(e.helper("explicit_padding"), c.name(x), node(a["padding"]), name.node()),
            )
        )
        e.ns.taken.discard(keras_padding)
        kw.append(("padding", c.name(keras_padding)))
    elif padding == "same":
        kw.append(("padding", c.lit("same")))
    elif padding not in ("valid", 0):
        p = pads(padding, e.rank)
        kernel = scope.value(a["kernel"])
        dil = scope.value(a["dilation"])
        if ones(stride) and _same_at_stride1(kernel, dil, p, e.rank):
            kw.append(("padding", c.lit("same")))
        else:
            e.pad_layers[id(t)] = "always"
            e.layer(
                out,
                x,
                e.ranked("ZeroPadding2D"),
                [c.lit(e.pad_arg(p))],
                [("name", name.child("pad").node())],
            )
    dil = scope.value(a["dilation"])
    if not ones(dil):
        kw.append(("dilation_rate", node(a["dilation"])))
    if grouped_dw:
        kw.append(("groups", channels))
    elif t.kind == "dwconv":
        if scope.value(a["multiplier"]) != 1:
            kw.append(("depth_multiplier", node(a["multiplier"])))
    elif scope.value(a["groups"]) != 1:
        kw.append(("groups", node(a["groups"])))
    if scope.value(a["bias"]) is not True:
        kw.append(("use_bias", node(a["bias"])))
    kw += init_kwargs(e, t, scope, x, _init_layer(e, t))
    kw.append(("name", name.node()))
    e.layer(out, x, cls, args, kw)


def _init_layer(e, t) -> str:
    """Which Keras layer a conv item is, for its initializers (backends/keras/init.py)."""
    if t.kind != "dwconv":
        return "conv"
    return "grouped_depthwise" if e.rank == 3 else "depthwise"


def _subsampled_conv(e, t, scope, x, name, out):
    """The convolution at stride 1 after its padding (TensorFlow's 'same' for the real stride, computed from the
    input's size: the ``SamePadding2D`` helper), then every stride-th output (the ``Subsample2D`` helper)."""
    node = scope.node
    a = dict(t.attrs)
    padding = scope.value(a["padding"])
    pad_name = ("name", name.child("pad").node())
    e.pad_layers[id(t)] = "always"
    if padding is None and not _string_valued(a["padding"]):
        e.pad_layers[id(t)] = "if_padded"
        keras_padding = e.ns.fresh("keras_padding")
        out.append(
            c.assign(
                (x, keras_padding), c.call(e.helper("explicit_padding"), c.name(x), node(a["padding"]), name.node())
            )
        )
        e.ns.taken.discard(keras_padding)
    elif padding is None or padding == "same":
        helper = e.helper("SamePadding2D")
        same = c.kwcall(helper, [node(a["kernel"]), node(a["stride"]), node(a["dilation"])], [pad_name])
        if padding is None:  # 'same' or 'valid', decided when the function runs
            is_same = c.compare(node(a["padding"]), "==", c.lit("same"))
            same = c.ifexp(is_same, same, c.kwcall(e.L("Identity"), [], [pad_name]))
        out.append(c.assign(x, c.call(same, c.name(x))))
    elif padding not in ("valid", 0):
        e.layer(out, x, e.ranked("ZeroPadding2D"), [c.lit(e.pad_arg(pads(padding, e.rank)))], [pad_name])
    else:
        e.pad_layers.pop(id(t))
    if t.kind == "conv":
        cls, args = e.ranked("Conv2D"), [node(a["out"]), node(a["kernel"])]
        kw = [] if scope.value(a["groups"]) == 1 else [("groups", node(a["groups"]))]
    elif e.rank == 3:  # no DepthwiseConv3D: a Conv3D with a group per channel
        channels = c.subscript(c.attr(x, "shape"), -1)
        mult = scope.value(a["multiplier"])
        filters = channels if mult == 1 else c.binop(channels, "*", node(a["multiplier"]))
        cls, args, kw = "Conv3D", [filters, node(a["kernel"])], [("groups", channels)]
    else:
        cls, args = e.ranked("DepthwiseConv2D"), [node(a["kernel"])]
        kw = [] if scope.value(a["multiplier"]) == 1 else [("depth_multiplier", node(a["multiplier"]))]
    if not ones(scope.value(a["dilation"])):
        kw.append(("dilation_rate", node(a["dilation"])))
    if scope.value(a["bias"]) is not True:
        kw.append(("use_bias", node(a["bias"])))
    kw += init_kwargs(e, t, scope, x, _init_layer(e, t))
    e.layer(out, x, cls, args, [*kw, ("name", name.node())])
    e.layer(out, x, e.helper("Subsample2D"), [node(a["stride"])], [("name", name.child("stride").node())])


def _pool(e, t, scope, x, name, out, prev):
    node = scope.node
    a = dict(t.attrs)
    n = ("name", name.node())
    is_max = t.kind == "maxpool"
    cls = e.ranked("MaxPooling2D" if is_max else "AveragePooling2D")
    kernel, stride = scope.value(a["kernel"]), scope.value(a["stride"])
    padding, ceil = scope.value(a["padding"]), scope.value(a["ceil"])
    cip = scope.value(a.get("count_include_pad", True))
    args = [node(a["kernel"])]
    kw: list[tuple[str, ast.expr]] = []
    if stride != kernel or stride is None:
        kw.append(("strides", node(a["stride"])))
    # Keras' 'same' average leaves the padding out; in 3-D with unequal strides TensorFlow's divides wrongly
    unequal_3d = e.rank == 3 and not is_max and (stride is None or len(set(axes(stride, e.rank))) > 1)
    if padding == "same" and (is_max or cip is False) and not unequal_3d:
        e.layer(out, x, cls, args, [*kw, ("padding", c.lit("same")), n])
        return
    known = None not in (padding, ceil, kernel, stride, cip) and padding != "same"
    p = pads(0 if padding == "valid" else padding, e.rank) if known else None
    if known and ones(stride) and any(p) and _same_at_stride1(kernel, 1, p, e.rank) and (is_max or not cip):
        # TensorFlow 'same' at stride 1: the same padding, padded values never win / never counted (and
        # ceil rounding changes nothing at stride 1)
        e.layer(out, x, cls, args, [*kw, ("padding", c.lit("same")), n])
        return
    if not known or (not is_max and (ceil or (any(p) and not cip))):  # what Keras' own layers cannot compute
        kw = [("strides", node(a["stride"])), ("padding", node(a["padding"]))]
        if ceil is not False:
            kw.append(("ceil_mode", node(a["ceil"])))
        if not is_max and cip is not True:
            kw.append(("count_include_pad", node(a["count_include_pad"])))
        op = c.lit("max" if is_max else "avg")
        e.layer(out, x, e.helper("Pooling2DPadded"), [op, node(a["kernel"])], [*kw, n])
        return
    kernel, stride = axes(kernel, e.rank), axes(stride, e.rank)
    _check_pool_sizes(e, t, p, kernel, stride, ceil)
    if any(p) or ceil:
        nonneg = prev is not None and (prev.kind in NONNEGATIVE or _ends_nonnegative(prev, e.model))
        pad_name = ("name", name.child("pad").node())
        e.pad_layers[id(t)] = "always"
        pad_cls = e.L(e.ranked("ZeroPadding2D")) if nonneg or not is_max else e.helper("MaxPadding2D")
        if ceil:
            pad_vars = []
            axis_names = ir.SPATIAL_NAMES[e.rank]
            for axis, (k, st, (p0, p1)) in enumerate(zip(kernel, stride, ir.axis_pairs(p)), start=1):
                var = e.ns.fresh(f"pad_{axis_names[axis - 1][0]}")  # pad_h, pad_w
                size = c.subscript(c.attr(x, "shape"), axis)
                out.append(c.assign(var, c.call(e.helper("pool_padding"), size, k, st, p0, p1, ceil=True)))
                pad_vars.append(var)
            e.ns.taken.difference_update(pad_vars)
            pad_arg = ast.Tuple(elts=[c.name(v) for v in pad_vars], ctx=ast.Load())
            pad_arg = c.name(pad_vars[0]) if e.rank == 1 else pad_arg
            e.layer(out, x, pad_cls, [pad_arg], [pad_name])
        else:
            e.layer(out, x, pad_cls, [c.lit(e.pad_arg(p))], [pad_name])
    e.layer(out, x, cls, args, [*kw, n])


def _check_pool_sizes(e, t, p, kernel, stride, ceil) -> None:
    """Padding (plus ceil's extra rows) then a 'valid' pool must give the IR's output size at every use."""
    from archc.analysis import pool_out

    for inst in e.instances.get(id(t), []):
        sizes = []
        for size, k, st, (p0, p1) in zip(inst.in_shape[:-1], kernel, stride, ir.axis_pairs(p)):
            if ceil:
                o = pool_out(size, k, st, p0, p1, True)
                p1 = max((o - 1) * st + k - size - p0, 0)
            sizes.append((size + p0 + p1 - k) // st + 1)
        if tuple(sizes) != tuple(inst.out_shape[:-1]):
            raise Unsupported(f"keras backend: pool '{inst.path}' has no exact Keras form", t.loc)


def _string_valued(v) -> bool:
    """Whether expression ``v`` can only give a string (e.g. ``'same' if stride == 1 else 'valid'``)."""
    if not isinstance(v, Expr):
        return False

    def strings(node) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        if isinstance(node, ast.IfExp):
            return strings(node.body) and strings(node.orelse)
        return False

    return strings(v.tree)


def _same_at_stride1(kernel, dilation, p, rank: int) -> bool:
    """Whether flat per-axis padding ``p`` is TensorFlow's 'same' at stride 1 (which is size-independent)."""
    if kernel is None or dilation is None:
        return False
    totals = [d * (k - 1) for k, d in zip(axes(kernel, rank), axes(dilation, rank))]
    return all(pair == (tot // 2, tot - tot // 2) for pair, tot in zip(ir.axis_pairs(p), totals))


def _ends_nonnegative(t: ir.TNode, model: ir.Model) -> bool:
    """Whether the output of ``t`` is >= 0 everywhere (it ends in a ReLU-like activation)."""
    if t.cond is not None:
        return False
    if t.kind in NONNEGATIVE:
        return True
    if t.kind == "seq":
        return bool(t.children) and _ends_nonnegative(t.children[-1], model)
    if t.kind == "concat":
        return all(_ends_nonnegative(b, model) for b in t.children)
    if t.kind == "call":
        return _ends_nonnegative(model.block(t.block).body, model)
    return False


def _activation(name):
    @layer
    def emit(e, t, scope):
        return e.L("Activation"), [c.lit(name)], []

    return emit


@layer
def _gelu(e, t, scope):
    approx = scope.value(t.attr("approximate"))
    if approx == "none":
        return e.L("Activation"), [c.lit("gelu")], []
    if approx == "tanh":
        return e.helper("GeluTanh"), [], []
    return e.helper("Gelu"), [], [("approximate", scope.node(t.attr("approximate")))]  # a block's param


@layer
def _leaky_relu(e, t, scope):
    return e.L("LeakyReLU"), [], keywords("LeakyReLU", scope, t, {"negative_slope": "slope"})


@layer
def _softmax(e, t, scope):
    return e.L("Softmax"), [], []


@layer
def _layernorm(e, t, scope):
    init = init_kwargs(e, t, scope, e.current_x, "norm")
    return e.L("LayerNormalization"), [], [*keywords("LayerNormalization", scope, t, {"epsilon": "eps"}), *init]


@layer
def _groupnorm(e, t, scope):
    return (
        e.L("GroupNormalization"),
        [],
        [
            *keywords("GroupNormalization", scope, t, {"groups": "groups", "epsilon": "eps"}),
            *init_kwargs(e, t, scope, e.current_x, "norm"),
        ],
    )


@layer
def _layer_scale(e, t, scope):
    return e.helper("LayerScale"), [scope.node(t.attr("init"))], []


@layer
def _stochastic_depth(e, t, scope):
    return e.helper("StochasticDepth"), [scope.node(t.attr("p"))], []


@layer
def _channel_shuffle(e, t, scope):
    return e.helper("ChannelShuffle"), [scope.node(t.attr("groups"))], []


@layer
def _slice(e, t, scope):
    stop = t.attr("stop")
    return (
        e.helper("ChannelSlice"),
        [scope.node(t.attr("start")), c.lit(None) if stop is None else scope.node(stop)],
        [],
    )


@layer
def _adaptive_avgpool(e, t, scope):
    size = t.attr("size")
    known = scope.value(size)
    if known == 1 or (isinstance(known, (list, tuple)) and set(known) == {1}):
        return e.L(e.ranked("GlobalAveragePooling2D")), [], [("keepdims", c.lit(True))]  # the same mean
    # a helper, not Keras 3.15's AdaptiveAveragePooling2D: that one pools with a window of the input's size + 1
    # where an axis goes to 1, which TensorFlow's graph mode refuses (predict, fit: "Negative dimension size")
    node = c.lit(tuple(known) if isinstance(known, (list, tuple)) else known) if known is not None else scope.node(size)
    return e.helper("AdaptiveAvgPool2D"), [node], []


@layer
def _global_maxpool(e, t, scope):
    return e.L(e.ranked("GlobalMaxPooling2D")), [], []


@layer
def _scale(e, t, scope):
    return e.helper("Scale"), [scope.node(t.attr("factor"))], []


@layer
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
    kw = [("strides", node(t.attr("stride")))] if value(t.attr("stride")) not in (1, (1,) * e.rank) else []
    if len(plans) != 1:  # a block's transposed conv whose padding differs between its calls: the plan at run time
        args = [node(t.attr("padding")), node(t.attr("output_padding")), c.lit(e.rank)]
        kw.append(("output_padding", c.call(e.helper("transpose_output_padding"), *args)))
        kw += _conv_transpose_rest(e, t, scope)
        layer = (e.L(e.ranked("Conv2DTranspose")), [node(t.attr("out")), node(t.attr("kernel"))], kw)
        return [layer, (e.L(e.ranked("Cropping2D")), [c.call(e.helper("transpose_cropping"), *args)], [], "crop")]
    ((extra, crop),) = plans
    if extra is not None:
        kw.append(("output_padding", c.lit(extra if len(set(extra)) > 1 else extra[0])))
    kw += _conv_transpose_rest(e, t, scope)
    layer = (e.L(e.ranked("Conv2DTranspose")), [node(t.attr("out")), node(t.attr("kernel"))], kw)
    if not any(x for pair in crop for x in pair):
        return layer
    arg = crop[0] if e.rank == 1 else crop
    return [layer, (e.L(e.ranked("Cropping2D")), [c.lit(arg)], [], "crop")]


def _conv_transpose_rest(e, t, scope) -> list:
    """A transposed conv's keyword arguments after its strides and output padding."""
    kw = []
    if scope.value(t.attr("dilation")) not in (1, (1,) * e.rank):
        kw.append(("dilation_rate", scope.node(t.attr("dilation"))))
    if scope.value(t.attr("bias")) is not True:
        kw.append(("use_bias", scope.node(t.attr("bias"))))
    return kw + init_kwargs(e, t, scope, e.current_x, "conv_transpose")


@layer
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
    like = t.attr("like")
    if like is not None:  # that output's spatial size (static in a functional model)
        spatial = ast.Slice(lower=c.lit(1), upper=c.lit(-1), step=None)
        kw.append(("size", c.subscript(c.attr(e.saved[like], "shape"), spatial)))
    elif size == "input":
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
    "conv": _conv,
    "dwconv": _conv,
    "bn": _bn,
    **{fn: _builtin_activation for fn in ACTIVATIONS},
    "maxpool": _pool,
    "avgpool": _pool,
    "gap": _gap,
    "dropout": _dropout,
    "flatten": _flatten,
    "dense": _dense,
    "zeropad": _zeropad,
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
    "Resize", "BatchNormalizationUnbiased", "TruncatedNormalBounded", "torch_fan_in", "transpose_output_padding",
    "transpose_cropping", "zeropad_padding", "Gelu",
)  # fmt: skip

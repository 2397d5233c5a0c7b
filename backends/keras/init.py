"""Keras initializer arguments for a layer: the distribution archc's :mod:`archc.init` gives each tensor.

A scheme whose fans Keras computes as PyTorch does (a conv's, a dense's, a transposed conv's kernel) is written
as Keras' own initializer: by name where Keras has it (``"he_uniform"``), else ``VarianceScaling`` with the scale
that gives the same variance (He et al.'s normal is untruncated: ``distribution="untruncated_normal"``, not Keras'
truncated ``he_normal``). A depthwise kernel (kh, kw, C, m) has other fans in Keras (kh kw C, kh kw m) than in
PyTorch (kh kw, kh kw C m): ``VarianceScaling`` is given PyTorch's through its ``input_axes`` / ``output_axes``.
A bias drawn as PyTorch's default (U(-1/sqrt(fan_in), 1/sqrt(fan_in))) is a ``RandomUniform`` with the bound
computed here (an expression of the input's channels where the block does not know them). Arguments equal to
Keras' defaults (glorot_uniform kernels, zero biases, unit gammas) are left out.
"""

from __future__ import annotations

import ast
import math

from archc import init as initmod
from archc.init import Init

from .. import code as c

# Keras' initializers by name: (scale, mode, distribution) of VarianceScaling -> name
NAMED = {
    (1.0, "fan_avg", "uniform"): "glorot_uniform",
    (1.0, "fan_avg", "truncated_normal"): "glorot_normal",
    (2.0, "fan_in", "uniform"): "he_uniform",
    (2.0, "fan_in", "truncated_normal"): "he_normal",
    (1.0, "fan_in", "uniform"): "lecun_uniform",
    (1.0, "fan_in", "truncated_normal"): "lecun_normal",
}
TORCH_DEFAULT_WEIGHT = (1.0 / 3, "fan_in", "uniform")  # kaiming_uniform(a=sqrt(5)): U(-1/sqrt(fan_in), ...)


def kwargs(e, t, scope, x: str, layer: str) -> list[tuple[str, ast.expr]]:
    """The initializer keyword arguments of the Keras layer made for template leaf ``t``; ``x``: its input
    variable; ``layer``: ``conv``, ``depthwise`` (Keras' DepthwiseConv1D / 2D), ``grouped_depthwise`` (a Conv3D
    with a group per channel), ``conv_transpose``, ``dense``, ``norm``."""
    inits = dict(t.init)
    if not inits:
        return []
    out = []
    if layer == "norm":
        names = ("gamma_initializer", "beta_initializer")
    elif layer == "depthwise":
        names = ("depthwise_initializer", "bias_initializer")
    else:
        names = ("kernel_initializer", "bias_initializer")
    w, b = inits.get("weight"), inits.get("bias")
    if w is not None:
        arg = _norm_tensor(e, w, 1.0) if layer == "norm" else _kernel(e, t, scope, w, layer)
        if arg is not None:
            out.append((names[0], arg))
    if b is not None and (layer == "norm" or scope.value(t.attr("bias")) is not False):
        arg = _norm_tensor(e, b, 0.0) if layer == "norm" else _bias(e, t, scope, x, b, layer)
        if arg is not None:
            out.append((names[1], arg))
    return out


def _init(e, cls: str, **kw) -> ast.expr:
    return c.call(c.attr(e.module_names["keras"], "initializers", cls), **kw)


def _fixed(e, init: Init, default_constant: float | None) -> ast.expr | None:
    """A scheme without fans; None: Keras' default (``default_constant``) already draws it."""
    d = initmod.dist(init, "bn", "weight")  # fixed schemes do not depend on the kind or the fans
    if init.scheme == "torch_default":
        raise AssertionError("torch_default is resolved by the caller")
    if d.kind == "constant":
        if d.mean == default_constant:
            return None
        return c.lit("zeros") if d.mean == 0 else c.lit("ones") if d.mean == 1 else _init(e, "Constant", value=d.mean)
    if d.kind == "normal":
        return _init(e, "RandomNormal", **({"mean": d.mean} if d.mean else {}), stddev=d.std)
    if d.kind == "uniform":
        return _init(e, "RandomUniform", minval=d.low, maxval=d.high)
    lo, hi = (d.low - d.mean) / d.std, (d.high - d.mean) / d.std
    if math.isclose(lo, -2, rel_tol=1e-9) and math.isclose(hi, 2, rel_tol=1e-9):  # Keras' truncation at 2 stds
        return _init(e, "TruncatedNormal", **({"mean": d.mean} if d.mean else {}), stddev=d.std)
    if lo <= -initmod.UNTRUNCATED_AT and hi >= initmod.UNTRUNCATED_AT:  # bounds no draw reaches
        return _init(e, "RandomNormal", **({"mean": d.mean} if d.mean else {}), stddev=d.std)
    # other bounds: Keras' TruncatedNormal truncates at 2 stds only; the helper draws as PyTorch's trunc_normal_
    bounds = {"mean": d.mean} if d.mean else {}
    return c.call(e.helper("TruncatedNormalBounded"), **bounds, stddev=d.std, low=d.low, high=d.high)


def _norm_tensor(e, init: Init, default: float) -> ast.expr | None:
    if init.scheme == "torch_default":
        return None  # PyTorch's norm defaults (1, 0) are Keras' (ones, zeros)
    return _fixed(e, init, default)


def _kernel(e, t, scope, init: Init, layer: str) -> ast.expr | None:
    if init.scheme not in initmod.FAN_SCHEMES and init.scheme != "torch_default":
        return _fixed(e, init, None)
    scale, mode, dist = TORCH_DEFAULT_WEIGHT if init.scheme == "torch_default" else initmod.variance_scale(init)
    axes = {}
    if layer == "depthwise" and not (mode == "fan_avg" and scope.value(t.attr("multiplier")) == 1):
        # Keras' fans of (*k, C, m) are (prod(k) C, prod(k) m); PyTorch's (prod(k), prod(k) C m) (with m = 1 their
        # means agree)
        r = e.rank
        axes = {"input_axes": c.lit(list(range(r))), "output_axes": c.lit(list(range(r + 2)))}
        axes = {k: ast.List(elts=v.elts, ctx=ast.Load()) for k, v in axes.items()}
    if not axes:
        key = (round(scale, 12), mode, dist)
        name = NAMED.get(key)
        if name == "glorot_uniform":
            return None  # Keras' default kernel initializer
        if name is not None:
            return c.lit(name)
    kw = {}
    if scale != 1.0:
        kw["scale"] = c.lit(scale)
    if mode != "fan_in":
        kw["mode"] = c.lit(mode)
    if dist != "truncated_normal":
        kw["distribution"] = c.lit(dist)
    return _init(e, "VarianceScaling", **kw, **axes)


def _bias(e, t, scope, x: str, init: Init, layer: str) -> ast.expr | None:
    if init.scheme != "torch_default":
        return _fixed(e, init, 0.0)
    fan = _fan_in(e, t, scope, x, layer)
    if isinstance(fan, int):
        bound = 1 / math.sqrt(fan)
        return _init(e, "RandomUniform", minval=c.lit(-bound), maxval=c.lit(bound))
    bound = c.binop(c.lit(1), "/", c.binop(fan, "**", c.lit(0.5)))
    return _init(e, "RandomUniform", minval=ast.UnaryOp(op=ast.USub(), operand=bound), maxval=bound)


def _fan_in(e, t, scope, x: str, layer: str):
    """PyTorch's fan-in of the layer's weight: an int, or an expression of the input's channels."""
    value = scope.value

    def known_or(expr, fallback):
        v = value(expr)
        return v if v is not None else fallback

    if layer == "dense":
        return known_or(t.in_ch, c.subscript(c.attr(x, "shape"), -1))
    if layer in ("depthwise", "grouped_depthwise"):  # one input channel per group
        per_group = 1
    elif layer == "conv_transpose":  # PyTorch's weight (in, out / groups, *k): fan_in reads dim 1
        per_group = known_or(t.attr("out"), scope.node(t.attr("out")))
    else:
        channels, groups = value(t.in_ch), value(t.attr("groups"))
        if channels is not None and groups is not None:
            per_group = channels // groups
        else:
            ch = c.subscript(c.attr(x, "shape"), -1) if channels is None else c.lit(channels)
            per_group = ch if groups == 1 else c.binop(ch, "//", scope.node(t.attr("groups")))
    kernel = value(t.attr("kernel"))
    if kernel is None:  # a param of the block: an integer or one per axis, known when the function runs
        channels = c.lit(per_group) if isinstance(per_group, int) else per_group
        return c.call(e.helper("torch_fan_in"), channels, scope.node(t.attr("kernel")), c.lit(max(e.rank, 1)))
    k = math.prod(kernel) if isinstance(kernel, (list, tuple)) else kernel ** max(e.rank, 1)
    if isinstance(per_group, int):
        return per_group * k
    return per_group if k == 1 else c.binop(per_group, "*", c.lit(k))

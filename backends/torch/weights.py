"""The generated PyTorch model's weights: per weighted IR node kind, its ``state_dict`` entries and their layouts.

The emitter (:mod:`archc.backends.torch.emitter`) builds the module tree after the IR's names, so the module
path of every leaf with weights is its IR path, at every level: ``layer1.rest.0.block.conv1`` (class bodies
hold one attribute per item, nested levels are ``nn.Sequential`` of ``OrderedDict`` s, merge branches and
residual ``body`` / ``shortcut`` are named children, loops are indices). Each entry is ``<module path>.<name>``;
the canonical layouts are :mod:`archc.weights`' (channels last). tests/test_weight_layouts.py builds every spec's
model and checks that these are exactly its ``state_dict``.
"""

from __future__ import annotations

from archc import ir
from archc.weights import Context, Declaration, Layer, Tensor, channels


def _bias(node, n: int) -> list[Tensor]:
    return [Tensor("bias", (n,), "bias")] if node.bias else []


def conv(node: ir.Conv, ctx: Context) -> Layer:
    """nn.Conv2d: weight (out, in / groups, kh, kw) = OIHW; canonical HWIO."""
    kh, kw = node.kernel
    weight = Tensor(
        "weight",
        (node.out_channels, node.in_channels // node.groups, kh, kw),
        "kernel",
        to_canonical=lambda w: w.transpose(2, 3, 1, 0),
        from_canonical=lambda k: k.transpose(3, 2, 0, 1),
    )
    return Layer(node.path, (weight, *_bias(node, node.out_channels)))


def dwconv(node: ir.Conv, ctx: Context) -> Layer:
    """nn.Conv2d with groups = C: weight (C * m, 1, kh, kw), output channel c * m + j from input c;
    canonical (kh, kw, C, m)."""
    (kh, kw), c = node.kernel, node.in_channels
    m = node.out_channels // c
    weight = Tensor(
        "weight",
        (c * m, 1, kh, kw),
        "kernel",
        to_canonical=lambda w: w.reshape(c, m, kh, kw).transpose(2, 3, 0, 1),
        from_canonical=lambda k: k.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw),
    )
    return Layer(node.path, (weight, *_bias(node, node.out_channels)))


def _zero_count():
    import numpy as np

    return np.zeros((), dtype=np.int64)


def bn(node: ir.BatchNorm, ctx: Context) -> Layer:
    """nn.BatchNorm2d / 1d: weight, bias, running_mean, running_var (C,); num_batches_tracked, a counter
    (not converted, zero when made). Without a scale (the BatchNorm2dNoScale helper) there is no weight: it is a
    buffer of ones outside the state_dict."""
    c = (node.channels,)
    return Layer(
        node.path,
        (
            *([Tensor("weight", c, "gamma")] if node.scale else []),
            Tensor("bias", c, "beta"),
            Tensor("running_mean", c, "mean"),
            Tensor("running_var", c, "var"),
            Tensor("num_batches_tracked", (), None, make=_zero_count),
        ),
    )


def dense(node: ir.Dense, ctx: Context) -> Layer:
    """nn.Linear: weight (out, in). Fed by a flatten of (H, W, C), PyTorch's inputs are in (C, H, W) order, the
    canonical kernel's in (H, W, C) order; on a feature map (channels last) it acts on channels: same layout."""
    i, o = node.in_features, node.out_features
    if ctx.flattened is not None:
        h, w, c = ctx.flattened

        def to_canonical(a):
            return a.reshape(o, c, h, w).transpose(2, 3, 1, 0).reshape(h * w * c, o)

        def from_canonical(k):
            return k.reshape(h, w, c, o).transpose(3, 2, 0, 1).reshape(o, c * h * w)

    else:

        def to_canonical(a):
            return a.T

        def from_canonical(k):
            return k.T

    weight = Tensor("weight", (o, i), "kernel", to_canonical=to_canonical, from_canonical=from_canonical)
    return Layer(node.path, (weight, *_bias(node, o)))


def norm(node: ir.Op, ctx: Context) -> Layer:
    """nn.LayerNorm / nn.GroupNorm (and the LayerNorm2d helper on maps): weight, bias (C,)."""
    c = (channels(node),)
    return Layer(node.path, (Tensor("weight", c, "gamma"), Tensor("bias", c, "beta")))


def layer_scale(node: ir.Op, ctx: Context) -> Layer:
    """The LayerScale helper: parameter ``scale`` (C, 1, 1) on a feature map (broadcast over NCHW), (C,) on
    flat features."""
    c = channels(node)
    if len(node.in_shape) == 3:
        scale = Tensor(
            "scale",
            (c, 1, 1),
            "scale",
            to_canonical=lambda a: a.reshape(c),
            from_canonical=lambda s: s.reshape(c, 1, 1),
        )
    else:
        scale = Tensor("scale", (c,), "scale")
    return Layer(node.path, (scale,))


LAYOUT = Declaration(
    backend="torch",
    tables={
        "conv": conv,
        "dwconv": dwconv,
        "bn": bn,
        "dense": dense,
        "layernorm": norm,
        "groupnorm": norm,
        "layer_scale": layer_scale,
    },
    grouped=False,
    noun="checkpoint",
)

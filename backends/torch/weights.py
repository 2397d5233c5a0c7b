"""The generated PyTorch model's weights: per weighted IR node kind, its ``state_dict`` entries and their layouts.

The emitter (:mod:`archc.backends.torch.emitter`) builds the module tree after the IR's names, so the module
path of every leaf with weights is its IR path, at every level: ``layer1.rest.0.conv1`` (class bodies
hold one attribute per item, nested levels are ``nn.Sequential`` of ``OrderedDict`` s, merge branches and
residual ``body`` / ``shortcut`` are named children, loops are indices). Each entry is ``<module path>.<name>``;
the canonical layouts are :mod:`archc.weights`' (channels last). tests/test_weight_layouts.py builds every spec's
model and checks that these are exactly its ``state_dict``.
"""

from __future__ import annotations

from archc import ir
from archc.errors import ArchcError, Loc
from archc.weights import Context, Declaration, Files, Layer, Tensor, channels


def _bias(node, n: int) -> list[Tensor]:
    return [Tensor("bias", (n,), "bias")] if node.bias else []


def _to_channels_last(rank: int) -> tuple[int, ...]:
    """The axes that take a channels-first kernel ``(a, b, *k)`` to ``(*k, b, a)`` (OIHW -> HWIO in 2-D)."""
    return (*range(2, 2 + rank), 1, 0)


def _to_channels_first(rank: int) -> tuple[int, ...]:
    """The inverse of :func:`_to_channels_last`: ``(*k, b, a)`` -> ``(a, b, *k)``."""
    return (rank + 1, rank, *range(rank))


def conv(node: ir.Conv, ctx: Context) -> Layer:
    """nn.Conv1d / 2d / 3d: weight (out, in / groups, *k) (OIHW in 2-D); canonical (*k, in / groups, out)."""
    n = len(node.kernel)
    weight = Tensor(
        "weight",
        (node.out_channels, node.in_channels // node.groups, *node.kernel),
        "kernel",
        to_canonical=lambda w: w.transpose(_to_channels_last(n)),
        from_canonical=lambda k: k.transpose(_to_channels_first(n)),
    )
    return Layer(node.path, (weight, *_bias(node, node.out_channels)))


def dwconv(node: ir.Conv, ctx: Context) -> Layer:
    """nn.Conv1d / 2d / 3d with groups = C: weight (C * m, 1, *k), output channel c * m + j from input c;
    canonical (*k, C, m)."""
    k, c, n = node.kernel, node.in_channels, len(node.kernel)
    m = node.out_channels // c
    weight = Tensor(
        "weight",
        (c * m, 1, *k),
        "kernel",
        to_canonical=lambda w: w.reshape(c, m, *k).transpose(*range(2, 2 + n), 0, 1),  # (C, m, *k) -> (*k, C, m)
        from_canonical=lambda a: a.transpose(n, n + 1, *range(n)).reshape(c * m, 1, *k),
    )
    return Layer(node.path, (weight, *_bias(node, node.out_channels)))


def conv_transpose(node: ir.Op, ctx: Context) -> Layer:
    """nn.ConvTranspose1d / 2d / 3d: weight (in, out / groups, *k); canonical (*k, out / groups, in)."""
    kernel, out, groups = node.attr("kernel"), node.attr("out"), node.attr("groups")
    n = len(kernel)
    weight = Tensor(
        "weight",
        (node.in_shape[-1], out // groups, *kernel),
        "kernel",
        to_canonical=lambda w: w.transpose(_to_channels_last(n)),
        from_canonical=lambda k: k.transpose(_to_channels_first(n)),
    )
    return Layer(node.path, (weight, *([Tensor("bias", (out,), "bias")] if node.attr("bias") else [])))


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
    """nn.Linear: weight (out, in). Fed by a flatten of (*spatial, C), PyTorch's inputs are in (C, *spatial)
    order, the canonical kernel's in (*spatial, C) order; on a feature map (channels last) it acts on channels:
    same layout."""
    i, o = node.in_features, node.out_features
    if ctx.flattened is not None:
        *spatial, c = ctx.flattened
        n = len(spatial)

        def to_canonical(a):  # (o, c, *spatial) -> (*spatial, c, o)
            return a.reshape(o, c, *spatial).transpose(_to_channels_last(n)).reshape(i, o)

        def from_canonical(k):
            return k.reshape(*spatial, c, o).transpose(_to_channels_first(n)).reshape(o, i)

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
    """The LayerScale helper: parameter ``scale`` (C, 1, ...) on a feature map (broadcast over N, C, *spatial),
    (C,) on flat features."""
    c = channels(node)
    if len(node.in_shape) > 1:
        ones = (1,) * ir.rank(node.in_shape)
        scale = Tensor(
            "scale",
            (c, *ones),
            "scale",
            to_canonical=lambda a: a.reshape(c),
            from_canonical=lambda s: s.reshape(c, *ones),
        )
    else:
        scale = Tensor("scale", (c,), "scale")
    return Layer(node.path, (scale,))


def read_checkpoint(model: ir.Model, path: str) -> dict:
    """A ``torch.save``'d state_dict (or a training checkpoint holding one under ``state_dict`` / ``model``; keys
    of a DataParallel model lose their ``module.``): name -> tensor."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say so, no traceback
        raise ArchcError(f"cannot read PyTorch checkpoint: {exc}", Loc(path, 1, 1)) from None
    for wrapper in ("state_dict", "model"):  # a training checkpoint (torchvision's references save "model")
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ArchcError("not a state_dict (a mapping of names to tensors)", Loc(path, 1, 1))
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def write_checkpoint(model: ir.Model, state: dict, path: str) -> int:
    """``torch.save`` of the state_dict (contiguous tensors): what ``model.load_state_dict(torch.load(path))``
    reads."""
    import torch

    tensors = {k: torch.as_tensor(v).contiguous() for k, v in state.items()}
    torch.save(tensors, path)
    return len(tensors)


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
        "conv_transpose": conv_transpose,
    },
    grouped=False,
    noun="checkpoint",
    files=Files((".pt", ".pth"), read_checkpoint, write_checkpoint, "tensors of the generated PyTorch model"),
)

"""Static analysis of the IR: shapes, parameter counts, MACs. Pure Python.

Shape rules follow PyTorch / TensorFlow exactly:

Every rule is per spatial axis, for any number of them (1-D, 2-D, 3-D):

* convolution: ``out = floor((n + p0 + p1 - d*(k-1) - 1) / s) + 1``;
* TensorFlow ``same``: ``out = ceil(n / s)``, total padding
  ``max((out-1)*s + d*(k-1) + 1 - n, 0)``, the smaller half before (top/left);
* pooling with ``ceil``: rounded up, minus one if the last window would start past
  the input and its leading padding (PyTorch's ``pooling_output_shape``).

Parameter counts split as Keras counts them: BN gamma/beta trainable, BN running
mean/variance non-trainable. MACs count multiply-accumulates of conv and dense layers (torchvision's
``_ops`` convention); the registry's primitives (:mod:`archc.ops`) declare their own rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import ir, ops


def same_padding(n: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow 'same' padding (before, after) for one spatial dimension."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def same_pads(spatial, kernel, stride, dilation=None) -> ir.Pads:
    """TensorFlow 'same' padding of every spatial axis, flat ``(before, after, ...)``."""
    dilation = dilation or (1,) * len(spatial)
    return tuple(p for axis in zip(spatial, kernel, stride, dilation) for p in same_padding(*axis))


def conv_out(n: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    return (n + p0 + p1 - d * (k - 1) - 1) // s + 1


def pool_out(n: int, k: int, s: int, p0: int, p1: int, ceil: bool) -> int:
    span = n + p0 + p1 - k
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p0:
        out -= 1
    return out


def conv_transpose_out(n: int, k: int, s: int, d: int, p: int, op: int) -> int:
    """PyTorch's ConvTranspose output size: ``(n - 1) s - 2 p + d (k - 1) + op + 1``."""
    return (n - 1) * s - 2 * p + d * (k - 1) + op + 1


def conv_spatial(spatial, kernel, stride, dilation, pads: ir.Pads) -> ir.Axes:
    """The output size of every spatial axis of a convolution."""
    return tuple(
        conv_out(n, k, s, d, p0, p1)
        for n, k, s, d, (p0, p1) in zip(spatial, kernel, stride, dilation, ir.axis_pairs(pads))
    )


def pool_spatial(spatial, kernel, stride, pads: ir.Pads, ceil: bool) -> ir.Axes:
    """The output size of every spatial axis of a pooling window."""
    return tuple(
        pool_out(n, k, s, p0, p1, ceil) for n, k, s, (p0, p1) in zip(spatial, kernel, stride, ir.axis_pairs(pads))
    )


def params_of(node: ir.Node) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts of a leaf node."""
    if isinstance(node, ir.Conv):
        w = math.prod(node.kernel) * (node.in_channels // node.groups) * node.out_channels
        return w + (node.out_channels if node.bias else 0), 0
    if isinstance(node, ir.BatchNorm):
        return (2 if node.scale else 1) * node.channels, 2 * node.channels  # gamma (if scale), beta; mean, var
    if isinstance(node, ir.Dense):
        return node.in_features * node.out_features + (node.out_features if node.bias else 0), 0
    if isinstance(node, ir.Op):
        return ops.get(node.op).params(node)
    return 0, 0


def macs_of(node: ir.Node) -> int:
    if isinstance(node, ir.Conv):
        return math.prod(node.out_shape) * math.prod(node.kernel) * (node.in_channels // node.groups)
    if isinstance(node, ir.Dense):  # on a feature map: once per position
        return math.prod(node.out_shape[:-1]) * node.in_features * node.out_features
    if isinstance(node, ir.Op):
        return ops.get(node.op).macs(node)
    return 0


@dataclass(frozen=True)
class Row:
    path: str
    kind: str
    out_shape: ir.Shape
    trainable: int
    non_trainable: int
    macs: int


@dataclass(frozen=True)
class Report:
    name: str
    input_shape: ir.Shape
    outputs: dict
    rows: tuple[Row, ...]
    trainable: int
    non_trainable: int
    macs: int
    loss_weights: dict

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "input": list(self.input_shape),
            "outputs": {k: list(v) for k, v in self.outputs.items()},
            "loss_weights": self.loss_weights,
            "trainable_params": self.trainable,
            "non_trainable_params": self.non_trainable,
            "total_params": self.total,
            "macs": self.macs,
            "layers": [
                {
                    "name": r.path,
                    "kind": r.kind,
                    "output_shape": list(r.out_shape),
                    "trainable_params": r.trainable,
                    "non_trainable_params": r.non_trainable,
                    "macs": r.macs,
                    "depth": row_depth(r),
                }
                for r in self.rows
            ],
        }


def _leaf_kind(node: ir.Node) -> str:
    if isinstance(node, ir.Conv):
        return "dwconv" if node.depthwise else "conv"
    if isinstance(node, ir.Act):
        return node.fn
    if isinstance(node, ir.Pool):
        return f"{node.op}pool"
    if isinstance(node, ir.Op):
        return node.op
    return node.kind


def analyze(model: ir.Model) -> Report:
    """Per-layer output shapes, parameter counts and MACs of a lowered model."""
    rows: list[Row] = []
    roots = [model.body] + [h.body for h in model.heads]
    for root in roots:
        for node in ir.walk(root):
            if ir.is_leaf(node):
                tr, nt = params_of(node)
                rows.append(Row(node.path, _leaf_kind(node), node.out_shape, tr, nt, macs_of(node)))
    outputs = {"main": model.body.out_shape}
    weights = {"main": model.loss_weight}
    for h in model.heads:
        outputs[h.name] = h.body.out_shape
        weights[h.name] = h.loss_weight
    return Report(
        name=model.name,
        input_shape=model.input_shape,
        outputs=outputs,
        rows=tuple(rows),
        trainable=sum(r.trainable for r in rows),
        non_trainable=sum(r.non_trainable for r in rows),
        macs=sum(r.macs for r in rows),
        loss_weights=weights,
    )


def _node_kind(node: ir.Node) -> str:
    if isinstance(node, ir.Call):
        return node.block
    if isinstance(node, ir.Merge):
        return node.mode
    return node.kind if not ir.is_leaf(node) else _leaf_kind(node)


def collapse(model: ir.Model, report: Report, depth: int | None) -> tuple[Row, ...]:
    """The summary's rows down to ``depth`` levels of names (``None``: every layer, as ``report.rows``).

    Depth 1 is the network's top-level items (and each head); a block, merge or repeat deeper than
    that is one row with its output shape and the sums of its layers' params and MACs. Totals are
    unchanged: every layer is counted in exactly one row."""
    if depth is None:
        return report.rows
    nodes: dict[str, ir.Node] = {}
    for root in [model.body] + [h.body for h in model.heads]:
        for node in ir.walk(root):
            nodes.setdefault(node.path, node)  # a call and its body share a path: keep the call
    heads = {h.name for h in model.heads}
    out: list[Row] = []
    for r in report.rows:
        parts = r.path.split(".")
        if len(parts) <= depth:
            out.append(r)
            continue
        prefix = ".".join(parts[:depth])
        last = out[-1] if out else None
        if last is not None and last.path == prefix:
            out[-1] = Row(
                prefix, last.kind, last.out_shape, last.trainable + r.trainable,
                last.non_trainable + r.non_trainable, last.macs + r.macs,
            )  # fmt: skip
            continue
        node = nodes.get(prefix)
        kind = "head" if prefix in heads else _node_kind(node) if node is not None else "block"
        shape = node.out_shape if node is not None else r.out_shape
        out.append(Row(prefix, kind, shape, r.trainable, r.non_trainable, r.macs))
    return tuple(out)


def row_depth(row: Row) -> int:
    """How many levels of names a row's layer is nested in (1: a top-level item)."""
    return row.path.count(".") + 1

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

from dataclasses import dataclass

from . import ir, ops
from .geometry import conv_out, conv_spatial, conv_transpose_out, pool_out, pool_spatial, same_padding, same_pads

__all__ = [  # the geometry lives in archc.geometry; these names stay importable from here
    "conv_out", "conv_spatial", "conv_transpose_out", "pool_out", "pool_spatial", "same_padding", "same_pads",
    "params_of", "macs_of", "analyze", "collapse", "row_depth", "Report", "Row",
]  # fmt: skip


def params_of(node: ir.Node) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts of a leaf node: its kind's rule (:mod:`archc.ops`)."""
    return ops.of(node).params(node)


def macs_of(node: ir.Node) -> int:
    """Multiply-accumulates of a leaf node: its kind's rule (:mod:`archc.ops`)."""
    return ops.of(node).macs(node)


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


def analyze(model: ir.Model) -> Report:
    """Per-layer output shapes, parameter counts and MACs of a lowered model."""
    rows: list[Row] = []
    roots = [model.body] + [h.body for h in model.heads]
    for root in roots:
        for node in ir.walk(root):
            if ir.is_leaf(node):
                tr, nt = params_of(node)
                rows.append(Row(node.path, ops.leaf_kind(node), node.out_shape, tr, nt, macs_of(node)))
    outputs = {"main": model.body.out_shape}
    weights = {"main": model.loss_weight}
    if model.outputs:  # the named outputs (a dict in the generated models), each with the main loss weight
        shapes = {n.path: n.out_shape for n in ir.walk(model.body)}
        shapes.update({model.input_name: model.input_shape} if model.input_name else {})
        outputs = {name: shapes[key] for name, key in model.outputs}
        weights = dict.fromkeys(outputs, model.loss_weight)
    for h in model.heads:  # after the main or the named outputs, as the generated models return them
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
    return node.kind if not ir.is_leaf(node) else ops.leaf_kind(node)


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
            # a call and its body share a path, and so do a level of one item and that item: keep the call, the item
            if node.path not in nodes or (isinstance(nodes[node.path], ir.Seq) and not isinstance(node, ir.Seq)):
                nodes[node.path] = node
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

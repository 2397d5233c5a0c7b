"""The IR: explicit, framework-neutral, frozen.

Two views of the same network live here:

* the **instance tree** (:class:`Model.body`, :class:`Head`): every node fully
  evaluated -- channel counts, kernel, stride, dilation (one entry per spatial axis),
  the paddings (before, after on each axis), pooling rounding, BN epsilon and momentum,
  bias flag, input and output shapes ``(*spatial, C)`` -- nothing left to a backend default;
* the **block templates** (:class:`BlockDef`): each block definition once, with its
  attributes as :class:`~archc.expr.Expr` over the block's params and ``in_channels``,
  so a backend can emit one class / function per block and loops for repeats.

Backends read only this module's types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Loc
from .expr import Expr

Shape = tuple[int, ...]  # (*spatial, C) for feature maps: (L, C), (H, W, C), (D, H, W, C); (F,) for flat features
Axes = tuple[int, ...]  # one entry per spatial axis, in the shape's order: (L,), (H, W), (D, H, W)
# padding: (before, after) of each spatial axis in the shape's order, flat: (top, bottom, left, right) in 2-D
Pads = tuple[int, ...]

SPATIAL_NAMES = {1: ("length",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def rank(shape: Shape) -> int:
    """The number of spatial axes of a feature map shape (0: flat features)."""
    return len(shape) - 1


def axis_pairs(pads: Pads) -> tuple[tuple[int, int], ...]:
    """``((before, after), ...)`` per axis from the flat padding."""
    return tuple((pads[i], pads[i + 1]) for i in range(0, len(pads), 2))


ACTIVATIONS = ("relu", "relu6", "sigmoid", "tanh", "silu")


@dataclass(frozen=True, kw_only=True)
class Node:
    """Common fields of every instance node."""

    kind: str = field(init=False, default="node")
    name: str  # local name (unique among its siblings)
    path: str  # dotted path from the model root, e.g. "denseblock1.layers.0.conv1"
    loc: Loc | None = field(default=None, compare=False)
    in_shape: Shape
    out_shape: Shape
    # the paths of the earlier outputs this node reads (``from:``), in order; empty: the previous node's output.
    # The network's input is ``<input>``; a block's main input read from the previous item ``<call path>.<NAME>``;
    # a call's own entry '' is its main input read from the previous item.
    src: tuple[str, ...] = ()
    # a leaf with weights: (tensor, archc.init.Init) for each initialized tensor (PyTorch's names: weight, bias)
    init: tuple = ()


@dataclass(frozen=True, kw_only=True)
class Conv(Node):
    kind: str = field(init=False, default="conv")
    in_channels: int
    out_channels: int
    kernel: Axes
    stride: Axes
    dilation: Axes
    groups: int
    depthwise: bool  # groups == in_channels, out = in * multiplier; Keras DepthwiseConv2D
    bias: bool
    padding: Pads  # resolved at the spec's input size
    same: bool  # TensorFlow 'same': padding depends on the input size (recompute at run time)


@dataclass(frozen=True, kw_only=True)
class BatchNorm(Node):
    kind: str = field(init=False, default="bn")
    channels: int
    eps: float
    momentum: float  # PyTorch convention; Keras momentum = 1 - momentum
    scale: bool = True  # a learned scale (gamma); False: none, the scale is 1 (Keras' scale=False)
    running_var: str = "unbiased"  # the batch variance training averages in: unbiased (PyTorch's) or biased (Keras')


@dataclass(frozen=True, kw_only=True)
class Act(Node):
    kind: str = field(init=False, default="act")
    fn: str  # one of ACTIVATIONS


@dataclass(frozen=True, kw_only=True)
class Pool(Node):
    """Max or average pooling.

    Semantics: the input is padded by ``padding`` (-inf for max; zeros for avg), windows
    of ``kernel`` at ``stride``; with ``ceil`` the output size is rounded up, but a window
    must start inside the input or its top/left padding (PyTorch's rule). A window that
    overhangs the padded input covers only its in-bounds part (also for the average's
    divisor); with ``count_include_pad`` False the divisor counts only input elements.
    """

    kind: str = field(init=False, default="pool")
    op: str  # "max" | "avg"
    kernel: Axes
    stride: Axes
    padding: Pads
    ceil: bool
    count_include_pad: bool
    same: bool


@dataclass(frozen=True, kw_only=True)
class GlobalPool(Node):
    kind: str = field(init=False, default="gap")
    op: str = "avg"


@dataclass(frozen=True, kw_only=True)
class Dropout(Node):
    kind: str = field(init=False, default="dropout")
    rate: float


@dataclass(frozen=True, kw_only=True)
class Flatten(Node):
    """(*spatial, C) -> (prod(spatial) * C,). Element order is framework-specific (channels first or last)."""

    kind: str = field(init=False, default="flatten")


@dataclass(frozen=True, kw_only=True)
class Dense(Node):
    kind: str = field(init=False, default="dense")
    in_features: int
    out_features: int
    bias: bool


@dataclass(frozen=True, kw_only=True)
class ZeroPad(Node):
    kind: str = field(init=False, default="zeropad")
    padding: Pads


@dataclass(frozen=True, kw_only=True)
class Op(Node):
    """A primitive defined in the vocabulary's registry (:mod:`archc.ops`): ``op`` is its spec kind
    (``hardswish``, ``layernorm``, ``channel_shuffle``, ...), ``attrs`` its evaluated attributes
    (numbers, bools, strings, pairs), in the order the registry declares them."""

    kind: str = field(init=False, default="op")
    op: str
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, key: str, default=None):
        for k, v in self.attrs:
            if k == key:
                return v
        return default


@dataclass(frozen=True, kw_only=True)
class Seq(Node):
    kind: str = field(init=False, default="seq")
    children: tuple[Node, ...]


@dataclass(frozen=True, kw_only=True)
class Merge(Node):
    """Parallel branches on the same input, merged by channel concat or elementwise add.

    ``path`` names the merge itself (its Keras layer); ``level`` is where its branches' names
    live: ``path`` for a named merge, the enclosing level for an unnamed one (see :class:`TNode`).
    """

    kind: str = field(init=False, default="merge")
    mode: str  # "concat" | "add" | "mul" (a branch giving (1, 1, C) broadcasts over the positions)
    branches: tuple[Seq, ...]
    level: str


@dataclass(frozen=True, kw_only=True)
class Residual(Node):
    """``body(x) + shortcut(x)``; ``shortcut`` is None when the add is off (then the output is ``body(x)``).

    An empty ``shortcut`` sequence is the identity. ``path`` names the add itself; ``level`` is where
    the names of the body's and shortcut's items live (the enclosing level for an unnamed residual in
    a block body, else ``path``, with the sub-levels ``body`` and ``shortcut``).
    """

    kind: str = field(init=False, default="residual")
    body: Seq
    shortcut: Seq | None
    level: str


@dataclass(frozen=True, kw_only=True)
class DenseConnect(Node):
    """Layer i sees concat(input, out_0, ..., out_{i-1}); the output is concat(input, all outputs)."""

    kind: str = field(init=False, default="dense_connect")
    layers: tuple[Seq, ...]


@dataclass(frozen=True, kw_only=True)
class Repeat(Node):
    kind: str = field(init=False, default="repeat")
    iterations: tuple[Seq, ...]


@dataclass(frozen=True, kw_only=True)
class Call(Node):
    """A use of a block definition, with its concrete arguments and its instantiated body."""

    kind: str = field(init=False, default="call")
    block: str
    args: tuple[tuple[str, Any], ...]
    body: Seq


@dataclass(frozen=True)
class TNode:
    """A template node inside a block definition (symbolic in the block's params).

    ``kind`` is a spec kind (conv, dwconv, bn, relu..., maxpool, avgpool, gap, dropout,
    flatten, dense, zeropad, seq, concat, add, repeat, dense_connect, call). ``attrs``
    are fully defaulted; values are literals or :class:`Expr`. ``in_ch`` / ``out_ch``
    are the channel (or feature) counts as expressions of the block's params and its
    ``in_channels``. For repeat / dense_connect, ``children[0]`` is the body, a fresh
    scope whose ``in_channels`` is the body's own input; for residual, ``children`` are the
    body and the shortcut and ``attrs`` holds ``when``.

    ``transparent``: the node adds no level to the names below it (its items' names live in
    the enclosing level). True for an unnamed seq; for an unnamed residual, or the only
    unnamed merge, directly in a block body or the network (a class body in generated code).
    """

    kind: str
    name: str
    attrs: tuple[tuple[str, Any], ...]
    children: tuple[TNode, ...]
    cond: Expr | None
    in_ch: Expr
    out_ch: Expr
    loc: Loc | None = field(default=None, compare=False)
    block: str | None = None  # for kind == "call"
    attr_locs: tuple[tuple[str, Loc | None], ...] = field(default=(), compare=False)
    transparent: bool = False
    # ``from:``: the names (keys in the class: see ``key``) of the earlier outputs this item reads, in order. A
    # call's entries follow its block's inputs ('' for the main input read from the previous item); a merge with
    # ``from:`` has no branches.
    src: tuple[str, ...] = ()
    # an item of its class's own level (the network's or a block body's, through unnamed seqs): its name, which
    # references use; None for items inside a nested level (a named seq, a branch, a loop body)
    key: str | None = None
    src_ch: tuple[Expr, ...] = ()  # the widths of ``src``'s outputs (a call's main input: its ``in_ch``)
    # seq only: names for running widths, ``(i, name, definition)``: before child ``i`` the width is ``name``
    # (its definition over earlier names, params and in_channels; None: the output of child ``i - 1``, a part
    # whose width formula stays inside it). They keep chains of conditional widths linear in size.
    lets: tuple[tuple[int, str, Expr | None], ...] = ()
    # seq only: for each running width named with definition None, the part's own formula over names made inside
    # it (a backend that cannot read the width off the built part writes it from this)
    opaque: tuple[tuple[str, Expr], ...] = field(default=(), compare=False)
    # a leaf with weights: its resolved ``(tensor, archc.init.Init)`` pairs (the same for every instance)
    init: tuple = ()
    # seq only: names its items' expressions read, bound to values in the enclosing level's terms: a block call
    # that references reach inside, made a named seq of the block's body, binds the block's params to the call's
    # arguments (see archc.lower.Lowerer.open_call)
    binds: tuple[tuple[str, Any], ...] = ()
    # seq only: a level of one item, which is that item (a loop's body, a merge's branch, a named residual's body or
    # shortcut, a head): the item takes the level's name and path and adds no level of its own, so a loop of one
    # block is ``nn.Sequential(*[Block() for _ in range(n)])`` (``layer1.rest.0.conv1``), not a second wrapper
    single: bool = False

    def attr_loc(self, key: str) -> Loc | None:
        """Where attribute ``key`` was written (or the item, if it came from a default)."""
        for k, v in self.attr_locs:
            if k == key and v is not None:
                return v
        return self.loc

    def attr(self, key: str, default=None):
        for k, v in self.attrs:
            if k == key:
                return v
        return default


@dataclass(frozen=True)
class BlockDef:
    name: str
    doc: str | None
    params: tuple[tuple[str, Any], ...]  # (name, default); default None means required
    body: TNode  # kind "seq"
    out_ch: Expr
    loc: Loc | None = field(default=None, compare=False)
    inputs: tuple[str, ...] = ()  # names of its inputs (``inputs:``; the first the main one); () one unnamed input


@dataclass(frozen=True)
class Head:
    name: str
    at: str  # path of the top-level node whose output feeds the head
    loss_weight: float
    body: Seq
    template: TNode  # the head's items, symbolic in the network params


@dataclass(frozen=True)
class Model:
    name: str
    class_name: str
    doc: str | None
    spec_file: str
    spec_sha256: str
    input_shape: Shape  # (*spatial, C)
    body: Seq
    heads: tuple[Head, ...]
    loss_weight: float
    blocks: tuple[BlockDef, ...]  # every block used, callees before callers
    params: tuple[tuple[str, Any], ...]  # network params after overrides
    network: TNode  # the network's items, symbolic in the network params (``in_channels``: input channels)
    # include_top=false left the spec's ``top:`` (its classifier) out: the model is the feature extractor only, and
    # a checkpoint of the full model has tensors this one does not (the weight converter reports them as skipped)
    top_removed: bool = False
    input_name: str | None = None  # ``input: {name: ...}``, the name items read the input by
    # ``outputs:``: (output name, key of a network-level item), in order; () the output is the last item's
    outputs: tuple[tuple[str, str], ...] = ()
    # the spec's init: per kind (archc.init.KINDS), (kind, ((tensor, archc.init.Init), ...)), archc's default filled in
    init: tuple = ()
    # the network params the lowering resolved at their values where generated code cannot take them as arguments:
    # read by a spec ``defaults:`` entry applied inside a block, a head's ``if:`` or loss weight, an ``init:``
    fixed: tuple[str, ...] = ()
    input_dims: tuple = ()  # the input's (*spatial, channels) as written: Expr over the network params, or int
    # the params whose value is an expression of earlier ones (``stem_width: ${...}``), as written
    param_defs: tuple[tuple[str, Expr], ...] = ()

    def block(self, name: str) -> BlockDef:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(name)


def walk_template(t: TNode):
    """Yield template node ``t`` and all its descendants, depth first."""
    yield t
    for ch in t.children:
        yield from walk_template(ch)


def walk(node: Node):
    """Yield ``node`` and all its descendants, depth first, in execution order."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Seq):
        return node.children
    if isinstance(node, Merge):
        return node.branches
    if isinstance(node, Residual):
        return (node.body,) if node.shortcut is None else (node.body, node.shortcut)
    if isinstance(node, DenseConnect):
        return node.layers
    if isinstance(node, Repeat):
        return node.iterations
    if isinstance(node, Call):
        return (node.body,)
    return ()


def is_leaf(node: Node) -> bool:
    return not isinstance(node, (Seq, Merge, DenseConnect, Repeat, Call, Residual))

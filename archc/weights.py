"""Weights through the IR: one canonical layout per weighted node kind, and the declarations backends make.

Each backend stores a node's weights its own way (PyTorch's ``state_dict`` keys and ``OIHW`` kernels, Keras'
per-layer ``get_weights()`` lists and ``HWIO`` kernels). archc does not convert framework to framework: each
backend *declares*, per weighted node kind, where its tensors live, their shapes, and how each goes to and comes
from the canonical layout below (:class:`Declaration`, in ``archc/backends/<name>/weights.py``, found through
:func:`archc.backends.weight_layout`). Converting is composing two declarations: source -> canonical ->
destination (:func:`to_canonical`, :func:`from_canonical`, :func:`archc.convert.convert`).

The canonical layout (channels last, the IR's own (H, W, C) order), per :func:`weight_kind`:

* ``conv`` (:class:`ir.Conv`, not depthwise): kernel (*k, in / groups, out), bias (out,), where ``*k`` is the
  kernel's size on each spatial axis ((kl,) in 1-D, (kh, kw) in 2-D, (kd, kh, kw) in 3-D);
* ``dwconv`` (:class:`ir.Conv` with ``depthwise``): kernel (*k, C, multiplier), bias (C * multiplier,);
* ``bn`` (:class:`ir.BatchNorm`): gamma, beta, mean, var (C,); gamma only where the node has a scale (``node.scale``);
* ``dense`` (:class:`ir.Dense`): kernel (in, out), bias (out,);
* ``layernorm``, ``groupnorm`` (:class:`ir.Op`): gamma, beta (C,);
* ``layer_scale`` (:class:`ir.Op`): scale (C,).

``bias`` exists only where the node has one (``node.bias``). A dense layer fed (through elementwise ops only)
by a flatten of an (H, W, C) map takes its ``in = H * W * C`` inputs in (H, W, C) order (the IR's order;
:func:`flatten_sources` finds them, ``Context.flattened`` hands the (H, W, C) to the declarations). A dense on
a feature map (H, W, C) acts on channels at each position: ``in = C``, the same layout. C is the node's
channel count: the last entry of its input shape.

A backend may also hold tensors with no canonical counterpart (PyTorch's BatchNorm ``num_batches_tracked``, a
counter): a :class:`Tensor` with ``canonical=None`` is not converted, its shape is not checked, and it is made
fresh (``make``) when that backend is the destination.

Declarations are numpy only (no framework import): the arrays they transform are numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from . import ir, ops
from .errors import ArchcError, InternalError

# ops of the registry (ir.Op kinds) that carry weights; each backend declares each of them
KINDS = tuple(k for k, p in ops.PRIMITIVES.items() if p.weights is not None)  # the kinds with weights


def weight_kind(node: ir.Node) -> str | None:
    """Which declaration applies to ``node``: its kind (:data:`KINDS`), or None for a node without weights."""
    if not ir.is_leaf(node):
        return None
    kind = ops.leaf_kind(node)
    return kind if kind in KINDS else None


def channels(node: ir.Node) -> int:
    """The channel (or feature) count a per-channel weight of ``node`` has: the last entry of its input shape."""
    return node.in_shape[-1]


def canonical_shapes(node: ir.Node, ctx: Context | None = None) -> dict[str, tuple]:
    """The canonical tensors of ``node`` (see the table above; each kind declares its own in :mod:`archc.ops`):
    name -> shape, in this order."""
    kind = weight_kind(node)
    if kind is None:
        raise InternalError(f"no canonical weights for {node.kind} node '{node.path}'", node.loc)
    return ops.get(kind).weights(node)


def _same(a):
    return a


@dataclass(frozen=True)
class Tensor:
    """One tensor as a backend stores it: its ``name`` in its layer (PyTorch: the attribute, ``weight``; Keras:
    the weight's name, ``kernel``), its ``shape`` there, the canonical tensor it holds (None: a backend-only
    tensor, see ``make``) and the two numpy transforms between the backend's array and the canonical one."""

    name: str
    shape: tuple
    canonical: str | None
    to_canonical: Callable = _same
    from_canonical: Callable = _same
    make: Callable | None = None  # canonical None: () -> a fresh array (a zero counter)


@dataclass(frozen=True)
class Layer:
    """Where a node's tensors live in one backend: ``name`` is its module path (PyTorch) or layer name
    (Keras); ``tensors`` in the backend's order (a Keras layer's ``get_weights()`` order)."""

    name: str
    tensors: tuple[Tensor, ...]


@dataclass(frozen=True)
class Context:
    """What a declaration may need beyond the node: ``flattened`` is the shape ``(*spatial, C)`` a dense node's
    inputs were flattened from (None if it is not fed by a flatten)."""

    flattened: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Files:
    """How a backend keeps a whole model's weights in a file: the file names it takes (``extensions``), and
    ``read(model, path)`` / ``write(model, weights, path)`` of weights held its declaration's way (``write`` gets
    numpy arrays; it writes ``path`` in place: the caller writes to a temporary file and renames it). ``what``
    names the contents in messages ("tensors of the generated PyTorch model")."""

    extensions: tuple[str, ...]
    read: Callable[[ir.Model, str], object]
    write: Callable[[ir.Model, object, str], int]  # returns how many tensors / layers it wrote
    what: str


@dataclass(frozen=True)
class Declaration:
    """A backend's weights: per kind (:data:`KINDS`), ``(node, ctx) -> Layer``.

    ``grouped`` says how a whole model's weights are held: False, one flat mapping ``"<layer>.<tensor>" ->
    array`` (a PyTorch ``state_dict``); True, ``{layer name: [arrays in the layer's order]}`` (Keras'
    ``get_weights()`` per layer). ``noun`` names a set of such weights in messages ("checkpoint")."""

    backend: str
    tables: Mapping[str, Callable[[ir.Node, Context], Layer]]
    grouped: bool = False
    noun: str = "weights"
    files: Files | None = None  # the backend's checkpoint files (archc convert-weights)

    def layer(self, node: ir.Node, ctx: Context | None = None) -> Layer:
        kind = weight_kind(node)
        if kind not in self.tables:
            raise ArchcError(
                f"the {self.backend} backend declares no weights for '{kind}' (node '{node.path}')", node.loc
            )
        return self.tables[kind](node, ctx or Context())


# ---------------------------------------------------------------- the IR's side


def roots(model: ir.Model) -> list[ir.Node]:
    return [model.body] + [h.body for h in model.heads]


def weighted_leaves(model: ir.Model) -> list[ir.Node]:
    """Every node with weights, in the model's order (the body's, then each head's)."""
    return [n for r in roots(model) for n in ir.walk(r) if weight_kind(n) is not None]


def flatten_sources(model: ir.Model) -> tuple[dict[str, tuple[int, ...]], list[tuple[str, ir.Node]]]:
    """IR path of each dense layer fed by a flatten, through elementwise ops only (activations, dropout, the
    registry's ``elementwise`` primitives: :mod:`archc.ops`) -> the flattened ``(*spatial, C)``;
    and the nodes on flattened features whose weights or effect depend on the features' order (a batch norm,
    a layer norm, a layer scale, a channel shuffle... after a flatten), which weight conversion cannot map:
    ``(what, node)``."""
    out: dict[str, tuple[int, ...]] = {}
    problems: list[tuple[str, ir.Node]] = []

    def walk(n: ir.Node, flat):
        if isinstance(n, ir.Flatten):
            return n.in_shape
        if isinstance(n, ir.Dense):
            if flat is not None:
                out[n.path] = flat
            return None
        if flat is not None and weight_kind(n) is not None:  # per-feature weights, in the flatten's order
            problems.append(("batch norm" if isinstance(n, ir.BatchNorm) else f"'{n.op}'", n))
            return None
        if isinstance(n, (ir.Dropout, ir.Act)):
            return flat
        if isinstance(n, ir.Op) and n.op in ops.PRIMITIVES and ops.get(n.op).elementwise:
            return flat
        if flat is not None and isinstance(n, ir.Op):
            problems.append((f"'{n.op}'", n))
            return None
        if isinstance(n, ir.Seq):
            for c in n.children:
                flat = walk(c, flat)
            return flat
        if isinstance(n, ir.Call):
            return walk(n.body, flat)
        if isinstance(n, ir.Repeat):
            for it in n.iterations:
                flat = walk(it, flat)
            return flat
        for c in ir.children(n):
            walk(c, None)
        return None

    for r in roots(model):
        walk(r, None)
    return out, problems


def _contexts(model: ir.Model, strict: bool) -> dict[str, Context]:
    flat, problems = flatten_sources(model)
    if strict and problems:
        what, n = problems[0]
        raise ArchcError(f"weight conversion: {what} '{n.path}' on flattened features is not supported", n.loc)
    return {p: Context(flattened=hwc) for p, hwc in flat.items()}


def layers(decl: Declaration, model: ir.Model, strict: bool = False) -> list[tuple[ir.Node, Layer]]:
    """Each weighted node of ``model`` with its layer in ``decl``, in the model's order. ``strict``: refuse a
    model whose weights cannot be converted (see :func:`flatten_sources`)."""
    ctx = _contexts(model, strict)
    return [(n, decl.layer(n, ctx.get(n.path))) for n in weighted_leaves(model)]


def layer_names(decl: Declaration, model: ir.Model) -> dict[str, str]:
    """IR path of every weighted node -> its layer's name in ``decl`` (PyTorch: its module path)."""
    return {n.path: layer.name for n, layer in layers(decl, model)}


def key(layer: Layer, t: Tensor) -> str:
    return f"{layer.name}.{t.name}"


def shapes(decl: Declaration, model: ir.Model) -> dict[str, tuple]:
    """Every tensor of ``model`` in ``decl``: ``"<layer>.<tensor>"`` -> its shape, in the model's order."""
    return {key(layer, t): t.shape for _, layer in layers(decl, model) for t in layer.tensors}


def counters(decl: Declaration, model: ir.Model) -> set[str]:
    """The keys of :func:`shapes` with no canonical counterpart (not converted, shapes not checked)."""
    return {key(layer, t) for _, layer in layers(decl, model) for t in layer.tensors if t.canonical is None}


def flat_keys(decl: Declaration, model: ir.Model, weights) -> dict:
    """``weights`` held ``decl``'s way -> ``"<layer>.<tensor>"`` -> array (grouped weights: the tensor named by
    its position in its layer; surplus ones as ``<layer>.#<i>``; layers with no weights are left out)."""
    if not decl.grouped:
        return dict(weights)
    declared = {layer.name: layer for _, layer in layers(decl, model)}
    out: dict = {}
    for name, arrays in weights.items():
        layer = declared.get(name)
        for i, a in enumerate(arrays):
            tname = layer.tensors[i].name if layer is not None and i < len(layer.tensors) else f"#{i}"
            out[f"{name}.{tname}"] = a
    return out


def to_canonical(decl: Declaration, model: ir.Model, weights) -> dict[str, dict]:
    """``weights`` held ``decl``'s way (checked to fit: :func:`archc.convert.check`) -> IR path -> canonical
    name -> numpy array."""
    import numpy as np

    flat = flat_keys(decl, model, weights)
    out: dict[str, dict] = {}
    for n, layer in layers(decl, model, strict=True):
        expected = canonical_shapes(n)
        got = {}
        for t in layer.tensors:
            if t.canonical is None:
                continue
            a = t.to_canonical(np.asarray(flat[key(layer, t)]))
            if tuple(a.shape) != expected[t.canonical]:
                raise InternalError(
                    f"the {decl.backend} declaration of '{weight_kind(n)}' gives {t.canonical} {tuple(a.shape)} "
                    f"for {n.path}, canonical is {expected[t.canonical]}",
                    n.loc,
                )
            got[t.canonical] = a
        if set(got) != set(expected):
            raise InternalError(
                f"the {decl.backend} declaration of '{weight_kind(n)}' holds {sorted(got)} for {n.path}, "
                f"canonical is {sorted(expected)}",
                n.loc,
            )
        out[n.path] = got
    return out


def from_canonical(decl: Declaration, model: ir.Model, canon: Mapping[str, Mapping], dtype: str = "float32"):
    """IR path -> canonical name -> array -> weights held ``decl``'s way (``dtype`` tensors, float32 by default: the
    generated models compute in float32; counters made fresh)."""
    import numpy as np

    flat: dict = {}
    grouped: dict[str, list] = {}
    for n, layer in layers(decl, model, strict=True):
        arrays = []
        for t in layer.tensors:
            if t.canonical is None:
                a = np.asarray(t.make())
            else:
                a = np.ascontiguousarray(t.from_canonical(np.asarray(canon[n.path][t.canonical])), dtype=dtype)
            if t.canonical is not None and tuple(a.shape) != tuple(t.shape):
                raise InternalError(
                    f"the {decl.backend} declaration of '{weight_kind(n)}' makes {key(layer, t)} {tuple(a.shape)}, "
                    f"it declares {tuple(t.shape)}",
                    n.loc,
                )
            arrays.append(a)
            flat[key(layer, t)] = a
        grouped[layer.name] = arrays
    return grouped if decl.grouped else flat


MAX_LISTED = 12  # tensors named per kind of problem in a refusal


def problem_lines(missing, unexpected, misshaped) -> list[str]:
    """``missing: a, b, ...`` / ``unexpected: ...`` / ``mis-shaped: ...`` lines of a refused checkpoint, each naming
    at most :data:`MAX_LISTED` tensors (and how many there are in all)."""
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > MAX_LISTED else ""
            problems.append(f"{label}: " + ", ".join(items[:MAX_LISTED]) + more)
    return problems

"""What every backend shares: rendering IR expressions and values as syntax trees (and Python
source for messages), pairing block templates with their instances, the generated-file header.

Backends read only the IR (:mod:`archc.ir`) and use :mod:`archc.expr` to render and
evaluate the expressions the IR carries.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass, field

from archc import ir
from archc.errors import ArchcError
from archc.expr import Expr, evaluate, simplify, substitute

from .code import lit, loads


class Unsupported(ArchcError):
    """The IR asks for something this backend cannot express exactly."""


@dataclass
class Scope:
    """How expressions are rendered where code is being emitted.

    In a block class, ``values`` is None and expressions stay symbolic (the block's params
    are constructor arguments). In the model class, ``values`` holds the network params and
    expressions are evaluated to literals. ``rename`` substitutes names first (e.g. a loop
    body's ``in_channels``).
    """

    values: dict | None = None
    rename: dict = field(default_factory=dict)

    def with_rename(self, **kw) -> Scope:
        """A scope where names are first replaced by ``kw`` (whose values are in this scope's terms)."""
        composed = {k: substitute(v, self.rename) if isinstance(v, Expr) and self.rename else v for k, v in kw.items()}
        return Scope(self.values, {**self.rename, **composed})

    def bind(self, binds) -> Scope:
        """The scope inside a seq that binds names (``ir.TNode.binds``: an opened block call's params), their
        values in this scope's terms."""
        if not binds:
            return self
        if self.values is not None:
            return Scope({**self.values, **{p: self.value(v) for p, v in binds}}, self.rename)
        return self.with_rename(**dict(binds))

    def value(self, v):
        """The literal value of ``v`` if it is known here, else None."""
        if isinstance(v, Expr):
            e = substitute(v, self.rename) if self.rename else v
            if self.values is None:
                try:
                    return evaluate(e, {})
                except ArchcError:
                    return None
            try:
                return evaluate(e, self.values)
            except ArchcError:
                return None
        if isinstance(v, tuple):
            vals = [self.value(x) for x in v]
            return None if any(x is None for x in vals) else tuple(vals)
        return v

    def node(self, v):
        """An :mod:`ast` expression for ``v`` (a literal, an Expr, or a tuple of them); renames applied."""
        import copy

        known = self.value(v)
        if known is not None:
            return lit(known)
        if isinstance(v, tuple):
            return ast.Tuple(elts=[self.node(x) for x in v], ctx=ast.Load())
        e = substitute(v, self.rename) if self.rename else v
        if self.values:
            fixed = {k: val for k, val in self.values.items() if k in e.names() and not isinstance(val, (list, tuple))}
            e = simplify(substitute(e, fixed)) if fixed else e
        hidden = sorted(n for n in e.names() if n.startswith(("__w", "_hw")))
        if hidden:  # a running width (ir.TNode.lets) or a flatten size no instance fixed: never write it out
            raise Unsupported(
                f"a width here ({e.src}) is only known inside the instances, not in the block's own terms; "
                "call the block where it is built, or give the part a fixed width",
                None,
            )
        return copy.deepcopy(e.tree)


def pair_instances(model: ir.Model) -> dict[int, list[ir.Node]]:
    """Map id(template node) -> the instance nodes built from it, everywhere in the model."""
    out: dict[int, list[ir.Node]] = {}

    def pair(t: ir.TNode, n: ir.Node) -> None:
        out.setdefault(id(t), []).append(n)
        if t.kind == "seq":
            by_name = {c.name: c for c in n.children}
            for tc in t.children:
                if tc.name in by_name:
                    pair(tc, by_name[tc.name])
        elif t.kind in ("concat", "add", "mul"):
            for tb, nb in zip(t.children, n.branches):
                pair(tb, nb)
        elif t.kind == "repeat":
            for it in n.iterations:
                pair(t.children[0], it)
        elif t.kind == "dense_connect":
            for layer in n.layers:
                pair(t.children[0], layer)
        elif t.kind == "residual":
            pair(t.children[0], n.body)
            if n.shortcut is not None:
                pair(t.children[1], n.shortcut)
        elif t.kind == "call":
            pair(model.block(t.block).body, n.body)

    pair(model.network, model.body)
    for h in model.heads:
        pair(h.template, h.body)
    return out


def spec_label(path: str) -> str:
    """The spec path as written in generated headers: relative, with '/', never absolute, one safe line."""
    rel = os.path.relpath(os.path.abspath(path))
    if rel.startswith(".."):
        rel = os.path.basename(path)
    rel = rel.replace(os.sep, "/")
    if not all(c.isprintable() for c in rel) or '"""' in rel or "\\" in rel:
        rel = json.dumps(rel, ensure_ascii=True)[1:-1].replace('"""', '\\"""')
    return rel


def axes(v, n: int) -> tuple:
    """One entry per spatial axis from an integer or a list of ``n``."""
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def pads(v, n: int) -> tuple:
    """Flat ``(before, after)`` per spatial axis (as :class:`archc.ir.Pads`) from a checked padding value: an
    integer, one entry per axis (an integer or [before, after]), or in 2-D [top, bottom, left, right]."""
    if isinstance(v, int):
        return (v,) * (2 * n)
    v = tuple(v)
    if len(v) == 2 * n and n == 2 and not any(isinstance(x, (list, tuple)) for x in v):
        return v
    out: list = []
    for x in v:
        out += list(x) if isinstance(x, (list, tuple)) else [x, x]
    return tuple(out)


def pad_last_axis_first(p: tuple) -> tuple:
    """Flat per-axis padding -> the order of PyTorch's ``F.pad`` / ``nn.ZeroPad2d``: last axis first
    ((left, right, top, bottom) in 2-D)."""
    return tuple(x for i in range(len(p) - 2, -1, -2) for x in p[i : i + 2])


def compact(t: tuple):
    """A per-axis tuple as people write it: one integer when every axis has the same value."""
    return t[0] if len(set(t)) == 1 else t


def ones(v) -> bool:
    """A stride or dilation of 1 on every axis (an integer or one per axis)."""
    return v == 1 or (isinstance(v, (list, tuple)) and all(x == 1 for x in v))


def symmetric(p) -> bool:
    """Flat per-axis padding with before == after on every axis."""
    return all(p[i] == p[i + 1] for i in range(0, len(p), 2))


def ref_keys(t) -> list[str]:
    """The keys of the outputs the items of a class (or a Keras function) read by reference (``from:``,
    ``upsample: {like:}``), in the order they are read (both emitters keep these in named locals)."""
    keys = [s for s in t.src if s]
    if t.kind == "upsample" and t.attr("like") is not None:
        keys.append(t.attr("like"))
    for ch in t.children:
        keys += ref_keys(ch)
    return keys


GEOMETRY_ATTRS = ("kernel", "stride", "padding", "dilation", "ceil", "output_padding", "size", "factor", "scale")


class NetworkArgs:
    """The spec's params as the generated network's keyword arguments, their defaults the spec's values
    (torchvision's ``DenseNet(growth_rate=32, block_config=(6, 12, 24, 16), ...)``): the network is emitted in
    their terms, as a block's body in its params'.

    Some params stay fixed at their values (substituted, not arguments), because the build resolved them where an
    argument cannot reach: :attr:`archc.ir.Model.fixed` (read by a spec ``defaults:`` entry inside a block, a
    head's ``if:``, an ``init:``), and every param that may change a spatial size (:func:`geometry_params`,
    over-approximated): how a kernel, stride or padding is written (a padding helper or the framework's own
    argument, the width of a flatten feeding a linear layer) is chosen at the spec's values, and a value that
    needs another form would give another network than ``--set`` builds. A param derived from others
    (``stem_width: ${...}``) defaults to None and is worked out from them, unless given.
    """

    def __init__(
        self, model: ir.Model, instances: dict[int, list], fix: set[str] | None = None, input_shape: bool = False
    ):
        """``fix``: the params the backend needs fixed besides :attr:`archc.ir.Model.fixed` (None: PyTorch's rule,
        the geometry params when a flatten feeds a sized layer). ``input_shape``: the input's shape is an argument
        of its own (Keras' ``build_model(input_shape)``): the params the input's shape reads are not arguments;
        where the network (or a derived param) reads one too, it is read from the input's shape when that axis is
        the param itself (:attr:`from_input`), else fixed."""
        self.model = model
        self.values = dict(model.params)
        self.defs = dict(model.param_defs)
        fixed = set(model.fixed)
        if fix is None:
            fixed |= geometry_params(model, instances)
        else:
            fixed |= fix & set(self.values)
        self.input_params: set[str] = set()
        self.from_input: dict[str, int] = {}  # param -> the axis of the input's shape it is read from
        if input_shape:
            dims = tuple(model.input_dims)
            self.input_params = set().union(*(_names_in(d) for d in dims)) & set(self.values) if dims else set()
            read_by_defs = set().union(*(d.names() for d in self.defs.values())) if self.defs else set()
            if dims and any("in_channels" in _node_names(t) for t in ir.walk_template(model.network)):
                read_by_defs |= _names_in(dims[-1])  # the network's in_channels: the input's channels
            for n in sorted(self.input_params - fixed):
                if not (_mentioned(n, model) or n in read_by_defs):
                    continue  # only shapes the input
                axes = [i for i, d in enumerate(dims) if isinstance(d, Expr) and _is_name(d, n)]
                if axes and n not in self.defs:
                    self.from_input[n] = axes[0] - len(dims) if axes[0] == len(dims) - 1 else axes[0]
                else:
                    fixed.add(n)
        grown = True
        while grown:  # a fixed derived param fixes what it reads (its value would not follow them)
            more = {n for d in fixed & set(self.defs) for n in self.defs[d].names() if n in self.values}
            grown = not more <= fixed
            fixed |= more
        self.from_input = {n: a for n, a in self.from_input.items() if n not in fixed}
        self.fixed = [n for n in self.values if n in fixed]
        self.candidates = [n for n in self.values if n not in fixed and n not in self.input_params]
        self.signature_: list[str] = []

    def scope(self) -> Scope:
        """The scope the network is emitted in: fixed params as their values, ``in_channels`` the input's."""
        rename = {n: Expr(repr(self.values[n])) for n in self.fixed}
        m = self.model
        ch = m.input_dims[-1] if m.input_dims else m.input_shape[-1]
        rename["in_channels"] = substitute(ch, rename) if isinstance(ch, Expr) else Expr(repr(ch))
        return Scope(None, rename)

    def signature(self, init: list[ast.stmt], forward: list[ast.stmt]) -> tuple[list[str], list[ast.stmt]]:
        """(the arguments ``__init__``'s statements read, in the spec's order; the statements that work out the
        derived ones). Unsupported if ``forward`` reads one (the network would need it at run time)."""
        cands = set(self.candidates)
        if loads(forward) & cands:
            raise Unsupported("a network param read in forward", None)
        used = loads(init) & cands
        todo = list(used & set(self.defs))
        while todo:
            more = self.defs[todo.pop()].names() & cands
            todo += [n for n in more - used if n in self.defs]
            used |= more
        self.signature_ = [n for n in self.candidates if n in used]
        scope = self.scope()
        derived = [if_stmt(n, scope.node(self.defs[n])) for n in self.signature_ if n in self.defs]
        return self.signature_, derived

    def input_locals(self, shape: str) -> list[ast.stmt]:
        """``channels = input_shape[-1]``: the params read from the input's shape (:attr:`from_input`)."""
        from . import code as c

        return [c.assign(n, c.subscript(c.name(shape), a)) for n, a in self.from_input.items()]

    def default(self, n: str) -> ast.expr:
        return lit(None) if n in self.defs else lit(self.values[n])

    def doc(self) -> str:
        """What the docstring says about the arguments."""
        text = "Keyword arguments: the spec's params, defaulting to its values (the shape comments are at them)."
        if any(n in self.defs for n in self.signature_):
            text += " A param the spec works out from others is None by default: worked out the same way."
        if self.input_params:
            only = [n for n in self.values if n in self.input_params and n not in self.fixed]
            if only:
                text += f" input_shape sets {', '.join(only)}: not arguments"
                read = [n for n in only if n in self.from_input]
                text += f" ({', '.join(read)} read from it)." if read else "."
        shown = [n for n in self.fixed if _mentioned(n, self.model)]
        if shown:
            text += f" Fixed at the spec's values, where the build resolved them: {', '.join(shown)}."
        return text


def if_stmt(n: str, value: ast.expr) -> ast.stmt:
    """``if n is None: n = value``."""
    from . import code as c

    return c.if_(c.compare(c.name(n), "is", c.lit(None)), [c.assign(n, value)])


def _is_name(e: Expr, n: str) -> bool:
    tree = e.tree
    return isinstance(tree, ast.Name) and tree.id == n


def _mentioned(n: str, model: ir.Model) -> bool:
    """Whether param ``n`` is read by the network's items (not only by the input)."""
    return (
        any(n in _node_names(t) for t in ir.walk_template(model.network))
        or any(n in _node_names(t) for h in model.heads for t in ir.walk_template(h.template))
        or n in model.fixed
    )


def _names_in(v) -> set[str]:
    if isinstance(v, Expr):
        return v.names()
    if isinstance(v, tuple):
        return set().union(*(_names_in(x) for x in v)) if v else set()
    return set()


def _node_names(t: ir.TNode) -> set[str]:
    out = _names_in(t.cond)
    for _, v in (*t.attrs, *t.binds):  # (an opened call's block params are bound to the caller's names)
        out |= _names_in(v)
    return out


def geometry_params(model: ir.Model, instances: dict[int, list]) -> set[str]:
    """The network params that may change a spatial size (over-approximated): the input's spatial size, those
    read by a kernel, stride, padding... (through block calls: the arguments of a block's params that do), and
    by the count or condition of a part that changes a spatial size."""

    def own(t: ir.TNode) -> set[str]:
        out = set().union(*(_names_in(v) for k, v in t.attrs if k in GEOMETRY_ATTRS and t.kind != "call"))
        if any(n.in_shape[:-1] != n.out_shape[:-1] for n in instances.get(id(t), [])):  # it changes a size
            out |= _names_in(t.cond) | _names_in(t.attr("times")) | _names_in(t.attr("layers"))
        return out

    dims = set().union(*(_names_in(d) for d in model.input_dims[:-1])) if model.input_dims else set()
    return (dims | _params_reaching(model, own, own)) & set(dict(model.params))


def params_read_by(model: ir.Model, top: dict[str, tuple], inner: dict[str, tuple] | None = None) -> set[str]:
    """The network params read by the attributes ``top`` names (kind -> attribute names) of the network's and the
    heads' items, and (through block calls and opened calls: the arguments of the block params that reach one) by
    those ``inner`` names (default: ``top``) inside blocks."""
    inner = top if inner is None else inner

    def reader(table: dict[str, tuple]):
        return lambda t: set().union(*(_names_in(v) for k, v in t.attrs if k in table.get(t.kind, ())))

    return _params_reaching(model, reader(top), reader(inner))


def _params_reaching(model: ir.Model, own_top, own_inner) -> set[str]:
    """The network params that reach what ``own_top(t)`` says an item of the network or a head reads itself (and
    ``own_inner(t)`` an item inside a block): through a block call, the arguments of the block params that reach
    one inside it; through an opened call (``binds``), the expressions its block params are bound to."""
    memo: dict[str, set[str]] = {}

    def reads(t: ir.TNode, own) -> set[str]:
        out = own(t)
        if t.kind == "call":
            reached = block(t.block)
            return out.union(*(_names_in(v) for p, v in t.attrs if p in reached))
        below = set().union(*(reads(ch, own) for ch in t.children))
        if t.binds:  # an opened call: its block's params, bound to expressions of the enclosing scope's names
            bound = dict(t.binds)
            below = {n for n in below if n not in bound}.union(*(_names_in(v) for p, v in bound.items() if p in below))
        return out | below

    def block(name: str) -> set[str]:
        if name not in memo:
            memo[name] = set()  # (a block that calls itself is refused by the lowering; this ends the recursion)
            memo[name] = reads(model.block(name).body, own_inner) if _built(model, name) else set()
        return memo[name]

    out = reads(model.network, own_top)
    for h in model.heads:
        out |= reads(h.template, own_top)
    return out & set(dict(model.params))


def _built(model: ir.Model, name: str) -> bool:
    """Whether block ``name`` is in the model: a call whose condition is false here builds none (the emitters skip
    it), and its block is not emitted."""
    return any(b.name == name for b in model.blocks)

"""The generated model's ``_init_weights``: the spec's ``init:`` written as torchvision writes it.

One loop over ``self.modules()`` with a branch per module class whose scheme is not what PyTorch's layer draws
by itself (``torch_default`` needs no code: the layer's ``reset_parameters`` drew it)::

    for m in self.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

then the items whose own ``init:`` differs from their kind's, by path (``self.get_submodule("layer1.0.bn3")``;
a ``state_dict`` key is the IR path of its layer). Fans are PyTorch's own (archc's convention, see
:mod:`archc.init`); Keras' variance scaling, which PyTorch lacks, is written with them.
"""

from __future__ import annotations

import ast

from archc import init as initmod
from archc import ir, ops
from archc.init import Init

from .. import code as c

TRUNC = initmod.TRUNCATED_STD
TORCH_DEFAULT = initmod.TORCH_DEFAULT


def init_method(e, model: ir.Model, method: str) -> ast.stmt | None:
    """The ``_init_weights`` method (named ``method``), or None where every layer keeps PyTorch's own draw."""
    nodes = [n for r in [model.body, *(h.body for h in model.heads)] for n in ir.walk(r) if ir.is_leaf(n) and n.init]
    if not nodes:
        return None
    kind_init = {k: dict(v) for k, v in model.init}
    m = "m"
    split, misrouted = _split_depthwise(nodes, kind_init)

    def group(n: ir.Node) -> str:  # conv and dwconv are one nn.ConvNd branch unless their schemes differ
        kind = ops.leaf_kind(n)
        return "conv" if kind == "dwconv" and not split else kind

    groups: dict[str, list[ir.Node]] = {}  # in first-use order
    for n in nodes:
        groups.setdefault(group(n), []).append(n)
    branches: list[tuple[ast.expr, list[ast.stmt]]] = []
    for kind, members in groups.items():
        inits = kind_init.get(kind, {})
        body = []
        for tensor in initmod.TENSORS:
            scheme = inits.get(tensor, initmod.TORCH_DEFAULT)
            present = [_has(n, tensor) for n in members]
            if _as_drawn(scheme, kind, tensor) or not any(present):
                continue
            stmts = _apply(e, scheme, kind, c.attr(m, tensor), c.attr(m, "weight"))
            if not all(present):  # a layer without a bias; a BN without a learned scale (its weight a buffer)
                test = c.compare(c.attr(m, tensor), "is not", c.lit(None))
                if tensor == "weight":
                    test = c.call("isinstance", c.attr(m, "weight"), c.attr(e.ref("nn"), "Parameter"))
                stmts = [c.if_(test, stmts)]
            body += stmts
        if not body:
            continue
        classes = list(dict.fromkeys(_module_class(e, n, ops.leaf_kind(n)) for n in members))
        extra = None
        if split and kind in ("conv", "dwconv"):  # the depthwise convs are the grouped ones here
            extra = c.compare(c.attr(m, "groups"), ">" if kind == "dwconv" else "==", c.lit(1))
        same = [b for b in branches if b[1] is None and extra is None and _dump(b[2]) == _dump(body)]
        if same:  # torchvision's isinstance(m, (nn.Conv2d, nn.Linear)): one branch for classes drawn alike
            same[0][0].extend(classes)
            continue
        branches.append((classes, extra, body))
    out: list[ast.stmt] = []
    if branches:
        chain = None
        for classes, extra, body in reversed(branches):
            test = _isinstance(e, m, classes)
            test = test if extra is None else c.and_(test, extra)
            chain = c.if_(test, body, [chain] if chain is not None else [])
        out.append(c.for_(m, c.call(c.attr("self", "modules")), [chain]))
    out += _overrides(e, nodes, kind_init, misrouted)
    if not out:
        return None
    doc = "Initialize the weights as the spec's init: says (archc's fans are PyTorch's)."
    return c.function(method, ["self"], out, doc=doc)


def _dump(stmts: list[ast.stmt]) -> str:
    return ast.dump(ast.Module(body=stmts, type_ignores=[]))


def _as_drawn(init: Init, kind: str, tensor: str) -> bool:
    """Whether the layer's own reset_parameters already draws ``init`` (a norm's ones / zeros are its default)."""
    if init.scheme == "torch_default":
        return True
    default = initmod.dist(initmod.TORCH_DEFAULT, kind, tensor)
    return kind in initmod.NORMS and initmod.dist(init, kind, tensor) == default


def _split_depthwise(nodes, kind_init) -> tuple[bool, set[int]]:
    """Whether conv and dwconv (both nn.ConvNd) need different branches (their schemes differ), and the convs the
    loop then takes for the other kind (it tells depthwise convs by ``groups > 1``): drawn again after it."""
    kinds = {ops.leaf_kind(n) for n in nodes}
    if not {"conv", "dwconv"} <= kinds or kind_init.get("conv", {}) == kind_init.get("dwconv", {}):
        return False, set()
    return True, {id(n) for n in nodes if isinstance(n, ir.Conv) and (n.groups > 1) != n.depthwise}


def _module_class(e, n: ir.Node, kind: str) -> str:
    if kind in ("conv", "dwconv"):
        return e.ranked("Conv2d")
    if kind == "conv_transpose":
        return f"ConvTranspose{max(e.rank, 1)}d"
    if kind == "dense":
        return "Linear"
    if kind == "bn":
        return e.ranked("BatchNorm2d") if len(n.in_shape) > 1 else "BatchNorm1d"
    if kind == "layernorm":
        return "LayerNorm"
    return "GroupNorm"


def _isinstance(e, m: str, classes: list[str]) -> ast.expr:
    nn = e.ref("nn")
    cls = [c.attr(nn, k) for k in classes]
    return c.call("isinstance", c.name(m), cls[0] if len(cls) == 1 else ast.Tuple(elts=cls, ctx=ast.Load()))


def _has(n: ir.Node, tensor: str) -> bool:
    if tensor == "bias":
        return initmod._has_bias(n)
    return not (isinstance(n, ir.BatchNorm) and not n.scale)


def _init_call(e, fn: str, *args, **kw) -> ast.stmt:
    return c.expr_stmt(c.call(c.attr(e.ref("nn"), "init", fn), *args, **kw))


def _apply(e, init: Init, kind: str, tensor: ast.expr, weight: ast.expr) -> list[ast.stmt]:
    """Statements drawing ``tensor`` from ``init`` (``weight``: the layer's weight, whose fans a scheme reads)."""
    s = init.scheme
    if s in ("zeros", "ones"):
        return [_init_call(e, f"{s}_", tensor)]
    if s == "constant":
        return [_init_call(e, "constant_", tensor, c.lit(init.p("value")))]
    if s == "normal":
        kw = {"mean": c.lit(init.p("mean"))} if init.p("mean") else {}
        return [_init_call(e, "normal_", tensor, **kw, std=c.lit(init.p("std")))]
    if s == "uniform":
        return [_init_call(e, "uniform_", tensor, c.lit(init.p("a")), c.lit(init.p("b")))]
    if s == "trunc_normal":
        defaults = {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0}
        kw = {k: c.lit(init.p(k)) for k in defaults if init.p(k) != defaults[k]}
        return [_init_call(e, "trunc_normal_", tensor, **kw)]
    if s in ("kaiming_normal", "kaiming_uniform"):
        kw = {}
        if init.p("nonlinearity") == "leaky_relu" and init.p("a"):
            kw["a"] = c.lit(init.p("a"))
        if init.p("mode") != "fan_in":
            kw["mode"] = c.lit(init.p("mode"))
        if init.p("nonlinearity") != "leaky_relu":
            kw["nonlinearity"] = c.lit(init.p("nonlinearity"))
        return [_init_call(e, f"{s}_", tensor, **kw)]
    if s in ("xavier_normal", "xavier_uniform", "glorot_normal", "glorot_uniform"):
        fn = "xavier_normal_" if s.endswith("normal") else "xavier_uniform_"
        kw = {"gain": c.lit(init.p("gain"))} if init.p("gain") != 1.0 else {}
        return [_init_call(e, fn, tensor, **kw)]
    if s == "variance_scaling":  # Keras' VarianceScaling with PyTorch's fans
        scale, mode, dist = initmod.variance_scale(init)
        fans = c.call(c.attr(e.ref("nn"), "init", "_calculate_fan_in_and_fan_out"), weight)
        fan = {"fan_in": c.subscript(fans, 0), "fan_out": c.subscript(fans, 1)}.get(mode)
        if fan is None:
            fan = c.binop(c.binop(c.subscript(fans, 0), "+", c.subscript(fans, 1)), "/", c.lit(2))
        var = c.binop(c.lit(scale), "/", fan)
        if dist == "uniform":
            limit = c.binop(c.binop(c.lit(3), "*", var), "**", c.lit(0.5))
            return [_init_call(e, "uniform_", tensor, ast.UnaryOp(op=ast.USub(), operand=limit), limit)]
        std = c.binop(var, "**", c.lit(0.5))
        if dist == "untruncated_normal":
            return [_init_call(e, "normal_", tensor, std=std)]
        std = c.binop(std, "/", c.lit(TRUNC))
        return [
            c.assign("std", std),
            _init_call(
                e, "trunc_normal_", tensor, std=c.name("std"),
                a=c.binop(c.lit(-2), "*", c.name("std")), b=c.binop(c.lit(2), "*", c.name("std")),
            ),
        ]  # fmt: skip
    raise AssertionError(s)


def _overrides(e, nodes, kind_init, misrouted: set[int]) -> list[ast.stmt]:
    """Statements for the items whose init differs from their kind's (every tensor of a ``misrouted`` one: the loop
    drew it as the other conv kind), grouped by what they draw."""
    groups: dict[str, tuple[list[ast.stmt], list[str]]] = {}
    m = "m"
    for n in nodes:
        kind = ops.leaf_kind(n)
        own, base = dict(n.init), kind_init.get(kind, {})
        diff = [t for t in initmod.TENSORS if t in own and own[t] != base.get(t, TORCH_DEFAULT) and _has(n, t)]
        if id(n) in misrouted:
            diff = [t for t in initmod.TENSORS if t in own and _has(n, t)]
        if not diff:
            continue
        stmts: list[ast.stmt] = []
        defaults = [t for t in initmod.TENSORS if own.get(t) == initmod.TORCH_DEFAULT and _has(n, t)]
        if any(t in diff for t in defaults):  # PyTorch's own draw again, then the others
            stmts.append(c.expr_stmt(c.call(c.attr(m, "reset_parameters"))))
            diff = [t for t in initmod.TENSORS if _has(n, t) and own.get(t, initmod.TORCH_DEFAULT) != TORCH_DEFAULT]
        for t in diff:
            stmts += _apply(e, own[t], kind, c.attr(m, t), c.attr(m, "weight"))
        key = _dump(stmts)
        groups.setdefault(key, (stmts, []))[1].append(n.path)
    out: list[ast.stmt] = []
    for stmts, paths in groups.values():
        get = c.attr("self", "get_submodule")
        if len(paths) == 1:
            p = paths[0]
            target = c.attr("self", p) if p.isidentifier() else c.call(get, c.lit(p))
            out += [_Subst(m, target).visit(s) for s in stmts]
        else:
            loop_var = "path"
            body = [c.assign(m, c.call(get, c.name(loop_var))), *stmts]
            out.append(c.for_(loop_var, ast.Tuple(elts=[c.lit(p) for p in paths], ctx=ast.Load()), body))
    return out


class _Subst(ast.NodeTransformer):
    """The module variable replaced by an expression (one item: ``self.fc.weight``, not ``m = self.fc``)."""

    def __init__(self, name: str, expr: ast.expr):
        self.target, self.expr = name, expr

    def visit_Name(self, node):
        import copy

        return copy.deepcopy(self.expr) if node.id == self.target else node

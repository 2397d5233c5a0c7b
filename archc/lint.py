"""Lints: legal specs that are probably not what their author meant (issue 13, item 4).

Each is a :class:`LintWarning` printed as ``file:line:col: warning: message``; ``archc check`` exits 0
with warnings, ``archc check --strict`` exits 2. A warning is reported once per place in the source:
a problem inside a block used 30 times is one warning. A problem inside a standard-library block is
reported where the user called it (the stdlib item as a note).

* a convolution with a bias directly followed by batch norm (the BN's shift cancels the bias);
* a ``defaults:`` entry that applies to no item (a kind or block the network does not have; an
  attribute every item of the kind writes itself; ``conv`` defaults while ``dwconv`` items keep the
  built-in value of the same attribute);
* a network param that no expression reads, and a param of one of the spec's blocks that its body does not read;
* a dropout of rate 0 that is present (not switched off by its ``if:``);
* an item whose ``if:`` is constant (a literal, or an expression that reads no name).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ir
from .errors import ArchcError, Loc
from .expr import evaluate, is_expr, parse
from .loader import key_loc, loc_of
from .provenance import is_user, short

BUILTIN_SHARED = ("bias", "stride", "dilation", "padding")  # attributes conv and dwconv share


@dataclass(frozen=True)
class LintWarning:
    loc: Loc | None
    message: str
    notes: tuple = ()  # (loc, text)

    def __str__(self) -> str:
        head = f"{self.loc}: warning: {self.message}" if self.loc else f"warning: {self.message}"
        return "\n".join([head] + [f"{loc}: note: {t}" if loc else f"note: {t}" for loc, t in self.notes])


def _builtin():
    from .lower import BUILTIN_DEFAULTS

    return BUILTIN_DEFAULTS


def lint(lowerer, model: ir.Model) -> list[LintWarning]:
    """Every lint of a lowered model (``lowerer`` is the :class:`~archc.lower.Lowerer` that built it)."""
    out: list[LintWarning] = []
    sites = list(_walk_sites(model))
    out += _bias_before_bn(sites)
    out += _dropout_zero(sites)
    out += _defaults(lowerer, model)
    out += _unused_params(lowerer)
    out += _unused_block_params(lowerer)
    out += _constant_if(lowerer)
    seen, unique = set(), []
    for w in out:
        key = (w.loc, w.message)
        if key not in seen:
            seen.add(key)
            unique.append(w)
    return sorted(unique, key=lambda w: (w.loc is None, tuple(w.loc) if w.loc else ()))


# ---------------------------------------------------------------- instance lints
def _roots(model: ir.Model):
    return [model.body] + [h.body for h in model.heads]


def _walk_sites(model: ir.Model):
    """Every container node and dropout, with the nearest enclosing user-written location (the user's call
    site of the stdlib block it is in). One iterative pass, shared by the instance lints."""
    stack = [(root, None) for root in reversed(_roots(model))]
    pop, push = stack.pop, stack.append
    while stack:
        node, site = pop()
        t = type(node)
        if t is ir.Seq:
            kids = node.children
        elif t is ir.Call:
            if is_user(node.loc):
                site = node.loc
            kids = (node.body,)
        elif t is ir.Repeat:
            kids = node.iterations
        elif t is ir.Merge:
            kids = node.branches
        elif t is ir.DenseConnect:
            kids = node.layers
        else:
            if t is ir.Dropout:
                yield node, site
            continue
        yield node, site
        for child in reversed(kids):
            if not ir.is_leaf(child) or type(child) is ir.Dropout:
                push((child, site))


def _placed(loc: Loc | None, site: Loc | None, what: str):
    """Where to report a problem at ``loc``: there if the user wrote it, else at the user's call site."""
    if is_user(loc) or site is None:
        return loc, ()
    return site, ((loc, f"{what} is here"),)


def _first_leaf(node):
    while True:
        if ir.is_leaf(node):
            return node
        if isinstance(node, ir.Seq):
            if not node.children:
                return None
            node = node.children[0]
        elif isinstance(node, ir.Call):
            node = node.body
        elif isinstance(node, ir.Repeat) and node.iterations:
            node = node.iterations[0]
        else:  # a merge or dense connectivity: its first layers see a copy, not the stream
            return None


def _last_leaf(node):
    while True:
        if ir.is_leaf(node):
            return node
        if isinstance(node, ir.Seq):
            if not node.children:
                return None
            node = node.children[-1]
        elif isinstance(node, ir.Call):
            node = node.body
        elif isinstance(node, ir.Repeat) and node.iterations:
            node = node.iterations[-1]
        else:
            return None


def _bias_before_bn(sites) -> list[LintWarning]:
    found: dict = {}  # conv loc -> [placed loc, notes, conv, params, places]
    for node, site in sites:
        if isinstance(node, ir.Seq):
            steps = node.children
        elif isinstance(node, ir.Repeat):
            steps = node.iterations
        else:
            continue
        for a, b in zip(steps, steps[1:]):
            conv = a if type(a) is ir.Conv else None if ir.is_leaf(a) else _last_leaf(a)
            if isinstance(conv, ir.Conv) and conv.bias and isinstance(_first_leaf(b), ir.BatchNorm):
                key = conv.loc
                if key not in found:
                    loc, notes = _placed(conv.loc, site, "the convolution")
                    found[key] = [loc, notes, conv, 0, 0]
                found[key][3] += conv.out_channels
                found[key][4] += 1
    out = []
    for loc, notes, conv, params, places in found.values():
        kind = "depthwise conv" if conv.depthwise else "conv"
        where = f" (in {places} places)" if places > 1 else ""
        out.append(
            LintWarning(
                loc,
                f"{kind} '{conv.path}' has a bias and is directly followed by batch norm, which cancels it: "
                f"{params:,} redundant parameters{where}; write bias: false",
                notes,
            )
        )
    return out


def _dropout_zero(sites) -> list[LintWarning]:
    found: dict = {}
    for node, site in sites:
        if isinstance(node, ir.Dropout) and node.rate == 0 and node.loc not in found:
            loc, notes = _placed(node.loc, site, "the dropout")
            found[node.loc] = LintWarning(
                loc,
                f"dropout '{node.path}' has rate 0 and does nothing; remove it, or give it 'if: ${{rate > 0}}'",
                notes,
            )
    return list(found.values())


# ---------------------------------------------------------------- template lints
def _templates(model: ir.Model):
    """Every template item the model is built from (network, heads, every block used)."""
    roots = [model.network] + [h.template for h in model.heads] + [b.body for b in model.blocks]
    stack = [r for r in roots if r is not None]
    while stack:
        t = stack.pop()
        yield t
        stack.extend(t.children)


def _defaults(lw, model: ir.Model) -> list[LintWarning]:
    raw_defaults = lw.data.get("defaults")
    if not isinstance(raw_defaults, dict):
        return []
    items = list(_templates(model))
    out = []
    for kind, attrs in lw.spec.defaults.items():
        kloc = key_loc(raw_defaults, kind)
        raw_k = raw_defaults.get(kind)
        of_kind = [t for t in items if (t.block == kind if t.kind == "call" else t.kind == kind)]
        if not of_kind:
            hint = ""
            if kind == "conv" and any(t.kind == "dwconv" for t in items):
                hint = " (its depthwise convolutions are 'dwconv', which 'conv' defaults do not reach)"
            out.append(LintWarning(kloc, f"defaults for '{kind}' apply to no item: the network has no '{kind}'{hint}"))
            continue
        for key in attrs:
            if all(key in {k for k, loc in t.attr_locs if loc is not None} for t in of_kind):
                out.append(
                    LintWarning(
                        key_loc(raw_k, key) if isinstance(raw_k, dict) else kloc,
                        f"defaults for '{kind}': {key} applies to no item: every '{kind}' writes its own {key}",
                    )
                )
        if kind == "conv":
            for key in attrs:
                if key not in BUILTIN_SHARED or key in lw.spec.defaults.get("dwconv", {}):
                    continue
                keep = [t for t in items if t.kind == "dwconv" and key not in {k for k, loc in t.attr_locs if loc}]
                if keep:
                    mine, builtin = short(lw.defaults["conv"][key]), short(_builtin()["dwconv"].get(key))
                    n = len(keep)
                    cost = ""
                    if key == "bias":
                        locs = {t.loc for t in keep}
                        biases = sum(
                            c.out_channels
                            for root in _roots(model)
                            for c in ir.walk(root)
                            if isinstance(c, ir.Conv) and c.depthwise and c.bias and c.loc in locs
                        )
                        cost = f", {biases:,} parameters" if biases else ""
                    out.append(
                        LintWarning(
                            key_loc(raw_k, key) if isinstance(raw_k, dict) else kloc,
                            f"defaults for 'conv' set {key}: {mine}, but {n} dwconv item{'s' if n > 1 else ''} "
                            f"keep{'' if n > 1 else 's'} archc's default {key}: {builtin}{cost} ('conv' defaults "
                            f"do not apply to 'dwconv'; add dwconv: {{{key}: {mine}}})",
                            ((keep[0].loc, "a dwconv with the built-in value"),),
                        )
                    )
    return out


def _exprs(value):
    """Every expression string inside located raw data."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif is_expr(v):
            yield v


def _names_of(text: str) -> set[str]:
    try:
        return parse(text).names()
    except ArchcError:
        return set()


def _unused_params(lw) -> list[LintWarning]:
    data = lw.data
    raw_params = data.get("params")
    if not isinstance(raw_params, dict) or not lw.spec.params:
        return []
    read: set[str] = set()
    for key, value in data.items():
        if key in ("blocks", "params"):  # block bodies read only their own params
            continue
        for text in _exprs(value):
            read |= _names_of(text)
    for name, value in raw_params.items():  # a param may be read by another param
        for text in _exprs(value):
            read |= _names_of(text) - {name}
    return [
        LintWarning(key_loc(raw_params, name), f"param '{name}' is never used")
        for name in lw.spec.params
        if name not in read
    ]


def _unused_block_params(lw) -> list[LintWarning]:
    """A param of one of the spec's own blocks that nothing in the block reads (nor any ``defaults:`` entry,
    which may be written for the items inside blocks)."""
    blocks = lw.data.get("blocks")
    if not isinstance(blocks, dict):
        return []
    in_defaults: set[str] = set()
    for text in _exprs(lw.data.get("defaults")):
        in_defaults |= _names_of(text)
    out = []
    for bname, raw in blocks.items():
        params = raw.get("params") if isinstance(raw, dict) else None
        if not isinstance(params, dict):
            continue
        read = set(in_defaults)
        for value in raw.values():
            for text in _exprs(value):
                read |= _names_of(text)
        for name in params:
            if name not in read:
                out.append(LintWarning(key_loc(params, name), f"param '{name}' of block '{bname}' is never used"))
    return out


def _constant_if(lw) -> list[LintWarning]:
    out = []
    stack = [v for k, v in lw.data.items() if k in ("network", "top", "heads", "blocks")]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
            continue
        if not isinstance(v, dict):
            continue
        stack.extend(x for k, x in v.items() if k != "if")
        if "if" not in v:
            continue
        cond = v["if"]
        if isinstance(cond, bool):
            value = cond
        elif is_expr(cond) and not _names_of(cond):
            try:
                value = evaluate(parse(cond), {})
            except ArchcError:
                continue
            if not isinstance(value, bool):
                continue
        else:
            continue
        what = "always true: the item is always built; remove the 'if'" if value else (
            "always false: the item is never built; remove the item, or make the 'if' read a param"
        )  # fmt: skip
        out.append(LintWarning(loc_of(v, "if"), f"'if' is constant, {what}"))
    return out

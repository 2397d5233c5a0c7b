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

        from .code import lit

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


def _escape_char(c: str) -> str:
    """A Python escape for a character that is not printed as itself (``\\x0b``, ``\\u2028``, ``\\U0001d000``)."""
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def docstring(text: str, indent: str = "", width: int = 120) -> str:
    """Text for a triple-quoted docstring: escaped, long lines wrapped, continuation lines indented."""
    import textwrap

    text = text.replace("\\", "\\\\").strip()
    end = ""
    if text.endswith('"'):  # a quote just before the closing one; escaped before '"""' is, never twice
        text, end = text[:-1], '\\"'
    text = text.replace('"""', '\\"\\"\\"') + end
    text = "".join(c if c.isprintable() or c in "\n\t" else _escape_char(c) for c in text)
    lines = []
    for line in text.splitlines():
        lead = line[: len(line) - len(line.lstrip())]
        wrapped = textwrap.wrap(line, width - len(indent) - 4, subsequent_indent=lead) or [""]
        lines.extend(wrapped)
    if not lines:  # a doc of whitespace only
        return ""
    out = lines[0]
    for line in lines[1:]:
        out += "\n" + (indent + line if line else "")
    if len(lines) > 1:
        out += "\n" + indent
    return out


def pair(v):
    """(h, w) from an int or a pair."""
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def pad4(v):
    """(top, bottom, left, right) from an int, [h, w] or a 4-sequence."""
    if isinstance(v, int):
        return (v, v, v, v)
    v = tuple(v)
    if len(v) == 2:
        return (v[0], v[0], v[1], v[1])
    return v

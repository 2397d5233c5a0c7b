"""Spec expressions: ``$name`` and ``${python-like expression}``, evaluated safely.

An expression is parsed with :mod:`ast` and only a small whitelist of node types is
accepted (numbers, strings, names, arithmetic, comparisons, ``a if c else b``,
indexing, list literals and the functions in :data:`FUNCTIONS`). Nothing is ever
passed to ``eval``. Because the whitelist is a subset of Python with Python's
semantics, a backend can emit an expression as Python source (with names
renamed) and get exactly the value the analysis computed.
"""

from __future__ import annotations

import ast
import functools
import operator
from dataclasses import dataclass

from .errors import ArchcError, Loc, suggest

MAX_INT = 1 << 40  # no spec needs bigger numbers; refusing them keeps arithmetic cheap
MAX_LEN = 10_000  # longest list or string an expression may build (block configs have a handful of entries)
MAX_SRC = 500

FUNCTIONS = {"int": int, "float": float, "round": round, "min": min, "max": max, "abs": abs, "len": len}

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ALLOWED = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd,
    ast.Not, ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.IfExp, ast.Call, ast.Subscript,
    ast.List, ast.Tuple, *_BINOPS, *_CMPOPS,
)  # fmt: skip


@dataclass(frozen=True)
class Expr:
    """A validated expression; ``src`` is its canonical Python source."""

    src: str

    @property
    def tree(self) -> ast.expr:
        """A fresh syntax tree (callers may transform it)."""
        return ast.parse(self.src, mode="eval").body

    def names(self) -> set[str]:
        """The free names (params) of the expression; called function names are not included."""
        return set(_names(self.src))

    def __str__(self) -> str:
        return self.src


@functools.lru_cache(maxsize=8192)
def _shared_tree(src: str) -> ast.expr:
    """A tree shared between callers that only read it (evaluation, names): parsed once per source."""
    return ast.parse(src, mode="eval").body


@functools.lru_cache(maxsize=8192)
def _names(src: str) -> frozenset[str]:
    tree = _shared_tree(src)
    funcs = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in funcs)


def is_expr(value) -> bool:
    return isinstance(value, str) and value.startswith("$")


def parse(text: str, loc: Loc | None = None) -> Expr:
    """Parse ``$name`` or ``${expr}`` into an :class:`Expr`, refusing anything outside the whitelist."""
    if not is_expr(text):
        raise ArchcError(f"not an expression: {text!r}", loc)
    body = text[1:]
    if body.startswith("{"):
        if not body.endswith("}"):
            raise ArchcError(f"expression {text!r} must end with '}}'", loc)
        body = body[1:-1]
    if len(body) > MAX_SRC:
        raise ArchcError(f"expression longer than {MAX_SRC} characters", loc)
    try:
        tree = ast.parse(body.strip(), mode="eval")
    except SyntaxError as exc:
        raise ArchcError(f"bad expression {text!r}: {exc.msg}", loc) from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ArchcError(f"{type(node).__name__} is not allowed in expression {text!r}", loc)
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool)):
            raise ArchcError(f"constant {node.value!r} is not allowed in {text!r}", loc)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                name = getattr(node.func, "id", "?")
                raise ArchcError(
                    f"function '{name}' is not available in expressions (use one of {', '.join(FUNCTIONS)})",
                    loc,
                )
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ArchcError(f"name '{node.id}' is not allowed in expressions", loc)
    return Expr(ast.unparse(tree.body))


MAX_NDIGITS = 64  # round(x, n): |n| beyond this changes nothing for any number within MAX_INT or a float


def _check_num(v, loc):
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_INT:
        shown = str(v) if v.bit_length() < 200 else f"of over {v.bit_length() * 3 // 10} digits"
        raise ArchcError(f"number {shown} is out of range (max {MAX_INT})", loc)
    if isinstance(v, complex):  # (-8) ** 0.5
        raise ArchcError("complex numbers are not allowed in expressions", loc)
    return v


def _check_call(name: str, args: list, src: str, loc) -> None:
    """Refuses the calls whose cost is not bounded by their arguments' sizes: ``round(1, -10**8)`` computes
    10**(10**8), an int of 10**8 digits."""
    if name == "round" and len(args) == 2 and isinstance(args[1], int) and abs(args[1]) > MAX_NDIGITS:
        raise ArchcError(f"round's digits must be within +-{MAX_NDIGITS} in ${{{src}}}", loc)


def evaluate(expr: Expr, scope: dict, loc: Loc | None = None):
    """Evaluate ``expr`` with the names in ``scope``; errors are located at ``loc``."""

    def ev(n):
        if isinstance(n, ast.Constant):
            return _check_num(n.value, loc)
        if isinstance(n, ast.Name):
            if n.id in scope:
                return scope[n.id]
            if n.id in FUNCTIONS:
                raise ArchcError(f"'{n.id}' is a function; call it", loc)
            names = [k for k in scope if k.isidentifier()]
            raise ArchcError(f"unknown param '{n.id}' in ${{{expr.src}}}{suggest(n.id, names)}", loc)
        if isinstance(n, ast.BinOp):
            a, b = ev(n.left), ev(n.right)
            if isinstance(n.op, ast.Pow) and (abs(b) > 64 or abs(a) > MAX_INT):
                raise ArchcError(f"power too large in ${{{expr.src}}}", loc)
            if isinstance(n.op, (ast.Mult, ast.Pow)) and (isinstance(a, (str, list)) or isinstance(b, (str, list))):
                raise ArchcError(f"cannot repeat a string or list in ${{{expr.src}}}", loc)
            if isinstance(n.op, ast.Mod) and isinstance(a, str):  # printf formatting: '%099999999d' % 1
                raise ArchcError(f"string formatting with % is not allowed in ${{{expr.src}}}", loc)
            if isinstance(a, (str, list)) and isinstance(b, (str, list)) and len(a) + len(b) > MAX_LEN:
                raise ArchcError(f"result of ${{{expr.src}}} is longer than {MAX_LEN} elements", loc)
            return _check_num(_BINOPS[type(n.op)](a, b), loc)
        if isinstance(n, ast.UnaryOp):
            v = ev(n.operand)
            return not v if isinstance(n.op, ast.Not) else (-v if isinstance(n.op, ast.USub) else +v)
        if isinstance(n, ast.BoolOp):
            vals = [ev(v) for v in n.values]
            if isinstance(n.op, ast.And):
                return all(vals)
            return any(vals)
        if isinstance(n, ast.Compare):
            left = ev(n.left)
            for op, right in zip(n.ops, n.comparators):
                r = ev(right)
                if not _CMPOPS[type(op)](left, r):
                    return False
                left = r
            return True
        if isinstance(n, ast.IfExp):
            return ev(n.body) if ev(n.test) else ev(n.orelse)
        if isinstance(n, ast.Call):
            args = [ev(a) for a in n.args]
            _check_call(n.func.id, args, expr.src, loc)
            return _check_num(FUNCTIONS[n.func.id](*args), loc)
        if isinstance(n, ast.Subscript):
            return ev(n.value)[ev(n.slice)]
        if isinstance(n, (ast.List, ast.Tuple)):
            return [ev(e) for e in n.elts]
        raise ArchcError(f"cannot evaluate ${{{expr.src}}}", loc)

    try:
        return ev(_shared_tree(expr.src))
    except ArchcError:
        raise
    except (TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError, KeyError) as exc:
        raise ArchcError(f"cannot evaluate ${{{expr.src}}}: {exc}", loc) from None


def value(v, scope: dict, loc: Loc | None = None):
    """Evaluate ``v`` if it is an expression (recursively inside lists), else return it."""
    if isinstance(v, Expr):
        return evaluate(v, scope, loc)
    if is_expr(v):
        return evaluate(parse(v, loc), scope, loc)
    if isinstance(v, (list, tuple)):
        return [value(x, scope, loc) for x in v]
    return v


# --- symbolic arithmetic on expressions (used to describe channel counts inside blocks) ---


def sym(v) -> Expr:
    """An :class:`Expr` for a literal or an existing expression."""
    if isinstance(v, Expr):
        return v
    return Expr(ast.unparse(ast.Constant(v)))


class _Substitute(ast.NodeTransformer):
    def __init__(self, repl: dict):
        self.repl = repl

    def visit_Name(self, node):
        return self.repl.get(node.id, node)


def _foldable(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= MAX_INT


class _Fold(ast.NodeTransformer):
    """Constant folding that never computes a huge number (``9 ** 9 ** 9`` stays for evaluation to refuse)."""

    def visit_BinOp(self, node):
        self.generic_visit(node)
        lc, rc = isinstance(node.left, ast.Constant), isinstance(node.right, ast.Constant)
        if lc and rc:
            a, b = node.left.value, node.right.value
            if not (_foldable(a) and _foldable(b)) or (isinstance(node.op, ast.Pow) and abs(b) > 64):
                return node
            try:
                v = _BINOPS[type(node.op)](a, b)
            except (ArithmeticError, ValueError, TypeError):
                return node
            return ast.Constant(v) if _foldable(v) else node
        if isinstance(node.op, ast.Add) and rc and node.right.value == 0:
            return node.left
        if isinstance(node.op, ast.Add) and lc and node.left.value == 0:
            return node.right
        if isinstance(node.op, ast.Mult) and rc and node.right.value == 1:
            return node.left
        if isinstance(node.op, ast.Mult) and lc and node.left.value == 1:
            return node.right
        return node


def substitute(expr: Expr, mapping: dict) -> Expr:
    """Replace names in ``expr`` by other expressions (``mapping``: name -> Expr or literal)."""
    return _substitute(expr.src, tuple((k, sym(v).src) for k, v in mapping.items()))


@functools.lru_cache(maxsize=8192)
def _substitute(src: str, mapping: tuple) -> Expr:
    repl = {k: ast.parse(v, mode="eval").body for k, v in mapping}
    tree = _Substitute(repl).visit(ast.Expression(Expr(src).tree))
    return simplify(Expr(ast.unparse(tree.body)))


def simplify(expr: Expr) -> Expr:
    """Fold constant sub-expressions and drop ``+ 0`` / ``* 1``."""
    return _simplify(expr.src)


@functools.lru_cache(maxsize=8192)
def _simplify(src: str) -> Expr:
    tree = _Fold().visit(ast.Expression(Expr(src).tree))
    return Expr(ast.unparse(tree.body))


def sym_add(*terms) -> Expr:
    exprs = [sym(t) for t in terms]
    if not exprs:
        return sym(0)
    tree = exprs[0].tree
    for e in exprs[1:]:
        tree = ast.BinOp(tree, ast.Add(), e.tree)
    return simplify(Expr(ast.unparse(tree)))


def sym_mul(a, b) -> Expr:
    return simplify(Expr(ast.unparse(ast.BinOp(sym(a).tree, ast.Mult(), sym(b).tree))))

"""Where a bad value came from: errors point at the cause, with the use as a note.

A value check in lowering (``out must be a positive integer``) fails where the value is *used*, often
inside a block definition the user never wrote. This module walks back from the use to where the value
was *written*: a network param (in the spec, in the base file of an ``extends`` chain, or on the command
line with ``--set``), a ``defaults:`` entry, or an argument at a block's call site. The error's primary
location becomes that origin; the use and every user-written step in between become notes.

Instantiation scopes carry, under the key :data:`ORIGINS` (not an identifier, so never a param name),
a cheap description of where their values came from: :data:`NETWORK` for the network's params, or
``(call node, caller scope)`` inside a block call. Origins are worked out only when an error happens,
so a correct spec pays one tuple per block call.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass

from .errors import ArchcError, Loc
from .expr import Expr, is_expr, parse
from .loader import loc_of

ORIGINS = "@origins"  # scope key: the frame that gave the scope its values
NETWORK = ("network",)
MAX_HOPS = 64  # bound on how far back an origin is followed (a hostile spec may chain thousands of params)
STDLIB_PREFIX = "<archc stdlib>/"


@dataclass(frozen=True)
class Origin:
    """One step of a value's history: ``name`` got ``value`` at ``loc`` (from ``expr`` reading ``reads``)."""

    name: str
    value: object
    loc: Loc | None
    what: str  # "param 'growth_rate'", "argument 'out' of block 'conv_bn_act'", ...
    expr: Expr | tuple | None = None
    reads: tuple = ()  # Origin of each name the expression read

    @property
    def forwards(self) -> bool:
        """``$name``: the value passed on unchanged."""
        return isinstance(self.expr, Expr) and self.expr.src.isidentifier() and len(self.reads) == 1


def is_user(loc: Loc | None) -> bool:
    return loc is not None and not loc.file.startswith(STDLIB_PREFIX)


def short(v) -> str:
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxstring, r.maxother = 3, 6, 40, 40
    if isinstance(v, bool):
        return "true" if v else "false"
    return r.repr(list(v) if isinstance(v, tuple) else v)


def render(expr) -> str:
    """An expression as a spec writes it: ``$name`` or ``${...}``."""
    if isinstance(expr, tuple):
        return "[" + ", ".join(render(e) if isinstance(e, (Expr, tuple)) else short(e) for e in expr) + "]"
    src = expr.src
    return f"${src}" if src.isidentifier() else f"${{{src}}}"


def _names(expr) -> list[str]:
    if isinstance(expr, Expr):
        return sorted(expr.names())
    if isinstance(expr, tuple):
        out: list[str] = []
        for e in expr:
            out += [n for n in _names(e) if n not in out]
        return out
    return []


def _has_expr(v) -> bool:
    return isinstance(v, Expr) or (isinstance(v, tuple) and any(_has_expr(x) for x in v))


class Tracer:
    """Works out origins for one lowering (it reads the lowerer's raw data, spec and defaults)."""

    def __init__(self, lowerer):
        self.lw = lowerer
        self._memo: dict = {}  # origins shared: a chain of params reading each other twice stays linear

    # ------------------------------------------------------------ origins of names
    def reads(self, expr, scope: dict, depth: int) -> tuple:
        out = []
        for n in _names(expr):
            o = self.origin(n, scope, depth + 1)
            if o is None and n in scope:
                o = Origin(n, scope[n], None, f"'{n}'")
            if o is not None:
                out.append(o)
        return tuple(out)

    def origin(self, name: str, scope: dict, depth: int = 0) -> Origin | None:
        """Where ``name`` got its value in ``scope``, or None (``in_channels``, or not known)."""
        if depth > MAX_HOPS or name not in scope or name == "in_channels":
            return None
        frame = scope.get(ORIGINS)
        if frame == NETWORK:
            key = ("network", name)
        elif isinstance(frame, tuple) and len(frame) == 2:
            key = (id(frame[0]), id(frame[1]), name)
        else:
            return None
        if key not in self._memo:
            if frame == NETWORK:
                self._memo[key] = self.param_origin(name, depth)
            else:
                self._memo[key] = self.arg_origin(frame[0], frame[1], name, scope[name], depth)
        return self._memo[key]

    def param_origin(self, name: str, depth: int) -> Origin | None:
        lw = self.lw
        if name not in lw.spec.params:
            return None
        raw_params = lw.data.get("params")
        loc = loc_of(raw_params, name)
        raw = lw.spec.params[name]
        expr = self._parse(raw, loc)
        scope = {**lw.scope, ORIGINS: NETWORK}
        return Origin(name, lw.scope.get(name), loc, f"param '{name}'", expr, self.reads(expr, scope, depth))

    def network_default(self, kind: str, key: str, value, depth: int) -> Origin:
        lw = self.lw
        raw_defaults = lw.data.get("defaults")
        raw_k = raw_defaults.get(kind) if isinstance(raw_defaults, dict) else None
        loc = loc_of(raw_k, key) if isinstance(raw_k, dict) else None
        expr = self._parse(lw.spec.defaults.get(kind, {}).get(key), loc)
        scope = {**lw.scope, ORIGINS: NETWORK}
        return Origin(key, value, loc, f"defaults for '{kind}': {key}", expr, self.reads(expr, scope, depth))

    def arg_origin(self, call, caller_scope: dict, name: str, value, depth: int) -> Origin | None:
        lw = self.lw
        written = dict(call.attr_locs)
        block = call.block
        if name in written:  # an argument at the call site
            v = dict(call.attrs).get(name)
            expr = v if _has_expr(v) else None
            reads = self.reads(expr, caller_scope, depth) if expr is not None else ()
            return Origin(name, value, written[name], f"argument '{name}' of block '{block}'", expr, reads)
        if name in lw.defaults.get(block, {}):
            return self.network_default(block, name, value, depth)
        raw_block = lw.raw_blocks.get(block, (None, None, None))[1]
        raw_params = raw_block.get("params") if isinstance(raw_block, dict) else None
        loc = loc_of(raw_params, name) if isinstance(raw_params, dict) else None
        return Origin(name, value, loc, f"the default of param '{name}' of block '{block}'")

    def _parse(self, raw, loc):
        if is_expr(raw):
            try:
                return parse(raw, loc)
            except ArchcError:
                return None
        if isinstance(raw, list) and any(is_expr(x) for x in raw):
            return tuple(self._parse(x, loc) if is_expr(x) else x for x in raw)
        return None

    # ------------------------------------------------------------ explaining an error
    def use_origin(self, t, key: str, value, scope: dict) -> Origin:
        """The failing attribute ``key`` of template node ``t``, as the first step back."""
        if key == "if":
            expr = t.cond
            return Origin(key, value, t.loc, "'if'", expr, self.reads(expr, scope, 0))
        written = dict(t.attr_locs)
        v = dict(t.attrs).get(key)
        loc = written.get(key) or t.loc
        if _has_expr(v):
            return Origin(key, value, loc, f"'{key}'", v, self.reads(v, scope, 0))
        if written.get(key) is None and key in self.lw.defaults.get(t.kind, {}):
            d = self.network_default(t.kind, key, value, 0)
            return Origin(key, value, loc, f"'{key}'", None, (d,))
        return Origin(key, value, loc, f"'{key}'")

    def explain(self, exc: ArchcError, use: Origin) -> None:
        """Move ``exc`` to where its bad value was written; the use and the steps between become notes."""
        exc.explained = True
        check = exc.check

        def fails(v) -> bool:
            if check is None:  # the same bad value, or a list holding it (block_config: [6, -12, 32, 32])
                same = type(v) is type(use.value) and v == use.value
                return same or (
                    isinstance(v, (list, tuple)) and any(type(x) is type(use.value) and x == use.value for x in v)
                )
            try:
                return not check(v)
            except Exception:  # noqa: BLE001 - a predicate on an odd value: count it as failing
                return True

        path = _cause(use, fails, 0, set())
        use_note = _use_note(use)
        if path is None or len(path) == 1:
            if use_note and use.reads and not use.forwards and is_user(exc.loc):
                exc.note(None, use_note.removeprefix("used here: "))
            return
        cause = path[-1]
        notes = []
        for step in reversed(path[1:-1]):
            if is_user(step.loc) and step.loc != cause.loc:
                notes.append(
                    (step.loc, f"via {step.what}" + (f" = {render(step.expr)}" if step.expr is not None else ""))
                )
        if cause.expr is not None and cause.reads and not cause.forwards:
            notes.insert(0, (None, _use_note(cause).removeprefix("used here: ")))
        if len(notes) > 6:  # a long chain of params: its ends
            notes = notes[:3] + [(None, f"... via {len(notes) - 6} more steps")] + notes[-3:]
        notes.append((use.loc, use_note or "used here"))
        # everything worked out: now change the error
        exc.message = f"{exc.message} (from {cause.what} = {short(cause.value)})"
        exc.loc = cause.loc
        exc.primary_moved = True
        exc.notes.extend(notes)


def _cause(o: Origin, fails, depth: int, tried: set):
    """The path from ``o`` back to the user-written value that makes it fail, or None."""
    if depth < MAX_HOPS:
        for r in o.reads:
            if id(r) not in tried and fails(r.value):
                tried.add(id(r))  # origins are shared (a DAG): each is followed once
                path = _cause(r, fails, depth + 1, tried)
                if path:
                    return [o, *path]
    return [o] if is_user(o.loc) else None


def _ultimate(o: Origin) -> Origin:
    """Follow ``$name`` forwarding back to where the value was written."""
    for _ in range(MAX_HOPS):
        if not o.forwards:
            break
        o = o.reads[0]
    return o


def _use_note(use: Origin) -> str:
    if use.expr is None:
        return ""
    text = f"used here: {use.name} = {render(use.expr)}"
    if use.forwards:
        return text
    parts = []
    for r in use.reads:
        u = _ultimate(r)
        parts.append(f"{r.name} = {short(r.value)}" + (f" ({u.loc})" if u.loc is not None else ""))
    return f"{text} = {short(use.value)}" + (" with " + ", ".join(parts) if parts else "")

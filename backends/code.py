"""Generated code as a tree: Python ``ast`` nodes, one printer, one formatter, one compile.

Emitters never paste source text together. They build :mod:`ast` expressions and
statements with the small constructors here (``call``, ``attr``, ``assign``, ``if_`` ...);
:func:`render` prints the tree (statements by this module's printer, so that a statement can
carry a trailing comment such as a shape; every expression by :func:`ast.unparse`), then
ruff formats the text as the last step (layout is the formatter's job, not the emitter's),
and the result is compiled before anyone may write it. Code shaped as a tree cannot come out
with half a conditional or an unbalanced parenthesis.

:class:`Namespace` hands out names the way ``torch.fx`` does: the names that come from the
spec are reserved first, and the generator's own names (imports, locals, helpers) are the
ones that yield (``x`` becomes ``x_2`` if a spec calls something ``x``).
"""

from __future__ import annotations

import ast
import builtins
import copy
import keyword
import os
import shutil
import subprocess
import textwrap

from archc.errors import InternalError


# ---------------------------------------------------------------- expressions
def name(n: str) -> ast.Name:
    return ast.Name(id=n, ctx=ast.Load())


def store(n: str) -> ast.Name:
    return ast.Name(id=n, ctx=ast.Store())


def attr(obj, *names: str) -> ast.expr:
    """``obj.a.b``; ``obj`` is a name or an expression."""
    node = name(obj) if isinstance(obj, str) else obj
    for n in names:
        node = ast.Attribute(value=node, attr=n, ctx=ast.Load())
    return node


def lit(v) -> ast.expr:
    """A literal: numbers, strings, bools, None; lists and tuples become tuples."""
    if isinstance(v, (list, tuple)):
        return ast.Tuple(elts=[lit(x) for x in v], ctx=ast.Load())
    if isinstance(v, (bool, int, float, str)) or v is None:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            return ast.UnaryOp(op=ast.USub(), operand=ast.Constant(-v))
        return ast.Constant(v)
    raise TypeError(f"cannot make a literal of {v!r}")


def call(func, *args, **kwargs) -> ast.Call:
    """``func(*args, **kwargs)``; ``func`` is a dotted name or an expression. Keyword order is kept."""
    f = attr(*func.split(".")) if isinstance(func, str) else func
    return ast.Call(
        func=f,
        args=[a if isinstance(a, ast.AST) else lit(a) for a in args],
        keywords=[ast.keyword(arg=k, value=v if isinstance(v, ast.AST) else lit(v)) for k, v in kwargs.items()],
    )


def kwcall(func, args: list, kwargs: list[tuple[str, object]]) -> ast.Call:
    """Like :func:`call` with keywords as an ordered list of pairs (names that are not Python keywords)."""
    return call(func, *args, **dict(kwargs))


def starred(e: ast.expr) -> ast.Starred:
    return ast.Starred(value=e, ctx=ast.Load())


def lst(items) -> ast.List:
    return ast.List(elts=list(items), ctx=ast.Load())


def ifexp(test, body, orelse) -> ast.IfExp:
    return ast.IfExp(test=test, body=body, orelse=orelse)


def and_(*tests) -> ast.expr:
    tests = [t for t in tests if t is not None]
    if len(tests) == 1:
        return tests[0]
    return ast.BoolOp(op=ast.And(), values=list(tests))


def compare(left, op: str, right) -> ast.Compare:
    ops = {"==": ast.Eq, "!=": ast.NotEq, "is": ast.Is, "is not": ast.IsNot, ">": ast.Gt, "<": ast.Lt}
    return ast.Compare(left=left, ops=[ops[op]()], comparators=[right])


def binop(left, op: str, right) -> ast.BinOp:
    ops = {"+": ast.Add, "-": ast.Sub, "*": ast.Mult, "/": ast.Div, "//": ast.FloorDiv, "**": ast.Pow}
    return ast.BinOp(left=left, op=ops[op](), right=right)


def listcomp(elt, target: str, iter_) -> ast.ListComp:
    gen = ast.comprehension(target=store(target), iter=iter_, ifs=[], is_async=0)
    return ast.ListComp(elt=elt, generators=[gen])


def genexp(elt, target: str, iter_) -> ast.GeneratorExp:
    gen = ast.comprehension(target=store(target), iter=iter_, ifs=[], is_async=0)
    return ast.GeneratorExp(elt=elt, generators=[gen])


def subscript(value, index) -> ast.Subscript:
    return ast.Subscript(value=value, slice=index if isinstance(index, ast.AST) else lit(index), ctx=ast.Load())


def fstring(parts) -> ast.expr:
    """An f-string from ``(text | ast.expr)`` parts; a plain string if every part is text."""
    if all(isinstance(p, str) for p in parts):
        return ast.Constant("".join(parts))
    values = []
    for p in parts:
        if isinstance(p, str):
            if values and isinstance(values[-1], ast.Constant):
                values[-1] = ast.Constant(values[-1].value + p)
            else:
                values.append(ast.Constant(p))
        else:
            values.append(ast.FormattedValue(value=p, conversion=-1, format_spec=None))
    return ast.JoinedStr(values=values)


def same(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a) == ast.dump(b)


# ---------------------------------------------------------------- statements
def assign(target, value, comment: str | None = None) -> ast.stmt:
    """``target = value``; ``target`` is a name, ``self.attr`` expression, or a tuple of names."""
    if isinstance(target, str):
        tgt = store(target)
    elif isinstance(target, (list, tuple)):
        tgt = ast.Tuple(elts=[store(t) for t in target], ctx=ast.Store())
    else:
        tgt = copy.copy(target)
        tgt.ctx = ast.Store()
    return commented(ast.Assign(targets=[tgt], value=value, lineno=0), comment)


def expr_stmt(value, comment: str | None = None) -> ast.stmt:
    return commented(ast.Expr(value=value), comment)


def ret(value) -> ast.stmt:
    return ast.Return(value=value)


def if_(test, body: list, orelse: list | None = None) -> ast.If:
    return ast.If(test=test, body=list(body) or [ast.Pass()], orelse=list(orelse or []))


def for_(target: str, iter_, body: list) -> ast.For:
    return ast.For(target=store(target), iter=iter_, body=list(body) or [ast.Pass()], orelse=[], lineno=0)


def docstring(text: str) -> ast.stmt:
    return ast.Expr(value=ast.Constant(text))


def function(fname: str, params: list, body: list, defaults: dict | None = None, doc: str | None = None) -> ast.stmt:
    """``def fname(params):``; ``defaults`` maps trailing params to default literals."""
    defaults = defaults or {}
    args = [ast.arg(arg=p) for p in params]
    dflt = [lit(defaults[p]) if not isinstance(defaults[p], ast.AST) else defaults[p] for p in params if p in defaults]
    arguments = ast.arguments(
        posonlyargs=[], args=args, vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=dflt
    )
    body = ([docstring(doc)] if doc else []) + (list(body) or [ast.Pass()])
    return ast.FunctionDef(
        name=fname, args=arguments, body=body, decorator_list=[], returns=None, type_params=[], lineno=0
    )


def class_(cname: str, bases: list, body: list, doc: str | None = None) -> ast.stmt:
    body = ([docstring(doc)] if doc else []) + (list(body) or [ast.Pass()])
    return ast.ClassDef(
        name=cname,
        bases=[attr(*b.split(".")) if isinstance(b, str) else b for b in bases],
        keywords=[],
        body=body,
        decorator_list=[],
        type_params=[],
    )


def blank_before(stmt: ast.stmt) -> ast.stmt:
    """Print an empty line before ``stmt`` (between import sections)."""
    stmt._archc_blank = True
    return stmt


def commented(stmt: ast.stmt, comment: str | None) -> ast.stmt:
    """Attach a trailing comment (one line, no newline) to a simple statement."""
    if comment:
        stmt._archc_comment = " ".join(str(comment).split())
    return stmt


def comment_lines(text: str) -> list[str]:
    """Comment lines for the top of a module: each line printable, no way out of the comment."""
    out = []
    for line in text.splitlines():
        clean = "".join(c if c.isprintable() else "?" for c in line)
        out.append(f"# {clean}".rstrip())
    return out


# ---------------------------------------------------------------- printing
class _Printer:
    """Statements of the generated subset, one per line, trailing comments kept; expressions by ast.unparse."""

    def __init__(self):
        self.lines: list[str] = []

    def block(self, stmts, depth: int) -> None:
        for i, s in enumerate(stmts):
            if (isinstance(s, (ast.FunctionDef, ast.ClassDef)) or hasattr(s, "_archc_blank")) and i > 0:
                self.lines.append("")
            self.stmt(s, depth)

    def stmt(self, s: ast.stmt, depth: int) -> None:
        pad = "    " * depth
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
            self.lines.append(pad + _triple_quoted(s.value.value, pad))
            return
        if isinstance(s, ast.ClassDef):
            bases = ", ".join(ast.unparse(b) for b in s.bases)
            self.lines.append(f"{pad}class {s.name}({bases}):" if bases else f"{pad}class {s.name}:")
            self.block(s.body, depth + 1)
        elif isinstance(s, ast.FunctionDef):
            self.lines.append(f"{pad}def {s.name}({ast.unparse(s.args)}):")
            self.block(s.body, depth + 1)
        elif isinstance(s, ast.If):
            self.lines.append(f"{pad}if {ast.unparse(s.test)}:")
            self.block(s.body, depth + 1)
            orelse = s.orelse
            while len(orelse) == 1 and isinstance(orelse[0], ast.If) and not hasattr(orelse[0], "_archc_no_elif"):
                self.lines.append(f"{pad}elif {ast.unparse(orelse[0].test)}:")
                self.block(orelse[0].body, depth + 1)
                orelse = orelse[0].orelse
            if orelse:
                self.lines.append(f"{pad}else:")
                self.block(orelse, depth + 1)
        elif isinstance(s, ast.For):
            self.lines.append(f"{pad}for {ast.unparse(s.target)} in {ast.unparse(s.iter)}:")
            self.block(s.body, depth + 1)
        else:
            text = ast.unparse(s)
            if "\n" in text:  # a simple statement is one line; anything else is a bug in an emitter
                raise InternalError(f"statement does not fit on one line: {text!r}", None)
            comment = getattr(s, "_archc_comment", None)
            self.lines.append(pad + text + (f"  # {comment}" if comment else ""))


def _triple_quoted(text: str, indent: str) -> str:
    return '"""' + docstring_text(text, indent) + '"""'


def _escape_char(c: str) -> str:
    """A Python escape for a character that is not printed as itself (``\\x0b``, ``\\u2028``, ``\\U0001d000``)."""
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def docstring_text(text: str, indent: str = "", width: int = 120) -> str:
    """Text for a triple-quoted docstring: escaped, long lines wrapped, continuation lines indented."""
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


def render(header: list[str], body: list[ast.stmt], what: str) -> str:
    """Source text of a module: header comment lines, then the statements, formatted by ruff and compiled.

    ``what`` names the module in errors (spec and backend). Any failure is an :class:`InternalError`.
    """
    p = _Printer()
    p.block(body, 0)
    text = "\n".join(header) + "\n" + "\n".join(p.lines) + "\n"
    text = format_source(text, what)
    check_compiles(text, what)
    return text


def check_compiles(text: str, what: str) -> None:
    """``compile(text)``, or an :class:`InternalError` naming the module: never a file that does not parse."""
    try:
        compile(text, what, "exec")
    except SyntaxError as exc:
        raise InternalError(f"internal error: the generated code for {what} does not compile: {exc}", None) from None


def ruff_binary() -> str | None:
    try:
        from ruff.__main__ import find_ruff_bin

        return os.fsdecode(find_ruff_bin())
    except Exception:  # not installed as a package: a ruff on PATH will do
        return shutil.which("ruff")


RUFF_CONFIG = ["--config", "line-length=120", "--config", 'target-version="py310"']


def format_source(text: str, what: str) -> str:
    """The text formatted by ruff (isolated from any user configuration, so output is deterministic).

    ``ast.unparse`` writes a lone generator argument with a second pair of parentheses (``f((x for x in y))``):
    ruff's fix for that (UP034) runs first, then its formatter.
    """
    fixed = _ruff(["check", "--fix-only", "--exit-zero", "--select", "UP034"], text, what)
    return _ruff(["format"], fixed, what)


def _ruff(args: list[str], text: str, what: str) -> str:
    ruff = ruff_binary()
    if ruff is None:
        raise InternalError("internal error: ruff (a dependency of archc) is not installed: pip install ruff", None)
    try:
        proc = subprocess.run(
            [ruff, *args, "--isolated", *RUFF_CONFIG, "--stdin-filename", "generated.py", "-"],
            input=text.encode(),
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InternalError(f"internal error: cannot run ruff to format {what}: {exc}", None) from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise InternalError(
            f"internal error: the generated code for {what} does not parse: {err[0] if err else 'ruff failed'}", None
        )
    return proc.stdout.decode()


# ---------------------------------------------------------------- names
PY_RESERVED = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(keyword.softkwlist)


class Namespace:
    """Unique, legal names: ``reserve`` the user's names first; ``fresh`` gives the generator's own."""

    def __init__(self, reserved=(), parent: Namespace | None = None):
        self.taken: set[str] = set(reserved)
        self.parent = parent

    def __contains__(self, n: str) -> bool:
        return n in self.taken or (self.parent is not None and n in self.parent)

    def reserve(self, *names: str) -> None:
        self.taken.update(names)

    def fresh(self, hint: str) -> str:
        cand, k = hint, 1
        while cand in self or cand in PY_RESERVED:
            k += 1
            cand = f"{hint}_{k}"
        self.taken.add(cand)
        return cand


class Rename(ast.NodeTransformer):
    """Rename names (loads, stores, definitions) in a parsed helper: the generator's names yield to the user's."""

    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    def visit_Name(self, node):
        node.id = self.mapping.get(node.id, node.id)
        return node

    def visit_ClassDef(self, node):
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node

    def visit_FunctionDef(self, node):
        node.name = self.mapping.get(node.name, node.name)
        self.generic_visit(node)
        return node


def parse_helpers(text: str, mapping: dict[str, str]) -> list[ast.stmt]:
    """Fixed helper code (classes and functions archc ships), parsed, with names renamed."""
    tree = ast.parse(text)
    return Rename(mapping).visit(tree).body


# ---------------------------------------------------------------- tidying
def merge_adjacent_ifs(stmts: list[ast.stmt]) -> list[ast.stmt]:
    """``if c: a`` directly followed by ``if c: b`` (same test, no else) becomes ``if c: a; b``, recursively."""
    out: list[ast.stmt] = []
    for s in stmts:
        for field in ("body", "orelse"):
            if isinstance(s, (ast.If, ast.For, ast.FunctionDef, ast.ClassDef)) and getattr(s, field, None):
                setattr(s, field, merge_adjacent_ifs(getattr(s, field)))
        prev = out[-1] if out else None
        if (
            isinstance(s, ast.If)
            and isinstance(prev, ast.If)
            and not s.orelse
            and not prev.orelse
            and same(s.test, prev.test)
        ):
            prev.body = merge_adjacent_ifs(prev.body + s.body)
        else:
            out.append(s)
    return out


_CSE_KINDS = (ast.BinOp, ast.IfExp, ast.Call, ast.BoolOp, ast.UnaryOp)


def hoist_repeated(body: list[ast.stmt], allowed: set[str], ns: Namespace, at: int = 0) -> list[ast.stmt]:
    """Compute each argument expression used more than once (over ``allowed`` names only) once, into a local.

    The local is named after the layer of its first use (``conv1_channels``); it is inserted at
    index ``at`` of ``body``, where every ``allowed`` name is already bound. Loop bodies are left alone.
    """
    counts: dict[str, int] = {}
    first: dict[str, tuple[ast.expr, str]] = {}

    def candidates(stmts):
        for s in stmts:
            if isinstance(s, ast.For):
                continue
            if isinstance(s, ast.If):
                candidates(s.body)
                candidates(s.orelse)
                continue
            for node in ast.walk(s):
                if isinstance(node, ast.Call) and any(kw.arg == "name" for kw in node.keywords):  # layers, blocks
                    layer = _layer_hint(node)
                    for v in [*node.args, *(kw.value for kw in node.keywords if kw.arg != "name")]:
                        if isinstance(v, _CSE_KINDS) and _names(v) <= allowed and _names(v):
                            key = ast.dump(v)
                            counts[key] = counts.get(key, 0) + 1
                            first.setdefault(key, (v, layer))

    candidates(body)
    repl = {}
    hoisted = []
    for key, n in counts.items():
        if n >= 2:
            expr, layer = first[key]
            var = ns.fresh(f"{layer}_channels" if layer else "channels")
            repl[key] = var
            hoisted.append(assign(var, copy.deepcopy(expr)))
    if not repl:
        return body

    class Sub(ast.NodeTransformer):
        def visit_Call(self, node):
            self.generic_visit(node)
            if not any(kw.arg == "name" for kw in node.keywords):
                return node
            node.args = [name(repl[ast.dump(a)]) if ast.dump(a) in repl else a for a in node.args]
            for kw in node.keywords:
                if kw.arg != "name" and ast.dump(kw.value) in repl:
                    kw.value = name(repl[ast.dump(kw.value)])
            return node

    class Skip(Sub):
        def visit_For(self, node):
            return node

    rest = [Skip().visit(s) for s in body[at:]]
    return body[:at] + hoisted + rest


def _names(e: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(e) if isinstance(n, ast.Name)} - {"int", "float", "round", "min", "max", "abs"}


def _layer_hint(call_node: ast.Call) -> str | None:
    """The last part of a layer's ``name=f"{name}_conv1"`` keyword, if the call is made like that."""
    outer = call_node.func if isinstance(call_node.func, ast.Call) else call_node
    for kw in getattr(outer, "keywords", []):
        if kw.arg == "name":
            v = kw.value
            last = v.values[-1] if isinstance(v, ast.JoinedStr) and v.values else v
            if isinstance(last, ast.Constant) and isinstance(last.value, str):
                part = last.value.rsplit("_", 1)[-1] if "_" in last.value else last.value
                return part if part.isidentifier() else None
    return None


def loads(stmts) -> set[str]:
    """The names statements read."""
    return {n.id for s in stmts for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def drop_unused(body: list[ast.stmt], names: set[str]) -> list[ast.stmt]:
    """Remove assignments to the generator's own locals in ``names`` that nothing reads (ruff's F841)."""
    read = loads(body)
    dead = names - read

    def keep(stmts):
        out = []
        for s in stmts:
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
                if s.targets[0].id in dead:
                    continue
            for field in ("body", "orelse"):
                if isinstance(s, (ast.If, ast.For)):
                    setattr(s, field, keep(getattr(s, field)) or ([ast.Pass()] if field == "body" else []))
            out.append(s)
        return out

    return keep(body) if dead else body


def _reads(node: ast.AST, var: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == var and isinstance(n.ctx, ast.Load) for n in ast.walk(node))


def _plain_assign(s: ast.stmt, var: str | None = None) -> bool:
    """``NAME = value`` (to ``var`` if given)."""
    return (
        isinstance(s, ast.Assign)
        and len(s.targets) == 1
        and isinstance(s.targets[0], ast.Name)
        and (var is None or s.targets[0].id == var)
    )


def name_saved_outputs(stmts: list[ast.stmt], var: str, saved: set[str]) -> list[ast.stmt]:
    """Readable data flow around the outputs a forward keeps by name (references, several outputs), as people
    write it: ``x = self.enc1(x); enc1 = x; x = self.pool(x)`` becomes ``enc1 = self.enc1(x); x = self.pool(enc1)``,
    and ``x = skip; x = self.conv(x)`` becomes ``x = self.conv(skip)``. ``var`` is the running variable, ``saved``
    the names that hold kept outputs. Only straight-line statements are rewritten (a branch leaves them as they
    are), so the meaning never changes."""
    out = list(stmts)
    i = 0
    while i < len(out) - 1:
        s, t = out[i], out[i + 1]
        # x = NAME; x = f(x)  ->  x = f(NAME)
        if (
            _plain_assign(s, var)
            and isinstance(s.value, ast.Name)
            and s.value.id != var
            and _plain_assign(t, var)
            and not getattr(s, "_archc_comment", None)
        ):
            t.value = Rename({var: s.value.id}).visit(t.value)
            del out[i]
            continue
        # x = E; T = x; ... (reads of x until x is assigned again)  ->  T = E; ... (reads of T)
        if _plain_assign(s, var) and _plain_assign(t) and t.targets[0].id in saved and _is_name(t.value, var):
            rest = out[i + 2 :]
            end = next((j for j, u in enumerate(rest) if not _straight(u, var)), None)
            upto = rest if end is None else rest[:end]
            again = next((j for j, u in enumerate(upto) if _plain_assign(u, var)), None)
            if again is not None or (end is None and upto and isinstance(upto[-1], ast.Return)):
                last = again if again is not None else len(upto) - 1
                s.targets = [store(t.targets[0].id)]
                for u in upto[: last + 1]:
                    _rename_reads(u, var, t.targets[0].id)
                del out[i + 1]
                continue
        i += 1
    return out


def _is_name(e: ast.AST, n: str) -> bool:
    return isinstance(e, ast.Name) and e.id == n


def _straight(s: ast.stmt, var: str) -> bool:
    """A statement the data-flow rewrite may read through: a plain assignment, a return, or an ``if`` of those
    that does not assign ``var`` (``if self.training: return {...}``)."""
    if _plain_assign(s) or isinstance(s, ast.Return):
        return True
    if isinstance(s, ast.If) and not s.orelse:
        return all(_straight(u, var) and not _plain_assign(u, var) for u in s.body)
    return False


def _rename_reads(s: ast.stmt, var: str, new: str) -> None:
    if isinstance(s, ast.If):
        s.test = Rename({var: new}).visit(s.test)
        for u in s.body:
            _rename_reads(u, var, new)
    elif s.value is not None:
        s.value = Rename({var: new}).visit(s.value)


def hoist_widths(body: list[ast.stmt], params: set[str], ns: Namespace) -> list[ast.stmt]:
    """Name the compound expressions over ``params`` that statements repeat (a network's running widths written out
    in its params' terms), largest first, each computed once before its first use: ``transition1_channels =
    int(...)``, named after the attribute assigned just before that use (the part whose output width it is)."""
    while True:
        bound = set(params)
        uses: dict[str, list[int]] = {}
        nodes: dict[str, ast.expr] = {}
        for i, s in enumerate(body):
            for node in ast.walk(s):
                if isinstance(node, (ast.BinOp, ast.Call)) and _ops(node) >= 2 and _names(node) <= bound:
                    key = ast.dump(node)
                    nodes.setdefault(key, node)
                    uses.setdefault(key, []).append(i)
            if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name):
                bound.add(s.targets[0].id)
        repeated = [k for k, at in uses.items() if len(at) >= 2]
        if not repeated:
            return body
        key = max(repeated, key=lambda k: (_ops(nodes[k]), -uses[k][0]))
        first = uses[key][0]
        prev = next((_assigned_attr(s) for s in reversed(body[:first]) if _assigned_attr(s)), None)
        var = ns.fresh(f"{prev}_channels" if prev else "channels")
        expr = copy.deepcopy(nodes[key])

        sub = _Replace(key, var)
        body = body[:first] + [assign(var, expr)] + [sub.visit(s) for s in body[first:]]


class _Replace(ast.NodeTransformer):
    """Replace every expression whose dump is ``key`` by the name ``var``."""

    def __init__(self, key: str, var: str):
        self.key, self.var = key, var

    def visit(self, node):
        if isinstance(node, ast.expr) and ast.dump(node) == self.key:
            return name(self.var)
        return super().visit(node)


def _ops(e: ast.AST) -> int:
    return sum(isinstance(n, (ast.BinOp, ast.Call)) for n in ast.walk(e))


def _assigned_attr(s: ast.stmt) -> str | None:
    """``name`` of ``self.name = ...``."""
    if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Attribute):
        return s.targets[0].attr
    return None

"""References between outputs: ``from:``, ``outputs:`` and ``upsample: {like:}``.

A reference names an earlier output of the same *class*: the network, or one block's body (each becomes one class
in PyTorch, one function in Keras). What a class's items can read is its inputs (the network's ``input: {name:}``;
a block's ``inputs: [main, other, ...]``) and the items of its own level, through unnamed seqs and residuals, and
of the named seqs and block calls there by a dotted path (``backbone.layer3``; inside ``backbone``, ``layer3``),
once they are made (a call a reference reaches inside is built as a named seq of its block's body, the same
weights' names: :meth:`archc.lower.Lowerer.open_call`): resolution is lexical (the innermost seq's names
first) and earlier-only, so references never make a cycle. Items inside a part that is one module in PyTorch (a
merge's branch, a named residual, a loop's body, a head) neither read nor are read by reference. A block is how a
part with several inputs is written (a U-Net's up step and its skip): ``inputs: [x, skip]`` in the block,
``from: {skip: enc4}`` at the call, as torchvision's and timm's ``forward(self, x, skip)`` modules are.

:class:`Scope` is one class's names while its template is built; the instances read the shapes of what the names
name from the lowering's ``live`` frames (:meth:`archc.lower.Lowerer.live`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ArchcError, Loc, suggest
from .expr import Expr
from .loader import loc_of


@dataclass(frozen=True)
class Target:
    """A name a reference can read: an item of the class's own level, or one of the class's inputs."""

    key: str
    width: Expr  # in the class's terms
    loc: Loc | None
    what: str  # for messages: "item 'enc1'", "input 'skip'"
    conditional: bool = False


class Scope:
    """The names one class's items can read, in the order they are made."""

    def __init__(self, where: str, inputs: dict[str, Target], raw_body=None):
        self.where = where  # "the network", "block 'up'"
        self.inputs = dict(inputs)
        self.known: dict[str, Target] = dict(inputs)
        self.raw_body = raw_body  # the class's raw items, to say where a later name is defined
        self.used: set[str] = set()  # keys whose outputs some reference reads (not only their size: `like:`)
        self.closed: dict[str, str] = {}  # key of a block call references cannot reach inside -> why

    def define(self, name: str, width: Expr, loc: Loc | None, conditional: bool) -> None:
        if name in self.inputs:
            raise ArchcError(
                f"'{name}' is the name of {self.inputs[name].what} of {self.where}; name this item otherwise",
                loc,
                notes=[(self.inputs[name].loc, f"{self.inputs[name].what} is named here")],
            )
        self.known[name] = Target(name, width, loc, f"item '{name}'", conditional)

    def resolve(
        self, ref: str, loc: Loc | None, reader: str | None = None, size_only: bool = False, prefix: str = ""
    ) -> Target:
        """The target ``ref`` names, or a located error saying what is wrong with it (and where the name is).
        ``size_only``: the reference reads the output's size, not its values (`like:`). ``prefix``: the named seqs
        the reference is written in (``backbone.``): their items are found first, as Python finds a name."""
        parts = prefix.split(".")[:-1] if prefix else []
        for n in range(len(parts), 0, -1):  # the innermost seq first, then the ones around it
            inner = ".".join(parts[:n]) + "." + ref
            if inner in self.known and (reader is None or inner != prefix + reader):
                ref = inner
                break
        head, _, rest = ref.partition(".")
        if ref == reader or (prefix and ref == prefix + str(reader)):
            raise ArchcError(f"'{ref}' is this item: a reference reads an earlier output", loc)
        if ref in self.known:
            head, rest = ref, ""
        elif rest and ref.rpartition(".")[0] in self.known:  # inside a part that is one module (a branch, a loop)
            head = ref.rpartition(".")[0]
        if head in self.known and rest and head in self.closed:
            t = self.known[head]
            raise ArchcError(
                f"'{ref}' reaches inside {t.what}, a block call, which a reference cannot reach inside: "
                f"{self.closed[head]}; or name the output in the block's body and pass it on",
                loc,
                notes=[(t.loc, f"{t.what} is here")],
            )
        if head in self.known and rest:
            t = self.known[head]
            raise ArchcError(
                f"'{ref}' reaches inside {t.what}: a reference reads an item of {self.where}'s own level or of a "
                "named seq or block call there (a dotted path: backbone.layer3), or an input; inside a merge's "
                "branch, a residual's body or a loop, the part is one module, its inside no output. Make the part "
                "a named seq, or name the output in a block's body and pass it on",
                loc,
                notes=[(t.loc, f"{t.what} is here")],
            )
        if head in self.known:
            t = self.known[head]
            if t.conditional:
                raise ArchcError(
                    f"'{ref}' names {t.what}, which is built only when its 'if:' (or that of a part around it) "
                    "holds; a reference reads an output that is always there",
                    loc,
                    notes=[(t.loc, f"{t.what} is here")],
                )
            if not size_only:
                self.used.add(t.key)
            return t
        later = _find_name(self.raw_body, head)
        if later is not None and later != loc:
            raise ArchcError(
                f"'{ref}' is not an earlier output here: it is defined later, or inside a nested part, at {later}; "
                "a reference reads an earlier output of its own level",
                loc,
                notes=[(later, f"'{head}' is defined here")],
            )
        names = sorted(self.known)
        can = f" (earlier outputs here: {', '.join(names)})" if names and len(names) <= 12 else ""
        raise ArchcError(f"unknown output '{ref}' in {self.where}{suggest(head, names)}{can}", loc)


def nested_error(loc: Loc | None, what: str) -> ArchcError:
    return ArchcError(
        f"{what} inside a part that is one module (a merge's branch, a named residual, a repeat's or "
        "dense_connect's body, or a head): references are read by the items of the network's own level or of a "
        "block's body, and of named seqs there; make the part a named seq, or a block with `inputs:`",
        loc,
    )


def _find_name(raw, name: str, depth: int = 0) -> Loc | None:
    """Where ``name: NAME`` is written in ``raw`` (a class's raw items), or None."""
    if raw is None or depth > 64:
        return None
    if isinstance(raw, dict):
        if raw.get("name") == name:
            return loc_of(raw, "name")
        for v in raw.values():
            found = _find_name(v, name, depth + 1)
            if found is not None:
                return found
    elif isinstance(raw, list):
        for v in raw:
            found = _find_name(v, name, depth + 1)
            if found is not None:
                return found
    return None


def check_flow(seq, live: set[str], last_live: bool, what: str) -> None:
    """Every output of a class's own level is read: an item whose next item reads something else by name
    (``from:``) must be read by name itself, or it computes nothing the model returns (and Keras' functional model
    would leave it out); with ``outputs:`` the network's last item must be one of them (``last_live`` False)."""

    def is_live(t) -> bool:  # (a seq's output is its last item's: read by either name)
        if t.key in live:
            return True
        seq = t.kind == "seq" and (t.transparent or t.key is not None)
        return seq and bool(t.children) and is_live(t.children[-1])

    def reads_other(t) -> bool:
        if t.kind == "call":
            return bool(t.src) and bool(t.src[0])
        return bool(t.src) and (t.kind in ("concat", "add", "mul") or bool(t.src[0]))

    def walk(children, last_flows: bool) -> None:
        for i, t in enumerate(children):
            if t.kind == "seq" and (t.transparent or t.key is not None):  # (a named seq where references reach)
                walk(t.children, True)
            elif t.kind == "residual" and t.transparent:
                walk(t.children[0].children, True)
            if t.cond is not None or is_live(t):
                continue
            nxt = children[i + 1] if i + 1 < len(children) else None
            if nxt is not None and nxt.cond is None and reads_other(nxt):
                read = ", ".join(nxt.src[1:] if nxt.kind == "call" else nxt.src)
                raise ArchcError(
                    f"the output of '{t.name}' is never read: the next item, '{nxt.name}', reads {read} by name; "
                    f"read '{t.name}' by name too, or remove it",
                    t.loc,
                    notes=[(nxt.loc, f"'{nxt.name}' is here")],
                )
            if nxt is None and not last_flows:
                raise ArchcError(
                    f"the output of '{t.name}', the last item of {what}, is not one of its `outputs:` (the model "
                    "returns only those): name it there, or leave it out (a classifier in `top:`: build with "
                    "--set include_top=false)",
                    t.loc,
                )

    walk(seq.children, last_live)

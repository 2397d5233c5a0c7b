"""Lowering: a validated spec -> the IR.

Two steps. First every block definition used, and the network itself, becomes a
*template* (:class:`~archc.ir.TNode`): names assigned, defaults applied, expressions
parsed and checked against the names in scope, channel counts propagated
symbolically. Then the network template is *instantiated* with the network params:
every expression evaluated, every value range-checked, every shape computed, so the
instance tree is fully explicit.

The network level is ``network:`` then ``top:`` (the classifier), one sequence in one naming scope; the
built-in params ``include_top`` / ``pooling`` (``--set`` only) leave the top and the aux heads out and may end
the features with a global pool (:meth:`Lowerer.builtin_params`, :meth:`Lowerer.network_items`).
"""

from __future__ import annotations

import contextvars
import hashlib
import math
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

from . import init as init_mod
from . import ir, ops, refs
from .backends import reserved_layer_names
from .errors import ArchcError, Loc, closest, listing, suggest
from .expr import Expr, evaluate, is_expr, parse, substitute, sym, sym_add, sym_mul
from .loader import LDict, _mk_list, key_loc, loc_of, parse_yaml, read_text
from .provenance import NETWORK, ORIGINS, Origin, Tracer
from .spec import (
    BUILTIN_PARAMS,
    COMBINATORS,
    FEATURES_POOL,
    ITEM_TYPES,
    KINDS,
    RESERVED,
    CallItem,
    Spec,
    check_identifier,
    item_kind_and_attrs,
)
from .values import (
    MAX_CHANNELS,
    MAX_SPATIAL,
    boolean,
    chan,
    good_pos,
    is_bool,
    is_int,
    number,
    plain,
)

MAX_INSTANCE_NODES = 100_000  # layers and blocks after expansion (10,000 blocks fit; checked within about a second)
MAX_REPEAT = 50_000

GENERATED_ATTRS = frozenset({"loss_weights"})  # the generated model class's LOSS_WEIGHTS

INPUT_PATH = "<input>"  # the path references to the network's input record (ir.Node.src)
NETWORK_WHERE = "the network"  # the network level's _Ctx.where
WIDTH_PREFIX = "__w"  # names of running widths (ir.TNode.lets); spec names cannot start with '__'
MAX_WIDTH_SRC = 160  # a running width formula longer than this is given a name

# archc's defaults: each kind's from its registration (archc.ops), the combinators' here
BUILTIN_DEFAULTS = {"residual": {"when": True}, **{k: p.defaults for k, p in ops.PRIMITIVES.items() if p.defaults}}
MERGES = ("concat", "add", "mul")
BRANCHING = ("residual", *MERGES)  # combinators of several sequences, each independent of the others
RANKED = ("pair", "axes0", "scales", "size", "padding")  # attribute types whose lists have one entry per axis
# the combinators' instance builders (Lowerer methods); every other kind is the registry's (archc.ops)
COMBINATOR_METHODS = {
    "residual": "inst_residual",
    "mul": "inst_mul",
    "concat": "inst_merge",
    "add": "inst_merge",
    "repeat": "inst_loop",
    "dense_connect": "inst_loop",
    "call": "inst_call",
}

STDLIB_DIR = Path(__file__).parent / "stdlib"
STDLIB_PREFIX = "<archc stdlib>/"

# Recovering from errors (archc.pipeline reports every independent error of a spec, not only the first): a
# value that cannot be known because of an error already reported (a bad param, the width after a bad item) is
# UNKNOWN, a name no spec can write; anything computed from it is unknown too, and checks that would read it are
# skipped, so that one mistake gives one error.
UNKNOWN = Expr("__unknown")
ERROR_KIND = "error"  # the template node standing for an item whose error was reported: its output is unknown
INVALID_BLOCK, INVALID_KEY = "__invalid__", "invalid"


class Invalid:
    """Marks an item that failed validation (its error reported already) in the data the lowering goes on with;
    an object no YAML can write (:func:`invalid_item`). ``base``: what the item was (its kind or block), for
    the automatic names of the other items."""

    __slots__ = ("base",)

    def __init__(self, base: str):
        self.base = base


def invalid_item(raw_item) -> dict:
    """The item that stands for ``raw_item``, which failed validation: a block call of no block, keeping the
    item's name (a head may be attached at it) and what it was (its kind or block)."""
    base, name = INVALID_BLOCK, None
    if isinstance(raw_item, str):
        base = raw_item
    elif isinstance(raw_item, dict) and len(raw_item) == 1:
        ((base, attrs),) = raw_item.items()
        if isinstance(attrs, dict) and isinstance(attrs.get("name"), str):
            name = attrs["name"]
    base = base if isinstance(base, str) and base.isidentifier() else INVALID_BLOCK
    args: dict = {INVALID_KEY: Invalid(base)}
    if name is not None and name.isidentifier() and len(name) <= 64:
        args["name"] = name
    return {INVALID_BLOCK: args}


def _invalid(item) -> Invalid | None:
    if isinstance(item, CallItem):
        v = item.args.get(INVALID_KEY)
        return v if isinstance(v, Invalid) else None
    return None


class Recovered(Exception):  # noqa: N818 - not an error: the news that some were recorded
    """Raised up through the instances, recovering: an item failed (``errors``, found below it; none when an
    unknown value stopped it), so the output of every enclosing sequence is unknown."""

    def __init__(self, errors: list):
        super().__init__(len(errors))
        self.errors = errors


def camel(name: str) -> str:
    """``dense_layer`` -> ``DenseLayer``."""
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p) or "Model"


# How people write the words of model names (torchvision's classes and builders, keras.applications' names): the
# default class name of a spec without ``class_name:`` spells each word of its name this way
KNOWN_WORDS = {
    "alexnet": "AlexNet", "bn": "BN", "convnext": "ConvNeXt", "dcgan": "DCGAN", "deeplabv3": "DeepLabV3",
    "densenet": "DenseNet", "efficientnet": "EfficientNet", "fcn": "FCN", "fpn": "FPN", "googlenet": "GoogLeNet",
    "lraspp": "LRASPP", "mc": "MC", "mf": "MF", "gf": "GF", "mnasnet": "MNASNet", "mobilenet": "MobileNet",
    "regnet": "RegNet", "resnet": "ResNet", "resnext": "ResNeXt", "shufflenet": "ShuffleNet",
    "squeezenet": "SqueezeNet", "unet": "UNet", "vgg": "VGG", "vit": "ViT", "xception": "Xception",
}  # fmt: skip
_WORD = re.compile("|".join(sorted(map(re.escape, KNOWN_WORDS), key=len, reverse=True)) + r"|[a-z]+|[0-9]+|[A-Z]+")


def model_class_name(name: str) -> str:
    """The default class name of a model named ``name``, as people write it: ``resnet50`` -> ``ResNet50``,
    ``mobilenet_v2`` -> ``MobileNetV2``, ``vgg16_bn`` -> ``VGG16BN``; known words from :data:`KNOWN_WORDS`, others
    capitalized; an underscore kept only before a number after a word with one (``mc3_18`` -> ``MC3_18``)."""
    out, prev = "", ""
    for part in (p for p in name.split("_") if p):
        if part[0].isdigit() and any(ch.isdigit() for ch in prev):
            out += "_"
        prev = part
        out += "".join(KNOWN_WORDS.get(w.lower(), w[:1].upper() + w[1:]) for w in _WORD.findall(part))
    return out if out and not out[0].isdigit() else "Model" + out


def _item_name(item) -> str | None:
    kind, attrs = item_kind_and_attrs(item)
    name = attrs.get("name") if kind == "call" else attrs.name
    return name if isinstance(name, str) else None


def _item_base(item) -> str:
    """What an unnamed item is called: its kind, or its block's name."""
    kind, _ = item_kind_and_attrs(item)
    if _invalid(item) is not None:
        return _invalid(item).base
    return item.block if kind == "call" else kind


def _level_items(items, class_scope: bool):
    """The items whose names share one level: ``items`` and, recursively, those of transparent ones."""
    for item in items:
        yield item
        kind, attrs = item_kind_and_attrs(item)
        if kind == "call" or attrs.name is not None:
            continue
        if kind == "seq":
            yield from _level_items(attrs.body, class_scope)
        elif kind == "residual" and class_scope:
            yield from _level_items(attrs.body, True)
            yield from _level_items(attrs.shortcut, True)


class _Level:
    """One naming level: auto names (``conv``, or ``conv1``, ``conv2`` when there are several) and uniqueness."""

    def __init__(self, items: list, class_scope: bool):
        unnamed = [it for it in items if _item_name(it) is None]
        self.counts = Counter(_item_base(it) for it in items)
        self.seen: Counter = Counter()
        self.used: dict[str, Loc | None] = {}
        self.single_merge = class_scope and sum(_item_base(it) in MERGES for it in unnamed) == 1
        self.names = {_item_name(it) for it in items} | set(self.counts)  # what names here can be, at most

    def auto(self, item) -> str:
        base = _item_base(item)
        self.seen[base] += 1
        if _item_name(item) is not None:
            return _item_name(item)
        return base if self.counts[base] == 1 else f"{base}{self.seen[base]}"

    def claim(self, name: str, loc) -> None:
        if name in self.used:
            raise ArchcError(f"duplicate name '{name}' (also used at {self.used[name]})", loc)
        self.used[name] = loc


def _raw_attrs(raw_item):
    """The located attribute mapping of a raw item (or None for ``- relu``)."""
    if isinstance(raw_item, dict) and len(raw_item) == 1:
        return next(iter(raw_item.values()))
    return None


class _Ctx:
    """Where a template is being built: which names are in scope, for messages."""

    def __init__(self, symbols: set[str], where: str):
        self.symbols = symbols
        self.where = where


_STDLIB_CACHE: dict[tuple, list] = {}


def _parse_stdlib(paths) -> list:
    """The standard library's blocks: ``(name, validated block, raw mapping)``, in file order."""
    from pydantic import ValidationError

    from .spec import BlockDef as BlockSpec

    out: list = []
    where: dict = {}
    for path in paths:
        raw = parse_yaml(read_text(str(path)), f"{STDLIB_PREFIX}{path.name}")
        for name, rb in raw.get("blocks", {}).items():
            if name in where:  # one namespace for all families: a second definition is a bug here
                raise ArchcError(
                    f"stdlib block '{name}' is also defined at {getattr(where[name], 'loc', '?')}",
                    loc_of(raw["blocks"], name),
                )
            try:
                b = BlockSpec.model_validate(rb)
            except ValidationError as exc:  # a bug in archc itself, but say where
                raise ArchcError(f"stdlib block '{name}': {exc}", loc_of(raw["blocks"], name)) from None
            where[name] = rb
            out.append((name, b, rb))
    return out


class Lowerer:
    """``errors``: a list to record errors in and go on (every independent error of the spec is reported);
    None: the first error is raised."""

    def __init__(self, data: LDict, spec: Spec, file: str, errors: list | None = None, input_failed: bool = False):
        self.errors = errors
        self.input_failed = input_failed  # the input's problems are reported (validation): its shape is unknown
        self._unknowns = False  # whether an UNKNOWN value may be in a scope (ev's fast path while not)
        self._width_exprs: set[Expr] = set()  # expressions that read the running width (in_channels)
        self._eval_failed = False  # an expression could not be evaluated (see is_unknown)
        self._suspects: set[str] = set()  # the names such expressions read (see evaluated)
        self._unknown_names: dict[tuple, ArchcError] = {}  # (where, name) -> the error about that unknown param
        self.data = data
        self.spec = spec
        self.file = file
        self.raw_blocks: dict[str, tuple] = {}  # name -> (BlockDef spec, raw LDict, origin)
        self._load_stdlib()
        for name, b in spec.blocks.items():
            self.raw_blocks[name] = (b, data["blocks"][name], "spec")
        self.templates: dict[str, ir.BlockDef] = {}
        self.order: list[str] = []
        self._building: list[str] = []
        self.ref_scopes: list[refs.Scope] = []  # the names references can read, one per class being built
        self.live: list[dict] = []  # per class being instantiated: key -> (path, shape, loc) of each output made
        self._cond_depth = 0  # inside a part built only under a condition (its items cannot be references' targets)
        # the key prefix of the items being made where references reach (the network's or a block body's level,
        # through unnamed seqs: "", and inside named seqs there: "backbone."); None inside any other part
        self._ref_prefix: str | None = None
        self.head_tails: set[int] = set()  # a head's last item: it may resize to the network input's size
        self._flat_ids = 0
        self.flat_sizes: dict[str, set] = {}
        self.flat_locs: dict[str, Loc | None] = {}
        self.count = 0
        self._tsize: dict[int, int] = {}
        self._width_names: list[set] = []  # names of running widths in scope (see ir.TNode.lets)
        self._width_count = 0
        self.default_raw: dict[str, dict] = {}  # the spec's ``defaults:`` as written (kept symbolic at network level)
        self.fixed: set[str] = set()  # network params the lowering resolved at their values (see ir.Model.fixed)

    # ---------------------------------------------------------------- setup
    def _load_stdlib(self) -> None:
        paths = sorted(STDLIB_DIR.glob("*.yaml"))
        key = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
        if key not in _STDLIB_CACHE:  # parsed once per process (read only afterwards), again when a file changes
            _STDLIB_CACHE.clear()
            _STDLIB_CACHE[key] = _parse_stdlib(paths)
        for name, b, rb in _STDLIB_CACHE[key]:
            self.raw_blocks[name] = (b, rb, "stdlib")

    def item_choices(self) -> dict:
        """What an item may be, by category (for the message about an unknown one)."""
        from .spec import COMBINATORS, PRIMITIVES

        own = [n for n, (_, _, where) in self.raw_blocks.items() if where != "stdlib"]
        std = [n for n, (_, _, where) in self.raw_blocks.items() if where == "stdlib"]
        return {"primitives": list(PRIMITIVES), "combinators": list(COMBINATORS), "blocks": own, "stdlib blocks": std}

    def loc(self, container, key) -> Loc | None:
        return loc_of(container, key) if container is not None else None

    def check_name(self, name: str, loc, what: str) -> None:
        why = check_identifier(name, variable=what not in ("name", "head name", "model name"))
        if why is None and name in RESERVED:
            why = "is a word of the spec language"
        if why is None and what in ("name", "head name"):
            why = reserved_layer_names().get(name)  # a backend's own (torch.nn.Module's attributes)
        if why is None and what == "name" and name in GENERATED_ATTRS:
            why = "would shadow the generated model's loss_weights"
        if why:
            raise ArchcError(f"{what} '{name}' {why}", loc)

    def eval_param_scope(self) -> dict:
        scope: dict = {}
        raw = self.data.get("params") or {}
        for name, v in self.spec.params.items():
            try:
                self.check_name(name, key_loc(raw, name), "param name")
                scope[name] = self.literal(v, scope, loc_of(raw, name))
            except ArchcError as exc:
                self.record(exc)
                scope[name] = self.unknown()
        return scope

    def record(self, exc: ArchcError) -> None:
        """Recovering: keep ``exc`` and go on; otherwise raise it."""
        if self.errors is None:
            raise exc
        self.errors.append(exc)

    def unknown(self) -> Expr:
        """UNKNOWN, about to be put in a scope."""
        self._unknowns = True
        return UNKNOWN

    def is_unknown(self, e: Expr, scope: dict) -> bool:
        """Whether ``e`` reads a value that is unknown because of an error reported already (recovering)."""
        if not self._unknowns:
            return False
        if scope.get("in_channels") is UNKNOWN and (e in self._width_exprs or self._eval_failed):
            # after an item that failed: the running width; and after an expression that could not be evaluated
            # (a param or argument of the wrong type, say), every expression, as it may read the same bad value
            return True
        return any(n == UNKNOWN.src or scope.get(n) is UNKNOWN for n in e.names())

    def literal(self, v, scope, loc):
        """Evaluate a value written at network level (param value, default) to plain data."""
        if is_expr(v):
            e = parse(v, loc)
            return UNKNOWN if self.is_unknown(e, scope) else self.evaluated(e, scope, loc)
        if isinstance(v, list):
            out = [self.literal(x, scope, loc) for x in v]
            return UNKNOWN if self._unknowns and any(x is UNKNOWN for x in out) else out
        if isinstance(v, dict):
            raise ArchcError("a mapping is not allowed here", loc)
        return v

    # ---------------------------------------------------------------- templates
    def expr_or_literal(self, v, ctx: _Ctx, in_ch: Expr, loc):
        """Parse ``$...`` strings, checking names; ``in_channels`` becomes the current input width."""
        if isinstance(v, list):
            return tuple(self.expr_or_literal(x, ctx, in_ch, loc) for x in v)
        if not is_expr(v):
            return v
        e = parse(v, loc)
        for n in sorted(e.names()):
            if n != "in_channels" and n not in ctx.symbols:
                first = self._unknown_names.get((ctx.where, n)) if self.errors is not None else None
                if first is not None:  # recovering: one error for a missing param, its other uses as notes
                    if loc != first.loc and (loc, f"'{n}' is used here too") not in first.notes:
                        first.note(loc, f"'{n}' is used here too")
                    raise Recovered([])
                exc = ArchcError(
                    f"unknown param '{n}' in {v} ({ctx.where} has: {', '.join(sorted(ctx.symbols)) or 'no params'})"
                    f"{suggest(n, ctx.symbols | {'in_channels'})}",
                    loc,
                )
                self._unknown_names[(ctx.where, n)] = exc
                raise exc
        if "in_channels" not in e.names():
            return e
        e = substitute(e, {"in_channels": in_ch})
        if self.errors is not None:
            self._width_exprs.add(e)  # unknown after an item that failed (is_unknown)
        return e

    def template_seq(
        self, items, raw_items, in_ch: Expr, ctx: _Ctx, name: str, loc, level: _Level | None = None,
        class_scope: bool = False,
    ) -> ir.TNode:  # fmt: skip
        """A sequence; ``level`` is the naming level its items join (a new one unless the seq is transparent).

        ``class_scope``: the items stand directly in a block body or the network (a class body in
        generated code), where an unnamed residual or a single unnamed merge adds no level.
        """
        if level is None:
            level = _Level(list(_level_items(items, class_scope)), class_scope)
        nodes = []
        lets = []
        opaque = []
        ch = in_ch
        bound = set(self._width_names[-1]) if self._width_names else set()
        self._width_names.append(bound)
        try:
            for i, item in enumerate(items):
                raw_item = raw_items[i] if raw_items is not None and i < len(raw_items) else None
                item_loc = self.loc(raw_items, i) or loc
                node = self.template_part(item, raw_item, ch, ctx, level, item_loc, class_scope)
                out = node.out_ch
                if any(n.startswith(WIDTH_PREFIX) and n not in bound for n in out.names()):
                    # the part's width formula uses names of its own: its output width is a name here
                    out = self._width_name(bound)
                    opaque.append((out.src, node.out_ch))
                    node = replace(node, out_ch=out)
                    lets.append((i + 1, out.src, None))
                if self._ref_prefix is not None and self.ref_scopes:  # where references reach: they may read it
                    key = self._ref_prefix + node.name
                    node = replace(node, key=key)
                    conditional = node.cond is not None or self._cond_depth > 0
                    self.ref_scopes[-1].define(key, out, item_loc, conditional)
                nodes.append(node)
                ch = out if node.cond is None else _ifexp(node.cond, out, ch)
                if len(ch.src) > MAX_WIDTH_SRC:  # name the running width: the next formulas refer to it
                    sym = self._width_name(bound)
                    lets.append((i + 1, sym.src, ch))
                    ch = sym
        finally:
            self._width_names.pop()
        return ir.TNode("seq", name, (), tuple(nodes), None, in_ch, ch, loc, lets=tuple(lets), opaque=tuple(opaque))

    def template_part(self, item, raw_item, in_ch: Expr, ctx: _Ctx, level: _Level, loc, class_scope: bool):
        """An item's template, its name claimed in ``level``. Recovering, an item whose error is recorded (or was,
        by the validation: :func:`invalid_item`), its name's included, becomes an error node, whose output is
        unknown."""
        auto = level.auto(item)
        if _invalid(item) is not None:
            node = ir.TNode(ERROR_KIND, auto, (), (), None, in_ch, self.unknown(), loc)
        else:
            try:
                node = self.template_item(item, raw_item, in_ch, ctx, auto, loc, level, class_scope)
            except ArchcError as exc:
                self.record(exc)
                node = ir.TNode(ERROR_KIND, auto, (), (), None, in_ch, self.unknown(), loc)
            except Recovered as r:  # its error was reported at another item (an unknown param: used here too)
                self.errors.extend(r.errors)
                node = ir.TNode(ERROR_KIND, auto, (), (), None, in_ch, self.unknown(), loc)
        if node.kind == ERROR_KIND and _item_name(item) is None:
            return node  # an automatic name, which the item might not have had as written (`- fire: 0`)
        try:
            level.claim(node.name, loc)
        except ArchcError as exc:  # a second item of that name: often a copy, whose shapes would only add noise
            self.record(exc)
            node = ir.TNode(ERROR_KIND, node.name, (), (), None, in_ch, self.unknown(), loc)
        return node

    def _width_name(self, bound: set) -> Expr:
        self._width_count += 1
        name = f"{WIDTH_PREFIX}{self._width_count}"
        bound.add(name)
        return Expr(name)

    def template_item(
        self, item, raw_item, in_ch: Expr, ctx: _Ctx, auto: str, loc, level: _Level, class_scope: bool
    ) -> ir.TNode:
        """An item's template; a ``from:`` resolved (:mod:`archc.refs`): the item reads the named output."""
        kind, attrs = item_kind_and_attrs(item)
        raw = _raw_attrs(raw_item)
        raw = raw if isinstance(raw, dict) else None
        if kind == "call":
            return self.template_call(item, raw, in_ch, ctx, auto, loc, class_scope)
        targets = []
        if attrs.from_ is not None:
            floc = self.loc(raw, "from") or loc
            scope = self.ref_scope(class_scope, floc, f"'from: {attrs.from_}'")
            if isinstance(attrs.from_, list):
                raw_from = raw.get("from") if raw is not None else None
                targets = [
                    scope.resolve(r, self.loc(raw_from, j) or floc, prefix=self._ref_prefix or "")
                    for j, r in enumerate(attrs.from_)
                ]
            else:
                targets = [scope.resolve(attrs.from_, floc, attrs.name, prefix=self._ref_prefix or "")]
                in_ch = targets[0].width
        conditional = attrs.if_ is not None
        like = getattr(attrs, "like", None) if kind == "upsample" else None
        if (targets or like is not None) and (conditional or self._cond_depth) and self._ref_prefix:
            raise ArchcError(
                "an item under an 'if:' inside a named seq cannot read an output by name (from: / like:): the seq "
                "is one module whose forward calls its items in turn; move the item to the network's (or the "
                "block's) own level, or make the part a block",
                self.loc(raw, "if") or loc,
            )
        self._cond_depth += conditional
        try:
            node = self._template_item(kind, attrs, raw, raw_item, in_ch, ctx, auto, loc, level, class_scope, targets)
        finally:
            self._cond_depth -= conditional
        if targets:
            node = replace(node, src=tuple(t.key for t in targets), src_ch=tuple(t.width for t in targets))
        return node

    def ref_scope(self, class_scope: bool, loc, what: str) -> refs.Scope:
        """The names a reference written here can read; an error where none can be read."""
        if self._ref_prefix is None or not self.ref_scopes:
            raise refs.nested_error(loc, what)
        return self.ref_scopes[-1]

    def nested(self, prefix: str | None, build):
        """``build()`` with references reaching items under key ``prefix`` (None: nowhere: a part built as one
        module, a merge's branch, a loop's body, a head)."""
        outer, self._ref_prefix = self._ref_prefix, prefix
        try:
            return build()
        finally:
            self._ref_prefix = outer

    def _template_item(
        self, kind, attrs, raw, raw_item, in_ch: Expr, ctx: _Ctx, auto, loc, level: _Level, class_scope: bool, targets
    ) -> ir.TNode:
        name = attrs.name or auto
        self.check_name(name, self.loc(raw, "name") or loc, "name")
        cond = None
        if attrs.if_ is not None:
            cond = self.expr_or_literal(attrs.if_, ctx, in_ch, self.loc(raw, "if") or loc)
            cond = cond if isinstance(cond, Expr) else sym(bool(cond))
        locs = {}

        def x(key):
            locs[key] = self.loc(raw, key) if raw is not None and key in raw else None
            return self.expr_or_literal(self.attr_value(kind, attrs, key, ctx), ctx, in_ch, locs[key] or loc)

        def mk(k, a, ch_out, children=(), transparent=False):
            return ir.TNode(
                k, name, a, tuple(children), cond, in_ch, ch_out, loc, attr_locs=tuple(locs.items()),
                transparent=transparent,
            )  # fmt: skip

        if kind == "flatten":  # its width needs the spatial size its instances see: a placeholder until then
            self._flat_ids += 1
            hw = f"_hw{self._flat_ids}"
            self.flat_locs[hw] = loc
            return mk(kind, (("hw", Expr(hw)),), sym_mul(in_ch, Expr(hw)))
        if kind in ops.PRIMITIVES:
            prim = ops.get(kind)
            a = {attr.name: x(attr.name) for attr in prim.attrs}
            for attr in prim.attrs:
                if attr.type == "ref" and a[attr.name] is not None:  # a name: resolved to its output's key
                    v, where = a[attr.name], locs[attr.name] or loc
                    if not isinstance(v, str):
                        raise ArchcError(f"{attr.name} must be the name of an earlier output, got {v!r}", where)
                    scope = self.ref_scope(class_scope, where, f"'{attr.name}: {v}'")
                    a[attr.name] = scope.resolve(v, where, size_only=True, prefix=self._ref_prefix or "").key
            if prim.fill is not None:
                a = prim.fill(a)
            node = mk(kind, tuple(a.items()), prim.width(in_ch, a))
            return replace(node, init=self.item_init(kind, attrs, raw, loc)) if kind in init_mod.KINDS else node
        if kind == "seq":
            transparent = attrs.name is None
            prefix = self._ref_prefix
            if not transparent and prefix is not None:  # its items are reached by a dotted path: seq.item
                prefix = f"{prefix}{name}."
            body = self.nested(
                prefix,
                lambda: self.template_seq(
                    attrs.body, self.loc_list(raw, "body"), in_ch, ctx, name, loc,
                    level if transparent else None, class_scope and transparent,
                ),
            )  # fmt: skip
            return replace(body, cond=cond, transparent=transparent)
        if kind == "residual":
            transparent = attrs.name is None and class_scope
            when = x("when")
            parts = []
            for key in ("body", "shortcut"):
                self._cond_depth += key == "shortcut"  # (the shortcut is built only `when` it holds)
                try:
                    parts.append(
                        self.nested(
                            self._ref_prefix if transparent else None,
                            lambda key=key: self.template_seq(
                                getattr(attrs, key), self.loc_list(raw, key), in_ch, ctx, key,
                                self.loc(raw, key) or loc, level if transparent else None,
                                class_scope and transparent,
                            ),
                        )
                    )  # fmt: skip
                finally:
                    self._cond_depth -= key == "shortcut"
            if not transparent:  # a module of its own (Residual(body, shortcut)): a part of one item is that item
                parts = [_one_level(p) for p in parts]
            return mk(kind, (("when", when),), parts[0].out_ch, parts, transparent)
        if kind in MERGES and targets:  # the named outputs, merged: no branches
            widths = [t.width for t in targets]
            return mk(kind, (), sym_add(*widths) if kind == "concat" else widths[0])
        if kind in MERGES:
            raw_br = self.loc_list(raw, "branches") if raw is not None else None
            if raw_br is None and isinstance(_raw_attrs(raw_item), list):
                raw_br = _raw_attrs(raw_item)
            branches = []
            transparent = attrs.name is None and class_scope and level.single_merge
            names = _branch_names(attrs.branches, level if transparent else None)
            for j, br in enumerate(attrs.branches):
                rb = raw_br[j] if raw_br is not None and j < len(raw_br) else None
                bloc = self.loc(raw_br, j) or loc
                bt = _one_level(self.nested(None, lambda br=br, rb=rb, j=j, bloc=bloc: self.template_seq(
                    br, rb, in_ch, ctx, f"branch{j + 1}", bloc)))  # fmt: skip
                if bt.single and names[j] is not None:  # a branch of one named item: that item, by its name
                    bt = replace(bt, name=names[j])
                branches.append(bt)
                if transparent:  # the branches' names join the enclosing level
                    level.claim(bt.name, bloc)
            out = sym_add(*[b.out_ch for b in branches]) if kind == "concat" else branches[0].out_ch
            return mk(kind, (), out, branches, transparent)
        if kind in ("repeat", "dense_connect"):
            count_key = "times" if kind == "repeat" else "layers"
            count = x(count_key)
            body_in = Expr("in_channels")
            body = self.nested(
                None, lambda: self.template_seq(attrs.body, self.loc_list(raw, "body"), body_in, ctx, "body", loc)
            )
            body = _one_level(body)
            b = body.out_ch
            if kind == "dense_connect" and any(n == "in_channels" or n.startswith(WIDTH_PREFIX) for n in b.names()):
                raise ArchcError(
                    f"the output width of this dense_connect body ({b}) depends on its input width; each layer "
                    "must add a width fixed by params (its growth rate), e.g. end the body with a conv of $growth",
                    loc,
                )
            if kind == "dense_connect":
                out = sym_add(in_ch, sym_mul(count, b))
            else:  # the width after the first iteration; the instances check that later iterations keep it
                out = in_ch if b == body_in else _ifexp(_gt0(count), substitute(b, {"in_channels": in_ch}), in_ch)
            return mk(kind, ((count_key, count),), out, [body])
        raise ArchcError(f"unknown kind '{kind}'", loc)  # pragma: no cover - the spec models prevent it

    def loc_list(self, raw, key):
        if raw is None:
            return None
        v = raw.get(key) if isinstance(raw, dict) else None
        return v if isinstance(v, list) else None

    def attr_value(self, kind: str, attrs, key: str, ctx: _Ctx | None = None):
        """An attribute after defaults: written > spec ``defaults`` > archc's defaults."""
        if key in attrs.model_fields_set:
            return getattr(attrs, key)
        spec_defaults = self.defaults.get(kind, {})
        if key in spec_defaults:
            return self.spec_default(kind, key, ctx)
        v = getattr(attrs, key)
        if v is None:
            v = BUILTIN_DEFAULTS.get(kind, {}).get(key)
        return v

    def spec_default(self, kind: str, key: str, ctx: _Ctx | None):
        """A spec ``defaults:`` value: at network level as written (an expression over the network params stays
        one, so generated code can take the params as arguments); inside a block its value, and the params it
        reads are fixed (a block's class does not see the network's params)."""
        raw = self.default_raw.get(kind, {}).get(key)
        names = _param_names(raw)
        if names and ctx is not None and ctx.where == NETWORK_WHERE:
            return raw
        self.fixed |= names
        return self.defaults[kind][key]

    def template_call(
        self, item: CallItem, raw, in_ch: Expr, ctx: _Ctx, auto: str, loc, class_scope: bool = False
    ) -> ir.TNode:
        block = item.block
        if block not in self.raw_blocks:
            hint = suggest(block, list(self.raw_blocks) + list(KINDS))  # a close name, or else every choice
            raise ArchcError(f"unknown block or kind '{block}'{hint or listing(self.item_choices())}", loc)
        bdef = self.block_template(block, loc)
        args = dict(item.args)
        name = args.pop("name", None) or auto
        if not isinstance(name, str):
            raise ArchcError("'name' must be a string", self.loc(raw, "name") or loc)
        self.check_name(name, self.loc(raw, "name") or loc, "name")
        src, src_ch = self.call_inputs(bdef, args.pop("from", None), raw, loc, class_scope, name)
        if src and src[0]:
            in_ch = src_ch[0]
        src_ch = tuple(in_ch if w is None else w for w in src_ch)
        cond_raw = args.pop("if", None)
        cond = None
        if cond_raw is not None:
            cond = self.expr_or_literal(cond_raw, ctx, in_ch, self.loc(raw, "if") or loc)
            cond = cond if isinstance(cond, Expr) else sym(bool(cond))
        params = dict(bdef.params)
        for k in args:
            if k not in params:
                raise ArchcError(
                    f"block '{block}' has no param '{k}' (its params: {', '.join(params) or 'none'})"
                    f"{suggest(k, params)}",
                    key_loc(raw, k) if raw is not None else loc,
                )
        values = {}
        for k, default in params.items():
            if k in args:
                values[k] = self.expr_or_literal(args[k], ctx, in_ch, self.loc(raw, k) or loc)
            elif k in self.defaults.get(block, {}):
                v = self.spec_default(block, k, ctx)
                written = v is not self.defaults[block][k]  # an expression over the network params
                values[k] = (
                    self.expr_or_literal(v, ctx, in_ch, key_loc(self.data.get("defaults"), block)) if written else v
                )
            elif default is None:
                raise ArchcError(f"block '{block}' needs param '{k}'", loc)
            else:
                values[k] = default
        widths = {f"{n}_channels": w for n, w in zip(bdef.inputs[1:], src_ch[1:])}
        out = substitute(bdef.out_ch, {**values, "in_channels": in_ch, **widths})
        alocs = tuple((k, self.loc(raw, k)) for k in args if raw is not None and k in raw)
        if self._reached_inside(name):
            why = self.why_closed(bdef, src, cond)
            if why is None:
                return self.open_call(bdef, values, in_ch, ctx, name, loc)
            self.ref_scopes[-1].closed[self._ref_prefix + name] = why
        node = ir.TNode("call", name, tuple(values.items()), (), cond, in_ch, out, loc, block, alocs)
        return replace(node, src=src, src_ch=src_ch) if src else node

    def _reached_inside(self, name: str) -> bool:
        """Whether some reference's dotted path goes through an item called ``name`` (``layer1.first``), where
        references can reach (a name's level is resolved later: a call of that name elsewhere is opened too)."""
        if self._ref_prefix is None or not self.ref_scopes:
            return False
        if not hasattr(self, "_dotted_refs"):
            found: set[str] = set()
            _collect_refs(self.data, found)
            found.update(r for r in self.spec.outputs.values() if isinstance(r, str))
            self._dotted_refs = {r for r in found if "." in r}
        return any(f".{name}." in f".{r}" for r in self._dotted_refs)

    def why_closed(self, bdef: ir.BlockDef, src, cond) -> str | None:
        """Why a reference cannot reach inside a call of ``bdef`` (None: it can)."""
        if bdef.inputs or src:
            return "its block names its inputs (`inputs:`), or the call reads an output by name (`from:`)"
        if cond is not None:
            return "it has an 'if:'"
        level = list(_level_parts(bdef.body))
        if level:
            return (
                f"block '{bdef.name}' has an unnamed {level[0].kind} at its own level (at {level[0].loc}), whose "
                "items are attributes of the block's class: name it"
            )
        return None

    def open_call(self, bdef: ir.BlockDef, values: dict, in_ch: Expr, ctx: _Ctx, name: str, loc) -> ir.TNode:
        """A block call references reach inside (``layer1.first``), made a named seq of the block's body: its
        items are built with the block's params bound to the call's arguments (``binds``), their names (and so
        their weights' names) as in the block's class, each reachable by a dotted path."""
        bspec, raw, _ = self.raw_blocks[bdef.name]
        inner = _Ctx(ctx.symbols | {p for p, _ in bdef.params}, f"block '{bdef.name}'")
        raw_body = raw.get("body") if isinstance(raw, dict) else None
        prefix = f"{self._ref_prefix}{name}."
        scope = self.ref_scopes[-1]
        before = set(scope.known)
        body = self.nested(
            prefix,
            lambda: self.template_seq(bspec.body, raw_body, in_ch, inner, name, loc, None, class_scope=True),
        )
        for key in set(scope.known) - before:  # the caller's items read these widths in its own terms
            t = scope.known[key]
            scope.known[key] = replace(t, width=substitute(t.width, values))
        out = substitute(body.out_ch, values)
        return replace(body, out_ch=out, binds=tuple(values.items()))

    def call_inputs(self, bdef: ir.BlockDef, given, raw, loc, class_scope: bool, name: str):
        """A call's ``from:`` (a name: the main input's; ``{input: name, ...}``: by the block's input names), as
        (keys, widths) aligned with the block's inputs, '' where the main input is the previous item's output; ((),
        ()) when the call reads only the previous item's output."""
        inputs = bdef.inputs or ("",)
        floc = self.loc(raw, "from") or loc
        if given is None:
            given = {}
        elif isinstance(given, str):
            given = {inputs[0]: given}
        elif not isinstance(given, dict):
            raise ArchcError(
                f"'from' of a block call is the name of an earlier output (the block's main input) or a mapping "
                f"{{input: name}} (block '{bdef.name}' has inputs: {', '.join(i for i in inputs if i) or 'one'}); "
                f"got {given!r}",
                floc,
            )
        raw_from = raw.get("from") if isinstance(raw, dict) else None
        for k in given:
            if k not in inputs:
                named = ", ".join(i for i in inputs if i)
                raise ArchcError(
                    f"block '{bdef.name}' has no input '{k}'"
                    + (f" (its inputs: {named})" if named else " (it has one input: give `from: NAME`)")
                    + suggest(k, [i for i in inputs if i]),
                    key_loc(raw_from, k) if isinstance(raw_from, dict) else floc,
                )
        keys, widths = [], []
        for i, inp in enumerate(inputs):
            ref = given.get(inp)
            if ref is None:
                if i == 0:
                    keys.append("")
                    widths.append(None)
                    continue
                raise ArchcError(
                    f"block '{bdef.name}' needs its input '{inp}': give it as `from: {{{inp}: NAME}}` (NAME an "
                    "earlier output)",
                    floc,
                    notes=[(bdef.loc, f"block '{bdef.name}' is defined here")],
                )
            where = (self.loc(raw_from, inp) if isinstance(raw_from, dict) else None) or floc
            if not isinstance(ref, str):
                raise ArchcError(f"input '{inp}' must be the name of an earlier output, got {ref!r}", where)
            t = self.ref_scope(class_scope, where, f"'from: {ref}'").resolve(
                ref, where, name, prefix=self._ref_prefix or ""
            )
            keys.append(t.key)
            widths.append(t.width)
        if not any(keys):
            return (), ()
        return tuple(keys), tuple(widths)

    def block_template(self, name: str, use_loc) -> ir.BlockDef:
        if name in self.templates:
            return self.templates[name]
        if name in self._building:
            chain = " -> ".join(self._building[self._building.index(name) :] + [name])
            raise ArchcError(f"block '{name}' uses itself: {chain}", use_loc)
        bspec, raw, origin = self.raw_blocks[name]
        bloc = getattr(raw, "loc", None)
        self.check_name(name, bloc, "block name")
        for p in bspec.params:
            self.check_name(p, key_loc(raw.get("params"), p) if isinstance(raw, dict) else bloc, "block param")
        inputs = tuple(bspec.inputs or ())
        scope = self.block_ref_scope(name, bspec, raw, inputs)
        self._building.append(name)
        outer_widths, self._width_names = self._width_names, []  # a block's widths are its own
        outer_cond, self._cond_depth = self._cond_depth, 0
        self.ref_scopes.append(scope)
        try:
            ctx = _Ctx(set(bspec.params) | {f"{i}_channels" for i in inputs[1:]}, f"block '{name}'")
            raw_body = raw.get("body") if isinstance(raw, dict) else None
            body = self.nested(
                "",
                lambda: self.template_seq(bspec.body, raw_body, Expr("in_channels"), ctx, name, bloc, class_scope=True),
            )
            refs.check_flow(body, scope.used, True, f"block '{name}'")
        finally:
            self._building.pop()
            self._width_names = outer_widths
            self._cond_depth = outer_cond
            self.ref_scopes.pop()
        params = []
        for p, d in bspec.params.items():
            if isinstance(d, (dict,)) or is_expr(d):
                raise ArchcError(f"default of param '{p}' must be a plain value", bloc)
            params.append((p, tuple(d) if isinstance(d, list) else d))
        bdef = ir.BlockDef(name, bspec.doc, tuple(params), body, body.out_ch, bloc, inputs)
        self.templates[name] = bdef
        self.order.append(name)
        return bdef

    def block_ref_scope(self, name: str, bspec, raw, inputs: tuple[str, ...]) -> refs.Scope:
        """What a block's body can read by name: its inputs (``inputs:``), then its items as they are made."""
        raw_inputs = raw.get("inputs") if isinstance(raw, dict) else None
        targets = {}
        for i, inp in enumerate(inputs):
            iloc = (loc_of(raw_inputs, i) if isinstance(raw_inputs, list) else None) or getattr(raw, "loc", None)
            self.check_name(inp, iloc, "block input")
            if inp in targets or inp in bspec.params or f"{inp}_channels" in bspec.params:
                clash = "another input" if inp in targets else "a param"
                raise ArchcError(f"block input '{inp}' has the name of {clash} of block '{name}'", iloc)
            width = Expr("in_channels") if i == 0 else Expr(f"{inp}_channels")
            what = f"the main input '{inp}'" if i == 0 else f"input '{inp}'"
            targets[inp] = refs.Target(inp, width, iloc, what)
        raw_body = raw.get("body") if isinstance(raw, dict) else None
        return refs.Scope(f"block '{name}'", targets, raw_body)

    # ---------------------------------------------------------------- instances
    def inst_seq(self, t: ir.TNode, scope: dict, shape, path: str) -> ir.Seq:
        nodes = []
        cur = shape
        lets = {}
        for i, name, _ in t.lets:
            lets.setdefault(i, []).append(name)
        if t.binds:  # an opened block call: its params, evaluated where it is called
            bound = {p: self.ev(v, scope, t.loc) if isinstance(v, (Expr, tuple)) else v for p, v in t.binds}
            scope = {**scope, **bound}
        elif lets:
            scope = dict(scope)
        for i, child in enumerate(t.children):
            for name in lets.get(i, ()):
                scope[name] = cur[-1]  # a running width's value is the width the instance has there
            src_in = cur
            if child.src and child.src[0] and child.kind not in MERGES:  # it reads a named output
                src_in = self.live[-1][child.src[0]][1]
            try:
                n = self.inst(child, scope, src_in, path if t.single else _join(path, child.name), path)
            except ArchcError as exc:
                if not exc.explained:
                    self.explain(exc, child, scope)
                if self.errors is None:
                    raise
                raise self.rest_unknown(t, i + 1, scope, [exc]) from None
            except Recovered as r:  # a branching child is checked again whole: its other branches too
                raise self.rest_unknown(t, i if child.kind in BRANCHING else i + 1, scope, r.errors) from None
            if n is not None:
                if child.src:
                    n = replace(n, src=tuple(self.live[-1][k][0] if k else "" for k in child.src))
                if child.key is not None and self.live:
                    self.live[-1][child.key] = (n.path, n.out_shape, child.loc)
                nodes.append(n)
                cur = n.out_shape
        return ir.Seq(name=t.name, path=path, loc=t.loc, in_shape=shape, out_shape=cur, children=tuple(nodes))

    def rest_unknown(self, t: ir.TNode, start: int, scope: dict, errors: list) -> Recovered:
        """Recovering from an error in child ``start - 1`` of sequence ``t`` (``errors``: what it found): the
        children from ``start`` on are checked as far as they can be without their input (its shape, its width);
        returns the :class:`Recovered` to raise, with every error found."""
        scope = {**scope, "in_channels": self.unknown(), **{name: UNKNOWN for _, name, _ in t.lets}}
        for child in t.children[start:]:
            self.check_unknown(child, scope, errors)
        return Recovered(errors)

    def check_unknown(self, t: ir.TNode, scope: dict, errors: list) -> None:
        """Recovering: the checks of ``t`` that need neither its input's shape nor its width (``in_channels``
        is UNKNOWN in ``scope``): its values, those of the items in it and of the blocks it calls. Only checks
        that the instance would make too, with the same values, so an item that passed passes again (an error
        found twice is reported once). Errors are appended to ``errors``."""
        try:
            self._check_unknown(t, scope, errors)
        except ArchcError as exc:
            if not exc.explained:
                self.explain(exc, t, scope)
            # an error inside a stdlib block with no user-written cause found may be the reported one's sequel
            # (values computed in the block from the same bad param): only one with a place of the user's is kept
            if exc.primary_moved or (exc.loc is not None and not exc.loc.file.startswith(STDLIB_PREFIX)):
                errors.append(exc)
        except Recovered as r:
            errors.extend(r.errors)

    def _check_unknown(self, t: ir.TNode, scope: dict, errors: list) -> None:
        self.count += 1
        if self.count > MAX_INSTANCE_NODES or t.kind == ERROR_KIND:
            return  # (past the bound, the instances have said so)
        if t.cond is not None:
            cond = self.ev_known(t.cond, scope, t.loc)
            if cond is UNKNOWN or not _as_bool(cond, t.loc):
                return
        if t.kind == "seq":
            if t.lets:
                scope = {**scope, **{name: UNKNOWN for _, name, _ in t.lets}}
            for child in t.children:
                self.check_unknown(child, scope, errors)
            return
        al = t.attr_loc
        a = {k: self.ev_known(v, scope, al(k)) if isinstance(v, (Expr, tuple)) else v for k, v in t.attrs if k != "hw"}
        if t.kind in ops.PRIMITIVES:
            for attr in ops.get(t.kind).attrs:
                v = a.get(attr.name)
                if v is UNKNOWN or (isinstance(v, (list, tuple)) and attr.type in RANKED):
                    continue  # (a list's length is checked against the rank of the input: unknown)
                attr.check(v, al(attr.name), 1)
        elif t.kind == "residual":
            when = a["when"] if a["when"] is UNKNOWN else boolean(a["when"], "when", al("when"))
            self.check_unknown(t.children[0], scope, errors)
            if when is True:
                self.check_unknown(t.children[1], scope, errors)
        elif t.kind in MERGES:
            for branch in t.children:
                self.check_unknown(branch, scope, errors)
        elif t.kind in ("repeat", "dense_connect"):
            n = a["times" if t.kind == "repeat" else "layers"]
            if n is not UNKNOWN and self.loop_count(t, n) > 0:
                self.check_unknown(t.children[0], {**scope, "in_channels": UNKNOWN}, errors)
        elif t.kind == "call":
            written = {k for k, where in t.attr_locs if where is not None}
            for p, v in a.items():
                if v is not UNKNOWN and p in written:  # (a default is one value for every call: checked at the first)
                    plain(v, f"param '{p}' of block '{t.block}'", al(p))
            inner = {**a, "in_channels": UNKNOWN, ORIGINS: (t, scope)}
            found: list = []
            self.check_unknown(self.templates[t.block].body, inner, found)
            errors.extend(_at_call_site(exc, t) for exc in found)

    def evaluated(self, e: Expr, scope: dict, loc):
        """``e`` evaluated. Recovering, an expression that cannot be evaluated makes the names it read suspect (a
        param or argument of the wrong type, say): another that reads one of them and fails too is UNKNOWN, not a
        second error (a param of the wrong type fails at each use)."""
        try:
            return evaluate(e, scope, loc)
        except ArchcError:
            if self.errors is None:
                raise
            self._unknowns = self._eval_failed = True
            names = e.names()
            if names & self._suspects:
                return UNKNOWN
            self._suspects |= names
            raise

    def ev_known(self, v, scope, loc):
        """:meth:`ev`, checking past an error: an expression that cannot be evaluated is UNKNOWN, not an error (the
        one reported may be its cause: a param or argument of the wrong type that every use fails on)."""
        try:
            return self.ev(v, scope, loc)
        except ArchcError:
            return UNKNOWN

    def explain(self, exc: ArchcError, t: ir.TNode, scope: dict) -> None:
        """A value check of ``t`` failed: point ``exc`` at where the bad value was written."""
        exc.explained = True
        key = exc.attr
        if key is None:  # a check that does not say which attribute: the one it is located at and names
            key = next(
                (k for k, v in t.attrs if isinstance(v, (Expr, tuple)) and exc.loc == t.attr_loc(k)
                 and exc.message.startswith((f"{k} ", f"{k}="))),
                None,
            )  # fmt: skip
            if key is None:
                return
        if key == "if":
            v = t.cond
        elif key in (k for k, _ in t.attrs):
            v = t.attr(key)
        else:
            return
        try:
            value = self.ev(v, scope, t.loc)
        except ArchcError:
            return
        tracer = Tracer(self)
        try:
            tracer.explain(exc, tracer.use_origin(t, key, value, scope))
        except Exception:  # noqa: BLE001 - finding the cause must never hide the error itself
            pass

    def ev(self, v, scope, loc):
        """The value of ``v`` in ``scope``; recovering, UNKNOWN if it reads an unknown value."""
        if isinstance(v, Expr):
            return UNKNOWN if self.is_unknown(v, scope) else self.evaluated(v, scope, loc)
        if isinstance(v, tuple):
            out = [self.ev(x, scope, loc) for x in v]
            return UNKNOWN if self._unknowns and any(x is UNKNOWN for x in out) else out
        return v

    def inst(self, t: ir.TNode, scope: dict, shape, path: str, level: str = ""):
        """The instance of ``t`` at ``path`` (its item path), in naming level ``level``; None if absent: the
        registry's kinds (:meth:`inst_kind`), or a combinator's method (:data:`COMBINATOR_METHODS`)."""
        self.count += 1
        if self.count > MAX_INSTANCE_NODES:
            raise ArchcError(f"network has more than {MAX_INSTANCE_NODES} layers and blocks", t.loc)
        if t.kind == ERROR_KIND:  # recovering: its error is recorded; what follows it cannot be known
            raise Recovered([])
        cond = None if t.cond is None else self.ev(t.cond, scope, t.loc)
        if cond is UNKNOWN:
            raise Recovered([])
        if t.cond is not None and not _as_bool(cond, t.loc):
            return None
        if t.kind == "seq":
            return self.inst_seq(t, scope, shape, level if t.transparent else path)
        al = t.attr_loc
        a = {k: self.ev(v, scope, al(k)) if isinstance(v, (Expr, tuple)) else v for k, v in t.attrs if k != "hw"}
        if self._unknowns and any(v is UNKNOWN for v in a.values()):
            raise Recovered([])
        base = dict(name=t.name, path=path, loc=t.loc, in_shape=shape)
        if t.init:
            base["init"] = t.init
        if t.kind in ops.PRIMITIVES:
            return self.inst_kind(t, shape, path, a, base)
        method = COMBINATOR_METHODS.get(t.kind)
        if method is None:
            raise ArchcError(f"cannot lower kind '{t.kind}'", t.loc)  # pragma: no cover
        return getattr(self, method)(t, scope, shape, path, level, a, base)

    def inst_kind(self, t: ir.TNode, shape, path: str, a: dict, base: dict) -> ir.Node:
        """A registry kind's node (:mod:`archc.ops`): its attributes checked, its shape rule or builder run."""
        k, loc, al = t.kind, t.loc, t.attr_loc
        prim = ops.get(k)
        if prim.needs_map:
            _need_map(shape, k, path, loc)
        vals = {attr.name: attr.check(a.get(attr.name), al(attr.name), ir.rank(shape)) for attr in prim.attrs}
        seen = dict(vals)  # what the shape rule sees: `size: input` is the network input's spatial size
        for attr in prim.attrs:
            if attr.type == "size" and vals[attr.name] == "input":
                if "." in path and id(t) not in self.head_tails:
                    raise ArchcError(
                        f"{k} '{path}': {attr.name}: input is for a top-level item of the network, or the last item "
                        "of a head (the model's forward knows its input's size; a block or a nested item does not)",
                        al(attr.name),
                    )
                seen[attr.name] = self.input_shape[:-1]
        for attr in prim.attrs:
            if attr.type == "ref" and vals[attr.name] is not None:  # `like: NAME`: that output's spatial size
                like = self.live[-1][vals[attr.name]][1]
                if any(seen.get(o) is not None for o in ("size", "scale")):
                    raise ArchcError(f"{k} '{path}': takes one of scale, size or {attr.name}", al(attr.name))
                if len(like) != len(shape):
                    raise ArchcError(
                        f"{k} '{path}': '{vals[attr.name]}' gives {_fmt(like)}, of another rank than {_fmt(shape)}",
                        al(attr.name),
                    )
                seen["size"] = like[:-1]
        if k == "flatten":  # the spatial size this use sees fixes its block's placeholder (resolve_flatten)
            self.flat_sizes.setdefault(t.attr("hw").src, set()).add(shape[:-1])
        try:
            if prim.build is not None:
                return prim.build(shape, seen, base)
            out_shape = prim.shape(shape, seen)
        except ops.OpError as exc:
            where = al(exc.attr) if exc.attr else loc
            raise ArchcError(f"{k} '{path}': {exc.message}", where, attr=exc.attr) from None
        return ir.Op(**base, out_shape=out_shape, op=k, attrs=tuple(vals.items()))

    def inst_residual(self, t: ir.TNode, scope: dict, shape, path: str, level: str, a: dict, base: dict):
        """``body(x) + shortcut(x)``, the shortcut only ``when`` it holds."""
        loc, al = t.loc, t.attr_loc
        inner_level = level if t.transparent else path  # where the names below this node live
        when = boolean(a["when"], "when", al("when"))
        body_t, short_t = t.children
        sub = (lambda key: inner_level) if t.transparent else (lambda key: _join(path, key))
        body = self.inst_seq(body_t, scope, shape, sub("body"))
        short = self.inst_seq(short_t, scope, shape, sub("shortcut")) if when else None
        if short is not None and short.out_shape != body.out_shape:
            what = "the identity" if not short.children else "its shortcut"
            raise ArchcError(
                f"residual '{path}': the body gives {_fmt(body.out_shape)} but {what} gives "
                f"{_fmt(short.out_shape)}; shapes must match (add a projection to the shortcut, or a "
                "'when:' condition)",
                loc,
            )
        return ir.Residual(**base, out_shape=body.out_shape, body=body, shortcut=short, level=inner_level)

    def merged(self, t: ir.TNode, scope: dict, shape, inner_level: str) -> list:
        """What a merge merges: its branches' instances, or (``from:``) stand-ins for the named outputs (a name and
        an ``out_shape`` each, for the checks and messages below)."""
        if t.src:
            return [_Ref(k, self.live[-1][k][1], self.live[-1][k][2]) for k in t.src]
        return [self.inst_seq(b, scope, shape, _join(inner_level, b.name)) for b in t.children]

    def inst_mul(self, t: ir.TNode, scope: dict, shape, path: str, level: str, a: dict, base: dict):
        """Branches multiplied; a ``(1, ..., 1, C)`` branch broadcasts over the positions."""
        inner_level = level if t.transparent else path  # where the names below this node live
        k, loc = t.kind, t.loc
        branches = self.merged(t, scope, shape, inner_level)
        full = [b.out_shape for b in branches if not _is_gate(b.out_shape)]
        out_shape = full[0] if full else branches[0].out_shape
        for b in branches:
            s = b.out_shape
            if s != out_shape and not (_is_gate(s) and len(s) == len(out_shape) and s[-1] == out_shape[-1]):
                raise ArchcError(
                    f"mul '{path}': {_what(branches[0])} gives {_fmt(branches[0].out_shape)} but "
                    f"{_what(b)} gives {_fmt(s)}; shapes must match, or a branch must give "
                    f"{_fmt((*(1,) * ir.rank(out_shape), out_shape[-1]))} (broadcast over the positions)",
                    loc,
                    notes=_made_here(branches[0], b),
                )
        branches = tuple(b for b in branches if not isinstance(b, _Ref))
        return ir.Merge(**base, out_shape=out_shape, mode=k, branches=branches, level=inner_level)

    def inst_merge(self, t: ir.TNode, scope: dict, shape, path: str, level: str, a: dict, base: dict):
        """Branches concatenated on the channels, or added."""
        inner_level = level if t.transparent else path  # where the names below this node live
        k, loc = t.kind, t.loc
        branches = self.merged(t, scope, shape, inner_level)
        shapes = [b.out_shape for b in branches]
        if k == "add":
            for b in branches[1:]:
                if b.out_shape != branches[0].out_shape:
                    raise ArchcError(
                        f"add '{path}': {_what(branches[0])} gives {_fmt(branches[0].out_shape)} but "
                        f"{_what(b)} gives {_fmt(b.out_shape)}; shapes must match",
                        loc,
                        notes=_made_here(branches[0], b),
                    )
            out_shape = shapes[0]
        else:
            for b in branches:
                if len(b.out_shape) < 2 or b.out_shape[:-1] != shapes[0][:-1]:
                    raise ArchcError(
                        f"concat '{path}': {_what(branches[0])} gives {_fmt(shapes[0])} but {_what(b)} gives "
                        f"{_fmt(b.out_shape)}; spatial sizes must match",
                        loc,
                        notes=_made_here(branches[0], b),
                    )
            out_shape = (*shapes[0][:-1], chan(sum(s[-1] for s in shapes), loc))
        branches = tuple(b for b in branches if not isinstance(b, _Ref))
        return ir.Merge(**base, out_shape=out_shape, mode=k, branches=branches, level=inner_level)

    def inst_loop(self, t: ir.TNode, scope: dict, shape, path: str, level: str, a: dict, base: dict):
        """A repeat (a loop of the body), or dense connectivity (each layer sees all before)."""
        k, loc, al = t.kind, t.loc, t.attr_loc
        count_key = "times" if k == "repeat" else "layers"
        n = self.loop_count(t, a[count_key])
        body = t.children[0]
        if self.count + n * self.tsize(body) > MAX_INSTANCE_NODES:
            raise ArchcError(
                f"{count_key}={n} would make the network larger than {MAX_INSTANCE_NODES} layers and blocks",
                al(count_key),
            )
        items = []
        cur = shape
        for i in range(n):
            s = self.inst_seq(body, {**scope, "in_channels": cur[-1]}, cur, _join(path, str(i)))
            if k == "dense_connect":
                if len(s.out_shape) < 2 or s.out_shape[:-1] != cur[:-1]:
                    raise ArchcError(
                        f"dense_connect '{path}': layer {i} maps {_fmt(cur)} to {_fmt(s.out_shape)}; "
                        "layers must keep the spatial size",
                        loc,
                    )
                cur = (*cur[:-1], chan(cur[-1] + s.out_shape[-1], loc))
            else:
                if i >= 1 and s.out_shape[-1] != items[0].out_shape[-1]:
                    widths = ", ".join(str(it.out_shape[-1]) for it in [*items, s])
                    raise ArchcError(
                        f"repeat '{path}': the iterations give widths {widths}; archc emits a repeat as a loop, "
                        "which needs every iteration after the first to keep the width the first one gives",
                        loc,
                    )
                cur = s.out_shape
            items.append(s)
        if k == "repeat":
            return ir.Repeat(**base, out_shape=cur, iterations=tuple(items))
        return ir.DenseConnect(**base, out_shape=cur, layers=tuple(items))

    def loop_count(self, t: ir.TNode, n) -> int:
        """A repeat's ``times`` or a dense_connect's ``layers``, checked."""
        count_key = "times" if t.kind == "repeat" else "layers"
        if not is_int(n) or n < (0 if t.kind == "repeat" else 1):
            kind_word = "non-negative" if t.kind == "repeat" else "positive"
            raise ArchcError(f"{count_key} must be a {kind_word} integer, got {n!r}", t.attr_loc(count_key))
        if n > MAX_REPEAT:
            raise ArchcError(f"{count_key}={n} is more than {MAX_REPEAT}", t.attr_loc(count_key))
        return n

    def inst_call(self, t: ir.TNode, scope: dict, shape, path: str, level: str, a: dict, base: dict):
        """A block's body, instantiated with the call's arguments."""
        al = t.attr_loc
        bdef = self.templates[t.block]
        args = dict(a)
        for p, v in args.items():
            plain(v, f"param '{p}' of block '{t.block}'", al(p))
        inner = {**args, "in_channels": shape[-1], ORIGINS: (t, scope)}
        frame = {}
        for i, inp in enumerate(bdef.inputs):
            key = t.src[i] if i < len(t.src) else ""
            src_path, src_shape, src_loc = self.live[-1][key] if key else (f"{path}.<{inp}>", shape, t.loc)
            frame[inp] = (src_path, src_shape, src_loc)
            if i:
                inner[f"{inp}_channels"] = src_shape[-1]
        self.live.append(frame)
        try:
            body = self.inst_seq(bdef.body, inner, shape, path)
        except ArchcError as exc:
            raise _at_call_site(exc, t) from None
        except Recovered as r:
            raise Recovered([_at_call_site(exc, t) for exc in r.errors]) from None
        finally:
            self.live.pop()
        frozen = tuple((p, tuple(v) if isinstance(v, list) else v) for p, v in args.items())
        return ir.Call(**base, out_shape=body.out_shape, block=t.block, args=frozen, body=body)

    def tsize(self, t: ir.TNode) -> int:
        """Nodes one instance of ``t`` makes at least (repeats counted once): refuses huge repeats early."""
        key = id(t)
        if key not in self._tsize:
            n = 1 + sum(self.tsize(c) for c in t.children)
            if t.kind == "call":
                n += self.tsize(self.templates[t.block].body)
            self._tsize[key] = n
        return self._tsize[key]

    # ---------------------------------------------------------------- driver
    def lower(self) -> ir.Model:
        """The model: params, defaults, the input, the network's templates and instances, the heads."""
        spec, data = self.spec, self.data
        try:
            self.check_name(spec.name, loc_of(data, "name"), "model name")
        except ArchcError as exc:
            self.record(exc)
        if spec.class_name is not None:
            try:
                self.check_name(spec.class_name, loc_of(data, "class_name"), "class_name")
            except ArchcError as exc:
                self.record(exc)
        scope = self.scope = self.eval_param_scope()
        self.defaults = self.spec_defaults(scope)
        try:
            self.inits = self.spec_inits(scope)
        except ArchcError as exc:
            self.record(exc)
            self.inits = {}
        try:
            in_shape = self.input_shape = None if self.input_failed else self.lower_input(scope)
        except ArchcError as exc:
            self.record(exc)
            in_shape = self.input_shape = None
        ctx = _Ctx(set(scope), NETWORK_WHERE)
        try:
            include_top, pooling, pool_loc = self.builtin_params()
        except ArchcError as exc:
            self.record(exc)
            include_top, pooling, pool_loc = True, "none", None
        items, raw_items, level = self.network_items(include_top, pooling, pool_loc)
        net_refs = self.network_ref_scope()
        self.ref_scopes.append(net_refs)
        outputs: tuple = ()
        try:
            net_t = self.nested(
                "",
                lambda: self.template_seq(
                    items, raw_items, Expr("in_channels"), ctx, "", data.loc, level=level, class_scope=True
                ),
            )
            try:
                outputs = self.resolve_outputs(net_refs)
                live = net_refs.used | {key for _, key in outputs} | {h.at for h in self.spec.heads.values()}
                refs.check_flow(net_t, live, not outputs, "the network")
            except ArchcError as exc:
                self.record(exc)
        finally:
            self.ref_scopes.pop()
        body = None
        if in_shape is None:  # recovering from an error in the input: the network's own checks
            self.check_unknown(net_t, {**scope, "in_channels": self.unknown(), ORIGINS: NETWORK}, self.errors)
        else:
            self.live.append({n: (INPUT_PATH, in_shape, t.loc) for n, t in net_refs.inputs.items()})
            try:
                body = self.inst_seq(net_t, {**scope, "in_channels": in_shape[-1], ORIGINS: NETWORK}, in_shape, "")
            except Recovered as r:
                self.errors.extend(r.errors)
            finally:
                self.live.pop()
        heads = self.lower_heads(scope, ctx, body) if include_top else []  # a headless model has no aux heads
        if self.errors:  # recovering, and errors were found: pipeline.py reports them all
            raise self.errors[0]
        self.resolve_flatten()
        net_t = self.fix(net_t)
        heads = [replace(h, template=self.fix(h.template)) for h in heads]
        text = read_text(self.file)
        blocks = tuple(self.templates[n] for n in self.order if self._used(n, body, heads))
        class_name = spec.class_name or model_class_name(spec.name)
        seen: dict[str, str] = {}
        for b in blocks:
            cn = camel(b.name)
            if cn == class_name:
                why = (
                    "its class_name:"
                    if spec.class_name
                    else f"from its name '{spec.name}'; set class_name: to change it"
                )
                raise ArchcError(f"block '{b.name}' would become class {cn}, the model's class name ({why})", b.loc)
            if cn in seen:
                raise ArchcError(f"block '{b.name}' and '{seen[cn]}' would both become class {cn}", b.loc)
            seen[cn] = b.name
        self.fixed |= _param_names(spec.loss_weight)
        for v in spec.params.values():  # a list with expressions in it: its value stays, so do the params it reads
            if isinstance(v, list):
                self.fixed |= _param_names(v)
        lw_main = number(
            self.literal(spec.loss_weight, scope, loc_of(data, "loss_weight")),
            "loss_weight",
            loc_of(data, "loss_weight"),
        )
        doc = spec.doc or _leading_comment(text)
        if not include_top:
            what = {
                "none": "the feature map",
                "avg": "global average pooled features",
                "max": "global max pooled features",
            }
            doc = (f"{doc}\n\n" if doc else "") + (
                f"Built with include_top=false, pooling={pooling}: the spec's top (its classifier) and aux heads are "
                f"left out; the output is {what[pooling]}."
            )
        return ir.Model(
            name=spec.name,
            class_name=class_name,
            doc=doc,
            spec_file=self.file,
            spec_sha256=hashlib.sha256(text.encode()).hexdigest(),
            input_shape=in_shape,
            body=body,
            heads=tuple(heads),
            loss_weight=lw_main,
            blocks=blocks,
            params=tuple((k, _freeze(v)) for k, v in scope.items()),
            network=net_t,
            top_removed=not include_top,
            input_name=self.spec.input.name,
            outputs=outputs,
            init=tuple((k, tuple({**init_mod.builtin(k), **self.inits.get(k, {})}.items())) for k in init_mod.KINDS),
            fixed=tuple(n for n in scope if n in self.fixed),
            input_dims=self.input_dims(),
            param_defs=tuple(
                (n, parse(v)) for n, v in spec.params.items() if is_expr(v) and not isinstance(scope.get(n), Expr)
            ),
        )

    def input_dims(self) -> tuple:
        """The input's ``(*spatial, channels)`` as written: an :class:`Expr` over the network params, or a number."""
        given = [k for k in ("length", "depth", "height", "width") if getattr(self.spec.input, k) is not None]
        out = []
        for key in (*given, "channels"):
            v = getattr(self.spec.input, key)
            out.append(parse(v) if is_expr(v) else v)
        return tuple(out)

    def network_ref_scope(self) -> refs.Scope:
        """What the network's items can read by name: its input (``input: {name: ...}``), then its items."""
        raw_input = self.data.get("input")
        inputs = {}
        if self.spec.input.name is not None:
            iloc = loc_of(raw_input, "name")
            self.check_name(self.spec.input.name, iloc, "input name")
            inputs[self.spec.input.name] = refs.Target(
                self.spec.input.name, Expr("in_channels"), iloc, f"the input '{self.spec.input.name}'"
            )
        raw_items = [*(self.data.get("network") or []), *(self.data.get("top") or [])]
        return refs.Scope("the network", inputs, raw_items)

    def resolve_outputs(self, scope: refs.Scope) -> tuple[tuple[str, str], ...]:
        """``outputs:``: each name's key (an item of the network's own level, or its input)."""
        raw = self.data.get("outputs")
        out = []
        for oname, ref in self.spec.outputs.items():
            oloc = loc_of(raw, oname) or key_loc(raw, oname)
            out.append((oname, scope.resolve(ref, oloc).key))
        return tuple(out)

    def spec_defaults(self, scope: dict) -> dict[str, dict]:
        """The spec's ``defaults:`` per kind or block, checked and evaluated at network level."""
        spec, data = self.spec, self.data
        out: dict[str, dict] = {}
        raw_defaults = data.get("defaults") or {}
        for kind, attrs in spec.defaults.items():
            kloc = key_loc(raw_defaults, kind)
            if kind in KINDS:
                allowed = set(KINDS[kind].model_fields) - {"name", "if_", "init"}  # init: the spec's `init:`
                if kind in COMBINATORS:
                    self.record(ArchcError(f"defaults cannot be given for combinator '{kind}'", kloc))
                    continue
            elif kind in self.raw_blocks:
                allowed = set(self.raw_blocks[kind][0].params)
            else:
                hint = suggest(kind, list(KINDS) + list(self.raw_blocks))  # a close name, or else every choice
                choices = hint or listing(self.item_choices())
                self.record(ArchcError(f"defaults for unknown kind or block '{kind}'{choices}", kloc))
                continue
            given = {}
            for key in attrs:
                if key not in allowed:
                    raw_k = raw_defaults.get(kind) if isinstance(raw_defaults, dict) else None
                    self.record(
                        ArchcError(
                            f"'{kind}' has no attribute '{key}' (valid: {', '.join(sorted(allowed))})"
                            f"{suggest(key, allowed)}",
                            key_loc(raw_k, key) if raw_k is not None else kloc,
                        )
                    )
                    # recovering: what it may have been meant for has an unknown default (no error for its absence):
                    # the attribute it is a typo of, or any param of a block that its calls must otherwise give
                    meant = {closest(key, allowed)}
                    if kind in self.raw_blocks and kind not in KINDS:
                        meant |= {p for p, d in self.raw_blocks[kind][0].params.items() if d is None}
                    for m in meant - {None} - set(attrs):
                        given[m] = self.unknown()
            raw_k = raw_defaults.get(kind)
            for key, v in attrs.items():
                if key in allowed:
                    self.default_raw.setdefault(kind, {})[key] = v
                    try:
                        given[key] = self.literal(v, scope, loc_of(raw_k, key))
                    except ArchcError as exc:
                        self.record(exc)
                        given[key] = self.unknown()
            out[kind] = given
        return out

    def spec_inits(self, scope: dict) -> dict[str, dict]:
        """The spec's ``init:`` per kind: tensor -> :class:`archc.init.Init`, checked, params evaluated."""
        raw_inits = self.data.get("init") or {}
        out: dict[str, dict] = {}
        for kind, tensors in self.spec.init.items():
            out[kind] = self.parse_inits(kind, tensors, raw_inits.get(kind), key_loc(raw_inits, kind))
        return out

    def parse_inits(self, kind: str, tensors: dict, raw, loc) -> dict:
        """``{tensor: scheme}`` as written (a scheme name, or ``{scheme: {param: value}}``) -> tensor -> Init; the
        params are numbers or expressions of the network's params."""
        out = {}
        for tensor, scheme in tensors.items():
            tloc = loc_of(raw, tensor) if isinstance(raw, dict) else loc
            if isinstance(scheme, str):
                name, params = scheme, {}
            else:
                ((name, params),) = scheme.items()
                params = params or {}
            where = tloc or loc
            vals = {k: self.literal(v, self.scope, where) for k, v in params.items()}
            self.fixed |= set().union(*(_param_names(v) for v in params.values()))
            made = init_mod.make(name, vals, where)
            init_mod.check_tensor(kind, tensor, made, where)
            out[tensor] = made
        return out

    def item_init(self, kind: str, attrs, raw, loc) -> tuple:
        """A leaf's init: its own ``init:`` > the spec's ``init:`` for its kind > archc's (torch_default)."""
        merged = {**init_mod.builtin(kind), **self.inits.get(kind, {})}
        own = getattr(attrs, "init", None)
        if own:
            iloc = self.loc(raw, "init") if raw is not None and "init" in raw else loc
            merged.update(self.parse_inits(kind, own, raw.get("init") if raw is not None else None, iloc))
        return tuple(merged.items())

    def lower_input(self, scope: dict) -> ir.Shape | None:
        """The input's shape ``(*spatial, C)``: its keys give the rank. Recovering, None if it is unknown (its
        errors recorded)."""
        spec, data = self.spec, self.data
        raw_input = data.get("input")
        given = tuple(k for k in ("length", "depth", "height", "width") if getattr(spec.input, k) is not None)
        ranks = {names: r for r, names in ir.SPATIAL_NAMES.items()}
        if given not in ranks:
            raise ArchcError(
                "input needs 'length' (1-D), 'height' and 'width' (2-D), or 'depth', 'height' and 'width' (3-D), "
                f"with 'channels'; got {', '.join(given) or 'no spatial size'}",
                loc_of(data, "input"),
            )
        dims = []
        for key in (*given, "channels"):
            loc = loc_of(raw_input, key)
            raw_v = getattr(spec.input, key)
            try:
                v = self.literal(raw_v, scope, loc)
                if v is UNKNOWN:
                    return None
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    exc = ArchcError(f"input {key} must be a positive integer, got {v!r}", loc, check=good_pos)
                    self.explain_network_value(exc, key, raw_v, v, loc)
                    raise exc
                if v > (MAX_CHANNELS if key == "channels" else MAX_SPATIAL):
                    raise ArchcError(f"input {key}={v} is too large", loc)
            except ArchcError as exc:
                self.record(exc)
                v = UNKNOWN
            dims.append(v)
        return None if any(d is UNKNOWN for d in dims) else tuple(dims)

    def lower_heads(self, scope: dict, ctx: _Ctx, body: ir.Seq | None) -> list[ir.Head]:
        """The auxiliary heads, each attached to a top-level item of the network. Recovering, each head's errors
        are recorded and the next head checked; ``body`` None: the network failed, a head's body is checked
        as far as its input's shape is not needed."""
        spec, data = self.spec, self.data
        heads = []
        raw_heads = data.get("heads") or {}
        top = {n.name: n for n in body.children} if body is not None else None
        for hname, h in spec.heads.items():
            hraw = raw_heads.get(hname)
            hloc = key_loc(raw_heads, hname)
            try:
                self.check_name(hname, hloc, "head name")
                if hname == "main" or (top is not None and hname in top):
                    raise ArchcError(f"head name '{hname}' clashes with a layer or the main output", hloc)
                self.fixed |= _param_names(h.if_) | _param_names(h.loss_weight)  # which heads exist: resolved here
                if h.if_ is not None:
                    cond = self.literal(h.if_, scope, loc_of(hraw, "if"))
                    if cond is UNKNOWN or not _as_bool(cond, loc_of(hraw, "if")):
                        continue
                if top is not None and h.at not in top:
                    raise ArchcError(
                        f"head '{hname}' is attached at '{h.at}', which is not a top-level item of the network"
                        f"{suggest(h.at, top)}",
                        loc_of(hraw, "at"),
                    )
                lw = self.literal(h.loss_weight, scope, loc_of(hraw, "loss_weight"))
                if lw is not UNKNOWN:
                    lw = number(lw, "loss_weight", loc_of(hraw, "loss_weight"))
                ht = _one_level(
                    self.template_seq(h.body, hraw.get("body"), Expr("in_channels"), ctx, hname, hloc), head=True
                )
                if ht.children and ht.children[-1].kind == "upsample":  # a head may end resized to the input's size
                    self.head_tails.add(id(ht.children[-1]))
                if top is None:
                    self.check_unknown(ht, {**scope, "in_channels": self.unknown(), ORIGINS: NETWORK}, self.errors)
                    continue
                at_shape = top[h.at].out_shape
                hbody = self.inst_seq(ht, {**scope, "in_channels": at_shape[-1], ORIGINS: NETWORK}, at_shape, hname)
                heads.append(ir.Head(hname, h.at, lw, hbody, ht))
            except ArchcError as exc:
                self.record(exc)
            except Recovered as r:
                self.errors.extend(r.errors)
        return heads

    # ---------------------------------------------------------------- top: and the built-in params
    def builtin_params(self) -> tuple[bool, str, Loc | None]:
        """include_top and pooling (``--set``; keras.applications' arguments), checked: (include_top, pooling,
        where pooling was set)."""
        raw_params = self.data.get("params") or {}
        for name in BUILTIN_PARAMS:
            if name in self.spec.params:
                raise ArchcError(
                    f"param '{name}' is built in (every spec has include_top and pooling, set with --set); "
                    "rename this param",
                    key_loc(raw_params, name),
                )
        sets = getattr(self.data, "builtin_sets", {})
        include_top, it_loc = sets.get("include_top", (True, None))
        if not isinstance(include_top, bool):
            raise ArchcError(f"include_top must be true or false, got {include_top!r}", it_loc)
        pooling, pool_loc = sets.get("pooling", ("none", None))
        if pooling is None:  # YAML's null, keras.applications' pooling=None
            pooling = "none"
        if pooling not in BUILTIN_PARAMS["pooling"]:
            raise ArchcError(f"pooling must be one of none, avg, max; got {pooling!r}", pool_loc)
        if pooling != "none" and include_top:
            raise ArchcError(
                f"pooling={pooling} applies to a model without its top (the top pools itself): add "
                "--set include_top=false",
                pool_loc,
            )
        if not include_top and not self.spec.top:
            raise ArchcError(
                f"include_top=false, but spec '{self.spec.name}' has no 'top:' (its classifier) to leave out",
                it_loc,
                notes=[(loc_of(self.data, "network"), "its network is here; move the classifier into 'top:'")],
            )
        return include_top, pooling, pool_loc

    def network_items(self, include_top: bool, pooling: str, pool_loc):
        """The items of the network level: ``network:``, then ``top:`` unless include_top is false, then the global
        pool of ``pooling``; with their located raw items, and the naming level. The level is that of network
        and top together whether the top is built or not, so a layer has the same name in both models (a
        checkpoint of the full model loads into the headless one)."""
        spec, data = self.spec, self.data
        raw = _mk_list(data.loc)
        for key in ("network", "top") if include_top else ("network",):
            part = data.get(key)
            for i in range(len(getattr(spec, key))):
                raw.append(part[i] if isinstance(part, list) and i < len(part) else None)
                raw.locs.append(loc_of(part, i) if isinstance(part, list) else loc_of(data, key))
        items = list(spec.network) + (list(spec.top) if include_top else [])
        level = _Level(list(_level_items(list(spec.network) + list(spec.top), True)), True)
        if pooling != "none":
            kind = "gap" if pooling == "avg" else "global_maxpool"
            items.append(ITEM_TYPES[kind].model_validate({kind: {"name": FEATURES_POOL}}))
            raw.append(None)
            raw.locs.append(pool_loc)
        return items, raw, level

    def explain_network_value(self, exc: ArchcError, key: str, raw, value, loc) -> None:
        """A value written at network level (``input:``) failed a check: point at the params it read."""
        tracer = Tracer(self)
        expr = tracer._parse(raw, loc)
        if expr is not None:
            try:
                reads = tracer.reads(expr, {**self.scope, ORIGINS: NETWORK}, 0)
                tracer.explain(exc, Origin(key, value, loc, f"'{key}'", expr, reads))
            except Exception:  # noqa: BLE001 - finding the cause must never hide the error itself
                pass

    def _used(self, name: str, body, heads) -> bool:
        """Whether generated code refers to block ``name``: the model calls it, or a block it uses may (a
        block's class is generic: it builds what its template says, whatever this model's arguments are)."""
        if not hasattr(self, "_used_set"):
            used = set()
            for root in [body] + [h.body for h in heads]:
                for n in ir.walk(root):
                    if isinstance(n, ir.Call):
                        used.add(n.block)
            todo = list(used)
            while todo:
                for t in ir.walk_template(self.templates[todo.pop()].body):
                    if t.kind == "call" and t.block not in used:
                        used.add(t.block)
                        todo.append(t.block)
            self._used_set = used
        return name in self._used_set

    def resolve_flatten(self) -> None:
        """Replace each flatten's spatial-size placeholder by the size its instances see."""
        mapping = self._flat_map = {}
        for hw, sizes in self.flat_sizes.items():
            if len(sizes) > 1:
                desc = ", ".join("x".join(map(str, size)) for size in sorted(sizes))
                raise ArchcError(
                    f"this flatten is reached at different spatial sizes ({desc}) through one block; the "
                    "block's dense layer would need a different size at each use",
                    self.flat_locs.get(hw),
                )
            (size,) = sizes
            mapping[hw] = math.prod(size)

        def fix_expr(e):
            if isinstance(e, Expr) and any(n.startswith("_hw") for n in e.names()):
                missing = [n for n in e.names() if n.startswith("_hw") and n not in mapping]
                if missing:
                    return e
                return substitute(e, mapping)
            if isinstance(e, tuple):
                return tuple(fix_expr(x) for x in e)
            return e

        self._fix_expr = fix_expr
        for name, b in list(self.templates.items()):
            self.templates[name] = replace(b, body=self.fix(b.body), out_ch=fix_expr(b.out_ch))

    def fix(self, t: ir.TNode) -> ir.TNode:
        fx = self._fix_expr
        return replace(
            t,
            attrs=tuple((k, fx(v)) for k, v in t.attrs),
            children=tuple(self.fix(c) for c in t.children),
            in_ch=fx(t.in_ch),
            out_ch=fx(t.out_ch),
        )


# ---------------------------------------------------------------- value checks
class _Ref:
    """A named output a merge reads (``from:``), as the merge's checks see a branch: its name and shape."""

    def __init__(self, key: str, shape, loc):
        self.name, self.out_shape, self.loc = key, shape, loc
        self.children = (None,)  # (a residual's message says "the identity" for a shortcut without children)


def _what(b) -> str:
    """How a merge's message names what it merges: "branch 'branch1'", or a named output: "'enc1'"."""
    return f"'{b.name}'" if isinstance(b, _Ref) else f"branch '{b.name}'"


def _made_here(*bs) -> list:
    """Notes at the named outputs a merge's message names (a reference's error names both places)."""
    return [(b.loc, f"'{b.name}' is made here") for b in bs if isinstance(b, _Ref)]


def _level_parts(seq: ir.TNode):
    """The transparent parts other than seqs (an unnamed residual or merge) that sit at ``seq``'s level, through
    the seqs in it: in a block's body, their items are attributes of the block's class."""
    for ch in seq.children:
        if ch.kind == "seq":
            yield from _level_parts(ch)
        elif ch.transparent:
            yield ch


def _collect_refs(raw, out: set, depth: int = 0) -> None:
    """Every name written as a reference in ``raw`` (``from:``, ``like:``, ``outputs:``)."""
    if depth > 64:
        return
    if isinstance(raw, dict):
        for k, v in raw.items():
            if k in ("from", "like", "outputs"):
                vals = v.values() if isinstance(v, dict) else v if isinstance(v, list) else [v]
                out.update(x for x in vals if isinstance(x, str))
            _collect_refs(v, out, depth + 1)
    elif isinstance(raw, list):
        for v in raw:
            _collect_refs(v, out, depth + 1)


def _leading_comment(text: str) -> str | None:
    """The comment block at the top of a spec file (it cites the paper and names deviations)."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" ").rstrip())
    return "\n".join(lines).strip() or None


def _param_names(raw) -> set[str]:
    """The names an expression written at network level reads (lists: their entries'); none for a literal."""
    if isinstance(raw, list):
        return set().union(*(_param_names(x) for x in raw))
    if is_expr(raw):
        try:
            return parse(raw, None).names()
        except ArchcError:
            return set()
    return set()


# False: lower as archc did before a level of one item became that item (the names of earlier checkpoints, which
# ``archc convert-weights`` renames: archc.convert.earlier_names)
ONE_ITEM_LEVELS: contextvars.ContextVar[bool] = contextvars.ContextVar("one_item_levels", default=True)


def _branch_names(branches, level: _Level | None) -> list[str | None]:
    """For each branch of a merge, the name of its one item when the branch is one item named in the spec and no
    other branch's name (or, ``level``: a name of the level the branches join) can be the same; else None (the
    branch is ``branch<j>``): Inception-v3's first branch is ``branch1x1``, as in torchvision. Read only for a
    branch :func:`_one_level` marks ``single`` (never with :data:`ONE_ITEM_LEVELS` off)."""
    own = [_item_name(br[0]) if len(br) == 1 else None for br in branches]
    taken = Counter([*own, *(f"branch{j + 1}" for j in range(len(branches)))])
    return [n if n is not None and taken[n] == 1 and (level is None or n not in level.names) else None for n in own]


def _one_level(seq: ir.TNode, head: bool = False) -> ir.TNode:
    """``seq``, a level that a loop, a merge, a named residual or a head makes, marked ``single`` when it holds one
    item that is always there and names no running width (``ir.TNode.single``: the item is the level). A head's
    item must be a part whose layers are named below it (a block call, a seq, a loop): a layer, a merge or a
    residual there would take the head's name, which is its output's (Keras' output layer ``aux``)."""
    if len(seq.children) != 1 or seq.lets or seq.binds or seq.transparent or not ONE_ITEM_LEVELS.get():
        return seq
    item = seq.children[0]
    if item.cond is not None or item.kind == ERROR_KIND or (item.kind == "seq" and item.transparent):
        return seq
    if head and item.kind not in ("call", "seq", "repeat", "dense_connect"):
        return seq
    return replace(seq, single=True)


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def _fmt(shape) -> str:
    return "x".join(map(str, shape))


def _at_call_site(exc: ArchcError, call: ir.TNode) -> ArchcError:
    """An error inside a block, passing out through a call of it: a note names the call site. An error
    inside a stdlib block with no user-written cause found is located where the user called it."""
    inside = exc.loc
    if call.loc is None:
        return exc
    if inside is None or not inside.file.startswith(STDLIB_PREFIX) or call.loc.file.startswith(STDLIB_PREFIX):
        # located in user input already, or a stdlib block calling another (the caller's caller decides)
        exc.note(call.loc, f"in block '{call.block}', called here")
        return exc
    moved = ArchcError(f"{exc.message} (in block '{call.block}', {inside})", call.loc, notes=exc.notes)
    moved.explained = True
    return moved


def _as_bool(v, loc) -> bool:
    """The value of an ``if``: only true or false, so that a string 'false' cannot mean true."""
    if not isinstance(v, bool):
        raise ArchcError(f"'if' must be true or false, got {v!r}", loc, attr="if", check=is_bool)
    return v


def _ifexp(cond: Expr, a: Expr, b: Expr) -> Expr:
    if a == b:
        return a
    return Expr(f"({a.src}) if ({cond.src}) else ({b.src})")


def _gt0(e) -> Expr:
    return Expr(f"({sym(e).src}) > 0")


def _freeze(v):
    return tuple(_freeze(x) for x in v) if isinstance(v, list) else v


def _is_gate(shape) -> bool:
    """A ``(1, ..., 1, C)`` feature map: broadcast over the positions by ``mul``."""
    return len(shape) >= 2 and all(s == 1 for s in shape[:-1])


def _need_map(shape, kind, path, loc):
    if len(shape) < 2:
        raise ArchcError(f"{kind} '{path}' needs a feature map but gets flat features of size {shape[0]}", loc)
    return shape


def lower(data: LDict, spec: Spec, file: str) -> ir.Model:
    """Lower a validated spec (and its located raw data) to the IR."""
    return Lowerer(data, spec, file).lower()

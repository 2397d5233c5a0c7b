"""Keras 3 emitter: IR -> a standalone functional-API module (NHWC), built as a syntax tree.

Each block definition becomes a function ``block(x, params..., name=None)``; the network
becomes ``build_model(input_shape=..., *, <the spec's params>)`` (:class:`NetworkArgs`: the params the input's
shape reads are ``input_shape``'s; those :data:`DECIDED` reads stay fixed), written in the params' terms as a
block's body is in its own. Layer names follow the IR: the layer of IR leaf
``layer1.rest.0.conv1`` is named ``layer1_rest_0_conv1``, which is what weight
conversion relies on; names that would collide are refused. An item with an ``if:`` is
built under an ``if``; a residual keeps its input (``identity = x``) and adds it back.
Where Keras lacks a primitive the emitter lowers it exactly: explicit padding becomes
``ZeroPadding2D`` + 'valid' (or 'same' where that is the same thing), max-pool padding is
-inf (``MaxPadding2D``) unless the input comes straight from a ReLU, ``ceil_mode`` becomes
extra bottom/right padding computed from the input size, BN momentum is converted (Keras'
is 1 - PyTorch's). With auxiliary heads the outputs are named after LOSS_WEIGHTS' keys.

The rank (1-D, 2-D, 3-D) is the model's: its input's spatial axes. Layers are Keras' for that rank
(``Conv1D``, ``MaxPooling3D``, ...); a depthwise conv in 3-D, which Keras lacks, is a ``Conv3D`` with one
group per channel.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from archc import ir
from archc.expr import Expr

from .. import code as c
from ..base import BaseEmitter, Frame, Step
from ..common import NetworkArgs, Scope, Unsupported, params_read_by, ref_keys
from .ops import EMIT as OP_EMIT
from .ops import HELPERS as OP_HELPERS

HELPERS = ("explicit_padding", "pool_padding", "MaxPadding2D", "SamePadding2D", "Subsample2D", "Pooling2DPadded")
HELPERS += OP_HELPERS  # in emitted order
OPTIMIZERS = ("SGDTorch", "RMSpropTorch")  # with -O optimizers: Keras optimizers that update as torch.optim's
HELPERS += OPTIMIZERS
HELPER_DEFS = {
    "explicit_padding": "_explicit_padding",
    "pool_padding": "_pool_padding",
    "MaxPadding2D": "MaxPadding2D",
    "SamePadding2D": "SamePadding2D",
    "Subsample2D": "Subsample2D",
    "Pooling2DPadded": "Pooling2DPadded",
    **{h: h for h in OP_HELPERS},
}
NEEDS_OPS = {
    "MaxPadding2D",
    "SamePadding2D",
    "Pooling2DPadded",
    "GeluTanh",
    "StochasticDepth",
    "ChannelShuffle",
    "AdaptiveAvgPool2D",
    "Resize",
    "BatchNormalizationUnbiased",
    "TruncatedNormalBounded",
    "Gelu",
    *OPTIMIZERS,
}  # helpers that use keras.ops
MODULE_NAMES = ("keras", "layers", "ops")
# What this emitter decides from values when it writes the network (which layers there are, hence their names: a
# 'same' conv or a ZeroPadding before it, UpSampling2D or a resize) and, in blocks, from every call's values (a
# strided dilated conv run at stride 1 and subsampled, a transposed conv's cropping): a param that reaches one
# stays fixed at its value in build_model's signature (NetworkArgs).
DECIDED = {
    "conv": ("kernel", "stride", "padding", "dilation"),
    "dwconv": ("kernel", "stride", "padding", "dilation"),
    "maxpool": ("kernel", "stride", "padding", "ceil", "count_include_pad"),
    "avgpool": ("kernel", "stride", "padding", "ceil", "count_include_pad"),
    "conv_transpose": ("kernel", "stride", "padding", "dilation", "output_padding"),
    "upsample": ("scale", "size", "mode", "align_corners"),
}
DECIDED_IN_BLOCKS = {
    "conv": ("stride", "dilation"),
    "dwconv": ("stride", "dilation"),
    "conv_transpose": ("kernel", "stride", "padding", "dilation", "output_padding"),
}


class Name:
    """A layer name under construction: text and expression parts (an f-string when not all text)."""

    def __init__(self, parts=()):
        self.parts = tuple(parts)

    def child(self, *more) -> Name:
        parts = list(self.parts)
        for m in more:
            if parts:
                parts.append("_")
            parts.append(m if isinstance(m, ast.AST) else str(m))
        return Name(parts)

    def node(self) -> ast.expr:
        return c.fstring(self.parts)

    def text(self) -> str:
        return "".join(p if isinstance(p, str) else "{}" for p in self.parts)


@dataclass
class _Frame(Frame):
    """A walk's frame in a function: the layer names' prefix, the item whose output ``var`` holds (None:
    unknown; a pool after a ReLU pads with zeros, see ops.py)."""

    name: Name | None = None
    prev: ir.TNode | None = None


class KerasEmitter(BaseEmitter):
    """Emits Keras 3 source for an :class:`archc.ir.Model`."""

    name = "keras"
    RANK_MARK = "2D"
    MODULE_NAMES = MODULE_NAMES
    HELPERS = HELPERS
    HELPER_DEFS = HELPER_DEFS
    EMIT = OP_EMIT
    TEMPLATE = Path(__file__).parent / "templates" / "helpers.py"

    options = {"optimizers": "also emit SGDTorch and RMSpropTorch: Keras optimizers that update as torch.optim's"}

    def __init__(self, optimizers: bool = False):
        super().__init__()
        self.optimizers = optimizers

    # ------------------------------------------------------------------ the module (BaseEmitter's hooks)
    def start(self) -> None:
        self.pad_layers: dict[int, str] = {}  # id(template) -> "always" | "if_padded": its "<name>_pad" layer
        if self.optimizers:
            self.helpers.update(OPTIMIZERS)

    def spec_names(self, model: ir.Model) -> set[str]:
        names = {b.name for b in model.blocks} | {"LOSS_WEIGHTS", "build_model", "inference_model"}
        for b in model.blocks:
            names.update(p for p, _ in b.params)
        args = self.network_args()  # build_model's arguments (the module's names yield to them)
        return names | set(args.candidates) | set(args.from_input)

    def network_args(self) -> NetworkArgs:
        """The spec's params as build_model's keyword arguments: the input's shape is ``input_shape``; params
        decided where the layers are written (:data:`DECIDED`) or named as the module's functions stay fixed."""
        m = self.model
        fix = params_read_by(m, DECIDED, DECIDED_IN_BLOCKS)
        fix |= {b.name for b in m.blocks} | {"LOSS_WEIGHTS", "build_model", "inference_model", "input_shape"}
        return NetworkArgs(m, self.instances, fix=fix, input_shape=True)

    def definitions(self) -> list[ast.stmt]:
        functions = [self.block_function(b) for b in self.model.blocks]
        functions += [self.model_function(), self.inference_function()]
        self.check_layer_names()
        return functions

    def imports(self) -> list[ast.stmt]:
        from_keras = [self.alias("layers")] + ([self.alias("ops")] if self.helpers & NEEDS_OPS else [])
        if any(a.asname for a in from_keras):  # (a name yielded to a spec's: isort's one import per alias)
            froms = [ast.ImportFrom(module="keras", names=[a], level=0) for a in from_keras]
        else:
            froms = [ast.ImportFrom(module="keras", names=from_keras, level=0)]
        return [ast.Import(names=[self.alias("keras")]), *froms]

    def alias(self, n: str) -> ast.alias:
        return ast.alias(name=n, asname=None if self.module_names[n] == n else self.module_names[n])

    def L(self, cls: str) -> ast.expr:  # noqa: N802 - reads like the code it makes: layers.Conv2D
        return c.attr(self.module_names["layers"], cls)

    def helper(self, h: str) -> ast.expr:
        self.helpers.add(h)
        return c.name(self.helper_names[h])

    # ------------------------------------------------------------------ functions
    def start_function(self, params) -> None:
        """Locals in use in the function being emitted: its params first, then module-level names."""
        self.own_locals: set[str] = set()  # the generator's locals that may end up unread
        self.ns = c.Namespace(
            set(params)
            | set(self.module_names.values())
            | set(self.helper_names.values())
            | {b.name for b in self.model.blocks}
            | {"LOSS_WEIGHTS"}
        )

    def block_function(self, b: ir.BlockDef) -> ast.stmt:
        scope = Scope(None)
        params = [p for p, _ in b.params]
        extra = list(b.inputs[1:])  # inputs besides the main one: arguments after it
        self.start_function(params + extra + ["name"])
        x = self.ns.fresh("x")
        self.saved: dict[str, str] = {}
        keys, given = ref_keys(b.body), {i: i for i in extra}
        body = self.save_inputs(self.ns, self.saved, keys, given, b.inputs[0] if b.inputs else None, x)
        if _uses_in_channels(b.body):
            self.ns.reserve("in_channels")
            body.append(c.assign("in_channels", c.subscript(c.attr(x, "shape"), -1)))
        # the other inputs' widths (`skip_channels`), read where the body's expressions use them (no loop rebinds them)
        widths = [f"{i}_channels" for i in extra if _mentions(b.body, f"{i}_channels")]
        for i in extra:
            if f"{i}_channels" in widths:
                self.ns.reserve(f"{i}_channels")
                body.append(c.assign(f"{i}_channels", c.subscript(c.attr(i, "shape"), -1)))
        preamble = len(body)  # where every name hoisted expressions may read is bound
        body += self.walk(b.body, scope, _Frame(x, self.saved, name=Name([c.name("name")])))
        body = c.merge_adjacent_ifs(body)
        body = c.hoist_repeated(body, set(params) | {"in_channels", *widths}, self.ns, at=preamble)
        body.append(c.ret(c.name(x)))
        body = c.name_saved_outputs(body, x, set(self.saved.values()))
        body = c.drop_unused(body, {"in_channels", *widths} | self.own_locals)
        required = [p for p, d in b.params if d is None]
        defaulted = [(p, d) for p, d in b.params if d is not None]
        doc = (b.doc or f"The '{b.name}' block.") + '\n\nLayers are named f"{name}_<path>" after the spec\'s items.'
        return c.function(
            b.name,
            [x, *extra, *required, *(p for p, _ in defaulted), "name"],
            body,
            defaults={**dict(defaulted), "name": None},
            doc=doc,
        )

    def model_function(self) -> ast.stmt:
        """``build_model(input_shape=..., *, <the spec's params>)`` (:meth:`network_args`); where the network cannot
        be written in their terms, at the spec's values with ``input_shape`` only."""
        state = (set(self.helpers), dict(self.pad_layers))
        try:
            return self._model_function(symbolic=True)
        except Unsupported:
            self.helpers, self.pad_layers = set(state[0]), dict(state[1])
            return self._model_function(symbolic=False)

    def _model_function(self, symbolic: bool) -> ast.stmt:
        m = self.model
        args = self.network_args() if symbolic else None
        scope = args.scope() if args else Scope({**dict(m.params), "in_channels": m.input_shape[-1]})
        self.start_function(["input_shape", *(args.candidates + list(args.from_input) if args else [])])
        inputs = self.ns.fresh("inputs")
        x = self.ns.fresh("x")
        keras = self.module_names["keras"]
        # the Input layer's name yields to the user's: 'input' unless an item is called that (then input_1, ...)
        taken = {n.path.replace(".", "_") for r in [m.body, *(h.body for h in m.heads)] for n in ir.walk(r)}
        taken |= {"main", *(h.name for h in m.heads)}
        names = ("input", *(f"input_{i}" for i in range(1, len(taken) + 2)))
        self.input_name = next(n for n in names if n not in taken)
        start = [c.assign(inputs, c.call(c.attr(keras, "Input"), shape=c.name("input_shape"), name=self.input_name))]
        start.append(c.assign(x, c.name(inputs)))
        body: list[ast.stmt] = []
        self.taps = {h.at: h for h in m.heads}
        self.head_vars: dict[str, str] = {}
        keys = ref_keys(m.network) + [key for _, key in m.outputs]
        given = {m.input_name: inputs} if m.input_name else {}
        self.saved = {}
        body += self.save_inputs(self.ns, self.saved, keys, given, None, x)
        body += self.walk(m.network, scope, _Frame(x, self.saved, top=True, name=Name()))
        body = c.merge_adjacent_ifs(body)
        layout = {1: "NLC", 2: "NHWC", 3: "NDHWC"}[self.rank]
        doc = f"{m.class_name}: input (N, {', '.join(map(str, m.input_shape))}) {layout}; outputs logits."
        if m.outputs:  # a dict of the named outputs (and the aux heads'): Keras 3 returns the same structure
            outs = [(c.lit(oname), c.name(self.saved[key])) for oname, key in m.outputs]
            for head in m.heads:
                var = self.head_vars[head.name]
                body.append(c.assign(var, c.call(c.call(self.L("Identity"), name=head.name), c.name(var))))
                outs.append((c.lit(head.name), c.name(var)))
            result = ast.Dict(keys=[k for k, _ in outs], values=[v for _, v in outs])
            body.append(c.ret(c.call(c.attr(keras, "Model"), c.name(inputs), result, name=m.name)))
            doc = f"{m.class_name}: input (N, {', '.join(map(str, m.input_shape))}) {layout}; outputs a dict: "
            doc += ", ".join(n for n, _ in outs_names(m)) + "."
        elif not m.heads:
            body.append(c.ret(c.call(c.attr(keras, "Model"), c.name(inputs), c.name(x), name=m.name)))
        else:
            main = self.ns.fresh("main")
            body.append(c.assign(main, c.call(c.call(self.L("Identity"), name="main"), c.name(x))))
            outs = [c.name(main)]
            for head in m.heads:
                var = self.head_vars[head.name]
                body.append(c.assign(var, c.call(c.call(self.L("Identity"), name=head.name), c.name(var))))
                outs.append(c.name(var))
            body.append(c.ret(c.call(c.attr(keras, "Model"), c.name(inputs), c.lst(outs), name=m.name)))
            names = ", ".join(["main"] + [head.name for head in m.heads])
            doc += (
                f"\n\nOutputs [{names}], named as LOSS_WEIGHTS' keys: train with "
                "model.compile(loss={name: ... for name in LOSS_WEIGHTS}, loss_weights=LOSS_WEIGHTS) (a dict of "
                "losses: with a list, Keras 3 takes a dict of weights in sorted-key order). inference_model(model) "
                "keeps the main output only."
            )
        signature: list[str] = []
        if args:
            signature, derived = args.signature(body, [])
            # (before the input: x = inputs folds in; the arguments' expressions are written where they are used,
            # as in the PyTorch class: width * 8, not a local named after the first layer that reads it)
            body = args.input_locals("input_shape") + derived + start + body
            body = c.drop_unused(body, set(args.from_input) | self.own_locals)
            read = c.loads(body)
            args.from_input = {n: a for n, a in args.from_input.items() if n in read}  # (for the docstring)
            if signature:
                doc += "\n\n" + args.doc()
        else:
            body = start + body
        body = c.name_saved_outputs(body, x, set(self.saved.values()))
        fn = c.function("build_model", ["input_shape"], body, defaults={"input_shape": m.input_shape}, doc=doc)
        if signature:
            fn.args.kwonlyargs = [ast.arg(arg=p) for p in signature]
            fn.args.kw_defaults = [args.default(p) for p in signature]
        return fn

    def inference_function(self) -> ast.stmt:
        keras = self.module_names["keras"]
        if self.model.outputs:  # the named outputs (a dict), the auxiliary heads' left out
            names = c.lst(c.lit(n) for n, _ in self.model.outputs)
            value = c.call(
                c.attr(keras, "Model"),
                c.attr("model", "input"),
                ast.DictComp(
                    key=c.name("key"),
                    value=c.subscript(c.attr("model", "output"), c.name("key")),
                    generators=[ast.comprehension(target=c.store("key"), iter=names, ifs=[], is_async=0)],
                ),
                name=c.attr("model", "name"),
            )
            return c.function(
                "inference_model",
                ["model"],
                [c.ret(value)],
                doc="The named outputs only (auxiliary heads dropped), sharing ``model``'s weights.",
            )
        value = c.call(
            c.attr(keras, "Model"),
            c.attr("model", "input"),
            c.subscript(c.attr("model", "outputs"), 0),
            name=c.attr("model", "name"),
        )
        return c.function(
            "inference_model",
            ["model"],
            [c.ret(value)],
            doc="The main output only (auxiliary heads dropped), sharing ``model``'s weights.",
        )

    # ------------------------------------------------------------------ statements
    def seq(self, t, scope: Scope, x: str, name: Name, out: list, prev=None) -> None:
        """Statements transforming variable ``x`` through sequence ``t`` (into ``out``); layer names below
        ``name``; ``prev``: the item whose output ``x`` holds (None: unknown)."""
        out += self.walk(t, scope, _Frame(x, self.saved, name=name, prev=prev))

    def step(self, s: Step, f: _Frame) -> list[ast.stmt]:
        item = s.item
        lines: list[ast.stmt] = []
        if s.read is not None:  # it reads a kept output
            lines.append(c.assign(f.var, c.name(s.read)))
            f.prev = None
        self.item(item, s.scope, f.var, f.name, lines, f.prev, f.top, s.whole)
        comment = self.shape_comment(item) if f.top else None
        if lines and comment and not isinstance(lines[-1], (ast.If, ast.For)):
            c.commented(lines[-1], comment)
        if s.own is not None:
            f.prev = None
            return [c.if_(s.own, lines)]
        f.prev = item if item.kind != "seq" else _last(item, s.scope)
        return lines

    def head(self, head: ir.Head, scope: Scope, f: _Frame) -> list[ast.stmt]:
        var = self.head_vars[head.name] = self.ns.fresh(head.name)
        return [
            c.assign(var, c.name(f.var)),
            *self.walk(head.template, scope, _Frame(var, self.saved, name=Name().child(head.name))),
        ]

    def apply_lets(self, seq: ir.TNode, i: int, scope: Scope, f: _Frame, out: list | None) -> Scope:
        """A running width named before child ``i`` (``ir.TNode.lets``) is the width ``f.var`` has there."""
        x = f.var
        for idx, sym, _ in seq.lets:
            if idx == i and any(_mentions(t, sym) for t in seq.children[i:]):
                var = self.ns.fresh("channels")
                self.own_locals.add(var)
                out.append(c.assign(var, c.subscript(c.attr(x, "shape"), -1)))
                scope = scope.with_rename(**{sym: Expr(var)})
        return scope

    def layer(self, out, x: str, cls, args, kwargs, src=None) -> None:
        """``x = cls(args, kwargs)(src)``."""
        func = self.L(cls) if isinstance(cls, str) else cls
        value = c.kwcall(func, args, kwargs)
        arg = c.name(src or x) if isinstance(src or x, str) else src
        out.append(c.assign(x, c.call(value, arg)))

    def item(self, t, scope: Scope, x: str, name: Name, out: list, prev, top: bool, whole: bool = False):
        """The statements of item ``t`` named below ``name``; ``whole``: ``t`` is the level ``name`` itself."""
        k = t.kind
        node = scope.node
        me = name if whole else name.child(t.name)
        level = name if t.transparent else me
        n = ("name", me.node())
        if k in OP_EMIT:
            OP_EMIT[k](self, t, scope, x, me, out, prev)
        elif k == "seq":
            self.seq(t, scope, x, level, out, prev)
        elif k in ("concat", "add", "mul") and t.src:  # named outputs merged
            cls = {"concat": "Concatenate", "add": "Add", "mul": "Multiply"}[k]
            self.layer(out, x, cls, [], [n], c.lst(c.name(self.saved[s]) for s in t.src))
        elif k in ("concat", "add", "mul"):
            if len(t.children) == 1:  # nothing to merge
                self.seq(t.children[0], scope, x, level.child(t.children[0].name), out, prev)
                return
            branch_vars = []
            for b in t.children:
                var = self.ns.fresh(b.name)
                out.append(c.assign(var, c.name(x)))
                self.seq(b, scope, var, level.child(b.name), out)
                branch_vars.append(var)
            self.ns.taken.difference_update(branch_vars)  # dead after the merge: reusable by the next one
            cls = {"concat": "Concatenate", "add": "Add", "mul": "Multiply"}[k]
            self.layer(out, x, cls, [], [n], c.lst(c.name(v) for v in branch_vars))
        elif k == "residual":
            self.residual(t, scope, x, level, out, n, prev)
        elif k in ("repeat", "dense_connect"):
            self.loop(t, scope, x, level, out)
        elif k == "call":
            defaults = dict(self.model.block(t.block).params)
            kwargs = [(p, node(v)) for p, v in t.attrs if not _is_default(defaults.get(p), scope.value(v))]
            more = [c.name(self.saved[s]) for s in t.src[1:]]  # the block's other inputs
            out.append(c.assign(x, c.kwcall(c.name(t.block), [c.name(x), *more], [*kwargs, n])))
        else:
            raise Unsupported(f"keras backend cannot emit '{k}'", t.loc)

    def residual(self, t, scope: Scope, x: str, level: Name, out: list, n, prev):
        when = scope.value(t.attr("when"))
        body_t, short_t = t.children
        sub = (lambda key: level) if t.transparent else (lambda key: level.child(key))
        if when is False:  # no add: the body alone
            self.seq(body_t, scope, x, sub("body"), out, prev)
            return
        identity = self.ns.fresh("identity")
        self.own_locals.add(identity)
        out.append(c.assign(identity, c.name(x)))
        self.seq(body_t, scope, x, sub("body"), out, prev)
        tail: list[ast.stmt] = []
        self.seq(short_t, scope, identity, sub("shortcut"), tail, prev)
        self.layer(tail, x, "Add", [], [n], c.lst([c.name(x), c.name(identity)]))
        if when is None:
            out.append(c.if_(scope.node(t.attr("when")), tail))
        elif when:
            out.extend(tail)
        self.ns.taken.discard(identity)

    def loop(self, t: ir.TNode, scope: Scope, x: str, name: Name, out: list):
        body = t.children[0]
        var = self.ns.fresh("i")
        channels = self.ns.fresh("channels_in")
        count = t.attr("times" if t.kind == "repeat" else "layers")
        inner_scope = scope.with_rename(in_channels=Expr(channels))
        lines: list[ast.stmt] = []
        if _uses_in_channels(body):
            lines.append(c.assign(channels, c.subscript(c.attr(x, "shape"), -1)))
        iname = name.child(c.name(var))
        if t.kind == "repeat":
            self.seq(body, inner_scope, x, iname, lines)
        else:
            y = self.ns.fresh("y")
            lines.append(c.assign(y, c.name(x)))
            self.seq(body, inner_scope, y, iname, lines)
            self.layer(
                lines, x, "Concatenate", [], [("name", iname.child("concat").node())], c.lst([c.name(x), c.name(y)])
            )
            self.ns.taken.discard(y)
        self.ns.taken.difference_update((var, channels))
        lines = c.drop_unused(lines, {channels})
        if not any(isinstance(n, ast.Name) and n.id == var for s in lines for n in ast.walk(s)):
            var = "_"  # no layer in the body (every item's condition is false): nothing is named after it
        out.append(c.for_(var, c.call("range", scope.node(count)), lines))

    # ------------------------------------------------------------------ layers
    def pad_arg(self, p: tuple):
        """Flat per-axis padding as Keras' ZeroPadding takes it: (before, after) in 1-D, one pair per axis else."""
        pairs = ir.axis_pairs(p)
        return pairs[0] if self.rank == 1 else pairs

    # ------------------------------------------------------------------ names
    def check_layer_names(self) -> None:
        """Every Keras layer name the model will have is unique (IR paths with '.' -> '_' can collide)."""
        m = self.model
        template = {id(node): tid for tid, nodes in self.instances.items() for node in nodes}
        owners: dict[str, str] = {}

        def claim(layer: str, what: str, loc) -> None:
            if layer in owners:
                raise Unsupported(
                    f"keras backend: layer name '{layer}' would be given to both {owners[layer]} and {what} "
                    "(Keras names are IR paths with '.' -> '_'); rename one of them",
                    loc,
                )
            owners[layer] = what

        claim(self.input_name, "the model input", None)
        if m.heads:
            claim("main", "the main output", None)
            for h in m.heads:
                claim(h.name, f"the output of head '{h.name}'", None)
        for root in [m.body] + [h.body for h in m.heads]:
            for node in ir.walk(root):
                base = node.path.replace(".", "_")
                if ir.is_leaf(node):
                    claim(base, f"IR node '{node.path}'", node.loc)
                    mode = self.pad_layers.get(template.get(id(node)))
                    padded = isinstance(node, ir.Conv) and not node.same and any(node.padding)
                    if mode == "always" or (mode == "if_padded" and padded):
                        claim(f"{base}_pad", f"the padding of IR node '{node.path}'", node.loc)
                elif isinstance(node, ir.Merge) and len(node.branches) > 1:
                    claim(base, f"the {node.mode} of IR node '{node.path}'", node.loc)
                elif isinstance(node, ir.Residual) and node.shortcut is not None:
                    claim(base, f"the add of residual '{node.path}'", node.loc)
                elif isinstance(node, ir.DenseConnect):
                    for i in range(len(node.layers)):
                        claim(f"{base}_{i}_concat", f"the concat after layer {i} of IR node '{node.path}'", node.loc)


def outs_names(m: ir.Model) -> list[tuple[str, str]]:
    return [*m.outputs, *((h.name, h.at) for h in m.heads)]


def _mentions(t: ir.TNode, name: str, into_loops: bool = True) -> bool:
    """Whether an attribute or condition in ``t`` (or below it) reads ``name`` (what the Keras code renders);
    ``into_loops`` False: not inside nested loop bodies (which rebind ``in_channels``)."""
    exprs = [v for _, v in t.attrs] + ([t.cond] if t.cond is not None else [])
    for v in exprs:
        for e in v if isinstance(v, tuple) else (v,):
            if isinstance(e, Expr) and name in e.names():
                return True
    if not into_loops and t.kind in ("repeat", "dense_connect"):
        return False
    return any(_mentions(ch, name, into_loops) for ch in t.children)


def _is_default(default, value) -> bool:
    return value is not None and default is not None and value == default and type(value) is type(default)


def _last(t: ir.TNode, scope: Scope):
    """The last item that surely runs in a sequence (for knowing whether its output is non-negative)."""
    for item in reversed(t.children):
        if item.cond is None:
            return item
        if scope.value(item.cond) is True:
            return item
        return None
    return None


def _uses_in_channels(t: ir.TNode) -> bool:
    """Whether any expression in ``t`` (outside nested loop bodies, which rebind it) uses ``in_channels``."""
    return _mentions(t, "in_channels", into_loops=False)

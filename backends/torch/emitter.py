"""PyTorch emitter: IR -> a standalone module of ``nn.Module`` classes, built as a syntax tree.

Each block definition becomes a class whose constructor takes ``in_channels`` and the
block's params; the network becomes the model class, with the inferred shape after each
step as a comment in ``forward``. The module tree follows the IR's names exactly, so a
``state_dict`` key is the IR path of its layer (``layer1.rest.0.conv1.weight``):

* a block body or the network is a class body: one attribute per item; an item with an
  ``if:`` is built under an ``if`` in ``__init__`` (``None`` otherwise) and run under a
  matching ``if`` in ``forward``; an unnamed residual there is written out torchvision's
  way (``identity = x`` ... ``x = x + identity``; ``x += identity`` when the shortcut is
  always added to a body ending in a conv or BN, and an activation after it runs in place),
  an unnamed merge's branches are attributes;
* any other level is an ``nn.Sequential`` of its named items (an ``OrderedDict``), with
  ``nn.Identity()`` for an item whose condition does not hold; merges and residuals there
  are small helper modules whose children are the branches / ``body`` and ``shortcut``;
* repeats are ``nn.Sequential`` loops, dense connections ``nn.ModuleList`` loops.

Where PyTorch lacks a primitive the emitter lowers it exactly: TensorFlow 'same' padding with
stride > 1 is computed at run time (``Conv2dSame``), asymmetric padding is explicit, pooling
padding is -inf for max.

The rank (1-D, 2-D, 3-D) is the model's: its input's spatial axes. Classes are PyTorch's for that
rank (``nn.Conv1d``, ``nn.BatchNorm3d``, ...) and so are the helpers (written for 2-D in
``templates/helpers.py``: ``Conv2dSame`` is emitted as ``Conv1dSame`` in a 1-D model).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, replace
from pathlib import Path

from archc import ir
from archc.expr import Expr, substitute, sym_add, sym_mul
from archc.lower import WIDTH_PREFIX, camel
from archc.ops import PRIMITIVES

from .. import code as c
from ..base import BaseEmitter, Frame, Step
from ..common import (
    NetworkArgs,
    Scope,
    Unsupported,
    ref_keys,
    spec_label,
)
from .init import init_method
from .ops import EMIT, FRESH_OPS, INPLACE_OPS, upsample_kwargs

INPLACE = INPLACE_OPS
FRESH_OUTPUT = ("conv", "dwconv", "bn", "dense", "maxpool", "avgpool", "zeropad", "concat", "add", "mul") + FRESH_OPS
OPTIMIZERS = ("SGDKeras", "RMSpropKeras")  # with -O optimizers: torch optimizers that update as Keras'
HELPER_ORDER = [
    "same_pad",
    "cat_then",
    "Conv2dSame",
    "Conv2dPadded",
    "Conv2dPadding",
    "MaxPool2dSame",
    "pool_pads",
    "MaxPool2dPadded",
    "AvgPool2dPadded",
    "BatchNorm2dNoScale",
    "BatchNorm1dNoScale",
    "BatchNormBiased",
    "BatchNorm2dBiased",
    "BatchNorm1dBiased",
    "BatchNorm2dNoScaleBiased",
    "BatchNorm1dNoScaleBiased",
    "Concat",
    "Add",
    "Mul",
    "Residual",
    "DenseConnect",
    "LayerNorm2d",
    "PointwiseLinear",
    "LayerScale",
    "StochasticDepth",
    "ChannelSlice",
    "Scale",
    "zeropad_padding",
    *OPTIMIZERS,
]
# module-level names of the generated file besides classes: name -> what needs it
MODULE_NAMES = (
    "torch", "nn", "F", "OrderedDict", "NamedTuple", "checkpoint", "_same_pad", "_pool_pads", "_cat_then", "_KeepStats",
)  # fmt: skip


class _Class:
    """What is being emitted for one class: its statements and the names its attributes and locals use."""

    def __init__(self, emitter: TorchEmitter, attrs: set[str], params: list[str], symbolic: bool):
        self.e = emitter
        self.init: list[ast.stmt] = []
        self.hoisted: list[ast.stmt] = []
        self.attrs = c.Namespace(attrs)  # self.<attr>: spec names first
        self.locals = c.Namespace(set(params) | {"self", "in_channels"} | set(emitter.module_names.values()))
        self.fwd = c.Namespace({"self", "x"} | set(emitter.module_names.values()))
        self.symbolic = symbolic
        self.model = False  # the model class (its forward reads the network input's size)
        self.cse: dict[str, str] = {}
        self.uses: dict[str, int] = {}
        self.producer: dict[str, str] = {}
        self.widths: dict[str, Expr] = {}  # running widths (ir.TNode.lets) read off a part built in __init__
        self.saved: dict[str, str] = {}  # key of an output references read (archc.refs) -> its forward local
        self.let_vars: set[str] = set()  # locals of running widths (ir.TNode.lets): dropped where nothing reads them


@dataclass
class _Frame(Frame):
    """A walk's frame in a class: the class being written, the condition inherited from enclosing transparent
    items (an ast expression, or None), whether ``var`` holds a tensor no one else holds (in-place activations
    are then safe)."""

    k: _Class | None = None
    cond: ast.expr | None = None
    fresh: bool = False


class TorchEmitter(BaseEmitter):
    """Emits PyTorch source for an :class:`archc.ir.Model`."""

    name = "torch"
    RANK_MARK = "2d"
    MODULE_NAMES = MODULE_NAMES
    HELPERS = tuple(HELPER_ORDER)
    RANKED_BODIES = frozenset({"_KeepStats"})
    EMIT = EMIT
    TEMPLATE = Path(__file__).parent / "templates" / "helpers.py"

    options = {
        "memory_efficient": "checkpoint dense layers in training: recompute concatenations instead of storing them",
        "optimizers": "also emit SGDKeras and RMSpropKeras: PyTorch optimizers that update as Keras'",
    }

    def __init__(self, memory_efficient: bool = False, optimizers: bool = False):
        super().__init__()
        self.memory_efficient = memory_efficient
        self.optimizers = optimizers

    # ------------------------------------------------------------------ the module (BaseEmitter's hooks)
    def start(self) -> None:
        self.used: set[str] = {"nn"}
        if self.optimizers:
            self.helpers.update(OPTIMIZERS)

    def spec_names(self, model: ir.Model) -> set[str]:
        # the spec's names come first: block classes, block params (constructor locals), public names
        names = {camel(b.name) for b in model.blocks} | {model.class_name, "LOSS_WEIGHTS", "build_model"}
        names.update(p for p, _ in model.params)  # the model's constructor arguments
        for b in model.blocks:
            names.update(p for p, _ in b.params)
        if model.heads:
            names.add(f"{model.class_name}Outputs")
        return names

    def definitions(self) -> list[ast.stmt]:
        m = self.model
        classes = [self.block_class(b) for b in m.blocks] + self.model_class()
        doc = f"Build {m.class_name} as {spec_label(m.spec_file)} specifies it."
        if self.signature:  # keyword arguments: the spec's params (as ``archc build --set`` would set them)
            made = c.call(c.name(m.class_name))
            made.keywords = [ast.keyword(arg=None, value=c.name("kwargs"))]
            doc += f"\n\nKeyword arguments: those of {m.class_name} (the spec's params)."
            build = c.function("build_model", [], [c.ret(made)], doc=doc)
            build.args.kwarg = ast.arg(arg="kwargs")
        else:
            build = c.function("build_model", [], [c.ret(c.call(c.name(m.class_name)))], doc=doc)
        return [*classes, build]

    def default_doc(self) -> str:
        return f"{self.model.class_name}, generated by archc."

    def shape_text(self, shape) -> str:
        return _shape_text(shape)

    def ref(self, n: str) -> ast.expr:
        """A module-level name (import alias or helper), marked as used."""
        if n in self.helper_names:
            self.helpers.add(n)
            return c.name(self.helper_names[n])
        self.used.add(n)
        return c.name(self.module_names[n])

    def nn(self, cls: str, *args, **kwargs) -> ast.Call:
        return c.call(c.attr(self.ref("nn"), cls), *args, **kwargs)

    def nd_class(self, cls: str) -> ast.expr:
        """``nn.<cls>Nd`` for this model's rank: ``self.nd_class("ConvTranspose")`` -> ``nn.ConvTranspose2d``."""
        return c.attr(self.ref("nn"), f"{cls}{max(self.rank, 1)}d")

    def nd(self, cls: str, *args, **kwargs) -> ast.Call:
        """``nn.<cls>Nd(...)`` for this model's rank: ``self.nd("Conv", ...)`` -> ``nn.Conv2d(...)`` in 2-D."""
        return self.nn(f"{cls}{max(self.rank, 1)}d", *args, **kwargs)

    def imports(self) -> list[ast.stmt]:
        m = self.module_names
        out: list[ast.stmt] = []

        def alias(mod, n):
            return ast.alias(name=n, asname=None if m[n] == n else m[n])

        if "OrderedDict" in self.used:
            out.append(ast.ImportFrom(module="collections", names=[alias("collections", "OrderedDict")], level=0))
        if "NamedTuple" in self.used:
            out.append(ast.ImportFrom(module="typing", names=[alias("typing", "NamedTuple")], level=0))
        third: list[ast.stmt] = []  # torch's: after a blank line where the standard library's come first
        if "torch" in self.used:  # torch.flatten, torch.cat, ...: a network of modules alone imports nn only
            third.append(
                ast.Import(names=[ast.alias(name="torch", asname=None if m["torch"] == "torch" else m["torch"])])
            )
        if "F" in self.used:
            third.append(ast.Import(names=[ast.alias(name="torch.nn.functional", asname=m["F"])]))
        third.append(ast.ImportFrom(module="torch", names=[alias("torch", "nn")], level=0))
        if "checkpoint" in self.used:
            third.append(ast.ImportFrom(module="torch.utils.checkpoint", names=[alias("", "checkpoint")], level=0))
        if out:
            third[0] = c.blank_before(third[0])
        return out + third

    def helper_dependencies(self) -> None:
        if "Conv2dPadding" in self.helpers:
            self.helpers |= {"same_pad", "zeropad_padding"}
        if "Conv2dSame" in self.helpers or "MaxPool2dSame" in self.helpers:
            self.helpers.add("same_pad")
        if self.helpers & {"MaxPool2dPadded", "AvgPool2dPadded"}:
            self.helpers.add("pool_pads")
        if self.helpers & {"Conv2dPadded", "Conv2dPadding", "same_pad", "LayerNorm2d", "PointwiseLinear", "pool_pads"}:
            self.used.add("F")
        biased = {h for h in self.helpers if h.startswith("BatchNorm") and h.endswith("dBiased")}
        if biased:  # Keras' running variance: the mixin, and NoScale for the classes without a learned scale
            self.helpers |= {"BatchNormBiased", *(h.removesuffix("Biased") for h in biased if "NoScale" in h)}
            self.used.add("F")
        if "DenseConnect" in self.helpers and self.memory_efficient:
            self.helpers.add("cat_then")
        if "cat_then" in self.helpers:
            self.used.add("checkpoint")

    def helper_defs(self) -> list[ast.stmt]:
        defs = super().helper_defs()
        torch = self.module_names["torch"]
        if any(isinstance(n, ast.Name) and n.id == torch for d in defs for n in ast.walk(d)):
            self.used.add("torch")  # a helper's torch.cat, torch.full, ...
        return defs

    def helper_templates(self, key: str) -> list[str]:
        groups = {
            "same_pad": ["_same_pad"],
            "pool_pads": ["_pool_pads"],
            "cat_then": ["_cat_then", "_KeepStats"],
            "DenseConnect": [self._dense_connect()],
        }
        return groups.get(key, [key])

    def helper_aliases(self) -> dict[str, str]:
        return {self._dense_connect(): self.helper_names["DenseConnect"]}

    def _dense_connect(self) -> str:
        return "DenseConnectMemoryEfficient" if self.memory_efficient else "DenseConnect"

    # ------------------------------------------------------------------ classes
    def block_class(self, b: ir.BlockDef) -> ast.stmt:
        params = [p for p, _ in b.params]
        extra = list(b.inputs[1:])  # inputs besides the main one: forward arguments, their widths __init__'s
        widths = [f"{i}_channels" for i in extra]
        k = _Class(self, _attr_names(b.body), params + widths, symbolic=True)
        k.fwd.reserve(*extra)
        scope = Scope(None)
        self.count_widths(b.body, scope, k)
        keys, given = ref_keys(b.body), {i: i for i in extra}
        fwd = self.save_inputs(k.fwd, k.saved, keys, given, b.inputs[0] if b.inputs else None, "x")
        fwd += self.class_body(b.body, scope, k, "x", top=False)
        fwd.append(c.ret(c.name("x")))
        fwd = c.name_saved_outputs(fwd, "x", set(k.saved.values()))
        if any(n.startswith("__w") for n in b.out_ch.names()):  # callers read the width this block gives
            k.init.append(c.assign(c.attr("self", "out_channels"), k.final_scope.node(b.out_ch)))
        required = [p for p, d in b.params if d is None]
        defaulted = [(p, d) for p, d in b.params if d is not None]
        init = c.function(
            "__init__",
            ["self", "in_channels", *widths, *required, *(p for p, _ in defaulted)],
            [
                c.expr_stmt(c.call(c.attr(c.call(c.name("super")), "__init__"))),
                *c.drop_unused([*k.hoisted, *k.init], k.let_vars),
            ],
            defaults=dict(defaulted),
        )
        forward = c.function("forward", ["self", "x", *extra], fwd)
        return c.class_(
            camel(b.name), [c.attr(self.ref("nn"), "Module")], [init, forward], doc=b.doc or f"The '{b.name}' block."
        )

    def model_class(self) -> list[ast.stmt]:
        """The model class, its constructor taking the spec's params (:func:`network_args`); where the network
        cannot be written in their terms, at the spec's values with no arguments (as before)."""
        state = (set(self.helpers), set(self.used))
        try:
            return self._model_class(symbolic=True)
        except Unsupported:
            self.helpers, self.used = state
            return self._model_class(symbolic=False)

    def _model_class(self, symbolic: bool) -> list[ast.stmt]:
        m = self.model
        args = NetworkArgs(m, self.instances) if symbolic else None
        scope = args.scope() if args else Scope({**dict(m.params), "in_channels": m.input_shape[-1]})
        attrs = _attr_names(m.network) | {h.name for h in m.heads} | {"loss_weights"}
        k = _Class(self, attrs, args.candidates if args else [], symbolic=False)
        k.model = True
        self.taps = {h.at: h for h in m.heads}
        self.head_vars: dict[str, str] = {}
        for h in m.heads:  # a head's output is its forward local (no other local takes the name)
            self.head_vars[h.name] = k.fwd.fresh(h.name)
        keys = ref_keys(m.network) + [key for _, key in m.outputs]
        fwd = self.save_inputs(k.fwd, k.saved, keys, {}, m.input_name, "x")
        fwd += self.class_body(m.network, scope, k, "x", top=True)
        if hasattr(k, "input_size"):
            spatial = ast.Slice(lower=c.lit(2), upper=None, step=None)
            fwd.insert(0, c.assign(k.input_size, c.subscript(c.attr("x", "shape"), spatial)))
        out: list[ast.stmt] = []
        body: list[ast.stmt] = []
        layout = {1: "NCL", 2: "NCHW", 3: "NCDHW"}[self.rank]
        doc = f"{m.name}: input {_shape_text(m.input_shape)} ({layout})."
        if m.outputs:  # a dict of the named outputs, in order (as torchvision's IntermediateLayerGetter returns)
            names = [n for n, _ in m.outputs]
            outputs = [(c.lit(n), c.name(k.saved[key])) for n, key in m.outputs]
            heads = [(c.lit(hd.name), c.name(self.head_vars[hd.name])) for hd in m.heads]
            if heads:
                both = outputs + heads
                fwd.append(c.if_(c.attr("self", "training"), [c.ret(ast.Dict(*map(list, zip(*both))))]))
                body.append(c.assign("loss_weights", c.name("LOSS_WEIGHTS")))
            fwd.append(c.ret(ast.Dict(*map(list, zip(*outputs)))))
            doc += f"\n\nReturns a dict of its outputs: {', '.join(names)}."
            if heads:
                doc += f" In training mode also the auxiliary heads': {', '.join(hd.name for hd in m.heads)}."
        elif m.heads:
            out_cls = f"{m.class_name}Outputs"
            fields = ["main"] + [hd.name for hd in m.heads]
            ann = [
                ast.AnnAssign(target=c.store(f), annotation=c.attr(self.ref("torch"), "Tensor"), simple=1)
                for f in fields
            ]
            out.append(
                c.class_(
                    out_cls,
                    [self.ref("NamedTuple")],
                    ann,
                    doc="Outputs in training mode: the main logits, then each auxiliary head's.",
                )
            )
            fwd.append(
                c.if_(
                    c.attr("self", "training"),
                    [c.ret(c.call(c.name(out_cls), c.name("x"), *(c.name(self.head_vars[hd.name]) for hd in m.heads)))],
                )
            )
            body.append(c.assign("loss_weights", c.name("LOSS_WEIGHTS")))
            heads = ", ".join(hd.name for hd in m.heads)
            doc += f"\n\nIn training mode returns {out_cls}(main, {heads}); in eval mode the main logits."
        if not m.outputs:
            fwd.append(c.ret(c.name("x")))
        fwd = c.name_saved_outputs(fwd, "x", set(k.saved.values()))
        init_name = k.attrs.fresh("_init_weights")
        init_weights = init_method(self, m, init_name)  # the spec's init: (backends/torch/init.py)
        init_call = [c.expr_stmt(c.call(c.attr("self", init_name)))] if init_weights else []
        init_body = [*k.hoisted, *k.init, *init_call]
        signature: list[str] = []
        if args:
            signature, derived = args.signature(init_body, fwd)
            init_body = derived + c.hoist_widths([*k.hoisted, *k.init], set(signature), k.locals) + init_call
            if signature:
                doc += "\n\n" + args.doc()
        init_body = c.drop_unused(init_body, k.let_vars)
        init = c.function(
            "__init__",
            ["self"],
            [c.expr_stmt(c.call(c.attr(c.call(c.name("super")), "__init__"))), *init_body],
        )
        if signature:
            init.args.kwonlyargs = [ast.arg(arg=p) for p in signature]
            init.args.kw_defaults = [args.default(p) for p in signature]
        self.signature = signature
        body += [init, c.function("forward", ["self", "x"], fwd), *([init_weights] if init_weights else [])]
        out.append(c.class_(m.class_name, [c.attr(self.ref("nn"), "Module")], body, doc=doc))
        return out

    # ------------------------------------------------------------------ class bodies (BaseEmitter.walk's hooks)
    def class_body(self, seq: ir.TNode, scope: Scope, k: _Class, var: str, top: bool, cond=None) -> list[ast.stmt]:
        """forward statements for the items of a class-level sequence (``__init__`` goes to ``k.init``).

        ``var`` is the forward variable the items transform; ``cond`` the condition inherited from
        enclosing transparent items (an ast expression, or None).
        """
        f = _Frame(var, k.saved, top, k=k, cond=cond)
        fwd = self.walk(seq, scope, f)
        k.final_scope = f.final_scope
        return fwd

    def step(self, s: Step, f: _Frame) -> list[ast.stmt]:
        t, k = s.item, f.k
        read = None
        if s.read is not None:  # it reads a kept output
            read = c.assign(f.var, c.name(s.read))
            f.fresh = False
        item_cond = c.and_(f.cond, s.own) if s.own is not None else f.cond
        if s.own is not None and t.transparent:  # several attributes under one condition: one if for all
            emit = lambda: self.class_item(t, s.scope, k, f.var, f.top, f.cond, False)  # noqa: E731
            stmts = self.guarded(s.own, k, emit)
        else:
            stmts = self.class_item(t, s.scope, k, f.var, f.top, item_cond, f.fresh)
        fwd = self.with_read(stmts, read, item_cond is not None or s.own is not None, t, k)
        f.fresh = item_cond is None and (t.kind in FRESH_OUTPUT + INPLACE or _adds_shortcut(t, s.scope))
        return fwd

    def kept(self, f: _Frame) -> None:
        f.fresh = False  # (a kept output is never changed in place)

    def head(self, head: ir.Head, scope: Scope, f: _Frame) -> list[ast.stmt]:
        k = f.k
        template, tail = head.template, None
        last = template.children[-1] if template.children else None
        if last is not None and last.kind == "upsample" and scope.value(last.attr("size")) == "input":
            template, tail = replace(template, children=template.children[:-1]), last  # (F.interpolate)
        k.init.append(c.assign(c.attr("self", head.name), self.container(template, scope, k)))
        hv = self.head_vars[head.name]  # (named first: no other local takes the name)
        value = c.call(c.attr("self", head.name), c.name(f.var))
        if tail is not None:  # resized to the model input's size, as the main output is
            kw = [("size", c.name(self.input_size(k))), *upsample_kwargs(self, tail, scope)]
            value = c.kwcall(c.attr(self.ref("F"), "interpolate"), [value], kw)
        f.fresh = False
        return [c.assign(hv, c.ifexp(c.attr("self", "training"), value, c.lit(None)))]

    def with_read(self, stmts: list[ast.stmt], read, conditional: bool, t: ir.TNode, k: _Class) -> list[ast.stmt]:
        """An item's statements after ``read`` (``x = kept``: it reads a kept output): under the item's own test
        when the item is built only under a condition (forward cannot read the condition's params)."""
        if read is None:
            return stmts
        if not conditional:
            return [read, *stmts]
        if len(stmts) == 1 and isinstance(stmts[0], ast.If) and not stmts[0].orelse:
            stmts[0].body.insert(0, read)
            return stmts
        if not stmts:
            return []
        raise Unsupported(f"torch backend: a conditional '{t.kind}' reading '{t.src[0]}' by name", t.loc)

    def apply_lets(self, seq: ir.TNode, i: int, scope: Scope, f: _Frame, out: list | None) -> Scope:
        """The scope after the running widths named before child ``i`` of ``seq`` (see ``ir.TNode.lets``).

        In the model every width is known (from the instances); in a block class a named width becomes a
        local of ``__init__`` (when statements fit here: ``out`` is not None), or its definition is written out.
        """
        k, statements = f.k, out is not None
        for idx, sym, definition in seq.lets:
            if idx != i:
                continue
            prev = seq.children[i - 1]
            if scope.values is not None:
                scope = Scope({**scope.values, sym: self._width_before(seq, i)}, scope.rename)
            elif definition is not None and not statements:
                scope = scope.with_rename(**{sym: definition})
            elif definition is not None:
                var = k.locals.fresh(f"{prev.name}_channels")
                k.let_vars.add(var)
                k.init.append(c.assign(var, scope.node(definition)))
                scope = scope.with_rename(**{sym: Expr(var)})
            elif prev.cond is not None and scope.value(prev.cond) is False:  # never built here: never read
                scope = scope.with_rename(**{sym: Expr("0")})
            elif prev.kind == "call" and statements:  # the block's width formula stays in its class
                var = k.locals.fresh(f"{prev.name}_channels")
                k.let_vars.add(var)
                me = c.attr("self", prev.name)
                value = c.attr(me, "out_channels")
                if prev.cond is not None:
                    value = c.ifexp(c.compare(me, "is not", c.lit(None)), value, c.lit(0))
                k.init.append(c.assign(var, value))
                scope = scope.with_rename(**{sym: Expr(var)})
            elif sym in k.widths:  # a block built inside a nested level: read off its instance (see entries)
                scope = scope.with_rename(**{sym: k.widths[sym]})
            else:  # a part with widths of its own inside: its formula over them
                formula = _inline_widths(dict(seq.opaque)[sym], prev, k.widths)
                if any(n.startswith(WIDTH_PREFIX) for n in formula.names() - set(scope.rename)):
                    raise Unsupported(
                        f"torch backend: the width after '{prev.name}' depends on its input through a chain of "
                        "conditions too long to write out here; name the part as a block of its own",
                        prev.loc,
                    )
                if statements:
                    var = k.locals.fresh(f"{prev.name}_channels")
                    k.let_vars.add(var)
                    k.init.append(c.assign(var, scope.node(formula)))
                    formula = Expr(var)
                scope = scope.with_rename(**{sym: formula})
        return scope

    def _width_before(self, seq: ir.TNode, i: int) -> int:
        """The width the model's instance of ``seq`` has before its child ``i``."""
        for t in reversed(seq.children[:i]):
            inst = self.instances.get(id(t))
            if inst:
                return inst[0].out_shape[-1]
        return self.instances[id(seq)][0].in_shape[-1]

    def guarded(self, test, k: _Class, emit) -> list[ast.stmt]:
        """Run ``emit`` (it adds ``__init__`` statements and returns forward ones) under condition ``test``:
        ``__init__`` builds the attributes only when it holds (``None`` otherwise), forward tests the first one."""
        outer, k.init = k.init, []
        fwd = emit()
        inner, k.init = k.init, outer
        attrs = _assigned_attrs(inner)
        always = _assigned_attrs([s for s in inner if isinstance(s, ast.Assign)])  # built whenever test holds
        if always:
            k.init.append(c.if_(test, inner, [c.assign(c.attr("self", a), c.lit(None)) for a in attrs]))
            check = c.compare(c.attr("self", always[0]), "is not", c.lit(None))
        else:  # nothing built for sure (e.g. a flatten, or only conditional parts): a flag tells forward
            flag = k.attrs.fresh("use_block")
            k.init.append(c.assign(c.attr("self", flag), test))
            if inner:
                k.init.append(
                    c.if_(c.attr("self", flag), inner, [c.assign(c.attr("self", a), c.lit(None)) for a in attrs])
                )
            check = c.attr("self", flag)
        return [c.if_(check, fwd)] if fwd else []

    def class_item(self, t, scope: Scope, k: _Class, var: str, top: bool, cond, fresh_in: bool) -> list[ast.stmt]:
        comment = self.shape_comment(t) if top else None
        v = c.name(var)
        if t.kind == "seq" and t.transparent:
            return self.class_body(t, scope, k, var, top, cond)
        if t.kind == "seq" and _opens(t, k.saved):  # references reach inside: its items called one by one
            k.init.append(c.assign(c.attr("self", t.name), self.container(t, scope, k, opened=True)))
            return self.open_forward(t, c.attr("self", t.name), scope, k, var)
        if t.kind == "residual" and t.transparent:
            return self.class_residual(t, scope, k, var, top, cond, comment)
        if t.kind in ("concat", "add", "mul") and t.src:  # named outputs merged
            stmt = c.assign(var, self.merge_value(t.kind, [c.name(k.saved[s]) for s in t.src]), comment)
            if cond is None:
                return [stmt]
            flag = k.attrs.fresh(f"use_{t.name}")  # (forward cannot read the condition's params)
            k.init.append(c.assign(c.attr("self", flag), cond))
            return [c.if_(c.attr("self", flag), [stmt])]
        if t.kind in ("concat", "add", "mul") and t.transparent:
            return self.class_merge(t, scope, k, var, cond, comment)
        me = c.attr("self", t.name)
        if t.kind == "flatten" and cond is None:
            return [c.assign(var, c.call(c.attr(self.ref("torch"), "flatten"), v, 1), comment)]
        if t.kind == "gap" and cond is None:
            k.init.append(c.assign(me, self.nd("AdaptiveAvgPool", 1)))
            return [c.assign(var, c.call(c.attr(self.ref("torch"), "flatten"), c.call(me, v), 1), comment)]
        like = t.attr("like") if t.kind == "upsample" else None
        if t.kind == "upsample" and (like is not None or scope.value(t.attr("size")) == "input"):
            if like is None and not k.model:
                raise Unsupported("upsample to the input's size outside the model class", t.loc)
            spatial = ast.Slice(lower=c.lit(2), upper=None, step=None)
            size = c.subscript(c.attr(k.saved[like], "shape"), spatial) if like else c.name(self.input_size(k))
            kw = [("size", size), *upsample_kwargs(self, t, scope)]
            resized = c.kwcall(c.attr(self.ref("F"), "interpolate"), [v], kw)
            if cond is None:
                return [c.assign(var, resized, comment)]
            return [c.if_(cond, [c.assign(var, resized, comment)])]
        if t.kind == "dense_connect" and cond is None:
            layer, n, i = self.dense_layers(t, scope, k)
            k.init.append(c.assign(me, self.nn("ModuleList", c.listcomp(layer, i, c.call("range", n)))))
            return self.dense_forward(me, var, comment, k)
        module = self.module(t, scope, k, inplace=fresh_in)
        more = [c.name(k.saved[s]) for s in t.src[1:]] if t.kind == "call" else []  # a block's other inputs
        stmt = c.assign(var, c.call(me, v, *more), comment)
        if cond is None:
            k.init.append(c.assign(me, module))
            return [stmt]
        k.init.append(c.if_(cond, [c.assign(me, module)], [c.assign(me, c.lit(None))]))
        return [c.if_(c.compare(me, "is not", c.lit(None)), [stmt])]

    def input_size(self, k: _Class) -> str:
        """The forward local holding the model input's spatial size (``size = x.shape[2:]``, set first)."""
        if not hasattr(k, "input_size"):
            k.input_size = k.fwd.fresh("input_size")
        return k.input_size

    def class_merge(self, t, scope: Scope, k: _Class, var: str, cond, comment) -> list[ast.stmt]:
        v = c.name(var)
        outs = []
        for br in t.children:
            if not br.children:
                outs.append(v)
                continue
            me = c.attr("self", br.name)
            module = self.container(br, scope, k)
            k.init.append(c.assign(me, module) if cond is None else c.assign(me, c.ifexp(cond, module, c.lit(None))))
            outs.append(c.call(me, v))
        stmt = c.assign(var, self.merge_value(t.kind, outs), comment)
        if cond is None:
            return [stmt]
        first = next((c.attr("self", br.name) for br in t.children if br.children), None)
        return [c.if_(c.compare(first, "is not", c.lit(None)) if first is not None else cond, [stmt])]

    def merge_value(self, kind: str, outs: list[ast.expr]) -> ast.expr:
        """``torch.cat([a, b], 1)``, ``a + b`` or ``a * b``."""
        if kind == "concat":
            return c.call(c.attr(self.ref("torch"), "cat"), c.lst(outs), 1)
        value = outs[0]
        for o in outs[1:]:
            value = c.binop(value, "+" if kind == "add" else "*", o)
        return value

    def class_residual(self, t, scope: Scope, k: _Class, var: str, top: bool, cond, comment) -> list[ast.stmt]:
        when = scope.value(t.attr("when"))
        body_t, short_t = t.children
        identity = k.fwd.fresh("identity")
        fwd = [c.assign(identity, c.name(var))]
        fwd += self.class_body(body_t, scope, k, var, False)
        if when is False:
            return fwd[1:]
        kept = any(n.key in k.saved for n in ir.walk_template(body_t))  # (a kept output must not change in place)
        if when is True and _fresh_end(body_t, scope) and not kept:  # torchvision's ``out += identity``
            add = c.commented(ast.AugAssign(target=c.store(var), op=ast.Add(), value=c.name(identity)), comment)
        else:
            add = c.assign(var, c.binop(c.name(var), "+", c.name(identity)), comment)
        if when is True:
            return fwd + self.class_body(short_t, scope, k, identity, False) + [add]
        # decided by the block's arguments: a flag set in __init__, tested in forward
        flag = k.attrs.fresh(f"use_{t.name}")
        test = scope.node(t.attr("when"))
        outer, k.init = k.init, []
        short = self.class_body(short_t, scope, k, identity, False)
        inner, k.init = k.init, outer
        k.init.append(c.assign(c.attr("self", flag), test))
        attrs = _assigned_attrs(inner)
        if inner:
            k.init.append(c.if_(c.attr("self", flag), inner, [c.assign(c.attr("self", a), c.lit(None)) for a in attrs]))
        return fwd + [c.if_(c.attr("self", flag), [*short, add])]

    def dense_forward(self, me, var: str, comment, k: _Class) -> list[ast.stmt]:
        torch = self.ref("torch")
        feats, layer_var, keep_var = k.fwd.fresh("features"), k.fwd.fresh("layer"), k.fwd.fresh("keep")
        k.fwd.taken.difference_update((feats, layer_var, keep_var))  # dead after the loop
        cat = c.call(c.attr(torch, "cat"), c.name(feats), 1)
        layer = c.name(layer_var)
        if self.memory_efficient:
            self.helpers.add("cat_then")
            self.used.add("checkpoint")
            keep = c.call(c.name(self.module_names["_KeepStats"]), layer)
            ck = c.call(
                self.ref("checkpoint"),
                c.name(self.module_names["_cat_then"]),
                layer,
                c.starred(c.name(feats)),
                use_reentrant=False,
                context_fn=c.name(keep_var),
            )
            loop = [
                c.if_(
                    c.and_(c.attr("self", "training"), c.call(c.attr(torch, "is_grad_enabled"))),
                    [c.assign(keep_var, keep), c.expr_stmt(c.call(c.attr(feats, "append"), ck))],
                    [c.expr_stmt(c.call(c.attr(feats, "append"), c.call(layer, cat)))],
                )
            ]
        else:
            loop = [c.expr_stmt(c.call(c.attr(feats, "append"), c.call(layer, cat)))]
        return [
            c.assign(feats, c.lst([c.name(var)])),
            c.for_(layer_var, me, loop),
            c.assign(var, c.call(c.attr(torch, "cat"), c.name(feats), 1), comment),
        ]

    # ------------------------------------------------------------------ containers (nested levels)
    def entries(self, seq: ir.TNode, scope: Scope, k: _Class, cond=None) -> list[tuple[str, ast.expr, ir.TNode]]:
        """(name, module, item) of a level's items, transparent seqs flattened, conditional ones as
        ``nn.Identity()``."""
        out = []
        prev = None
        for s in self.steps(seq, scope, _Frame("x", k.saved, k=k)):
            t, scope = s.item, s.scope
            item_cond = c.and_(cond, s.own) if s.own is not None else cond
            if t.kind == "seq" and t.transparent:
                out += self.entries(t, scope, k, item_cond)
                prev = None
                continue
            if _moduleless(t):  # computed in forward from kept outputs (an opened seq's: see open_forward)
                prev = None
                continue
            fresh = prev is not None and prev.kind in FRESH_OUTPUT + INPLACE and prev.key not in k.saved
            module = self.module(t, scope, k, inplace=fresh and not t.src)
            if t.kind == "call" and scope.values is None:
                opaque = [sym for idx, sym, d in seq.lets if idx == s.index + 1 and d is None]
                if opaque:  # its width stays inside the block: name the instance, read the width off it
                    var = k.locals.fresh(t.name)
                    module = ast.NamedExpr(target=c.store(var), value=module)
                    k.widths[opaque[0]] = Expr(f"{var}.out_channels")
            if item_cond is not None:
                module = c.ifexp(item_cond, module, self.nn("Identity"))
            out.append((t.name, module, t))
            prev = t if item_cond is None else None
        return out

    def open_forward(self, seq: ir.TNode, owner: ast.expr, scope: Scope, k: _Class, var: str) -> list[ast.stmt]:
        """forward of a named seq whose items references reach (``backbone.layer3``): built as one container
        (``self.backbone``, the same state_dict names), its items called one by one, the kept ones kept."""
        out: list[ast.stmt] = []
        for s in self.steps(seq, scope, _Frame(var, k.saved, k=k)):
            t, scope = s.item, s.scope
            if t.kind == "seq" and t.transparent:
                out += self.open_forward(t, owner, scope, k, var)
                continue
            me = c.attr(owner, t.name)
            src = c.name(s.read) if s.read is not None else None
            if t.kind in ("concat", "add", "mul") and t.src:
                out.append(c.assign(var, self.merge_value(t.kind, [c.name(k.saved[s]) for s in t.src])))
            elif t.kind == "upsample" and t.attr("like") is not None:
                spatial = ast.Slice(lower=c.lit(2), upper=None, step=None)
                kw = [("size", c.subscript(c.attr(k.saved[t.attr("like")], "shape"), spatial))]
                kw += upsample_kwargs(self, t, scope)
                value = c.kwcall(c.attr(self.ref("F"), "interpolate"), [src or c.name(var)], kw)
                out.append(c.assign(var, value))
            elif t.kind == "seq" and _opens(t, k.saved):
                if src is not None:
                    out.append(c.assign(var, src))
                out += self.open_forward(t, me, scope, k, var)
            else:
                more = [c.name(k.saved[s]) for s in t.src[1:]] if t.kind == "call" else []
                out.append(c.assign(var, c.call(me, src or c.name(var), *more)))
            if t.key in k.saved:
                out.append(c.assign(k.saved[t.key], c.name(var)))
        return out

    def container(self, seq: ir.TNode, scope: Scope, k: _Class, opened: bool = False) -> ast.expr:
        """One module for a nested level: ``nn.Sequential(OrderedDict(name=module, ...))``; a level of one
        stateless module (a pool, an activation) is that module, unwrapped, unless ``opened`` (forward calls
        its items by name). A wrapper around modules with weights stays: its name is in their state_dict keys
        (``layer2.first.downsample.conv.weight``), which weight conversion and the torchvision mappings read. A level of
        one item (``ir.TNode.single``) is that item's module: the lowering gave the item the level's path."""
        if seq.single and seq.children:
            return self.module(seq.children[0], scope, k)
        items = self.entries(seq, scope, k)
        if not items:
            return self.nn("Identity")
        if len(items) == 1 and not opened and _stateless(items[0][2]):
            return items[0][1]
        return self.nn("Sequential", c.kwcall(self.ref("OrderedDict"), [], [(n, m) for n, m, _ in items]))

    # ------------------------------------------------------------------ modules
    def module(self, t: ir.TNode, scope: Scope, k: _Class, inplace: bool = False) -> ast.expr:
        kind = t.kind
        if kind in EMIT:
            return EMIT[kind](self, t, scope, k, inplace)
        if kind == "seq":
            return self.container(t, scope, k, opened=_opens(t, k.saved))
        if kind in ("concat", "add", "mul"):
            helper = {"concat": "Concat", "add": "Add", "mul": "Mul"}[kind]
            branches = [(br.name, self.container(br, scope, k)) for br in t.children]
            return c.kwcall(self.ref(helper), [c.kwcall(self.ref("OrderedDict"), [], branches)], [])
        if kind == "residual":
            when = scope.value(t.attr("when"))
            body = self.container(t.children[0], scope, k)
            short = self.container(t.children[1], scope, k)
            if when is None:
                short = c.ifexp(scope.node(t.attr("when")), short, c.lit(None))
            elif when is False:
                short = c.lit(None)
            return c.call(self.ref("Residual"), body, short)
        if kind == "dense_connect":
            layer, n, i = self.dense_layers(t, scope, k)
            if self.memory_efficient:
                self.helpers.add("cat_then")
            return c.call(self.ref("DenseConnect"), c.listcomp(layer, i, c.call("range", n)))
        if kind == "repeat":
            return self.repeat(t, scope, k)
        if kind == "call":
            return self.call(t, scope, k)
        raise Unsupported(f"torch backend cannot emit '{kind}'", t.loc)

    def call(self, t: ir.TNode, scope: Scope, k: _Class) -> ast.expr:
        defaults = dict(self.model.block(t.block).params)
        kwargs = []
        for p, v in t.attrs:
            known = scope.value(v)
            if known is not None and defaults.get(p) is not None and known == defaults[p]:
                continue  # the block's own default: leave it out, as a person would
            kwargs.append((p, scope.node(v)))
        widths = [self.width(w, scope, k) for w in t.src_ch[1:]]  # a block's other inputs' widths
        return c.kwcall(c.name(camel(t.block)), [self.width(t.in_ch, scope, k), *widths], kwargs)

    def dense_layers(self, t: ir.TNode, scope: Scope, k: _Class):
        """(layer module expression in terms of the loop variable, the count, the loop variable)."""
        body = t.children[0]
        i = k.locals.fresh("i")
        layer_in = sym_add(t.in_ch, sym_mul(Expr(i), body.out_ch))
        layer = self.container(body, scope.with_rename(in_channels=layer_in), k)
        k.locals.taken.discard(i)
        return layer, scope.node(t.attr("layers")), i

    def repeat(self, t: ir.TNode, scope: Scope, k: _Class) -> ast.expr:
        body = t.children[0]
        n = t.attr("times")
        later = _after_first(t)
        if any(n.startswith("__w") for n in later.names()) and scope.values is not None:
            inst = self.instances[id(t)][0]  # the model's own repeat: its widths are known
            later = Expr(str(inst.iterations[0].out_shape[-1])) if inst.iterations else t.in_ch
        first = self.container(body, scope.with_rename(in_channels=t.in_ch), k)
        rest = self.container(body, scope.with_rename(in_channels=later), k)
        count = scope.value(n)
        if c.same(first, rest):
            return self.nn("Sequential", c.starred(c.listcomp(first, "_", c.call("range", scope.node(n)))))
        if count is not None and count <= 1:
            if count == 1 and _stateless(body):  # one stateless module: itself (no key changes: it has none)
                return first
            return self.nn("Sequential", first) if count == 1 else self.nn("Sequential")
        later = c.listcomp(rest, "_", c.call("range", c.binop(scope.node(n), "-", c.lit(1))))
        return self.nn("Sequential", first, c.starred(later))

    def width(self, e, scope: Scope, k: _Class) -> ast.expr:
        """A channel count; computed once into a named local when the class uses it more than once."""
        node = scope.node(e)
        if not k.symbolic or isinstance(node, (ast.Name, ast.Constant)) or scope.rename:
            return node
        key = ast.dump(node)
        if k.uses.get(key, 0) < 2 or not isinstance(e, Expr) or not e.names() <= self._class_names(k):
            return node
        if key not in k.cse:
            var = k.locals.fresh(k.producer.get(key, "channels"))
            k.cse[key] = var
            k.hoisted.append(c.assign(var, node))
        return c.name(k.cse[key])

    def _class_names(self, k: _Class) -> set[str]:
        return (k.locals.taken - set(self.module_names.values())) | {"in_channels"}

    def count_widths(self, seq: ir.TNode, scope: Scope, k: _Class) -> None:
        """How often each channel expression is used in a block class, and what to call it."""

        def visit(t: ir.TNode, prev_name: str | None):
            if any(n.startswith("__w") for n in t.in_ch.names()):
                return  # a named running width: a local already
            if t.kind in ("conv", "dwconv", "bn", "dense", "call", "layernorm", "groupnorm", "layer_scale"):
                key = ast.dump(scope.node(t.in_ch))
                k.uses[key] = k.uses.get(key, 0) + 1
                if prev_name and key not in k.producer:
                    k.producer[key] = f"{prev_name}_channels"
            if (
                t.kind == "conv"
                and isinstance(t.attr("out"), Expr)
                and not any(n.startswith("__w") for n in t.attr("out").names())
            ):
                key = ast.dump(scope.node(t.attr("out")))
                k.uses[key] = k.uses.get(key, 0) + 1
                k.producer.setdefault(key, f"{t.name}_channels")
            if t.kind in ("repeat", "dense_connect"):
                return  # a loop body's widths depend on the loop
            last = prev_name
            for ch in t.children:
                visit(ch, last)
                if t.kind == "seq":
                    last = ch.name if not (ch.kind == "seq" and ch.transparent) else last

        visit(seq, None)


def _shape_text(shape) -> str:
    """A shape ``(*spatial, C)`` as PyTorch lays it out: ``N x C x H x W``."""
    return " x ".join(["N", str(shape[-1]), *map(str, shape[:-1])])


def _stateless(t: ir.TNode) -> bool:
    """Whether the module of ``t`` has no state_dict entries: a primitive without weights, or a level of one such."""
    if t.kind == "seq" and not t.transparent:
        return len(t.children) == 1 and _stateless(t.children[0])
    return t.kind in PRIMITIVES and PRIMITIVES[t.kind].weights is None


def _moduleless(t: ir.TNode) -> bool:
    """A part with no module of its own: a merge of kept outputs, a resize like a kept output."""
    return (t.kind in ("concat", "add", "mul") and bool(t.src)) or (t.kind == "upsample" and t.attr("like") is not None)


def _opens(t: ir.TNode, saved: dict) -> bool:
    """Whether named seq ``t`` has items references reach (kept outputs, or readers of them) at its level."""
    if t.kind != "seq" or t.transparent or t.key is None:
        return False
    for ch in t.children:
        if ch.key in saved or ch.src or (ch.kind == "upsample" and ch.attr("like") is not None):
            return True
        if ch.kind == "seq" and (_opens(ch, saved) or (ch.transparent and _reads(ch, saved))):
            return True
    return False


def _reads(t: ir.TNode, saved: dict) -> bool:
    """Whether an item below ``t`` is kept or reads a kept output (``like:`` included)."""
    return any(
        n.key in saved or n.src or (n.kind == "upsample" and n.attr("like") is not None)
        for n in ir.walk_template(t)
        if n is not t
    )


def _inline_widths(formula: Expr, part: ir.TNode, known: dict[str, Expr]) -> Expr:
    """``formula`` with the running widths named inside ``part`` (and those in ``known``) written out."""
    defs = dict(known)
    stack = [part]
    while stack:
        t = stack.pop()
        defs.update((sym, d) for _, sym, d in t.lets if d is not None)
        # a nested part's width named where its own names stay (see lower.template_seq), unless read off an instance
        defs.update((sym, d) for sym, d in t.opaque if sym not in known)
        stack.extend(t.children)
    for _ in range(len(defs)):  # each round writes out one more level of names
        inner = {n: defs[n] for n in formula.names() if n in defs}
        if not inner:
            break
        formula = substitute(formula, inner)
    return formula


def _after_first(t: ir.TNode) -> Expr:
    """The input width of a repeat's second and later iterations (the first iteration's output)."""
    body = t.children[0]
    return substitute(body.out_ch, {"in_channels": t.in_ch}) if "in_channels" in body.out_ch.names() else body.out_ch


def _adds_shortcut(t: ir.TNode, scope: Scope) -> bool:
    """Whether ``t`` is a residual written out in a class body (``x = x + identity``) whose shortcut is always
    added: its output is then the sum, a fresh tensor (an activation after it may run in place, as torchvision's
    ``out += identity; out = self.relu(out)`` with ``nn.ReLU(inplace=True)``)."""
    return t.kind == "residual" and t.transparent and scope.value(t.attr("when")) is True


def _fresh_end(body: ir.TNode, scope: Scope) -> bool:
    """Whether a residual body always ends in a conv or BN: its output is then a tensor no one else holds and that
    autograd does not keep (their backward needs their inputs, not their output), so the shortcut may be added
    to it in place. Anything else (an activation whose backward reads its output, an op that may return its
    input, a conditional item) keeps ``x = x + identity``."""
    last = body
    while last.kind == "seq":
        if not last.children:
            return False
        last = last.children[-1]
        if last.cond is not None and scope.value(last.cond) is not True:
            return False
    return last.kind in ("conv", "dwconv", "bn")


def _assigned_attrs(stmts) -> list[str]:
    """The ``self.<attr>`` names that statements assign (in order, nested ifs included)."""
    out: list[str] = []
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Assign):
                for tgt in node.targets:
                    if isinstance(tgt, ast.Attribute) and isinstance(tgt.value, ast.Name) and tgt.value.id == "self":
                        if tgt.attr not in out:
                            out.append(tgt.attr)
    return out


def _attr_names(seq: ir.TNode) -> set[str]:
    """The attribute names the spec gives a class body (transparent items' names included)."""
    out = set()
    for t in seq.children:
        out.add(t.name)
        if t.transparent:
            for ch in t.children:
                out |= _attr_names(ch) if ch.kind == "seq" else {ch.name}
                if ch.kind == "seq":
                    out.add(ch.name)
    return out

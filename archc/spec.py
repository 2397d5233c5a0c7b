"""The spec language: pydantic models of what people write in YAML.

A spec has network-level ``params``, per-kind ``defaults``, reusable ``blocks``
(parametrised sequences of items), the ``network`` itself, its optional ``top`` (the
classifier, which ``--set include_top=false`` leaves out: see :data:`BUILTIN_PARAMS`) and
optional auxiliary ``heads``. An *item* is a one-key mapping ``{kind: {attributes}}`` where kind is a
primitive (``conv``, ``bn``, ``relu``, ...), a combinator (``seq``, ``concat``,
``add``, ``repeat``, ``dense_connect``) or the name of a block. Any number can be
written as ``$param`` or ``${expression}``; see :mod:`archc.expr`.
"""

from __future__ import annotations

import copy
import keyword
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    model_validator,
)

ExprStr = Annotated[str, Field(pattern=r"^\$([A-Za-z_][A-Za-z0-9_]*|\{.*\})$", description="$param or ${expression}")]
Int = Union[StrictInt, ExprStr]
Num = Union[StrictInt, StrictFloat, ExprStr]
Bool = Union[StrictBool, ExprStr]
Axes = Union[Int, Annotated[list[Int], Field(min_length=1, max_length=3, description="one entry per spatial axis")]]
Pair = Axes  # (the name of the registry's attribute type: an integer or one entry per spatial axis)
PadPair = Annotated[list[Int], Field(min_length=2, max_length=2, description="[before, after]")]
PaddingT = Union[
    Literal["same", "valid"],
    Int,
    Annotated[
        list[Union[Int, PadPair]],
        Field(
            min_length=1,
            max_length=4,
            description="one entry per spatial axis (an integer or [before, after]); in 2-D also "
            "[top, bottom, left, right]",
        ),
    ],
]
from . import init as _init  # noqa: E402
from . import ops  # noqa: E402

IDENT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Ident = Annotated[str, Field(pattern=IDENT_PATTERN, max_length=64)]

SchemeName = Literal[tuple(_init.SCHEMES)]
InitScheme = Union[
    SchemeName,
    Annotated[
        dict[SchemeName, Union[dict[Ident, Union[Num, str]], None]],
        Field(min_length=1, max_length=1, description="{scheme: {param: value}}"),
    ],
]
TensorInits = Annotated[
    dict[Literal[_init.TENSORS], InitScheme],
    Field(description="per tensor (weight, bias) an init scheme: a name, or {scheme: {param: value}}"),
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
Ref = Annotated[
    str,
    Field(
        pattern=REF_PATTERN,
        max_length=200,
        description="the name of an earlier item (a dotted path reaches inside a named seq), of the network's "
        "input, or of one of the block's inputs",
    ),
]


class Common(Model):
    name: Ident | None = Field(None, description="name of this item (module attribute / layer name)")
    if_: Bool | None = Field(None, alias="if", description="include this item only when the condition holds")
    from_: Ref | None = Field(
        None,
        alias="from",
        description="read the output of this earlier named item instead of the previous item's output",
    )


class SeqAttrs(Common):
    body: list[Item]


class BranchesAttrs(Model):
    name: Ident | None = Field(None, description="name of this item (module attribute / layer name)")
    if_: Bool | None = Field(None, alias="if", description="include this item only when the condition holds")
    branches: list[list[Item]] = Field(
        default_factory=list, description="the branches, each a list of items applied to the input"
    )
    from_: list[Ref] | None = Field(
        None,
        alias="from",
        min_length=1,
        description="instead of branches: the names of earlier outputs to merge, in order",
    )

    @model_validator(mode="after")
    def _branches_or_from(self):
        if bool(self.branches) == (self.from_ is not None):
            raise ValueError(
                "give either 'branches' or 'from' (the names of earlier outputs), not both"
                if self.branches
                else "needs 'branches' or 'from' (the names of earlier outputs)"
            )
        return self


class RepeatAttrs(Common):
    times: Int
    body: list[Item]


class ResidualAttrs(Common):
    body: list[Item] = Field(min_length=1, description="the main path")
    shortcut: list[Item] = Field(
        default_factory=list, description="the shortcut path (items may have 'if:'); empty: the identity"
    )
    when: Bool | None = Field(
        None, description="add the shortcut only when this holds (default: always); otherwise the output is the body's"
    )


class DenseConnectAttrs(Common):
    layers: Int = Field(
        description="number of layers; each sees the concatenation of the input and all previous outputs"
    )
    body: list[Item]


def _registry_attrs(p) -> type[Model]:
    """The attribute model of a registry primitive (:mod:`archc.ops`), made from its declaration."""
    from pydantic import create_model

    types = {
        "int": Int,
        "index": Int,
        "pair": Pair,
        "axes0": Pair,
        "float": Num,
        "bool": Bool,
        "scales": Union[Num, Annotated[list[Num], Field(min_length=1, max_length=3)]],
        "size": Union[Literal["input"], Pair],
        "ref": Ref,
        "padding": PaddingT,
    }
    fields: dict = {}
    for a in p.attrs:
        t = Union[Literal[a.choices], ExprStr] if a.type == "choice" else types[a.type]
        default = ... if a.required and a.default is None else None
        fields[a.name] = (t | None if default is None else t, Field(default, description=a.doc))
    if p.kind in _init.KINDS:
        fields["init"] = (
            TensorInits | None,
            Field(
                None,
                description="this item's own init, tensor by tensor over the spec's `init:` "
                "(`{weight: scheme, bias: scheme}`; see the spec language's Initialization)",
            ),
        )
    model = create_model(f"{p.kind.title().replace('_', '')}Attrs", __base__=Common, **fields)
    model.__doc__ = p.doc
    return model


PRIMITIVES: dict[str, type[Model]] = {k: _registry_attrs(p) for k, p in ops.PRIMITIVES.items()}
COMBINATORS: dict[str, type[Model]] = {
    "seq": SeqAttrs,
    "concat": BranchesAttrs,
    "add": BranchesAttrs,
    "mul": BranchesAttrs,
    "repeat": RepeatAttrs,
    "dense_connect": DenseConnectAttrs,
    "residual": ResidualAttrs,
}
KINDS = {**PRIMITIVES, **COMBINATORS}
ACTIVATIONS = tuple(ops.ACTIVATION_DOCS)  # the built-in activations (ir.Act)


def _normalize(v: Any) -> Any:
    """``- relu`` and ``- relu:`` mean ``- relu: {}``; ``concat: [[...], [...]]`` and ``seq: [...]`` are shorthands."""
    if isinstance(v, str):
        return {v: {}}
    if isinstance(v, dict) and len(v) == 1:
        ((k, a),) = v.items()
        if a is None:
            return {k: {}}
        if isinstance(a, list) and k in ("seq", "residual"):
            return {k: {"body": a}}
        if isinstance(a, list) and k in ("concat", "add", "mul"):
            return {k: {"branches": a}}
    return v


def _make_item(kind: str, attrs: type[Model]) -> type[Model]:
    class _Item(Model):
        @model_validator(mode="before")
        @classmethod
        def _norm(cls, v):
            return _normalize(v)

    _Item.__annotations__ = {}
    item = type(
        f"{kind.title().replace('_', '')}Item",
        (_Item,),
        {"__annotations__": {kind: attrs}, "__doc__": f"The `{kind}` item."},
    )
    return item


class CallItem(RootModel[dict[Ident, dict[Ident, Any]]]):
    """A use of a block definition: ``{block_name: {param: value, name: ..., if: ...}}``."""

    @model_validator(mode="before")
    @classmethod
    def _norm(cls, v):
        v = _normalize(v)
        if not isinstance(v, dict) or len(v) != 1:
            raise ValueError("an item is a mapping with exactly one key: its kind or block name")
        return v

    @property
    def block(self) -> str:
        return next(iter(self.root))

    @property
    def args(self) -> dict:
        return next(iter(self.root.values()))


_ITEM_TYPES = {k: _make_item(k, a) for k, a in KINDS.items()}
ITEM_TYPES = _ITEM_TYPES  # kind -> the model of its item (``{kind: {attributes}}``)


def _item_kind(v: Any) -> str:
    v = _normalize(v)
    if isinstance(v, dict) and len(v) == 1:
        k = next(iter(v))
        if k in _ITEM_TYPES:
            return k
    return "call"


Item = Annotated[
    Union[tuple(Annotated[t, Tag(k)] for k, t in _ITEM_TYPES.items()) + (Annotated[CallItem, Tag("call")],)],
    Discriminator(_item_kind),
]

for _m in (SeqAttrs, BranchesAttrs, RepeatAttrs, DenseConnectAttrs, ResidualAttrs):
    _m.model_rebuild()
for _t in _ITEM_TYPES.values():
    _t.model_rebuild()


def item_kind_and_attrs(item) -> tuple[str, Any]:
    """(kind, attrs) of a validated item; for a block call kind is 'call' and attrs the raw args."""
    if isinstance(item, CallItem):
        return "call", item.args
    ((k, a),) = ((k, getattr(item, k)) for k in type(item).model_fields)
    return k, a


class InputSpec(Model):
    """The network input; its spatial keys give the rank: ``length`` (1-D), ``height, width`` (2-D), or
    ``depth, height, width`` (3-D)."""

    length: Int | None = Field(None, description="1-D input: the number of positions (audio samples, tokens)")
    depth: Int | None = Field(None, description="3-D input: the depth (a clip's frames, a volume's slices)")
    height: Int | None = None
    width: Int | None = None
    channels: Int
    name: Ident | None = Field(None, description="a name items can read the input by (`from: NAME`)")


class BlockDef(Model):
    doc: str | None = None
    params: dict[Ident, Any] = Field(default_factory=dict, description="param name -> default (null: required)")
    inputs: list[Ident] | None = Field(
        None,
        min_length=1,
        description="names of the block's inputs, readable with `from:` in its body: the first is the main input "
        "(the previous item's output where the block is called), the others are given at the call as "
        "`from: {NAME: EARLIER_OUTPUT}`",
    )
    body: list[Item] = Field(min_length=1)


class HeadSpec(Model):
    at: str = Field(description="name of the network item whose output feeds this head")
    loss_weight: Num = 1.0
    if_: Bool | None = Field(None, alias="if")
    body: list[Item] = Field(min_length=1)


class Spec(Model):
    """A network written in YAML."""

    name: Ident
    class_name: Ident | None = Field(
        None,
        description="the generated model class's name (PyTorch); default: the name as people write it "
        "(resnet50 -> ResNet50, mobilenet_v2 -> MobileNetV2)",
    )
    doc: str | None = None
    input: InputSpec
    params: dict[Ident, Any] = Field(default_factory=dict)
    defaults: dict[Ident, dict[Ident, Any]] = Field(
        default_factory=dict, description="per kind (primitive or block) default attribute values"
    )
    init: dict[Literal[_init.KINDS], TensorInits] = Field(
        default_factory=dict,
        description="per kind (conv, dwconv, conv_transpose, dense, bn, layernorm, groupnorm) the init scheme of its "
        "tensors, in every backend; an item's own `init:` overrides it; default: torch_default",
    )
    blocks: dict[Ident, BlockDef] = Field(default_factory=dict)
    network: list[Item] = Field(min_length=1)
    top: list[Item] = Field(
        default_factory=list,
        description="the classifier (keras.applications' 'top'): built after the network, in its naming scope; "
        "left out with --set include_top=false",
    )
    heads: dict[Ident, HeadSpec] = Field(default_factory=dict)
    outputs: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$", max_length=64)], Ref] = Field(
        default_factory=dict,
        description="the model's outputs, by name: output name -> a named item (in that order; eval and training "
        "alike). Without it the output is the last item's",
    )
    loss_weight: Num = Field(1.0, description="loss weight of the main output")


# params every spec has, set only with --set (keras.applications' arguments): include_top false leaves the spec's
# `top:` and its aux `heads:` out; pooling (with include_top false only) then ends the features with a global pool
BUILTIN_PARAMS = {"include_top": (True, False), "pooling": ("none", "avg", "max")}  # name -> (default, others...)
FEATURES_POOL = "features_pool"  # the name of the global pool that pooling avg / max appends

# names the spec language itself gives a meaning to (the generated code's own names yield to the user's)
RESERVED = frozenset({"self", "in_channels", "name"})


def check_identifier(name: str, variable: bool = True) -> str | None:
    """Why ``name`` cannot be used in generated code, or None if it can.

    ``variable``: the name becomes a Python variable (a param, a block's function), so it must not shadow a
    builtin; layer names are attributes and strings (``self.input``, ``"input"``), which shadow nothing.
    """
    import builtins

    if not name.isidentifier() or not name.isascii():
        return "is not a valid identifier"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword"
    if variable and hasattr(builtins, name):
        return "would shadow a Python builtin"
    if name.startswith("__"):
        return "starts with a double underscore"
    return None


def json_schema() -> dict:
    """The JSON Schema of the spec language (what a file may contain as written, shorthands included)."""
    schema = Spec.model_json_schema(by_alias=True)
    defs = schema["$defs"]

    def any_of(node):
        if isinstance(node, dict):
            if "oneOf" in node:  # a {conv: ...} item also looks like a block call: anyOf, not oneOf
                node["anyOf"] = node.pop("oneOf")
                node.pop("discriminator", None)
            for v in node.values():
                any_of(v)
        elif isinstance(node, list):
            for v in node:
                any_of(v)

    any_of(schema)
    item_ref = {"$ref": "#/$defs/Item"}
    item_union = None
    for d in defs.values():  # find the item union inside a body list and hoist it as $defs/Item
        body = d.get("properties", {}).get("body")
        if body and "items" in body and "anyOf" in body["items"]:
            item_union = body["items"]
            break
    assert item_union is not None
    original = copy.deepcopy(item_union)
    item_union["anyOf"].append({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": "- relu"})
    defs["Item"] = item_union

    def use_ref(node):
        if isinstance(node, dict):
            for k, v in list(node.items()):
                if (v is item_union or v == original) and k != "Item":
                    node[k] = item_ref
                else:
                    use_ref(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if v is item_union or v == original:
                    node[i] = item_ref
                else:
                    use_ref(v)

    use_ref(schema)
    call = defs["CallItem"]
    ((pattern, args),) = call["patternProperties"].items()
    call["patternProperties"] = {pattern: {"anyOf": [args, {"type": "null"}]}}  # `- block:` takes no arguments
    call.update(
        {
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": False,
            "propertyNames": {"not": {"enum": sorted(KINDS)}},
        }
    )
    for kind in KINDS:
        item = defs[f"{kind.title().replace('_', '')}Item"]
        prop = item["properties"][kind]
        alts = [prop, {"type": "null"}]
        if kind in ("seq", "residual"):
            alts.append({"type": "array", "items": item_ref})
        if kind in ("concat", "add", "mul"):
            alts.append({"type": "array", "items": {"type": "array", "items": item_ref}})
        item["properties"][kind] = {"anyOf": alts}
    required = schema.pop("required", [])
    schema["if"] = {"required": ["extends"]}
    schema["else"] = {"required": required}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archc network spec"
    schema["properties"]["extends"] = {"type": "string", "description": "base spec to deep-merge (path)"}
    return schema

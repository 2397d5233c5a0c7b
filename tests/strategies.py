"""Hypothesis strategies: random valid-looking specs (as YAML text) built from every primitive and combinator."""

from __future__ import annotations

import json
import math

import yaml
from hypothesis import strategies as st

ACTS = ["relu", "relu6", "sigmoid", "tanh", "silu"]


def _padding():
    return st.one_of(
        st.integers(0, 2),
        st.sampled_from(["same", "valid"]),
        st.lists(st.integers(0, 2), min_size=4, max_size=4),
        st.lists(st.integers(0, 2), min_size=2, max_size=2),
    )


@st.composite
def conv(draw, out=None, keep_size=False):
    k = draw(st.integers(1, 4))
    attrs = {"out": out or draw(st.integers(1, 6)), "kernel": k}
    if keep_size:
        attrs["padding"] = "same"
    else:
        attrs["stride"] = draw(st.integers(1, 2))
        attrs["padding"] = draw(_padding())
        if draw(st.booleans()):
            attrs["dilation"] = draw(st.integers(1, 2))
    attrs["bias"] = draw(st.booleans())
    return {"conv": attrs}


@st.composite
def dwconv(draw):
    attrs = {"kernel": draw(st.integers(1, 3)), "stride": draw(st.integers(1, 2)), "padding": draw(_padding())}
    attrs["multiplier"] = draw(st.integers(1, 2))
    attrs["bias"] = draw(st.booleans())
    return {"dwconv": attrs}


@st.composite
def pool(draw):
    kind = draw(st.sampled_from(["maxpool", "avgpool"]))
    k = draw(st.integers(1, 3))
    attrs = {"kernel": k, "stride": draw(st.integers(1, 2)), "padding": draw(st.integers(0, k // 2))}
    # both backends build every pool now (issue 20): ceil and count_include_pad either way, 'same' averages
    attrs["ceil"] = draw(st.booleans())
    if kind == "avgpool" and draw(st.booleans()):
        attrs["count_include_pad"] = draw(st.booleans())
    if draw(st.booleans()):
        attrs = {"kernel": k, "stride": attrs["stride"], "padding": "same"}
        if kind == "avgpool" and draw(st.booleans()):
            attrs["count_include_pad"] = draw(st.booleans())
    return {kind: attrs}


@st.composite
def simple(draw):
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return draw(conv())
    if choice == 1:
        return draw(dwconv())
    if choice == 2:
        return {"bn": {"eps": draw(st.sampled_from([1e-5, 1e-3, 1.001e-5])), "momentum": 0.1}}
    if choice == 3:
        return {draw(st.sampled_from(ACTS)): {}}
    if choice == 4:
        return draw(pool())
    if choice == 5:
        return {"zeropad": {"padding": draw(st.lists(st.integers(0, 2), min_size=4, max_size=4))}}
    if choice == 6:
        return {"dropout": {"rate": 0.5}}
    return {"bn": {}}


@st.composite
def combinator(draw):
    choice = draw(st.integers(0, 3))
    if choice == 0:
        n = draw(st.integers(2, 3))
        return {"concat": [[draw(conv(keep_size=True)), {"relu": {}}] for _ in range(n)]}
    if choice == 1:
        c = draw(st.integers(1, 6))
        return {"add": [[draw(conv(out=c, keep_size=True))], [draw(conv(out=c, keep_size=True)), {"bn": {}}]]}
    if choice == 2:
        return {"repeat": {"times": draw(st.integers(1, 3)), "body": [draw(conv(keep_size=True)), {"relu": {}}]}}
    return {"dense_connect": {"layers": draw(st.integers(1, 3)), "body": [{"bn": {}}, draw(conv(keep_size=True))]}}


@st.composite
def spec_text(draw):
    """A random spec: random stacks of primitives, combinators and a block, then a classifier head."""
    h, w, c = draw(st.integers(6, 24)), draw(st.integers(6, 24)), draw(st.integers(1, 4))
    items = []
    use_block = draw(st.booleans())
    for _ in range(draw(st.integers(1, 5))):
        items.append(draw(st.one_of(simple(), combinator())))
    if use_block:
        items.insert(draw(st.integers(0, len(items))), {"unit": {"width": draw(st.integers(1, 5))}})
    tail = draw(st.sampled_from(["gap", "flatten", "none"]))
    if tail != "none":
        items += [{tail: {}}, {"dense": {"out": draw(st.integers(1, 5))}}]
    doc = {
        "name": "random_net",
        "input": {"height": h, "width": w, "channels": c},
        "blocks": {
            "unit": {
                "params": {"width": None},
                "body": [{"conv": {"out": "$width", "kernel": 3, "padding": 1, "bias": False}}, {"bn": {}}, "relu"],
            }
        },
        "network": items,
    }
    return json.dumps(doc)  # JSON is YAML


# --------------------------------------------------------------------------------------------------
# Random block definitions (issue 11, item 5)
#
# ``spec_with_blocks()`` draws a whole spec that defines one to three blocks and calls them with
# different arguments. The blocks mix what people write in real families: params with and without
# defaults, spec-level ``defaults:`` for primitives and blocks, ``if:`` on params and on
# ``in_channels``, named and unnamed seqs, concat/add branches holding seqs, repeats, dense_connect
# and calls of blocks defined earlier, ResNet bottlenecks with a projection shortcut only when the
# shape changes, MobileNetV2 inverted residuals, repeats of such blocks. Shapes are compatible by
# construction (every spatial op keeps the size except the block's leading strided item, whose
# shortcut gets the same stride; add branches end in the same width), except for the cases that
# ``invalid`` draws on purpose: those must be refused with a located error.

HAS_RESIDUAL = True  # the `residual:` combinator and the "stable after the first iteration" repeat rule
# (set False to draw only what the language had before issue 11: add-with-conditional-branch forms)


class _Block:
    """What the generator knows about a block it defined: its params (name -> default, None = required)."""

    def __init__(self, name: str, params: dict, kind: str):
        self.name, self.params, self.kind = name, params, kind


def _cond(draw, params):
    """A condition over the block's params and its input width."""
    options = ["true", "false"]
    if "flag" in params:
        options += ["$flag", "${not flag}"]
    if "expand" in params:
        options += ["${expand != 1}"]
    if "stride" in params:
        options += ["${stride != 1}"]
    if "width" in params:
        options += ["${in_channels != width}", "${width > 2}", "${in_channels == width or in_channels > 4}"]
    c = draw(st.sampled_from(options))
    return {"true": True, "false": False}.get(c, c)


def _width_expr(draw, params):
    options = ["${in_channels}", "lit"]
    if "width" in params:
        options += ["$width", "$width", "${width * 2}", "${max(width, in_channels)}"]
    if "expand" in params:
        options += ["${in_channels * expand}"]
    c = draw(st.sampled_from(options))
    return draw(st.integers(1, 8)) if c == "lit" else c


def _chance(draw, p: float) -> bool:
    """True with probability about ``p`` (hypothesis' floats crowd at the bounds, so not ``floats() < p``)."""
    return draw(st.integers(0, 99)) < round(p * 100)


def _maybe(draw, attrs, key, value, p=0.3):
    if _chance(draw, p):
        attrs[key] = value
    return attrs


@st.composite
def _leaf(draw, params, keep_width=False):
    """One size-keeping primitive (stride 1), possibly conditional, possibly named."""
    choice = draw(st.integers(0, 9))
    if choice == 9:  # the registry's size-keeping primitives (archc/ops.py) and a squeeze-and-excitation gate
        item = draw(
            st.sampled_from(
                [
                    {"hardswish": {}},
                    {"gelu": {"approximate": "tanh"}},
                    {"leaky_relu": {"slope": 0.2}},
                    {"layernorm": {"eps": 1e-6}},
                    {"groupnorm": {"groups": 1}},
                    {"layer_scale": {"init": 0.5}},
                    {"stochastic_depth": {"p": 0.2}},
                    {"mul": {"branches": [[], [{"adaptive_avgpool": {"size": 1}}, {"hardsigmoid": {}}]]}},
                ]
            )
        )
        item = {k: dict(v) for k, v in item.items()}
    elif choice <= 2:
        k = draw(st.sampled_from([1, 3]))
        attrs = {"out": "${in_channels}" if keep_width else _width_expr(draw, params), "kernel": k}
        attrs["padding"] = draw(st.sampled_from(["same", k // 2]))
        _maybe(draw, attrs, "bias", draw(st.booleans()))
        item = {"conv": attrs}
    elif choice == 3:
        attrs = {"kernel": 3, "padding": draw(st.sampled_from(["same", 1]))}
        if not keep_width and "expand" in params and draw(st.booleans()):
            attrs["multiplier"] = "$expand"
        item = {"dwconv": attrs}
    elif choice == 4:
        item = {"bn": {}}
        _maybe(draw, item["bn"], "eps", 1e-3)
    elif choice == 5:
        item = {draw(st.sampled_from(ACTS)): {}}
    elif choice == 6:
        item = {draw(st.sampled_from(["maxpool", "avgpool"])): {"kernel": 3, "stride": 1, "padding": 1}}
    elif choice == 7:
        item = {"dropout": {"rate": draw(st.sampled_from([0.0, 0.25]))}}
    else:  # explicit zero padding then a 'valid' 3x3: keeps the size
        w = "${in_channels}" if keep_width else _width_expr(draw, params)
        item = {"seq": {"body": [{"zeropad": {"padding": [1, 1, 1, 1]}}, {"conv": {"out": w, "kernel": 3}}]}}
    ((kind, attrs),) = item.items()
    if _chance(draw, 0.35):
        attrs["if"] = _cond(draw, params)
    if _chance(draw, 0.2):
        attrs["name"] = f"{kind}_{draw(st.integers(0, 10**6))}"
    return item


def _call_args(draw, block: _Block, params, inside: bool):
    """Arguments for a call of ``block``: literals at network level, expressions of params inside a block."""
    args = {}
    for p, default in block.params.items():
        if default is not None and draw(st.booleans()):
            continue  # use the default
        if p == "width":
            if inside and "width" in params:
                args[p] = draw(st.sampled_from(["$width", "${width + 1}", 2]))
            else:
                args[p] = draw(st.integers(1, 8))
        elif p == "stride":
            args[p] = 1 if inside else draw(st.sampled_from([1, 2]))
        elif p == "flag":
            args[p] = "$flag" if inside and "flag" in params and draw(st.booleans()) else draw(st.booleans())
        elif p == "expand":
            args[p] = draw(st.integers(1, 3))
        elif p == "n":
            args[p] = draw(st.integers(0, 2))
        elif p == "out":
            args[p] = draw(st.integers(1, 8))
    return args


@st.composite
def _items(draw, params, blocks, depth, keep_width=False, min_size=0, max_size=3):
    n = draw(st.integers(min_size, max_size))
    return [draw(_item(params, blocks, depth, keep_width)) for _ in range(n)]


@st.composite
def _item(draw, params, blocks, depth, keep_width=False):
    """A size-keeping item: a leaf, or (below the depth bound) a combinator holding more items."""
    if depth <= 0 or _chance(draw, 0.45):
        return draw(_leaf(params, keep_width))
    choices = ["seq", "add", "add_id", "repeat"]
    if not keep_width:
        choices += ["concat", "dense_connect"]
        if blocks:
            choices += ["call", "call", "call"]
    if HAS_RESIDUAL:
        choices += ["residual"]
    c = draw(st.sampled_from(choices))
    sub = depth - 1
    if c == "seq":
        attrs = {"body": draw(_items(params, blocks, sub, keep_width, 1, 3))}
        if draw(st.booleans()):
            attrs["name"] = f"stage{draw(st.integers(0, 10**6))}"
        if draw(st.booleans()):
            attrs["if"] = _cond(draw, params)
        return {"seq": attrs}
    if c == "concat":
        n = draw(st.integers(2, 3))
        return {"concat": [draw(_items(params, blocks, sub, False, 0, 3)) for _ in range(n)]}
    if c == "add":  # branches may change the width, and all end in the same one
        end = "$width" if "width" in params and not keep_width else "${in_channels}"
        branches = []
        for _ in range(draw(st.integers(2, 3))):  # ending in ${in_channels}: the items before it keep the width
            body = draw(_items(params, blocks, sub, end != "$width", 0, 2))
            branches.append([*body, {"conv": {"out": end, "kernel": draw(st.sampled_from([1, 3])), "padding": "same"}}])
        return {"add": branches}
    if c == "add_id":  # a residual written with add: one branch is the identity
        body = draw(_items(params, blocks, sub, True, 0, 2))
        body.append({"conv": {"out": "${in_channels}", "kernel": 1}})
        branches = [body, []] if draw(st.booleans()) else [[], body]
        attrs = {"branches": branches}
        if _chance(draw, 0.4):
            attrs["if"] = _cond(draw, params)
        return {"add": attrs}
    if c == "repeat":
        times = "$n" if "n" in params and draw(st.booleans()) else draw(st.integers(0, 2))
        return {"repeat": {"times": times, "body": draw(_items(params, blocks, sub, True, 1, 3))}}
    if c == "dense_connect":
        growth = "$width" if "width" in params else draw(st.integers(1, 4))
        body = [{"bn": {}}, {"relu": {}}, {"conv": {"out": growth, "kernel": 3, "padding": 1}}]
        return {"dense_connect": {"layers": draw(st.integers(1, 2)), "body": body}}
    if c == "call":
        block = draw(st.sampled_from(blocks))
        args = _call_args(draw, block, params, inside=True)
        if _chance(draw, 0.3):
            args["if"] = _cond(draw, params)
        if _chance(draw, 0.3):
            args["name"] = f"{block.name}_{draw(st.integers(0, 10**6))}"
        return {block.name: args}
    # residual: the body keeps the width, the shortcut is the identity or a batch norm
    body = draw(_items(params, blocks, sub, True, 1, 3))
    body.append({"conv": {"out": "${in_channels}", "kernel": 1}})
    attrs = {"body": body}
    if draw(st.booleans()):
        attrs["when"] = _cond(draw, params)
    if draw(st.booleans()):
        attrs["shortcut"] = draw(st.sampled_from([[], [{"bn": {}}]]))
    if _chance(draw, 0.3):
        attrs["if"] = _cond(draw, params)
    return {"residual": attrs}


def _shortcut_add(body, shortcut, use_residual, when=None):
    """``body(x) + shortcut(x)``: the new ``residual:`` combinator, or the ``add`` people wrote before it."""
    if use_residual:
        attrs = {"body": body}
        if shortcut:
            attrs["shortcut"] = shortcut
        if when is not None:
            attrs["when"] = when
        return [{"residual": attrs}]
    if when is None:
        return [{"add": [body, shortcut]}]
    # no `when` before `residual`: the same thing as two items with complementary conditions
    return [
        {"add": {"if": when, "branches": [body, shortcut]}},
        {"seq": {"if": "${not (" + when[2:-1] + ")}", "body": body}},
    ]


@st.composite
def _bottleneck(draw, name):
    """ResNet bottleneck: 1x1, 3x3 (stride), 1x1 to width*e; a projection shortcut only when the shape changes."""
    e = draw(st.integers(1, 4))
    params = {"width": None, "stride": 1}
    if draw(st.booleans()):
        params["flag"] = draw(st.booleans())
    named = draw(st.booleans())

    def nm(d, n):
        return {**d, "name": n} if named else d

    body = [
        {"conv": nm({"out": "$width", "kernel": 1, "bias": False}, "conv1")},
        {"bn": nm({}, "bn1")},
        {"relu": {}},
        {"conv": nm({"out": "$width", "kernel": 3, "stride": "$stride", "padding": 1, "bias": False}, "conv2")},
        {"bn": nm({}, "bn2")},
        {"relu": {}},
        {"conv": nm({"out": f"${{width * {e}}}", "kernel": 1, "bias": False}, "conv3")},
        {"bn": nm({}, "bn3")},
    ]
    if "flag" in params:
        body.insert(6, {"dropout": {"rate": 0.25, "if": "$flag"}})
    proj = [{"conv": {"out": f"${{width * {e}}}", "kernel": 1, "stride": "$stride", "bias": False}}, {"bn": {}}]
    down = {"seq": {"name": "downsample", "if": f"${{stride != 1 or in_channels != width * {e}}}", "body": proj}}
    if not draw(st.booleans()):
        del down["seq"]["name"]
    use_residual = HAS_RESIDUAL and draw(st.booleans())
    items = _shortcut_add(body, [down], use_residual) + [{"relu": {}}]
    return _Block(name, params, "bottleneck"), {"params": params, "body": items}


@st.composite
def _inverted(draw, name):
    """MobileNetV2 inverted residual: optional 1x1 expansion, 3x3 depthwise (stride), 1x1 projection;
    the input is added only when the stride is 1 and the width is kept."""
    params = {"out": None, "stride": 1, "expand": draw(st.sampled_from([None, 1, 2, 3]))}
    ex = "${expand != 1}"
    body = [
        {"conv": {"name": "expand", "if": ex, "out": "${in_channels * expand}", "kernel": 1, "bias": False}},
        {"bn": {"if": ex}},
        {"relu6": {"if": ex}},
        {"dwconv": {"kernel": 3, "stride": "$stride", "padding": draw(st.sampled_from([1, "same"])), "bias": False}},
        {"bn": {}},
        {"relu6": {}},
        {"conv": {"name": "project", "out": "$out", "kernel": 1, "bias": False}},
        {"bn": {}},
    ]
    use_residual = HAS_RESIDUAL and draw(st.booleans())
    items = _shortcut_add(body, [], use_residual, when="${stride == 1 and in_channels == out}")
    return _Block(name, params, "inverted"), {"params": params, "body": items}


@st.composite
def _generic(draw, name, blocks):
    """A random block: some params required, some defaulted; a leading (possibly strided) item whose
    shortcut is projected only when needed; then random size-keeping items."""
    params = {"width": draw(st.sampled_from([None, None, 2, 4]))}
    if _chance(draw, 0.6):
        params["stride"] = 1
    if draw(st.booleans()):
        params["flag"] = draw(st.sampled_from([None, True, False]))
    if draw(st.booleans()):
        params["expand"] = draw(st.sampled_from([1, 2]))
    if _chance(draw, 0.3):
        params["n"] = draw(st.sampled_from([None, 1, 2]))
    body = []
    if "stride" in params:
        head = draw(st.integers(0, 3))
        if head == 0:  # ResNet basic block: 3x3 (stride) 3x3, shortcut projected when the shape changes
            main = [
                {"conv": {"out": "$width", "kernel": 3, "stride": "$stride", "padding": 1}},
                {"bn": {}},
                {"relu": {}},
                {"conv": {"out": "$width", "kernel": 3, "padding": "same"}},
                {"bn": {}},
            ]
            proj = {"conv": {"out": "$width", "kernel": 1, "stride": "$stride"}}
            cond = "${stride != 1 or in_channels != width}"
            if draw(st.booleans()):
                short = [{"seq": {"name": "proj", "if": cond, "body": [proj, {"bn": {}}]}}]
            else:  # conditions on the leaves of the shortcut, not on a seq
                short = [{"conv": {**proj["conv"], "if": cond}}, {"bn": {"if": cond}}]
            body += _shortcut_add(main, short, HAS_RESIDUAL and draw(st.booleans()))
        elif head == 1:
            body.append({"conv": {"out": _width_expr(draw, params), "kernel": 3, "stride": "$stride", "padding": 1}})
        elif head == 2:
            body.append({"dwconv": {"kernel": 3, "stride": "$stride", "padding": "same"}})
        else:
            body.append({"maxpool": {"kernel": 3, "stride": "$stride", "padding": 1}})
    if _chance(draw, 0.3):  # adapt the width only when it differs (the shape repeats settle on)
        body.append({"conv": {"name": "adapt", "if": "${in_channels != width}", "out": "$width", "kernel": 1}})
    body += draw(_items(params, blocks, 2, False, 1, 4))
    if blocks and _chance(draw, 0.5):  # a block used inside this one: as an item, in a branch or in a named seq
        block = draw(st.sampled_from(blocks))
        call = {block.name: _call_args(draw, block, params, inside=True)}
        where = draw(st.sampled_from(["item", "branch", "seq"]))
        if where == "item":
            wrapped = call
        elif where == "branch":
            wrapped = {"concat": [[call], draw(_items(params, blocks, 1, False, 0, 2))]}
        else:
            wrapped = {"seq": {"name": "inner", "if": _cond(draw, params), "body": [call]}}
        body.insert(draw(st.integers(len(body) - 1, len(body))), wrapped)
    return _Block(name, params, "generic"), {"params": params, "body": body}


def _invalid_edit(draw, doc, blocks):
    """Break a valid spec in one of the ways people do; returns what was broken."""
    what = draw(
        st.sampled_from(["add_widths", "missing_param", "unknown_param", "growing_repeat", "kernel", "flat_gap"])
    )
    net = doc["network"]
    if what == "add_widths":
        net.insert(0, {"add": [[{"conv": {"out": 3, "kernel": 1}}], [{"conv": {"out": 4, "kernel": 1}}]]})
    elif what == "missing_param":
        b = blocks[0]
        required = [p for p, d in b.params.items() if d is None and p not in doc.get("defaults", {}).get(b.name, {})]
        if not required:
            what = "unknown_param"
        else:
            args = _call_args(draw, b, {}, inside=False)
            args.pop(required[0], None)
            net.insert(0, {b.name: args})
    if what == "unknown_param":
        b = blocks[-1]
        net.insert(0, {b.name: {**_call_args(draw, b, {}, inside=False), "widht": 3}})
    elif what == "growing_repeat":
        net.insert(0, {"repeat": {"times": 2, "body": [{"conv": {"out": "${in_channels + 1}", "kernel": 1}}]}})
    elif what == "kernel":
        net.insert(0, {"conv": {"out": 2, "kernel": 40}})
    elif what == "flat_gap":  # a global pool of flat features (a dense on a map is valid: it acts on the channels)
        net[0:0] = [{"flatten": {}}, {"gap": {}}]
    return what


@st.composite
def spec_with_blocks(draw, invalid_rate=0.1):
    """(spec text, what was broken or None): a spec defining 1-3 random blocks, called with different arguments."""
    break_it = _chance(draw, invalid_rate)
    h, w, c = draw(st.integers(8, 24)), draw(st.integers(8, 24)), draw(st.integers(1, 4))
    blocks: list[_Block] = []
    defs = {}
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["bottleneck", "inverted", "generic", "generic"]))
        name = f"{kind}{i}"
        if kind == "bottleneck":
            b, d = draw(_bottleneck(name))
        elif kind == "inverted":
            b, d = draw(_inverted(name))
        else:
            b, d = draw(_generic(name, list(blocks)))
        blocks.append(b)
        defs[name] = d
    defaults = {}
    if draw(st.booleans()):
        defaults["conv"] = {"bias": draw(st.booleans())}
    if draw(st.booleans()):
        defaults["bn"] = {"eps": draw(st.sampled_from([1e-3, 1.001e-5])), "momentum": 0.1}
    for b in blocks:  # a spec-level default for a block param, required or not
        if _chance(draw, 0.4):
            p = draw(st.sampled_from(sorted(b.params)))
            value = {"width": 3, "out": 4, "stride": 1, "flag": True, "expand": 2, "n": 1}[p]
            defaults[b.name] = {p: value}
    effective = {b.name: {**b.params, **defaults.get(b.name, {})} for b in blocks}
    calls = [_Block(b.name, effective[b.name], b.kind) for b in blocks]

    network = []
    if draw(st.booleans()):
        network.append({"conv": {"name": "stem", "out": draw(st.integers(2, 8)), "kernel": 3, "padding": 1}})
    for _ in range(draw(st.integers(1, 4))):
        b = draw(st.sampled_from(calls))
        args = _call_args(draw, b, {}, inside=False)
        form = draw(st.integers(0, 4))
        if form == 0 and ("width" in b.params or "out" in b.params):
            # a stage: the first call may change width and stride, the repeats keep them
            network.append({b.name: args})
            rest = {k: v for k, v in args.items() if k != "stride"}
            network.append({"repeat": {"times": draw(st.integers(1, 2)), "body": [{b.name: rest}]}})
        elif form == 1 and HAS_RESIDUAL:
            # the whole stage as one repeat: the first iteration changes the width, the others keep it
            rest = {k: v for k, v in args.items() if k != "stride"}
            times = draw(st.integers(1, 3))
            network.append({"repeat": {"name": f"stage{len(network)}", "times": times, "body": [{b.name: rest}]}})
        elif form == 2:  # two calls side by side, stride 1
            a2 = _call_args(draw, b, {}, inside=False)
            args.pop("stride", None)
            a2.pop("stride", None)
            network.append({"concat": [[{b.name: args}], [{b.name: a2}]]})
        else:
            if _chance(draw, 0.2):
                args["if"] = draw(st.booleans())
            if _chance(draw, 0.3):
                args["name"] = f"{b.name}_call{len(network)}"
            network.append({b.name: args})
    network += [{"gap": {}}, {"dense": {"out": draw(st.integers(1, 5))}}]
    doc = {"name": "blocks_net", "input": {"height": h, "width": w, "channels": c}}
    if defaults:
        doc["defaults"] = defaults
    doc["blocks"] = defs
    doc["network"] = network
    broken = _invalid_edit(draw, doc, blocks) if break_it else None
    # block style with flow-style leaves: one item a line, so each error has its own line
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=200), broken


# --------------------------------------------------------------------------------------------------
# Networks of any rank (issue 20): 1-D, 2-D and 3-D inputs, per-axis attributes of every form, pools
# with every padding / ceil / count_include_pad, transposed convolutions, resampling and constant scaling
#
# ``rank_spec()`` draws (spec text, what was broken or None, rank). The generator tracks the spatial size
# it expects (PyTorch's formulas) only to choose kernels, strides and scales that keep the sizes small and
# mostly valid: it asserts nothing itself, and a guess it gets wrong makes a case the compiler refuses (which
# the test then checks is a located error). Blocks take params used as pool, transposed-convolution and
# resampling attributes, with conditions on params and on ``in_channels``.

RANK_SIZES = {1: (8, 40), 2: (5, 16), 3: (3, 8)}  # input size per axis
RANK_CAP = {1: 80, 2: 24, 3: 10}  # the generator grows no axis past this (tensors stay small)
LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}
FRACTIONS = [0.5, 0.75, 1.25, 1.5, 1.7, 2.5]


def _ints(lo, hi):
    return lambda rnd: rnd.randint(lo, hi)


def _pick(values):
    values = list(values)
    return lambda rnd: values[rnd.randrange(len(values))]


def _coin():
    return lambda rnd: rnd.random() < 0.5


def _rchance(draw, p: float) -> bool:
    return draw(lambda rnd: rnd.random() < p)


def _per_axis(draw, rank, values):
    """An integer, or one per spatial axis (``values``: one list of allowed values per axis)."""
    if len(set(map(tuple, values))) == 1 and draw(_coin()):
        return draw(_pick(values[0]))
    return [draw(_pick(v)) for v in values]


def _as_axes(v, rank):
    return list(v) if isinstance(v, list) else [v] * rank


def _padding_pairs(pad, rank, kernel, stride, sizes, dilation=None):
    """(before, after) per axis of a drawn padding value (TensorFlow's 'same': ceil(n / s) outputs)."""
    dilation = dilation or [1] * rank
    if pad == "valid":
        return [(0, 0)] * rank
    if pad == "same":
        out = []
        for n, k, s, d in zip(sizes, kernel, stride, dilation):
            total = max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(pad, int):
        return [(pad, pad)] * rank
    if rank == 2 and len(pad) == 4:
        return [(pad[0], pad[1]), (pad[2], pad[3])]
    return [tuple(p) if isinstance(p, list) else (p, p) for p in pad]


def _draw_padding(draw, rank, most, named=True, four=True):
    """Every padding form: an integer, 'same', 'valid', one entry per axis (an integer or [before, after]) and,
    in 2-D, [top, bottom, left, right]; entries up to ``most`` (a list: one bound per axis)."""
    forms = ["int", "axes", "pairs"] + (["same", "valid"] if named else []) + (["four"] if four and rank == 2 else [])
    form = draw(_pick(forms))
    if form in ("same", "valid"):
        return form
    if form == "int":
        return draw(_ints(0, min(most)))
    if form == "four":
        return [draw(_ints(0, most[i // 2])) for i in range(4)]
    if form == "axes":
        return [draw(_ints(0, m)) for m in most]
    return [[draw(_ints(0, m)), draw(_ints(0, m))] if draw(_coin()) else draw(_ints(0, m)) for m in most]


def _conv_out(sizes, kernel, stride, pairs, dilation=None, ceil=False):
    dilation = dilation or [1] * len(sizes)
    out = []
    for n, k, s, (b, a), d in zip(sizes, kernel, stride, pairs, dilation):
        span = n + b + a - d * (k - 1) - 1
        o = (-(-span // s) if ceil else span // s) + 1
        if ceil and (o - 1) * s >= n + b:  # PyTorch: the last window starts inside the input or its left padding
            o -= 1
        out.append(o)
    return out


class _RankState:
    """What the generator expects: the spatial size and the width after the items drawn so far."""

    def __init__(self, rank, sizes, channels):
        self.rank, self.sizes, self.channels = rank, list(sizes), channels
        self.input = list(sizes)

    def cap(self):
        return RANK_CAP[self.rank]


def _rank_conv(draw, s: _RankState, keep_size=False, out=None):
    r = s.rank
    kernel = _per_axis(draw, r, [list(range(1, min(4, n) + 1)) for n in s.sizes])
    k = _as_axes(kernel, r)
    attrs = {"out": out if out is not None else draw(_ints(1, 5)), "kernel": kernel}
    if keep_size:
        attrs["padding"] = "same"
        if draw(_coin()):
            attrs["dilation"] = _per_axis(draw, r, [[1, 2]] * r)
        if any(n < 2 for n in s.sizes):
            attrs.pop("dilation", None)
    else:
        if _rchance(draw, 0.7):
            attrs["stride"] = _per_axis(draw, r, [[1, 2] if n >= 4 else [1] for n in s.sizes])
        if _rchance(draw, 0.3):
            attrs["dilation"] = _per_axis(draw, r, [[1, 2] if n >= 2 * kk else [1] for n, kk in zip(s.sizes, k)])
        attrs["padding"] = _draw_padding(draw, r, [min(kk, 3) for kk in k])
    if _rchance(draw, 0.15) and s.channels % 2 == 0 and attrs["out"] % 2 == 0:
        attrs["groups"] = 2
    attrs["bias"] = draw(_coin())
    stride = _as_axes(attrs.get("stride", 1), r)
    dil = _as_axes(attrs.get("dilation", 1), r)
    pairs = _padding_pairs(attrs["padding"], r, k, stride, s.sizes, dil)
    s.sizes = s.sizes if keep_size else _conv_out(s.sizes, k, stride, pairs, dil)
    s.channels = attrs["out"]
    return {"conv": attrs}


def _rank_dwconv(draw, s: _RankState):
    r = s.rank
    kernel = _per_axis(draw, r, [list(range(1, min(3, n) + 1)) for n in s.sizes])
    k = _as_axes(kernel, r)
    attrs = {"kernel": kernel, "padding": _draw_padding(draw, r, [min(kk, 2) for kk in k])}
    if _rchance(draw, 0.5):
        attrs["stride"] = _per_axis(draw, r, [[1, 2] if n >= 4 else [1] for n in s.sizes])
    if _rchance(draw, 0.5):
        attrs["multiplier"] = draw(_ints(1, 2))
    attrs["bias"] = draw(_coin())
    stride = _as_axes(attrs.get("stride", 1), r)
    s.sizes = _conv_out(s.sizes, k, stride, _padding_pairs(attrs["padding"], r, k, stride, s.sizes))
    s.channels *= attrs.get("multiplier", 1)
    return {"dwconv": attrs}


def _rank_pool(draw, s: _RankState, kind=None, keep_size=False):
    """max or average pooling with any kernel, stride, padding form, ceil and (average) count_include_pad."""
    r = s.rank
    kind = kind or draw(_pick(["maxpool", "avgpool"]))
    if keep_size:
        k = draw(_pick([1, 3]))
        attrs = {"kernel": k, "stride": 1, "padding": draw(_pick(["same", k // 2]))}
    else:
        kernel = _per_axis(draw, r, [list(range(1, min(4, n) + 1)) for n in s.sizes])
        k = _as_axes(kernel, r)
        attrs = {"kernel": kernel}
        if _rchance(draw, 0.8):
            attrs["stride"] = _per_axis(draw, r, [[1, 2, 3] if n >= 6 else [1, 2] for n in s.sizes])
        # PyTorch's own pools take padding <= kernel / 2; archc lowers the rest (and asymmetric forms) itself
        most = [kk // 2 if _rchance(draw, 0.8) else kk for kk in k]
        if _rchance(draw, 0.7):
            attrs["padding"] = _draw_padding(draw, r, most)
    if _rchance(draw, 0.4):
        attrs["ceil"] = draw(_coin())
    if kind == "avgpool" and _rchance(draw, 0.5):
        attrs["count_include_pad"] = draw(_coin())
    k = _as_axes(attrs["kernel"], r)
    stride = _as_axes(attrs.get("stride", attrs["kernel"]), r)
    pairs = _padding_pairs(attrs.get("padding", 0), r, k, stride, s.sizes)
    if not keep_size:
        s.sizes = _conv_out(s.sizes, k, stride, pairs, ceil=attrs.get("ceil", False) and attrs.get("padding") != "same")
    return {kind: attrs}


def _rank_conv_transpose(draw, s: _RankState, out=None):
    r = s.rank
    grow = all(n * 2 <= s.cap() for n in s.sizes)
    stride = _per_axis(draw, r, [[1, 2, 3] if grow and n * 3 <= s.cap() else [1, 2] if grow else [1] for n in s.sizes])
    st_ = _as_axes(stride, r)
    kernel = _per_axis(draw, r, [[1, 2, 3, 4]] * r)
    k = _as_axes(kernel, r)
    attrs = {"out": out if out is not None else draw(_ints(1, 5)), "kernel": kernel, "stride": stride}
    if _rchance(draw, 0.6):
        attrs["padding"] = _per_axis(draw, r, [list(range(0, (kk - 1) // 2 + 2)) for kk in k])
    if _rchance(draw, 0.5):
        attrs["output_padding"] = _per_axis(draw, r, [list(range(0, ss)) for ss in st_])
        if isinstance(attrs["output_padding"], int) and attrs["output_padding"] >= min(st_):
            attrs["output_padding"] = 0
    if _rchance(draw, 0.5):
        attrs["bias"] = draw(_coin())
    p = _as_axes(attrs.get("padding", 0), r)
    op = _as_axes(attrs.get("output_padding", 0), r)
    s.sizes = [(n - 1) * ss - 2 * pp + (kk - 1) + oo + 1 for n, ss, pp, kk, oo in zip(s.sizes, st_, p, k, op)]
    s.channels = attrs["out"]
    return {"conv_transpose": attrs}


def _rank_upsample(draw, s: _RankState, top_level=False):
    """By a scale (integer or fractional, one or per axis), to a size (one or per axis), or to the input's size."""
    r = s.rank
    attrs = {}
    mode = draw(_pick(["nearest", LINEAR[r]]))
    if mode != "nearest" or _rchance(draw, 0.3):
        attrs["mode"] = mode
    if mode != "nearest" and _rchance(draw, 0.5):
        attrs["align_corners"] = draw(_coin())
    how = draw(_pick(["scale", "scale", "size", "input"] if top_level else ["scale", "scale", "size"]))
    if how == "input":
        attrs["size"] = "input"
        s.sizes = list(s.input)
        return {"upsample": attrs}
    if how == "scale":
        options = [[f for f in [1, 2, 3, *FRACTIONS] if 1 <= int(n * f) <= s.cap()] or [1] for n in s.sizes]
        scale = _per_axis(draw, r, options)
        attrs["scale"] = scale
        s.sizes = [int(n * f) for n, f in zip(s.sizes, _as_axes(scale, r))]
    else:
        size = _per_axis(draw, r, [list(range(1, s.cap() + 1))] * r)
        attrs["size"] = size
        s.sizes = _as_axes(size, r)
    return {"upsample": attrs}


def _rank_keep(draw, s: _RankState, keep_width=False):
    """An item keeping the spatial size (and, with ``keep_width``, the width): for branches and residual bodies."""
    r = s.rank
    choice = draw(_ints(0, 8))
    w = s.channels if keep_width else None
    if choice <= 1:
        return _rank_conv(draw, s, keep_size=True, out=w)
    if choice == 2:
        return _rank_pool(draw, s, keep_size=True)
    if choice == 3:
        return {"scale": {"factor": draw(_pick([0.17, -1.5, 2.0, 0.1]))}}
    if choice == 4:
        return {"bn": {}}
    if choice == 5:
        return {draw(_pick(ACTS)): {}}
    if choice == 6:  # down then back up to the same size (a U-Net level): pool, then upsample to an explicit size
        size = list(s.sizes)
        down = _rank_pool(draw, s)
        mode = draw(_pick(["nearest", LINEAR[r]]))
        up = {"size": size if draw(_coin()) or len(set(size)) > 1 else size[0], "mode": mode}
        if mode != "nearest" and draw(_coin()):
            up["align_corners"] = draw(_coin())
        s.sizes = size
        return {"seq": {"body": [down, {"upsample": up}]}}
    if choice == 7:  # up by a transposed convolution, down by a strided pool: kernel = stride, no padding
        f = draw(_ints(2, 3)) if all(n * 3 <= s.cap() for n in s.sizes) else 2
        ct = {"out": s.channels if keep_width else draw(_ints(1, 5)), "kernel": f, "stride": f}
        s.channels = ct["out"]
        down = {draw(_pick(["maxpool", "avgpool"])): {"kernel": f}}
        return {"seq": {"body": [{"conv_transpose": ct}, down]}}
    return {"dropout": {"rate": 0.25}}


def _rank_combinator(draw, s: _RankState):
    choice = draw(_pick(["residual", "add", "concat", "repeat"]))
    if choice == "residual":
        c = s.channels
        body = [_rank_keep(draw, s, keep_width=True) for _ in range(draw(_ints(1, 3)))]
        s.channels = c
        return {"residual": {"body": body}}
    if choice == "add":
        c, c0, branches = draw(_ints(1, 5)), s.channels, []
        for _ in range(2):
            s.channels = c0
            body = [_rank_keep(draw, s) for _ in range(draw(_ints(0, 2)))]
            branches.append([*body, {"conv": {"out": c, "kernel": 1}}])
        s.channels = c
        return {"add": branches}
    if choice == "concat":
        c0, total, branches = s.channels, 0, []
        for _ in range(draw(_ints(2, 3))):
            s.channels = c0
            branches.append([_rank_keep(draw, s) for _ in range(draw(_ints(0, 2)))])
            total += s.channels
        s.channels = total
        return {"concat": branches}
    c = s.channels
    body = [_rank_keep(draw, s, keep_width=True) for _ in range(draw(_ints(1, 2)))]
    s.channels = c
    return {"repeat": {"times": draw(_ints(1, 2)), "body": body}}


def _rank_blocks(r):
    """Blocks whose params are pool, transposed-convolution and resampling attributes, with conditions."""
    lin, same3 = LINEAR[r], {"kernel": 3, "padding": 1}
    return {
        "down": {
            "params": {"width": None, "k": 3, "stride": 2, "ceil": False, "cip": True, "pool": True},
            "body": [
                {"conv": {"out": "$width", "kernel": 3, "padding": "same", "if": "${in_channels != width}"}},
                {
                    "avgpool": {
                        "kernel": "$k",
                        "stride": "$stride",
                        "padding": "${k // 2}",
                        "ceil": "$ceil",
                        "count_include_pad": "$cip",
                        "if": "$pool",
                    }
                },
                {"maxpool": {"kernel": "$k", "stride": "$stride", "padding": "same", "if": "${not pool}"}},
            ],
        },
        "up": {
            "params": {"width": None, "factor": 2, "linear": False},
            "body": [
                {"upsample": {"scale": "$factor", "if": "${not linear}"}},
                {"upsample": {"scale": "$factor", "mode": lin, "align_corners": False, "if": "$linear"}},
                {"conv": {"out": "$width", "kernel": 1, "if": "${in_channels > width}"}},
                {"residual": {"body": [{"bn": {}}, {"relu": {}}, {"conv": {"out": "${in_channels}", **same3}}]}},
            ],
        },
        "tconv": {
            "params": {"width": None, "stride": 2, "pad": 1, "k": 3, "flag": False},
            "body": [
                {
                    "conv_transpose": {
                        "out": "$width",
                        "kernel": "$k",
                        "stride": "$stride",
                        "padding": "$pad",
                        "output_padding": "${stride - 1}",
                        "bias": False,
                    }
                },
                {"bn": {}},
                {"scale": {"factor": 0.5, "if": "$flag"}},
                {"relu": {}},
            ],
        },
    }


def _rank_call(draw, s: _RankState, name: str, defaults: dict):
    """A call of one of ``_rank_blocks``' blocks with literal arguments (some left to their defaults:
    ``defaults`` is the block's params merged with the spec's ``defaults:``)."""
    r = s.rank
    args = {"width": draw(_ints(1, 5))}

    def arg(key, value, _default=None):
        if value != defaults[key] or draw(_coin()):
            args[key] = value
        return value

    if name == "down":
        k = arg("k", draw(_pick([1, 2, 3])), 3)
        stride = arg("stride", draw(_pick([1, 2])), 2)
        ceil = arg("ceil", draw(_coin()), False)
        arg("cip", draw(_coin()), True)
        pool = arg("pool", draw(_coin()), True)
        kk, ss = [k] * r, [stride] * r
        if pool:
            s.sizes = _conv_out(s.sizes, kk, ss, [(k // 2, k // 2)] * r, ceil=ceil)
        else:
            s.sizes = [-(-n // stride) for n in s.sizes]
    elif name == "up":
        options = [f for f in [1, 2, *FRACTIONS] if all(1 <= int(n * f) <= s.cap() for n in s.sizes)] or [1]
        f = arg("factor", draw(_pick(options)), 2)
        arg("linear", draw(_coin()), False)
        s.sizes = [int(n * f) for n in s.sizes]
        if s.channels <= args["width"]:
            args["width"] = s.channels if draw(_coin()) else args["width"]
    else:
        grow = all(n * 2 <= s.cap() for n in s.sizes)
        stride = arg("stride", draw(_pick([1, 2] if grow else [1])), 2)
        k = arg("k", draw(_pick([2, 3, 4])), 3)
        pad = arg("pad", draw(_ints(0, (k - 1) // 2)), 1)
        arg("flag", draw(_coin()), False)
        s.sizes = [(n - 1) * stride - 2 * pad + (k - 1) + (stride - 1) + 1 for n in s.sizes]
    if name != "up" or s.channels > args["width"]:
        s.channels = args["width"]
    if _rchance(draw, 0.2):
        args["name"] = f"{name}_{draw(_ints(0, 10**4))}"
    return {name: args}


def _rank_invalid(draw, r, network):
    """A spec made invalid on purpose, in a way ``check`` must refuse with a located error."""
    what = draw(
        _pick(
            [
                "ct_dilation",
                "ct_groups",
                "output_padding",
                "mode_rank",
                "nearest_align",
                "size_input_nested",
                "kernel_axes",
                "scale_and_size",
            ]
        )
    )
    wrong = {1: 2, 2: 3, 3: 2}[r]
    item = {
        "ct_dilation": {"conv_transpose": {"out": 2, "kernel": 3, "dilation": 2}},
        "ct_groups": {"conv_transpose": {"out": 2, "kernel": 3, "groups": 2}},
        "output_padding": {"conv_transpose": {"out": 2, "kernel": 3, "stride": 2, "output_padding": 2}},
        "mode_rank": {"upsample": {"scale": 2, "mode": LINEAR[wrong]}},
        "nearest_align": {"upsample": {"scale": 2, "align_corners": True}},
        # (an unnamed seq's items are the network's own: only a named one nests)
        "size_input_nested": {"seq": {"name": "nested", "body": [{"upsample": {"size": "input"}}]}},
        "kernel_axes": {"maxpool": {"kernel": [2] * wrong}},
        "scale_and_size": {"upsample": {"scale": 2, "size": 4}},
    }[what]
    if what == "ct_groups":  # the width must be even, so that only the groups rule can refuse it
        network.insert(0, {"conv": {"out": 2, "kernel": 1}})
        network.insert(1, item)
    else:
        network.insert(draw(_ints(0, len(network))), item)
    return what


@st.composite
def rank_spec(hypothesis_draw, invalid_rate=0.08, ranks=(1, 2, 3)):
    """(spec text, what was broken or None, rank): a random network of rank 1, 2 or 3.

    Every choice comes from one ``random.Random`` that hypothesis seeds: these specs make dozens of choices each,
    and hypothesis' own choices lean to the first and smallest values (in a hundred cases, no [top, bottom, left,
    right] padding, no fractional scale), where a uniform choice covers every form in a CI run."""
    rnd = hypothesis_draw(st.randoms(use_true_random=True))

    def draw(choice):
        return choice(rnd)

    r = draw(_pick(ranks))
    lo, hi = RANK_SIZES[r]
    sizes = [draw(_ints(lo, hi)) for _ in range(r)]
    s = _RankState(r, sizes, draw(_ints(1, 3)))
    names = {1: ["length"], 2: ["height", "width"], 3: ["depth", "height", "width"]}[r]
    doc = {"name": f"rank{r}_net", "input": {**dict(zip(names, sizes)), "channels": s.channels}}
    blocks = _rank_blocks(r)
    use_blocks = _rchance(draw, 0.4)
    if use_blocks:
        doc["blocks"] = blocks
        if _rchance(draw, 0.3):
            doc["defaults"] = {"down": {"ceil": True}, "tconv": {"flag": True}}
    effective = {b: {**d["params"], **doc.get("defaults", {}).get(b, {})} for b, d in blocks.items()}
    network = []
    for _ in range(draw(_ints(1, 5))):
        if min(s.sizes) < 1 or max(s.sizes) > 4 * s.cap():
            break  # the guess went wrong: the compiler will say what
        choice = draw(_ints(0, 11))
        big = any(n * 2 > s.cap() for n in s.sizes)
        if choice in (0, 1):
            item = _rank_conv(draw, s)
        elif choice == 2:
            item = _rank_dwconv(draw, s)
        elif choice in (3, 4):
            item = _rank_pool(draw, s)
        elif choice == 5 and not big:
            item = _rank_conv_transpose(draw, s)
        elif choice == 6:
            item = _rank_upsample(draw, s, top_level=True)
        elif choice == 7:
            item = _rank_combinator(draw, s)
        elif choice in (8, 9) and use_blocks:
            name = draw(_pick(["down", "up", "tconv"] if not big else ["down"]))
            item = _rank_call(draw, s, name, effective[name])
        elif choice == 10:
            item = {"scale": {"factor": draw(_pick([0.17, 0.2, -2.0, 3.0]))}}
        else:
            item = _rank_keep(draw, s)
        if _rchance(draw, 0.1) and isinstance(next(iter(item.values())), dict):
            next(iter(item.values()))["name"] = f"item{len(network)}"
        network.append(item)
    tail = draw(_pick(["gap", "flatten", "global_maxpool", "none", "none"]))
    if tail == "flatten" and s.channels * max(1, math.prod(s.sizes)) > 4000:
        tail = "gap"
    if tail != "none":
        network.append({tail: {}})
        if draw(_coin()):
            network.append({"dense": {"out": draw(_ints(1, 4))}})
    broken = _rank_invalid(draw, r, network) if _rchance(draw, invalid_rate) else None
    doc["network"] = network
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=200), broken, r


# ---------------------------------------------------------------- graphs: references, blocks with two inputs, outputs
GRAPH_BLOCKS = {
    # a block with two inputs: the second resized like the first's projection, fused by add or concat
    "fuse": {
        "params": {"out": None, "merge": "add"},
        "inputs": ["x", "other"],
        "body": [
            {"conv": {"name": "a", "out": "$out", "kernel": 1}},
            {"upsample": {"name": "b", "from": "other", "like": "a"}},
            {"conv": {"name": "c", "out": "$out", "kernel": 1}},
            {"add": {"name": "sum", "if": "${merge == 'add'}", "from": ["a", "c"]}},
            {"concat": {"name": "cat", "if": "${merge != 'add'}", "from": ["c", "a"]}},
        ],
    },
    # a block that reads its own input by name after transforming it (a hand-written shortcut)
    "keep": {
        "params": {"out": None},
        "inputs": ["x"],
        "body": [
            {"conv": {"out": "$out", "kernel": 3, "padding": "same"}},
            {"relu": {"name": "act"}},
            {"concat": {"from": ["x", "act"]}},
        ],
    },
    # a block with one unnamed input whose items are read from outside by a dotted path (call.a, call.r)
    "tap": {
        "params": {"out": None},
        "body": [
            {"conv": {"name": "a", "out": "$out", "kernel": 1}},
            {"relu": {"name": "r"}},
            {"conv": {"name": "b", "out": "$out", "kernel": 3, "padding": "same"}},
        ],
    },
}


@st.composite
def graph_spec(hypothesis_draw, ranks=(1, 2, 3)):
    """(spec text, rank): a network whose items read earlier outputs by name (``from:``), merge named outputs,
    call blocks with two inputs or reading their own input, read inside block calls by dotted paths (``n3.r``),
    resize ``like:`` an earlier output, and may name several outputs. Every drawn spec is valid (what the
    generator expects: shapes tracked as it draws)."""
    rnd = hypothesis_draw(st.randoms(use_true_random=True))

    def draw(choice):
        return choice(rnd)

    r = draw(_pick(ranks))
    lo, hi = RANK_SIZES[r]
    sizes = [draw(_ints(max(lo, 4), hi)) for _ in range(r)]
    s = _RankState(r, sizes, draw(_ints(1, 3)))
    axes = {1: ["length"], 2: ["height", "width"], 3: ["depth", "height", "width"]}[r]
    doc = {"name": f"graph{r}", "input": {"name": "image", **dict(zip(axes, sizes)), "channels": s.channels}}
    if draw(_coin()):
        doc["blocks"] = GRAPH_BLOCKS
    made = {"image": (list(s.sizes), s.channels)}  # name -> (spatial sizes, channels) of each named output
    network = []
    read: set[str] = set()  # outputs read by name (`like:` reads a size only)
    dropped: list[str] = []  # outputs whose next item reads another by name: outputs of the model, or unread
    for i in range(draw(_ints(2, 7))):
        name = f"n{i}"
        choice = draw(_ints(0, 9))
        earlier = list(made)
        reads_other = None
        if choice == 0:  # an item reads an earlier output
            src = draw(_pick(earlier))
            reads_other, _ = [src], read.add(src)
            s.sizes, s.channels = list(made[src][0]), made[src][1]
            item = _rank_conv(draw, s, keep_size=draw(_coin()))
            item["conv"]["from"] = src
        elif choice == 1:  # merge named outputs of the same spatial size
            same = [n for n in earlier if made[n][0] == s.sizes] or None
            if not network or same is None:
                item = _rank_conv(draw, s, keep_size=True)
            else:
                prev = list(made)[-1] if list(made)[-1] != "image" or len(made) == 1 else None
                picks = [draw(_pick(same)) for _ in range(draw(_ints(1, 3)))]
                kind = draw(_pick(["concat", "add", "mul"]))
                if kind != "concat":  # the same shape: one name with itself, or same-width outputs
                    width = made[picks[0]][1]
                    picks = [p for p in picks if made[p][1] == width] or picks[:1]
                    picks = picks if len(picks) > 1 else picks * 2
                item = {kind: {"from": picks}}
                reads_other, _ = picks, read.update(picks)
                s.sizes = list(made[picks[0]][0])
                s.channels = sum(made[p][1] for p in picks) if kind == "concat" else made[picks[0]][1]
                del prev
        elif choice == 2:  # resize like an earlier output
            like = draw(_pick(earlier))
            item = {"upsample": {"like": like}}
            if draw(_coin()):
                item["upsample"]["mode"] = LINEAR[r]
                if draw(_coin()):
                    item["upsample"]["align_corners"] = draw(_coin())
            s.sizes = list(made[like][0])
        elif choice == 3 and "blocks" in doc:  # a block with two inputs
            other = draw(_pick(earlier))
            out = draw(_ints(1, 4))
            merge = draw(_pick(["add", "concat"]))
            item = {"fuse": {"out": out, "merge": merge, "from": {"other": other}}}
            read.add(other)
            s.channels = out if merge == "add" else 2 * out
        elif choice == 4 and "blocks" in doc:
            out = draw(_ints(1, 4))
            item = {"keep": {"out": out}}
            s.channels += out
        elif choice == 8 and "blocks" in doc:  # a block call whose items are read by a dotted path
            out = draw(_ints(1, 4))
            item = {"tap": {"out": out}}
            made[f"{name}.a"] = made[f"{name}.r"] = (list(s.sizes), out)
            s.channels = out
        elif choice == 5 and r < 3:  # (TensorFlow has no float64 3-D pooling: tests/test_ranks.py checks those)
            item = _rank_pool(draw, s)
        elif choice == 6 and all(n * 2 <= s.cap() for n in s.sizes):
            item = _rank_conv_transpose(draw, s)
        elif choice == 7:
            item = {draw(_pick(["relu", "sigmoid", "tanh"])): {}}
        else:
            item = _rank_conv(draw, s, keep_size=draw(_coin()))
        if min(s.sizes) < 1:
            break
        (attrs,) = item.values()
        attrs["name"] = name
        if reads_other is not None and network and f"n{i - 1}" not in reads_other:
            dropped.append(f"n{i - 1}")
        network.append(item)
        made[name] = (list(s.sizes), s.channels)
    dropped = [n for n in dropped if n not in read]  # the model must return them (their values are read nowhere)
    last = network[-1][next(iter(network[-1]))]["name"] if network else None
    if len(network) >= 3 and draw(_coin()):  # some items in a named seq: read from outside by a dotted path
        a = draw(_ints(0, len(network) - 2))
        b = draw(_ints(a + 1, len(network)))
        inside = {next(iter(it.values()))["name"] for it in network[a:b]}
        seq_name = f"s{a}"

        def dotted(ref):
            return f"{seq_name}.{ref}" if ref.split(".")[0] in inside else ref

        for it in network[b:]:
            (attrs,) = it.values()
            if isinstance(attrs.get("from"), str):
                attrs["from"] = dotted(attrs["from"])
            elif isinstance(attrs.get("from"), list):
                attrs["from"] = [dotted(r) for r in attrs["from"]]
            elif isinstance(attrs.get("from"), dict):
                attrs["from"] = {k: dotted(v) for k, v in attrs["from"].items()}
            if "like" in attrs:
                attrs["like"] = dotted(attrs["like"])
        dropped = [dotted(n) for n in dropped]
        made = {dotted(n): v for n, v in made.items()}
        last = dotted(last)
        network[a:b] = [{"seq": {"name": seq_name, "body": network[a:b]}}]
    doc["network"] = network
    if network and (dropped or draw(_coin())):
        picks = {draw(_pick(list(made))) for _ in range(draw(_ints(1, 3)))}
        picks |= {*dropped, last}
        doc["outputs"] = {f"out_{p.replace('.', '_')}": p for p in sorted(picks)}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=200), r

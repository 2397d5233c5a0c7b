"""Hypothesis strategies: random valid-looking specs (as YAML text) built from every primitive and combinator."""

from __future__ import annotations

import json

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
    # ceil rounding only for max-pooling: the Keras backend refuses average pooling with ceil (see README)
    attrs["ceil"] = draw(st.booleans()) if kind == "maxpool" else False
    if kind == "maxpool" and draw(st.booleans()):
        attrs = {"kernel": k, "stride": attrs["stride"], "padding": "same"}
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

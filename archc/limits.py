"""Bounds on what the emitters are given, checked on the IR before anything is built.

The generated code has one statement (or constructor argument) per template item, and one ``for`` loop per
``repeat`` / ``dense_connect`` nested in the body it is written in (a block called inside is a class or
function of its own, so nesting starts again there). Two shapes of spec that the loader and the lowering
accept cost the emitters far more than their size:

- loops nested in one body: Python refuses more than 20 statically nested blocks (``SyntaxError: too many
  statically nested blocks``), and the PyTorch emitter's time grows about 1.8x per level (measured with
  ``repeat: {times: 1}`` nested: 10 levels 1.7 s, 14 levels 10 s, 16 levels 32 s, 21 over 60 s);
- many items in one file: a network of 10,000 ``relu`` items takes 2.6 s and 280 MB per backend to build,
  12,000 3.3 s of CPU and 385 MB, 20,000 50-80 s and 1 GB (on a loaded machine), 50,000 (450 KB of YAML) 5.6 GB.

``MAX_LOOP_NESTING`` and ``MAX_TEMPLATE_ITEMS`` are set well above every spec in specs/ (at most 1 level and 101
items, inception_v3), every spec the property tests draw (800 drawn: at most 1 level, 145 items) and the
benchmark's scaling spec (10,000 explicit block calls, benchmarks/run.py), and below the measured cliffs.
``archc check`` applies them too, so a spec it accepts is one both builds take.
"""

from __future__ import annotations

from . import ir
from .errors import ArchcError

MAX_LOOP_NESTING = 8  # repeat / dense_connect loops nested in one body (PyTorch emitter at 8 levels: ~1 s)
MAX_TEMPLATE_ITEMS = 12_000  # items in the network, heads and block definitions (12,000 relus: 3.3 s, 385 MB)
_LOOPS = frozenset({"repeat", "dense_connect"})


def _bodies(model: ir.Model):
    """(template, what) for every body the emitters write out: the network, each head, each block."""
    yield model.network, "the network"
    for h in model.heads:
        yield h.template, f"head '{h.name}'"
    for b in model.blocks:
        yield b.body, f"block '{b.name}'"


def measure(model: ir.Model) -> tuple[int, int, tuple]:
    """(template items, deepest loop nesting, (node, body) where that nesting is reached) of a model."""
    items, deepest, where = 0, 0, (None, None)
    for body, what in _bodies(model):
        stack = [(c, 0) for c in body.children]  # the body itself is not an item
        while stack:  # iterative: a deep spec must not meet the recursion limit here
            node, depth = stack.pop()
            items += 1
            if node.kind in _LOOPS:
                depth += 1
                if depth > deepest:
                    deepest, where = depth, (node, what)
            stack.extend((c, depth) for c in node.children)
    return items, deepest, where


def check(model: ir.Model) -> None:
    """Refuse a model the emitters could not write in bounded time and memory, located where it is written."""
    items, deepest, (node, what) = measure(model)
    if deepest > MAX_LOOP_NESTING:
        raise ArchcError(
            f"repeats nested {deepest} deep in {what}; at most {MAX_LOOP_NESTING} may nest in one body"
            " (move the inner ones into a block of their own)",
            node.loc,
        )
    if items > MAX_TEMPLATE_ITEMS:
        raise ArchcError(
            f"the spec writes {items} items (network, heads and blocks); at most {MAX_TEMPLATE_ITEMS} can be"
            " built (use repeat or blocks for what recurs)",
            model.network.loc,
        )

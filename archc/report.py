"""``archc report``: one self-contained HTML page about a network.

The page holds the diagram (inline SVG from :mod:`archc.diagram`, zoomable), the summary table
(one collapsible group per top-level item and head), a bar chart of parameters and MACs per
top-level stage, the input / output shapes with the loss weights, and the spec source with line
numbers (``id="L12"``) that the table rows link to. Nothing is fetched when the page is opened:
CSS and JS are inline, and there are no external URLs. The same spec gives the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from . import ir, ops
from .analysis import analyze, macs_of, params_of
from .diagram import fmt_shape, leaf_text, svg_text
from .errors import Loc

STDLIB_PREFIX = "<archc stdlib>"


@dataclass
class Row:
    """One table row: a layer, or the summary of a top-level item or head."""

    id: str
    name: str
    kind: str
    detail: str
    shape: str
    trainable: int
    non_trainable: int
    macs: int
    href: str | None
    where: str  # the location the row stands for, as text (a tooltip)
    children: list = field(default_factory=list)


class _Sources:
    """The user's spec files (not archc's stdlib) shown in the page, and anchors to their lines."""

    def __init__(self, spec_file: str):
        self.files: list[str] = [spec_file]

    def is_user(self, loc: Loc | None) -> bool:
        return loc is not None and not str(loc.file).startswith(STDLIB_PREFIX)

    def anchor(self, loc: Loc) -> str:
        if loc.file not in self.files:
            self.files.append(loc.file)
        i = self.files.index(loc.file)
        return f"L{loc.line}" if i == 0 else f"f{i}-L{loc.line}"


def _rows_of(item: ir.Node, root_href: str | None, sources: _Sources) -> list[Row]:
    """Leaf rows under ``item``; each links to the nearest location in the user's files."""
    rows: list[Row] = []

    def visit(node: ir.Node, href: str | None) -> None:
        if sources.is_user(node.loc):
            href = "#" + sources.anchor(node.loc)
        if ir.is_leaf(node):
            tr, nt = params_of(node)
            rows.append(
                Row(
                    id="row-" + node.path,
                    name=node.path,
                    kind=ops.leaf_kind(node),
                    detail=leaf_text(node),
                    shape=fmt_shape(node.out_shape),
                    trainable=tr,
                    non_trainable=nt,
                    macs=macs_of(node),
                    href=href,
                    where=str(node.loc) if node.loc else "",
                )
            )
            return
        for child in ir.children(node):
            visit(child, href)

    visit(item, root_href)
    return rows


def _group(node: ir.Node, row_id: str, name: str, kind: str, detail: str, sources: _Sources) -> Row:
    href = "#" + sources.anchor(node.loc) if sources.is_user(node.loc) else None
    leaves = _rows_of(node, href, sources)
    if ir.is_leaf(node):
        leaf = leaves[0]
        leaf.id, leaf.name = row_id, name
        return leaf
    return Row(
        id=row_id,
        name=name,
        kind=kind,
        detail=detail,
        shape=fmt_shape(node.out_shape),
        trainable=sum(r.trainable for r in leaves),
        non_trainable=sum(r.non_trainable for r in leaves),
        macs=sum(r.macs for r in leaves),
        href=href,
        where=str(node.loc) if node.loc else "",
        children=leaves,
    )


def _item_detail(model: ir.Model, node: ir.Node) -> tuple[str, str]:
    from .diagram import call_signature

    if isinstance(node, ir.Call):
        return "block", call_signature(model, node)
    if isinstance(node, ir.Merge):
        return node.mode, f"{node.mode} of {len(node.branches)} branches"
    if isinstance(node, ir.Repeat):
        return "repeat", f"repeat x{len(node.iterations)}"
    if isinstance(node, ir.DenseConnect):
        return "dense_connect", f"dense_connect x{len(node.layers)}"
    if ir.is_leaf(node):
        return ops.leaf_kind(node), leaf_text(node)
    return node.kind, node.kind


def _bars(groups: list[Row]) -> list[dict]:
    """Bar chart data: params and MACs of each stage as a percentage of the largest."""
    pmax = max([g.trainable + g.non_trainable for g in groups] + [1])
    mmax = max([g.macs for g in groups] + [1])
    return [
        {
            "name": g.name,
            "id": g.id,
            "params": g.trainable + g.non_trainable,
            "macs": g.macs,
            "pw": f"{100 * (g.trainable + g.non_trainable) / pmax:.2f}",
            "mw": f"{100 * g.macs / mmax:.2f}",
        }
        for g in groups
    ]


def _source_lines(path: str) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()


_XML_PROLOGUE = re.compile(r"\A(\s*<\?xml[^>]*\?>)?\s*(<!DOCTYPE[^>]*>)?\s*", re.S)


def inline_svg(svg: str) -> str:
    """SVG text ready to sit inside HTML: no XML declaration or DOCTYPE."""
    return _XML_PROLOGUE.sub("", svg, count=1)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("archc", "templates"),
        autoescape=True,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["num"] = lambda v: f"{v:,}"
    env.filters["shape"] = fmt_shape
    return env


def report_html(model: ir.Model, depth: int | None = 1) -> str:
    """The whole page as one HTML string (needs Graphviz for the diagram)."""
    sources = _Sources(model.spec_file)
    groups = []
    for item in model.body.children:
        kind, detail = _item_detail(model, item)
        groups.append(_group(item, "row-" + item.path, item.path, kind, detail, sources))
    heads = []
    for head in model.heads:
        g = _group(head.body, "row-head-" + head.name, head.name, "head", f"head at {head.at}", sources)
        heads.append(g)

    group_ids = {g.id for g in groups}

    def link(node: ir.Node) -> str | None:
        """A drawn node links to its table row: its own, or its first layer's."""
        if "row-" + node.path in group_ids:
            return "#row-" + node.path
        first = next((n for n in ir.walk(node) if ir.is_leaf(n)), None)
        return "#row-" + first.path if first is not None else None

    svg = inline_svg(svg_text(model, depth, links=link))
    report = analyze(model)
    outputs = [
        {"name": name, "shape": fmt_shape(shape), "weight": f"{report.loss_weights[name]:g}"}
        for name, shape in report.outputs.items()
    ]
    files = [
        {"path": f, "prefix": "" if i == 0 else f"f{i}-", "lines": _source_lines(f)}
        for i, f in enumerate(sources.files)
    ]
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            model=model,
            report=report,
            input_shape=fmt_shape(model.input_shape),
            outputs=outputs,
            depth="all" if depth is None else str(depth),
            svg=svg,
            groups=groups,
            heads=heads,
            bars=_bars(groups + heads),
            files=files,
        )
    )

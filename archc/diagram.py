"""``archc diagram``: the network as a top-to-bottom Graphviz graph, drawn from the IR.

The picture follows the spec's own structure, not a trace: blocks (calls of block definitions)
are clusters labelled with their name and arguments, or one node when collapsed; parallel
branches sit side by side above their merge node; repeats and dense connectivity are drawn once
with their count (``x6``) unless ``--depth all`` unrolls them; auxiliary heads are side outputs
with their loss weight; every edge carries the shape it transports (``28x28x256``).

Depth: every composite node other than a sequence (a block call, a merge, a repeat, dense
connectivity, any composite kind added later) costs one level, except a combinator that is the
whole body of a block, which is drawn as part of the block. ``depth=1`` (the default, as for
``archc summary``) draws the top-level items with every composite collapsed to one node; ``depth=N``
opens N - 1 levels; ``depth=None`` ("all") expands everything and unrolls repeats.

The DOT text is generated here (no Graphviz Python binding), every label escaped; the ``dot``
binary is only needed for svg / png / pdf. Output is deterministic: same spec, same bytes.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import ir, ops
from .errors import ArchcError

FORMATS = ("svg", "png", "pdf", "dot")
MAX_LAYOUT_NODES = 3000  # dot's layout time grows faster than the graph: 700 nodes 0.5 s, 2,400 nodes 25 s
INSTALL_HINT = "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz)"

# fill colours by node kind (ColorBrewer pastel shades)
_COLORS = {
    "conv": "#c6dbef",
    "dwconv": "#9ecae1",
    "bn": "#fff2ae",
    "act": "#ccebc5",
    "pool": "#fdd0a2",
    "gap": "#fdd0a2",
    "dense": "#decbe4",
    "dropout": "#f2f2f2",
    "flatten": "#f2f2f2",
    "zeropad": "#f2f2f2",
    "merge": "#e5e5e5",
    "block": "#fbb4ae",
    "io": "#ffffff",
}


# ---------------------------------------------------------------- labels and escaping


def html_escape(text: str) -> str:
    """Escape text for a Graphviz HTML-like label (``&``, ``<``, ``>``, quotes; newlines become breaks)."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace('"', "&quot;").replace("'", "&#39;")
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    return s.replace("\n", '<br align="center"/>')


def dot_quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as ``\\n``."""
    s = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n") + '"'


def fmt_shape(shape) -> str:
    """``(28, 28, 256)`` -> ``28x28x256``; flat ``(1000,)`` -> ``1000``."""
    return "x".join(str(s) for s in shape)


def fmt_value(v) -> str:
    """A block argument as written in a call: ``0.5``, ``[6, 12]``, ``true``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    return str(v)


def call_signature(model: ir.Model, node: ir.Call) -> str:
    """``inception(192, 96, 208, 16, 48, 64)``: the arguments in parameter order, trailing defaults left out."""
    try:
        defaults = dict(model.block(node.block).params)
    except KeyError:
        defaults = {}
    args = list(node.args)
    while args and args[-1][0] in defaults and defaults[args[-1][0]] == args[-1][1]:
        args.pop()
    return f"{node.block}({', '.join(fmt_value(v) for _, v in args)})"


def leaf_text(node: ir.Node) -> str:
    """The kind and key attributes of a layer: ``conv 3x3/2, 64``, ``maxpool 3x3/2 ceil``, ``dense 1000``
    (each kind's ``describe`` in :mod:`archc.ops`)."""
    prim = ops.of(node)
    return prim.describe(node) if prim.describe is not None else prim.kind


_NOT_STRUCTURE = {"name", "path", "loc", "in_shape", "out_shape"}


def structure(node: ir.Node):
    """What a node computes, without names, paths, locations or shapes: equal for two iterations of a
    repeat that a drawing may show once."""
    if not dataclasses.is_dataclass(node):
        return node
    out = [type(node).__name__]
    for f in dataclasses.fields(node):
        if f.name in _NOT_STRUCTURE:
            continue
        v = getattr(node, f.name)
        if isinstance(v, tuple) and v and all(isinstance(x, ir.Node) for x in v):
            v = tuple(structure(x) for x in v)
        elif isinstance(v, ir.Node):
            v = structure(v)
        out.append((f.name, v))
    return tuple(out)


def _color_key(node: ir.Node) -> str:
    kind = ops.leaf_kind(node)
    if kind in _COLORS:
        return kind
    return node.kind if node.kind in _COLORS else "dropout"


# ---------------------------------------------------------------- the graph


@dataclass
class Cluster:
    """A subgraph drawn as a labelled box (an expanded block, repeat, dense connectivity or head)."""

    id: str
    label: str  # HTML-like label body (already escaped)
    style: str = "block"
    items: list = field(default_factory=list)  # node names (str) and Clusters, in order


@dataclass
class Graph:
    """Nodes, clusters and edges, in a fixed order: the DOT text is a pure function of this."""

    nodes: dict = field(default_factory=dict)  # DOT name -> {id, label, color, shape[, group, URL]}
    root: Cluster = field(default_factory=lambda: Cluster("root", ""))
    edges: list = field(default_factory=list)  # (src, dst, label, style)

    @property
    def node_count(self) -> int:
        return len(self.nodes)

    @property
    def edge_count(self) -> int:
        return len(self.edges)


def parse_depth(text: str) -> int | None:
    """``--depth`` value: a positive integer (1: the top-level items), or ``all`` (None)."""
    if text == "all":
        return None
    try:
        d = int(text)
    except ValueError:
        d = 0
    if d < 1:
        raise ArchcError(f"--depth must be a positive integer or 'all', got '{text}'", None)
    return d


class _Builder:
    """Walks the IR and lays the graph out as nested clusters; one instance per drawing."""

    def __init__(self, model: ir.Model, depth: int | None, links=None):
        self.model = model
        self.links = links  # ir node -> link target ("#row-...") or None
        self.budget = 10**9 if depth is None else depth - 1  # levels of composites opened
        self.unroll = depth is None
        self.g = Graph()
        self.stack = [self.g.root]
        self.used_ids: set[str] = set()
        self.made: dict[str, list] = {}  # IR path -> the exits of its drawing (what a reference to it reads)

    # -- primitives
    def _html_id(self, base: str) -> str:
        hid, i = base, 1
        while hid in self.used_ids:
            i += 1
            hid = f"{base}~{i}"
        self.used_ids.add(hid)
        return hid

    def node(self, base_id: str, label: str, color: str, shape: str = "box", ir_node: ir.Node | None = None) -> str:
        name = f"n{len(self.g.nodes)}"
        attrs = {"id": self._html_id(base_id), "label": label, "color": color, "shape": shape}
        if len(self.stack) == 1:
            attrs["group"] = "main"  # keeps the main line straight
        if self.links is not None and ir_node is not None:
            target = self.links(ir_node)
            if target:
                attrs["URL"] = target
        self.g.nodes[name] = attrs
        self.stack[-1].items.append(name)
        return name

    def connect(self, srcs, dst: str) -> None:
        for src, shape, style in srcs:
            self.g.edges.append((src, dst, fmt_shape(shape), style))

    def open(self, base_id: str, label: str, style: str = "block") -> None:
        c = Cluster(self._html_id(base_id), label, style)
        self.stack[-1].items.append(c)
        self.stack.append(c)

    def close(self) -> None:
        self.stack.pop()

    # -- labels
    def title(self, name: str, text: str) -> str:
        """Bold name over the kind text, or the kind text alone when the name says nothing more."""
        if not name or name == text or text.startswith(name + " ") or text == name:
            return html_escape(text)
        return f"<b>{html_escape(name)}</b><br/>{html_escape(text)}"

    def composite_parts(self, node: ir.Node) -> tuple[str, str]:
        """(name, what it is) of a composite node: ``("inception4a", "inception(192, 96, 208, 16, 48, 64)")``."""
        if isinstance(node, ir.Call):
            sig = call_signature(self.model, node)
            inner = node.body.children[0] if len(node.body.children) == 1 else None
            if isinstance(inner, ir.Repeat):  # a block that is a loop: say how many times
                sig += f" x{len(inner.iterations)}"
            elif isinstance(inner, ir.DenseConnect):
                sig += f" x{len(inner.layers)}"
            return ("" if node.name == node.block else node.name), sig
        if isinstance(node, ir.Repeat):
            return node.name, f"repeat x{len(node.iterations)}"
        if isinstance(node, ir.DenseConnect):
            return node.name, f"dense_connect x{len(node.layers)}"
        if isinstance(node, ir.Merge):
            return node.name, f"{node.mode} of {len(node.branches)} branches"
        return node.name, node.kind

    def composite_text(self, node: ir.Node) -> str:
        """Label of a collapsed composite: bold name over what it is."""
        return self.title(*self.composite_parts(node))

    def cluster_text(self, node: ir.Node, note: str = "") -> str:
        """Label of an expanded composite: one bold line ``name: what it is``."""
        name, what = self.composite_parts(node)
        return f"<b>{html_escape((name + ': ' if name else '') + what + note)}</b>"

    # -- the walk
    def emit(self, node: ir.Node, srcs: list, budget: int, free: bool = False) -> list:
        """Draw ``node`` fed by ``srcs`` ((node name, shape, edge style) triples); returns its exits. A node that
        reads earlier outputs by name (``from:``) is fed from where they were made: an edge, not a cluster."""
        if node.src and node.src[0] and not (isinstance(node, ir.Merge) and not node.branches):
            srcs = self.made.get(node.src[0], srcs)
        exits = self._emit(node, srcs, budget, free)
        self.made[node.path] = exits
        return exits

    def reads_from_outside(self, node: ir.Node) -> list[str]:
        """The earlier outputs a collapsed composite reads by name from outside itself, in order, each once."""
        inside = node.path + "."
        out: list[str] = []
        for n in ir.walk(node):
            for path in n.src[1:] if n is node else n.src:  # (its own first: its input, drawn already; see emit)
                if path and not path.startswith(inside) and path in self.made and path not in out:
                    out.append(path)
        return out

    def _emit(self, node: ir.Node, srcs: list, budget: int, free: bool = False) -> list:
        if isinstance(node, ir.Merge) and not node.branches and node.src:  # named outputs merged
            m = self.node(f"node-{node.path}-merge", html_escape(node.mode), "merge", "ellipse")
            for s in node.src:
                self.connect(self.made.get(s, srcs), m)
            return [(m, node.out_shape, "")]
        if ir.is_leaf(node):
            n = self.node("node-" + node.path, self.title(node.name, leaf_text(node)), _color_key(node), ir_node=node)
            self.connect(srcs, n)
            return [(n, node.out_shape, "")]
        if isinstance(node, ir.Seq):
            for child in node.children:
                srcs = self.emit(child, srcs, budget)
            return srcs
        if not free:
            if budget <= 0:
                n = self.node("node-" + node.path, self.composite_text(node), "block", "box3d", node)
                self.connect(srcs, n)
                for path in self.reads_from_outside(node):  # what it reads by name is an edge too (a skip)
                    self.connect(self.made[path], n)
                return [(n, node.out_shape, "")]
            budget -= 1
        if isinstance(node, ir.Call):
            inputs = self.model.block(node.block).inputs
            if inputs:  # its main input, as references inside it record it
                self.made[f"{node.path}.<{inputs[0]}>"] = srcs
            self.open("cluster-" + node.path, self.cluster_text(node))
            body = node.body
            inner = body.children[0] if len(body.children) == 1 else None
            if inner is not None and not ir.is_leaf(inner) and not isinstance(inner, (ir.Seq, ir.Call)):
                exits = self.emit(inner, srcs, budget, free=True)
            else:
                exits = self.emit(body, srcs, budget)
            self.close()
            return exits
        if isinstance(node, ir.Merge):
            outs = []
            for branch in node.branches:
                outs += self.emit(branch, srcs, budget)
            m = self.node(f"node-{node.path}-merge", html_escape(node.mode), "merge", "ellipse")
            self.connect(outs, m)
            return [(m, node.out_shape, "")]
        if isinstance(node, ir.DenseConnect):
            return self.dense_connect(node, srcs, budget)
        if isinstance(node, ir.Repeat):
            return self.repeat(node, srcs, budget)
        return self.unknown(node, srcs, budget)

    def repeat(self, node: ir.Repeat, srcs: list, budget: int) -> list:
        """Unrolled, or drawn once; when the first iteration differs from the others (a stride-2 first
        layer, say), the first and the second are drawn: ``x1, then x(N-1)``."""
        its, n = node.iterations, len(node.iterations)
        if self.unroll:
            shown, note = its, ""
        elif n >= 2 and structure(its[0]) != structure(its[1]):
            shown, note = its[:2], f" (first, then x{n - 1} drawn once)"
        else:
            shown, note = its[:1], " (drawn once)"
        self.open("cluster-" + node.path, self.cluster_text(node, note))
        for it in shown:
            srcs = self.emit(it, srcs, budget)
        self.close()
        return [(s, node.out_shape, st) for s, _, st in srcs]

    def dense_connect(self, node: ir.DenseConnect, srcs: list, budget: int) -> list:
        """Layer i reads x_i; a concat node makes x_{i+1} = concat(x_i, layer_i(x_i))."""
        layers = node.layers if self.unroll else node.layers[:1]
        self.open("cluster-" + node.path, self.cluster_text(node, "" if self.unroll else " (drawn once)"))
        for i, layer in enumerate(layers):
            outs = self.emit(layer, srcs, budget)
            c = self.node(f"node-{node.path}-concat{i}", "concat", "merge", "ellipse")
            self.connect(outs + [(s, shape, "dashed") for s, shape, _ in srcs], c)
            h_w = tuple(layer.out_shape[:-1])
            srcs = [(c, h_w + (layer.in_shape[-1] + layer.out_shape[-1],), "")]
        self.close()
        return [(s, node.out_shape, st) for s, _, st in srcs]

    def unknown(self, node: ir.Node, srcs: list, budget: int) -> list:
        """A composite kind this module does not know: a cluster of its children, side by side into a
        merge node (named by its ``mode``, else its kind) when it has a ``mode`` / ``shortcut`` /
        ``branches`` field or its children's shapes do not chain, otherwise chained."""
        kids = ir.children(node)
        self.open("cluster-" + node.path, self.cluster_text(node))
        fields = set(getattr(node, "__dataclass_fields__", {}))
        parallel = "mode" in fields or bool(fields & {"shortcut", "branches", "paths"})
        chain = (
            not parallel and bool(kids) and kids[0].in_shape == node.in_shape and kids[-1].out_shape == node.out_shape
        )
        chain = chain and all(a.out_shape == b.in_shape for a, b in zip(kids, kids[1:]))
        if chain:
            for k in kids:
                srcs = self.emit(k, srcs, budget)
            exits = srcs
        else:
            outs = []
            for k in kids:
                outs += self.emit(k, srcs, budget)
            mode = getattr(node, "mode", None) or node.kind
            m = self.node(f"node-{node.path}-merge", html_escape(str(mode)), "merge", "ellipse")
            self.connect(outs or srcs, m)
            exits = [(m, node.out_shape, "")]
        self.close()
        return [(s, node.out_shape, st) for s, _, st in exits]

    def build(self) -> Graph:
        m = self.model
        inp = self.node("input", f"<b>input</b><br/>{fmt_shape(m.input_shape)}", "io", "oval")
        srcs = [(inp, m.input_shape, "")]
        self.made["<input>"] = srcs  # (the network input, as the references to it are recorded)
        exits_at = {}
        for item in m.body.children:
            srcs = self.emit(item, srcs, self.budget)
            exits_at[item.path] = srcs
        if m.outputs:  # several outputs, each from where it was made
            for name, key in m.outputs:
                path = "<input>" if key == m.input_name else key
                o = self.node(f"output-{name}", f"<b>output {html_escape(name)}</b>", "io", "oval")
                self.connect(self.made.get(path, srcs), o)
        else:
            out = self.node("output-main", f"<b>output</b><br/>loss weight {m.loss_weight:g}", "io", "oval")
            self.connect(srcs, out)
        for head in m.heads:
            self.open(
                "cluster-head-" + head.name,
                f"<b>{html_escape(head.name)}: auxiliary head, loss weight {head.loss_weight:g}</b>",
                "head",
            )
            hsrcs = [(s, shape, "dashed") for s, shape, _ in exits_at.get(head.at, srcs)]
            for item in head.body.children:
                hsrcs = self.emit(item, hsrcs, self.budget)
            o = self.node(
                "output-" + head.name,
                f"<b>{html_escape(head.name)}</b><br/>loss weight {head.loss_weight:g}",
                "io",
                "oval",
            )
            self.connect(hsrcs, o)
            self.close()
        return self.g


def build_graph(model: ir.Model, depth: int | None = 1, links=None) -> Graph:
    """The drawing of ``model`` at ``depth`` (None: everything, repeats unrolled); ``links`` maps an IR
    node to the URL its drawing links to (the report links nodes to their table rows)."""
    return _Builder(model, depth, links).build()


# ---------------------------------------------------------------- DOT text


def _cluster_dot(c: Cluster, g: Graph, indent: str, out: list) -> None:
    for item in c.items:
        if isinstance(item, Cluster):
            fill, pen, dash = (
                ("#fff8f0", "#d08060", "rounded") if item.style == "head" else ("#f7f7f7", "#909090", "rounded")
            )
            out.append(f"{indent}subgraph cluster_{len(out)} {{")
            out.append(f'{indent}  id={dot_quote(item.id)}; label=<{item.label}>; style="{dash},filled";')
            out.append(f'{indent}  fillcolor="{fill}"; color="{pen}"; labeljust=l;')
            _cluster_dot(item, g, indent + "  ", out)
            out.append(f"{indent}}}")
        else:
            a = g.nodes[item]
            style = '"rounded,filled"' if a["shape"] == "box" else "filled"
            extra = "".join(f", {k}={dot_quote(a[k])}" for k in ("group", "URL") if k in a)
            out.append(
                f"{indent}{item} [id={dot_quote(a['id'])}, label=<{a['label']}>, shape={a['shape']}, style={style}, "
                f'fillcolor="{_COLORS[a["color"]]}"{extra}];'
            )


def to_dot(graph: Graph, name: str) -> str:
    """The graph as DOT text (top to bottom); a pure function of the graph."""
    out = [
        f"digraph {dot_quote(name)} {{",
        '  graph [rankdir=TB, fontname="Helvetica", fontsize=11, nodesep=0.25, ranksep=0.3, newrank=true];',
        '  node [fontname="Helvetica", fontsize=10, margin="0.12,0.04", height=0.3, penwidth=0.8];',
        '  edge [fontname="Helvetica", fontsize=8, fontcolor="#555555", arrowsize=0.6, penwidth=0.8];',
    ]
    _cluster_dot(graph.root, graph, "  ", out)
    for src, dst, label, style in graph.edges:
        extra = f", style={style}" if style else ""
        out.append(f"  {src} -> {dst} [label={dot_quote(label)}{extra}];")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_text(model: ir.Model, depth: int | None = 1, links=None) -> str:
    """DOT source of ``model`` at ``depth``."""
    return to_dot(build_graph(model, depth, links), model.name)


# ---------------------------------------------------------------- rendering and writing


def find_dot() -> str | None:
    """Path of Graphviz's ``dot`` (``ARCHC_DOT`` overrides the search), or None."""
    env = os.environ.get("ARCHC_DOT")
    if env is not None:
        return env if env and os.path.isfile(env) and os.access(env, os.X_OK) else None
    return shutil.which("dot")


def render(dot: str, fmt: str) -> bytes:
    """Lay ``dot`` out with Graphviz and return the ``fmt`` bytes; ArchcError if Graphviz is missing or fails."""
    if fmt == "dot":
        return dot.encode("utf-8")
    exe = find_dot()
    if exe is None:
        raise ArchcError(
            f"--format {fmt} needs Graphviz's 'dot' program, which was not found: {INSTALL_HINT} "
            "(--format dot works without it)",
            None,
        )
    try:
        proc = subprocess.run(
            [exe, f"-T{fmt}"], input=dot.encode("utf-8"), capture_output=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ArchcError(f"running Graphviz ({exe}) failed: {exc}", None) from None
    if proc.returncode != 0:
        msg = proc.stderr.decode("utf-8", "replace").strip()
        raise ArchcError(f"Graphviz ({exe}) failed with exit status {proc.returncode}: {msg}", None)
    return _fixed_dates(proc.stdout) if fmt == "pdf" else proc.stdout


_PDF_DATE = re.compile(rb"(/(?:CreationDate|ModDate) *\(D:)([0-9]{1,14})")


def _fixed_dates(pdf: bytes) -> bytes:
    """Cairo stamps a PDF with the time it was made; the epoch instead (same length: offsets stay valid)."""
    return _PDF_DATE.sub(lambda m: m[1] + b"19700101000000"[: len(m[2])], pdf)


def drawing(model: ir.Model, depth: int | None, fmt: str, links=None) -> bytes:
    """The diagram of ``model`` in ``fmt``; a graph too large for Graphviz to lay out in reasonable time
    is refused (its DOT text can still be written)."""
    graph = build_graph(model, depth, links)
    if fmt != "dot" and graph.node_count > MAX_LAYOUT_NODES:
        raise ArchcError(
            f"the drawing of '{model.name}' at --depth {'all' if depth is None else depth} has "
            f"{graph.node_count:,} nodes, more than Graphviz lays out in reasonable time ({MAX_LAYOUT_NODES:,}; "
            "2,400 take about 25 s); draw fewer levels with a smaller --depth, or write --format dot",
            None,
        )
    return render(to_dot(graph, model.name), fmt)


def svg_text(model: ir.Model, depth: int | None = 1, links=None) -> str:
    """The diagram as SVG text (needs Graphviz)."""
    return drawing(model, depth, "svg", links).decode("utf-8")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: a failure leaves nothing behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an output file gets the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def format_for(out: str | None, fmt: str | None) -> str:
    """The output format: ``--format``, else the ``-o`` file's extension, else svg."""
    if fmt:
        return fmt
    if out and out != "-":
        ext = Path(out).suffix.lower().lstrip(".")
        if ext in FORMATS:
            return ext
        if ext == "gv":
            return "dot"
    return "svg"

"""``archc diagram``: the drawing matches the IR (node, edge and cluster counts derived here, from the IR,
independently of the renderer), labels are escaped, output is deterministic, errors are clean."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from archc import diagram, ir
from archc.cli import main
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parent.parent
# every spec in specs/ (and in zoo/, when it lands)
SPECS = sorted(str(p.relative_to(ROOT)) for d in ("specs", "zoo") for p in (ROOT / d).glob("**/*.yaml"))
SVG = "{http://www.w3.org/2000/svg}"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")

_MODELS: dict = {}


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
    monkeypatch.chdir(ROOT)


def model_of(spec: str) -> ir.Model:
    if spec not in _MODELS:
        _MODELS[spec] = compile_spec(str(ROOT / spec) if not Path(spec).exists() else spec)
    return _MODELS[spec]


# ------------------------------------------------------------------ expected counts, from the IR

COMPOSITES = (ir.Seq, ir.Merge, ir.DenseConnect, ir.Repeat, ir.Call)


@dataclasses.dataclass
class Count:
    nodes: int = 0
    edges: int = 0
    clusters: int = 0


def differ(a: ir.Node, b: ir.Node) -> bool:
    """Two repeat iterations compute different things: some node, in walk order, differs in a field other
    than its name, path, location or shapes."""
    skip = {"name", "path", "loc", "in_shape", "out_shape"}

    def flat(root):
        out = []
        for n in ir.walk(root):
            fields = {k: v for k, v in vars(n).items() if k not in skip}
            out.append(
                (
                    type(n),
                    {
                        k: v
                        for k, v in fields.items()
                        if not (isinstance(v, tuple) and v and isinstance(v[0], ir.Node)) and not isinstance(v, ir.Node)
                    },
                )
            )
        return out

    return flat(a) != flat(b)


def expected(model: ir.Model, depth: int | None) -> Count:
    """What a drawing at ``depth`` must contain, by the rules in the diagram docs: a layer is a node; a
    composite (not a sequence) costs a level unless it is a block's whole body, and is one node when no
    level is left; a merge adds a merge node fed by every branch; dense connectivity adds one concat node
    per drawn layer, fed by the layer and by its input; repeats and dense layers are drawn once unless
    depth is 'all'; a head is a cluster with an output node. References are edges: a node that reads an
    earlier output by name (``from:``) is fed from where it was made, a merge of named outputs by each, and a
    collapsed composite also by what it reads from outside; several named outputs are one output node each."""
    unroll = depth is None
    c = Count()
    made = {"<input>": 1}  # path -> the number of exits its drawing has

    def frag(node, n_in: int, budget: float, free: bool = False) -> int:
        if node.src and node.src[0] and not (isinstance(node, ir.Merge) and not node.branches):
            n_in = made[node.src[0]]
        made[node.path] = out = frag1(node, n_in, budget, free)
        return out

    def outside(node) -> int:
        seen = []
        for n in ir.walk(node):
            for p in n.src[1:] if n is node else n.src:
                if p and not p.startswith(node.path + ".") and p in made and p not in seen:
                    seen.append(p)
        return sum(made[p] for p in seen)

    def frag1(node, n_in: int, budget: float, free: bool = False) -> int:
        # returns the number of edges leaving the fragment (its exits)
        if isinstance(node, ir.Merge) and not node.branches and node.src:
            c.nodes += 1
            c.edges += sum(made[p] for p in node.src)
            return 1
        if not isinstance(node, COMPOSITES):
            c.nodes += 1
            c.edges += n_in
            return 1
        if isinstance(node, ir.Seq):
            for child in node.children:
                n_in = frag(child, n_in, budget)
            return n_in
        if not free:
            if budget == 0:
                c.nodes += 1
                c.edges += n_in + outside(node)
                return 1
            budget -= 1
        if isinstance(node, ir.Call):
            c.clusters += 1
            inputs = model.block(node.block).inputs
            if inputs:
                made[f"{node.path}.<{inputs[0]}>"] = n_in
            kids = node.body.children
            if len(kids) == 1 and isinstance(kids[0], (ir.Merge, ir.DenseConnect, ir.Repeat)):
                return frag(kids[0], n_in, budget, free=True)
            return frag(node.body, n_in, budget)
        if isinstance(node, ir.Merge):
            outs = sum(frag(b, n_in, budget) for b in node.branches)
            c.nodes += 1
            c.edges += outs
            return 1
        if isinstance(node, ir.DenseConnect):
            c.clusters += 1
            for layer in node.layers if unroll else node.layers[:1]:
                outs = frag(layer, n_in, budget)
                c.nodes += 1  # concat
                c.edges += outs + n_in
                n_in = 1
            return n_in
        if isinstance(node, ir.Repeat):
            c.clusters += 1
            its = node.iterations
            shown = its if unroll else its[:2] if len(its) > 1 and differ(its[0], its[1]) else its[:1]
            for it in shown:
                n_in = frag(it, n_in, budget)
            return n_in
        raise AssertionError(f"unexpected node {type(node).__name__}")

    budget = float("inf") if depth is None else depth - 1  # depth 1: the top-level items, nothing opened
    c.nodes += 1  # input
    n_in = 1
    exits = {}
    for item in model.body.children:
        n_in = frag(item, n_in, budget)
        exits[item.path] = n_in
    if model.outputs:  # one node per named output, fed from where it was made
        for _, key in model.outputs:
            c.nodes += 1
            c.edges += made["<input>" if key == model.input_name else key]
    else:
        c.nodes += 1  # main output
        c.edges += n_in
    for head in model.heads:
        c.clusters += 1
        h_in = exits[head.at]
        for item in head.body.children:
            h_in = frag(item, h_in, budget)
        c.nodes += 1
        c.edges += h_in
    return c


def drawn(items) -> list:
    """The nodes a diagram draws for a level's items: a sequence is drawn as its items (at any depth)."""
    return [x for item in items for x in (drawn(item.children) if isinstance(item, ir.Seq) else [item])]


def counted_dot(dot: str) -> Count:
    """Counts read back from DOT text."""
    return Count(
        nodes=len(re.findall(r"^\s*n\d+ \[", dot, re.M)),
        edges=len(re.findall(r"^\s*n\d+ -> n\d+ ", dot, re.M)),
        clusters=len(re.findall(r"^\s*subgraph cluster_", dot, re.M)),
    )


def parse_svg(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode("utf-8"))


def svg_groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == cls]


def counted_svg(root: ET.Element) -> Count:
    return Count(
        nodes=len(svg_groups(root, "node")),
        edges=len(svg_groups(root, "edge")),
        clusters=len(svg_groups(root, "cluster")),
    )


def texts(g: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in g.iter(f"{SVG}text")]


# ------------------------------------------------------------------ the counts


@pytest.mark.parametrize("spec", SPECS)
def test_dot_counts_match_ir_at_default_depth(spec):
    m = model_of(spec)
    dot = diagram.dot_text(m, 1)
    assert counted_dot(dot) == expected(m, 1)
    # every top-level item is one node at default depth (a named sequence: its items), plus input and outputs
    items = drawn(m.body.children)
    outputs = len(m.outputs) or 1
    assert expected(m, 1).nodes == 1 + outputs + len(items) + sum(1 + len(drawn(h.body.children)) for h in m.heads)


@needs_dot
@pytest.mark.parametrize("spec", SPECS)
def test_svg_parses_and_counts_match_ir(spec):
    m = model_of(spec)
    root = parse_svg(diagram.svg_text(m, 1))
    assert counted_svg(root) == expected(m, 1)
    ids = {g.get("id") for g in root.iter(f"{SVG}g")}
    for item in drawn(m.body.children):
        assert "node-" + item.path in ids, item.path
    for head in m.heads:
        assert "cluster-head-" + head.name in ids and "output-" + head.name in ids
        for item in head.body.children:
            assert "node-" + item.path in ids
    outputs = [f"output-{n}" for n, _ in m.outputs] if m.outputs else ["output-main"]  # several: each drawn
    assert {"input", *outputs} <= ids
    # every edge carries a shape
    for e in svg_groups(root, "edge"):
        (label,) = texts(e)
        assert re.fullmatch(r"\d+(x\d+)*", label), label


@needs_dot
@pytest.mark.parametrize(
    "spec,depth",
    [
        ("specs/googlenet.yaml", None),
        ("specs/densenet169.yaml", None),
        ("specs/googlenet.yaml", 2),
        ("specs/googlenet.yaml", 3),
        ("specs/densenet169.yaml", 2),
        ("specs/densenet169.yaml", 3),
        ("specs/mobilenet_v1.yaml", None),
    ],
)
def test_svg_counts_match_ir_expanded(spec, depth):
    m = model_of(spec)
    got = counted_svg(parse_svg(diagram.svg_text(m, depth)))
    assert got == expected(m, depth)
    if depth is None:  # every layer drawn: one node per leaf of the IR (+ merge / concat / io nodes)
        leaves = sum(1 for r in [m.body] + [h.body for h in m.heads] for n in ir.walk(r) if ir.is_leaf(n))
        merges = sum(1 for n in ir.walk(m.body) if isinstance(n, ir.Merge))
        concats = sum(len(n.layers) for n in ir.walk(m.body) if isinstance(n, ir.DenseConnect))
        assert got.nodes == leaves + merges + concats + 2 + len(m.heads)


def test_depth_all_draws_densenet169_layer_by_layer():
    m = model_of("specs/densenet169.yaml")
    n_all, n_default = expected(m, None), expected(m, 1)
    assert n_default.nodes == 2 + 15  # input, output and the 15 top-level items
    # 82 dense layers x (bn, relu, conv, bn, relu, conv + a concat), 3 transitions x 4, 8 top-level layers, io
    assert n_all.nodes == 82 * 7 + 3 * 4 + 8 + 2
    assert counted_dot(diagram.dot_text(m, None)) == n_all


def test_labels_say_what_the_issue_asks():
    g = diagram.dot_text(model_of("specs/googlenet.yaml"), 1)
    assert "<b>inception4a</b><br/>inception(192, 96, 208, 16, 48, 64)" in g
    assert "auxiliary head, loss weight 0.3" in g
    assert 'label="28x28x256"' in g
    tv = diagram.dot_text(model_of("specs/googlenet_torchvision.yaml"), 1)
    assert "maxpool 3x3/2 ceil" in tv
    d0 = diagram.dot_text(model_of("specs/densenet169.yaml"), 1)
    assert "<b>denseblock3</b><br/>dense_block(32, 32) x32" in d0
    d1 = diagram.dot_text(model_of("specs/densenet169.yaml"), 2)
    assert "stack: dense_connect x32 (drawn once)" in d1
    assert "conv 7x7/2, 64" in d1
    mb = diagram.dot_text(model_of("specs/mobilenet_v1.yaml"), 2)
    assert "dwconv 3x3/2" in mb and "relu6" in mb


# ------------------------------------------------------------------ escaping


HOSTILE = "a<b>&\"c\\d'e]\n{x} -> y; <script>"


def test_escapes():
    h = diagram.html_escape(HOSTILE)
    assert "<" not in h.replace('<br align="center"/>', "") and ">" not in h.replace('<br align="center"/>', "")
    assert '"' not in h.replace('"center"', "")
    q = diagram.dot_quote(HOSTILE)
    assert q.startswith('"') and q.endswith('"') and "\n" not in q
    assert re.fullmatch(r'"(?:[^"\\]|\\.)*"', q)


@needs_dot
def test_hostile_labels_survive_graphviz():
    g = diagram.Graph()
    g.nodes["n0"] = {"id": 'id"<&>', "label": diagram.html_escape(HOSTILE), "color": "conv", "shape": "box"}
    g.nodes["n1"] = {"id": "b", "label": "x", "color": "bn", "shape": "box"}
    g.root.items += ["n0", "n1"]
    g.edges.append(("n0", "n1", HOSTILE, ""))
    svg = diagram.render(diagram.to_dot(g, HOSTILE), "svg").decode()
    root = parse_svg(svg)
    (node,) = [n for n in svg_groups(root, "node") if n.get("id") == 'id"<&>']
    assert "".join(texts(node)) == HOSTILE.replace("\n", "")  # lines are separate text elements
    (edge,) = svg_groups(root, "edge")
    assert "".join(texts(edge)) == HOSTILE.replace("\n", "")


# ------------------------------------------------------------------ unknown node kinds


@dataclasses.dataclass(frozen=True, kw_only=True)
class Residual(ir.Node):
    """A composite kind the diagram module does not know (the IR may grow such kinds)."""

    kind: str = dataclasses.field(init=False, default="residual")
    body: ir.Seq
    shortcut: ir.Seq


def test_unknown_composite_draws_as_a_cluster(monkeypatch):
    m = model_of("specs/densenet169.yaml")
    t = m.body.children[5]  # transition1
    res = Residual(
        name="res",
        path="res",
        in_shape=t.in_shape,
        out_shape=t.out_shape,
        body=ir.Seq(name="body", path="res.body", in_shape=t.in_shape, out_shape=t.out_shape, children=(t,)),
        shortcut=ir.Seq(name="sc", path="res.sc", in_shape=t.in_shape, out_shape=t.in_shape, children=()),
    )
    body = dataclasses.replace(m.body, children=m.body.children[:5] + (res,) + m.body.children[6:])
    model = dataclasses.replace(m, body=body)
    orig_children, orig_leaf = ir.children, ir.is_leaf
    monkeypatch.setattr(ir, "children", lambda n: (n.body, n.shortcut) if isinstance(n, Residual) else orig_children(n))
    monkeypatch.setattr(ir, "is_leaf", lambda n: not isinstance(n, Residual) and orig_leaf(n))
    collapsed = diagram.dot_text(model, 1)
    assert "<b>res</b><br/>residual" in collapsed
    dot = diagram.dot_text(model, 3)
    assert 'id="cluster-res"' in dot and "res: residual" in dot
    assert "<b>norm</b><br/>bn" in dot  # the transition inside, expanded
    # side by side: the merge node is fed by the body's last layer and, directly, by the input (identity)
    merge = re.search(r"^\s*(n\d+) \[id=\"node-res-merge\"", dot, re.M).group(1)
    assert len(re.findall(rf"-> {merge} ", dot)) == 2


# ------------------------------------------------------------------ CLI, determinism, errors


def _archc(*args, env=None, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "archc", *args], capture_output=True, cwd=cwd, env=env, timeout=300, check=False
    )


def _env(**extra):
    env = dict(os.environ)
    env.update(extra)
    return env


@needs_dot
def test_same_spec_same_bytes_across_processes(tmp_path):
    outs = []
    for seed in ("1", "4242"):
        r_dot = _archc(
            "diagram",
            "specs/googlenet.yaml",
            "--depth",
            "2",
            "--format",
            "dot",
            "-o",
            "-",
            env=_env(PYTHONHASHSEED=seed),
        )
        r_svg = _archc("diagram", "specs/densenet169.yaml", "-o", "-", env=_env(PYTHONHASHSEED=seed))
        assert r_dot.returncode == 0 and r_svg.returncode == 0, (r_dot.stderr, r_svg.stderr)
        outs.append((r_dot.stdout, r_svg.stdout))
    assert outs[0] == outs[1]
    assert outs[0][1].startswith(b"<?xml")


def test_cli_writes_dot_without_graphviz(tmp_path):
    out = tmp_path / "g.dot"
    r = _archc("diagram", "specs/googlenet.yaml", "-o", str(out), env=_env(ARCHC_DOT=""))
    assert r.returncode == 0, r.stderr
    assert out.read_text().startswith('digraph "googlenet" {')


@pytest.mark.parametrize("fmt", ["svg", "png", "pdf"])
def test_missing_graphviz_says_how_to_install(tmp_path, fmt):
    out = tmp_path / f"g.{fmt}"
    r = _archc("diagram", "specs/googlenet.yaml", "--format", fmt, "-o", str(out), env=_env(ARCHC_DOT=""))
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "apt-get install graphviz" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_spec_is_located_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ninput: {height: 8, width: 8, channels: 3}\nnetwork:\n  - conv: {out: 4, kernal: 3}\n")
    out = tmp_path / "bad.svg"
    assert main(["diagram", str(bad), "-o", str(out)]) == 2
    assert not out.exists()
    r = _archc("diagram", str(bad), "-o", str(out))
    assert r.returncode == 2
    assert re.match(rf"{re.escape(str(bad))}:4:\d+: unknown key 'kernal'", r.stderr.decode())
    assert b"Traceback" not in r.stderr


def test_bad_depth(capsys):
    assert main(["diagram", "specs/googlenet.yaml", "--depth", "0", "--format", "dot", "-o", "-"]) == 2
    assert "--depth must be a positive integer or 'all'" in capsys.readouterr().err


@needs_dot
@pytest.mark.parametrize("fmt,magic", [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_formats(tmp_path, fmt, magic):
    out = tmp_path / f"x.{fmt}"  # format from the extension
    assert main(["diagram", "specs/mobilenet_v1_025_160.yaml", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)


def test_default_output_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", str(ROOT / "specs/googlenet.yaml"), "--format", "dot"]) == 0
    assert (tmp_path / "googlenet.dot").is_file()


def test_diagram_imports_no_framework():
    code = (
        "import sys, archc.diagram, archc.report, archc.cli;"
        "from archc.pipeline import compile_spec;"
        "archc.diagram.dot_text(compile_spec('specs/googlenet.yaml'), None);"
        "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr.decode()


@needs_dot
def test_readme_picture_is_current():
    """docs/zoo/googlenet.svg, shown in the docs, is what `archc diagram specs/googlenet.yaml` draws."""
    committed = (ROOT / "docs/zoo/googlenet.svg").read_text()
    fresh = diagram.svg_text(model_of("specs/googlenet.yaml"), 1)
    version = re.compile(r"Generated by graphviz version [^\n]*")
    if version.search(committed).group() == version.search(fresh).group():
        assert committed == fresh
    else:  # another Graphviz lays it out differently: the same graph all the same
        assert counted_svg(parse_svg(committed)) == counted_svg(parse_svg(fresh))


def test_repeat_whose_first_iteration_differs_draws_both():
    m = model_of("specs/mobilenet_v1.yaml")
    i = next(i for i, n in enumerate(m.body.children) if isinstance(n, ir.Repeat))
    rep, ds6 = m.body.children[i], m.body.children[i - 1]  # ds6 has stride 2, the repeated ds has stride 1
    first = dataclasses.replace(rep.iterations[0], children=(ds6,))
    rep2 = dataclasses.replace(rep, iterations=(first,) + rep.iterations[1:])
    model = dataclasses.replace(
        m, body=dataclasses.replace(m.body, children=m.body.children[:i] + (rep2,) + m.body.children[i + 1 :])
    )
    assert differ(rep2.iterations[0], rep2.iterations[1]) and not differ(rep.iterations[0], rep.iterations[1])
    dot = diagram.dot_text(model, 2)
    assert "ds7_11: repeat x5 (first, then x4 drawn once)" in dot
    assert counted_dot(dot) == expected(model, 2)
    assert counted_dot(dot).nodes == expected(m, 2).nodes + 1  # one more block node than the uniform repeat
    assert "ds7_11: repeat x5 (drawn once)" in diagram.dot_text(m, 2)


def test_a_drawing_too_large_to_lay_out_is_refused_but_dot_is_written(tmp_path, capsys):
    spec = ["specs/densenet121.yaml", "--set", "block_config=[6,12,400,16]", "--depth", "all"]
    out = tmp_path / "big.svg"
    assert main(["diagram", *spec, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nodes, more than Graphviz lays out in reasonable time" in err and "--format dot" in err
    assert not out.exists()
    assert main(["diagram", *spec, "-o", str(tmp_path / "big.dot")]) == 0
    assert counted_dot((tmp_path / "big.dot").read_text()).nodes > diagram.MAX_LAYOUT_NODES


@needs_dot
@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_binary_formats_are_deterministic_too(tmp_path, fmt):
    a, b = tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    assert main(["diagram", "specs/googlenet.yaml", "-o", str(a)]) == 0
    time.sleep(1.1)  # a PDF made a second later would carry another creation date
    assert main(["diagram", "specs/googlenet.yaml", "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()

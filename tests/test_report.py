"""``archc report``: one self-contained HTML page; every link resolves; rows link to their spec lines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from archc.cli import main
from archc.pipeline import compile_spec
from archc.report import report_html
from tests.test_diagram import drawn

ROOT = Path(__file__).resolve().parent.parent
# every spec in specs/ (and in zoo/, when it lands)
SPECS = sorted(str(p.relative_to(ROOT)) for d in ("specs", "zoo") for p in (ROOT / d).glob("**/*.yaml"))
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")


@pytest.fixture(autouse=True)
def _cwd(monkeypatch):
    monkeypatch.chdir(ROOT)


class Page(HTMLParser):
    """Ids, local links, external references and a few elements of an HTML page."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, dict] = {}
        self.hrefs: list[str] = []
        self.refs: list[str] = []  # src= / <link href> / url(...) anywhere
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            assert a["id"] not in self.ids, f"duplicate id {a['id']}"
            self.ids[a["id"]] = {"tag": tag, **a}
        for key in ("href", "xlink:href"):
            if key in a and tag != "link":
                self.hrefs.append(a[key])
        if "src" in a or tag == "link":
            self.refs.append(f"<{tag} {a}>")

    handle_startendtag = handle_starttag


_CACHE: dict = {}


def page_of(spec: str) -> tuple[str, Page]:
    if spec not in _CACHE:
        html = report_html(compile_spec(spec))
        _CACHE[spec] = (html, Page(html))
    return _CACHE[spec]


@pytest.mark.parametrize("spec", SPECS)
def test_report_is_self_contained_and_links_resolve(spec):
    html, page = page_of(spec)
    urls = set(re.findall(r"[a-z][a-z0-9+.-]*://[^\s\"'<>)]*", html, re.I))
    assert urls <= NAMESPACES, urls - NAMESPACES
    assert not page.refs, page.refs  # no <script src>, <img src>, <link>
    assert "url(" not in html and "@import" not in html
    for href in page.hrefs:
        assert href.startswith("#"), href
        assert href[1:] in page.ids, f"link to missing #{href[1:]}"
    for tag in ("svg", "table", "script", "style"):
        assert tag in page.tags


@pytest.mark.parametrize("spec", SPECS)
def test_every_item_and_head_has_a_node_a_row_and_a_source_line(spec):
    html, page = page_of(spec)
    m = compile_spec(spec)
    lines = (ROOT / spec).read_text().splitlines()
    for i in range(1, len(lines) + 1):
        assert f"L{i}" in page.ids
    for item in drawn(m.body.children):
        assert "node-" + item.path in page.ids, item.path
    for item in m.body.children:
        row = page.ids["row-" + item.path]
        assert row["tag"] == "tr"
        # the row links to the line the item is written on, in the spec shown on the page
        link = re.search(rf'<tr class="item" id="row-{re.escape(item.path)}">.*?href="#([^"]+)"', html).group(1)
        if item.loc.file == m.spec_file:
            assert link == f"L{item.loc.line}"
            text = "\n".join(lines[item.loc.line - 1 : item.loc.line + 3])  # the item starts there
            assert item.name in text or re.sub(r"\d+$", "", item.name) in text  # its name, or its kind (`- relu`)
        else:  # an item inherited through `extends`: the parent file is shown too
            assert re.fullmatch(rf"f\d+-L{item.loc.line}", link)
    for head in m.heads:
        assert "row-head-" + head.name in page.ids and "cluster-head-" + head.name in page.ids
    # input, outputs and loss weights
    assert page.ids["io-input"] and "x".join(map(str, m.input_shape)) in html
    for head in m.heads:
        assert f"loss weight {head.loss_weight:g}" in html


def test_layer_rows_inside_stdlib_blocks_link_to_the_call_site():
    html, page = page_of("specs/googlenet.yaml")
    # its layers come from the stdlib and link to the line inception4a is written on
    lines = (ROOT / "specs/googlenet.yaml").read_text().splitlines()
    at = 1 + next(i for i, t in enumerate(lines) if "name: inception4a" in t)
    row = r'<tr class="child" id="row-inception4a\.branch2\.conv_bn_act2\.conv"[^>]*>.*?href="#L'
    assert re.search(row + str(at) + '"', html)
    aux1 = 1 + next(
        i for i, t in enumerate((ROOT / "specs/googlenet.yaml").read_text().splitlines()) if t.strip() == "aux1:"
    )
    assert re.search(rf'<tr class="item" id="row-head-aux1">.*?href="#L{aux1}"', html)
    assert "inception4a" in lines[at - 1]


def test_variant_shows_the_parent_spec_too():
    html, page = page_of("specs/mobilenet_v1_050.yaml")
    assert "f1-L1" in page.ids  # mobilenet_v1.yaml, which it extends, whose items are the network's
    assert 'href="#f1-L' in html


def test_report_bytes_are_deterministic(tmp_path):
    outs = []
    for seed in ("0", "31337"):
        out = tmp_path / f"r{seed}.html"
        r = subprocess.run(
            [sys.executable, "-m", "archc", "report", "specs/densenet169.yaml", "-o", str(out)],
            cwd=ROOT,
            capture_output=True,
            timeout=300,
            check=False,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_report_cli(tmp_path):
    out = tmp_path / "d.html"
    assert main(["report", "specs/mobilenet_v1_025_160.yaml", "-o", str(out), "--depth", "all"]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "depth all" in text


def test_report_without_graphviz_says_how_to_install(tmp_path):
    out = tmp_path / "r.html"
    r = subprocess.run(
        [sys.executable, "-m", "archc", "report", "specs/googlenet.yaml", "-o", str(out)],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=False,
        env={**os.environ, "ARCHC_DOT": ""},
    )
    assert r.returncode == 2 and b"apt-get install graphviz" in r.stderr and b"Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_a_clean_error(tmp_path, capsys):
    assert main(["report", "specs/googlenet.yaml", "-o", str(tmp_path)]) == 2  # a directory
    assert "cannot write" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []

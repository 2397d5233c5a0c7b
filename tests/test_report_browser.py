"""The report as a person sees it: rendered by headless Chromium, screenshot taken and looked at (not blank,
the diagram drawn), the DOM checked (every top-level item and head has its diagram node and its table row,
the SVG's node and edge counts equal the IR's), no console errors, no network access, and the controls work.

Marked ``browser``; skipped when Chromium (or Graphviz) is not installed. ``ARCHC_SCREENSHOTS=DIR`` keeps
the screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from archc.build import atomic_write
from archc.pipeline import compile_spec
from archc.report import report_html
from tests.browser import Browser, chromium_path
from tests.test_diagram import expected

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_path() is None, reason="chromium not installed"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed"),
]

CASES = [("specs/googlenet.yaml", 1), ("specs/densenet169.yaml", 1), ("specs/densenet169.yaml", None)]


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the unfiltered rows (RGB or RGBA, 8 bit) of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if ctype == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif ctype == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, [r[i : i + 3] for r in rows for i in range(0, len(r), bpp)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def browser():
    with Browser(width=1400, height=1000) as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    keep = os.environ.get("ARCHC_SCREENSHOTS")
    d = Path(keep) if keep else tmp_path_factory.mktemp("shots")
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.mark.parametrize("spec,depth", CASES)
def test_report_in_a_browser(browser, shots, tmp_path, spec, depth):
    model = compile_spec(spec)
    page = tmp_path / f"{model.name}.html"
    atomic_write(page, report_html(model, depth))
    url = page.as_uri()
    browser.events.clear()
    browser.resize(1400, 1000)
    browser.open(url)
    assert browser.eval("document.documentElement.dataset.ready") == "1"
    assert browser.eval("document.documentElement.dataset.errors || ''") == ""

    # the SVG in the page is the IR at that depth
    want = expected(model, depth)
    got = browser.eval(
        "[document.querySelectorAll('#viewport svg g.node').length,"
        " document.querySelectorAll('#viewport svg g.edge').length,"
        " document.querySelectorAll('#viewport svg g.cluster').length]"
    )
    assert got == [want.nodes, want.edges, want.clusters]

    # every top-level item and head: a drawn node / cluster with a size, and a visible table row
    items = [it.path for it in model.body.children]
    missing = browser.eval(
        "(function (paths) { var out = [];"
        " paths.forEach(function (p) {"
        "   var g = document.getElementById('node-' + p) || document.getElementById('cluster-' + p);"
        "   var r = document.getElementById('row-' + p);"
        "   if (!g || g.getBBox().width <= 0) out.push('svg ' + p);"
        "   if (!r || r.offsetParent === null || r.getBoundingClientRect().height <= 0) out.push('row ' + p); });"
        " return out; })(" + json.dumps(items) + ")"
    )
    assert missing == []
    for head in model.heads:
        assert browser.eval(
            f"!!document.getElementById('cluster-head-{head.name}') && !!document.getElementById('output-{head.name}')"
            f" && document.getElementById('row-head-{head.name}').offsetParent !== null"
        )

    # the screenshot: the page as it opens, at 1400x1000 CSS pixels
    shot = shots / f"{model.name}-depth-{'all' if depth is None else depth}.png"
    assert browser.screenshot(str(shot)) == (1400, 1000)
    assert png_size(shot) == (1400, 1000)
    small = tmp_path / "small.png"  # the same view at a quarter of the size, to look at every pixel quickly
    browser.screenshot(str(small), scale=0.25)
    w, h, pixels = png_pixels(small)
    assert (w, h) == (350, 250)
    white = sum(1 for p in pixels if p == b"\xff\xff\xff")
    assert white < 0.97 * len(pixels), "screenshot is (almost) blank"
    assert len(set(pixels)) > 50  # text, node fills, borders: not a flat page
    # the diagram is on screen: part of the viewport shows the SVG, with some node drawn inside it
    box = browser.eval(
        "(function () { var v = document.getElementById('viewport').getBoundingClientRect();"
        " var n = document.querySelector('#viewport svg g.node').getBoundingClientRect();"
        " return [v.top, v.bottom, n.top, n.bottom, n.left, n.right, v.left, v.right]; })()"
    )
    assert box[0] < 1000 and box[2] >= box[0] and box[3] <= box[1] and box[6] <= box[4] <= box[5] <= box[7]

    # controls: a group opens, a diagram node takes you to its row, zoom changes the scale
    first_group = browser.eval("document.querySelector('button.toggle').dataset.group")
    assert browser.eval(f"document.querySelector('tr.child[data-group=\"{first_group}\"]').hidden") is True
    browser.eval("document.querySelector('button.toggle').click()")
    assert browser.eval(f"document.querySelector('tr.child[data-group=\"{first_group}\"]').hidden") is False
    before = browser.eval("document.querySelector('#viewport svg').style.transform")
    browser.eval("document.getElementById('zoom-in').click()")
    after = browser.eval("document.querySelector('#viewport svg').style.transform")
    assert before != after and "scale" in after
    before = after
    browser.eval(
        "(function () { var v = document.getElementById('viewport'), r = v.getBoundingClientRect();"
        " v.dispatchEvent(new WheelEvent('wheel', {deltaY: 120, clientX: r.left + 200, clientY: r.top + 100,"
        " bubbles: true, cancelable: true})); })()"
    )
    after = browser.eval("document.querySelector('#viewport svg').style.transform")
    assert before != after  # the wheel zooms (out, here) around the pointer
    # a click on a drawn layer whose row is folded away opens its group and shows the row
    target = browser.eval(
        "(function () { var links = document.querySelectorAll('#viewport svg a');"
        " for (var i = 0; i < links.length; i++) {"
        "   var id = links[i].getAttribute('xlink:href').slice(1), row = document.getElementById(id);"
        "   if (row && row.hidden) {"
        "     links[i].dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true})); return id; } }"
        " return null; })()"
    )
    if depth is None:
        assert target is not None
    if target is not None:
        assert browser.eval("location.hash") == "#" + target
        assert browser.eval(f"document.getElementById({json.dumps(target)}).hidden") is False
    browser.eval("location.hash = '#L1'")
    assert browser.eval("document.getElementById('L1').getBoundingClientRect().top") < 1000

    if os.environ.get("ARCHC_SCREENSHOTS"):  # the whole page, for the record
        browser.screenshot(
            str(shots / f"{model.name}-depth-{'all' if depth is None else depth}-full.png"), full_page=True
        )

    assert browser.problems() == []
    assert browser.requests() == [url], "the page fetched something"

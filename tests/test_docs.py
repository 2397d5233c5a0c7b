"""The documentation site (mkdocs.yml, docs/): its generated pages are current, every kind the spec language accepts
is documented and has its page, `mkdocs build --strict` passes (no broken link or anchor, no missing or orphan page,
nothing fetched from the network), every YAML and shell example of the site and of README.md is run or checked, and
the home page and a kind page render in headless Chromium.

Examples: a ```yaml block with a title (`title="mine.yaml"`) is written to that file and, if it is a spec, must pass
`archc check` (on troubleshooting's page, whose examples are meant to fail, its console blocks say what happens); a
block starting `# from PATH` is an excerpt, each of its lines found in that file; a block starting with `- ` is a
list of items, checked inside a spec. ```sh lines run in this process (with the page's files, in a folder where
`specs` is the repository's), except `convert-weights` and `export-folded` (their checkpoints are made by
tests/test_readme_transfer.py for the transfer-learning page): those are parsed by archc's own argument parser. A
shell line that is not `archc` must be one of README's two commands (run by CI itself). ```console blocks: each `$
archc ...` runs, and prints what the block shows (with `# exit status N`: exits with N). ```python blocks compile;
the getting-started and generated-code ones run.
"""

from __future__ import annotations

import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

from archc import docgen

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in DOCS.rglob("*.md"))
PAGES.append("README.md")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")
PARSED_ONLY = ("convert-weights", "export-folded")  # need checkpoints: their arguments are checked, not run
RUN_PYTHON = ("docs/getting-started.md", "docs/guides/generated-code.md")  # run (the others compile)


# ------------------------------------------------------------------------------------------------ generated pages


@needs_dot
def test_generated_pages_are_current(capsys):
    code = docgen.main(["--check"])
    assert code == 0, capsys.readouterr().err


def test_every_kind_has_documentation_and_a_page():
    kinds = docgen.registry()
    assert {"conv", "bn", "relu", "dense", "concat", "residual"} <= set(kinds)
    from archc import ops

    assert set(ops.PRIMITIVES) <= set(kinds)  # the registry's kinds are all in the schema
    assert docgen.undocumented(kinds) == []
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for kind in kinds:
        assert (DOCS / "reference" / "kinds" / f"{kind}.md").is_file(), f"no page for '{kind}': python -m archc.docgen"
        assert f": reference/kinds/{kind}.md\n" in nav
    pages = {p.stem for p in (DOCS / "reference" / "kinds").glob("*.md")} - {"index"}
    assert pages == set(kinds), "a page of a kind the schema no longer accepts: python -m archc.docgen"


def test_the_kinds_are_those_archc_schema_accepts(cli):
    """Read independently of docgen: the names `archc schema` forbids a block call to take are the kinds."""
    import json

    r = cli("schema")
    assert r.code == 0
    reserved = json.loads(r.out)["$defs"]["CallItem"]["propertyNames"]["not"]["enum"]
    assert set(docgen.registry()) == set(reserved)


def test_a_kind_without_documentation_is_reported():
    bare = docgen.KindDoc("made_up", "", "")
    problems = docgen.undocumented({"made_up": bare})
    assert [p.split(":")[0] for p in problems] == [
        f"kind 'made_up' has no {w}" for w in ("doc", "shape", "params", "example")
    ]
    documented = docgen.KindDoc("made_up", "activation", "x, unchanged")
    assert docgen.undocumented({"made_up": documented}) == []  # an activation: shape, params and example by default


def test_stale_and_left_over_pages_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr(docgen, "ROOT", tmp_path)
    monkeypatch.setattr(docgen, "DOCS", tmp_path / "docs")
    (tmp_path / "docs" / "zoo").mkdir(parents=True)
    (tmp_path / "docs" / "zoo" / "old.md").write_text("gone\n")
    (tmp_path / "docs" / "troubleshooting.md").write_text("old\n")
    generated = {"docs/troubleshooting.md": "new\n", "docs/zoo/index.md": "zoo\n"}
    assert docgen.stale(generated) == ["docs/troubleshooting.md", "docs/zoo/index.md", "docs/zoo/old.md"]
    (tmp_path / "docs" / "troubleshooting.md").write_text("new\n")
    (tmp_path / "docs" / "zoo" / "index.md").write_text("zoo\n")
    (tmp_path / "docs" / "zoo" / "old.md").unlink()
    assert docgen.stale(generated) == []


# ------------------------------------------------------------------------------------------------ the site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once with `mkdocs build --strict`."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout + r.stderr


def test_mkdocs_build_strict(site):
    out, log = site
    assert "WARNING" not in log, log
    assert (out / "index.html").is_file() and (out / "reference" / "kinds" / "conv" / "index.html").is_file()
    for page in PAGES[:-1]:  # every page was built (README.md is the repository's front page, not the site's)
        rel = Path(page).relative_to("docs").with_suffix("")
        built = out / (rel.parent if rel.name == "index" else rel) / "index.html"
        assert built.is_file(), page
    remote = re.compile(r"""<(?:link|script|img)[^>]*(?:href|src)=["'](?:https?:)?//""")
    for html in out.rglob("*.html"):  # offline: nothing the pages load comes from the network
        assert not remote.search(html.read_text(encoding="utf-8")), html


# ------------------------------------------------------------------------------------------------ the examples


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, title, body) of every fenced block, indented ones (tabs) included."""
    out = []
    for m in re.finditer(r"^( *)```(\w*)([^\n]*)\n(.*?)^\1```", text, re.S | re.M):
        indent, lang, info, body = m.groups()
        title = re.search(r'title="([^"]+)"', info)
        body = "\n".join(line[len(indent) :] for line in body.splitlines())
        out.append((lang, title.group(1) if title else "", body))
    return out


def strip_comment(line: str) -> str:
    return re.sub(r"\s+#.*$", "", line).rstrip() if not line.lstrip().startswith("#") else ""


def check_excerpt(body: str) -> None:
    first, *lines = body.splitlines()
    source = (ROOT / first.removeprefix("# from ").strip()).read_text(encoding="utf-8").splitlines()
    have = {strip_comment(line) for line in source}
    for line in lines:
        code = strip_comment(line)
        if code and "..." not in code:
            assert code in have, f"not in {first[7:]}: {line!r}"


def run_ok(argv: list[str]) -> tuple[int, str]:
    code, out, err = docgen.run(*argv)
    return code, (err + out).rstrip()


def check_shell_line(line: str, readme: str) -> None:
    argv = shlex.split(line, comments=True)
    if not argv:
        return
    if argv[0] != "archc":
        assert line in readme, f"a shell line that is neither archc nor one of README's commands: {line}"
        return
    if argv[1] in PARSED_ONLY:
        from archc.cli import build_parser

        build_parser().parse_args(argv[1:])
        for arg in argv[2:]:
            if arg.startswith("specs/"):
                assert (ROOT / arg).is_file(), arg
        return
    if argv[1] in ("diagram", "report") and shutil.which("dot") is None:
        pytest.skip("Graphviz 'dot' not installed")
    code, output = run_ok(argv[1:])
    assert code == 0, f"{line}\n{output}"


def check_console(body: str) -> None:
    """Each `$ archc ...` prints what follows it (and exits with `# exit status N`, default 0)."""
    for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
        command, _, expected = chunk.partition("\n")
        status = 0
        m = re.search(r"^# exit status (\d+)$", expected, re.M)
        if m:
            status = int(m.group(1))
            expected = expected[: m.start()]
        code, out, err = docgen.run_line(shlex.split(command, comments=True))
        assert (code, (err + out).rstrip()) == (status, expected.rstrip()), f"$ {command}"


@pytest.mark.parametrize("page", PAGES)
def test_examples(page, tmp_path, monkeypatch):
    text = (ROOT / page).read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = blocks(text)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    # the repository's generated code, each file linked (not the folder: the pages' builds write into it)
    for f in (ROOT / "generated").glob("*/*.py"):
        (tmp_path / f.parent.relative_to(ROOT)).mkdir(parents=True, exist_ok=True)
        (tmp_path / f.relative_to(ROOT)).symlink_to(f)
    for lang, title, body in found:  # in the page's order: a file is written where it is shown
        if lang == "yaml":
            if title:
                (tmp_path / title).write_text(body + "\n", encoding="utf-8")
                if page != "docs/troubleshooting.md" and re.search(r"^(network|extends):", body, re.M):
                    code, output = run_ok(["check", "--strict", title])
                    assert code == 0, f"{page}: {title}\n{output}"
            elif body.startswith("# from "):
                check_excerpt(body)
            elif body.startswith("- "):
                spec = docgen.example_spec("fragment", [32, 32, 64], body)
                (tmp_path / "fragment.yaml").write_text(spec, encoding="utf-8")
                code, output = run_ok(["check", "fragment.yaml"])
                assert code == 0, f"{page}:\n{body}\n{output}"
            else:
                pytest.fail(f"{page}: a YAML block that is neither a titled file, an excerpt nor items:\n{body}")
        elif lang == "sh":
            for line in body.splitlines():
                check_shell_line(line, readme)
        elif lang == "console":
            check_console(body)
        elif lang == "python":
            code = compile(body, f"{page} (python)", "exec")
            if page in RUN_PYTHON:
                pytest.importorskip("torch")
                exec(code, {})
        else:  # output shown, not an example; a bare fence only for README's two commands (tests/test_build.py)
            assert lang == "text" or (lang == "" and page == "README.md"), f"{page}: a ```{lang} block"


# ------------------------------------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def served(site):
    """The built site on a local HTTP server (as `mkdocs serve` would show it): its base URL."""
    out, _ = site
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.browser
@pytest.mark.parametrize("path,heading", [("", "archc"), ("reference/kinds/conv/", "conv")])
def test_page_in_a_browser(served, tmp_path, path, heading):
    from tests.browser import Browser, chromium_path
    from tests.test_report_browser import png_pixels

    if chromium_path() is None:
        pytest.skip("chromium not installed")
    url = served + path
    with Browser(width=1280, height=900) as browser:
        browser.open(url)
        assert browser.eval("document.querySelector('article h1').textContent.replace('\\u00b6', '').trim()") == heading
        # the theme is applied: the header bar, the navigation, the article laid out beside it
        assert browser.eval("getComputedStyle(document.querySelector('.md-header')).position") in ("sticky", "fixed")
        assert browser.eval("document.querySelectorAll('.md-nav__link').length") > 20
        assert browser.eval("document.querySelector('article').getBoundingClientRect().width") > 400
        if path:  # a kind page: its attribute table and the backends' tabs
            assert browser.eval("document.querySelectorAll('article table tr').length") > 5
            from archc.backends import list_backends

            tabs = browser.eval("document.querySelectorAll('.tabbed-labels label').length")
            assert tabs == len(list_backends())  # one tab per backend's code
        shot = tmp_path / "shot.png"
        browser.screenshot(str(shot), scale=0.25)
        w, h, pixels = png_pixels(shot)
        assert (w, h) == (320, 225)
        white = sum(1 for p in pixels if p == b"\xff\xff\xff")
        assert white < 0.97 * len(pixels), "screenshot is (almost) blank"
        assert len(set(pixels)) > 50
        keep = os.environ.get("ARCHC_SCREENSHOTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            browser.screenshot(str(Path(keep) / f"docs-{path.strip('/').replace('/', '-') or 'home'}.png"))
        assert browser.problems() == []
        assert all(u.startswith(served) or u.startswith("data:") for u in browser.requests()), browser.requests()


# ------------------------------------------------------------------------------------------------ README and pins


def test_readme_is_a_front_page_whose_links_work():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert len(links) >= 10
    for link in (x for x in links if not x.startswith(("http:", "https:"))):
        assert (ROOT / link).is_file(), f"README links to {link}, which is not there"
    assert not re.search(r"CMD\d_TIME", readme)


def test_docs_extra_is_pinned_in_constraints():
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    assert {canonicalize_name(Requirement(r).name) for r in extras["docs"]} == {"mkdocs", "mkdocs-material"}
    for r in map(Requirement, extras["docs"]):
        assert r.specifier.contains(pins[canonicalize_name(r.name)]), r
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-e '.[test,docs]'" in ci and "-e '.[test,docs]'" in (ROOT / "README.md").read_text()

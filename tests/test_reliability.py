"""Regression tests for the inputs a structure-aware fuzzer found refused badly (issue 24): each is now refused
with a located error (exit 2, ``file:line:col: message``) or built, by both backends, into code that compiles."""

from __future__ import annotations

import ast
import json
import re
import time

import pytest

from archc import limits

HEAD = "name: t\ninput: {height: 8, width: 8, channels: 3}\n"
LOCATED = re.compile(r"^[^\n]+:\d+:\d+: ")


def refused(r, *words) -> str:
    """The message of a located refusal (exit 2, first line ``file:line:col: ``, no traceback)."""
    assert r.code == 2, (r.code, r.err)
    assert LOCATED.match(r.err), r.err
    assert "Traceback" not in r.err
    for w in words:
        assert w in r.err, r.err
    return r.err


def built_both(cli, path, tmp_path) -> dict:
    """Builds ``path`` with both backends; returns backend -> source (each parsed here, as the build compiles it)."""
    out = {}
    for backend in ("torch", "keras"):
        dst = tmp_path / f"{backend}.py"
        r = cli("build", path, "--backend", backend, "-o", dst)
        assert r.code == 0, r.err
        out[backend] = dst.read_text(encoding="utf-8")
        ast.parse(out[backend])
    return out


# docs of any text: whitespace only, control characters, line and paragraph separators, quotes at the end
DOCS = ["\r\n", " ", "\x0b", "\u2028", "\x85", 'ends in """', 'a quote"', '""""', "back\\", "tab\tand\x1bescape"]


@pytest.mark.parametrize("doc", DOCS, ids=[repr(d) for d in DOCS])
def test_any_doc_is_emitted_safely(doc, cli, write_yaml, tmp_path):
    text = f"{HEAD}doc: {json.dumps(doc)}\nblocks:\n  b:\n    doc: {json.dumps(doc)}\n    body: [relu]\nnetwork: [b]\n"
    path = write_yaml(text)
    assert cli("check", path).code == 0
    for backend, src in built_both(cli, path, tmp_path).items():
        docs = [ast.get_docstring(n, clean=False) for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ClassDef)]
        docs += [ast.get_docstring(ast.parse(src), clean=False)]
        # the doc's text survives escaping (printable characters as themselves, others as escapes of themselves)
        if doc.strip():
            assert any(d and doc.strip().split()[0] in d for d in docs), (backend, docs)


@pytest.mark.parametrize(
    "expr,words",
    [
        ("${round(1, -10**8)}", ["round's digits", "64"]),
        ("${round(1.5, 10**8)}", ["round's digits"]),
        ("${len('%0999999999d' % 1)}", ["string formatting"]),
        ("${int((-8) ** 0.5)}", ["complex"]),
        ("${123456789012345678901234567890 - 123456789012345678901234567889}", ["out of range"]),
    ],
)
def test_expressions_bounded_in_time_and_size(expr, words, cli, write_yaml):
    path = write_yaml(f"{HEAD}network:\n  - conv: {{out: {json.dumps(expr)}, kernel: 1}}\n")
    t = time.perf_counter()
    r = cli("check", path)
    assert time.perf_counter() - t < 5  # before the fix: round(1, -10**8) ran for minutes
    assert refused(r, *words).startswith(f"{path}:4:")


def test_round_within_bounds_still_evaluates(cli, write_yaml):
    path = write_yaml(f"{HEAD}network:\n  - conv: {{out: '${{round(1234, -2) // 100 + round(2.5)}}', kernel: 1}}\n")
    r = cli("summary", path, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["outputs"]["main"] == [8, 8, round(1234, -2) // 100 + round(2.5)]  # Python's rounding


@pytest.mark.parametrize(
    "value,tag",
    [("!!bool maybe", "!!bool"), ("!!int 0xZZ", "!!int"), ("!!float abc", "!!float"), ("!!null x", None)],
)
def test_every_tagged_scalar_error_is_located(value, tag, cli, write_yaml):
    path = write_yaml(f"{HEAD}network:\n  - conv: {{out: 3, kernel: 1, bias: {value}}}\n")
    r = cli("check", path)
    if tag is None:  # `!!null x` is null: conv's bias then takes its default
        assert r.code in (0, 2) and "Traceback" not in r.err, r.err
        return
    assert refused(r, tag).startswith(f"{path}:4:")


def nested_repeats(depth: int) -> str:
    text, ind = f"{HEAD}network:\n", "  "
    for _ in range(depth):
        text += f"{ind}- repeat:\n{ind}    times: 1\n{ind}    body:\n"
        ind += "      "
    return text + f"{ind}- relu\n"


def test_loop_nesting_bounded_before_building(cli, write_yaml, tmp_path):
    """Nested repeats past the bound are refused by check and build, at the innermost repeat, naming the bound;
    at the bound both backends build (Python itself stops at 20 nested loops; the PyTorch emitter's time grew
    1.8x per level)."""
    deep = write_yaml(nested_repeats(limits.MAX_LOOP_NESTING + 1), "deep.yaml")
    for argv in (("check", deep), ("build", deep, "--backend", "keras", "-o", tmp_path / "k.py")):
        err = refused(cli(*argv), f"at most {limits.MAX_LOOP_NESTING} may nest")
        line = int(err.split(":")[1])
        assert deep.read_text().splitlines()[line - 1].strip() == "- repeat:"
        assert line == 4 + 3 * limits.MAX_LOOP_NESTING  # the innermost one
    assert not (tmp_path / "k.py").exists()
    ok = write_yaml(nested_repeats(limits.MAX_LOOP_NESTING), "ok.yaml")
    t = time.process_time()
    built_both(cli, ok, tmp_path)
    assert time.process_time() - t < 10


def test_model_size_bounded_before_building(cli, write_yaml, tmp_path):
    """One item past the bound is refused naming it; at the bound both backends build (a 50,000-layer spec took
    5.6 GB to build; 12,000 take ~3.3 s of CPU each)."""
    n = limits.MAX_TEMPLATE_ITEMS
    big = write_yaml(HEAD + "network:\n" + "  - relu\n" * (n + 1), "big.yaml")
    refused(cli("check", big), f"writes {n + 1} items", f"at most {n}")
    ok = write_yaml(HEAD + "network:\n" + "  - relu\n" * n, "ok.yaml")
    assert cli("check", ok).code == 0
    t = time.process_time()
    built_both(cli, ok, tmp_path)
    assert time.process_time() - t < 20


def test_limits_hold_every_spec_far_inside():
    """The bounds are far above what the specs in specs/ write (a bound near them would refuse real networks)."""
    from pathlib import Path

    from archc.pipeline import compile_spec

    root = Path(__file__).resolve().parents[1]
    measured = [limits.measure(compile_spec(str(p)))[:2] for p in sorted((root / "specs").glob("*.yaml"))]
    assert max(i for i, _ in measured) * 10 <= limits.MAX_TEMPLATE_ITEMS
    assert max(d for _, d in measured) * 4 <= limits.MAX_LOOP_NESTING


def test_limits_admit_the_benchmarks_scaling_spec():
    """benchmarks/run.py analyses and emits 10,000 explicit block calls (its scaling rows): inside the bound."""
    import tempfile
    from pathlib import Path

    from archc.pipeline import compile_spec
    from benchmarks.run import scaling_spec

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "scaling.yaml"
        path.write_text(scaling_spec("explicit", 10_000))
        items, depth, _ = limits.measure(compile_spec(str(path)))
    assert 10_000 <= items <= limits.MAX_TEMPLATE_ITEMS and depth <= limits.MAX_LOOP_NESTING


def test_backend_refusal_names_the_backend_once(cli, write_yaml, tmp_path, monkeypatch):
    """A backend's refusal names the backend once (the build's prefix is not added a second time). No valid spec is
    refused by a backend any more (the last, tests/fuzz.py's WIDTH_CHAIN, is built): the refusal is made up here."""
    from archc.backends.common import Unsupported
    from archc.backends.torch import emitter

    def refuse(self, model):
        raise Unsupported("torch backend: a refusal this test makes up", None)

    monkeypatch.setattr(emitter.TorchEmitter, "emit", refuse, raising=False)
    path = write_yaml(f"{HEAD}network: [relu]\n")
    err = refused(cli("build", path, "--backend", "torch", "-o", tmp_path / "t.py"), "torch backend: ")
    assert err.count("backend:") == 1, err


def test_width_chain_is_built_by_both_backends(cli, write_yaml, tmp_path):
    """The PyTorch emitter writes a block class's running width through a chain of conditional parts (a block whose
    width stays inside it, in a concat branch): once refused, built now (parity in tests/test_properties_ranks.py)."""
    from tests.fuzz import WIDTH_CHAIN

    path = write_yaml(WIDTH_CHAIN)
    for backend in ("torch", "keras"):
        r = cli("build", path, "--backend", backend, "-o", tmp_path / f"{backend}.py")
        assert r.code == 0, r.err


def test_generated_files_get_the_umask_mode_and_unchanged_is_said(cli, write_yaml, tmp_path):
    import os
    import stat

    path = write_yaml(f"{HEAD}network: [relu]\n")
    dst = tmp_path / "out" / "t.py"
    old = os.umask(0o027)
    try:
        r = cli("build", path, "--backend", "torch", "-o", dst)
        assert r.code == 0 and r.out == f"wrote {dst}\n", r
        assert stat.S_IMODE(dst.stat().st_mode) == 0o640
        os.umask(0o022)
        r = cli("build", path, "--backend", "torch", "-o", dst)  # nothing to write: said, and the file untouched
        assert r.code == 0 and r.out == f"unchanged {dst}\n", r
        assert stat.S_IMODE(dst.stat().st_mode) == 0o640
        dst.write_text("stale\n")
        assert cli("build", path, "--backend", "torch", "-o", dst).out == f"wrote {dst}\n"
        assert stat.S_IMODE(dst.stat().st_mode) == 0o644
        assert not [p for p in dst.parent.iterdir() if p.name != "t.py"]  # no temporary left behind
    finally:
        os.umask(old)


@pytest.mark.parametrize(
    "item,suggested",
    [
        ("conv: {out: 3, kernal: 1}", "kernel"),  # one edit in six letters
        ("conv: {out: 3, kernel: 1, strdie: 1}", "stride"),  # a transposition is one edit
        ("maxpol: {kernel: 2}", "maxpool"),
        ("Conv: {out: 3, kernel: 1}", "conv"),
        ("conv: {out: 3, kernel: 1, depth: 2}", None),  # was: did you mean 'width'? (shares 'dth' only)
        ("reshape", None),  # was: did you mean 'repeat'?
        ("x", None),
    ],
)
def test_suggestions_only_when_close(item, suggested, cli, write_yaml):
    err = refused(cli("check", write_yaml(f"{HEAD}network:\n  - {item}\n")))
    if suggested is None:
        assert "did you mean" not in err, err
    else:
        assert f"did you mean '{suggested}'?" in err, err
        assert "primitives:" not in err, err  # a close name is the answer: the choices are listed only without one


def test_unknown_kind_lists_the_kinds_by_category(cli, write_yaml):
    from archc.spec import COMBINATORS, PRIMITIVES

    err = refused(cli("check", write_yaml(f"{HEAD}blocks:\n  mine:\n    body: [relu]\nnetwork:\n  - reshape\n")))
    assert f"primitives: {', '.join(sorted(PRIMITIVES))};" in err, err
    assert f"combinators: {', '.join(sorted(COMBINATORS))};" in err, err
    assert "blocks: mine;" in err and "stdlib blocks: " in err, err


def test_unused_block_param_is_warned_about(cli, write_yaml):
    text = (
        f"{HEAD}blocks:\n  b:\n    params: {{width: 4, depth: 2, act: true}}\n"
        "    body:\n      - conv: {out: $width, kernel: 1}\n      - relu: {if: $act}\nnetwork: [b]\n"
    )
    path = write_yaml(text)
    r = cli("check", path)
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if "warning:" in line]
    col = text.splitlines()[4].index("depth") + 1
    assert warnings == [f"{path}:5:{col}: warning: param 'depth' of block 'b' is never used"], r.err
    assert cli("check", path, "--strict").code == 2


def test_a_layer_may_be_called_input(cli, write_yaml, tmp_path):
    """The user's names stay; the Keras model input's own name yields (input, then input_1, ...)."""
    text = f"{HEAD}network:\n  - conv: {{name: input, out: 4, kernel: 1}}\n  - relu: {{name: input_1}}\n  - gap\n"
    src = built_both(cli, write_yaml(text), tmp_path)
    keras = pytest.importorskip("keras")
    import importlib.util

    spec = importlib.util.spec_from_loader("input_named", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(src["keras"], "input_named.py", "exec"), module.__dict__)
    model = module.build_model()
    assert isinstance(model.get_layer("input"), keras.layers.Conv2D)
    assert model.get_layer("input_1").__class__.__name__ == "ReLU"
    assert [t.name for t in model.inputs] and model.inputs[0].name not in ("input", "input_1")

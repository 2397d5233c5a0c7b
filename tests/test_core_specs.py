"""Checks every spec in specs/ must pass; a new spec file is tested here without new test code."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from archc import ir
from archc.analysis import analyze
from archc.errors import ArchcError
from archc.expr import evaluate
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC_FILES = sorted((ROOT / "specs").glob("*.yaml"))
IDS = [p.stem for p in SPEC_FILES]


@functools.cache
def compiled(path: Path):
    return compile_spec(str(path))


def only_expected_lints(err: str) -> bool:
    """Nothing on stderr but the warnings (and their notes) of specs that keep lints on purpose
    (tests/test_core_lint.py's EXPECTED_WARNINGS)."""
    from tests.test_core_lint import EXPECTED_WARNINGS

    keep = tuple(str(ROOT / "specs" / f"{stem}.yaml") + ":" for stem in EXPECTED_WARNINGS)
    for line in err.splitlines():
        if ": note: " in line:
            continue
        if ": warning: " not in line or not line.startswith(keep):
            return False
    return True


def test_there_are_specs():
    assert len(SPEC_FILES) >= 9


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_spec_checks_ok(cli, path):
    res = cli("check", path)
    assert res.code == 0 and only_expected_lints(res.err)
    assert res.out.startswith(f"{path}: ok (")


def test_check_all_specs_at_once(cli):
    res = cli("check", *SPEC_FILES)
    assert res.code == 0 and only_expected_lints(res.err)
    assert len(res.out.splitlines()) == len(SPEC_FILES)


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_json_summary_is_consistent(cli, path):
    res = cli("summary", path, "--json")
    assert res.code == 0 and res.err == ""
    j = res.json()
    assert set(j) >= {"name", "input", "outputs", "trainable_params", "non_trainable_params", "total_params", "macs"}
    assert "layers" in j
    assert j["name"] == yaml.safe_load(path.read_text())["name"]
    assert len(j["input"]) in (2, 3, 4) and all(isinstance(v, int) and v > 0 for v in j["input"])  # (*spatial, C)
    named = yaml.safe_load(path.read_text()).get("outputs")  # several outputs, by name; else the main output
    assert list(j["outputs"])[: len(named or [1])] == (list(map(str, named)) if named else ["main"])
    assert j["total_params"] == j["trainable_params"] + j["non_trainable_params"] > 0
    layers = j["layers"]
    assert sum(r["trainable_params"] for r in layers) == j["trainable_params"]
    assert sum(r["non_trainable_params"] for r in layers) == j["non_trainable_params"]
    assert sum(r["macs"] for r in layers) == j["macs"] > 0
    names = [r["name"] for r in layers]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", n) for n in names)
    assert all(s > 0 and isinstance(s, int) for r in layers for s in r["output_shape"])
    for r in layers:  # BN: gamma (not with scale: false), beta trainable, mean/variance not; nothing else has buffers
        if r["kind"] == "bn":
            c = r["output_shape"][-1]
            assert r["trainable_params"] in (c, 2 * c) and r["non_trainable_params"] == 2 * c
        else:
            assert r["non_trainable_params"] == 0
        if r["kind"] not in ("conv", "dwconv", "dense", "conv_transpose"):  # MACs of convolutions and linear layers
            assert r["macs"] == 0
    # every head output is the last row of that head
    heads = yaml.safe_load(path.read_text()).get("heads") or {}
    for head, shape in j["outputs"].items():
        if head in heads:
            assert [r["output_shape"] for r in layers if r["name"].startswith(head + ".")][-1] == shape


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_text_summary_agrees_with_json(cli, path):
    j = cli("summary", path, "--json").json()
    text = cli("summary", path, "--depth", "all").out  # every layer (the default collapses blocks)

    def number(label):
        return int(re.search(rf"^{label}:\s+([\d,]+)$", text, re.M).group(1).replace(",", ""))

    assert number("trainable params") == j["trainable_params"]
    assert number("non-trainable params") == j["non_trainable_params"]
    assert number("total params") == j["total_params"]
    assert number("MACs") == j["macs"]
    assert f"model: {j['name']}" in text
    for row in j["layers"]:
        assert re.search(rf"^{re.escape(row['name'])}\s+{row['kind']}\s", text, re.M), row["name"]


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_api_and_cli_agree_and_are_deterministic(cli, path):
    a, b = compile_spec(str(path)), compile_spec(str(path))
    assert a.spec_sha256 == b.spec_sha256 and a.body == b.body
    assert analyze(a).to_json() == analyze(b).to_json() == cli("summary", path, "--json", "--compact").json()


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_ir_is_fully_explicit(path):
    m = compiled(path)
    outputs = analyze(m).outputs
    if m.outputs:  # each named output has its item's shape
        shapes = {n.path: n.out_shape for n in ir.walk(m.body)}
        assert all(outputs[name] == shapes[key] for name, key in m.outputs)
    else:
        assert m.body.out_shape == outputs["main"]
    for root in [m.body, *(h.body for h in m.heads)]:
        for n in ir.walk(root):
            assert n.in_shape and n.out_shape
            rank = len(m.input_shape) - 1  # spatial axes: one (before, after) padding pair and kernel entry each
            if isinstance(n, ir.Conv):
                assert len(n.padding) == 2 * rank and all(p >= 0 for p in n.padding)
                assert len(n.kernel) == len(n.stride) == len(n.dilation) == rank
                assert isinstance(n.bias, bool)
                assert n.in_channels == n.in_shape[-1] and n.out_channels == n.out_shape[-1]
                assert n.in_channels % n.groups == 0
            if isinstance(n, ir.Pool):
                assert len(n.padding) == 2 * rank and isinstance(n.ceil, bool) and n.op in ("max", "avg")
            if isinstance(n, ir.BatchNorm):
                assert 0 < n.eps < 1 and 0 <= n.momentum <= 1 and n.channels == n.in_shape[-1]
            if isinstance(n, ir.Dense):
                # flat features, or a feature map (dense acts on the channels at each position)
                assert len(n.in_shape) in (1, rank + 1) and n.in_shape[-1] == n.in_features
                assert n.out_shape == (*n.in_shape[:-1], n.out_features)
            if isinstance(n, ir.Seq) and n.children:
                first = n.children[0]
                assert (first.src or first.in_shape == n.in_shape) and n.children[-1].out_shape == n.out_shape
                for x, y in zip(n.children, n.children[1:]):
                    if not y.src:  # (an item that reads a named output takes that one's shape: test_graphs.py)
                        assert x.out_shape == y.in_shape, (x.path, y.path)


def _check_templates(m):
    """The block templates (used by emitters for classes and loops) agree with the instances."""
    for root in [m.body, *(h.body for h in m.heads)]:
        for n in ir.walk(root):
            if isinstance(n, ir.Call):
                b = m.block(n.block)
                scope = {**dict(n.args), "in_channels": n.in_shape[-1]}
                assert evaluate(b.out_ch, scope) == n.out_shape[-1], (n.path, str(b.out_ch))
    scope = {**dict(m.params), "in_channels": m.input_shape[-1]}
    inst = {n.name: n for n in m.body.children}
    lets: dict[int, list] = {}  # running widths named between the network's items (ir.TNode.lets)
    for i, sym, definition in m.network.lets:
        lets.setdefault(i, []).append((sym, definition))
    for i, t in enumerate(m.network.children):
        for sym, definition in lets.get(i, ()):  # a named width: its definition, or the item's output width
            prev = inst.get(m.network.children[i - 1].name)
            scope[sym] = evaluate(definition, scope) if definition is not None else prev.out_shape[-1] if prev else 0
        if t.name in inst:
            assert evaluate(t.in_ch, scope) == inst[t.name].in_shape[-1], t.name
            assert evaluate(t.out_ch, scope) == inst[t.name].out_shape[-1], t.name


@pytest.mark.parametrize("path", SPEC_FILES, ids=IDS)
def test_block_templates_agree_with_instances(path):
    _check_templates(compiled(path))


def test_dense_connect_of_a_width_preserving_body(write_yaml):
    # layer outputs have the width of their input, so widths go 3 -> 6 -> 12: the template says 3 + 2*3 = 9
    path = write_yaml(
        "name: t\ninput: {height: 8, width: 8, channels: 3}\nblocks:\n  grow:\n    body:\n"
        "      - dense_connect: {layers: 2, body: [relu]}\nnetwork:\n  - grow\n  - conv: {out: 4, kernel: 1}\n"
    )
    try:
        m = compile_spec(str(path))
    except ArchcError as exc:  # refusing the construct, clearly, is a fix too
        assert "depends on its input width" in exc.message and exc.loc is not None
        return
    assert m.body.children[0].out_shape == (8, 8, 12)
    _check_templates(m)


def test_analysis_imports_no_framework():
    code = (
        "import sys, json, io, contextlib, archc.cli\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    rc = archc.cli.main(['summary', 'specs/densenet169.yaml', '--json', '--compact'])\n"
        "    rc |= archc.cli.main(['check', 'specs/googlenet.yaml', 'specs/mobilenet_v1.yaml'])\n"
        "    rc |= archc.cli.main(['schema'])\n"
        "assert rc == 0, rc\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
        "print(json.loads(buf.getvalue().splitlines()[0])['total_params'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == 14_307_880

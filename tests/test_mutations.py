"""Fuzzing the real specs: every random mutation is either valid or a located error (exit 2), never a crash."""

from __future__ import annotations

import io
import re
import shutil
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from archc.cli import main as archc_main

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted(p.name for p in (ROOT / "specs").glob("*.yaml"))
LOCATED = re.compile(r"^(\S.*?):(\d+):(\d+): \S")
COUNTS = {"cases": 0, "valid": 0, "refused": 0}

JUNK = [None, True, -1, 0, 10**9, 10**30, 3.5, float("nan"), "abc", "$nope", "${1/0}", "${x ** 99}", [], [1, 2, 3], {}]


def paths(node, prefix=()):
    """Every path into a YAML document (mapping keys and list indices)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def get(node, path):
    for p in path:
        node = node[p]
    return node


@st.composite
def mutation(draw):
    name = draw(st.sampled_from(SPECS))
    doc = yaml.safe_load((ROOT / "specs" / name).read_text())
    all_paths = [p for p in paths(doc) if p]
    path = draw(st.sampled_from(all_paths))
    parent, key = get(doc, path[:-1]), path[-1]
    op = draw(st.sampled_from(["delete", "junk", "rename", "swap_block", "duplicate"]))
    if op == "delete":
        del parent[key]
    elif op == "junk":
        parent[key] = draw(st.sampled_from(JUNK))
    elif op == "rename" and isinstance(parent, dict):
        parent[str(key) + draw(st.sampled_from(["_", "x", "s"]))] = parent.pop(key)
    elif op == "swap_block" and isinstance(parent, dict) and len(parent) == 1:
        new = draw(st.sampled_from(["inception", "dense_block", "transition", "ds_conv", "conv", "add", "nope"]))
        parent[new] = parent.pop(key)
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, parent[key])
    return name, yaml.safe_dump(doc, sort_keys=False)


@seed(7)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutation())
def test_mutated_specs_are_valid_or_located_errors(tmp_path, case):
    name, text = case
    d = tmp_path / "specs"
    if not d.exists():
        shutil.copytree(ROOT / "specs", d)
    spec = d / name
    spec.write_text(text)
    err, out = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = archc_main(["check", str(spec)])  # an unexpected exception fails the test right here
    COUNTS["cases"] += 1
    assert code in (0, 2)
    if code == 2:
        COUNTS["refused"] += 1
        m = LOCATED.match(err.getvalue())
        assert m, err.getvalue()
        assert "Traceback" not in err.getvalue()
        assert m.group(1).endswith(".yaml") or m.group(1).startswith("<archc stdlib>")
    else:
        COUNTS["valid"] += 1


def test_report_mutation_counts():
    print(f"mutations: {COUNTS['cases']} cases, {COUNTS['valid']} valid, {COUNTS['refused']} located errors")

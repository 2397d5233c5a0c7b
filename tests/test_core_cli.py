"""Command-line habits (issue 13, item 3): --version, python -m archc, --set a=1 b=2, summary --depth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"


def _version() -> str:
    from importlib.metadata import version

    return version("archc")


def test_version(cli):
    res = cli("--version")
    assert res.code == 0 and res.out.strip() == f"archc {_version()}", res


def test_python_dash_m():
    res = subprocess.run(
        [sys.executable, "-m", "archc", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert res.returncode == 0 and res.stdout.strip() == f"archc {_version()}", res
    res = subprocess.run(
        [sys.executable, "-m", "archc", "check", str(SPECS / "nope.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert (
        res.returncode == 2 and res.stderr.startswith(f"{SPECS / 'nope.yaml'}:1:1: ") and "Traceback" not in res.stderr
    )


def test_several_pairs_after_one_set(cli):
    spec = SPECS / "densenet121.yaml"
    one = cli("summary", spec, "--json", "--set", "growth_rate=12", "size=96")
    repeated = cli("summary", spec, "--json", "--set", "growth_rate=12", "--set", "size=96")
    assert one.code == 0 and one.out == repeated.out
    assert one.json()["input"] == [96, 96, 3]
    assert one.json()["trainable_params"] != cli("summary", spec, "--json").json()["trainable_params"]
    # mixed: pairs after one --set, and another --set
    mixed = cli("check", spec, "--set", "growth_rate=12", "size=96", "--set", "classes=10")
    assert mixed.code == 0, mixed


def test_a_spec_after_set_pairs_is_one_clear_error(cli):
    spec = SPECS / "densenet121.yaml"
    res = cli("check", "--set", "size=96", spec)
    assert res.code == 2 and "Traceback" not in res.err
    assert f"'{spec}' has no '='" in res.err and "put specs before --set" in res.err
    # ending the pairs with -- works
    assert cli("check", "--set", "size=96", "--", spec).code == 0


def test_summary_depth_default_fits_a_screen_and_sums_blocks(cli):
    res = cli("summary", SPECS / "densenet169.yaml")
    assert res.code == 0
    lines = res.out.splitlines()
    assert len(lines) <= 40, len(lines)
    rows = {line.split()[0]: line.split() for line in lines[2:] if line and not line.startswith("-")}
    assert rows["denseblock1"][1] == "dense_block"
    assert " ".join(rows["denseblock1"][2:5]) == "(56, 56, 256)"
    full = cli("summary", SPECS / "densenet169.yaml", "--json").json()
    under = [r for r in full["layers"] if r["name"].startswith("denseblock1.")]
    assert rows["denseblock1"][5] == f"{sum(r['trainable_params'] for r in under):,}"
    assert rows["denseblock1"][7] == f"{sum(r['macs'] for r in under):,}"
    # totals unchanged, whatever the depth
    everything = cli("summary", SPECS / "densenet169.yaml", "--depth", "all")
    assert res.out.splitlines()[-6:] == everything.out.splitlines()[-6:]
    assert len(everything.out.splitlines()) > 500


@pytest.mark.parametrize("spec", ["densenet169.yaml", "googlenet.yaml", "mobilenet_v1.yaml"])
def test_summary_depths_partition_the_layers(cli, spec):
    from archc.analysis import analyze, collapse
    from archc.pipeline import compile_spec

    model = compile_spec(str(SPECS / spec))
    report = analyze(model)
    assert collapse(model, report, None) == report.rows
    sizes = []
    for depth in (1, 2, 3, 4):
        rows = collapse(model, report, depth)
        sizes.append(len(rows))
        assert sum(r.trainable for r in rows) == report.trainable
        assert sum(r.non_trainable for r in rows) == report.non_trainable
        assert sum(r.macs for r in rows) == report.macs
        assert all(r.path.count(".") < depth for r in rows)
    assert sizes == sorted(sizes) and sizes[0] < len(report.rows)
    if model.heads:
        assert {r.kind for r in collapse(model, report, 1) if r.path in {h.name for h in model.heads}} == {"head"}


def test_summary_json_rows_have_depths(cli):
    data = cli("summary", SPECS / "densenet169.yaml", "--json", "--depth", "1").json()
    assert len(data["layers"]) > 500  # --json keeps every layer
    assert {r["depth"] for r in data["layers"]} >= {1, 4}  # denseblock1.stack.0.norm1
    assert all(r["depth"] == r["name"].count(".") + 1 for r in data["layers"])


@pytest.mark.parametrize("bad", ["0", "-1", "x"])
def test_summary_bad_depth_is_a_usage_error(cli, bad):
    res = cli("summary", SPECS / "densenet169.yaml", "--depth", bad)
    assert res.code == 2 and "positive integer or 'all'" in res.err and "Traceback" not in res.err

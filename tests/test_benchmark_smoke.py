"""The benchmark runs end to end at its --quick size and writes every row (no speed assertions)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("keras") is None,
    reason="the benchmark needs torch and keras",
)

MODELS = ("densenet169", "googlenet_torchvision")
TORCHVISION = ("resnet50", "mobilenet_v2", "efficientnet_b0", "r3d_18", "fcn_resnet50")  # torchvision's own
KERAS_APP = ("resnet50_keras", "mobilenet_v2_keras")  # keras.applications' layout, against keras.applications
HAVE_TORCHVISION = importlib.util.find_spec("torchvision") is not None
COMPARED = [
    *(f"torch_{kind}_{m}" for kind in ("eval", "train") for m in (*MODELS, "unet")),
    *(f"keras_{how}_{m}" for how in ("predict", "call") for m in ("densenet169", "mobilenet_v1")),
    *(f"memory_{how}_{m}" for how in ("alloc", "rss") for m in MODELS),
    # rows that need torchvision (CI installs it) or a spec (specs/<stem>.yaml): test_optional_rows
    *(f"torchvision_{kind}_{m}" for kind in ("eval", "train") for m in TORCHVISION if HAVE_TORCHVISION),
    *(f"keras_{how}_{m}" for how in ("predict", "call") for m in KERAS_APP if (ROOT / "specs" / f"{m}.yaml").exists()),
]
LATENCY = ["latency_build_torch_densenet169", "latency_summary_densenet169", "latency_python_startup"]
SCALING = [
    f"scaling_{mode}_{stage}" for mode in ("explicit", "repeat") for stage in ("analysis", "emit_torch", "emit_keras")
]
# rows of an inductor or XLA compile report a failure to compile (an "error" row) instead of aborting the run
MAY_FAIL = ("extras_compile_", "extras_keras_jit_")


def extras_rows(config: dict) -> list[str]:
    """The extras rows of a run with this config (the compiled models depend on --quick)."""
    return [
        *(f"extras_memory_efficient_{what}_densenet169" for what in ("time", "alloc", "rss")),
        *(f"extras_channels_last_{m}" for m in MODELS),
        *(f"extras_fold_bn_{b}{m}" for b in ("", "b1_") for m in (*MODELS, "mobilenet_v1")),
        *(f"extras_keras_jit_{m}" for m in config["keras_jit_models"]),
        *(f"extras_compile_{m}" for m in config["compile_models"]),
    ]


def positive(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout, json.loads(out.read_text())


def test_every_compared_row_has_positive_times_and_ratios(quick_run):
    _, result = quick_run
    rows = result["rows"]
    for key in COMPARED:
        assert key in rows, f"missing row {key}"
        r = rows[key]
        for field in ("generated", "reference", "ratio", "paired_ratio"):
            assert positive(r[field]), (key, field, r[field])
        assert r["runs"] >= 1 and len(r["generated_runs"]) == len(r["reference_runs"]) == r["runs"]
        assert all(positive(v) for v in r["generated_runs"] + r["reference_runs"]), key
        if not key.startswith("memory_"):
            assert r["generated_minflt"] >= 0 and r["reference_minflt"] >= 0, key


def test_optional_rows_run_or_say_why_not(quick_run):
    """The rows against torchvision and the keras.applications-layout rows run where their inputs exist and are
    skipped, with a printed reason naming what is missing, where they do not (never silently)."""
    stdout, result = quick_run
    rows, skipped = result["rows"], result["skipped"]
    optional = {f"torchvision_{kind}_{m}": HAVE_TORCHVISION for kind in ("eval", "train") for m in TORCHVISION}
    for m in KERAS_APP:
        for how in ("predict", "call"):
            optional[f"keras_{how}_{m}"] = (ROOT / "specs" / f"{m}.yaml").exists()
    for key, runs in optional.items():
        if runs:
            assert key in rows and key not in skipped, key
        else:
            assert key not in rows and skipped[key], key
            assert f"- Skipped {key}: {skipped[key]}" in stdout, key
    assert set(skipped) <= set(optional)


def test_compiler_latency_rows(quick_run):
    _, result = quick_run
    for key in LATENCY:
        r = result["rows"][key]
        assert positive(r["median"]) and positive(r["min"]) and r["runs"] >= 1, key


def test_scaling_rows(quick_run):
    _, result = quick_run
    for key in SCALING:
        r = result["rows"][key]
        assert positive(r["ratio"]) and positive(r["us_per_block_small"]) and positive(r["us_per_block_large"]), key
    for mode in ("explicit", "repeat"):
        entries = result["scaling"][mode]
        assert [int(n) for n in entries] == result["config"]["scaling_blocks"]
        for e in entries.values():
            for field in ("analysis_s", "emit_torch_s", "emit_keras_s", "analysis_us_per_block"):
                assert positive(e[field]), (mode, e["blocks"], field)


def test_extras_rows(quick_run):
    _, result = quick_run
    rows = result["rows"]
    expected = extras_rows(result["config"])
    assert {k for k, r in rows.items() if r["section"] == "extras"} == set(expected)
    assert "extras_compile_mobilenet_v1_025_160" in expected and "extras_keras_jit_mobilenet_v1" in expected
    for key in expected:
        r = rows[key]
        assert isinstance(r["pays"], bool) and r["note"], key
        if "error" in r:
            assert key.startswith(MAY_FAIL) and r["error"] and r["pays"] is False, key
            continue
        for field in ("option", "plain", "ratio", "paired_ratio"):
            assert positive(r[field]), (key, field, r[field])
        assert r["runs"] >= 1 and len(r["option_runs"]) == len(r["plain_runs"]) == r["runs"], key
        assert all(positive(v) for v in r["option_runs"] + r["plain_runs"]), key
        # the options compute what the plain model computes
        assert r.get("max_rel_diff", 0.0) < 1e-4, (key, r.get("max_rel_diff"))
        assert r["pays"] == (r["ratio"] <= 0.95), key
    for key in ("extras_compile_mobilenet_v1_025_160", "extras_keras_jit_mobilenet_v1"):
        r = rows[key]
        if "error" not in r:
            assert positive(r.get("compile_first_s", r.get("first_call_s"))), key


def test_extras_correctness_checks(quick_run):
    _, result = quick_run
    rows = result["rows"]
    lean = rows["extras_memory_efficient_time_densenet169"]
    for check in ("loss_rel_diff", "grad_max_rel_diff", "buffer_max_rel_diff", "eval_max_rel_diff"):
        assert 0 <= lean[check] < 1e-4, (check, lean[check])
    for name in (f"{b}{m}" for b in ("", "b1_") for m in (*MODELS, "mobilenet_v1")):
        r = rows[f"extras_fold_bn_{name}"]
        assert r["max_rel_diff"] < 1e-4, name
        assert r["folded_pairs"] > 0 and r["batchnorms_left"] == r["batchnorms"] - r["folded_pairs"], name
        if not name.endswith("densenet169"):  # every BN of GoogLeNet and MobileNet follows a conv
            assert r["batchnorms_left"] == 0, name
    assert rows["extras_fold_bn_densenet169"]["folded_pairs"] == 83  # conv0's BN and the 82 bottlenecks'
    for name in MODELS:
        assert rows[f"extras_channels_last_{name}"]["max_rel_diff"] < 1e-4, name


def test_reference_models_have_the_generated_parameter_counts(quick_run):
    _, result = quick_run
    torch_counts = result["param_counts"]["torch"]
    assert torch_counts["densenet169"]["generated_params"] == 14_149_480
    assert torch_counts["googlenet_torchvision"]["generated_params"] == 13_004_888
    for name in MODELS:
        c = torch_counts[name]
        assert c["generated_params"] == c["reference_params"] == c["expected_params"], name
        assert c["generated_buffer_elements"] == c["reference_buffer_elements"], name
        assert c["eval_max_rel_error_same_weights"] < 1e-4, name
    for name, c in result["param_counts"]["keras"].items():
        assert c["generated_params"] == c["reference_params"], name
    # torchvision's own models, built live: the same size, and the same logits given torchvision's weights
    tv_counts = result["param_counts"]["torchvision"]
    assert set(tv_counts) == (set(TORCHVISION) if HAVE_TORCHVISION else set())
    for name, c in tv_counts.items():
        assert c["generated_params"] == c["reference_params"] > 0, name
        assert c["generated_buffer_elements"] == c["reference_buffer_elements"], name
        assert c["eval_max_rel_error_same_weights"] < 1e-4, name
    for name in KERAS_APP:
        if (ROOT / "specs" / f"{name}.yaml").exists():
            assert result["param_counts"]["keras"][name]["eval_max_rel_error_same_weights"] < 1e-4, name


def test_machine_description_and_table(quick_run):
    stdout, result = quick_run
    m = result["machine"]
    assert m["cpu_model"] and m["logical_cpus"] >= 1
    assert m["torch_num_threads"] == result["config"]["threads"]
    assert m["torch"] and m["tensorflow"] and m["keras"]
    assert result["config"]["quick"] is True
    assert positive(result["total_seconds"])
    for key in COMPARED + LATENCY + SCALING + extras_rows(result["config"]):
        assert f"| {key}:" in stdout, f"row {key} not in the printed table"

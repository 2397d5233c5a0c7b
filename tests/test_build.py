"""`archc build`: outputs in sync with specs, --check never writes, failed builds change nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from archc.cli import main as archc_main

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
name: tiny
input: {height: 8, width: 8, channels: 3}
network:
  - conv: {out: 4, kernel: 3, padding: 1}
  - relu
"""


def run(*argv, cwd=ROOT):
    r = subprocess.run([sys.executable, "-m", "archc", *argv], cwd=cwd, capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def test_generated_is_in_sync_with_specs():
    """What CI runs: every committed generated file equals what the specs give now."""
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "specs").glob("*.yaml"))
    code, out, err = run("build", *specs, "--backend", "all", "--check")
    assert code == 0, err


def test_check_reports_stale_and_writes_nothing(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(GOOD)
    out = tmp_path / "out.py"
    out.write_text("# stale\n")
    assert archc_main(["build", str(spec), "--backend", "torch", "-o", str(out), "--check"]) == 1
    assert out.read_text() == "# stale\n"
    missing = tmp_path / "missing.py"
    assert archc_main(["build", str(spec), "--backend", "torch", "-o", str(missing), "--check"]) == 1
    assert not missing.exists()
    assert archc_main(["build", str(spec), "--backend", "torch", "-o", str(out)]) == 0
    assert archc_main(["build", str(spec), "--backend", "torch", "-o", str(out), "--check"]) == 0


def test_failed_build_leaves_existing_outputs_untouched(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(GOOD)
    bad.write_text(GOOD.replace("kernel: 3", "kernel: 30"))
    outdir = tmp_path / "out"
    assert archc_main(["build", str(good), "--backend", "torch", "-o", str(outdir)]) == 0
    before = {p: p.read_bytes() for p in outdir.rglob("*")}
    # the good spec changes, the bad one fails: nothing may be written, not even the good one
    good.write_text(GOOD.replace("out: 4", "out: 5"))
    code, out, err = run("build", str(good), str(bad), "--backend", "torch", "-o", str(outdir))
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith(f"{bad}:4:"), err
    assert {p: p.read_bytes() for p in outdir.rglob("*")} == before
    assert not [p for p in outdir.rglob("*.tmp")]


def test_default_output_path_and_unknown_backend(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(GOOD)
    code, out, err = run("build", str(spec), "--backend", "torch", cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "generated" / "torch" / "tiny.py").is_file()
    code, out, err = run("build", str(spec), "--backend", "nope", cwd=tmp_path)
    assert code == 2 and "unknown backend 'nope'" in err and "Traceback" not in err


def test_build_help_lists_backends():
    code, out, err = run("build", "--help")
    assert code == 0
    assert "torch" in out


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2, "the README holds exactly two set-up-and-run commands"
    assert "archc build" in commands[0] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci


def test_backend_registry_refuses_duplicates_and_lists_itself():
    import pytest
    from archc.backends import get_backend, list_backends, register

    assert {"torch", "keras"} <= set(list_backends())
    get_backend("torch")  # imports and registers the package
    with pytest.raises(ValueError, match="already registered"):
        register("torch", object)
    with pytest.raises(KeyError, match="unknown backend"):
        get_backend("onnx")

"""Hostile and broken inputs: each answered within a second, exit 2, a message naming the file; nothing runs."""

from __future__ import annotations

import ast
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from archc.cli import main as archc_main

ROOT = Path(__file__).resolve().parents[1]
HEAD = "name: t\ninput: {height: 8, width: 8, channels: 3}\n"


def alias_bomb() -> str:
    text = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        text += f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]\n"
    return text


HOSTILE = {
    "python_object_tag": "!!python/object/apply:os.system ['touch PWNED']\n",
    "python_name_tag": HEAD + "network: [!!python/name:os.system {}]\n",
    "alias_bomb": alias_bomb(),
    "huge_repeat": HEAD + "network:\n  - repeat: {times: 1000000000000, body: [relu]}\n",
    "nested_huge_repeat": HEAD + "network:\n  - repeat: {times: 90000, body: [repeat: {times: 90000, body: [relu]}]}\n",
    "repeat_over_layer_bound": HEAD
    + "network:\n  - repeat: {times: 30000, body: [conv: {out: 3, kernel: 1}, bn, relu]}\n",
    "huge_channels": HEAD + "network:\n  - conv: {out: 100000000000, kernel: 1}\n",
    "huge_expression": HEAD + "network:\n  - conv: {out: '${10 ** 60}', kernel: 1}\n",
    "power_tower": HEAD + "params: {a: 9}\nnetwork:\n  - conv: {out: '${a ** a ** a ** a}', kernel: 1}\n",
    # constant folding at template time (the term has a param in it) must not compute 9 ** 387420489
    "power_tower_in_template": HEAD + "network:\n  - conv: {out: '${in_channels * 0 + 9 ** 9 ** 9}', kernel: 1}\n",
    "repeat_string_in_template": HEAD
    + "network:\n  - conv: {out: \"${in_channels + len('ab' * 10 ** 12)}\", kernel: 1}\n",
    "deep_flow_nesting_100k": HEAD + "network: " + "[" * 100_000 + "relu" + "]" * 100_000 + "\n",
    "empty": "",
    "only_comments": "# nothing here\n",
    "a_list": "- conv\n- relu\n",
    "a_scalar": "42\n",
    "deep_nesting": HEAD + "network: " + "[" * 300 + "relu" + "]" * 300 + "\n",
    "deep_seq_nesting": HEAD
    + "network:\n"
    + "".join("  " * (i + 1) + "- seq:\n" for i in range(250))
    + "  " * 251
    + "- relu\n",
    "unterminated": HEAD + "network: [conv: {out: 3\n",
    # at the size limit, as many values as fit: refused at the value bound, parsed within the second
    "many_values_under_size_limit": HEAD + "network:\n" + "  - conv: {out: 3, kernel: 1}\n" * 17_000,
    "over_size_limit": "# " + "x" * 600_000 + "\n" + HEAD + "network: [relu]\n",
    "dunder_expression": HEAD + "network:\n  - conv: {out: '${().__class__}', kernel: 1}\n",
    "attribute_expression": HEAD + "params: {a: 1}\nnetwork:\n  - conv: {out: '${a.real}', kernel: 1}\n",
    "call_expression": HEAD + "network:\n  - conv: {out: '${open(\"/etc/passwd\")}', kernel: 1}\n",
    "lambda_expression": HEAD + "network:\n  - conv: {out: '${(lambda: 1)()}', kernel: 1}\n",
}


def child_cpu(argv, **kw) -> tuple[subprocess.CompletedProcess, float]:
    """Runs ``argv``; returns its result and the CPU seconds (user + system) it used: unlike the wall time, what
    the other test worker and other programs on the machine do adds almost nothing to it. A hang still fails
    (the wall-time timeout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_check(path: Path) -> tuple[int, str, float]:
    """(exit status, stderr, CPU seconds beyond the start-up of `archc check` on a trivial spec)."""
    r, cpu = child_cpu([sys.executable, "-m", "archc", "check", str(path)], cwd=path.parent)
    return r.returncode, r.stderr, cpu - startup()


_STARTUP: list[float] = []


def startup() -> float:
    """CPU seconds `archc check` takes on a trivial spec (interpreter start-up and imports), measured once and
    again every 8 calls: the bounds below are about the work a hostile file causes, not the machine's load."""
    if len(_STARTUP) % 8 == 0:
        import tempfile

        d = Path(tempfile.mkdtemp())
        (d / "ok.yaml").write_text(HEAD + "network:\n  - relu\n")
        _STARTUP.append(child_cpu([sys.executable, "-m", "archc", "check", str(d / "ok.yaml")])[1])
    else:
        _STARTUP.append(_STARTUP[-1])
    return _STARTUP[-1]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input(tmp_path, case):
    path = tmp_path / f"{case}.yaml"
    path.write_text(HOSTILE[case])
    code, err, seconds = run_check(path)
    assert code == 2, err
    assert err.startswith(f"{path}:"), err
    assert "Traceback" not in err
    for _ in range(2):  # the work is the least CPU time it took: contention for caches only adds to it
        if seconds < 1.0:
            break
        _STARTUP.clear()  # start-up measured again, under the same load
        seconds = min(seconds, run_check(path)[2])
    assert seconds < 1.0  # one CPU second of work at most (beyond start-up)
    assert not (tmp_path / "PWNED").exists()


def test_non_utf8_binary_directory_missing(tmp_path):
    cases = {
        tmp_path / "latin1.yaml": "name: caf\xe9\n".encode("latin-1"),
        tmp_path / "binary.yaml": bytes(range(256)),
    }
    for path, data in cases.items():
        path.write_bytes(data)
    (tmp_path / "adir.yaml").mkdir()
    for path in [*cases, tmp_path / "adir.yaml", tmp_path / "missing.yaml"]:
        code, err, seconds = run_check(path)
        assert code == 2 and err.startswith(f"{path}:") and "Traceback" not in err, err
        assert seconds < 1.0


def test_largest_allowed_network_is_checked_quickly(tmp_path):
    """Near the bound (24,000 x conv-BN-ReLU: 96,000 of the 100,000 layers and blocks allowed): valid, and
    still answered in seconds."""
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + "network:\n  - repeat: {times: 24000, body: [conv: {out: 3, kernel: 1}, bn, relu]}\n")
    code, err, seconds = run_check(path)
    assert code == 0, err
    # linear work (about a CPU second here, 2 on a slower CPU); the least of three tries, as above: contention for
    # caches only adds to it. A quadratic walk over 96,000 nodes would take minutes, far past this bound.
    for _ in range(2):
        if seconds < 4.0:
            break
        _STARTUP.clear()
        seconds = min(seconds, run_check(path)[2])
    assert seconds < 4.0


def test_devices_and_pipes(tmp_path):
    """Reading these would block (a FIFO with no writer) or never end (/dev/zero): refused before opening."""
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    for path in [fifo, Path("/dev/zero"), Path("/dev/urandom")]:
        if not path.exists():
            continue
        code, err, seconds = run_check(path)
        assert code == 2 and err.startswith(f"{path}:1:1: ") and "device, pipe or socket" in err, err
        assert seconds < 1.0


def test_extends_cycle_and_missing_base(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    (tmp_path / "c.yaml").write_text("extends: c.yaml\nname: c\n")
    (tmp_path / "d.yaml").write_text("name: d\nextends: ../nowhere/base.yaml\n")
    for name, where in [("a", "b.yaml:1:10"), ("c", "c.yaml:1:10"), ("d", "d.yaml:2:10")]:
        code, err, seconds = run_check(tmp_path / f"{name}.yaml")
        assert code == 2 and f"{where}: " in err and "Traceback" not in err, err
        assert ("cycle" in err) if name != "d" else ("does not exist" in err)


INJECT_NAMES = [
    'x); import os; os.system("touch PWNED"); (',
    "a\nimport os",
    "__import__",
    "forward",
    "class",
    "print",
    "self",
    "é",
]


@pytest.mark.parametrize("bad", INJECT_NAMES)
@pytest.mark.parametrize("where", ["layer", "block", "param", "head", "model"])
def test_names_are_validated_before_reaching_code(tmp_path, bad, where):
    doc = {"name": "t", "input": {"height": 8, "width": 8, "channels": 3}, "network": [{"relu": {}}]}
    if where == "layer":
        doc["network"] = [{"conv": {"name": bad, "out": 2, "kernel": 1}}]
    elif where == "block":
        doc["blocks"] = {bad: {"body": ["relu"]}}
        doc["network"] = [{bad: {}}]
    elif where == "param":
        doc["params"] = {bad: 1}
    elif where == "head":
        doc["network"] = [{"conv": {"name": "c", "out": 2, "kernel": 1}}]
        doc["heads"] = {bad: {"at": "c", "body": ["gap"]}}
    else:
        doc["name"] = bad
    spec = tmp_path / "inject.yaml"
    spec.write_text(json.dumps(doc))
    out = tmp_path / "out"
    code = archc_main(["build", str(spec), "--backend", "all", "-o", str(out)])
    # 'forward' shadows torch.nn.Module.forward only as an attribute (a layer, a head, a block's item); 'print' the
    # builtin only as a Python variable (a block function, a param); elsewhere both are the user's to use
    allowed = (bad == "forward" and where in ("param", "model")) or (
        bad == "print" and where in ("layer", "head", "model")
    )
    assert not (tmp_path / "PWNED").exists()
    if allowed:
        assert code == 0
        for path in out.rglob("*.py"):
            compile(path.read_text(), str(path), "exec")
        return
    assert code == 2
    assert not out.exists()


def test_descriptions_are_inert(tmp_path):
    """Free text (doc strings, the spec's leading comment) is escaped: the module parses and nothing runs."""
    marker = tmp_path / "PWNED"
    payload = f'"""\nimport os; os.system("touch {marker}")\n"""\\'
    spec = tmp_path / "doc.yaml"
    one_line = payload.replace("\n", " ")
    spec.write_text(
        f"# {one_line}\n"
        + HEAD
        + f"blocks:\n  unit:\n    doc: {json.dumps(payload)}\n    body: [relu]\n"
        + "network:\n  - unit: {}\n  - conv: {out: 2, kernel: 1}\n"
    )
    out = tmp_path / "doc.py"
    assert archc_main(["build", str(spec), "--backend", "torch", "-o", str(out)]) == 0
    text = out.read_text()
    tree = ast.parse(text)
    assert f"touch {marker}" in ast.get_docstring(tree)
    unit = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Unit")
    assert f"touch {marker}" in ast.get_docstring(unit)
    assert all(isinstance(n, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.Assign, ast.Expr))
               for n in tree.body)  # fmt: skip
    subprocess.run([sys.executable, str(out)], check=False, capture_output=True)
    assert not marker.exists()

"""The zoo by name and the Python API (issue 22, item 4): `archc list`, SPEC arguments that are zoo names,
``archc.load`` / ``archc.create_model`` / ``archc.source``.

The non-editable install (a wheel in a fresh venv, run from outside the repository) is tests/test_install.py's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from archc.backends import get_backend

import archc
from archc import catalog
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
SMALL = "mobilenet_v1_025_160"  # the zoo's smallest network: 0.5 M params, 21 M MACs

TINY = """\
name: tiny
input: {height: 8, width: 8, channels: 3}
params: {classes: 5}
network:
  - conv: {out: 4, kernel: 3, padding: 1}
  - relu
top:
  - gap
  - dense: {out: $classes}
"""


@pytest.fixture(autouse=True)
def no_cache_in_home(monkeypatch, tmp_path):
    """`archc list` keeps its table in ~/.cache/archc; the tests' go to their own folder."""
    monkeypatch.setenv("ARCHC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def zoo_rows():
    """``archc list --json``'s rows, computed once (every zoo spec compiled and analyzed: ~2 s)."""
    rows, errors = catalog.zoo_table(cache=False)
    assert errors == []
    return rows


def test_the_zoo_is_specs_in_a_source_tree():
    assert catalog.zoo_dir() == SPECS.resolve()
    assert catalog.zoo_names() == sorted(p.stem for p in SPECS.glob("*.yaml"))
    assert archc.list_zoo() == catalog.zoo_names() and "resnet50" in archc.list_zoo()


def test_import_archc_load_and_list_import_no_framework(zoo_rows, tmp_path):
    """`import archc`, archc.load and `archc list --json` (in a fresh process, from another folder) import no
    framework; the list is the zoo, each row as the analysis gives it."""
    probe = (
        "import contextlib, io, json, sys, archc\n"
        "before = sorted(sys.modules)\n"
        "m = archc.load('resnet50', classes=10)\n"
        "import archc.cli\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    code = archc.cli.main(['list', '--json'])\n"
        "fw = [k for k in sys.modules if k.split('.')[0] in ('torch', 'keras', 'tensorflow', 'jax')]\n"
        "print(json.dumps({'before': before, 'code': code, 'fw': fw, 'list': json.loads(out.getvalue()),\n"
        "                  'trainable': m.trainable}))\n"
    )
    env = {**os.environ, "ARCHC_CACHE_DIR": ""}  # computed, not read from a cache
    r = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    assert seen["fw"] == [] and seen["code"] == 0, seen["fw"]
    # `import archc` alone imports neither the API nor the compiler
    assert not [m for m in seen["before"] if m.startswith("archc.") or m in ("pydantic", "yaml", "jinja2")]
    assert seen["list"] == zoo_rows
    assert seen["trainable"] == 25_557_032 - 2048 * 990 - 990  # resnet50's, with a 10-class classifier


def test_list_rows_are_the_analysis(zoo_rows):
    assert [r["name"] for r in zoo_rows] == catalog.zoo_names()
    by = {r["name"]: r for r in zoo_rows}
    # torchvision's published figures (params; MACs as its _ops metadata counts them)
    assert by["resnet50"]["trainable_params"] == 25_557_032 and by["resnet50"]["macs"] == 4_089_184_256
    assert by["mobilenet_v2"]["trainable_params"] == 3_504_872 and by["mobilenet_v2"]["input"] == [224, 224, 3]
    assert by["efficientnet_b7"]["input"] == [600, 600, 3]  # extends efficientnet_b0, its own size
    for name in ("resnet101", "vgg16_bn", SMALL):  # a spec that extends another, and two that do not
        summary = archc.load(name).summary()
        row = by[name]
        assert row["file"] == str(SPECS.resolve() / f"{name}.yaml")
        for key in ("input", "outputs", "trainable_params", "non_trainable_params", "total_params", "macs"):
            assert row[key] == summary[key], (name, key)
    assert by["resnet50"]["doc"] == "ResNet-50 (v1.5), as torchvision.models.resnet50 builds it."
    assert all(r["doc"] and "\n" not in r["doc"] and len(r["doc"]) <= 100 for r in zoo_rows)


def test_list_table(cli, zoo_rows, monkeypatch):
    monkeypatch.setattr(catalog, "zoo_table", lambda: (zoo_rows, []))
    res = cli("list")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0].split() == ["name", "input", "trainable", "non-trainable", "MACs"]
    rows = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert list(rows) == catalog.zoo_names()
    assert rows["resnet50"][1:6] == ["224x224x3", "25,557,032", "53,120", "4.089", "G"]
    assert rows[SMALL][1:6] == ["160x160x3", "470,072", "5,472", "21.1", "M"]
    assert lines[-1].startswith(f"{len(zoo_rows)} specs")


def test_list_reports_a_spec_that_does_not_compile(cli, tmp_path, monkeypatch):
    (tmp_path / "good.yaml").write_text(TINY)
    (tmp_path / "bad.yaml").write_text(TINY.replace("kernel: 3", "kernel: 30"))
    monkeypatch.setattr(catalog, "zoo_dir", lambda: tmp_path)
    for argv in (("list",), ("list", "--json")):
        res = cli(*argv)
        assert res.code == 2 and "Traceback" not in res.err
        assert res.err.startswith(f"{tmp_path / 'bad.yaml'}:5:"), res.err
        assert "good" in res.out and "bad" not in res.out.replace(str(tmp_path), "")


def test_list_keeps_its_table_until_a_spec_or_archc_changes(tmp_path, monkeypatch):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / "tiny.yaml").write_text(TINY)
    monkeypatch.setattr(catalog, "zoo_dir", lambda: zoo)
    cache = tmp_path / "cache"
    rows, errors = catalog.zoo_table()
    assert errors == [] and [r["name"] for r in rows] == ["tiny"] and rows[0]["trainable_params"] == 137
    (written,) = cache.iterdir()

    def fail():
        raise AssertionError("computed again")

    compute = catalog._compute_table
    monkeypatch.setattr(catalog, "_compute_table", fail)
    assert catalog.zoo_table() == (rows, [])  # from the cache
    (zoo / "tiny.yaml").write_text(TINY.replace("classes: 5", "classes: 6"))
    with pytest.raises(AssertionError, match="computed again"):
        catalog.zoo_table()  # another key: a spec changed
    (zoo / "tiny.yaml").write_text(TINY)
    monkeypatch.setenv("ARCHC_CACHE_DIR", "")
    with pytest.raises(AssertionError, match="computed again"):
        catalog.zoo_table()  # no cache at all
    monkeypatch.setenv("ARCHC_CACHE_DIR", str(cache))
    monkeypatch.setattr(catalog, "_compute_table", compute)
    written.write_text("{not json")
    assert catalog.zoo_table() == (rows, [])  # a damaged cache file is computed again, and rewritten
    assert json.loads(written.read_text()) == {"rows": rows}


def test_build_by_name_writes_where_a_path_would(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = cli("build", "resnet50", "--backend", "torch")
    assert res.code == 0, res.err
    assert res.out.strip() == "wrote generated/torch/resnet50.py"
    text = (tmp_path / "generated" / "torch" / "resnet50.py").read_text(encoding="utf-8")
    assert text == get_backend("torch").emit(compile_spec(str(SPECS / "resnet50.yaml")))
    assert cli("build", "resnet50", "--backend", "torch", "--check").code == 0
    # several names, with --set and -o, as for paths
    res = cli("build", "resnet18", "vgg11", "-b", "keras", "-o", "out", "--set", "classes=10")
    assert res.code == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["resnet18.py", "vgg11.py"]
    expected = get_backend("keras").emit(compile_spec(str(SPECS / "vgg11.yaml"), ["classes=10"]))
    assert (tmp_path / "out" / "vgg11.py").read_text(encoding="utf-8") == expected


def test_every_command_takes_a_name(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(SPECS / "densenet121.yaml")
    by_name, by_path = (cli("summary", spec, "--json", "--set", "growth_rate=12") for spec in ("densenet121", path))
    assert by_name.code == 0 and by_name.out == by_path.out
    for spec, out in (("densenet121", "by_name.dot"), (path, "by_path.dot")):
        assert cli("diagram", spec, "-f", "dot", "-o", out).code == 0
    assert (tmp_path / "by_name.dot").read_text() == (tmp_path / "by_path.dot").read_text()
    res = cli("check", "densenet121", path, "--set", "classes=10")
    assert res.code == 0
    assert res.out.splitlines()[0].startswith("densenet121: ok (densenet121: ")
    assert res.out.splitlines()[0].split(": ok")[1] == res.out.splitlines()[1].split(": ok")[1]
    assert cli("diagram", "densenet121", "-f", "dot").code == 0 and (tmp_path / "densenet121.dot").is_file()


@pytest.mark.parametrize(
    "argv",
    [
        ("check", "resnet5O"),
        ("summary", "resnet5O"),
        ("build", "resnet18", "resnet5O", "-b", "torch"),
        ("diagram", "resnet5O"),
        ("report", "resnet5O"),
        ("convert-weights", "resnet5O", "a.pt", "b.weights.h5"),
        ("export-folded", "resnet5O", "a.pt", "b.pt2"),
    ],
)
def test_an_unknown_name_is_a_cli_error_with_close_names(cli, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    res = cli(*argv)
    assert res.code == 2 and "Traceback" not in res.err
    assert res.err.startswith("'resnet5O' is neither a spec file nor a zoo spec (did you mean 'resnet50'"), res.err
    assert not list(tmp_path.iterdir())  # nothing written, not even resnet18's


def test_a_missing_path_is_the_loaders_error_and_a_name_after_set_is_caught(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for missing in ("nope.yaml", "sub/resnet50", "sub/resnet50.yaml"):
        res = cli("check", missing)
        assert res.code == 2 and res.err.startswith(f"{missing}:1:1: cannot read"), res.err
    res = cli("summary", "--set", "classes=10", "resnet50")
    assert res.code == 2 and "'resnet50' has no '='" in res.err


def test_an_existing_path_wins_over_a_name(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet50").write_text(TINY)
    assert archc.load("resnet50").name == "tiny"
    assert cli("summary", "resnet50", "--json").json()["name"] == "tiny"
    assert archc.load("resnet50.yaml").name == "resnet50"  # no such file here: the zoo's
    (tmp_path / "resnet50.yaml").write_text(TINY)
    assert archc.load("resnet50.yaml").name == "tiny"
    assert archc.load(tmp_path / "resnet50").name == "tiny"  # a Path is a path


def test_load_is_the_ir_and_its_analysis_with_params_as_set(cli):
    m = archc.load("densenet121", growth_rate=12, block_config=(6, 12, 24, 16), classes=10)
    summary = cli("summary", "densenet121", "--json", "--set", "growth_rate=12", "block_config=[6,12,24,16]")
    summary10 = cli("summary", "densenet121", "--json", "--set", "growth_rate=12", "classes=10").json()
    assert summary.code == 0
    assert m.summary() == summary10 and m.summary()["layers"][:-1] == summary.json()["layers"][:-1]
    assert m.params["growth_rate"] == 12 and m.params["classes"] == 10
    assert m.sets == ("growth_rate=12", "block_config=[6, 12, 24, 16]", "classes=10")
    assert m.overrides == {"growth_rate": 12, "block_config": (6, 12, 24, 16), "classes": 10}
    assert m.outputs == {"main": (10,)} and m.input_shape == (224, 224, 3)
    assert (m.trainable, m.non_trainable, m.macs) == (
        summary10["trainable_params"],
        summary10["non_trainable_params"],
        summary10["macs"],
    )
    assert m.total == m.trainable + m.non_trainable and m.layers[0].path == m.summary()["layers"][0]["name"]
    assert m.ir.name == "densenet121" and m.spec == str(SPECS.resolve() / "densenet121.yaml")
    assert repr(m) == (  # one line, not the IR
        "<archc.Compiled densenet121, growth_rate=12, block_config=(6, 12, 24, 16), classes=10: input 224x224x3, "
        f"{m.trainable:,} trainable + {m.non_trainable:,} non-trainable params, {m.macs:,} MACs>"
    )
    # built-in params, and a float in the notation YAML 1.1 reads as a string
    headless = archc.load(SMALL, include_top=False, pooling="avg")
    assert headless.outputs == {"main": (256,)} and headless.ir.top_removed
    assert archc.load(SMALL, dropout=1e-5).params["dropout"] == 1e-5


def test_unknown_or_bad_params_are_clear_errors():
    with pytest.raises(archc.ArchcError) as e:
        archc.load("resnet50", clases=10)
    params_line = next(i for i, line in enumerate((SPECS / "resnet50.yaml").open(), 1) if line.startswith("params:"))
    assert str(e.value) == (
        f"{SPECS.resolve() / 'resnet50.yaml'}:{params_line}:1: unknown param 'clases' of resnet50.yaml "
        "(did you mean 'classes'?)"
    )
    with pytest.raises(archc.ArchcError, match=r"unknown param 'zzz' of resnet50.yaml \(params: size, channels, "):
        archc.create_model("resnet50", zzz=1)  # before any framework is imported or code generated
    with pytest.raises(archc.ArchcError, match="param 'classes': object values cannot be given"):
        archc.load("resnet50", classes=object())
    with pytest.raises(archc.ArchcError, match="param 'size' must be a finite number"):
        archc.load("resnet50", size=float("nan"))
    with pytest.raises(archc.ArchcError, match=r"^--set classes=-3:1:9: .*classes"):
        archc.load("resnet50", classes=-3)  # a bad value: the compiler's own located message
    with pytest.raises(archc.ArchcError, match="unknown backend 'jax' \\(available: keras, torch\\)"):
        archc.load(SMALL).source("jax")
    with pytest.raises(archc.ArchcError, match="the keras backend has no option 'nope'"):
        archc.load(SMALL).source("keras", nope=True)
    with pytest.raises(archc.ArchcError, match="neither a spec file nor a zoo spec"):
        archc.create_model("resnet5O")


def test_source_is_what_build_writes(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for backend in ("torch", "keras"):
        assert cli("build", SMALL, "-b", backend, "-o", f"{backend}.py", "--set", "classes=10").code == 0
        assert archc.source(SMALL, backend, classes=10) == (tmp_path / f"{backend}.py").read_text(encoding="utf-8")


def test_create_model_torch_runs_without_files(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import inspect

    monkeypatch.chdir(tmp_path)
    modules = set(sys.modules)
    net = archc.create_model(SMALL, backend="torch", classes=10, size=64)
    assert isinstance(net, torch.nn.Module)
    net.eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    m = archc.load(SMALL, classes=10, size=64)
    assert sum(p.numel() for p in net.parameters()) == m.trainable
    assert sum(b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked")) == m.non_trainable
    assert not list(tmp_path.iterdir()) and not [k for k in set(sys.modules) - modules if "generated" in k]
    # the generated module: its source readable (tracebacks, inspect), its name saying what it is
    assert type(net).__module__ == f"archc_generated_torch_{SMALL}" and type(net).__module__ not in sys.modules
    assert inspect.getsource(type(net).forward).lstrip().startswith("def forward(self, x")
    assert archc.load(SMALL).module("torch").__doc__.startswith("MobileNet V1, alpha 0.25")
